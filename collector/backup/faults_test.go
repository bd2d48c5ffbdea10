package backup

import (
	"context"
	"fmt"
	dto "github.com/prometheus/client_model/go"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

const goodRcloneLog = `2025/05/28 02:00:01 INFO  : a.txt: Copied (new)
2025/05/28 02:00:02 INFO  : 
Transferred:   	        6 B / 6 B, 100%, 0 B/s, ETA -
Transferred:            1 / 1, 100%
Elapsed time:         1.0s

Backup completed at Wed May 28 02:00:02 UTC 2025
`

// TestBadLogsAreScanErrors: empty, garbage and huge logs end the scan with
// an error; the last good values stay exported, unchanged (their age keeps
// growing, so nothing looks fresher than it is), with scan_success 0.
func TestBadLogsAreScanErrors(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "rclone.log")
	if err := os.WriteFile(logFile, []byte(goodRcloneLog), 0o644); err != nil {
		t.Fatal(err)
	}
	job := Job{Name: "s3", Type: TypeRcloneLog, LogFile: logFile, MaxAge: Duration(time.Hour)}
	job.setDefaults()
	now := time.Date(2025, 5, 28, 3, 0, 0, 0, time.UTC)
	c := New(&Config{Jobs: []Job{job}}, Options{Now: func() time.Time { return now }, Location: time.UTC}, testLogger())
	c.ScanOnce(context.Background())
	j := map[string]string{"backup_job": "s3"}
	mf := gatherFrom(t, c)
	good := val(t, mf, "vmhost_backup_last_success_timestamp_seconds", j)
	if want := float64(time.Date(2025, 5, 28, 2, 0, 2, 0, time.UTC).Unix()); good != want {
		t.Fatalf("last success = %v, want %v", good, want)
	}

	huge := func(path string) {
		// 256 MiB without a newline, sparse on disk: the reader must not
		// hold it in memory.
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Truncate(256 << 20); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		prepare func(path string)
		wantErr string
	}{
		{"empty", func(p string) { _ = os.WriteFile(p, nil, 0o644) }, "is empty"},
		{"garbage", func(p string) {
			_ = os.WriteFile(p, []byte("\x00\xff\xfe garbage\r\nnot a log line\r\n\x89PNG\r\n"), 0o644)
		}, "no rclone log line"},
		{"huge line", huge, "no rclone log line"},
		{"missing", func(p string) { _ = os.Remove(p) }, "no such file"},
		{"directory", func(p string) { _ = os.Remove(p); _ = os.Mkdir(p, 0o755) }, "not a regular file"},
		// Opening a FIFO for reading blocks until a writer comes: it must
		// be refused, not opened.
		{"fifo", func(p string) {
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file (a FIFO)"},
		// /dev/zero never ends.
		{"symlink to /dev/zero", func(p string) {
			if err := os.Symlink("/dev/zero", p); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file (a character device)"},
		{"socket", func(p string) {
			l, err := net.Listen("unix", p)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
		}, "not a regular file (a socket)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_ = os.RemoveAll(logFile)
			tc.prepare(logFile)
			var before runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			scanned := make(chan struct{})
			go func() { c.ScanOnce(context.Background()); close(scanned) }()
			select {
			case <-scanned:
			case <-time.After(30 * time.Second):
				t.Fatal("the scan hangs on the log")
			}
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			if grown := int64(after.HeapInuse) - int64(before.HeapInuse); grown > 32<<20 {
				t.Errorf("heap grew by %d MiB while scanning", grown>>20)
			}
			mf := gatherFrom(t, c)
			if got := val(t, mf, "vmhost_backup_scan_success", j); got != 0 {
				t.Errorf("scan_success = %v, want 0", got)
			}
			if got := val(t, mf, "vmhost_backup_last_success_timestamp_seconds", j); got != good {
				t.Errorf("last success after a bad scan = %v, want the last good %v", got, good)
			}
			c.mu.RLock()
			msg := c.results["s3"].ScanErr
			c.mu.RUnlock()
			if !strings.Contains(msg, tc.wantErr) || !strings.Contains(msg, logFile) {
				t.Errorf("scan error %q does not name the file and say %q", msg, tc.wantErr)
			}
		})
	}

	// Repaired: the next scan succeeds again.
	_ = os.RemoveAll(logFile)
	if err := os.WriteFile(logFile, []byte(goodRcloneLog), 0o644); err != nil {
		t.Fatal(err)
	}
	c.ScanOnce(context.Background())
	if got := val(t, gatherFrom(t, c), "vmhost_backup_scan_success", j); got != 1 {
		t.Errorf("scan_success after repair = %v", got)
	}
}

func TestCRLFAndInvalidUTF8Logs(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "kvm_restore.log")
	content := "2025-05-28 02:00:00 - === KVM ホスト復元開始 ===\r\n" +
		"2025-05-28 02:00:01 - [1/4] libvirt\xff設定を復元中...\r\n" +
		"2025-05-28 02:10:00 - 復元完了。必要であれば再起動してください。\r\n"
	if err := os.WriteFile(logFile, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	mf := scan(t, time.Date(2025, 6, 1, 0, 0, 0, 0, time.Local), Job{Name: "r", Type: TypeRestoreLog, LogFile: logFile})
	j := map[string]string{"backup_job": "r"}
	want := float64(time.Date(2025, 5, 28, 2, 10, 0, 0, time.Local).Unix())
	if got := val(t, mf, "vmhost_backup_last_success_timestamp_seconds", j); got != want {
		t.Errorf("last success = %v, want %v", got, want)
	}
	if got := val(t, mf, "vmhost_backup_last_run_duration_seconds", j); got != 600 {
		t.Errorf("duration = %v, want 600", got)
	}
}

// TestUnusableBackupDirectories: a missing path, a file where a directory
// should be and a symlink loop give scan errors or are skipped, never a
// hang or a crash.
func TestUnusableBackupDirectories(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A set with a symlink loop inside and a log that says success.
	set := filepath.Join(dir, "kvm", "2025-05-28")
	if err := os.MkdirAll(filepath.Join(set, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..", filepath.Join(set, "images", "loop")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(set, "backup.log"), []byte("2025-05-28 02:00:00 - [5/5] バックアップ完了しました\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	jobs := []Job{
		{Name: "missing", Type: TypeDatedDir, Path: filepath.Join(dir, "nope")},
		{Name: "notdir", Type: TypeDatedDir, Path: notDir},
		{Name: "vz-missing", Type: TypeVzdump, Path: filepath.Join(dir, "nope")},
		{Name: "loop", Type: TypeDatedDir, Path: filepath.Join(dir, "kvm")},
	}
	done := make(chan map[string]float64)
	go func() {
		mf := scan(t, time.Now(), jobs...)
		out := map[string]float64{}
		for _, j := range jobs {
			out[j.Name], _ = testenv.Value(mf, "vmhost_backup_scan_success", map[string]string{"backup_job": j.Name})
		}
		done <- out
	}()
	select {
	case got := <-done:
		for name, want := range map[string]float64{"missing": 0, "notdir": 0, "vz-missing": 0, "loop": 1} {
			if got[name] != want {
				t.Errorf("%s: scan_success = %v, want %v", name, got[name], want)
			}
		}
	case <-time.After(30 * time.Second):
		t.Fatal("scan hung")
	}
}

// TestSetVanishingDuringScan removes a set between listing and reading it,
// as a retention job running at the same time would.
func TestSetVanishingDuringScan(t *testing.T) {
	base := t.TempDir()
	for _, d := range []string{"2025-05-27", "2025-05-28"} {
		if err := os.MkdirAll(filepath.Join(base, d, "images"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(base, d, "backup.log"), []byte(d+" 02:00:00 - [5/5] バックアップ完了しました\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	afterListing = func(path string) {
		if filepath.Base(path) == "2025-05-28" {
			_ = os.RemoveAll(path)
		}
	}
	t.Cleanup(func() { afterListing = nil })
	mf := scan(t, time.Now(), Job{Name: "kvm", Type: TypeDatedDir, Path: base})
	j := map[string]string{"backup_job": "kvm"}
	if got := val(t, mf, "vmhost_backup_scan_success", j); got != 1 {
		t.Errorf("scan_success = %v, want 1", got)
	}
	if got := val(t, mf, "vmhost_backup_sets", j); got != 1 {
		t.Errorf("sets = %v, want 1 (the vanished set is gone)", got)
	}
	want := float64(time.Date(2025, 5, 27, 2, 0, 0, 0, time.Local).Unix())
	if got := val(t, mf, "vmhost_backup_last_success_timestamp_seconds", j); got != want {
		t.Errorf("last success = %v, want %v", got, want)
	}
}

// TestClockJumps: a backup that claims to end in the future (the host's
// clock jumped back, or the backup's clock is ahead) is a scan error, never
// a fresh success; when the clock jumps forward, a run that stopped
// changing is no longer "running".
func TestClockJumps(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "kvm_restore.log")
	if err := os.WriteFile(logFile, []byte("2025-05-28 02:00:00 - === KVM ホスト復元開始 ===\n2025-05-28 02:10:00 - 復元完了。\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	job := Job{Name: "r", Type: TypeRestoreLog, LogFile: logFile}
	j := map[string]string{"backup_job": "r"}

	// The host thinks it is a day before the restore happened.
	mf := scan(t, time.Date(2025, 5, 27, 2, 0, 0, 0, time.Local), job)
	if got := val(t, mf, "vmhost_backup_scan_success", j); got != 0 {
		t.Errorf("scan_success with the backup in the future = %v, want 0", got)
	}
	absent(t, mf, "vmhost_backup_last_success_timestamp_seconds", j)

	// Within the tolerated skew it is accepted.
	mf = scan(t, time.Date(2025, 5, 28, 2, 8, 0, 0, time.Local), job)
	if got := val(t, mf, "vmhost_backup_scan_success", j); got != 1 {
		t.Errorf("scan_success two minutes before the end = %v, want 1", got)
	}

	// A restore that started but never finished: running now, failed a
	// year later.
	if err := os.WriteFile(logFile, []byte("2025-05-28 02:00:00 - === KVM ホスト復元開始 ===\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mf = scan(t, time.Now(), job)
	if got := val(t, mf, "vmhost_backup_running", j); got != 1 {
		t.Errorf("running = %v, want 1", got)
	}
	mf = scan(t, time.Now().Add(365*24*time.Hour), job)
	if got := val(t, mf, "vmhost_backup_running", j); got != 0 {
		t.Errorf("running a year later = %v, want 0", got)
	}
	if got := val(t, mf, "vmhost_backup_last_run_success", j); got != 0 {
		t.Errorf("last run success a year later = %v, want 0", got)
	}
}

// TestBackupDiskUnmounted mounts a tmpfs as the backup disk, scans it, then
// unmounts it: the empty mount point must read as a scan failure (the last
// good values kept), not as "no backups"; mounted again, it recovers. Many
// scans leave no goroutines behind.
func TestBackupDiskUnmounted(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Missing(t, "root", "the test mounts a tmpfs")
	}
	mnt := t.TempDir()
	mount := func() {
		t.Helper()
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mnt).CombinedOutput(); err != nil {
			t.Fatalf("mount: %v %s", err, out)
		}
		set := filepath.Join(mnt, "2025-05-28")
		if err := os.MkdirAll(set, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(set, "backup.log"), []byte("2025-05-28 02:00:00 - [5/5] バックアップ完了しました\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	umount := func() {
		t.Helper()
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Fatalf("umount: %v %s", err, out)
		}
	}
	mount()
	mounted := true
	t.Cleanup(func() {
		if mounted {
			_ = exec.Command("umount", mnt).Run()
		}
	})
	job := Job{Name: "kvm", Type: TypeDatedDir, Path: mnt, MaxAge: Duration(24 * time.Hour)}
	job.setDefaults()
	c := New(&Config{Jobs: []Job{job}}, Options{}, testLogger())
	j := map[string]string{"backup_job": "kvm"}
	want := float64(time.Date(2025, 5, 28, 2, 0, 0, 0, time.Local).Unix())

	goroutines := runtime.NumGoroutine()
	c.ScanOnce(context.Background())
	mf := gatherFrom(t, c)
	if got := val(t, mf, "vmhost_backup_last_success_timestamp_seconds", j); got != want {
		t.Fatalf("mounted: last success = %v, want %v", got, want)
	}

	umount()
	mounted = false
	c.ScanOnce(context.Background())
	mf = gatherFrom(t, c)
	if got := val(t, mf, "vmhost_backup_scan_success", j); got != 0 {
		t.Errorf("unmounted: scan_success = %v, want 0", got)
	}
	if got := val(t, mf, "vmhost_backup_last_success_timestamp_seconds", j); got != want {
		t.Errorf("unmounted: last success = %v, want the last good %v", got, want)
	}

	mount()
	mounted = true
	for range 50 {
		c.ScanOnce(context.Background())
	}
	mf = gatherFrom(t, c)
	if got := val(t, mf, "vmhost_backup_scan_success", j); got != 1 {
		t.Errorf("mounted again: scan_success = %v, want 1", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > goroutines {
		t.Errorf("goroutines grew from %d to %d over 52 scans", goroutines, g)
	}
}

func TestMatchRcloneLine(t *testing.T) {
	for line, want := range map[string][]string{
		"2025/05/28 02:00:01 INFO  : a.txt: Copied (new)":                  {"2025/05/28 02:00:01", "INFO", "a.txt: Copied (new)"},
		"2025/05/28 02:00:01.123456 ERROR : c.txt: Failed to copy: denied": {"2025/05/28 02:00:01", "ERROR", "c.txt: Failed to copy: denied"},
		"2025/05/28 02:00:12 Failed to sync: denied":                       {"2025/05/28 02:00:12", "", "Failed to sync: denied"},
		"2025/05/28 02:00:02 INFO  : ":                                     {"2025/05/28 02:00:02", "INFO", ""},
		"2025/05/28 02:00:02 NOTICE: Config file not found":                {"2025/05/28 02:00:02", "NOTICE", "Config file not found"},
		"2025/05/28 02:00:02 INFORMATION is not a level":                   {"2025/05/28 02:00:02", "", "INFORMATION is not a level"},
		"Transferred:   	    4.889 KiB / 4.889 KiB, 100%, 0 B/s, ETA -":    nil,
		"2025-05-28 02:00:01 - [1/5] not rclone":                           nil,
		"2025/05/28 02:00:0":                                               nil,
		"":                                                                 nil,
	} {
		got := matchRcloneLine(line)
		if want == nil {
			if got != nil {
				t.Errorf("%q matched: %q", line, got)
			}
			continue
		}
		if got == nil || got[1] != want[0] || got[2] != want[1] || got[3] != want[2] {
			t.Errorf("%q = %q, want %q", line, got, want)
		}
	}
}

// TestHungJobNeverDelaysTheOthers: one job's scan hangs (held by a test
// hook, as a stat on a dead NFS mount would hang in the kernel). The other
// job is scanned on time, the hung one reports scan_success 0 once the
// scan timeout passes and is not scanned a second time while it hangs;
// when the hang ends, its result counts again.
func TestHungJobNeverDelaysTheOthers(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.sql.gz"), []byte("dump"), 0o644); err != nil {
		t.Fatal(err)
	}
	jobs := []Job{
		{Name: "hung", Type: TypeFileGlob, Glob: filepath.Join(dir, "*.gz"), MaxAge: Duration(time.Hour)},
		{Name: "healthy", Type: TypeFileGlob, Glob: filepath.Join(dir, "*.gz"), MaxAge: Duration(time.Hour)},
	}
	release := make(chan struct{})
	var mu sync.Mutex
	hungScans := 0
	testHookBeforeScan = func(j Job) {
		if j.Name == "hung" {
			mu.Lock()
			hungScans++
			mu.Unlock()
			<-release
		}
	}
	t.Cleanup(func() { testHookBeforeScan = nil })
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	c := New(&Config{Jobs: jobs}, Options{ScanTimeout: time.Second, ScanInterval: time.Minute}, testLogger())

	for round := 1; round <= 2; round++ {
		start := time.Now()
		c.ScanOnce(context.Background())
		if took := time.Since(start); took > 10*time.Second {
			t.Fatalf("round %d: ScanOnce took %s with one job hung", round, took)
		}
		mf := gatherFrom(t, c)
		if v := val(t, mf, "vmhost_backup_scan_success", map[string]string{"backup_job": "healthy"}); v != 1 {
			t.Errorf("round %d: healthy scan_success = %v", round, v)
		}
		if v := val(t, mf, "vmhost_backup_scan_success", map[string]string{"backup_job": "hung"}); v != 0 {
			t.Errorf("round %d: hung scan_success = %v, want 0", round, v)
		}
		absent(t, mf, "vmhost_backup_scan_timestamp_seconds", map[string]string{"backup_job": "hung"})
		c.mu.RLock()
		msg := c.results["hung"].ScanErr
		c.mu.RUnlock()
		if !strings.Contains(msg, "has not finished") {
			t.Errorf("round %d: hung job's error = %q", round, msg)
		}
	}
	mu.Lock()
	if hungScans != 1 {
		t.Errorf("the hung job was scanned %d times; a second scan must not start while the first hangs", hungScans)
	}
	mu.Unlock()

	close(release)
	released = true
	testenv.Eventually(t, 10*time.Second, "the late result of the hung scan stored", func() (bool, string) {
		mf := gatherFrom(t, c)
		v, _ := testenv.Value(mf, "vmhost_backup_scan_success", map[string]string{"backup_job": "hung"})
		return v == 1, fmt.Sprintf("scan_success %v", v)
	})
	if v := val(t, gatherFrom(t, c), "vmhost_backup_last_success_timestamp_seconds", map[string]string{"backup_job": "hung"}); v <= 0 {
		t.Errorf("last success of the formerly hung job = %v", v)
	}
}

// TestNonUTF8NamesKeepEveryJob: a VM XML file whose name is not UTF-8 (a
// Latin-1 name copied from an old host) in one job's newest set. Every
// series of every job stays, the odd name is exported with its bad byte
// escaped, and the job sorted after it is complete.
func TestNonUTF8NamesKeepEveryJob(t *testing.T) {
	base := t.TempDir()
	set := filepath.Join(base, "2025-05-28")
	for _, p := range []string{"vm_xml", "images"} {
		if err := os.MkdirAll(filepath.Join(set, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"caf\xe9", "web1"} {
		if err := os.WriteFile(filepath.Join(set, "vm_xml", name+".xml"), []byte("<domain><name>x</name></domain>\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	log := "2025-05-28 02:00:00 - === KVM ホストバックアップ開始 ===\n2025-05-28 02:30:00 - [5/5] バックアップ完了しました\n"
	if err := os.WriteFile(filepath.Join(set, "backup.log"), []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	dumps := t.TempDir()
	if err := os.WriteFile(filepath.Join(dumps, "db.sql.gz"), []byte("dump"), 0o644); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 5, 28, 12, 0, 0, 0, time.Local)
	if err := os.Chtimes(filepath.Join(dumps, "db.sql.gz"), now.Add(-time.Hour), now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	mf := scan(t, now,
		Job{Name: "a-kvm", Type: TypeDatedDir, Path: base},
		Job{Name: "z-dumps", Type: TypeFileGlob, Glob: filepath.Join(dumps, "*.gz")})
	for _, vm := range []string{`caf\xe9`, "web1"} {
		if v := val(t, mf, "vmhost_backup_vm_last_success_timestamp_seconds", map[string]string{"backup_job": "a-kvm", "domain": vm}); v != float64(time.Date(2025, 5, 28, 2, 30, 0, 0, time.Local).Unix()) {
			t.Errorf("%s last success = %v", vm, v)
		}
	}
	for _, name := range []string{"vmhost_backup_scan_success", "vmhost_backup_last_success_timestamp_seconds", "vmhost_backup_sets"} {
		val(t, mf, name, map[string]string{"backup_job": "z-dumps"})
	}
}

// TestFIFOInADatedSet: a FIFO where the newest set's backup.log should be
// (opening it would block until a writer comes) is a scan error naming it,
// at once; a FIFO named like a VM's XML is no VM and no hang.
func TestFIFOInADatedSet(t *testing.T) {
	base := t.TempDir()
	good := filepath.Join(base, "2025-05-27")
	if err := os.MkdirAll(filepath.Join(good, "vm_xml"), 0o755); err != nil {
		t.Fatal(err)
	}
	log := "2025-05-27 02:00:00 - === KVM ホストバックアップ開始 ===\n2025-05-27 02:30:00 - [5/5] バックアップ完了しました\n"
	if err := os.WriteFile(filepath.Join(good, "backup.log"), []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(good, "vm_xml", "pipe.xml"), 0o644); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 5, 28, 12, 0, 0, 0, time.Local)
	job := Job{Name: "kvm", Type: TypeDatedDir, Path: base}
	j := map[string]string{"backup_job": "kvm"}
	mf := scanWithin(t, 30*time.Second, now, job)
	if v := val(t, mf, "vmhost_backup_scan_success", j); v != 1 {
		t.Errorf("a FIFO in vm_xml: scan_success = %v", v)
	}
	absent(t, mf, "vmhost_backup_vm_last_success_size_bytes", map[string]string{"backup_job": "kvm", "domain": "pipe"})

	newest := filepath.Join(base, "2025-05-28")
	if err := os.MkdirAll(newest, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(newest, "backup.log"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := New(&Config{Jobs: []Job{withDefaults(job)}}, Options{Now: func() time.Time { return now }}, testLogger())
	done := make(chan struct{})
	go func() { c.ScanOnce(context.Background()); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the scan hangs on a FIFO backup.log")
	}
	if v := val(t, gatherFrom(t, c), "vmhost_backup_scan_success", j); v != 0 {
		t.Errorf("a FIFO backup.log: scan_success = %v, want 0", v)
	}
	c.mu.RLock()
	msg := c.results["kvm"].ScanErr
	c.mu.RUnlock()
	if !strings.Contains(msg, "not a regular file (a FIFO)") || !strings.Contains(msg, "2025-05-28") {
		t.Errorf("scan error %q does not name the FIFO", msg)
	}
}

func withDefaults(j Job) Job {
	if j.MaxAge == 0 {
		j.MaxAge = Duration(24 * time.Hour)
	}
	j.setDefaults()
	return j
}

// scanWithin is scan that fails the test instead of hanging.
func scanWithin(t *testing.T, limit time.Duration, now time.Time, jobs ...Job) map[string]*dto.MetricFamily {
	t.Helper()
	for i := range jobs {
		jobs[i] = withDefaults(jobs[i])
	}
	c := New(&Config{Jobs: jobs}, Options{Now: func() time.Time { return now }}, testLogger())
	done := make(chan struct{})
	go func() { c.ScanOnce(context.Background()); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
		t.Fatal("the scan hangs")
	}
	return gatherFrom(t, c)
}
