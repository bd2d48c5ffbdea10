// Package testenv starts the real components the tests run against: a
// private libvirtd, the exporter binary, Prometheus. Everything lives in the
// test's temp dir and on loopback, and is stopped by t.Cleanup.
//
// A component that is missing skips the test with an install hint, except
// under CI=true, where it fails the test: CI must never pass by skipping.
package testenv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// InCI reports whether the tests run in CI, where missing components fail.
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing skips (or under CI fails) the test because a component is absent.
func Missing(t testing.TB, what, hint string) {
	t.Helper()
	if InCI() {
		t.Fatalf("%s is required in CI but missing: %s", what, hint)
	}
	t.Skipf("%s is missing; %s (or run `make test` as root, which installs it)", what, hint)
}

// LookPath returns the path of a program or skips/fails the test.
func LookPath(t testing.TB, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/sbin"} {
			if _, serr := os.Stat(filepath.Join(dir, name)); serr == nil {
				return filepath.Join(dir, name)
			}
		}
		Missing(t, name, "apt-get install -y "+debianPackage)
	}
	return p
}

// RepoRoot returns the module root, found from this file's location.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// ExporterBinary builds cmd/vmhost_exporter once per test process.
func ExporterBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp(ProcessTempDir(t), "bin-")
		if err != nil {
			buildErr = err
			return
		}
		_ = os.Chmod(dir, 0o755) // some tests run it as an unprivileged user
		buildPath = filepath.Join(dir, "vmhost_exporter")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/vmhost_exporter")
		cmd.Dir = RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// loopbackIP is this test process's own address in 127.0.0.0/8. Test
// packages run as parallel processes, each picking a free port that a server
// it starts binds a moment later. On one shared address two processes could
// be handed the same just-closed port: CI once saw Alertmanager lose its
// port to another package's server and then wait five minutes for a
// /-/ready that the other server answered with 404. Connections to any
// loopback address leave from 127.0.0.1, so clients' ephemeral ports never
// take these ports either.
var loopbackIP = sync.OnceValue(func() string {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "127.0.0.1"
	}
	// 127.0.0.0/16 stays for the system (127.0.0.1, 127.0.1.1 of
	// /etc/hosts); the last byte is never 0 or 255.
	return fmt.Sprintf("127.%d.%d.%d", 1+int(b[0])%254, b[1], 1+int(b[2])%254)
})

// LoopbackIP is the address FreePort's ports are on, for a certificate
// that must name it.
func LoopbackIP() string { return loopbackIP() }

var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// FreePort returns an address of this process's loopback IP with a port
// that was free a moment ago and that no other FreePort call of this
// process returned (the kernel may offer a just-closed port again, and
// parallel tests of one package start servers at the same time).
func FreePort(t testing.TB) string {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", net.JoinHostPort(loopbackIP(), "0"))
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().(*net.TCPAddr)
		l.Close()
		if !handedOut.ports[addr.Port] {
			handedOut.ports[addr.Port] = true
			return addr.String()
		}
	}
	t.Fatal("no free loopback port that this process has not handed out before")
	return ""
}

// Process is a started program whose output is kept for failure messages.
type Process struct {
	Cmd    *exec.Cmd
	output *syncBuffer
	done   chan struct{}
}

// Exited is closed when the process has ended.
func (p *Process) Exited() <-chan struct{} { return p.done }

// WaitExited fails the test unless the process ends within timeout; what
// says what should have ended it.
func (p *Process) WaitExited(t testing.TB, timeout time.Duration, what string) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s did not end within %v (%s)", p.Cmd.Path, timeout, what)
	}
}

// Signal sends sig and, for SIGKILL, waits until the process is gone.
func (p *Process) Signal(sig os.Signal) {
	_ = p.Cmd.Process.Signal(sig)
	if sig == os.Kill {
		<-p.done
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Output is what the process printed so far (stdout and stderr).
func (p *Process) Output() string { return p.output.String() }

// Start runs a program until the test ends.
func Start(t testing.TB, name string, args ...string) *Process {
	t.Helper()
	return StartAs(t, nil, name, args...)
}

// StartAs runs a program as another user (nil: as the test) until the test
// ends.
func StartAs(t testing.TB, cred *syscall.Credential, name string, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(name, args...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	return StartCommand(t, cmd)
}

// StartTestChild runs test, a test of this test binary, in a child
// test binary whose environment adds env (KEY=value): the way a test
// watches what a killed test binary leaves behind.
func StartTestChild(t testing.TB, test string, env ...string) *Process {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.v")
	cmd.Env = append(os.Environ(), env...)
	return StartCommand(t, cmd)
}

// StartCommand starts cmd, keeps its output for the test's log (shown only
// when the test fails, so a green run stays quiet) and ends it with the
// test: SIGINT, then SIGKILL after 5 s (to its process group if it has
// one of its own, cmd.SysProcAttr.Setpgid). The kernel kills it too when the
// test process dies, even by SIGKILL (parent-death signal), so no test
// leaves a process behind.
func StartCommand(t testing.TB, cmd *exec.Cmd) *Process {
	t.Helper()
	out := &syncBuffer{}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	done := make(chan struct{})
	p := &Process{Cmd: cmd, output: out, done: done}
	go func() { _ = cmd.Wait(); close(done) }()
	// A command started in a process group of its own (a wrapper such as
	// nsenter, which forks the program and passes no signal on) gets its
	// signals as a group.
	signal := func(sig syscall.Signal) {
		if cmd.SysProcAttr.Setpgid {
			_ = syscall.Kill(-cmd.Process.Pid, sig)
			return
		}
		_ = cmd.Process.Signal(sig)
	}
	t.Cleanup(func() {
		signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			signal(syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("output of %s:\n%s", filepath.Base(cmd.Path), tail(out.String(), 60))
		}
	})
	return p
}

func tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// WaitHTTP polls url, a server of p, until it answers 200 or the deadline
// passes. It stops at once when p has ended (a port taken after FreePort,
// a bad flag): a server that is gone never becomes ready, and whatever
// else answers on its port is not it.
func (p *Process) WaitHTTP(t testing.TB, url string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 10 * time.Second}
	for {
		select {
		case <-p.done:
			t.Fatalf("%s ended before %s answered 200: %v\n%s", filepath.Base(p.Cmd.Path), url, p.Cmd.ProcessState, tail(p.Output(), 20))
		default:
		}
		resp, err := client.Get(url)
		status := ""
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			status = resp.Status
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer 200 within %s (last answer: %q, last error: %v)", url, timeout, status, err)
		}
		select {
		case <-p.done:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Exporter is a running vmhost_exporter.
type Exporter struct {
	*Process
	URL string // base URL, e.g. http://127.0.0.1:1234
}

// StartExporter starts the exporter binary on a free loopback port with the
// given extra flags and waits until /metrics answers. Unless the caller
// names a libvirt socket, libvirt is pointed at a socket that does not exist,
// so no test ever talks to the system libvirtd.
func StartExporter(t testing.TB, args ...string) *Exporter {
	t.Helper()
	return StartExporterAs(t, nil, args...)
}

// Nobody is the credential of the unprivileged user tests run things as.
var Nobody = &syscall.Credential{Uid: 65534, Gid: 65534}

// SharedTempDir is a temp dir other users can traverse (t.TempDir makes
// 0700 directories), removed at the end of the test.
func SharedTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp(ProcessTempDir(t), "shared-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// StartExporterAs is StartExporter as another user (nil: as the test).
func StartExporterAs(t testing.TB, cred *syscall.Credential, args ...string) *Exporter {
	t.Helper()
	return StartExporterWith(t, ExporterOptions{Cred: cred}, args...)
}

// ExporterOptions say how StartExporterWith runs the exporter.
type ExporterOptions struct {
	Cred *syscall.Credential // nil: as the test
	// Env is added to the test's environment (TZ=Asia/Tokyo).
	Env []string
	// Command makes the command that runs the binary, e.g.
	// Sandbox.Command to run it in a sandbox; exec.Command when nil.
	Command func(name string, args ...string) *exec.Cmd
	// OwnSocket leaves --libvirt.socket unset so the exporter looks for
	// libvirt's sockets itself: only in a sandbox, whose /run is its own
	// and holds no socket of the machine's libvirtd.
	OwnSocket bool
}

// StartExporterWith is StartExporter with options.
func StartExporterWith(t testing.TB, opts ExporterOptions, args ...string) *Exporter {
	t.Helper()
	bin := ExporterBinary(t)
	addr := FreePort(t)
	all := []string{"--web.listen-address=" + addr}
	if !hasFlag(args, "--libvirt.socket") && !opts.OwnSocket {
		all = append(all, "--libvirt.socket="+filepath.Join(t.TempDir(), "no-libvirt-sock"))
	}
	if !hasFlag(args, "--backup.config-file") {
		// An empty job list: the system's /etc/vmhost_exporter is never read.
		empty := filepath.Join(SharedTempDir(t), "backup.yml")
		if err := os.WriteFile(empty, []byte("jobs: []\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		all = append(all, "--backup.config-file="+empty)
	}
	all = append(all, args...)
	command := opts.Command
	if command == nil {
		command = exec.Command
	}
	cmd := command(bin, all...)
	if opts.Cred != nil {
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.Credential = opts.Cred
	}
	if len(opts.Env) > 0 {
		base := cmd.Env
		if base == nil {
			base = os.Environ()
		}
		cmd.Env = append(base, opts.Env...)
	}
	p := StartCommand(t, cmd)
	e := &Exporter{Process: p, URL: "http://" + addr}
	p.WaitHTTP(t, e.URL+"/metrics", 15*time.Second)
	return e
}

func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

// Scrape fetches and parses a /metrics page.
func Scrape(t testing.TB, url string) map[string]*dto.MetricFamily {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("scraping %s: status %d: %s", url, resp.StatusCode, body)
	}
	families, err := ParseText(resp.Body)
	if err != nil {
		t.Fatalf("parsing %s: %v", url, err)
	}
	return families
}

// ParseText parses the Prometheus text format.
func ParseText(r io.Reader) (map[string]*dto.MetricFamily, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(r)
}

// ReadFile returns a file's content, failing the test when it cannot be
// read.
func ReadFile(t testing.TB, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// Value returns the value of the sample of family name whose labels include
// all of want, and whether one was found.
func Value(families map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	mf, ok := families[name]
	if !ok {
		return 0, false
	}
	for _, m := range mf.GetMetric() {
		if !labelsMatch(m, want) {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

func labelsMatch(m *dto.Metric, want map[string]string) bool {
	have := map[string]string{}
	for _, lp := range m.GetLabel() {
		have[lp.GetName()] = lp.GetValue()
	}
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// ReadMeminfo returns a /proc/meminfo field in bytes.
func ReadMeminfo(t testing.TB, field string) float64 {
	t.Helper()
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		var v float64
		var unit string
		fmt.Sscan(rest, &v, &unit)
		if unit == "kB" {
			v *= 1024
		}
		return v
	}
	t.Fatalf("/proc/meminfo has no %s", field)
	return 0
}

// Gather collects from g and returns the families by name.
func Gather(t testing.TB, g prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// ProcStatusKiB returns a kB field of /proc/<pid>/status (VmRSS, VmHWM).
func ProcStatusKiB(t testing.TB, pid int, field string) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, field)
	return 0
}

// RequireRoot skips (or under CI fails) a test that needs root.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "root", why)
	}
}

// WaitOutput waits until the process has printed all of wants: its output
// reaches the test through a pipe, so a line the process wrote before it
// answered a request may arrive a moment after the answer.
func (p *Process) WaitOutput(t testing.TB, timeout time.Duration, wants ...string) {
	t.Helper()
	Eventually(t, timeout, fmt.Sprintf("output containing %q", wants), func() (bool, string) {
		out := p.Output()
		for _, w := range wants {
			if !strings.Contains(out, w) {
				return false, tail(out, 30)
			}
		}
		return true, ""
	})
}

// Promtool3 is Prometheus 3's promtool that `make promtool3` builds from the
// prometheus module in go.mod; make test passes its path in
// VMHOST_PROMTOOL3.
func Promtool3(t testing.TB) string {
	t.Helper()
	p := os.Getenv("VMHOST_PROMTOOL3")
	if p == "" {
		p = filepath.Join(RepoRoot(), ".cache", "bin", "promtool3")
	}
	if _, err := os.Stat(p); err != nil {
		Missing(t, "promtool3 (Prometheus 3's promtool)", "make promtool3")
	}
	return p
}
