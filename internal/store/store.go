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
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofrs/flock"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/internal/audit"
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
	// contactWithConv is the dialect's query behind ContactByAddress.
	contactWithConv string
	// markAndFind is the PostgreSQL statement behind MarkInboundFind, and
	// readInbound the one behind it without locks; readContact is
	// ContactByAddress's without locks.
	markAndFind, readInbound, readContact string
	// claimSearch and claimRows are the statements of ClaimOutbox and
	// ClaimOutboxRows.
	claimSearch, claimRows string
	// unlocked and fallbacks count PostgreSQL transactions committed
	// without locks and those that went on under locks (optimistic.go).
	unlocked, fallbacks atomic.Int64
	stmts               stmtCache
	// group commits SQLite's engine transactions together; nil on
	// PostgreSQL, where each has its own connection and commit.
	group *committer
	// ckpt runs SQLite's checkpoints beside the writer.
	ckpt *checkpointer
	// file is the SQLite database's path. service is set by AsService;
	// serviceLock is then the lock that makes this process the file's only
	// service, and releasedAtStart what Open returned to the outbox.
	file            string
	service         bool
	serviceLock     *flock.Flock
	releasedAtStart int64
	// head is the audit chain's head as this store last wrote it (SQLite).
	head headCache
	// written, when set, is told the outbox rows each commit wrote.
	written atomic.Pointer[func(claimed []Pending, rest []int64)]
}

// OnOutbox sets fn to be called after every commit of an engine
// transaction that wrote outbox rows. claimed are the rows inserted already
// claimed for delivery (leased for a minute, as ClaimOutbox leases them):
// fn's caller must send them, or they wait for the lease to end. rest are
// the sequence numbers (the messages' IDs) of the others, to claim with
// ClaimOutboxRows instead of searching the outbox. fn runs on the
// committing goroutine and must not block.
//
// Without OnOutbox, rows are inserted unclaimed, for ClaimOutbox to find.
func (s *Store) OnOutbox(fn func(claimed []Pending, rest []int64)) { s.written.Store(&fn) }

// committed tells OnOutbox's function what the committed transactions
// wrote to the outbox.
func (s *Store) committed(txs ...*tx) {
	fn := s.written.Load()
	if fn == nil {
		return
	}
	var claimed []Pending
	var rest []int64
	for _, t := range txs {
		for _, o := range t.out {
			key := t.keys[o]
			if !t.born[key] {
				rest = append(rest, o.ID)
				continue
			}
			// The engine may reuse its messages once the transaction is
			// over: the worker gets copies.
			m := *o
			m.Choices = slices.Clone(o.Choices)
			claimed = append(claimed, Pending{Outbound: &m, Key: key})
		}
	}
	if len(claimed) > 0 || len(rest) > 0 {
		(*fn)(claimed, rest)
	}
}

// headCache remembers the audit log's head. It is a guess, checked by the
// UPDATE that moves the head, never trusted alone.
type headCache struct {
	mu   sync.Mutex
	ok   bool
	seq  int64
	hash []byte
}

func (h *headCache) get() (audit.Record, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return audit.Record{Seq: h.seq, Hash: h.hash}, h.ok
}

func (h *headCache) set(seq int64, hash []byte) {
	h.mu.Lock()
	h.ok, h.seq, h.hash = true, seq, hash
	h.mu.Unlock()
}

func (h *headCache) forget() {
	h.mu.Lock()
	h.ok = false
	h.mu.Unlock()
}

// stmtCache holds prepared statements by query text. It is bounded: the
// message statements have few shapes, and anything beyond runs unprepared.
type stmtCache struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

const maxPrepared = 256

func (c *stmtCache) get(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[query]
}

// prepare prepares the queries not yet cached. It must run outside any
// transaction: on SQLite the transaction holds the only connection.
func (s *Store) prepare(ctx context.Context, queries []string) {
	for _, q := range queries {
		s.stmts.mu.Lock()
		_, have := s.stmts.m[q]
		full := len(s.stmts.m) >= maxPrepared
		s.stmts.mu.Unlock()
		if have || full {
			continue
		}
		st, err := s.db.PrepareContext(ctx, q)
		if err != nil {
			continue // it runs unprepared, as before
		}
		s.stmts.mu.Lock()
		if s.stmts.m == nil {
			s.stmts.m = map[string]*sql.Stmt{}
		}
		if _, have := s.stmts.m[q]; have {
			st.Close()
		} else {
			s.stmts.m[q] = st
		}
		s.stmts.mu.Unlock()
	}
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
	opened := false       // for the service lock's release on failure
	var sqliteName string // the SQLite file's DSN, for the checkpointer
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		s.pg = true
		// Binary parameters let lib/pq send a statement and its values in
		// one round trip instead of two.
		s.db, err = sqlx.Open("postgres", withBinaryParameters(dsn))
		if err == nil {
			s.db.SetMaxOpenConns(32)
			s.db.SetMaxIdleConns(32)
		}
	} else {
		file := strings.TrimPrefix(dsn, "sqlite:")
		s.file = file
		if file == "" {
			return nil, errors.New("open store: no database given: use a postgres:// URL or the path of a SQLite file")
		}
		if s.service {
			// Before anything touches the file, migrations included.
			if err := s.lockService(); err != nil {
				return nil, err
			}
			defer func() {
				if !opened && s.serviceLock != nil {
					s.serviceLock.Unlock()
				}
			}()
		}
		var name string
		if name, err = sqliteDSN(file); err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		if err := createPrivate(file); err != nil {
			return nil, fmt.Errorf("open store: SQLite file %s: %w", file, err)
		}
		// The writer leaves most checkpoints to the checkpointer, and keeps
		// one of its own at 10,000 pages to bound the log (checkpoint.go).
		s.db, err = sqlx.Open("sqlite", name+"&_pragma=wal_autocheckpoint%2810000%29")
		if err == nil {
			// One connection is SQLite's single writer: transactions queue
			// here instead of failing with "database is locked".
			s.db.SetMaxOpenConns(1)
			sqliteName = name
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := s.db.PingContext(ctx); err != nil {
		s.db.Close()
		if !s.pg {
			return nil, fmt.Errorf("open store: SQLite file %s: %w", s.file, err)
		}
		return nil, fmt.Errorf("open store: %s", redactDSN(err.Error(), dsn))
	}
	if err := s.Migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	s.contactWithConv = contactWithConvQuery(s.pg)
	s.markAndFind = markAndFindQuery()
	s.readInbound, s.readContact = readInboundQuery(), readContactQuery(1)
	s.claimSearch, s.claimRows = s.claimQuery(searchWhere), s.claimQuery(sqliteRowsWhere)
	if s.pg {
		s.claimRows = s.claimQuery(pgRowsWhere)
	}
	if !s.pg {
		s.group = newCommitter(s)
		if s.ckpt, err = startCheckpointer(sqliteName); err != nil {
			s.db.Close()
			return nil, fmt.Errorf("open store: %w", err)
		}
		if s.service {
			if err := s.releaseClaims(ctx); err != nil {
				s.Close()
				return nil, err
			}
		}
	}
	opened = true
	return s, nil
}

// warmConns is how many PostgreSQL connections WarmPool opens ahead of use.
const warmConns = 8

// WarmPool opens connections to PostgreSQL at once and leaves them idle in
// the pool, each having read the tables a message touches: a service just
// started then does not open a connection, start a backend and load its
// catalog in the middle of the first messages it handles. A failure only
// means the first messages do it themselves. On SQLite, with its one
// connection, it does nothing.
func (s *Store) WarmPool(ctx context.Context) {
	if !s.pg {
		return
	}
	conns := make([]*sql.Conn, warmConns)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() {
			c, err := s.db.Conn(ctx)
			if err != nil {
				return
			}
			conns[i] = c
			// Reading the message tables' first row loads their catalog
			// entries and indexes into the backend.
			for _, table := range []string{"contacts", "conversations", "transcript", "inbound_seen", "outbox", "audit_pending", "timers"} {
				if _, err := c.ExecContext(ctx, `SELECT 1 FROM `+table+` LIMIT 1`); err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// withBinaryParameters adds binary_parameters=yes to a postgres:// URL
// that does not set it.
func withBinaryParameters(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn
	}
	q := u.Query()
	if q.Get("binary_parameters") == "" {
		q.Set("binary_parameters", "yes")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// sqliteDSN adds the settings safeflow needs: WAL, a busy timeout, foreign
// keys, and immediate transactions so a writer never has to upgrade a lock.
// The path becomes an absolute file: URI, escaped, so that a folder name
// holding '?', '#' or '%' still names the file it says.
func sqliteDSN(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Add("_pragma", "synchronous(NORMAL)")
	// Savepoints (group commit) keep their undo pages in memory, not in a
	// temporary file written for every page they touch.
	q.Add("_pragma", "temp_store(MEMORY)")
	q.Set("_txlock", "immediate")
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	return u.String(), nil
}

// createPrivate creates a new SQLite file that only its owner may read or
// write (0600): it holds sealed values, but also what is not sealed (the
// audit log, flows, steps and times). SQLite gives the -wal and -shm files
// it makes beside it the same mode. A file that exists keeps its own.
func createPrivate(file string) error {
	if err := newPrivateFile(file); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

// newPrivateFile creates file, empty and mode 0600, and fails (with
// fs.ErrExist) when it exists; a missing folder is named.
func newPrivateFile(file string) error {
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case errors.Is(err, fs.ErrExist):
		return fs.ErrExist
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("cannot create it: its folder %s does not exist", filepath.Dir(file))
	case err != nil:
		return fmt.Errorf("cannot create it: %w", errors.Unwrap(err))
	}
	return f.Close()
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

// Migrate applies the embedded migrations that have not run yet. Applying
// them again is a no-op. On PostgreSQL an advisory lock keeps two nodes that
// start together from applying the same migration twice. Migrate refuses a
// database that a newer safeflow has migrated further than it knows.
func (s *Store) Migrate(ctx context.Context) error {
	dialect, dir, kind := goose.DialectSQLite3, "migrations/sqlite", "SQLite"
	var opts []goose.ProviderOption
	if s.pg {
		dialect, dir, kind = goose.DialectPostgres, "migrations/postgres", "PostgreSQL"
		// Poll for the lock every second, for up to five minutes.
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
		if err != nil {
			return fmt.Errorf("migrate %s database: %w", kind, err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	fsys, err := fs.Sub(migrations, dir)
	if err != nil {
		return fmt.Errorf("migrate %s database: %w", kind, err)
	}
	p, err := goose.NewProvider(dialect, s.db.DB, fsys, opts...)
	if err != nil {
		return fmt.Errorf("migrate %s database: %w", kind, err)
	}
	current, target, err := p.GetVersions(ctx)
	if err != nil {
		return fmt.Errorf("migrate %s database: read the schema version: %w", kind, err)
	}
	if current > target {
		return fmt.Errorf("migrate %s database: its schema is at version %d, but this safeflow knows versions up to %d only: "+
			"it was migrated by a newer safeflow; run that version instead", kind, current, target)
	}
	if _, err := p.Up(ctx); err != nil {
		var pe *goose.PartialError
		if errors.As(err, &pe) && pe.Failed != nil && pe.Failed.Source != nil {
			return fmt.Errorf("migrate %s database: migration %s failed (%d applied before it): %w",
				kind, path.Base(pe.Failed.Source.Path), len(pe.Applied), pe.Err)
		}
		return fmt.Errorf("migrate %s database: %w", kind, err)
	}
	return nil
}

// Close closes the prepared statements and the database.
func (s *Store) Close() error {
	if s.group != nil {
		s.group.close()
	}
	if s.ckpt != nil {
		s.ckpt.close()
		s.ckpt = nil
	}
	s.stmts.mu.Lock()
	for _, st := range s.stmts.m {
		st.Close()
	}
	s.stmts.m = nil
	s.stmts.mu.Unlock()
	err := s.db.Close()
	if s.serviceLock != nil {
		err = errors.Join(err, s.serviceLock.Unlock())
		s.serviceLock = nil
	}
	return err
}

// DB returns the database handle, for tests and tools.
func (s *Store) DB() *sqlx.DB { return s.db }

// Postgres reports whether the store is on PostgreSQL.
func (s *Store) Postgres() bool { return s.pg }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// Transcript returns a conversation's transcript lines in order, with their
// bodies opened. A conversation with no lines, or none at all, has an empty
// transcript.
func (s *Store) Transcript(ctx context.Context, conversationID string) ([]engine.TranscriptLine, error) {
	var rows []struct {
		N         int64  `db:"n"`
		At        int64  `db:"at"`
		Inbound   bool   `db:"inbound"`
		Channel   string `db:"channel"`
		Step      string `db:"step"`
		Sensitive bool   `db:"sensitive"`
		Body      []byte `db:"body_sealed"`
	}
	err := s.db.SelectContext(ctx, &rows, s.q(`SELECT n, at, inbound, channel, step, sensitive, body_sealed FROM transcript
		WHERE conversation_id = ? ORDER BY n`), conversationID)
	if err != nil {
		return nil, fmt.Errorf("read transcript: %w", err)
	}
	out := make([]engine.TranscriptLine, len(rows))
	for i, r := range rows {
		text, err := s.ring.OpenString(r.Body, seal.AD{Table: "transcript", Column: "body", Row: lineRow(conversationID, r.N)})
		if err != nil {
			return nil, fmt.Errorf("open transcript line %d of conversation %s: %w", r.N, conversationID, err)
		}
		out[i] = engine.TranscriptLine{ConversationID: conversationID, At: fromMicros(r.At), Inbound: r.Inbound,
			Channel: engine.Channel(r.Channel), Text: text, Step: r.Step, Sensitive: r.Sensitive}
	}
	return out, nil
}

// maxRetries bounds retries of a transaction that lost a race (a unique
// violation from two first messages of one contact, or a deadlock).
const maxRetries = 5

// Tx runs fn in one database transaction; see engine.Store.
func (s *Store) Tx(ctx context.Context, fn func(engine.Tx) error) error {
	if s.group != nil {
		return s.group.do(ctx, fn)
	}
	for attempt := 0; ; attempt++ {
		err := s.tx(ctx, fn)
		if err == nil || attempt == maxRetries || !retryable(err) {
			return err
		}
	}
}

// tx runs fn once on PostgreSQL. The database transaction begins with
// fn's first call, and a message (whose first call is MarkInboundFind) is
// tried without one first (optimistic.go).
func (s *Store) tx(ctx context.Context, fn func(engine.Tx) error) error {
	return s.runTx(ctx, fn, true)
}

// runTx runs fn once on PostgreSQL. With tryUnlocked, the database
// transaction begins with fn's first call, and a message (whose first call
// is MarkInboundFind) is tried without one; otherwise, and for the run
// under locks that follows a refused try, it begins at once.
func (s *Store) runTx(ctx context.Context, fn func(engine.Tx) error, tryUnlocked bool) error {
	t := newTx(s, nil)
	if tryUnlocked {
		t.opt = &optimistic{}
	} else if err := t.begin(ctx); err != nil {
		return err
	}
	// Roll back on every way out but a commit, a panic in fn included.
	// (SQLite's transactions go through the group commit.)
	committed := false
	defer func() {
		if t.tx != nil && !committed {
			t.tx.Rollback()
		}
	}()
	err := fn(pgTx{t})
	if t.opt != nil && t.opt.begun {
		if done, err := s.finishOptimistic(ctx, t, err); done {
			return err
		}
		return s.runTx(ctx, fn, false)
	}
	if err != nil {
		return err
	}
	if t.tx == nil {
		if err := t.begin(ctx); err != nil {
			return err
		}
	}
	if err := t.commit(ctx); err != nil {
		return err
	}
	committed = true
	if err := t.tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	s.afterCommit(ctx, t)
	return nil
}

// afterCommit tells OnOutbox's function what a committed PostgreSQL
// transaction wrote, and prepares the statements it ran unprepared.
func (s *Store) afterCommit(ctx context.Context, t *tx) {
	s.committed(t)
	if len(t.unprepared) > 0 {
		s.prepare(ctx, t.unprepared)
	}
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
