package e2e

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

const packageName = "vmhost-exporter"

// packageInstalled asks dpkg, through command (exec.Command for this
// machine, Sandbox.Command for a sandbox), whether the package is
// installed.
func packageInstalled(command func(name string, args ...string) *exec.Cmd) bool {
	out, _ := command("dpkg-query", "-W", "-f=${Status}", packageName).Output()
	return strings.Contains(string(out), "install ok installed")
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// hostPackagingState is what an installation on this machine would change:
// the dpkg database, the user and group files, the package's binary.
func hostPackagingState(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, f := range []string{"/var/lib/dpkg/status", "/etc/passwd", "/etc/group", "/etc/shadow", "/usr/bin/vmhost_exporter", "/etc/vmhost_exporter"} {
		data, err := os.ReadFile(f)
		fmt.Fprintf(&b, "%s: %x %v\n", f, sha256.Sum256(data), errors.Is(err, fs.ErrNotExist))
	}
	return b.String()
}

// killAfterInstallEnv makes TestPackageInstallsAndPurges, run as a child,
// install the package in a sandbox, say so and wait to be killed.
const killAfterInstallEnv = "VMHOST_TEST_KILL_AFTER_INSTALL"

// TestPackageInstallsAndPurges builds the release with `make package`,
// installs the .deb with dpkg in a sandbox of this machine (overlays of
// /etc, /usr and /var in the test's temp dir, see testenv.Sandbox), checks
// what an operator gets (files, owners, conffiles, the service user, a
// unit systemd accepts, a binary that runs, a backup.yml it accepts),
// purges it and checks that nothing is left but the user Debian policy
// keeps. The machine's own dpkg database and user files never change, not
// even when the test binary is killed with the package installed (a child
// test binary is, and afterwards neither its sandbox nor the package is
// anywhere). Until the sandbox, the test installed on the machine itself
// and cleaned up in t.Cleanup, which a SIGKILL skips.
func TestPackageInstallsAndPurges(t *testing.T) {
	testenv.RequireRoot(t, "dpkg -i needs root")
	testenv.LookPath(t, "dpkg", "dpkg")
	testenv.LookPath(t, "systemd-analyze", "systemd")
	testenv.LookPath(t, "systemd-sysusers", "systemd")
	if deb := os.Getenv(killAfterInstallEnv); deb != "" {
		sb := testenv.StartSandbox(t)
		sb.Run(t, "dpkg", "-i", deb)
		fmt.Println("installed in", sb.Path("/"))
		time.Sleep(10 * time.Minute)
		t.Fatal("the parent test did not kill this child")
	}
	if packageInstalled(exec.Command) {
		if testenv.InCI() {
			t.Fatalf("%s is already installed on the CI machine", packageName)
		}
		t.Skipf("%s is installed on this machine; the test leaves an operator's installation alone", packageName)
	}
	hostBefore := hostPackagingState(t)
	t.Cleanup(func() {
		if after := hostPackagingState(t); after != hostBefore {
			t.Errorf("the machine's packaging state changed:\nbefore:\n%safter:\n%s", hostBefore, after)
		}
	})

	dist := t.TempDir()
	run(t, "make", "-C", testenv.RepoRoot(), "--no-print-directory", "package", "DIST="+dist)
	version := strings.TrimSpace(testenv.ReadFile(t, filepath.Join(testenv.RepoRoot(), "VERSION")))
	deb := filepath.Join(dist, packageName+"_"+version+"-1_amd64.deb")
	release := "vmhost_exporter-" + version + ".linux-amd64"
	for _, f := range []string{deb, filepath.Join(dist, packageName+"-"+version+"-1.x86_64.rpm"), filepath.Join(dist, release+".tar.gz")} {
		if !strings.Contains(testenv.ReadFile(t, filepath.Join(dist, "SHA256SUMS")), filepath.Base(f)) {
			t.Errorf("SHA256SUMS does not list %s", filepath.Base(f))
		}
	}
	cmd := exec.Command("sha256sum", "-c", "SHA256SUMS")
	cmd.Dir = dist
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c SHA256SUMS: %v\n%s", err, out)
	}
	tarList := run(t, "tar", "-tzf", filepath.Join(dist, release+".tar.gz"))
	for _, want := range []string{release + "/vmhost_exporter", release + "/rules/vm.yml", release + "/dashboards/vms.json", release + "/deploy/systemd/vmhost_exporter.service", release + "/LICENSE"} {
		if !strings.Contains(tarList, want+"\n") {
			t.Errorf("release tarball lacks %s", want)
		}
	}

	killedMidway(t, deb, hostBefore)

	sb := testenv.StartSandbox(t)
	in := sb.Run
	in(t, "dpkg", "-i", deb)
	installed := strings.Fields(in(t, "dpkg", "-L", packageName))

	for _, f := range []struct {
		path string
		mode os.FileMode
	}{
		{"/usr/bin/vmhost_exporter", 0o755},
		{"/lib/systemd/system/vmhost_exporter.service", 0o644},
		{"/usr/lib/sysusers.d/vmhost_exporter.conf", 0o644},
		{"/etc/vmhost_exporter/backup.yml", 0o644},
		{"/etc/default/vmhost_exporter", 0o644},
		{"/usr/share/vmhost_exporter/rules/vm.yml", 0o644},
		{"/usr/share/vmhost_exporter/dashboards/vms.json", 0o644},
		{"/usr/share/doc/vmhost-exporter/README.md", 0o644},
		{"/usr/share/doc/vmhost-exporter/copyright", 0o644},
	} {
		st, err := os.Stat(sb.Path(f.path))
		if err != nil {
			t.Errorf("not installed: %v", err)
			continue
		}
		if st.Mode().Perm() != f.mode {
			t.Errorf("%s: mode %v, want %v", f.path, st.Mode().Perm(), f.mode)
		}
		if sys := st.Sys().(*syscall.Stat_t); sys.Uid != 0 || sys.Gid != 0 {
			t.Errorf("%s: owned by %d:%d, want root:root", f.path, sys.Uid, sys.Gid)
		}
	}
	for _, dir := range []string{"rules", "dashboards"} {
		ext := map[string]string{"rules": "*.yml", "dashboards": "*.json"}[dir]
		want, _ := filepath.Glob(filepath.Join(testenv.RepoRoot(), dir, ext))
		got, _ := filepath.Glob(sb.Path(filepath.Join("/usr/share/vmhost_exporter", dir, ext)))
		if len(got) != len(want) || len(got) == 0 {
			t.Errorf("/usr/share/vmhost_exporter/%s has %d files, the repository %d", dir, len(got), len(want))
		}
	}
	conffiles := in(t, "dpkg-query", "-W", "-f=${Conffiles}", packageName)
	for _, f := range []string{"/etc/vmhost_exporter/backup.yml", "/etc/default/vmhost_exporter"} {
		if !strings.Contains(conffiles, f+" ") {
			t.Errorf("%s is not a conffile: %q", f, conffiles)
		}
	}
	// The service user: its own group only, no login, no home.
	passwd := strings.Split(strings.TrimSpace(in(t, "getent", "passwd", "vmhost_exporter")), ":")
	if len(passwd) != 7 || passwd[5] != "/nonexistent" || passwd[6] != "/usr/sbin/nologin" {
		t.Errorf("service user: %v", passwd)
	}
	if groups := strings.Fields(in(t, "id", "-Gn", "vmhost_exporter")); !slices.Equal(groups, []string{"vmhost_exporter"}) {
		t.Errorf("service user's groups = %v, want only vmhost_exporter (never libvirt)", groups)
	}
	if out, err := sb.Command("systemd-analyze", "verify", "/lib/systemd/system/vmhost_exporter.service").CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze verify of the installed unit: %v\n%s", err, out)
	}
	if unit := testenv.ReadFile(t, sb.Path("/lib/systemd/system/vmhost_exporter.service")); !strings.Contains(unit, "ExecStart=/usr/bin/vmhost_exporter ") {
		t.Errorf("installed unit does not start /usr/bin/vmhost_exporter:\n%s", unit)
	}
	if out := in(t, "/usr/bin/vmhost_exporter", "--version"); !strings.Contains(out, "vmhost_exporter, version "+version) {
		t.Errorf("vmhost_exporter --version: %q", out)
	}
	in(t, "/usr/bin/vmhost_exporter", "--backup.config-check", "--backup.config-file=/etc/vmhost_exporter/backup.yml")
	testenv.LookPath(t, "promtool", "prometheus")
	in(t, "sh", "-c", "promtool check rules /usr/share/vmhost_exporter/rules/*.yml")

	in(t, "dpkg", "--purge", packageName)
	if packageInstalled(sb.Command) {
		t.Fatal("still installed after dpkg --purge")
	}
	for _, p := range append(installed, "/etc/vmhost_exporter", "/usr/share/vmhost_exporter", "/usr/share/doc/vmhost-exporter") {
		if !strings.HasPrefix(p, "/") || slices.Contains([]string{"/.", "/etc", "/etc/default", "/lib", "/lib/systemd", "/lib/systemd/system", "/usr", "/usr/bin", "/usr/lib", "/usr/lib/sysusers.d", "/usr/share", "/usr/share/doc"}, p) {
			continue
		}
		if _, err := os.Lstat(sb.Path(p)); err == nil {
			t.Errorf("%s left after purge", p)
		}
	}
	if in(t, "sh", "-c", "getent passwd vmhost_exporter || true") == "" {
		t.Error("purge removed the service user; Debian policy keeps system users")
	}
}

// killedMidway runs this test as a child that installs deb in its sandbox
// and is then killed with SIGKILL, as CI does to a test binary that hangs:
// no t.Cleanup runs. The sandbox must go with it (its init sees the test
// process gone) and the machine must show nothing of the installation.
func killedMidway(t *testing.T, deb, hostBefore string) {
	t.Helper()
	child := testenv.StartTestChild(t, "TestPackageInstallsAndPurges", killAfterInstallEnv+"="+deb)
	child.WaitOutput(t, 3*time.Minute, "installed in /proc/")
	root := strings.Fields(child.Output()[strings.Index(child.Output(), "installed in /proc/"):])[2]
	if _, err := os.Stat(filepath.Join(root, "usr/bin/vmhost_exporter")); err != nil {
		t.Fatalf("the child's sandbox has no /usr/bin/vmhost_exporter: %v", err)
	}
	child.Signal(os.Kill)
	testenv.Eventually(t, 30*time.Second, "the killed child's sandbox ends", func() (bool, string) {
		_, err := os.Stat(root)
		return errors.Is(err, fs.ErrNotExist), fmt.Sprintf("%s: %v", root, err)
	})
	if after := hostPackagingState(t); after != hostBefore {
		t.Errorf("after the child was killed with the package installed in its sandbox, the machine's packaging state differs:\nbefore:\n%safter:\n%s", hostBefore, after)
	}
}
