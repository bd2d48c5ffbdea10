package e2e

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// operatorHost lays out what a KVM host holds before its first backup, in a
// shared temp dir standing for /: the images directory with the mode
// libvirt's packages give /var/lib/libvirt/images (0711: others may reach a
// disk by name but not list them), network scripts and /etc files. The
// private libvirtd's /etc/libvirt holds the domains' XMLs as libvirtd
// writes them (0600).
type operatorHost struct {
	root, images string
	l            *testenv.Libvirtd
	env          []string // what the seed's scripts read their paths from
}

func newOperatorHost(t *testing.T) *operatorHost {
	t.Helper()
	testenv.LookPath(t, "rsync", "rsync")
	h := &operatorHost{root: testenv.SharedTempDir(t), l: testenv.StartLibvirtd(t)}
	h.images = filepath.Join(h.root, "var/lib/libvirt/images")
	for _, d := range []string{"var/lib/libvirt", "etc/sysconfig/network-scripts", "var/log", "backup"} {
		if err := os.MkdirAll(filepath.Join(h.root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(h.images, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(h.images, 0o711); err != nil { // whatever the umask
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"etc/hosts": "127.0.0.1 localhost\n",
		"etc/fstab": "# fstab\n",
		"etc/sysconfig/network-scripts/ifcfg-br0": "DEVICE=br0\n",
	} {
		if err := os.WriteFile(filepath.Join(h.root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h.env = []string{
		"VIRSH=" + h.l.VirshCommand(),
		"SRC_LIBVIRT=" + h.l.ConfigDir(),
		"SRC_IMAGES=" + h.images,
		"SRC_NETWORK=" + filepath.Join(h.root, "etc/sysconfig/network-scripts"),
		"SRC_ETC=" + filepath.Join(h.root, "etc"),
	}
	return h
}

// defineGuest defines a QEMU guest whose disk lies in the images directory,
// with 1 MiB of data in it so that its copy has a size worth comparing.
func (h *operatorHost) defineGuest(t *testing.T, name, role string) {
	t.Helper()
	disk := filepath.Join(h.images, name+".img")
	h.l.DefineQEMUWithDisk(t, name, role, disk)
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte(strings.Repeat("d", 1<<20)), 4<<20); err != nil {
		t.Fatal(err)
	}
	// root's 0600, as virt-install and virsh vol-create leave an image:
	// rsync -a keeps the mode in the set.
	if err := os.Chmod(disk, 0o600); err != nil {
		t.Fatal(err)
	}
}

// runScript runs one of the operator's scripts (collector/backup/testdata)
// as root with the umask of a root shell, the way cron runs it.
func (h *operatorHost) runScript(t *testing.T, script string, env ...string) {
	t.Helper()
	path := filepath.Join(testenv.RepoRoot(), "collector", "backup", "testdata", script)
	cmd := exec.Command("/bin/sh", "-c", `umask 022; exec /bin/bash "$0"`, path)
	cmd.Env = append(append(os.Environ(), h.env...), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
}

// backupSeries is every vmhost_backup_* series of a scrape but the scan's
// own timing, as "name{labels} value" lines: what two exporters reading
// the same trees must agree on.
func backupSeries(mf map[string]*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for name, fam := range mf {
		if !strings.HasPrefix(name, "vmhost_backup_") || slices.Contains([]string{
			"vmhost_backup_scan_duration_seconds", "vmhost_backup_scan_timestamp_seconds",
			"vmhost_backup_config_last_reload_success_timestamp_seconds",
		}, name) {
			continue
		}
		for _, m := range fam.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			out[name+"{"+strings.Join(labels, ",")+"}"] = m.GetGauge().GetValue()
		}
	}
	return out
}

// scannedSince waits until every job of the exporter was scanned after
// since, and returns that scrape.
func scannedSince(t *testing.T, e *testenv.Exporter, jobs []string, since time.Time, who string) map[string]*dto.MetricFamily {
	t.Helper()
	var mf map[string]*dto.MetricFamily
	testenv.Eventually(t, 2*time.Minute, who+": every job scanned after "+since.Format(time.TimeOnly), func() (bool, string) {
		mf = testenv.Scrape(t, e.URL+"/metrics")
		for _, j := range jobs {
			ts, ok := testenv.Value(mf, "vmhost_backup_scan_timestamp_seconds", map[string]string{"backup_job": j})
			if !ok || ts < float64(since.UnixNano())/1e9 {
				return false, fmt.Sprintf("job %s scanned at %v", j, ts)
			}
		}
		return true, ""
	})
	return mf
}

// TestBackupsAsDeployed runs the seed's three scripts (kvm_backup.sh, the
// kvmhost-YYYY-MM-DD script and kvm_restore.sh) against a private libvirtd
// with real QEMU guests, then reads the trees they leave with the exporter
// as root and with the identity of the shipped unit (its User=, Group=,
// SupplementaryGroups=, capabilities and NoNewPrivileges=, through
// setpriv; not its file system sandbox, which needs systemd: PrivateTmp
// would hide these temp-dir trees, and ProtectSystem only makes the
// readable tree read-only): every backup
// series must be the same, and nothing unreadable. The same trees read
// without the unit's capability show what an operator who strips it
// loses, and that this test would see it: the images directory (0711)
// and libvirt's 0600 domain XMLs are then counted as unreadable, the set
// size leaves the disks out, the contents-judged job never succeeds, and
// kvm's VMs, whose readable definitions name unreadable disk copies, are
// not judged rather than missing their disks.
func TestBackupsAsDeployed(t *testing.T) {
	h := newOperatorHost(t)
	h.defineGuest(t, "web0", "web")
	h.defineGuest(t, "db0", "db")
	h.l.MustVirsh("qemu:///system", "start", "web0") // db0 stays shut off

	yesterday := time.Now().AddDate(0, 0, -1).Format("2006-01-02")
	today := time.Now().Format("2006-01-02")
	kvm := filepath.Join(h.root, "backup/kvm")
	backupRoot := filepath.Join(h.root, "backup")
	for _, date := range []string{yesterday, today} {
		h.runScript(t, "kvm_backup.sh", "BACKUP_BASE="+kvm, "DATE="+date)
	}
	h.runScript(t, "kvmhost_backup.sh", "BACKUP_ROOT="+backupRoot, "DATE="+today)
	restoreLog := filepath.Join(h.root, "var/log/kvm_restore.log")
	dst := testenv.SharedTempDir(t)
	for _, d := range []string{"libvirt", "images", "sysconfig", "etc"} {
		if err := os.Mkdir(filepath.Join(dst, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h.runScript(t, "kvm_restore.sh", "BACKUP_DIR="+filepath.Join(kvm, today), "LOGFILE="+restoreLog,
		"DST_LIBVIRT="+filepath.Join(dst, "libvirt"), "DST_IMAGES="+filepath.Join(dst, "images"),
		"DST_SYSCONFIG="+filepath.Join(dst, "sysconfig"), "DST_ETC="+filepath.Join(dst, "etc"))

	// The contents-judged set was written a moment ago: it counts as a
	// run in progress until it has been quiet for running_timeout.
	cfg := filepath.Join(testenv.SharedTempDir(t), "backup.yml")
	config := fmt.Sprintf(`jobs:
  - name: kvm
    type: dated_dir
    path: %s
    images_source: %s
    max_age: 26h
  - name: kvmhost
    type: dated_dir
    path: %s
    set_pattern: '^kvmhost-(\d{4}-\d{2}-\d{2})$'
    success_from: contents
    vm_xml_dir: libvirt-config/qemu
    images_dir: images/images
    images_source: %s
    running_timeout: 3s
    max_age: 8d
  - name: restore-test
    type: restore_log
    log_file: %s
    max_age: 35d
`, kvm, h.images, backupRoot, h.images, restoreLog)
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	jobs := []string{"kvm", "kvmhost", "restore-test"}
	flags := []string{"--collector.disable-defaults", "--collector.backup", "--backup.config-file=" + cfg, "--backup.scan-interval=1s"}

	asRoot := testenv.StartExporter(t, flags...)
	var rootScrape map[string]*dto.MetricFamily
	testenv.Eventually(t, 2*time.Minute, "root: the contents-judged set settles as a success", func() (bool, string) {
		rootScrape = testenv.Scrape(t, asRoot.URL+"/metrics")
		_, ok := testenv.Value(rootScrape, "vmhost_backup_last_success_timestamp_seconds", map[string]string{"backup_job": "kvmhost"})
		return ok, fmt.Sprint(backupSeries(rootScrape))
	})
	settled := time.Now()
	rootScrape = scannedSince(t, asRoot, jobs, settled, "root")
	want := backupSeries(rootScrape)

	// The fixture is worth comparing: root sees whole sets with their disks.
	val := func(mf map[string]*dto.MetricFamily, name, job string, extra ...string) float64 {
		l := map[string]string{"backup_job": job}
		for i := 0; i+1 < len(extra); i += 2 {
			l[extra[i]] = extra[i+1]
		}
		v, ok := testenv.Value(mf, name, l)
		if !ok {
			return -1
		}
		return v
	}
	for _, c := range []struct {
		name, job string
		extra     []string
		min       float64
	}{
		{"vmhost_backup_last_run_success", "kvm", nil, 1},
		{"vmhost_backup_sets", "kvm", nil, 2},
		{"vmhost_backup_last_success_size_bytes", "kvm", nil, 2 * 16 << 20}, // both disks' apparent size
		{"vmhost_backup_vm_last_success_size_bytes", "kvm", []string{"domain", "web0"}, 16 << 20},
		{"vmhost_backup_vm_last_success_size_bytes", "kvm", []string{"domain", "db0"}, 16 << 20},
		{"vmhost_backup_last_success_size_bytes", "kvmhost", nil, 2 * 16 << 20},
		{"vmhost_backup_vm_last_success_timestamp_seconds", "kvmhost", []string{"domain", "db0"}, 1},
		{"vmhost_backup_last_success_timestamp_seconds", "restore-test", nil, 1},
	} {
		if got := val(rootScrape, c.name, c.job, c.extra...); got < c.min {
			t.Errorf("as root: %s{backup_job=%q %v} = %v, want at least %v", c.name, c.job, c.extra, got, c.min)
		}
	}
	for _, j := range jobs {
		if got := val(rootScrape, "vmhost_backup_unreadable_paths", j); got != 0 {
			t.Errorf("as root: unreadable_paths{%s} = %v, want 0\n%s", j, got, asRoot.Output())
		}
	}

	id := testenv.ShippedUnitIdentity(t)
	t.Logf("the shipped unit's identity: %s", id)
	asService := testenv.StartExporterAsUnit(t, id, flags...)
	got := backupSeries(scannedSince(t, asService, jobs, settled, "as the service"))
	var diff []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[k]; !ok || g != want[k] {
			diff = append(diff, fmt.Sprintf("  %s: root %v, service %v (present %v)", k, want[k], g, ok))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			diff = append(diff, fmt.Sprintf("  %s: only as the service, %v", k, got[k]))
		}
	}
	if len(diff) > 0 {
		t.Errorf("the exporter under the shipped unit's identity (%s) reads the backups differently from root:\n%s\n%s",
			id, strings.Join(diff, "\n"), asService.Output())
	}

	// The same trees without the capability.
	bare := testenv.StartExporterAsUnit(t, id.WithoutCapabilities(), flags...)
	mf := scannedSince(t, bare, jobs, settled, "without capabilities")
	if v := val(mf, "vmhost_backup_unreadable_paths", "kvm"); v < 1 {
		t.Errorf("without capabilities: unreadable_paths{kvm} = %v, want at least 1 (images/ is 0711)", v)
	}
	if v, root := val(mf, "vmhost_backup_last_success_size_bytes", "kvm"), val(rootScrape, "vmhost_backup_last_success_size_bytes", "kvm"); v < 0 || v >= root-(16<<20) {
		t.Errorf("without capabilities: last_success_size_bytes{kvm} = %v, want the partial size, under root's %v less a disk", v, root)
	}
	if v := val(mf, "vmhost_backup_last_success_timestamp_seconds", "kvmhost"); v != -1 {
		t.Errorf("without capabilities: the contents-judged job succeeded (%v) without reading its VM definitions", v)
	}
	for _, vm := range []string{"web0", "db0"} {
		if v := val(mf, "vmhost_backup_vm_definition_unreadable", "kvmhost", "domain", vm); v != 1 {
			t.Errorf("without capabilities: vm_definition_unreadable{kvmhost,%s} = %v, want 1: a VM whose XML cannot be read is reported, never dropped", vm, v)
		}
	}
	// kvm's definitions are virsh dumpxml's 0644 files, its disk copies
	// root's 0600 images in the 0711 images/: each VM is not judged, not
	// missing its disk. (They were published as missing disks, and
	// VMNotBackedUp called every VM never backed up: an operator trial.)
	for _, vm := range []string{"web0", "db0"} {
		if v := val(mf, "vmhost_backup_vm_definition_unreadable", "kvm", "domain", vm); v != 1 {
			t.Errorf("without capabilities: vm_definition_unreadable{kvm,%s} = %v, want 1: its disk copy cannot be read", vm, v)
		}
		if v := val(mf, "vmhost_backup_vm_missing_disks", "kvm", "domain", vm); v != -1 {
			t.Errorf("without capabilities: vm_missing_disks{kvm,%s} = %v, want none: an unreadable copy is no missing disk", vm, v)
		}
		if v := val(mf, "vmhost_backup_vm_missing_disk_info", "kvm", "domain", vm); v != -1 {
			t.Errorf("without capabilities: vm_missing_disk_info{kvm,%s} = %v, want none", vm, v)
		}
	}
	if v := val(mf, "vmhost_backup_unreadable_paths", "kvmhost"); v < 2 {
		t.Errorf("without capabilities: unreadable_paths{kvmhost} = %v, want at least 2 (two 0600 domain XMLs)", v)
	}
	bare.WaitOutput(t, 30*time.Second, "path="+filepath.Join(kvm, today, "images")+" err=")
}
