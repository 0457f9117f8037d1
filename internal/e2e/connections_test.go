package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/safeflow/safeflow/engine"
)

// The outbox worker sends to several contacts at once and keeps its
// connections to the provider open between rounds: four rounds of replies
// to 12 contacts reuse them instead of opening new ones (each, against the
// real API, a TCP and TLS handshake).
func TestRepliesReuseProviderConnections(t *testing.T) {
	t.Parallel()
	h := startService(t, sqliteStore, time.Now())
	const contacts = 12
	client := &http.Client{Timeout: 10 * time.Second}
	replies := 0
	for _, turn := range []struct {
		text    string
		replies int
	}{{"INTAKE", 2}, {"yes", 1}, {"Sam", 1}, {"Lee", 1}} {
		var wg sync.WaitGroup
		for c := range contacts {
			form := url.Values{"From": {fmt.Sprintf("+1415555%04d", 200+c)}, "Body": {turn.text},
				"MessageSid": {h.newID("SM")}, "To": {twilioFrom}}
			wg.Go(func() {
				if code, err := postWebhook(context.Background(), client, h.base, form); code != http.StatusOK {
					t.Errorf("webhook %q answered %d, %v", turn.text, code, err)
				}
			})
		}
		wg.Wait()
		replies += turn.replies
		h.waitFor("every contact's replies", func() (bool, string) {
			for c := range contacts {
				addr := fmt.Sprintf("+1415555%04d", 200+c)
				if got := len(h.deliveredTo(engine.SMS, addr)); got < replies {
					return false, fmt.Sprintf("%s has %d replies of %d", addr, got, replies)
				}
			}
			return true, ""
		})
	}
	if n, sent := h.twilio.Connections(), len(h.twilio.Messages()); n > 16 {
		t.Errorf("the service opened %d connections to the Messages API for %d messages, want at most 16 (2 × the 8 contacts sent to at once)", n, sent)
	} else {
		t.Logf("%d connections for %d messages", n, sent)
	}
}
