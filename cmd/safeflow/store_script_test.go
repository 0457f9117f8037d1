package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/flows"
	"github.com/safeflow/safeflow/internal/seal"
	"github.com/safeflow/safeflow/internal/store"
)

// sqliteExec is the script command `sqlite-exec DB SQL`: it runs SQL on a
// SQLite file, as someone with access to the file could, and prints the
// rows of a SELECT one per line, columns separated by " | ". The machine
// has no sqlite3 binary; this stands in for it.
func sqliteExec(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: sqlite-exec DB SQL")
	}
	db, err := sql.Open("sqlite", "file:"+ts.MkAbs(args[0]))
	ts.Check(err)
	defer db.Close()
	query := args[1]
	if !strings.HasPrefix(strings.ToUpper(strings.TrimSpace(query)), "SELECT") {
		_, err := db.Exec(query)
		if neg {
			if err == nil {
				ts.Fatalf("sqlite-exec succeeded unexpectedly")
			}
			fmt.Fprintln(ts.Stderr(), err)
			return
		}
		ts.Check(err)
		return
	}
	rows, err := db.Query(query)
	ts.Check(err)
	defer rows.Close()
	cols, err := rows.Columns()
	ts.Check(err)
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		ts.Check(rows.Scan(ptrs...))
		parts := make([]string, len(vals))
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
			parts[i] = fmt.Sprint(v)
		}
		fmt.Fprintln(ts.Stdout(), strings.Join(parts, " | "))
	}
	ts.Check(rows.Err())
}

// seedFlow is the flow seed-db runs: each contact leaves a contact row, a
// conversation with a variable, transcript lines and outbox rows.
const seedFlow = `flow: seed
trigger:
  default: true
steps:
  welcome:
    ask: { prompt: "What is your first name?", type: text, save: first_name }
    next: reason
  reason:
    ask: { prompt: "Thanks {{ first_name }}. What brings you in?", type: text, save: reason }
    next: done
  done:
    say: "Thank you."
    end: true
`

// seedDB is the script command `seed-db DB KEYS N`: N contacts each start
// a conversation through the engine and answer one question, so that the
// database holds sealed values under the key file's active key and audit
// records.
func seedDB(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: seed-db DB KEYS N")
	}
	n, err := strconv.Atoi(args[2])
	ts.Check(err)
	ring, err := seal.Load(ts.MkAbs(args[1]))
	ts.Check(err)
	ctx := context.Background()
	s, err := store.Open(ctx, ts.MkAbs(args[0]), ring)
	ts.Check(err)
	defer s.Close()
	set := flows.NewSet(map[string][]byte{"seed.yaml": []byte(seedFlow)})
	if len(set.Diags) > 0 {
		ts.Fatalf("seed flow: %v", set.Diags)
	}
	e := engine.New(set, s)
	for i := range n {
		addr := fmt.Sprintf("+1555020%04d", i)
		for j, text := range []string{"hello", "Ana"} {
			_, err := e.Handle(ctx, engine.Inbound{Channel: engine.SMS, Address: addr, Text: text,
				ProviderID: fmt.Sprintf("SM-%s-%d-%d", args[0], i, j)})
			ts.Check(err)
		}
	}
	// A running service chains its audit records within a second; do it
	// now, so the script sees the log as the service leaves it.
	_, err = s.ChainAudit(ctx)
	ts.Check(err)
}

// fileMode is the script command `filemode PERM FILE`: it fails unless
// FILE's permission bits are PERM (octal, such as 0600).
func fileMode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: filemode PERM FILE")
	}
	want, err := strconv.ParseUint(args[0], 8, 32)
	ts.Check(err)
	fi, err := os.Stat(ts.MkAbs(args[1]))
	ts.Check(err)
	if got := fi.Mode().Perm(); got != os.FileMode(want) {
		ts.Fatalf("%s has mode %04o, want %04o", args[1], got, want)
	}
}
