package backup

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// TestReloadAwayFromAHungPath: a job's scan hangs on its path (held by the
// test hook, as a stat on a dead NFS mount hangs in the kernel), and the
// operator fixes the config to point the job at another path and reloads.
// The new path is scanned at once, not after the scan timeout of the round
// waiting on the old path and not never (the hung scan of the old path
// used to block every later scan of the job's name). When the old scan
// finally returns, its result is dropped: it describes a path the job no
// longer reads.
func TestReloadAwayFromAHungPath(t *testing.T) {
	dead, good := t.TempDir(), t.TempDir()
	for _, dir := range []string{dead, good} {
		if err := os.WriteFile(filepath.Join(dir, "db.sql.gz"), []byte("dump of "+dir), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-3 * time.Hour).Truncate(time.Second)
	if err := os.Chtimes(filepath.Join(dead, "db.sql.gz"), old, old); err != nil {
		t.Fatal(err)
	}
	goodTime := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	if err := os.Chtimes(filepath.Join(good, "db.sql.gz"), goodTime, goodTime); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(t.TempDir(), "backup.yml")
	writeCfg := func(dir string) {
		t.Helper()
		cfg := fmt.Sprintf("jobs:\n  - name: db\n    type: file_glob\n    glob: %s/*.sql.gz\n    max_age: 26h\n", dir)
		if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg(dead)
	cfg, err := LoadConfig(cfgFile)
	if err != nil {
		t.Fatal(err)
	}

	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	hung := make(chan struct{}, 10)
	testHookBeforeScan = func(j Job) {
		if strings.HasPrefix(j.Glob, dead) {
			hung <- struct{}{}
			<-release
		}
	}
	t.Cleanup(func() { testHookBeforeScan = nil })

	// A scan timeout far longer than the test's deadlines: the round that
	// waits on the hung scan is still waiting when the reload comes.
	c := New(cfg, Options{ScanTimeout: 10 * time.Minute, ScanInterval: time.Hour}, testLogger())
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() { c.Run(ctx); close(runDone) }()
	t.Cleanup(func() { once.Do(func() { close(release) }); cancel(); <-runDone })
	select {
	case <-hung:
	case <-time.After(10 * time.Second):
		t.Fatal("the scan of the dead path never started")
	}

	writeCfg(good)
	if err := c.Reload(cfgFile); err != nil {
		t.Fatal(err)
	}
	j := map[string]string{"backup_job": "db"}
	testenv.Eventually(t, 10*time.Second, "the job's new path scanned after the reload", func() (bool, string) {
		mf := gatherFrom(t, c)
		ok, _ := testenv.Value(mf, "vmhost_backup_scan_success", j)
		last, _ := testenv.Value(mf, "vmhost_backup_last_success_timestamp_seconds", j)
		return ok == 1 && last == float64(goodTime.Unix()), fmt.Sprintf("scan_success %v, last success %v", ok, last)
	})

	// The old path answers at last: nothing it found may replace the new
	// path's verdict.
	once.Do(func() { close(release) })
	testenv.Eventually(t, 10*time.Second, "the scan round that waited on the old path ended", func() (bool, string) {
		c.mu.RLock()
		defer c.mu.RUnlock()
		return len(c.inFlight) == 0 && !c.lastScanDone.IsZero(), fmt.Sprintf("in flight: %v, last round ended %v", c.inFlight, c.lastScanDone)
	})
	mf := gatherFrom(t, c)
	for name, want := range map[string]float64{
		"vmhost_backup_scan_success":                   1,
		"vmhost_backup_last_success_timestamp_seconds": float64(goodTime.Unix()),
		"vmhost_backup_sets":                           1,
	} {
		if v := val(t, mf, name, j); v != want {
			t.Errorf("after the old scan returned: %s = %v, want %v", name, v, want)
		}
	}
}
