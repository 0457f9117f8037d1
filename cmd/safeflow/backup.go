package main

import (
	"errors"
	"fmt"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/safeflow/safeflow/internal/audit"
	"github.com/safeflow/safeflow/internal/store"
)

func init() { extraCommands = append(extraCommands, backupCmd) }

func backupCmd() *cobra.Command {
	var f storeFlags
	var to string
	cmd := &cobra.Command{
		Use:   "backup --to FILE [--db DB]",
		Short: "Copy the SQLite database to a file, safely, while the service runs",
		Long: `Copy the SQLite database to FILE: one consistent file, taken in a single
read while the service may keep writing, that opens as a database of its
own. Copying safeflow.db with cp while the service runs is not safe, and
misses what is still in safeflow.db-wal.

FILE must not exist: a backup never replaces a file. It is created
readable by its owner only. Its values are sealed as in the database, so it
is of no use without the key file; keep the two apart (docs/keys.md).

The backup is recorded in the audit log first, as an "export" of the
"database", so the copy holds its own record. For PostgreSQL, use pg_dump.

Exit codes: 0 written, 1 the copy failed, 2 bad usage, a database that
does not exist, or a FILE that does.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if to == "" {
				return usagef("name the file to write with --to")
			}
			dsn := f.dsn(cmd)
			if _, lite := sqlitePath(dsn); !lite {
				return usagef("backup copies a SQLite file, and %s is PostgreSQL: use pg_dump (docs/operations.md, \"Backups\")", describeDB(dsn))
			}
			s, err := f.openStore(cmd, nil, false)
			if err != nil {
				return err
			}
			defer s.Close()
			if err := auditRecord(cmd.Context(), s, audit.Export, "database", audit.OutcomeOK, ""); err != nil {
				return fmt.Errorf("record the backup in the audit log: %w", err)
			}
			size, err := s.Backup(cmd.Context(), to)
			if errors.Is(err, store.ErrBackupExists) {
				return usageError{err}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "backed up %s to %s (%s)\n", describeDB(dsn), to, humanize.Bytes(uint64(size)))
			return nil
		},
	}
	f.addDB(cmd)
	cmd.Flags().StringVar(&to, "to", "", "the file to write; it must not exist")
	return cmd
}
