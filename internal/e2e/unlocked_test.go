package e2e

import (
	"bufio"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/safeflow/safeflow/engine"
)

// metricValue reads one unlabelled metric from the service's /metrics.
func (h *harness) metricValue(name string) float64 {
	h.t.Helper()
	resp, err := h.client.Get(h.base + "/metrics")
	if err != nil {
		h.t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				h.t.Fatalf("%s: %v", name, err)
			}
			return f
		}
	}
	h.t.Fatalf("/metrics has no %s", name)
	return 0
}

// On PostgreSQL a patient's messages are written without locks, each in two
// round trips, and /metrics counts them; on SQLite both counts stay 0.
func TestMessagesWrittenWithoutLocks(t *testing.T) {
	const phone = "+12015550104"
	for _, kind := range storeKinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			h := startService(t, kind, time.Now())
			for _, body := range []string{"INTAKE", "yes"} {
				if code, resp := h.sendSMS(sms{From: phone, Body: body, MessageSid: h.newID("SM")}); code != 200 {
					t.Fatalf("Twilio webhook %q: %d %q", body, code, resp)
				}
			}
			h.waitFor("three replies", func() (bool, string) {
				return len(h.deliveredTo(engine.SMS, phone)) == 3, describe(h.allDelivered())
			})
			want := 2.0
			if kind == sqliteStore {
				want = 0
			}
			if got := h.metricValue("safeflow_store_unlocked_writes_total"); got != want {
				t.Errorf("safeflow_store_unlocked_writes_total = %v, want %v", got, want)
			}
			if got := h.metricValue("safeflow_store_lock_fallbacks_total"); got != 0 {
				t.Errorf("safeflow_store_lock_fallbacks_total = %v, want 0: nothing raced", got)
			}
		})
	}
}
