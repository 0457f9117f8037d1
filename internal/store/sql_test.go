package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/internal/audit"
	"github.com/safeflow/safeflow/internal/pgtest"
	"github.com/safeflow/safeflow/internal/seal"
	"github.com/safeflow/safeflow/internal/store"
	"github.com/safeflow/safeflow/internal/store/storetest"
)

// playAll runs every example script on s and returns what each produced,
// by script name.
func playAll(t *testing.T, s *store.Store) map[string]*storetest.Played {
	t.Helper()
	set := storetest.Examples(t)
	out := map[string]*storetest.Played{}
	for _, sc := range storetest.Scripts() {
		out[sc.Name] = storetest.Play(t.Context(), t, s, set, sc)
		chainAudit(t, s)
	}
	return out
}

// execSQL runs a statement with ? placeholders on the store's database.
func execSQL(t *testing.T, s *store.Store, query string, args ...any) {
	t.Helper()
	if _, err := s.DB().ExecContext(t.Context(), s.DB().Rebind(query), args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// opened is everything the store hands back about the scripts'
// conversations, opened: the proof that each secret was stored at all.
func opened(t *testing.T, s *store.Store, played map[string]*storetest.Played) string {
	t.Helper()
	var b strings.Builder
	for _, p := range played {
		conv := storetest.Load(t.Context(), t, s, p.ConversationID)
		fmt.Fprintf(&b, "%s %v\n", conv.Address, conv.Vars)
		lines, err := s.Transcript(t.Context(), p.ConversationID)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lines {
			b.WriteString(l.Text + "\n")
		}
	}
	return b.String()
}

// findPlaintext returns the secrets found in data, as raw bytes or as the
// hex that pg_dump writes for bytea.
func findPlaintext(data []byte, secrets []string) []string {
	var found []string
	lowerHex := bytes.ToLower(data)
	for _, s := range secrets {
		if bytes.Contains(data, []byte(s)) || bytes.Contains(lowerHex, []byte(hex.EncodeToString([]byte(s)))) {
			found = append(found, s)
		}
	}
	return found
}

func allSecrets() []string {
	var out []string
	for _, sc := range storetest.Scripts() {
		out = append(out, sc.Secrets...)
	}
	return out
}

// TestNoPlaintextAtRest plays every example conversation, sensitive answers
// and all, and reads what the database keeps: the SQLite file and its WAL,
// and a pg_dump of PostgreSQL. None of the patients' texts, answers, names
// or phone numbers may appear, as typed or as parsed.
func TestNoPlaintextAtRest(t *testing.T) {
	secrets := allSecrets()
	// controls are stored in plaintext on purpose (flow ids): finding them
	// shows that the scan reads the data, not an empty or encoded file.
	controls := []string{"new-patient-intake", "prescription-refill", "symptom-triage"}

	check := func(t *testing.T, s *store.Store, played map[string]*storetest.Played, dumps map[string][]byte) {
		t.Helper()
		all := opened(t, s, played)
		for _, secret := range secrets {
			if !strings.Contains(all, secret) {
				t.Errorf("the store does not hand back %q at all: the script does not test it", secret)
			}
		}
		var joined []byte
		for name, data := range dumps {
			joined = append(joined, data...)
			if found := findPlaintext(data, secrets); len(found) > 0 {
				t.Errorf("%s holds plaintext: %q", name, found)
			}
		}
		for _, c := range controls {
			if !bytes.Contains(joined, []byte(c)) {
				t.Errorf("control %q not found in %v: the scan does not see the data", c, slices.Sorted(mapsKeys(dumps)))
			}
		}
	}

	t.Run("SQLite", func(t *testing.T) {
		s, path := openSQLite(t, newRing(t))
		played := playAll(t, s)
		// Read while the store is open: closing checkpoints the WAL into
		// the main file and removes it.
		dumps := map[string][]byte{}
		for _, name := range []string{path, path + "-wal"} {
			data, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			if len(data) == 0 {
				t.Fatalf("%s is empty", name)
			}
			dumps[filepath.Base(name)] = data
		}
		check(t, s, played, dumps)
	})

	t.Run("PostgreSQL", func(t *testing.T) {
		s, dsn := openPostgres(t, newRing(t))
		played := playAll(t, s)
		dump := pgDump(t, dsn)
		check(t, s, played, map[string][]byte{"pg_dump": dump})
	})
}

func mapsKeys(m map[string][]byte) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// pgDump returns a plain-text dump of the database at dsn, made by the
// pg_dump of the newest installed server.
func pgDump(t *testing.T, dsn string) []byte {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_dump")
	if dir := os.Getenv("PG_BIN"); dir != "" {
		bins = append(bins, filepath.Join(dir, "pg_dump"))
	}
	if len(bins) == 0 {
		t.Fatal("no pg_dump under /usr/lib/postgresql/*/bin or $PG_BIN, though a server runs")
	}
	slices.Sort(bins)
	cmd := exec.CommandContext(t.Context(), bins[len(bins)-1], "--no-owner", "--dbname="+dsn)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, stderr.String())
	}
	return out
}

// TestSealedValueCopiedToAnotherRowFailsToOpen copies one row's sealed
// bytes over another's, as someone with write access to the database might,
// and checks that the store refuses to open them, saying where. Each case
// damages a different conversation, so they share one store.
func TestSealedValueCopiedToAnotherRowFailsToOpen(t *testing.T) {
	conversation := func(script string) func(t *testing.T, s *store.Store, p map[string]*storetest.Played) error {
		return func(t *testing.T, s *store.Store, p map[string]*storetest.Played) error {
			return s.Tx(t.Context(), func(tx engine.Tx) error {
				_, err := tx.Conversation(t.Context(), p[script].ConversationID)
				return err
			})
		}
	}
	tests := []struct {
		name     string
		from, to string // scripts whose rows give and take the value
		update   string // copies the value of the row named by the first ? into the second
		read     func(t *testing.T, s *store.Store, p map[string]*storetest.Played) error
		where    string
	}{
		{
			name: "ConversationVariables", from: "triage", to: "intake",
			update: `UPDATE conversations SET vars_sealed = (SELECT vars_sealed FROM conversations WHERE id = ?) WHERE id = ?`,
			read:   conversation("intake"),
			where:  "conversations.vars",
		},
		{
			name: "ConversationAddress", from: "intake", to: "survey",
			update: `UPDATE conversations SET address_sealed = (SELECT address_sealed FROM conversations WHERE id = ?) WHERE id = ?`,
			read:   conversation("survey"),
			where:  "conversations.address",
		},
		{
			name: "TranscriptLine", from: "refill", to: "refill",
			update: `UPDATE transcript SET body_sealed = (SELECT body_sealed FROM transcript WHERE conversation_id = ? AND n = 2)
				WHERE conversation_id = ? AND n = 1`,
			read: func(t *testing.T, s *store.Store, p map[string]*storetest.Played) error {
				_, err := s.Transcript(t.Context(), p["refill"].ConversationID)
				return err
			},
			where: "transcript.body",
		},
		{
			name: "ContactAddress", from: "intake", to: "triage",
			update: `UPDATE contacts SET address_sealed = (SELECT address_sealed FROM contacts WHERE id =
				(SELECT contact_id FROM conversations WHERE id = ?))
				WHERE id = (SELECT contact_id FROM conversations WHERE id = ?)`,
			read: func(t *testing.T, s *store.Store, p map[string]*storetest.Played) error {
				return s.Tx(t.Context(), func(tx engine.Tx) error {
					_, err := tx.ContactByAddress(t.Context(), engine.SMS, "+16175550123")
					return err
				})
			},
			where: "contacts.address",
		},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s, _ := b.open(t, newRing(t))
			played := playAll(t, s)
			for _, tt := range tests {
				if err := tt.read(t, s, played); err != nil {
					t.Fatalf("%s before the copy: %v", tt.name, err)
				}
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					execSQL(t, s, tt.update, played[tt.from].ConversationID, played[tt.to].ConversationID)
					err := tt.read(t, s, played)
					if !errors.Is(err, seal.ErrOpen) {
						t.Fatalf("reading the copied value: %v, want an error wrapping seal.ErrOpen", err)
					}
					msg := err.Error()
					for _, want := range []string{tt.where, "does not authenticate", "copied from another row"} {
						if !strings.Contains(msg, want) {
							t.Errorf("error %q does not say %q", msg, want)
						}
					}
					if found := findPlaintext([]byte(msg), allSecrets()); len(found) > 0 {
						t.Errorf("error %q holds plaintext %q", msg, found)
					}
				})
			}
		})
	}
}

// TestRotatedKeys writes rows, rotates the key ring and writes more: the old
// rows still open and the new ones are sealed with the new key.
func TestRotatedKeys(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			ring := newRing(t)
			s, _ := b.open(t, ring)
			eng := engine.New(storetest.Counter(t), s, engine.WithClock(func() time.Time { return storetest.Epoch }))
			const addr = "+15550012345"
			send := func(text, id string) *engine.Result {
				t.Helper()
				res, err := eng.Handle(ctx, engine.Inbound{Channel: engine.SMS, Address: addr, Text: text, ProviderID: id})
				if err != nil {
					t.Fatal(err)
				}
				return res
			}
			conv := send("before rotation one", "r1").Conversation.ID
			send("before rotation two", "r2")
			oldKey := ring.ActiveID()
			newKey, err := ring.Rotate()
			if err != nil {
				t.Fatal(err)
			}
			send("after rotation", "r3")

			lines, err := s.Transcript(ctx, conv)
			if err != nil {
				t.Fatalf("transcript after rotation: %v", err)
			}
			var texts []string
			for _, l := range lines {
				if l.Inbound {
					texts = append(texts, l.Text)
				}
			}
			if want := []string{"before rotation one", "before rotation two", "after rotation"}; !slices.Equal(texts, want) {
				t.Errorf("inbound lines = %q, want %q", texts, want)
			}
			if c := storetest.Load(ctx, t, s, conv); c.Vars["n"] != 2 {
				t.Errorf("n = %v after rotation, want 2", c.Vars["n"])
			}
			err = s.Tx(ctx, func(tx engine.Tx) error {
				_, err := tx.ContactByAddress(ctx, engine.SMS, addr)
				return err
			})
			if err != nil {
				t.Errorf("the contact written before rotation: %v", err)
			}

			keyOf := func(query string, args ...any) string {
				t.Helper()
				var sealed []byte
				if err := s.DB().GetContext(ctx, &sealed, s.DB().Rebind(query), args...); err != nil {
					t.Fatal(err)
				}
				id, err := ring.KeyIDOf(sealed)
				if err != nil {
					t.Fatal(err)
				}
				return id
			}
			checks := []struct {
				name, query string
				args        []any
				want        string
			}{
				{"FirstLineKeepsOldKey", `SELECT body_sealed FROM transcript WHERE conversation_id = ? AND n = 1`, []any{conv}, oldKey},
				{"ContactKeepsOldKey", `SELECT address_sealed FROM contacts`, nil, oldKey},
				{"ConversationAddressKeepsOldKey", `SELECT address_sealed FROM conversations WHERE id = ?`, []any{conv}, oldKey},
				{"LastLineUsesNewKey", `SELECT body_sealed FROM transcript WHERE conversation_id = ? ORDER BY n DESC LIMIT 1`, []any{conv}, newKey},
				{"RewrittenVariablesUseNewKey", `SELECT vars_sealed FROM conversations WHERE id = ?`, []any{conv}, newKey},
				{"NewOutboxRowUsesNewKey", `SELECT body_sealed FROM outbox ORDER BY seq DESC LIMIT 1`, nil, newKey},
			}
			for _, c := range checks {
				t.Run(c.name, func(t *testing.T) {
					if got := keyOf(c.query, c.args...); got != c.want {
						t.Errorf("key = %s, want %s", got, c.want)
					}
				})
			}
		})
	}
}

// dropAuditGuards removes what keeps the audit log append-only, as an
// attacker with full control of the database could.
func dropAuditGuards(t *testing.T, s *store.Store) {
	t.Helper()
	if s.Postgres() {
		execSQL(t, s, `ALTER TABLE audit_log DISABLE TRIGGER ALL`)
		return
	}
	execSQL(t, s, `DROP TRIGGER audit_log_no_update`)
	execSQL(t, s, `DROP TRIGGER audit_log_no_delete`)
}

// insertAudit writes a record straight into audit_log.
func insertAudit(t *testing.T, s *store.Store, r audit.Record) {
	t.Helper()
	execSQL(t, s, `INSERT INTO audit_log (seq, at, actor_type, actor_id, actor_role, source, action, object, conversation_id,
		channel, outcome, reason, request_id, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.Seq, r.Time.UnixMicro(), r.Actor.Type, r.Actor.ID, r.Actor.Role, r.Source, r.Action, r.Object, r.Conversation,
		r.Channel, r.Outcome, r.Reason, r.RequestID, r.PrevHash, r.Hash)
}

func TestAuditLog(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Run("WholeChainVerifies", func(t *testing.T) {
				s, _ := b.open(t, newRing(t))
				playAll(t, s)
				if err := s.Audit(t.Context(), audit.Record{Actor: audit.Actor{Type: audit.ActorAgent, ID: "u1", Role: "admin"},
					Action: audit.KeyRotation, Object: "k2", Outcome: audit.OutcomeOK}); err != nil {
					t.Fatal(err)
				}
				p, err := s.VerifyAudit(t.Context())
				if err != nil || p != nil {
					t.Fatalf("VerifyAudit = %v, %v; want a whole chain", p, err)
				}
				records, err := s.AuditRecords(t.Context(), time.Time{})
				if err != nil {
					t.Fatal(err)
				}
				if len(records) < 100 {
					t.Errorf("only %d audit records for five conversations", len(records))
				}
				actions := map[string]bool{}
				for i, r := range records {
					if r.Seq != int64(i+1) {
						t.Fatalf("record %d has sequence %d", i+1, r.Seq)
					}
					actions[r.Action] = true
					text := fmt.Sprintf("%+v", r)
					if found := findPlaintext([]byte(text), allSecrets()); len(found) > 0 {
						t.Errorf("audit record %d holds %q", r.Seq, found)
					}
				}
				for _, a := range []string{engine.EventMessageIn, engine.EventMessageOut, engine.EventStepChange, engine.EventLinkIssued, engine.EventHandoff,
					engine.EventEnded, audit.KeyRotation} {
					if !actions[a] {
						t.Errorf("no %s record in the audit log", a)
					}
				}
			})

			tamper := []struct {
				name     string
				tamper   func(t *testing.T, s *store.Store, records []audit.Record)
				wantSeq  func(records []audit.Record) int64
				wantKind string
				wantMsg  string
			}{
				{
					name: "EditedField",
					tamper: func(t *testing.T, s *store.Store, _ []audit.Record) {
						execSQL(t, s, `UPDATE audit_log SET reason = 'nothing to see' WHERE seq = 5`)
					},
					wantSeq: func([]audit.Record) int64 { return 5 }, wantKind: audit.KindEdited,
					wantMsg: "audit record 5 was edited: its hash does not match its contents",
				},
				{
					name: "DeletedMiddleRecord",
					tamper: func(t *testing.T, s *store.Store, _ []audit.Record) {
						execSQL(t, s, `DELETE FROM audit_log WHERE seq = 5`)
					},
					wantSeq: func([]audit.Record) int64 { return 5 }, wantKind: audit.KindDeleted,
					wantMsg: "audit record 5 was deleted: record 6 points to a record that is missing",
				},
				{
					name: "DeletedLastRecord",
					tamper: func(t *testing.T, s *store.Store, r []audit.Record) {
						execSQL(t, s, `DELETE FROM audit_log WHERE seq = ?`, len(r))
					},
					wantSeq: func(r []audit.Record) int64 { return int64(len(r)) }, wantKind: audit.KindDeleted,
					wantMsg: "but ends at record",
				},
				{
					name: "InsertedForgedRecord",
					tamper: func(t *testing.T, s *store.Store, r []audit.Record) {
						// A forged record chained properly after the last one:
						// only the head shows that safeflow did not write it.
						forged := audit.Record{Time: time.Now(), Actor: audit.Actor{Type: audit.ActorAgent, ID: "mallory", Role: "admin"},
							Action: audit.Login, Outcome: audit.OutcomeOK}
						audit.Chain(&r[len(r)-1], &forged)
						insertAudit(t, s, forged)
					},
					wantSeq: func(r []audit.Record) int64 { return int64(len(r) + 1) }, wantKind: audit.KindInserted,
					wantMsg: "was inserted: it comes after record",
				},
				{
					name: "InsertedRecordBeforeTheFirst",
					tamper: func(t *testing.T, s *store.Store, r []audit.Record) {
						forged := audit.Record{Seq: 0, Time: time.Now(), Actor: audit.Actor{Type: audit.ActorSystem},
							Action: audit.FlowReload, Outcome: audit.OutcomeOK, PrevHash: make([]byte, audit.HashSize)}
						forged.Hash = forged.ComputeHash()
						insertAudit(t, s, forged)
					},
					wantSeq: func([]audit.Record) int64 { return 0 }, wantKind: audit.KindInserted,
					wantMsg: "audit record 0 was inserted",
				},
				{
					name: "LastRecordRewrittenWithNewHash",
					tamper: func(t *testing.T, s *store.Store, r []audit.Record) {
						last := r[len(r)-1]
						last.Outcome, last.Reason = audit.OutcomeDenied, "rewritten"
						last.Hash = last.ComputeHash()
						execSQL(t, s, `UPDATE audit_log SET outcome = ?, reason = ?, hash = ? WHERE seq = ?`,
							last.Outcome, last.Reason, last.Hash, last.Seq)
					},
					wantSeq: func(r []audit.Record) int64 { return int64(len(r)) }, wantKind: audit.KindEdited,
					wantMsg: "not the one recorded at the head of the log",
				},
			}
			for _, tt := range tamper {
				t.Run(tt.name, func(t *testing.T) {
					s, _ := b.open(t, newRing(t))
					storetest.Play(t.Context(), t, s, storetest.Examples(t), storetest.Scripts()[0])
					chainAudit(t, s)
					records, err := s.AuditRecords(t.Context(), time.Time{})
					if err != nil {
						t.Fatal(err)
					}
					if len(records) < 10 {
						t.Fatalf("only %d audit records", len(records))
					}
					dropAuditGuards(t, s)
					tt.tamper(t, s, records)
					p, err := s.VerifyAudit(t.Context())
					if err != nil {
						t.Fatal(err)
					}
					if p == nil {
						t.Fatal("VerifyAudit found nothing wrong")
					}
					if want := tt.wantSeq(records); p.Seq != want || p.Kind != tt.wantKind {
						t.Errorf("problem = record %d %s, want record %d %s (%v)", p.Seq, p.Kind, want, tt.wantKind, p)
					}
					if !strings.Contains(p.Error(), tt.wantMsg) {
						t.Errorf("problem %q does not say %q", p.Error(), tt.wantMsg)
					}
				})
			}
		})
	}
}

// TestAuditLogRefusesChanges shows that the append-only guard stops even
// those who own the table: on SQLite, anyone; on PostgreSQL the test's
// superuser, who owns the tables and bypasses every privilege check.
func TestAuditLogRefusesChanges(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s, _ := b.open(t, newRing(t))
			storetest.Play(t.Context(), t, s, storetest.Examples(t), storetest.Scripts()[0])
			chainAudit(t, s)
			statements := []struct{ op, query string }{
				{"UPDATE", `UPDATE audit_log SET reason = 'x' WHERE seq = 1`},
				{"DELETE", `DELETE FROM audit_log WHERE seq = 1`},
				{"DELETE", `DELETE FROM audit_log`},
			}
			if s.Postgres() {
				statements = append(statements, struct{ op, query string }{"TRUNCATE", `TRUNCATE audit_log`})
			}
			for _, st := range statements {
				t.Run(st.query, func(t *testing.T) {
					_, err := s.DB().ExecContext(t.Context(), st.query)
					want := "the audit log is append-only: " + st.op + " is not allowed"
					if err == nil || !strings.Contains(err.Error(), want) {
						t.Fatalf("%s: error %v, want %q", st.query, err, want)
					}
				})
			}
			// A record not yet chained cannot be edited either.
			writePending(t, s, 1)
			execSQL(t, s, `INSERT INTO audit_pending (at, actor_type, actor_id, actor_role, source, action, object, conversation_id,
				channel, outcome, reason, request_id) VALUES (1, 'system', '', '', '', 'flow.reload', '', '', '', 'ok', '', '')`)
			_, err := s.DB().ExecContext(t.Context(), `UPDATE audit_pending SET reason = 'x'`)
			if want := "pending audit records cannot be changed: UPDATE is not allowed"; err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("UPDATE audit_pending: error %v, want %q", err, want)
			}
			if p, err := s.VerifyAudit(t.Context()); p != nil || err != nil {
				t.Errorf("VerifyAudit after refused changes = %v, %v", p, err)
			}
		})
	}
}

// TestSecondOpenConversationIsRefused holds the SQL stores to the rule the
// engine relies on: a contact has one open conversation at a time.
func TestSecondOpenConversationIsRefused(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s, _ := b.open(t, newRing(t))
			ctx := t.Context()
			contact := &engine.Contact{Channel: engine.SMS, Address: "+15550013333"}
			newConv := func() *engine.Conversation {
				return &engine.Conversation{ContactID: contact.ID, FlowID: "intake", Step: "welcome", Status: engine.Active,
					Origin: engine.SMS, Address: contact.Address}
			}
			if err := s.Tx(ctx, func(tx engine.Tx) error {
				if err := tx.SaveContact(ctx, contact); err != nil {
					return err
				}
				return tx.SaveConversation(ctx, newConv())
			}); err != nil {
				t.Fatal(err)
			}
			err := s.Tx(ctx, func(tx engine.Tx) error { return tx.SaveConversation(ctx, newConv()) })
			if err == nil || !strings.Contains(err.Error(), "already has another open conversation") {
				t.Fatalf("second open conversation: %v, want a refusal that says why", err)
			}
		})
	}
}

// docsGrants returns the SQL block of docs/operations.md that grants the
// service role its privileges.
func docsGrants(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	const marker = "<!-- service-role-grants"
	_, rest, ok := strings.Cut(string(data), marker)
	if !ok {
		t.Fatalf("docs/operations.md has no %s ... --> marker", marker)
	}
	_, rest, ok = strings.Cut(rest, "```sql\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 || strings.TrimSpace(block) == "" {
		t.Fatal("docs/operations.md has no sql block after the service-role-grants marker")
	}
	return block
}

// asRole returns dsn with its user replaced by role.
func asRole(t *testing.T, dsn, role string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	return u.String()
}

func pqCode(err error) pq.ErrorCode {
	var pe *pq.Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// TestPostgresServiceRole installs safeflow the way docs/operations.md says:
// a database owned by safeflow_owner, which runs the migrations, and a
// service role, safeflow_service, that owns nothing and has the documented
// grants. The service runs whole conversations, may append to the audit log
// but not change or remove a record; the owner is stopped by the trigger.
func TestPostgresServiceRole(t *testing.T) {
	ctx := t.Context()
	super, superURL := openPostgres(t, newRing(t)) // skips, or fails in CI, without a server
	dbName := strings.TrimPrefix(mustParse(t, superURL).Path, "/")
	// Roles belong to the whole server: create them once.
	execSQL(t, super, `DO $$ BEGIN
		IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'safeflow_owner') THEN CREATE ROLE safeflow_owner LOGIN; END IF;
		IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'safeflow_service') THEN CREATE ROLE safeflow_service LOGIN; END IF;
		IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'safeflow_other') THEN CREATE ROLE safeflow_other LOGIN; END IF;
	END $$`)

	// A second, empty database owned by safeflow_owner, as the docs say.
	admin, err := sql.Open("postgres", superURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ownedDB := dbName + "_owned"
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(ownedDB)+" OWNER safeflow_owner"); err != nil {
		t.Fatal(err)
	}
	u := mustParse(t, superURL)
	u.Path = "/" + ownedDB
	ownerURL, serviceURL := asRole(t, u.String(), "safeflow_owner"), asRole(t, u.String(), "safeflow_service")
	otherURL := asRole(t, u.String(), "safeflow_other")

	ring := newRing(t)
	owner := openDSN(t, ownerURL, ring) // the migrations run as the owner
	execSQL(t, owner, docsGrants(t))

	service := openDSN(t, serviceURL, ring) // no migration pending: nothing to create
	played := playAll(t, service)
	if len(played) != len(storetest.Scripts()) {
		t.Fatal("not every script ran")
	}

	t.Run("OtherRolesCannotChain", func(t *testing.T) {
		// Functions are open to every role unless revoked: a role of the
		// server's that was given nothing may not call these.
		other, err := sql.Open("postgres", otherURL)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		for _, q := range []string{`SELECT seq FROM audit_chain_head()`, `SELECT audit_chain('{}', '{}', '{}', '{}')`} {
			_, err := other.ExecContext(ctx, q)
			if pqCode(err) != "42501" || !strings.Contains(fmt.Sprint(err), "permission denied for function audit_chain") {
				t.Errorf("%s as another role: error %v, want permission denied", q, err)
			}
		}
	})

	t.Run("PendingRecordsCannotBeChangedOrRemoved", func(t *testing.T) {
		// Records written and not yet chained, as in the moment before the
		// service's chainer runs.
		writePending(t, service, 3)
		for _, q := range []string{`UPDATE audit_pending SET reason = 'x'`, `DELETE FROM audit_pending`, `TRUNCATE audit_pending`} {
			_, err := service.DB().ExecContext(ctx, q)
			if pqCode(err) != "42501" || !strings.Contains(fmt.Sprint(err), "permission denied for table audit_pending") {
				t.Errorf("%s as the service: error %v, want permission denied", q, err)
			}
		}
		// Not even the owner edits one.
		for _, q := range []string{`UPDATE audit_pending SET reason = 'x'`, `TRUNCATE audit_pending`} {
			_, err := owner.DB().ExecContext(ctx, q)
			if !strings.Contains(fmt.Sprint(err), "pending audit records cannot be changed") {
				t.Errorf("%s as the owner: error %v, want the trigger's refusal", q, err)
			}
		}
		if n := countRows(t, service, "audit_pending"); n != 3 {
			t.Fatalf("%d pending records, want the 3 written", n)
		}
		before := countRows(t, service, "audit_log")
		if n, err := service.ChainAudit(ctx); err != nil || n != 3 {
			t.Fatalf("the service chained %d (%v), want 3", n, err)
		}
		if p, l := countRows(t, service, "audit_pending"), countRows(t, service, "audit_log"); p != 0 || l != before+3 {
			t.Errorf("after chaining: %d pending, %d in the log; want 0 and %d", p, l, before+3)
		}
	})

	t.Run("AuditChainRefusesWhatDoesNotContinueTheChain", func(t *testing.T) {
		id, head := onePending(t, service)
		hash := make([]byte, audit.HashSize)
		cases := []struct {
			name      string
			seq       int64
			prev      []byte
			wantError string
		}{
			{"NumberSkipsAhead", head.Seq + 5, head.Hash, fmt.Sprintf("would be number %d, but the log's head is at %d", head.Seq+5, head.Seq)},
			{"NumberGoesBack", head.Seq, head.Hash, "but the log's head is at"},
			{"PointsElsewhere", head.Seq + 1, hash, fmt.Sprintf("record %d does not point to the record before it", head.Seq+1)},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				_, err := service.DB().ExecContext(ctx, `SELECT audit_chain($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[])`,
					pq.Array([]int64{id}), pq.Array([]int64{c.seq}), pq.Array([][]byte{c.prev}), pq.Array([][]byte{hash}))
				if !strings.Contains(fmt.Sprint(err), c.wantError) {
					t.Fatalf("error %v, want %q", err, c.wantError)
				}
			})
		}
		if n := countRows(t, service, "audit_pending"); n != 1 {
			t.Errorf("%d pending records after the refusals, want 1", n)
		}
		chainAudit(t, service)
	})

	t.Run("WithoutTheGrantsTheChainerSaysWhatToDoAndTriesAgain", func(t *testing.T) {
		// An upgrade to migration 14 whose grants were not run again.
		execSQL(t, owner, `REVOKE EXECUTE ON FUNCTION audit_chain_head() FROM safeflow_service`)
		writePending(t, service, 2)
		_, err := service.ChainAudit(ctx)
		if !errors.Is(err, store.ErrChainPrivileges) || !strings.Contains(err.Error(), "docs/operations.md") {
			t.Fatalf("ChainAudit without the grant: %v, want ErrChainPrivileges naming the docs", err)
		}
		reports := make(chan error, 100)
		run, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- service.RunAuditChainer(run, 20*time.Millisecond, func(err error) {
				select {
				case reports <- err:
				default:
				}
			})
		}()
		for range 2 { // it reports, and goes on
			if err := <-reports; !errors.Is(err, store.ErrChainPrivileges) {
				t.Fatalf("the chainer reported %v", err)
			}
		}
		if n := countRows(t, service, "audit_pending"); n != 2 {
			t.Fatalf("%d records pending while chaining fails, want the 2 written", n)
		}
		execSQL(t, owner, `GRANT EXECUTE ON FUNCTION audit_chain_head() TO safeflow_service`)
		deadline := time.Now().Add(5 * time.Second)
		for countRows(t, service, "audit_pending") != 0 {
			if time.Now().After(deadline) {
				t.Fatal("the chainer did not chain the records once the grant was back")
			}
			time.Sleep(10 * time.Millisecond)
		}
		stop()
		if err := <-done; err != nil {
			t.Fatalf("the chainer's last round: %v", err)
		}
	})

	t.Run("ServiceMayAppendToTheAuditLog", func(t *testing.T) {
		err := service.Audit(ctx, audit.Record{Actor: audit.Actor{Type: audit.ActorAgent, ID: "u1", Role: "admin"},
			Action: audit.Login, Outcome: audit.OutcomeOK})
		if err != nil {
			t.Fatalf("append as the service: %v", err)
		}
		if p, err := service.VerifyAudit(ctx); p != nil || err != nil {
			t.Fatalf("VerifyAudit as the service = %v, %v", p, err)
		}
	})

	refused := []struct {
		name  string
		as    *store.Store
		query string
		code  pq.ErrorCode
		want  string
	}{
		{"ServiceCannotUpdate", service, `UPDATE audit_log SET reason = 'x' WHERE seq = 1`, "42501", "permission denied for table audit_log"},
		{"ServiceCannotDelete", service, `DELETE FROM audit_log WHERE seq = 1`, "42501", "permission denied for table audit_log"},
		{"ServiceCannotTruncate", service, `TRUNCATE audit_log`, "42501", "permission denied for table audit_log"},
		{"ServiceCannotDisableTheTrigger", service, `ALTER TABLE audit_log DISABLE TRIGGER ALL`, "42501", "must be owner of table audit_log"},
		{"ServiceCannotRewriteMigrations", service, `DELETE FROM goose_db_version`, "42501", "permission denied for table goose_db_version"},
		{"ServiceCannotCreateTables", service, `CREATE TABLE audit_log_copy (seq BIGINT)`, "42501", "permission denied for schema public"},
		{"OwnerHasNoUpdatePrivilege", owner, `UPDATE audit_log SET reason = 'x' WHERE seq = 1`, "42501", "permission denied for table audit_log"},
		// Audit records reach the log only through the owner's functions.
		{"ServiceCannotWriteTheLog", service, `INSERT INTO audit_log SELECT * FROM audit_log WHERE seq = 1`, "42501", "permission denied for table audit_log"},
		{"ServiceCannotMoveTheHead", service, `UPDATE audit_head SET seq = 0`, "42501", "permission denied for table audit_head"},
		{"ServiceCannotLockTheHeadByHand", service, `SELECT seq FROM audit_head FOR UPDATE`, "42501", "permission denied for table audit_head"},
	}
	for _, r := range refused {
		t.Run(r.name, func(t *testing.T) {
			_, err := r.as.DB().ExecContext(ctx, r.query)
			if pqCode(err) != r.code || !strings.Contains(fmt.Sprint(err), r.want) {
				t.Fatalf("%s: error %v, want %s %q", r.query, err, r.code, r.want)
			}
		})
	}

	// The owner can grant itself the privileges back; the trigger still
	// stops it.
	execSQL(t, owner, `GRANT UPDATE, DELETE, TRUNCATE ON audit_log TO safeflow_owner`)
	for _, st := range []struct{ op, query string }{
		{"UPDATE", `UPDATE audit_log SET reason = 'x' WHERE seq = 1`},
		{"DELETE", `DELETE FROM audit_log WHERE seq = 1`},
		{"TRUNCATE", `TRUNCATE audit_log`},
	} {
		t.Run("TriggerStopsOwner"+st.op, func(t *testing.T) {
			_, err := owner.DB().ExecContext(ctx, st.query)
			if want := "the audit log is append-only: " + st.op + " is not allowed"; !strings.Contains(fmt.Sprint(err), want) {
				t.Fatalf("%s as the owner: error %v, want %q", st.query, err, want)
			}
		})
	}
	if p, err := owner.VerifyAudit(ctx); p != nil || err != nil {
		t.Errorf("VerifyAudit at the end = %v, %v", p, err)
	}

	// What audit_chain lets through, a hash that does not match the record,
	// verify names.
	// The call comes from a session that shadows the audit tables with
	// temporary tables of its own: the owner's function must still use the
	// real ones, or it would move the record where no one looks.
	t.Run("TemporaryTablesDoNotShadowTheLogAndAWrongHashIsNamed", func(t *testing.T) {
		id, head := onePending(t, service)
		conn, err := service.DB().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for _, table := range []string{"audit_log"} {
			// Granted to all, so that the owner's function could use them.
			if _, err := conn.ExecContext(ctx, `CREATE TEMP TABLE `+table+` (LIKE `+table+`); GRANT ALL ON pg_temp.`+table+` TO PUBLIC`); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := conn.ExecContext(ctx, `SELECT audit_chain($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[])`,
			pq.Array([]int64{id}), pq.Array([]int64{head.Seq + 1}), pq.Array([][]byte{head.Hash}), pq.Array([][]byte{make([]byte, audit.HashSize)})); err != nil {
			t.Fatal(err)
		}
		var shadowed int
		if err := conn.QueryRowContext(ctx, `SELECT COUNT(*) FROM pg_temp.audit_log`).Scan(&shadowed); err != nil || shadowed != 0 {
			t.Errorf("the function wrote %d rows into the caller's temporary tables (%v)", shadowed, err)
		}
		p, err := owner.VerifyAudit(ctx)
		if err != nil || p == nil || p.Seq != head.Seq+1 || p.Kind != audit.KindEdited {
			t.Fatalf("VerifyAudit = %v, %v; want record %d named as edited", p, err, head.Seq+1)
		}
	})
}

// onePending writes one audit record, leaves it pending (PostgreSQL), and
// returns its id in audit_pending and the log's head.
func onePending(t *testing.T, s *store.Store) (int64, audit.Record) {
	t.Helper()
	writePending(t, s, 1)
	var id int64
	var head audit.Record
	if err := s.DB().QueryRowContext(t.Context(), `SELECT id FROM audit_pending`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if err := s.DB().QueryRowContext(t.Context(), `SELECT seq, hash FROM audit_head`).Scan(&head.Seq, &head.Hash); err != nil {
		t.Fatal(err)
	}
	return id, head
}

// writePending writes n audit records in one transaction of the store's,
// as a message does, and leaves them unchained (PostgreSQL).
func writePending(t *testing.T, s *store.Store, n int) {
	t.Helper()
	events := make([]engine.Event, n)
	for i := range events {
		events[i] = engine.Event{Actor: "system", Action: engine.EventStepChange, Object: fmt.Sprintf("step-%d", i), Outcome: "ok", At: time.Now()}
	}
	if err := s.Tx(t.Context(), func(tx engine.Tx) error { return tx.Append(t.Context(), nil, nil, events) }); err != nil {
		t.Fatal(err)
	}
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestMigrate(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Run("OpenTwiceKeepsDataAndSchema", func(t *testing.T) {
				ring := newRing(t)
				s, dsn := b.open(t, ring)
				dsn = reopenable(s, dsn)
				storetest.Play(t.Context(), t, s, storetest.Examples(t), storetest.Scripts()[0])
				chainAudit(t, s)
				before := schemaVersion(t, s)
				if err := s.Migrate(t.Context()); err != nil {
					t.Fatalf("Migrate on an up-to-date database: %v", err)
				}
				again := openDSN(t, dsn, ring)
				if v := schemaVersion(t, again); v != before {
					t.Errorf("schema version %d after a second Open, want %d", v, before)
				}
				var contacts int
				if err := again.DB().GetContext(t.Context(), &contacts, `SELECT COUNT(*) FROM contacts`); err != nil || contacts != 1 {
					t.Errorf("contacts after a second Open = %d, %v; want 1", contacts, err)
				}
				if p, err := again.VerifyAudit(t.Context()); p != nil || err != nil {
					t.Errorf("VerifyAudit after a second Open = %v, %v", p, err)
				}
			})
			t.Run("NewerSchemaIsRefused", func(t *testing.T) {
				ring := newRing(t)
				s, dsn := b.open(t, ring)
				dsn = reopenable(s, dsn)
				known := schemaVersion(t, s)
				execSQL(t, s, `INSERT INTO goose_db_version (version_id, is_applied) VALUES (?, ?)`, 999, true)
				s.Close()
				_, err := store.Open(t.Context(), dsn, ring)
				want := fmt.Sprintf("its schema is at version 999, but this safeflow knows versions up to %d only", known)
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("Open = %v, want an error saying %q", err, want)
				}
			})
			t.Run("FailedMigrationIsNamed", func(t *testing.T) {
				driver, dsn := "sqlite", filepath.Join(t.TempDir(), "taken.db")
				if b.name == "PostgreSQL" {
					driver, dsn = "postgres", pgtest.Shared(t).CreateDB(t, "")
				}
				// A database that already has a contacts table of its own.
				db, err := sql.Open(driver, dsn)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := db.ExecContext(t.Context(), `CREATE TABLE contacts (name TEXT)`); err != nil {
					t.Fatal(err)
				}
				db.Close()
				_, err = store.Open(t.Context(), dsn, newRing(t))
				if err == nil || !strings.Contains(err.Error(), "migration 00001_init.sql failed") ||
					!strings.Contains(err.Error(), "contacts") {
					t.Fatalf("Open = %v, want an error naming 00001_init.sql and the contacts table", err)
				}
			})
		})
	}

	errorCases := []struct {
		name string
		dsn  string
		ring *seal.Ring
		want []string
		not  string
	}{
		{name: "NoRing", dsn: "sqlite:" + filepath.Join(os.TempDir(), "never-created.db"), want: []string{"no key ring"}},
		{name: "NoDatabase", dsn: "", ring: mustRing(t), want: []string{"no database given"}},
		{name: "SQLiteFolderMissing", dsn: "sqlite:/nonexistent-safeflow-dir/x/safeflow.db", ring: mustRing(t),
			want: []string{"open store: SQLite file /nonexistent-safeflow-dir/x/safeflow.db: cannot create it: its folder /nonexistent-safeflow-dir/x does not exist"}},
		{name: "PostgresUnreachable", dsn: "postgres://safeflow:s3cret-pass@127.0.0.1:1/safeflow?sslmode=disable&connect_timeout=2",
			ring: mustRing(t), want: []string{"open store", "127.0.0.1:1"}, not: "s3cret-pass"},
	}
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := store.Open(t.Context(), tc.dsn, tc.ring)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if tc.not != "" && strings.Contains(err.Error(), tc.not) {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func mustRing(t *testing.T) *seal.Ring { return newRing(t) }

// reopenable turns what a backend's open returned into a DSN for Open.
func reopenable(s *store.Store, dsn string) string {
	if s.Postgres() {
		return dsn
	}
	return "sqlite:" + dsn
}

func schemaVersion(t *testing.T, s *store.Store) int64 {
	t.Helper()
	var v int64
	if err := s.DB().GetContext(t.Context(), &v, `SELECT MAX(version_id) FROM goose_db_version`); err != nil {
		t.Fatal(err)
	}
	return v
}

// sameTokenIssuer hands every conversation the same token, so that the
// second link cannot be stored.
type sameTokenIssuer struct{}

func (sameTokenIssuer) IssueLink(ctx context.Context, tx engine.Tx, conv *engine.Conversation, ttl time.Duration) (string, error) {
	hash := sha256.Sum256([]byte("one token for everyone"))
	err := tx.SaveLink(ctx, engine.SecureLink{TokenHash: hash[:], ConversationID: conv.ID, ContactID: conv.ContactID,
		Created: storetest.Epoch, Expires: storetest.Epoch.Add(ttl)})
	if err != nil {
		return "", err
	}
	return "https://secure.clinic.test/s/same", nil
}

// TestFailedLinkSaveKeepsTheFallback checks that a link the store cannot
// save leaves the transaction usable, so that the engine's fallback (a
// person takes over) is committed. On PostgreSQL a failed statement would
// otherwise abort the whole transaction and lose the patient's message.
func TestFailedLinkSaveKeepsTheFallback(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			s, _ := b.open(t, newRing(t))
			eng := engine.New(storetest.Examples(t), s, engine.WithClock(func() time.Time { return storetest.Epoch }),
				engine.WithLinkIssuer(sameTokenIssuer{}), engine.WithLocation(storetest.Clinic))
			var conv string
			for i, addr := range []string{"+15550014444", "+15550015555"} {
				for j, text := range []string{"SICK", "my child"} {
					res, err := eng.Handle(ctx, engine.Inbound{Channel: engine.SMS, Address: addr, Text: text,
						ProviderID: fmt.Sprintf("link-%d-%d", i, j)})
					if err != nil {
						t.Fatalf("contact %d, %q: %v", i+1, text, err)
					}
					conv = res.Conversation.ID
				}
			}
			c := storetest.Load(ctx, t, s, conv)
			if c.Status != engine.HandedOff || c.Queue != "front-desk" {
				t.Errorf("second conversation is %s (queue %q), want handed off to front-desk", c.Status, c.Queue)
			}
			records, err := s.AuditRecords(ctx, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			var outcomes []string
			for _, r := range records {
				if r.Action == engine.EventLinkIssued {
					outcomes = append(outcomes, r.Outcome)
				}
			}
			if want := []string{"ok", "failed"}; !slices.Equal(outcomes, want) {
				t.Errorf("link.issued outcomes = %q, want %q", outcomes, want)
			}
		})
	}
}

// TestPanicInTransactionRollsBack checks that a panic in a transaction's
// function rolls it back and frees its connection: SQLite has only one, and
// a transaction left open would stop the whole service.
func TestPanicInTransactionRollsBack(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s, _ := b.open(t, newRing(t))
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			func() {
				defer func() {
					if recover() == nil {
						t.Fatal("the panic did not come through Tx")
					}
				}()
				s.Tx(ctx, func(tx engine.Tx) error {
					if _, err := tx.MarkInbound(ctx, engine.SMS, "SM-panic"); err != nil {
						return err
					}
					panic("handler bug")
				})
			}()
			var fresh bool
			err := s.Tx(ctx, func(tx engine.Tx) error {
				var err error
				fresh, err = tx.MarkInbound(ctx, engine.SMS, "SM-panic")
				return err
			})
			if err != nil {
				t.Fatalf("the next transaction: %v", err)
			}
			if !fresh {
				t.Error("the mark made before the panic was kept")
			}
		})
	}
}

// chainAudit chains the pending audit records, as a running service's
// chainer does within a second.
func chainAudit(t *testing.T, s *store.Store) {
	t.Helper()
	if _, err := s.ChainAudit(t.Context()); err != nil {
		t.Fatalf("chain the audit log: %v", err)
	}
}
