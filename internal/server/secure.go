package server

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/securechat"
)

// secureConfig is the secure chat's configuration from the service's.
func (s *Server) secureConfig() securechat.Config {
	// No ClientIP: behind a trusted proxy, routes() has already set each
	// request's RemoteAddr to the client's address.
	c := securechat.Config{PublicURL: s.cfg.PublicURL, Dev: s.cfg.Dev, Now: s.now, Log: s.log,
		OnLock: s.linkLocked}
	if s.Store != nil && s.Store.Postgres() {
		// Pages connected to this node hear about messages written on others.
		c.ListenDSN = s.cfg.DB
	}
	if s.secureAdjust != nil {
		s.secureAdjust(&c)
	}
	return c
}

// secureOptions wires the secure chat's link issuer into the engine.
func (s *Server) secureOptions() []engine.Option {
	iss, err := securechat.NewIssuer(s.secureConfig())
	if err != nil {
		s.setupErr = err
		return nil
	}
	return []engine.Option{engine.WithLinkIssuer(iss)}
}

// secureRoutes mounts the secure web chat under /s/ and makes it the
// sender of the secure channel.
func (s *Server) secureRoutes(e *echo.Echo) {
	if s.setupErr != nil {
		return
	}
	chat, err := securechat.New(s.secureConfig(), s.Store, s.Engine, s.Flows)
	if err != nil {
		s.setupErr = err
		return
	}
	if s.senders[engine.Secure] == nil {
		s.senders[engine.Secure] = chat.Hub()
	}
	// Open pages hold event streams; shutdown ends them instead of waiting.
	stopping, stop := context.WithCancel(context.Background())
	s.onShutdown = append(s.onShutdown, stop)
	h := echo.WrapHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		defer context.AfterFunc(stopping, cancel)()
		chat.ServeHTTP(w, r.WithContext(ctx))
	}))
	e.Any("/s/*", h)
	s.runners = append(s.runners, chat.Run)
}

// linkLocked tells the clinic that a patient's link locked after too many
// failed identity checks: the conversation goes to the front desk, whose
// staff see it waiting, and the log says so (without any answer).
func (s *Server) linkLocked(conversationID string) {
	s.log.Warn("a secure link locked after too many failed identity checks; the conversation is handed to the front desk",
		"conversation", conversationID)
	if _, err := s.Engine.HandOff(context.Background(), conversationID, "front-desk", "secure-link-lock"); err != nil {
		s.log.Error("hand off a conversation whose link locked", "conversation", conversationID, "err", err)
	}
}
