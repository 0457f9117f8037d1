package loadgen

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
)

// WaitShare is the share of sampled busy backends in one state.
type WaitShare struct {
	// State is "on CPU" for a backend running a statement, "waiting for
	// the client in a transaction" for one idle in a transaction (the
	// application's round trip), or the wait event's type:name, such as
	// Lock:transactionid, followed for a lock by the start of the
	// statement that waits.
	State string
	Share float64
}

// WaitProfile is what a WaitSampler saw.
type WaitProfile struct {
	// Samples is how many times the backends were looked at; Busy is how
	// many busy backends were seen in all.
	Samples, Busy int
	// Shares are sorted, largest first.
	Shares []WaitShare
}

// A WaitSampler looks at pg_stat_activity at a fixed interval and counts
// what the busy backends of one database are doing: running, waiting for a
// lock or for I/O, or sitting in a transaction waiting for the application.
// It tells round trips from lock contention from CPU, which a CPU profile of
// the client cannot.
type WaitSampler struct {
	db     *sqlx.DB
	cancel context.CancelFunc
	done   sync.WaitGroup

	mu      sync.Mutex
	samples int
	counts  map[string]int
}

// StartWaitSampler starts sampling the database of dsn, a postgres:// URL,
// every interval, on its own connection.
func StartWaitSampler(ctx context.Context, dsn string, every time.Duration) (*WaitSampler, error) {
	db, err := sqlx.Open("postgres", dsn)
	if err != nil {
		return nil, fmt.Errorf("wait sampler: %w", err)
	}
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("wait sampler: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &WaitSampler{db: db, cancel: cancel, counts: map[string]int{}}
	s.done.Go(func() { s.loop(ctx, every) })
	return s, nil
}

// sampleQuery lists the state of every other busy backend of this
// database. A lock wait names the start of the statement that waits, to
// show which table is contended; statements carry their values as
// parameters, so the text holds no patient data.
const sampleQuery = `SELECT CASE
	WHEN state = 'idle in transaction' THEN 'waiting for the client in a transaction'
	WHEN wait_event IS NULL THEN 'on CPU'
	WHEN wait_event_type = 'Lock' THEN wait_event_type || ':' || wait_event || ' (' || left(regexp_replace(query, '\s+', ' ', 'g'), 32) || '...)'
	ELSE wait_event_type || ':' || wait_event END
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
	AND state IN ('active', 'idle in transaction')`

func (s *WaitSampler) loop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var states []string
		if err := s.db.SelectContext(ctx, &states, sampleQuery); err != nil {
			continue // a sample lost to a busy server is no loss
		}
		s.mu.Lock()
		s.samples++
		for _, st := range states {
			s.counts[st]++
		}
		s.mu.Unlock()
	}
}

// Stop ends sampling and returns what was seen.
func (s *WaitSampler) Stop() WaitProfile {
	s.cancel()
	s.done.Wait()
	s.db.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	p := WaitProfile{Samples: s.samples}
	for _, n := range s.counts {
		p.Busy += n
	}
	for st, n := range s.counts {
		p.Shares = append(p.Shares, WaitShare{State: st, Share: float64(n) / float64(p.Busy)})
	}
	slices.SortFunc(p.Shares, func(a, b WaitShare) int {
		if a.Share != b.Share {
			if a.Share > b.Share {
				return -1
			}
			return 1
		}
		return strings.Compare(a.State, b.State)
	})
	return p
}
