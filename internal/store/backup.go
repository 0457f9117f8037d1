package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// ErrBackupExists is returned by Backup when the file to write exists:
// a backup never replaces another file.
var ErrBackupExists = errors.New("the backup file already exists")

// Backup writes a consistent copy of a SQLite store to the file to, while
// the service may keep writing: one read transaction, SQLite's VACUUM INTO,
// so the copy is a single file (no -wal) that opens as a database of its
// own, compacted. The copy is created readable by its owner only (0600), as
// new database files are. It returns the copy's size in bytes. On
// PostgreSQL use pg_dump.
//
// Values in the copy are sealed as in the database: it is as safe as the
// database, and as useless without the key file.
func (s *Store) Backup(ctx context.Context, to string) (int64, error) {
	if s.pg {
		return 0, errors.New("backup copies a SQLite file; for PostgreSQL use pg_dump")
	}
	err := newPrivateFile(to)
	if errors.Is(err, fs.ErrExist) {
		return 0, fmt.Errorf("back up to %s: %w: name another file, or remove it first", to, ErrBackupExists)
	}
	if err != nil {
		return 0, fmt.Errorf("back up to %s: %w", to, err)
	}
	// VACUUM INTO fills an empty file; a copy cut short is removed.
	if _, err := s.db.ExecContext(ctx, `VACUUM INTO ?`, to); err != nil {
		os.Remove(to)
		return 0, fmt.Errorf("back up to %s: %w", to, err)
	}
	info, err := os.Stat(to)
	if err != nil {
		return 0, fmt.Errorf("back up to %s: %w", to, err)
	}
	return info.Size(), nil
}
