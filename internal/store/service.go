package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/gofrs/flock"
)

// ServiceLockSuffix names the lock file beside a SQLite database that the
// service holding it keeps locked: SAFEFLOW_DB plus this suffix.
const ServiceLockSuffix = "-service.lock"

// ErrFileInUse is returned by Open with AsService when another service
// already runs on the same SQLite file.
var ErrFileInUse = errors.New("another safeflow service is running on this SQLite file")

// AsService opens the store for the service (`safeflow serve`), as opposed
// to a command such as `safeflow audit verify` that only reads or
// maintains it.
//
// On SQLite, only one service may use a file (PostgreSQL is for more than
// one node): Open locks a file beside the database before it migrates,
// held until Close or the process's end, and fails with ErrFileInUse when
// another process holds it. Being the only one, it then returns to the
// outbox the replies a previous run left claimed when it crashed, so that
// they go out at once rather than when their lease ends
// (ReleasedAtStart). On PostgreSQL, other nodes may be sending what they
// claimed: their leases must end, and AsService changes nothing.
func AsService() Option { return func(s *Store) { s.service = true } }

// ReleasedAtStart returns how many claimed replies Open returned to the
// outbox (AsService, SQLite).
func (s *Store) ReleasedAtStart() int64 { return s.releasedAtStart }

// lockService takes the SQLite file's service lock.
func (s *Store) lockService() error {
	lock := flock.New(s.file + ServiceLockSuffix)
	locked, err := lock.TryLock()
	if err != nil {
		return fmt.Errorf("open store: lock %s: %w", lock.Path(), err)
	}
	if !locked {
		return fmt.Errorf("%w (%s): stop it first, or use PostgreSQL to run more than one", ErrFileInUse, s.file)
	}
	s.serviceLock = lock
	return nil
}

// releaseClaims returns every claimed outbox row to pending: on SQLite,
// under the service lock, they are a previous run's.
func (s *Store) releaseClaims(ctx context.Context) error {
	now := micros(s.now())
	err := s.write(ctx, func(q statements) error {
		res, err := q.ExecContext(ctx, `UPDATE outbox SET status = 'pending', next_attempt = ?, updated = ? WHERE status = 'sending'`, now, now)
		if err != nil {
			return err
		}
		s.releasedAtStart, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return fmt.Errorf("open store: release the replies a previous run claimed: %w", err)
	}
	return nil
}
