package testenv

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// NodeExporter is a private node_exporter (Debian's
// prometheus-node-exporter) on loopback, the one a host runs beside
// vmhost_exporter.
type NodeExporter struct {
	*Process
	URL string // base URL, e.g. http://127.1.2.3:1234
}

// nodeExporterBin finds the node_exporter that make test-deps unpacked
// into the repository's cache. The package is unpacked rather than
// installed because its init script would start a node_exporter on :9100
// of every address.
func nodeExporterBin(t testing.TB) string {
	t.Helper()
	p := os.Getenv("VMHOST_NODE_EXPORTER")
	if p == "" {
		p = filepath.Join(RepoRoot(), ".cache", "node-exporter", "usr", "bin", "prometheus-node-exporter")
	}
	if _, err := os.Stat(p); err != nil {
		Missing(t, "node_exporter (Debian's prometheus-node-exporter package, unpacked into .cache/node-exporter)", "make test-deps")
	}
	return p
}

// StartNodeExporter runs node_exporter on a free loopback port with the
// given extra flags (e.g. --path.procfs of a fixture) and waits until
// /metrics answers. Its textfile directory is an empty temp dir, so the
// host's /var/lib/prometheus/node-exporter is never read.
func StartNodeExporter(t testing.TB, args ...string) *NodeExporter {
	t.Helper()
	bin := nodeExporterBin(t)
	addr := FreePort(t)
	all := []string{"--web.listen-address=" + addr}
	if !hasFlag(args, "--collector.textfile.directory") {
		all = append(all, "--collector.textfile.directory="+t.TempDir())
	}
	p := Start(t, bin, append(all, args...)...)
	n := &NodeExporter{Process: p, URL: "http://" + addr}
	p.WaitHTTP(t, n.URL+"/metrics", 15*time.Second)
	return n
}
