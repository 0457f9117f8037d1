// Package store keeps safeflow's data in SQLite (the embedded default: one
// file, no server) or PostgreSQL (production, and more than one node),
// through sqlx. Message bodies, variable values and contact addresses are
// sealed with internal/seal before they reach the database; contacts are
// found by a blind index. Every transaction appends its audit records to the
// hash-chained audit log before it commits.
package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/internal/seal"
)

//go:embed migrations
var migrations embed.FS

// Store is a SQL store. It implements engine.Store.
type Store struct {
	db   *sqlx.DB
	pg   bool
	ring *seal.Ring
	now  func() time.Time
}

var _ engine.Store = (*Store)(nil)

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock used for timestamps the store writes itself.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// Open connects to a database and applies any pending migrations. dsn is a
// postgres:// URL, or a SQLite file as "sqlite:PATH" or a plain path.
func Open(ctx context.Context, dsn string, ring *seal.Ring, opts ...Option) (*Store, error) {
	if ring == nil {
		return nil, errors.New("open store: no key ring")
	}
	s := &Store{ring: ring, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	var err error
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		s.pg = true
		s.db, err = sqlx.Open("postgres", dsn)
		if err == nil {
			s.db.SetMaxOpenConns(32)
			s.db.SetMaxIdleConns(32)
		}
	} else {
		s.db, err = sqlx.Open("sqlite", sqliteDSN(strings.TrimPrefix(dsn, "sqlite:")))
		if err == nil {
			// One connection is SQLite's single writer: transactions queue
			// here instead of failing with "database is locked".
			s.db.SetMaxOpenConns(1)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := s.db.PingContext(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("open store: %s", redactDSN(err.Error(), dsn))
	}
	if err := s.Migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

// sqliteDSN adds the settings safeflow needs: WAL, a busy timeout, foreign
// keys, and immediate transactions so a writer never has to upgrade a lock.
func sqliteDSN(path string) string {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}

// redactDSN keeps a password in a connection string out of error messages.
func redactDSN(msg, dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
	}
	return msg
}

// Migrate applies the embedded migrations that have not run yet.
func (s *Store) Migrate(ctx context.Context) error {
	dialect, dir := goose.DialectSQLite3, "migrations/sqlite"
	if s.pg {
		dialect, dir = goose.DialectPostgres, "migrations/postgres"
	}
	fsys, err := fs.Sub(migrations, dir)
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(dialect, s.db.DB, fsys)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// DB returns the database handle, for tests and tools.
func (s *Store) DB() *sqlx.DB { return s.db }

// Postgres reports whether the store is on PostgreSQL.
func (s *Store) Postgres() bool { return s.pg }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// maxRetries bounds retries of a transaction that lost a race (a unique
// violation from two first messages of one contact, or a deadlock).
const maxRetries = 5

// Tx runs fn in one database transaction; see engine.Store.
func (s *Store) Tx(ctx context.Context, fn func(engine.Tx) error) error {
	for attempt := 0; ; attempt++ {
		err := s.tx(ctx, fn)
		if err == nil || attempt == maxRetries || !retryable(err) {
			return err
		}
	}
}

func (s *Store) tx(ctx context.Context, fn func(engine.Tx) error) error {
	sqltx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	t := newTx(s, sqltx)
	if err := fn(t); err != nil {
		sqltx.Rollback()
		return err
	}
	if err := t.commit(ctx); err != nil {
		sqltx.Rollback()
		return err
	}
	if err := sqltx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// retryable reports whether err is a lost race that a retry resolves.
func retryable(err error) bool {
	var pe *pq.Error
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505", "40001", "40P01": // unique violation, serialization failure, deadlock
			return true
		}
	}
	return false
}

// newID returns a random 128-bit identifier.
func newID() string { return strings.ToLower(rand.Text()) }

// micros stores a time as microseconds since the epoch (0 for zero time).
func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.UnixMicro(n).UTC()
}

// q rebinds ? placeholders for the store's database.
func (s *Store) q(query string) string {
	if s.pg {
		return sqlx.Rebind(sqlx.DOLLAR, query)
	}
	return query
}

// forUpdate is the row-lock clause: PostgreSQL locks rows; SQLite has a
// single writer and needs none.
func (s *Store) forUpdate() string {
	if s.pg {
		return " FOR UPDATE"
	}
	return ""
}

var errNoRows = sql.ErrNoRows
