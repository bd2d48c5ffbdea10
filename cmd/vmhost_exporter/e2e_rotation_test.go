package main

import (
	"context"
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

	dto "github.com/prometheus/client_model/go"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// endLineTime is the time the wrapper wrote into its last "Backup
// completed at $(date)" line, read the simple way.
func endLineTime(t *testing.T, log string) float64 {
	t.Helper()
	var last string
	for _, line := range strings.Split(testenv.ReadFile(t, log), "\n") {
		if v, ok := strings.CutPrefix(line, "Backup completed at "); ok {
			last = v
		}
	}
	tm, err := time.ParseInLocation(time.UnixDate, last, time.Local)
	if err != nil {
		t.Fatalf("%s: end line %q: %v", log, last, err)
	}
	return float64(tm.Unix())
}

// logrotate rotates the logs with the real logrotate, forced, with a
// private state file and config in a temp dir.
func logrotate(t *testing.T, conf string) {
	t.Helper()
	bin := testenv.LookPath(t, "logrotate", "logrotate")
	dir := t.TempDir()
	path := filepath.Join(dir, "logrotate.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-f", "-s", filepath.Join(dir, "state"), path).CombinedOutput(); err != nil {
		t.Fatalf("logrotate: %v\n%s", err, out)
	}
}

// killRclone runs the wrapper on six 1 MiB files that rclone copies at
// 256 KiB/s with statistics every second (rclone's own environment
// variables; the script is unchanged) and kills rclone with SIGKILL once
// its log shows "Transferred: 0 / 6": the wrapper appends its end line all
// the same.
func killRclone(t *testing.T, src, log string, env ...string) {
	t.Helper()
	for i := 1; i <= 6; i++ {
		data := make([]byte, 1<<20)
		_, _ = rand.Read(data)
		writeFile(t, filepath.Join(src, fmt.Sprintf("f%d.bin", i)), string(data), time.Time{})
	}
	before, _ := os.ReadFile(log)
	cmd := exec.Command(filepath.Join(testenv.RepoRoot(), "collector", "backup", "testdata", "backup_to_s3.sh"))
	cmd.Env = append(append(os.Environ(), env...), "RCLONE_STATS=1s", "RCLONE_BWLIMIT=256k")
	p := testenv.StartCommand(t, cmd)
	partial := regexp.MustCompile(`(?m)^Transferred:\s+0 / 6, 0%`)
	rclonePID := 0
	testenv.Eventually(t, 30*time.Second, "a partial transfer in rclone's log", func() (bool, string) {
		b, _ := os.ReadFile(log)
		if !partial.Match(b[len(before):]) {
			return false, string(b[len(before):])
		}
		children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
		for _, f := range strings.Fields(string(children)) {
			if comm, _ := os.ReadFile("/proc/" + f + "/comm"); strings.TrimSpace(string(comm)) == "rclone" {
				rclonePID, _ = strconv.Atoi(f)
			}
		}
		return rclonePID != 0, "no rclone child of the wrapper"
	})
	if err := syscall.Kill(rclonePID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.WaitExited(t, 30*time.Second, "the wrapper, after rclone was killed")
	if tail := testenv.ReadFile(t, log)[len(before):]; !strings.Contains(tail, "\nBackup completed at ") || strings.Contains(tail, "Transferred:            6 / 6") {
		t.Fatalf("not a run killed mid-copy and ended by the wrapper:\n%s", tail)
	}
}

// TestKilledAndRotatedBackupsAsTheService: a week the way the tools leave
// it, read by the exporter as the shipped unit runs it.
//
//   - The nightly rclone sync succeeds; logrotate (compress, ifempty)
//     rotates its log, then rotates the empty log after a quiet week: an
//     empty rclone.log.1.gz, the success in rclone.log.2.gz. Tonight
//     rclone is killed at 0 of 6 transfers and the wrapper writes its end
//     line: the run failed, the last success is the one in .2.gz.
//   - The monthly restore test succeeds; logrotate with dateext rotates
//     it (yesterday's name), then the empty log (today's): the success is
//     in kvm_restore.log-<yesterday>.gz.
//
// The exact values hold for an exporter started fresh (a restart in that
// window has only the files), and the shipped rules, run by Prometheus
// over those values, say the run failed and nothing about "never" or
// "stale".
func TestKilledAndRotatedBackupsAsTheService(t *testing.T) {
	testenv.LookPath(t, "rclone", "rclone")
	dir := testenv.SharedTempDir(t)
	src, dest := filepath.Join(dir, "src"), filepath.Join(dir, "dest")
	rcloneLog, restoreLog := filepath.Join(dir, "log", "rclone.log"), filepath.Join(dir, "log", "kvm_restore.log")
	writeFile(t, filepath.Join(src, "a.txt"), "hello\n", time.Time{})
	if err := os.MkdirAll(filepath.Dir(rcloneLog), 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"LC_ALL=C", "RETRIES=1", "SRC=" + src, "DEST=" + dest, "LOG=" + rcloneLog}
	runScript(t, "backup_to_s3.sh", append(env, "DATE=2025-05-27")...)
	synced := endLineTime(t, rcloneLog)

	target := filepath.Join(dir, "restored")
	for _, d := range []string{"set", "restored/libvirt", "restored/images", "restored/sysconfig", "restored/etc"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The set is empty: the script's cp calls fail and it logs on (no set -e).
	restore := exec.Command(filepath.Join(testenv.RepoRoot(), "collector", "backup", "testdata", "kvm_restore.sh"))
	restore.Env = append(os.Environ(), "LC_ALL=C", "VIRSH=true", "BACKUP_DIR="+filepath.Join(dir, "set"), "LOGFILE="+restoreLog,
		"DST_LIBVIRT="+filepath.Join(target, "libvirt"), "DST_IMAGES="+filepath.Join(target, "images"),
		"DST_SYSCONFIG="+filepath.Join(target, "sysconfig"), "DST_ETC="+filepath.Join(target, "etc"))
	_, _ = restore.CombinedOutput()
	lines := strings.Split(strings.TrimSpace(testenv.ReadFile(t, restoreLog)), "\n")
	restoredAt, err := time.ParseInLocation("2006-01-02 15:04:05", lines[len(lines)-1][:19], time.Local)
	if err != nil || !strings.Contains(lines[len(lines)-1], "復元完了") {
		t.Fatalf("the restore test did not complete: %v\n%s", err, strings.Join(lines, "\n"))
	}
	restored := float64(restoredAt.Unix())

	conf := func(restoreDate string) string {
		return rcloneLog + " {\n  rotate 7\n  create 0640 root root\n  ifempty\n  compress\n}\n" +
			restoreLog + " {\n  rotate 12\n  create 0640 root root\n  ifempty\n  compress\n  dateext\n  dateformat -%Y%m%d\n" + restoreDate + "}\n"
	}
	logrotate(t, conf("  dateyesterday\n"))
	logrotate(t, conf("")) // a quiet week: both logs empty, rotated anyway
	yesterday, today := time.Now().AddDate(0, 0, -1).Format("20060102"), time.Now().Format("20060102")
	for _, name := range []string{"rclone.log.1.gz", "rclone.log.2.gz", "kvm_restore.log-" + yesterday + ".gz", "kvm_restore.log-" + today + ".gz"} {
		if _, err := os.Stat(filepath.Join(dir, "log", name)); err != nil {
			t.Fatalf("logrotate did not leave %s: %v", name, err)
		}
	}
	if err := os.Remove(filepath.Join(src, "a.txt")); err != nil {
		t.Fatal(err)
	}
	killRclone(t, src, rcloneLog, append(env, "DATE=2025-05-28")...)
	killedAt := endLineTime(t, rcloneLog)

	cfg := filepath.Join(dir, "backup.yml")
	writeFile(t, cfg, "jobs:\n  - {name: s3, type: rclone_log, log_file: "+rcloneLog+", max_age: 8d}\n"+
		"  - {name: restore, type: restore_log, log_file: "+restoreLog+", max_age: 35d}\n", time.Time{})
	want := []struct {
		job, name string
		value     float64
	}{
		{"s3", "vmhost_backup_scan_success", 1},
		{"s3", "vmhost_backup_unreadable_paths", 0},
		{"s3", "vmhost_backup_last_success_timestamp_seconds", synced},
		{"s3", "vmhost_backup_last_run_success", 0},
		{"s3", "vmhost_backup_last_run_errors", 0},
		{"s3", "vmhost_backup_last_run_timestamp_seconds", killedAt},
		{"s3", "vmhost_backup_running", 0},
		{"s3", "vmhost_backup_sets", 2},
		{"restore", "vmhost_backup_scan_success", 1},
		{"restore", "vmhost_backup_unreadable_paths", 0},
		{"restore", "vmhost_backup_last_success_timestamp_seconds", restored},
		{"restore", "vmhost_backup_last_run_success", 1},
	}
	check := func(what string, e *testenv.Exporter) {
		t.Helper()
		mf := waitFor(t, e.URL+"/metrics", "the jobs scanned", func(mf map[string]*dto.MetricFamily) bool {
			return has("vmhost_backup_scan_success", map[string]string{"backup_job": "s3"})(mf) &&
				has("vmhost_backup_scan_success", map[string]string{"backup_job": "restore"})(mf)
		})
		for _, w := range want {
			v, ok := testenv.Value(mf, w.name, map[string]string{"backup_job": w.job})
			if !ok || v != w.value {
				t.Errorf("%s: %s{backup_job=%q} = %v (present %v), want %v", what, w.name, w.job, v, ok, w.value)
			}
		}
	}
	flags := []string{"--collector.disable-defaults", "--collector.backup", "--backup.config-file=" + cfg}
	first := testenv.StartExporterAsService(t, flags...)
	check("first exporter", first)
	first.Signal(os.Kill)
	second := testenv.StartExporterAsService(t, flags...) // the restart
	check("after a restart", second)
	// /backups, as the service reads the log: why the run failed, and the
	// line that shows it, the bytes line of rclone's last statistics
	// before the wrapper's end line (how far the copy got).
	logLines := strings.Split(testenv.ReadFile(t, rcloneLog), "\n")
	lastStats := 0
	for i, l := range logLines {
		if strings.HasPrefix(l, "Transferred:") && strings.Contains(l, "B / ") {
			lastStats = i + 1
		}
	}
	page, _ := fetch(t, second.URL+"/backups")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`<div class="reason">Why it failed: rclone stopped at [0-5] of 6 transfers \(killed\?\)</div>`),
		regexp.MustCompile(`<div>Evidence: <div class="ref"><span class="file">` + regexp.QuoteMeta(rcloneLog) + `:` + strconv.Itoa(lastStats) + `</span> <q>Transferred: +[0-9.]+ [KMG]?i?B / 6 MiB, `),
	} {
		if !want.MatchString(page) {
			t.Errorf("/backups of the service lacks %s:\n%s", want, page)
		}
	}

	rules, _ := filepath.Abs("../../rules")
	prom := testenv.StartPrometheus(t, `global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - `+rules+`/*.yml
scrape_configs:
  - job_name: vmhost
    static_configs:
      - targets: ['`+strings.TrimPrefix(second.URL, "http://")+`']
`)
	query := func(q string) int {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := prom.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		return len(r.Data.Result)
	}
	// BackupFailed fires at once (no `for`): once it was seen at three
	// evaluations, the alerts of the same group were evaluated as often.
	testenv.Eventually(t, 60*time.Second, "BackupFailed for the killed rclone run at three evaluations", func() (bool, string) {
		return query(`count_over_time(ALERTS{alertname="BackupFailed",backup_job="s3",alertstate="firing"}[1m]) >= 3`) == 1, ""
	})
	if n := query(`ALERTS{alertname="BackupFailed",backup_job="restore"}`); n != 0 {
		t.Errorf("BackupFailed for the restore test that succeeded")
	}
	// Not even pending: the `for` of BackupNeverSucceeded and
	// BackupRestoreTestStale would only hide a wrong verdict for an hour.
	if n := query(`ALERTS{alertname=~"BackupNeverSucceeded|BackupStale|BackupRestoreTestStale"}`); n != 0 {
		t.Errorf("%d never/stale alerts for jobs whose last success is in an older rotation", n)
	}
}
