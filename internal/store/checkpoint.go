package store

import (
	"context"
	"database/sql"
	"time"
)

// SQLite copies the write-ahead log back into the database file at
// checkpoints. Left to itself, the writer does it inside a commit every
// thousand pages, and that commit waits for the copy and its fsync. The
// store runs passive checkpoints from a second connection every
// checkpointEvery instead: in WAL mode a checkpoint and the writer do not
// block each other, so the copy happens beside the messages. A passive
// checkpoint cannot copy what a transaction still in progress may read,
// and under writers that never pause it never finishes the log, which
// then only grows; so the writer keeps a checkpoint of its own, at 10,000
// pages (40 MiB) instead of 1,000. By then the checkpointer has copied
// nearly everything, the writer's checkpoint is short, and the log starts
// over.

const checkpointEvery = 100 * time.Millisecond

// checkpointer runs passive checkpoints until stopped.
type checkpointer struct {
	db   *sql.DB
	stop chan struct{}
	done chan struct{}
}

// startCheckpointer opens its own connection to the file behind dsn.
func startCheckpointer(dsn string) (*checkpointer, error) {
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	c := &checkpointer{db: db, stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c, nil
}

func (c *checkpointer) run() {
	defer close(c.done)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			// A failed round (the file busy for longer than the busy
			// timeout) is tried again at the next tick.
			_, _ = c.db.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)")
		}
	}
}

// close stops the checkpointer after a last checkpoint, so that a closed
// store leaves its log copied into the file.
func (c *checkpointer) close() error {
	close(c.stop)
	<-c.done
	_, err := c.db.Exec("PRAGMA wal_checkpoint(PASSIVE)")
	if cerr := c.db.Close(); err == nil {
		err = cerr
	}
	return err
}
