package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/safeflow/safeflow/channels/twilio/twiliotest"
	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/internal/convtest"
	"github.com/safeflow/safeflow/internal/seal"
	"github.com/safeflow/safeflow/internal/server"
)

// Delivery says where the service's outbound SMS go during a run.
type Delivery int

const (
	// DeliverDiscard hands outbound messages to an in-process Sink: the
	// outbox is still claimed and marked sent, but no HTTP call is made.
	// It measures the inbound path.
	DeliverDiscard Delivery = iota
	// DeliverLoopback sends them with the real Twilio sender to a Sink
	// serving the Messages API on 127.0.0.1.
	DeliverLoopback
)

// String names d for reports.
func (d Delivery) String() string {
	if d == DeliverLoopback {
		return "loopback Messages API"
	}
	return "discarded in-process"
}

// The fictitious identity of the service under load. The public URL is
// only signed over, never contacted.
const (
	benchPublicURL = "https://bench.safeflow.invalid"
	benchNumber    = "+12015550100"
	webhookPath    = "/webhooks/twilio"
)

// ServiceConfig describes a service to start for a run.
type ServiceConfig struct {
	// DB is the store: a SQLite path or a postgres:// URL.
	DB string
	// FlowsDir is the folder of flows, such as examples/.
	FlowsDir string
	Delivery Delivery
	// ProviderLatency is how long the loopback Messages API takes to
	// answer (DeliverLoopback).
	ProviderLatency time.Duration
	// Log receives the service's log; nil discards it.
	Log *slog.Logger
}

// A Service is a real safeflow service running in-process on 127.0.0.1,
// with a fresh key file, Twilio credentials made up for the run, and a Sink
// for its outbound messages.
type Service struct {
	Server *server.Server
	Sink   *Sink
	// URL is the service's base URL on loopback.
	URL string

	authToken string
	dir       string
	cancel    context.CancelFunc
	done      chan error
}

// StartService starts the service and waits until it is ready.
func StartService(ctx context.Context, cfg ServiceConfig) (*Service, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir, err := os.MkdirTemp("", "safeflow-bench-")
	if err != nil {
		return nil, fmt.Errorf("start service: %w", err)
	}
	s := &Service{dir: dir}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	ring, err := seal.Generate()
	if err != nil {
		return nil, fmt.Errorf("start service: %w", err)
	}
	keys := filepath.Join(dir, "bench.keys")
	if err := ring.Save(keys); err != nil {
		return nil, fmt.Errorf("start service: %w", err)
	}
	accountSID := twiliotest.NewSID("AC")
	s.authToken = randomHex(16)
	s.Sink = NewSink(accountSID, s.authToken)
	// The API URL must be a valid URL even when nothing is sent to it.
	apiURL := "http://127.0.0.1:9"
	var opts []server.Option
	switch cfg.Delivery {
	case DeliverLoopback:
		s.Sink.SetLatency(cfg.ProviderLatency)
		if apiURL, err = s.Sink.Listen(); err != nil {
			return nil, err
		}
	default:
		opts = append(opts, server.WithSender(engine.SMS, s.Sink))
	}
	scfg := server.Config{
		Addr: "127.0.0.1:0", FlowsDir: cfg.FlowsDir, DB: cfg.DB, PublicURL: benchPublicURL, KeysFile: keys,
		TwilioAccountSID: accountSID, TwilioAuthToken: s.authToken, TwilioFrom: benchNumber, TwilioAPIURL: apiURL,
		Region: "US",
	}
	if s.Server, err = server.New(ctx, scfg, log, opts...); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start service: %w", err)
	}
	s.URL = "http://" + ln.Addr().String()
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel, s.done = cancel, make(chan error, 1)
	go func() { s.done <- s.Server.Run(runCtx, ln) }()
	if err := s.waitReady(ctx); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// waitReady polls /readyz for up to 30 seconds.
func (s *Service) waitReady(ctx context.Context) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/readyz", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-s.done:
			s.done <- err // for Close
			return fmt.Errorf("the service stopped while starting: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("the service was not ready after 30s")
		}
	}
}

// Target returns where webhooks for this service go and how to sign them.
func (s *Service) Target() Target {
	return Target{URL: s.URL + webhookPath, SignedURL: benchPublicURL + webhookPath, AuthToken: s.authToken, Number: benchNumber}
}

// Start starts a clinic-initiated script for address through the engine,
// as the clinic's own systems would, and wakes the outbox worker. Script
// values are read as the flow declares them.
func (s *Service) Start(ctx context.Context, sc Script, address string) error {
	f := s.Server.Flows.Flow(sc.Flow)
	if f == nil {
		return fmt.Errorf("no flow %q is loaded", sc.Flow)
	}
	vars := map[string]any{}
	for name, text := range sc.Start.Vars {
		v, err := convtest.Value(f, name, text, time.Now())
		if err != nil {
			return err
		}
		vars[name] = v
	}
	if _, err := s.Server.Engine.Start(ctx, sc.Flow, engine.SMS, address, sc.Start.Step, vars); err != nil {
		return err
	}
	s.Server.Wake()
	return nil
}

// Close stops the service, waits for it to shut down, and removes its key
// file.
func (s *Service) Close() error {
	var err error
	if s.cancel != nil {
		s.cancel()
		err = <-s.done
		s.cancel = nil
	}
	if s.Server != nil {
		s.Server.Close()
	}
	if s.Sink != nil {
		s.Sink.Close()
	}
	return errors.Join(err, os.RemoveAll(s.dir))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported systems
	return hex.EncodeToString(b)
}
