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

// TestPackageUpgradeKeepsServiceRunning: with systemd (faked: none runs
// here), installing starts the service, upgrading to a newer package
// leaves it running on the new binary, and removing the package stops it.
// rpm runs the old package's %preun after the new one's %post on an
// upgrade, which once stopped the freshly restarted service.
func TestPackageUpgradeKeepsServiceRunning(t *testing.T) {
	testenv.RequireRoot(t, "dpkg -i and rpm -i need root")
	hostBefore := hostPackagingState(t)
	t.Cleanup(func() {
		if after := hostPackagingState(t); after != hostBefore {
			t.Errorf("the machine's packaging state changed:\nbefore:\n%safter:\n%s", hostBefore, after)
		}
	})
	old := buildRelease(t, "")
	newer := buildRelease(t, old.version+".1")
	for _, p := range packagers {
		t.Run(p.name, func(t *testing.T) {
			p.requireTools(t)
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
		})
	}
}
