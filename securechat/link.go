package securechat

import (
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/flows"
	"github.com/safeflow/safeflow/internal/audit"
)

// maxFormBytes bounds the body of the link and chat forms.
const maxFormBytes = 16 << 10

// getLink shows the "Continue" page. It changes nothing, since SMS apps
// and Messenger fetch links to show previews.
func (s *Server) getLink(w http.ResponseWriter, r *http.Request) {
	if !s.allowIP(w, r) {
		return
	}
	link, conv, ok := s.usableLink(w, r, r.PathValue("token"))
	if !ok {
		return
	}
	s.audit(r.Context(), s.record(r, audit.LinkOpened, audit.OutcomeOK, "", link.ConversationID, link.ContactID))
	t, lang := textsFor(conv.Language)
	s.render(w, r, http.StatusOK, "continue", &page{Lang: lang, T: t, Action: "/s/" + r.PathValue("token"), CSRF: s.linkCSRF(w, r)})
}

// postLink runs the knowledge check, when the flow has one, and redeems
// the link.
func (s *Server) postLink(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	if err := s.crossOrigin(r); err != nil {
		s.refuseLink(w, r, token, "cross-site request")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.refuseLink(w, r, token, "unreadable form")
		return
	}
	if c, err := r.Cookie(csrfCookie); err != nil || !wellFormed(c.Value) ||
		subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostForm.Get("csrf"))) != 1 {
		s.refuseLink(w, r, token, "bad csrf token")
		return
	}
	if !s.allowIP(w, r) {
		return
	}
	link, conv, ok := s.usableLink(w, r, token)
	if !ok {
		return
	}
	t, lang := textsFor(conv.Language)
	if v := s.verifyOf(conv); v != nil {
		answers, answered := r.PostForm["answer"]
		p := &page{Lang: lang, T: t, Action: "/s/" + token, CSRF: r.PostForm.Get("csrf"), Prompt: promptText(v.Prompt, lang)}
		p.InputType, p.InputMode = inputFor(v.Type)
		if !answered {
			s.render(w, r, http.StatusOK, "verify", p)
			return
		}
		if ok, first := s.tokenLimit.allow(hex.EncodeToString(link.TokenHash), s.cfg.Now()); !ok {
			if first {
				s.audit(r.Context(), s.record(r, audit.LinkFailed, audit.OutcomeDenied, "rate limited", link.ConversationID, link.ContactID))
			}
			s.tooMany(w, r, s.tokenLimit, lang)
			return
		}
		if !s.checkIdentity(w, r, link, conv, answers[0], p) {
			return
		}
	}
	s.redeem(w, r, link, conv)
}

// checkIdentity runs the knowledge check on an answer. On a wrong answer it
// counts the failure, locking the link at the limit, answers the request
// and returns false.
func (s *Server) checkIdentity(w http.ResponseWriter, r *http.Request, link engine.SecureLink, conv *engine.Conversation, answer string, p *page) bool {
	ok := false
	if len(answer) <= 256 { // nothing longer is a date or an id
		var err error
		ok, err = s.eng.CheckIdentity(r.Context(), conv.ID, answer)
		if errors.Is(err, engine.ErrNoConversation) {
			s.audit(r.Context(), s.record(r, audit.LinkExpired, audit.OutcomeDenied, "conversation moved on", link.ConversationID, link.ContactID))
			s.notice(w, r, http.StatusGone, p.Lang, p.T.DoneTitle, p.T.DoneText)
			return false
		}
		if err != nil {
			s.internalError(w, r, p.Lang, "check identity", err)
			return false
		}
	}
	if ok {
		return true
	}
	failures, locked, err := s.st.FailSecureLink(r.Context(), link.TokenHash, s.cfg.MaxFailures,
		s.record(r, audit.LinkFailed, audit.OutcomeDenied, "verification failed", link.ConversationID, link.ContactID))
	switch {
	case errors.Is(err, engine.ErrNotFound):
		// Locked or redeemed by a concurrent request.
		s.usableLink(w, r, r.PathValue("token"))
		return false
	case err != nil:
		s.internalError(w, r, p.Lang, "record failed check", err)
		return false
	case locked:
		// The clinic is told: the audit record above, this log line, and
		// the OnLock hook. None of them holds the answer.
		s.cfg.Log.Warn("secure chat: link locked after failed identity checks", "conversation", link.ConversationID,
			"failures", failures, "request", requestID(r))
		if s.cfg.OnLock != nil {
			s.cfg.OnLock(link.ConversationID)
		}
		s.notice(w, r, http.StatusForbidden, p.Lang, p.T.LockedTitle, p.T.LockedText)
		return false
	}
	p.Error = p.T.VerifyWrong
	s.render(w, r, http.StatusUnprocessableEntity, "verify", p)
	return false
}

// redeem uses up the link, opens a session and sends the browser to the
// chat page, whose URL holds no token.
func (s *Server) redeem(w http.ResponseWriter, r *http.Request, link engine.SecureLink, conv *engine.Conversation) {
	ctx := r.Context()
	now := s.cfg.Now()
	sid := newToken()
	convID, err := s.st.RedeemSecureLink(ctx, link.TokenHash, hashToken(sid), now, now.Add(s.cfg.SessionLimit),
		s.record(r, audit.LinkRedeemed, audit.OutcomeOK, "", link.ConversationID, link.ContactID))
	if errors.Is(err, engine.ErrNotFound) {
		// Another request redeemed it, or it expired, a moment ago.
		s.usableLink(w, r, r.PathValue("token"))
		return
	}
	if err != nil {
		s.internalError(w, r, conv.Language, "redeem link", err)
		return
	}
	if _, err := s.eng.SecureOpened(ctx, convID); err != nil {
		s.st.EndSecureSession(ctx, hashToken(sid), s.record(r, ActionSessionEnded, audit.OutcomeFailed, "the secure page could not open", convID, link.ContactID))
		s.internalError(w, r, conv.Language, "open secure page", err)
		return
	}
	setCookie(w, SessionCookie, sid)
	clearCookie(w, csrfCookie)
	http.Redirect(w, r, "/s/chat", http.StatusSeeOther)
}

// usableLink finds the link a token names and checks that it may still be
// used. When it may not, it records why, answers the request and returns
// false.
func (s *Server) usableLink(w http.ResponseWriter, r *http.Request, token string) (engine.SecureLink, *engine.Conversation, bool) {
	ctx := r.Context()
	lang := acceptLanguage(r)
	t, _ := textsFor(lang)
	if !wellFormed(token) {
		s.audit(ctx, s.record(r, audit.LinkFailed, audit.OutcomeDenied, "unknown link", "", ""))
		s.notice(w, r, http.StatusNotFound, lang, t.InvalidTitle, t.InvalidText)
		return engine.SecureLink{}, nil, false
	}
	link, redeemed, locked, err := s.st.SecureLinkByHash(ctx, hashToken(token))
	if errors.Is(err, engine.ErrNotFound) {
		s.audit(ctx, s.record(r, audit.LinkFailed, audit.OutcomeDenied, "unknown link", "", ""))
		s.notice(w, r, http.StatusNotFound, lang, t.InvalidTitle, t.InvalidText)
		return engine.SecureLink{}, nil, false
	}
	if err != nil {
		s.internalError(w, r, lang, "look up link", err)
		return engine.SecureLink{}, nil, false
	}
	conv, err := s.st.ConversationState(ctx, link.ConversationID)
	if err != nil && !errors.Is(err, engine.ErrNotFound) {
		s.internalError(w, r, lang, "look up conversation", err)
		return engine.SecureLink{}, nil, false
	}
	if conv != nil && conv.Language != "" {
		lang = conv.Language
		t, _ = textsFor(lang)
	}
	refuse := func(status int, action, reason, heading, text string) (engine.SecureLink, *engine.Conversation, bool) {
		s.audit(ctx, s.record(r, action, audit.OutcomeDenied, reason, link.ConversationID, link.ContactID))
		s.notice(w, r, status, lang, heading, text)
		return engine.SecureLink{}, nil, false
	}
	switch {
	case redeemed:
		return refuse(http.StatusGone, audit.LinkFailed, "already used", t.UsedTitle, t.UsedText)
	case locked:
		return refuse(http.StatusForbidden, audit.LinkLocked, "locked", t.LockedTitle, t.LockedText)
	case !s.cfg.Now().Before(link.Expires):
		return refuse(http.StatusGone, audit.LinkExpired, "expired", t.ExpiredTitle, t.ExpiredText)
	case conv == nil || conv.Status == engine.Ended || conv.Secure != engine.SecurePending:
		// The sensitive part this link was for is over, or already open.
		return refuse(http.StatusGone, audit.LinkExpired, "conversation moved on", t.DoneTitle, t.DoneText)
	}
	return link, conv, true
}

// refuseLink records and answers a POST refused before the link is looked
// at (a cross-site request, a bad form or token). The record names the
// link's conversation when the token is real.
func (s *Server) refuseLink(w http.ResponseWriter, r *http.Request, token, reason string) {
	var conv, contact string
	if wellFormed(token) {
		if l, _, _, err := s.st.SecureLinkByHash(r.Context(), hashToken(token)); err == nil {
			conv, contact = l.ConversationID, l.ContactID
		}
	}
	s.audit(r.Context(), s.record(r, audit.LinkFailed, audit.OutcomeDenied, reason, conv, contact))
	lang := acceptLanguage(r)
	t, _ := textsFor(lang)
	status := http.StatusForbidden
	if reason == "unreadable form" {
		status = http.StatusBadRequest
	}
	s.notice(w, r, status, lang, t.RefusedTitle, t.RefusedText)
}

// allowIP applies the per-address limit on link requests.
func (s *Server) allowIP(w http.ResponseWriter, r *http.Request) bool {
	ok, first := s.ipLimit.allow(s.cfg.ClientIP(r), s.cfg.Now())
	if ok {
		return true
	}
	if first {
		s.audit(r.Context(), s.record(r, audit.LinkFailed, audit.OutcomeDenied, "rate limited", "", ""))
	}
	s.tooMany(w, r, s.ipLimit, acceptLanguage(r))
	return false
}

// linkCSRF returns the double-submit token of the link pages, setting its
// cookie when the browser has none yet.
func (s *Server) linkCSRF(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && wellFormed(c.Value) {
		return c.Value
	}
	v := newToken()
	setCookie(w, csrfCookie, v)
	return v
}

// verifyOf returns the flow's knowledge check, or nil.
func (s *Server) verifyOf(conv *engine.Conversation) *flows.Verify {
	if f := s.flowOf(conv); f != nil {
		return f.Secure.Verify
	}
	return nil
}

// promptText returns a message's text in lang without its expressions: the
// check comes before anything about the patient may be shown.
func promptText(m *flows.Message, lang string) string {
	if m == nil {
		return ""
	}
	for _, l := range []string{lang, "", "en"} {
		if t := m.Text[l]; t != nil {
			return t.Literal()
		}
	}
	for _, t := range m.Text {
		return t.Literal()
	}
	return ""
}

// inputFor returns the HTML input type and inputmode for an answer type.
func inputFor(kind string) (typ, mode string) {
	switch kind {
	case flows.TypeDate:
		return "date", ""
	case flows.TypeInteger:
		return "text", "numeric"
	case flows.TypeNumber:
		// Not "numeric": phone keypads for it have no decimal point.
		return "text", "decimal"
	case flows.TypePhone:
		return "tel", ""
	case flows.TypeEmail:
		return "email", ""
	}
	return "text", ""
}
