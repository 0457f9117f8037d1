package securechat

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/flows"
	"github.com/safeflow/safeflow/internal/audit"
)

// session is the secure session a request's cookie names.
type session struct {
	id    string
	hash  []byte
	conv  string
	first int64 // transcript position the session started after
}

// How a refused request is answered.
const (
	asPage = iota
	asJSON
	asStream
)

// session finds the live session of the request's cookie. touch records
// activity, which keeps the session from idling out. It returns a refusal
// reason when there is no live session, or an error from the store.
func (s *Server) session(r *http.Request, touch bool) (*session, string, error) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || !wellFormed(c.Value) {
		return nil, "no session", nil
	}
	sess := &session{id: c.Value, hash: hashToken(c.Value)}
	find := s.st.SecureSession
	if touch {
		find = s.st.TouchSecureSession
	}
	sess.conv, sess.first, err = find(r.Context(), sess.hash, s.cfg.Now(), s.cfg.IdleTimeout)
	if errors.Is(err, engine.ErrNotFound) {
		// Timed out or ended: close it out now rather than at the next
		// sweep, so the engine knows the page is gone. At most once a
		// second, so that forged cookies cannot keep the store busy.
		now := s.cfg.Now().UnixNano()
		if last := s.lastSweep.Load(); now-last >= int64(time.Second) && s.lastSweep.CompareAndSwap(last, now) {
			if err := s.Sweep(r.Context()); err != nil {
				s.cfg.Log.Error("secure chat: end timed-out sessions", "request", requestID(r), "err", err.Error())
			}
		}
		return nil, "session ended or timed out", nil
	}
	if err != nil {
		return nil, "", err
	}
	return sess, "", nil
}

// refuseSession records and answers a chat request without a live session.
func (s *Server) refuseSession(w http.ResponseWriter, r *http.Request, how int, reason string) {
	s.audit(r.Context(), s.record(r, ActionSessionRefused, audit.OutcomeDenied, reason, "", ""))
	t, lang := textsFor(acceptLanguage(r))
	switch how {
	case asJSON:
		writeJSON(w, http.StatusUnauthorized, map[string]string{"status": t.TimedOutText})
	case asStream:
		// A status other than 200 stops EventSource from reconnecting.
		http.Error(w, "no secure session", http.StatusUnauthorized)
	default:
		clearSiteData(w)
		s.render(w, r, http.StatusUnauthorized, "notice", &page{Lang: lang, T: t, Heading: t.TimedOutTitle, Text: t.TimedOutText})
	}
}

// checkChatCSRF checks a state-changing chat request: sent by our own page
// (Sec-Fetch-Site or Origin) and carrying the page's token. It records
// and answers a refusal and returns false.
func (s *Server) checkChatCSRF(w http.ResponseWriter, r *http.Request, sess *session, how int) bool {
	reason := ""
	if err := s.crossOrigin(r); err != nil {
		reason = "cross-site request"
	} else {
		got := r.Header.Get("X-CSRF-Token")
		if got == "" {
			got = r.PostForm.Get("csrf")
		}
		if !hmac.Equal([]byte(got), []byte(chatCSRF(sess.id))) {
			reason = "bad csrf token"
		}
	}
	if reason == "" {
		return true
	}
	s.audit(r.Context(), s.record(r, ActionSessionRefused, audit.OutcomeDenied, reason, sess.conv, ""))
	t, lang := textsFor(acceptLanguage(r))
	if how == asJSON {
		writeJSON(w, http.StatusForbidden, map[string]string{"status": t.RefusedText})
		return false
	}
	s.notice(w, r, http.StatusForbidden, lang, t.RefusedTitle, t.RefusedText)
	return false
}

// chatView is what the chat page shows.
type chatView struct {
	After int64
	Lines []lineView
	State stateView
	// ForgetMs is Config.FinishedShown in milliseconds, for the page.
	ForgetMs int64
}

// Class returns the CSS classes of a line.
func (v *chatView) Class(l lineView) string {
	if l.From == "user" {
		return "msg user"
	}
	if l.N == v.State.System {
		return "msg bot system"
	}
	return "msg bot"
}

// lineView is one message of the page, as sent to it.
type lineView struct {
	N    int64  `json:"n"`
	From string `json:"from"` // "bot" or "user"
	Text string `json:"text"`
}

// stateView is where the conversation stands, as sent to the page.
type stateView struct {
	Open   bool   `json:"open"`
	Status string `json:"status"`
	// Type and Mode are the HTML type and inputmode of the answer field.
	Type    string       `json:"type"`
	Mode    string       `json:"mode,omitempty"`
	Choices []choiceView `json:"choices,omitempty"`
	// System is the position of the last line when safeflow wrote it
	// (such as "we'll continue by text message"), else 0.
	System int64 `json:"system,omitempty"`
}

type choiceView struct {
	Title string `json:"title"`
	Value string `json:"value"`
}

// chatPage renders the chat with its history since the session opened.
func (s *Server) chatPage(w http.ResponseWriter, r *http.Request) {
	sess, reason, err := s.session(r, true)
	if err != nil {
		s.internalError(w, r, acceptLanguage(r), "find session", err)
		return
	}
	if sess == nil {
		s.refuseSession(w, r, asPage, reason)
		return
	}
	ctx := r.Context()
	conv, err := s.st.ConversationState(ctx, sess.conv)
	if err != nil {
		s.internalError(w, r, "", "look up conversation", err)
		return
	}
	v := &chatView{After: sess.first, ForgetMs: s.cfg.FinishedShown.Milliseconds()}
	var last *lineView
	err = s.st.SecureTranscript(ctx, sess.conv, sess.first, historyLimit, func(n int64, l engine.TranscriptLine) {
		v.Lines = append(v.Lines, toView(n, l))
		last, v.After = &v.Lines[len(v.Lines)-1], n
	})
	if err != nil {
		s.internalError(w, r, conv.Language, "read transcript", err)
		return
	}
	if v.State, err = s.state(ctx, conv, last); err != nil {
		s.internalError(w, r, conv.Language, "read conversation state", err)
		return
	}
	if !v.State.Open {
		s.finish(r, sess)
	}
	t, lang := textsFor(conv.Language)
	s.render(w, r, http.StatusOK, "chat", &page{Lang: lang, T: t, Script: true, CSRF: chatCSRF(sess.id), Chat: v})
}

func toView(n int64, l engine.TranscriptLine) lineView {
	from := "bot"
	if l.Inbound {
		from = "user"
	}
	return lineView{N: n, From: from, Text: l.Text}
}

// state says where the conversation stands. last is the page's last line:
// when it is the question the engine just asked, its choices and input
// type (kept in the outbox, not the transcript) come with it.
func (s *Server) state(ctx context.Context, conv *engine.Conversation, last *lineView) (stateView, error) {
	t, _ := textsFor(conv.Language)
	st := stateView{Open: conv.Status != engine.Ended && conv.Secure == engine.SecureOpen, Type: "text"}
	switch {
	case st.Open:
		st.Status = t.Open
	case conv.Status == engine.Ended:
		st.Status = t.ClosedEnded
	case conv.Origin == engine.Messenger:
		st.Status = t.ClosedMessenger
	default:
		st.Status = t.ClosedSMS
	}
	if last == nil || last.From != "bot" {
		return st, nil
	}
	out, err := s.st.LatestSecureOutbound(ctx, conv.ID)
	if errors.Is(err, engine.ErrNotFound) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if out.Text != last.Text {
		return st, nil
	}
	if out.System {
		st.System = last.N
	}
	if st.Open {
		st.Type, st.Mode = inputFor(out.Input)
		st.Choices = choicesOf(out, t)
	}
	return st, nil
}

// choicesOf returns the buttons a question offers: its choices, or Yes and
// No for a yes/no question.
func choicesOf(out *engine.Outbound, t *pageTexts) []choiceView {
	if len(out.Choices) > 0 {
		cs := make([]choiceView, len(out.Choices))
		for i, c := range out.Choices {
			cs[i] = choiceView{Title: c.Title, Value: c.Payload}
		}
		return cs
	}
	if out.Input == flows.TypeYesNo {
		return []choiceView{{Title: t.Yes, Value: "yes"}, {Title: t.No, Value: "no"}}
	}
	return nil
}

// finish ends a session whose secure part is over. The engine has moved on
// already, so it is not told.
func (s *Server) finish(r *http.Request, sess *session) {
	_, err := s.st.EndSecureSession(r.Context(), sess.hash,
		s.record(r, ActionSessionEnded, audit.OutcomeOK, "secure part finished", sess.conv, ""))
	if err != nil && !errors.Is(err, engine.ErrNotFound) {
		s.cfg.Log.Error("secure chat: end finished session", "request", requestID(r), "err", err.Error())
	}
}

// send hands the patient's answer to the engine.
func (s *Server) send(w http.ResponseWriter, r *http.Request) {
	how := asPage
	if wantsJSON(r) {
		how = asJSON
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "unreadable form", http.StatusBadRequest)
		return
	}
	sess, reason, err := s.session(r, true)
	if err != nil {
		s.internalError(w, r, acceptLanguage(r), "find session", err)
		return
	}
	if sess == nil {
		s.refuseSession(w, r, how, reason)
		return
	}
	if !s.checkChatCSRF(w, r, sess, how) {
		return
	}
	ctx := r.Context()
	conv, err := s.st.ConversationState(ctx, sess.conv)
	if err != nil {
		s.internalError(w, r, "", "look up conversation", err)
		return
	}
	t, _ := textsFor(conv.Language)
	fail := func(status int, msg string) {
		if how == asJSON {
			writeJSON(w, status, map[string]string{"status": msg})
			return
		}
		http.Redirect(w, r, "/s/chat", http.StatusSeeOther)
	}
	in := engine.Inbound{Channel: engine.Secure, ConversationID: sess.conv, Source: s.cfg.ClientIP(r), RequestID: requestID(r)}
	if id := r.PostForm.Get("id"); len(id) >= 16 && len(id) <= 64 && wellFormedID(id) {
		// The page numbers its messages, so a retried request is not
		// answered twice.
		in.ProviderID = "web:" + sess.conv + ":" + id
	}
	if choice := r.PostForm.Get("choice"); choice != "" {
		out, err := s.st.LatestSecureOutbound(ctx, sess.conv)
		if err != nil && !errors.Is(err, engine.ErrNotFound) {
			s.internalError(w, r, conv.Language, "read question", err)
			return
		}
		var picked *choiceView
		if out != nil {
			for _, c := range choicesOf(out, t) {
				if c.Value == choice {
					picked = &c
					break
				}
			}
		}
		if picked == nil {
			// The question moved on since the page showed the button.
			fail(http.StatusConflict, t.SendFailed)
			return
		}
		in.Text = picked.Title
		if len(out.Choices) > 0 {
			in.Payload = picked.Value
		}
	} else {
		in.Text = strings.TrimSpace(r.PostForm.Get("text"))
		if in.Text == "" {
			fail(http.StatusBadRequest, t.SendFailed)
			return
		}
		if utf8.RuneCountInString(in.Text) > maxAnswer {
			fail(http.StatusRequestEntityTooLarge, t.TooLong)
			return
		}
	}
	_, err = s.eng.Handle(ctx, in)
	if errors.Is(err, engine.ErrSecureClosed) || errors.Is(err, engine.ErrNotFound) {
		s.finish(r, sess)
		fail(http.StatusConflict, t.ClosedSMS)
		return
	}
	if err != nil {
		s.internalError(w, r, conv.Language, "handle answer", err)
		return
	}
	if err := s.hub.Publish(ctx, sess.conv); err != nil {
		s.cfg.Log.Error("secure chat: wake pages", "request", requestID(r), "err", err.Error())
	}
	if how == asJSON {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	http.Redirect(w, r, "/s/chat", http.StatusSeeOther)
}

// events streams new lines and state changes to the page as server-sent
// events, until the session ends, the secure part is over or the page
// goes away. It does not count as activity: a page left open still idles
// out.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	sess, reason, err := s.session(r, false)
	if err != nil {
		http.Error(w, "internal error, reference "+requestID(r), http.StatusInternalServerError)
		s.cfg.Log.Error("secure chat: find session", "request", requestID(r), "err", err.Error())
		return
	}
	if sess == nil {
		s.refuseSession(w, r, asStream, reason)
		return
	}
	ctx := r.Context()
	after := sess.first
	for _, v := range []string{r.URL.Query().Get("after"), r.Header.Get("Last-Event-ID")} {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > after {
			after = n
		}
	}
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{}) // a stream outlives the server's write timeout; unsupported is fine
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no") // nginx would hold events back
	w.WriteHeader(http.StatusOK)

	wake, stop := s.hub.Subscribe(sess.conv)
	defer stop()
	tick := time.NewTicker(s.cfg.Poll)
	defer tick.Stop()
	ev := &eventWriter{w: w, rc: rc}
	ev.raw("retry: 3000\n\n")

	// The first read starts at the session's beginning, to know the last
	// line even when the page has it already.
	cursor, lastState := sess.first, ""
	var last *lineView
	for {
		if _, _, err := s.st.SecureSession(ctx, sess.hash, s.cfg.Now(), s.cfg.IdleTimeout); err != nil {
			if errors.Is(err, engine.ErrNotFound) {
				t, _ := textsFor(acceptLanguage(r))
				ev.send("end", 0, map[string]string{"status": t.TimedOutText})
			}
			return
		}
		var lines []lineView
		err := s.st.SecureTranscript(ctx, sess.conv, cursor, historyLimit, func(n int64, l engine.TranscriptLine) {
			lines = append(lines, toView(n, l))
		})
		if err != nil {
			s.cfg.Log.Error("secure chat: read transcript", "request", requestID(r), "err", err.Error())
			return
		}
		for i := range lines {
			cursor, last = lines[i].N, &lines[i]
			if lines[i].N > after {
				ev.send("line", lines[i].N, lines[i])
			}
		}
		if len(lines) == historyLimit {
			continue // more to read before the state is current
		}
		conv, err := s.st.ConversationState(ctx, sess.conv)
		if err != nil {
			s.cfg.Log.Error("secure chat: read conversation", "request", requestID(r), "err", err.Error())
			return
		}
		st, err := s.state(ctx, conv, last)
		if err != nil {
			s.cfg.Log.Error("secure chat: read conversation state", "request", requestID(r), "err", err.Error())
			return
		}
		if b, _ := json.Marshal(st); string(b) != lastState {
			lastState = string(b)
			ev.send("state", 0, st)
		}
		if ev.err != nil {
			return
		}
		if !st.Open {
			s.finish(r, sess)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-tick.C:
			ev.raw(": ping\n\n") // keeps proxies from closing an idle stream
		}
	}
}

// eventWriter writes server-sent events and flushes each one.
type eventWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	err error
}

func (e *eventWriter) send(name string, id int64, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		e.err = err
		return
	}
	msg := "event: " + name + "\n"
	if id > 0 {
		msg += "id: " + strconv.FormatInt(id, 10) + "\n"
	}
	e.raw(msg + "data: " + string(b) + "\n\n")
}

func (e *eventWriter) raw(s string) {
	if e.err != nil {
		return
	}
	if _, e.err = fmt.Fprint(e.w, s); e.err == nil {
		e.err = e.rc.Flush()
	}
}

// end ends the session at the patient's request and clears what the
// browser holds for the site.
func (s *Server) end(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "unreadable form", http.StatusBadRequest)
		return
	}
	lang := acceptLanguage(r)
	if c, err := r.Cookie(SessionCookie); err == nil && wellFormed(c.Value) {
		sess := &session{id: c.Value, hash: hashToken(c.Value)}
		if !s.checkChatCSRF(w, r, sess, asPage) {
			return
		}
		ctx := r.Context()
		convID, err := s.st.EndSecureSession(ctx, sess.hash, s.record(r, ActionSessionEnded, audit.OutcomeOK, "ended by patient", "", ""))
		switch {
		case err == nil:
			if conv, err := s.st.ConversationState(ctx, convID); err == nil {
				lang = conv.Language
			}
			if _, err := s.eng.SecureClosed(ctx, convID); err != nil && !errors.Is(err, engine.ErrNoConversation) {
				s.cfg.Log.Error("secure chat: close secure page", "request", requestID(r), "err", err.Error())
			}
			if err := s.hub.Publish(ctx, convID); err != nil {
				s.cfg.Log.Error("secure chat: wake pages", "request", requestID(r), "err", err.Error())
			}
		case !errors.Is(err, engine.ErrNotFound):
			s.internalError(w, r, lang, "end session", err)
			return
		}
	}
	clearSiteData(w)
	clearCookie(w, SessionCookie)
	t, lang := textsFor(lang)
	s.render(w, r, http.StatusOK, "notice", &page{Lang: lang, T: t, Heading: t.EndedTitle, Text: t.EndedText})
}

// clearSiteData asks the browser to drop the site's cache, cookies and
// storage.
func clearSiteData(w http.ResponseWriter) {
	w.Header().Set("Clear-Site-Data", `"cache", "cookies", "storage"`)
}

// acceptLanguage picks the page language from the browser's, when no
// conversation says it.
func acceptLanguage(r *http.Request) string {
	for _, part := range strings.Split(r.Header.Get("Accept-Language"), ",") {
		tag := strings.ToLower(strings.TrimSpace(strings.SplitN(part, ";", 2)[0]))
		if base, _, _ := strings.Cut(tag, "-"); base != "" {
			if _, ok := texts[base]; ok {
				return base
			}
		}
	}
	return ""
}
