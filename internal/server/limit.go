package server

import (
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/safeflow/safeflow/internal/audit"
)

// contactLimiter rate-limits inbound messages per contact, so one sender
// cannot flood the engine. Idle limiters are dropped.
type contactLimiter struct {
	mu    sync.Mutex
	every rate.Limit
	burst int
	m     map[string]*limiterEntry
	swept time.Time
}

type limiterEntry struct {
	l    *rate.Limiter
	seen time.Time
}

func newContactLimiter(every rate.Limit, burst int) *contactLimiter {
	return &contactLimiter{every: every, burst: burst, m: map[string]*limiterEntry{}}
}

func (c *contactLimiter) allow(key string) bool {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Sub(c.swept) > time.Minute {
		for k, e := range c.m {
			if now.Sub(e.seen) > 10*time.Minute {
				delete(c.m, k)
			}
		}
		c.swept = now
	}
	e := c.m[key]
	if e == nil {
		e = &limiterEntry{l: rate.NewLimiter(c.every, c.burst)}
		c.m[key] = e
	}
	e.seen = now
	return e.l.AllowN(now, 1)
}

// auditRecord is a system record of an action outside a conversation.
func auditRecord(action, object, outcome string) audit.Record {
	return audit.Record{Actor: audit.Actor{Type: audit.ActorSystem}, Action: action, Object: object, Outcome: outcome}
}
