package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/internal/audit"
	"github.com/safeflow/safeflow/internal/seal"
)

// tx is one engine transaction. Reads go to the database at once (and lock
// on PostgreSQL); writes of conversations, transcript lines, outbox rows and
// audit records are buffered and written at commit in few statements.
type tx struct {
	s  *Store
	tx *sqlx.Tx
	// convs holds conversations saved in this transaction, by id, with
	// whether they exist in the database yet.
	convs  map[string]*convRow
	order  []string
	lines  []engine.TranscriptLine
	out    []*engine.Outbound
	events []engine.Event
	// prefetched marks contacts whose open conversation is already loaded.
	prefetched map[string]bool
	// unprepared lists the queries to prepare once the transaction is over.
	unprepared []string
	// opt is the state of a PostgreSQL transaction that runs without locks
	// (optimistic.go); nil for every other transaction.
	opt *optimistic
	// keys holds the outbox row id of each outbound message written, and
	// born those whose row was inserted already claimed for delivery.
	keys map[*engine.Outbound]string
	born map[string]bool
}

// convRow is a conversation this transaction loaded or saved.
type convRow struct {
	c      *engine.Conversation
	exists bool   // the row is in the database
	lines  int64  // transcript lines in the database when loaded
	addr   string // the address as loaded, to re-seal only a changed one
	// version is the row's version as read without a lock (PostgreSQL).
	version int64
}

func newTx(s *Store, t *sqlx.Tx) *tx {
	return &tx{s: s, tx: t, convs: map[string]*convRow{}}
}

func (t *tx) MarkInbound(ctx context.Context, ch engine.Channel, providerID string) (bool, error) {
	if refuse, err := t.unlocked(ctx); refuse || err != nil {
		return false, err
	}
	res, err := t.exec(ctx, t.s.q(`INSERT INTO inbound_seen (channel, provider_id, seen) VALUES (?, ?, ?)
		ON CONFLICT DO NOTHING`), string(ch), providerID, micros(t.s.now()))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

type contactRow struct {
	ID       string `db:"id"`
	Channel  string `db:"channel"`
	Address  []byte `db:"address_sealed"`
	Language string `db:"language"`
	OptedOut bool   `db:"opted_out"`
}

func (t *tx) contact(r contactRow) (*engine.Contact, error) {
	addr, err := t.s.ring.OpenString(r.Address, seal.AD{Table: "contacts", Column: "address", Row: r.ID})
	if err != nil {
		return nil, fmt.Errorf("open contact %s: %w", r.ID, err)
	}
	return &engine.Contact{ID: r.ID, Channel: engine.Channel(r.Channel), Address: addr, Language: r.Language, OptedOut: r.OptedOut}, nil
}

const contactCols = `id, channel, address_sealed, language, opted_out`

func (t *tx) ContactByAddress(ctx context.Context, ch engine.Channel, address string) (*engine.Contact, error) {
	if ch == "" {
		// The blind index needs the channel; the engine always gives one.
		return nil, errors.New("find contact: no channel given")
	}
	if t.opt != nil && !t.opt.begun {
		// A clinic's start (optimistic.go).
		return t.readContact(ctx, ch, address)
	}
	if refuse, err := t.unlocked(ctx); refuse || err != nil {
		return nil, err
	}
	// One round trip finds the contact and loads (and locks) its open
	// conversation, which the engine asks for next.
	var r contactRow
	var v convNull
	dest := append([]any{&r.ID, &r.Channel, &r.Address, &r.Language, &r.OptedOut}, v.dest()...)
	err := t.queryRow(ctx, t.s.q(t.s.contactWithConv), t.s.ring.Index(string(ch), address)).Scan(dest...)
	if errors.Is(err, errNoRows) {
		return nil, engine.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return t.foundContact(r, &v)
}

// pgTx is a PostgreSQL transaction: it also offers engine.InboundFinder,
// which saves a round trip there. SQLite, where a statement costs no round
// trip, leaves the engine to call MarkInbound and ContactByAddress.
type pgTx struct{ *tx }

// MarkInboundFind is MarkInbound and ContactByAddress in one statement: the
// de-duplication insert is a CTE of the contact query.
func (t pgTx) MarkInboundFind(ctx context.Context, ch engine.Channel, providerID, address string) (bool, *engine.Contact, error) {
	if ch == "" {
		return false, nil, errors.New("find contact: no channel given")
	}
	if t.opt != nil {
		return t.readInbound(ctx, ch, providerID, address)
	}
	var fresh bool
	var id, channel, language *string
	var addr []byte
	var optedOut *bool
	var v convNull
	dest := append([]any{&fresh, &id, &channel, &addr, &language, &optedOut}, v.dest()...)
	err := t.queryRow(ctx, t.s.markAndFind, string(ch), providerID, micros(t.s.now()), t.s.ring.Index(string(ch), address)).Scan(dest...)
	if err != nil {
		return false, nil, fmt.Errorf("mark inbound and find contact: %w", err)
	}
	if !fresh || id == nil {
		return fresh, nil, nil
	}
	c, err := t.foundContact(contactRow{ID: *id, Channel: *channel, Address: addr, Language: *language, OptedOut: *optedOut}, &v)
	return err == nil, c, err
}

// markAndFindQuery is the PostgreSQL statement behind MarkInboundFind:
// always one row, whose first column says whether the id is new, followed
// by the contact and its locked open conversation, NULL when missing.
func markAndFindQuery() string {
	return `WITH seen AS (INSERT INTO inbound_seen (channel, provider_id, seen) VALUES ($1, $2, $3)
		ON CONFLICT DO NOTHING RETURNING 1)
		SELECT (SELECT count(*) FROM seen) = 1, x.* FROM (SELECT 1) one
		LEFT JOIN (` + sqlx.Rebind(sqlx.DOLLAR, strings.Replace(contactWithConvQuery(true), "?", "$4", 1)) + `) x ON true`
}

// foundContact opens a contact row read with its open conversation, if
// any, and keeps the conversation as loaded by this transaction.
func (t *tx) foundContact(r contactRow, v *convNull) (*engine.Contact, error) {
	c, err := t.contact(r)
	if err != nil {
		return nil, err
	}
	if t.prefetched == nil {
		t.prefetched = map[string]bool{}
	}
	t.prefetched[c.ID] = true
	if v.ID != nil {
		if _, staged := t.convs[*v.ID]; !staged {
			if _, err := t.keepLoaded(v.row()); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

// contactWithConvQuery finds a contact by its blind index together with its
// open conversation, locked on PostgreSQL.
func contactWithConvQuery(pg bool) string {
	cols := make([]string, 0, 21)
	for _, c := range strings.Split(convCols, ",") {
		cols = append(cols, "v."+strings.TrimSpace(c))
	}
	sel := `SELECT c.id, c.channel, c.address_sealed, c.language, c.opted_out, ` + strings.Join(cols, ", ")
	if pg {
		return sel + ` FROM contacts c LEFT JOIN LATERAL (SELECT ` + convCols + ` FROM conversations
			WHERE contact_id = c.id AND status <> 'ended' FOR UPDATE) v ON true WHERE c.address_index = ?`
	}
	return sel + ` FROM contacts c LEFT JOIN conversations v ON v.contact_id = c.id AND v.status <> 'ended'
		WHERE c.address_index = ?`
}

// convNull scans a conversation row that may be missing (a LEFT JOIN).
type convNull struct {
	ID, ContactID, FlowID, FlowHash, Step, Status, Origin, Language, Secure, Queue *string
	Vars, Address                                                                  []byte
	Attempts, LinkResends                                                          *int
	StaySecure, PromptSent                                                         *bool
	LinkSentAt, TimerDue, Lines, Created, Updated                                  *int64
}

// dest lists the scan targets in convCols order.
func (v *convNull) dest() []any {
	return []any{&v.ID, &v.ContactID, &v.FlowID, &v.FlowHash, &v.Step, &v.Status, &v.Vars, &v.Origin, &v.Address, &v.Language,
		&v.Attempts, &v.Secure, &v.StaySecure, &v.PromptSent, &v.LinkSentAt, &v.LinkResends, &v.Queue, &v.TimerDue, &v.Lines,
		&v.Created, &v.Updated}
}

func (v *convNull) row() convDB {
	return convDB{ID: *v.ID, ContactID: *v.ContactID, FlowID: *v.FlowID, FlowHash: *v.FlowHash, Step: *v.Step, Status: *v.Status,
		Vars: v.Vars, Origin: *v.Origin, Address: v.Address, Language: *v.Language, Attempts: *v.Attempts, Secure: *v.Secure,
		StaySecure: *v.StaySecure, PromptSent: *v.PromptSent, LinkSentAt: *v.LinkSentAt, LinkResends: *v.LinkResends,
		Queue: *v.Queue, TimerDue: *v.TimerDue, Lines: *v.Lines, Created: *v.Created, Updated: *v.Updated}
}

func (t *tx) Contact(ctx context.Context, id string) (*engine.Contact, error) {
	if refuse, err := t.unlocked(ctx); refuse || err != nil {
		return nil, err
	}
	var r contactRow
	err := t.get(ctx, &r, t.s.q(`SELECT `+contactCols+` FROM contacts WHERE id = ?`), id)
	if errors.Is(err, errNoRows) {
		return nil, engine.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return t.contact(r)
}

func (t *tx) SaveContact(ctx context.Context, c *engine.Contact) error {
	if t.opt != nil && t.opt.begun {
		return t.opt.saveContact(t, c)
	}
	if _, err := t.unlocked(ctx); err != nil {
		return err
	}
	if c.ID != "" {
		// The channel and address of a contact never change: they are what
		// the blind index finds it by.
		res, err := t.exec(ctx, t.s.q(`UPDATE contacts SET language = ?, opted_out = ? WHERE id = ?`),
			c.Language, c.OptedOut, c.ID)
		if err != nil {
			return fmt.Errorf("update contact %s: %w", c.ID, err)
		}
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			return fmt.Errorf("update contact %s: %w", c.ID, engine.ErrNotFound)
		}
		return nil
	}
	k, err := t.newContactRow(c)
	if err != nil {
		return err
	}
	// Two first messages of one contact may race: the loser finds the
	// winner's row instead of failing.
	res, err := t.exec(ctx, t.s.q(insertContact), k.args()...)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		existing, err := t.ContactByAddress(ctx, c.Channel, c.Address)
		if err != nil {
			return err
		}
		*c = *existing
		return nil
	}
	c.ID = k.id
	return nil
}

// contactInsert is a new contact's row, its address sealed.
type contactInsert struct {
	id, channel string
	index, addr []byte
	language    string
	optedOut    bool
	created     int64
}

// insertContact inserts a contactInsert (its args), or nothing when the
// address is taken.
const insertContact = `INSERT INTO contacts (id, channel, address_index, address_sealed, language, opted_out, created)
	VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (address_index) DO NOTHING`

func (k *contactInsert) args() []any {
	return []any{k.id, k.channel, k.index, k.addr, k.language, k.optedOut, k.created}
}

// newContactRow gives a new contact an id and seals its row.
func (t *tx) newContactRow(c *engine.Contact) (*contactInsert, error) {
	if c.Channel == "" {
		return nil, errors.New("save contact: a new contact needs a channel")
	}
	id := newID()
	addr, err := t.s.ring.SealString(c.Address, seal.AD{Table: "contacts", Column: "address", Row: id})
	if err != nil {
		return nil, err
	}
	return &contactInsert{id: id, channel: string(c.Channel), index: t.s.ring.Index(string(c.Channel), c.Address),
		addr: addr, language: c.Language, optedOut: c.OptedOut, created: micros(t.s.now())}, nil
}

type convDB struct {
	ID          string `db:"id"`
	ContactID   string `db:"contact_id"`
	FlowID      string `db:"flow_id"`
	FlowHash    string `db:"flow_hash"`
	Step        string `db:"step"`
	Status      string `db:"status"`
	Vars        []byte `db:"vars_sealed"`
	Origin      string `db:"origin"`
	Address     []byte `db:"address_sealed"`
	Language    string `db:"language"`
	Attempts    int    `db:"attempts"`
	Secure      string `db:"secure"`
	StaySecure  bool   `db:"stay_secure"`
	PromptSent  bool   `db:"prompt_sent"`
	LinkSentAt  int64  `db:"link_sent_at"`
	LinkResends int    `db:"link_resends"`
	Queue       string `db:"queue"`
	TimerDue    int64  `db:"timer_due"`
	Lines       int64  `db:"lines"`
	Created     int64  `db:"created"`
	Updated     int64  `db:"updated"`
}

const convCols = `id, contact_id, flow_id, flow_hash, step, status, vars_sealed, origin, address_sealed, language, attempts,
	secure, stay_secure, prompt_sent, link_sent_at, link_resends, queue, timer_due, lines, created, updated`

func (t *tx) OpenConversation(ctx context.Context, contactID string) (*engine.Conversation, error) {
	for _, id := range t.order {
		if r := t.convs[id]; r.c.ContactID == contactID && r.c.Status != engine.Ended {
			return copyConv(r.c), nil
		}
	}
	if t.prefetched[contactID] {
		// ContactByAddress already loaded the open conversation, if any.
		return nil, engine.ErrNotFound
	}
	if refuse, err := t.unlocked(ctx); refuse || err != nil {
		return nil, err
	}
	c, err := t.loadConv(ctx, `contact_id = ? AND status <> 'ended'`, contactID)
	if err == nil && c.Status == engine.Ended {
		// Open in the database, but this transaction has ended it.
		return nil, engine.ErrNotFound
	}
	return c, err
}

func (t *tx) Conversation(ctx context.Context, id string) (*engine.Conversation, error) {
	if r, ok := t.convs[id]; ok {
		return copyConv(r.c), nil
	}
	if refuse, err := t.unlocked(ctx); refuse || err != nil {
		return nil, err
	}
	return t.loadConv(ctx, `id = ?`, id)
}

// loadConv reads and locks one conversation. A conversation this
// transaction has already loaded or saved comes from memory, so that its
// staged changes are neither lost nor hidden by the row in the database.
func (t *tx) loadConv(ctx context.Context, where string, arg any) (*engine.Conversation, error) {
	var r convDB
	err := t.get(ctx, &r, t.s.q(`SELECT `+convCols+` FROM conversations WHERE `+where+t.s.forUpdate()), arg)
	if errors.Is(err, errNoRows) {
		return nil, engine.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load conversation: %w", err)
	}
	if staged, ok := t.convs[r.ID]; ok {
		return copyConv(staged.c), nil
	}
	return t.keepLoaded(r)
}

// keepLoaded opens a conversation row read from the database and keeps it
// as loaded by this transaction.
func (t *tx) keepLoaded(r convDB) (*engine.Conversation, error) {
	c, err := t.openConv(r)
	if err != nil {
		return nil, err
	}
	t.convs[c.ID] = &convRow{c: copyConv(c), exists: true, lines: r.Lines, addr: c.Address}
	t.order = append(t.order, c.ID)
	return c, nil
}

func (t *tx) openConv(r convDB) (*engine.Conversation, error) {
	rawVars, err := t.s.ring.Open(r.Vars, seal.AD{Table: "conversations", Column: "vars", Row: r.ID})
	if err != nil {
		return nil, fmt.Errorf("open conversation %s: %w", r.ID, err)
	}
	vars, err := decodeVars(rawVars)
	if err != nil {
		return nil, fmt.Errorf("conversation %s: %w", r.ID, err)
	}
	addr, err := t.s.ring.OpenString(r.Address, seal.AD{Table: "conversations", Column: "address", Row: r.ID})
	if err != nil {
		return nil, fmt.Errorf("open conversation %s: %w", r.ID, err)
	}
	return &engine.Conversation{ID: r.ID, ContactID: r.ContactID, FlowID: r.FlowID, FlowHash: r.FlowHash, Step: r.Step,
		Status: engine.Status(r.Status), Vars: vars, Origin: engine.Channel(r.Origin), Address: addr, Language: r.Language,
		Attempts: r.Attempts, Secure: engine.SecureState(r.Secure), StaySecure: r.StaySecure, PromptSent: r.PromptSent,
		LinkSentAt: fromMicros(r.LinkSentAt), LinkResends: r.LinkResends, Queue: r.Queue, TimerDue: fromMicros(r.TimerDue),
		Created: fromMicros(r.Created), Updated: fromMicros(r.Updated)}, nil
}

func copyConv(c *engine.Conversation) *engine.Conversation {
	n := *c
	n.Vars = make(map[string]any, len(c.Vars))
	for k, v := range c.Vars {
		n.Vars[k] = v
	}
	return &n
}

func (t *tx) SaveConversation(ctx context.Context, c *engine.Conversation) error {
	if c.ContactID == "" {
		return errors.New("save conversation: it has no contact")
	}
	if c.ID == "" {
		c.ID = newID()
		t.stage(&convRow{c: copyConv(c)})
		return nil
	}
	if r, ok := t.convs[c.ID]; ok {
		r.c = copyConv(c)
		return nil
	}
	// A conversation saved by id without loading it first: find out whether
	// it exists (and lock it), so that commit updates rather than inserts.
	if refuse, err := t.unlocked(ctx); refuse || err != nil {
		return err
	}
	r := &convRow{c: copyConv(c)}
	var row struct {
		Lines   int64  `db:"lines"`
		Address []byte `db:"address_sealed"`
	}
	err := t.get(ctx, &row, t.s.q(`SELECT lines, address_sealed FROM conversations WHERE id = ?`+t.s.forUpdate()), c.ID)
	switch {
	case err == nil:
		r.exists, r.lines = true, row.Lines
		r.addr, err = t.s.ring.OpenString(row.Address, seal.AD{Table: "conversations", Column: "address", Row: c.ID})
		if err != nil {
			return fmt.Errorf("open conversation %s: %w", c.ID, err)
		}
	case !errors.Is(err, errNoRows):
		return fmt.Errorf("save conversation %s: %w", c.ID, err)
	}
	t.stage(r)
	return nil
}

func (t *tx) stage(r *convRow) {
	t.convs[r.c.ID] = r
	t.order = append(t.order, r.c.ID)
}

func (t *tx) Append(_ context.Context, lines []engine.TranscriptLine, out []*engine.Outbound, events []engine.Event) error {
	t.lines = append(t.lines, lines...)
	t.out = append(t.out, out...)
	t.events = append(t.events, events...)
	return nil
}

func (t *tx) SetTimers(ctx context.Context, conversationID string, timers []engine.Timer) error {
	if t.opt != nil && t.opt.begun {
		t.opt.setTimers(conversationID, timers)
		return nil
	}
	if _, err := t.unlocked(ctx); err != nil {
		return err
	}
	if _, err := t.exec(ctx, t.s.q(`DELETE FROM timers WHERE conversation_id = ?`), conversationID); err != nil {
		return err
	}
	for _, tm := range timers {
		if _, err := t.exec(ctx, t.s.q(`INSERT INTO timers (conversation_id, kind, step, due) VALUES (?, ?, ?, ?)`),
			conversationID, string(tm.Kind), tm.Step, micros(tm.Due)); err != nil {
			return err
		}
	}
	return nil
}

func (t *tx) DueTimers(ctx context.Context, now time.Time, limit int) ([]engine.Timer, error) {
	if limit <= 0 {
		return nil, nil
	}
	if refuse, err := t.unlocked(ctx); refuse || err != nil {
		return nil, err
	}
	lock := ""
	if t.s.pg {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	var rows []struct {
		ID   int64  `db:"id"`
		Conv string `db:"conversation_id"`
		Kind string `db:"kind"`
		Step string `db:"step"`
		Due  int64  `db:"due"`
	}
	err := t.tx.SelectContext(ctx, &rows, t.s.q(`SELECT id, conversation_id, kind, step, due FROM timers WHERE due <= ?
		ORDER BY due, id LIMIT `+strconv.Itoa(limit)+lock), micros(now))
	if err != nil {
		return nil, err
	}
	out := make([]engine.Timer, len(rows))
	for i, r := range rows {
		out[i] = engine.Timer{ID: r.ID, ConversationID: r.Conv, Kind: engine.TimerKind(r.Kind), Step: r.Step, Due: fromMicros(r.Due)}
	}
	return out, nil
}

func (t *tx) DeleteTimer(ctx context.Context, id int64) error {
	if refuse, err := t.unlocked(ctx); refuse || err != nil {
		return err
	}
	_, err := t.exec(ctx, t.s.q(`DELETE FROM timers WHERE id = ?`), id)
	return err
}

// SaveLink stores a link's token hash. The engine carries on without the
// link when this fails (it hands the conversation to a person), so on
// PostgreSQL the insert runs under a savepoint: a failed statement would
// otherwise abort the whole transaction and lose the fallback with it.
func (t *tx) SaveLink(ctx context.Context, l engine.SecureLink) error {
	if t.opt != nil && t.opt.begun {
		t.opt.links = append(t.opt.links, l)
		return nil
	}
	if _, err := t.unlocked(ctx); err != nil {
		return err
	}
	return t.savepoint(ctx, "save_link", func() error {
		_, err := t.tx.ExecContext(ctx, t.s.q(`INSERT INTO secure_links (token_hash, conversation_id, contact_id, created, expires)
			VALUES (?, ?, ?, ?, ?)`), l.TokenHash, l.ConversationID, l.ContactID, micros(l.Created), micros(l.Expires))
		if err != nil {
			return fmt.Errorf("save secure link: %w", err)
		}
		return nil
	})
}

// savepoint runs fn so that its failure leaves the transaction usable. Only
// PostgreSQL needs it: SQLite fails the statement, not the transaction.
func (t *tx) savepoint(ctx context.Context, name string, fn func() error) error {
	if !t.s.pg {
		return fn()
	}
	if _, err := t.tx.ExecContext(ctx, "SAVEPOINT "+name); err != nil {
		return err
	}
	if err := fn(); err != nil {
		if _, rerr := t.tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT "+name); rerr != nil {
			return errors.Join(err, rerr)
		}
		return err
	}
	_, err := t.tx.ExecContext(ctx, "RELEASE SAVEPOINT "+name)
	return err
}

// commit writes the buffered conversations, lines, outbox rows and audit
// records. Conversations go first, in the order the transaction met them,
// so that one ended in this transaction leaves the contact's one open slot
// before a new one takes it.
func (t *tx) commit(ctx context.Context) error {
	if t.s.pg && len(t.order) == 1 && len(t.lines) <= maxBatch && len(t.out) <= maxBatch && len(t.events) <= maxBatch {
		r := t.convs[t.order[0]]
		combinable := true
		for _, l := range t.lines {
			combinable = combinable && l.ConversationID == r.c.ID
		}
		if combinable {
			return t.commitCombined(ctx, r)
		}
	}
	added := map[string]int64{}
	for _, l := range t.lines {
		if _, ok := t.convs[l.ConversationID]; !ok {
			return fmt.Errorf("transcript line for conversation %s, which this transaction did not load or save", l.ConversationID)
		}
		added[l.ConversationID]++
	}
	for _, id := range t.order {
		if err := t.writeConv(ctx, t.convs[id], added[id]); err != nil {
			return err
		}
	}
	if err := t.writeLines(ctx); err != nil {
		return err
	}
	if err := t.writeOutbox(ctx); err != nil {
		return err
	}
	return t.writeAudit(ctx)
}

// writeConv writes one conversation, with its count of transcript lines
// grown by added.
func (t *tx) writeConv(ctx context.Context, r *convRow, added int64) error {
	query, args, err := t.convStmt(r, added)
	if err != nil {
		return err
	}
	if _, err := t.exec(ctx, t.s.q(query), args...); err != nil {
		return t.convError(r.c, err)
	}
	t.wroteConv(r)
	return nil
}

// wroteConv records that a conversation's row now matches memory.
func (t *tx) wroteConv(r *convRow) { r.exists, r.addr = true, r.c.Address }

// convStmt returns the UPDATE or INSERT that writes a conversation.
func (t *tx) convStmt(r *convRow, added int64) (string, []any, error) {
	c := r.c
	rawVars, err := encodeVars(c.Vars)
	if err != nil {
		return "", nil, fmt.Errorf("save conversation %s: %w", c.ID, err)
	}
	vars, err := t.s.ring.Seal(rawVars, seal.AD{Table: "conversations", Column: "vars", Row: c.ID})
	if err != nil {
		return "", nil, fmt.Errorf("save conversation %s: %w", c.ID, err)
	}
	args := []any{c.FlowID, c.FlowHash, c.Step, string(c.Status), vars, string(c.Origin), c.Language, c.Attempts, string(c.Secure),
		c.StaySecure, c.PromptSent, micros(c.LinkSentAt), c.LinkResends, c.Queue, micros(c.TimerDue), r.lines + added, micros(c.Updated)}
	if r.exists {
		set := ``
		if c.Address != r.addr {
			addr, err := t.s.ring.SealString(c.Address, seal.AD{Table: "conversations", Column: "address", Row: c.ID})
			if err != nil {
				return "", nil, fmt.Errorf("save conversation %s: %w", c.ID, err)
			}
			set = `address_sealed = ?, `
			args = append([]any{addr}, args...)
		}
		if t.s.pg {
			// Readers without a lock check the version before they write.
			set += `version = version + 1, `
		}
		return `UPDATE conversations SET ` + set + `flow_id = ?, flow_hash = ?, step = ?, status = ?,
			vars_sealed = ?, origin = ?, language = ?, attempts = ?, secure = ?, stay_secure = ?, prompt_sent = ?, link_sent_at = ?,
			link_resends = ?, queue = ?, timer_due = ?, lines = ?, updated = ? WHERE id = ?`, append(args, c.ID), nil
	}
	addr, err := t.s.ring.SealString(c.Address, seal.AD{Table: "conversations", Column: "address", Row: c.ID})
	if err != nil {
		return "", nil, fmt.Errorf("save conversation %s: %w", c.ID, err)
	}
	return `INSERT INTO conversations (flow_id, flow_hash, step, status, vars_sealed, origin, language,
		attempts, secure, stay_secure, prompt_sent, link_sent_at, link_resends, queue, timer_due, lines, updated,
		id, contact_id, address_sealed, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		append(args, c.ID, c.ContactID, addr, micros(c.Created)), nil
}

// convError explains a failed conversation write. The error stays wrapped:
// a unique violation from two first messages that raced is retried.
func (t *tx) convError(c *engine.Conversation, err error) error {
	if msg := err.Error(); strings.Contains(msg, "conversations_open") || strings.Contains(msg, "conversations.contact_id") {
		return fmt.Errorf("save conversation %s: its contact already has another open conversation: %w", c.ID, err)
	}
	return fmt.Errorf("save conversation %s: %w", c.ID, err)
}

// maxBatch bounds the rows of one multi-row INSERT, to stay far below the
// bind-parameter limits of SQLite (32766) and PostgreSQL (65535).
const maxBatch = 500

// batches calls fn with each run of at most maxBatch of n rows.
func batches(n int, fn func(from, to int) error) error {
	for from := 0; from < n; from += maxBatch {
		if err := fn(from, min(from+maxBatch, n)); err != nil {
			return err
		}
	}
	return nil
}

// values returns "(?, ?, ?), (?, ?, ?)" for rows rows of cols columns.
func values(rows, cols int) string {
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + ")"
	return strings.TrimSuffix(strings.Repeat(one+", ", rows), ", ")
}

// writeLines inserts the transcript lines, numbered per conversation after
// those already written.
func (t *tx) writeLines(ctx context.Context) error {
	next := t.lineNumbers()
	return batches(len(t.lines), func(from, to int) error {
		query, args, err := t.linesStmt(next, from, to)
		if err != nil {
			return err
		}
		if _, err := t.exec(ctx, t.s.q(query), args...); err != nil {
			return fmt.Errorf("save transcript: %w", err)
		}
		return nil
	})
}

// lineNumbers returns, per conversation, the number of its last line in
// the database.
func (t *tx) lineNumbers() map[string]int64 {
	next := make(map[string]int64, len(t.convs))
	for id, r := range t.convs {
		next[id] = r.lines
	}
	return next
}

// linesStmt returns the INSERT of lines [from, to), numbering them on from
// next.
func (t *tx) linesStmt(next map[string]int64, from, to int) (string, []any, error) {
	args := make([]any, 0, (to-from)*8)
	for _, l := range t.lines[from:to] {
		n := next[l.ConversationID] + 1
		next[l.ConversationID] = n
		body, err := t.s.ring.SealString(l.Text, seal.AD{Table: "transcript", Column: "body", Row: lineRow(l.ConversationID, n)})
		if err != nil {
			return "", nil, fmt.Errorf("save transcript: %w", err)
		}
		args = append(args, l.ConversationID, n, micros(l.At), l.Inbound, string(l.Channel), l.Step, l.Sensitive, body)
	}
	return `INSERT INTO transcript (conversation_id, n, at, inbound, channel, step, sensitive, body_sealed)
			VALUES ` + values(to-from, 8), args, nil
}

// lineRow is the sealing row of transcript line n of a conversation.
func lineRow(conversationID string, n int64) string {
	return conversationID + "/" + strconv.FormatInt(n, 10)
}

// outboundPayload is the sealed part of an outbox row.
type outboundPayload struct {
	Text      string             `json:"text"`
	Choices   []engine.OutChoice `json:"choices,omitempty"`
	Input     string             `json:"input,omitempty"`
	Sensitive bool               `json:"sensitive,omitempty"`
	System    bool               `json:"system,omitempty"`
}

// writeOutbox inserts the outbound messages and gives each its row's
// sequence number as its ID, as the outbox worker will know it.
func (t *tx) writeOutbox(ctx context.Context) error {
	waiting, err := t.waitingContacts(ctx)
	if err != nil {
		return err
	}
	return batches(len(t.out), func(from, to int) error {
		query, args, byKey, err := t.outboxStmt(from, to, waiting)
		if err != nil {
			return err
		}
		// RETURNING gives rows in no promised order: match them by id.
		rows, err := t.query(ctx, t.s.q(query+` RETURNING seq, id, status`), args...)
		if err != nil {
			return fmt.Errorf("save outbox: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var seq int64
			var id, status string
			if err := rows.Scan(&seq, &id, &status); err != nil {
				return fmt.Errorf("save outbox: %w", err)
			}
			t.numbered(byKey, seq, id, status == "sending")
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("save outbox: %w", err)
		}
		return rows.Close()
	})
}

// waitingContacts returns, on SQLite when rows are inserted claimed (see
// outboxStmt), the contacts of the transaction's messages that have an
// older message undelivered. A statement of SQLite's may see its own rows,
// so this is asked before the insert rather than inside it, as PostgreSQL
// does.
func (t *tx) waitingContacts(ctx context.Context) (map[string]bool, error) {
	if t.s.pg || len(t.out) == 0 || t.s.written.Load() == nil {
		return nil, nil
	}
	waiting := map[string]bool{}
	for _, o := range t.out[:min(len(t.out), maxBatch)] {
		if _, asked := waiting[o.ContactID]; asked {
			continue
		}
		var older bool
		if err := t.queryRow(ctx, `SELECT `+olderUndelivered, o.ContactID).Scan(&older); err != nil {
			return nil, fmt.Errorf("save outbox: %w", err)
		}
		waiting[o.ContactID] = older
	}
	return waiting, nil
}

// outboxStmt returns the INSERT of outbound messages [from, to) and the
// messages by their new row ids.
//
// When someone delivers what commits write (OnOutbox), the transaction's
// messages to each contact are inserted already claimed, leased as
// ClaimOutbox would, unless an older message to the contact is undelivered:
// the worker gets them from the commit and sends them, in order, without
// claiming them. waiting says which contacts have an older message
// undelivered (SQLite, see waitingContacts); when nil, the statement finds
// out for each row itself, which PostgreSQL answers from before the insert.
func (t *tx) outboxStmt(from, to int, waiting map[string]bool) (string, []any, map[string]*engine.Outbound, error) {
	now := t.s.now()
	claimAtBirth := t.s.written.Load() != nil && from == 0
	args := make([]any, 0, (to-from)*12)
	rows := make([]string, 0, to-from)
	byKey := make(map[string]*engine.Outbound, to-from)
	for _, o := range t.out[from:to] {
		id := newID()
		byKey[id] = o
		payload, err := json.Marshal(outboundPayload{Text: o.Text, Choices: o.Choices, Input: o.Input, Sensitive: o.Sensitive, System: o.System})
		if err != nil {
			return "", nil, nil, fmt.Errorf("save outbox: %w", err)
		}
		body, err := t.s.ring.Seal(payload, seal.AD{Table: "outbox", Column: "body", Row: id})
		if err != nil {
			return "", nil, nil, fmt.Errorf("save outbox: %w", err)
		}
		addr, err := t.s.ring.SealString(o.Address, seal.AD{Table: "outbox", Column: "address", Row: id})
		if err != nil {
			return "", nil, nil, fmt.Errorf("save outbox: %w", err)
		}
		args = append(args, id, o.ConversationID, o.ContactID, string(o.Channel), addr, body, o.Link)
		switch {
		case claimAtBirth && waiting == nil:
			rows = append(rows, `(?, ?, ?, ?, ?, ?, ?, CASE WHEN `+olderUndelivered+` THEN 'pending' ELSE 'sending' END,
				CASE WHEN `+olderUndelivered+` THEN CAST(? AS BIGINT) ELSE CAST(? AS BIGINT) END, ?, ?)`)
			args = append(args, o.ContactID, o.ContactID, micros(now), micros(now.Add(birthLease)), micros(now), micros(now))
		case claimAtBirth && !waiting[o.ContactID]:
			rows = append(rows, `(?, ?, ?, ?, ?, ?, ?, 'sending', ?, ?, ?)`)
			args = append(args, micros(now.Add(birthLease)), micros(now), micros(now))
		default:
			rows = append(rows, `(?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)`)
			args = append(args, micros(now), micros(now), micros(now))
		}
	}
	return `INSERT INTO outbox (id, conversation_id, contact_id, channel, address_sealed,
			body_sealed, link, status, next_attempt, created, updated) VALUES ` + strings.Join(rows, ", "), args, byKey, nil
}

// olderUndelivered is true when the contact named by its parameter has a
// message not yet delivered.
const olderUndelivered = `EXISTS (SELECT 1 FROM outbox p WHERE p.contact_id = ? AND p.status IN ('pending', 'sending'))`

// birthLease is the lease of a message inserted already claimed: the
// delivery worker's default lease.
const birthLease = time.Minute

// numbered records an inserted outbox row: the message's ID, its row id,
// and whether it was inserted claimed.
func (t *tx) numbered(byKey map[string]*engine.Outbound, seq int64, id string, claimed bool) {
	o := byKey[id]
	if o == nil {
		return
	}
	o.ID = seq
	if t.keys == nil {
		t.keys = map[*engine.Outbound]string{}
	}
	t.keys[o] = id
	if claimed {
		if t.born == nil {
			t.born = map[string]bool{}
		}
		t.born[id] = true
	}
}

// writeAudit chains the transaction's events after the log's head and
// appends them, in the same transaction as what they record.
func (t *tx) writeAudit(ctx context.Context) error {
	if len(t.events) == 0 {
		return nil
	}
	if !t.s.pg && len(t.events) <= maxBatch {
		return t.chainInline(ctx)
	}
	return batches(len(t.events), func(from, to int) error {
		query, args := pendingStmt(t.auditRecords()[from:to], t.s.now)
		if _, err := t.exec(ctx, t.s.q(query), args...); err != nil {
			return fmt.Errorf("append audit: %w", err)
		}
		return nil
	})
}

// auditRecords turns the transaction's events into audit records.
func (t *tx) auditRecords() []audit.Record {
	records := make([]audit.Record, len(t.events))
	for i, e := range t.events {
		records[i] = audit.Record{Time: e.At, Actor: audit.Actor{Type: e.Actor, ID: e.ActorID}, Source: e.Source,
			Action: e.Action, Object: e.Object, Conversation: e.ConversationID, Channel: string(e.Channel),
			Outcome: e.Outcome, Reason: e.Reason, RequestID: e.RequestID}
		if records[i].Time.IsZero() {
			records[i].Time = t.s.now()
		}
	}
	return records
}

// commitCombined writes one conversation, its lines, its outbox rows and
// its audit records in a single PostgreSQL statement of data-modifying
// CTEs: one round trip where the plain path takes four.
func (t *tx) commitCombined(ctx context.Context, r *convRow) error {
	var b strings.Builder
	var args []any
	convQ, convArgs, err := t.convStmt(r, int64(len(t.lines)))
	if err != nil {
		return err
	}
	b.WriteString("WITH c AS (" + convQ + " RETURNING 1)")
	args = append(args, convArgs...)
	args, byKey, err := t.linesOutboxAudit(&b, args)
	if err != nil {
		return err
	}
	b.WriteString(` SELECT (SELECT count(*) FROM c), ` + outboxNumbers)
	var written int
	var seqs pq.Int64Array
	var ids, claimed pq.StringArray
	if err := t.queryRow(ctx, t.s.q(b.String()), args...).Scan(&written, &seqs, &ids, &claimed); err != nil {
		return t.convError(r.c, err)
	}
	if written != 1 {
		return fmt.Errorf("save conversation %s: %w", r.c.ID, engine.ErrNotFound)
	}
	t.wroteConv(r)
	t.numberOutbox(byKey, seqs, ids, claimed)
	return nil
}

// linesOutboxAudit adds to a combined statement the CTEs l (the transcript
// lines), o (the outbox rows, returning their numbers and ids) and a (the
// audit records).
func (t *tx) linesOutboxAudit(b *strings.Builder, args []any) ([]any, map[string]*engine.Outbound, error) {
	if len(t.lines) > 0 {
		q, a, err := t.linesStmt(t.lineNumbers(), 0, len(t.lines))
		if err != nil {
			return nil, nil, err
		}
		b.WriteString(", l AS (" + q + " RETURNING 1)")
		args = append(args, a...)
	}
	var byKey map[string]*engine.Outbound
	if len(t.out) > 0 {
		q, a, keys, err := t.outboxStmt(0, len(t.out), nil)
		if err != nil {
			return nil, nil, err
		}
		byKey = keys
		b.WriteString(", o AS (" + q + " RETURNING seq, id, status)")
		args = append(args, a...)
	} else {
		b.WriteString(", o AS (SELECT 0::bigint AS seq, ''::text AS id, ''::text AS status WHERE false)")
	}
	if len(t.events) > 0 {
		q, a := pendingStmt(t.auditRecords(), t.s.now)
		b.WriteString(", a AS (" + q + " RETURNING 1)")
		args = append(args, a...)
	}
	return args, byKey, nil
}

// outboxNumbers selects the numbers and ids of the rows of the CTE o, and
// the ids of those inserted claimed.
const outboxNumbers = `COALESCE((SELECT array_agg(o.seq) FROM o), '{}'), COALESCE((SELECT array_agg(o.id) FROM o), '{}'),
	COALESCE((SELECT array_agg(o.id) FROM o WHERE o.status = 'sending'), '{}')`

// numberOutbox records the rows of the CTE o (see numbered), matching
// them by id: RETURNING promises no order.
func (t *tx) numberOutbox(byKey map[string]*engine.Outbound, seqs []int64, ids, claimed []string) {
	born := make(map[string]bool, len(claimed))
	for _, id := range claimed {
		born[id] = true
	}
	for i, id := range ids {
		t.numbered(byKey, seqs[i], id, born[id])
	}
}

// The statements of a message transaction are the same few shapes again
// and again: each is prepared once (after the transaction that first used
// it, when a connection is free) and reused, so SQLite does not parse it,
// nor PostgreSQL plan it, for every message.

// stmt returns the prepared form of query, or nil, and notes an unprepared
// query for preparing after the transaction.
func (t *tx) stmt(ctx context.Context, query string) *sql.Stmt {
	if st := t.s.stmts.get(query); st != nil {
		if t.tx == nil {
			return st
		}
		return t.tx.StmtContext(ctx, st)
	}
	t.unprepared = append(t.unprepared, query)
	return nil
}

// conn is what the transaction's statements run on: its database
// transaction, or the pool for one that runs without (optimistic.go).
func (t *tx) conn() interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
} {
	if t.tx == nil {
		return t.s.db
	}
	return t.tx
}

func (t *tx) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.conn().ExecContext(ctx, query, args...)
}

func (t *tx) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.conn().QueryContext(ctx, query, args...)
}

// get scans the one row query returns into dest, a struct, with sqlx's
// Get, through the prepared statement when there is one; no row is
// errNoRows.
func (t *tx) get(ctx context.Context, dest any, query string, args ...any) error {
	if st := t.stmt(ctx, query); st != nil {
		return (&sqlx.Stmt{Stmt: st, Mapper: t.s.db.Mapper}).GetContext(ctx, dest, args...)
	}
	if t.tx == nil {
		return t.s.db.GetContext(ctx, dest, query, args...)
	}
	return t.tx.GetContext(ctx, dest, query, args...)
}

func (t *tx) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.conn().QueryRowContext(ctx, query, args...)
}

// chainInline chains the transaction's records straight into the audit
// log. SQLite has one writer, so taking the head here makes no one wait,
// and it spares the rows a second write through audit_pending.
//
// The store remembers the head it last wrote. Chained after that head, the
// records move it with one guarded UPDATE that matches only if the head is
// still the remembered one; when it is not (another process appended, or a
// transaction that moved it rolled back), the head is read and the records
// chained again.
func (t *tx) chainInline(ctx context.Context) error {
	records := t.auditRecords()
	if head, ok := t.s.head.get(); ok {
		prev := chain(&head, records)
		res, err := t.exec(ctx, `UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1 AND seq = ? AND hash = ?`,
			prev.Seq, prev.Hash, head.Seq, head.Hash)
		if err != nil {
			return fmt.Errorf("audit head: %w", err)
		}
		if n, err := res.RowsAffected(); err == nil && n == 1 {
			return t.appendChained(ctx, records, prev)
		}
	}
	head := &audit.Record{}
	if err := t.queryRow(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`).Scan(&head.Seq, &head.Hash); err != nil {
		return fmt.Errorf("audit head: %w", err)
	}
	if err := headBehind(ctx, t.tx, head.Seq); err != nil {
		return err
	}
	prev := chain(head, records)
	if _, err := t.exec(ctx, `UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`, prev.Seq, prev.Hash); err != nil {
		return fmt.Errorf("audit head: %w", err)
	}
	return t.appendChained(ctx, records, prev)
}

// appendChained inserts chained records and remembers their last as the
// head.
func (t *tx) appendChained(ctx context.Context, records []audit.Record, last *audit.Record) error {
	query, args := insertStmt(records)
	if _, err := t.exec(ctx, query, args...); err != nil {
		t.s.head.forget()
		return fmt.Errorf("append audit: %w", err)
	}
	t.s.head.set(last.Seq, last.Hash)
	return nil
}
