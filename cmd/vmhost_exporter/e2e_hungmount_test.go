package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// TestBackupReloadAwayFromAHungMount (issue 24 item 9, the real thing):
// two jobs' paths are on a mount that never answers, as a dead NFS
// server's does: a FUSE mount whose daemon never reads its requests,
// which only the exporter (as the shipped unit's user, in a private mount
// namespace) sees. Their scans block in the kernel; the exporter still
// answers /metrics, reports them failed with no scan ending (what
// BackupScanStuck reads) and goes on scanning the healthy job. Then the
// operator points one of them at a good path and reloads (SIGHUP, the
// unit's ExecReload): the scan interval is an hour and the old path's
// scan still hangs, yet the new path's values appear at once. The other
// stays stuck. collector/backup's TestReloadAwayFromAHungPath holds a scan
// with a test hook; this is the kernel holding it.
func TestBackupReloadAwayFromAHungMount(t *testing.T) {
	testenv.LookPath(t, "gzip", "gzip")
	root := testenv.SharedTempDir(t)
	dead, local, newPath := filepath.Join(root, "dead-nfs"), filepath.Join(root, "local"), filepath.Join(root, "new-nfs")
	for _, d := range []string{dead, local, newPath} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	localTime := now.Add(-time.Hour).Truncate(time.Second)
	localSize := finishedDump(t, filepath.Join(local, "db.sql.gz"), localTime)
	newTimes := []time.Time{now.Add(-26 * time.Hour).Truncate(time.Second), now.Add(-2 * time.Hour).Truncate(time.Second)}
	var newSize int64
	for i, mt := range newTimes {
		newSize = finishedDump(t, filepath.Join(newPath, fmt.Sprintf("db-%d.sql.gz", i)), mt)
	}

	s := testenv.StartHungMount(t, dead)
	cfg := filepath.Join(root, "backup.yml")
	config := func(moved string) string {
		return fmt.Sprintf(`jobs:
  - {name: local, type: file_glob, glob: '%s/*.sql.gz', max_age: 26h}
  - {name: stuck, type: file_glob, glob: '%s/stuck/*.sql.gz', max_age: 26h}
  - {name: moved, type: file_glob, glob: '%s/*.sql.gz', max_age: 26h}
`, local, dead, moved)
	}
	writeFile(t, cfg, config(filepath.Join(dead, "db")), time.Time{})
	e := testenv.StartExporterAsServiceIn(t, s, "--collector.disable-defaults", "--collector.backup",
		"--backup.config-file="+cfg, "--backup.scan-interval=1h", "--backup.scan-timeout=2s")
	exporterPID := func() int {
		pid := s.Inside(e.Process)
		if pid == 0 {
			t.Fatalf("the exporter is not running in the sandbox:\n%s", e.Output())
		}
		return pid
	}
	// However the test ends, the exporter is killed first: its scans of
	// the dead mount never return, so it need not be asked to stop; the
	// sandbox's init then ends the mount.
	t.Cleanup(func() {
		if pid := s.Inside(e.Process); pid != 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})

	type series = expectedSeries
	check := func(what string, mf map[string]*dto.MetricFamily, cases []series) {
		t.Helper()
		checkSeries(t, what, mf, cases)
	}
	job := func(j string) map[string]string { return map[string]string{"backup_job": j} }

	// The hang: both jobs on the dead mount time out (scan_success 0)
	// and never finish a scan (no scan timestamp); the local job is read.
	var mf map[string]*dto.MetricFamily
	testenv.Eventually(t, 20*time.Second, "the jobs on the dead mount reported stuck", func() (bool, string) {
		mf = testenv.Scrape(t, e.URL+"/metrics")
		return equals("vmhost_backup_scan_success", job("local"), 1)(mf) &&
			equals("vmhost_backup_scan_success", job("stuck"), 0)(mf) &&
			equals("vmhost_backup_scan_success", job("moved"), 0)(mf), e.Output()
	})
	check("during the hang", mf, []series{
		{"vmhost_backup_sets", job("local"), 1},
		{"vmhost_backup_last_success_timestamp_seconds", job("local"), float64(localTime.Unix())},
		{"vmhost_backup_last_success_size_bytes", job("local"), float64(localSize)},
		{"vmhost_backup_scan_timestamp_seconds", job("stuck"), -1},
		{"vmhost_backup_scan_timestamp_seconds", job("moved"), -1},
		{"vmhost_backup_last_success_timestamp_seconds", job("moved"), -1},
	})
	e.WaitOutput(t, 10*time.Second, "backup_job=stuck", "backup_job=moved", "scan has not finished")
	// A scrape never waits for a scan: it answers while the kernel holds
	// two of them.
	start := time.Now()
	testenv.Scrape(t, e.URL+"/metrics")
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("a scrape during the hang took %v", took)
	}
	// And it is the kernel that holds them: threads of the exporter wait
	// in the FUSE code (fuse_get_req: no answer ever comes), not in Go.
	testenv.Eventually(t, 10*time.Second, "a thread of the exporter waiting on FUSE", func() (bool, string) {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", exporterPID()))
		var waits []string
		for _, task := range tasks {
			w, _ := os.ReadFile(task + "/wchan")
			waits = append(waits, string(w))
			if strings.HasPrefix(string(w), "fuse_") {
				return true, ""
			}
		}
		return false, fmt.Sprintf("threads wait in %v", waits)
	})
	localScanned, _ := testenv.Value(mf, "vmhost_backup_scan_timestamp_seconds", job("local"))

	// The fix: moved points at a good path; SIGHUP.
	writeFile(t, cfg, config(newPath), time.Time{})
	reloaded := time.Now()
	if err := syscall.Kill(exporterPID(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the moved job read on its new path and the local one scanned again", func() (bool, string) {
		mf = testenv.Scrape(t, e.URL+"/metrics")
		ts, _ := testenv.Value(mf, "vmhost_backup_scan_timestamp_seconds", job("local"))
		return equals("vmhost_backup_last_success_timestamp_seconds", job("moved"), float64(newTimes[1].Unix()))(mf) && ts > localScanned, e.Output()
	})
	t.Logf("the moved job's new values appeared %v after the reload (scan interval 1h)", time.Since(reloaded).Round(time.Millisecond))
	check("after the reload", mf, []series{
		{"vmhost_backup_config_last_reload_successful", nil, 1},
		{"vmhost_backup_scan_success", job("moved"), 1},
		{"vmhost_backup_sets", job("moved"), 2},
		{"vmhost_backup_last_success_size_bytes", job("moved"), float64(newSize)},
		{"vmhost_backup_scan_success", job("local"), 1},
		{"vmhost_backup_last_success_timestamp_seconds", job("local"), float64(localTime.Unix())},
		// Still on the dead mount: still stuck, its first scan still
		// held by the kernel.
		{"vmhost_backup_scan_success", job("stuck"), 0},
		{"vmhost_backup_scan_timestamp_seconds", job("stuck"), -1},
	})
	if ts, _ := testenv.Value(mf, "vmhost_backup_scan_timestamp_seconds", job("moved")); ts < float64(reloaded.UnixNano())/1e9 {
		t.Errorf("moved: scanned at %v, before the reload at %v", ts, reloaded)
	}
	if strings.Contains(e.Output(), "internal error") {
		t.Errorf("the exporter logged an internal error:\n%s", e.Output())
	}

	// The scans on the dead mount never return: the exporter is killed
	// (SIGKILL ends a process waiting on FUSE), and ends at once.
	if err := syscall.Kill(exporterPID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.Exited():
	case <-time.After(10 * time.Second):
		t.Fatal("the exporter did not end on SIGKILL while its scans hung")
	}
}
