package main

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

func cpuCountFromProcStat(t *testing.T) int {
	t.Helper()
	f, err := os.Open("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 && strings.HasPrefix(fields[0], "cpu") && fields[0] != "cpu" {
			n++
		}
	}
	return n
}

func TestHostMetricsMatchProc(t *testing.T) {
	e := testenv.StartExporter(t)
	mf := testenv.Scrape(t, e.URL+"/metrics")

	memTotal, ok := testenv.Value(mf, "node_memory_MemTotal_bytes", nil)
	if !ok {
		t.Fatal("node_memory_MemTotal_bytes missing")
	}
	if want := testenv.ReadMeminfo(t, "MemTotal"); memTotal != want {
		t.Errorf("node_memory_MemTotal_bytes = %v, /proc/meminfo says %v", memTotal, want)
	}

	cpus := map[string]bool{}
	for _, m := range mf["node_cpu_seconds_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "cpu" {
				cpus[l.GetValue()] = true
			}
		}
	}
	if want := cpuCountFromProcStat(t); len(cpus) != want {
		t.Errorf("node_cpu_seconds_total covers %d CPUs, /proc/stat has %d", len(cpus), want)
	}

	host, _ := os.Hostname()
	if _, ok := testenv.Value(mf, "node_uname_info", map[string]string{"nodename": host}); !ok {
		t.Errorf("node_uname_info{nodename=%q} missing", host)
	}
	for _, c := range []string{"cpu", "meminfo", "vmstat", "loadavg", "filesystem", "diskstats", "netdev", "uname"} {
		if v, ok := testenv.Value(mf, "node_scrape_collector_success", map[string]string{"collector": c}); !ok || v != 1 {
			t.Errorf("node_scrape_collector_success{collector=%q} = %v (present %v), want 1", c, v, ok)
		}
	}
	if _, ok := testenv.Value(mf, "node_scrape_collector_duration_seconds", map[string]string{"collector": "meminfo"}); !ok {
		t.Error("node_scrape_collector_duration_seconds{collector=meminfo} missing")
	}
	// No libvirtd behind the socket: the exporter says so and still serves.
	if v, ok := testenv.Value(mf, "libvirt_up", nil); !ok || v != 0 {
		t.Errorf("libvirt_up = %v (present %v), want 0 without libvirtd", v, ok)
	}
	if _, ok := testenv.Value(mf, "vmhost_exporter_build_info", nil); !ok {
		t.Error("vmhost_exporter_build_info missing")
	}
	e.WaitOutput(t, 10*time.Second, "libvirt is not reachable") // the start-up log says so
}

func TestDisableDefaultsKeepsOnlyNamedCollectors(t *testing.T) {
	e := testenv.StartExporter(t, "--collector.disable-defaults", "--collector.meminfo")
	mf := testenv.Scrape(t, e.URL+"/metrics")

	var collectors []string
	for _, m := range mf["node_scrape_collector_success"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "collector" {
				collectors = append(collectors, l.GetValue())
			}
		}
	}
	if len(collectors) != 1 || collectors[0] != "meminfo" {
		t.Errorf("collectors = %v, want only meminfo", collectors)
	}
	if _, ok := mf["node_memory_MemTotal_bytes"]; !ok {
		t.Error("node_memory_MemTotal_bytes missing")
	}
	for name := range mf {
		if strings.HasPrefix(name, "node_cpu") || strings.HasPrefix(name, "libvirt_") || strings.HasPrefix(name, "vmhost_backup_") {
			t.Errorf("%s exported although its collector was not named", name)
		}
	}
}

func TestBasicAuthFromWebConfig(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(cfg, []byte("basic_auth_users:\n  prometheus: "+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := testenv.ExporterBinary(t)
	addr := testenv.FreePort(t)
	testenv.Start(t, bin, "--web.listen-address="+addr, "--web.config.file="+cfg,
		"--no-collector.libvirt", "--no-collector.backup")
	url := "http://" + addr + "/metrics"

	deadline := time.Now().Add(15 * time.Second)
	var resp *http.Response
	for {
		resp, err = http.Get(url)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without credentials: status %d, want 401", resp.StatusCode)
	}

	for _, tc := range []struct {
		user, pass string
		want       int
	}{
		{"prometheus", "wrong", http.StatusUnauthorized},
		{"prometheus", "s3cret", http.StatusOK},
	} {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.SetBasicAuth(tc.user, tc.pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("user %s password %s: status %d, want %d", tc.user, tc.pass, resp.StatusCode, tc.want)
		}
	}
}

// runToExit runs the exporter with args and returns its exit code and output.
func runToExit(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.ExporterBinary(t), args...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("exporter with %v did not exit; output:\n%s", args, out)
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, string(out)
}

func TestStartupErrorsExitNonZeroWithClearMessage(t *testing.T) {
	dir := t.TempDir()
	badYAML := filepath.Join(dir, "web-bad.yml")
	if err := os.WriteFile(badYAML, []byte("tls_server_config: [not, a, map\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	unknownField := filepath.Join(dir, "web-unknown.yml")
	if err := os.WriteFile(unknownField, []byte("no_such_setting: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missingWeb := filepath.Join(dir, "missing-web.yml")
	missingBackup := filepath.Join(dir, "missing-backup.yml")
	listen := "--web.listen-address=" + testenv.FreePort(t)

	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"unknown flag", []string{"--no-such-flag"}, []string{"unknown long flag", "--no-such-flag"}},
		{"bad duration", []string{"--libvirt.timeout=soon"}, []string{"libvirt.timeout"}},
		{"no stats lists", []string{"--libvirt.stats-batches=0"}, []string{"--libvirt.stats-batches", "at least 1"}},
		{"unreadable web config", []string{listen, "--web.config.file=" + missingWeb}, []string{"web configuration", missingWeb, "no such file"}},
		{"web config is a directory", []string{listen, "--web.config.file=" + dir}, []string{"web configuration", dir}},
		{"malformed web config", []string{listen, "--web.config.file=" + badYAML}, []string{"web configuration", badYAML}},
		{"unknown field in web config", []string{listen, "--web.config.file=" + unknownField}, []string{"no_such_setting"}},
		{"named backup config missing", []string{listen, "--no-collector.libvirt", "--backup.config-file=" + missingBackup}, []string{"backup configuration", missingBackup}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runToExit(t, tc.args...)
			if code == 0 {
				t.Fatalf("exit code 0, want non-zero; output:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output does not mention %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestVersionAndHelp(t *testing.T) {
	code, out := runToExit(t, "--version")
	if code != 0 || !strings.Contains(out, "vmhost_exporter, version") {
		t.Errorf("--version: exit %d, output:\n%s", code, out)
	}
	code, out = runToExit(t, "--help")
	if code != 0 {
		t.Errorf("--help: exit %d", code)
	}
	for _, flag := range []string{"--web.listen-address", "--web.config.file", "--web.telemetry-path",
		"--[no-]collector.libvirt", "--libvirt.socket", "--libvirt.uri", "--libvirt.timeout", "--libvirt.stats-batches", "--[no-]libvirt.job-info",
		"--backup.config-file", "--[no-]backup.config-check", "--[no-]collector.disable-defaults",
		"--path.procfs", "--[no-]collector.meminfo", "--log.level", "--log.format"} {
		if !strings.Contains(out, flag) {
			t.Errorf("--help does not list %s", flag)
		}
	}
	if !strings.Contains(out, ":9851") {
		t.Error("--help does not show the default listen address :9851")
	}
}

func TestBackupConfigCheck(t *testing.T) {
	// Paths: a relative one is an error (it would be read from wherever
	// the service starts), a missing one a warning (a typo, or a backup
	// that has not run yet).
	dir := t.TempDir()
	paths := filepath.Join(dir, "paths.yml")
	if err := os.WriteFile(paths, []byte("jobs:\n  - name: kvm\n    type: dated_dir\n    path: backup/kvm\n    max_age: 26h\n"+
		"  - name: restore-test\n    type: restore_log\n    log_file: "+dir+"/nowhere/kvm_restore.log\n    max_age: 35d\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.yml")
	if err := os.WriteFile(missing, []byte("jobs:\n  - name: restore-test\n    type: restore_log\n    log_file: "+dir+"/nowhere/kvm_restore.log\n    max_age: 35d\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file     string
		wantCode int
		want     []string
		notWant  []string
	}{
		{"../../examples/backup.yml", 0, []string{"valid"}, nil},
		// YAML's words, not Go's: the job, the field, the fields that
		// job accepts; on one line (issue 26: an operator saw "field
		// maxage not found in type backup.Job" and a literal \n).
		{"../../collector/backup/testdata/bad-unknown-field.yml", 1, []string{"bad-unknown-field.yml line 5", `unknown field \"max_agee\" in job \"kvm-host\" (known: name, type, max_age, path, `},
			[]string{"backup.Job", `\n`, "not found in type"}},
		{"../../collector/backup/testdata/bad-top-level.yml", 1, []string{`line 1: unknown top-level field \"job\" (known: jobs)`}, []string{"struct", "*[]"}},
		{"../../collector/backup/testdata/bad-type.yml", 1, []string{"bad-type.yml", "field type"}, nil},
		{paths, 1, []string{`job \"kvm\": path \"backup/kvm\" is not an absolute path`, `job \"restore-test\": log_file ` + dir + `/nowhere/kvm_restore.log does not exist`}, []string{"is valid"}},
		{missing, 0, []string{"does not exist", "is valid"}, nil},
	} {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			code, out := runToExit(t, "--backup.config-check", "--backup.config-file="+tc.file)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d; output:\n%s", code, tc.wantCode, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output does not mention %q:\n%s", w, out)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out, w) {
					t.Errorf("output mentions %q:\n%s", w, out)
				}
			}
		})
	}
}
