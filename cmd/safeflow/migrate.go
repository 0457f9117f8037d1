package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"slices"

	"github.com/pressly/goose/v3"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, migrateCmd) }

func migrateCmd() *cobra.Command {
	var f storeFlags
	cmd := &cobra.Command{
		Use:   "migrate [--db DB]",
		Short: "Create the database or bring its schema up to date",
		Long: `Create the database or bring its schema up to date, applying the migrations
built into this safeflow that have not run yet. Running it again does
nothing.

DB is a SQLite file (PATH or sqlite:PATH; created if missing) or a
postgres:// URL; the default is $` + envDB + `, else ` + defaultDB + `. Migrating
needs no key file: migrations never touch sealed values.

Exit codes: 0 the schema is up to date, 1 the database could not be opened or
migrated, 2 bad usage.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dsn := f.dsn(cmd)
			// store.Open migrates, so what was there before is read first.
			// Reading it is best effort: when it fails, Open reports the
			// problem (with any password taken out).
			before, known := appliedVersions(cmd.Context(), dsn)
			s, err := f.openStore(cmd, nil, true)
			if err != nil {
				return err
			}
			defer s.Close()
			after, err := readVersions(cmd.Context(), s.DB().DB, s.Postgres())
			if err != nil {
				return fmt.Errorf("read schema version: %w", err)
			}
			out := cmd.OutOrStdout()
			var applied []int64
			for _, v := range after {
				if !slices.Contains(before, v) {
					applied = append(applied, v)
				}
			}
			switch {
			case !known:
				fmt.Fprintf(out, "%s is at schema version %d\n", describeDB(dsn), last(after))
			case len(applied) == 0:
				fmt.Fprintf(out, "%s is up to date at schema version %d; nothing to apply\n", describeDB(dsn), last(after))
			default:
				for _, v := range applied {
					fmt.Fprintf(out, "applied migration %d\n", v)
				}
				fmt.Fprintf(out, "%s is now at schema version %d\n", describeDB(dsn), last(after))
			}
			return nil
		},
	}
	f.addDB(cmd)
	return cmd
}

// appliedVersions returns the migrations already applied to the database at
// dsn without changing it, and whether it could tell: a SQLite file that
// does not exist yet has none.
func appliedVersions(ctx context.Context, dsn string) ([]int64, bool) {
	driver, source := "postgres", dsn
	path, lite := sqlitePath(dsn)
	if lite {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, true
		}
		driver, source = "sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?mode=ro"
	}
	db, err := sql.Open(driver, source)
	if err != nil {
		return nil, false
	}
	defer db.Close()
	v, err := readVersions(ctx, db, !lite)
	return v, err == nil
}

// readVersions lists the migrations recorded in goose's version table, which
// store.Migrate keeps, in the order they were applied; none when the table
// does not exist yet.
func readVersions(ctx context.Context, db *sql.DB, pg bool) ([]int64, error) {
	// Ask whether the table exists rather than tell a missing table from
	// other failures by each database's error.
	exists := `SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?)`
	if pg {
		exists = `SELECT to_regclass($1) IS NOT NULL`
	}
	var found bool
	if err := db.QueryRowContext(ctx, exists, goose.DefaultTablename).Scan(&found); err != nil {
		return nil, err
	}
	if !found {
		return nil, nil
	}
	rows, err := db.QueryContext(ctx, `SELECT version_id FROM `+goose.DefaultTablename+` WHERE is_applied AND version_id > 0 ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out, rows.Err()
}

func last(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	return v[len(v)-1]
}
