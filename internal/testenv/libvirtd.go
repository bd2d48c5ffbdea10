package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Libvirtd is a private libvirtd started for one test (REQUIREMENTS §6): its
// sockets live in a temp dir, so the system daemon is never touched.
type Libvirtd struct {
	t       testing.TB
	Dir     string
	RunDir  string
	Conf    string
	SockRO  string // read-only socket, what the exporter uses
	SockRW  string // read-write socket, what the tests use to change things
	bin     string
	process *Process
}

// StartLibvirtd starts a private libvirtd or skips/fails the test.
func StartLibvirtd(t testing.TB) *Libvirtd {
	t.Helper()
	bin := LookPath(t, "libvirtd", "libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients")
	LookPath(t, "virsh", "libvirt-clients")
	if os.Geteuid() != 0 {
		Missing(t, "root", "a private libvirtd with the QEMU driver needs root (see REQUIREMENTS §6)")
	}
	dir, err := os.MkdirTemp("", "vmhost-libvirtd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// QEMU runs as libvirt-qemu and must traverse to disk images below dir.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	lockHostWideLibvirtd(t)
	l := &Libvirtd{t: t, Dir: dir, RunDir: filepath.Join(dir, "run"), Conf: filepath.Join(dir, "libvirtd.conf"), bin: bin}
	l.SockRO = filepath.Join(l.RunDir, "libvirt-sock-ro")
	l.SockRW = filepath.Join(l.RunDir, "libvirt-sock")
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

// Start (re)starts the daemon and waits for its read-only socket.
func (l *Libvirtd) Start() {
	l.t.Helper()
	_ = os.Remove(l.SockRO)
	_ = os.Remove(l.SockRW)
	l.process = Start(l.t, l.bin, "-f", l.Conf, "-p", filepath.Join(l.Dir, "libvirtd.pid"))
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(l.SockRO); err == nil {
			if out, err := exec.Command("virsh", "-c", "test+unix:///default?socket="+l.SockRO, "version").CombinedOutput(); err == nil {
				return
			} else if time.Now().After(deadline) {
				l.t.Fatalf("libvirtd socket does not answer: %v\n%s\n%s", err, out, l.process.Output())
			}
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("libvirtd did not create %s within 20s:\n%s", l.SockRO, l.process.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Kill ends the daemon with SIGKILL, as a crash would.
func (l *Libvirtd) Kill() {
	if l.process == nil {
		return
	}
	l.process.Signal(syscall.SIGCONT)
	l.process.Signal(os.Kill)
	l.process = nil
}

// Freeze stops the daemon with SIGSTOP: its sockets stay open but nothing
// answers, the hardest case for a client.
func (l *Libvirtd) Freeze() { _ = l.process.Cmd.Process.Signal(syscall.SIGSTOP) }

// Thaw resumes a frozen daemon.
func (l *Libvirtd) Thaw() { _ = l.process.Cmd.Process.Signal(syscall.SIGCONT) }

// Stop ends the daemon gracefully.
func (l *Libvirtd) Stop() {
	if l.process == nil {
		return
	}
	l.process.Signal(syscall.SIGCONT)
	l.process.Signal(syscall.SIGTERM)
	select {
	case <-l.process.Exited():
	case <-time.After(10 * time.Second):
		l.process.Signal(os.Kill)
	}
	l.process = nil
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

// lockHostWideLibvirtd serialises private libvirtds across test binaries
// (go test runs packages in parallel): the QEMU driver keeps its state in
// the fixed /run/libvirt/qemu, which only one daemon at a time may own.
func lockHostWideLibvirtd(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "vmhost-exporter-libvirtd.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
}

// StartLibvirtdLockOnly takes the host-wide libvirtd lock for a test that
// starts a libvirtd of its own (the demo script), after checking that it
// may: root is needed.
func StartLibvirtdLockOnly(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "root", "libvirtd with the QEMU driver needs root")
	}
	lockHostWideLibvirtd(t)
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

// DefineQEMU defines a QEMU/TCG domain with a sparse 16 MiB disk in the
// daemon's directory, and destroys and undefines it when the test ends.
// It returns the disk's path.
func (l *Libvirtd) DefineQEMU(t testing.TB, name, role string) string {
	t.Helper()
	LookPath(t, "qemu-system-x86_64", "qemu-system-x86")
	disk := filepath.Join(l.Dir, name+".img")
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
	t.Cleanup(func() {
		_, _ = l.Virsh("qemu:///system", "destroy", name)
		_, _ = l.Virsh("qemu:///system", "undefine", name)
	})
	return disk
}
