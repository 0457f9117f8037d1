package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets the scripts run `safeflow` as a command: testscript re-runs
// this test binary under that name, and the binary then acts as the CLI.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"safeflow": func() { os.Exit(Main()) },
	})
}

// TestScripts runs every testdata/script/*.txtar: each is a small folder of
// flow files and the commands run on them, with the output they must give.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			// $EXAMPLES is the repository's examples folder, for commands
			// that walk the example flows.
			examples, err := filepath.Abs("../../examples")
			env.Setenv("EXAMPLES", examples)
			return err
		},
		Cmds: map[string]func(*testscript.TestScript, bool, []string){
			"exitcode":    exitCode,
			"sqlite-exec": sqliteExec,
			"seed-db":     seedDB,
			"filemode":    fileMode,
		},
	})
}

// exitCode is the script command `exitcode N prog args...`: it runs prog
// like exec, keeping its stdout and stderr for the commands after it, and
// fails unless prog exits with status N. `! exec` only tells failure from
// success; CI scripts depend on 1 (findings) and 2 (bad usage) differing.
func exitCode(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! exitcode (give the expected code instead)")
	}
	if len(args) < 2 {
		ts.Fatalf("usage: exitcode N program [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exitcode: %q is not a number", args[0])
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exitcode: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}
