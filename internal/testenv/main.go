package testenv

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	namespacesMu sync.Mutex
	namespaces   []*Process
)

func trackNamespace(p *Process) {
	namespacesMu.Lock()
	defer namespacesMu.Unlock()
	namespaces = append(namespaces, p)
}

// Main runs a package's tests that start libvirtd and checks afterwards
// that they were hermetic: the host's libvirt directories are as they were
// and no daemon namespace outlived its test. Use it as
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
//
// Main also points TMPDIR into the process's temp dir, so the tests' own
// temp dirs (t.TempDir, os.MkdirTemp) live there too: a test binary
// killed before its clean-up ran (CI's timeout, an operator's ^C^C)
// leaves nothing that the next test process does not remove.
func Main(m *testing.M) int {
	before := snapshotDirs(HostLibvirtDirs)
	if err := tmpdirInProcessDir(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: creating the test process's temp dir: %v\n", err)
		return 1
	}
	code := m.Run()

	namespacesMu.Lock()
	for _, p := range namespaces {
		select {
		case <-p.Exited():
		default:
			fmt.Fprintf(os.Stderr, "testenv: a libvirtd namespace (pid %d) outlived its test; killing it\n", p.Cmd.Process.Pid)
			p.Signal(os.Kill)
			code = max(code, 1)
		}
	}
	namespacesMu.Unlock()
	if processDir != "" {
		os.RemoveAll(processDir)
	}
	if diff := diffSnapshots(before, snapshotDirs(HostLibvirtDirs)); diff != "" {
		fmt.Fprintf(os.Stderr, "testenv: the tests changed the host's libvirt directories (a test daemon escaped its mount namespace, or a system libvirtd ran meanwhile):\n%s", diff)
		code = max(code, 1)
	}
	return code
}

// tmpdirInProcessDir points TMPDIR at a directory in the process's temp
// dir, telling test binaries started by tests where the machine's is.
func tmpdirInProcessDir() error {
	dir, err := processTempDir()
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return err
	}
	// Sticky and open to all, like /tmp: some tests run programs as
	// other users.
	if err := os.Chmod(tmp, os.ModeSticky|0o777); err != nil {
		return err
	}
	if err := os.Setenv(processDirBaseEnv, processDirBase()); err != nil {
		return err
	}
	return os.Setenv("TMPDIR", tmp)
}

// snapshotDirs describes every entry below dirs: type, mode, owner, size,
// modification time and, for files, a content hash.
func snapshotDirs(dirs []string) map[string]string {
	snap := map[string]string{}
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				snap[path] = "error: " + err.Error()
				return nil
			}
			info, err := d.Info()
			if err != nil {
				snap[path] = "error: " + err.Error()
				return nil
			}
			desc := fmt.Sprintf("%s %d %s", info.Mode(), info.Size(), info.ModTime().Format(time.RFC3339Nano))
			if info.Mode().IsRegular() {
				if data, err := os.ReadFile(path); err == nil {
					desc += fmt.Sprintf(" sha256:%x", sha256.Sum256(data))
				}
			}
			snap[path] = desc
			return nil
		})
		if err != nil {
			snap[dir] = "error: " + err.Error()
		}
	}
	return snap
}

func diffSnapshots(before, after map[string]string) string {
	var lines []string
	for path, was := range before {
		if now, ok := after[path]; !ok {
			lines = append(lines, "  removed "+path)
		} else if now != was {
			lines = append(lines, fmt.Sprintf("  changed %s: %s -> %s", path, was, now))
		}
	}
	for path, now := range after {
		if _, ok := before[path]; !ok {
			lines = append(lines, "  added "+path+": "+now)
		}
	}
	slices.Sort(lines)
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}

// Eventually polls check until it reports done or timeout passes, then
// fails the test with what check last saw. Tests wait for states this
// way, never for a fixed time: starting QEMU under TCG on 2 cores takes
// anywhere from seconds to over a minute.
func Eventually(t testing.TB, timeout time.Duration, what string, check func() (done bool, saw string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		done, saw := check()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last seen: %s", what, timeout, saw)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// processDirPrefix names the per-process temp dirs; the PID after it tells
// which test process a dir belongs to.
const processDirPrefix = "vmhost-test-"

var (
	processDirOnce sync.Once
	processDir     string
	processDirErr  error
)

// ProcessTempDir is the temp dir of this test process, traversable by other
// users (QEMU runs as libvirt-qemu, some tests as nobody): the exporter
// binary, daemon state and the shared capabilities cache live below it.
// Main removes it. A test process killed before Main could do so leaves
// it behind; the next test process that needs one removes it.
func ProcessTempDir(t testing.TB) string {
	t.Helper()
	dir, err := processTempDir()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func processTempDir() (string, error) {
	processDirOnce.Do(func() {
		removeStaleProcessDirs()
		processDir, processDirErr = os.MkdirTemp(processDirBase(), fmt.Sprintf("%s%d-", processDirPrefix, os.Getpid()))
		if processDirErr == nil {
			processDirErr = os.Chmod(processDir, 0o755)
		}
	})
	return processDir, processDirErr
}

// processDirBaseEnv carries the machine's temp dir to test binaries that
// tests start, whose TMPDIR Main has pointed into its process dir: their
// process dirs sit beside it, not inside, which keeps libvirtd's socket
// paths within the 108 bytes a unix socket address holds.
const processDirBaseEnv = "VMHOST_TEST_TMPDIR_BASE"

func processDirBase() string {
	if dir := os.Getenv(processDirBaseEnv); dir != "" {
		return dir
	}
	return os.TempDir()
}

// removeStaleProcessDirs removes the temp dirs of test processes that no
// longer run.
func removeStaleProcessDirs() {
	matches, _ := filepath.Glob(filepath.Join(processDirBase(), processDirPrefix+"*"))
	for _, m := range matches {
		pidText, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(m), processDirPrefix), "-")
		if pid, err := strconv.Atoi(pidText); err == nil && syscall.Kill(pid, 0) == syscall.ESRCH {
			os.RemoveAll(m)
		}
	}
}
