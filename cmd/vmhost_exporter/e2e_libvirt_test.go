package main

import (
	"bufio"
	"flag"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// volatile matches exposition lines whose value changes from run to run;
// they are left out of the golden file (their presence is still checked).
// The sizes of the dated_dir job count its directories, whose size
// depends on the file system the test runs on (ext4: 4096, tmpfs: other).
var volatile = regexp.MustCompile(`_duration_seconds|^libvirt_rpc_calls_total|^vmhost_backup_(config_last_reload_success|scan)_timestamp_seconds|` +
	`^vmhost_backup_(last_success|previous_success|total)_(size|disk_usage)_bytes\{backup_job="kvm-host"\}`)

// ownMetrics keeps the lines (HELP, TYPE and samples) of this project's own
// metric families: node_* are node_exporter's and keep its names, which
// promtool's linter does not like (camelCase meminfo names).
func ownMetrics(t *testing.T, body string) string {
	t.Helper()
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name := strings.TrimPrefix(strings.TrimPrefix(line, "# HELP "), "# TYPE ")
		if !strings.HasPrefix(name, "libvirt_") && !strings.HasPrefix(name, "vmhost_backup_") {
			continue
		}
		if volatile.MatchString(name) {
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

func fetch(t *testing.T, url string) (string, time.Duration) {
	t.Helper()
	start := time.Now()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d\n%s", url, resp.StatusCode, body)
	}
	return string(body), time.Since(start)
}

// TestEndToEndGolden runs the binary against a private libvirtd with the
// test-driver fixture and backup jobs of each kind with fixed content, and compares
// the project's own metrics with a golden file, which promtool must accept.
func TestEndToEndGolden(t *testing.T) {
	l := testenv.StartLibvirtd(t)
	node, _ := filepath.Abs("../../collector/libvirt/testdata/node.xml")
	dir := testenv.SharedTempDir(t)
	day := time.Date(2025, 5, 28, 3, 0, 0, 0, time.UTC)
	writeFile(t, filepath.Join(dir, "dumps", "db-1.sql.gz"), strings.Repeat("1", 1000), day.Add(-24*time.Hour))
	writeFile(t, filepath.Join(dir, "dumps", "db-2.sql.gz"), strings.Repeat("2", 1200), day)
	writeFile(t, filepath.Join(dir, "kvm_restore.log"), "2025-05-01 10:00:00 - === KVM ホスト復元開始 ===\n"+
		"2025-05-01 10:00:01 - [1/4] libvirt設定を復元中...\n2025-05-01 10:20:00 - 復元完了。必要であれば再起動してください。\n", day)
	// A vzdump job whose newest run failed (guest 101's ERROR line, no
	// archive), for the series that say why (issue 26): guest 100's
	// archive is from the night before.
	writeFile(t, filepath.Join(dir, "pve", "vzdump-qemu-100-2025_05_27-02_00_00.vma.zst"), strings.Repeat("z", 2048), day.Add(-25*time.Hour))
	writeFile(t, filepath.Join(dir, "pve", "vzdump-qemu-100-2025_05_27-02_00_00.log"), "2025-05-27 02:00:00 INFO: Starting Backup of VM 100 (qemu)\n"+
		"2025-05-27 02:00:17 INFO: Finished Backup of VM 100 (00:00:17)\n", day.Add(-25*time.Hour))
	writeFile(t, filepath.Join(dir, "pve", "vzdump-qemu-101-2025_05_28-02_00_00.log"), "2025-05-28 02:00:00 INFO: Starting Backup of VM 101 (qemu)\n"+
		"2025-05-28 02:00:05 ERROR: Backup of VM 101 failed - no space left on device\n", day.Add(-time.Hour))
	// Two nightly sets of kvm_backup.sh's layout and an rclone sync of
	// them that ran between the two (issue 26): web1's first copy is
	// offsite, its second waits; db1's disk is on LVM, never copied.
	for _, night := range []string{"2025-05-26", "2025-05-27"} {
		set := filepath.Join(dir, "kvm", night)
		writeFile(t, filepath.Join(set, "vm_xml", "web1.xml"), "<domain><name>web1</name><devices><disk type='file' device='disk'>"+
			"<source file='/var/lib/libvirt/images/web1.img'/><target dev='vda'/></disk></devices></domain>\n", day)
		writeFile(t, filepath.Join(set, "vm_xml", "db1.xml"), "<domain><name>db1</name><devices><disk type='block' device='disk'>"+
			"<source dev='/dev/vg0/db1'/><target dev='vdb'/></disk></devices></domain>\n", day)
		writeFile(t, filepath.Join(set, "images", "web1.img"), strings.Repeat("w", 4096), day)
		writeFile(t, filepath.Join(set, "backup.log"), night+" 02:00:00 - === KVM ホストバックアップ開始 ===\n"+night+" 02:10:00 - [5/5] バックアップ完了しました\n", day)
	}
	// The sync's run ends with rclone's final statistics: without them a
	// run is one rclone did not finish (killed, issue 24), no success.
	writeFile(t, filepath.Join(dir, "rclone-kvm.log"), "2025/05/26 03:00:00 INFO  : web1.img: Copied (new)\n"+
		"2025/05/26 03:00:05 INFO  : \nTransferred:   \t        4 KiB / 4 KiB, 100%, 0 B/s, ETA -\nTransferred:            1 / 1, 100%\nElapsed time:         5.0s\n\n"+
		"Backup completed at 2025-05-26 03:00:05\n", day)
	cfg := filepath.Join(dir, "backup.yml")
	writeFile(t, cfg, "jobs:\n  - name: mysql-dumps\n    type: file_glob\n    glob: "+dir+"/dumps/*.sql.gz\n    max_age: 26h\n"+
		"  - name: restore-test\n    type: restore_log\n    log_file: "+dir+"/kvm_restore.log\n    max_age: 35d\n"+
		"  - name: pve\n    type: vzdump\n    path: "+dir+"/pve\n    max_age: 26h\n"+
		"  - name: kvm-host\n    type: dated_dir\n    path: "+dir+"/kvm\n    max_age: 26h\n"+
		"  - name: s3-kvm\n    type: rclone_log\n    log_file: "+dir+"/rclone-kvm.log\n    copies: kvm-host\n    max_age: 26h\n", time.Time{})
	t.Setenv("TZ", "UTC")
	e := testenv.StartExporterAsService(t, "--libvirt.socket="+l.SockRO, "--libvirt.uri="+testenv.TestURI(node), "--backup.config-file="+cfg)
	waitFor(t, e.URL+"/metrics", "backup scans", func(mf map[string]*dto.MetricFamily) bool {
		return has("vmhost_backup_scan_success", map[string]string{"backup_job": "mysql-dumps"})(mf) &&
			has("vmhost_backup_scan_success", map[string]string{"backup_job": "restore-test"})(mf) &&
			has("vmhost_backup_scan_success", map[string]string{"backup_job": "pve"})(mf) &&
			has("vmhost_backup_scan_success", map[string]string{"backup_job": "kvm-host"})(mf) &&
			has("vmhost_backup_scan_success", map[string]string{"backup_job": "s3-kvm"})(mf)
	})
	body, _ := fetch(t, e.URL+"/metrics")
	got := ownMetrics(t, body)

	golden := "testdata/e2e.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/vmhost_exporter -run Golden -update)", err)
	}
	if got != string(want) {
		t.Errorf("own metrics differ from %s (rerun with -update if intended):\n%s", golden, lineDiff(string(want), got))
	}
	for _, name := range []string{"libvirt_scrape_duration_seconds", "libvirt_rpc_calls_total", "node_memory_MemTotal_bytes"} {
		if !strings.Contains(body, "\n"+name) {
			t.Errorf("%s missing from /metrics", name)
		}
	}

	promtool := testenv.LookPath(t, "promtool", "prometheus")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(got)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func lineDiff(want, got string) string {
	w := map[string]bool{}
	for _, l := range strings.Split(want, "\n") {
		w[l] = true
	}
	g := map[string]bool{}
	for _, l := range strings.Split(got, "\n") {
		g[l] = true
	}
	var b strings.Builder
	for _, l := range strings.Split(want, "\n") {
		if !g[l] {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if !w[l] {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}

// TestLibvirtdOutageKeepsHostMetrics: with libvirtd killed, a scrape of the
// real binary answers within the timeout with libvirt_up 0 and every host
// metric, and recovers after libvirtd restarts, without an exporter restart.
func TestLibvirtdOutageKeepsHostMetrics(t *testing.T) {
	l := testenv.StartLibvirtd(t)
	node, _ := filepath.Abs("../../collector/libvirt/testdata/node.xml")
	const timeout = 2 * time.Second
	e := testenv.StartExporter(t, "--libvirt.socket="+l.SockRO, "--libvirt.uri="+testenv.TestURI(node), "--libvirt.timeout=2s")

	check := func(step string, wantUp float64) {
		t.Helper()
		start := time.Now()
		mf := testenv.Scrape(t, e.URL+"/metrics")
		if took := time.Since(start); took > timeout+2*time.Second {
			t.Errorf("%s: scrape took %s", step, took)
		}
		if v, ok := testenv.Value(mf, "libvirt_up", nil); !ok || v != wantUp {
			t.Errorf("%s: libvirt_up = %v (present %v), want %v", step, v, ok, wantUp)
		}
		if v, _ := testenv.Value(mf, "node_memory_MemTotal_bytes", nil); v != testenv.ReadMeminfo(t, "MemTotal") {
			t.Errorf("%s: node_memory_MemTotal_bytes = %v", step, v)
		}
		if _, ok := testenv.Value(mf, "node_cpu_seconds_total", map[string]string{"cpu": "0", "mode": "idle"}); !ok {
			t.Errorf("%s: node_cpu_seconds_total missing", step)
		}
	}
	check("healthy", 1)
	l.Kill()
	check("libvirtd killed", 0)
	l.Start()
	check("libvirtd restarted", 1)
	l.Freeze()
	check("libvirtd frozen", 0)
	l.Thaw()
	check("libvirtd thawed", 1)
}
