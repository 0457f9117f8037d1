package loadgen

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/safeflow/safeflow/channels/twilio/twiliotest"
	"github.com/safeflow/safeflow/internal/pgtest"
)

func TestEchoAnswersWebhooksOnly(t *testing.T) {
	echo := startEcho(t)
	tests := []struct {
		Label    string
		Request  func() (*http.Response, error)
		Expected int
	}{
		{"SignedWebhookIs200", func() (*http.Response, error) {
			req := twiliotest.SignedInbound("echo", benchPublicURL+webhookPath, url.Values{"Body": {"hi"}})
			return twiliotest.Deliver(context.Background(), nil, echo.URL, req)
		}, http.StatusOK},
		{"GetIs405", func() (*http.Response, error) { return http.Get(echo.URL) }, http.StatusMethodNotAllowed},
		{"FormWithoutMessageSidIs400", func() (*http.Response, error) {
			return http.PostForm(echo.URL, url.Values{"Body": {"hi"}})
		}, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.Label, func(t *testing.T) {
			resp, err := tt.Request()
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.Expected {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.Expected)
			}
		})
	}
}

func TestRawTxRunsAndCleansUp(t *testing.T) {
	backends := []struct {
		name string
		dsn  func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "raw.db") }},
		{"postgres", func(t *testing.T) string { return pgtest.Shared(t).CreateDB(t, "") }},
	}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			dsn := be.dsn(t)
			res, err := RawTx(context.Background(), RawConfig{DSN: dsn, Workers: 4, Duration: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if res.Messages == 0 || res.Failed != 0 {
				t.Fatalf("Messages = %d, Failed = %d (%v); want some and none", res.Messages, res.Failed, res.FirstError)
			}
			if len(res.Latency) != res.Messages {
				t.Errorf("%d samples for %d transactions", len(res.Latency), res.Messages)
			}
			db, pg, err := openRaw(dsn, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if n := rawTables(t, db, pg); n != 0 {
				t.Errorf("%d baseline tables left behind", n)
			}
		})
	}
}

func rawTables(t *testing.T, db *sqlx.DB, pg bool) int {
	t.Helper()
	q := `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name LIKE 'loadgen_%'`
	if pg {
		q = `SELECT count(*) FROM information_schema.tables WHERE table_name LIKE 'loadgen_%'`
	}
	var n int
	if err := db.Get(&n, q); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRawTxRefusesBadConfig(t *testing.T) {
	tests := []struct {
		Label    string
		Config   RawConfig
		Expected string
	}{
		{"NoWorkers", RawConfig{DSN: "x.db", Duration: time.Second}, "workers"},
		{"NoDuration", RawConfig{DSN: "x.db", Workers: 1}, "duration"},
		{"NoDatabase", RawConfig{DSN: "sqlite:", Workers: 1, Duration: time.Second}, "no database"},
	}
	for _, tt := range tests {
		t.Run(tt.Label, func(t *testing.T) {
			_, err := RawTx(context.Background(), tt.Config)
			if err == nil || !strings.Contains(err.Error(), tt.Expected) {
				t.Errorf("RawTx = %v, want an error about %q", err, tt.Expected)
			}
		})
	}
}

// TestWireCounterCountsRoundTrips checks the counts against what lib/pq is
// known to send: a query without parameters is one simple Query, BEGIN and
// COMMIT too, and a parameter value never becomes part of a statement key.
func TestWireCounterCountsRoundTrips(t *testing.T) {
	dsn := pgtest.Shared(t).CreateDB(t, "")
	addr, err := PostgresAddr(dsn)
	if err != nil {
		t.Fatal(err)
	}
	wc, err := NewWireCounter(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	proxied, err := wc.Rewrite(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlx.Open("postgres", proxied)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	wc.Reset()
	if _, err := db.Exec(`SELECT 1`); err != nil {
		t.Fatal(err)
	}
	tx, err := db.Beginx()
	if err != nil {
		t.Fatal(err)
	}
	var got string
	if err := tx.Get(&got, `SELECT $1::text`, "a secret value"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	st := wc.Stats()
	by := map[string]StatementStats{}
	sum := 0
	for _, s := range st.Statements {
		by[s.SQL] = s
		sum += s.RoundTrips
		if strings.Contains(s.SQL, "secret") {
			t.Errorf("a parameter value reached the statement keys: %q", s.SQL)
		}
	}
	// database/sql asks lib/pq for a read-write transaction.
	for _, sql := range []string{"SELECT 1", "BEGIN READ WRITE", "COMMIT"} {
		if s := by[sql]; s.RoundTrips != 1 || s.Executions != 1 {
			t.Errorf("%s: %d round trips, %d executions; want 1 and 1", sql, s.RoundTrips, s.Executions)
		}
	}
	if s := by["SELECT $1::text"]; s.Executions != 1 || s.RoundTrips < 1 {
		t.Errorf("SELECT $1::text: %+v, want one execution and its round trips", s)
	}
	if sum != st.RoundTrips {
		t.Errorf("the statements' round trips add up to %d, the total is %d", sum, st.RoundTrips)
	}
	if st.Executions != 4 {
		t.Errorf("Executions = %d, want 4", st.Executions)
	}
	// SELECT 1 on its own, then BEGIN ... COMMIT.
	if st.Transactions != 2 {
		t.Errorf("Transactions = %d, want 2", st.Transactions)
	}
}

// TestServiceOnPostgresThroughTheCounter runs one script end to end on
// PostgreSQL with the store's traffic going through a WireCounter, the way
// `safeflow bench` counts round trips per message.
func TestServiceOnPostgresThroughTheCounter(t *testing.T) {
	dsn := pgtest.Shared(t).CreateDB(t, "")
	addr, err := PostgresAddr(dsn)
	if err != nil {
		t.Fatal(err)
	}
	wc, err := NewWireCounter(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	proxied, err := wc.Rewrite(dsn)
	if err != nil {
		t.Fatal(err)
	}
	svc := startService(t, proxied, DeliverDiscard)
	sc := ExampleScripts()[0]
	wc.Reset()
	res, err := Run(context.Background(), Config{Target: svc.Target(), Contacts: 1, Duration: 20 * time.Second,
		MaxMessages: sc.Messages(), Scripts: []Script{sc}, Start: svc.Start})
	if err != nil {
		t.Fatal(err)
	}
	if v := svc.Sink.Verify(context.Background(), res, 10*time.Second); !v.OK() || res.Failed != 0 {
		t.Fatalf("Verify: %v; failed %d (%v)", v, res.Failed, res.FirstError)
	}
	// Each message is at least BEGIN, a few statements and COMMIT.
	if per := float64(wc.Stats().RoundTrips) / float64(res.Messages); per < 3 {
		t.Errorf("%.1f round trips per message counted; the counter misses traffic", per)
	}
}

func TestPostgresAddr(t *testing.T) {
	tests := []struct {
		Label, DSN, Expected string
	}{
		{"WithPort", "postgres://u@127.0.0.1:6543/db?sslmode=disable", "127.0.0.1:6543"},
		{"DefaultPort", "postgres://u@db.internal/db", "db.internal:5432"},
	}
	for _, tt := range tests {
		t.Run(tt.Label, func(t *testing.T) {
			got, err := PostgresAddr(tt.DSN)
			if err != nil || got != tt.Expected {
				t.Errorf("PostgresAddr = %q, %v; want %q", got, err, tt.Expected)
			}
		})
	}
	if _, err := PostgresAddr("/var/lib/safeflow.db"); err == nil {
		t.Error("PostgresAddr accepted a file path")
	}
}

func TestRewriteRefusesWhatItCannotRead(t *testing.T) {
	wc, err := NewWireCounter("127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	tests := []struct {
		Label, DSN string
		Expected   error
	}{
		{"TLSMayBeUsed", "postgres://u@127.0.0.1:5432/db", ErrEncrypted},
		{"TLSRequired", "postgres://u@127.0.0.1:5432/db?sslmode=require", ErrEncrypted},
	}
	for _, tt := range tests {
		t.Run(tt.Label, func(t *testing.T) {
			if _, err := wc.Rewrite(tt.DSN); !errors.Is(err, tt.Expected) {
				t.Errorf("Rewrite = %v, want %v", err, tt.Expected)
			}
		})
	}
	if _, err := wc.Rewrite("/var/lib/safeflow.db"); err == nil {
		t.Error("Rewrite accepted a file path")
	}
	got, err := wc.Rewrite("postgres://u:pw@db.internal:5432/db?sslmode=disable")
	if err != nil || !strings.Contains(got, "@127.0.0.1:") || !strings.Contains(got, "/db?sslmode=disable") {
		t.Errorf("Rewrite = %q, %v; want the counter's address, same user, database and options", got, err)
	}
}

// TestWaitSamplerSeesALockWait holds a row lock in one transaction while a
// second one waits for it: the sampler must report the wait and name the
// waiting statement.
func TestWaitSamplerSeesALockWait(t *testing.T) {
	dsn := pgtest.Shared(t).CreateDB(t, "")
	db, err := sqlx.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE hot (id int PRIMARY KEY, n int); INSERT INTO hot VALUES (1, 0)`); err != nil {
		t.Fatal(err)
	}
	holder, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Exec(`UPDATE hot SET n = n + 1 WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() {
		_, err := db.Exec(`UPDATE hot SET n = n + 1 WHERE id = $1`, 1)
		waited <- err
	}()
	s, err := StartWaitSampler(context.Background(), dsn, 5*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	p := s.Stop()
	if err := holder.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	idle, lock := false, false
	for _, sh := range p.Shares {
		idle = idle || sh.State == "waiting for the client in a transaction"
		lock = lock || strings.HasPrefix(sh.State, "Lock:transactionid (UPDATE hot SET n = n + 1")
	}
	if p.Samples == 0 || !idle || !lock {
		t.Errorf("the sampler saw %+v; want the holder idle in its transaction and the waiter's lock", p)
	}
}
