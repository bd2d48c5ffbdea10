package backup

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestTimeZoneChangeDropsOldTimes: a reload that gives a job another
// time_zone makes every time read before wrong by the zones' difference,
// so a failed scan after it keeps none of them as "the last thing known".
func TestTimeZoneChangeDropsOldTimes(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().Truncate(time.Second)
	logFile := filepath.Join(dir, "restore.log")
	wall := now.Add(-time.Hour).UTC().Format("2006-01-02 15:04:05")
	if err := os.WriteFile(logFile, []byte(wall+" - === 復元開始 ===\n"+wall+" - 復元完了\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "backup.yml")
	write := func(zone string) {
		t.Helper()
		body := "jobs:\n  - name: restore\n    type: restore_log\n    log_file: " + logFile + "\n    max_age: 35d\n    time_zone: " + zone + "\n"
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	j := map[string]string{"backup_job": "restore"}
	c := New(nil, Options{Now: func() time.Time { return now }}, testLogger())
	for _, step := range []struct {
		zone        string
		scanOK      float64
		lastSuccess float64 // 0: absent
	}{
		{"UTC", 1, float64(now.Add(-time.Hour).Unix())},
		// Read as Honolulu's (UTC-10) the run ends 9 h from now: clock
		// skew, and the UTC reading is not kept.
		{"Pacific/Honolulu", 0, 0},
	} {
		write(step.zone)
		if err := c.Reload(cfg); err != nil {
			t.Fatal(err)
		}
		c.ScanOnce(context.Background())
		mf := gatherFrom(t, c)
		if v := val(t, mf, "vmhost_backup_scan_success", j); v != step.scanOK {
			t.Errorf("time_zone %s: scan_success %v, want %v", step.zone, v, step.scanOK)
		}
		if step.lastSuccess == 0 {
			absent(t, mf, "vmhost_backup_last_success_timestamp_seconds", j)
		} else if v := val(t, mf, "vmhost_backup_last_success_timestamp_seconds", j); v != step.lastSuccess {
			t.Errorf("time_zone %s: last success %v, want %v", step.zone, v, step.lastSuccess)
		}
	}
}
