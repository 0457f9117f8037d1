package engine_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/engine/memstore"
	"github.com/safeflow/safeflow/flows"
)

// benchScript is one contact's whole conversation with testdata/bench.yaml:
// the first message starts the default flow, the last one ends it.
var benchScript = []string{"hi", "yes", "Ana", "34", "weds", "9:30 am", "yes"}

// benchContacts are talked to in turn, as many patients are at once.
const benchContacts = 1000

// BenchmarkHandle measures Engine.Handle on the in-memory store: each
// iteration is one inbound message of one of many interleaved contacts.
func BenchmarkHandle(b *testing.B) {
	src, err := os.ReadFile("testdata/bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	set := flows.NewSet(map[string][]byte{"bench.yaml": src})
	if set.Diags.Errors() > 0 {
		b.Fatalf("bench.yaml does not load: %v", set.Diags.Err())
	}
	ctx := context.Background()
	clock := time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	newEngine := func() *engine.Engine {
		return engine.New(set, memstore.New(), engine.WithClock(now), engine.WithLocation(time.UTC))
	}
	eng := newEngine()
	// Addresses are built once so that the loop measures the engine only.
	addrs := make([]string, benchContacts)
	for i := range addrs {
		addrs[i] = "+1555" + strconv.Itoa(1000000+i)
	}
	ids := make([]string, len(benchScript)*benchContacts)
	for i := range ids {
		ids[i] = "SM" + strconv.Itoa(i)
	}
	round := 0
	var cpu time.Duration // CPU time spent outside the timed loop
	b.ReportAllocs()
	cpu0, cpuOK := cpuTime()
	b.ResetTimer()
	for i := range b.N {
		msg := i % len(ids)
		if msg == 0 && i > 0 {
			// Every contact has finished: start again on a fresh store so
			// that memory stays flat however large b.N is.
			b.StopTimer()
			c0, _ := cpuTime()
			eng = newEngine()
			runtime.GC() // the old store's garbage is not the next round's cost
			round++
			c1, _ := cpuTime()
			cpu += c1 - c0
			b.StartTimer()
		}
		step, contact := msg/benchContacts, msg%benchContacts
		res, err := eng.Handle(ctx, engine.Inbound{Channel: engine.SMS, Address: addrs[contact],
			Text: benchScript[step], ProviderID: ids[msg]})
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Out) == 0 {
			b.Fatalf("message %d of contact %d (round %d) got no reply", step, contact, round)
		}
	}
	b.StopTimer()
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "msgs/s")
	}
	if cpu1, ok := cpuTime(); cpuOK && ok {
		// CPU time over every thread (GC included) per message: the cost
		// per core, whatever else the machine is doing.
		b.ReportMetric(float64(cpu1-cpu0-cpu)/float64(b.N), "cpu-ns/msg")
	}
}

// TestBenchFlow checks that the benchmark's script runs the whole flow, so
// that BenchmarkHandle measures what it claims to.
func TestBenchFlow(t *testing.T) {
	src, err := os.ReadFile("testdata/bench.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set := flows.NewSet(map[string][]byte{"bench.yaml": src})
	if len(set.Diags) > 0 {
		t.Fatalf("bench.yaml has findings: %v", set.Diags)
	}
	h := newHarness(t, set, engine.SMS)
	var last []*engine.Outbound
	for _, m := range benchScript {
		last = h.send(m)
	}
	h.want("the last answer", last, sms("Booked, Ana: Wednesday at 09:30. Bring your insurance card."))
	if c := h.conv(); c.Status != engine.Ended || c.Vars["adult"] != true {
		t.Errorf("status %s, adult %v; want ended, true", c.Status, c.Vars["adult"])
	}
	if n := len(h.events(engine.EventExprError)); n != 0 {
		t.Errorf("%d expression errors", n)
	}
}

// TestConcurrentContacts runs many contacts at once (run it with -race):
// runs, environments and caches are shared between goroutines.
func TestConcurrentContacts(t *testing.T) {
	src, err := os.ReadFile("testdata/bench.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set := flows.NewSet(map[string][]byte{"bench.yaml": src})
	store := memstore.New()
	eng := engine.New(set, store, engine.WithClock(func() time.Time { return t0 }))
	const contacts = 16
	var wg sync.WaitGroup
	errs := make(chan error, contacts)
	for c := range contacts {
		wg.Go(func() {
			addr := "+1555200" + strconv.Itoa(1000+c)
			var last *engine.Result
			for i, m := range benchScript {
				res, err := eng.Handle(context.Background(), engine.Inbound{Channel: engine.SMS, Address: addr,
					Text: m, ProviderID: addr + "-" + strconv.Itoa(i)})
				if err != nil {
					errs <- err
					return
				}
				last = res
			}
			if len(last.Out) != 1 || !strings.HasPrefix(last.Out[0].Text, "Booked, Ana") || last.Out[0].Address != addr {
				errs <- fmt.Errorf("contact %s ended with %+v", addr, last.Out)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
