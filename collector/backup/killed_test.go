package backup

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// partialTransfer is a statistics block of an rclone that has not finished
// one of its six transfers yet.
var partialTransfer = regexp.MustCompile(`(?m)^Transferred:\s+0 / 6, 0%`)

// killRcloneMidCopy runs the operator's wrapper (env as rcloneSyncFixture
// gives it, plus date) on six 1 MiB files that rclone copies at 256 KiB/s,
// statistics every second (rclone's RCLONE_* environment, the script
// unchanged), and kills rclone with SIGKILL, as the OOM killer would, once
// its log shows a partial block: the wrapper has no `set -e` and appends
// its "Backup completed at" line all the same. It returns the log as it
// was before the run.
func killRcloneMidCopy(t *testing.T, src, logFile, script string, env []string) string {
	t.Helper()
	before, _ := os.ReadFile(logFile)
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(src, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 6; i++ {
		data := make([]byte, 1<<20)
		_, _ = rand.Read(data)
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f%d.bin", i)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(script)
	cmd.Env = append(append(os.Environ(), env...), "RCLONE_STATS=1s", "RCLONE_BWLIMIT=256k")
	p := testenv.StartCommand(t, cmd)
	var rclonePID int
	testenv.Eventually(t, 30*time.Second, "rclone's log shows a partial transfer", func() (bool, string) {
		b, _ := os.ReadFile(logFile)
		if !partialTransfer.Match(b[len(before):]) {
			return false, string(b[len(before):])
		}
		rclonePID = childNamed(cmd.Process.Pid, "rclone")
		return rclonePID != 0, "no rclone child of the wrapper"
	})
	if err := syscall.Kill(rclonePID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.WaitExited(t, 30*time.Second, "the wrapper, after rclone was killed")
	after := testenv.ReadFile(t, logFile)
	if lines := strings.Split(strings.TrimSpace(after), "\n"); !strings.HasPrefix(lines[len(lines)-1], "Backup completed at") {
		t.Fatalf("the wrapper did not append its end line after the kill:\n%s", after[len(before):])
	}
	if strings.Count(after[len(before):], "Transferred:            6 / 6") > 0 {
		t.Fatalf("rclone finished before it was killed:\n%s", after[len(before):])
	}
	return string(before)
}

// childNamed is the PID of a child of pid whose command is name, or 0.
func childNamed(pid int, name string) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	for _, f := range strings.Fields(string(b)) {
		child, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", child)); strings.TrimSpace(string(comm)) == name {
			return child
		}
	}
	return 0
}

// TestKilledRcloneIsNoSuccess: rclone killed with SIGKILL mid-copy
// ("Transferred: 0 / 6"), then the wrapper's "Backup completed at" line.
// The run failed: rclone's own last statistics do not say every transfer
// finished. The last success stays the complete run before it, and the
// failed run says why and where it is in the log.
func TestKilledRcloneIsNoSuccess(t *testing.T) {
	dir, logFile, script, env, job := rcloneSyncFixture(t)
	j := map[string]string{"backup_job": "s3"}
	runCmd(t, append(env, "DATE=2025-05-27"), script)
	first := val(t, scan(t, time.Now(), job), "vmhost_backup_last_success_timestamp_seconds", j)
	waitNextSecond(first)

	before := killRcloneMidCopy(t, filepath.Join(dir, "src"), logFile, script, append(env, "DATE=2025-05-28"))
	mf := scan(t, time.Now(), job)
	for _, c := range []struct {
		name string
		want float64
	}{
		{"vmhost_backup_scan_success", 1},
		{"vmhost_backup_sets", 2},
		{"vmhost_backup_running", 0},
		{"vmhost_backup_last_run_success", 0},
		{"vmhost_backup_last_run_errors", 0}, // SIGKILL leaves no ERROR line
		{"vmhost_backup_last_success_timestamp_seconds", first},
	} {
		if got := val(t, mf, c.name, j); got != c.want {
			t.Errorf("after the kill: %s = %v, want %v", c.name, got, c.want)
		}
	}
	if got := val(t, mf, "vmhost_backup_last_run_timestamp_seconds", j); got <= first {
		t.Errorf("last run %v is not the killed run after %v", got, first)
	}

	// The reason and the evidence: the killed run's first line (rclone's
	// bandwidth limiter) and the wrapper's end line, by line number.
	job.setDefaults()
	d, err := scanRcloneLog(job, time.Now(), time.Local, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := d.LastFinished
	if want := "rclone stopped at 0 of 6 transfers (killed?)"; r.Reason != want {
		t.Errorf("reason %q, want %q", r.Reason, want)
	}
	lines := strings.Split(strings.TrimSuffix(testenv.ReadFile(t, logFile), "\n"), "\n")
	startLine := strings.Count(before, "\n") + 1
	if r.StartRef.File != logFile || r.StartRef.Line != startLine || r.StartRef.Text != lines[startLine-1] || !strings.Contains(r.StartRef.Text, "bandwidth limiter") {
		t.Errorf("start of the killed run %+v, want line %d of %s: %q", r.StartRef, startLine, logFile, lines[startLine-1])
	}
	if r.EndRef.File != logFile || r.EndRef.Line != len(lines) || r.EndRef.Text != lines[len(lines)-1] {
		t.Errorf("end of the killed run %+v, want line %d: %q", r.EndRef, len(lines), lines[len(lines)-1])
	}
	// The line that shows it: the bytes line opening rclone's last
	// statistics before the wrapper's line ("Transferred: 424 KiB / 6
	// MiB, 7%"), quoted by /backups: how far the copy got, which the
	// file count beneath it ("0 / 6") does not say (an operator trial
	// found 26 of 36 files at 8 % of the bytes).
	lastStats := 0
	for i, l := range lines {
		if strings.HasPrefix(l, "Transferred:") && strings.Contains(l, "B / ") {
			lastStats = i + 1
		}
	}
	if r.Evidence.File != logFile || r.Evidence.Line != lastStats || !strings.Contains(r.Evidence.Text, " / 6 MiB, ") {
		t.Errorf("evidence of the killed run %+v, want line %d of %s, the statistics' bytes line", r.Evidence, lastStats, logFile)
	}
	if s := d.LastSuccess; s == nil || s.Reason != "" || s.EndRef.Line != startLine-1 {
		t.Errorf("the complete run before: %+v, want a success ending at line %d", s, startLine-1)
	}

	// The next night's run completes: a success again.
	waitNextSecond(val(t, mf, "vmhost_backup_last_run_timestamp_seconds", j))
	runCmd(t, append(env, "DATE=2025-05-29"), script)
	mf = scan(t, time.Now(), job)
	if got := val(t, mf, "vmhost_backup_last_run_success", j); got != 1 {
		t.Errorf("the complete run after the killed one: last_run_success %v", got)
	}
	if got := val(t, mf, "vmhost_backup_last_success_transferred_files", j); got != 6 {
		t.Errorf("the complete run after the killed one: transferred files %v, want 6", got)
	}
}

// TestRcloneStatisticsDecide: which of rclone's statistics blocks make a
// run complete, as rclone 1.60 prints them (copied from its logs).
func TestRcloneStatisticsDecide(t *testing.T) {
	const head = "2026/12/01 17:17:01 INFO  : a: Copied (new)\n2026/12/01 17:17:02 INFO  : \n"
	for _, tc := range []struct {
		name, stats, reason string
		evidence            string // the text of the line quoted as evidence
	}{
		{"all copied", "Transferred:   \t          6 B / 6 B, 100%, 0 B/s, ETA -\nTransferred:            2 / 2, 100%\nElapsed time:         0.0s\n", "", ""},
		// An unchanged tree: no files line, nothing to transfer.
		{"nothing to transfer", "Transferred:   \t          0 B / 0 B, -, 0 B/s, ETA -\nChecks:                 2 / 2, 100%\nElapsed time:         0.0s\n", "", ""},
		{"deleted only", "Transferred:   \t          0 B / 0 B, -, 0 B/s, ETA -\nChecks:                 2 / 2, 100%\nDeleted:                1 (files), 0 (dirs)\nElapsed time:         0.0s\n", "", ""},
		{"killed mid-copy", "Transferred:   \t    1.664 MiB / 6 MiB, 28%, 594.170 KiB/s, ETA 7s\nTransferred:            0 / 6, 0%\nElapsed time:         3.1s\nTransferring:\n *                                            f1: 33% /1Mi, 141.382Ki/s, 4s\n",
			"rclone stopped at 0 of 6 transfers (killed?)", "Transferred:   \t    1.664 MiB / 6 MiB, 28%, 594.170 KiB/s, ETA 7s"}, // the bytes line: how far it got
		{"killed while checking", "Transferred:   \t          0 B / 0 B, -, 0 B/s, ETA -\nChecks:                 2 / 9, 22%\nElapsed time:         1.0s\nChecking:\n *                                             c:  0% /1Mi, 0/s, -\n",
			"rclone stopped at 2 of 9 checks (killed?)", "Checks:                 2 / 9, 22%"},
		{"killed with the last file in flight", "Transferred:   \t    5.900 MiB / 6 MiB, 98%, 594.170 KiB/s, ETA 0s\nTransferred:            5 / 6, 83%\nElapsed time:         9.1s\nTransferring:\n *                                            f6: 90% /1Mi, 141.382Ki/s, 0s\n",
			"rclone stopped at 5 of 6 transfers (killed?)", "Transferred:   \t    5.900 MiB / 6 MiB, 98%, 594.170 KiB/s, ETA 0s"},
		{"bytes short", "Transferred:   \t    5.900 MiB / 6 MiB, 98%, 594.170 KiB/s, ETA 0s\nElapsed time:         9.1s\n", "rclone stopped at 5.900 MiB of 6 MiB (98%, killed?)",
			"Transferred:   \t    5.900 MiB / 6 MiB, 98%, 594.170 KiB/s, ETA 0s"},
		{"no statistics", "", "no rclone statistics (rclone was killed before its first, or runs with --stats 0 or a log level above INFO)", "2026/12/01 17:17:02 INFO  : "}, // rclone's last line before it stopped
		{"errors in the statistics", "Transferred:   \t          6 B / 6 B, 100%, 0 B/s, ETA -\nErrors:                 2 (retrying may help)\nTransferred:            2 / 2, 100%\n", "rclone's statistics count 2 errors", "Errors:                 2 (retrying may help)"},
		{"a file still in flight", "Transferred:   \t          6 B / 6 B, 100%, 0 B/s, ETA -\nTransferred:            2 / 2, 100%\nTransferring:\n *                                            f3: 10% /1Mi, 1Ki/s, 9s\n",
			"rclone stopped with transfers in progress (killed?)", " *                                            f3: 10% /1Mi, 1Ki/s, 9s"},
		// The first ERROR line is quoted in the reason and as evidence.
		{"an error line", "2026/12/01 17:17:03 ERROR : b: Failed to copy: permission denied\nTransferred:   \t          6 B / 6 B, 100%, 0 B/s, ETA -\nTransferred:            2 / 2, 100%\n",
			"rclone logged 1 ERROR line, first: b: Failed to copy: permission denied (line 3 of rclone.log)",
			"2026/12/01 17:17:03 ERROR : b: Failed to copy: permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logFile := filepath.Join(t.TempDir(), "rclone.log")
			content := head + tc.stats + "\nBackup completed at Tue Dec  1 17:17:05 UTC 2026\n"
			if err := os.WriteFile(logFile, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			job := Job{Name: "s3", Type: TypeRcloneLog, LogFile: logFile, MaxAge: Duration(24 * time.Hour)}
			job.setDefaults()
			d, err := scanRcloneLog(job, time.Date(2026, 12, 1, 18, 0, 0, 0, time.UTC), time.UTC, nil)
			if err != nil {
				t.Fatal(err)
			}
			r := d.LastFinished
			if r.Reason != tc.reason || r.Success != (tc.reason == "") {
				t.Errorf("success %v reason %q, want %q", r.Success, r.Reason, tc.reason)
			}
			if n := bytes.Count([]byte(content), []byte("\n")); r.EndRef.Line != n || r.StartRef.Line != 1 {
				t.Errorf("lines %d-%d, want 1-%d", r.StartRef.Line, r.EndRef.Line, n)
			}
			if r.Evidence.Text != tc.evidence {
				t.Errorf("evidence %+v, want the line %q", r.Evidence, tc.evidence)
			}
		})
	}
}
