package e2e

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// markdownLink is a Markdown link's target.
var markdownLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// readmeLinks are the README's links into the repository (docs/*.md,
// examples/..., LICENSE), without anchors: what a release must carry for
// the README it ships to be whole.
func readmeLinks(t *testing.T) []string {
	t.Helper()
	var links []string
	for _, m := range markdownLink.FindAllStringSubmatch(testenv.ReadFile(t, filepath.Join(testenv.RepoRoot(), "README.md")), -1) {
		link, _, _ := strings.Cut(m[1], "#")
		if link == "" || strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
			continue
		}
		link = filepath.Clean(link)
		if !slices.Contains(links, link) {
			links = append(links, link)
		}
	}
	if len(links) == 0 {
		t.Fatal("README.md has no relative links; the parser is broken")
	}
	return links
}

// TestReadmeLinks: the link parser finds the links the README has.
func TestReadmeLinks(t *testing.T) {
	links := readmeLinks(t)
	for _, want := range []string{"LICENSE", "docs/fleet.md", "docs/performance.md", "docs/runbooks.md", "examples/prometheus.yml"} {
		if !slices.Contains(links, want) {
			t.Errorf("readmeLinks = %v, lacks %s", links, want)
		}
	}
	for _, l := range links {
		if strings.Contains(l, "#") || strings.Contains(l, "://") {
			t.Errorf("readmeLinks returned %q", l)
		}
	}
}

// knownLicences are the licence ids packaging/gen-copyright writes.
var knownLicences = []string{"Apache-2.0", "BSD-2-Clause", "BSD-3-Clause", "ISC", "MIT", "MPL-2.0"}

// checkModuleLicences: copyright, the installed copyright file, has a
// paragraph with a licence for the Go standard library and every module
// `go version -m` finds in binary (a replacement in place of what it
// replaces).
func checkModuleLicences(t *testing.T, binary, copyright string) {
	t.Helper()
	out, err := exec.Command("go", "version", "-m", binary).Output()
	if err != nil {
		t.Fatalf("go version -m %s: %v", binary, err)
	}
	licence := map[string]string{}
	for _, para := range strings.Split(copyright, "\n\n") {
		files := regexp.MustCompile(`(?m)^Files: (.*)$`).FindStringSubmatch(para)
		lic := regexp.MustCompile(`(?m)^License: (.*)$`).FindStringSubmatch(para)
		if files != nil && lic != nil {
			licence[files[1]] = lic[1]
		}
	}
	var mods []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[0] == "dep":
			mods = append(mods, f[1]+"@"+f[2])
		case len(f) >= 3 && f[0] == "=>":
			mods[len(mods)-1] = f[1] + "@" + f[2]
		}
	}
	// The first line: "<binary>: go1.x.y".
	first, _, _ := strings.Cut(string(out), "\n")
	mods = append(mods, "Go standard library@"+strings.TrimSpace(first[strings.LastIndex(first, ":")+1:]))
	if len(mods) < 10 {
		t.Fatalf("go version -m lists only %v", mods)
	}
	for _, m := range mods {
		ids, ok := licence[m+"/*"]
		if !ok {
			t.Errorf("the copyright file has no paragraph for %s", m)
			continue
		}
		for _, id := range strings.Split(ids, " and ") {
			if !slices.Contains(knownLicences, id) {
				t.Errorf("%s: licence %q", m, ids)
			}
		}
	}
}
