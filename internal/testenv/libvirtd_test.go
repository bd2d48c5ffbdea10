package testenv

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// TestDaemonsSideBySide: two private daemons, each running a QEMU guest of
// the same name, as two test binaries would. Each sees only its own guest
// (with a shared /etc/libvirt/qemu or /run/libvirt/qemu the second define
// or start would collide with the first), and neither writes to the host's
// libvirt directories (checked by Main after the test).
func TestDaemonsSideBySide(t *testing.T) {
	a, b := StartLibvirtd(t), StartLibvirtd(t)
	const name = "vmhtest-twin"
	for _, l := range []*Libvirtd{a, b} {
		l.DefineQEMU(t, name, "app")
		l.MustVirsh("qemu:///system", "start", name)
	}
	for _, l := range []*Libvirtd{a, b} {
		list := l.MustVirsh("qemu:///system", "list", "--all", "--name")
		if got := strings.Fields(list); len(got) != 1 || got[0] != name {
			t.Errorf("daemon in %s lists %q, want only %s", l.Dir, got, name)
		}
		if state := strings.TrimSpace(l.MustVirsh("qemu:///system", "domstate", name)); state != "running" {
			t.Errorf("daemon in %s: %s is %q", l.Dir, name, state)
		}
	}
	pa, pb := a.GuestPID(t, name), b.GuestPID(t, name)
	if pa == pb {
		t.Fatalf("both daemons report guest PID %d", pa)
	}
	// The guest survives a crash of its daemon, as on a real host, and the
	// restarted daemon finds it running.
	a.Kill()
	if !alive(pa) {
		t.Errorf("guest %d died with its daemon", pa)
	}
	a.Start()
	Eventually(t, time.Minute, "guest running after the daemon's restart", func() (bool, string) {
		out, _ := a.Virsh("qemu:///system", "domstate", name)
		return strings.TrimSpace(out) == "running", out
	})
	// Stopping a daemon ends its guests; the other daemon's guest runs on.
	a.Stop()
	Eventually(t, 30*time.Second, "guest of the stopped daemon gone", func() (bool, string) {
		return !alive(pa), fmt.Sprintf("pid %d alive", pa)
	})
	if !alive(pb) {
		t.Errorf("the other daemon's guest %d died too", pb)
	}
}

func alive(pid int) bool {
	// A zombie is dead for our purpose; /proc/PID/stat says Z.
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(stat), ')')
	return i > 0 && !strings.HasPrefix(strings.TrimSpace(string(stat[i+1:])), "Z")
}

// helperEnv makes TestKilledTestLeavesNothing's child run
// TestHelperHoldsEverything instead of skipping it.
const helperEnv = "VMHOST_TESTENV_HELPER"

// TestHelperHoldsEverything is the child of TestKilledTestLeavesNothing: a
// test that has a daemon, a running guest and an exporter when it is
// killed. It prints their PIDs and directories, then waits to be killed.
func TestHelperHoldsEverything(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		t.Skip("run by TestKilledTestLeavesNothing")
	}
	l := StartLibvirtd(t)
	l.DefineQEMU(t, "vmhtest-orphan", "app")
	l.MustVirsh("qemu:///system", "start", "vmhtest-orphan")
	e := StartExporter(t, "--libvirt.socket="+l.SockRO, "--libvirt.uri=qemu:///system")
	fmt.Printf("HOLDING pids=%d,%d,%d,%d dirs=%s,%s\n", l.ns.Cmd.Process.Pid, l.daemonPID(), l.GuestPID(t, "vmhtest-orphan"),
		e.Cmd.Process.Pid, l.Dir, processDir)
	time.Sleep(10 * time.Minute)
}

// TestKilledTestLeavesNothing kills (SIGKILL, no cleanup runs) a test
// binary that holds a libvirtd, a QEMU guest and an exporter: all of them
// must end with it. Its temp dirs stay (nothing can remove them at a
// SIGKILL); the next test process removes the stale capabilities cache.
func TestKilledTestLeavesNothing(t *testing.T) {
	RequireRoot(t, "a private libvirtd needs root for its namespaces")
	LookPath(t, "libvirtd", "libvirt-daemon")
	LookPath(t, "qemu-system-x86_64", "qemu-system-x86")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldsEverything$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	lines := make(chan string)
	var seen strings.Builder
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var pids []int
	var dirs []string
	timeout := time.After(3 * time.Minute)
	for pids == nil {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("helper ended early:\n%s", seen.String())
			}
			seen.WriteString(line + "\n")
			if rest, ok := strings.CutPrefix(line, "HOLDING pids="); ok {
				p, d, _ := strings.Cut(rest, " dirs=")
				for _, f := range strings.Split(p, ",") {
					n, _ := strconv.Atoi(f)
					pids = append(pids, n)
				}
				dirs = strings.Split(d, ",")
			}
		case <-timeout:
			t.Fatalf("helper did not get ready:\n%s", seen.String())
		}
	}
	go func() {
		for range lines {
		}
	}()
	for i, pid := range pids {
		if pid <= 0 || !alive(pid) {
			t.Fatalf("process %d of %v (namespace init, libvirtd, guest, exporter) is not running before the kill", i, pids)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	Eventually(t, 30*time.Second, "every process of the killed test gone", func() (bool, string) {
		var left []int
		for _, pid := range pids {
			if alive(pid) {
				left = append(left, pid)
			}
		}
		return len(left) == 0, fmt.Sprintf("still running: %v of %v", left, pids)
	})
	// What a SIGKILL leaves: the temp dir of the killed process, which
	// the next test process removes by itself.
	if !strings.HasPrefix(dirs[0], dirs[1]+"/") {
		t.Errorf("the daemon's dir %s is not below the process temp dir %s", dirs[0], dirs[1])
	}
	removeStaleProcessDirs()
	if _, err := os.Stat(dirs[1]); !os.IsNotExist(err) {
		t.Errorf("the killed test's temp dir %s was not removed as stale: %v", dirs[1], err)
	}
}
