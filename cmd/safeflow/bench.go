package main

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/safeflow/safeflow/internal/loadgen"
	"github.com/safeflow/safeflow/internal/pgtest"
	"github.com/safeflow/safeflow/internal/server"
)

func init() { extraCommands = append(extraCommands, benchCmd) }

func benchCmd() *cobra.Command {
	var (
		dbKinds     string
		contacts    int
		duration    time.Duration
		warmup      time.Duration
		flowsDir    string
		rate        float64
		scripts     []string
		maxMessages int
		cpuProfile  string
		// providerLatency delays the loopback Messages API's answers.
		providerLatency time.Duration
	)
	cmd := &cobra.Command{
		Use:   "bench [--db sqlite|postgres|both] [--contacts 8] [--duration 20s] [--warmup 1s] [--flows examples] [--rate R] [--provider-latency D]",
		Short: "Measure messages per second and latency end to end, next to the HTTP and database ceilings",
		Long: `Measure safeflow end to end on this machine. The real service starts in this
process on 127.0.0.1 with a new key file and made-up Twilio credentials; --contacts
simulated contacts then walk the example flows to their end, each message a signed
Twilio webhook that waits for its 200. Nothing leaves 127.0.0.1.

Each phase runs for --duration, one after the other:
  - the HTTP ceiling: a handler that only parses the form, driven the same way;
  - per database: end to end with outbound SMS discarded in-process; the same with
    delivery through the Twilio sender to a Messages API on loopback (which answers
    each message after --provider-latency, as Twilio's takes 100 ms or more); the raw rate of
    a naive per-message transaction (BEGIN, SELECT ... FOR UPDATE, UPDATE, INSERT,
    COMMIT) at the same concurrency; a run paced at --rate, or half the peak;
  - on PostgreSQL, a count of round trips per message on the wire.
Each end-to-end phase and the HTTP ceiling begin with --warmup of traffic that is
not counted: the service has just started, opens its database connections and
prepares its statements. The paced run's warm-up p99 is reported apart. The delivery
and paced runs also report how long each webhook's first reply took to reach the
provider (reply p50, p99): what a patient waits.

SQLite files go to a temporary folder. For PostgreSQL, SAFEFLOW_DB may name a
postgres:// URL of a scratch database (the bench writes to it); otherwise a
throwaway server is started from the installed binaries and stopped at the end.

Exit status 1 when a webhook failed or a conversation did not go as its script
planned: the figures would not measure the flows.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			kinds, err := loadgen.ParseDatabases(dbKinds)
			if err != nil {
				return usageError{err}
			}
			switch {
			case contacts < 1 || contacts > loadgen.MaxContacts:
				return usagef("--contacts must be from 1 to %d", loadgen.MaxContacts)
			case duration <= 0 || duration > loadgen.MaxDuration:
				return usagef("--duration must be more than 0 and at most %v", loadgen.MaxDuration)
			case warmup < 0 || warmup > loadgen.MaxDuration:
				return usagef("--warmup must be from 0 to %v", loadgen.MaxDuration)
			case rate < 0:
				return usagef("--rate must not be negative")
			case maxMessages < 0:
				return usagef("--max-messages must not be negative")
			case providerLatency < 0 || providerLatency > 10*time.Second:
				return usagef("--provider-latency must be from 0 to 10s")
			}
			if info, err := os.Stat(flowsDir); err != nil || !info.IsDir() {
				return usagef("--flows %s is not a folder of flows", flowsDir)
			}
			chosen, err := loadgen.SelectScripts(loadgen.ExampleScripts(), scripts)
			if err != nil {
				return usageError{err}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runBench(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), loadgen.BenchConfig{
				Databases: kinds, Contacts: contacts, Duration: duration, Warmup: warmup, MaxMessages: maxMessages,
				FlowsDir: flowsDir, Rate: rate, Scripts: chosen, ProviderLatency: providerLatency,
			}, cpuProfile)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&dbKinds, "db", "both", "the databases to measure: sqlite, postgres or both")
	fl.IntVar(&contacts, "contacts", 8, "contacts talking at once (and raw database workers)")
	fl.DurationVar(&duration, "duration", 20*time.Second, "how long each phase runs")
	fl.DurationVar(&warmup, "warmup", time.Second, "unmeasured traffic before each end-to-end phase (its p99 is reported apart)")
	fl.StringVar(&flowsDir, "flows", "examples", "the folder of example flows the scripts walk")
	fl.Float64Var(&rate, "rate", 0, "messages per second of the paced run (0: half the measured peak)")
	fl.DurationVar(&providerLatency, "provider-latency", 0, "how long the loopback Messages API of the delivery run takes to answer each message (Twilio's takes 100 ms or more)")
	fl.StringSliceVar(&scripts, "script", nil, "run only these conversations (intake-minor, intake-callback, appointment-kept, survey-review)")
	fl.IntVar(&maxMessages, "max-messages", 0, "also end each phase after this many messages (0: no limit but --duration)")
	fl.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of each end-to-end run to PREFIX-<db>.pprof (read it with go tool pprof)")
	return cmd
}

func runBench(ctx context.Context, stdout, stderr io.Writer, cfg loadgen.BenchConfig, cpuProfile string) error {
	dir, err := os.MkdirTemp("", "safeflow-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg.SQLiteDir = dir
	cfg.Progress = stderr
	cfg.Log = slog.New(server.NewRedactingHandler(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	pgVersion := ""
	if slices.Contains(cfg.Databases, loadgen.Postgres) {
		pg := &benchPostgres{progress: stderr}
		defer pg.stop()
		cfg.Postgres, cfg.PostgresPID = pg.database, pg.pid
		if pgVersion, err = pg.version(ctx); err != nil {
			return err
		}
	}
	if cpuProfile != "" {
		cfg.Profile = func(db string) (func() error, error) {
			f, err := os.Create(cpuProfile + "-" + db + ".pprof")
			if err != nil {
				return nil, err
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				f.Close()
				return nil, err
			}
			return func() error { pprof.StopCPUProfile(); return f.Close() }, nil
		}
	}
	began, loadBefore := time.Now(), loadAverage()
	rep, err := loadgen.Bench(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "safeflow bench, %s, %s\n", began.Format("2006-01-02 15:04 MST"), machine())
	// Other work on the machine takes cores from the bench; the load
	// average says how much.
	fmt.Fprintf(stdout, "load average (1, 5, 15 min): %s before, %s after\n", loadBefore, loadAverage())
	if pgVersion != "" {
		fmt.Fprintf(stdout, "%s\n", pgVersion)
	}
	rep.Write(stdout)
	if !rep.OK() {
		return failed{exitFail}
	}
	return nil
}

// benchPostgres provides the PostgreSQL databases of a bench: the one
// SAFEFLOW_DB names, or new ones on a throwaway server started on first use.
type benchPostgres struct {
	progress io.Writer
	url      string // SAFEFLOW_DB, when it is a postgres:// URL
	host     *pgHost
	srv      *pgtest.Server
}

func (p *benchPostgres) database(_ context.Context, name string) (string, error) {
	if p.url != "" {
		return p.url, nil
	}
	if p.srv == nil {
		if env := os.Getenv(envDB); strings.HasPrefix(env, "postgres://") || strings.HasPrefix(env, "postgresql://") {
			p.url = env
			fmt.Fprintf(p.progress, "bench: PostgreSQL: %s (from %s)\n", describeDB(env), envDB)
			return p.url, nil
		}
		fmt.Fprintln(p.progress, "bench: starting a throwaway PostgreSQL server from the installed binaries")
		p.host = &pgHost{log: p.progress}
		p.srv = pgtest.Start(p.host)
		if p.srv == nil || p.host.err != nil {
			return "", fmt.Errorf("cannot start PostgreSQL: %v (or set %s to a postgres:// URL)", p.host.err, envDB)
		}
	}
	dsn := p.srv.CreateDB(p.host, name)
	if p.host.err != nil {
		return "", p.host.err
	}
	return dsn, nil
}

// version returns the server's version line, starting it if need be.
func (p *benchPostgres) version(ctx context.Context) (string, error) {
	dsn, err := p.database(ctx, "bench_version")
	if err != nil {
		return "", err
	}
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return "", err
	}
	defer db.Close()
	var v string
	if err := db.QueryRowContext(ctx, "SELECT version()").Scan(&v); err != nil {
		return "", fmt.Errorf("PostgreSQL: %v", err)
	}
	if i := strings.Index(v, " on "); i > 0 {
		v = v[:i]
	}
	if p.srv != nil {
		v += " (throwaway server: fsync, synchronous_commit and full_page_writes off)"
	}
	return v, nil
}

// pid returns the process id of the throwaway server, or 0 when the bench
// did not start one.
func (p *benchPostgres) pid() int {
	if p.srv == nil {
		return 0
	}
	pid, err := p.srv.PID()
	if err != nil {
		return 0
	}
	return pid
}

func (p *benchPostgres) stop() {
	if p.host != nil {
		p.host.cleanup()
	}
}

// pgHost lets pgtest, written for tests, run a server for the bench. pgtest
// calls only the methods defined here; the embedded (nil) testing.TB is
// there to satisfy the interface, and any other call would panic.
type pgHost struct {
	testing.TB
	log      io.Writer
	cleanups []func()
	err      error
}

func (h *pgHost) Helper()          {}
func (h *pgHost) Name() string     { return "bench" }
func (h *pgHost) Cleanup(f func()) { h.cleanups = append(h.cleanups, f) }
func (h *pgHost) Logf(format string, args ...any) {
	fmt.Fprintf(h.log, "bench: "+format+"\n", args...)
}
func (h *pgHost) Errorf(format string, args ...any) { h.fail(format, args...) }
func (h *pgHost) Fatalf(format string, args ...any) { h.fail(format, args...) }
func (h *pgHost) Skipf(format string, args ...any)  { h.fail(format, args...) }

func (h *pgHost) fail(format string, args ...any) {
	if h.err == nil {
		h.err = fmt.Errorf(strings.TrimSpace(format), args...)
	}
}

// cleanup stops the server, last registered first, as testing does.
func (h *pgHost) cleanup() {
	for i := len(h.cleanups) - 1; i >= 0; i-- {
		h.cleanups[i]()
	}
	h.cleanups = nil
	if h.err != nil {
		fmt.Fprintf(h.log, "bench: %v\n", h.err)
	}
}

// machine describes the CPU and memory, from /proc on Linux.
func machine() string {
	model, mem := "", ""
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			var kb int
			if n, _ := fmt.Sscanf(s.Text(), "MemTotal: %d kB", &kb); n == 1 {
				mem = fmt.Sprintf(", %.0f GiB RAM", float64(kb)/(1<<20))
				break
			}
		}
		f.Close()
	}
	if model == "" {
		model = runtime.GOARCH
	}
	return fmt.Sprintf("%d CPUs (%s)%s, %s/%s, %s", runtime.NumCPU(), model, mem, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

// loadAverage returns the 1, 5 and 15 minute load averages, from /proc on
// Linux, or "unknown".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}
