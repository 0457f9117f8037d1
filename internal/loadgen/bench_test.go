package loadgen

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/safeflow/safeflow/internal/pgtest"
)

func TestParseDatabases(t *testing.T) {
	tests := []struct {
		Label, In string
		Expected  []string
		Err       bool
	}{
		{"SQLite", "sqlite", []string{SQLite}, false},
		{"Postgres", "postgres", []string{Postgres}, false},
		{"PgShortHand", "PG", []string{Postgres}, false},
		{"Both", "both", []string{SQLite, Postgres}, false},
		{"EmptyIsBoth", "", []string{SQLite, Postgres}, false},
		{"Unknown", "mysql", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.Label, func(t *testing.T) {
			got, err := ParseDatabases(tt.In)
			if (err != nil) != tt.Err || !slices.Equal(got, tt.Expected) {
				t.Errorf("ParseDatabases(%q) = %v, %v", tt.In, got, err)
			}
			if err != nil && !strings.Contains(err.Error(), "sqlite, postgres or both") {
				t.Errorf("error %q does not say what to choose", err)
			}
		})
	}
}

// TestBenchMeasuresEveryPhase runs a very short bench on both databases and
// checks that every figure of the report was measured and printed.
func TestBenchMeasuresEveryPhase(t *testing.T) {
	pg := pgtest.Shared(t)
	var progress strings.Builder
	rep, err := Bench(context.Background(), BenchConfig{
		Databases: []string{SQLite, Postgres}, Contacts: 2, Duration: 300 * time.Millisecond, Warmup: 200 * time.Millisecond,
		FlowsDir: examplesDir, SQLiteDir: t.TempDir(), Progress: &progress, ProviderLatency: 2 * time.Millisecond,
		Postgres: func(_ context.Context, name string) (string, error) { return pg.CreateDB(t, ""), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		var b strings.Builder
		rep.Write(&b)
		t.Fatalf("the bench saw failures:\n%s", b.String())
	}
	if rep.HTTP.Rate() <= 0 {
		t.Errorf("HTTP ceiling rate %v", rep.HTTP.Rate())
	}
	if len(rep.Rows) != 2 {
		t.Fatalf("%d rows, want sqlite and postgres", len(rep.Rows))
	}
	for _, row := range rep.Rows {
		for name, res := range map[string]*Result{"e2e": row.E2E, "delivery": row.Delivery, "raw": row.Raw, "paced": row.Paced} {
			if res == nil || res.Messages == 0 {
				t.Errorf("%s %s: nothing measured", row.DB, name)
			}
		}
		// Every measured webhook that expects a reply had its first reply
		// timed, in the runs whose replies are delivered and paced.
		for name, c := range map[string]struct {
			res     *Result
			replies Latencies
		}{"delivery": {row.Delivery, row.DeliveryReply}, "paced": {row.Paced, row.PacedReply}} {
			if len(c.replies) == 0 || len(c.replies) > c.res.Messages || c.replies.Percentile(0) <= 0 {
				t.Errorf("%s %s: %d reply times (fastest %v) for %d webhooks; want one per webhook that expects a reply",
					row.DB, name, len(c.replies), c.replies.Percentile(0), c.res.Messages)
			}
		}
		if row.DeliveredRate <= 0 {
			t.Errorf("%s: delivered %v replies a second", row.DB, row.DeliveredRate)
		}
		if want := row.E2E.Rate() / 2; row.PacedRate != want {
			t.Errorf("%s: paced at %v, want half the peak %v", row.DB, row.PacedRate, want)
		}
		if (row.Waits != nil) != (row.DB == Postgres) {
			t.Errorf("%s: backends sampled = %v; want them on PostgreSQL only", row.DB, row.Waits != nil)
		}
		if (row.WriterCommits > 0) != (row.DB == SQLite) || (row.DB == SQLite && row.WriterTx < int64(row.E2E.Messages)) {
			t.Errorf("%s: the writer ran %d transactions in %d commits for %d webhooks; want them counted on SQLite only, at least one a webhook",
				row.DB, row.WriterTx, row.WriterCommits, row.E2E.Messages)
		}
		if (row.Trips != nil) != (row.DB == Postgres) {
			t.Errorf("%s: round trips counted = %v; want them on PostgreSQL only", row.DB, row.Trips != nil)
		}
		// Round trips are divided by every webhook that made them: the
		// census has no warm-up to leave out.
		if row.DB == Postgres && (row.TripRun.WarmupMessages != 0 || row.TripMessages != row.TripRun.Messages || row.TripMessages == 0) {
			t.Errorf("round trips counted over %d webhooks, of a run with %d warm-up and %d measured; want every webhook of a run without warm-up",
				row.TripMessages, row.TripRun.WarmupMessages, row.TripRun.Messages)
		}
		// A message writes many rows (transcript, outbox, audit records
		// written and moved): more than the raw transaction's two, fewer
		// than fifty.
		if per := float64(row.TripRows) / float64(row.TripMessages+row.TripStarts); row.DB == Postgres && (per < 4 || per > 50) {
			t.Errorf("census: %d rows written for %d webhooks and %d starts (%.1f each); want between 4 and 50 each",
				row.TripRows, row.TripMessages, row.TripStarts, per)
		}
		// Every webhook and clinic start of the census was one engine
		// transaction, on PostgreSQL tried without locks first.
		if row.DB == Postgres && (row.TripUnlocked == 0 || row.TripUnlocked+row.TripFallbacks != int64(row.TripMessages+row.TripStarts)) {
			t.Errorf("census: %d written without locks and %d under locks, of %d webhooks and %d starts; want each once, most without",
				row.TripUnlocked, row.TripFallbacks, row.TripMessages, row.TripStarts)
		}
		if row.E2ECPU == nil || row.RawCPU == nil || row.E2ECPU.Self <= 0 {
			t.Errorf("%s: CPU time %+v and %+v; want both read", row.DB, row.E2ECPU, row.RawCPU)
		}
		for name, res := range map[string]*Result{"e2e": row.E2E, "paced": row.Paced} {
			if res.WarmupMessages == 0 {
				t.Errorf("%s %s: no warm-up traffic", row.DB, name)
			}
		}
	}
	var out strings.Builder
	rep.Write(&out)
	for _, want := range []string{
		"e2e msgs/s", "HTTP ceiling msgs/s", "raw DB tx/s", "e2e/raw", "e2e/HTTP",
		"sqlite", "postgres", "With real delivery", "Paced", "Goals:", "round trips per message",
		"waiting for a store connection", "its one writer ran", "busy backends", "transactions)", "written without locks", "Rows written", "CPU time per message",
		"Every webhook was answered 200", "answering after 2ms", "replies/s", "reply p50", "reply p99",
		"CPUs leave", "per message for everything",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(progress.String(), "postgres: counting round trips") {
		t.Errorf("progress lacks the round-trip phase:\n%s", progress.String())
	}
}

func TestBenchWithoutPostgresSaysSo(t *testing.T) {
	_, err := Bench(context.Background(), BenchConfig{
		Databases: []string{Postgres}, Contacts: 1, Duration: 100 * time.Millisecond, FlowsDir: examplesDir,
	})
	if err == nil || !strings.Contains(err.Error(), "no PostgreSQL database") {
		t.Errorf("Bench = %v, want an error saying no PostgreSQL is available", err)
	}
}

func TestReportShowsProblems(t *testing.T) {
	ok := func() *Result {
		return &Result{Messages: 10, Elapsed: time.Second, Latency: NewLatencies(ms(1, 2, 3))}
	}
	bad := ok()
	bad.Failed, bad.FirstError = 3, errString("webhook: HTTP 500")
	fastRaw := ok()
	fastRaw.Messages = 100 // ten times the end-to-end rate: a missed goal
	rep := &BenchReport{Contacts: 1, Duration: time.Second, HTTP: ok(), Rows: []*BenchRow{{
		DB: SQLite, E2E: bad, Delivery: ok(), Raw: fastRaw, Paced: ok(), PacedRate: 5,
		E2ECheck: Verification{Contacts: 2, Complete: 2}, DeliveryChk: Verification{Contacts: 2, Complete: 1, Missing: 1},
		PacedCheck: Verification{Contacts: 1, Complete: 1},
	}}}
	if rep.OK() {
		t.Error("OK with failed webhooks and missing replies")
	}
	var out strings.Builder
	rep.Write(&out)
	for _, want := range []string{"PROBLEMS", "sqlite e2e: 3 failed, first: webhook: HTTP 500", "sqlite delivery: 1 of 2 contacts", "e2e/raw 0.10, goal >= 0.8: MISSED"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report lacks %q:\n%s", want, out.String())
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// The goals say what a throughput goal leaves each message, next to what
// HTTP, the raw transaction and the message cost in the same run.
func TestBudgetSetsTheGoalAgainstTheRun(t *testing.T) {
	cpus := runtime.NumCPU()
	r := &BenchReport{HTTP: &Result{Messages: 10000, Elapsed: time.Second}}
	row := &BenchRow{DB: Postgres,
		E2E: &Result{Messages: 900, WarmupMessages: 100}, E2ECPU: &CPUUse{Self: 600 * time.Millisecond, Server: 900 * time.Millisecond},
		Raw: &Result{Messages: 1000, Elapsed: time.Second}, RawCPU: &CPUUse{Self: 300 * time.Millisecond, Server: 200 * time.Millisecond}}
	got := r.budget(row, 1.0)
	want := fmt.Sprintf("at 1.0x raw (1000 msgs/s), %d CPUs leave %d µs per message for everything; HTTP alone takes about %d µs, "+
		"the raw transaction 500 µs; a message took 1500 µs", cpus, cpus*1000, cpus*100)
	if got != want {
		t.Errorf("budget:\n got %s\nwant %s", got, want)
	}
	row.E2ECPU = nil
	if got := r.budget(row, 1.0); got != "" {
		t.Errorf("budget without CPU times: %q, want nothing", got)
	}
}
