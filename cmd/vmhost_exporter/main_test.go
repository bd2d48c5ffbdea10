package main

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
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
	// config-check prints as a compiler does (FILE:LINE: message, quotes
	// as typed) since an operator asked for lines an editor can jump to:
	// the expectations that were logfmt's ("F line 5", \"...\", "is
	// valid") are now that form's.
	for _, tc := range []struct {
		file     string
		wantCode int
		want     []string
		notWant  []string
	}{
		{"../../examples/backup.yml", 0, []string{"backup.yml: valid, "}, nil},
		// YAML's words, not Go's: the job, the field, the fields that
		// job accepts; on one line (issue 26: an operator saw "field
		// maxage not found in type backup.Job" and a literal \n).
		{"../../collector/backup/testdata/bad-unknown-field.yml", 1, []string{"bad-unknown-field.yml:5: ", `unknown field "max_agee" in job "kvm-host" (known: name, type, max_age, path, `},
			[]string{"backup.Job", `\n`, "not found in type"}},
		{"../../collector/backup/testdata/bad-top-level.yml", 1, []string{`bad-top-level.yml:1: unknown top-level field "job" (known: jobs)`}, []string{"struct", "*[]"}},
		{"../../collector/backup/testdata/bad-type.yml", 1, []string{"bad-type.yml", "field type"}, nil},
		{paths, 1, []string{paths + `:4: job "kvm": path "backup/kvm" is not an absolute path`, paths + `:8: warning: job "restore-test": log_file ` + dir + `/nowhere/kvm_restore.log does not exist`}, []string{": valid"}},
		{missing, 0, []string{"does not exist", missing + ": valid, 1 job"}, nil},
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

// configCheck runs --backup.config-check on file and returns its exit
// code and what it wrote to stdout and to stderr.
func configCheck(t *testing.T, file string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.ExporterBinary(t), "--backup.config-check", "--backup.config-file="+file)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("config-check of %s did not exit; stderr:\n%s", file, errOut.String())
	}
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errOut.String()
}

// TestBackupConfigCheckLines: config-check prints one problem a line,
// "FILE:LINE: message" (or "FILE: message" for the whole file) on stderr,
// sorted by line, with quotes as typed and no log fields, so that an
// operator reads it and an editor jumps to each; path problems and
// warnings point at the path's line; a valid file is one line on stdout.
func TestBackupConfigCheckLines(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bad := func(name string) string { return filepath.Join("../../collector/backup/testdata", name) }
	several, duration, empty := bad("bad-several-problems.yml"), bad("bad-duration.yml"), bad("bad-empty.yml")
	syntax := write("syntax.yml", "jobs:\n  - name: a\n    type: b: c\n")
	absent := filepath.Join(dir, "absent.yml")
	// The warning's job comes first in the file: problems and warnings
	// are sorted together.
	paths := write("paths.yml", "jobs:\n  - name: restore-test\n    type: restore_log\n    log_file: "+dir+"/nowhere/kvm_restore.log\n    max_age: 35d\n"+
		"  - name: kvm\n    type: dated_dir\n    max_age: 26h\n    path: backup/kvm\n")
	warned := write("warned.yml", "jobs:\n  - name: dumps\n    type: file_glob\n    glob: "+dir+"/mysql/*.sql.gz\n    max_age: 26h\n")
	fine := write("fine.yml", "jobs:\n  - name: dumps\n    type: file_glob\n    glob: "+dir+"/*.gz\n    max_age: 26h\n"+
		"  - name: restore-test\n    type: restore_log\n    log_file: "+paths+"\n    max_age: 35d\n")
	none := write("none.yml", "jobs: []\n")

	for _, tc := range []struct {
		name           string
		file           string
		code           int
		stdout, stderr []string
	}{
		{"several problems", several, 1, nil, []string{
			several + ":9: jobs[0] (a): field glob is not used by type dated_dir (its fields: name, type, max_age, path, log_name, images_source, vm_xml_dir, images_dir, success_from, set_pattern, start_pattern, success_pattern, error_pattern, running_timeout, time_zone, copies)",
			several + ":11: jobs[1] (b): field log_file is required for type rclone_log",
			several + `:17: jobs[2] (c): field copies: "zz" is not the name of a job in this file`,
			several + `:22: field max_age of job "d": not a valid duration string: "26" (a number and a unit: 26h, 8d, 5w, 90m)`,
			several + `:26: unknown field "maxage" in job "e" (known: name, type, max_age, glob, running_timeout)`,
		}},
		{"bad duration", duration, 1, nil, []string{duration + `:5: field max_age of job "kvm-host": not a valid duration string: "a week" (a number and a unit: 26h, 8d, 5w, 90m)`}},
		{"no jobs", empty, 1, nil, []string{empty + ": field jobs is missing or empty (an empty or truncated file?); write `jobs: []` to monitor no backups"}},
		{"YAML syntax", syntax, 1, nil, []string{syntax + ":3: yaml: mapping values are not allowed in this context"}},
		{"unreadable", absent, 1, nil, []string{absent + ": no such file or directory"}},
		{"relative path and a missing one", paths, 1, nil, []string{
			paths + `:4: warning: job "restore-test": log_file ` + dir + `/nowhere/kvm_restore.log does not exist`,
			paths + `:9: job "kvm": path "backup/kvm" is not an absolute path`,
		}},
		{"valid with a warning", warned, 0, []string{warned + ": valid, 1 job"}, []string{warned + `:4: warning: job "dumps": glob ` + dir + `/mysql does not exist`}},
		{"valid", fine, 0, []string{fine + ": valid, 2 jobs"}, nil},
		{"valid without jobs", none, 0, []string{none + ": valid, 0 jobs"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := configCheck(t, tc.file)
			if code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			if want := lines(tc.stdout); stdout != want {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
			}
			if want := lines(tc.stderr); stderr != want {
				t.Errorf("stderr:\n%s\nwant:\n%s", stderr, want)
			}
		})
	}

	// Every bad fixture: refused, nothing on stdout, each line of
	// stderr names the file (and its line, in order) in plain text.
	files, err := filepath.Glob("../../collector/backup/testdata/*bad*.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad fixtures: %v", err)
	}
	at := regexp.MustCompile(`^:(\d+): `)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			code, stdout, stderr := configCheck(t, f)
			if code != 1 || stdout != "" || stderr == "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want 1, nothing, the problems", code, stdout, stderr)
			}
			for _, w := range []string{`\"`, "level=", "time=", "msg="} {
				if strings.Contains(stderr, w) {
					t.Errorf("stderr has %s:\n%s", w, stderr)
				}
			}
			last := 0
			for _, l := range strings.Split(strings.TrimSuffix(stderr, "\n"), "\n") {
				rest, ok := strings.CutPrefix(l, f)
				if !ok || !strings.HasPrefix(rest, ":") {
					t.Errorf("line does not start with %s: %q", f, l)
					continue
				}
				if m := at.FindStringSubmatch(rest); m != nil {
					n, _ := strconv.Atoi(m[1])
					if n < last {
						t.Errorf("line %d named after line %d:\n%s", n, last, stderr)
					}
					last = n
				} else if !strings.HasPrefix(rest, ": ") {
					t.Errorf("neither FILE:LINE: nor FILE: %q", l)
				}
			}
		})
	}
}

// TestBackupConfigCheckReadmeExample: the README's config-check example
// is what config-check prints for the quick start's backup.yml with the
// two mistakes the README names, and its success line that file's, so
// that the example cannot drift from the output; the runbook of
// BackupConfigReloadFailed shows the same lines.
func TestBackupConfigCheckReadmeExample(t *testing.T) {
	const etc = "/etc/vmhost_exporter/backup.yml"
	readme := testenv.ReadFile(t, filepath.Join(testenv.RepoRoot(), "README.md"))
	_, yml, ok := strings.Cut(readme, "```yaml\njobs:\n")
	if !ok {
		t.Fatal("README has no backup.yml in its quick start")
	}
	yml, _, _ = strings.Cut("jobs:\n"+yml, "```")
	_, example, ok := strings.Cut(readme, "```\n"+etc+":")
	if !ok {
		t.Fatal("README has no config-check example")
	}
	example, _, _ = strings.Cut(etc+":"+example, "```")

	dir := t.TempDir()
	good, broken := filepath.Join(dir, "good.yml"), filepath.Join(dir, "broken.yml")
	if err := os.WriteFile(good, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	// The mistakes the README names: `max_age: 26` (kvm-host's, the
	// first) and `copies: kvm-hosts`.
	for _, typo := range [][2]string{{"max_age: 26h ", "max_age: 26  "}, {"copies: kvm-host ", "copies: kvm-hosts"}} {
		if !strings.Contains(yml, typo[0]) {
			t.Fatalf("the quick start's backup.yml has no %q", typo[0])
		}
		yml = strings.Replace(yml, typo[0], typo[1], 1)
	}
	if err := os.WriteFile(broken, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}

	code, _, stderr := configCheck(t, broken)
	if want := strings.ReplaceAll(example, etc, broken); code != 1 || stderr != want {
		t.Errorf("README's example:\n%s\nconfig-check (exit %d):\n%s", want, code, stderr)
	}
	runbooks := testenv.ReadFile(t, filepath.Join(testenv.RepoRoot(), "docs", "runbooks.md"))
	if !strings.Contains(runbooks, "```\n"+example+"```") {
		t.Errorf("docs/runbooks.md does not show the README's example:\n%s", example)
	}
	code, stdout, _ := configCheck(t, good)
	if success := strings.ReplaceAll(stdout, good, etc); code != 0 || !strings.Contains(readme, "`"+strings.TrimSuffix(success, "\n")+"`") {
		t.Errorf("config-check of the quick start's backup.yml: exit %d, %q; the README does not show it", code, stdout)
	}
}

// lines is ls as a program's output: each line ended by a newline.
func lines(ls []string) string {
	if len(ls) == 0 {
		return ""
	}
	return strings.Join(ls, "\n") + "\n"
}
