package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// afterSecond waits until the wall clock is past the second of ts: the
// logs have whole seconds, and the next run must be seen as later.
func afterSecond(t *testing.T, ts float64) {
	t.Helper()
	testenv.Eventually(t, 5*time.Second, "the next second", func() (bool, string) {
		return float64(time.Now().Unix()) > ts, time.Now().String()
	})
}

// TestOffsiteCopyPerVM (issue 26 item 1): kvm_backup.sh writes dated sets,
// the operator's rclone wrapper syncs the whole tree to another place
// (DEST is a local directory here, S3 on the host) and appends its end
// line. A VM's copy is offsite once a successful sync run ended after it;
// a newer copy waits (pending) until the next successful run; a failed run
// (rclone missing: its end line but no rclone output) moves nothing. The
// exporter runs as the shipped unit's user on the tree as root's scripts
// leave it.
func TestOffsiteCopyPerVM(t *testing.T) {
	testenv.LookPath(t, "rsync", "rsync")
	testenv.LookPath(t, "rclone", "rclone")
	testenv.LookPath(t, "virsh", "libvirt-clients")
	dir := testenv.SharedTempDir(t)
	src := filepath.Join(dir, "src")
	for _, f := range []string{"libvirt/qemu/vm-a.xml", "images/vm-a.img", "images/vm-b.qcow2", "images/vm-b-data.img",
		"network-scripts/ifcfg-br0", "etc/hosts", "etc/fstab"} {
		writeFile(t, filepath.Join(src, f), "data of "+f+"\n", time.Time{})
	}
	base, offsite, rcloneLog := filepath.Join(dir, "kvm"), filepath.Join(dir, "offsite"), filepath.Join(dir, "rclone-kvm.log")
	vms := filepath.Join(testenv.RepoRoot(), "collector", "backup", "testdata", "vms.xml")
	kvm := func(date string) float64 {
		runScript(t, "kvm_backup.sh", "LC_ALL=C", "DATE="+date, "BACKUP_BASE="+base, "VIRSH=virsh -c test://"+vms,
			"SRC_LIBVIRT="+filepath.Join(src, "libvirt"), "SRC_IMAGES="+filepath.Join(src, "images"),
			"SRC_NETWORK="+filepath.Join(src, "network-scripts"), "SRC_ETC="+filepath.Join(src, "etc"))
		return testenv.StepLineTime(t, filepath.Join(base, date, "backup.log"), "[5/5]")
	}
	syncEnv := []string{"LC_ALL=C", "RETRIES=1", "SRC=" + base, "DEST=" + offsite, "LOG=" + rcloneLog}
	sync := func(date string) float64 {
		_, to := runScript(t, "backup_to_s3.sh", append(syncEnv, "DATE="+date)...)
		return float64(to)
	}

	first := kvm("2025-05-26")
	synced := sync("2025-05-26")
	afterSecond(t, synced)
	second := kvm("2025-05-27")
	if second <= synced {
		t.Fatalf("the second set (%v) does not end after the sync (%v)", second, synced)
	}

	cfg := filepath.Join(dir, "backup.yml")
	writeFile(t, cfg, "jobs:\n"+
		"  - name: kvm-host\n    type: dated_dir\n    path: "+base+"\n    max_age: 8d\n"+
		"  - name: s3-kvm\n    type: rclone_log\n    log_file: "+rcloneLog+"\n    copies: kvm-host\n    max_age: 26h\n", time.Time{})
	e := testenv.StartExporterAsService(t, "--no-collector.libvirt", "--backup.config-file="+cfg)
	url := e.URL + "/metrics"
	vm := func(job, domain string) map[string]string {
		return map[string]string{"backup_job": job, "domain": domain}
	}
	offsiteOf := func(mf map[string]*dto.MetricFamily, domain string) (float64, bool) {
		return testenv.Value(mf, "vmhost_backup_vm_offsite_timestamp_seconds", vm("s3-kvm", domain))
	}
	pendingOf := func(mf map[string]*dto.MetricFamily, domain string) (float64, bool) {
		return testenv.Value(mf, "vmhost_backup_vm_offsite_pending_timestamp_seconds", vm("s3-kvm", domain))
	}
	// check waits for the scan that reflects the sync log's newest run,
	// then asserts every VM's offsite and pending times.
	check := func(step string, runSuccess float64, wantOffsite, wantPending float64) map[string]*dto.MetricFamily {
		t.Helper()
		mf := waitFor(t, url, step, func(mf map[string]*dto.MetricFamily) bool {
			return allScanned("kvm-host", "s3-kvm")(mf) &&
				equals("vmhost_backup_last_run_success", map[string]string{"backup_job": "s3-kvm"}, runSuccess)(mf) &&
				equals("vmhost_backup_sets", map[string]string{"backup_job": "kvm-host"}, 2)(mf)
		})
		for _, domain := range []string{"vm-a", "vm-b"} {
			if local := jobVMValue(t, mf, "vmhost_backup_vm_last_success_timestamp_seconds", "kvm-host", domain); local != second {
				t.Errorf("%s: %s newest local copy = %v, want the second set's %v", step, domain, local, second)
			}
			o, ok := offsiteOf(mf, domain)
			if wantOffsite == 0 && ok || wantOffsite != 0 && (!ok || o != wantOffsite) {
				t.Errorf("%s: %s offsite = %v (present %v), want %v (0: absent)", step, domain, o, ok, wantOffsite)
			}
			p, ok := pendingOf(mf, domain)
			if wantPending == 0 && ok || wantPending != 0 && (!ok || p != wantPending) {
				t.Errorf("%s: %s pending = %v (present %v), want %v (0: absent)", step, domain, p, ok, wantPending)
			}
		}
		// vm-c's disk lives outside the copied directory: no local copy,
		// so nothing to take offsite (VMNotBackedUp's, not this alert's).
		if o, ok := offsiteOf(mf, "vm-c"); ok {
			t.Errorf("%s: vm-c has no local copy but offsite = %v", step, o)
		}
		if p, ok := pendingOf(mf, "vm-c"); ok {
			t.Errorf("%s: vm-c has no local copy but pending = %v", step, p)
		}
		return mf
	}

	// The first set reached offsite, the second one waits since it ended.
	mf := check("first sync", 1, first, second)
	for _, name := range []string{"vmhost_backup_vm_offsite_timestamp_seconds", "vmhost_backup_vm_offsite_pending_timestamp_seconds"} {
		if _, ok := testenv.Value(mf, name, vm("kvm-host", "vm-a")); ok {
			t.Errorf("%s carries the local job's name; backup_job is the sync job", name)
		}
	}
	body, _ := fetch(t, url)
	promtool := testenv.LookPath(t, "promtool", "prometheus")
	lint := exec.Command(promtool, "check", "metrics")
	lint.Stdin = strings.NewReader(ownMetrics(t, body))
	if out, err := lint.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}

	// A failed sync (rclone missing from PATH: the wrapper still appends
	// its end line) takes nothing offsite.
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	date, err := exec.LookPath("date")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(date, filepath.Join(bin, "date")); err != nil {
		t.Fatal(err)
	}
	failed := exec.Command(filepath.Join(testenv.RepoRoot(), "collector", "backup", "testdata", "backup_to_s3.sh"))
	failed.Env = append(syncEnv, "DATE=2025-05-27", "PATH="+bin)
	if out, _ := failed.CombinedOutput(); !strings.Contains(string(out), "rclone: command not found") {
		t.Fatalf("the run without rclone did not fail as planned: %s", out)
	}
	reload := func() {
		t.Helper()
		if err := e.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	reload()
	check("failed sync", 0, first, second)

	// The next successful sync takes the second set offsite: nothing waits.
	afterSecond(t, second)
	sync("2025-05-27")
	reload()
	check("second sync", 1, second, 0)
}

func jobVMValue(t *testing.T, mf map[string]*dto.MetricFamily, name, job, domain string) float64 {
	t.Helper()
	v, ok := testenv.Value(mf, name, map[string]string{"backup_job": job, "domain": domain})
	if !ok {
		t.Fatalf("%s{backup_job=%q,domain=%q} missing", name, job, domain)
	}
	return v
}
