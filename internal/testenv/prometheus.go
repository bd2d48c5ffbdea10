package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// QueryAPI is a Prometheus-compatible HTTP query API: Prometheus', or
// VictoriaMetrics'.
type QueryAPI struct {
	URL string
}

// Prometheus is a private Prometheus server (Debian's package) on loopback.
type Prometheus struct {
	*Process
	QueryAPI
}

// StartPrometheus runs prometheus with the given configuration (YAML) and
// waits until it is ready. Rule files named in the config are used as they
// are.
func StartPrometheus(t testing.TB, config string) *Prometheus {
	t.Helper()
	p, url := startServer(t, "prometheus", "prometheus", config, "--storage.tsdb.path", "", "--web.enable-lifecycle")
	return &Prometheus{Process: p, QueryAPI: QueryAPI{URL: url}}
}

// StartPrometheusOn is StartPrometheus on an existing TSDB directory (blocks
// written by the test), with extra flags.
func StartPrometheusOn(t testing.TB, tsdbDir, config string, extra ...string) *Prometheus {
	t.Helper()
	p, url := startServer(t, "prometheus", "prometheus", config, "--storage.tsdb.path", tsdbDir, extra...)
	return &Prometheus{Process: p, QueryAPI: QueryAPI{URL: url}}
}

// QueryResult is the part of /api/v1/query's answer the tests look at.
type QueryResult struct {
	Status string `json:"status"`
	Error  string `json:"error"`
	Data   struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	} `json:"data"`
}

// Query runs an instant query now.
func (p QueryAPI) Query(ctx context.Context, q string) (*QueryResult, error) {
	return p.QueryAt(ctx, q, time.Time{})
}

// QueryAt runs an instant query at the given time (now when zero), so
// that time() in a query is a known number.
func (p QueryAPI) QueryAt(ctx context.Context, q string, at time.Time) (*QueryResult, error) {
	u := p.URL + "/api/v1/query?query=" + url.QueryEscape(q)
	if !at.IsZero() {
		u += "&time=" + strconv.FormatInt(at.Unix(), 10)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r QueryResult
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("decoding answer to %q: %w", q, err)
	}
	if r.Status != "success" {
		return &r, fmt.Errorf("query %q: %s", q, r.Error)
	}
	return &r, nil
}

// StartAlertmanager runs Debian's Alertmanager with the given configuration
// on loopback, without clustering, and waits until it is ready.
func StartAlertmanager(t testing.TB, config string) string {
	t.Helper()
	_, url := startServer(t, "prometheus-alertmanager", "prometheus-alertmanager", config, "--storage.path", "", "--cluster.listen-address=")
	return url
}

// startServer runs a Prometheus-family server (they share --config.file and
// --web.listen-address) with config in a temp dir, its data in dataDir
// (empty: <dir>/data) via dataFlag, on a free loopback port, and waits for
// /-/ready.
func startServer(t testing.TB, bin, debianPackage, config, dataFlag, dataDir string, extra ...string) (*Process, string) {
	t.Helper()
	path := LookPath(t, bin, debianPackage)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := FreePort(t)
	if dataDir == "" {
		dataDir = filepath.Join(dir, "data")
	}
	args := append([]string{"--config.file=" + cfg, dataFlag + "=" + dataDir, "--web.listen-address=" + addr}, extra...)
	p := Start(t, path, args...)
	url := "http://" + addr
	p.WaitHTTP(t, url+"/-/ready", 5*time.Minute)
	return p, url
}
