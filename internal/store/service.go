package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/gofrs/flock"
)

// ServiceLockSuffix names the lock file beside a SQLite database that the
// service holding it keeps locked: SAFEFLOW_DB plus this suffix.
const ServiceLockSuffix = "-service.lock"

// ErrFileInUse is returned by StartService when another service already
// runs on the same SQLite file.
var ErrFileInUse = errors.New("another safeflow service is running on this SQLite file")

// StartService readies the store for a service, as opposed to a command
// such as `safeflow audit verify` that only reads or maintains it.
//
// On SQLite, only one service may use a file (PostgreSQL is for more than
// one node): StartService locks a file beside the database, held until
// Close or the process's end, and fails with ErrFileInUse when another
// process holds it. Being the only one, it then returns to the outbox the
// replies a previous run left claimed when it crashed, so that they go out
// at once rather than when their lease ends; it returns how many. On
// PostgreSQL, other nodes may be sending what they claimed: their leases
// must end, and StartService does nothing.
func (s *Store) StartService(ctx context.Context) (released int64, err error) {
	if s.pg {
		return 0, nil
	}
	lock := flock.New(s.file + ServiceLockSuffix)
	locked, err := lock.TryLock()
	if err != nil {
		return 0, fmt.Errorf("lock %s: %w", lock.Path(), err)
	}
	if !locked {
		return 0, fmt.Errorf("%w (%s): stop it first, or use PostgreSQL to run more than one", ErrFileInUse, s.file)
	}
	s.serviceLock = lock
	err = s.write(ctx, func(q statements) error {
		res, err := q.ExecContext(ctx, `UPDATE outbox SET status = 'pending', next_attempt = ?, updated = ? WHERE status = 'sending'`,
			micros(s.now()), micros(s.now()))
		if err != nil {
			return err
		}
		released, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("release the replies a previous run claimed: %w", err)
	}
	return released, nil
}

// sqliteFile returns the path of the SQLite file a DSN names.
func sqliteFile(dsn string) string { return strings.TrimPrefix(dsn, "sqlite:") }
