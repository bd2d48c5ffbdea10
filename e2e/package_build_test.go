package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

const packageName = "vmhost-exporter"

// release is one `make package` output: the .deb, the .rpm and the
// tarball of one version.
type release struct {
	version, deb, rpm, tarball, tarDir, dir string
}

var (
	releasesMu sync.Mutex
	releases   = map[string]*release{}
)

// repoVersion is the version the VERSION file names.
func repoVersion(t *testing.T) string {
	return strings.TrimSpace(testenv.ReadFile(t, filepath.Join(testenv.RepoRoot(), "VERSION")))
}

// buildRelease runs `make package` for version ("" is the VERSION file's)
// with the package scripts of scripts ("" is packaging/scripts), once per
// test binary: the tests of this package share its output. $USER is
// empty, as on CI runners that do not set it: the build user must still be
// known.
func buildRelease(t *testing.T, version, scripts string) *release {
	t.Helper()
	releasesMu.Lock()
	defer releasesMu.Unlock()
	if version == "" {
		version = repoVersion(t)
	}
	key := version + " " + scripts
	if r, ok := releases[key]; ok {
		return r
	}
	dir, err := os.MkdirTemp(testenv.ProcessTempDir(t), "dist-")
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-C", testenv.RepoRoot(), "--no-print-directory", "package", "DIST=" + dir, "VERSION=" + version}
	if scripts != "" {
		args = append(args, "PKG_SCRIPTS="+scripts)
	}
	cmd := exec.Command("make", args...)
	cmd.Env = append(os.Environ(), "USER=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	tarDir := "vmhost_exporter-" + version + ".linux-amd64"
	r := &release{
		version: version,
		dir:     dir,
		deb:     filepath.Join(dir, packageName+"_"+version+"-1_amd64.deb"),
		rpm:     filepath.Join(dir, packageName+"-"+version+"-1.x86_64.rpm"),
		tarball: filepath.Join(dir, tarDir+".tar.gz"),
		tarDir:  tarDir,
	}
	releases[key] = r
	return r
}

// packager is how one package format is installed, queried and removed,
// and where it puts what differs between the formats.
type packager struct {
	name string
	file func(*release) string
	// install and upgrade take the package file as the last argument.
	install, upgrade, remove []string
	// installed is the command whose success means the package is
	// installed; files and conffiles list them.
	installed, files, conffiles []string
	unit, defaults, copyright   string
}

// packagers: dpkg as Debian runs it; rpm as an RPM distribution would,
// but on Debian: without the dependencies (Debian's rpm database knows no
// packages), past Debian's refusal to install RPMs outside alien, and with
// the database in /var/lib/rpm as on RPM distributions, inside the
// sandbox's /var: Debian's rpm keeps it in $HOME/.rpmdb, which no sandbox
// covers.
var packagers = []packager{
	{
		name:      "deb",
		file:      func(r *release) string { return r.deb },
		install:   []string{"dpkg", "-i"},
		upgrade:   []string{"dpkg", "-i"},
		remove:    []string{"dpkg", "--purge", packageName},
		installed: []string{"sh", "-c", "dpkg-query -W -f='${Status}' " + packageName + " | grep -q 'install ok installed'"},
		files:     []string{"dpkg", "-L", packageName},
		conffiles: []string{"dpkg-query", "-W", "-f=${Conffiles}", packageName},
		unit:      "/lib/systemd/system/vmhost_exporter.service",
		defaults:  "/etc/default/vmhost_exporter",
		copyright: "/usr/share/doc/vmhost-exporter/copyright",
	},
	{
		name:      "rpm",
		file:      func(r *release) string { return r.rpm },
		install:   []string{"rpm", rpmDB, "-i", "--nodeps", "--force-debian"},
		upgrade:   []string{"rpm", rpmDB, "-U", "--nodeps", "--force-debian"},
		remove:    []string{"rpm", rpmDB, "-e", "--nodeps", packageName},
		installed: []string{"rpm", rpmDB, "-q", packageName},
		files:     []string{"rpm", rpmDB, "-ql", packageName},
		conffiles: []string{"rpm", rpmDB, "-qc", packageName},
		unit:      "/usr/lib/systemd/system/vmhost_exporter.service",
		defaults:  "/etc/sysconfig/vmhost_exporter",
		copyright: "/usr/share/licenses/vmhost-exporter/copyright",
	},
}

// rpmDB is where the sandboxes keep their rpm database.
const rpmDB = "--dbpath=/var/lib/rpm"

// isInstalled asks the packager, in the sandbox, whether the package is
// installed.
func (p packager) isInstalled(sb *testenv.Sandbox) bool {
	return sb.Command(p.installed[0], p.installed[1:]...).Run() == nil
}

// installedOnMachine tells whether this machine has the package installed
// by p. It leaves rpm alone where the machine has no rpm database: a
// query would create one.
func (p packager) installedOnMachine() bool {
	if p.name == "rpm" {
		if db := machineRPMDB(); db == "" || !fileExists(db) {
			return false
		}
		return exec.Command("rpm", "-q", packageName).Run() == nil
	}
	return exec.Command(p.installed[0], p.installed[1:]...).Run() == nil
}

// machineRPMDB is the directory of this machine's rpm database ("" without
// rpm): $HOME/.rpmdb on Debian, /var/lib/rpm elsewhere.
func machineRPMDB() string {
	out, err := exec.Command("rpm", "-E", "%{_dbpath}").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// requireTools fails (or skips outside CI) when the packager's tools are
// missing.
func (p packager) requireTools(t *testing.T) {
	t.Helper()
	testenv.LookPath(t, p.install[0], p.install[0])
}
