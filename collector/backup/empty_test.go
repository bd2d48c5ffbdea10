package backup

import (
	"path/filepath"
	"testing"
	"time"
)

// TestEmptyJobPathIsNoBackupYet: a job configured before its first backup
// ran (an empty directory, as a fresh mount or mkdir leaves it). Each type
// reports a clean "no backup yet": the scan succeeds, no set, nothing
// running, no success, which is what BackupNeverSucceeded needs (it fires
// only while scan_success is 1). success_from: contents used to index the
// newest of no sets and end in "internal error while scanning".
func TestEmptyJobPathIsNoBackupYet(t *testing.T) {
	for _, tc := range []struct {
		name string
		job  func(dir string) Job
	}{
		{"dated_dir contents", func(dir string) Job {
			return Job{Type: TypeDatedDir, Path: dir, SuccessFrom: SuccessFromContents}
		}},
		{"dated_dir log", func(dir string) Job { return Job{Type: TypeDatedDir, Path: dir} }},
		{"vzdump", func(dir string) Job { return Job{Type: TypeVzdump, Path: dir} }},
		{"file_glob", func(dir string) Job { return Job{Type: TypeFileGlob, Glob: filepath.Join(dir, "*.sql.gz")} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job := tc.job(t.TempDir())
			job.Name = "new"
			c := newTestCollector(t, time.Now(), job)
			c.mu.RLock()
			scanErr := c.results["new"].ScanErr
			c.mu.RUnlock()
			if scanErr != "" {
				t.Errorf("scan error %q, want none", scanErr)
			}
			mf := gatherFrom(t, c)
			j := map[string]string{"backup_job": "new"}
			for name, want := range map[string]float64{
				"vmhost_backup_scan_success":    1,
				"vmhost_backup_sets":            0,
				"vmhost_backup_running":         0,
				"vmhost_backup_max_age_seconds": 24 * 3600,
			} {
				if v := val(t, mf, name, j); v != want {
					t.Errorf("%s = %v, want %v", name, v, want)
				}
			}
			absent(t, mf, "vmhost_backup_last_success_timestamp_seconds", j)
			absent(t, mf, "vmhost_backup_last_run_success", j)
		})
	}
}
