package bench

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/vmhost-exporter/vmhost_exporter/collector/libvirt"
	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// benchLongRun scrapes 1,000 test-driver domains for 20 minutes (or
// VMHOST_BENCH_LONG), crossing several periods of the background
// re-validation, a scrape every 2 s. Half way between two scrapes the bare
// bulk RPC is timed on a connection of its own: the machine's and
// libvirtd's own jitter at the same pace, to read the exporter's p99
// against.
//
// Minutes alternate between two states of the machine. In even minutes
// the CPUs idle between scrapes, as they do on a quiet host. In odd
// minutes one busy loop per CPU at SCHED_IDLE keeps them from halting:
// it yields to any other task at once, so it takes nothing from libvirtd
// or the exporter, but the CPUs never sleep. On a virtual machine (this
// bench's is Firecracker, no cpuidle driver) a halted vCPU waits for the
// host to run it again when a wake-up crosses to it; the bare RPC, run
// back to back against at a 1 s pace, spread 1.9× against 3.3× (p99/p50)
// in a probe, and the exporter's scrape 1.5× against 2.9×. The two rows
// show the exporter's own tail apart from the machine's wake-ups, each
// over the same 20 minutes and refresh periods.
func benchLongRun(t *testing.T, soak *report) {
	runFor := 20 * time.Minute
	if v := os.Getenv("VMHOST_BENCH_LONG"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		runFor = d
	}
	const refresh, every = 3 * time.Minute, 2 * time.Second
	l := testenv.StartLibvirtd(t)
	uri := testenv.TestURI(nodeXML(t, 1000))
	c := libvirt.New(libvirt.Config{Socket: l.SockRO, URI: uri, Timeout: 10 * time.Second, MetadataRefresh: refresh}, quiet())
	defer c.Close()
	lv := golibvirt.NewWithDialer(dialers.NewLocal(dialers.WithSocket(l.SockRO), dialers.WithLocalTimeout(10*time.Second)))
	if err := lv.ConnectToURI(golibvirt.ConnectURI(uri)); err != nil {
		t.Fatal(err)
	}
	defer lv.Disconnect()
	_, _, _ = scrapeExporter(t, c, 1) // cold scrape and warm-up
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	busy := startIdleBusyLoops(t)

	type state struct {
		scrapes, floor []time.Duration
		rpcs           uint64
	}
	var idle, awake state
	begin := time.Now()
	for time.Since(begin) < runFor {
		now := &idle
		if int(time.Since(begin)/time.Minute)%2 == 1 {
			now = &awake
		}
		busy.run(now == &awake)
		next := time.Now().Add(every)
		rpcsBefore := c.RPCCalls()
		start := time.Now()
		testenv.Gather(t, reg)
		now.scrapes = append(now.scrapes, time.Since(start))
		time.Sleep(time.Until(start.Add(every / 2)))
		start = time.Now()
		if _, err := lv.ConnectGetAllDomainStats(nil, 63, uint32(golibvirt.ConnectGetAllDomainsStatsNowait)); err != nil {
			t.Fatal(err)
		}
		now.floor = append(now.floor, time.Since(start))
		time.Sleep(time.Until(next))
		// Background re-reads between the scrapes count to the scrape
		// before them.
		now.rpcs += c.RPCCalls() - rpcsBefore
	}
	busy.run(false)

	for _, s := range []struct {
		label string
		*state
	}{
		{"CPUs idle between scrapes (even minutes)", &idle},
		{fmt.Sprintf("CPUs kept from halting by %d SCHED_IDLE busy loops (odd minutes)", len(busy.procs)), &awake},
	} {
		if len(s.scrapes) == 0 {
			continue
		}
		p50, p99 := percentile(s.scrapes, .5), percentile(s.scrapes, .99)
		slow := 0
		for _, x := range s.scrapes {
			if x > 2*p50 {
				slow++
			}
		}
		f50, f99 := percentile(s.floor, .5), percentile(s.floor, .99)
		soak.add(fmt.Sprintf("1000 test-driver domains for %s, a scrape every %s, --libvirt.metadata-refresh-interval=%s: %s", runFor, every, refresh, s.label),
			strconv.Itoa(len(s.scrapes)), ms(p50), ms(p99), times(p99, p50), ms(slices.Max(s.scrapes)), strconv.Itoa(slow),
			strconv.FormatFloat(float64(s.rpcs)/float64(len(s.scrapes)), 'f', 1, 64),
			ms(f50)+" / "+ms(f99)+" ("+times(f99, f50)+")")
	}
}

// idleBusyLoops are shell loops, one per CPU, at SCHED_IDLE: the
// scheduler runs them only when nothing else wants the CPU.
type idleBusyLoops struct {
	procs   []*testenv.Process
	running bool
}

// startIdleBusyLoops starts the loops stopped (SIGSTOP). They end with the
// test, or with the test binary (parent-death signal, which SIGKILL
// delivers to a stopped process too).
func startIdleBusyLoops(t *testing.T) *idleBusyLoops {
	b := &idleBusyLoops{running: true}
	for range runtime.NumCPU() {
		p := testenv.Start(t, "sh", "-c", "while :; do :; done")
		// Runs before StartCommand's clean-up (LIFO), whose SIGINT a
		// stopped shell would not see.
		t.Cleanup(func() { _ = p.Cmd.Process.Signal(syscall.SIGCONT) })
		attr := &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE}
		if err := unix.SchedSetAttr(p.Cmd.Process.Pid, attr, 0); err != nil {
			t.Fatalf("setting SCHED_IDLE on a busy loop: %v", err)
		}
		b.procs = append(b.procs, p)
	}
	b.run(false)
	return b
}

// run lets the loops spin (true) or stops them (false).
func (b *idleBusyLoops) run(on bool) {
	if on == b.running {
		return
	}
	sig := syscall.SIGSTOP
	if on {
		sig = syscall.SIGCONT
	}
	for _, p := range b.procs {
		_ = p.Cmd.Process.Signal(sig)
	}
	b.running = on
}
