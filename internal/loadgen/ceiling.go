package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"  // the raw transaction on PostgreSQL
	_ "modernc.org/sqlite" // the raw transaction on SQLite
)

// emptyTwiML is what the Twilio webhook answers, so the ceiling sends the
// same bytes back.
const emptyTwiML = `<?xml version="1.0" encoding="UTF-8"?><Response></Response>`

// An EchoServer is the HTTP ceiling: a net/http server on 127.0.0.1 that
// answers every webhook 200 after parsing its form, and does nothing else.
// No webhook handler can be faster on this machine.
type EchoServer struct {
	// URL is where to post webhooks.
	URL string
	srv *http.Server
}

// StartEcho starts an EchoServer on a free port.
func StartEcho() (*EchoServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("echo server: %w", err)
	}
	e := &EchoServer{URL: "http://" + ln.Addr().String() + webhookPath}
	e.srv = &http.Server{Handler: http.HandlerFunc(echoWebhook), ReadHeaderTimeout: 5 * time.Second}
	go e.srv.Serve(ln) //nolint:errcheck // ends with ErrServerClosed on Close
	return e, nil
}

// Target returns a target for the echo server; it checks no signature, but
// the webhooks are signed all the same so that the client does the same
// work as against the service.
func (e *EchoServer) Target() Target {
	return Target{URL: e.URL, SignedURL: benchPublicURL + webhookPath, AuthToken: "echo", Number: benchNumber}
}

// Close stops the server.
func (e *EchoServer) Close() error { return e.srv.Close() }

func echoWebhook(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil || r.PostForm.Get("MessageSid") == "" {
		http.Error(w, "malformed form body", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, emptyTwiML)
}

// RawConfig describes a run of the naive per-message transaction.
type RawConfig struct {
	// DSN is a postgres:// URL or a SQLite file path. The run creates its
	// own two tables there (loadgen_conversations, loadgen_lines) and
	// drops them at the end.
	DSN string
	// Workers run transactions at once; on SQLite they share its single
	// connection, as the store's do.
	Workers     int
	Duration    time.Duration
	MaxMessages int
}

// RawTx measures the naive per-message transaction a simple design would
// run for each inbound message, through sqlx with no sealing, no audit and
// no outbox: BEGIN; SELECT the conversation (FOR UPDATE on PostgreSQL);
// UPDATE it; INSERT a transcript line; COMMIT. Worker i always works on
// conversation i, so workers never wait for each other's row locks. The
// result counts transactions as messages.
func RawTx(ctx context.Context, cfg RawConfig) (*Result, error) {
	switch {
	case cfg.Workers < 1 || cfg.Workers > MaxContacts:
		return nil, fmt.Errorf("loadgen: workers must be from 1 to %d", MaxContacts)
	case cfg.Duration <= 0 || cfg.Duration > MaxDuration:
		return nil, fmt.Errorf("loadgen: duration must be more than 0 and at most %v", MaxDuration)
	}
	db, pg, err := openRaw(cfg.DSN, cfg.Workers)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if err := createRaw(ctx, db, pg, cfg.Workers); err != nil {
		return nil, err
	}
	defer dropRaw(db)

	q := func(s string) string {
		if pg {
			return db.Rebind(s)
		}
		return s
	}
	lock := ""
	if pg {
		lock = " FOR UPDATE"
	}
	selectConv := q(`SELECT step, n FROM loadgen_conversations WHERE id = ?` + lock)
	updateConv := q(`UPDATE loadgen_conversations SET step = ?, n = ?, vars = ?, updated = ? WHERE id = ?`)
	insertLine := q(`INSERT INTO loadgen_lines (conversation_id, n, at, body) VALUES (?, ?, ?, ?)`)
	vars := []byte(`{"first_name":"Ana","last_name":"Lee","answer":"yes"}`)
	body := []byte("Great, let's get you set up. What is your first name?")
	oneTx := func(conv string) error {
		tx, err := db.BeginTxx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback() //nolint:errcheck // a no-op after Commit
		var step string
		var n int64
		if err := tx.QueryRowxContext(ctx, selectConv, conv).Scan(&step, &n); err != nil {
			return err
		}
		now := time.Now().UnixMicro()
		if _, err := tx.ExecContext(ctx, updateConv, "ask-first-name", n+1, vars, now, conv); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, insertLine, conv, n+1, now, body); err != nil {
			return err
		}
		return tx.Commit()
	}

	stop, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var sent atomic.Int64
	var mu sync.Mutex
	res := &Result{}
	var samples []time.Duration
	var wg sync.WaitGroup
	began := time.Now()
	for w := range cfg.Workers {
		wg.Go(func() {
			conv := fmt.Sprintf("conv-%d", w)
			var mine []time.Duration
			failed := 0
			var firstErr error
			for stop.Err() == nil {
				if n := sent.Add(1); cfg.MaxMessages > 0 && n > int64(cfg.MaxMessages) {
					break
				}
				start := time.Now()
				if err := oneTx(conv); err != nil {
					if ctx.Err() != nil {
						break
					}
					failed++
					if firstErr == nil {
						firstErr = err
					}
					continue
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			defer mu.Unlock()
			res.Messages += len(mine)
			res.Failed += failed
			if res.FirstError == nil {
				res.FirstError = firstErr
			}
			samples = append(samples, mine...)
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(began)
	res.Latency = NewLatencies(samples)
	return res, nil
}

// openRaw opens dsn with the settings the store uses: for SQLite WAL,
// synchronous=NORMAL, a busy timeout, immediate transactions and one
// connection; for PostgreSQL one connection per worker.
func openRaw(dsn string, workers int) (*sqlx.DB, bool, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		db, err := sqlx.Open("postgres", dsn)
		if err != nil {
			return nil, true, fmt.Errorf("raw database: %w", err)
		}
		db.SetMaxOpenConns(workers)
		db.SetMaxIdleConns(workers)
		return db, true, nil
	}
	path := strings.TrimPrefix(dsn, "sqlite:")
	if path == "" {
		return nil, false, errors.New("raw database: no database given")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, false, fmt.Errorf("raw database: %w", err)
	}
	v := url.Values{}
	v.Add("_pragma", "journal_mode(WAL)")
	v.Add("_pragma", "busy_timeout(10000)")
	v.Add("_pragma", "synchronous(NORMAL)")
	v.Set("_txlock", "immediate")
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: v.Encode()}
	db, err := sqlx.Open("sqlite", u.String())
	if err != nil {
		return nil, false, fmt.Errorf("raw database: %w", err)
	}
	// SQLite has one writer: the store queues its transactions on one
	// connection, and so does this baseline.
	db.SetMaxOpenConns(1)
	return db, false, nil
}

func createRaw(ctx context.Context, db *sqlx.DB, pg bool, workers int) error {
	blob := "BLOB"
	if pg {
		blob = "BYTEA"
	}
	dropRaw(db)
	stmts := []string{
		`CREATE TABLE loadgen_conversations (id TEXT PRIMARY KEY, step TEXT NOT NULL, n BIGINT NOT NULL, vars ` + blob + `, updated BIGINT NOT NULL)`,
		`CREATE TABLE loadgen_lines (conversation_id TEXT NOT NULL, n BIGINT NOT NULL, at BIGINT NOT NULL, body ` + blob + `, PRIMARY KEY (conversation_id, n))`,
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("raw database: create tables: %w", err)
		}
	}
	insert := db.Rebind(`INSERT INTO loadgen_conversations (id, step, n, vars, updated) VALUES (?, 'welcome', 0, NULL, 0)`)
	for w := range workers {
		if _, err := db.ExecContext(ctx, insert, fmt.Sprintf("conv-%d", w)); err != nil {
			return fmt.Errorf("raw database: seed: %w", err)
		}
	}
	return nil
}

// dropRaw removes the baseline's tables; errors are ignored because the
// tables may not exist.
func dropRaw(db *sqlx.DB) {
	for _, t := range []string{"loadgen_lines", "loadgen_conversations"} {
		_, _ = db.Exec(`DROP TABLE IF EXISTS ` + t)
	}
}
