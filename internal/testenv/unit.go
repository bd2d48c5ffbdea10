package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// UnitAssignments returns every assignment of the [Service] section of a
// systemd unit file, in file order per key: systemd reads list settings
// (capabilities, groups) assignment by assignment, an empty one resetting
// the list, so the order matters.
func UnitAssignments(t testing.TB, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	settings := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	var continued string
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasSuffix(line, `\`) {
			continued += strings.TrimSuffix(line, `\`) + " "
			continue
		}
		line, continued = continued+line, ""
		if strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") {
			continue
		}
		if strings.HasPrefix(line, "[") {
			section = line
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok && section == "[Service]" {
			settings[k] = append(settings[k], strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return settings
}

// capabilityList folds a capability setting's assignments the way systemd
// does: each adds its capabilities, an empty one empties the list. It
// returns nil when the setting is absent (systemd then leaves the set as
// it is) and a non-nil, maybe empty, list otherwise. Inverted lists (~)
// are not used by the shipped unit, and a test must not guess at them.
func capabilityList(t testing.TB, key string, assignments []string) []string {
	t.Helper()
	if assignments == nil {
		return nil
	}
	caps := []string{}
	for _, a := range assignments {
		if a == "" {
			caps = caps[:0]
			continue
		}
		if strings.HasPrefix(a, "~") {
			t.Fatalf("%s=%s: inverted capability lists are not supported by this test", key, a)
		}
		for _, c := range strings.Fields(a) {
			c = strings.ToLower(strings.TrimPrefix(strings.ToUpper(c), "CAP_"))
			if !slices.Contains(caps, c) {
				caps = append(caps, c)
			}
		}
	}
	return caps
}

// UnitIdentity is who a systemd unit runs its service as: user, group,
// supplementary groups and capabilities, resolved to numbers.
type UnitIdentity struct {
	User, Group  string
	UID, GID     int
	Groups       []int    // supplementary groups
	Ambient      []string // capabilities the service holds (setpriv's names: dac_read_search)
	Bounding     []string // the bounding set; nil when the unit leaves it alone
	NoNewPrivs   bool
	Unit, Source string // the unit file and where the user came from, for messages
}

// ShippedUnitIdentity reads the identity of the exporter's shipped unit
// (deploy/systemd) and its sysusers file. The user's numbers are those of
// the machine's user of that name when it exists (an installed package);
// otherwise those systemd-sysusers allocates for the shipped sysusers file
// in a private root holding copies of the machine's passwd and group, so
// they collide with no user of the machine. Nothing of the machine changes.
func ShippedUnitIdentity(t testing.TB) UnitIdentity {
	t.Helper()
	unitPath := filepath.Join(RepoRoot(), "deploy", "systemd", "vmhost_exporter.service")
	unit := UnitAssignments(t, unitPath)
	last := func(key string) string {
		if v := unit[key]; len(v) > 0 {
			return v[len(v)-1]
		}
		return ""
	}
	id := UnitIdentity{User: last("User"), Group: last("Group"), Unit: unitPath, NoNewPrivs: last("NoNewPrivileges") == "yes"}
	if id.User == "" || id.User == "root" {
		t.Fatalf("%s: User=%q; the service must run as its own unprivileged user", unitPath, id.User)
	}
	id.Ambient = capabilityList(t, "AmbientCapabilities", unit["AmbientCapabilities"])
	id.Bounding = capabilityList(t, "CapabilityBoundingSet", unit["CapabilityBoundingSet"])
	if id.Bounding != nil {
		// systemd drops ambient capabilities outside the bounding set.
		id.Ambient = slices.DeleteFunc(id.Ambient, func(c string) bool { return !slices.Contains(id.Bounding, c) })
	}

	passwd, group := "/etc/passwd", "/etc/group"
	id.Source = "the machine's " + passwd
	if _, ok := lookupColon(t, passwd, id.User); !ok {
		etc, err := serviceAccounts()
		if err != nil {
			if errors.Is(err, exec.ErrNotFound) {
				Missing(t, "systemd-sysusers", "apt-get install systemd")
			}
			t.Fatal(err)
		}
		passwd, group = filepath.Join(etc, "passwd"), filepath.Join(etc, "group")
		id.Source = "systemd-sysusers vmhost_exporter.conf"
	}
	fields, ok := lookupColon(t, passwd, id.User)
	if !ok {
		t.Fatalf("user %s is neither on the machine nor created by the shipped sysusers file", id.User)
	}
	id.UID, _ = strconv.Atoi(fields[2])
	id.GID, _ = strconv.Atoi(fields[3])
	if id.Group != "" {
		g, ok := lookupColon(t, group, id.Group)
		if !ok {
			t.Fatalf("%s: Group=%s does not exist (%s)", unitPath, id.Group, id.Source)
		}
		id.GID, _ = strconv.Atoi(g[2])
	}
	for _, assignment := range unit["SupplementaryGroups"] {
		if assignment == "" {
			id.Groups = nil
		}
		for _, name := range strings.Fields(assignment) {
			g, ok := lookupColon(t, group, name)
			if !ok {
				t.Fatalf("%s: SupplementaryGroups names %s, which does not exist", unitPath, name)
			}
			gid, _ := strconv.Atoi(g[2])
			id.Groups = append(id.Groups, gid)
		}
	}
	if id.UID == 0 {
		t.Fatalf("user %s has uid 0", id.User)
	}
	return id
}

// serviceAccounts is a directory holding passwd and group: the machine's,
// plus what the shipped sysusers file adds, as systemd-sysusers writes them
// on a host where the package is installed. Made once per test process, in
// its temp dir; the machine's own files never change. Private libvirt
// daemons see these files as their /etc/passwd and /etc/group (libvirtd
// looks up the user of every client), so the exporter can connect to them
// as the service user.
var serviceAccounts = sync.OnceValues(func() (string, error) {
	sysusers, err := exec.LookPath("systemd-sysusers")
	if err != nil {
		return "", err
	}
	dir, err := processTempDir()
	if err != nil {
		return "", err
	}
	root := filepath.Join(dir, "service-accounts")
	etc := filepath.Join(root, "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return "", err
	}
	for _, f := range []string{"passwd", "group"} {
		data, err := os.ReadFile(filepath.Join("/etc", f))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(etc, f), data, 0o644); err != nil {
			return "", err
		}
	}
	conf := filepath.Join(RepoRoot(), "deploy", "sysusers.d", "vmhost_exporter.conf")
	if out, err := exec.Command(sysusers, "--root="+root, conf).CombinedOutput(); err != nil {
		return "", fmt.Errorf("systemd-sysusers --root: %v\n%s", err, out)
	}
	return etc, nil
})

// lookupColon finds name in a passwd- or group-style file.
func lookupColon(t testing.TB, path, name string) ([]string, bool) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Split(line, ":"); len(f) >= 4 && f[0] == name {
			return f, true
		}
	}
	return nil, false
}

// WithoutCapabilities is the identity with every capability taken away:
// what a site that strips the unit's capability (a drop-in emptying
// AmbientCapabilities) runs.
func (id UnitIdentity) WithoutCapabilities() UnitIdentity {
	id.Ambient = []string{}
	return id
}

// setprivArgs is the setpriv(1) command line that runs a program with the
// identity: what systemd does for the unit, minus its file system
// sandbox. The parent-death signal is set again after the change of
// credentials, which clears it, so the program still dies with the test.
func (id UnitIdentity) setprivArgs() []string {
	groups := "--clear-groups"
	if len(id.Groups) > 0 {
		var g []string
		for _, gid := range id.Groups {
			g = append(g, strconv.Itoa(gid))
		}
		groups = "--groups=" + strings.Join(g, ",")
	}
	caps := "-all"
	for _, c := range id.Ambient {
		caps += ",+" + c
	}
	args := []string{
		"--reuid=" + strconv.Itoa(id.UID), "--regid=" + strconv.Itoa(id.GID), groups,
		"--inh-caps=" + caps, "--ambient-caps=" + caps,
		"--pdeathsig=SIGKILL",
	}
	if id.Bounding != nil {
		bounding := "-all"
		for _, c := range id.Bounding {
			bounding += ",+" + c
		}
		args = append(args, "--bounding-set="+bounding)
	}
	if id.NoNewPrivs {
		args = append(args, "--no-new-privs")
	}
	return args
}

func (id UnitIdentity) String() string {
	return fmt.Sprintf("%s (uid %d from %s) gid %d groups %v capabilities %v", id.User, id.UID, id.Source, id.GID, id.Groups, id.Ambient)
}

// Command runs a program with the identity, as the service would run it.
func (id UnitIdentity) Command(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	setpriv := LookPath(t, "setpriv", "util-linux")
	return exec.Command(setpriv, append(append(id.setprivArgs(), "--", name), args...)...)
}

// StartExporterAsUnit is StartExporter under the identity of a unit,
// through setpriv: user, group, supplementary groups, capabilities and
// NoNewPrivileges. Not the unit's file system sandbox (PrivateTmp,
// ProtectSystem), which needs systemd: the tests' trees live in temp dirs
// PrivateTmp would hide.
func StartExporterAsUnit(t testing.TB, id UnitIdentity, args ...string) *Exporter {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "root", "running the exporter as the service's user needs root")
	}
	setpriv := LookPath(t, "setpriv", "util-linux")
	return StartExporterWith(t, ExporterOptions{Command: func(bin string, all ...string) *exec.Cmd {
		return exec.Command(setpriv, append(append(id.setprivArgs(), "--", bin), all...)...)
	}}, args...)
}

// StartExporterAsService is StartExporter as the shipped unit runs it:
// tests that judge backup files use it, so that what they assert is what
// the installed service sees, not what root sees.
func StartExporterAsService(t testing.TB, args ...string) *Exporter {
	t.Helper()
	return StartExporterAsUnit(t, ShippedUnitIdentity(t), args...)
}

// StartExporterAsServiceIn is StartExporterAsService inside a sandbox's
// namespaces (StartHungMount's: a dead mount only the exporter sees).
// Signals for the exporter go to s.Inside(e.Process).
func StartExporterAsServiceIn(t testing.TB, s *Sandbox, args ...string) *Exporter {
	t.Helper()
	RequireRoot(t, "running the exporter as the service's user needs root")
	id := ShippedUnitIdentity(t)
	setpriv := LookPath(t, "setpriv", "util-linux")
	return StartExporterWith(t, ExporterOptions{Command: func(bin string, all ...string) *exec.Cmd {
		return s.Command(setpriv, append(append(id.setprivArgs(), "--", bin), all...)...)
	}}, args...)
}
