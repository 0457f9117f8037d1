package main

import (
	"context"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"os/user"
	"strings"

	"github.com/spf13/cobra"

	"github.com/safeflow/safeflow/internal/audit"
	"github.com/safeflow/safeflow/internal/seal"
	"github.com/safeflow/safeflow/internal/store"
)

// The database and key file the operator commands use, when neither the
// flag nor its environment variable names another.
const (
	envDB       = "SAFEFLOW_DB"
	envKeys     = "SAFEFLOW_KEYS_FILE"
	defaultDB   = "safeflow.db"
	defaultKeys = "safeflow.keys"
)

// storeFlags are the --db and --keys flags of the operator commands. A flag
// given on the command line wins over its environment variable, which wins
// over the default.
type storeFlags struct {
	db, keys string
}

func (f *storeFlags) addDB(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.db, "db", defaultDB,
		"the database: a SQLite file (PATH or sqlite:PATH) or a postgres:// URL (env "+envDB+")")
}

func (f *storeFlags) addKeys(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.keys, "keys", defaultKeys, "the key file (env "+envKeys+")")
}

// dsn returns the database to use.
func (f *storeFlags) dsn(cmd *cobra.Command) string { return flagOrEnv(cmd, "db", envDB, f.db) }

// keyFile returns the key file to use.
func (f *storeFlags) keyFile(cmd *cobra.Command) string {
	return flagOrEnv(cmd, "keys", envKeys, f.keys)
}

// dbGiven reports whether the database was named by the flag or its
// variable rather than left to the default.
func (f *storeFlags) dbGiven(cmd *cobra.Command) bool {
	return cmd.Flags().Changed("db") || os.Getenv(envDB) != ""
}

func flagOrEnv(cmd *cobra.Command, flag, env, value string) string {
	if cmd.Flags().Changed(flag) {
		return value
	}
	if v := os.Getenv(env); v != "" {
		return v
	}
	return value
}

// loadRing reads the key file. A file that is missing, unreadable or not a
// valid key file is bad configuration (exit 2); seal's errors never hold a
// secret.
func (f *storeFlags) loadRing(cmd *cobra.Command) (*seal.Ring, error) {
	path := f.keyFile(cmd)
	ring, err := seal.Load(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, usagef("key file %s does not exist; create one with `safeflow keys generate --keys %s`, "+
			"or name yours with --keys or %s", path, path, envKeys)
	}
	if err != nil {
		return nil, usageError{errors.New(strings.TrimPrefix(err.Error(), "seal: "))}
	}
	return ring, nil
}

// openStore opens the database, applying pending migrations as store.Open
// does. Unless create is set, a SQLite file that does not exist is an error
// rather than a new empty database, so that a mistyped path cannot make
// `audit verify` report an intact, empty log.
func (f *storeFlags) openStore(cmd *cobra.Command, ring *seal.Ring, create bool) (*store.Store, error) {
	dsn := f.dsn(cmd)
	if path, ok := sqlitePath(dsn); ok && !create {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, usagef("database %s does not exist; create it with `safeflow migrate --db %s`", path, path)
		}
	}
	if ring == nil {
		// Audit records and migrations are never sealed, so the commands
		// that only touch them run without the key file: an auditor need
		// not hold the keys. store.Open wants a ring; this one is thrown
		// away and seals nothing.
		var err error
		if ring, err = seal.Generate(); err != nil {
			return nil, err
		}
	}
	return store.Open(cmd.Context(), dsn, ring)
}

// sqlitePath returns the file of a SQLite dsn, and false for PostgreSQL.
func sqlitePath(dsn string) (string, bool) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return "", false
	}
	return strings.TrimPrefix(dsn, "sqlite:"), true
}

// describeDB names a database for output without its password.
func describeDB(dsn string) string {
	if path, ok := sqlitePath(dsn); ok {
		return path
	}
	u, err := url.Parse(dsn)
	if err != nil {
		// An unparsable URL may still hold a password: show none of it.
		return "the PostgreSQL database"
	}
	return u.Redacted()
}

// cliActor is the audit actor of an operator command: the system, run by the
// operating-system user who typed it.
func cliActor() audit.Actor {
	id := "cli"
	if u, err := user.Current(); err == nil && u.Username != "" {
		id = "cli:" + u.Username
	}
	return audit.Actor{Type: audit.ActorSystem, ID: id}
}

// noArgs rejects positional arguments as bad usage (exit 2). The root's
// wrapper does this only for its direct children.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s: unexpected argument %q (see `safeflow %s --help`)", cmd.Name(), args[0], strings.TrimPrefix(cmd.CommandPath(), "safeflow "))
	}
	return nil
}

// groupCmd is a command that only holds subcommands, such as `safeflow
// keys`: run alone or with an unknown subcommand, it is bad usage.
func groupCmd(use, short, long string, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("%s: unknown command %q (see `safeflow %s --help`)", cmd.Name(), args[0], cmd.Name())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			names := make([]string, 0, len(subs))
			for _, s := range subs {
				names = append(names, s.Name())
			}
			return usagef("%s: give a command: %s (see `safeflow %s --help`)", cmd.Name(), strings.Join(names, ", "), cmd.Name())
		},
	}
	cmd.AddCommand(subs...)
	return cmd
}

// auditRecord appends one record of an operator action to the log.
func auditRecord(ctx context.Context, s *store.Store, action, object, outcome, reason string) error {
	return s.Audit(ctx, audit.Record{Actor: cliActor(), Action: action, Object: object, Outcome: outcome, Reason: reason})
}
