package pgtest

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/lib/pq"
)

func TestMain(m *testing.M) {
	os.Exit(Main(m))
}

func open(t *testing.T, url string) *sql.DB {
	t.Helper()
	db, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func queryString(t *testing.T, db *sql.DB, query string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var s string
	if err := db.QueryRowContext(ctx, query).Scan(&s); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return s
}

func TestStartServesQueriesAndDatabases(t *testing.T) {
	began := time.Now()
	s := Start(t)
	t.Logf("started in %v", time.Since(began))

	db := open(t, s.URL("postgres"))
	if got := queryString(t, db, "SELECT 1::text"); got != "1" {
		t.Errorf("SELECT 1 = %q", got)
	}
	for setting, want := range map[string]string{
		"listen_addresses": "127.0.0.1", // never reachable from other machines
		"fsync":            "off",
		"server_encoding":  "UTF8",
	} {
		if got := queryString(t, db, "SHOW "+setting); got != want {
			t.Errorf("%s = %q, want %q", setting, got, want)
		}
	}

	// Two databases are separate: a table made in one is not in the other.
	urlA := s.CreateDB(t, "store_a")
	urlB := s.CreateDB(t, "store_b")
	if want := "postgres://postgres@127.0.0.1:" + strconv.Itoa(s.port) + "/store_a?sslmode=disable"; urlA != want {
		t.Errorf("CreateDB URL = %q, want %q", urlA, want)
	}
	a, b := open(t, urlA), open(t, urlB)
	if got := queryString(t, a, "SELECT current_database()"); got != "store_a" {
		t.Errorf("first database is %q, want store_a", got)
	}
	if got := queryString(t, b, "SELECT current_database()"); got != "store_b" {
		t.Errorf("second database is %q, want store_b", got)
	}
	if _, err := a.Exec("CREATE TABLE only_in_a (id int)"); err != nil {
		t.Fatal(err)
	}
	if got := queryString(t, b, "SELECT count(*)::text FROM pg_tables WHERE tablename = 'only_in_a'"); got != "0" {
		t.Errorf("a table created in store_a shows in store_b")
	}
}

func TestStartStopsServerAndRemovesFilesAfterTest(t *testing.T) {
	other := Shared(t)
	var s *Server
	t.Run("inner", func(t *testing.T) { s = Start(t) })
	if s == nil {
		t.Skip("no server")
	}
	if s.port == other.port || s.base == other.base {
		t.Errorf("two running servers share port %d / folder %s", s.port, s.base)
	}
	if _, err := os.Stat(s.base); !os.IsNotExist(err) {
		t.Errorf("server folder %s still exists after the test (stat: %v)", s.base, err)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(s.port), time.Second); err == nil {
		c.Close()
		t.Errorf("port %d still accepts connections after the test", s.port)
	}
	// The shared server is not stopped by the end of another test.
	if got := queryString(t, open(t, other.URL("postgres")), "SELECT 1::text"); got != "1" {
		t.Errorf("shared server: SELECT 1 = %q", got)
	}
}

func TestCreateDBWithoutNamePicksUniqueNames(t *testing.T) {
	s := Shared(t)
	first, second := s.CreateDB(t, ""), s.CreateDB(t, "")
	if first == second {
		t.Fatalf("two calls returned the same database %s", first)
	}
	for _, url := range []string{first, second} {
		name := queryString(t, open(t, url), "SELECT current_database()")
		if !strings.HasPrefix(name, "t_testcreatedbwithoutnamepicksuniquenam") {
			t.Errorf("database name %q does not come from the test name", name)
		}
	}
}

func TestSharedReturnsOneServer(t *testing.T) {
	a, b := Shared(t), Shared(t)
	if a != b {
		t.Errorf("Shared started a second server")
	}
}

// recorder is a testing.TB that records Fatalf, Skipf and Errorf instead of
// ending the test, so that tests can check what pgtest tells developers.
type recorder struct {
	testing.TB
	fatal, skip, errors []string
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.fatal = append(r.fatal, fmt.Sprintf(format, args...))
	runtime.Goexit()
}

func (r *recorder) Skipf(format string, args ...any) {
	r.skip = append(r.skip, fmt.Sprintf(format, args...))
	runtime.Goexit()
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

// do runs f on its own goroutine, as the testing package runs a test, so that
// Fatalf and Skipf can end it.
func (r *recorder) do(f func(tb testing.TB)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
}

func TestCreateDBErrors(t *testing.T) {
	s := Shared(t)
	s.CreateDB(t, "taken")
	tests := []struct {
		name   string
		dbName string
		want   string
	}{
		{"UpperCase", "Store", `database name "Store" is not allowed`},
		{"Injection", `x"; DROP DATABASE postgres; --`, "is not allowed"},
		{"StartsWithDigit", "1db", "is not allowed"},
		{"TooLong", strings.Repeat("a", 64), "is not allowed"},
		{"Exists", "taken", `pgtest: create database taken: pq: database "taken" already exists`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			var url string
			r.do(func(tb testing.TB) { url = s.CreateDB(tb, tt.dbName) })
			if len(r.fatal) != 1 || !strings.Contains(r.fatal[0], tt.want) {
				t.Errorf("CreateDB(%q) failed with %q, want a failure containing %q", tt.dbName, r.fatal, tt.want)
			}
			if url != "" {
				t.Errorf("CreateDB returned %q after failing", url)
			}
		})
	}
}

func TestSharedWithoutMainFails(t *testing.T) {
	mainRunning.Store(false)
	defer mainRunning.Store(true)
	r := &recorder{TB: t}
	r.do(func(tb testing.TB) { Shared(tb) })
	if len(r.fatal) != 1 || !strings.Contains(r.fatal[0], "os.Exit(pgtest.Main(m))") {
		t.Errorf("Shared without Main: failures %q, want one naming pgtest.Main", r.fatal)
	}
}

// openDir makes a temporary folder that every user can enter, unlike
// t.TempDir, because as root pgtest runs the binaries as an unprivileged user.
func openDir(t *testing.T, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// fakeBin makes a folder of executable scripts standing in for the server
// binaries.
func fakeBin(t *testing.T, scripts map[string]string) string {
	t.Helper()
	dir := openDir(t, "pgtest-fakebin-")
	for name, body := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestStartWithoutServer(t *testing.T) {
	empty := fakeBin(t, nil)
	failing := fakeBin(t, map[string]string{
		"initdb":   `echo "initdb: could not create directory: out of cheese" >&2; exit 1`,
		"pg_ctl":   "exit 1",
		"postgres": "exit 1",
	})
	tests := []struct {
		name      string
		pgBin, ci string
		wantFatal bool
		want      []string
	}{
		{"MissingBinariesSkipsOutsideCI", empty, "", false,
			[]string{"SKIPPING POSTGRESQL TESTS", "has no initdb, pg_ctl, postgres", "apt-get install postgresql", "PG_BIN"}},
		{"MissingBinariesFailsInCI", empty, "true", true,
			[]string{"REQUIRED IN CI", "has no initdb, pg_ctl, postgres", "apt-get install postgresql"}},
		{"CIOtherThanTrueSkips", empty, "false", false,
			[]string{"SKIPPING POSTGRESQL TESTS"}},
		{"InitdbFailureSkipsWithItsOutput", failing, "", false,
			[]string{"SKIPPING POSTGRESQL TESTS", "initdb", "failed", "out of cheese"}},
		{"InitdbFailureFailsInCI", failing, "true", true,
			[]string{"REQUIRED IN CI", "out of cheese"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PG_BIN", tt.pgBin)
			t.Setenv("CI", tt.ci)
			tmp := openDir(t, "pgtest-tmpdir-")
			t.Setenv("TMPDIR", tmp)
			r := &recorder{TB: t}
			var s *Server
			r.do(func(tb testing.TB) { s = Start(tb) })
			got, other := r.skip, r.fatal
			if tt.wantFatal {
				got, other = r.fatal, r.skip
			}
			if len(got) != 1 || len(other) != 0 || s != nil {
				t.Fatalf("skips %q, failures %q, server %v", r.skip, r.fatal, s)
			}
			for _, want := range tt.want {
				if !strings.Contains(got[0], want) {
					t.Errorf("message %q does not contain %q", got[0], want)
				}
			}
			if entries, _ := os.ReadDir(tmp); len(entries) > 0 {
				t.Errorf("failed start left %s behind", filepath.Join(tmp, entries[0].Name()))
			}
		})
	}
}

func TestFindBin(t *testing.T) {
	complete := map[string]string{"initdb": "", "pg_ctl": "", "postgres": ""}
	noPostgres := map[string]string{"initdb": "", "pg_ctl": ""}
	root := t.TempDir()
	for version, scripts := range map[string]map[string]string{
		"9.6": complete, "10": complete, "15": complete, "17": noPostgres, "devel": complete,
	} {
		dir := filepath.Join(root, version, "bin")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name := range scripts {
			if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	notExecutable := t.TempDir()
	for _, name := range tools {
		if err := os.WriteFile(filepath.Join(notExecutable, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	emptyPath := t.TempDir()

	tests := []struct {
		name      string
		pgBin     string
		globs     []string
		want      string
		wantError string
	}{
		{name: "NewestCompleteVersionNotLexicalOrder", globs: []string{filepath.Join(root, "*", "bin")}, want: filepath.Join(root, "15", "bin")},
		{name: "PGBinWinsOverInstalled", pgBin: filepath.Join(root, "9.6", "bin"), globs: []string{filepath.Join(root, "*", "bin")}, want: filepath.Join(root, "9.6", "bin")},
		{name: "PGBinMissingToolIsAnError", pgBin: filepath.Join(root, "17", "bin"), globs: []string{filepath.Join(root, "*", "bin")},
			wantError: "PG_BIN is " + filepath.Join(root, "17", "bin") + ", which has no postgres"},
		{name: "PGBinNotExecutable", pgBin: notExecutable, wantError: "PG_BIN is " + notExecutable + ", which has no initdb, pg_ctl, postgres"},
		{name: "NothingInstalled", globs: []string{filepath.Join(emptyPath, "*", "bin")}, wantError: "no PostgreSQL server binaries found in " + filepath.Join(emptyPath, "*", "bin") + " or on PATH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			saved := searchGlobs
			searchGlobs = tt.globs
			t.Cleanup(func() { searchGlobs = saved })
			t.Setenv("PG_BIN", tt.pgBin)
			t.Setenv("PATH", emptyPath)
			got, err := findBin()
			switch {
			case tt.wantError != "":
				if err == nil || err.Error() != tt.wantError {
					t.Errorf("findBin() error = %v, want %q", err, tt.wantError)
				}
			case err != nil:
				t.Errorf("findBin() error = %v", err)
			case got != tt.want:
				t.Errorf("findBin() = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	tests := []struct {
		dir  string
		want []int
		ok   bool
	}{
		{"/usr/lib/postgresql/15/bin", []int{15}, true},
		{"/usr/lib/postgresql/9.6/bin", []int{9, 6}, true},
		{"/usr/pgsql-16/bin", []int{16}, true},
		{"/usr/lib/postgresql/devel/bin", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			got, ok := version(tt.dir)
			if ok != tt.ok || fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("version(%q) = %v, %v; want %v, %v", tt.dir, got, ok, tt.want, tt.ok)
			}
		})
	}
}
