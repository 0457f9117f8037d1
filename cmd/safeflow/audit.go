package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/safeflow/safeflow/internal/audit"
)

func init() { extraCommands = append(extraCommands, auditCmd) }

func auditCmd() *cobra.Command {
	return groupCmd("audit", "Verify and export the audit log",
		`Verify and export the hash-chained audit log. Neither command needs the key
file: audit records hold no sealed values.`,
		auditVerifyCmd(), auditExportCmd())
}

func auditVerifyCmd() *cobra.Command {
	var f storeFlags
	var file string
	cmd := &cobra.Command{
		Use:   "verify [--db DB | --file EXPORT.jsonl]",
		Short: "Check that no audit record was edited, inserted or deleted",
		Long: `Check that the audit log is one unbroken hash chain: that no record was
edited, inserted or deleted, including records cut off its end. A problem is
reported with the sequence number of the first bad record.

With --file, check an export written by ` + "`safeflow audit export`" + ` instead.
An export made with --since starts after record 1: its records are checked
among themselves, and its first record's link to the one before it can be
checked only against the full log.

Exit codes: 0 intact, 1 damaged (or not an export), 2 bad usage or a missing
database or file.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if file != "" {
				if cmd.Flags().Changed("db") {
					return usagef("give --db or --file, not both")
				}
				return verifyExport(cmd, file)
			}
			s, err := f.openStore(cmd, nil, false)
			if err != nil {
				return err
			}
			defer s.Close()
			n, problem, err := s.VerifyAuditCounted(cmd.Context())
			if err != nil {
				return err
			}
			if problem != nil {
				fmt.Fprintf(out, "audit log damaged: %s\n", problem.Error())
				return failed{exitFail}
			}
			fmt.Fprintf(out, "audit log intact: %s\n", plural(n, "record"))
			return nil
		},
	}
	f.addDB(cmd)
	cmd.Flags().StringVar(&file, "file", "", "verify this export (JSON Lines) instead of the database")
	return cmd
}

// verifyExport checks an export file.
func verifyExport(cmd *cobra.Command, file string) error {
	fh, err := os.Open(file)
	if err != nil {
		return usagef("cannot read %s: %v", file, errors.Unwrap(err))
	}
	defer fh.Close()
	p, sum, err := checkExport(fh)
	if err != nil {
		return fmt.Errorf("%s is not an audit export: %w", file, err)
	}
	out := cmd.OutOrStdout()
	if p != nil {
		fmt.Fprintf(out, "audit export %s damaged: %s\n", file, p.Error())
		return failed{exitFail}
	}
	switch {
	case sum.n == 0:
		fmt.Fprintf(out, "audit export intact: 0 records\n")
	case sum.first > 1:
		fmt.Fprintf(out, "audit export intact: %s, %d to %d; it starts after record %d, so check it against the full log too\n",
			plural(sum.n, "record"), sum.first, sum.last, sum.first-1)
	default:
		fmt.Fprintf(out, "audit export intact: %s\n", plural(sum.n, "record"))
	}
	return nil
}

// exportSummary is what an export holds: how many records, and the numbers
// of the first and the last.
type exportSummary struct {
	n           int
	first, last int64
}

// checkExport checks an export file as it reads it, holding one record at a
// time: an export of the whole log (from record 1) as audit.Verify would,
// and one made with --since, which starts after record 1, among its own
// records. A hash that does not match its record is reported first, as
// audit.Verify does. Only a whole-log export whose chain is broken is read
// a second time, as links, to name the problem.
func checkExport(export io.ReadSeeker) (*audit.Problem, exportSummary, error) {
	var sum exportSummary
	var scan audit.Scan
	var between, edited *audit.Problem // between neighbours, for a --since export
	var prev audit.Record
	errFound := errors.New("found")
	err := audit.EachJSONL(export, func(r *audit.Record) error {
		if sum.n == 0 {
			sum.first = r.Seq
		}
		if edited = scan.Add(r); edited != nil {
			return errFound
		}
		if sum.first > 1 && sum.n > 0 && between == nil {
			between = neighbours(&prev, r, sum.n)
		}
		prev, sum.last = *r, r.Seq
		sum.n++
		return nil
	})
	switch {
	case edited != nil:
		return edited, sum, nil
	case err != nil:
		return nil, sum, err
	case sum.first > 1:
		return between, sum, nil
	case scan.Whole():
		return scan.UpTo(0), sum, nil
	}
	links, err := exportLinks(export)
	if err != nil {
		return nil, sum, err
	}
	return audit.FollowUpTo(links, 0), sum, nil
}

// neighbours checks that r, at index i of an export made with --since,
// follows prev: audit.Verify follows the chain from record 1, which such an
// export does not hold.
func neighbours(prev, r *audit.Record, i int) *audit.Problem {
	switch {
	case r.Seq == prev.Seq+2:
		return &audit.Problem{Seq: prev.Seq + 1, Kind: audit.KindDeleted,
			Detail: fmt.Sprintf("record %d points to a record that is missing", r.Seq), Index: i}
	case r.Seq > prev.Seq+2:
		return &audit.Problem{Seq: prev.Seq + 1, Kind: audit.KindDeleted,
			Detail: fmt.Sprintf("records %d to %d are missing before record %d", prev.Seq+1, r.Seq-1, r.Seq), Index: i}
	case r.Seq <= prev.Seq:
		return &audit.Problem{Seq: r.Seq, Kind: audit.KindInserted,
			Detail: fmt.Sprintf("it comes after record %d, which it does not follow", prev.Seq), Index: i}
	case !bytes.Equal(r.PrevHash, prev.Hash):
		return &audit.Problem{Seq: prev.Seq, Kind: audit.KindEdited,
			Detail: fmt.Sprintf("record %d does not point to it, so it was changed and its hash computed again", r.Seq), Index: i - 1}
	}
	return nil
}

// exportLinks reads an export's links, from its start.
func exportLinks(export io.ReadSeeker) ([]audit.Link, error) {
	if _, err := export.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	var links []audit.Link
	err := audit.EachJSONL(export, func(r *audit.Record) error {
		links = append(links, r.Link())
		return nil
	})
	return links, err
}

func auditExportCmd() *cobra.Command {
	var f storeFlags
	var since, format string
	cmd := &cobra.Command{
		Use:   "export [--db DB] [--since TIME] [--format jsonl]",
		Short: "Write the audit log to stdout as JSON Lines",
		Long: `Write the audit records to stdout as JSON Lines, one record per line, with
their hashes, so that ` + "`safeflow audit verify --file`" + ` can check the export on
its own. TIME is an RFC 3339 time (2026-11-01T08:00:00Z) or a date
(2026-11-01, midnight UTC); records from then on are written. The default is
the whole log.

The export itself is recorded in the audit log first, as an "export" record.

Exit codes: 0 written, 1 the database could not be read, 2 bad usage or a
missing database.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			from, err := parseSince(since)
			if err != nil {
				return err
			}
			if format != "jsonl" {
				return usagef("--format must be jsonl, not %q", format)
			}
			s, err := f.openStore(cmd, nil, false)
			if err != nil {
				return err
			}
			defer s.Close()
			// Recorded before any record leaves: an export that cannot be
			// audited does not happen.
			if err := auditRecord(cmd.Context(), s, audit.Export, "audit_log", audit.OutcomeOK, ""); err != nil {
				return fmt.Errorf("record the export in the audit log: %w", err)
			}
			// Written as read, one record at a time: a log of millions of
			// records is exported in constant memory.
			jw := audit.NewJSONLWriter(cmd.OutOrStdout())
			n := 0
			err = s.EachAuditRecord(cmd.Context(), from, func(r *audit.Record) error {
				n++
				return jw.Write(r)
			})
			if err == nil {
				err = jw.Flush()
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "exported %s\n", plural(n, "audit record"))
			return nil
		},
	}
	f.addDB(cmd)
	cmd.Flags().StringVar(&since, "since", "", "export records from this time on: RFC 3339, or a date (midnight UTC)")
	cmd.Flags().StringVar(&format, "format", "jsonl", "output format: jsonl")
	return cmd
}

// parseSince reads --since: empty for the whole log, an RFC 3339 time, or a
// date taken as midnight UTC.
func parseSince(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, usagef("--since must be an RFC 3339 time such as 2026-11-01T08:00:00Z or a date such as 2026-11-01, not %q", s)
}
