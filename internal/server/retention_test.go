package server_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/safeflow/safeflow/channels/twilio/twiliotest"
	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/internal/server"
	"github.com/safeflow/safeflow/internal/store"
)

// The service forgets provider message ids older than the retention: a
// webhook replayed within it changes nothing, and the pruner, running as
// the service starts, empties the de-duplication table of older ones and
// says so in the log. Replies finished more than 30 days ago leave the
// outbox the same way.
func TestServiceForgetsOldMessageIDs(t *testing.T) {
	const token = "test-auth-token"
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	ln := listen(t)
	cfg := devConfig(t, ln, examples)
	cfg.TwilioAuthToken = token
	cfg.Check()
	rec := &recorder{}
	r := start(t, ln, cfg, server.WithSender(engine.SMS, rec), server.WithClock(clock))

	req := func() *http.Request {
		return twiliotest.SignedInbound(token, cfg.PublicURL+"/webhooks/twilio", url.Values{
			"From": {"+12015550177"}, "Body": {"INTAKE"}, "MessageSid": {"SM00000000000000000000000000000077"}})
	}
	deliver := func(r *running) {
		t.Helper()
		resp, err := twiliotest.Deliver(context.Background(), nil, r.URL+"/webhooks/twilio", req())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("webhook: HTTP %d", resp.StatusCode)
		}
	}
	seen := func(r *running) int { return count(t, r, "inbound_seen") }
	deliver(r)
	deliver(r) // a replay
	if n := r.metric(t, "safeflow_inbound_messages_total", "channel", "sms", "status", "duplicate"); n != 1 {
		t.Fatalf("the replay was counted %v times as a duplicate, want 1", n)
	}
	if n := r.metric(t, "safeflow_inbound_messages_total", "channel", "sms", "status", "handled"); n != 1 {
		t.Fatalf("%v messages handled, want 1: the replay must change nothing", n)
	}
	if n := seen(r); n != 1 {
		t.Fatalf("%d ids remembered, want 1", n)
	}
	if err := r.Stop(t); err != nil {
		t.Fatal(err)
	}
	r.Close()

	// Started again past the retention, the service forgets the id.
	offset.Store(int64(store.SeenRetention + time.Hour))
	ln2 := listen(t)
	cfg.Addr = ln2.Addr().String()
	r2 := start(t, ln2, cfg, server.WithSender(engine.SMS, rec), server.WithClock(clock))
	waitFor(t, "the old id to be forgotten", func() bool { return seen(r2) == 0 })
	waitFor(t, "the pruner's log line", func() bool {
		return strings.Contains(r2.Log.String(), `"msg":"forgot old provider message ids","count":1`)
	})
	// The replies, sent a month ago, leave the outbox; the transcript keeps
	// their text.
	waitFor(t, "the old replies to leave the outbox", func() bool { return count(t, r2, "outbox") == 0 })
	if !regexp.MustCompile(`"msg":"removed finished replies from the outbox","count":[1-9]`).MatchString(r2.Log.String()) {
		t.Errorf("the pruner did not say it removed the replies:\n%s", r2.Log.String())
	}
	if n := count(t, r2, "transcript"); n < 2 {
		t.Errorf("%d transcript lines left, want the message and its replies", n)
	}
}

// count counts a table's rows.
func count(t *testing.T, r *running, table string) int {
	t.Helper()
	var n int
	if err := r.Store.DB().Get(&n, `SELECT COUNT(*) FROM `+table); err != nil {
		t.Fatal(err)
	}
	return n
}
