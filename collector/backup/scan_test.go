package backup

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

// scan runs one scan of the jobs as of now and returns the gathered metrics.
func scan(t *testing.T, now time.Time, jobs ...Job) map[string]*dto.MetricFamily {
	t.Helper()
	c := newTestCollector(t, now, jobs...)
	return gatherFrom(t, c)
}

func newTestCollector(t *testing.T, now time.Time, jobs ...Job) *Collector {
	t.Helper()
	for i := range jobs {
		if jobs[i].MaxAge == 0 {
			jobs[i].MaxAge = Duration(24 * time.Hour)
		}
		jobs[i].setDefaults()
	}
	c := New(&Config{Jobs: jobs}, Options{Now: func() time.Time { return now }}, testLogger())
	c.ScanOnce(context.Background())
	return c
}

func gatherFrom(t *testing.T, c *Collector) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	return testenv.Gather(t, reg)
}

func val(t *testing.T, mf map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	v, ok := testenv.Value(mf, name, labels)
	if !ok {
		t.Fatalf("%s%v missing", name, labels)
	}
	return v
}

func absent(t *testing.T, mf map[string]*dto.MetricFamily, name string, labels map[string]string) {
	t.Helper()
	if v, ok := testenv.Value(mf, name, labels); ok {
		t.Errorf("%s%v = %v, want absent", name, labels, v)
	}
}

func runCmd(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// duBytes asks du itself: the reference for our size figures.
func duBytes(t *testing.T, apparent bool, path string) float64 {
	t.Helper()
	args := []string{"-s", "-B1"}
	if apparent {
		args = append(args, "--apparent-size")
	}
	out := runCmd(t, nil, "du", append(args, path)...)
	v, err := strconv.ParseFloat(strings.Fields(out)[0], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func countFiles(t *testing.T, path string) float64 {
	t.Helper()
	out := runCmd(t, nil, "find", path, "-type", "f")
	return float64(len(strings.Fields(out)))
}

// hostSources lays out what kvm_backup.sh copies: libvirt config, sparse
// disk images, network scripts and /etc files.
func hostSources(t *testing.T) (dir string, env []string) {
	t.Helper()
	dir = t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"libvirt/qemu", "images", "network-scripts", "etc"} {
		must(os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	must(os.WriteFile(filepath.Join(dir, "libvirt/qemu/vm-a.xml"), []byte("<domain/>\n"), 0o600))
	must(os.WriteFile(filepath.Join(dir, "libvirt/libvirtd.conf"), []byte("# defaults\n"), 0o644))
	// vm-a.img: 64 MiB, of which 1 MiB is data: a sparse image.
	img, err := os.Create(filepath.Join(dir, "images/vm-a.img"))
	must(err)
	must(img.Truncate(64 << 20))
	_, err = img.WriteAt([]byte(strings.Repeat("x", 1<<20)), 8<<20)
	must(err)
	img.Close()
	must(os.WriteFile(filepath.Join(dir, "images/vm-b.qcow2"), []byte(strings.Repeat("q", 300000)), 0o600))
	must(os.WriteFile(filepath.Join(dir, "images/vm-b-data.img"), []byte(strings.Repeat("d", 70000)), 0o600))
	must(os.WriteFile(filepath.Join(dir, "network-scripts/ifcfg-br0"), []byte("DEVICE=br0\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "etc/hosts"), []byte("127.0.0.1 localhost\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "etc/fstab"), []byte("# fstab\n"), 0o644))
	vms, _ := filepath.Abs("testdata/vms.xml")
	env = []string{
		"SRC_LIBVIRT=" + filepath.Join(dir, "libvirt"),
		"SRC_IMAGES=" + filepath.Join(dir, "images"),
		"SRC_NETWORK=" + filepath.Join(dir, "network-scripts"),
		"SRC_ETC=" + filepath.Join(dir, "etc"),
		"VIRSH=virsh -c test://" + vms,
	}
	return dir, env
}

// kvmBackupScript prepares the operator's kvm_backup.sh to back up the
// sources of hostSources into a temp dir: the sources, the backup base, the
// script and its environment.
func kvmBackupScript(t *testing.T) (src, base, script string, env []string) {
	t.Helper()
	testenv.LookPath(t, "rsync", "rsync")
	testenv.LookPath(t, "virsh", "libvirt-clients")
	src, env = hostSources(t)
	base = t.TempDir()
	env = append(env, "BACKUP_BASE="+base)
	script, _ = filepath.Abs("testdata/kvm_backup.sh")
	return src, base, script, env
}

func TestDatedDirFromRealBackupScript(t *testing.T) {
	_, base, script, env := kvmBackupScript(t)

	runCmd(t, append(env, "DATE=2025-05-26"), script)
	runCmd(t, append(env, "DATE=2025-05-27"), script)

	// The third run hangs in step 2 (a virsh that never answers) and is
	// killed there, like a backup interrupted by a reboot.
	third := filepath.Join(base, "2025-05-28", "backup.log")
	cmd := startHanging(t, append(env, "DATE=2025-05-28"), script, third, "[2/5]")

	job := Job{Name: "kvm-host", Type: TypeDatedDir, Path: base}
	good := filepath.Join(base, "2025-05-27")
	j := map[string]string{"backup_job": "kvm-host"}
	lastSuccess := testenv.StepLineTime(t, filepath.Join(good, "backup.log"), "[5/5]")

	// While the third run is being written it is running, not failed.
	mf := scan(t, time.Now(), job)
	checks := []struct {
		name string
		want float64
	}{
		{"vmhost_backup_scan_success", 1},
		{"vmhost_backup_running", 1},
		{"vmhost_backup_sets", 3},
		{"vmhost_backup_last_run_success", 1}, // newest finished run: 2025-05-27
		{"vmhost_backup_last_run_errors", 0},
		{"vmhost_backup_last_success_timestamp_seconds", lastSuccess},
		{"vmhost_backup_last_run_timestamp_seconds", testenv.StepLineTime(t, third, "開始")},
		{"vmhost_backup_oldest_set_timestamp_seconds", testenv.StepLineTime(t, filepath.Join(base, "2025-05-26", "backup.log"), "開始")},
		{"vmhost_backup_last_success_size_bytes", duBytes(t, true, good)},
		{"vmhost_backup_last_success_disk_usage_bytes", duBytes(t, false, good)},
		{"vmhost_backup_last_success_files", countFiles(t, good)},
		// The one successful set before the newest: BackupSizeDropped's
		// reference (issue 15: per backup, not per time sample).
		{"vmhost_backup_previous_success_size_bytes", duBytes(t, true, filepath.Join(base, "2025-05-26"))},
	}
	for _, c := range checks {
		if got := val(t, mf, c.name, j); got != c.want {
			t.Errorf("running: %s = %v, want %v", c.name, got, c.want)
		}
	}
	// The sparse image stays sparse: 64 MiB apparent, ~1 MiB on disk.
	if size, disk := val(t, mf, "vmhost_backup_last_success_size_bytes", j), val(t, mf, "vmhost_backup_last_success_disk_usage_bytes", j); size < 64<<20 || disk > 8<<20 {
		t.Errorf("sparse image: apparent %v, disk %v; want >= 64 MiB and < 8 MiB", size, disk)
	}
	for vm, size := range map[string]float64{"vm-a": 64 << 20, "vm-b": 300000 + 70000} {
		l := map[string]string{"backup_job": "kvm-host", "domain": vm}
		if got := val(t, mf, "vmhost_backup_vm_last_success_timestamp_seconds", l); got != lastSuccess {
			t.Errorf("%s last success = %v, want %v", vm, got, lastSuccess)
		}
		if got := val(t, mf, "vmhost_backup_vm_last_success_size_bytes", l); got != size {
			t.Errorf("%s size = %v, want %v", vm, got, size)
		}
	}

	// Killed, and nothing has changed for longer than running_timeout:
	// the newest run failed, the last success stays where it was.
	killGroup(cmd)
	mf = scan(t, time.Now().Add(2*time.Hour), job)
	for _, c := range []struct {
		name string
		want float64
	}{
		{"vmhost_backup_running", 0},
		{"vmhost_backup_last_run_success", 0},
		{"vmhost_backup_last_success_timestamp_seconds", lastSuccess},
		{"vmhost_backup_sets", 3},
	} {
		if got := val(t, mf, c.name, j); got != c.want {
			t.Errorf("killed: %s = %v, want %v", c.name, got, c.want)
		}
	}

	// The restore script run against the good set writes the restore log.
	restore, renv, restoreLog, dst := restoreScript(t, env, good)
	runCmd(t, renv, restore)
	runCmd(t, renv, restore)
	rjob := Job{Name: "restore-test", Type: TypeRestoreLog, LogFile: restoreLog}
	mf = scan(t, time.Now(), rjob)
	r := map[string]string{"backup_job": "restore-test"}
	for _, c := range []struct {
		name string
		want float64
	}{
		{"vmhost_backup_scan_success", 1},
		{"vmhost_backup_sets", 2},
		{"vmhost_backup_last_run_success", 1},
		{"vmhost_backup_running", 0},
		{"vmhost_backup_last_success_timestamp_seconds", lastLineTime(t, restoreLog)},
	} {
		if got := val(t, mf, c.name, r); got != c.want {
			t.Errorf("restore: %s = %v, want %v", c.name, got, c.want)
		}
	}
	// The restored image is still sparse and complete.
	if got := duBytes(t, true, filepath.Join(dst, "images", "vm-a.img")); got != 64<<20 {
		t.Errorf("restored image has %v bytes", got)
	}
}

// startHanging runs an operator script whose virsh never answers (so it
// hangs in the step that calls virsh) and returns once logPath shows the
// step marker (once more than before: the log may be appended to). The
// caller kills it with killGroup, as a reboot would.
func startHanging(t *testing.T, env []string, script, logPath, marker string) *exec.Cmd {
	t.Helper()
	hang := filepath.Join(t.TempDir(), "virsh-hangs")
	if err := os.WriteFile(hang, []byte("#!/bin/sh\nexec sleep 600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(logPath)
	cmd := exec.Command(script)
	cmd.Env = append(os.Environ(), append(env, "VIRSH="+hang)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { killGroup(cmd) })
	testenv.Eventually(t, 30*time.Second, filepath.Base(script)+" reaches "+marker, func() (bool, string) {
		b, _ := os.ReadFile(logPath)
		return strings.Count(string(b), marker) > strings.Count(string(before), marker), string(b)
	})
	return cmd
}

func killGroup(cmd *exec.Cmd) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Wait()
}

// restoreScript prepares kvm_restore.sh to restore set into a temp tree:
// the script, its environment, its log and the restore target.
func restoreScript(t *testing.T, env []string, set string) (script string, renv []string, logPath, dst string) {
	t.Helper()
	dst = t.TempDir()
	for _, d := range []string{"libvirt", "images", "sysconfig", "etc"} {
		if err := os.MkdirAll(filepath.Join(dst, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	logPath = filepath.Join(t.TempDir(), "kvm_restore.log")
	script, _ = filepath.Abs("testdata/kvm_restore.sh")
	renv = append(append([]string(nil), env...), "BACKUP_DIR="+set, "LOGFILE="+logPath,
		"DST_LIBVIRT="+filepath.Join(dst, "libvirt"), "DST_IMAGES="+filepath.Join(dst, "images"),
		"DST_SYSCONFIG="+filepath.Join(dst, "sysconfig"), "DST_ETC="+filepath.Join(dst, "etc"))
	return script, renv, logPath, dst
}

func lastLineTime(t *testing.T, path string) float64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	tm, err := time.ParseInLocation("2006-01-02 15:04:05", lines[len(lines)-1][:19], time.Local)
	if err != nil {
		t.Fatal(err)
	}
	return float64(tm.Unix())
}

func TestRcloneLogFromRealRclone(t *testing.T) {
	testenv.LookPath(t, "rclone", "rclone")
	if os.Geteuid() != 0 {
		testenv.Missing(t, "root", "the failing rclone run reads as user nobody a file only root may read")
	}
	dir, err := os.MkdirTemp("", "vmhost-rclone-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	src, dest, logFile := filepath.Join(dir, "src"), filepath.Join(dir, "dest"), filepath.Join(dir, "rclone.log")
	for _, d := range []string{src, dest} {
		if err := os.MkdirAll(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.Chmod(dir, 0o755)
	_ = os.Chmod(dest, 0o777)
	if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "b.bin"), []byte(strings.Repeat("b", 5000)), 0o644); err != nil {
		t.Fatal(err)
	}
	script, _ := filepath.Abs("testdata/backup_to_s3.sh")
	env := []string{"SRC=" + src, "DEST=" + dest, "LOG=" + logFile, "RETRIES=2", "LC_ALL=C"}

	runCmd(t, append(env, "DATE=2025-05-27"), script)
	job := Job{Name: "s3-important", Type: TypeRcloneLog, LogFile: logFile}
	j := map[string]string{"backup_job": "s3-important"}
	mf := scan(t, time.Now(), job)
	firstEnd := val(t, mf, "vmhost_backup_last_success_timestamp_seconds", j)
	if d := time.Since(time.Unix(int64(firstEnd), 0)); d < 0 || d > time.Minute {
		t.Errorf("last success %v is not the run just made", time.Unix(int64(firstEnd), 0))
	}
	for _, c := range []struct {
		name string
		want float64
	}{
		{"vmhost_backup_scan_success", 1},
		{"vmhost_backup_sets", 1},
		{"vmhost_backup_last_run_success", 1},
		{"vmhost_backup_last_run_errors", 0},
		{"vmhost_backup_last_success_transferred_files", 2},
	} {
		if got := val(t, mf, c.name, j); got != c.want {
			t.Errorf("success: %s = %v, want %v", c.name, got, c.want)
		}
	}
	// rclone prints 4.889 KiB for 5006 bytes.
	if got := val(t, mf, "vmhost_backup_last_success_transferred_bytes", j); got < 5000 || got > 5012 {
		t.Errorf("transferred bytes = %v, want about 5006", got)
	}

	// Second run, as an unprivileged user, with a file it cannot read: rclone
	// logs ERROR lines, retries and exits non-zero; the wrapper still appends
	// its "Backup completed" line.
	if err := os.WriteFile(filepath.Join(src, "secret.txt"), []byte("root only\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(logFile, 0o666); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // a later second for the second run
	cmd := exec.Command("runuser", "-u", "nobody", "--", script)
	cmd.Env = append(os.Environ(), append(env, "DATE=2025-05-28", "HOME="+dir)...)
	out, _ := cmd.CombinedOutput()
	logText, _ := os.ReadFile(logFile)
	if !strings.Contains(string(logText), "permission denied") {
		t.Fatalf("the unprivileged run did not fail as planned:\n%s\n%s", out, logText)
	}
	errorLines := strings.Count(string(logText), " ERROR : ") + strings.Count(string(logText), " Failed to sync")

	mf = scan(t, time.Now(), job)
	for _, c := range []struct {
		name string
		want float64
	}{
		{"vmhost_backup_scan_success", 1},
		{"vmhost_backup_sets", 2},
		{"vmhost_backup_last_run_success", 0},
		{"vmhost_backup_last_run_errors", float64(errorLines)},
		{"vmhost_backup_running", 0},
		{"vmhost_backup_last_success_timestamp_seconds", firstEnd},
	} {
		if got := val(t, mf, c.name, j); got != c.want {
			t.Errorf("failure: %s = %v, want %v", c.name, got, c.want)
		}
	}
	if errorLines < 3 {
		t.Errorf("only %d error lines in the failed run's log", errorLines)
	}
	if got := val(t, mf, "vmhost_backup_last_run_timestamp_seconds", j); got <= firstEnd {
		t.Errorf("last run %v is not after the first run %v", got, firstEnd)
	}

	// Third run on a host where rclone is missing (a PATH with bash's
	// helpers but no rclone): the wrapper prints "rclone: command not
	// found" to its own stderr and appends its end line anyway. A run with
	// no rclone output is a failed run, not a success.
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
	time.Sleep(1100 * time.Millisecond) // a later second for the third run
	cmd = exec.Command(script)
	cmd.Env = append(env, "DATE=2025-05-29", "PATH="+bin)
	out, _ = cmd.CombinedOutput()
	if !strings.Contains(string(out), "rclone: command not found") {
		t.Fatalf("the run without rclone did not fail as planned: %s", out)
	}
	mf = scan(t, time.Now(), job)
	for _, c := range []struct {
		name string
		want float64
	}{
		{"vmhost_backup_scan_success", 1},
		{"vmhost_backup_sets", 3},
		{"vmhost_backup_last_run_success", 0},
		{"vmhost_backup_running", 0},
		{"vmhost_backup_last_success_timestamp_seconds", firstEnd},
	} {
		if got := val(t, mf, c.name, j); got != c.want {
			t.Errorf("no rclone: %s = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestVzdumpDirectory builds a dump directory the way vzdump names and
// renames its files: guest 100 with two good backups, guest 101 whose newest
// backup failed, guest 102 being dumped right now (.dat, no archive).
func TestVzdumpDirectory(t *testing.T) {
	loc := time.Local
	dir := t.TempDir()
	write := func(name, content string, mtime time.Time) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	at := func(s string) time.Time {
		tm, err := time.ParseInLocation("2006_01_02-15_04_05", s, loc)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	okLog := func(id, stamp string, dur string, size string) string {
		return "INFO: starting new backup job: vzdump " + id + " --compress zstd --storage local --mode snapshot\n" +
			"INFO: Starting Backup of VM " + id + " (qemu)\n" +
			"INFO: Backup started at " + stamp + "\n" +
			"INFO: creating vzdump archive '/var/lib/vz/dump/vzdump-qemu-" + id + "-" + stamp + ".vma.zst'\n" +
			"INFO: archive file size: " + size + "\n" +
			"INFO: Finished Backup of VM " + id + " (" + dur + ")\n" +
			"INFO: Backup finished at " + stamp + "\n"
	}
	write("vzdump-qemu-100-2025_05_27-02_00_01.vma.zst", strings.Repeat("a", 1000), at("2025_05_27-02_00_18"))
	write("vzdump-qemu-100-2025_05_27-02_00_01.log", okLog("100", "2025_05_27-02_00_01", "00:00:17", "1KB"), at("2025_05_27-02_00_18"))
	write("vzdump-qemu-100-2025_05_28-02_00_01.vma.zst", strings.Repeat("a", 2000), at("2025_05_28-02_00_31"))
	write("vzdump-qemu-100-2025_05_28-02_00_01.log", okLog("100", "2025_05_28-02_00_01", "00:00:30", "2KB"), at("2025_05_28-02_00_31"))
	write("vzdump-qemu-100-2025_05_28-02_00_01.vma.zst.notes", "web server", at("2025_05_28-02_00_31"))
	write("vzdump-lxc-101-2025_05_27-02_01_00.tar.zst", strings.Repeat("c", 500), at("2025_05_27-02_01_10"))
	write("vzdump-lxc-101-2025_05_27-02_01_00.log", okLog("101", "2025_05_27-02_01_00", "00:00:10", "500B"), at("2025_05_27-02_01_10"))
	write("vzdump-lxc-101-2025_05_28-02_01_00.log",
		"INFO: Starting Backup of VM 101 (lxc)\nERROR: Backup of VM 101 failed - command 'tar' failed: exit code 2\nINFO: Failed at 2025-05-28 02:01:05\n",
		at("2025_05_28-02_01_05"))
	write("vzdump-qemu-102-2025_05_28-02_02_00.vma.dat", strings.Repeat("d", 300), at("2025_05_28-02_05_00"))
	write("vzdump-qemu-102-2025_05_28-02_02_00.log", "INFO: Starting Backup of VM 102 (qemu)\n", at("2025_05_28-02_05_00"))
	write("unrelated.txt", "x", at("2025_05_28-02_05_00"))

	job := Job{Name: "pve", Type: TypeVzdump, Path: dir}
	j := map[string]string{"backup_job": "pve"}
	unix := func(s string) float64 { return float64(at(s).Unix()) }

	// Two minutes after guest 102 started: it is running.
	mf := scan(t, at("2025_05_28-02_07_00"), job)
	for _, c := range []struct {
		name string
		want float64
	}{
		{"vmhost_backup_scan_success", 1},
		{"vmhost_backup_sets", 3}, // archives: 100 twice, 101 once
		{"vmhost_backup_running", 1},
		// The newest finished run is the night of 05-27, all good. This
		// used to be 0 (guest 101's newest attempt failed): since issue 14
		// a run is one vzdump invocation, and tonight's is not over yet;
		// guest 101's failure shows in vm_last_run_success below.
		{"vmhost_backup_last_run_success", 1},
		{"vmhost_backup_last_run_errors", 0},
		{"vmhost_backup_last_success_timestamp_seconds", unix("2025_05_28-02_00_31")},
		// Tonight's run started with guest 100 (was guest 102's start,
		// when each guest's attempt was a run of its own).
		{"vmhost_backup_last_run_timestamp_seconds", unix("2025_05_28-02_00_01")},
		{"vmhost_backup_last_success_size_bytes", 2000 + 500},
		{"vmhost_backup_last_success_files", 2},
		{"vmhost_backup_oldest_set_timestamp_seconds", unix("2025_05_27-02_00_01")},
	} {
		if got := val(t, mf, c.name, j); got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
	for guest, want := range map[string][2]float64{"100": {unix("2025_05_28-02_00_31"), 2000}, "101": {unix("2025_05_27-02_01_10"), 500}} {
		l := map[string]string{"backup_job": "pve", "domain": guest}
		if got := val(t, mf, "vmhost_backup_vm_last_success_timestamp_seconds", l); got != want[0] {
			t.Errorf("guest %s last success = %v, want %v", guest, got, want[0])
		}
		if got := val(t, mf, "vmhost_backup_vm_last_success_size_bytes", l); got != want[1] {
			t.Errorf("guest %s size = %v, want %v", guest, got, want[1])
		}
	}
	absent(t, mf, "vmhost_backup_vm_last_success_timestamp_seconds", map[string]string{"domain": "102"})
	// Guest 100's previous archive (1000 bytes) is the reference for its
	// newest (2000); guest 101 has only one successful archive.
	if got := val(t, mf, "vmhost_backup_vm_previous_success_size_bytes", map[string]string{"backup_job": "pve", "domain": "100"}); got != 1000 {
		t.Errorf("guest 100 previous success size = %v, want 1000", got)
	}
	absent(t, mf, "vmhost_backup_vm_previous_success_size_bytes", map[string]string{"backup_job": "pve", "domain": "101"})
	for guest, want := range map[string]float64{"100": 1, "101": 0} {
		if got := val(t, mf, "vmhost_backup_vm_last_run_success", map[string]string{"backup_job": "pve", "domain": guest}); got != want {
			t.Errorf("guest %s last run success = %v, want %v", guest, got, want)
		}
	}
	absent(t, mf, "vmhost_backup_vm_last_run_success", map[string]string{"domain": "102"}) // not finished yet

	// Hours later guest 102's .dat has not grown: vzdump was killed, and
	// tonight's run is over: failed (101 failed, 102 killed).
	mf = scan(t, at("2025_05_28-06_00_00"), job)
	for _, c := range []struct {
		name string
		want float64
	}{
		{"vmhost_backup_running", 0},
		{"vmhost_backup_last_run_success", 0},
		{"vmhost_backup_last_run_errors", 1},
	} {
		if got := val(t, mf, c.name, j); got != c.want {
			t.Errorf("killed: %s = %v, want %v", c.name, got, c.want)
		}
	}
	if got := val(t, mf, "vmhost_backup_vm_last_run_success", map[string]string{"backup_job": "pve", "domain": "102"}); got != 0 {
		t.Errorf("guest 102 last run success after the kill = %v, want 0", got)
	}
}

// TestVzdumpRemovedGuest: guest 105 failed a month ago and was removed
// since; tonight vzdump backed up guests 100 and 101 fine. The newest run
// succeeded (the old failure used to pin last_run_success to 0 for good),
// and guest 105's own last attempt stays visible as failed.
func TestVzdumpRemovedGuest(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content, stamp string) {
		t.Helper()
		mt, err := time.ParseInLocation("2006_01_02-15_04_05", stamp, time.Local)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	write("vzdump-qemu-105-2025_04_28-02_00_01.log", "INFO: Starting Backup of VM 105 (qemu)\nERROR: Backup of VM 105 failed - no such volume 'local-lvm:vm-105-disk-0'\n", "2025_04_28-02_00_03")
	write("vzdump-qemu-100-2025_05_28-02_00_01.vma.zst", strings.Repeat("a", 100), "2025_05_28-02_00_20")
	write("vzdump-qemu-100-2025_05_28-02_00_01.log", "INFO: Finished Backup of VM 100 (00:00:19)\n", "2025_05_28-02_00_20")
	write("vzdump-lxc-101-2025_05_28-02_00_21.tar.zst", strings.Repeat("b", 100), "2025_05_28-02_00_40")
	write("vzdump-lxc-101-2025_05_28-02_00_21.log", "INFO: Finished Backup of VM 101 (00:00:19)\n", "2025_05_28-02_00_40")

	now, _ := time.ParseInLocation("2006_01_02-15_04_05", "2025_05_28-08_00_00", time.Local)
	mf := scan(t, now, Job{Name: "pve", Type: TypeVzdump, Path: dir})
	if got := val(t, mf, "vmhost_backup_last_run_success", map[string]string{"backup_job": "pve"}); got != 1 {
		t.Errorf("last run success = %v, want 1: a removed guest's old failure decides nothing", got)
	}
	for guest, want := range map[string]float64{"100": 1, "101": 1, "105": 0} {
		if got := val(t, mf, "vmhost_backup_vm_last_run_success", map[string]string{"backup_job": "pve", "domain": guest}); got != want {
			t.Errorf("guest %s last run success = %v, want %v", guest, got, want)
		}
	}
}

func TestFileGlob(t *testing.T) {
	dir := t.TempDir()
	base := time.Date(2025, 5, 28, 3, 0, 0, 0, time.Local)
	for i, name := range []string{"db-2025-05-26.sql.gz", "db-2025-05-27.sql.gz", "db-2025-05-28.sql.gz"} {
		p := filepath.Join(dir, name)
		out, err := exec.Command("sh", "-c", "seq 1 "+strconv.Itoa(1000*(i+1))+" | gzip -c > "+p).CombinedOutput()
		if err != nil {
			t.Fatalf("%v %s", err, out)
		}
		mt := base.Add(time.Duration(i-2) * 24 * time.Hour)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "old.sql.gz"), 0o755); err != nil { // a directory is not a dump
		t.Fatal(err)
	}
	newest, _ := os.Stat(filepath.Join(dir, "db-2025-05-28.sql.gz"))
	first, _ := os.Stat(filepath.Join(dir, "db-2025-05-26.sql.gz"))
	second, _ := os.Stat(filepath.Join(dir, "db-2025-05-27.sql.gz"))
	job := Job{Name: "mysql-dumps", Type: TypeFileGlob, Glob: filepath.Join(dir, "*.sql.gz")}
	j := map[string]string{"backup_job": "mysql-dumps"}
	mf := scan(t, base.Add(time.Hour), job)
	for _, c := range []struct {
		name string
		want float64
	}{
		{"vmhost_backup_scan_success", 1},
		{"vmhost_backup_sets", 3},
		{"vmhost_backup_last_success_timestamp_seconds", float64(base.Unix())},
		{"vmhost_backup_last_success_size_bytes", float64(newest.Size())},
		{"vmhost_backup_oldest_set_timestamp_seconds", float64(base.Add(-48 * time.Hour).Unix())},
		{"vmhost_backup_last_run_success", 1},
		{"vmhost_backup_running", 0},
		// The median of the two dumps before the newest.
		{"vmhost_backup_previous_success_size_bytes", float64((first.Size() + second.Size()) / 2)},
	} {
		if got := val(t, mf, c.name, j); got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}

	// A glob in a missing directory is a scan error, not "no backups".
	mf = scan(t, base, Job{Name: "gone", Type: TypeFileGlob, Glob: filepath.Join(dir, "missing", "*.gz")})
	if got := val(t, mf, "vmhost_backup_scan_success", map[string]string{"backup_job": "gone"}); got != 0 {
		t.Errorf("scan_success for a missing directory = %v, want 0", got)
	}
}

// TestHardLinkedSetsMatchDu: a set made with `rsync --link-dest` shares
// unchanged files with the previous set; inside one set a file linked
// twice is one file on disk. Sizes must equal du's.
func TestHardLinkedSetsMatchDu(t *testing.T) {
	testenv.LookPath(t, "rsync", "rsync")
	src, _ := hostSources(t)
	base := t.TempDir()
	log := func(set string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(base, set, "backup.log"), []byte(set+" 02:00:00 - [5/5] バックアップ完了しました\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, set := range []string{"2025-05-27", "2025-05-28"} {
		if err := os.MkdirAll(filepath.Join(base, set), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	runCmd(t, nil, "rsync", "-a", "--sparse", filepath.Join(src, "images")+"/", filepath.Join(base, "2025-05-27", "images")+"/")
	log("2025-05-27")
	runCmd(t, nil, "rsync", "-a", "--sparse", "--link-dest="+filepath.Join(base, "2025-05-27", "images"),
		filepath.Join(src, "images")+"/", filepath.Join(base, "2025-05-28", "images")+"/")
	runCmd(t, nil, "ln", filepath.Join(base, "2025-05-28", "images", "vm-b.qcow2"), filepath.Join(base, "2025-05-28", "images", "vm-b-link.qcow2"))
	log("2025-05-28")

	newest := filepath.Join(base, "2025-05-28")
	mf := scan(t, time.Now(), Job{Name: "kvm", Type: TypeDatedDir, Path: base})
	j := map[string]string{"backup_job": "kvm"}
	if got, want := val(t, mf, "vmhost_backup_last_success_size_bytes", j), duBytes(t, true, newest); got != want {
		t.Errorf("apparent size = %v, du --apparent-size says %v", got, want)
	}
	if got, want := val(t, mf, "vmhost_backup_last_success_disk_usage_bytes", j), duBytes(t, false, newest); got != want {
		t.Errorf("disk usage = %v, du says %v", got, want)
	}
	if got, want := val(t, mf, "vmhost_backup_last_success_files", j), countFiles(t, newest); got != want {
		t.Errorf("files = %v, find says %v", got, want)
	}
	// All sets together: the linked files are on disk once.
	sets := []string{filepath.Join(base, "2025-05-27"), newest}
	if got, want := val(t, mf, "vmhost_backup_total_disk_usage_bytes", j), duTotal(t, false, sets...); got != want {
		t.Errorf("total disk usage = %v, du -s of both sets says %v", got, want)
	}
	if got, want := val(t, mf, "vmhost_backup_total_size_bytes", j), duTotal(t, true, sets...); got != want {
		t.Errorf("total size = %v, du -s --apparent-size of both sets says %v", got, want)
	}
	if got, want := val(t, mf, "vmhost_backup_total_files", j), countFiles(t, base); got != want {
		t.Errorf("total files = %v, find says %v", got, want)
	}
}

// duTotal is du's total over several trees, counting each inode once.
func duTotal(t *testing.T, apparent bool, paths ...string) float64 {
	t.Helper()
	args := []string{"-s", "-c", "-B1"}
	if apparent {
		args = append(args, "--apparent-size")
	}
	out := strings.Split(strings.TrimSpace(runCmd(t, nil, "du", append(args, paths...)...)), "\n")
	v, err := strconv.ParseFloat(strings.Fields(out[len(out)-1])[0], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
