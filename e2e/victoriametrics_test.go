package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// TestAlertsThroughVictoriaMetrics follows the shipped rules, unchanged,
// through the engine many fleets run instead of Prometheus: vmagent scrapes
// two exporters into VictoriaMetrics, vmalert evaluates the rule files
// (recording rules written back) and notifies Alertmanager. VMCrashed,
// BackupStale and HostSwapUsageHigh must reach the webhook with their
// labels and annotations and resolve after the repair, as they do through
// Prometheus in TestAlertsReachTheReceiver; their near-miss subjects stay
// silent.
func TestAlertsThroughVictoriaMetrics(t *testing.T) {
	t.Parallel()
	l := testenv.StartLibvirtd(t)
	dir := testenv.SharedTempDir(t)

	// Host A: test-driver domains, web1 crashed, db1 running.
	node := filepath.Join(dir, "node.xml")
	writeNode(t, node, 6)
	hostA := testenv.StartExporter(t, "--collector.disable-defaults", "--collector.libvirt",
		"--libvirt.socket="+l.SockRO, "--libvirt.uri="+testenv.TestURI(node), "--libvirt.timeout=2s")

	// Host B: backup jobs, one stale (a two-day-old dump, max_age 1h) and
	// one fresh, and 2 GiB of swap in use (procfs fixture).
	dumps := filepath.Join(dir, "dumps")
	fresh := filepath.Join(dir, "fresh")
	for _, d := range []string{dumps, fresh} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFileAged(t, filepath.Join(dumps, "db-old.sql.gz"), 48*time.Hour)
	// 20 minutes, not 1 as before: a file_glob file written within its
	// running_timeout (15m) is a dump in progress, not a success (issue 24).
	writeFileAged(t, filepath.Join(fresh, "etc.tar.gz"), 20*time.Minute)
	backupCfg := filepath.Join(dir, "backup.yml")
	if err := os.WriteFile(backupCfg, []byte("jobs:\n"+
		"  - name: dumps\n    type: file_glob\n    glob: "+dumps+"/*.sql.gz\n    max_age: 1h\n"+
		"  - name: etc\n    type: file_glob\n    glob: "+fresh+"/*.tar.gz\n    max_age: 1h\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	procfs := swappingProcfs(t, dir)
	hostB := testenv.StartExporterAsService(t, "--collector.disable-defaults", "--collector.cpu", "--collector.meminfo",
		"--collector.vmstat", "--path.procfs="+procfs, "--collector.backup", "--backup.config-file="+backupCfg,
		"--backup.scan-interval=1s")

	hook := newWebhook(t)
	am := startAlertmanager(t, hook)
	a := strings.TrimPrefix(hostA.URL, "http://")
	b := strings.TrimPrefix(hostB.URL, "http://")
	rules, _ := filepath.Abs("../rules")
	testenv.StartVictoriaMetrics(t, `global:
  scrape_interval: 1s
scrape_configs:
  - job_name: vmhost
    static_configs:
      - targets: ['`+a+`', '`+b+`']
`, rules+"/*.yml", am)
	start := time.Now()

	ann := hook.wait(t, alertMatch{"/critical", "firing", map[string]string{
		"alertname": "BackupStale", "backup_job": "dumps", "instance": b, "severity": "critical"}}, 2*time.Minute)
	if !strings.Contains(ann["description"], "job dumps") || !strings.HasSuffix(ann["runbook_url"], "#backupstale") {
		t.Errorf("BackupStale annotations: %v", ann)
	}
	ann = hook.wait(t, alertMatch{"/critical", "firing", map[string]string{
		"alertname": "VMCrashed", "instance": a, "domain": "web1", "state_desc": "the domain is crashed"}}, 3*time.Minute)
	if !strings.Contains(ann["description"], "web1") || !strings.Contains(ann["description"], "state 6") {
		t.Errorf("VMCrashed description: %q", ann["description"])
	}
	ann = hook.wait(t, alertMatch{"/warning", "firing", map[string]string{
		"alertname": "HostSwapUsageHigh", "instance": b, "severity": "warning"}}, 7*time.Minute-time.Since(start))
	if !strings.Contains(ann["description"], "2GiB") {
		t.Errorf("HostSwapUsageHigh description %q does not show the 2 GiB", ann["description"])
	}

	// Repairs: a fresh dump, swap freed, web1 running again.
	writeFileAged(t, filepath.Join(dumps, "db-new.sql.gz"), 20*time.Minute) // quiet for running_timeout (issue 24); was 0
	writeMeminfo(t, procfs, 4194304)
	writeNode(t, node, 1)
	l.Kill()
	l.Start()
	hook.wait(t, alertMatch{"/critical", "resolved", map[string]string{"alertname": "BackupStale", "backup_job": "dumps"}}, 2*time.Minute)
	hook.wait(t, alertMatch{"/warning", "resolved", map[string]string{"alertname": "HostSwapUsageHigh", "instance": b}}, 2*time.Minute)
	hook.wait(t, alertMatch{"/critical", "resolved", map[string]string{"alertname": "VMCrashed", "domain": "web1"}}, 2*time.Minute)

	for _, m := range []alertMatch{
		{"/critical", "firing", map[string]string{"alertname": "VMCrashed", "domain": "db1"}},
		{"/critical", "firing", map[string]string{"alertname": "BackupStale", "backup_job": "etc"}},
		{"/warning", "firing", map[string]string{"alertname": "HostSwapUsageHigh", "instance": a}},
	} {
		if _, ok := hook.find(m); ok {
			t.Errorf("unexpected notification %s", m)
		}
	}
}

// writeFileAged writes a small file whose modification time is age ago.
func writeFileAged(t *testing.T, path string, age time.Duration) {
	t.Helper()
	if err := os.WriteFile(path, []byte("dump"), 0o644); err != nil {
		t.Fatal(err)
	}
	when := time.Now().Add(-age)
	if err := os.Chtimes(path, when, when); err != nil {
		t.Fatal(err)
	}
}
