package e2e

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/safeflow/safeflow/channels/messenger/messengertest"
	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/flows"
	"github.com/safeflow/safeflow/internal/convtest"
)

// simLink is how the simulator behind `safeflow test` writes secure links
// (link-1, link-2...); the real service issues random tokens instead.
var simLink = regexp.MustCompile(`https://secure\.clinic\.test/s/link-(\d+)`)

// tokenURL matches a link the service issues: its public URL, /s/, and a
// 256-bit token in unpadded base64url.
const tokenURL = `https://clinic\.test/s/[A-Za-z0-9_-]{43}`

var realLink = regexp.MustCompile(tokenURL)

// contactSeq numbers the patients of every replay, so that no two share a
// phone number or PSID, even across services.
var contactSeq atomic.Int64

// examples loads the example flows and their conversation tests.
func examples(t *testing.T) *convtest.Suite {
	t.Helper()
	suite, err := convtest.Load([]string{examplesDir})
	if err != nil {
		t.Fatalf("load the example tests: %v", err)
	}
	if len(suite.Files) == 0 {
		t.Fatalf("no *.test.yaml files in %s", examplesDir)
	}
	return suite
}

// TestExamples replays every conversation test of examples/ against the
// real service, on SQLite and on PostgreSQL: each patient message is a
// signed webhook, each SMS or Messenger reply is read at the provider's
// test server, and the secure part is driven through the engine. When all
// have run, no sensitive answer of any of them may be found in any SMS or
// Messenger message.
func TestExamples(t *testing.T) {
	suite := examples(t)
	var total atomic.Int64
	t.Run("replay", func(t *testing.T) {
		for _, kind := range storeKinds {
			t.Run(string(kind), func(t *testing.T) {
				t.Parallel()
				for _, f := range suite.Files {
					fl := suite.FlowSet(f).Flow(f.Flow)
					if fl == nil {
						t.Fatalf("%s: flow %s did not load", f.Path, f.Flow)
					}
					t.Run(f.Flow, func(t *testing.T) {
						t.Parallel()
						// The file's tests share one service, each with its own
						// patient; a test that moves the clock or sets its own
						// gets a service of its own.
						var shared *harness
						for _, test := range f.Tests {
							if !ownClock(f, test) && shared == nil {
								shared = startService(t, kind, f.Tests[0].Now)
							}
						}
						for _, test := range f.Tests {
							total.Add(1)
							h := shared
							t.Run(test.Name, func(t *testing.T) {
								t.Parallel()
								if ownClock(f, test) {
									h = startService(t, kind, test.Now)
								} else {
									h = h.For(t)
								}
								replayTest(t, h, fl, test)
							})
						}
					})
				}
			})
		}
	})
	if t.Failed() {
		return
	}
	if want := int64(2 * countTests(suite)); total.Load() != want {
		t.Errorf("replayed %d conversations, want %d (every example test on both stores)", total.Load(), want)
	}
	scanLedger(t, suite.FlowSet(suite.Files[0]))
}

// ownClock reports whether a test needs a service of its own: it lets time
// pass, or its clock differs from the file's.
func ownClock(f *convtest.File, test *convtest.Test) bool {
	if !test.Now.Equal(f.Tests[0].Now) {
		return true
	}
	for _, turn := range test.Turns {
		if turn.Kind == convtest.TurnWait {
			return true
		}
	}
	return false
}

func countTests(s *convtest.Suite) int {
	n := 0
	for _, f := range s.Files {
		n += len(f.Tests)
	}
	return n
}

// replay is one example test in progress against the real service.
type replay struct {
	t    *testing.T
	h    *harness
	test *convtest.Test
	flow *flows.Flow
	ch   engine.Channel
	addr string

	contactID string
	// lastSeq is the last outbox row taken into account; delivered counts
	// the provider messages to addr already compared.
	lastSeq   int64
	delivered int
	// out is what the last action produced, next the first line not yet
	// matched by a bot line.
	out  []line
	next int
	// links maps the simulator's link-N to the link the service sent.
	links      map[string]string
	lastLink   string
	transcript []string
	secrets    []secret
	// offered maps the payloads of the quick replies of the last Messenger
	// message to their titles.
	offered map[string]string
}

// line is one message the service produced, as its recipient got it.
type line struct {
	Channel engine.Channel
	Text    string
	Buttons []string
	Link    bool
}

func (l line) String() string {
	s := fmt.Sprintf("bot [%s]: %s", l.Channel, l.Text)
	if l.Buttons != nil {
		s += " [buttons: " + strings.Join(l.Buttons, " | ") + "]"
	}
	return s
}

func replayTest(t *testing.T, h *harness, fl *flows.Flow, test *convtest.Test) {
	if _, off := test.Now.Zone(); true {
		loc, _ := time.LoadLocation(clinicZone)
		if _, want := test.Now.In(loc).Zone(); want != off {
			t.Fatalf("the test's clock %s is not in the clinic's zone %s: dates would be read differently", test.Now, clinicZone)
		}
	}
	n := contactSeq.Add(1)
	r := &replay{t: t, h: h, test: test, flow: fl, ch: test.Channel, links: map[string]string{}}
	if r.ch == engine.Messenger {
		r.addr = fmt.Sprintf("7%015d", n)
	} else {
		r.addr = fmt.Sprintf("+1201555%04d", n)
	}
	defer func() {
		r.collectSecrets()
		ledgerSecrets(t.Name(), r.secrets)
		scanOwn(t, r.secrets, h)
	}()
	r.begin()
	for _, turn := range test.Turns {
		if turn.Kind == convtest.TurnBot {
			r.bot(turn)
			continue
		}
		r.endGroup(turn)
		r.act(turn)
	}
	r.endGroup(nil)
	if test.Expect != nil {
		r.expect(test.Expect, test.Pos)
	}
	r.deliveredOnce()
}

// deliveredOnce checks, once every outbox row of the patient has been
// sent, that the provider received each exactly once: none was lost or
// sent again after it was compared.
func (r *replay) deliveredOnce() {
	r.t.Helper()
	if r.contactID == "" {
		return
	}
	origin := 0
	r.h.waitFor("every outbox row to be marked sent", func() (bool, string) {
		rows := r.h.outbox(r.contactID, 0)
		origin = 0
		for _, row := range rows {
			if row.Channel.IsOrigin() {
				origin++
				if row.Status != "sent" {
					return false, rowStates(rows)
				}
			}
		}
		return true, ""
	})
	if got := r.h.deliveredTo(r.ch, r.addr); len(got) != origin || origin != r.delivered {
		r.t.Errorf("the provider received %d messages for %d outbox rows (%d compared):%s", len(got), origin, r.delivered, describe(got))
	}
}

func (r *replay) fatalf(pos convtest.Pos, format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf("%s: %s\n  conversation so far:\n    %s", pos, fmt.Sprintf(format, args...), strings.Join(r.transcript, "\n    "))
}

func (r *replay) note(format string, args ...any) {
	r.transcript = append(r.transcript, "("+fmt.Sprintf(format, args...)+")")
}

// begin sets up the contact's language and, for a test the clinic starts,
// starts the flow the way the clinic does: through the engine, with the
// reply going out through the outbox to the provider.
func (r *replay) begin() {
	ctx := r.h.ctx
	if r.test.Language != "" {
		err := r.h.srv.Store.Tx(ctx, func(tx engine.Tx) error {
			return tx.SaveContact(ctx, &engine.Contact{Channel: r.ch, Address: r.addr, Language: r.test.Language})
		})
		if err != nil {
			r.t.Fatalf("set the contact's language: %v", err)
		}
	}
	st := r.test.Start
	if st == nil {
		return
	}
	vars := map[string]any{}
	for _, v := range st.Vars {
		val, err := convtest.Value(r.flow, v.Name, v.Value, r.test.Now)
		if err != nil {
			r.t.Fatalf("%s: %v", v.Pos, err)
		}
		vars[v.Name] = val
	}
	if r.test.Language != "" {
		if _, ok := vars["language"]; !ok && r.flow.Variables["language"] == nil {
			vars["language"] = r.test.Language
		}
	}
	r.note("the clinic starts %s", r.flow.ID)
	if _, err := r.h.srv.Engine.Start(ctx, r.flow.ID, r.ch, r.addr, st.Step, vars); err != nil {
		r.t.Fatalf("%s: the clinic cannot start the flow: %v", st.Pos, err)
	}
	r.h.srv.Wake()
	r.collect(st.Pos)
}

// collect reads what the last action produced: the contact's new outbox
// rows, in order. Rows for SMS and Messenger must then reach the provider's
// test server, in the same order and with the same text; the lines kept for
// comparison are what the provider received.
func (r *replay) collect(pos convtest.Pos) {
	r.t.Helper()
	if r.contactID == "" {
		c := r.h.contact(r.ch, r.addr)
		if c == nil {
			r.out, r.next = nil, 0
			return
		}
		r.contactID = c.ID
	}
	rows := r.h.outbox(r.contactID, r.lastSeq)
	var origin []outRow
	for _, row := range rows {
		if row.Channel.IsOrigin() {
			if row.Channel != r.ch {
				r.fatalf(pos, "the service wrote to the patient on %s, but the patient writes on %s", row.Channel, r.ch)
			}
			origin = append(origin, row)
		}
	}
	want := r.delivered + len(origin)
	r.h.waitFor(fmt.Sprintf("%d %s message(s) at the provider", len(origin), r.ch), func() (bool, string) {
		got := r.h.deliveredTo(r.ch, r.addr)
		return len(got) >= want, fmt.Sprintf("%d of %d received; outbox: %s", len(got), want, rowStates(r.h.outbox(r.contactID, r.lastSeq)))
	})
	got := r.h.deliveredTo(r.ch, r.addr)
	if len(got) != want {
		r.fatalf(pos, "the provider received %d messages, want %d (one per outbox row): %s", len(got), want, describe(got[r.delivered:]))
	}
	fresh := got[r.delivered:]
	r.delivered = want
	r.out, r.next = nil, 0
	i := 0
	for _, row := range rows {
		if row.Seq > r.lastSeq {
			r.lastSeq = row.Seq
		}
		l := line{Channel: row.Channel, Text: row.Text, Link: row.Link}
		var titles, payloads []string
		for _, c := range row.Choices {
			titles, payloads = append(titles, c.Title), append(payloads, c.Payload)
		}
		switch row.Channel {
		case engine.SMS, engine.Messenger:
			rec := fresh[i]
			i++
			if rec.Text != row.Text || !slices.Equal(rec.Buttons, titles) || !slices.Equal(rec.Payloads, payloads) {
				r.fatalf(pos, "the provider received %q %q for the outbox row that says %q %q", rec.Text, rec.Buttons, row.Text, titles)
			}
			l.Text, l.Buttons = rec.Text, rec.Buttons
			if row.Channel == engine.Messenger {
				r.offered = map[string]string{}
				for k, t := range rec.Buttons {
					r.offered[rec.Payloads[k]] = t
				}
			}
		default:
			l.Buttons = titles
		}
		r.checkLink(pos, row, l)
		r.out = append(r.out, l)
	}
}

func rowStates(rows []outRow) string {
	var s []string
	for _, r := range rows {
		s = append(s, fmt.Sprintf("#%d %s %s", r.Seq, r.Channel, r.Status))
	}
	if len(s) == 0 {
		return "(empty)"
	}
	return strings.Join(s, ", ")
}

// checkLink checks that a message carrying a secure link is the flow's
// link message with a link the service issued for this conversation, and
// that no other SMS or Messenger message carries one.
func (r *replay) checkLink(pos convtest.Pos, row outRow, l line) {
	r.t.Helper()
	has := strings.Contains(l.Text, publicURL+"/s/")
	switch {
	case row.Channel.IsOrigin() && has && !row.Link:
		r.fatalf(pos, "a %s message that is not the link message carries a secure link: %q", row.Channel, l.Text)
	case row.Link && !row.Channel.IsOrigin():
		r.fatalf(pos, "the link message went to %s, not to the patient's %s", row.Channel, r.ch)
	case !row.Link:
		return
	}
	if !linkMessage(r.flow).MatchString(l.Text) {
		r.fatalf(pos, "the link message %q is not the flow's link_message with only the link filled in", l.Text)
	}
	url := realLink.FindString(l.Text)
	token := strings.TrimPrefix(url, publicURL+"/s/")
	hash := sha256.Sum256([]byte(token))
	link, redeemed, locked, err := r.h.srv.Store.SecureLinkByHash(r.h.ctx, hash[:])
	if err != nil {
		r.fatalf(pos, "the link sent on %s is not a stored secure link: %v", row.Channel, err)
	}
	conv := r.current()
	if conv == nil || link.ConversationID != conv.ID || link.ContactID != r.contactID || redeemed || locked {
		r.fatalf(pos, "the link sent is not a fresh link bound to this conversation (redeemed %v, locked %v)", redeemed, locked)
	}
	r.lastLink = url
}

// linkMessage matches a flow's link message in any of its languages, with
// a link the service issued in place of {{ link }}.
func linkMessage(fl *flows.Flow) *regexp.Regexp {
	var alts []string
	if m := fl.Secure.LinkMessage; m != nil {
		for _, tpl := range m.Text {
			var b strings.Builder
			for _, p := range tpl.Parts {
				if p.Expr == nil {
					b.WriteString(regexp.QuoteMeta(p.Lit))
				} else {
					b.WriteString(tokenURL)
				}
			}
			alts = append(alts, b.String())
		}
	}
	if len(alts) == 0 {
		alts = append(alts, `To continue privately, tap `+tokenURL+` \(valid for \d+ minutes\)\.`,
			`Para continuar en privado, toque `+tokenURL+` \(válido por \d+ minutos\)\.`)
	}
	return regexp.MustCompile(`^(?:` + strings.Join(alts, "|") + `)$`)
}

// bot checks one expected bot line against the next message produced.
func (r *replay) bot(turn *convtest.Turn) {
	r.t.Helper()
	want := r.expected(turn)
	if r.next >= len(r.out) {
		r.fatalf(turn.Pos, "the test expects %s, but the service sent nothing more", want)
	}
	got := r.out[r.next]
	r.next++
	r.transcript = append(r.transcript, got.String())
	if got.Channel != turn.Channel {
		r.fatalf(turn.Pos, "the service sent this line on %s, not on %s:\n    want %s\n    got  %s", got.Channel, turn.Channel, want, got)
	}
	if !r.matchText(turn, got.Text) {
		r.fatalf(turn.Pos, "the service said something else:\n    want %s\n    got  %s", want, got)
	}
	if turn.Buttons != nil && !slices.Equal(turn.Buttons, got.Buttons) {
		r.fatalf(turn.Pos, "the service offered other buttons:\n    want %q\n    got  %q", turn.Buttons, got.Buttons)
	}
}

func (r *replay) expected(turn *convtest.Turn) string {
	s := fmt.Sprintf("bot [%s]: %s", turn.Channel, turn.Want)
	if turn.Buttons != nil {
		s += " [buttons: " + strings.Join(turn.Buttons, " | ") + "]"
	}
	return s
}

// matchText compares a bot line. The simulator's links (link-1, link-2)
// stand for the links the service issued: the same number must be the
// same link, and another number another link.
func (r *replay) matchText(turn *convtest.Turn, got string) bool {
	m := turn.Want
	if m.Re != nil || !simLink.MatchString(m.Text) {
		return m.Match(got)
	}
	locs := simLink.FindAllStringIndex(m.Text, -1)
	var b strings.Builder
	b.WriteString("^")
	prev := 0
	for _, loc := range locs {
		b.WriteString(regexp.QuoteMeta(m.Text[prev:loc[0]]))
		b.WriteString("(" + tokenURL + ")")
		prev = loc[1]
	}
	b.WriteString(regexp.QuoteMeta(m.Text[prev:]) + "$")
	sub := regexp.MustCompile(b.String()).FindStringSubmatch(got)
	if sub == nil {
		return false
	}
	for i, loc := range locs {
		name := m.Text[loc[0]:loc[1]]
		if seen, ok := r.links[name]; ok && seen != sub[i+1] {
			return false
		}
		for other, url := range r.links {
			if other != name && url == sub[i+1] {
				return false
			}
		}
		r.links[name] = sub[i+1]
	}
	return true
}

// endGroup checks that every message of the last action was expected.
func (r *replay) endGroup(next *convtest.Turn) {
	r.t.Helper()
	if r.next >= len(r.out) {
		return
	}
	pos := r.test.Pos
	if next != nil {
		pos = next.Pos
	}
	var extra []string
	for _, l := range r.out[r.next:] {
		extra = append(extra, l.String())
	}
	r.fatalf(pos, "the service sent %d more line(s) than the test lists here:\n    %s", len(extra), strings.Join(extra, "\n    "))
}

// act carries out a turn that is not a bot line.
func (r *replay) act(turn *convtest.Turn) {
	r.t.Helper()
	switch turn.Kind {
	case convtest.TurnUser:
		r.user(turn)
	case convtest.TurnOpenLink:
		r.openLink(turn)
	case convtest.TurnWait:
		r.wait(turn)
	case convtest.TurnHandBack:
		conv := r.current()
		if conv == nil {
			r.fatalf(turn.Pos, "there is no conversation to hand back")
		}
		r.note("an agent hands the chat back")
		if _, err := r.h.srv.Engine.HandBack(r.h.ctx, conv.ID, "e2e-agent"); err != nil {
			r.fatalf(turn.Pos, "hand back: %v", err)
		}
		r.h.srv.Wake()
		r.collect(turn.Pos)
	case convtest.TurnExpect:
		r.expect(turn.Expect, turn.Pos)
		r.out, r.next = nil, 0
	}
}

// user sends the patient's message: a signed webhook on SMS or Messenger,
// or, on the secure page, straight to the engine.
func (r *replay) user(turn *convtest.Turn) {
	r.t.Helper()
	ch := turn.Channel
	conv := r.current()
	if ch == "" {
		ch = r.ch
		if conv != nil && conv.Secure == engine.SecureOpen {
			ch = engine.Secure
		}
	}
	r.transcript = append(r.transcript, fmt.Sprintf("patient [%s]: %s", ch, turn.Text))
	switch ch {
	case engine.Secure:
		if conv == nil {
			r.fatalf(turn.Pos, "the patient cannot type on the secure page: there is no conversation")
		}
		if !isKeyword(r.h.srv.Flows.Current(), turn.Text) {
			r.secrets = append(r.secrets, secret{value: turn.Text, what: "an answer typed on the secure page"})
		}
		_, err := r.h.srv.Engine.Handle(r.h.ctx, engine.Inbound{Channel: engine.Secure, ConversationID: conv.ID,
			Text: turn.Text, Payload: turn.Payload, ProviderID: r.h.newID("secure-"), Source: "127.0.0.1"})
		if err != nil {
			r.fatalf(turn.Pos, "the engine refused the secure answer: %v", err)
		}
		r.h.srv.Wake()
	case engine.SMS:
		code, body := r.h.sendSMS(sms{From: r.addr, Body: turn.Text, MessageSid: r.h.newID("SM")})
		if code != 200 {
			r.fatalf(turn.Pos, "the Twilio webhook answered %d %q", code, body)
		}
	case engine.Messenger:
		mid := "m_" + r.h.newID("")
		ev := messengertest.TextMessage(r.addr, mid, turn.Text)
		if turn.Payload != "" {
			// A tap sends back a quick reply the patient was offered.
			if title, ok := r.offered[turn.Payload]; !ok || title != turn.Text {
				r.fatalf(turn.Pos, "the patient taps %q (payload %q), but Messenger offered %v", turn.Text, turn.Payload, r.offered)
			}
			ev = messengertest.QuickReplyMessage(r.addr, mid, turn.Text, turn.Payload)
		}
		code, body := r.h.sendMessenger(messengertest.Body(ev))
		if code != 200 {
			r.fatalf(turn.Pos, "the Messenger webhook answered %d %q", code, body)
		}
	}
	r.collect(turn.Pos)
}

// isKeyword reports whether text is a command word (a flow's trigger or
// keyword, or STOP, START, HELP) rather than an answer: such words appear
// in ordinary messages ("Reply STOP to opt out").
func isKeyword(set *flows.Set, text string) bool {
	w := strings.ToUpper(strings.TrimSpace(text))
	if w == "STOP" || w == "START" || w == "HELP" {
		return true
	}
	for _, f := range set.Flows {
		if slices.Contains(f.Trigger.Keywords, w) || slices.ContainsFunc(f.Keywords, func(k *flows.Keyword) bool { return k.Word == w }) {
			return true
		}
	}
	return false
}

// openLink opens the secure link the patient got: the identity check and
// the page opening go to the engine, as the secure page would send them.
func (r *replay) openLink(turn *convtest.Turn) {
	r.t.Helper()
	conv := r.current()
	if conv == nil || conv.Secure != engine.SecurePending {
		r.fatalf(turn.Pos, "there is no secure link waiting to be opened")
	}
	if r.lastLink == "" {
		r.fatalf(turn.Pos, "the conversation waits on the secure page, but no link reached the patient")
	}
	r.note("the patient opens the secure link")
	// The identity check's answer is not collected as a secret: it must
	// equal a value the patient gave earlier, often on SMS itself (a date
	// of birth), and the flow's prompts show examples of its form.
	ok, err := r.h.srv.Engine.CheckIdentity(r.h.ctx, conv.ID, turn.Answer)
	if err != nil {
		r.fatalf(turn.Pos, "identity check: %v", err)
	}
	if ok != turn.Pass {
		r.fatalf(turn.Pos, "the identity check answered %v, want %v", ok, turn.Pass)
	}
	if !ok {
		r.collect(turn.Pos)
		return
	}
	if _, err := r.h.srv.Engine.SecureOpened(r.h.ctx, conv.ID); err != nil {
		r.fatalf(turn.Pos, "secure page opened: %v", err)
	}
	r.h.srv.Wake()
	r.collect(turn.Pos)
}

// wait moves the service's clock on, stopping at each of the contact's
// timers on the way so that each fires at its own time, and waits until
// the fired timers are gone from the store.
func (r *replay) wait(turn *convtest.Turn) {
	r.t.Helper()
	r.note("%v pass", turn.Wait)
	target := r.h.clock.Now().Add(turn.Wait)
	for i := 0; ; i++ {
		if i == 1000 {
			r.fatalf(turn.Pos, "more than 1000 timers fired during this wait")
		}
		stop := target
		if due, ok := r.nextTimer(); ok && due.Before(target) {
			stop = due
		}
		r.h.clock.AdvanceTo(stop)
		if _, err := r.h.srv.Engine.Tick(r.h.ctx); err != nil {
			r.fatalf(turn.Pos, "timers: %v", err)
		}
		r.h.waitFor("the due timers to fire", func() (bool, string) {
			due, ok := r.nextTimer()
			return !ok || due.After(stop), fmt.Sprintf("a timer due at %v", due)
		})
		if !stop.Before(target) {
			break
		}
	}
	r.h.srv.Wake()
	r.collect(turn.Pos)
}

// nextTimer returns the contact's earliest pending timer.
func (r *replay) nextTimer() (time.Time, bool) {
	if r.contactID == "" {
		return time.Time{}, false
	}
	db := r.h.srv.Store.DB()
	var due []int64
	err := db.SelectContext(r.h.ctx, &due, db.Rebind(`SELECT t.due FROM timers t JOIN conversations c ON c.id = t.conversation_id
		WHERE c.contact_id = ? ORDER BY t.due LIMIT 1`), r.contactID)
	if err != nil {
		r.t.Fatalf("read timers: %v", err)
	}
	if len(due) == 0 {
		return time.Time{}, false
	}
	return time.UnixMicro(due[0]), true
}

// conversations returns the ids of the contact's conversations, the
// current one (open, else the latest) first.
func (r *replay) conversations() []string {
	if r.contactID == "" {
		if c := r.h.contact(r.ch, r.addr); c != nil {
			r.contactID = c.ID
		} else {
			return nil
		}
	}
	db := r.h.srv.Store.DB()
	var ids []string
	err := db.SelectContext(r.h.ctx, &ids, db.Rebind(`SELECT id FROM conversations WHERE contact_id = ?
		ORDER BY CASE WHEN status = 'ended' THEN 1 ELSE 0 END, created DESC, updated DESC`), r.contactID)
	if err != nil {
		r.t.Fatalf("list conversations: %v", err)
	}
	return ids
}

// current returns the contact's current conversation with its variables.
func (r *replay) current() *engine.Conversation {
	ids := r.conversations()
	if len(ids) == 0 {
		return nil
	}
	return r.load(ids[0])
}

func (r *replay) load(id string) *engine.Conversation {
	var conv *engine.Conversation
	err := r.h.srv.Store.Tx(r.h.ctx, func(tx engine.Tx) error {
		var err error
		conv, err = tx.Conversation(r.h.ctx, id)
		return err
	})
	if err != nil {
		r.t.Fatalf("load conversation: %v", err)
	}
	return conv
}

// expect checks the conversation's state as stored, with the checks of
// `safeflow test`.
func (r *replay) expect(e *convtest.Expect, pos convtest.Pos) {
	r.t.Helper()
	found := e.Check(convtest.State{Conversation: r.current(), LinksIssued: r.linksIssued, OptedOut: func() bool {
		c := r.h.contact(r.ch, r.addr)
		return c != nil && c.OptedOut
	}})
	if len(found) == 0 {
		return
	}
	diffs := make([]string, len(found))
	for i, f := range found {
		diffs[i] = fmt.Sprintf("want %s, got %s", f.Diff.Want, f.Diff.Got)
	}
	r.fatalf(pos, "the stored conversation is not in the expected state:\n    %s", strings.Join(diffs, "\n    "))
}

func (r *replay) linksIssued() int {
	if r.contactID == "" {
		return 0
	}
	db := r.h.srv.Store.DB()
	var n int
	if err := db.GetContext(r.h.ctx, &n, db.Rebind(`SELECT COUNT(*) FROM secure_links WHERE contact_id = ?`), r.contactID); err != nil {
		r.t.Fatalf("count secure links: %v", err)
	}
	return n
}

// collectSecrets adds the values of the flows' sensitive variables, in
// every conversation of the contact, to the answers typed on the secure
// page.
func (r *replay) collectSecrets() {
	for _, id := range r.conversations() {
		var conv *engine.Conversation
		err := r.h.srv.Store.Tx(r.h.ctx, func(tx engine.Tx) error {
			var err error
			conv, err = tx.Conversation(r.h.ctx, id)
			return err
		})
		if errors.Is(err, engine.ErrNotFound) || conv == nil {
			continue
		}
		if err != nil {
			r.t.Errorf("load conversation for the sensitive scan: %v", err)
			return
		}
		fl := r.h.srv.Flows.Version(conv.FlowID, conv.FlowHash)
		if fl == nil {
			r.t.Errorf("flow %s of a conversation is unknown", conv.FlowID)
			continue
		}
		for name, val := range conv.Vars {
			if v := fl.Variables[name]; v != nil && v.Sensitive && val != nil {
				if _, isBool := val.(bool); isBool {
					continue // true/false say nothing a message could show
				}
				r.secrets = append(r.secrets, secret{value: convtest.FormatValue(val), what: "sensitive variable " + conv.FlowID + "." + name})
			}
		}
	}
}
