package store_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"
)

// fileSize is the size of a file, 0 when it is missing.
func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// The checkpointer copies the write-ahead log into the database file
// beside the writer: after a few hundred transactions, far fewer pages than
// the writer's own checkpoint threshold, the file has grown.
func TestSQLiteCheckpointsBesideTheWriter(t *testing.T) {
	ctx := context.Background()
	s, path := openSQLite(t, newRing(t))
	// Let the migrations' pages settle first.
	before, steady := fileSize(t, path), 0
	for steady < 15 {
		time.Sleep(20 * time.Millisecond)
		if now := fileSize(t, path); now != before {
			before, steady = now, 0
		} else {
			steady++
		}
	}
	for i := range 300 {
		if err := eventTx(ctx, s, i, false); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "the log to reach the database file", func() bool { return fileSize(t, path) > before })
}

// Under writers that never pause, the log stays bounded: the writer's own
// checkpoint takes over when the checkpointer cannot finish.
func TestSQLiteLogStaysBounded(t *testing.T) {
	ctx := context.Background()
	s, path := openSQLite(t, newRing(t))
	stop := time.Now().Add(2 * time.Second)
	var wg sync.WaitGroup
	var biggest int64
	var mu sync.Mutex
	for w := range 8 {
		wg.Go(func() {
			for i := 0; time.Now().Before(stop); i++ {
				if err := eventTx(ctx, s, w*1_000_000+i, false); err != nil {
					t.Error(err)
					return
				}
				if i%50 == 0 {
					size := fileSize(t, path+"-wal")
					mu.Lock()
					biggest = max(biggest, size)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	// 10,000 pages of 4 KiB is the writer's threshold; allow for the
	// transactions that commit while a checkpoint runs.
	if limit := int64(80 << 20); biggest > limit {
		t.Errorf("the write-ahead log grew to %d MiB under load; want it under %d MiB", biggest>>20, limit>>20)
	}
	n := countRows(t, s, "contacts")
	t.Logf("%d transactions, log at most %d KiB", n, biggest>>10)
}

// waitUntil polls cond for up to 10 seconds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
