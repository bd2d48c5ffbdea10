package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Sandbox is a private view of this machine for installing a package:
// /etc, /usr and /var are overlays of the machine's own whose changes land
// in the test's temp dir, /run starts empty (no systemd to tell, no
// service to start), and what runs inside has its own PID and network
// namespaces. The dpkg database, /etc/passwd and /usr/bin of the machine
// never see the installation, not even when the test binary is killed in
// the middle of it: the kernel ends the namespaces with their init, which
// ends when the test process does, and the next test run removes the temp
// dir (the directories /lib, /bin and /sbin are /usr's on Debian 12).
// StartHungMount makes another kind: the machine's files plus a dead
// mount.
type Sandbox struct {
	ns *Process
}

// sandboxedDirs are the directories a package installation writes to.
var sandboxedDirs = []string{"/etc", "/usr", "/var"}

// StartSandbox starts a sandbox that lives until the test ends.
func StartSandbox(t testing.TB) *Sandbox {
	t.Helper()
	return startSandbox(t, false)
}

// StartSandboxOnHostNetwork is StartSandbox in the machine's network
// namespace: the test reaches a server started in the sandbox (the
// exporter, with a private /run) on a loopback address of FreePort, as
// it reaches any other; a private network namespace has no loopback up.
func StartSandboxOnHostNetwork(t testing.TB) *Sandbox {
	t.Helper()
	return startSandbox(t, true)
}

func startSandbox(t testing.TB, hostNetwork bool) *Sandbox {
	t.Helper()
	RequireRoot(t, "overlay mounts in a private mount namespace need root")
	LookPath(t, "nsenter", "util-linux")
	dir, err := os.MkdirTemp(ProcessTempDir(t), "sandbox-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	plan := nsPlan{Tmpfs: []string{"/run"}, Argv: []string{"/bin/sleep", "infinity"}, HostNetwork: hostNetwork}
	for _, d := range sandboxedDirs {
		name := strings.TrimPrefix(d, "/")
		upper, work := filepath.Join(dir, "upper", name), filepath.Join(dir, "work", name)
		for _, p := range []string{upper, work} {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		plan.Overlays = append(plan.Overlays, [3]string{d, upper, work})
	}
	ns, alive := startNamespaceInit(t, plan)
	// Closing the pipe ends the init and everything in the sandbox at
	// once; StartCommand's clean-up, which runs after this one, then
	// waits for the init to be gone, before the temp dir is removed.
	t.Cleanup(func() { alive.Close() })
	s := &Sandbox{ns: ns}
	// Ready when the init has mounted everything and started its
	// placeholder: /run of the init's view is then the empty tmpfs.
	Eventually(t, 30*time.Second, "the sandbox's mounts", func() (bool, string) {
		select {
		case <-s.ns.Exited():
			t.Fatalf("the sandbox's init ended:\n%s", s.ns.Output())
		default:
		}
		if len(childrenOf(s.ns.Cmd.Process.Pid)) == 0 {
			return false, "no placeholder process yet"
		}
		entries, err := os.ReadDir(s.Path("/run"))
		return err == nil && len(entries) == 0, fmt.Sprintf("/run in the sandbox: %d entries, %v", len(entries), err)
	})
	return s
}

// StartHungMount starts a sandbox (on the machine's network, without the
// overlays of StartSandbox: the machine's own files) in whose mount
// namespace dir is the mount point of a file system that never answers:
// a FUSE mount whose daemon never reads its requests, as a dead NFS
// server's mount behaves. Only what runs through its Command sees the
// mount, and blocks on any name below dir; the host never does. The
// mount ends with the sandbox's init, with the test: the kernel aborts
// the connection when the init's /dev/fuse descriptor closes.
func StartHungMount(t testing.TB, dir string) *Sandbox {
	t.Helper()
	RequireRoot(t, "a FUSE mount in a private mount namespace needs root")
	LookPath(t, "nsenter", "util-linux")
	if _, err := os.Stat("/dev/fuse"); err != nil {
		Missing(t, "the fuse kernel module", "/dev/fuse: "+err.Error()+"; modprobe fuse (in a container: pass --device /dev/fuse)")
	}
	plan := nsPlan{HungFUSE: []string{dir}, Argv: []string{"/bin/sleep", "infinity"}, HostNetwork: true}
	ns, alive := startNamespaceInit(t, plan)
	t.Cleanup(func() { alive.Close() })
	s := &Sandbox{ns: ns}
	// Ready when the init has mounted and started its placeholder; the
	// mount point's own inode answers without the daemon.
	Eventually(t, 30*time.Second, "the hung FUSE mount", func() (bool, string) {
		select {
		case <-s.ns.Exited():
			t.Fatalf("the hung mount's init ended:\n%s", s.ns.Output())
		default:
		}
		if len(childrenOf(s.ns.Cmd.Process.Pid)) == 0 {
			return false, "no placeholder process yet"
		}
		mounts, err := os.ReadFile(fmt.Sprintf("/proc/%d/mounts", s.ns.Cmd.Process.Pid))
		return err == nil && strings.Contains(string(mounts), " "+dir+" fuse "), fmt.Sprintf("mounts in the sandbox: %v\n%s", err, mounts)
	})
	return s
}

// Path is where the sandbox's path p is seen from outside it.
func (s *Sandbox) Path(p string) string {
	return filepath.Join("/proc", strconv.Itoa(s.ns.Cmd.Process.Pid), "root", p)
}

// Command is a command that runs inside the sandbox's namespaces.
func (s *Sandbox) Command(name string, args ...string) *exec.Cmd {
	all := append([]string{"--target", strconv.Itoa(s.ns.Cmd.Process.Pid), "--mount", "--pid", "--net", "--ipc", "--", name}, args...)
	cmd := exec.Command("nsenter", all...)
	// nsenter dies with the test process; what it started dies with
	// the sandbox's init. nsenter forks the program into the sandbox's
	// PID namespace and passes no signal on: in a process group of their
	// own, StartCommand's SIGINT at the end of the test reaches both.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	return cmd
}

// Run runs a command inside the sandbox and returns its output; a failure
// fails the test.
func (s *Sandbox) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := s.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("in the sandbox: %s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Inside is the host PID of the program p runs in the sandbox (p is the
// nsenter of Command, which forks the program and passes no signal on),
// for signals the program itself must get (SIGHUP, SIGKILL); 0 when it
// has not started or has ended.
func (s *Sandbox) Inside(p *Process) int {
	if kids := childrenOf(p.Cmd.Process.Pid); len(kids) > 0 {
		return kids[0]
	}
	return 0
}
