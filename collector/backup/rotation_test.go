package backup

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// logrotateNow rotates logFile with the real logrotate, forced, with the
// given extra directives (e.g. "compress").
func logrotateNow(t *testing.T, logFile string, directives ...string) {
	t.Helper()
	bin := testenv.LookPath(t, "logrotate", "logrotate")
	dir := t.TempDir()
	conf := filepath.Join(dir, "logrotate.conf")
	body := logFile + " {\n  rotate 7\n  create 0644 root root\n  " + strings.Join(directives, "\n  ") + "\n}\n"
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-f", "-s", filepath.Join(dir, "state"), conf).CombinedOutput()
	if err != nil {
		t.Fatalf("logrotate: %v\n%s", err, out)
	}
	if fi, err := os.Stat(logFile); err != nil || fi.Size() != 0 {
		t.Fatalf("after logrotate the log should be empty: %v %v", fi, err)
	}
}

// TestLogRotationKeepsTheLastSuccess: logrotate runs after the nightly
// rclone job, leaving an empty log and rclone.log.1 (later .1.gz). The
// empty log is no scan error and the last success survives the rotation,
// plain and compressed; the restore log likewise.
func TestLogRotationKeepsTheLastSuccess(t *testing.T) {
	testenv.LookPath(t, "rclone", "rclone")
	dir := t.TempDir()
	src, dest, logFile := filepath.Join(dir, "src"), filepath.Join(dir, "dest"), filepath.Join(dir, "rclone.log")
	for _, d := range []string{src, dest} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script, _ := filepath.Abs("testdata/backup_to_s3.sh")
	env := []string{"SRC=" + src, "DEST=" + dest, "LOG=" + logFile, "RETRIES=1", "LC_ALL=C"}
	job := Job{Name: "s3", Type: TypeRcloneLog, LogFile: logFile}
	j := map[string]string{"backup_job": "s3"}
	expect := func(step string, want map[string]float64) {
		t.Helper()
		mf := scan(t, time.Now(), job)
		for name, w := range want {
			if v := val(t, mf, name, j); v != w {
				t.Errorf("%s: %s = %v, want %v", step, name, v, w)
			}
		}
	}

	runCmd(t, append(env, "DATE=2025-05-27"), script)
	mf := scan(t, time.Now(), job)
	first := val(t, mf, "vmhost_backup_last_success_timestamp_seconds", j)
	logrotateNow(t, logFile)
	expect("rotated to rclone.log.1", map[string]float64{
		"vmhost_backup_scan_success":                   1,
		"vmhost_backup_last_run_success":               1,
		"vmhost_backup_last_success_timestamp_seconds": first,
	})

	waitNextSecond(first)
	runCmd(t, append(env, "DATE=2025-05-28"), script)
	second := val(t, scan(t, time.Now(), job), "vmhost_backup_last_success_timestamp_seconds", j)
	if second <= first {
		t.Fatalf("second run's success %v is not after the first %v", second, first)
	}
	logrotateNow(t, logFile, "compress")
	if _, err := os.Stat(logFile + ".1.gz"); err != nil {
		t.Fatalf("logrotate with compress left no rclone.log.1.gz: %v", err)
	}
	expect("rotated to rclone.log.1.gz", map[string]float64{
		"vmhost_backup_scan_success":                   1,
		"vmhost_backup_last_run_success":               1,
		"vmhost_backup_last_success_timestamp_seconds": second,
	})

	// The restore log, rotated compressed right after a restore test.
	restoreLog := filepath.Join(dir, "kvm_restore.log")
	content := "2025-05-28 10:00:00 - === KVM ホスト復元開始 ===\n2025-05-28 10:20:00 - 復元完了。必要であれば再起動してください。\n"
	if err := os.WriteFile(restoreLog, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	logrotateNow(t, restoreLog, "compress")
	rjob := Job{Name: "restore", Type: TypeRestoreLog, LogFile: restoreLog}
	rmf := scan(t, time.Now(), rjob)
	r := map[string]string{"backup_job": "restore"}
	if v := val(t, rmf, "vmhost_backup_scan_success", r); v != 1 {
		t.Errorf("restore log after rotation: scan_success = %v", v)
	}
	want := float64(time.Date(2025, 5, 28, 10, 20, 0, 0, time.Local).Unix())
	if v := val(t, rmf, "vmhost_backup_last_success_timestamp_seconds", r); v != want {
		t.Errorf("restore log after rotation: last success = %v, want %v", v, want)
	}
}
