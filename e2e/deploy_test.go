package e2e

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
