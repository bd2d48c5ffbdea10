package main

import (
	"fmt"
	"net/http"
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

func writeFile(t *testing.T, path, content string, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
}

// waitFor scrapes until cond holds or the deadline passes.
func waitFor(t *testing.T, url string, what string, cond func(map[string]*dto.MetricFamily) bool) map[string]*dto.MetricFamily {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		mf := testenv.Scrape(t, url)
		if cond(mf) {
			return mf
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func has(name string, labels map[string]string) func(map[string]*dto.MetricFamily) bool {
	return func(mf map[string]*dto.MetricFamily) bool {
		_, ok := testenv.Value(mf, name, labels)
		return ok
	}
}

func equals(name string, labels map[string]string, want float64) func(map[string]*dto.MetricFamily) bool {
	return func(mf map[string]*dto.MetricFamily) bool {
		v, ok := testenv.Value(mf, name, labels)
		return ok && v == want
	}
}

// TestBackupConfigReload: SIGHUP and POST /-/reload (with
// --web.enable-lifecycle) load a new config; a broken one is refused with
// the old jobs kept, the reload gauge at 0 and the reason in the log only.
func TestBackupConfigReload(t *testing.T) {
	dir := testenv.SharedTempDir(t)
	dumps := filepath.Join(dir, "dumps")
	writeFile(t, filepath.Join(dumps, "db.sql.gz"), "dump", time.Time{})
	cfg := filepath.Join(dir, "backup.yml")
	writeFile(t, cfg, "jobs:\n  - name: dumps\n    type: file_glob\n    glob: "+dumps+"/*.gz\n    max_age: 26h\n", time.Time{})

	e := testenv.StartExporterAsService(t, "--no-collector.libvirt", "--backup.config-file="+cfg, "--web.enable-lifecycle")
	url := e.URL + "/metrics"
	waitFor(t, url, "first scan", equals("vmhost_backup_scan_success", map[string]string{"backup_job": "dumps"}, 1))

	// Broken config via SIGHUP: refused, old job still exported.
	writeFile(t, cfg, "jobs:\n  - name: dumps\n    type: file_glob\n    glob: "+dumps+"/*.gz\n    max_agee: 26h\n", time.Time{})
	if err := e.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	mf := waitFor(t, url, "failed reload", equals("vmhost_backup_config_last_reload_successful", nil, 0))
	if _, ok := testenv.Value(mf, "vmhost_backup_job_info", map[string]string{"backup_job": "dumps"}); !ok {
		t.Error("the old job disappeared after a failed reload")
	}
	e.WaitOutput(t, 10*time.Second, "max_agee") // the log names the bad field

	// POST /-/reload with the same broken file: 500. The reason used to be
	// in the answer; it now goes to the log only (issue 13: whoever can
	// reach the port must not read the config's contents).
	logBefore := strings.Count(e.Output(), "max_agee")
	resp, err := http.Post(e.URL+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 4096)
	n, _ := resp.Body.Read(body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || strings.Contains(string(body[:n]), "max_agee") || !strings.Contains(string(body[:n]), "log") {
		t.Errorf("POST /-/reload with a broken file: %d %q, want 500 pointing to the log without the reason", resp.StatusCode, body[:n])
	}
	// The log reaches the test through a pipe: wait for it.
	testenv.Eventually(t, 10*time.Second, "the failed HTTP reload logs its reason", func() (bool, string) {
		return strings.Count(e.Output(), "max_agee") > logBefore, e.Output()
	})

	// Fixed, with a second job: POST /-/reload takes it.
	writeFile(t, cfg, "jobs:\n  - name: dumps\n    type: file_glob\n    glob: "+dumps+"/*.gz\n    max_age: 26h\n"+
		"  - name: more\n    type: file_glob\n    glob: "+dumps+"/*.sql.gz\n    max_age: 1d\n", time.Time{})
	resp, err = http.Post(e.URL+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("POST /-/reload: %d", resp.StatusCode)
	}
	mf = waitFor(t, url, "second job scanned", equals("vmhost_backup_scan_success", map[string]string{"backup_job": "more"}, 1))
	if v, _ := testenv.Value(mf, "vmhost_backup_config_last_reload_successful", nil); v != 1 {
		t.Errorf("reload gauge after a good reload = %v", v)
	}
	if v, _ := testenv.Value(mf, "vmhost_backup_max_age_seconds", map[string]string{"backup_job": "more"}); v != 86400 {
		t.Errorf("max_age of the new job = %v", v)
	}

	// An empty file (a half-written save, a truncated copy) is refused like
	// a broken one: the jobs stay, the gauge says the reload failed.
	writeFile(t, cfg, "", time.Time{})
	if err := e.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	mf = waitFor(t, url, "empty config refused", equals("vmhost_backup_config_last_reload_successful", nil, 0))
	for _, job := range []string{"dumps", "more"} {
		if _, ok := testenv.Value(mf, "vmhost_backup_job_info", map[string]string{"backup_job": job}); !ok {
			t.Errorf("job %s disappeared after an empty config was refused", job)
		}
	}

	// Only POST reloads; PUT used to, as Prometheus 2 allowed, and no
	// longer does.
	for _, method := range []string{http.MethodGet, http.MethodPut} {
		req, _ := http.NewRequest(method, e.URL+"/-/reload", nil)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s /-/reload: %d, want 405", method, resp.StatusCode)
		}
	}
}

// TestReloadNeedsLifecycleFlag: without --web.enable-lifecycle, POST
// /-/reload is refused and changes nothing, as in Prometheus; SIGHUP still
// reloads.
func TestReloadNeedsLifecycleFlag(t *testing.T) {
	dir := testenv.SharedTempDir(t)
	cfg := filepath.Join(dir, "backup.yml")
	writeFile(t, cfg, "jobs: []\n", time.Time{})
	e := testenv.StartExporterAsService(t, "--no-collector.libvirt", "--backup.config-file="+cfg)
	writeFile(t, cfg, "jobs:\n  - name: dumps\n    type: file_glob\n    glob: "+dir+"/*.gz\n    max_age: 26h\n", time.Time{})

	resp, err := http.Post(e.URL+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 4096)
	n, _ := resp.Body.Read(body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body[:n]), "--web.enable-lifecycle") {
		t.Errorf("POST /-/reload without the flag: %d %q, want 403 naming --web.enable-lifecycle", resp.StatusCode, body[:n])
	}
	if _, ok := testenv.Value(testenv.Scrape(t, e.URL+"/metrics"), "vmhost_backup_job_info", map[string]string{"backup_job": "dumps"}); ok {
		t.Error("a refused POST /-/reload loaded the new config")
	}
	if err := e.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, e.URL+"/metrics", "SIGHUP reload", has("vmhost_backup_job_info", map[string]string{"backup_job": "dumps"}))
}

// TestSIGHUPWithoutBackupCollector: SIGHUP, which the shipped unit's
// ExecReload sends, is a logged no-op when the backup collector is off;
// it used to kill the exporter (Go's default action), and systemd then
// left the service stopped.
func TestSIGHUPWithoutBackupCollector(t *testing.T) {
	e := testenv.StartExporter(t, "--no-collector.libvirt", "--no-collector.backup")
	// One at a time: signals sent together may arrive as one.
	for i := 1; i <= 3; i++ {
		if err := e.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 10*time.Second, fmt.Sprintf("SIGHUP %d logged", i), func() (bool, string) {
			return strings.Count(e.Output(), "nothing to reload") == i, e.Output()
		})
	}
	select {
	case <-e.Exited():
		t.Fatalf("the exporter exited on SIGHUP:\n%s", e.Output())
	default:
	}
	testenv.Scrape(t, e.URL+"/metrics")
}

// TestBackupUnreadableAsUnprivilegedUser runs the exporter as nobody, the
// way it is deployed: a backup directory it may not read is a scan error
// with the reason in the log, and everything else is still served.
func TestBackupUnreadableAsUnprivilegedUser(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Missing(t, "root", "the test switches to user nobody")
	}
	dir := testenv.SharedTempDir(t)
	readable := filepath.Join(dir, "readable")
	writeFile(t, filepath.Join(readable, "a.gz"), "x", time.Time{})
	secret := filepath.Join(dir, "secret")
	writeFile(t, filepath.Join(secret, "2025-05-28", "backup.log"), "2025-05-28 02:00:00 - [5/5] done\n", time.Time{})
	if err := os.Chmod(secret, 0o700); err != nil {
		t.Fatal(err)
	}
	// A set nobody can read except for one directory inside it (root's
	// own copy of /etc, say): the size is partial, the backup is fresh.
	partial := filepath.Join(dir, "partial")
	day := time.Now().Add(-2 * time.Hour)
	logLine := day.Format("2006-01-02 15:04:05")
	writeFile(t, filepath.Join(partial, day.Format("2006-01-02"), "backup.log"), logLine+" - === KVM ホストバックアップ開始 ===\n"+logLine+" - [5/5] バックアップ完了しました\n", day)
	writeFile(t, filepath.Join(partial, day.Format("2006-01-02"), "images", "vm.img"), strings.Repeat("i", 4096), day)
	writeFile(t, filepath.Join(partial, day.Format("2006-01-02"), "etc", "shadow"), "root:*:1:0:99999:7:::\n", day)
	if err := os.Chmod(filepath.Join(partial, day.Format("2006-01-02"), "etc"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "backup.yml")
	writeFile(t, cfg, "jobs:\n  - name: secret\n    type: dated_dir\n    path: "+secret+"\n    max_age: 1d\n"+
		"  - name: readable\n    type: file_glob\n    glob: "+readable+"/*.gz\n    max_age: 1d\n"+
		"  - name: partial\n    type: dated_dir\n    path: "+partial+"\n    max_age: 1d\n", time.Time{})

	e := testenv.StartExporterAs(t, testenv.Nobody, "--no-collector.libvirt", "--backup.config-file="+cfg)
	mf := waitFor(t, e.URL+"/metrics", "scans", has("vmhost_backup_scan_success", map[string]string{"backup_job": "secret"}))
	if v, _ := testenv.Value(mf, "vmhost_backup_scan_success", map[string]string{"backup_job": "secret"}); v != 0 {
		t.Errorf("scan_success of the unreadable job = %v, want 0", v)
	}
	mf = waitFor(t, e.URL+"/metrics", "readable job", has("vmhost_backup_scan_success", map[string]string{"backup_job": "readable"}))
	if v, _ := testenv.Value(mf, "vmhost_backup_scan_success", map[string]string{"backup_job": "readable"}); v != 1 {
		t.Errorf("scan_success of the readable job = %v, want 1", v)
	}
	if _, ok := testenv.Value(mf, "node_memory_MemTotal_bytes", nil); !ok {
		t.Error("host metrics missing")
	}
	// One unreadable directory inside a set: the scan succeeds, the backup
	// is fresh, and the size says it is partial. (It used to fail the
	// whole scan, hiding a good backup; issue 14.)
	p := map[string]string{"backup_job": "partial"}
	mf = waitFor(t, e.URL+"/metrics", "partial job", has("vmhost_backup_scan_success", p))
	for name, want := range map[string]float64{
		"vmhost_backup_scan_success":                 1,
		"vmhost_backup_last_run_success":             1,
		"vmhost_backup_last_success_unreadable_dirs": 1,
		"vmhost_backup_total_unreadable_dirs":        1,
		"vmhost_backup_last_success_files":           2, // backup.log and vm.img; shadow is behind the wall
	} {
		if v, _ := testenv.Value(mf, name, p); v != want {
			t.Errorf("partial: %s = %v, want %v", name, v, want)
		}
	}
	e.WaitOutput(t, 10*time.Second, "permission denied", secret) // the log says which path was denied
}

// TestEveryUnreadablePathIsCounted runs the exporter as nobody (a service
// user without the unit's capability) against one job of each type whose
// evidence is partly private to root, with the modes root's tools leave
// (tee -a and rclone --log-file under a umask of 077, vzdump's 0600 logs,
// a 0700 dump directory, cp -a of a 0600 domain XML): each unreadable path
// is counted for its job and named in the log, and a VM whose XML cannot
// be read is reported instead of dropped. A readable job shows 0.
func TestEveryUnreadablePathIsCounted(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Missing(t, "root", "the test switches to user nobody")
	}
	dir := testenv.SharedTempDir(t)
	private := func(path string) string {
		t.Helper()
		if err := os.Chmod(path, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	night := time.Now().Add(-3 * time.Hour)
	stamp := night.Format("2006-01-02 15:04:05")
	rcloneStamp := night.Format("2006/01/02 15:04:05")

	// rclone_log: the whole log is root's.
	rcloneLog := filepath.Join(dir, "rclone.log")
	writeFile(t, rcloneLog, rcloneStamp+" INFO  : Transferred: 1 / 1, 100%\nBackup completed at "+night.Format(time.UnixDate)+"\n", night)
	private(rcloneLog)
	// restore_log: the log is readable, its rotation is not.
	restoreLog := filepath.Join(dir, "kvm_restore.log")
	writeFile(t, restoreLog, stamp+" - === KVM ホスト復元開始 ===\n"+stamp+" - 復元完了。必要であれば再起動してください。\n", night)
	writeFile(t, restoreLog+".1", stamp+" - === KVM ホスト復元開始 ===\n", night.Add(-24*time.Hour))
	private(restoreLog + ".1")
	// vzdump: the archive can be seen, its log cannot be read.
	dump := filepath.Join(dir, "dump")
	base := "vzdump-qemu-100-" + night.Format("2006_01_02-15_04_05")
	writeFile(t, filepath.Join(dump, base+".vma.zst"), strings.Repeat("v", 4096), night)
	writeFile(t, filepath.Join(dump, base+".log"), "INFO: Finished Backup of VM 100 (00:00:17)\n", night)
	private(filepath.Join(dump, base+".log"))
	// file_glob: the dump directory is root's alone.
	sqlDir := filepath.Join(dir, "mysql")
	writeFile(t, filepath.Join(sqlDir, "all.sql.gz"), "dump", night)
	if err := os.Chmod(sqlDir, 0o700); err != nil {
		t.Fatal(err)
	}
	// dated_dir: yesterday's set is complete; one VM's XML is root's
	// (copied with cp -a from /etc/libvirt/qemu), the other's readable,
	// both disks copied. Tonight's set is being written right now: a
	// directory rsync has not given its mode yet (0700) and an XML that
	// virsh dumpxml has only begun are no unreadable evidence yet.
	kvm := filepath.Join(dir, "kvm")
	yesterday := time.Now().Add(-24 * time.Hour)
	set := filepath.Join(kvm, yesterday.Format("2006-01-02"))
	yStamp := yesterday.Format("2006-01-02 15:04:05")
	writeFile(t, filepath.Join(set, "backup.log"), yStamp+" - === KVM ホストバックアップ開始 ===\n"+yStamp+" - [5/5] バックアップ完了しました\n", yesterday)
	for _, vm := range []string{"open", "closed"} {
		writeFile(t, filepath.Join(set, "vm_xml", vm+".xml"), "<domain><name>"+vm+"</name><devices><disk type='file' device='disk'><source file='/var/lib/libvirt/images/"+vm+".img'/></disk></devices></domain>\n", yesterday)
		writeFile(t, filepath.Join(set, "images", vm+".img"), strings.Repeat("i", 1024), yesterday)
	}
	private(filepath.Join(set, "vm_xml", "closed.xml"))
	tonight := filepath.Join(kvm, time.Now().Format("2006-01-02"))
	writeFile(t, filepath.Join(tonight, "backup.log"), time.Now().Format("2006-01-02 15:04:05")+" - === KVM ホストバックアップ開始 ===\n", time.Time{})
	writeFile(t, filepath.Join(tonight, "vm_xml", "open.xml"), "<domain><name>open</name><dev", time.Time{})
	writeFile(t, filepath.Join(tonight, "images", "partial", "open.img"), "i", time.Time{})
	if err := os.Chmod(filepath.Join(tonight, "images"), 0o700); err != nil {
		t.Fatal(err)
	}

	cfg := filepath.Join(dir, "backup.yml")
	writeFile(t, cfg, fmt.Sprintf(`jobs:
  - {name: s3, type: rclone_log, log_file: %s, max_age: 1d}
  - {name: restore, type: restore_log, log_file: %s, max_age: 35d}
  - {name: pve, type: vzdump, path: %s, max_age: 1d}
  - {name: mysql, type: file_glob, glob: %s/*.sql.gz, max_age: 1d}
  - {name: kvm, type: dated_dir, path: %s, max_age: 1d}
  - {name: readable, type: file_glob, glob: %s/*.zst, max_age: 1d}
`, rcloneLog, restoreLog, dump, sqlDir, kvm, dump), time.Time{})

	e := testenv.StartExporterAs(t, testenv.Nobody, "--collector.disable-defaults", "--collector.backup", "--backup.config-file="+cfg, "--backup.scan-interval=300ms")
	for _, c := range []struct {
		job        string
		unreadable float64
		scanOK     float64
		path       string // named in the log
	}{
		{"s3", 1, 0, rcloneLog},
		// The rotation is left out, the log itself still judged (it
		// failed the whole scan before: the newest run was thrown away
		// with the unreadable older one).
		{"restore", 1, 1, restoreLog + ".1"},
		{"pve", 1, 1, filepath.Join(dump, base+".log")},
		{"mysql", 1, 0, sqlDir},
		{"kvm", 1, 1, filepath.Join(set, "vm_xml", "closed.xml")},
		{"readable", 0, 1, ""},
	} {
		j := map[string]string{"backup_job": c.job}
		mf := waitFor(t, e.URL+"/metrics", c.job+" scanned", has("vmhost_backup_unreadable_paths", j))
		if v, _ := testenv.Value(mf, "vmhost_backup_unreadable_paths", j); v != c.unreadable {
			t.Errorf("%s: unreadable_paths = %v, want %v", c.job, v, c.unreadable)
		}
		if v, _ := testenv.Value(mf, "vmhost_backup_scan_success", j); v != c.scanOK {
			t.Errorf("%s: scan_success = %v, want %v", c.job, v, c.scanOK)
		}
		if c.path != "" {
			e.WaitOutput(t, 10*time.Second, `path=`+c.path+` err=`)
		}
	}
	mf := testenv.Scrape(t, e.URL+"/metrics")
	if v, _ := testenv.Value(mf, "vmhost_backup_vm_definition_unreadable", map[string]string{"backup_job": "kvm", "domain": "closed"}); v != 1 {
		t.Errorf("kvm: vm_definition_unreadable{closed} = %v, want 1", v)
	}
	if _, ok := testenv.Value(mf, "vmhost_backup_vm_definition_unreadable", map[string]string{"backup_job": "kvm", "domain": "open"}); ok {
		t.Error("kvm: the readable VM, whose XML in the set being written is still partial, is reported as unreadable")
	}
	if v, _ := testenv.Value(mf, "vmhost_backup_running", map[string]string{"backup_job": "kvm"}); v != 1 {
		t.Errorf("kvm: running = %v, want 1 (tonight's set is being written)", v)
	}
	if strings.Contains(e.Output(), filepath.Join(tonight, "images")) {
		t.Errorf("kvm: the 0700 directory of the set being written was reported:\n%s", e.Output())
	}
	if v, _ := testenv.Value(mf, "vmhost_backup_last_success_timestamp_seconds", map[string]string{"backup_job": "restore"}); v != float64(night.Unix()) {
		t.Errorf("restore: last success = %v, want %v from the log beside the unreadable rotation", v, night.Unix())
	}
	if v, _ := testenv.Value(mf, "vmhost_backup_vm_last_success_size_bytes", map[string]string{"backup_job": "kvm", "domain": "open"}); v != 1024 {
		t.Errorf("kvm: the readable VM's size = %v, want 1024", v)
	}
	if v, _ := testenv.Value(mf, "vmhost_backup_last_success_size_bytes", map[string]string{"backup_job": "pve"}); v != 4096 {
		t.Errorf("pve: the archive judged without its log: size %v, want 4096", v)
	}
	// Logged once: several scans later, each path still has one line.
	s3 := map[string]string{"backup_job": "s3"}
	first, _ := testenv.Value(mf, "vmhost_backup_scan_timestamp_seconds", s3)
	waitFor(t, e.URL+"/metrics", "three more scans", func(mf map[string]*dto.MetricFamily) bool {
		ts, _ := testenv.Value(mf, "vmhost_backup_scan_timestamp_seconds", s3)
		return ts > first+0.9
	})
	if n := strings.Count(e.Output(), `path=`+rcloneLog+` `); n != 1 {
		t.Errorf("the unreadable rclone log was logged %d times, want once:\n%s", n, e.Output())
	}

	// --backup.explain as the same user: a job that would say ok (or
	// running) on what it could read says "evidence unreadable" with the
	// first path and its error (any path BackupEvidenceUnreadable counts:
	// restore's is an old rotation, pve's the newest dump's log), and the
	// command fails, so that a config tried as the service user does not
	// pass while evidence is hidden. (It said ok, exit 0, before.)
	cmd := exec.Command(testenv.ExporterBinary(t), "--backup.explain", "--backup.config-file="+cfg)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: testenv.Nobody, Pdeathsig: syscall.SIGKILL}
	code, stdout, stderr := runExplain(t, cmd)
	if code != 1 {
		t.Errorf("--backup.explain as nobody: exit status %d, want 1\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"== restore (restore_log): evidence unreadable ==\n",
		"  why:     1 path of this job could not be read (first: " + restoreLog + ".1: ",
		"== pve (vzdump): evidence unreadable ==\n",
		"(first: " + filepath.Join(dump, base+".log") + ": ",
		// Already a bad verdict (its newest success is a day old, more
		// than max_age 1d, by the time this runs): it stays what it is.
		"== kvm (dated_dir): stale ==\n",
		"== readable (file_glob): ok ==\n",
		"== s3 (rclone_log): scan failing ==\n",
		"\nFailed: mysql, s3\nEvidence unreadable: pve, restore\n", // jobs by name
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--backup.explain as nobody lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stdout, "permission denied") {
		t.Errorf("--backup.explain as nobody does not say why a path is unreadable:\n%s", stdout)
	}
	// /backups of the exporter running as nobody says the same.
	page, _ := fetch(t, e.URL+"/backups")
	for _, want := range []string{
		`<p class="summary">Evidence unreadable: pve, restore</p>`,
		`<section class="job warn">
        <h2>pve <small>(vzdump)</small> <span class="verdict">evidence unreadable</span></h2>`,
		`<h2>readable <small>(file_glob)</small> <span class="verdict">ok</span></h2>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("/backups as nobody lacks %q:\n%s", want, page)
		}
	}
}
