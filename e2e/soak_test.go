package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// TestSoak (make soak; not in CI): scrapes every second for SOAK_DURATION
// (default 1h) while libvirtd is killed, restarted, frozen and thawed in
// turn, and logs the exporter's RSS and goroutines every minute. It fails
// when either grows by more than half from the first to the last reading.
func TestSoak(t *testing.T) {
	spec := os.Getenv("SOAK_DURATION")
	if spec == "" {
		t.Skip("set SOAK_DURATION (make soak) to run the soak test")
	}
	duration, err := time.ParseDuration(spec)
	if err != nil {
		t.Fatal(err)
	}
	l := testenv.StartLibvirtd(t)
	node, _ := filepath.Abs("../collector/libvirt/testdata/node.xml")
	e := testenv.StartExporter(t, "--libvirt.socket="+l.SockRO, "--libvirt.uri="+testenv.TestURI(node), "--libvirt.timeout=2s")

	type reading struct{ rss, goroutines float64 }
	var first, last *reading
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for i := 0; time.Since(start) < duration; i++ {
		<-tick.C
		switch i % 120 {
		case 20:
			l.Kill()
		case 40:
			l.Start()
		case 60:
			l.Freeze()
		case 70:
			l.Thaw()
		}
		mf := testenv.Scrape(t, e.URL+"/metrics")
		if i%60 == 0 {
			rss, _ := testenv.Value(mf, "process_resident_memory_bytes", nil)
			g, _ := testenv.Value(mf, "go_goroutines", nil)
			r := &reading{rss, g}
			if first == nil && i >= 120 { // after the first fault cycle
				first = r
			}
			last = r
			t.Logf("%s: RSS %.1f MiB, goroutines %.0f", time.Since(start).Round(time.Second), rss/(1<<20), g)
		}
	}
	if first != nil && last != nil {
		if last.rss > first.rss*1.5 || last.goroutines > first.goroutines*1.5 {
			t.Errorf("growth: RSS %.1f -> %.1f MiB, goroutines %.0f -> %.0f", first.rss/(1<<20), last.rss/(1<<20), first.goroutines, last.goroutines)
		}
	}
}

// TestSoakFrozen (make soak; not in CI): libvirtd frozen (SIGSTOP) for
// SOAK_FROZEN_DURATION (1h in make soak), as a daemon stuck on a dead
// storage pool stays for a night, under an exporter that asks the running
// domains in one call (the test driver answers without waiting on guests,
// so the exporter chooses one call), scraped every second. Every scrape
// answers within the timeout with libvirt_up 0; the exporter's goroutines,
// fds and RSS, read every minute, end where they were after the first
// minute; once thawed, libvirtd is handed only what the first frozen
// scrape had sent and the one connection the exporter waited on, and the
// first scrape is complete. TestFrozenForLong is the same over 200
// scrapes, in CI.
func TestSoakFrozen(t *testing.T) {
	spec := os.Getenv("SOAK_FROZEN_DURATION")
	if spec == "" {
		t.Skip("set SOAK_FROZEN_DURATION (make soak) to run the frozen soak test")
	}
	duration, err := time.ParseDuration(spec)
	if err != nil {
		t.Fatal(err)
	}
	l := testenv.StartLibvirtd(t)
	node, _ := filepath.Abs("../collector/libvirt/testdata/node.xml")
	const timeout = 2 * time.Second
	e := testenv.StartExporter(t, "--libvirt.socket="+l.SockRO, "--libvirt.uri="+testenv.TestURI(node), "--libvirt.timeout="+timeout.String())
	scrape := func(what string) map[string]*dto.MetricFamily {
		t.Helper()
		start := time.Now()
		mf := testenv.Scrape(t, e.URL+"/metrics")
		if took := time.Since(start); took > timeout+time.Second {
			t.Errorf("%s: scrape took %s, want at most the %s timeout (+1s)", what, took, timeout)
		}
		return mf
	}
	value := func(mf map[string]*dto.MetricFamily, name string) float64 {
		t.Helper()
		v, ok := testenv.Value(mf, name, nil)
		if !ok {
			t.Fatalf("%s missing", name)
		}
		return v
	}

	// A warm scrape of node.xml makes 6 RPCs in one call, 10 in lists
	// (TestTestDriverDomains).
	var want []string
	calls := -1.0
	testenv.Eventually(t, 2*time.Minute, "a complete scrape in one call", func() (bool, string) {
		mf := scrape("before the freeze")
		ok, why := testenv.LibvirtComplete(mf, nil)
		want = testenv.LibvirtDomains(mf)
		now := value(mf, "libvirt_rpc_calls_total")
		made := now - calls
		calls = now
		return ok && len(want) > 0 && made == 6, fmt.Sprintf("%s; %v RPCs in the last scrape", why, made)
	})

	rpc := l.LogRPC(t)
	mark := rpc.Mark(t)
	callsAtFreeze := calls
	l.Freeze()
	type reading struct{ rss, goroutines, fds float64 }
	var first, last *reading
	var callsFirstScrape float64
	start := time.Now()
	nextReading := start
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for i := 0; time.Since(start) < duration; i++ {
		<-tick.C
		mf := scrape(fmt.Sprintf("frozen for %s", time.Since(start).Round(time.Second)))
		if up := value(mf, "libvirt_up"); up != 0 {
			t.Fatalf("frozen for %s: libvirt_up = %v, want 0", time.Since(start).Round(time.Second), up)
		}
		calls = value(mf, "libvirt_rpc_calls_total")
		if i == 0 {
			callsFirstScrape = calls
		}
		if time.Now().After(nextReading) {
			// Every minute; the first minute's scrapes settle the runtime.
			r := &reading{value(mf, "process_resident_memory_bytes"), value(mf, "go_goroutines"), value(mf, "process_open_fds")}
			if first == nil && nextReading.After(start) {
				first = r
			}
			nextReading = nextReading.Add(time.Minute)
			last = r
			t.Logf("frozen for %s: RSS %.1f MiB, goroutines %.0f, fds %.0f", time.Since(start).Round(time.Second), r.rss/(1<<20), r.goroutines, r.fds)
		}
	}
	if first != nil {
		if last.goroutines > first.goroutines+5 || last.fds > first.fds+2 || last.rss > first.rss+8<<20 {
			t.Errorf("growth while frozen: goroutines %.0f -> %.0f, fds %.0f -> %.0f, RSS %.1f -> %.1f MiB",
				first.goroutines, last.goroutines, first.fds, last.fds, first.rss/(1<<20), last.rss/(1<<20))
		}
	}

	callsAtThaw := calls
	l.Thaw()
	if ok, why := testenv.LibvirtComplete(scrape("first after the thaw"), want); !ok {
		t.Errorf("first scrape after the thaw is not complete: %s", why)
	}
	testenv.Eventually(t, 10*time.Second, "libvirtd has one client", func() (bool, string) {
		n := l.Clients(t)
		return n == 1, fmt.Sprintf("%d clients", n)
	})
	mf := scrape("after the thaw")
	if ok, why := testenv.LibvirtComplete(mf, want); !ok {
		t.Errorf("second scrape after the thaw is not complete: %s", why)
	}
	const handshake = 4 // go-libvirt's ConnectToURI: auth list, open, and slack
	got := rpc.Since(t, mark)
	stale := got.Total() - int(value(mf, "libvirt_rpc_calls_total")-callsAtThaw)
	allowed := int(callsFirstScrape-callsAtFreeze) + handshake
	t.Logf("libvirtd since the freeze: %s; stale: %d (allowed %d)", got, stale, allowed)
	if got.Clients > 1 {
		t.Errorf("libvirtd accepted %d connections from the frozen period and after, want at most 1", got.Clients)
	}
	if stale > allowed {
		t.Errorf("libvirtd read %d stale calls after the thaw, want at most %d", stale, allowed)
	}
}
