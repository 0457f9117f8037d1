package server

import (
	"github.com/labstack/echo/v4"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/internal/devphone"
)

// devSetup gives dev mode its phone simulator: it delivers SMS and
// Messenger replies for channels that have no provider configured.
func (s *Server) devSetup() {
	if !s.cfg.Dev {
		return
	}
	s.Phone = devphone.New()
	s.onShutdown = append(s.onShutdown, s.Phone.Close)
	for _, ch := range []engine.Channel{engine.SMS, engine.Messenger} {
		if s.senders[ch] == nil {
			s.senders[ch] = s.Phone.Sender(ch)
		}
	}
}

// devRoutes mounts the phone simulator at / in dev mode.
func (s *Server) devRoutes(e *echo.Echo) {
	if s.Phone == nil {
		return
	}
	h := echo.WrapHandler(s.Phone.Handler(s.handle, s.log))
	for _, p := range []string{"/", "/phone.js", "/phone.css", "/dev/messages"} {
		e.GET(p, h)
	}
	e.POST("/dev/send", h)
}
