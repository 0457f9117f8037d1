// Package pgtest starts throwaway PostgreSQL servers for tests, from the
// server binaries installed on the machine: initdb into a temporary folder, a
// free port on 127.0.0.1, no durability, stopped when the test ends.
//
// Outside CI a test skips, loudly, when no server can be started; in CI
// (CI=true) it fails, so that the PostgreSQL half of the store tests can never
// silently go missing. A server left behind by a test binary that was killed
// (by -timeout or a signal) keeps running: stop it with
// pg_ctl stop -D <TMPDIR>/pgtest-*/data.
package pgtest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lib/pq"
)

// installHint tells a developer how to get the server binaries.
const installHint = "Install the PostgreSQL server binaries (Debian/Ubuntu: apt-get install postgresql) " +
	"or set PG_BIN to the folder that holds initdb, pg_ctl and postgres."

// searchGlobs are the folders where distributions install the server
// binaries, one folder per major version; the newest version wins.
var searchGlobs = []string{
	"/usr/lib/postgresql/*/bin", // Debian, Ubuntu
	"/usr/pgsql-*/bin",          // PGDG packages for RHEL and Fedora
}

// tools are the binaries a server needs.
var tools = []string{"initdb", "pg_ctl", "postgres"}

// commandTimeout bounds initdb, pg_ctl start and pg_ctl stop, so that a
// wedged server fails the test instead of hanging it until -timeout.
const commandTimeout = 60 * time.Second

// A Server is a running throwaway PostgreSQL server. Its superuser is
// postgres, with no password, reachable only from 127.0.0.1.
type Server struct {
	bin  string // folder of initdb, pg_ctl and postgres
	base string // temporary folder: data/, server.log and the Unix socket
	as   *runAs // the unprivileged user the server runs as when we are root, or nil
	port int    // TCP port on 127.0.0.1
	dbs  atomic.Int64

	mu    sync.Mutex // serialises CREATE DATABASE, which copies template1
	admin *sql.DB    // connection to the postgres database, opened on first use
}

// Start starts a new server for tb and stops it, removing its files, when tb
// and its subtests have finished. When no server can be started, Start skips
// tb with a message saying how to install one, or fails it if CI is "true".
func Start(tb testing.TB) *Server {
	tb.Helper()
	began := time.Now()
	s, err := start()
	if err != nil {
		unavailable(tb, err)
		return nil
	}
	tb.Cleanup(func() {
		if err := s.stop(); err != nil {
			tb.Errorf("pgtest: %v", err)
		}
	})
	tb.Logf("pgtest: PostgreSQL from %s on 127.0.0.1:%d, started in %v", s.bin, s.port, time.Since(began).Round(time.Millisecond))
	return s
}

// shared is the server of Shared, started by the first test that asks.
var shared struct {
	once sync.Once
	srv  *Server
	err  error
}

// mainRunning records that Main is running the tests, so that Shared knows
// someone will stop its server.
var mainRunning atomic.Bool

// Shared returns the test binary's one shared server, starting it on first
// use; Main stops it after the last test. Tests sharing it should each work in
// their own database from CreateDB. It skips or fails tb as Start does.
// Shared fails tb when the package's TestMain does not call Main.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	if !mainRunning.Load() {
		tb.Fatalf("pgtest: Shared needs the package's TestMain to run the tests with os.Exit(pgtest.Main(m)), which stops the shared server at the end")
		return nil
	}
	shared.once.Do(func() { shared.srv, shared.err = start() })
	if shared.err != nil {
		unavailable(tb, shared.err)
		return nil
	}
	return shared.srv
}

// Main runs the tests of m and then stops the server of Shared, if one was
// started. Call it from TestMain: os.Exit(pgtest.Main(m)). A failure to stop
// the server turns a passing exit code into 1.
func Main(m *testing.M) int {
	mainRunning.Store(true)
	code := m.Run()
	mainRunning.Store(false)
	if shared.srv != nil {
		if err := shared.srv.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// unavailable skips tb, or fails it in CI, because err kept a server from
// starting. The message is loud on purpose: a skipped store suite is easy to
// overlook in a long test run.
func unavailable(tb testing.TB, err error) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatalf("\n*** pgtest: POSTGRESQL IS REQUIRED IN CI (CI=true) BUT COULD NOT BE STARTED ***\n%v\n%s", err, installHint)
		return
	}
	tb.Skipf("\n*** pgtest: SKIPPING POSTGRESQL TESTS: the server could not be started ***\n%v\n%s", err, installHint)
}

// URL returns the connection URL of database db on s, for lib/pq.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, url.PathEscape(db))
}

// PID returns the process id of s's postmaster, from its postmaster.pid
// file.
func (s *Server) PID() (int, error) {
	data, err := os.ReadFile(filepath.Join(s.base, "data", "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	first, _, _ := strings.Cut(string(data), "\n")
	return strconv.Atoi(strings.TrimSpace(first))
}

// validDBName matches the names CreateDB accepts: plain lower-case SQL
// identifiers, which need no quoting in URLs or in psql.
var validDBName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// CreateDB creates an empty database called name on s and returns its URL.
// An empty name picks a new one from tb's name. CreateDB fails tb when name is
// not a lower-case identifier or the database cannot be created, for example
// because it exists already.
func (s *Server) CreateDB(tb testing.TB, name string) string {
	tb.Helper()
	if name == "" {
		name = s.uniqueName(tb.Name())
	}
	if !validDBName.MatchString(name) {
		tb.Fatalf("pgtest: database name %q is not allowed: use 1 to 63 lower-case letters, digits and underscores, not starting with a digit", name)
		return ""
	}
	if err := s.createDB(name); err != nil {
		tb.Fatalf("pgtest: create database %s: %v", name, err)
		return ""
	}
	return s.URL(name)
}

// uniqueName turns a test name into a database name that no other call on s
// returns.
func (s *Server) uniqueName(testName string) string {
	var b strings.Builder
	b.WriteString("t_")
	for _, r := range strings.ToLower(testName) {
		if b.Len() >= 40 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return fmt.Sprintf("%s_%d", b.String(), s.dbs.Add(1))
}

func (s *Server) createDB(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.admin == nil {
		db, err := sql.Open("postgres", s.URL("postgres"))
		if err != nil {
			return err
		}
		s.admin = db
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	_, err := s.admin.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(name))
	return err
}

// start initialises and starts a server in a new temporary folder.
func start() (*Server, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	as, err := unprivileged()
	if err != nil {
		return nil, err
	}
	base, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("make temporary folder: %w", err)
	}
	s := &Server{bin: bin, base: base, as: as}
	started := false
	defer func() {
		if !started {
			os.RemoveAll(base)
		}
	}()
	// The server checks that its data folder belongs to the user it runs as.
	if err := as.own(base); err != nil {
		return nil, fmt.Errorf("hand %s to %s: %w", base, as, err)
	}
	data := filepath.Join(base, "data")
	// --no-sync and the settings below trade durability, which a throwaway
	// server does not need, for speed; locale C keeps sorting identical on
	// every machine.
	if out, err := s.run("initdb", "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		return nil, fmt.Errorf("initdb%s failed: %w\n%s", as.suffix(), err, out)
	}
	conf := fmt.Sprintf(`
# Added by pgtest: a throwaway server for tests.
listen_addresses = '127.0.0.1'
unix_socket_directories = '%s'
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
`, strings.ReplaceAll(base, "'", "''"))
	if err := appendFile(filepath.Join(data, "postgresql.conf"), conf); err != nil {
		return nil, fmt.Errorf("configure server: %w", err)
	}

	// Another process can take the free port before the server binds it;
	// then try another one.
	logFile := filepath.Join(base, "server.log")
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		out, err := s.run("pg_ctl", "start", "-D", data, "-l", logFile, "-w", "-t", strconv.Itoa(int(commandTimeout/time.Second)), "-o", "-p "+strconv.Itoa(port))
		if err == nil {
			s.port = port
			started = true
			return s, nil
		}
		// A server that timed out while starting may still come up later.
		s.run("pg_ctl", "stop", "-D", data, "-m", "immediate")
		log := tail(logFile, 20)
		if attempt < 3 && strings.Contains(log, "could not bind") {
			continue
		}
		return nil, fmt.Errorf("pg_ctl start%s failed: %w\n%s\nserver log:\n%s", as.suffix(), err, out, log)
	}
}

// stop stops the server at once (it holds nothing worth a clean shutdown)
// and removes its files. When the server does not stop, the files stay for
// a look at server.log.
func (s *Server) stop() error {
	s.mu.Lock()
	if s.admin != nil {
		s.admin.Close()
		s.admin = nil
	}
	s.mu.Unlock()
	out, err := s.run("pg_ctl", "stop", "-D", filepath.Join(s.base, "data"), "-m", "immediate", "-w")
	if err != nil {
		return fmt.Errorf("stop PostgreSQL on port %d: %w\n%s\nits files are left in %s", s.port, err, out, s.base)
	}
	if err := os.RemoveAll(s.base); err != nil {
		return fmt.Errorf("remove PostgreSQL files: %w", err)
	}
	return nil
}

// run runs one of the server binaries as the server's user and returns its
// combined output.
func (s *Server) run(tool string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, tool), args...)
	cmd.Dir = s.base // the unprivileged user may not be able to enter ours
	// English messages, and no locale warnings from initdb.
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	// pg_ctl hands the log file, not our pipes, to the server; this only
	// guards against a child that keeps them open anyway.
	cmd.WaitDelay = 5 * time.Second
	s.as.apply(cmd)
	return cmd.CombinedOutput()
}

// findBin returns the folder holding the server binaries: $PG_BIN if set,
// else the newest version in searchGlobs, else the folder of pg_ctl on PATH.
func findBin() (string, error) {
	if dir := os.Getenv("PG_BIN"); dir != "" {
		if missing := missingTools(dir); len(missing) > 0 {
			return "", fmt.Errorf("PG_BIN is %s, which has no %s", dir, strings.Join(missing, ", "))
		}
		return dir, nil
	}
	var best string
	var bestVersion []int
	for _, pattern := range searchGlobs {
		dirs, _ := filepath.Glob(pattern) // the patterns are constant and valid
		for _, dir := range dirs {
			v, ok := version(dir)
			if !ok || len(missingTools(dir)) > 0 {
				continue
			}
			if best == "" || slices.Compare(v, bestVersion) > 0 {
				best, bestVersion = dir, v
			}
		}
	}
	if best != "" {
		return best, nil
	}
	if path, err := exec.LookPath("pg_ctl"); err == nil {
		dir := filepath.Dir(path)
		if len(missingTools(dir)) == 0 {
			return dir, nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL server binaries found in %s or on PATH", strings.Join(searchGlobs, ", "))
}

// version reads the major (and minor) version from a folder such as
// /usr/lib/postgresql/15/bin or /usr/pgsql-9.6/bin, so that 10 sorts after 9.6.
func version(binDir string) ([]int, bool) {
	name := filepath.Base(filepath.Dir(binDir))
	name = name[strings.LastIndex(name, "-")+1:]
	var v []int
	for part := range strings.SplitSeq(name, ".") {
		n, err := strconv.Atoi(part)
		if err != nil {
			return nil, false
		}
		v = append(v, n)
	}
	return v, true
}

// missingTools lists the server binaries that dir lacks.
func missingTools(dir string) []string {
	var missing []string
	for _, tool := range tools {
		info, err := os.Stat(filepath.Join(dir, tool))
		if err != nil || !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
			missing = append(missing, tool)
		}
	}
	return missing
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
	return errors.Join(err, f.Close())
}

// tail returns the last n lines of the file at path, or a note that it could
// not be read.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no server log: %v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
