package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// RuleGroup is a group of the shipped rule files, as a test changes it
// before a ruler loads it. Keys the test does not name (limit, labels)
// are kept as they are.
type RuleGroup struct {
	Name     string           `yaml:"name"`
	Interval string           `yaml:"interval,omitempty"`
	Rules    []map[string]any `yaml:"rules"`
	Other    map[string]any   `yaml:",inline"`
}

// CopyRules writes the shipped rule files (rules/*.yml) into dir, each
// group passed through edit first: a group for which it returns false is
// left out, and a file left without groups is not written. Tests copy the
// rules to change what a test cannot wait for, such as an hour's
// interval, never what the rules compute.
func CopyRules(t testing.TB, dir string, edit func(g *RuleGroup) bool) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(RepoRoot(), "rules", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule files: %v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var file struct {
			Groups []*RuleGroup `yaml:"groups"`
		}
		if err := yaml.Unmarshal(data, &file); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var kept []*RuleGroup
		for _, g := range file.Groups {
			if edit(g) {
				kept = append(kept, g)
			}
		}
		if len(kept) == 0 {
			continue
		}
		file.Groups = kept
		out, err := yaml.Marshal(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// DropHourlySummaries removes the group's hourly summaries (the rules
// recording *_1h) and returns how many it removed: a test that writes
// the summaries itself keeps the rest of an hourly group (the 7-day
// figures computed from them).
func (g *RuleGroup) DropHourlySummaries() int {
	kept := g.Rules[:0]
	for _, r := range g.Rules {
		if record, _ := r["record"].(string); !strings.HasSuffix(record, "_1h") {
			kept = append(kept, r)
		}
	}
	dropped := len(g.Rules) - len(kept)
	g.Rules = kept
	return dropped
}
