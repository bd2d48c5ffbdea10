package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

const packageName = "vmhost-exporter"

func packageInstalled() bool {
	out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", packageName).Output()
	return strings.Contains(string(out), "install ok installed")
}

func userExists(name string) bool {
	return exec.Command("getent", "passwd", name).Run() == nil
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestPackageInstallsAndPurges builds the release with `make package`,
// installs the .deb with dpkg on this machine, checks what an operator gets
// (files, owners, conffiles, the service user, a unit systemd accepts, a
// binary that runs, a backup.yml it accepts), purges it and checks that
// nothing is left but the user Debian policy keeps; a user this test
// created is then removed, so the machine ends as it was.
func TestPackageInstallsAndPurges(t *testing.T) {
	testenv.RequireRoot(t, "dpkg -i needs root")
	testenv.LookPath(t, "dpkg", "dpkg")
	analyze := testenv.LookPath(t, "systemd-analyze", "systemd")
	testenv.LookPath(t, "systemd-sysusers", "systemd")
	if packageInstalled() {
		if testenv.InCI() {
			t.Fatalf("%s is already installed on the CI machine", packageName)
		}
		t.Skipf("%s is installed on this machine; the test leaves an operator's installation alone", packageName)
	}
	userBefore := userExists("vmhost_exporter")

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
	for _, want := range []string{release + "/vmhost_exporter", release + "/rules/vm.yml", release + "/dashboards/vms.json", release + "/deploy/systemd/vmhost_exporter.service"} {
		if !strings.Contains(tarList, want+"\n") {
			t.Errorf("release tarball lacks %s", want)
		}
	}

	// Where systemd runs, the package would start the service, which
	// listens on every address: a policy-rc.d forbids it during the test.
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		if _, err := os.Stat("/usr/sbin/policy-rc.d"); os.IsNotExist(err) {
			if err := os.WriteFile("/usr/sbin/policy-rc.d", []byte("#!/bin/sh\nexit 101\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.Remove("/usr/sbin/policy-rc.d") })
		}
	}
	t.Cleanup(func() {
		if packageInstalled() {
			_ = exec.Command("dpkg", "--purge", packageName).Run()
		}
		if !userBefore && userExists("vmhost_exporter") {
			_ = exec.Command("userdel", "vmhost_exporter").Run()
			_ = exec.Command("groupdel", "vmhost_exporter").Run()
		}
	})
	run(t, "dpkg", "-i", deb)
	installed := strings.Fields(run(t, "dpkg", "-L", packageName))

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
	} {
		st, err := os.Stat(f.path)
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
		got, _ := filepath.Glob(filepath.Join("/usr/share/vmhost_exporter", dir, ext))
		if len(got) != len(want) || len(got) == 0 {
			t.Errorf("/usr/share/vmhost_exporter/%s has %d files, the repository %d", dir, len(got), len(want))
		}
	}
	conffiles := run(t, "dpkg-query", "-W", "-f=${Conffiles}", packageName)
	for _, f := range []string{"/etc/vmhost_exporter/backup.yml", "/etc/default/vmhost_exporter"} {
		if !strings.Contains(conffiles, f+" ") {
			t.Errorf("%s is not a conffile: %q", f, conffiles)
		}
	}
	// The service user: its own group only, no login, no home.
	passwd := strings.Split(strings.TrimSpace(run(t, "getent", "passwd", "vmhost_exporter")), ":")
	if len(passwd) != 7 || passwd[5] != "/nonexistent" || passwd[6] != "/usr/sbin/nologin" {
		t.Errorf("service user: %v", passwd)
	}
	if groups := strings.Fields(run(t, "id", "-Gn", "vmhost_exporter")); !slices.Equal(groups, []string{"vmhost_exporter"}) {
		t.Errorf("service user's groups = %v, want only vmhost_exporter (never libvirt)", groups)
	}
	if out, err := exec.Command(analyze, "verify", "/lib/systemd/system/vmhost_exporter.service").CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze verify of the installed unit: %v\n%s", err, out)
	}
	if unit := testenv.ReadFile(t, "/lib/systemd/system/vmhost_exporter.service"); !strings.Contains(unit, "ExecStart=/usr/bin/vmhost_exporter ") {
		t.Errorf("installed unit does not start /usr/bin/vmhost_exporter:\n%s", unit)
	}
	if out := run(t, "/usr/bin/vmhost_exporter", "--version"); !strings.Contains(out, "vmhost_exporter, version "+version) {
		t.Errorf("vmhost_exporter --version: %q", out)
	}
	run(t, "/usr/bin/vmhost_exporter", "--backup.config-check", "--backup.config-file=/etc/vmhost_exporter/backup.yml")
	rules, _ := filepath.Glob("/usr/share/vmhost_exporter/rules/*.yml")
	run(t, testenv.LookPath(t, "promtool", "prometheus"), append([]string{"check", "rules"}, rules...)...)

	run(t, "dpkg", "--purge", packageName)
	if packageInstalled() {
		t.Fatal("still installed after dpkg --purge")
	}
	for _, p := range append(installed, "/etc/vmhost_exporter", "/usr/share/vmhost_exporter", "/usr/share/doc/vmhost-exporter") {
		if !strings.HasPrefix(p, "/") || slices.Contains([]string{"/.", "/etc", "/etc/default", "/lib", "/lib/systemd", "/lib/systemd/system", "/usr", "/usr/bin", "/usr/lib", "/usr/lib/sysusers.d", "/usr/share", "/usr/share/doc"}, p) {
			continue
		}
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s left after purge", p)
		}
	}
	if !userExists("vmhost_exporter") {
		t.Error("purge removed the service user; Debian policy keeps system users")
	}
}
