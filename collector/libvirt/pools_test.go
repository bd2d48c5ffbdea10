package libvirt

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// poolDomainXML is a QEMU domain, never started, with one disk given by
// its source element (a pool volume or a file).
const poolDomainXML = `<domain type='qemu'>
  <name>%s</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='%s' device='disk'>
      <driver name='qemu' type='raw'/>
      %s
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
`

// virshPoolInfo reads what virsh pool-info --bytes says of a pool.
func virshPoolInfo(t *testing.T, l *testenv.Libvirtd, pool string) map[string]float64 {
	t.Helper()
	out := l.MustVirsh("qemu:///system", "pool-info", pool, "--bytes")
	info := map[string]float64{}
	for _, m := range regexp.MustCompile(`(?m)^(Capacity|Allocation|Available):\s+(\d+)`).FindAllStringSubmatch(out, -1) {
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			t.Fatal(err)
		}
		info[m[1]] = v
	}
	if len(info) != 3 {
		t.Fatalf("cannot read virsh pool-info:\n%s", out)
	}
	return info
}

// TestStoragePools defines a running directory pool with two volumes (one
// used by a domain as a pool volume, one by path) and an inactive pool on
// a private libvirtd, and checks the series against virsh pool-info; then
// makes one pool hang in libvirtd and checks that it costs only itself.
func TestStoragePools(t *testing.T) {
	l := testenv.StartLibvirtd(t)
	testenv.LookPath(t, "qemu-system-x86_64", "qemu-system-x86")
	const uri = "qemu:///system"
	prefix := fmt.Sprintf("vmhpool-%d-", os.Getpid())
	images, idle := prefix+"images", prefix+"idle"
	target := filepath.Join(l.Dir, "pool-images")
	l.MustVirsh(uri, "pool-define-as", images, "dir", "--target", target)
	l.MustVirsh(uri, "pool-build", images)
	l.MustVirsh(uri, "pool-start", images)
	l.MustVirsh(uri, "pool-define-as", idle, "dir", "--target", filepath.Join(l.Dir, "pool-idle"))
	// Sparse volumes: 64 MiB and 32 MiB of virtual capacity, nothing
	// allocated.
	l.MustVirsh(uri, "vol-create-as", images, "a.img", "64M", "--allocation", "0", "--format", "raw")
	l.MustVirsh(uri, "vol-create-as", images, "b.img", "32M", "--allocation", "0", "--format", "raw")
	outside := filepath.Join(l.Dir, "outside.img")
	if err := os.WriteFile(outside, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(outside, 16<<20); err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct{ name, typ, source string }{
		{prefix + "vol", "volume", fmt.Sprintf("<source pool='%s' volume='a.img'/>", images)},
		{prefix + "path", "file", fmt.Sprintf("<source file='%s'/>", filepath.Join(target, "b.img"))},
		{prefix + "out", "file", fmt.Sprintf("<source file='%s'/>", outside)},
	} {
		xmlPath := filepath.Join(l.Dir, d.name+".xml")
		if err := os.WriteFile(xmlPath, fmt.Appendf(nil, poolDomainXML, d.name, d.typ, d.source), 0o644); err != nil {
			t.Fatal(err)
		}
		l.MustVirsh(uri, "define", xmlPath)
	}
	// libvirt resolves a volume disk to its file, and reports its
	// capacity, only while the domain runs.
	l.MustVirsh(uri, "start", prefix+"vol")

	c := New(Config{Socket: l.SockRO, URI: uri, Timeout: 5 * time.Second}, testLogger())
	reg := newRegistry(t, c)
	pool := func(name string) map[string]string { return map[string]string{"storage_pool": name} }

	// The domains' XML may come a scrape later than their stats.
	var mf map[string]*dto.MetricFamily
	testenv.Eventually(t, 2*time.Minute, "the disks of both domains counted in the pool", func() (bool, string) {
		mf = gather(t, reg)
		v, _ := testenv.Value(mf, "libvirt_storage_pool_domain_disk_capacity_bytes", pool(images))
		return v == 96<<20, fmt.Sprintf("disk capacity %v; part success %v", v, partSuccess(mf))
	})
	want := virshPoolInfo(t, l, images)
	for _, m := range []struct{ series, virsh string }{
		{"libvirt_storage_pool_capacity_bytes", "Capacity"},
		{"libvirt_storage_pool_allocation_bytes", "Allocation"},
		{"libvirt_storage_pool_available_bytes", "Available"},
	} {
		if v := mustValue(t, mf, m.series, pool(images)); v != want[m.virsh] || v <= 0 && m.virsh == "Capacity" {
			t.Errorf("%s{storage_pool=%q} = %v, virsh pool-info --bytes says %s %v", m.series, images, v, m.virsh, want[m.virsh])
		}
	}
	if v := mustValue(t, mf, "libvirt_storage_pool_state", pool(images)); v != 2 {
		t.Errorf("state of the running pool = %v, want 2 (running)", v)
	}
	if v := mustValue(t, mf, "libvirt_storage_pool_state", pool(idle)); v != 0 {
		t.Errorf("state of the inactive pool = %v, want 0 (inactive)", v)
	}
	// virsh pool-info shows no sizes for an inactive pool; libvirt's
	// answer, and so the peer's series, is 0.
	if out := l.MustVirsh(uri, "pool-info", idle, "--bytes"); !regexp.MustCompile(`(?m)^State:\s+inactive$`).MatchString(out) {
		t.Errorf("virsh pool-info does not say the pool is inactive:\n%s", out)
	}
	if v := mustValue(t, mf, "libvirt_storage_pool_capacity_bytes", pool(idle)); v != 0 {
		t.Errorf("capacity of the inactive pool = %v, want 0", v)
	}
	if v := mustValue(t, mf, "libvirt_storage_pool_domain_disk_capacity_bytes", pool(idle)); v != 0 {
		t.Errorf("disk capacity of the unused pool = %v, want 0", v)
	}
	for _, p := range []string{images, idle} {
		if v := mustValue(t, mf, "libvirt_storage_pool_timed_out", pool(p)); v != 0 {
			t.Errorf("%s timed_out = %v, want 0", p, v)
		}
	}
	if v := mustValue(t, mf, "libvirt_scrape_part_success", map[string]string{"part": partPools}); v != 1 {
		t.Errorf("part pools success = %v, want 1", v)
	}
	// Reading the pools never refreshes them: a file written into the
	// pool behind libvirt's back shows only after virsh pool-refresh.
	if err := os.WriteFile(filepath.Join(target, "behind.img"), make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	mf = gather(t, reg)
	if v := mustValue(t, mf, "libvirt_storage_pool_allocation_bytes", pool(images)); v != want["Allocation"] {
		t.Errorf("allocation changed without a pool refresh: %v, was %v", v, want["Allocation"])
	}
	l.MustVirsh(uri, "pool-refresh", images)
	refreshed := virshPoolInfo(t, l, images)
	// A directory pool's allocation is its filesystem's, which other
	// processes change too: the refresh must show some change, not
	// exactly the file's megabyte.
	if refreshed["Allocation"] == want["Allocation"] {
		t.Fatalf("virsh pool-refresh did not see the new file: allocation still %v", refreshed["Allocation"])
	}
	mf = gather(t, reg)
	if v := mustValue(t, mf, "libvirt_storage_pool_allocation_bytes", pool(images)); v != refreshed["Allocation"] {
		t.Errorf("allocation after pool-refresh = %v, virsh says %v", v, refreshed["Allocation"])
	}

	// A pool stuck in libvirtd (here: its info call held back before it
	// is sent) times out alone; while its call waits, no second one is
	// sent for it.
	release := make(chan struct{})
	var asked atomic.Int32
	testHookPoolInfo = func(name string) {
		if name == idle {
			asked.Add(1)
			<-release
		}
	}
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(func() { unblock(); testHookPoolInfo = nil })
	for range 2 {
		mf = gather(t, reg)
		if v := mustValue(t, mf, "libvirt_up", nil); v != 1 {
			t.Fatalf("libvirt_up = %v with a hung pool, want 1", v)
		}
		if v := mustValue(t, mf, "libvirt_storage_pool_timed_out", pool(idle)); v != 1 {
			t.Errorf("hung pool timed_out = %v, want 1", v)
		}
		if _, ok := testenv.Value(mf, "libvirt_storage_pool_capacity_bytes", pool(idle)); ok {
			t.Error("hung pool still has a capacity series")
		}
		if v := mustValue(t, mf, "libvirt_storage_pool_timed_out", pool(images)); v != 0 {
			t.Errorf("healthy pool timed_out = %v, want 0", v)
		}
		if v := mustValue(t, mf, "libvirt_storage_pool_domain_disk_capacity_bytes", pool(images)); v != 96<<20 {
			t.Errorf("healthy pool's disk capacity = %v with a hung pool", v)
		}
		if v := mustValue(t, mf, "libvirt_scrape_part_success", map[string]string{"part": partPools}); v != 0 {
			t.Errorf("part pools success = %v with a hung pool, want 0", v)
		}
		if v := mustValue(t, mf, "libvirt_domains", nil); v != 3 {
			t.Errorf("libvirt_domains = %v with a hung pool, want 3", v)
		}
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("the hung pool was asked %d times, want 1 (no second call while the first waits)", n)
	}
	unblock()
	testenv.Eventually(t, 30*time.Second, "the pool answers again", func() (bool, string) {
		mf = gather(t, reg)
		v, _ := testenv.Value(mf, "libvirt_storage_pool_timed_out", pool(idle))
		return v == 0, fmt.Sprintf("timed_out %v", v)
	})
}

// TestDisksMatchedToPools: a disk is in the pool its XML names, else in
// the pool with the deepest target path above it; CD-ROMs, disks outside
// every pool and backing-chain entries are not counted.
func TestDisksMatchedToPools(t *testing.T) {
	pools := []*poolResult{
		{name: "images", hasInfo: true, hasTarget: true, target: "/var/lib/libvirt/images"},
		{name: "fast", hasInfo: true, hasTarget: true, target: "/var/lib/libvirt/images/fast"},
		{name: "rbd", hasInfo: true, hasTarget: true},
		{name: "unread", hasInfo: true, target: "/srv"}, // XML not read: no sum
	}
	block := func(name, path string, capacity float64) *deviceStats {
		return &deviceStats{Name: name, Path: path, Fields: map[string]float64{"capacity": capacity}}
	}
	domains := []*domainResult{{
		stats: domainStats{Block: map[int]*deviceStats{
			0: block("vda", "/var/lib/libvirt/images/a.qcow2", 10),
			1: block("vda", "/var/lib/libvirt/images/base.qcow2", 1000), // backing file
			2: block("vdb", "/var/lib/libvirt/images/fast/b.raw", 20),
			3: block("vdc", "/var/lib/libvirt/imagesX/c.raw", 40),
			4: block("sda", "/var/lib/libvirt/images/install.iso", 80),
			5: block("vdd", "", 160),
			6: block("vde", "/srv/e.raw", 320),
		}},
		meta: &domainMeta{Disks: map[string]diskMeta{
			"sda": {Device: "cdrom"},
			"vdd": {Device: "disk", Pool: "rbd", Volume: "vm-disk"},
		}},
	}}
	addDiskCapacities(pools, domains)
	for i, want := range []float64{10, 20, 160, 0} {
		if pools[i].diskCapacity != want {
			t.Errorf("pool %s: %v, want %v", pools[i].name, pools[i].diskCapacity, want)
		}
	}
}

func TestParsePoolTarget(t *testing.T) {
	got, err := parsePoolTarget(`<pool type='dir'><name>p</name><target><path>/var/lib/libvirt/images/</path></target></pool>`)
	if err != nil || got != "/var/lib/libvirt/images" {
		t.Errorf("dir pool target = %q, %v", got, err)
	}
	if got, err := parsePoolTarget(`<pool type='rbd'><name>p</name><source><name>rbd</name></source></pool>`); err != nil || got != "" {
		t.Errorf("rbd pool target = %q, %v", got, err)
	}
	if _, err := parsePoolTarget(`<pool><target>`); err == nil {
		t.Error("truncated pool XML parsed without error")
	}
}
