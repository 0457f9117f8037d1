package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"

	"github.com/spf13/cobra"

	"github.com/safeflow/safeflow/flows/diag"
	"github.com/safeflow/safeflow/internal/convtest"
)

func init() { extraCommands = append(extraCommands, testCmd) }

func testCmd() *cobra.Command {
	var format, junit, run string
	var update, verbose bool
	cmd := &cobra.Command{
		Use:   "test [--junit FILE] [--format text|github] [--update] [--run REGEXP] [-v] PATH...",
		Short: "Run conversation tests (*.test.yaml) against their flows",
		Long: `Run conversation tests (*.test.yaml) against their flows. PATH may be a test
file or a folder, searched recursively. Each test file names a flow with
` + "`flow:`" + `; the flow is loaded from the *.yaml files in the same folder.

Each test plays a conversation in a simulator (no server, no messages sent)
and checks every bot line in order. After the results, a coverage line per
flow shows how many steps and branches the tests went through, and which
they missed. See docs/testing.md for the format.

  --update   rewrite the bot lines of failing tests with what the bot said
             (review the change with git diff before committing it)

Exit codes: 0 all tests pass, 1 a test fails (or a flow does not load),
2 bad usage, a path that cannot be read, or a mistake in a test file.`,
		Args: needArgs(1, "at least one test file or folder"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !slices.Contains([]string{"text", "github"}, format) {
				return usagef("--format must be text or github, not %q", format)
			}
			var opts convtest.Options
			if run != "" {
				re, err := regexp.Compile(run)
				if err != nil {
					return usagef("--run is not a valid regular expression: %v", err)
				}
				opts.Run = re
			}
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			suite, err := loadTests(args, errOut)
			if err != nil {
				return err
			}
			if len(suite.Broken) > 0 {
				diag.WriteText(errOut, suite.Broken, suite.Sources(), 10)
			}
			rep := suite.Run(cmd.Context(), convtest.Options{Run: opts.Run, Update: update})
			if update {
				files, err := suite.Update(rep)
				for _, u := range files {
					how := ""
					if u.Reformatted {
						how = " (written out whole: check its formatting)"
					}
					fmt.Fprintf(out, "updated %s: %s%s\n", u.Path, quoteList(u.Tests), how)
				}
				if err != nil {
					return err
				}
				if len(files) > 0 {
					// Run again from the files as written, so that what is
					// reported is what is on disk.
					if suite, err = loadTests(args, errOut); err != nil {
						return err
					}
					rep = suite.Run(cmd.Context(), opts)
				}
			}
			switch format {
			case "github":
				rep.WriteGitHub(out)
			default:
				rep.WriteText(out, convtest.TextOptions{Verbose: verbose})
			}
			if junit != "" {
				if err := writeJUnit(junit, rep); err != nil {
					return usageError{err}
				}
			}
			if rep.Failed() > 0 || len(suite.Broken) > 0 {
				return failed{exitFail}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or github (annotations for GitHub Actions)")
	cmd.Flags().StringVar(&junit, "junit", "", "also write the results as JUnit XML to this file")
	cmd.Flags().BoolVar(&update, "update", false, "rewrite the bot lines of failing tests with what the bot said")
	cmd.Flags().StringVar(&run, "run", "", "run only the tests whose name matches this regular expression")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "list every test, not only the failing ones")
	return cmd
}

// loadTests loads the suite; mistakes in test files are printed with their
// source line and are bad usage (exit 2).
func loadTests(args []string, errOut io.Writer) (*convtest.Suite, error) {
	suite, err := convtest.Load(args)
	var problems convtest.Problems
	switch {
	case errors.As(err, &problems):
		convtest.WriteProblems(errOut, problems, readSource)
		return nil, failed{exitUsage}
	case err != nil:
		return nil, usageError{err}
	}
	return suite, nil
}

func readSource(file string) []byte {
	b, _ := os.ReadFile(file)
	return b
}

func writeJUnit(path string, rep *convtest.Report) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--junit: cannot write %s: %w", path, errors.Unwrap(err))
	}
	if err := rep.WriteJUnit(f); err != nil {
		f.Close()
		return fmt.Errorf("--junit: cannot write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--junit: cannot write %s: %w", path, err)
	}
	return nil
}

func quoteList(names []string) string {
	s := ""
	for i, n := range names {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%q", n)
	}
	return s
}
