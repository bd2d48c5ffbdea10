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

// rcloneSyncFixture prepares the operator's rclone wrapper script to sync
// a one-file tree in a temp dir, logging to rclone.log there, and the
// job that reads that log.
func rcloneSyncFixture(t *testing.T) (dir, logFile, script string, env []string, job Job) {
	t.Helper()
	testenv.LookPath(t, "rclone", "rclone")
	dir = t.TempDir()
	src, dest := filepath.Join(dir, "src"), filepath.Join(dir, "dest")
	logFile = filepath.Join(dir, "rclone.log")
	for _, d := range []string{src, dest} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script, _ = filepath.Abs("testdata/backup_to_s3.sh")
	env = []string{"SRC=" + src, "DEST=" + dest, "LOG=" + logFile, "RETRIES=1", "LC_ALL=C"}
	job = Job{Name: "s3", Type: TypeRcloneLog, LogFile: logFile}
	return dir, logFile, script, env, job
}

// TestLogRotationKeepsTheLastSuccess: logrotate runs after the nightly
// rclone job, leaving an empty log and rclone.log.1 (later .1.gz). The
// empty log is no scan error and the last success survives the rotation,
// plain and compressed; the restore log likewise.
func TestLogRotationKeepsTheLastSuccess(t *testing.T) {
	dir, logFile, script, env, job := rcloneSyncFixture(t)
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

// TestDateextRotationKeepsTheLastSuccess: RHEL's logrotate default,
// dateext, names rotations by date (rclone.log-20261124, compressed a
// rotation later with delaycompress). The newest date is the newest
// rotation, also beside a <log>.1 left from before the switch to dateext,
// and the last success survives each rotation.
func TestDateextRotationKeepsTheLastSuccess(t *testing.T) {
	dir, logFile, script, env, job := rcloneSyncFixture(t)
	j := map[string]string{"backup_job": "s3"}
	run := func(date string) float64 {
		t.Helper()
		runCmd(t, append(env, "DATE="+date), script)
		return val(t, scan(t, time.Now(), job), "vmhost_backup_last_success_timestamp_seconds", j)
	}
	expect := func(step string, want float64) {
		t.Helper()
		mf := scan(t, time.Now(), job)
		if v := val(t, mf, "vmhost_backup_scan_success", j); v != 1 {
			t.Fatalf("%s: scan_success = %v", step, v)
		}
		if v := val(t, mf, "vmhost_backup_last_success_timestamp_seconds", j); v != want {
			t.Errorf("%s: last success %v, want %v (the newest run)", step, v, want)
		}
	}
	exists := func(name string) {
		t.Helper()
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Fatalf("logrotate did not leave %s: %v", name, err)
		}
	}
	dateext := []string{"dateext", "dateformat -%Y%m%d", "compress", "delaycompress"}
	today, yesterday := time.Now().Format("20060102"), time.Now().AddDate(0, 0, -1).Format("20060102")

	// Numbered first, as before a switch to dateext: rclone.log.1 stays.
	old := run("2025-05-25")
	logrotateNow(t, logFile)
	exists("rclone.log.1")
	expect("rotated to rclone.log.1", old)

	// Yesterday's rotation (dateyesterday names it so), beside the old .1.
	waitNextSecond(old)
	first := run("2025-05-26")
	logrotateNow(t, logFile, append(dateext, "dateyesterday")...)
	exists("rclone.log-" + yesterday)
	expect("rotated to rclone.log-"+yesterday+" beside rclone.log.1", first)

	// Today's: yesterday's file is compressed now, today's stays plain.
	waitNextSecond(first)
	second := run("2025-05-27")
	logrotateNow(t, logFile, dateext...)
	exists("rclone.log-" + today)
	exists("rclone.log-" + yesterday + ".gz")
	expect("rotated to rclone.log-"+today, second)

	// compress without delaycompress: the newest rotation is a .gz.
	if err := os.Remove(filepath.Join(dir, "rclone.log-"+today)); err != nil {
		t.Fatal(err)
	}
	waitNextSecond(second)
	third := run("2025-05-28")
	logrotateNow(t, logFile, "dateext", "dateformat -%Y%m%d", "compress")
	exists("rclone.log-" + today + ".gz")
	expect("rotated to rclone.log-"+today+".gz", third)
}

// TestRotationsOrder: rotations newest first, numbered by number, dated by
// the date in the name, the two kinds interleaved by modification time.
func TestRotationsOrder(t *testing.T) {
	base := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		files map[string]time.Duration // name -> mtime after base
		want  []string
	}{
		{"numbered", map[string]time.Duration{"log.1": 3, "log.2.gz": 2, "log.10.gz": 1, "log.old": 9, "logx.1": 9}, []string{"log.1", "log.2.gz", "log.10.gz"}},
		// The name decides within a kind, not the time: a copy that
		// touched an old rotation does not make it the newest.
		{"dated", map[string]time.Duration{"log-20261123.gz": 9, "log-20261124": 1, "log-20261122.gz": 0}, []string{"log-20261124", "log-20261123.gz", "log-20261122.gz"}},
		{"other dateformats", map[string]time.Duration{"log-2026-11-23": 1, "log-2026112403": 2, "log.20261122": 0}, []string{"log-2026112403", "log-2026-11-23", "log.20261122"}},
		// Switched to dateext: the numbered leftovers are older.
		{"numbered leftovers", map[string]time.Duration{"log.1": 2, "log.2.gz": 1, "log-20261124": 4, "log-20261123.gz": 3}, []string{"log-20261124", "log-20261123.gz", "log.1", "log.2.gz"}},
		// Switched away from dateext: the dated leftovers are older.
		{"dated leftovers", map[string]time.Duration{"log.1": 4, "log-20261124.gz": 2, "log.2.gz": 3}, []string{"log.1", "log.2.gz", "log-20261124.gz"}},
		{"plain before its compressed twin", map[string]time.Duration{"log.1.gz": 1, "log.1": 1}, []string{"log.1", "log.1.gz"}},
		{"none", map[string]time.Duration{"log": 5, "other.1": 1}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, after := range tc.files {
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				mtime := base.Add(after * time.Hour)
				if err := os.Chtimes(p, mtime, mtime); err != nil {
					t.Fatal(err)
				}
			}
			got, err := rotations(filepath.Join(dir, "log"))
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, r := range got {
				names = append(names, filepath.Base(r.path))
			}
			if strings.Join(names, " ") != strings.Join(tc.want, " ") {
				t.Errorf("rotations = %v, want %v", names, tc.want)
			}
		})
	}
}

// TestQuietWeekRotations: logrotate with `ifempty` rotates an empty log
// after a quiet week, so the newest rotation is empty and the last success
// is one or more rotations back (<log>.2.gz, <log>.3, a dated .gz). The
// last success survives every rotation within max_age, for the rclone log
// and for the monthly restore test, numbered, compressed and with dateext.
func TestQuietWeekRotations(t *testing.T) {
	dir, logFile, script, env, job := rcloneSyncFixture(t)
	j := map[string]string{"backup_job": "s3"}
	expect := func(step string, job Job, j map[string]string, want map[string]float64) {
		t.Helper()
		mf := scan(t, time.Now(), job)
		for name, w := range want {
			if v := val(t, mf, name, j); v != w {
				t.Errorf("%s: %s = %v, want %v", step, name, v, w)
			}
		}
	}
	exists := func(names ...string) {
		t.Helper()
		for _, name := range names {
			if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
				t.Fatalf("logrotate did not leave %s: %v", name, err)
			}
		}
	}

	runCmd(t, append(env, "DATE=2025-05-27"), script)
	success := val(t, scan(t, time.Now(), job), "vmhost_backup_last_success_timestamp_seconds", j)
	want := map[string]float64{
		"vmhost_backup_scan_success":                   1,
		"vmhost_backup_last_run_success":               1,
		"vmhost_backup_last_success_timestamp_seconds": success,
		"vmhost_backup_last_success_transferred_files": 1,
	}
	logrotateNow(t, logFile, "ifempty", "compress")
	exists("rclone.log.1.gz")
	expect("rotated once", job, j, want)
	// Two quiet weeks: the empty log is rotated each time.
	logrotateNow(t, logFile, "ifempty", "compress")
	exists("rclone.log.1.gz", "rclone.log.2.gz")
	expect("an empty rclone.log.1.gz, the success in rclone.log.2.gz", job, j, want)
	logrotateNow(t, logFile, "ifempty", "compress")
	exists("rclone.log.3.gz")
	expect("the success in rclone.log.3.gz", job, j, want)

	// The restore test, monthly: uncompressed rotations (rclone.log.N).
	set := filepath.Join(dir, "set")
	if err := os.MkdirAll(set, 0o755); err != nil {
		t.Fatal(err)
	}
	restore, renv, restoreLog, _ := restoreScript(t, []string{"LC_ALL=C", "VIRSH=true"}, set)
	cmd := exec.Command(restore)
	cmd.Env = append(os.Environ(), renv...)
	_, _ = cmd.CombinedOutput() // cp of the empty set fails; the script logs on
	restored := lastLineTime(t, restoreLog)
	rjob := Job{Name: "restore", Type: TypeRestoreLog, LogFile: restoreLog, MaxAge: Duration(35 * 24 * time.Hour)}
	r := map[string]string{"backup_job": "restore"}
	rwant := map[string]float64{
		"vmhost_backup_scan_success":                   1,
		"vmhost_backup_last_run_success":               1,
		"vmhost_backup_last_success_timestamp_seconds": restored,
	}
	for range 3 {
		logrotateNow(t, restoreLog, "ifempty")
	}
	if _, err := os.Stat(restoreLog + ".3"); err != nil {
		t.Fatalf("no kvm_restore.log.3: %v", err)
	}
	expect("restore log: the success in kvm_restore.log.3, .2 and .1 empty", rjob, r, rwant)

	// dateext: yesterday's rotation holds the restore, today's is empty.
	restoreLog2 := filepath.Join(filepath.Dir(restoreLog), "dated", "kvm_restore.log")
	if err := os.MkdirAll(filepath.Dir(restoreLog2), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(restore)
	cmd.Env = append(os.Environ(), append(renv, "LOGFILE="+restoreLog2)...)
	_, _ = cmd.CombinedOutput()
	restored2 := lastLineTime(t, restoreLog2)
	dateext := []string{"ifempty", "dateext", "dateformat -%Y%m%d", "compress"}
	logrotateNow(t, restoreLog2, append(dateext, "dateyesterday")...)
	logrotateNow(t, restoreLog2, dateext...)
	yesterday, today := time.Now().AddDate(0, 0, -1).Format("20060102"), time.Now().Format("20060102")
	for _, name := range []string{"kvm_restore.log-" + yesterday + ".gz", "kvm_restore.log-" + today + ".gz"} {
		if _, err := os.Stat(filepath.Join(filepath.Dir(restoreLog2), name)); err != nil {
			t.Fatalf("logrotate did not leave %s: %v", name, err)
		}
	}
	rjob.LogFile = restoreLog2
	rwant["vmhost_backup_last_success_timestamp_seconds"] = restored2
	expect("dateext: an empty kvm_restore.log-"+today+".gz, the success in -"+yesterday+".gz", rjob, r, rwant)
}

// TestRotationsBeyondMaxAge: rotations are read back to the first one last
// written before max_age ago, and no further. The restore log's success
// in a rotation 10 days old shows as stale (its age) under a max_age of
// 5 days, not as never; the rotation 40 days old is not read (its run is
// not among the sets). The files are logrotate's, aged as if the
// rotations had happened then.
func TestRotationsBeyondMaxAge(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "kvm_restore.log")
	now := time.Now()
	runAt := func(age time.Duration) float64 {
		end := now.Add(-age).Truncate(time.Second)
		content := end.Add(-time.Hour).Format("2006-01-02 15:04:05") + " - === KVM ホスト復元開始 ===\n" +
			end.Format("2006-01-02 15:04:05") + " - 復元完了。必要であれば再起動してください。\n"
		if err := os.WriteFile(logFile, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(logFile, end, end); err != nil {
			t.Fatal(err)
		}
		logrotateNow(t, logFile, "ifempty", "compress")
		return float64(end.Unix())
	}
	day := 24 * time.Hour
	runAt(40 * day)
	tenDays := runAt(10 * day)
	logrotateNow(t, logFile, "ifempty", "compress") // an empty .1.gz, made now
	// logrotate made the empty rotations now; age the newest as if it
	// had been made a day ago (a quiet rotation).
	aged := now.Add(-day)
	if err := os.Chtimes(logFile+".1.gz", aged, aged); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{".1.gz", ".2.gz", ".3.gz"} {
		if _, err := os.Stat(logFile + name); err != nil {
			t.Fatalf("logrotate did not leave %s: %v", name, err)
		}
	}
	job := Job{Name: "restore", Type: TypeRestoreLog, LogFile: logFile, MaxAge: Duration(5 * day)}
	r := map[string]string{"backup_job": "restore"}
	mf := scan(t, now, job)
	if v := val(t, mf, "vmhost_backup_last_success_timestamp_seconds", r); v != tenDays {
		t.Errorf("last success %v, want the one 10 days old, %v", v, tenDays)
	}
	if v := val(t, mf, "vmhost_backup_sets", r); v != 1 {
		t.Errorf("sets %v, want 1: the rotation 40 days old is not read", v)
	}
	// With a max_age of 60 days every rotation is within it.
	job.MaxAge = Duration(60 * day)
	mf = scan(t, now, job)
	if v := val(t, mf, "vmhost_backup_sets", r); v != 2 {
		t.Errorf("max_age 60d: sets %v, want 2", v)
	}
}

// TestRotationsToRead: the newest rotation alone, or every one back to the
// first older than the window; a plain file and its compressed twin (a
// rotation being compressed) count once.
func TestRotationsToRead(t *testing.T) {
	base := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	rot := func(name string, number int, gz bool, age time.Duration) rotatedFile {
		return rotatedFile{path: name, number: number, gz: gz, mtime: base.Add(-age * 24 * time.Hour)}
	}
	all := []rotatedFile{rot("log.1", 1, false, 0), rot("log.1.gz", 1, true, 0), rot("log.2.gz", 2, true, 7), rot("log.3.gz", 3, true, 14), rot("log.4.gz", 4, true, 21)}
	for _, tc := range []struct {
		name  string
		since time.Time
		want  string
	}{
		{"newest only", time.Time{}, "log.1"},
		{"within 10 days", base.Add(-10 * 24 * time.Hour), "log.1 log.2.gz log.3.gz"},
		{"within 30 days", base.Add(-30 * 24 * time.Hour), "log.1 log.2.gz log.3.gz log.4.gz"},
		{"newest already older", base.Add(time.Hour), "log.1"},
	} {
		var names []string
		for _, r := range rotationsToRead(all, tc.since) {
			names = append(names, r.path)
		}
		if got := strings.Join(names, " "); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
	if got := rotationsToRead(nil, base); len(got) != 0 {
		t.Errorf("no rotations: %v", got)
	}
}
