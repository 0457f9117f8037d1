package convtest

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/flows"
	"github.com/safeflow/safeflow/internal/sim"
)

// Options tune a run.
type Options struct {
	// Run, when set, runs only the tests whose name it matches.
	Run *regexp.Regexp
	// Update records what the bot actually said in tests whose bot lines
	// differ, so that Suite.Update can write it back.
	Update bool
}

// Report is the outcome of a run.
type Report struct {
	Files    []*FileResult
	Coverage []*Coverage
}

// FileResult holds the results of one test file's tests.
type FileResult struct {
	File    *File
	Results []*Result
}

// Result is the outcome of one test.
type Result struct {
	Test *Test
	// Failure is nil when the test passed.
	Failure *Failure
	// Updated is true when the test failed only on bot lines and --update
	// recorded what the bot said instead; Failure shows the first change.
	Updated  bool
	Duration time.Duration

	// rewrites are the bot lines to write back with --update.
	rewrites []rewrite
}

// Passed reports whether the test passed (or, with --update, will pass
// once its bot lines are rewritten).
func (r *Result) Passed() bool { return r.Failure == nil || r.Updated }

// Failure says where and how a test failed.
type Failure struct {
	Pos Pos
	Msg string
	// Transcript is the conversation up to the failing turn.
	Transcript []Line
	// Diffs are the differences at the failing turn, first one first.
	Diffs []Diff
}

// Line is one line of a transcript.
type Line struct {
	// Who is "patient", "bot", or "" for something that happened (a link
	// opened, time passing).
	Who     string
	Channel engine.Channel
	Text    string
}

// String writes the line as `patient [sms]: text`.
func (l Line) String() string {
	if l.Who == "" {
		return "(" + l.Text + ")"
	}
	return fmt.Sprintf("%s [%s]: %s", l.Who, l.Channel, l.Text)
}

// Diff is one expected value and what was found instead.
type Diff struct {
	Want, Got string
}

// rewrite replaces the bot lines of one turn group with what the bot said.
type rewrite struct {
	// at is the index in the conversation of the group's first line; n is
	// how many lines the group has in the file.
	at, n int
	got   []*engine.Outbound
}

// Run runs every test of the suite, one simulator per test.
func (s *Suite) Run(ctx context.Context, opts Options) *Report {
	if ctx == nil {
		ctx = context.Background()
	}
	cov := newCoverage(s)
	rep := &Report{}
	for _, f := range s.Files {
		fr := &FileResult{File: f}
		for _, t := range f.Tests {
			if opts.Run != nil && !opts.Run.MatchString(t.Name) {
				continue
			}
			fr.Results = append(fr.Results, s.runTest(ctx, f, t, cov, opts.Update))
		}
		rep.Files = append(rep.Files, fr)
	}
	rep.Coverage = cov.report()
	return rep
}

// testRun is one test in progress.
type testRun struct {
	ctx  context.Context
	t    *Test
	flow *flows.Flow
	sim  *sim.Sim

	update     bool
	transcript []Line
	// out is what the last action produced; next indexes the first bot
	// message not yet matched by a bot line.
	out   []*engine.Outbound
	next  int
	group rewrite
	bad   bool // the current group's bot lines differ
	// botFail is the first difference in bot lines, kept with --update.
	botFail *Failure
	sent    int
	res     *Result
}

func (s *Suite) runTest(ctx context.Context, f *File, t *Test, cov *coverage, update bool) *Result {
	started := time.Now()
	res := &Result{Test: t}
	defer func() { res.Duration = time.Since(started) }()
	set := s.FlowSet(f)
	fl := set.Flow(f.Flow)
	if fl == nil {
		res.Failure = &Failure{Pos: f.FlowPos, Msg: fmt.Sprintf(
			"the flow `%s` did not load; fix the errors `safeflow validate` reports for it", f.Flow)}
		return res
	}
	r := &testRun{ctx: ctx, t: t, flow: fl, update: update, res: res,
		sim: sim.New(set, t.Channel, t.Now, engine.WithObserver(cov.observe))}
	if err := r.begin(); err != nil {
		r.fail(t.Pos, err.Error())
		return res
	}
	for _, turn := range t.Turns {
		if turn.Kind == TurnBot {
			if !r.bot(turn) {
				return res
			}
			continue
		}
		if !r.endGroup(turn.Pos) {
			return res
		}
		r.group = rewrite{at: turn.Index + 1}
		if !r.act(turn) {
			return res
		}
	}
	end := t.Pos
	if n := len(t.Turns); n > 0 {
		end = t.Turns[n-1].Pos
	}
	if !r.endGroup(end) {
		return res
	}
	if t.Expect != nil {
		r.expect(t.Expect)
	}
	if res.Failure == nil && r.botFail != nil {
		res.Updated, res.Failure = true, r.botFail
	}
	return res
}

// begin sets up the contact and, for a clinic-started test, starts the flow.
func (r *testRun) begin() error {
	if r.t.Language != "" {
		err := r.sim.Store.Tx(r.ctx, func(tx engine.Tx) error {
			return tx.SaveContact(r.ctx, &engine.Contact{Channel: r.t.Channel, Address: r.sim.Address, Language: r.t.Language})
		})
		if err != nil {
			return fmt.Errorf("set the contact's language: %w", err)
		}
	}
	st := r.t.Start
	if st == nil {
		return nil
	}
	vars := map[string]any{}
	for _, v := range st.Vars {
		val, err := Value(r.flow, v.Name, v.Value, r.t.Now)
		if err != nil {
			return err
		}
		vars[v.Name] = val
	}
	if r.t.Language != "" {
		if _, ok := vars["language"]; !ok && r.flow.Variables["language"] == nil {
			vars["language"] = r.t.Language
		}
	}
	what := "the clinic starts the flow"
	if st.Step != "" {
		what += " at step " + st.Step
	}
	r.note(what)
	res, err := r.sim.Start(r.ctx, r.flow.ID, st.Step, vars)
	if err != nil {
		return fmt.Errorf("the flow could not start: %v", err)
	}
	r.produced(res.Out)
	return nil
}

func (r *testRun) note(text string) { r.transcript = append(r.transcript, Line{Text: text}) }

func (r *testRun) produced(out []*engine.Outbound) {
	r.out, r.next = out, 0
	r.group.got = out
}

// fail records the test's first failure.
func (r *testRun) fail(pos Pos, msg string, diffs ...Diff) {
	if r.res.Failure != nil {
		return
	}
	r.res.Failure = &Failure{Pos: pos, Msg: msg, Transcript: slices.Clone(r.transcript), Diffs: diffs}
}

// botLine writes an outbound message as a transcript line.
func botLine(o *engine.Outbound) Line {
	l := Line{Who: "bot", Channel: o.Channel, Text: o.Text}
	if len(o.Choices) > 0 {
		l.Text += " " + buttonsText(buttons(o))
	}
	return l
}

func buttons(o *engine.Outbound) []string {
	out := make([]string, len(o.Choices))
	for i, c := range o.Choices {
		out[i] = c.Title
	}
	return out
}

func buttonsText(b []string) string { return "[buttons: " + strings.Join(b, " | ") + "]" }

func wantLine(turn *Turn) string {
	s := fmt.Sprintf("bot [%s]: %s", turn.Channel, turn.Want)
	if turn.Buttons != nil {
		s += " " + buttonsText(turn.Buttons)
	}
	return s
}

// bot checks one expected bot line against the next message the bot sent.
// It reports whether the test may go on.
func (r *testRun) bot(turn *Turn) bool {
	r.group.n++
	if r.next >= len(r.out) {
		return r.botFailure(turn.Pos, "the test expects another bot line, but the bot said nothing more",
			Diff{Want: wantLine(turn), Got: "(nothing)"})
	}
	o := r.out[r.next]
	r.next++
	got := botLine(o)
	// The transcript shows the line once: after the check, so that a
	// failure shows it only as "got".
	defer func() { r.transcript = append(r.transcript, got) }()
	textOK := turn.Want.Match(o.Text)
	buttonsOK := turn.Buttons == nil || slices.Equal(turn.Buttons, buttons(o))
	diff := Diff{Want: wantLine(turn), Got: got.String()}
	switch {
	case textOK && buttonsOK && o.Channel == turn.Channel:
		return true
	case textOK && buttonsOK:
		return r.botFailure(turn.Pos, fmt.Sprintf("the bot sent this line on %s, not on %s", o.Channel, turn.Channel), diff)
	case textOK && o.Channel == turn.Channel:
		return r.botFailure(turn.Pos, "the bot offered other buttons", diff)
	}
	return r.botFailure(turn.Pos, "the bot said something else", diff)
}

// botFailure records bot lines that differ. With --update the test goes on,
// to record everything the bot says; else it stops here.
func (r *testRun) botFailure(pos Pos, msg string, diffs ...Diff) bool {
	r.bad = true
	if r.update {
		if r.botFail == nil {
			r.botFail = &Failure{Pos: pos, Msg: msg, Transcript: slices.Clone(r.transcript), Diffs: diffs}
		}
		return true
	}
	r.fail(pos, msg, diffs...)
	return false
}

// endGroup checks that every bot message of the last action was listed.
// pos is the turn that follows. It reports whether the test may go on.
func (r *testRun) endGroup(pos Pos) bool {
	if r.next < len(r.out) {
		extra := r.out[r.next:]
		diffs := make([]Diff, len(extra))
		for i, o := range extra {
			diffs[i] = Diff{Got: botLine(o).String()}
		}
		diffs[0].Want = "(no more bot lines)"
		r.botFailure(pos, fmt.Sprintf("the bot said %s more than the test lists here; add them as bot lines",
			plural(len(extra), "line")), diffs...)
	}
	if r.bad && r.update {
		r.res.rewrites = append(r.res.rewrites, r.group)
	}
	r.out, r.next, r.bad = nil, 0, false
	return r.res.Failure == nil
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// act carries out a turn that is not a bot line. It reports whether the
// test may go on.
func (r *testRun) act(turn *Turn) bool {
	switch turn.Kind {
	case TurnUser:
		return r.user(turn)
	case TurnOpenLink:
		return r.openLink(turn)
	case TurnWait:
		return r.wait(turn)
	case TurnHandBack:
		r.note("an agent hands the chat back")
		res, err := r.sim.HandBack(r.ctx)
		if err != nil {
			return r.actionFail(turn.Pos, "an agent cannot hand this chat back: "+handBackReason(err))
		}
		r.produced(res.Out)
	case TurnExpect:
		r.expect(turn.Expect)
		r.produced(nil)
	}
	return r.res.Failure == nil
}

func handBackReason(err error) string {
	if errors.Is(err, engine.ErrNoConversation) {
		return "there is no open conversation"
	}
	return "it is not handed off to an agent"
}

func (r *testRun) actionFail(pos Pos, msg string) bool {
	r.fail(pos, msg)
	return false
}

func (r *testRun) user(turn *Turn) bool {
	conv := r.sim.Current()
	ch := turn.Channel
	if ch == "" {
		ch = r.t.Channel
		if conv != nil && conv.Secure == engine.SecureOpen {
			ch = engine.Secure
		}
	}
	r.sent++
	in := engine.Inbound{Channel: ch, Text: turn.Text, Payload: turn.Payload, ProviderID: "test-" + strconv.Itoa(r.sent)}
	if ch == engine.Secure {
		if conv == nil {
			return r.actionFail(turn.Pos, "the patient cannot type on the secure page: there is no conversation yet")
		}
		in.ConversationID = conv.ID
	} else {
		in.Address = r.sim.Address
	}
	r.transcript = append(r.transcript, Line{Who: "patient", Channel: ch, Text: turn.Text})
	res, err := r.sim.Engine.Handle(r.ctx, in)
	switch {
	case errors.Is(err, engine.ErrSecureClosed):
		return r.actionFail(turn.Pos, "the patient cannot type on the secure page: it is not open (open it first with `- open_link:`)")
	case err != nil:
		return r.actionFail(turn.Pos, "the engine failed: "+err.Error())
	}
	r.track(res)
	r.produced(res.Out)
	return true
}

func (r *testRun) track(res *engine.Result) {
	if res != nil && res.Conversation != nil {
		r.sim.Conversation = res.Conversation.ID
	}
}

func (r *testRun) openLink(turn *Turn) bool {
	conv := r.sim.Current()
	if conv == nil || conv.Secure != engine.SecurePending {
		return r.actionFail(turn.Pos, "there is no secure link waiting to be opened")
	}
	v := r.flow.Secure.Verify
	if v != nil && turn.Answer == "" {
		return r.actionFail(turn.Pos, "this flow checks the patient's identity on the secure page: "+
			"write the answer, as in `- open_link: \"04/23/1985\"`")
	}
	if v != nil {
		r.note("the patient opens the secure link and answers " + strconv.Quote(turn.Answer))
	} else {
		r.note("the patient opens the secure link")
	}
	ok, err := r.sim.Engine.CheckIdentity(r.ctx, conv.ID, turn.Answer)
	if err != nil {
		return r.actionFail(turn.Pos, "the engine failed: "+err.Error())
	}
	switch {
	case ok && !turn.Pass:
		return r.actionFail(turn.Pos, "the identity check accepted the answer, but the test expects it to be refused")
	case !ok && turn.Pass:
		return r.actionFail(turn.Pos, "the identity check refused the answer; write `pass: false` if that is expected")
	case !ok:
		r.produced(nil)
		return true
	}
	res, err := r.sim.Engine.SecureOpened(r.ctx, conv.ID)
	if err != nil {
		return r.actionFail(turn.Pos, "the engine failed: "+err.Error())
	}
	r.track(res)
	r.produced(res.Out)
	return true
}

// maxTimers bounds the timers one wait may fire, against a flow that keeps
// setting new ones.
const maxTimers = 1000

// wait moves the clock on, stopping at each timer on the way so that every
// timer fires at its own time, in order.
func (r *testRun) wait(turn *Turn) bool {
	r.note(shortDuration(turn.Wait) + " pass")
	clock := r.sim.Clock
	target := clock.Now().Add(turn.Wait)
	var out []*engine.Outbound
	for i := 0; ; i++ {
		if i == maxTimers {
			return r.actionFail(turn.Pos, "more than 1000 timers fired during this wait; the flow may be looping")
		}
		due := target
		if ts := r.sim.Store.Timers(); len(ts) > 0 && ts[0].Due.Before(target) {
			due = ts[0].Due
		}
		if d := due.Sub(clock.Now()); d > 0 {
			clock.Advance(d)
		}
		results, err := r.sim.Engine.Tick(r.ctx)
		if err != nil {
			return r.actionFail(turn.Pos, "the engine failed: "+err.Error())
		}
		for _, res := range results {
			r.track(res)
			out = append(out, res.Out...)
		}
		if !due.Before(target) {
			break
		}
	}
	r.produced(out)
	return true
}

// shortDuration writes 48h as 2d and 90m as 1h30m.
func shortDuration(d time.Duration) string {
	days := d / (24 * time.Hour)
	rest := d % (24 * time.Hour)
	s := ""
	if days > 0 {
		s = strconv.Itoa(int(days)) + "d"
	}
	if rest > 0 || s == "" {
		r := rest.String()
		r = strings.TrimSuffix(r, "0s")
		if strings.HasSuffix(r, "h0m") {
			r = strings.TrimSuffix(r, "0m")
		}
		if r == "" {
			r = rest.String()
		}
		s += r
	}
	return s
}

// expect checks the conversation's state; every difference is listed, in
// the order the checks are written.
func (r *testRun) expect(e *Expect) {
	found := e.Check(State{Conversation: r.sim.Current(), LinksIssued: r.sim.Links.Count, OptedOut: r.optedOut})
	if len(found) == 0 {
		return
	}
	out := make([]Diff, len(found))
	for i, f := range found {
		out[i] = f.Diff
	}
	r.fail(found[0].Pos, "the conversation is not in the expected state ("+plural(len(found), "difference")+")", out...)
}

// State is what an Expect is checked against: a conversation (nil when
// there is none) and what the checks ask about lazily.
type State struct {
	Conversation *engine.Conversation
	LinksIssued  func() int
	OptedOut     func() bool
}

// Finding is one difference between an Expect and a State, at the place
// in the test file that expects it.
type Finding struct {
	Pos  Pos
	Diff Diff
}

// Check compares a state with the expectation and returns every
// difference, in file order. It is shared by `safeflow test` and the
// end-to-end tests, which check the same files against a real service.
func (e *Expect) Check(st State) []Finding {
	var diffs []Finding
	add := func(key, want, got string) {
		diffs = append(diffs, Finding{e.pos[key], Diff{Want: key + ": " + want, Got: key + ": " + got}})
	}
	status, step, secure, lang, queue := "no conversation", "(none)", "none", "", ""
	vars := map[string]any{}
	if conv := st.Conversation; conv != nil {
		status, step, lang, queue, vars = string(conv.Status), conv.Step, conv.Language, conv.Queue, conv.Vars
		if conv.Secure != engine.SecureNone {
			secure = string(conv.Secure)
		}
	}
	if e.Step != nil && *e.Step != step {
		add("step", *e.Step, step)
	}
	if e.Ended != nil && *e.Ended != (status == string(engine.Ended)) {
		add("ended", strconv.FormatBool(*e.Ended), strconv.FormatBool(!*e.Ended)+" (status "+status+")")
	}
	if e.HandedOff != nil && *e.HandedOff != (status == string(engine.HandedOff)) {
		add("handed_off", strconv.FormatBool(*e.HandedOff), strconv.FormatBool(!*e.HandedOff)+" (status "+status+")")
	}
	if e.Queue != nil && *e.Queue != queue {
		add("queue", *e.Queue, orNone(queue))
	}
	if e.LinkIssued != nil && *e.LinkIssued != (st.LinksIssued() > 0) {
		add("link_issued", strconv.FormatBool(*e.LinkIssued), strconv.FormatBool(!*e.LinkIssued))
	}
	if e.Secure != nil && *e.Secure != secure {
		add("secure", *e.Secure, secure)
	}
	if e.Language != nil && *e.Language != lang {
		add("language", *e.Language, orNone(lang))
	}
	if e.OptedOut != nil {
		if got := st.OptedOut(); got != *e.OptedOut {
			add("opted_out", strconv.FormatBool(*e.OptedOut), strconv.FormatBool(got))
		}
	}
	for _, v := range e.Vars {
		val, set := vars[v.Name]
		set = set && val != nil
		want, got := "(not set)", "(not set)"
		if v.Want != nil {
			want = v.Want.String()
		}
		if set {
			got = FormatValue(val)
		}
		if v.Want == nil && !set || v.Want != nil && set && v.Want.Match(got) {
			continue
		}
		diffs = append(diffs, Finding{v.Pos, Diff{Want: "vars." + v.Name + ": " + want, Got: "vars." + v.Name + ": " + got}})
	}
	slices.SortStableFunc(diffs, func(a, b Finding) int {
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line - b.Pos.Line
		}
		return a.Pos.Col - b.Pos.Col
	})
	return diffs
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func (r *testRun) optedOut() bool {
	var c *engine.Contact
	_ = r.sim.Store.Tx(r.ctx, func(tx engine.Tx) error {
		var err error
		c, err = tx.ContactByAddress(r.ctx, r.t.Channel, r.sim.Address)
		return err
	})
	return c != nil && c.OptedOut
}

// FormatValue writes a variable's value as tests compare it: dates as
// YYYY-MM-DD, yes/no as true or false, numbers without trailing zeros.
func FormatValue(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	case int:
		return strconv.Itoa(v)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case time.Time:
		return v.Format(time.DateOnly)
	}
	return fmt.Sprint(v)
}
