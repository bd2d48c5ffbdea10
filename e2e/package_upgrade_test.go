package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// fakeSystemd makes the sandbox look like a host running systemd to the
// package scripts (/run/systemd/system exists) and puts the test double
// testdata/fake-systemctl.sh over systemctl, deb-systemd-invoke and
// deb-systemd-helper (in the sandbox's overlay of /usr: the machine's
// stay). It returns the service's state as the double keeps it.
func fakeSystemd(t *testing.T, sb *testenv.Sandbox) (state func() string) {
	t.Helper()
	if err := os.MkdirAll(sb.Path("/run/systemd/system"), 0o755); err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "e2e", "testdata", "fake-systemctl.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"systemctl", "deb-systemd-invoke", "deb-systemd-helper"} {
		p := sb.Path(filepath.Join("/usr/bin", name))
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, script, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return func() string {
		data, _ := os.ReadFile(sb.Path("/run/fake-systemd/active"))
		return strings.TrimSpace(string(data))
	}
}

// olderScripts is a copy of packaging/scripts with 0.1.0's preremove.sh,
// which stopped the service on every %preun and prerm, upgrades too.
func olderScripts(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	scripts, _ := filepath.Glob(filepath.Join(testenv.RepoRoot(), "packaging", "scripts", "*.sh"))
	for _, f := range append(scripts, filepath.Join(testenv.RepoRoot(), "e2e", "testdata", "preremove-0.1.0.sh")) {
		name := filepath.Base(f)
		if name == "preremove-0.1.0.sh" {
			name = "preremove.sh"
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestPackageUpgradeKeepsServiceRunning: with systemd (faked: none runs
// here), installing starts the service, upgrading to a newer package
// leaves it running on the new binary, and removing the package stops it.
// rpm runs the old package's %preun after the new one's %post on an
// upgrade: 0.1.0's stopped the service there, so the new package must
// start it again afterwards, and its own must not stop it.
func TestPackageUpgradeKeepsServiceRunning(t *testing.T) {
	testenv.RequireRoot(t, "dpkg -i and rpm -i need root")
	hostBefore := hostPackagingState(t)
	t.Cleanup(func() {
		if after := hostPackagingState(t); after != hostBefore {
			t.Errorf("the machine's packaging state changed:\nbefore:\n%safter:\n%s", hostBefore, after)
		}
	})
	current := buildRelease(t, "", "")
	newer := buildRelease(t, current.version+".1", "")
	for _, from := range []struct {
		name string
		old  *release
	}{
		{"from this release", current},
		{"from 0.1.0's scripts", buildRelease(t, current.version, olderScripts(t))},
	} {
		for _, p := range packagers {
			t.Run(p.name+" "+from.name, func(t *testing.T) {
				p.requireTools(t)
				upgradeKeepsRunning(t, p, from.old, newer)
			})
		}
	}
}

// upgradeKeepsRunning installs old, upgrades to newer and removes the
// package in a sandbox with systemd faked, checking the service's state
// after each.
func upgradeKeepsRunning(t *testing.T, p packager, old, newer *release) {
	sb := testenv.StartSandbox(t)
	state := fakeSystemd(t, sb)
	calls := func() string {
		data, _ := os.ReadFile(sb.Path("/run/fake-systemd/calls"))
		return string(data)
	}
	running := func(r *release) string { return "running vmhost_exporter, version " + r.version + " " }
	install := append(append([]string{}, p.install...), p.file(old))
	sb.Run(t, install[0], install[1:]...)
	if s := state(); !strings.HasPrefix(s, running(old)) {
		t.Fatalf("after installing %s the service is %q, want %q…\ncalls:\n%s", old.version, s, running(old), calls())
	}
	upgrade := append(append([]string{}, p.upgrade...), p.file(newer))
	sb.Run(t, upgrade[0], upgrade[1:]...)
	if s := state(); !strings.HasPrefix(s, running(newer)) {
		t.Errorf("after upgrading %s to %s the service is %q, want %q…\ncalls:\n%s", old.version, newer.version, s, running(newer), calls())
	}
	sb.Run(t, p.remove[0], p.remove[1:]...)
	if s := state(); s != "stopped" {
		t.Errorf("after %s the service is %q, want stopped\ncalls:\n%s", strings.Join(p.remove, " "), s, calls())
	}
}
