package e2e

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// TestSystemdUnit: the unit passes systemd's own verification, and its
// sandbox stays tight (systemd-analyze security exposure at most 2.5 of 10).
func TestSystemdUnit(t *testing.T) {
	analyze := testenv.LookPath(t, "systemd-analyze", "systemd")
	unit, err := os.ReadFile("../deploy/systemd/vmhost_exporter.service")
	if err != nil {
		t.Fatal(err)
	}
	// verify insists that ExecStart exists: point it at the built binary.
	local := filepath.Join(t.TempDir(), "vmhost_exporter.service")
	text := strings.ReplaceAll(string(unit), "/usr/local/bin/vmhost_exporter", testenv.ExporterBinary(t))
	if err := os.WriteFile(local, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", local).CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err := exec.Command(analyze, "security", "--offline=yes", local).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for \S+: ([\d.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	if level, _ := strconv.ParseFloat(string(m[1]), 64); level > 2.5 {
		t.Errorf("exposure level %.1f, want at most 2.5:\n%s", level, out)
	}
}

func TestExamplePrometheusConfig(t *testing.T) {
	promtool := testenv.LookPath(t, "promtool", "prometheus")
	out, err := exec.Command(promtool, "check", "config", "../examples/prometheus.yml").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
}

// TestDemo runs `make demo`'s script: every URL it prints answers, and
// Ctrl-C (SIGINT) stops every process it started and removes its temp dir.
func TestDemo(t *testing.T) {
	testenv.RequireRoot(t, "the demo's private libvirtd needs root for its namespaces")
	for _, tool := range []string{"libvirtd", "prometheus", "prometheus-alertmanager", "curl"} {
		testenv.LookPath(t, tool, "see scripts/install-test-deps.sh")
	}
	exporter, prom, am := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	cmd := exec.Command("../scripts/demo.sh")
	cmd.Env = append(os.Environ(), "DEMO_EXPORTER_ADDR="+exporter, "DEMO_PROMETHEUS_ADDR="+prom, "DEMO_ALERTMANAGER_ADDR="+am)
	// The demo runs as PID 1 of a PID namespace: whatever it started dies
	// with it, and it dies with this test, even when the test is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Cloneflags: syscall.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL}
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })

	lines := make(chan string, 100)
	var output strings.Builder
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var workDir string
	deadline := time.After(5 * time.Minute)
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("demo ended early:\n%s", output.String())
			}
			output.WriteString(l + "\n")
			if strings.HasPrefix(l, "demo: running (logs and data in ") {
				workDir = strings.TrimSuffix(strings.TrimPrefix(l, "demo: running (logs and data in "), ")")
			}
			if strings.HasPrefix(l, "Press Ctrl-C") {
				break wait
			}
		case <-deadline:
			t.Fatalf("demo did not come up:\n%s", output.String())
		}
	}
	for _, url := range []string{"http://" + exporter + "/metrics", "http://" + prom + "/-/ready", "http://" + am + "/-/ready"} {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", url, resp.StatusCode)
		}
		if strings.HasSuffix(url, "/metrics") && !strings.Contains(string(body), `libvirt_domain_info_state{domain="crash1"`) {
			t.Errorf("the demo exporter does not show the test-driver VMs")
		}
	}

	// Ctrl-C goes to the whole foreground process group.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	done := make(chan error, 1)
	go func() {
		for l := range lines {
			output.WriteString(l + "\n")
		}
		done <- cmd.Wait()
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("demo did not stop on Ctrl-C:\n%s", output.String())
	}
	if _, err := os.Stat(workDir); workDir == "" || !os.IsNotExist(err) {
		t.Errorf("demo left %q behind", workDir)
	}
	for _, addr := range []string{exporter, prom, am} {
		if _, err := http.Get("http://" + addr + "/"); err == nil {
			t.Errorf("%s still answers after Ctrl-C", addr)
		}
	}
}

// unitServiceSettings returns the [Service] settings of a unit file, each
// key's assignments joined by spaces (testenv.UnitAssignments keeps them
// apart, in order).
func unitServiceSettings(t *testing.T, path string) map[string]string {
	t.Helper()
	settings := map[string]string{}
	for k, assignments := range testenv.UnitAssignments(t, path) {
		settings[k] = strings.TrimSpace(strings.Join(assignments, " "))
	}
	return settings
}

// TestShippedServiceIdentity runs the exporter with the identity the shipped
// unit and sysusers file give it: systemd-sysusers creates the user in a
// private root, the unit names its user, group and supplementary groups,
// and with exactly those credentials the exporter reads every domain
// through the read-only socket while the read-write socket is closed to
// it. Neither file may make it a member of libvirt (or of any other
// group): that group can manage every VM.
func TestShippedServiceIdentity(t *testing.T) {
	sysusers := testenv.LookPath(t, "systemd-sysusers", "systemd")
	unit := unitServiceSettings(t, "../deploy/systemd/vmhost_exporter.service")
	if unit["User"] != "vmhost_exporter" || unit["Group"] != "vmhost_exporter" {
		t.Fatalf("unit runs as User=%q Group=%q, want vmhost_exporter", unit["User"], unit["Group"])
	}
	if g := unit["SupplementaryGroups"]; g != "" {
		t.Errorf("unit gives supplementary groups %q; the read-only socket needs none", g)
	}
	if unit["DynamicUser"] != "" {
		t.Errorf("unit sets DynamicUser=%s next to the sysusers user", unit["DynamicUser"])
	}

	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf, err := os.Open("../deploy/sysusers.d/vmhost_exporter.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer conf.Close()
	cmd := exec.Command(sysusers, "--root="+root, "-")
	cmd.Stdin = conf
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("systemd-sysusers: %v\n%s", err, out)
	}
	passwd, _ := os.ReadFile(filepath.Join(root, "etc", "passwd"))
	group, _ := os.ReadFile(filepath.Join(root, "etc", "group"))
	var uid, gid int
	for _, line := range strings.Split(string(passwd), "\n") {
		f := strings.Split(line, ":")
		if len(f) == 7 && f[0] == "vmhost_exporter" {
			uid, _ = strconv.Atoi(f[2])
			gid, _ = strconv.Atoi(f[3])
			if f[6] != "/usr/sbin/nologin" {
				t.Errorf("login shell %q", f[6])
			}
		}
	}
	if uid == 0 || gid == 0 {
		t.Fatalf("sysusers created no unprivileged vmhost_exporter user:\n%s", passwd)
	}
	for _, line := range strings.Split(string(group), "\n") {
		f := strings.Split(line, ":")
		if len(f) == 4 && slices.Contains(strings.Split(f[3], ","), "vmhost_exporter") {
			t.Errorf("sysusers makes vmhost_exporter a member of group %s", f[0])
		}
	}

	l := testenv.StartLibvirtd(t)
	// Debian's socket policy: read-only open to all, read-write only to
	// root and the libvirt group, of which the exporter is no member.
	if err := os.Chmod(l.SockRW, 0o770); err != nil {
		t.Fatal(err)
	}
	node := filepath.Join(testenv.SharedTempDir(t), "node.xml")
	data, err := os.ReadFile("../collector/libvirt/testdata/node.xml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(node, data, 0o644); err != nil {
		t.Fatal(err)
	}
	// The user's numbers as on this machine with the package installed
	// (sysusers allocates them among the machine's users), its
	// capabilities as the unit gives them.
	id := testenv.ShippedUnitIdentity(t)
	e := testenv.StartExporterAsUnit(t, id, "--libvirt.socket="+l.SockRO, "--libvirt.uri="+testenv.TestURI(node))
	mf := testenv.Scrape(t, e.URL+"/metrics")
	if v, _ := testenv.Value(mf, "libvirt_up", nil); v != 1 {
		t.Errorf("libvirt_up as the service user = %v, want 1\n%s", v, e.Output())
	}
	if v, _ := testenv.Value(mf, "libvirt_domains", nil); v != 6 {
		t.Errorf("libvirt_domains as the service user = %v, want 6", v)
	}
	// The same identity cannot reach the read-write socket.
	// With the unit's capability too: reading any file gives no right to
	// connect to a socket, which needs write permission.
	probe := id.Command(t, "virsh", "-c", "test+unix://"+node+"?socket="+l.SockRW, "list")
	if out, err := probe.CombinedOutput(); err == nil {
		t.Errorf("the service user opened the read-write socket:\n%s", out)
	}
}
