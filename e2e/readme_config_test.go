package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// besideRelabelling returns, as YAML lines for a relabel_configs key, the
// vmhost job's relabelling of the README's scrape configuration "Beside
// node_exporter or instead of it", so the end-to-end test runs what
// operators copy. Node_exporter's port 9100 in it becomes nodePort: the
// test's node_exporter listens on a free loopback port.
func besideRelabelling(t *testing.T, nodePort string) string {
	t.Helper()
	readme := testenv.ReadFile(t, filepath.Join(testenv.RepoRoot(), "README.md"))
	_, section, ok := strings.Cut(readme, "\n## Beside node_exporter or instead of it\n")
	if !ok {
		t.Fatal(`README.md has no section "Beside node_exporter or instead of it"`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	_, block, ok := strings.Cut(section, "```yaml\n")
	if !ok {
		t.Fatal("the README's section on node_exporter has no YAML block")
	}
	block, _, _ = strings.Cut(block, "```")
	var cfg struct {
		ScrapeConfigs []struct {
			JobName        string           `yaml:"job_name"`
			RelabelConfigs []map[string]any `yaml:"relabel_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal([]byte(block), &cfg); err != nil {
		t.Fatalf("the README's scrape configuration beside node_exporter: %v", err)
	}
	for _, sc := range cfg.ScrapeConfigs {
		if sc.JobName != "vmhost" {
			continue
		}
		replaced := false
		for _, rc := range sc.RelabelConfigs {
			if r, ok := rc["replacement"].(string); ok && strings.Contains(r, ":9100") {
				rc["replacement"] = strings.ReplaceAll(r, ":9100", ":"+nodePort)
				replaced = true
			}
		}
		if !replaced {
			t.Fatalf("the README's vmhost job names no node_exporter port 9100 to take the instance of: %v", sc.RelabelConfigs)
		}
		out, err := yaml.Marshal(sc.RelabelConfigs)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
		return "      " + strings.Join(lines, "\n      ") + "\n"
	}
	t.Fatal("the README's scrape configuration beside node_exporter has no vmhost job")
	return ""
}
