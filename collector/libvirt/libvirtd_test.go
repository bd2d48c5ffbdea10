package libvirt

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func nodeXML(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("testdata/node.xml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newRegistry(t *testing.T, c *Collector) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return reg
}

func gather(t *testing.T, reg prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	return testenv.Gather(t, reg)
}

func mustValue(t *testing.T, mf map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	v, ok := testenv.Value(mf, name, labels)
	if !ok {
		t.Fatalf("%s%v missing", name, labels)
	}
	return v
}

// TestTestDriverDomains checks exact values for one domain in each state,
// with role metadata and snapshots, against the fixture testdata/node.xml.
func TestTestDriverDomains(t *testing.T) {
	l := testenv.StartLibvirtd(t)
	c := New(Config{Socket: l.SockRO, URI: testenv.TestURI(nodeXML(t)), Timeout: 5 * time.Second}, testLogger())
	reg := newRegistry(t, c)

	expected, err := os.Open("testdata/testdriver.prom")
	if err != nil {
		t.Fatal(err)
	}
	defer expected.Close()
	if err := testutil.GatherAndCompare(reg, expected,
		"libvirt_up", "libvirt_domains", "libvirt_domain_info", "libvirt_domain_info_state", "libvirt_domain_info_state_reason",
		"libvirt_domain_info_virtual_cpus", "libvirt_domain_info_maximum_memory_bytes",
		"libvirt_domain_info_memory_usage_bytes", "libvirt_domain_info_cpu_time_seconds_total",
		"libvirt_domain_autostart", "libvirt_domain_snapshots",
		"libvirt_domain_snapshot_oldest_timestamp_seconds", "libvirt_domain_snapshot_newest_timestamp_seconds",
		"libvirt_domain_scrape_success", "libvirt_scrape_part_success",
		"libvirt_storage_pool_state", "libvirt_storage_pool_capacity_bytes", "libvirt_storage_pool_allocation_bytes",
		"libvirt_storage_pool_available_bytes", "libvirt_storage_pool_timed_out", "libvirt_storage_pool_domain_disk_capacity_bytes",
	); err != nil {
		t.Error(err)
	}

	// A warm scrape is served from the caches: one stats call for the
	// inactive domains and one for the active ones, two domain listings
	// (autostart, snapshots) and one snapshot listing per domain with
	// snapshots (web1, app1), and no XML fetches: 6 RPCs (5 before guests
	// were asked in parallel). Asked in lists instead, the four active
	// domains (web1, db1, file1, pm1) take an ID listing and four lists of
	// one: 10. The test driver answers in microseconds a domain, so on a
	// quiet machine the collector soon asks in one call; but that choice
	// reads answer times, and a CI machine busy with other test packages
	// stretches them past the threshold scrape after scrape (a CI run saw
	// 10 RPCs in five warm scrapes out of five). Until that run this test
	// wanted 6 within five scrapes; now each warm scrape must make exactly
	// the RPCs of the way the collector chose for it, and one scrape with
	// the choice forced to one call exactly 6. TestListsOrOneCallVotes
	// covers the choice itself. Since issue 28 the fixture has a storage
	// pool: every scrape adds the pool listing and the pool's info (its XML
	// is cached), 8 and 12.
	const poolRPCs = 2
	gather(t, reg)
	for i := range 5 {
		lists := c.listsPay()
		want := uint64(6 + poolRPCs)
		if lists {
			want = 10 + poolRPCs
		}
		before := c.RPCCalls()
		gather(t, reg)
		if got := c.RPCCalls() - before; got != want {
			t.Errorf("warm scrape %d (lists: %v): %d RPCs, want %d", i+1, lists, got, want)
		}
	}
	c.cacheMu.Lock()
	c.testOneCall = true
	c.cacheMu.Unlock()
	before := c.RPCCalls()
	gather(t, reg)
	if got := c.RPCCalls() - before; got != 6+poolRPCs {
		t.Errorf("warm scrape in one call: %d RPCs, want %d", got, 6+poolRPCs)
	}
}

func TestQEMUDomains(t *testing.T) {
	l := testenv.StartLibvirtd(t)
	prefix := fmt.Sprintf("vmhtest-%d-", os.Getpid())
	vmA, vmB, vmC := prefix+"a", prefix+"b", prefix+"c"
	l.DefineQEMU(t, vmA, "app")
	l.DefineQEMU(t, vmB, "db")
	l.DefineQEMU(t, vmC, "web") // defined, never started, autostart on
	l.MustVirsh("qemu:///system", "start", vmA)
	l.MustVirsh("qemu:///system", "start", vmB)
	l.MustVirsh("qemu:///system", "autostart", vmC)
	// A directory storage pool, and a guest whose 256 MiB of data in it
	// a backup copies (issue 28: the peer's series on real guests).
	pool, poolDir := prefix+"pool", filepath.Join(l.Dir, "pool")
	definePool(t, l, pool, poolDir)
	vmD, diskD, sizeD := prefix+"d", filepath.Join(poolDir, prefix+"d.img"), 256<<20
	l.DefineQEMUWithDisk(t, vmD, "file", diskD)
	fillDisk(t, diskD, sizeD)
	l.MustVirsh("qemu:///system", "pool-refresh", pool)
	l.MustVirsh("qemu:///system", "start", vmD)

	c := New(Config{Socket: l.SockRO, URI: "qemu:///system", Timeout: 5 * time.Second}, testLogger())
	reg := newRegistry(t, c)

	// Wait for the state every assertion below needs: both guests report
	// CPU time, vCPU time and a balloon (they burn CPU in the firmware), and
	// every domain's XML has been read (roles known). A freshly started
	// TCG guest's first stats call can take longer than the timeout, so
	// no single scrape is trusted.
	var mf map[string]*dto.MetricFamily
	ready := func() (bool, string) {
		mf = gather(t, reg)
		var missing []string
		for _, vm := range []struct{ name, role string }{{vmA, "app"}, {vmB, "db"}, {vmC, "web"}} {
			if _, ok := testenv.Value(mf, "libvirt_domain_info", map[string]string{"domain": vm.name, "role": vm.role}); !ok {
				missing = append(missing, vm.name+" role "+vm.role)
			}
		}
		for _, vm := range []string{vmA, vmB, vmD} {
			d := map[string]string{"domain": vm}
			for _, name := range []string{"libvirt_domain_info_cpu_time_seconds_total", "libvirt_domain_vcpu_time_seconds_total", "libvirt_domain_memory_stats_rss_bytes"} {
				if v, _ := testenv.Value(mf, name, d); v <= 0 {
					missing = append(missing, fmt.Sprintf("%s %s > 0", vm, name))
				}
			}
			if _, ok := testenv.Value(mf, "libvirt_domain_memory_stats_actual_balloon_bytes", d); !ok {
				missing = append(missing, vm+" balloon")
			}
		}
		return len(missing) == 0, fmt.Sprintf("missing %v; part success %v", missing, partSuccess(mf))
	}
	testenv.Eventually(t, 3*time.Minute, "QEMU guests fully visible", ready)

	if v := mustValue(t, mf, "libvirt_up", nil); v != 1 {
		t.Fatalf("libvirt_up = %v", v)
	}
	for _, vm := range []struct{ name, role string }{{vmA, "app"}, {vmB, "db"}} {
		d := map[string]string{"domain": vm.name}
		if v := mustValue(t, mf, "libvirt_domain_info_state", map[string]string{"domain": vm.name, "state_desc": "the domain is running"}); v != 1 {
			t.Errorf("%s state = %v, want 1", vm.name, v)
		}
		mustValue(t, mf, "libvirt_domain_info", map[string]string{"domain": vm.name, "role": vm.role})
		if v := mustValue(t, mf, "libvirt_domain_info_cpu_time_seconds_total", d); v <= 0 {
			t.Errorf("%s cpu time = %v, want > 0", vm.name, v)
		}
		if v := mustValue(t, mf, "libvirt_domain_info_virtual_cpus", d); v != 1 {
			t.Errorf("%s vcpus = %v, want 1", vm.name, v)
		}
		if v := mustValue(t, mf, "libvirt_domain_info_maximum_memory_bytes", d); v != 64<<20 {
			t.Errorf("%s max memory = %v, want 64 MiB", vm.name, v)
		}
		if v := mustValue(t, mf, "libvirt_domain_memory_stats_actual_balloon_bytes", d); v != 64<<20 {
			t.Errorf("%s balloon = %v, want 64 MiB", vm.name, v)
		}
		if v := mustValue(t, mf, "libvirt_domain_memory_stats_rss_bytes", d); v <= 0 {
			t.Errorf("%s rss = %v, want > 0", vm.name, v)
		}
		if v := mustValue(t, mf, "libvirt_domain_vcpu_current", d); v != 1 {
			t.Errorf("%s vcpu current = %v", vm.name, v)
		}
		if v := mustValue(t, mf, "libvirt_domain_vcpu_time_seconds_total", map[string]string{"domain": vm.name, "vcpu": "0"}); v <= 0 {
			t.Errorf("%s vcpu 0 time = %v, want > 0", vm.name, v)
		}
		blk := map[string]string{"domain": vm.name, "target_device": "vda"}
		if v := mustValue(t, mf, "libvirt_domain_block_stats_capacity_bytes", blk); v != 16<<20 {
			t.Errorf("%s vda capacity = %v, want 16 MiB", vm.name, v)
		}
		mustValue(t, mf, "libvirt_domain_block_stats_read_bytes_total", blk)
		mustValue(t, mf, "libvirt_domain_block_stats_info", map[string]string{"domain": vm.name, "target_device": "vda", "source_file": filepath.Join(l.Dir, vm.name+".img")})
		if v := mustValue(t, mf, "libvirt_domain_autostart", d); v != 0 {
			t.Errorf("%s autostart = %v, want 0", vm.name, v)
		}
		if v := mustValue(t, mf, "libvirt_domain_scrape_success", d); v != 1 {
			t.Errorf("%s scrape_success = %v", vm.name, v)
		}
	}
	// No guest balloon driver runs in the firmware: guest memory figures
	// must be absent, not zero, so VM memory alerts stay silent.
	if _, ok := testenv.Value(mf, "libvirt_domain_memory_stats_usable_bytes", map[string]string{"domain": vmA}); ok {
		t.Error("usable_bytes exported for a guest without balloon statistics")
	}
	// used_percent: absent before issue 28; now NaN, the value
	// inovex/prometheus-libvirt-exporter gives such a guest ((0-0)/0),
	// so its users' panels keep the series. NaN compares false, so no
	// alert reads a number there: the point of this case stays.
	if v, ok := testenv.Value(mf, "libvirt_domain_memory_stats_used_percent", map[string]string{"domain": vmA}); !ok || !math.IsNaN(v) {
		t.Errorf("used_percent of a guest without balloon statistics = %v (present %v), want NaN", v, ok)
	}
	// ...but never invisibly: the running guest says it reports none.
	if v := mustValue(t, mf, "libvirt_domain_memory_stats_guest_reported", map[string]string{"domain": vmA}); v != 0 {
		t.Errorf("%s guest_reported = %v, want 0 (no balloon driver in the firmware)", vmA, v)
	}
	if _, ok := testenv.Value(mf, "libvirt_domain_memory_stats_guest_reported", map[string]string{"domain": vmC}); ok {
		t.Errorf("guest_reported exported for the shut-off %s", vmC)
	}

	dC := map[string]string{"domain": vmC}
	if v := mustValue(t, mf, "libvirt_domain_autostart", dC); v != 1 {
		t.Errorf("%s autostart = %v, want 1", vmC, v)
	}
	if v := mustValue(t, mf, "libvirt_domain_info_state", dC); v != 5 {
		t.Errorf("%s state = %v, want 5 (shut off)", vmC, v)
	}
	mustValue(t, mf, "libvirt_domain_info", map[string]string{"domain": vmC, "role": "web"})

	// Issue 28: every series of inovex/prometheus-libvirt-exporter its
	// users chart is there, with its labels, on the same guests.
	t.Run("peer_series", func(t *testing.T) {
		if missing := peerSeriesMissing(mf, readPeerSeries(t), vmA, pool); len(missing) > 0 {
			t.Errorf("series of inovex/prometheus-libvirt-exporter missing (name, labels), %d:\n%s", len(missing), strings.Join(missing, "\n"))
		}
		checkPeerValues(t, mf, vmA, vmC, filepath.Join(l.Dir, vmA+".img"))
	})
	t.Run("backup_job", func(t *testing.T) {
		// The same guests through a collector told not to ask for jobs
		// (--no-libvirt.job-info): while the backup runs, no job series.
		noJobs := newRegistry(t, New(Config{Socket: l.SockRO, URI: "qemu:///system", Timeout: 5 * time.Second, NoJobInfo: true}, testLogger()))
		checkBackupJob(t, l, reg, noJobs, vmD, poolDir, sizeD)
	})

	// Shut one VM off mid-test: the next scrape shows it as shut off, its
	// running-only stats are gone and the other VM is unaffected.
	l.MustVirsh("qemu:///system", "destroy", vmB)
	testenv.Eventually(t, time.Minute, vmB+" seen shut off", func() (bool, string) {
		mf = gather(t, reg)
		v, _ := testenv.Value(mf, "libvirt_domain_info_state", map[string]string{"domain": vmB})
		return v == 5, fmt.Sprintf("state %v; part success %v", v, partSuccess(mf))
	})
	if v := mustValue(t, mf, "libvirt_domain_info_state", map[string]string{"domain": vmB, "state_desc": "the domain is shut off"}); v != 5 {
		t.Errorf("%s state after destroy = %v, want 5", vmB, v)
	}
	if v := mustValue(t, mf, "libvirt_domain_info_state_reason", map[string]string{"domain": vmB}); v != 2 {
		t.Errorf("%s state reason after destroy = %v, want 2 (destroyed)", vmB, v)
	}
	if _, ok := testenv.Value(mf, "libvirt_domain_vcpu_time_seconds_total", map[string]string{"domain": vmB}); ok {
		t.Errorf("%s still has vCPU time after destroy", vmB)
	}
	if v := mustValue(t, mf, "libvirt_domain_info_state", map[string]string{"domain": vmA}); v != 1 {
		t.Errorf("%s state = %v, want 1", vmA, v)
	}
}

// partSuccess describes libvirt_scrape_part_success for failure messages.
func partSuccess(mf map[string]*dto.MetricFamily) string {
	var parts []string
	for _, m := range mf["libvirt_scrape_part_success"].GetMetric() {
		parts = append(parts, fmt.Sprintf("%s=%v", m.GetLabel()[0].GetValue(), m.GetGauge().GetValue()))
	}
	return strings.Join(parts, " ")
}

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// settle waits for goroutines of finished work to exit before counting.
func settle(t *testing.T, limit int) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= limit || time.Now().After(deadline) {
			return n
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLibvirtdFaults kills, restarts and freezes libvirtd under the
// collector: every scrape must answer within the timeout, say libvirt_up 0
// while libvirtd is gone, and recover without a new collector.
func TestLibvirtdFaults(t *testing.T) {
	l := testenv.StartLibvirtd(t)
	const timeout = 2 * time.Second
	c := New(Config{Socket: l.SockRO, URI: testenv.TestURI(nodeXML(t)), Timeout: timeout}, testLogger())
	reg := newRegistry(t, c)

	scrape := func(step string) (up float64, took time.Duration) {
		t.Helper()
		start := time.Now()
		mf := gather(t, reg)
		took = time.Since(start)
		if took > timeout+time.Second {
			t.Errorf("%s: scrape took %s, want at most the %s timeout (+1s)", step, took, timeout)
		}
		return mustValue(t, mf, "libvirt_up", nil), took
	}

	if up, _ := scrape("healthy"); up != 1 {
		t.Fatalf("healthy: libvirt_up = %v", up)
	}

	l.Kill()
	if up, _ := scrape("killed"); up != 0 {
		t.Errorf("killed: libvirt_up = %v, want 0", up)
	}
	if up, _ := scrape("still dead"); up != 0 {
		t.Errorf("still dead: libvirt_up = %v, want 0", up)
	}

	l.Start()
	if up, _ := scrape("restarted"); up != 1 {
		t.Errorf("restarted: libvirt_up = %v, want 1 without restarting the exporter", up)
	}

	l.Freeze()
	up, took := scrape("frozen")
	if up != 0 {
		t.Errorf("frozen: libvirt_up = %v, want 0", up)
	}
	if took < timeout/2 {
		t.Errorf("frozen: scrape took only %s; was libvirtd really frozen?", took)
	}
	l.Thaw()
	if up, _ := scrape("thawed"); up != 1 {
		t.Errorf("thawed: libvirt_up = %v, want 1", up)
	}
}

// TestNoLeaksOverManyScrapes: 100 scrapes, with a libvirtd restart in the
// middle, leave the goroutine and fd counts where they were.
func TestNoLeaksOverManyScrapes(t *testing.T) {
	l := testenv.StartLibvirtd(t)
	c := New(Config{Socket: l.SockRO, URI: testenv.TestURI(nodeXML(t)), Timeout: 2 * time.Second}, testLogger())
	reg := newRegistry(t, c)

	gather(t, reg) // connect, warm caches
	g0, fd0 := settle(t, 0), countFDs(t)
	for i := range 100 {
		if i == 50 {
			l.Kill()
			gather(t, reg)
			l.Start()
		}
		mf := gather(t, reg)
		if v := mustValue(t, mf, "libvirt_up", nil); v != 1 {
			t.Fatalf("scrape %d: libvirt_up = %v", i, v)
		}
	}
	g1 := settle(t, g0)
	fd1 := countFDs(t)
	if g1 > g0 {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Errorf("goroutines grew from %d to %d over 100 scrapes:\n%s", g0, g1, trimStacks(string(buf[:n])))
	}
	if fd1 > fd0 {
		t.Errorf("open fds grew from %d to %d over 100 scrapes", fd0, fd1)
	}
}

func trimStacks(s string) string {
	if len(s) > 8000 {
		return s[:8000] + "\n..."
	}
	return strings.TrimSpace(s)
}

// TestFaultsDuring500Scrapes kills, restarts, freezes and thaws libvirtd
// over and over during 500 scrapes: every scrape stays within the timeout
// and says libvirt_up 0 exactly while libvirtd is unusable, and goroutines
// and fds end where they started.
func TestFaultsDuring500Scrapes(t *testing.T) {
	l := testenv.StartLibvirtd(t)
	const timeout = time.Second
	c := New(Config{Socket: l.SockRO, URI: testenv.TestURI(nodeXML(t)), Timeout: timeout}, testLogger())
	reg := newRegistry(t, c)
	gather(t, reg)
	g0, fd0 := settle(t, 0), countFDs(t)

	down := false
	for i := range 500 {
		switch i % 50 {
		case 10:
			l.Kill()
			down = true
		case 15:
			l.Start()
			down = false
		case 30:
			l.Freeze()
			down = true
		case 32:
			l.Thaw()
			down = false
		}
		start := time.Now()
		mf := gather(t, reg)
		if took := time.Since(start); took > timeout+time.Second {
			t.Fatalf("scrape %d took %s", i, took)
		}
		up := mustValue(t, mf, "libvirt_up", nil)
		if down && up != 0 {
			t.Fatalf("scrape %d: libvirt_up = %v while libvirtd is unusable", i, up)
		}
		// The first scrape after a restart may still see the aborted
		// connection; from the second on it must have recovered. The
		// first after a thaw was allowed that too, until the connection
		// request queued while libvirtd was frozen became the one the
		// exporter waits on (issue #25): it must be up.
		if !down && i%50 != 15 && up != 1 {
			t.Fatalf("scrape %d: libvirt_up = %v with libvirtd healthy", i, up)
		}
	}
	if g1 := settle(t, g0); g1 > g0 {
		t.Errorf("goroutines grew from %d to %d", g0, g1)
	}
	if fd1 := countFDs(t); fd1 > fd0 {
		t.Errorf("open fds grew from %d to %d", fd0, fd1)
	}
}
