package libvirt

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// exposition renders a registry's libvirt_domain_* and libvirt_domains
// series as text, one series a line, sorted; valueless keeps names and
// labels only (for guests whose counters move between two scrapes).
func exposition(t *testing.T, reg prometheus.Gatherer, valueless bool) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "libvirt_domain") {
			if err := enc.Encode(mf); err != nil {
				t.Fatal(err)
			}
		}
	}
	var lines []string
	for _, l := range strings.Split(buf.String(), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if valueless {
			l = l[:strings.LastIndexByte(l, ' ')]
		}
		lines = append(lines, l)
	}
	slices.Sort(lines)
	return lines
}

func diffLines(a, b []string) string {
	var out []string
	for _, l := range a {
		if !slices.Contains(b, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range b {
		if !slices.Contains(a, l) {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// TestBatchesMatchBulkCall: the test-driver domains in every state give
// the same series and values whether asked in one serial bulk call or in
// parallel lists.
func TestBatchesMatchBulkCall(t *testing.T) {
	l := testenv.StartLibvirtd(t)
	uri := testenv.TestURI(nodeXML(t))
	serial := newRegistry(t, New(Config{Socket: l.SockRO, URI: uri, Timeout: 5 * time.Second, StatsBatches: 1}, testLogger()))
	for _, batches := range []int{2, 4, 16} {
		parallel := newRegistry(t, New(Config{Socket: l.SockRO, URI: uri, Timeout: 5 * time.Second, StatsBatches: batches}, testLogger()))
		want, got := exposition(t, serial, false), exposition(t, parallel, false)
		if len(want) < 50 {
			t.Fatalf("the serial bulk call gave only %d series:\n%s", len(want), strings.Join(want, "\n"))
		}
		if d := diffLines(want, got); d != "" {
			t.Errorf("%d lists: series differ from the serial bulk call's:\n%s", batches, d)
		}
	}
}

// incomplete reports which guests lack what a guest answering its monitor
// has: RSS, block counters and scrape_success 1.
func incomplete(t *testing.T, reg prometheus.Gatherer, names []string) []string {
	t.Helper()
	mf := gather(t, reg)
	var missing []string
	for _, n := range names {
		d := map[string]string{"domain": n}
		if _, ok := testenv.Value(mf, "libvirt_domain_memory_stats_rss_bytes", d); !ok {
			missing = append(missing, n+" rss")
		}
		if _, ok := testenv.Value(mf, "libvirt_domain_block_stats_read_requests_total", map[string]string{"domain": n, "target_device": "vda"}); !ok {
			missing = append(missing, n+" block")
		}
		if v, _ := testenv.Value(mf, "libvirt_domain_scrape_success", d); v != 1 {
			missing = append(missing, n+" scrape_success")
		}
	}
	return missing
}

// TestHungGuestCostsOnlyItself runs real guests, asked in parallel lists,
// and freezes one guest's QEMU (SIGSTOP): the first scrape after the freeze
// already has every healthy guest complete, keeps the frozen guest's state
// and says scrape_success 0 for it only, within the timeout; so do the
// following scrapes; after a thaw the guest is whole again. Beforehand the
// parallel lists and the serial bulk call give the same series.
func TestHungGuestCostsOnlyItself(t *testing.T) {
	l := testenv.StartLibvirtd(t)
	names := l.StartGuests(t, fmt.Sprintf("vmhhung-%d-", os.Getpid()), 6)
	l.DefineQEMU(t, names[0]+"-off", "db") // an inactive domain too

	const timeout = 4 * time.Second
	parallel := New(Config{Socket: l.SockRO, URI: "qemu:///system", Timeout: timeout, StatsBatches: 3}, testLogger())
	preg := newRegistry(t, parallel)
	sreg := newRegistry(t, New(Config{Socket: l.SockRO, URI: "qemu:///system", Timeout: timeout, StatsBatches: 1}, testLogger()))
	// The same with one call for all running guests, the way a driver
	// that answers fast is asked (guestWaitThreshold).
	oneCall := New(Config{Socket: l.SockRO, URI: "qemu:///system", Timeout: timeout, StatsBatches: 3}, testLogger())
	oneCall.testOneCall = true
	oreg := newRegistry(t, oneCall)
	testenv.Eventually(t, 3*time.Minute, "every guest complete", func() (bool, string) {
		m := append(incomplete(t, preg, names), incomplete(t, sreg, names)...)
		m = append(m, incomplete(t, oreg, names)...)
		return len(m) == 0, fmt.Sprint(m)
	})
	if d := diffLines(exposition(t, sreg, true), exposition(t, preg, true)); d != "" {
		t.Errorf("parallel lists give other series than the serial bulk call:\n%s", d)
	}

	// Real guests make libvirt wait on their monitors: lists pay.
	if !parallel.listsPay() {
		t.Errorf("QEMU guests are asked in one call: their stats took %s beyond a call that waits on no guest, for %d records", parallel.runningCost, parallel.runningRecs)
	}

	frozen := names[2] // in the middle of its list
	pid := l.GuestPID(t, frozen)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	thawed := false
	thaw := func() {
		if !thawed {
			_ = syscall.Kill(pid, syscall.SIGCONT)
			thawed = true
		}
	}
	defer thaw()

	healthy := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == frozen })
	for _, step := range []string{"first scrape after the freeze", "second scrape", "third scrape", "one call: first scrape after the freeze", "one call: second scrape"} {
		reg := preg
		if strings.HasPrefix(step, "one call") {
			reg = oreg
		}
		start := time.Now()
		mf := gather(t, reg)
		if took := time.Since(start); took > timeout {
			t.Errorf("%s took %s, over the %s timeout", step, took, timeout)
		}
		if v := mustValue(t, mf, "libvirt_up", nil); v != 1 {
			t.Fatalf("%s: libvirt_up = %v, want 1: one hung guest must not fail the scrape", step, v)
		}
		for _, n := range healthy {
			d := map[string]string{"domain": n}
			if v, ok := testenv.Value(mf, "libvirt_domain_memory_stats_rss_bytes", d); !ok || v <= 0 {
				t.Errorf("%s: healthy %s has no RSS", step, n)
			}
			if _, ok := testenv.Value(mf, "libvirt_domain_block_stats_read_requests_total", map[string]string{"domain": n, "target_device": "vda"}); !ok {
				t.Errorf("%s: healthy %s has no block counters", step, n)
			}
			if v := mustValue(t, mf, "libvirt_domain_scrape_success", d); v != 1 {
				t.Errorf("%s: healthy %s scrape_success = %v", step, n, v)
			}
		}
		fd := map[string]string{"domain": frozen}
		if v := mustValue(t, mf, "libvirt_domain_info_state", fd); v != 1 {
			t.Errorf("%s: frozen %s state = %v, want 1 (libvirt still sees it running)", step, frozen, v)
		}
		mustValue(t, mf, "libvirt_domain_info", map[string]string{"domain": frozen, "role": "app"})
		if v := mustValue(t, mf, "libvirt_domain_scrape_success", fd); v != 0 {
			t.Errorf("%s: frozen %s scrape_success = %v, want 0", step, frozen, v)
		}
		if _, ok := testenv.Value(mf, "libvirt_domain_memory_stats_rss_bytes", fd); ok {
			t.Errorf("%s: frozen %s has RSS: was its QEMU really stopped?", step, frozen)
		}
		if v := mustValue(t, mf, "libvirt_domain_info_state", map[string]string{"domain": names[0] + "-off"}); v != 5 {
			t.Errorf("%s: inactive domain state = %v, want 5", step, v)
		}
	}

	thaw()
	testenv.Eventually(t, time.Minute, frozen+" complete again after the thaw", func() (bool, string) {
		m := append(incomplete(t, preg, names), incomplete(t, oreg, names)...)
		return len(m) == 0, fmt.Sprint(m)
	})
}

// TestLateTimerSparesNewerGather: a scrape's timer that fires after its
// gather finished must not close the connection a newer gather uses. The
// hooks hold the first gather past the timeout, let it finish while the
// timer is firing, and start a second gather on the same connection before
// the first scrape acts on its timer.
func TestLateTimerSparesNewerGather(t *testing.T) {
	l := testenv.StartLibvirtd(t)
	c := New(Config{Socket: l.SockRO, URI: testenv.TestURI(nodeXML(t)), Timeout: time.Second}, testLogger())
	reg := newRegistry(t, c)
	gather(t, reg) // connect

	release1 := make(chan struct{})
	arrived2, release2 := make(chan struct{}), make(chan struct{})
	gathers := 0
	testHookSessionReady = func() {
		gathers++
		switch gathers {
		case 1:
			<-release1
		case 2:
			close(arrived2)
			<-release2
		}
	}
	scrape2 := make(chan float64)
	testHookTimeout = func() {
		testHookTimeout = nil
		close(release1)
		// The first gather ends; then a second scrape starts a gather.
		testenv.Eventually(t, 10*time.Second, "first gather finished", func() (bool, string) {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.inflight == nil, "still in flight"
		})
		go func() {
			mf := gather(t, reg)
			v, _ := testenv.Value(mf, "libvirt_up", nil)
			scrape2 <- v
		}()
		<-arrived2
	}
	defer func() { testHookSessionReady, testHookTimeout = nil, nil }()

	mf := gather(t, reg)
	if v := mustValue(t, mf, "libvirt_up", nil); v != 1 {
		t.Errorf("first scrape: libvirt_up = %v, want 1 (its gather finished as the timer fired)", v)
	}
	close(release2)
	if v := <-scrape2; v != 1 {
		t.Errorf("second scrape: libvirt_up = %v, want 1: the first scrape's late timer closed its connection", v)
	}
}

// roleLine takes the domain and role of a libvirt_domain_info line,
// whatever labels sort between them (os_type* since issue 28).
var roleLine = regexp.MustCompile(`libvirt_domain_info\{domain="([^"]+)",(?:[a-z_]+="[^"]*",)*role="([^"]*)"`)

func roles(t *testing.T, reg prometheus.Gatherer) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, l := range exposition(t, reg, true) {
		if m := roleLine.FindStringSubmatch(l); m != nil {
			out[m[1]] = m[2]
		}
	}
	return out
}

func setRole(l *testenv.Libvirtd, dom, role string) {
	l.MustVirsh("qemu:///system", "metadata", dom, "--uri", MetadataNamespace, "--key", "vmhost",
		"--set", "<vm><role>"+role+"</role></vm>", "--config")
}

// TestMetadataFromEvents: with a re-validation period of an hour, a new
// domain has its role in the first scrape after its definition, a role set
// with `virsh metadata … --config` shows within seconds (the event), a role
// changed while the exporter was not connected shows after it reconnects,
// and every known domain keeps libvirt_domain_info across a restart.
func TestMetadataFromEvents(t *testing.T) {
	l := testenv.StartLibvirtd(t)
	prefix := fmt.Sprintf("vmhmeta-%d-", os.Getpid())
	a, b := prefix+"a", prefix+"b"
	l.DefineQEMU(t, a, "app")
	c := New(Config{Socket: l.SockRO, URI: "qemu:///system", Timeout: 5 * time.Second, MetadataRefresh: time.Hour}, testLogger())
	reg := newRegistry(t, c)
	if r := roles(t, reg); r[a] != "app" {
		t.Fatalf("roles = %v, want %s app", r, a)
	}

	l.DefineQEMU(t, b, "web")
	if r := roles(t, reg); r[b] != "web" {
		t.Errorf("first scrape after defining %s: roles = %v, want web", b, r)
	}

	setRole(l, a, "db")
	testenv.Eventually(t, 20*time.Second, a+"'s new role", func() (bool, string) {
		r := roles(t, reg)
		return r[a] == "db", fmt.Sprint(r)
	})

	// Nothing changed: the listing, the stats call for the two inactive
	// domains and the autostart and snapshot listings; no XML. Since issue
	// 28 also the storage pool listing (this daemon has no pool): 5.
	before := c.RPCCalls()
	gather(t, reg)
	if got := c.RPCCalls() - before; got != 5 {
		t.Errorf("a scrape with nothing changed made %d RPCs, want 5: domain XML fetched again without an event?", got)
	}

	// A guest started since the last scrape (an ID the cheap listing has
	// not seen) is running in the next scrape.
	l.MustVirsh("qemu:///system", "start", a)
	if v := mustValue(t, gather(t, reg), "libvirt_domain_info_state", map[string]string{"domain": a}); v != 1 {
		t.Errorf("%s started: state = %v, want 1", a, v)
	}

	// libvirtd restarts and the role changes before the exporter is back:
	// the event is lost, the reconnect re-reads every domain. The scrape
	// that reconnects still serves every domain's info from the cache.
	l.Kill()
	l.Start()
	setRole(l, b, "file")
	testenv.Eventually(t, 30*time.Second, "the exporter back", func() (bool, string) {
		mf := gather(t, reg)
		up, _ := testenv.Value(mf, "libvirt_up", nil)
		if up != 1 {
			return false, "libvirt_up 0"
		}
		for _, d := range []string{a, b} {
			if _, ok := testenv.Value(mf, "libvirt_domain_info", map[string]string{"domain": d}); !ok {
				t.Errorf("%s has no libvirt_domain_info in the scrape after the restart", d)
			}
		}
		return true, ""
	})
	testenv.Eventually(t, 20*time.Second, b+"'s role changed while disconnected", func() (bool, string) {
		r := roles(t, reg)
		return r[b] == "file" && r[a] == "db", fmt.Sprint(r)
	})
}

// TestSnapshotRecreated: a snapshot deleted and re-created under the same
// name (no event announces either) shows its new creation time once the
// background re-validation comes round.
func TestSnapshotRecreated(t *testing.T) {
	l := testenv.StartLibvirtd(t)
	dom := fmt.Sprintf("vmhsnap-%d", os.Getpid())
	l.DefineQEMU(t, dom, "app")
	domXML := l.MustVirsh("qemu:///system", "dumpxml", dom, "--inactive")
	// --redefine takes the snapshot's metadata as given, creation time
	// included: the way a restored libvirt keeps its snapshots' history.
	redefine := func(created int64) {
		t.Helper()
		p := fmt.Sprintf("%s/snap-%d.xml", l.Dir, created)
		doc := fmt.Sprintf("<domainsnapshot><name>nightly</name><state>shutoff</state><creationTime>%d</creationTime><memory snapshot='no'/>%s</domainsnapshot>", created, domXML)
		if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		l.MustVirsh("qemu:///system", "snapshot-create", dom, p, "--redefine")
	}
	redefine(1_700_000_000)
	c := New(Config{Socket: l.SockRO, URI: "qemu:///system", Timeout: 5 * time.Second, MetadataRefresh: 3 * time.Second}, testLogger())
	reg := newRegistry(t, c)
	d := map[string]string{"domain": dom}
	if v := mustValue(t, gather(t, reg), "libvirt_domain_snapshot_newest_timestamp_seconds", d); v != 1_700_000_000 {
		t.Fatalf("newest snapshot = %v, want 1700000000", v)
	}
	l.MustVirsh("qemu:///system", "snapshot-delete", dom, "nightly", "--metadata")
	redefine(1_750_000_000)
	testenv.Eventually(t, 30*time.Second, "the re-created snapshot's time", func() (bool, string) {
		v, _ := testenv.Value(gather(t, reg), "libvirt_domain_snapshot_newest_timestamp_seconds", d)
		return v == 1_750_000_000, fmt.Sprint(v)
	})
}

// TestUndefinedDomainLeavesNoTrace: `virsh undefine` between two scrapes.
// The domain the last scrape knew is missing from this scrape's answers, so
// it is asked on its own; libvirt says it does not exist, and it must
// simply be gone, not show for a scrape as a domain whose stats failed.
func TestUndefinedDomainLeavesNoTrace(t *testing.T) {
	l := testenv.StartLibvirtd(t)
	prefix := fmt.Sprintf("vmhgone-%d-", os.Getpid())
	keep, gone := prefix+"keep", prefix+"gone"
	l.DefineQEMU(t, keep, "app")
	l.DefineQEMU(t, gone, "db")
	c := New(Config{Socket: l.SockRO, URI: "qemu:///system", Timeout: 5 * time.Second}, testLogger())
	reg := newRegistry(t, c)
	if r := roles(t, reg); r[gone] != "db" {
		t.Fatalf("roles = %v, want %s db", r, gone)
	}

	l.MustVirsh("qemu:///system", "undefine", gone)
	mf := gather(t, reg)
	for _, name := range []string{"libvirt_domain_scrape_success", "libvirt_domain_info", "libvirt_domain_info_state"} {
		if v, ok := testenv.Value(mf, name, map[string]string{"domain": gone}); ok {
			t.Errorf("scrape after undefine: %s{domain=%q} = %v, want no series", name, gone, v)
		}
	}
	if v := mustValue(t, mf, "libvirt_domain_scrape_success", map[string]string{"domain": keep}); v != 1 {
		t.Errorf("%s scrape_success = %v, want 1", keep, v)
	}
	if v := mustValue(t, mf, "libvirt_domains", nil); v != 1 {
		t.Errorf("libvirt_domains = %v, want 1", v)
	}
}
