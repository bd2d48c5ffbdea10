// Package bench measures vmhost_exporter against the baselines of
// REQUIREMENTS §7 on the machine it runs on (`make bench`). It is a test
// only so it can use the private libvirtd of internal/testenv; `go test`
// skips it unless VMHOST_BENCH is set.
package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/vmhost-exporter/vmhost_exporter/collector/backup"
	"github.com/vmhost-exporter/vmhost_exporter/collector/libvirt"
	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

type row struct{ cells []string }

type report struct {
	rows   []row
	header []string
}

func (r *report) add(cells ...string) { r.rows = append(r.rows, row{cells}) }

func (r *report) markdown() string {
	var b strings.Builder
	b.WriteString("| " + strings.Join(r.header, " | ") + " |\n")
	b.WriteString("|" + strings.Repeat("---|", len(r.header)) + "\n")
	for _, x := range r.rows {
		b.WriteString("| " + strings.Join(x.cells, " | ") + " |\n")
	}
	return b.String()
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p)
	return s[i]
}

func ratio(base, ours time.Duration) string {
	return strconv.FormatFloat(float64(base)/float64(ours), 'f', 1, 64) + "×"
}

// waitComplete waits until every guest answers its monitor (RSS in its
// stats): freshly started TCG guests are slow to.
func waitComplete(t *testing.T, c *libvirt.Collector, names []string) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	testenv.Eventually(t, 5*time.Minute, "every guest complete", func() (bool, string) {
		mf := testenv.Gather(t, reg)
		for _, n := range names {
			if _, ok := testenv.Value(mf, "libvirt_domain_memory_stats_rss_bytes", map[string]string{"domain": n}); !ok {
				return false, n + " has no RSS yet"
			}
		}
		return true, ""
	})
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) + " ms"
}

// nodeXML writes a test-driver node with n domains in mixed states, each
// with role metadata, a disk and an interface.
func nodeXML(t *testing.T, n int) string { return nodeXMLWithPools(t, n, 0) }

// nodeXMLWithPools is nodeXML plus storage pools: the first holds the
// domains' disks (its target is their directory), each holds a volume.
func nodeXMLWithPools(t *testing.T, n, pools int) string {
	var b strings.Builder
	b.WriteString("<node>\n")
	states := []int{1, 1, 1, 1, 1, 1, 3, 5, 5, 6}
	roles := []string{"web", "app", "db", "file"}
	for i := range n {
		fmt.Fprintf(&b, `<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'><name>vm%05d</name><uuid>40000000-0000-4000-8000-%012d</uuid><memory>2097152</memory><currentMemory>1048576</currentMemory><vcpu>2</vcpu>`+
			`<metadata><vmhost:vm xmlns:vmhost='%s'><vmhost:role>%s</vmhost:role></vmhost:vm></metadata><os><type>hvm</type></os>`+
			`<devices><disk type='file' device='disk'><source file='/var/lib/libvirt/images/vm%05d.qcow2'/><target dev='vda' bus='virtio'/></disk>`+
			`<interface type='bridge'><source bridge='br0'/><target dev='vnet%d'/></interface></devices><test:runstate>%d</test:runstate></domain>`+"\n",
			i, i, libvirt.MetadataNamespace, roles[i%len(roles)], i, i, states[i%len(states)])
	}
	for i := range pools {
		target := fmt.Sprintf("/var/lib/libvirt/pool%02d", i)
		if i == 0 {
			target = "/var/lib/libvirt/images"
		}
		fmt.Fprintf(&b, `<pool type='dir'><name>pool%02d</name><uuid>50000000-0000-4000-8000-%012d</uuid><target><path>%s</path></target>`+
			`<volume type='file'><name>vol%02d.qcow2</name><capacity unit='GiB'>20</capacity><allocation unit='GiB'>5</allocation></volume></pool>`+"\n", i, i, target, i)
	}
	b.WriteString("</node>\n")
	p := filepath.Join(testenv.SharedTempDir(t), "node.xml")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// scrapeExporter times Gather plus text encoding of the libvirt collector.
func scrapeExporter(t *testing.T, c *libvirt.Collector, n int) ([]time.Duration, float64, time.Duration) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	once := func() time.Duration {
		start := time.Now()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		enc := expfmt.NewEncoder(io.Discard, expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, mf := range mfs {
			if err := enc.Encode(mf); err != nil {
				t.Fatal(err)
			}
		}
		return time.Since(start)
	}
	cold := once()
	once()
	before := c.RPCCalls()
	var d []time.Duration
	for range n {
		d = append(d, once())
	}
	return d, float64(c.RPCCalls()-before) / float64(n), cold
}

// alternateScrapes takes five rounds of n scrapes with the default
// collector c and n with the serial one sc, and runs alsoEachRound (if
// any) after each, so drift of the machine costs every way alike. It
// returns both ways' durations and the default's RPCs per scrape.
func alternateScrapes(t *testing.T, c, sc *libvirt.Collector, n int, alsoEachRound func()) (ex, serial []time.Duration, rpcs float64) {
	for range 5 {
		d, r, _ := scrapeExporter(t, c, n)
		ex, rpcs = append(ex, d...), r
		d, _, _ = scrapeExporter(t, sc, n)
		serial = append(serial, d...)
		if alsoEachRound != nil {
			alsoEachRound()
		}
	}
	return ex, serial, rpcs
}

// perDomainBaseline fetches what the peer exporters fetch, the way they do:
// the domain list, then for every domain its info, state, memory stats,
// vCPUs, XML (for its devices), block and interface stats and autostart.
func perDomainBaseline(t *testing.T, socket, uri string, n int) ([]time.Duration, float64) {
	lv := golibvirt.NewWithDialer(dialers.NewLocal(dialers.WithSocket(socket), dialers.WithLocalTimeout(10*time.Second)))
	if err := lv.ConnectToURI(golibvirt.ConnectURI(uri)); err != nil {
		t.Fatal(err)
	}
	defer lv.Disconnect()
	var rpcs atomic.Int64
	scrape := func() {
		doms, _, err := lv.ConnectListAllDomains(1, 0)
		rpcs.Add(1)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range doms {
			_, _, _, _, _, _ = lv.DomainGetInfo(d)
			_, _, _ = lv.DomainGetState(d, 0)
			_, _ = lv.DomainMemoryStats(d, 13, 0)
			_, _ = lv.DomainGetVcpusFlags(d, 0)
			_, _ = lv.DomainGetXMLDesc(d, 0)
			_, _, _, _, _, _ = lv.DomainBlockStats(d, "vda")
			_, _, _, _, _, _, _, _, _ = lv.DomainInterfaceStats(d, "vnet0")
			_, _ = lv.DomainGetAutostart(d)
			rpcs.Add(8)
		}
	}
	scrape()
	before := rpcs.Load()
	var d []time.Duration
	for range n {
		start := time.Now()
		scrape()
		d = append(d, time.Since(start))
	}
	return d, float64(rpcs.Load()-before) / float64(n)
}

// floorRPC is one ConnectGetAllDomainStats on an open connection.
func floorRPC(t *testing.T, socket, uri string, n int) []time.Duration {
	lv := golibvirt.NewWithDialer(dialers.NewLocal(dialers.WithSocket(socket), dialers.WithLocalTimeout(10*time.Second)))
	if err := lv.ConnectToURI(golibvirt.ConnectURI(uri)); err != nil {
		t.Fatal(err)
	}
	defer lv.Disconnect()
	var d []time.Duration
	for range n {
		start := time.Now()
		if _, err := lv.ConnectGetAllDomainStats(nil, 63, uint32(golibvirt.ConnectGetAllDomainsStatsNowait)); err != nil {
			t.Fatal(err)
		}
		d = append(d, time.Since(start))
	}
	return d
}

// virshFloor times `virsh domstats --raw` for all domains, process start
// and connection included.
func virshFloor(t *testing.T, uri string, n int) []time.Duration {
	var d []time.Duration
	for range n {
		start := time.Now()
		if out, err := exec.Command("virsh", "-c", uri, "domstats", "--raw").CombinedOutput(); err != nil {
			t.Fatalf("virsh domstats: %v\n%s", err, out)
		}
		d = append(d, time.Since(start))
	}
	return d
}

func peakRSS(t *testing.T, pid int) string {
	kb := testenv.ProcStatusKiB(t, pid, "VmHWM")
	return strconv.FormatFloat(float64(kb)/1024, 'f', 1, 64) + " MiB"
}

// binaryRSS runs the real exporter with args, scrapes it n times over HTTP
// (after waitFor, when set, shows in /metrics) and returns its peak RSS.
func binaryRSS(t *testing.T, n int, waitFor string, args ...string) string {
	e := testenv.StartExporter(t, args...)
	deadline := time.Now().Add(10 * time.Minute)
	for waitFor != "" {
		body, _ := testenv.Scrape(t, e.URL+"/metrics")[waitFor]
		if body != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", waitFor)
		}
		time.Sleep(time.Second)
	}
	for range n {
		testenv.Scrape(t, e.URL+"/metrics")
	}
	return peakRSS(t, e.Cmd.Process.Pid)
}

func machine(t *testing.T) string {
	var model string
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := testenv.ReadMeminfo(t, "MemTotal") / (1 << 30)
	kernel, _ := exec.Command("uname", "-r").Output()
	lv, _ := exec.Command("libvirtd", "--version").Output()
	du, _ := exec.Command("du", "--version").Output()
	return fmt.Sprintf("%d CPUs (%s), %.0f GiB memory, Linux %s, %s, %s, %s",
		runtime.NumCPU(), model, mem, strings.TrimSpace(string(kernel)), runtime.Version(),
		strings.TrimSpace(string(lv)), strings.SplitN(string(du), "\n", 2)[0])
}

func TestBenchmarkReport(t *testing.T) {
	if os.Getenv("VMHOST_BENCH") == "" {
		t.Skip("run by make bench (VMHOST_BENCH=1)")
	}
	lib := &report{header: []string{"scenario", "vmhost_exporter p50 / p95", "RPCs per scrape", "one serial bulk call (--libvirt.stats-batches=1) p50", "per-domain baseline (a) p50 / p95", "baseline RPCs", "speed-up vs (a)", "floor: 1 bulk RPC p50", "floor: virsh domstats --raw p50", "cold first scrape", "exporter peak RSS"}}
	// Storage pools (issue 28) cost a listing and a call per pool, none
	// per domain: the scenario with 10 pools shows it against the same
	// baseline.
	for _, sc := range []struct{ n, pools int }{{1000, 0}, {1000, 10}, {5000, 0}} {
		n := sc.n
		name, label := fmt.Sprintf("libvirt-%d", n), fmt.Sprintf("%d test-driver domains", n)
		if sc.pools > 0 {
			name += fmt.Sprintf("-%d-pools", sc.pools)
			label += fmt.Sprintf(" and %d storage pools", sc.pools)
		}
		t.Run(name, func(t *testing.T) {
			l := testenv.StartLibvirtd(t)
			node := nodeXMLWithPools(t, n, sc.pools)
			uri := testenv.TestURI(node)
			c := libvirt.New(libvirt.Config{Socket: l.SockRO, URI: uri, Timeout: 60 * time.Second}, quiet())
			defer c.Close()
			_, _, cold := scrapeExporter(t, c, 1)
			sc := libvirt.New(libvirt.Config{Socket: l.SockRO, URI: uri, Timeout: 60 * time.Second, StatsBatches: 1}, quiet())
			defer sc.Close()
			ex, serial, rpcs := alternateScrapes(t, c, sc, 4, nil)
			baseN := 10
			if n > 1000 {
				baseN = 5
			}
			base, baseRPCs := perDomainBaseline(t, l.SockRO, uri, baseN)
			floor := floorRPC(t, l.SockRO, uri, 10)
			virsh := virshFloor(t, "test+unix://"+node+"?socket="+l.SockRO, 5)
			rss := binaryRSS(t, 20, "", "--libvirt.socket="+l.SockRO, "--libvirt.uri="+uri, "--libvirt.timeout=60s")
			lib.add(label, ms(percentile(ex, .5))+" / "+ms(percentile(ex, .95)),
				strconv.FormatFloat(rpcs, 'f', 1, 64), ms(percentile(serial, .5)), ms(percentile(base, .5))+" / "+ms(percentile(base, .95)),
				strconv.FormatFloat(baseRPCs, 'f', 0, 64), ratio(percentile(base, .5), percentile(ex, .5)),
				ms(percentile(floor, .5)), ms(percentile(virsh, .5)), ms(cold), rss)
		})
	}

	qemu := &report{header: []string{"scenario", "parallel lists (default) p50 / p95", "RPCs per scrape", "one serial bulk call p50 / p95", "speed-up vs serial", "per-domain baseline (a) p50 / p95", "speed-up vs (a)", "floor: virsh domstats --raw p50", "exporter peak RSS"}}
	for _, n := range []int{8, 16} {
		t.Run(fmt.Sprintf("qemu-%d", n), func(t *testing.T) {
			l := testenv.StartLibvirtd(t)
			names := l.StartGuests(t, fmt.Sprintf("vmhbench-%d-", os.Getpid()), n)
			c := libvirt.New(libvirt.Config{Socket: l.SockRO, URI: "qemu:///system", Timeout: 30 * time.Second}, quiet())
			defer c.Close()
			sc := libvirt.New(libvirt.Config{Socket: l.SockRO, URI: "qemu:///system", Timeout: 30 * time.Second, StatsBatches: 1}, quiet())
			defer sc.Close()
			waitComplete(t, c, names)
			// The baseline takes its turn too, so a guest's busy phase
			// costs each way alike.
			var base []time.Duration
			ex, serial, rpcs := alternateScrapes(t, c, sc, 10, func() {
				d, _ := perDomainBaseline(t, l.SockRO, "qemu:///system", 10)
				base = append(base, d...)
			})
			virsh := virshFloor(t, "qemu+unix:///system?socket="+l.SockRO, 5)
			rss := binaryRSS(t, 20, "", "--libvirt.socket="+l.SockRO, "--libvirt.uri=qemu:///system")
			qemu.add(fmt.Sprintf("%d QEMU/TCG guests", n), ms(percentile(ex, .5))+" / "+ms(percentile(ex, .95)),
				strconv.FormatFloat(rpcs, 'f', 1, 64), ms(percentile(serial, .5))+" / "+ms(percentile(serial, .95)),
				ratio(percentile(serial, .5), percentile(ex, .5)),
				ms(percentile(base, .5))+" / "+ms(percentile(base, .95)), ratio(percentile(base, .5), percentile(ex, .5)),
				ms(percentile(virsh, .5)), rss)
		})
	}
	t.Run("qemu-16-one-frozen", func(t *testing.T) {
		l := testenv.StartLibvirtd(t)
		names := l.StartGuests(t, fmt.Sprintf("vmhbench-%d-", os.Getpid()), 16)
		const timeout = 5 * time.Second
		c := libvirt.New(libvirt.Config{Socket: l.SockRO, URI: "qemu:///system", Timeout: timeout}, quiet())
		defer c.Close()
		waitComplete(t, c, names)
		healthy, _, _ := scrapeExporter(t, c, 20)
		pid := l.GuestPID(t, names[7])
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = syscall.Kill(pid, syscall.SIGCONT) }()
		reg := prometheus.NewRegistry()
		reg.MustRegister(c)
		start := time.Now()
		first := testenv.Gather(t, reg)
		firstTook := time.Since(start)
		complete := 0
		for _, n := range names {
			if _, ok := testenv.Value(first, "libvirt_domain_memory_stats_rss_bytes", map[string]string{"domain": n}); ok {
				complete++
			}
		}
		frozenOK, _ := testenv.Value(first, "libvirt_domain_scrape_success", map[string]string{"domain": names[7]})
		after, _, _ := scrapeExporter(t, c, 20)
		qemu.add(fmt.Sprintf("16 QEMU/TCG guests, one frozen (SIGSTOP), --libvirt.timeout=%s", timeout),
			fmt.Sprintf("first scrape after the freeze: %s (%d of 15 healthy guests complete, frozen guest scrape_success %v); later scrapes %s / %s", ms(firstTook), complete, frozenOK, ms(percentile(after, .5)), ms(percentile(after, .95))),
			"", "", "", "before the freeze: "+ms(percentile(healthy, .5))+" / "+ms(percentile(healthy, .95)), "", "", "")
	})

	soak := &report{header: []string{"scenario", "scrapes", "p50", "p99", "p99 / p50", "max", "scrapes over 2× p50", "RPCs per scrape, background re-reads included", "floor at the same pace: 1 bulk RPC p50 / p99 (p99 / p50)"}}
	t.Run("libvirt-1000-long", func(t *testing.T) { benchLongRun(t, soak) })

	bk := &report{header: []string{"tree", "vmhost_exporter scan p50", "du -s p50", "du -s --apparent-size p50", "scan / du -s", "scrape p50 / p95 during a scan", "exporter peak RSS (with 1,000 domains)"}}
	for _, tc := range []struct {
		name   string
		linked bool
		label  string
	}{
		{"backup-1M", true, "%d files in 10 dated sets (hard links between sets, sparse images)"},
		{"backup-1M-unique", false, "%d unique files in 10 dated sets (no hard links, sparse images)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, files := backupTree(t, 10, 100_000, tc.linked)
			benchBackupScan(t, bk, base, fmt.Sprintf(tc.label, files))
		})
	}

	fleet := &report{header: []string{"fleet sizing (docs/fleet.md)", "measured"}}
	t.Run("fleet-series", func(t *testing.T) { benchSeries(t, fleet) })
	t.Run("fleet-7d-rules", func(t *testing.T) { benchSevenDayRules(t, fleet, 20, 50, true) })
	t.Run("fleet-7d-rules-50000", func(t *testing.T) { benchSevenDayRules(t, fleet, 1000, 50, false) })
	t.Run("fleet-7d-vmalert", func(t *testing.T) { benchSevenDayRulesVMAlert(t, fleet, 20, 50) })
	t.Run("fleet-7d-vmalert-50000", func(t *testing.T) { benchSevenDayRulesVMAlert(t, fleet, 1000, 50) })

	var out bytes.Buffer
	fmt.Fprintf(&out, "Machine: %s\n\n### libvirt scrape, test driver\n\n%s\n### libvirt scrape, real QEMU guests\n\n%s\n### libvirt scrape over a long run\n\n%s\n### backup scan\n\n%s\n### fleet sizing\n\n%s",
		machine(t), lib.markdown(), qemu.markdown(), soak.markdown(), bk.markdown(), fleet.markdown())
	fmt.Println(out.String())
	if path := os.Getenv("VMHOST_BENCH_RECORD"); path != "" {
		if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// benchBackupScan measures one background scan of a dated_dir job on base
// against du -s and du -s --apparent-size, scrapes during a scan, and the
// peak RSS of the exporter with the job and 1,000 test-driver domains.
func benchBackupScan(t *testing.T, bk *report, base, label string) {
	job := backupJob(t, base)
	// Warm the dentry cache once, then alternate the tools.
	_ = exec.Command("du", "-s", base).Run()
	var scan, du, duA []time.Duration
	c := backup.New(&backup.Config{Jobs: []backup.Job{job}}, backup.Options{}, quiet())
	for range 3 {
		start := time.Now()
		c.ScanOnce(context.Background())
		scan = append(scan, time.Since(start))
		start = time.Now()
		if err := exec.Command("du", "-s", base).Run(); err != nil {
			t.Fatal(err)
		}
		du = append(du, time.Since(start))
		start = time.Now()
		if err := exec.Command("du", "-s", "--apparent-size", base).Run(); err != nil {
			t.Fatal(err)
		}
		duA = append(duA, time.Since(start))
	}
	// Scrapes while a scan runs.
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	done := make(chan struct{})
	go func() { c.ScanOnce(context.Background()); close(done) }()
	var during []time.Duration
loop:
	for {
		select {
		case <-done:
			break loop
		default:
		}
		start := time.Now()
		if _, err := reg.Gather(); err != nil {
			t.Fatal(err)
		}
		during = append(during, time.Since(start))
		time.Sleep(10 * time.Millisecond)
	}
	// RSS of the whole exporter: host metrics, 1,000 test-driver
	// domains and this backup job.
	l := testenv.StartLibvirtd(t)
	node := nodeXML(t, 1000)
	cfg := filepath.Join(testenv.SharedTempDir(t), "backup.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("jobs:\n  - name: kvm-host\n    type: dated_dir\n    path: %s\n    max_age: 8d\n", base)), 0o644); err != nil {
		t.Fatal(err)
	}
	rss := binaryRSS(t, 20, "vmhost_backup_total_files", "--libvirt.socket="+l.SockRO, "--libvirt.uri="+testenv.TestURI(node), "--backup.config-file="+cfg)
	bk.add(label,
		ms(percentile(scan, .5)), ms(percentile(du, .5)), ms(percentile(duA, .5)),
		strconv.FormatFloat(float64(percentile(scan, .5))/float64(percentile(du, .5)), 'f', 2, 64),
		ms(percentile(during, .5))+" / "+ms(percentile(during, .95)), rss)
}

func backupJob(t *testing.T, base string) backup.Job {
	cfg := filepath.Join(t.TempDir(), "backup.yml")
	if err := os.WriteFile(cfg, []byte("jobs:\n  - name: kvm-host\n    type: dated_dir\n    path: "+base+"\n    max_age: 8d\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := backup.LoadConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c.Jobs[0]
}

// backupTree builds sets sets of perSet files. Linked, the way rsync
// --link-dest does: each set links the previous set's unchanged files
// (95 %) and has 5 % new ones; otherwise every file is a file of its own
// (plain rsync or cp into each set). Every set also has two sparse 1 GiB
// images.
func backupTree(t *testing.T, sets, perSet int, linked bool) (string, int) {
	base := filepath.Join(testenv.SharedTempDir(t), "kvm")
	const perDir = 1000
	total := 0
	var prev string
	for s := range sets {
		set := filepath.Join(base, fmt.Sprintf("2025-05-%02d", s+1))
		for d := 0; d < perSet/perDir; d++ {
			if err := os.MkdirAll(filepath.Join(set, "files", strconv.Itoa(d)), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for i := range perSet {
			rel := filepath.Join("files", strconv.Itoa(i/perDir), strconv.Itoa(i))
			dst := filepath.Join(set, rel)
			if linked && prev != "" && i%20 != s%20 {
				if err := os.Link(filepath.Join(prev, rel), dst); err != nil {
					t.Fatal(err)
				}
			} else {
				var content []byte
				if i%10 == 0 {
					content = []byte("0123456789abcdef")
				}
				if err := os.WriteFile(dst, content, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			total++
		}
		if err := os.MkdirAll(filepath.Join(set, "images"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, img := range []string{"a.img", "b.img"} {
			f, err := os.Create(filepath.Join(set, "images", img))
			if err != nil {
				t.Fatal(err)
			}
			_ = f.Truncate(1 << 30)
			_, _ = f.WriteAt(bytes.Repeat([]byte{1}, 1<<20), 1<<29)
			f.Close()
			total++
		}
		if err := os.WriteFile(filepath.Join(set, "backup.log"), []byte("2025-05-01 02:00:00 - [5/5] バックアップ完了しました\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		total++
		prev = set
	}
	return base, total
}

// times is a / b to two places.
func times(a, b time.Duration) string {
	return strconv.FormatFloat(float64(a)/float64(b), 'f', 2, 64) + "×"
}
