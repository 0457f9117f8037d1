package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/safeflow/safeflow/channels/messenger/messengertest"
	"github.com/safeflow/safeflow/channels/twilio/twiliotest"
	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/internal/loadgen"
	"github.com/safeflow/safeflow/internal/pgtest"
	"github.com/safeflow/safeflow/internal/seal"
	"github.com/safeflow/safeflow/internal/server"
	"github.com/safeflow/safeflow/internal/store"
)

// crashChild, set in its environment, makes the test binary a safeflow
// service (runCrashChild) instead of running tests: the crash test kills it
// with SIGKILL, which an in-process service cannot be.
const crashChild = "SAFEFLOW_E2E_CRASH_CHILD"

// runCrashChild serves as `safeflow serve` does, with its settings from
// the environment, on the listener it inherited as file descriptor 3,
// until SIGTERM. It returns the process's exit code.
func runCrashChild() int {
	cfg, err := server.LoadConfig("", os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ln, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "inherited listener:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	err = srv.Run(ctx, ln)
	srv.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// A service killed (SIGKILL) twice in the middle of a load of signed
// webhooks, then restarted on the same database, loses no message: every
// webhook answered 200 was handled exactly once, a webhook the provider
// sends again after a crash is handled once, every reply goes out (at
// least once, in order), the audit chain verifies, and on SQLite the file
// is intact.
func TestCrashLosesNoMessage(t *testing.T) {
	t.Parallel()
	for _, kind := range storeKinds {
		t.Run(string(kind), func(t *testing.T) { crashAndRecover(t, kind) })
	}
}

func crashAndRecover(t *testing.T, kind storeKind) {
	dir := t.TempDir()
	dsn := "sqlite:" + filepath.Join(dir, "safeflow.db")
	if kind == postgresStore {
		dsn = pgtest.Shared(t).CreateDB(t, "")
	}
	ring, err := seal.Generate()
	if err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(dir, "safeflow.keys")
	if err := ring.Save(keys); err != nil {
		t.Fatal(err)
	}
	tw := twiliotest.NewServer(t, accountSID, authToken)
	fb := messengertest.NewServer(t, pageToken)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The test keeps the listening socket open across the service's
	// deaths: webhooks sent while no service runs wait in its queue, as
	// behind a load balancer, and those a dying service had accepted fail.
	lnFile, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer lnFile.Close()
	env := []string{crashChild + "=1",
		"SAFEFLOW_DB=" + dsn, "SAFEFLOW_FLOWS=" + examplesDir, "SAFEFLOW_PUBLIC_URL=" + publicURL,
		"SAFEFLOW_KEYS_FILE=" + keys, "SAFEFLOW_TIME_ZONE=" + clinicZone, "SAFEFLOW_REGION=US",
		"SAFEFLOW_TWILIO_ACCOUNT_SID=" + accountSID, "SAFEFLOW_TWILIO_AUTH_TOKEN=" + authToken,
		"SAFEFLOW_TWILIO_FROM=" + twilioFrom, "SAFEFLOW_TWILIO_API_URL=" + tw.URL,
		"SAFEFLOW_MESSENGER_APP_SECRET=" + appSecret, "SAFEFLOW_MESSENGER_VERIFY_TOKEN=" + verifyToken,
		"SAFEFLOW_MESSENGER_PAGE_TOKEN=" + pageToken, "SAFEFLOW_MESSENGER_API_URL=" + fb.URL}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "SAFEFLOW_") {
			env = append(env, e)
		}
	}
	base := "http://" + ln.Addr().String()
	svc := startChild(t, env, lnFile, base)

	// Contacts walk the webhook-only example conversations, each message
	// sent again, with the same MessageSid, until it is answered 200.
	var scripts []loadgen.Script
	for _, s := range loadgen.ExampleScripts() {
		if s.Start == nil {
			scripts = append(scripts, s)
		}
	}
	const contacts = 12
	type contact struct {
		addr   string
		script loadgen.Script
	}
	var all []contact
	total := 0
	for i := range contacts {
		c := contact{addr: fmt.Sprintf("+1415555%04d", 100+i), script: scripts[i%len(scripts)]}
		all = append(all, c)
		total += len(c.script.Turns)
	}
	var acked, inflight atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client := &http.Client{Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	for _, c := range all {
		wg.Go(func() {
			for _, turn := range c.script.Turns {
				form := url.Values{"From": {c.addr}, "Body": {turn.Text}, "MessageSid": {twiliotest.NewSID("SM")}, "To": {twilioFrom}}
				for {
					inflight.Add(1)
					code, err := postWebhook(ctx, client, base, form)
					inflight.Add(-1)
					if code == http.StatusOK {
						break
					}
					if code >= 400 && code < 500 {
						t.Errorf("%s %q: answered %d; a good webhook is never refused", c.addr, turn.Text, code)
						return
					}
					if ctx.Err() != nil {
						t.Errorf("%s %q: never answered 200 (last: %d, %v)", c.addr, turn.Text, code, err)
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
				acked.Add(1)
			}
		})
	}

	// Two crashes, at about a third and two thirds of the way.
	var caught []int64
	for _, share := range []int{3, 6} {
		for acked.Load() < int64(total*share/10) && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		caught = append(caught, inflight.Load())
		svc.kill(t)
		claimed := countClaimed(t, dsn, ring)
		svc = startChild(t, env, lnFile, base)
		// On SQLite, the only service on its file, the next start sends
		// what the dead one had claimed at once; on PostgreSQL, their
		// leases must end first (below).
		said := strings.Contains(svc.out.String(), fmt.Sprintf("go out now\" count=%d", claimed))
		if kind == sqliteStore && claimed > 0 && !said {
			t.Errorf("the start after the crash did not release the %d replies the killed service had claimed:\n%s", claimed, svc.out.String())
		}
		t.Logf("replies claimed by the killed service: %d", claimed)
	}
	wg.Wait()
	if t.Failed() {
		svc.stop(t)
		return
	}
	if slices.Max(caught) == 0 {
		t.Fatalf("no webhook was in flight at either crash (%v): the test did not crash the service mid-message", caught)
	}
	t.Logf("webhooks in flight at the crashes: %v", caught)
	svc.stop(t)

	// Stopped by SIGTERM, the last service released what it held. On
	// PostgreSQL, a minute passes: the replies the killed services had
	// claimed come out of their lease.
	s := openStore(t, dsn, ring)
	res, err := s.DB().Exec(s.DB().Rebind(`UPDATE outbox SET next_attempt = ? WHERE status = 'sending'`), time.Now().Add(-time.Second).UnixMicro())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if leased, _ := res.RowsAffected(); kind == sqliteStore && leased > 0 {
		t.Errorf("%d replies still claimed on SQLite after a clean stop", leased)
	}

	svc = startChild(t, env, lnFile, base)
	// A contact's replies go out in order, so the last has come when the
	// conversation's final words have.
	ended := func() bool {
		last := map[string]string{}
		for _, m := range tw.Messages() {
			last[m.To] = m.Body
		}
		for _, c := range all {
			if !strings.Contains(last[c.addr], c.script.Final) {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(30 * time.Second); !ended() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	svc.stop(t)
	want := 0
	for _, c := range all {
		want += c.script.Replies()
	}

	s = openStore(t, dsn, ring)
	defer s.Close()
	// Each message answered 200 is in its transcript once, and each reply
	// once: none handled twice, none lost. And each contact received the
	// replies of its transcript, in order, except that replies sent but not
	// yet recorded as sent at a crash go out again (at-least-once).
	byTo := map[string][]string{}
	for _, m := range tw.Messages() {
		byTo[m.To] = append(byTo[m.To], m.Body)
	}
	duplicates := 0
	for _, c := range all {
		replies := c.script.Replies()
		var in int
		var out []string
		for _, l := range transcriptOf(t, s, ring, c.addr) {
			if l.Inbound {
				in++
			} else {
				out = append(out, l.Text)
			}
		}
		if in != len(c.script.Turns) || len(out) != replies || !strings.Contains(out[len(out)-1], c.script.Final) {
			t.Errorf("%s (%s): the transcript holds %d messages and %d replies, want %d and %d ending with %q:\n%s",
				c.addr, c.script.Name, in, len(out), len(c.script.Turns), replies, c.script.Final, strings.Join(out, "\n"))
			continue
		}
		again, rewinds, ok := replayed(byTo[c.addr], out)
		if !ok || rewinds > 2 {
			t.Errorf("%s (%s) received\n%s\nwant, in order, with at most one step back per crash:\n%s", c.addr, c.script.Name,
				strings.Join(byTo[c.addr], "\n"), strings.Join(out, "\n"))
		}
		duplicates += again
	}
	t.Logf("replies sent again after a crash: %d of %d", duplicates, want)
	var inbound, undelivered int
	if err := s.DB().Get(&inbound, s.DB().Rebind(`SELECT COUNT(*) FROM audit_log WHERE action = ?`), engine.EventMessageIn); err != nil {
		t.Fatal(err)
	}
	if inbound != total {
		t.Errorf("the audit log records %d inbound messages, want %d", inbound, total)
	}
	if err := s.DB().Get(&undelivered, `SELECT COUNT(*) FROM outbox WHERE status <> 'sent'`); err != nil {
		t.Fatal(err)
	}
	if undelivered != 0 {
		t.Errorf("%d replies not delivered", undelivered)
	}
	if problem, err := s.VerifyAudit(context.Background()); err != nil || problem != nil {
		t.Errorf("the audit log does not verify after the crashes: problem %v, error %v", problem, err)
	}
	if kind == sqliteStore {
		var check string
		if err := s.DB().Get(&check, `PRAGMA integrity_check`); err != nil || check != "ok" {
			t.Errorf("SQLite integrity check: %q, %v", check, err)
		}
	}
}

// postWebhook sends a signed Twilio webhook with the fields of form and
// returns the answer's status, or 0 and the error when there was none.
func postWebhook(ctx context.Context, client *http.Client, base string, form url.Values) (int, error) {
	req := twiliotest.SignedInbound(authToken, publicURL+twilioPath, form)
	resp, err := twiliotest.Deliver(ctx, client, base+twilioPath, req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

// replayed reports whether got is want, in order, except that delivery
// went back some messages now and then (rewinds) and sent them again: a
// crash between sending replies and recording them as sent has the next
// start send them again, in order. It returns how many messages came
// again and how many rewinds there were.
func replayed(got, want []string) (again, rewinds int, ok bool) {
	next, reached := 0, 0
	for _, m := range got {
		if next < len(want) && m == want[next] {
			next++
		} else {
			k := next - 1
			for k >= 0 && want[k] != m {
				k--
			}
			if k < 0 {
				return again, rewinds, false
			}
			next = k + 1
			rewinds++
		}
		if next <= reached {
			again++
		}
		reached = max(reached, next)
	}
	return again, rewinds, next == len(want)
}

// transcriptOf returns the transcript of the conversation with the contact
// at the SMS number addr.
func transcriptOf(t *testing.T, s *store.Store, ring *seal.Ring, addr string) []engine.TranscriptLine {
	t.Helper()
	var id string
	err := s.DB().Get(&id, s.DB().Rebind(`SELECT v.id FROM conversations v JOIN contacts c ON c.id = v.contact_id
		WHERE c.address_index = ?`), ring.Index(string(engine.SMS), addr))
	if err != nil {
		t.Fatalf("conversation with %s: %v", addr, err)
	}
	lines, err := s.Transcript(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

// countClaimed returns how many outbox rows are claimed.
func countClaimed(t *testing.T, dsn string, ring *seal.Ring) int {
	t.Helper()
	s := openStore(t, dsn, ring)
	defer s.Close()
	var n int
	if err := s.DB().Get(&n, `SELECT COUNT(*) FROM outbox WHERE status = 'sending'`); err != nil {
		t.Fatal(err)
	}
	return n
}

func openStore(t *testing.T, dsn string, ring *seal.Ring) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), dsn, ring)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// childService is the service running as a child process.
type childService struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
}

// startChild runs the test binary as a service on the listener ln and
// waits until it is ready.
func startChild(t *testing.T, env []string, ln *os.File, base string) *childService {
	t.Helper()
	c := &childService{cmd: exec.Command(os.Args[0]), out: &syncBuffer{}, done: make(chan error, 1)}
	c.cmd.Env, c.cmd.ExtraFiles = env, []*os.File{ln}
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start the service: %v", err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case err := <-c.done:
			c.done <- err
		default:
			c.cmd.Process.Kill()
			c.wait()
		}
		if t.Failed() {
			t.Logf("service (pid %d) log:\n%s", c.cmd.Process.Pid, c.out.String())
		}
	})
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c
			}
		}
		select {
		case err := <-c.done:
			c.done <- err
			t.Fatalf("the service exited while starting: %v\n%s", err, c.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the service was not ready after 30s\n%s", c.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill ends the service at once, as a crash or power loss would.
func (c *childService) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.wait()
}

// wait returns how the process ended, once it has.
func (c *childService) wait() error {
	err := <-c.done
	c.done <- err
	return err
}

// stop asks the service to shut down and checks that it did so cleanly.
func (c *childService) stop(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-c.done:
		c.done <- err
		if err != nil {
			t.Errorf("the service's shutdown: %v\n%s", err, c.out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the service did not stop within 30s of SIGTERM")
	}
}
