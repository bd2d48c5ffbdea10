package main

import (
	"fmt"
	"html"
	htmltemplate "html/template"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
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
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// Names of VM definitions that a page must show safely: HTML, a byte that
// is not UTF-8 (a Latin-1 é), and a name long enough to widen a page that
// does not wrap it.
var (
	htmlVM = "<i>italic<"
	latin1 = "caf\xe9"
	longVM = strings.Repeat("very-long-vm-name-", 12)
)

// explainTrees builds, with the operator's scripts run as root, the trees
// of four jobs in a shared temp dir, and returns its config: "kvm"
// (kvm_backup.sh: a good set, then a run killed in step 2 as a reboot
// would), "s3-kvm" (the operator's rclone wrapper syncing kvm's tree
// between the two, copies: kvm), "kvm-ok" (one good set) and
// "restore-test" (kvm_restore.sh on kvm's good set). The good set of kvm
// also holds VM definitions with odd names, written after the sync.
// okConfig holds only kvm-ok and restore-test. The scripts and the
// exporter run with TZ=UTC, so the page's times are the logs' as written.
func explainTrees(t *testing.T) (config, okConfig string) {
	t.Helper()
	testenv.LookPath(t, "rsync", "rsync")
	testenv.LookPath(t, "virsh", "libvirt-clients")
	testenv.LookPath(t, "rclone", "rclone")
	t.Setenv("TZ", "UTC")
	root := testenv.SharedTempDir(t)
	src := filepath.Join(root, "src")
	for _, d := range []string{"libvirt/qemu", "images", "network-scripts", "etc"} {
		if err := os.MkdirAll(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range map[string]string{
		"libvirt/libvirtd.conf": "# defaults\n", "images/vm-a.img": strings.Repeat("a", 64<<10),
		"images/vm-b.qcow2": strings.Repeat("q", 30000), "images/vm-b-data.img": strings.Repeat("d", 7000),
		"network-scripts/ifcfg-br0": "DEVICE=br0\n", "etc/hosts": "127.0.0.1 localhost\n", "etc/fstab": "# fstab\n",
	} {
		writeFile(t, filepath.Join(src, name), content, time.Time{})
	}
	vms := filepath.Join(testenv.RepoRoot(), "collector", "backup", "testdata", "vms.xml")
	env := []string{
		"SRC_LIBVIRT=" + filepath.Join(src, "libvirt"), "SRC_IMAGES=" + filepath.Join(src, "images"),
		"SRC_NETWORK=" + filepath.Join(src, "network-scripts"), "SRC_ETC=" + filepath.Join(src, "etc"),
		"VIRSH=virsh -c test://" + vms,
	}
	kvm, kvmOK := filepath.Join(root, "backup", "kvm"), filepath.Join(root, "backup", "kvm-ok")
	runScript(t, "kvm_backup.sh", append(env, "BACKUP_BASE="+kvm, "DATE=2025-05-27")...)
	runScript(t, "kvm_backup.sh", append(env, "BACKUP_BASE="+kvmOK, "DATE=2025-05-28")...)
	good := filepath.Join(kvm, "2025-05-27")
	rcloneLog := filepath.Join(root, "rclone-kvm.log")
	runScript(t, "backup_to_s3.sh", "LC_ALL=C", "RETRIES=1", "SRC="+kvm, "DEST="+filepath.Join(root, "offsite"), "LOG="+rcloneLog, "DATE=2025-05-27")
	xml, err := os.ReadFile(filepath.Join(good, "vm_xml", "vm-a.xml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{htmlVM, latin1, longVM} {
		writeFile(t, filepath.Join(good, "vm_xml", name+".xml"), string(xml), time.Time{})
	}

	restoreLog := filepath.Join(root, "kvm_restore.log")
	dst := filepath.Join(root, "restored")
	for _, d := range []string{"libvirt", "images", "sysconfig", "etc"} {
		if err := os.MkdirAll(filepath.Join(dst, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	runScript(t, "kvm_restore.sh", append(env, "BACKUP_DIR="+good, "LOGFILE="+restoreLog,
		"DST_LIBVIRT="+filepath.Join(dst, "libvirt"), "DST_IMAGES="+filepath.Join(dst, "images"),
		"DST_SYSCONFIG="+filepath.Join(dst, "sysconfig"), "DST_ETC="+filepath.Join(dst, "etc"))...)

	// The killed run: its virsh never answers, so it stops in step 2.
	hang := filepath.Join(root, "virsh-hangs")
	writeFile(t, hang, "#!/bin/sh\nexec sleep 600\n", time.Time{})
	if err := os.Chmod(hang, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(testenv.RepoRoot(), "collector", "backup", "testdata", "kvm_backup.sh"))
	cmd.Env = append(os.Environ(), append(env, "BACKUP_BASE="+kvm, "DATE=2025-05-28", "VIRSH="+hang)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	kill := func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() }
	t.Cleanup(kill)
	killedLog := filepath.Join(kvm, "2025-05-28", "backup.log")
	testenv.Eventually(t, 30*time.Second, "kvm_backup.sh reaches step 2", func() (bool, string) {
		b, _ := os.ReadFile(killedLog)
		return strings.Contains(string(b), "[2/5]"), string(b)
	})
	kill()

	// running_timeout 1s: the killed run counts as failed a second after
	// its last write, not an hour.
	jobKVM := fmt.Sprintf("  - name: kvm\n    type: dated_dir\n    path: %s\n    running_timeout: 1s\n    max_age: 26h\n", kvm) +
		fmt.Sprintf("  - name: s3-kvm\n    type: rclone_log\n    log_file: %s\n    copies: kvm\n    max_age: 26h\n", rcloneLog)
	others := fmt.Sprintf("  - name: kvm-ok\n    type: dated_dir\n    path: %s\n    max_age: 26h\n"+
		"  - name: restore-test\n    type: restore_log\n    log_file: %s\n    max_age: 35d\n", kvmOK, restoreLog)
	config, okConfig = filepath.Join(root, "backup.yml"), filepath.Join(root, "backup-ok.yml")
	writeFile(t, config, "jobs:\n"+jobKVM+others, time.Time{})
	writeFile(t, okConfig, "jobs:\n"+others, time.Time{})
	return config, okConfig
}

// evidence is what the page and --backup.explain must quote of the trees
// of explainTrees, read from the files the scripts wrote (TZ=UTC).
type evidence struct {
	killedLog  string
	start, end string // lines 1 and 3 of the killed run's log
	// reasons: the killed run stopped in step 2; the set last changed
	// when it wrote [2/5], or a second later (mkdir vm_xml).
	reasons []string
	// goodEnd is when kvm's good set ended ([5/5], as written): the copy
	// the sync took offsite.
	goodEnd string
}

func readEvidence(t *testing.T, config string) evidence {
	t.Helper()
	kvm := filepath.Join(filepath.Dir(config), "backup", "kvm")
	ev := evidence{killedLog: filepath.Join(kvm, "2025-05-28", "backup.log")}
	lines := strings.Split(testenv.ReadFile(t, ev.killedLog), "\n")
	if len(lines) < 3 || !strings.Contains(lines[2], "[2/5]") {
		t.Fatalf("the killed run's log:\n%s", strings.Join(lines, "\n"))
	}
	ev.start, ev.end = lines[0], lines[2]
	at, err := time.Parse("2006-01-02 15:04:05", ev.end[:19])
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{0, time.Second} {
		ev.reasons = append(ev.reasons, "killed at step 2 of 5 (no end line); nothing written for longer than the running timeout (1s) after "+
			at.Add(d).Format("2006-01-02 15:04:05"))
	}
	good := strings.Split(testenv.ReadFile(t, filepath.Join(kvm, "2025-05-27", "backup.log")), "\n")
	if len(good) < 6 || !strings.Contains(good[5], "[5/5]") {
		t.Fatalf("the good set's log:\n%s", strings.Join(good, "\n"))
	}
	ev.goodEnd = good[5][:19] + " UTC"
	return ev
}

// startExplained starts the exporter on config and waits until its scans
// judge kvm failed and the others successful; it returns the reason the
// exporter gives for kvm, which must be the step log's (ev.reasons).
func startExplained(t *testing.T, e *testenv.Exporter, ev evidence) string {
	t.Helper()
	mf := waitFor(t, e.URL+"/metrics", "kvm failed, kvm-ok, restore-test and s3-kvm succeeded", func(mf map[string]*dto.MetricFamily) bool {
		return equals("vmhost_backup_last_run_success", map[string]string{"backup_job": "kvm"}, 0)(mf) &&
			equals("vmhost_backup_last_run_success", map[string]string{"backup_job": "kvm-ok"}, 1)(mf) &&
			equals("vmhost_backup_last_run_success", map[string]string{"backup_job": "restore-test"}, 1)(mf) &&
			equals("vmhost_backup_last_run_success", map[string]string{"backup_job": "s3-kvm"}, 1)(mf)
	})
	for _, m := range mf["vmhost_backup_last_run_failure_info"].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["backup_job"] == "kvm" && labels["reason"] != "" {
			if !slices.Contains(ev.reasons, labels["reason"]) {
				t.Errorf("vmhost_backup_last_run_failure_info{backup_job=\"kvm\"} reason %q, want one of %q", labels["reason"], ev.reasons)
			}
			return labels["reason"]
		}
	}
	t.Fatalf("no vmhost_backup_last_run_failure_info{backup_job=\"kvm\"} with a reason")
	return ""
}

var verdictRE = regexp.MustCompile(`<h2>(.*?) <small>\((.*?)\)</small> <span class="verdict">(.*?)</span></h2>`)

// verdicts are the job headings of a /backups page: "kvm (dated_dir): failed".
func verdicts(page string) []string {
	var out []string
	for _, m := range verdictRE.FindAllStringSubmatch(page, -1) {
		out = append(out, fmt.Sprintf("%s (%s): %s", m[1], m[2], m[3]))
	}
	return out
}

// TestBackupsPageAndExplain: on the operator's trees, /backups (as root and
// as the shipped unit's user) and --backup.explain say that kvm failed and
// why, that kvm-ok and the restore test are fine, show every VM's row with
// the odd names escaped, and log the failure once.
func TestBackupsPageAndExplain(t *testing.T) {
	config, okConfig := explainTrees(t)
	ev := readEvidence(t, config)
	flags := []string{"--collector.disable-defaults", "--collector.backup", "--backup.config-file=" + config, "--backup.scan-interval=1s"}
	wantVerdicts := []string{"kvm (dated_dir): failed", "kvm-ok (dated_dir): ok", "restore-test (restore_log): ok", "s3-kvm (rclone_log): ok"}
	// kvm's VMs were synced once (their copy of the good set is offsite,
	// nothing waits); kvm-ok's are copied by no job.
	offsiteCell := regexp.MustCompile(`<td class="offsite">` + regexp.QuoteMeta(ev.goodEnd) + ` \([^()]+ ago\) \(s3-kvm\)</td>`)
	offsiteLine := regexp.MustCompile(`(?m)^    vm-a: newest complete copy .*\n      offsite: ` + regexp.QuoteMeta(ev.goodEnd) + ` \([^()]+ ago\) \(s3-kvm\); restore test: `)

	asRoot := testenv.StartExporter(t, flags...)
	asService := testenv.StartExporterAsService(t, flags...)
	for who, e := range map[string]*testenv.Exporter{"root": asRoot, "service": asService} {
		reason := startExplained(t, e, ev)
		page, _ := fetch(t, e.URL+"/backups")
		if got := verdicts(page); !slices.Equal(got, wantVerdicts) {
			t.Errorf("%s: /backups verdicts %q, want %q", who, got, wantVerdicts)
		}
		for _, want := range []string{
			"Why it failed: " + htmltemplate.HTMLEscapeString(reason),
			"the newest finished run failed: " + htmltemplate.HTMLEscapeString(reason),
			htmltemplate.HTMLEscapeString(htmlVM), `caf\xe9`, longVM,
			// vm-c's disk lies outside the images directory the script copies.
			"/srv/vms/vm-c.img is outside /var/lib/libvirt/images, which the backup copies",
			"Failed: kvm",
			// The killed run's first and last lines, quoted with file and
			// line number.
			`<div>Start line: <div class="ref"><span class="file">` + htmltemplate.HTMLEscapeString(ev.killedLog) + `:1</span> <q>` + htmltemplate.HTMLEscapeString(ev.start) + `</q></div></div>`,
			`<div>End line: <div class="ref"><span class="file">` + htmltemplate.HTMLEscapeString(ev.killedLog) + `:3</span> <q>` + htmltemplate.HTMLEscapeString(ev.end) + `</q></div></div>`,
			`<td class="offsite">no sync job</td>`,
		} {
			if !strings.Contains(page, want) {
				t.Errorf("%s: /backups lacks %q", who, want)
			}
		}
		if n := len(offsiteCell.FindAllString(page, -1)); n < 2 {
			t.Errorf("%s: /backups has %d offsite cells matching %s, want vm-a's and vm-b's at least", who, n, offsiteCell)
		}
		// The Latin-1 byte of caf\xe9 must not reach the page raw: the page
		// is valid UTF-8 (a byte search for \xe9 no longer tells, since the
		// page quotes the logs' Japanese, whose UTF-8 holds that byte).
		if strings.Contains(page, htmlVM) || !utf8.ValidString(page) || strings.Contains(page, "Unreadable") {
			t.Errorf("%s: /backups shows a name unescaped, or unreadable paths:\n%s", who, page)
		}
		landing, _ := fetch(t, e.URL+"/")
		if !strings.Contains(landing, `href="/backups"`) {
			t.Errorf("%s: the landing page does not link /backups:\n%s", who, landing)
		}
		// Every page the landing page links answers (the toolkit's
		// profiling links did not: no /debug/pprof is served).
		for _, m := range regexp.MustCompile(`href="(/[^"]*)"`).FindAllStringSubmatch(landing, -1) {
			fetch(t, e.URL+html.UnescapeString(m[1]))
		}
	}

	// Scanned every second: the failure is logged once, not per scan.
	since := time.Now()
	waitFor(t, asService.URL+"/metrics", "three more scans", func(mf map[string]*dto.MetricFamily) bool {
		v, ok := testenv.Value(mf, "vmhost_backup_scan_timestamp_seconds", map[string]string{"backup_job": "kvm"})
		return ok && v > float64(since.Add(3*time.Second).Unix())
	})
	failedLines := regexp.MustCompile(`(?m)^.*msg="Backup run failed".* backup_job=kvm .*reason=.*$`).FindAllString(asService.Output(), -1)
	if len(failedLines) != 1 {
		t.Errorf("the failed run was logged %d times, want once:\n%s", len(failedLines), asService.Output())
	}

	// --backup.explain: the same verdicts as text, exit status 1 for the
	// failed job, as root and as the service's user; 0 without it.
	bin := testenv.ExporterBinary(t)
	for who, cmd := range map[string]*exec.Cmd{
		"root":    exec.Command(bin, "--backup.explain", "--backup.config-file="+config),
		"service": testenv.ShippedUnitIdentity(t).Command(t, bin, "--backup.explain", "--backup.config-file="+config),
	} {
		code, stdout, stderr := runExplain(t, cmd)
		if code != 1 {
			t.Errorf("%s: --backup.explain exit status %d, want 1\n%s\n%s", who, code, stdout, stderr)
		}
		for _, want := range []string{
			"== kvm (dated_dir): failed ==", "== kvm-ok (dated_dir): ok ==", "== s3-kvm (rclone_log): ok ==",
			"    start line: " + ev.killedLog + ":1: " + ev.start + "\n",
			"    end line:   " + ev.killedLog + ":3: " + ev.end + "\n",
			"      offsite: no sync job copies this job; ",
			"== restore-test (restore_log): ok ==", `caf\xe9: newest complete copy`, htmlVM + ": newest complete copy",
			"vm-c: no complete copy", "missing disks: 1", "\nFailed: kvm\n",
		} {
			if !strings.Contains(stdout, want) {
				t.Errorf("%s: --backup.explain lacks %q:\n%s", who, want, stdout)
			}
		}
		if m := regexp.MustCompile(`    why failed: (.*)\n`).FindStringSubmatch(stdout); m == nil || !slices.Contains(ev.reasons, m[1]) {
			t.Errorf("%s: --backup.explain's reason %q, want one of %q", who, m, ev.reasons)
		}
		if !offsiteLine.MatchString(stdout) {
			t.Errorf("%s: --backup.explain has no line matching %s:\n%s", who, offsiteLine, stdout)
		}
		if !strings.Contains(stderr, `msg="Backup run failed"`) {
			t.Errorf("%s: --backup.explain does not log the failed run:\n%s", who, stderr)
		}
	}
	code, stdout, stderr := runExplain(t, exec.Command(bin, "--backup.explain", "--backup.config-file="+okConfig))
	if code != 0 || strings.Contains(stdout, "Failed:") {
		t.Errorf("--backup.explain on the successful jobs: exit status %d, want 0\n%s\n%s", code, stdout, stderr)
	}
}

func runExplain(t *testing.T, cmd *exec.Cmd) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("--backup.explain did not exit:\n%s", errOut.String())
	}
	return code, out.String(), errOut.String()
}

// overflowProbe is added to a page served to Chromium for measuring: it
// writes the document's widths into the DOM, which --dump-dom prints. The
// page under test itself has no script.
const overflowProbe = `<script>window.addEventListener("load", function () {
  var d = document.documentElement;
  document.body.setAttribute("data-widths", d.scrollWidth + " " + d.clientWidth);
});</script>`

var widthsRE = regexp.MustCompile(`data-widths="(\d+) (\d+)"`)

// overflow loads page (through a loopback server that adds the probe) in
// Chromium at width x 900 and returns the document's scroll and client
// widths.
func overflow(t *testing.T, page string, width int) (scroll, client int) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=UTF-8")
		_, _ = io.WriteString(w, strings.Replace(page, "</body>", overflowProbe+"</body>", 1))
	}))
	defer srv.Close()
	dom := testenv.Chromium(t, srv.URL, "--dump-dom", fmt.Sprintf("--window-size=%d,900", width), "--virtual-time-budget=5000")
	m := widthsRE.FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("the probe did not run:\n%s", dom)
	}
	scroll, _ = strconv.Atoi(m[1])
	client, _ = strconv.Atoi(m[2])
	return scroll, client
}

// TestBackupsPageInChromium: what a person sees of /backups in a browser
// (Debian's Chromium, headless) served by the exporter as the shipped
// unit's user: the verdicts and the reason as text, the odd names as
// text (no element made of a file name), no horizontal scrolling at
// 1280 or 800 pixels even with a 216-character VM name, and a screenshot
// with the failed verdict in red, kept in the test's temp dir.
func TestBackupsPageInChromium(t *testing.T) {
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		testenv.Missing(t, "chromium", "apt-get install -y chromium")
	}
	config, _ := explainTrees(t)
	e := testenv.StartExporterAsService(t, "--collector.disable-defaults", "--collector.backup", "--backup.config-file="+config, "--backup.scan-interval=1s")
	reason := startExplained(t, e, readEvidence(t, config))
	url := e.URL + "/backups"

	dom := testenv.Chromium(t, url, "--dump-dom", "--window-size=1280,1024")
	if got, want := verdicts(dom), []string{"kvm (dated_dir): failed", "kvm-ok (dated_dir): ok", "restore-test (restore_log): ok", "s3-kvm (rclone_log): ok"}; !slices.Equal(got, want) {
		t.Errorf("verdicts Chromium shows: %q, want %q", got, want)
	}
	for _, want := range []string{"Why it failed: " + htmltemplate.HTMLEscapeString(reason), htmltemplate.HTMLEscapeString(htmlVM), `caf\xe9`, "Failed: kvm"} {
		if !strings.Contains(dom, want) {
			t.Errorf("Chromium's DOM lacks %q", want)
		}
	}
	if strings.Contains(dom, "<i>") {
		t.Errorf("a VM name became an element in Chromium's DOM")
	}

	page, _ := fetch(t, url)
	for _, width := range []int{1280, 800} {
		if scroll, client := overflow(t, page, width); scroll > client {
			t.Errorf("at %d px /backups scrolls sideways: document %d px wide, window %d px", width, scroll, client)
		}
	}
	// The probe can see an overflow: a page wider than its window.
	if scroll, client := overflow(t, `<html><body><div style="width:3000px">wide</div></body></html>`, 800); scroll <= client {
		t.Errorf("the overflow probe sees no overflow on a 3000 px page (%d, %d)", scroll, client)
	}

	shot := filepath.Join(t.TempDir(), "backups.png")
	testenv.Chromium(t, url, "--screenshot="+shot, "--window-size=1280,1024", "--hide-scrollbars")
	t.Logf("screenshot of /backups: %s", shot)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 1024 {
		t.Errorf("screenshot is %v, want 1280x1024", b)
	}
	// The header's orange and the failed verdict's red are on screen.
	for name, c := range map[string]color.RGBA{"header #e6522c": {0xe6, 0x52, 0x2c, 0xff}, "failed #c0392b": {0xc0, 0x39, 0x2b, 0xff}} {
		if n := countColor(img, c); n < 100 {
			t.Errorf("the screenshot has %d pixels of the %s colour, want a visible area", n, name)
		}
	}
}

func countColor(img image.Image, want color.RGBA) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if uint8(r>>8) == want.R && uint8(g>>8) == want.G && uint8(bl>>8) == want.B {
				n++
			}
		}
	}
	return n
}

// TestBackupsPageKnowsTheHostsVMs: with the libvirt collector on, /backups
// asks libvirt which VMs the host defines: a VM never backed up gets its
// row with its oldest snapshot, and a VM of the backup that the host no
// longer defines says so. The host is the libvirt fixture (web1 has
// snapshots from 1700000000 on); the backup is of other VMs (vm-a...).
func TestBackupsPageKnowsTheHostsVMs(t *testing.T) {
	config, _ := explainTrees(t)
	l := testenv.StartLibvirtd(t)
	node := filepath.Join(testenv.RepoRoot(), "collector", "libvirt", "testdata", "node.xml")
	t.Setenv("TZ", "UTC")
	e := testenv.StartExporterAsService(t, "--collector.disable-defaults", "--collector.backup", "--collector.libvirt",
		"--libvirt.socket="+l.SockRO, "--libvirt.uri="+testenv.TestURI(node), "--backup.config-file="+config, "--backup.scan-interval=1s")
	startExplained(t, e, readEvidence(t, config))
	page, _ := fetch(t, e.URL+"/backups")
	row := func(vm string) string {
		_, after, ok := strings.Cut(page, "<tr><td>"+vm)
		if !ok {
			t.Fatalf("/backups has no row for %s", vm)
		}
		r, _, _ := strings.Cut(after, "</tr>")
		return r
	}
	if r := row("web1"); !strings.Contains(r, "never backed up") || !strings.Contains(r, "2023-11-14 22:13:20 UTC") {
		t.Errorf("web1 (defined, never backed up, oldest snapshot 1700000000): row %s", r)
	}
	if r := row("db1"); !strings.Contains(r, "never backed up") || !strings.HasSuffix(r, "<td>none known</td>") {
		t.Errorf("db1 (defined, no snapshot): row %s", r)
	}
	if r := row("vm-a"); !strings.Contains(r, "not on the host") {
		t.Errorf("vm-a (backed up, not defined on this host): row %s", r)
	}
}
