package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

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
	convs    map[string]*convRow
	order    []string
	lines    []engine.TranscriptLine
	out      []*engine.Outbound
	events   []engine.Event
	contacts map[string]*engine.Contact
}

type convRow struct {
	c      *engine.Conversation
	exists bool
	lines  int64 // transcript lines written so far
}

func newTx(s *Store, t *sqlx.Tx) *tx {
	return &tx{s: s, tx: t, convs: map[string]*convRow{}, contacts: map[string]*engine.Contact{}}
}

func (t *tx) MarkInbound(ctx context.Context, ch engine.Channel, providerID string) (bool, error) {
	res, err := t.tx.ExecContext(ctx, t.s.q(`INSERT INTO inbound_seen (channel, provider_id, seen) VALUES (?, ?, ?)
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
	var r contactRow
	err := t.tx.GetContext(ctx, &r, t.s.q(`SELECT `+contactCols+` FROM contacts WHERE address_index = ?`),
		t.s.ring.Index(string(ch), address))
	if errors.Is(err, errNoRows) {
		return nil, engine.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return t.contact(r)
}

func (t *tx) Contact(ctx context.Context, id string) (*engine.Contact, error) {
	var r contactRow
	err := t.tx.GetContext(ctx, &r, t.s.q(`SELECT `+contactCols+` FROM contacts WHERE id = ?`), id)
	if errors.Is(err, errNoRows) {
		return nil, engine.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return t.contact(r)
}

func (t *tx) SaveContact(ctx context.Context, c *engine.Contact) error {
	if c.ID != "" {
		_, err := t.tx.ExecContext(ctx, t.s.q(`UPDATE contacts SET language = ?, opted_out = ? WHERE id = ?`),
			c.Language, c.OptedOut, c.ID)
		return err
	}
	id := newID()
	addr, err := t.s.ring.SealString(c.Address, seal.AD{Table: "contacts", Column: "address", Row: id})
	if err != nil {
		return err
	}
	idx := t.s.ring.Index(string(c.Channel), c.Address)
	// Two first messages of one contact may race: the loser finds the
	// winner's row instead of failing.
	res, err := t.tx.ExecContext(ctx, t.s.q(`INSERT INTO contacts (id, channel, address_index, address_sealed, language, opted_out, created)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (address_index) DO NOTHING`),
		id, string(c.Channel), idx, addr, c.Language, c.OptedOut, micros(t.s.now()))
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
	c.ID = id
	return nil
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
	return t.loadConv(ctx, `contact_id = ? AND status <> 'ended'`, contactID)
}

func (t *tx) Conversation(ctx context.Context, id string) (*engine.Conversation, error) {
	if r, ok := t.convs[id]; ok {
		return copyConv(r.c), nil
	}
	return t.loadConv(ctx, `id = ?`, id)
}

func (t *tx) loadConv(ctx context.Context, where string, arg any) (*engine.Conversation, error) {
	var r convDB
	err := t.tx.GetContext(ctx, &r, t.s.q(`SELECT `+convCols+` FROM conversations WHERE `+where+t.s.forUpdate()), arg)
	if errors.Is(err, errNoRows) {
		return nil, engine.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	c, err := t.openConv(r)
	if err != nil {
		return nil, err
	}
	t.convs[c.ID] = &convRow{c: copyConv(c), exists: true, lines: r.Lines}
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

func (t *tx) SaveConversation(_ context.Context, c *engine.Conversation) error {
	if c.ID == "" {
		c.ID = newID()
	}
	if r, ok := t.convs[c.ID]; ok {
		r.c = copyConv(c)
		return nil
	}
	t.convs[c.ID] = &convRow{c: copyConv(c)}
	t.order = append(t.order, c.ID)
	return nil
}

func (t *tx) Append(_ context.Context, lines []engine.TranscriptLine, out []*engine.Outbound, events []engine.Event) error {
	t.lines = append(t.lines, lines...)
	t.out = append(t.out, out...)
	t.events = append(t.events, events...)
	return nil
}

func (t *tx) SetTimers(ctx context.Context, conversationID string, timers []engine.Timer) error {
	if _, err := t.tx.ExecContext(ctx, t.s.q(`DELETE FROM timers WHERE conversation_id = ?`), conversationID); err != nil {
		return err
	}
	for _, tm := range timers {
		if _, err := t.tx.ExecContext(ctx, t.s.q(`INSERT INTO timers (conversation_id, kind, step, due) VALUES (?, ?, ?, ?)`),
			conversationID, string(tm.Kind), tm.Step, micros(tm.Due)); err != nil {
			return err
		}
	}
	return nil
}

func (t *tx) DueTimers(ctx context.Context, now time.Time, limit int) ([]engine.Timer, error) {
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
	_, err := t.tx.ExecContext(ctx, t.s.q(`DELETE FROM timers WHERE id = ?`), id)
	return err
}

func (t *tx) SaveLink(ctx context.Context, l engine.SecureLink) error {
	_, err := t.tx.ExecContext(ctx, t.s.q(`INSERT INTO secure_links (token_hash, conversation_id, contact_id, created, expires)
		VALUES (?, ?, ?, ?, ?)`), l.TokenHash, l.ConversationID, l.ContactID, micros(l.Created), micros(l.Expires))
	return err
}

// commit writes the buffered conversations, lines, outbox rows and audit
// records.
func (t *tx) commit(ctx context.Context) error {
	for _, id := range t.order {
		if err := t.writeConv(ctx, t.convs[id]); err != nil {
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

func (t *tx) writeConv(ctx context.Context, r *convRow) error {
	c := r.c
	for i := range t.lines {
		if t.lines[i].ConversationID == c.ID {
			r.lines++
		}
	}
	rawVars, err := encodeVars(c.Vars)
	if err != nil {
		return fmt.Errorf("conversation %s: %w", c.ID, err)
	}
	vars, err := t.s.ring.Seal(rawVars, seal.AD{Table: "conversations", Column: "vars", Row: c.ID})
	if err != nil {
		return err
	}
	args := []any{c.Step, string(c.Status), vars, string(c.Origin), c.Language, c.Attempts, string(c.Secure), c.StaySecure,
		c.PromptSent, micros(c.LinkSentAt), c.LinkResends, c.Queue, micros(c.TimerDue), r.lines, micros(c.Updated)}
	if r.exists {
		_, err = t.tx.ExecContext(ctx, t.s.q(`UPDATE conversations SET step = ?, status = ?, vars_sealed = ?, origin = ?, language = ?,
			attempts = ?, secure = ?, stay_secure = ?, prompt_sent = ?, link_sent_at = ?, link_resends = ?, queue = ?, timer_due = ?,
			lines = ?, updated = ? WHERE id = ?`), append(args, c.ID)...)
		return err
	}
	addr, err := t.s.ring.SealString(c.Address, seal.AD{Table: "conversations", Column: "address", Row: c.ID})
	if err != nil {
		return err
	}
	_, err = t.tx.ExecContext(ctx, t.s.q(`INSERT INTO conversations (step, status, vars_sealed, origin, language, attempts, secure,
		stay_secure, prompt_sent, link_sent_at, link_resends, queue, timer_due, lines, updated,
		id, contact_id, flow_id, flow_hash, address_sealed, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		append(args, c.ID, c.ContactID, c.FlowID, c.FlowHash, addr, micros(c.Created))...)
	if err == nil {
		r.exists = true
	}
	return err
}

// writeLines inserts the transcript lines in one statement, numbered per
// conversation after those already written.
func (t *tx) writeLines(ctx context.Context) error {
	if len(t.lines) == 0 {
		return nil
	}
	next := map[string]int64{}
	for id, r := range t.convs {
		next[id] = r.lines - t.countLines(id)
	}
	var b strings.Builder
	b.WriteString(`INSERT INTO transcript (conversation_id, n, at, inbound, channel, step, sensitive, body_sealed) VALUES `)
	args := make([]any, 0, len(t.lines)*8)
	for i, l := range t.lines {
		n, ok := next[l.ConversationID]
		if !ok {
			return fmt.Errorf("transcript line for conversation %s, which this transaction did not load", l.ConversationID)
		}
		n++
		next[l.ConversationID] = n
		body, err := t.s.ring.SealString(l.Text, seal.AD{Table: "transcript", Column: "body", Row: l.ConversationID + "/" + strconv.FormatInt(n, 10)})
		if err != nil {
			return err
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?)")
		args = append(args, l.ConversationID, n, micros(l.At), l.Inbound, string(l.Channel), l.Step, l.Sensitive, body)
	}
	_, err := t.tx.ExecContext(ctx, t.s.q(b.String()), args...)
	return err
}

func (t *tx) countLines(id string) int64 {
	var n int64
	for _, l := range t.lines {
		if l.ConversationID == id {
			n++
		}
	}
	return n
}

// outboundPayload is the sealed part of an outbox row.
type outboundPayload struct {
	Text      string             `json:"text"`
	Choices   []engine.OutChoice `json:"choices,omitempty"`
	Input     string             `json:"input,omitempty"`
	Sensitive bool               `json:"sensitive,omitempty"`
	System    bool               `json:"system,omitempty"`
}

func (t *tx) writeOutbox(ctx context.Context) error {
	if len(t.out) == 0 {
		return nil
	}
	now := micros(t.s.now())
	var b strings.Builder
	b.WriteString(`INSERT INTO outbox (id, conversation_id, contact_id, channel, address_sealed, body_sealed, link, status, next_attempt, created, updated) VALUES `)
	args := make([]any, 0, len(t.out)*11)
	for i, o := range t.out {
		id := newID()
		payload, err := json.Marshal(outboundPayload{Text: o.Text, Choices: o.Choices, Input: o.Input, Sensitive: o.Sensitive, System: o.System})
		if err != nil {
			return err
		}
		body, err := t.s.ring.Seal(payload, seal.AD{Table: "outbox", Column: "body", Row: id})
		if err != nil {
			return err
		}
		addr, err := t.s.ring.SealString(o.Address, seal.AD{Table: "outbox", Column: "address", Row: id})
		if err != nil {
			return err
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)")
		args = append(args, id, o.ConversationID, o.ContactID, string(o.Channel), addr, body, o.Link, now, now, now)
	}
	_, err := t.tx.ExecContext(ctx, t.s.q(b.String()), args...)
	return err
}

// writeAudit chains the transaction's events after the log's head and
// appends them, in the same transaction as what they record.
func (t *tx) writeAudit(ctx context.Context) error {
	if len(t.events) == 0 {
		return nil
	}
	records := make([]audit.Record, len(t.events))
	for i, e := range t.events {
		records[i] = audit.Record{Time: e.At, Actor: audit.Actor{Type: e.Actor, ID: e.ActorID}, Source: e.Source,
			Action: e.Action, Object: e.Object, Conversation: e.ConversationID, Channel: string(e.Channel),
			Outcome: e.Outcome, Reason: e.Reason, RequestID: e.RequestID}
		if records[i].Time.IsZero() {
			records[i].Time = t.s.now()
		}
	}
	return appendAudit(ctx, t.s, t.tx, records)
}
