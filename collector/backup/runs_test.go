package backup

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// TestRerunOnTheSameDay: kvm_backup.sh appends to its set's backup.log
// (tee -a), so a second run on the same day lands in the same log. A
// complete run, then one killed in step 2: while the second runs, the
// newest finished run is the good one; once it is known dead, the newest
// run failed and the last success is still the first run's end, never the
// killed run's. The restore script's log behaves the same way.
func TestRerunOnTheSameDay(t *testing.T) {
	_, base, script, env := kvmBackupScript(t)
	env = append(env, "DATE=2025-05-28")
	set := filepath.Join(base, "2025-05-28")
	logPath := filepath.Join(set, "backup.log")

	runCmd(t, env, script)
	firstEnd := testenv.StepLineTime(t, logPath, "[5/5]")
	waitNextSecond(firstEnd)
	cmd := startHanging(t, env, script, logPath, "[2/5]")
	if n := strings.Count(testenv.ReadFile(t, logPath), "開始"); n != 2 {
		t.Fatalf("backup.log holds %d runs, want 2", n)
	}
	secondStart := lastStartTime(t, logPath)

	job := Job{Name: "kvm-host", Type: TypeDatedDir, Path: base}
	j := map[string]string{"backup_job": "kvm-host"}
	expect := func(step string, at time.Time, mf map[string]float64) {
		t.Helper()
		got := scan(t, at, job)
		for name, want := range mf {
			if v := val(t, got, name, j); v != want {
				t.Errorf("%s: %s = %v, want %v", step, name, v, want)
			}
		}
	}
	expect("second run writing", time.Now(), map[string]float64{
		"vmhost_backup_running":                        1,
		"vmhost_backup_last_run_success":               1,
		"vmhost_backup_last_success_timestamp_seconds": firstEnd,
		"vmhost_backup_last_run_timestamp_seconds":     secondStart,
		"vmhost_backup_sets":                           1,
	})
	killGroup(cmd)
	expect("second run killed", time.Now().Add(2*time.Hour), map[string]float64{
		"vmhost_backup_running":                        0,
		"vmhost_backup_last_run_success":               0,
		"vmhost_backup_last_success_timestamp_seconds": firstEnd,
		"vmhost_backup_sets":                           1,
	})

	// The restore log: a complete restore test, then one killed in step 2.
	restore, renv, restoreLog, _ := restoreScript(t, env, set)
	runCmd(t, renv, restore)
	restored := lastLineTime(t, restoreLog)
	waitNextSecond(restored)
	killGroup(startHanging(t, renv, restore, restoreLog, "[2/4]"))
	rjob := Job{Name: "restore-test", Type: TypeRestoreLog, LogFile: restoreLog}
	r := map[string]string{"backup_job": "restore-test"}
	mf := scan(t, time.Now().Add(2*time.Hour), rjob)
	for name, want := range map[string]float64{
		"vmhost_backup_running":                        0,
		"vmhost_backup_last_run_success":               0,
		"vmhost_backup_last_success_timestamp_seconds": restored,
		"vmhost_backup_sets":                           2,
	} {
		if v := val(t, mf, name, r); v != want {
			t.Errorf("restore killed: %s = %v, want %v", name, v, want)
		}
	}
}

// waitNextSecond returns once the wall clock is past the second after t
// (Unix seconds), so that the next log line carries a later time stamp.
func waitNextSecond(t float64) {
	for float64(time.Now().Unix()) <= t {
		time.Sleep(50 * time.Millisecond)
	}
}

// lastStartTime is the time of the log's last "開始" line.
func lastStartTime(t *testing.T, path string) float64 {
	t.Helper()
	var last string
	for _, line := range strings.Split(testenv.ReadFile(t, path), "\n") {
		if strings.Contains(line, "開始") {
			last = line
		}
	}
	tm, err := time.ParseInLocation("2006-01-02 15:04:05", last[:19], time.Local)
	if err != nil {
		t.Fatal(err)
	}
	return float64(tm.Unix())
}
