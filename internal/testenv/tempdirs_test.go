package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const tempDirChildEnv = "VMHOST_TEST_TEMPDIR_CHILD"

// TestTempDirChild is the child of TestKilledTestBinaryLeavesNoTempDir:
// it makes a temp dir the way any test does, says where, and waits to be
// killed.
func TestTempDirChild(t *testing.T) {
	if os.Getenv(tempDirChildEnv) == "" {
		t.Skip("run by TestKilledTestBinaryLeavesNoTempDir")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "state"), []byte("left by a killed test"), 0o644); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("TEMPDIR=%s\n", dir)
	select {}
}

// TestKilledTestBinaryLeavesNoTempDir kills a test binary with SIGKILL
// (no clean-up runs) after one of its tests made a t.TempDir: the dir is
// inside that process's own temp dir, which the next test process removes.
// Before Main pointed TMPDIR there, such dirs stayed in /tmp for good.
func TestKilledTestBinaryLeavesNoTempDir(t *testing.T) {
	child := StartTestChild(t, "TestTempDirChild", tempDirChildEnv+"=1")
	child.WaitOutput(t, time.Minute, "TEMPDIR=")
	dir := regexp.MustCompile(`TEMPDIR=(\S+)`).FindStringSubmatch(child.Output())[1]
	own := filepath.Join(processDirBase(), fmt.Sprintf("%s%d-", processDirPrefix, child.Cmd.Process.Pid))
	if !strings.HasPrefix(dir, own) {
		t.Fatalf("the child's t.TempDir() is %s, not inside its process temp dir %s*", dir, own)
	}
	child.Signal(os.Kill)
	if _, err := os.Stat(filepath.Join(dir, "state")); err != nil {
		t.Fatalf("the killed child's file should still be there before the next test process: %v", err)
	}
	removeStaleProcessDirs() // what the next test process does first
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s outlived the killed test binary and the next run: %v", dir, err)
	}
}
