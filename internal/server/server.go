package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/engine/answer"
	"github.com/safeflow/safeflow/flows"
	"github.com/safeflow/safeflow/flows/diag"
	"github.com/safeflow/safeflow/internal/audit"
	"github.com/safeflow/safeflow/internal/delivery"
	"github.com/safeflow/safeflow/internal/devphone"
	"github.com/safeflow/safeflow/internal/seal"
	"github.com/safeflow/safeflow/internal/store"
	"github.com/safeflow/safeflow/securechat"
)

// Server is a running safeflow service.
type Server struct {
	cfg      Config
	log      *slog.Logger
	Store    *store.Store
	Flows    *flows.Registry
	Engine   *engine.Engine
	Echo     *echo.Echo
	Worker   *delivery.Worker
	metrics  *metrics
	wake     chan struct{}
	limiters *contactLimiter
	senders  map[engine.Channel]engine.Sender
	// Phone is the phone simulator in dev mode, else nil.
	Phone *devphone.Phone
	// closers release what New opened, in reverse order.
	closers []func()
	// runners are background parts started by Run (the secure chat's sweeper).
	runners []func(context.Context) error
	// setupErr is a wiring error found while building routes.
	setupErr error
	// onShutdown runs when shutdown starts, to end long-lived requests
	// (long polls, event streams) that would otherwise hold it up.
	onShutdown []func()
	now        func() time.Time
	links      engine.LinkIssuer
	// secureAdjust, when set, adjusts the secure chat's settings.
	secureAdjust func(*securechat.Config)
}

// Option configures a Server beyond its Config.
type Option func(*Server)

// WithClock sets the service's clock (tests).
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithSender replaces the sender of a channel (tests).
func WithSender(ch engine.Channel, snd engine.Sender) Option {
	return func(s *Server) { s.senders[ch] = snd }
}

// WithSecureChat adjusts the secure chat's settings beyond what Config
// holds (for tests: shorter times).
func WithSecureChat(adjust func(*securechat.Config)) Option {
	return func(s *Server) { s.secureAdjust = adjust }
}

// WithLinkIssuer sets the issuer of secure links, in place of the secure
// chat's own.
func WithLinkIssuer(l engine.LinkIssuer) Option { return func(s *Server) { s.links = l } }

// New builds the service from its configuration: it opens the key ring and
// the store, loads the flows, and wires the engine, channels and routes.
func New(ctx context.Context, cfg Config, log *slog.Logger, opts ...Option) (*Server, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, metrics: newMetrics(), wake: make(chan struct{}, 1),
		limiters: newContactLimiter(rate.Every(500*time.Millisecond), 20), senders: map[engine.Channel]engine.Sender{}, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	ring, err := s.keyRing()
	if err != nil {
		return nil, err
	}
	s.Store, err = store.Open(ctx, cfg.DB, ring, store.WithClock(s.now), store.AsService())
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { s.Store.Close() })
	if n := s.Store.ReleasedAtStart(); n > 0 {
		log.Info("replies a previous run had claimed, when it stopped without releasing them, go out now", "count", n)
	}
	s.Store.WarmPool(ctx)
	// Chain what a previous run left pending, and find out now, not in the
	// background, when this role may not.
	if n, err := s.Store.ChainAudit(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("audit log: %w", err)
	} else if n > 0 {
		log.Info("audit records a previous run left unchained are chained now", "count", n)
	}
	s.runners = append(s.runners, func(ctx context.Context) error {
		return s.Store.RunAuditChainer(ctx, 200*time.Millisecond, func(err error) {
			s.log.Error("chaining audit records failed; they wait in audit_pending and are tried again", "err", err)
		})
	},
		func(ctx context.Context) error {
			s.Store.RunPruner(ctx, time.Hour, func(p store.Pruned, err error) {
				if p.Seen > 0 {
					s.log.Info("forgot old provider message ids", "count", p.Seen, "older_than", store.SeenRetention.String())
				}
				if p.Outbox > 0 {
					s.log.Info("removed finished replies from the outbox", "count", p.Outbox, "older_than", store.OutboxRetention.String())
				}
				if err != nil {
					s.log.Error("removing old rows; tried again in an hour", "err", err)
				}
			})
			return nil
		})
	s.Flows, err = s.loadFlows(ctx)
	if err != nil {
		s.Close()
		return nil, err
	}
	loc := time.Local
	if cfg.TimeZone != "" {
		if loc, err = time.LoadLocation(cfg.TimeZone); err != nil {
			s.Close()
			return nil, fmt.Errorf("time zone %q: %w", cfg.TimeZone, err)
		}
	}
	eopts := []engine.Option{engine.WithClock(s.now), engine.WithLocation(loc), engine.WithRegion(cfg.Region), engine.WithLogger(log),
		engine.WithIdentityGuard(true)}
	if strings.EqualFold(cfg.DateOrder, "DMY") {
		eopts = append(eopts, engine.WithDateOrder(answer.DMY))
	}
	eopts = append(eopts, s.secureOptions()...)
	if s.links != nil {
		eopts = append(eopts, engine.WithLinkIssuer(s.links))
	}
	s.Engine = engine.New(s.Flows, s.Store, eopts...)
	if err := s.wireChannels(); err != nil {
		s.Close()
		return nil, err
	}
	s.Worker = &delivery.Worker{Outbox: s.Store, Senders: s.senders, Log: log, Wake: s.wake, Now: s.now, Parallel: cfg.DeliveryParallelism(),
		Observe: func(ch engine.Channel, outcome string) { s.metrics.outbound.WithLabelValues(string(ch), outcome).Inc() }}
	s.metrics.storeMetrics(s.Store.OptimisticCounts)
	// Whatever writes to the outbox (a webhook, the secure page, a timer, a
	// clinic's start) has its messages sent at once: each contact's first
	// inserted claimed, the others claimed by key.
	s.Store.OnOutbox(func(claimed []store.Pending, rest []int64) {
		s.Worker.Take(claimed, rest)
		s.Wake()
	})
	s.routes()
	if s.setupErr != nil {
		s.Close()
		return nil, s.setupErr
	}
	return s, nil
}

// keyRing loads the key file; in dev mode a missing one is created.
func (s *Server) keyRing() (*seal.Ring, error) {
	ring, err := seal.Load(s.cfg.KeysFile)
	if err == nil {
		return ring, nil
	}
	if !s.cfg.Dev || !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("key file: %w", err)
	}
	ring, err = seal.Generate()
	if err != nil {
		return nil, err
	}
	if err := ring.Save(s.cfg.KeysFile); err != nil {
		return nil, fmt.Errorf("create key file: %w", err)
	}
	s.log.Warn("dev mode: created a new local key file; keep it safe and never use dev keys in production", "file", verbatim(s.cfg.KeysFile))
	return ring, nil
}

func (s *Server) loadFlows(ctx context.Context) (*flows.Registry, error) {
	reg, diags, err := flows.NewRegistry(ctx, s.cfg.FlowsDir, flows.WithVersionStore(s.Store), flows.WithReloadHook(s.reloaded))
	if err != nil {
		if len(diags) > 0 {
			var b strings.Builder
			diag.WriteText(&b, diags, nil, 10)
			return nil, fmt.Errorf("cannot start: the flows in %s have errors (run `safeflow validate %s`):\n%s", s.cfg.FlowsDir, s.cfg.FlowsDir, b.String())
		}
		return nil, fmt.Errorf("cannot start: %w", err)
	}
	return reg, nil
}

// reloaded reports a flow reload in the log, the metrics and the audit log.
// The first load, at start, is audited but not counted as a reload: when it
// fails, New returns the error and nothing keeps serving.
func (s *Server) reloaded(res flows.ReloadResult) {
	initial := s.Flows == nil // the hook runs inside NewRegistry at start
	switch {
	case initial && res.Applied:
		s.log.Info("flows loaded", "files", res.Files, "warnings", res.Diags.Warnings())
	case initial:
	case res.Applied:
		s.metrics.reloads.WithLabelValues("applied").Inc()
		s.log.Info("flows reloaded", "files", res.Files, "warnings", res.Diags.Warnings())
	default:
		s.metrics.reloads.WithLabelValues("rejected").Inc()
		s.log.Error("flow reload rejected; the last good flows keep serving", "err", res.Err)
	}
	if s.Store != nil {
		rec := auditRecord(audit.FlowReload, "", audit.OutcomeOK)
		if !res.Applied {
			rec.Outcome, rec.Reason = audit.OutcomeFailed, "the flow files have errors"
		}
		if err := s.Store.Audit(context.Background(), rec); err != nil {
			s.log.Error("audit flow reload", "err", err)
		}
	}
}

// Handler returns the service's HTTP handler.
func (s *Server) Handler() http.Handler { return s.Echo }

// Close releases the store and anything else held.
func (s *Server) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// handle is the sink every channel hands inbound messages to.
func (s *Server) handle(ctx context.Context, in engine.Inbound) error {
	if !s.limiters.allow(string(in.Channel) + "\x00" + in.Address + in.ConversationID) {
		s.metrics.limited.Inc()
		s.metrics.inbound.WithLabelValues(string(in.Channel), "rate_limited").Inc()
		s.log.Warn("inbound message dropped by the per-contact rate limit", "channel", string(in.Channel), "request_id", in.RequestID)
		return nil
	}
	start := time.Now()
	res, err := s.Engine.Handle(ctx, in)
	s.metrics.handle.Observe(time.Since(start).Seconds())
	if err != nil {
		s.metrics.inbound.WithLabelValues(string(in.Channel), "error").Inc()
		return err
	}
	status := "handled"
	if res.Duplicate {
		status = "duplicate"
	}
	s.metrics.inbound.WithLabelValues(string(in.Channel), status).Inc()
	s.Wake()
	return nil
}

// Wake tells the outbox worker there is something to send.
func (s *Server) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run serves until ctx ends, then shuts down gracefully: in-flight requests
// finish, and undelivered outbox rows stay for the next start, which sends
// them at once.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	background := func(fn func()) {
		wg.Add(1)
		go func() { defer wg.Done(); fn() }()
	}
	// The outbox worker stops after the requests in flight have finished,
	// so that it still sends, or releases, what they commit.
	work, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	background(func() { s.Worker.Run(work) })
	background(func() { s.tickTimers(ctx) })
	for _, run := range s.runners {
		background(func() {
			if err := run(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("background task stopped", "err", err)
			}
		})
	}
	background(func() { s.gauges(ctx) })
	background(func() {
		if err := s.Flows.Watch(ctx, 300*time.Millisecond); err != nil {
			s.log.Error("watching flow files failed; changes need a restart", "err", err)
		}
	})
	// No WriteTimeout: long polls and the secure chat's event stream stay
	// open; they end themselves, and at shutdown through onShutdown.
	srv := &http.Server{Handler: s.Echo, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	for _, fn := range s.onShutdown {
		srv.RegisterOnShutdown(fn)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("safeflow is serving", "addr", verbatim(ln.Addr().String()), "flows", len(s.Flows.Current().Flows), "dev", s.cfg.Dev)
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shutdown, stop := context.WithTimeout(context.Background(), 15*time.Second)
	defer stop()
	if e := srv.Shutdown(shutdown); e != nil && err == nil {
		err = e
	}
	cancel()
	stopWork()
	wg.Wait()
	// A timer that fired during the shutdown may have handed the worker
	// messages after it stopped.
	s.Worker.Release()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func (s *Server) tickTimers(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			results, err := s.Engine.Tick(ctx)
			if err != nil && ctx.Err() == nil {
				s.log.Error("timers", "err", err)
			}
			if len(results) > 0 {
				s.Wake()
			}
		}
	}
}

func (s *Server) gauges(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		pending, dead, err := s.Store.OutboxCounts(ctx)
		if err == nil {
			s.metrics.depth.Set(float64(pending))
			s.metrics.dead.Set(float64(dead))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// routes sets up echo.
func (s *Server) routes() {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.httpError
	// Behind a trusted proxy, every route (webhooks, secure chat, logs)
	// sees the client's address as RemoteAddr.
	if ips, err := parseTrustedProxies(s.cfg.TrustedProxies); err != nil {
		s.setupErr = err
	} else if len(ips.trusted) > 0 {
		e.Pre(ips.behindProxy)
	}
	e.Use(middleware.RequestID())
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{LogErrorFunc: s.panicked, DisableStackAll: true}))
	e.Use(middleware.BodyLimit("1M"))
	e.Use(s.accessLog)
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })
	e.GET("/readyz", s.ready)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})))
	s.Echo = e
	s.channelRoutes(e)
	s.secureRoutes(e)
	s.devRoutes(e)
}

// ready reports whether the database answers and flows are loaded.
func (s *Server) ready(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := s.Store.Ping(ctx); err != nil {
		return c.String(http.StatusServiceUnavailable, "database unreachable\n")
	}
	if set := s.Flows.Current(); set == nil || len(set.Flows) == 0 {
		return c.String(http.StatusServiceUnavailable, "no flows loaded\n")
	}
	return c.String(http.StatusOK, "ready\n")
}

// panicked logs a recovered panic through the redacting log, never echo's
// own logger, and hands httpError an error without the panic's value: a
// value built with fmt can hold anything the handler had.
func (s *Server) panicked(c echo.Context, err error, stack []byte) error {
	cause := fmt.Sprintf("%T", err)
	if re, ok := err.(runtime.Error); ok {
		cause = re.Error()
	}
	s.log.Error("handler panicked", "route", c.Path(), "request_id", c.Response().Header().Get(echo.HeaderXRequestID),
		"cause", cause, "stack", string(stack))
	return errPanic
}

var errPanic = errors.New("handler panicked")

// httpError shows users "internal error" with a request id; the cause goes
// to the log.
func (s *Server) httpError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	code, msg := http.StatusInternalServerError, "internal error"
	var he *echo.HTTPError
	if errors.As(err, &he) {
		code = he.Code
		if m, ok := he.Message.(string); ok {
			msg = m
		}
	}
	id := c.Response().Header().Get(echo.HeaderXRequestID)
	if code >= 500 {
		s.log.Error("request failed", "route", c.Path(), "request_id", id, "err", err)
		msg = "internal error"
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(code)
		return
	}
	_ = c.String(code, fmt.Sprintf("%s (request %s)\n", msg, id))
}

// accessLog logs each request by its route pattern, never its raw path:
// secure links carry a token in the path.
func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		s.log.Debug("request", "method", c.Request().Method, "route", c.Path(), "status", c.Response().Status,
			"ms", time.Since(start).Milliseconds(), "request_id", c.Response().Header().Get(echo.HeaderXRequestID))
		return nil
	}
}
