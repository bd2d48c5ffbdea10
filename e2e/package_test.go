package e2e

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// hostPackagingState is what an installation on this machine would change:
// the dpkg and rpm databases, the user and group files, the package's
// binary.
func hostPackagingState(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	files := []string{"/var/lib/dpkg/status", "/var/lib/rpm", "/var/lib/rpm/rpmdb.sqlite", "/etc/passwd", "/etc/group", "/etc/shadow", "/usr/bin/vmhost_exporter", "/etc/vmhost_exporter"}
	if db := machineRPMDB(); db != "" {
		files = append(files, db, filepath.Join(db, "rpmdb.sqlite"))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		fmt.Fprintf(&b, "%s: %x %v\n", f, sha256.Sum256(data), errors.Is(err, fs.ErrNotExist))
	}
	return b.String()
}

// killAfterInstallEnv makes TestPackageInstallsAndPurges, run as a child,
// install the package in a sandbox, say so and wait to be killed.
const killAfterInstallEnv = "VMHOST_TEST_KILL_AFTER_INSTALL"

// TestPackageInstallsAndPurges builds the release with `make package`,
// installs the .deb with dpkg and the .rpm with rpm, each in a sandbox of
// this machine (overlays of /etc, /usr and /var in the test's temp dir,
// see testenv.Sandbox), checks what an operator gets (files, owners,
// conffiles, the service user, a unit systemd accepts, a binary that runs
// and says its version and builder, a backup.yml it accepts, every doc
// the README links, the licence of every module in the binary), removes
// it and checks that nothing is left but the user Debian policy keeps.
// The machine's own package databases and user files never change, not
// even when the test binary is killed with the package installed (a child
// test binary is, and afterwards neither its sandbox nor the package is
// anywhere). Until the sandbox, the test installed on the machine itself
// and cleaned up in t.Cleanup, which a SIGKILL skips.
func TestPackageInstallsAndPurges(t *testing.T) {
	testenv.RequireRoot(t, "dpkg -i and rpm -i need root")
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
	for _, p := range packagers {
		p.requireTools(t)
		if p.installedOnMachine() {
			if testenv.InCI() {
				t.Fatalf("%s is already installed on the CI machine (%s)", packageName, p.name)
			}
			t.Skipf("%s is installed on this machine (%s); the test leaves an operator's installation alone", packageName, p.name)
		}
	}
	hostBefore := hostPackagingState(t)
	t.Cleanup(func() {
		if after := hostPackagingState(t); after != hostBefore {
			t.Errorf("the machine's packaging state changed:\nbefore:\n%safter:\n%s", hostBefore, after)
		}
	})

	r := buildRelease(t, "", "")
	dist := r.dir
	for _, f := range []string{r.deb, r.rpm, r.tarball} {
		if !strings.Contains(testenv.ReadFile(t, filepath.Join(dist, "SHA256SUMS")), filepath.Base(f)) {
			t.Errorf("SHA256SUMS does not list %s", filepath.Base(f))
		}
	}
	cmd := exec.Command("sha256sum", "-c", "SHA256SUMS")
	cmd.Dir = dist
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c SHA256SUMS: %v\n%s", err, out)
	}
	release := r.tarDir
	tarList := run(t, "tar", "-tzf", r.tarball)
	for _, want := range []string{release + "/vmhost_exporter", release + "/rules/vm.yml", release + "/dashboards/vms.json", release + "/deploy/systemd/vmhost_exporter.service", release + "/LICENSE", release + "/copyright"} {
		if !strings.Contains(tarList, want+"\n") {
			t.Errorf("release tarball lacks %s", want)
		}
	}
	for _, link := range readmeLinks(t) {
		if !strings.Contains(tarList, release+"/"+link+"\n") {
			t.Errorf("the README links %s; the release tarball lacks it", link)
		}
	}

	killedMidway(t, r.deb, hostBefore)

	for _, p := range packagers {
		t.Run(p.name, func(t *testing.T) { installAndRemove(t, p, r) })
	}
}

// installAndRemove installs the release's package of p's format in a
// sandbox, checks what the operator gets, and removes it.
func installAndRemove(t *testing.T, p packager, r *release) {
	sb := testenv.StartSandbox(t)
	in := sb.Run
	in(t, append(p.install, p.file(r))[0], append(p.install, p.file(r))[1:]...)
	installed := strings.Fields(in(t, p.files[0], p.files[1:]...))

	for _, f := range []struct {
		path string
		mode os.FileMode
	}{
		{"/usr/bin/vmhost_exporter", 0o755},
		{p.unit, 0o644},
		{"/usr/lib/sysusers.d/vmhost_exporter.conf", 0o644},
		{"/etc/vmhost_exporter/backup.yml", 0o644},
		{p.defaults, 0o644},
		{"/usr/share/vmhost_exporter/rules/vm.yml", 0o644},
		{"/usr/share/vmhost_exporter/dashboards/vms.json", 0o644},
		{"/usr/share/doc/vmhost-exporter/README.md", 0o644},
		{p.copyright, 0o644},
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
	// An operator reading the installed README follows its links there.
	for _, link := range readmeLinks(t) {
		if _, err := os.Stat(sb.Path(filepath.Join("/usr/share/doc/vmhost-exporter", link))); err != nil {
			t.Errorf("the README links %s, not installed beside it: %v", link, err)
		}
	}
	conffiles := in(t, p.conffiles[0], p.conffiles[1:]...)
	for _, f := range []string{"/etc/vmhost_exporter/backup.yml", p.defaults} {
		if !slices.Contains(strings.Fields(conffiles), f) {
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
	if out, err := sb.Command("systemd-analyze", "verify", p.unit).CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze verify of the installed unit: %v\n%s", err, out)
	}
	if unit := testenv.ReadFile(t, sb.Path(p.unit)); !strings.Contains(unit, "ExecStart=/usr/bin/vmhost_exporter ") {
		t.Errorf("installed unit does not start /usr/bin/vmhost_exporter:\n%s", unit)
	}
	// The version of the VERSION file, and who built it even with $USER
	// unset (buildRelease empties it).
	out := in(t, "/usr/bin/vmhost_exporter", "--version")
	if !strings.Contains(out, "vmhost_exporter, version "+r.version+" ") {
		t.Errorf("vmhost_exporter --version does not say version %s: %q", r.version, out)
	}
	if m := regexp.MustCompile(`(?m)^\s*build user:\s*(\S*)@(\S*)$`).FindStringSubmatch(out); m == nil || m[1] == "" || m[2] == "" {
		t.Errorf("vmhost_exporter --version names no build user@host: %q", out)
	}
	checkModuleLicences(t, sb.Path("/usr/bin/vmhost_exporter"), testenv.ReadFile(t, sb.Path(p.copyright)))
	in(t, "/usr/bin/vmhost_exporter", "--backup.config-check", "--backup.config-file=/etc/vmhost_exporter/backup.yml")
	testenv.LookPath(t, "promtool", "prometheus")
	in(t, "sh", "-c", "promtool check rules /usr/share/vmhost_exporter/rules/*.yml")

	in(t, p.remove[0], p.remove[1:]...)
	if p.isInstalled(sb) {
		t.Fatalf("still installed after %s", strings.Join(p.remove, " "))
	}
	for _, f := range append(installed, "/etc/vmhost_exporter", "/usr/share/vmhost_exporter", "/usr/share/doc/vmhost-exporter", "/usr/share/licenses/vmhost-exporter") {
		if !strings.HasPrefix(f, "/") || slices.Contains([]string{"/.", "/etc", "/etc/default", "/etc/sysconfig", "/lib", "/lib/systemd", "/lib/systemd/system", "/usr", "/usr/bin", "/usr/lib", "/usr/lib/systemd", "/usr/lib/systemd/system", "/usr/lib/sysusers.d", "/usr/share", "/usr/share/doc", "/usr/share/licenses"}, f) {
			continue
		}
		if _, err := os.Lstat(sb.Path(f)); err == nil {
			t.Errorf("%s left after %s", f, strings.Join(p.remove, " "))
		}
	}
	if in(t, "sh", "-c", "getent passwd vmhost_exporter || true") == "" {
		t.Errorf("%s removed the service user; Debian policy keeps system users", strings.Join(p.remove, " "))
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
