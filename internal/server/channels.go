package server

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/safeflow/safeflow/channels/messenger"
	"github.com/safeflow/safeflow/channels/twilio"
	"github.com/safeflow/safeflow/engine"
)

// twilioConfig passes the service's redacting log: without it the channel
// would log to slog.Default, around the redaction.
func (s *Server) twilioConfig() twilio.Config {
	return twilio.Config{AccountSID: s.cfg.TwilioAccountSID, AuthToken: s.cfg.TwilioAuthToken, From: s.cfg.TwilioFrom,
		APIURL: s.cfg.TwilioAPIURL, PublicURL: s.cfg.PublicURL, Region: s.cfg.Region, Logger: s.log}
}

func (s *Server) messengerConfig() messenger.Config {
	return messenger.Config{AppSecret: s.cfg.MessengerAppSecret, VerifyToken: s.cfg.MessengerVerifyToken,
		PageToken: s.cfg.MessengerPageToken, APIURL: s.cfg.MessengerAPIURL, Logger: s.log}
}

// wireChannels sets up the senders of the configured providers. A channel
// without credentials has no sender: in dev mode the phone simulator takes
// its place.
func (s *Server) wireChannels() error {
	// The outbox worker sends to several contacts at once: keep as many
	// connections to each provider open between sends, not Go's default
	// of two, so that each send does not open a connection (and a TLS
	// session) of its own.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 2 * s.cfg.DeliveryParallelism()
	client := &http.Client{Timeout: 15 * time.Second, Transport: transport}
	if s.cfg.TwilioAccountSID != "" && s.senders[engine.SMS] == nil {
		s.senders[engine.SMS] = twilio.NewSender(s.twilioConfig(), client)
	}
	if s.cfg.MessengerPageToken != "" && s.senders[engine.Messenger] == nil {
		s.senders[engine.Messenger] = messenger.NewSender(s.messengerConfig(), client)
	}
	s.devSetup()
	return nil
}

// channelRoutes mounts the provider webhooks. A provider without its
// secret configured answers 404: an unsigned webhook is never accepted.
func (s *Server) channelRoutes(e *echo.Echo) {
	if s.cfg.TwilioAuthToken != "" {
		cfg := s.twilioConfig()
		e.POST("/webhooks/twilio", echo.WrapHandler(twilio.InboundHandler(cfg, "/webhooks/twilio", s.handle)))
		e.POST("/webhooks/twilio/status", echo.WrapHandler(twilio.StatusHandler(cfg, "/webhooks/twilio/status", s.Store.UpdateDelivery)))
	}
	if s.cfg.MessengerAppSecret != "" {
		h := echo.WrapHandler(messenger.Handler(s.messengerConfig(), s.handle))
		e.GET("/webhooks/messenger", h)
		e.POST("/webhooks/messenger", h)
	}
}
