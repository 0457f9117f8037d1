package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"

	"github.com/spf13/cobra"

	"github.com/safeflow/safeflow/internal/audit"
	"github.com/safeflow/safeflow/internal/seal"
	"github.com/safeflow/safeflow/internal/store"
)

func init() { extraCommands = append(extraCommands, keysCmd) }

func keysCmd() *cobra.Command {
	return groupCmd("keys", "Create and rotate the encryption keys, and re-seal stored values",
		`Create and rotate the encryption keys, and re-seal stored values. The key
file is --keys, else $`+envKeys+`, else `+defaultKeys+`; see docs/keys.md.
No command prints a key.`,
		keysGenerateCmd(), keysRotateCmd(), keysResealCmd())
}

func keysGenerateCmd() *cobra.Command {
	var f storeFlags
	var force bool
	cmd := &cobra.Command{
		Use:   "generate [--keys FILE] [--force]",
		Short: "Write a new key file",
		Long: `Write a new key file (mode 0600) with one encryption key, k1, and a
blind-index key, all from the operating system's random source.

An existing file is never replaced without --force: it may hold the only keys
that open your data. Back the new file up, apart from the database backups.

Exit codes: 0 the file was written, 1 the file exists or could not be written,
2 bad usage.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := f.keyFile(cmd)
			ring, err := seal.Generate()
			if err != nil {
				return err
			}
			if !force {
				// Claim the name with O_EXCL, so that a file created by
				// someone else since we looked is not replaced either; Save
				// then renames the finished file over the empty claim.
				claim, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
				if errors.Is(err, fs.ErrExist) {
					return fmt.Errorf("key file %s already exists and may hold the only keys to your data; "+
						"to replace it anyway, back it up and run `safeflow keys generate --keys %s --force`", path, path)
				}
				if err != nil {
					return fmt.Errorf("cannot create key file %s: %w", path, errors.Unwrap(err))
				}
				claim.Close()
			}
			if err := ring.Save(path); err != nil {
				if !force {
					os.Remove(path)
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote key file %s (mode 0600): encryption key %s, active, and a blind-index key\n"+
				"back it up apart from the database: without it the sealed data cannot be read\n", path, ring.ActiveID())
			return nil
		},
	}
	f.addKeys(cmd)
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing key file")
	return cmd
}

func keysRotateCmd() *cobra.Command {
	var f storeFlags
	cmd := &cobra.Command{
		Use:   "rotate [--keys FILE] [--db DB]",
		Short: "Add a new encryption key and make it active",
		Long: `Add a new encryption key to the key file and make it active: values written
from now on are sealed with it, and values sealed before still open with
their old keys. Run ` + "`safeflow keys reseal`" + ` afterwards to move them.

With --db (or $` + envDB + `), a key.rotation record is added to that database's
audit log. With several nodes on one database, read "Keys" in
docs/operations.md first.

Exit codes: 0 rotated, 1 the file or the audit record could not be written,
2 bad usage or a missing or invalid key file.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ring, err := f.loadRing(cmd)
			if err != nil {
				return err
			}
			path := f.keyFile(cmd)
			// Open the database before changing anything, so that a wrong
			// --db leaves the key file as it was.
			var db *store.Store
			if f.dbGiven(cmd) {
				if db, err = f.openStore(cmd, ring, false); err != nil {
					return err
				}
				defer db.Close()
			}
			old := ring.ActiveID()
			id, err := ring.Rotate()
			if err != nil {
				return err
			}
			if err := ring.Save(path); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "added key %s to %s and made it active (it was %s)\n", id, path, old)
			if db != nil {
				if err := auditRecord(cmd.Context(), db, audit.KeyRotation, id, audit.OutcomeOK, ""); err != nil {
					return fmt.Errorf("key %s is saved, but the key.rotation audit record could not be written: %w", id, err)
				}
				fmt.Fprintf(out, "recorded the rotation in the audit log of %s\n", describeDB(f.dsn(cmd)))
			}
			fmt.Fprintf(out, "restart safeflow on every node with the new file, then run `safeflow keys reseal` to move older values onto %s\n", id)
			return nil
		},
	}
	f.addKeys(cmd)
	f.addDB(cmd)
	return cmd
}

func keysResealCmd() *cobra.Command {
	var f storeFlags
	var batch int
	cmd := &cobra.Command{
		Use:   "reseal [--keys FILE] [--db DB] [--batch N]",
		Short: "Move every stored value onto the active key",
		Long: `Move every sealed value in the database (contact addresses, conversation
variables and addresses, transcripts, outbox messages) that is not under the
key file's active key onto it. It works in batches of N rows, each in its own
transaction, alongside the running service. When it stops part-way (an error,
Ctrl-C) the batches done are kept: run it again to carry on. The key file
must still hold every older key in use.

Adds a key.reseal record to the audit log, also when the job fails.

Exit codes: 0 every value is under the active key, 1 the job stopped (the
reason is printed), 2 bad usage, a missing database or key file.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if batch < 1 {
				return usagef("--batch must be at least 1, not %d", batch)
			}
			ring, err := f.loadRing(cmd)
			if err != nil {
				return err
			}
			s, err := f.openStore(cmd, ring, false)
			if err != nil {
				return err
			}
			defer s.Close()
			out := cmd.OutOrStdout()
			active := ring.ActiveID()
			fmt.Fprintf(out, "re-sealing the values in %s that are not under key %s, %d rows at a time\n",
				describeDB(f.dsn(cmd)), active, batch)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			n, jobErr := s.Reseal(ctx, batch, func(table string, done int) {
				fmt.Fprintf(out, "%s: %s re-sealed\n", table, plural(done, "value"))
			})
			outcome, reason := audit.OutcomeOK, ""
			if jobErr != nil {
				outcome, reason = audit.OutcomeFailed, resealReason(jobErr)
			}
			// The interrupted ctx is not used: the record of a stopped job
			// matters most.
			if err := auditRecord(cmd.Context(), s, audit.Reseal, active, outcome, reason); err != nil {
				if jobErr != nil {
					return fmt.Errorf("re-seal stopped after %s: %w; and its audit record could not be written: %v", plural(n, "value"), jobErr, err)
				}
				return fmt.Errorf("re-sealed %s, but the key.reseal audit record could not be written: %w", plural(n, "value"), err)
			}
			if jobErr != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "safeflow: re-seal stopped after %s: %v\n"+
					"the batches done are kept; fix the cause and run `safeflow keys reseal` again to carry on\n", plural(n, "value"), jobErr)
				return failed{exitFail}
			}
			fmt.Fprintf(out, "re-sealed %s; every sealed value is now under key %s\n", plural(n, "value"), active)
			return nil
		},
	}
	f.addKeys(cmd)
	f.addDB(cmd)
	cmd.Flags().IntVar(&batch, "batch", 500, "rows per transaction")
	return cmd
}

// resealReason is the audit reason of a failed re-seal: a few words written
// here, never the error text, which names rows.
func resealReason(err error) string {
	switch {
	case errors.Is(err, context.Canceled):
		return "interrupted"
	case errors.Is(err, seal.ErrUnknownKey):
		return "a value is under a key missing from the key file"
	case errors.Is(err, seal.ErrOpen):
		return "a value does not open"
	default:
		return "database error"
	}
}
