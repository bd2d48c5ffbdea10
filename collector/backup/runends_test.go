package backup

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// jobRuns scans the jobs as of now and returns the metrics and, by job,
// the newest finished run: the reason and evidence /backups quotes.
func jobRuns(t *testing.T, now time.Time, jobs ...Job) (map[string]*dto.MetricFamily, map[string]*run) {
	t.Helper()
	c := newTestCollector(t, now, jobs...)
	c.mu.RLock()
	defer c.mu.RUnlock()
	runs := map[string]*run{}
	for name, res := range c.results {
		if res.Data != nil {
			runs[name] = res.Data.LastFinished
		}
	}
	return gatherFrom(t, c), runs
}

// rebootCut leaves the log as a reboot in the middle of a write can: the
// end of its last line is lost, newline included (the file system had
// written the block with the line's start, not the next one), so the next
// run's first line is appended to the cut line.
func rebootCut(t *testing.T, path string) {
	t.Helper()
	b := []byte(testenv.ReadFile(t, path))
	last := strings.LastIndexByte(string(b[:len(b)-1]), '\n') + 1
	cut := last + 22 + (len(b)-last-22)/2 // keep the time stamp, lose half the message
	if err := os.Truncate(path, int64(cut)); err != nil {
		t.Fatal(err)
	}
}

// waitPast returns once the wall clock is more than d past t (Unix
// seconds, as in the logs): the next log line is then written after a
// silence longer than d.
func waitPast(t float64, d time.Duration) {
	for float64(time.Now().Unix()) <= t+d.Seconds() {
		time.Sleep(50 * time.Millisecond)
	}
}

func stamp(sec float64) string {
	return time.Unix(int64(sec), 0).Format("2006-01-02 15:04:05")
}

type want map[string]float64

func expectMetrics(t *testing.T, when string, mf map[string]*dto.MetricFamily, job string, w want) {
	t.Helper()
	for name, v := range w {
		if got := val(t, mf, name, map[string]string{"backup_job": job}); got != v {
			t.Errorf("%s: %s{%s} = %v, want %v", when, name, job, got, v)
		}
	}
}

// TestRunThatNeverEndedStaysAlone (issue 24 item 2): the host reboots in
// the middle of a run, which never writes its end line; the next run is
// judged alone: its own success, its own duration, its end the last
// success. The run that never ended is a failure of its own, and says why.
//
// The real scripts, killed with SIGKILL in step 2 (a virsh that hangs),
// as a reboot stops them. A reboot can also lose the end of the last line
// (rebootCut); the next run's start line is then glued to the cut line,
// which used to merge both runs into one: started at the killed run's
// start, ended tonight, a duration of a day.
func TestRunThatNeverEndedStaysAlone(t *testing.T) {
	_, base, script, env := kvmBackupScript(t)

	// dated_dir, the next night: its own set, the killed set ends where
	// the next run starts.
	runCmd(t, append(env, "DATE=2025-05-26"), script)
	night1 := filepath.Join(base, "2025-05-27", "backup.log")
	killGroup(startHanging(t, append(env, "DATE=2025-05-27"), script, night1, "[2/5]"))
	kvm := Job{Name: "kvm", Type: TypeDatedDir, Path: base}
	_, runs := jobRuns(t, time.Now().Add(2*time.Hour), kvm)
	killedAt := testenv.StepLineTimes(t, night1, "[2/5]")[0]
	// The reason names the step the run stopped in (issue 26: /backups
	// says where a killed run stopped); it used to begin "no end line;".
	if r, w := runs["kvm"].Reason, fmt.Sprintf("killed at step 2 of 5 (no end line); nothing written for longer than the running timeout (1h) after %s", stamp(killedAt)); r != w {
		// The set's files changed last when the run wrote [2/5] (or a
		// second later, mkdir vm_xml): accept either.
		if w2 := strings.Replace(w, stamp(killedAt), stamp(killedAt+1), 1); r != w2 {
			t.Errorf("killed, alone: reason %q, want %q", r, w)
		}
	}
	waitNextSecond(killedAt)
	runCmd(t, append(env, "DATE=2025-05-28"), script)
	night2 := filepath.Join(base, "2025-05-28", "backup.log")
	start2, end2 := testenv.StepLineTimes(t, night2, "開始")[0], testenv.StepLineTimes(t, night2, "[5/5]")[0]
	mf := scan(t, time.Now(), kvm)
	expectMetrics(t, "dated_dir, the next night", mf, "kvm", want{
		"vmhost_backup_last_run_success":               1,
		"vmhost_backup_running":                        0,
		"vmhost_backup_last_success_timestamp_seconds": end2,
		"vmhost_backup_last_run_duration_seconds":      end2 - start2,
		"vmhost_backup_sets":                           3,
	})

	// dated_dir, the same set: the host came back and the operator ran
	// the backup again by hand the same day. The reboot cut the killed
	// run's last line.
	killGroup(startHanging(t, append(env, "DATE=2025-05-28"), script, night2, "[2/5]"))
	rebootCut(t, night2)
	killedAt = testenv.StepLineTimes(t, night2, "[2/5]")[1]
	waitNextSecond(killedAt)
	runCmd(t, append(env, "DATE=2025-05-28"), script)
	starts, ends := testenv.StepLineTimes(t, night2, "開始"), testenv.StepLineTimes(t, night2, "[5/5]")
	if len(starts) != 3 || len(ends) != 2 {
		t.Fatalf("the set's log has %d start and %d end lines, want 3 and 2:\n%s", len(starts), len(ends), testenv.ReadFile(t, night2))
	}
	f, err := os.Open(night2)
	if err != nil {
		t.Fatal(err)
	}
	log, err := readStepRuns([]logPart{{Name: night2, R: f}}, withDefaults(kvm), time.Local, 0)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(log.Runs) != 3 {
		t.Fatalf("the set's log reads as %d runs, want 3: %+v", len(log.Runs), log.Runs)
	}
	killed := log.Runs[1]
	if killed.Success || !killed.Finished || float64(killed.End.Unix()) != killedAt {
		t.Errorf("the killed run: success %v, finished %v, end %v; want a failure ending at %s", killed.Success, killed.Finished, killed.End, stamp(killedAt))
	}
	// With the step it stopped in, as above.
	if w := "killed at step 2 of 5 (no end line); the next run started at " + stamp(starts[2]); killed.Reason != w {
		t.Errorf("the killed run's reason: %q, want %q", killed.Reason, w)
	}
	// Its evidence: its start line (line 7: the night's run wrote 6),
	// and its last line, the cut one, on which the rerun's start follows.
	if got := killed.StartRef; got.File != night2 || got.Line != 7 || !strings.Contains(got.Text, "開始") {
		t.Errorf("the killed run's start line: %+v, want line 7 of %s", got, night2)
	}
	if got := killed.EndRef; got.Line != 9 || !strings.HasPrefix(got.Text, stamp(killedAt)+" - [2/5]") || strings.Contains(got.Text, "開始") {
		t.Errorf("the killed run's last line: %+v, want the cut [2/5] line 9 without the rerun's start", got)
	}
	if got := log.Runs[2].StartRef; got.Line != 9 || !strings.HasPrefix(got.Text, stamp(starts[2])+" - ===") {
		t.Errorf("the rerun's start line: %+v, want the start glued to line 9", got)
	}
	mf = scan(t, time.Now(), kvm)
	expectMetrics(t, "dated_dir, rerun after a reboot", mf, "kvm", want{
		"vmhost_backup_last_run_success":               1,
		"vmhost_backup_last_success_timestamp_seconds": ends[1],
		"vmhost_backup_last_run_duration_seconds":      ends[1] - starts[2],
	})

	// restore_log, the next test restore: one appended log for every
	// restore test. Killed in step 2 by the reboot, last line cut, then
	// the next restore test.
	restore, renv, restoreLog, _ := restoreScript(t, env, filepath.Join(base, "2025-05-28"))
	killGroup(startHanging(t, renv, restore, restoreLog, "[2/4]"))
	rebootCut(t, restoreLog)
	killedAt = testenv.StepLineTimes(t, restoreLog, "[2/4]")[0]
	rjob := Job{Name: "restore-test", Type: TypeRestoreLog, LogFile: restoreLog}
	waitNextSecond(killedAt)
	runCmd(t, renv, restore)
	rstart, rend := testenv.StepLineTimes(t, restoreLog, "開始")[1], testenv.StepLineTimes(t, restoreLog, "復元完了")[0]
	mf = scan(t, time.Now(), rjob)
	expectMetrics(t, "restore_log, the next test", mf, "restore-test", want{
		"vmhost_backup_last_run_success":               1,
		"vmhost_backup_last_success_timestamp_seconds": rend,
		"vmhost_backup_last_run_duration_seconds":      rend - rstart,
		"vmhost_backup_sets":                           2,
	})

	// restore_log whose start line the job's start_pattern does not know
	// (an English variant of the script, say): no line starts a run after
	// the first, and every restore test ever made used to be one run. A
	// silence longer than running_timeout ends a run.
	_, renv2, restoreLog2, _ := restoreScript(t, env, filepath.Join(base, "2025-05-28"))
	english := Job{Name: "restore-en", Type: TypeRestoreLog, LogFile: restoreLog2,
		StartPattern: Regexp{regexp.MustCompile(`^=== restore started`)}, RunningTimeout: Duration(3 * time.Second)}
	runCmd(t, renv2, restore)
	waitPast(lastLineTime(t, restoreLog2), 3*time.Second)
	killGroup(startHanging(t, renv2, restore, restoreLog2, "[2/4]"))
	killedAt = testenv.StepLineTimes(t, restoreLog2, "[2/4]")[1]
	waitPast(killedAt, 3*time.Second)
	runCmd(t, renv2, restore)
	starts, ends = testenv.StepLineTimes(t, restoreLog2, "開始"), testenv.StepLineTimes(t, restoreLog2, "復元完了")
	mf, runs = jobRuns(t, time.Now(), english)
	expectMetrics(t, "restore_log, start line unknown", mf, "restore-en", want{
		"vmhost_backup_last_run_success":               1,
		"vmhost_backup_last_success_timestamp_seconds": ends[1],
		"vmhost_backup_last_run_duration_seconds":      ends[1] - starts[2],
		"vmhost_backup_sets":                           3,
	})
	if r := runs["restore-en"]; r.Reason != "" || r.StartRef.Line != 10 {
		t.Errorf("the newest restore test: reason %q (want none for a success), first line %d (want 10, after 6 and 3 lines)", r.Reason, r.StartRef.Line)
	}
	f, err = os.Open(restoreLog2)
	if err != nil {
		t.Fatal(err)
	}
	log, err = readStepRuns([]logPart{{Name: restoreLog2, R: f}}, withDefaults(english), time.Local, 3*time.Second)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(log.Runs) != 3 {
		t.Fatalf("%d runs, want 3", len(log.Runs))
	}
	// With the step it stopped in, as above: kvm_restore.sh has 4.
	if w := "killed at step 2 of 4 (no end line); nothing written for longer than the running timeout (3s) after " + stamp(killedAt); log.Runs[1].Reason != w {
		t.Errorf("the killed restore's reason: %q, want %q", log.Runs[1].Reason, w)
	}
}

// TestErrorOutputFailsARun (issue 24 item 5): the seed's scripts have no
// `set -e`; after a failed rsync or cp they log their final step anyway.
// With the obvious change, the script's output appended to its log
// (`exec >>"$LOGFILE" 2>&1` after the set directory is made), the error
// lines the tools print fail the run and are counted. log() then writes
// each step line twice (tee -a to the log, and its stdout, the log): one
// line, not two runs.
func TestErrorOutputFailsARun(t *testing.T) {
	src, base, script, env := kvmBackupScript(t)
	logged := appendOutputToLog(t, script)

	// A clean night: the output adds nothing, and nothing fails.
	runCmd(t, append(env, "DATE=2025-05-27"), logged)
	good := filepath.Join(base, "2025-05-27", "backup.log")
	if n := strings.Count(testenv.ReadFile(t, good), "[5/5]"); n != 2 {
		t.Fatalf("the modified script logged [5/5] %d times, want 2 (tee and its output):\n%s", n, testenv.ReadFile(t, good))
	}
	kvm := Job{Name: "kvm", Type: TypeDatedDir, Path: base}
	mf := scan(t, time.Now(), kvm)
	goodEnd := testenv.StepLineTimes(t, good, "[5/5]")[0]
	expectMetrics(t, "clean night", mf, "kvm", want{
		"vmhost_backup_last_run_success":               1,
		"vmhost_backup_last_run_errors":                0,
		"vmhost_backup_sets":                           1,
		"vmhost_backup_last_success_timestamp_seconds": goodEnd,
	})

	// The images moved to a new pool and the script still names the old
	// directory: rsync fails, the script goes on to [5/5].
	if err := os.Rename(filepath.Join(src, "images"), filepath.Join(src, "pool2")); err != nil {
		t.Fatal(err)
	}
	runCmd(t, append(env, "DATE=2025-05-28"), logged)
	bad := filepath.Join(base, "2025-05-28", "backup.log")
	text := testenv.ReadFile(t, bad)
	var errLines []int
	for i, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "rsync") {
			errLines = append(errLines, i+1)
		}
	}
	if len(errLines) != 2 || !strings.Contains(text, "[5/5]") || !strings.Contains(text, "(code 23)") {
		t.Fatalf("want rsync's two lines (change_dir failed, rsync error: ... (code 23)) and [5/5] anyway:\n%s", text)
	}
	mf, runs := jobRuns(t, time.Now(), kvm)
	expectMetrics(t, "rsync failed", mf, "kvm", want{
		"vmhost_backup_last_run_success":               0,
		"vmhost_backup_last_run_errors":                2,
		"vmhost_backup_running":                        0,
		"vmhost_backup_last_success_timestamp_seconds": goodEnd,
		"vmhost_backup_sets":                           2,
	})
	first := strings.Split(text, "\n")[errLines[0]-1]
	if w := fmt.Sprintf("2 error lines, first: %s (line %d of backup.log)", first, errLines[0]); runs["kvm"].Reason != w {
		t.Errorf("reason %q, want %q", runs["kvm"].Reason, w)
	}
	if r := runs["kvm"]; r.FirstError.File != bad || r.StartRef.Line != 1 || !strings.Contains(r.EndRef.Text, "[5/5]") {
		t.Errorf("evidence: first error %+v, start %+v, end %+v", r.FirstError, r.StartRef, r.EndRef)
	}

	// A Debian host: no /etc/sysconfig/network-scripts, so every night's
	// cp fails (and rsync again).
	if err := os.RemoveAll(filepath.Join(src, "network-scripts")); err != nil {
		t.Fatal(err)
	}
	runCmd(t, append(env, "DATE=2025-05-29"), logged)
	third := filepath.Join(base, "2025-05-29", "backup.log")
	if !strings.Contains(testenv.ReadFile(t, third), "cp: cannot stat") {
		t.Fatalf("no cp error in:\n%s", testenv.ReadFile(t, third))
	}
	mf = scan(t, time.Now(), kvm)
	expectMetrics(t, "rsync and cp failed", mf, "kvm", want{
		"vmhost_backup_last_run_success": 0,
		"vmhost_backup_last_run_errors":  3,
	})
}

// appendOutputToLog writes the operator's script with the obvious change:
// its output and errors appended to its log once the set exists.
func appendOutputToLog(t *testing.T, script string) string {
	t.Helper()
	body := testenv.ReadFile(t, script)
	const after = "mkdir -p \"$BACKUP_DIR\"\n"
	if strings.Count(body, after) != 1 {
		t.Fatalf("%s no longer makes its set with %q", script, after)
	}
	out := filepath.Join(t.TempDir(), "kvm_backup_logged.sh")
	body = strings.Replace(body, after, after+"exec >>\"$LOGFILE\" 2>&1\n", 1)
	if err := os.WriteFile(out, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestErrorLines: which lines count as errors with the default
// error_pattern, as the tools print them and with the scripts' time stamp
// (a script that logs its commands' output through log()).
func TestErrorLines(t *testing.T) {
	j := withDefaults(Job{Type: TypeDatedDir})
	for _, c := range []struct {
		line  string
		error bool
	}{
		{`rsync error: some files/attrs were not transferred (see previous errors) (code 23) at main.c(1338) [sender=3.2.7]`, true},
		{`rsync: [sender] send_files failed to open "/var/lib/libvirt/images/vm.img": Permission denied (13)`, true},
		{`rsync: write failed on "/backup/kvm/2025-05-28/images/vm.img": No space left on device (28)`, true},
		{`cp: cannot stat '/etc/sysconfig/network-scripts': No such file or directory`, true},
		{`cp: error writing '/backup/kvm/2025-05-28/etc/hosts': No space left on device`, true},
		{`No space left on device`, true},
		{`mkdir: cannot create directory '/backup/kvm/2025-05-28/images': Read-only file system`, true},
		{`/usr/local/sbin/kvm_backup.sh: line 37: virsh: command not found`, true},
		{`error: failed to get domain 'web0'`, true},
		{`2025-05-28 02:10:00 - rsync error: some files/attrs were not transferred (code 23)`, true},
		{`2025-05-28 02:10:00 - cp: cannot stat '/etc/firewalld': No such file or directory`, true},
		{`2025-05-28 02:10:00 - エラー: ディスクのコピーに失敗しました`, true},
		// Not errors.
		{`rsync warning: some files vanished before they could be transferred (code 24) at main.c(1865) [sender=3.2.7]`, false},
		{`Domain 'web0' defined from /backup/kvm/2025-05-28/vm_xml/web0.xml`, false},
		{`2025-05-28 02:10:00 - [3/5] 仮想ディスクイメージをバックアップ中...`, false},
		{`2025-05-28 02:10:00 - [4/5] ネットワーク設定などを保存中...`, false},
	} {
		log := "2025-05-28 02:00:00 - === KVM ホストバックアップ開始 ===\n" + c.line + "\n2025-05-28 03:00:00 - [5/5] バックアップ完了しました\n"
		got, err := readStepRuns([]logPart{{Name: "backup.log", R: strings.NewReader(log)}}, j, time.UTC, 0)
		if err != nil {
			t.Fatal(err)
		}
		r := got.Runs[len(got.Runs)-1]
		if isErr := r.Errors == 1; isErr != c.error || r.Success == c.error || len(got.Runs) != 1 {
			t.Errorf("%q: %d runs, errors %d, success %v; want an error line: %v", c.line, len(got.Runs), r.Errors, r.Success, c.error)
		}
	}
}

// TestErrorPatternDocumented: the README states the default error_pattern
// as the exporter applies it, so an operator can tell which lines fail a
// run (and copy it to extend it).
func TestErrorPatternDocumented(t *testing.T) {
	readme := testenv.ReadFile(t, filepath.Join(testenv.RepoRoot(), "README.md"))
	if !strings.Contains(readme, "\n"+defaultErrorPattern+"\n") {
		t.Errorf("README.md does not state the default error_pattern %s", defaultErrorPattern)
	}
}

// TestRunEvidenceAcrossARotation: the evidence of a run names the file its
// lines are in. A restore test killed by a reboot, logrotate the next
// morning (compress), then the next restore test: the killed run is in
// kvm_restore.log.1.gz, lines 1 to 3, and ended when the next one
// started, whose start is line 1 of kvm_restore.log.
func TestRunEvidenceAcrossARotation(t *testing.T) {
	_, base, script, env := kvmBackupScript(t)
	runCmd(t, append(env, "DATE=2025-05-28"), script)
	restore, renv, restoreLog, _ := restoreScript(t, env, filepath.Join(base, "2025-05-28"))
	killGroup(startHanging(t, renv, restore, restoreLog, "[2/4]"))
	killedAt := testenv.StepLineTimes(t, restoreLog, "[2/4]")[0]
	logrotateNow(t, restoreLog, "compress")
	waitNextSecond(killedAt)
	runCmd(t, renv, restore)
	next := testenv.StepLineTimes(t, restoreLog, "開始")[0]

	j := withDefaults(Job{Name: "restore-test", Type: TypeRestoreLog, LogFile: restoreLog})
	var u unreadablePaths
	rotated, err := rotations(restoreLog)
	if err != nil {
		t.Fatal(err)
	}
	f, err := openAppendedLog(restoreLog, rotationsToRead(rotated, time.Time{}), &u)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	log, err := readStepRuns(f.Parts, j, time.Local, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(log.Runs) != 2 {
		t.Fatalf("%d runs, want 2", len(log.Runs))
	}
	killed, good := log.Runs[0], log.Runs[1]
	rotatedLog := restoreLog + ".1.gz"
	if killed.StartRef.File != rotatedLog || killed.StartRef.Line != 1 || killed.EndRef.File != rotatedLog || killed.EndRef.Line != 3 ||
		!strings.HasPrefix(killed.EndRef.Text, stamp(killedAt)+" - [2/4]") {
		t.Errorf("the killed run's lines: %+v to %+v, want lines 1 to 3 of %s", killed.StartRef, killed.EndRef, rotatedLog)
	}
	// The reason names the step the restore stopped in (issue 26); it
	// used to begin "no end line;".
	if w := "killed at step 2 of 4 (no end line); the next run started at " + stamp(next); killed.Reason != w || killed.Success {
		t.Errorf("the killed run: success %v, reason %q, want a failure: %q", killed.Success, killed.Reason, w)
	}
	if good.StartRef.File != restoreLog || good.StartRef.Line != 1 || !good.Success || good.Reason != "" || !strings.Contains(good.EndRef.Text, "復元完了") {
		t.Errorf("the next restore test: success %v, reason %q, lines %+v to %+v", good.Success, good.Reason, good.StartRef, good.EndRef)
	}
}

// TestKilledRunWithoutStepCounter: a script whose lines count no steps
// (an operator's own, with start_pattern and success_pattern of its own)
// is killed; its reason cannot name a step and says only that it has no
// end line, how it ended, and quotes its last line as evidence.
func TestKilledRunWithoutStepCounter(t *testing.T) {
	logText := "2025-05-27 02:00:00 - backup start\n2025-05-27 02:00:01 - copying images\n" +
		"2025-05-28 02:00:00 - backup start\n2025-05-28 02:30:00 - backup done\n"
	j := withDefaults(Job{Name: "own", Type: TypeRestoreLog, LogFile: "own.log",
		StartPattern: Regexp{regexp.MustCompile(`^backup start`)}, SuccessPattern: Regexp{regexp.MustCompile(`^backup done`)}})
	log, err := readStepRuns([]logPart{{Name: "own.log", R: strings.NewReader(logText)}}, j, time.UTC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(log.Runs) != 2 {
		t.Fatalf("%d runs, want 2: %+v", len(log.Runs), log.Runs)
	}
	killed := log.Runs[0]
	if w := "no end line; the next run started at 2025-05-28 02:00:00"; killed.Reason != w || killed.Success || !killed.Finished {
		t.Errorf("the killed run: success %v, reason %q, want a failure: %q", killed.Success, killed.Reason, w)
	}
	if killed.EndRef.Line != 2 || killed.EndRef.Text != "2025-05-27 02:00:01 - copying images" {
		t.Errorf("the killed run's last line: %+v, want line 2", killed.EndRef)
	}
	if r := log.Runs[1]; !r.Success || r.Reason != "" || r.LastStep != "" {
		t.Errorf("the next run: %+v, want a success without reason", r)
	}
}
