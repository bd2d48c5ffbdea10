package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// wantsLink is the link `systemctl enable` makes for the unit's
// WantedBy=multi-user.target: the service is enabled while it exists.
const wantsLink = "/etc/systemd/system/multi-user.target.wants/vmhost_exporter.service"

// fakeSystemd makes the sandbox look like a host running systemd to the
// package scripts (/run/systemd/system exists) and puts the test double
// testdata/fake-systemctl.sh over systemctl (in the sandbox's overlay of
// /usr: the machine's stays). The double fakes only what needs a running
// systemd (start, stop, restart, try-restart, is-active, daemon-reload);
// enable, disable, is-enabled and preset go to the real systemctl, which
// it keeps at /usr/lib/fake-systemd/systemctl, so that enablement is the
// links real systemd would boot with. Debian's deb-systemd-helper and
// deb-systemd-invoke are the real ones. It returns the service's state as
// the double keeps it.
func fakeSystemd(t *testing.T, sb *testenv.Sandbox) (state func() string) {
	t.Helper()
	if err := os.MkdirAll(sb.Path("/run/systemd/system"), 0o755); err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "e2e", "testdata", "fake-systemctl.sh"))
	if err != nil {
		t.Fatal(err)
	}
	systemctl := sb.Path("/usr/bin/systemctl")
	real, err := os.ReadFile(systemctl)
	if err != nil {
		t.Fatalf("the real systemctl, for enablement: %v", err)
	}
	if err := os.MkdirAll(sb.Path("/usr/lib/fake-systemd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sb.Path("/usr/lib/fake-systemd/systemctl"), real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(systemctl); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(systemctl, script, 0o755); err != nil {
		t.Fatal(err)
	}
	// Container images (Docker's Debian, CI runners) ship a policy-rc.d
	// that forbids deb-systemd-invoke every start; a host running
	// systemd has none.
	if err := os.Remove(sb.Path("/usr/sbin/policy-rc.d")); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
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

// serviceBefore is what the operator made of the service before an
// upgrade, and what the upgrade must leave of it.
type serviceBefore struct {
	name string
	// operator runs in the sandbox after the install, which enabled
	// and started the service.
	operator [][]string
	// running and enabled after the upgrade.
	running, enabled bool
}

var serviceStates = []serviceBefore{
	{name: "running", running: true, enabled: true},
	{
		name:     "stopped but enabled",
		operator: [][]string{{"systemctl", "stop", "vmhost_exporter.service"}},
		enabled:  true,
	},
	{
		name: "disabled",
		operator: [][]string{
			{"systemctl", "stop", "vmhost_exporter.service"},
			{"systemctl", "disable", "vmhost_exporter.service"},
		},
	},
}

// TestPackageUpgradeKeepsServiceRunning: with systemd (faked: none runs
// here), installing enables and starts the service, upgrading to a newer
// package leaves a running service running on the new binary, a stopped
// one stopped and a disabled one disabled, and removing the package
// stops and disables it. rpm runs the old package's %preun after the new
// one's %post on an upgrade: 0.1.0's stopped the service there, so the
// new package must start it again afterwards where it ran, and its own
// must not stop it.
func TestPackageUpgradeKeepsServiceRunning(t *testing.T) {
	testenv.RequireRoot(t, "dpkg -i and rpm -i need root")
	testenv.LookPath(t, "deb-systemd-helper", "init-system-helpers")
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
		// prermStops: the old package's preremove stops the
		// service on upgrades too.
		prermStops bool
	}{
		{"from this release", current, false},
		{"from 0.1.0's scripts", buildRelease(t, current.version, olderScripts(t)), true},
	} {
		for _, p := range packagers {
			for _, before := range serviceStates {
				t.Run(p.name+" "+from.name+" "+before.name, func(t *testing.T) {
					p.requireTools(t)
					want := before
					if p.name == "deb" && from.prermStops && before.enabled {
						// dpkg runs the old prerm before anything of
						// the new package: after 0.1.0's, which
						// stopped the service, whether it ran is
						// lost, and the new postinst starts it where
						// enabled, as dh_installsystemd does.
						want.running = true
					}
					upgradeKeepsState(t, p, from.old, newer, want)
				})
			}
		}
	}
}

// upgradeKeepsState installs old, lets the operator change the service as
// in before, upgrades to newer and removes the package in a sandbox with
// systemd faked, checking the service's state and enablement after each.
func upgradeKeepsState(t *testing.T, p packager, old, newer *release, before serviceBefore) {
	sb := testenv.StartSandbox(t)
	state := fakeSystemd(t, sb)
	calls := func() string {
		data, _ := os.ReadFile(sb.Path("/run/fake-systemd/calls"))
		return string(data)
	}
	enabled := func() bool {
		_, err := os.Lstat(sb.Path(wantsLink))
		return err == nil
	}
	running := func(r *release) string { return "running vmhost_exporter, version " + r.version + " " }
	install := append(append([]string{}, p.install...), p.file(old))
	sb.Run(t, install[0], install[1:]...)
	if s := state(); !strings.HasPrefix(s, running(old)) {
		t.Fatalf("after installing %s the service is %q, want %q…\ncalls:\n%s", old.version, s, running(old), calls())
	}
	if !enabled() {
		t.Fatalf("after installing %s the service is not enabled: no %s\ncalls:\n%s", old.version, wantsLink, calls())
	}
	for _, c := range before.operator {
		sb.Run(t, c[0], c[1:]...)
	}
	upgrade := append(append([]string{}, p.upgrade...), p.file(newer))
	sb.Run(t, upgrade[0], upgrade[1:]...)
	s, want := state(), "stopped"
	if before.running {
		want = running(newer)
	}
	if !strings.HasPrefix(s, want) {
		t.Errorf("after upgrading %s to %s the service is %q, want %q…\ncalls:\n%s", old.version, newer.version, s, want, calls())
	}
	if enabled() != before.enabled {
		t.Errorf("after upgrading %s to %s the service is enabled: %v, want %v (%s)\ncalls:\n%s", old.version, newer.version, enabled(), before.enabled, wantsLink, calls())
	}
	sb.Run(t, p.remove[0], p.remove[1:]...)
	if s := state(); s != "stopped" {
		t.Errorf("after %s the service is %q, want stopped\ncalls:\n%s", strings.Join(p.remove, " "), s, calls())
	}
	if enabled() {
		t.Errorf("after %s %s is left\ncalls:\n%s", strings.Join(p.remove, " "), wantsLink, calls())
	}
}
