package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// The database kinds a bench measures.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Goals of the issue that asked for the bench, on the 2-core machine it
// was written on: end to end over the raw transaction rate, per database,
// and the p99 at half the peak rate.
const (
	GoalPostgresRatio = 1.0
	GoalSQLiteRatio   = 0.8
	GoalPacedP99      = 50 * time.Millisecond
)

// tripMessages bounds the round-trip count: enough messages for stable
// averages, few enough to take a few seconds.
const tripMessages = 1000

// ParseDatabases reads --db: sqlite, postgres or both.
func ParseDatabases(s string) ([]string, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case SQLite:
		return []string{SQLite}, nil
	case Postgres, "postgresql", "pg":
		return []string{Postgres}, nil
	case "both", "":
		return []string{SQLite, Postgres}, nil
	}
	return nil, fmt.Errorf("--db %q: choose sqlite, postgres or both", s)
}

// BenchConfig describes a whole bench: the HTTP ceiling once, then for
// each database the end-to-end run (outbound discarded), the same with
// delivery to a loopback Messages API, the raw transaction rate, a run
// paced at half the peak, and on PostgreSQL a count of round trips.
type BenchConfig struct {
	Databases []string
	// Contacts is the concurrency of every phase, raw transactions included.
	Contacts int
	// Duration is the length of each phase.
	Duration time.Duration
	// Warmup runs unmeasured traffic at the start of each end-to-end
	// phase and of the HTTP ceiling; see Config.Warmup.
	Warmup time.Duration
	// MaxMessages, when positive, also bounds each phase.
	MaxMessages int
	FlowsDir    string
	// Rate paces the paced run; zero means half the peak just measured.
	Rate float64
	// ProviderLatency is how long the loopback Messages API of the
	// delivery phase takes to answer each message.
	ProviderLatency time.Duration
	Scripts         []Script
	// SQLiteDir receives one fresh SQLite file per phase.
	SQLiteDir string
	// Postgres returns the URL of a database for the phase called name,
	// empty unless the operator named one.
	Postgres func(ctx context.Context, name string) (string, error)
	// PostgresPID, when set, returns the process id of the PostgreSQL
	// server the bench started (its postmaster), or 0, so that its CPU is
	// counted.
	PostgresPID func() int
	// Profile, when set, is called around the end-to-end run of each
	// database (to take a CPU profile); it returns the function that ends
	// it.
	Profile func(db string) (stop func() error, err error)
	// Log receives the services' logs; nil discards them.
	Log *slog.Logger
	// Progress receives a line as each phase starts; nil discards them.
	Progress io.Writer
}

// BenchReport is what a bench measured.
type BenchReport struct {
	Contacts int
	// ProviderLatency is BenchConfig's.
	ProviderLatency time.Duration
	Duration        time.Duration
	Warmup          time.Duration
	// HTTP is the HTTP ceiling.
	HTTP *Result
	Rows []*BenchRow
}

// BenchRow holds one database's figures.
type BenchRow struct {
	DB string
	// E2E has outbound messages discarded in-process; Delivery sends them
	// to a Messages API on loopback.
	E2E, Delivery         *Result
	E2ECheck, DeliveryChk Verification
	// DeliveryReply and PacedReply are how long each webhook's first
	// reply took to reach the provider, in the delivery and paced runs.
	DeliveryReply, PacedReply Latencies
	// DeliveredRate is the replies a second the delivery run's Messages
	// API received, from the first to the last.
	DeliveredRate float64
	// PoolWait is how long, in all, the store's calls waited for a free
	// connection during E2E (PostgreSQL: SQLite's transactions queue for
	// their writer before they take its connection).
	PoolWait time.Duration
	// WriterTx and WriterCommits are, on SQLite, how many transactions its
	// single writer ran during E2E and how many commits they shared (group
	// commit).
	WriterTx, WriterCommits int64
	// Waits is what PostgreSQL's busy backends did during E2E.
	Waits *WaitProfile
	// Raw is the naive per-message transaction.
	Raw *Result
	// Paced ran at PacedRate webhooks a second.
	Paced      *Result
	PacedRate  float64
	PacedCheck Verification
	// Trips is the wire count over a run of TripMessages webhooks and
	// TripStarts clinic starts lasting TripElapsed (PostgreSQL only);
	// IdleTrips is the wire count of the idle service over one second
	// (timers, outbox polling) before it.
	Trips, IdleTrips         *WireStats
	TripMessages, TripStarts int
	TripElapsed              time.Duration
	// TripRun is the run whose round trips were counted; TripUnlocked and
	// TripFallbacks, how its messages and starts were written
	// (Store.OptimisticCounts).
	TripRun                     *Result
	TripUnlocked, TripFallbacks int64
	// TripRows is how many rows the census run inserted, updated and
	// deleted in all (PostgreSQL's statistics): the service's migrations,
	// the messages and starts, delivery and the audit chainer.
	TripRows int64
	// E2ECPU and RawCPU are the CPU the headline end-to-end run and the raw
	// run used, when it could be read.
	E2ECPU, RawCPU *CPUUse
}

// Bench runs every phase in turn and returns the figures. It stops at the
// first phase that cannot run; failed webhooks and unplanned replies are
// reported, not returned as errors.
func Bench(ctx context.Context, cfg BenchConfig) (*BenchReport, error) {
	if len(cfg.Scripts) == 0 {
		cfg.Scripts = ExampleScripts()
	}
	rep := &BenchReport{Contacts: cfg.Contacts, Duration: cfg.Duration, Warmup: cfg.Warmup, ProviderLatency: cfg.ProviderLatency}
	b := &bench{cfg: cfg}
	b.progress("HTTP ceiling: a form-parsing handler on loopback")
	echo, err := StartEcho()
	if err != nil {
		return nil, err
	}
	rep.HTTP, err = Run(ctx, b.runConfig(echo.Target(), nil, 0, cfg.MaxMessages))
	echo.Close()
	if err != nil {
		return nil, err
	}
	for _, db := range cfg.Databases {
		row, err := b.database(ctx, db)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", db, err)
		}
		rep.Rows = append(rep.Rows, row)
	}
	return rep, nil
}

type bench struct {
	cfg BenchConfig
}

func (b *bench) progress(format string, args ...any) {
	if b.cfg.Progress != nil {
		fmt.Fprintf(b.cfg.Progress, "bench: "+format+"\n", args...)
	}
}

func (b *bench) runConfig(t Target, start StartFunc, rate float64, maxMessages int) Config {
	return Config{Target: t, Contacts: b.cfg.Contacts, Duration: b.cfg.Duration, Warmup: b.cfg.Warmup, MaxMessages: maxMessages,
		Rate: rate, Scripts: b.cfg.Scripts, Start: start}
}

// dsn returns a fresh database of kind db for the phase called name.
func (b *bench) dsn(ctx context.Context, db, name string) (string, error) {
	if db == SQLite {
		return filepath.Join(b.cfg.SQLiteDir, name+".db"), nil
	}
	if b.cfg.Postgres == nil {
		return "", errors.New("no PostgreSQL database available")
	}
	return b.cfg.Postgres(ctx, name)
}

func (b *bench) database(ctx context.Context, db string) (*BenchRow, error) {
	row := &BenchRow{DB: db}
	var err error
	b.progress("%s: end to end, outbound discarded in-process", db)
	var e2e, delivery *phase
	if e2e, err = b.endToEnd(ctx, db, "bench_e2e", DeliverDiscard, 0, true); err != nil {
		return nil, err
	}
	row.E2E, row.E2ECheck, row.PoolWait, row.Waits, row.E2ECPU = e2e.res, e2e.check, e2e.poolWait, e2e.waits, e2e.cpu
	row.WriterTx, row.WriterCommits = e2e.writerTx, e2e.writerCommits
	b.progress("%s: end to end, outbound delivered to a loopback Messages API", db)
	if delivery, err = b.endToEnd(ctx, db, "bench_delivery", DeliverLoopback, 0, false); err != nil {
		return nil, err
	}
	row.Delivery, row.DeliveryChk, row.DeliveryReply = delivery.res, delivery.check, delivery.reply
	row.DeliveredRate = delivery.delivered
	b.progress("%s: raw transactions (SELECT%s, UPDATE, INSERT, COMMIT)", db, map[bool]string{true: " FOR UPDATE"}[db == Postgres])
	dsn, err := b.dsn(ctx, db, "bench_raw")
	if err != nil {
		return nil, err
	}
	cpu := b.cpuMeter(db)
	if row.Raw, err = RawTx(ctx, RawConfig{DSN: dsn, Workers: b.cfg.Contacts, Duration: b.cfg.Duration, MaxMessages: b.cfg.MaxMessages}); err != nil {
		return nil, err
	}
	row.RawCPU = cpu()
	row.PacedRate = b.cfg.Rate
	if row.PacedRate <= 0 {
		row.PacedRate = row.E2E.Rate() / 2
	}
	if row.PacedRate > 0 {
		b.progress("%s: end to end paced at %.0f messages/s", db, row.PacedRate)
		paced, err := b.endToEnd(ctx, db, "bench_paced", DeliverDiscard, row.PacedRate, false)
		if err != nil {
			return nil, err
		}
		row.Paced, row.PacedCheck, row.PacedReply = paced.res, paced.check, paced.reply
	}
	if db == Postgres {
		b.progress("%s: counting round trips over %d messages", db, tripMessages)
		if err := b.countTrips(ctx, row); err != nil {
			return nil, err
		}
	}
	return row, nil
}

// phase is what one end-to-end run measured.
type phase struct {
	res   *Result
	check Verification
	reply Latencies
	// delivered is the replies a second that reached the sink.
	delivered float64
	poolWait  time.Duration
	// writerTx and writerCommits count SQLite's writer's transactions and
	// commits.
	writerTx, writerCommits int64
	waits                   *WaitProfile
	cpu                     *CPUUse
}

// cpuMeter starts counting the CPU used from now on, by this process and
// by db's server when the bench started it; the function it returns reads
// the count, or nil when /proc cannot be read.
func (b *bench) cpuMeter(db string) func() *CPUUse {
	pid := 0
	if db == Postgres && b.cfg.PostgresPID != nil {
		pid = b.cfg.PostgresPID()
	}
	start, ok := ReadCPU(pid)
	return func() *CPUUse {
		end, endOK := ReadCPU(pid)
		if !ok || !endOK {
			return nil
		}
		used := end.Sub(start)
		return &used
	}
}

// endToEnd starts a service on a fresh database, runs the scripts against
// it and checks what its contacts received. A headline run is profiled
// and, on PostgreSQL, its backends sampled.
func (b *bench) endToEnd(ctx context.Context, db, name string, d Delivery, rate float64, headline bool) (*phase, error) {
	dsn, err := b.dsn(ctx, db, name)
	if err != nil {
		return nil, err
	}
	svc, err := StartService(ctx, ServiceConfig{DB: dsn, FlowsDir: b.cfg.FlowsDir, Delivery: d, Log: b.cfg.Log,
		ProviderLatency: b.cfg.ProviderLatency})
	if err != nil {
		return nil, err
	}
	defer svc.Close()
	var sampler *WaitSampler
	stopProfile := func() error { return nil }
	if headline {
		if db == Postgres {
			if sampler, err = StartWaitSampler(ctx, dsn, 10*time.Millisecond); err != nil {
				return nil, err
			}
		}
		if b.cfg.Profile != nil {
			if stopProfile, err = b.cfg.Profile(db); err != nil {
				return nil, err
			}
		}
	}
	pool := svc.Server.Store.DB().Stats()
	cpu := b.cpuMeter(db)
	commits, txs := svc.Server.Store.GroupCommits()
	res, err := Run(ctx, b.runConfig(svc.Target(), svc.Start, rate, b.cfg.MaxMessages))
	p := &phase{res: res, poolWait: svc.Server.Store.DB().Stats().WaitDuration - pool.WaitDuration}
	c, t := svc.Server.Store.GroupCommits()
	p.writerCommits, p.writerTx = c-commits, t-txs
	if headline {
		// Before the service closes: its backends' CPU is still theirs.
		p.cpu = cpu()
	}
	if sampler != nil {
		w := sampler.Stop()
		p.waits = &w
	}
	if perr := stopProfile(); err == nil {
		err = perr
	}
	if err != nil {
		return nil, err
	}
	p.check = svc.Sink.Verify(ctx, res, 30*time.Second)
	p.reply, p.delivered = svc.Sink.ReplyLatency(res), svc.Sink.DeliveryRate()
	return p, nil
}

// countTrips runs up to tripMessages webhooks with the store's connections
// going through a WireCounter, and records its counts in row.
func (b *bench) countTrips(ctx context.Context, row *BenchRow) error {
	dsn, err := b.dsn(ctx, Postgres, "bench_trips")
	if err != nil {
		return err
	}
	addr, err := PostgresAddr(dsn)
	if err != nil {
		return err
	}
	wc, err := NewWireCounter(addr)
	if err != nil {
		return err
	}
	defer wc.Close()
	proxied, err := wc.Rewrite(dsn)
	if errors.Is(err, ErrEncrypted) {
		b.progress("%s: round trips not counted: %v", Postgres, err)
		return nil
	}
	if err != nil {
		return err
	}
	rows0, err := RowsWritten(ctx, dsn)
	if err != nil {
		return err
	}
	svc, err := StartService(ctx, ServiceConfig{DB: proxied, FlowsDir: b.cfg.FlowsDir, Delivery: DeliverDiscard, Log: b.cfg.Log})
	if err != nil {
		return err
	}
	defer svc.Close()
	limit := tripMessages
	if b.cfg.MaxMessages > 0 {
		limit = min(limit, b.cfg.MaxMessages)
	}
	// What the service sends while idle, to tell it from per-message work.
	wc.Reset()
	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
		return ctx.Err()
	}
	idle := wc.Stats()
	wc.Reset()
	began := time.Now()
	// A census, not a latency: every webhook's round trips count, so the
	// run has no warm-up to leave out.
	cfg := b.runConfig(svc.Target(), svc.Start, 0, limit)
	cfg.Warmup = 0
	res, err := Run(ctx, cfg)
	if err != nil {
		return err
	}
	// Let the outbox worker deliver what the webhooks queued: its
	// statements are part of each message's cost.
	svc.Sink.Verify(ctx, res, 10*time.Second)
	st := wc.Stats()
	row.Trips, row.IdleTrips = &st, &idle
	row.TripUnlocked, row.TripFallbacks = svc.Server.Store.OptimisticCounts()
	row.TripMessages, row.TripStarts, row.TripElapsed, row.TripRun = res.Messages, res.Starts, time.Since(began), res
	// The service chains its last audit records as it stops, and its
	// connections report their counts as they close.
	if err := svc.Close(); err != nil {
		return err
	}
	rows, err := RowsWritten(ctx, dsn)
	if err != nil {
		return err
	}
	row.TripRows = rows - rows0
	return nil
}

// OK reports whether every webhook was answered 200 and every contact got
// the replies its script planned; otherwise the figures measure something
// else than the flows running.
func (r *BenchReport) OK() bool {
	if r.HTTP == nil || r.HTTP.Failed > 0 {
		return false
	}
	for _, row := range r.Rows {
		for _, res := range []*Result{row.E2E, row.Delivery, row.Raw, row.Paced} {
			if res != nil && res.Failed > 0 {
				return false
			}
		}
		if !row.E2ECheck.OK() || !row.DeliveryChk.OK() || (row.Paced != nil && !row.PacedCheck.OK()) {
			return false
		}
	}
	return true
}

// ratio returns a/b, or 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func msec(d time.Duration) string {
	if d >= 10*time.Second {
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// Write prints the report: the main table, delivery, the paced run, the
// goals, the round trips, and any failure.
func (r *BenchReport) Write(w io.Writer) {
	fmt.Fprintf(w, "%d contacts, %v per phase; latency is from sending a webhook to its 200.\n", r.Contacts, r.Duration)
	if r.Warmup > 0 {
		fmt.Fprintf(w, "Each end-to-end phase and the HTTP ceiling first run %v of traffic that is not counted, on a service\n"+
			"just started (connections opened, statements prepared); its p99 is shown apart as warm-up p99.\n", r.Warmup)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "db\te2e msgs/s\tp50\tp90\tp99\tHTTP ceiling msgs/s\traw DB tx/s\te2e/raw\te2e/HTTP\t")
	for _, row := range r.Rows {
		e := row.E2E
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%.0f\t%.0f\t%.2f\t%.3f\t\n", row.DB, e.Rate(),
			msec(e.Latency.Percentile(50)), msec(e.Latency.Percentile(90)), msec(e.Latency.Percentile(99)),
			r.HTTP.Rate(), row.Raw.Rate(), ratio(e.Rate(), row.Raw.Rate()), ratio(e.Rate(), r.HTTP.Rate()))
	}
	tw.Flush()
	if len(r.Rows) > 0 {
		api := "answering at once"
		if r.ProviderLatency > 0 {
			api = "answering after " + r.ProviderLatency.String()
		}
		fmt.Fprintf(w, "\nWith real delivery (the Twilio sender posting to a Messages API on loopback, %s;\n"+
			"reply: from sending a webhook to its first reply reaching the API):\n", api)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "db\tmsgs/s\tp50\tp99\te2e/raw\te2e/HTTP\treplies\treplies/s\treply p50\treply p99\t")
		for _, row := range r.Rows {
			d := row.Delivery
			fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%.2f\t%.3f\t%d\t%.0f\t%s\t%s\t\n", row.DB, d.Rate(), msec(d.Latency.Percentile(50)),
				msec(d.Latency.Percentile(99)), ratio(d.Rate(), row.Raw.Rate()), ratio(d.Rate(), r.HTTP.Rate()), d.ExpectedReplies(),
				row.DeliveredRate, msec(row.DeliveryReply.Percentile(50)), msec(row.DeliveryReply.Percentile(99)))
		}
		tw.Flush()
		fmt.Fprintln(w, "\nPaced (open loop; latency counted from when each webhook was due):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "db\ttarget msgs/s\tachieved\tp50\tp90\tp99\twarm-up p99\treply p50\treply p99\t")
		for _, row := range r.Rows {
			if p := row.Paced; p != nil {
				warm := "-"
				if len(p.WarmupLatency) > 0 {
					warm = msec(p.WarmupLatency.Percentile(99))
				}
				fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t\n", row.DB, row.PacedRate, p.Rate(),
					msec(p.Latency.Percentile(50)), msec(p.Latency.Percentile(90)), msec(p.Latency.Percentile(99)), warm,
					msec(row.PacedReply.Percentile(50)), msec(row.PacedReply.Percentile(99)))
			}
		}
		tw.Flush()
		fmt.Fprintln(w, "\nRaw transaction latency:")
		for _, row := range r.Rows {
			fmt.Fprintf(w, "  %s: p50 %s, p99 %s\n", row.DB, msec(row.Raw.Latency.Percentile(50)), msec(row.Raw.Latency.Percentile(99)))
		}
	}
	r.writeGoals(w)
	r.writeWaits(w)
	r.writeCPU(w)
	r.writeTrips(w)
	r.writeProblems(w)
}

// writeCPU reports the CPU a message cost in the headline run and a
// transaction in the raw run, this process's (service and load client)
// apart from PostgreSQL's.
func (r *BenchReport) writeCPU(w io.Writer) {
	var rows []*BenchRow
	for _, row := range r.Rows {
		if row.E2ECPU != nil && row.RawCPU != nil {
			rows = append(rows, row)
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "\nCPU time per message end to end, and per raw transaction (from /proc; SQLite runs inside this process):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "db\te2e: service + client\te2e: PostgreSQL\traw: this process\traw: PostgreSQL\t")
	per := func(d time.Duration, n int, ok bool) string {
		if !ok || n == 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f µs", microsEach(d, n))
	}
	for _, row := range rows {
		n := row.E2E.Messages + row.E2E.WarmupMessages
		e, raw := row.E2ECPU, row.RawCPU
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", row.DB, per(e.Self, n, true), per(e.Server, n, e.ServerOK),
			per(raw.Self, row.Raw.Messages, true), per(raw.Server, row.Raw.Messages, raw.ServerOK))
	}
	tw.Flush()
}

func (r *BenchReport) writeGoals(w io.Writer) {
	if len(r.Rows) == 0 {
		return
	}
	fmt.Fprintln(w, "\nGoals:")
	mark := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	for _, row := range r.Rows {
		goal := GoalSQLiteRatio
		if row.DB == Postgres {
			goal = GoalPostgresRatio
		}
		got := ratio(row.E2E.Rate(), row.Raw.Rate())
		fmt.Fprintf(w, "  %-8s e2e/raw %.2f, goal >= %.1f: %s\n", row.DB, got, goal, mark(got >= goal))
		if b := r.budget(row, goal); b != "" {
			fmt.Fprintf(w, "  %-8s %s\n", "", b)
		}
		if row.Paced != nil {
			p99 := row.Paced.Latency.Percentile(99)
			fmt.Fprintf(w, "  %-8s p99 at %.0f msgs/s %s, goal < %v: %s\n", row.DB, row.PacedRate, msec(p99), GoalPacedP99, mark(p99 < GoalPacedP99))
		}
	}
}

// budget says what the throughput goal leaves each message: at goal
// times the raw rate, the machine's CPUs have cpus / rate of CPU time per
// message, for everything. Set beside it what the HTTP ceiling, the raw
// transaction and the message cost in this run, from their CPU time (the
// HTTP ceiling's estimated from its rate, the CPUs busy). Empty when the
// CPU time could not be read.
func (r *BenchReport) budget(row *BenchRow, goal float64) string {
	e, raw := row.E2ECPU, row.RawCPU
	n := row.E2E.Messages + row.E2E.WarmupMessages
	if e == nil || raw == nil || n == 0 || row.Raw.Messages == 0 || row.Raw.Rate() <= 0 || r.HTTP == nil || r.HTTP.Rate() <= 0 {
		return ""
	}
	cpus := float64(runtime.NumCPU())
	rate := goal * row.Raw.Rate()
	return fmt.Sprintf("at %.1fx raw (%.0f msgs/s), %.0f CPUs leave %.0f µs per message for everything; HTTP alone takes about %.0f µs, "+
		"the raw transaction %.0f µs; a message took %.0f µs", goal, rate, cpus, cpus*1e6/rate, cpus*1e6/r.HTTP.Rate(),
		microsEach(raw.Self+raw.Server, row.Raw.Messages), microsEach(e.Self+e.Server, n))
}

// microsEach is d shared among n, in microseconds.
func microsEach(d time.Duration, n int) float64 { return float64(d.Microseconds()) / float64(n) }

// writeWaits says where the end-to-end runs waited: for the store's
// connection pool and inside PostgreSQL, or for SQLite's one writer.
func (r *BenchReport) writeWaits(w io.Writer) {
	if len(r.Rows) == 0 {
		return
	}
	fmt.Fprintln(w, "\nWhere the end-to-end runs waited:")
	for _, row := range r.Rows {
		n := row.E2E.Messages
		if n > 0 && row.DB == Postgres {
			fmt.Fprintf(w, "  %-8s waiting for a store connection: %s per message\n", row.DB, msec(row.PoolWait/time.Duration(n)))
		}
		if n > 0 && row.WriterCommits > 0 {
			fmt.Fprintf(w, "  %-8s its one writer ran %.2f transactions per message (messages, clinic starts, delivery bookkeeping), %.2f per commit\n",
				row.DB, float64(row.WriterTx)/float64(n), float64(row.WriterTx)/float64(row.WriterCommits))
		}
		if p := row.Waits; p != nil && p.Busy > 0 {
			var parts []string
			for _, s := range p.Shares {
				if s.Share >= 0.01 {
					parts = append(parts, fmt.Sprintf("%.0f%% %s", 100*s.Share, s.State))
				}
			}
			fmt.Fprintf(w, "  %-8s busy backends, %.1f on average over %d samples: %s\n", row.DB,
				float64(p.Busy)/float64(p.Samples), p.Samples, strings.Join(parts, ", "))
		}
	}
}

func (r *BenchReport) writeTrips(w io.Writer) {
	for _, row := range r.Rows {
		if row.Trips == nil || row.TripMessages == 0 {
			continue
		}
		// Clinic starts are engine transactions like webhooks.
		n := float64(row.TripMessages + row.TripStarts)
		idle := float64(row.IdleTrips.RoundTrips) * row.TripElapsed.Seconds()
		fmt.Fprintf(w, "\n%s round trips per message: %.1f (%.1f statements, %.1f transactions), counted on the wire over %d webhooks\n",
			row.DB, float64(row.Trips.RoundTrips)/n, float64(row.Trips.Executions)/n, float64(row.Trips.Transactions)/n, row.TripMessages)
		fmt.Fprintf(w, "and %d clinic starts, outbox delivery included; the idle service makes %d round trips a second\n",
			row.TripStarts, row.IdleTrips.RoundTrips)
		fmt.Fprintf(w, "(timers, outbox polling), about %.1f per message of this run. %d webhooks and starts were written without locks\n",
			idle/n, row.TripUnlocked)
		fmt.Fprintf(w, "(two round trips each) and %d went on under locks. Rows written (inserted, updated, deleted) per message:\n", row.TripFallbacks)
		fmt.Fprintf(w, "%.1f, delivery and the audit chainer included; the raw transaction writes 2. Busiest statements, per message:\n",
			float64(row.TripRows)/n)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  trips\truns\tstatement")
		for i, s := range row.Trips.Statements {
			if i == 15 {
				fmt.Fprintf(tw, "  …\t\t(%d more)\n", len(row.Trips.Statements)-i)
				break
			}
			fmt.Fprintf(tw, "  %.2f\t%.2f\t%s\n", float64(s.RoundTrips)/n, float64(s.Executions)/n, s.SQL)
		}
		tw.Flush()
	}
}

func (r *BenchReport) writeProblems(w io.Writer) {
	var lines []string
	add := func(what string, res *Result) {
		if res != nil && res.Failed > 0 {
			lines = append(lines, fmt.Sprintf("%s: %d failed, first: %v", what, res.Failed, res.FirstError))
		}
	}
	add("HTTP ceiling", r.HTTP)
	for _, row := range r.Rows {
		add(row.DB+" e2e", row.E2E)
		add(row.DB+" delivery", row.Delivery)
		add(row.DB+" raw", row.Raw)
		add(row.DB+" paced", row.Paced)
		checks := []struct {
			what string
			v    Verification
			ran  bool
		}{{"e2e", row.E2ECheck, true}, {"delivery", row.DeliveryChk, true}, {"paced", row.PacedCheck, row.Paced != nil}}
		for _, c := range checks {
			if c.ran && !c.v.OK() {
				lines = append(lines, fmt.Sprintf("%s %s: %v", row.DB, c.what, c.v))
			}
		}
	}
	if len(lines) == 0 {
		fmt.Fprintln(w, "\nEvery webhook was answered 200 and every contact got the replies its script planned.")
		return
	}
	fmt.Fprintln(w, "\nPROBLEMS (the figures above do not measure the flows as planned):")
	for _, l := range lines {
		fmt.Fprintln(w, "  "+l)
	}
}
