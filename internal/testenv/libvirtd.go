package testenv

import (
	"encoding/json"
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

// HostLibvirtDirs are the fixed paths where libvirtd's QEMU driver keeps its
// state. A test daemon sees private copies of them (bind mounts in its own
// mount namespace); the host's stay as they are, which testenv.Main checks.
var HostLibvirtDirs = []string{"/etc/libvirt", "/run/libvirt", "/var/lib/libvirt", "/var/cache/libvirt", "/var/log/libvirt"}

// Libvirtd is a private libvirtd started for one test (REQUIREMENTS §6) in
// namespaces of its own: its sockets live in a temp dir, its QEMU driver
// state in private copies of HostLibvirtDirs, its guests in its PID
// namespace (they die with it, and with the test process, even when that
// is killed) and it sees no network but its own loopback.
type Libvirtd struct {
	t      testing.TB
	Dir    string
	RunDir string
	Conf   string
	SockRO string // read-only socket, what the exporter uses
	SockRW string // read-write socket, what the tests use to change things
	bin    string
	binds  [][2]string
	ns     *Process // the namespace init, PID 1 of the daemon's namespaces
	alive  *os.File // write end of the pipe whose EOF ends the namespace
}

// StartLibvirtd starts a private libvirtd or skips/fails the test.
func StartLibvirtd(t testing.TB) *Libvirtd {
	t.Helper()
	bin := LookPath(t, "libvirtd", "libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients")
	LookPath(t, "virsh", "libvirt-clients")
	if os.Geteuid() != 0 {
		Missing(t, "root", "a private libvirtd needs root for its namespaces (see REQUIREMENTS §6)")
	}
	for _, d := range HostLibvirtDirs {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			Missing(t, "the mount point "+d, "run `make test-deps` as root (it creates the empty directories libvirt's packages own)")
		}
	}
	dir, err := os.MkdirTemp(ProcessTempDir(t), "libvirtd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// QEMU runs as libvirt-qemu and must traverse to disk images below dir.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	l := &Libvirtd{t: t, Dir: dir, RunDir: filepath.Join(dir, "run"), Conf: filepath.Join(dir, "libvirtd.conf"), bin: bin}
	l.SockRO = filepath.Join(l.RunDir, "libvirt-sock-ro")
	l.SockRW = filepath.Join(l.RunDir, "libvirt-sock")
	for _, host := range HostLibvirtDirs {
		private := filepath.Join(dir, "state", strings.ReplaceAll(strings.TrimPrefix(host, "/"), "/", "-"))
		if host == "/var/cache/libvirt" {
			private = sharedCapabilitiesCache(t)
		}
		if err := os.MkdirAll(private, 0o755); err != nil {
			t.Fatal(err)
		}
		l.binds = append(l.binds, [2]string{private, host})
	}
	// libvirtd looks up the user of every client; the shipped service's
	// user exists on a host with the package, so it does in the daemon's
	// namespace too (tests connect as that user).
	if _, err := os.Stat("/etc/passwd"); err == nil {
		if etc, err := serviceAccounts(); err == nil {
			l.binds = append(l.binds, [2]string{filepath.Join(etc, "passwd"), "/etc/passwd"}, [2]string{filepath.Join(etc, "group"), "/etc/group"})
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "state", "var-lib-libvirt", "qemu"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := privateLibvirtConfig(filepath.Join(dir, "state", "etc-libvirt")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(l.RunDir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`unix_sock_dir = %q
auth_unix_rw = "none"
auth_unix_ro = "none"
unix_sock_rw_perms = "0777"
unix_sock_ro_perms = "0777"
log_outputs = "3:stderr"
`, l.RunDir)
	if err := os.WriteFile(l.Conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	l.Start()
	t.Cleanup(l.Stop)
	return l
}

// privateLibvirtConfig fills dir, the daemon's /etc/libvirt, with the
// host's top-level config files (never its domain or network definitions:
// a test daemon must not start copies of the host's guests or networks)
// and the QEMU driver settings a test host needs: logs to plain files (no
// virtlogd), no cgroups and no security driver (both would write outside
// the namespace: /sys/fs/cgroup, /etc/apparmor.d).
func privateLibvirtConfig(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir("/etc/libvirt")
	if err != nil {
		return fmt.Errorf("reading /etc/libvirt: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".conf") {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/etc/libvirt", e.Name()))
		if err != nil {
			return fmt.Errorf("copying host libvirt config: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), data, 0o600); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, "qemu.conf"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString("\n# vmhost_exporter tests\nstdio_handler = \"file\"\ncgroup_controllers = [ ]\nsecurity_driver = \"none\"\n")
	return err
}

// sharedCapabilitiesCache is the /var/cache/libvirt of every daemon this
// test process starts. The QEMU driver probes each emulator's capabilities
// once and caches them there, so the cost is paid once per test binary
// instead of once per daemon.
func sharedCapabilitiesCache(t testing.TB) string {
	t.Helper()
	return filepath.Join(ProcessTempDir(t), "libvirt-cache")
}

// Start starts the daemon (first call) or restarts it after Kill, in the
// same namespaces, so guests started before a Kill keep running as they
// do when a real libvirtd crashes; it waits until the sockets answer.
func (l *Libvirtd) Start() {
	l.t.Helper()
	_ = os.Remove(l.SockRO)
	_ = os.Remove(l.SockRW)
	if l.ns == nil {
		l.startNamespace()
	} else {
		l.ns.Signal(syscall.SIGUSR1)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(l.SockRW); err == nil {
			if out, err := exec.Command("virsh", "-c", "test+unix:///default?socket="+l.SockRO, "version").CombinedOutput(); err == nil {
				return
			} else if time.Now().After(deadline) {
				l.t.Fatalf("libvirtd socket does not answer: %v\n%s\n%s", err, out, l.ns.Output())
			}
		}
		select {
		case <-l.ns.Exited():
			l.t.Fatalf("libvirtd's namespace ended before its socket answered:\n%s", l.ns.Output())
		default:
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("libvirtd did not create %s within 60s:\n%s", l.SockRW, l.ns.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (l *Libvirtd) startNamespace() {
	l.t.Helper()
	l.ns, l.alive = startNamespaceInit(l.t, nsPlan{Binds: l.binds, Argv: []string{l.bin, "-f", l.Conf, "-p", filepath.Join(l.Dir, "libvirtd.pid")}})
}

// startNamespaceInit re-executes the test binary as the init of private
// PID, mount, network (unless plan.HostNetwork) and IPC namespaces set up
// by plan (see nsInit). The
// namespace ends when the returned pipe end is closed or the test process
// dies.
func startNamespaceInit(t testing.TB, plan nsPlan) (ns *Process, alive *os.File) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	planJSON, err := json.Marshal(plan)
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), nsInitEnv+"="+string(planJSON))
	cmd.ExtraFiles = []*os.File{r}
	flags := uintptr(syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWNET | syscall.CLONE_NEWIPC)
	if plan.HostNetwork {
		flags &^= syscall.CLONE_NEWNET
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: flags}
	ns = StartCommand(t, cmd)
	r.Close()
	trackNamespace(ns)
	return ns, w
}

// daemonPID is the host PID of the libvirtd running in the namespace, or 0.
func (l *Libvirtd) daemonPID() int {
	if l.ns == nil {
		return 0
	}
	for _, pid := range childrenOf(l.ns.Cmd.Process.Pid) {
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) == "libvirtd" {
			return pid
		}
	}
	return 0
}

// childrenOf lists the PIDs whose parent is pid, from /proc.
func childrenOf(pid int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		if err != nil {
			continue
		}
		// The fields after the parenthesised command name: state, ppid.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// Kill ends the daemon with SIGKILL, as a crash would; its guests go on.
func (l *Libvirtd) Kill() {
	pid := l.daemonPID()
	if pid == 0 {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGCONT)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	// Gone once the namespace init has reaped it.
	deadline := time.Now().Add(10 * time.Second)
	for l.daemonPID() != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}

// Freeze stops the daemon with SIGSTOP: its sockets stay open but nothing
// answers, the hardest case for a client.
func (l *Libvirtd) Freeze() { _ = syscall.Kill(l.daemonPID(), syscall.SIGSTOP) }

// Thaw resumes a frozen daemon.
func (l *Libvirtd) Thaw() { _ = syscall.Kill(l.daemonPID(), syscall.SIGCONT) }

// DaemonState says whether the daemon still runs and in which state
// ("pid 123, State: S (sleeping)"), for a failure message: a daemon that
// does not answer after a thaw may have died or may still be stopped.
func (l *Libvirtd) DaemonState() string {
	pid := l.daemonPID()
	if pid == 0 {
		return "libvirtd is not running"
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return fmt.Sprintf("pid %d: %v", pid, err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "State:") {
			return fmt.Sprintf("pid %d, %s", pid, line)
		}
	}
	return fmt.Sprintf("pid %d", pid)
}

// Stop ends the daemon gracefully, then every guest with its namespace.
func (l *Libvirtd) Stop() {
	if l.ns == nil {
		return
	}
	if pid := l.daemonPID(); pid != 0 {
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
	l.ns.Signal(syscall.SIGTERM)
	select {
	case <-l.ns.Exited():
	case <-time.After(15 * time.Second):
		l.ns.Signal(os.Kill)
	}
	l.alive.Close()
	l.ns = nil
}

// GuestPID is the host PID of a running guest's QEMU process: libvirt's
// pid file holds the PID in the daemon's namespace.
func (l *Libvirtd) GuestPID(t testing.TB, name string) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(l.Dir, "state", "run-libvirt", "qemu", name+".pid"))
	if err != nil {
		t.Fatalf("guest %s has no pid file: %v", name, err)
	}
	nsPID := strings.TrimSpace(string(data))
	var found []int
	var walk func(pid int)
	walk = func(pid int) {
		for _, c := range childrenOf(pid) {
			status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", c))
			for _, line := range strings.Split(string(status), "\n") {
				if f := strings.Fields(strings.TrimPrefix(line, "NSpid:")); strings.HasPrefix(line, "NSpid:") && len(f) > 0 && f[len(f)-1] == nsPID {
					found = append(found, c)
				}
			}
			walk(c)
		}
	}
	walk(l.ns.Cmd.Process.Pid)
	if len(found) != 1 {
		t.Fatalf("guest %s: %d processes with namespace PID %s", name, len(found), nsPID)
	}
	return found[0]
}

// TestURI is the URI to open over the daemon's socket for a test-driver
// node file (what the exporter's --libvirt.uri gets).
func TestURI(nodeXML string) string { return "test://" + nodeXML }

// Virsh runs virsh against the daemon's read-write socket with the given
// driver URI ("qemu:///system" or "test:///abs/node.xml").
func (l *Libvirtd) Virsh(uri string, args ...string) (string, error) {
	scheme, rest, _ := strings.Cut(uri, "://")
	full := fmt.Sprintf("%s+unix://%s?socket=%s", scheme, rest, l.SockRW)
	out, err := exec.Command("virsh", append([]string{"-c", full}, args...)...).CombinedOutput()
	return string(out), err
}

// MustVirsh is Virsh that fails the test on error.
func (l *Libvirtd) MustVirsh(uri string, args ...string) string {
	l.t.Helper()
	out, err := l.Virsh(uri, args...)
	if err != nil {
		l.t.Fatalf("virsh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// QEMUDomainXML is a small TCG guest (REQUIREMENTS §6) with a raw disk, a
// user-mode interface and a balloon; role goes into the vmhost metadata.
const QEMUDomainXML = `<domain type='qemu'>
  <name>%s</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <metadata>
    <vmhost:vm xmlns:vmhost='https://github.com/vmhost-exporter/vmhost_exporter/xmlns/vm/1'><vmhost:role>%s</vmhost:role></vmhost:vm>
  </metadata>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='%s'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='user'><model type='virtio'/></interface>
    <memballoon model='virtio'><stats period='1'/></memballoon>
  </devices>
</domain>
`

// StartGuests defines and starts n QEMU/TCG guests named prefix0,
// prefix1..., role app, and returns their names.
func (l *Libvirtd) StartGuests(t testing.TB, prefix string, n int) []string {
	t.Helper()
	var names []string
	for i := range n {
		name := fmt.Sprintf("%s%d", prefix, i)
		l.DefineQEMU(t, name, "app")
		l.MustVirsh("qemu:///system", "start", name)
		names = append(names, name)
	}
	return names
}

// DefineQEMU defines a QEMU/TCG domain with a sparse 16 MiB disk in the
// daemon's directory; it ends with the daemon's namespace.
// It returns the disk's path.
func (l *Libvirtd) DefineQEMU(t testing.TB, name, role string) string {
	t.Helper()
	disk := filepath.Join(l.Dir, name+".img")
	l.DefineQEMUWithDisk(t, name, role, disk)
	return disk
}

// DefineQEMUWithDisk is DefineQEMU with the disk at a path of the test's
// choosing (an images directory laid out like the host's); the disk is
// created there.
func (l *Libvirtd) DefineQEMUWithDisk(t testing.TB, name, role, disk string) {
	t.Helper()
	LookPath(t, "qemu-system-x86_64", "qemu-system-x86")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 16<<20); err != nil {
		t.Fatal(err)
	}
	xmlPath := filepath.Join(l.Dir, name+".xml")
	if err := os.WriteFile(xmlPath, fmt.Appendf(nil, QEMUDomainXML, name, role, disk), 0o644); err != nil {
		t.Fatal(err)
	}
	l.MustVirsh("qemu:///system", "define", xmlPath)
}

// ConfigDir is the daemon's /etc/libvirt: libvirtd keeps the domains'
// definitions in its qemu/ directory, mode 0600, as on a host.
func (l *Libvirtd) ConfigDir() string { return filepath.Join(l.Dir, "state", "etc-libvirt") }

// VirshCommand is the virsh command line for the daemon's read-write
// socket and the QEMU driver, as one string for scripts that take it from
// the environment (the backup scripts' $VIRSH).
func (l *Libvirtd) VirshCommand() string {
	return "virsh -c qemu+unix:///system?socket=" + l.SockRW
}
