package testenv

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Chromium runs Debian's headless Chromium once on url with extra flags
// (--dump-dom, --screenshot=...) and returns its standard output. Its
// profile, cache and temp files go into a temp dir of the test (HOME,
// XDG_* and TMPDIR point there), it never phones home (no background
// networking, updates, sync or QUIC), and it runs in a process group of its
// own that is killed when it returns, with a parent-death signal for the
// browser itself: no renderer or GPU process outlives the test.
func Chromium(t testing.TB, url string, flags ...string) string {
	t.Helper()
	bin := "/usr/bin/chromium"
	if _, err := os.Stat(bin); err != nil {
		Missing(t, "chromium", "apt-get install -y chromium")
	}
	// Short: Chromium's singleton socket goes under TMPDIR, and a Unix
	// socket path longer than 108 bytes (t.TempDir's, named after the
	// test) makes it abort.
	home, err := os.MkdirTemp(ProcessTempDir(t), "cr-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-breakpad", "--disable-dev-shm-usage",
		"--user-data-dir=" + filepath.Join(home, "profile"),
	}, flags...)
	args = append(args, url)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, "config"),
		"XDG_CACHE_HOME="+filepath.Join(home, "cache"), "TMPDIR="+home)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // helpers left in the group
	}
	if err != nil {
		t.Fatalf("chromium %s: %v\n%s", url, err, tail(stderr.String(), 30))
	}
	return stdout.String()
}
