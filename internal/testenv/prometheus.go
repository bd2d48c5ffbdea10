package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Prometheus is a private Prometheus server (Debian's package) on loopback.
type Prometheus struct {
	*Process
	URL string
}

// StartPrometheus runs prometheus with the given configuration (YAML) and
// waits until it is ready. Rule files named in the config are used as they
// are.
func StartPrometheus(t testing.TB, config string) *Prometheus {
	t.Helper()
	bin := LookPath(t, "prometheus", "prometheus")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := FreePort(t)
	p := Start(t, bin,
		"--config.file="+cfg,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--web.enable-lifecycle",
	)
	prom := &Prometheus{Process: p, URL: "http://" + addr}
	WaitHTTP(t, prom.URL+"/-/ready", 30*time.Second)
	return prom
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

// Query runs an instant query.
func (p *Prometheus) Query(ctx context.Context, q string) (*QueryResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/api/v1/query?query="+url.QueryEscape(q), nil)
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
	bin := LookPath(t, "prometheus-alertmanager", "prometheus-alertmanager")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := FreePort(t)
	Start(t, bin,
		"--config.file="+cfg,
		"--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--cluster.listen-address=",
	)
	url := "http://" + addr
	WaitHTTP(t, url+"/-/ready", 30*time.Second)
	return url
}
