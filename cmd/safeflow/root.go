package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes shared by every command.
const (
	exitOK    = 0
	exitFail  = 1 // the flows or tests have problems
	exitUsage = 2 // bad usage or an unreadable path
)

// usageError marks an error as bad usage (exit 2) rather than a finding.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// failed carries an exit code from a command that has already printed why.
type failed struct{ code int }

func (failed) Error() string { return "" }

// Main runs the command line and returns the process exit code.
func Main() int {
	return run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRoot()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	var f failed
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &f):
		return f.code
	case errors.As(err, new(usageError)) || strings.HasPrefix(err.Error(), "unknown command"):
		fmt.Fprintf(stderr, "safeflow: %v\n", err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "safeflow: %v\n", err)
		return exitFail
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "safeflow",
		Short:         "Run, check and test clinic chat flows",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(validateCmd(), schemaCmd())
	for _, add := range extraCommands {
		root.AddCommand(add())
	}
	// Wrong arguments are bad usage (exit 2), whichever check finds them.
	for _, c := range root.Commands() {
		if check := c.Args; check != nil {
			c.Args = func(cmd *cobra.Command, args []string) error {
				if err := check(cmd, args); err != nil {
					return usageError{err}
				}
				return nil
			}
		}
	}
	return root
}

// extraCommands lets each command file register itself.
var extraCommands []func() *cobra.Command

// needArgs is a cobra argument check that reports bad usage with exit 2.
func needArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return usagef("%s: give %s (see `safeflow %s --help`)", cmd.Name(), what, cmd.Name())
		}
		return nil
	}
}
