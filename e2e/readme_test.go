package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vmhost-exporter/vmhost_exporter/collector/backup"
	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// readmeSections splits README.md into its level-2 sections, in order:
// heading to body.
func readmeSections(t *testing.T) (titles []string, bodies map[string]string) {
	t.Helper()
	text := testenv.ReadFile(t, filepath.Join(testenv.RepoRoot(), "README.md"))
	bodies = map[string]string{}
	current := ""
	inFence := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
		}
		if !inFence && strings.HasPrefix(line, "## ") {
			current = strings.TrimPrefix(line, "## ")
			titles = append(titles, current)
			continue
		}
		if current != "" {
			bodies[current] += line + "\n"
		}
	}
	return titles, bodies
}

// githubAnchor is the fragment GitHub gives a heading.
func githubAnchor(title string) string {
	a := strings.ToLower(title)
	a = regexp.MustCompile(`[^\p{L}\p{N} _-]`).ReplaceAllString(a, "")
	return "#" + strings.ReplaceAll(a, " ", "-")
}

// TestReadmeFrontDoor: the README opens with the operator's path on one
// screen (install on Debian and on Rocky/AlmaLinux side by side, a backup
// configuration for the seed's nightly jobs, Prometheus, Alertmanager,
// Grafana), then a contents list naming every section; the backup
// configuration it shows is valid and gives nightly jobs a max_age that
// notices one missed night; and every installed path it names is one the
// package installs.
func TestReadmeFrontDoor(t *testing.T) {
	titles, bodies := readmeSections(t)
	if len(titles) < 3 {
		t.Fatalf("README has %d sections", len(titles))
	}
	first := bodies[titles[0]]
	if !strings.HasPrefix(titles[0], "Quick start") {
		t.Errorf("the first section is %q; the operator's path (Quick start) comes first", titles[0])
	}
	if n := strings.Count(first, "\n"); n > 120 {
		t.Errorf("the quick start is %d lines; it should fit a screen or two", n)
	}
	// Install: Debian and Rocky/AlmaLinux side by side, before anything else.
	install := first
	if i := strings.Index(first, "```yaml"); i > 0 {
		install = first[:i]
	}
	for _, want := range []string{"Debian", "Rocky", "AlmaLinux", "apt install ./vmhost-exporter_", "dnf install ./vmhost-exporter-"} {
		if !strings.Contains(install, want) {
			t.Errorf("the quick start's install step lacks %q", want)
		}
	}
	for _, want := range []string{"kvm_backup.sh", "rclone", "kvm_restore.log", "rule_files", "/usr/share/vmhost_exporter/rules/", "alertmanager", "/usr/share/vmhost_exporter/dashboards/"} {
		if !strings.Contains(strings.ToLower(first), strings.ToLower(want)) {
			t.Errorf("the quick start does not mention %q", want)
		}
	}

	// Its backup configuration loads, and nightly jobs go stale after one
	// missed night, not a week.
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(first, -1)
	var jobs []backup.Job
	for _, b := range blocks {
		if !strings.Contains(b[1], "jobs:") {
			continue
		}
		path := filepath.Join(t.TempDir(), "backup.yml")
		if err := os.WriteFile(path, []byte(b[1]), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := backup.LoadConfig(path)
		if err != nil {
			t.Fatalf("the quick start's backup.yml: %v", err)
		}
		jobs = append(jobs, cfg.Jobs...)
	}
	types := map[string]bool{}
	for _, j := range jobs {
		types[j.Type] = true
		if j.Type != backup.TypeRestoreLog && time.Duration(j.MaxAge) > 30*time.Hour {
			t.Errorf("quick start job %s (%s): max_age %s lets a week of missed nights pass; a nightly job wants about 26h", j.Name, j.Type, time.Duration(j.MaxAge))
		}
	}
	for _, typ := range []string{backup.TypeDatedDir, backup.TypeRcloneLog, backup.TypeRestoreLog} {
		if !types[typ] {
			t.Errorf("the quick start's backup.yml has no %s job", typ)
		}
	}

	// The contents list links every other section.
	contents, ok := bodies["Contents"]
	if !ok {
		t.Fatal("README has no Contents section")
	}
	for _, title := range titles[1:] {
		if title == "Contents" {
			continue
		}
		if !strings.Contains(contents, "]("+githubAnchor(title)+")") {
			t.Errorf("Contents does not link section %q (%s)", title, githubAnchor(title))
		}
	}

	// Installed paths the README names are the package's: a path an entry
	// installs, a directory above one, or a file below a directory entry
	// whose source glob (in the staging dir, the repository's layout)
	// matches a file of that name.
	type entry struct{ src, dst string }
	var entries []entry
	src := ""
	for _, line := range strings.Split(testenv.ReadFile(t, filepath.Join(testenv.RepoRoot(), "packaging", "nfpm.yaml")), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "- "))
		if v, ok := strings.CutPrefix(line, "src:"); ok {
			src = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "dst:"); ok {
			entries = append(entries, entry{src, strings.TrimSpace(v)})
			src = ""
		}
	}
	installs := func(p string) bool {
		for _, e := range entries {
			if p == e.dst || strings.HasPrefix(e.dst, strings.TrimSuffix(p, "/")+"/") {
				return true
			}
			if rest, ok := strings.CutPrefix(p, strings.TrimSuffix(e.dst, "/")+"/"); ok && strings.HasSuffix(e.dst, "/") && e.src != "" {
				if !strings.Contains(rest, "/") {
					if ok, _ := filepath.Match(filepath.Base(e.src), rest); ok {
						if _, err := os.Stat(filepath.Join(testenv.RepoRoot(), filepath.Dir(e.src), rest)); err == nil {
							return true
						}
					}
				}
			}
		}
		return false
	}
	readme := testenv.ReadFile(t, filepath.Join(testenv.RepoRoot(), "README.md"))
	// A path ends at a colon too: config-check's example names the file
	// with a line, /etc/vmhost_exporter/backup.yml:5: as a compiler does.
	for _, p := range regexp.MustCompile(`/(?:usr/share/vmhost_exporter|usr/share/doc/vmhost-exporter|etc/vmhost_exporter/backup\.yml|etc/default/vmhost_exporter|etc/sysconfig/vmhost_exporter)[^\s`+"`"+`'")*,:]*`).FindAllString(readme, -1) {
		p = strings.TrimRight(p, ".:")
		if !installs(p) {
			t.Errorf("README names %s, which the package does not install (packaging/nfpm.yaml)", p)
		}
	}
	// The check itself: a file the package does not have is caught.
	if installs("/usr/share/vmhost_exporter/rules/bogus.yml") {
		t.Error("the path check accepts a rule file that does not exist")
	}
}
