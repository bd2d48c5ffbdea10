package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// runScript runs one of the operator's scripts from collector/backup/testdata
// with env added and returns the wall-clock window it ran in, whole
// seconds, as the logs have them.
func runScript(t *testing.T, script string, env ...string) (from, to int64) {
	t.Helper()
	path := filepath.Join(testenv.RepoRoot(), "collector", "backup", "testdata", script)
	cmd := exec.Command(path)
	cmd.Env = append(os.Environ(), env...)
	from = time.Now().Unix()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	return from, time.Now().Unix()
}

// jobValue returns a metric of a backup job, failing the test without it.
func jobValue(t *testing.T, mf map[string]*dto.MetricFamily, job, name string) float64 {
	t.Helper()
	v, ok := testenv.Value(mf, name, map[string]string{"backup_job": job})
	if !ok {
		t.Fatalf("%s{backup_job=%q} missing", name, job)
	}
	return v
}

func allScanned(jobs ...string) func(map[string]*dto.MetricFamily) bool {
	return func(mf map[string]*dto.MetricFamily) bool {
		for _, j := range jobs {
			if !equals("vmhost_backup_scan_success", map[string]string{"backup_job": j}, 1)(mf) {
				return false
			}
		}
		return true
	}
}

// TestLogTimesInTheOperatorsZone: the operator's scripts write local times
// without an offset (kvm_backup.sh `date '+%F %T'`, rclone's --log-file,
// `date` in the wrapper's end line). On a host in Japan (TZ=Asia/Tokyo for
// the scripts and the exporter alike) the exported epochs are the true
// instants the runs ended. An exporter in another zone (America/New_York)
// reads the same logs right when the job names their zone (time_zone);
// without it the process zone is the default.
func TestLogTimesInTheOperatorsZone(t *testing.T) {
	testenv.LookPath(t, "rsync", "rsync")
	testenv.LookPath(t, "rclone", "rclone")
	dir := testenv.SharedTempDir(t)
	src := filepath.Join(dir, "src")
	for _, d := range []string{"libvirt", "images", "network-scripts", "etc"} {
		if err := os.MkdirAll(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"etc/hosts", "etc/fstab", "images/vm-a.img"} {
		writeFile(t, filepath.Join(src, f), "x\n", time.Time{})
	}
	base, rcloneLog := filepath.Join(dir, "kvm"), filepath.Join(dir, "rclone.log")
	// No DATE: the set is named by `date +%F` in Tokyo, as on the host.
	kvmFrom, kvmTo := runScript(t, "kvm_backup.sh", "TZ=Asia/Tokyo", "LC_ALL=C", "VIRSH=true", "BACKUP_BASE="+base,
		"SRC_LIBVIRT="+filepath.Join(src, "libvirt"), "SRC_IMAGES="+filepath.Join(src, "images"),
		"SRC_NETWORK="+filepath.Join(src, "network-scripts"), "SRC_ETC="+filepath.Join(src, "etc"))
	s3From, s3To := runScript(t, "backup_to_s3.sh", "TZ=Asia/Tokyo", "LC_ALL=C", "RETRIES=1",
		"SRC="+filepath.Join(src, "etc"), "DEST="+filepath.Join(dir, "dest"), "LOG="+rcloneLog)

	jobs := func(zone string) string {
		tz := ""
		if zone != "" {
			tz = "    time_zone: " + zone + "\n"
		}
		return "  - name: kvm" + strings.ReplaceAll(zone, "/", "-") + "\n    type: dated_dir\n    path: " + base + "\n    max_age: 8d\n" + tz +
			"  - name: s3" + strings.ReplaceAll(zone, "/", "-") + "\n    type: rclone_log\n    log_file: " + rcloneLog + "\n    max_age: 26h\n" + tz
	}
	cfg := filepath.Join(dir, "backup.yml")
	writeFile(t, cfg, "jobs:\n"+jobs("")+jobs("Asia/Tokyo"), time.Time{})
	flags := []string{"--collector.disable-defaults", "--collector.backup", "--backup.config-file=" + cfg}

	inWindow := func(exporter string, mf map[string]*dto.MetricFamily, job string, from, to int64) {
		t.Helper()
		end := jobValue(t, mf, job, "vmhost_backup_last_success_timestamp_seconds")
		if end < float64(from) || end > float64(to) {
			t.Errorf("%s: job %s: last success %s, but the run ended between %s and %s",
				exporter, job, time.Unix(int64(end), 0).UTC(), time.Unix(from, 0).UTC(), time.Unix(to, 0).UTC())
		}
	}

	tokyo := testenv.StartExporterWith(t, testenv.ExporterOptions{Env: []string{"TZ=Asia/Tokyo"}}, flags...)
	mf := waitFor(t, tokyo.URL+"/metrics", "the jobs scanned", allScanned("kvm", "s3", "kvmAsia-Tokyo", "s3Asia-Tokyo"))
	for _, job := range []string{"kvm", "kvmAsia-Tokyo"} {
		inWindow("TZ=Asia/Tokyo", mf, job, kvmFrom, kvmTo)
	}
	for _, job := range []string{"s3", "s3Asia-Tokyo"} {
		inWindow("TZ=Asia/Tokyo", mf, job, s3From, s3To)
	}

	ny := testenv.StartExporterWith(t, testenv.ExporterOptions{Env: []string{"TZ=America/New_York"}}, flags...)
	mf = waitFor(t, ny.URL+"/metrics", "the jobs scanned", func(mf map[string]*dto.MetricFamily) bool {
		return allScanned("kvmAsia-Tokyo", "s3Asia-Tokyo")(mf) &&
			has("vmhost_backup_scan_success", map[string]string{"backup_job": "kvm"})(mf) &&
			has("vmhost_backup_scan_success", map[string]string{"backup_job": "s3"})(mf)
	})
	inWindow("TZ=America/New_York", mf, "kvmAsia-Tokyo", kvmFrom, kvmTo)
	inWindow("TZ=America/New_York", mf, "s3Asia-Tokyo", s3From, s3To)
	// Without time_zone the Tokyo wall clock is read as New York's, 14 h
	// later than it was: a success in the future, refused as clock skew
	// rather than exported as a backup fresh for another 14 h.
	for _, job := range []string{"kvm", "s3"} {
		if v := jobValue(t, mf, job, "vmhost_backup_scan_success"); v != 0 {
			t.Errorf("TZ=America/New_York: job %s without time_zone: scan_success %v, want 0 (clock skew)", job, v)
		}
		if _, ok := testenv.Value(mf, "vmhost_backup_last_success_timestamp_seconds", map[string]string{"backup_job": job}); ok {
			t.Errorf("TZ=America/New_York: job %s without time_zone exports a last success", job)
		}
	}
	ny.WaitOutput(t, 10*time.Second, "backup_job=kvm type=dated_dir err=\"clock skew")
}

// TestRunAcrossDSTChange: a run that starts before a DST change and ends
// after it lasts what the clock on the wall did not show: 01:30 to 03:30
// across spring forward is 1 h, across fall back 3 h. The logs are written
// as the restore script writes them, in Europe/Berlin (the exporter's TZ)
// and, for the job that names its zone, in America/New_York.
func TestRunAcrossDSTChange(t *testing.T) {
	dir := testenv.SharedTempDir(t)
	restoreLog := func(day string) string {
		return day + " 01:30:00 - === KVM ホスト復元開始 ===\n" +
			day + " 02:45:00 - [1/2] 復元中...\n" +
			day + " 03:30:00 - 復元完了。必要であれば再起動してください。\n"
	}
	cases := []struct {
		job, zone, day string
		duration       float64
		end            time.Time
	}{
		// Europe/Berlin springs forward at 02:00 CET to 03:00 CEST.
		{"berlin-spring", "", "2026-03-29", 3600, time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC)},
		// ... and falls back at 03:00 CEST to 02:00 CET.
		{"berlin-fall", "", "2026-10-25", 3 * 3600, time.Date(2026, 10, 25, 2, 30, 0, 0, time.UTC)},
		// New York springs forward at 02:00 EST to 03:00 EDT.
		{"new-york-spring", "America/New_York", "2026-03-08", 3600, time.Date(2026, 3, 8, 7, 30, 0, 0, time.UTC)},
	}
	cfgText := "jobs:\n"
	for _, tc := range cases {
		logFile := filepath.Join(dir, tc.job+".log")
		writeFile(t, logFile, restoreLog(tc.day), time.Time{})
		// running_timeout 3h: these restores write nothing for up to
		// 2h15m between two lines (01:30 CEST to 02:45 CET). Since issue
		// 24 (item 2) a silence longer than running_timeout (default 1h)
		// ends a restore run in the middle of the log too, as it already
		// did for the last run while it ran; with the default these logs
		// would read as two runs.
		cfgText += "  - name: " + tc.job + "\n    type: restore_log\n    log_file: " + logFile + "\n    max_age: 35d\n    running_timeout: 3h\n"
		if tc.zone != "" {
			cfgText += "    time_zone: " + tc.zone + "\n"
		}
	}
	cfg := filepath.Join(dir, "backup.yml")
	writeFile(t, cfg, cfgText, time.Time{})

	e := testenv.StartExporterWith(t, testenv.ExporterOptions{Env: []string{"TZ=Europe/Berlin"}},
		"--collector.disable-defaults", "--collector.backup", "--backup.config-file="+cfg)
	mf := waitFor(t, e.URL+"/metrics", "the jobs scanned", allScanned("berlin-spring", "berlin-fall", "new-york-spring"))
	for _, tc := range cases {
		if got := jobValue(t, mf, tc.job, "vmhost_backup_last_run_duration_seconds"); got != tc.duration {
			t.Errorf("%s: run duration %v s, want %v s", tc.job, got, tc.duration)
		}
		if got := jobValue(t, mf, tc.job, "vmhost_backup_last_success_timestamp_seconds"); got != float64(tc.end.Unix()) {
			t.Errorf("%s: last success %s, want %s", tc.job, time.Unix(int64(got), 0).UTC(), tc.end)
		}
	}
}

// TestZoneNamesWithoutTzdata: a minimal host or container may lack the
// tzdata package; TZ and time_zone still resolve, from the zone database
// built into the binary. The exporter runs in a sandbox whose
// /usr/share/zoneinfo is removed, with no Go toolchain to fall back on.
func TestZoneNamesWithoutTzdata(t *testing.T) {
	sb := testenv.StartSandbox(t)
	sb.Run(t, "rm", "-rf", "/usr/share/zoneinfo")
	if _, err := os.Stat(sb.Path("/usr/share/zoneinfo/Asia/Tokyo")); err == nil {
		t.Fatal("the sandbox still has /usr/share/zoneinfo")
	}
	dir := testenv.SharedTempDir(t)
	cfg := filepath.Join(dir, "backup.yml")
	writeFile(t, cfg, "jobs:\n  - name: s3\n    type: rclone_log\n    log_file: /var/log/rclone.log\n    max_age: 26h\n    time_zone: America/New_York\n", time.Time{})
	cmd := sb.Command(testenv.ExporterBinary(t), "--backup.config-check", "--backup.config-file="+cfg)
	// GOROOT: Go falls back on its toolchain's lib/time/zoneinfo.zip,
	// which a host without tzdata has no more than Go itself.
	env := append(os.Environ(), "TZ=Asia/Tokyo", "GOROOT="+filepath.Join(dir, "no-goroot"), "ZONEINFO=")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("--backup.config-check with time_zone America/New_York and no zoneinfo on the host: %v\n%s", err, out)
	}
	// config-check no longer logs (it prints "FILE: valid, N jobs" as a
	// compiler would), so its output carries no time: this wanted
	// "Backup configuration is valid" logged at +09:00 before. The
	// success line says time_zone resolved; TZ is seen below.
	if !strings.Contains(string(out), cfg+": valid, 1 job") {
		t.Errorf("want %q, got:\n%s", cfg+": valid, 1 job", out)
	}
	// --backup.explain writes its time in the exporter's zone: JST when
	// TZ=Asia/Tokyo resolved, UTC when it did not. Its exit status is the
	// job's verdict, which this test does not care for.
	cmd = sb.Command(testenv.ExporterBinary(t), "--backup.explain", "--backup.config-file="+cfg)
	cmd.Env = env
	out, _ = cmd.CombinedOutput()
	if !regexp.MustCompile(`(?m)^Backup jobs at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d JST$`).Match(out) {
		t.Errorf("want the explanation's time in JST (TZ=Asia/Tokyo), got:\n%s", out)
	}
}
