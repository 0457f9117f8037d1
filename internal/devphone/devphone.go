// Package devphone is the phone simulator of `safeflow serve --dev`: a page
// with an SMS phone and a Messenger phone side by side, talking to the real
// engine through the same sink as the providers' webhooks, and receiving
// replies through the same outbox. Nothing reaches a carrier.
package devphone

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/safeflow/safeflow/engine"
)

//go:embed web
var web embed.FS

// The simulated patient's addresses.
const (
	SMSAddress       = "+12015550123"
	MessengerAddress = "dev-psid-1"
)

// Message is one line of a simulated phone's screen.
type Message struct {
	Seq     int    `json:"seq"`
	Channel string `json:"channel"`
	// From is "patient" or "clinic".
	From    string   `json:"from"`
	Text    string   `json:"text"`
	Choices []Choice `json:"choices,omitempty"`
	// Link is true for the message that carries a secure link.
	Link bool `json:"link,omitempty"`
}

// Choice is a quick-reply button on the Messenger phone.
type Choice struct {
	Title   string `json:"title"`
	Payload string `json:"payload"`
}

// Phone holds both phones' screens.
type Phone struct {
	mu      sync.Mutex
	msgs    []Message
	changed chan struct{}
	n       int
	closed  chan struct{}
	close   sync.Once
}

// New returns empty phones.
func New() *Phone { return &Phone{changed: make(chan struct{}), closed: make(chan struct{})} }

// Close answers every waiting long poll at once, so that a server shutting
// down does not wait for them; later polls answer at once too.
func (p *Phone) Close() { p.close.Do(func() { close(p.closed) }) }

func (p *Phone) add(m Message) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m.Seq = len(p.msgs) + 1
	p.msgs = append(p.msgs, m)
	close(p.changed)
	p.changed = make(chan struct{})
}

// after returns the lines after seq, waiting up to wait for new ones.
func (p *Phone) after(ctx context.Context, seq int, wait time.Duration) []Message {
	deadline := time.After(wait)
	for {
		p.mu.Lock()
		if seq < len(p.msgs) {
			out := append([]Message(nil), p.msgs[seq:]...)
			p.mu.Unlock()
			return out
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			return nil
		case <-ctx.Done():
			return nil
		case <-p.closed:
			return nil
		}
	}
}

// Messages returns every line so far.
func (p *Phone) Messages() []Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Message(nil), p.msgs...)
}

// Sender returns the engine.Sender that puts the clinic's messages on the
// simulated phone of a channel.
func (p *Phone) Sender(ch engine.Channel) engine.Sender { return phoneSender{p, ch} }

type phoneSender struct {
	p  *Phone
	ch engine.Channel
}

// Send implements engine.Sender: the message appears on the phone.
func (s phoneSender) Send(_ context.Context, m *engine.Outbound) (string, error) {
	msg := Message{Channel: string(s.ch), From: "clinic", Text: m.Text, Link: m.Link}
	for _, c := range m.Choices {
		msg.Choices = append(msg.Choices, Choice{Title: c.Title, Payload: c.Payload})
	}
	s.p.add(msg)
	s.p.mu.Lock()
	s.p.n++
	id := "dev-" + strconv.Itoa(s.p.n)
	s.p.mu.Unlock()
	return id, nil
}

// Handler serves the page and its small API: POST /dev/send and GET
// /dev/messages?after=N (long poll). Messages typed on the page go to sink;
// when it fails, the cause goes to log and the page gets "internal error"
// with the request id.
func (p *Phone) Handler(sink engine.Sink, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	static, _ := fs.Sub(web, "web")
	files := http.FileServerFS(static)
	mux.Handle("GET /", files)
	mux.HandleFunc("POST /dev/send", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Channel string `json:"channel"`
			Text    string `json:"text"`
			Payload string `json:"payload"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<10)).Decode(&req); err != nil {
			http.Error(w, "send JSON {channel, text}", http.StatusBadRequest)
			return
		}
		reqID := w.Header().Get("X-Request-Id") // set by the server's middleware
		in := engine.Inbound{Channel: engine.Channel(req.Channel), Text: req.Text, Payload: req.Payload,
			ProviderID: fmt.Sprintf("dev-in-%d", time.Now().UnixNano()), Source: remoteHost(r), RequestID: reqID}
		switch in.Channel {
		case engine.SMS:
			in.Address = SMSAddress
		case engine.Messenger:
			in.Address = MessengerAddress
		default:
			http.Error(w, "channel must be sms or messenger", http.StatusBadRequest)
			return
		}
		p.add(Message{Channel: req.Channel, From: "patient", Text: req.Text})
		if err := sink(r.Context(), in); err != nil {
			// The cause goes to the log; the page only says what every
			// safeflow error response says.
			log.Error("dev phone: the engine could not take the message", "request_id", reqID, "err", err)
			http.Error(w, fmt.Sprintf("internal error (request %s)", reqID), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /dev/messages", func(w http.ResponseWriter, r *http.Request) {
		after, _ := strconv.Atoi(r.URL.Query().Get("after"))
		msgs := p.after(r.Context(), after, 20*time.Second)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if msgs == nil {
			msgs = []Message{}
		}
		_ = json.NewEncoder(w).Encode(msgs)
	})
	return mux
}

// remoteHost is the address a request came from, for the audit log.
func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
