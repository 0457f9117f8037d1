package main

import (
	"fmt"
	"slices"

	"github.com/spf13/cobra"

	"github.com/safeflow/safeflow/flows"
	"github.com/safeflow/safeflow/flows/diag"
)

func validateCmd() *cobra.Command {
	var format string
	var strict bool
	cmd := &cobra.Command{
		Use:   "validate [--format text|json|github] [--strict] PATH...",
		Short: "Check flow files before they go live",
		Long: `Check flow files before they go live. PATH may be a file or a folder; folders
are searched for *.yaml and *.yml files (conversation tests, *.test.yaml, are skipped).

Exit codes: 0 no errors (warnings are printed), 1 errors found (or warnings
with --strict), 2 bad usage or a path that cannot be read.`,
		Args: needArgs(1, "at least one flow file or folder"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !slices.Contains([]string{"text", "json", "github"}, format) {
				return usagef("--format must be text, json or github, not %q", format)
			}
			files, err := flows.FindFiles(args, flows.IsFlowFile)
			if err != nil {
				return usageError{err}
			}
			if len(files) == 0 {
				return usagef("no flow files (*.yaml, *.yml) found in %v", args)
			}
			set, err := flows.LoadFiles(files)
			if err != nil {
				return usageError{err}
			}
			out := cmd.OutOrStdout()
			switch format {
			case "json":
				if err := diag.WriteJSON(out, set.Diags); err != nil {
					return err
				}
			case "github":
				diag.WriteGitHub(out, set.Diags)
			default:
				diag.WriteText(out, set.Diags, set.Source, 0)
				fmt.Fprintln(out, summary(len(files), set.Diags, strict))
			}
			if set.Diags.Errors() > 0 || strict && set.Diags.Warnings() > 0 {
				return failed{exitFail}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "output format: text, json or github")
	cmd.Flags().BoolVar(&strict, "strict", false, "treat warnings as errors")
	return cmd
}

// summary is the last line of text output.
func summary(files int, l diag.List, strict bool) string {
	e, w := l.Errors(), l.Warnings()
	s := fmt.Sprintf("checked %s: %s, %s", plural(files, "flow file"), plural(e, "error"), plural(w, "warning"))
	switch {
	case e > 0:
		return s + " — fix the errors above before these flows can go live"
	case w > 0 && strict:
		return s + " — --strict treats warnings as errors"
	case w > 0:
		return s + " — the flows can go live; the warnings are worth a look"
	}
	return s + " — all good"
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
