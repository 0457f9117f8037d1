package securechat

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter rate-limits by key (a client address, a link's hash): one token
// bucket per key, dropped once it has been idle long enough to be full
// again.
type limiter struct {
	every rate.Limit
	burst int

	mu   sync.Mutex
	keys map[string]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
	// refused is true from the first refusal until the next allowed
	// request: only that first refusal is audited, so a flood of requests
	// cannot flood the audit log.
	refused bool
}

// maxKeys bounds the memory a flood of distinct keys can take; past it,
// idle buckets are dropped at once.
const maxKeys = 100_000

func newLimiter(every rate.Limit, burst int) *limiter {
	return &limiter{every: every, burst: burst, keys: map[string]*bucket{}}
}

// allow reports whether a request under key may go ahead at now, and for a
// refused one whether it is the first of a run of refusals.
func (l *limiter) allow(key string, now time.Time) (ok, firstRefusal bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.keys[key]
	if b == nil {
		if len(l.keys) >= maxKeys {
			l.pruneLocked(now)
		}
		b = &bucket{lim: rate.NewLimiter(l.every, l.burst)}
		l.keys[key] = b
	}
	b.seen = now
	if b.lim.AllowN(now, 1) {
		b.refused = false
		return true, false
	}
	first := !b.refused
	b.refused = true
	return false, first
}

// retryAfter is how long a refused client should wait, in whole seconds.
func (l *limiter) retryAfter() int {
	s := int(time.Duration(float64(time.Second) / float64(l.every)).Seconds())
	return max(s, 1)
}

// prune drops the buckets idle long enough to have refilled.
func (l *limiter) prune(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pruneLocked(now)
}

func (l *limiter) pruneLocked(now time.Time) {
	full := time.Duration(float64(l.burst) / float64(l.every) * float64(time.Second))
	for k, b := range l.keys {
		if now.Sub(b.seen) > full {
			delete(l.keys, k)
		}
	}
}
