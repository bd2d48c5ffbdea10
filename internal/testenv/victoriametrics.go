package testenv

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// VictoriaMetrics is a private single-node VictoriaMetrics with a vmagent
// that scrapes into it and a vmalert that evaluates rules against it, the
// binaries of Debian's victoria-metrics package, all on loopback.
type VictoriaMetrics struct {
	QueryAPI
	VMAlertURL string
}

// victoriaMetricsBin finds a binary of the victoria-metrics package that
// make test-deps unpacked into the repository's cache.
func victoriaMetricsBin(t testing.TB, name string) string {
	t.Helper()
	dir := os.Getenv("VMHOST_VICTORIAMETRICS_DIR")
	if dir == "" {
		dir = filepath.Join(RepoRoot(), ".cache", "victoria-metrics", "usr", "bin")
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		Missing(t, name+" (Debian's victoria-metrics package)", "make test-deps")
	}
	return p
}

// StartVictoriaMetrics runs victoria-metrics, then vmagent with the given
// scrape configuration (Prometheus' scrape_configs format) writing into it,
// and, when rules is not empty, vmalert evaluating the rule files of the
// glob every second, writing recording rules back and notifying
// alertmanager (a URL; empty: a notifier that drops all).
func StartVictoriaMetrics(t testing.TB, scrapeConfig, rules, alertmanager string) *VictoriaMetrics {
	t.Helper()
	dir := t.TempDir()
	vmAddr := FreePort(t)
	vmURL := "http://" + vmAddr
	// latencyOffset 0: answer with samples up to now, as Prometheus does;
	// the default hides the last 30 s, which would delay every alert.
	vm := Start(t, victoriaMetricsBin(t, "victoria-metrics"), "-storageDataPath="+filepath.Join(dir, "data"),
		"-httpListenAddr="+vmAddr, "-retentionPeriod=1d", "-search.latencyOffset=0s",
		"-search.disableCache", "-loggerLevel=WARN")
	vm.WaitHTTP(t, vmURL+"/health", 30*time.Second)

	cfg := filepath.Join(dir, "scrape.yml")
	if err := os.WriteFile(cfg, []byte(scrapeConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	agentAddr := FreePort(t)
	agent := Start(t, victoriaMetricsBin(t, "vmagent"), "-promscrape.config="+cfg, "-httpListenAddr="+agentAddr,
		"-remoteWrite.url="+vmURL+"/api/v1/write", "-remoteWrite.tmpDataPath="+filepath.Join(dir, "vmagent"),
		"-remoteWrite.flushInterval=1s", "-loggerLevel=WARN")
	agent.WaitHTTP(t, "http://"+agentAddr+"/health", 30*time.Second)

	v := &VictoriaMetrics{QueryAPI: QueryAPI{URL: vmURL}}
	if rules == "" {
		return v
	}
	alertAddr := FreePort(t)
	args := []string{"-rule=" + rules, "-httpListenAddr=" + alertAddr, "-evaluationInterval=1s",
		"-datasource.url=" + vmURL, "-remoteWrite.url=" + vmURL, "-remoteRead.url=" + vmURL,
		"-remoteWrite.flushInterval=1s", "-loggerLevel=WARN"}
	if alertmanager == "" {
		// vmalert of Debian 12 insists on a notifier: one that drops all.
		sink := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		t.Cleanup(sink.Close)
		alertmanager = sink.URL
	}
	args = append(args, "-notifier.url="+alertmanager)
	alert := Start(t, victoriaMetricsBin(t, "vmalert"), args...)
	v.VMAlertURL = "http://" + alertAddr
	alert.WaitHTTP(t, v.VMAlertURL+"/health", 30*time.Second)
	return v
}

// StartVictoriaMetricsStorage runs victoria-metrics alone on dataDir, for
// data the test imports itself (history older than scrapes could make),
// with extra flags after the defaults (a later flag wins), and waits until
// it answers.
func StartVictoriaMetricsStorage(t testing.TB, dataDir string, extra ...string) QueryAPI {
	t.Helper()
	addr := FreePort(t)
	args := append([]string{"-storageDataPath=" + dataDir, "-httpListenAddr=" + addr,
		"-search.latencyOffset=0s", "-loggerLevel=WARN"}, extra...)
	p := Start(t, victoriaMetricsBin(t, "victoria-metrics"), args...)
	url := "http://" + addr
	p.WaitHTTP(t, url+"/health", time.Minute)
	return QueryAPI{URL: url}
}

// StartVMAlert runs vmalert on the rule files of the glob against the
// VictoriaMetrics at vmURL, every interval unless a group says otherwise,
// writing the recording rules' results back and sending alerts to a
// notifier that drops them, with extra flags; it returns vmalert's URL.
func StartVMAlert(t testing.TB, vmURL, rules string, interval time.Duration, extra ...string) string {
	t.Helper()
	_, url := StartVMAlertProcess(t, vmURL, rules, interval, extra...)
	return url
}

// StartVMAlertProcess is StartVMAlert for a caller that stops vmalert
// before the test ends (to start another on the same storage).
func StartVMAlertProcess(t testing.TB, vmURL, rules string, interval time.Duration, extra ...string) (*Process, string) {
	t.Helper()
	sink := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(sink.Close)
	addr := FreePort(t)
	args := append([]string{"-rule=" + rules, "-httpListenAddr=" + addr, "-evaluationInterval=" + interval.String(),
		"-datasource.url=" + vmURL, "-remoteWrite.url=" + vmURL, "-notifier.url=" + sink.URL,
		"-loggerLevel=WARN"}, extra...)
	p := Start(t, victoriaMetricsBin(t, "vmalert"), args...)
	url := "http://" + addr
	p.WaitHTTP(t, url+"/health", time.Minute)
	return p, url
}

// StartVMAgent runs vmagent with the given scrape configuration
// (Prometheus' scrape_configs format), writing into the VictoriaMetrics at
// vmURL.
func StartVMAgent(t testing.TB, vmURL, scrapeConfig string) {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "scrape.yml")
	if err := os.WriteFile(cfg, []byte(scrapeConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := FreePort(t)
	p := Start(t, victoriaMetricsBin(t, "vmagent"), "-promscrape.config="+cfg, "-httpListenAddr="+addr,
		"-remoteWrite.url="+vmURL+"/api/v1/write", "-remoteWrite.tmpDataPath="+filepath.Join(dir, "vmagent"),
		"-remoteWrite.flushInterval=1s", "-loggerLevel=WARN")
	p.WaitHTTP(t, "http://"+addr+"/health", time.Minute)
}
