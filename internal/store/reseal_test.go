package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/flows"
	"github.com/safeflow/safeflow/internal/pgtest"
	"github.com/safeflow/safeflow/internal/seal"
)

// resealFlow writes every kind of sealed value: a contact, conversation
// variables and address, transcript lines and outbox rows.
const resealFlow = `flow: intake
trigger:
  default: true
steps:
  welcome:
    ask: { prompt: "What is your first name?", type: text, save: first_name }
    next: reason
  reason:
    ask: { prompt: "Thanks {{ first_name }}. What brings you in?", type: text, save: reason }
    next: done
  done:
    say: "Thank you, {{ first_name }}. We will call you."
    end: true
`

// resealFixture is a store with conversations written through the engine.
type resealFixture struct {
	s      *Store
	ring   *seal.Ring
	engine *engine.Engine
	// vars holds each contact's expected conversation variables, by address.
	vars map[string]map[string]any
	n    int // messages sent, for provider ids
}

func newResealFixture(t *testing.T, dsn string) *resealFixture {
	t.Helper()
	ring, err := seal.Generate()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(t.Context(), dsn, ring)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	set := flows.NewSet(map[string][]byte{"intake.yaml": []byte(resealFlow)})
	if len(set.Diags) > 0 {
		t.Fatalf("test flow does not load: %v", set.Diags)
	}
	return &resealFixture{s: s, ring: ring, engine: engine.New(set, s), vars: map[string]map[string]any{}}
}

// talk has contacts first to first+count-1 start the flow and answer its
// first question; every other one also answers the second, which ends the
// conversation and writes the closing message.
func (f *resealFixture) talk(t *testing.T, first, count int) {
	t.Helper()
	for i := first; i < first+count; i++ {
		addr := fmt.Sprintf("+1555010%04d", i)
		name := fmt.Sprintf("Ana %d", i)
		texts := []string{"hello", name}
		f.vars[addr] = map[string]any{"first_name": name}
		if i%2 == 0 {
			texts = append(texts, "a sore knee")
		}
		for _, text := range texts {
			f.n++
			_, err := f.engine.Handle(t.Context(), engine.Inbound{Channel: engine.SMS, Address: addr, Text: text,
				ProviderID: fmt.Sprintf("SM%d", f.n)})
			if err != nil {
				t.Fatalf("contact %d says %q: %v", i, text, err)
			}
		}
		if i%2 == 0 {
			delete(f.vars, addr) // ended: no open conversation to compare
		}
	}
}

// storedValue is one sealed value with the place it is bound to.
type storedValue struct {
	ad    seal.AD
	value []byte
}

// storedValues reads every sealed value in the database. The queries are
// written out here rather than taken from sealedTables, so that a wrong
// table, column or row binding in the job shows up as a value that does not
// open.
func (f *resealFixture) storedValues(t *testing.T) []storedValue {
	t.Helper()
	queries := []struct {
		table   string
		query   string
		columns []string
	}{
		{"contacts", `SELECT id, address_sealed FROM contacts`, []string{"address"}},
		{"conversations", `SELECT id, vars_sealed, address_sealed FROM conversations`, []string{"vars", "address"}},
		{"transcript", `SELECT conversation_id || '/' || n, body_sealed FROM transcript`, []string{"body"}},
		{"outbox", `SELECT id, address_sealed, body_sealed FROM outbox`, []string{"address", "body"}},
	}
	var out []storedValue
	for _, q := range queries {
		rows, err := f.s.DB().QueryContext(t.Context(), q.query)
		if err != nil {
			t.Fatalf("%s: %v", q.table, err)
		}
		found := 0
		for rows.Next() {
			var row string
			vals := make([][]byte, len(q.columns))
			dest := []any{&row}
			for i := range vals {
				dest = append(dest, &vals[i])
			}
			if err := rows.Scan(dest...); err != nil {
				t.Fatalf("%s: %v", q.table, err)
			}
			for i, c := range q.columns {
				out = append(out, storedValue{seal.AD{Table: q.table, Column: c, Row: row}, vals[i]})
			}
			found++
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", q.table, err)
		}
		rows.Close()
		if found == 0 {
			t.Fatalf("the fixture wrote no rows to %s, so the test would prove nothing about it", q.table)
		}
	}
	return out
}

// keyCounts returns how many stored values are under each key id.
func (f *resealFixture) keyCounts(t *testing.T) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for _, v := range f.storedValues(t) {
		id, err := f.ring.KeyIDOf(v.value)
		if err != nil {
			t.Fatalf("%s.%s row %s: %v", v.ad.Table, v.ad.Column, v.ad.Row, err)
		}
		counts[id]++
	}
	return counts
}

// assertAllUnder fails unless every stored value is under key id and opens
// in its place, and the engine's view of every open conversation is intact.
func (f *resealFixture) assertAllUnder(t *testing.T, id string) {
	t.Helper()
	for _, v := range f.storedValues(t) {
		got, err := f.ring.KeyIDOf(v.value)
		if err != nil || got != id {
			t.Errorf("%s.%s row %s is under key %q (%v), want %q", v.ad.Table, v.ad.Column, v.ad.Row, got, err, id)
		}
		if _, err := f.ring.Open(v.value, v.ad); err != nil {
			t.Errorf("%s.%s row %s does not open: %v", v.ad.Table, v.ad.Column, v.ad.Row, err)
		}
	}
	f.assertConversations(t)
}

// assertConversations reads every open conversation back through the
// store's engine.Tx and compares its variables and address.
func (f *resealFixture) assertConversations(t *testing.T) {
	t.Helper()
	err := f.s.Tx(t.Context(), func(tx engine.Tx) error {
		for _, addr := range slices.Sorted(maps.Keys(f.vars)) {
			c, err := tx.ContactByAddress(t.Context(), engine.SMS, addr)
			if err != nil {
				return fmt.Errorf("contact %s: %w", addr, err)
			}
			if c.Address != addr {
				t.Errorf("contact %s opens as address %q", c.ID, c.Address)
			}
			conv, err := tx.OpenConversation(t.Context(), c.ID)
			if err != nil {
				return fmt.Errorf("conversation of %s: %w", addr, err)
			}
			if conv.Address != addr {
				t.Errorf("conversation %s opens as address %q, want %q", conv.ID, conv.Address, addr)
			}
			if d := cmp.Diff(f.vars[addr], conv.Vars); d != "" {
				t.Errorf("conversation %s variables (-want +got):\n%s", conv.ID, d)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// progressLog records progress callbacks.
type progressLog struct {
	calls []string
	last  map[string]int
}

func (p *progressLog) record(table string, done int) {
	if p.last == nil {
		p.last = map[string]int{}
	}
	if prev, ok := p.last[table]; ok && done < prev {
		p.calls = append(p.calls, fmt.Sprintf("%s went back from %d to %d", table, prev, done))
	}
	p.last[table] = done
	p.calls = append(p.calls, fmt.Sprintf("%s %d", table, done))
}

func (p *progressLog) sum() int {
	n := 0
	for _, v := range p.last {
		n += v
	}
	return n
}

var resealCases = []struct {
	name string
	run  func(t *testing.T, dsn string)
}{
	{"MovesEveryValueToTheActiveKey", func(t *testing.T, dsn string) {
		f := newResealFixture(t, dsn)
		f.talk(t, 1, 5)
		before := f.keyCounts(t)
		if len(before) != 1 || before["k1"] == 0 {
			t.Fatalf("before rotation the values are under %v, want all under k1", before)
		}
		if _, err := f.ring.Rotate(); err != nil {
			t.Fatal(err)
		}
		var p progressLog
		n, err := f.s.Reseal(t.Context(), 2, p.record)
		if err != nil {
			t.Fatalf("Reseal: %v", err)
		}
		if n != before["k1"] {
			t.Errorf("Reseal returned %d, want the %d values that were under k1", n, before["k1"])
		}
		if p.sum() != n {
			t.Errorf("progress reported %d values in all, Reseal returned %d; calls: %v", p.sum(), n, p.calls)
		}
		for _, tbl := range []string{"contacts", "conversations", "transcript", "outbox"} {
			if _, ok := p.last[tbl]; !ok {
				t.Errorf("progress never reported table %s; calls: %v", tbl, p.calls)
			}
		}
		for _, c := range p.calls {
			if strings.Contains(c, "went back") {
				t.Errorf("progress counts must only grow: %s", c)
			}
		}
		f.assertAllUnder(t, "k2")

		// A second run finds nothing to do but still reports every table.
		var again progressLog
		n, err = f.s.Reseal(t.Context(), 2, again.record)
		if err != nil || n != 0 {
			t.Errorf("second Reseal = %d, %v; want 0, nil", n, err)
		}
		if want := []string{"contacts 0", "conversations 0", "transcript 0", "outbox 0"}; !slices.Equal(again.calls, want) {
			t.Errorf("second run progress = %v, want %v", again.calls, want)
		}

		// The engine carries on with a re-sealed conversation: contact 1
		// answers the second question, which ends it.
		f.n++
		if _, err := f.engine.Handle(t.Context(), engine.Inbound{Channel: engine.SMS, Address: "+15550100001",
			Text: "a cough", ProviderID: fmt.Sprintf("SM%d", f.n)}); err != nil {
			t.Fatalf("contact 1 answers after the re-seal: %v", err)
		}
		delete(f.vars, "+15550100001")
		var status string
		if err := f.s.DB().GetContext(t.Context(), &status, `SELECT status FROM conversations ORDER BY created LIMIT 1`); err != nil || status != "ended" {
			t.Errorf("contact 1's conversation is %q (%v) after the last answer, want ended", status, err)
		}
		f.assertAllUnder(t, "k2")
	}},

	{"LeavesValuesUnderTheActiveKeyAsTheyAre", func(t *testing.T, dsn string) {
		f := newResealFixture(t, dsn)
		f.talk(t, 1, 2)
		old := f.keyCounts(t)["k1"]
		if _, err := f.ring.Rotate(); err != nil {
			t.Fatal(err)
		}
		f.talk(t, 3, 2)
		fresh := map[string][]byte{}
		for _, v := range f.storedValues(t) {
			if id, _ := f.ring.KeyIDOf(v.value); id == "k2" {
				fresh[fmt.Sprint(v.ad)] = v.value
			}
		}
		n, err := f.s.Reseal(t.Context(), 100, nil)
		if err != nil {
			t.Fatalf("Reseal: %v", err)
		}
		if n != old {
			t.Errorf("Reseal returned %d, want only the %d values under k1", n, old)
		}
		for _, v := range f.storedValues(t) {
			if want, ok := fresh[fmt.Sprint(v.ad)]; ok && string(want) != string(v.value) {
				t.Errorf("%s.%s row %s was already under k2 but was rewritten", v.ad.Table, v.ad.Column, v.ad.Row)
			}
		}
		f.assertAllUnder(t, "k2")
	}},

	{"ResumesAfterAPartialRun", func(t *testing.T, dsn string) {
		f := newResealFixture(t, dsn)
		f.talk(t, 1, 6)
		total := f.keyCounts(t)["k1"]
		if _, err := f.ring.Rotate(); err != nil {
			t.Fatal(err)
		}
		// Stop the job as soon as its first batch has committed.
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		first, err := f.s.Reseal(ctx, 2, func(string, int) { cancel() })
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted Reseal error = %v, want context.Canceled", err)
		}
		if first == 0 || first >= total {
			t.Fatalf("interrupted Reseal moved %d of %d values, want some but not all", first, total)
		}
		if got := f.keyCounts(t); got["k2"] != first || got["k1"] != total-first {
			t.Errorf("after the interrupted run the values are under %v, want k2: %d, k1: %d", got, first, total-first)
		}
		// The service reads a half-moved store. Its transactions write back
		// the conversations they load, under the active key, so count what
		// is left afterwards.
		f.assertConversations(t)
		left := f.keyCounts(t)["k1"]

		rest, err := f.s.Reseal(t.Context(), 2, nil)
		if err != nil {
			t.Fatalf("resumed Reseal: %v", err)
		}
		if rest != left {
			t.Errorf("resumed Reseal moved %d values, want the %d left", rest, left)
		}
		f.assertAllUnder(t, "k2")
	}},

	{"RefusesAValueCopiedFromAnotherRow", func(t *testing.T, dsn string) {
		f := newResealFixture(t, dsn)
		f.talk(t, 1, 2)
		var ids []string
		if err := f.s.DB().SelectContext(t.Context(), &ids, `SELECT id FROM contacts ORDER BY id`); err != nil {
			t.Fatal(err)
		}
		// Give the second contact the first one's sealed address.
		if _, err := f.s.DB().ExecContext(t.Context(), f.s.q(`UPDATE contacts SET address_sealed =
			(SELECT address_sealed FROM contacts WHERE id = ?) WHERE id = ?`), ids[0], ids[1]); err != nil {
			t.Fatal(err)
		}
		if _, err := f.ring.Rotate(); err != nil {
			t.Fatal(err)
		}
		n, err := f.s.Reseal(t.Context(), 100, nil)
		if !errors.Is(err, seal.ErrOpen) {
			t.Fatalf("Reseal error = %v, want one wrapping seal.ErrOpen", err)
		}
		if !strings.Contains(err.Error(), "contacts row "+ids[1]) {
			t.Errorf("error %q does not name the contacts row %s", err, ids[1])
		}
		if n != 0 {
			t.Errorf("Reseal reported %d values moved, want 0: the failing batch is rolled back", n)
		}
		// The batch rolled back: the good row is still under k1 too, and the
		// copied value was not laundered into one that opens.
		var sealed [][]byte
		if err := f.s.DB().SelectContext(t.Context(), &sealed, `SELECT address_sealed FROM contacts ORDER BY id`); err != nil {
			t.Fatal(err)
		}
		for i, v := range sealed {
			if id, _ := f.ring.KeyIDOf(v); id != "k1" {
				t.Errorf("contact %s is under %q after the failed batch, want k1", ids[i], id)
			}
		}
	}},

	{"RejectsABatchSizeBelowOne", func(t *testing.T, dsn string) {
		f := newResealFixture(t, dsn)
		if _, err := f.s.Reseal(t.Context(), 0, nil); err == nil || !strings.Contains(err.Error(), "batch size") {
			t.Errorf("Reseal with batch 0: error = %v, want one about the batch size", err)
		}
	}},
}

// TestReseal runs the re-seal job on SQLite and, when a server can be
// started, PostgreSQL.
func TestReseal(t *testing.T) {
	backends := []struct {
		name  string
		newDB func(t *testing.T) func(t *testing.T) string
	}{
		{"sqlite", func(*testing.T) func(*testing.T) string {
			return func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "safeflow.db") }
		}},
		{"postgres", func(t *testing.T) func(*testing.T) string {
			srv := pgtest.Start(t)
			return func(t *testing.T) string { return srv.CreateDB(t, "") }
		}},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			newDB := b.newDB(t)
			for _, c := range resealCases {
				t.Run(c.name, func(t *testing.T) { c.run(t, newDB(t)) })
			}
		})
	}
}

// TestResealCoversEverySealedColumn fails when the schema gains a *_sealed
// column that the re-seal job does not know, or the job names one the schema
// does not have.
func TestResealCoversEverySealedColumn(t *testing.T) {
	ring, err := seal.Generate()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "safeflow.db"), ring)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var schema []string
	err = s.DB().SelectContext(t.Context(), &schema, `SELECT m.name || '.' || p.name FROM sqlite_master m, pragma_table_info(m.name) p
		WHERE m.type = 'table' AND p.name LIKE '%\_sealed' ESCAPE '\' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	var known []string
	for _, tbl := range sealedTables {
		for _, c := range tbl.columns {
			known = append(known, tbl.name+"."+c.name)
		}
	}
	slices.Sort(known)
	if d := cmp.Diff(schema, known); d != "" {
		t.Errorf("sealed columns in the schema (-) and in sealedTables (+) differ:\n%s", d)
	}
}
