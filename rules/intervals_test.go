package rules

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
)

// lookback is Prometheus' default -query.lookback-delta: an instant
// vector sees a series only if it has a sample this recent.
const lookback = 5 * time.Minute

// TestHourlySeriesAreReadOnlyThroughRanges: a series recorded by a group
// with an interval at or above the lookback (the hourly groups) is
// visible at an instant for 5 minutes of its hour. Any rule or dashboard
// query reading it as an instant vector would show it, fire on it or
// join on it only now and then; they must read it through a range. The
// groups that make the 7-day figures readable at any instant read the
// hourly ones over at least two of their intervals, so that a late or
// missed hourly evaluation (a ruler's restart) leaves no gap.
func TestHourlySeriesAreReadOnlyThroughRanges(t *testing.T) {
	sparse := map[string]time.Duration{} // recorded name → its group's interval
	for f, rgs := range loadGroups(t) {
		for _, g := range rgs.Groups {
			interval := time.Duration(g.Interval)
			if interval != 0 && interval < lookback {
				continue
			}
			if interval == 0 {
				continue // the global interval: the README asks for 30 s
			}
			for _, r := range g.Rules {
				if r.Record == "" {
					t.Errorf("%s: group %s (interval %v) holds alert %s: its state would be seen only every %v", f, g.Name, interval, r.Alert, interval)
					continue
				}
				sparse[r.Record] = interval
			}
		}
	}
	if len(sparse) == 0 {
		t.Fatal("no group with an interval at or above the lookback: this test checks nothing")
	}

	carried := 0
	p := parser.NewParser(parser.Options{})
	for f, rgs := range loadGroups(t) {
		for _, g := range rgs.Groups {
			for _, r := range g.Rules {
				expr, err := p.ParseExpr(r.Expr)
				if err != nil {
					t.Fatalf("%s: %s: %v", f, r.Expr, err)
				}
				name := r.Record + r.Alert
				for _, bad := range instantReadsOf(expr, sparse) {
					t.Errorf("%s: %s reads %s (recorded every %v) as an instant vector: read it through a range", f, name, bad, sparse[bad])
				}
				if time.Duration(g.Interval) >= lookback {
					continue
				}
				for _, m := range rangeReadsOf(expr, sparse) {
					carried++
					if need := 2 * sparse[m.name]; m.window < need {
						t.Errorf("%s: %s reads %s over %v: at least %v (two of its intervals) survives one late evaluation", f, name, m.name, m.window, need)
					}
				}
			}
		}
	}
	if carried == 0 {
		t.Error("no rule reads an hourly series through a range at an interval under the lookback: the 7-day figures are not readable at any instant")
	}

	dashboards, _ := filepath.Glob("../dashboards/*.json")
	if len(dashboards) == 0 {
		t.Fatal("no dashboards")
	}
	for _, d := range dashboards {
		data, err := os.ReadFile(d)
		if err != nil {
			t.Fatal(err)
		}
		for name := range sparse {
			// The name, an optional selector, then anything but a range.
			re := regexp.MustCompile(regexp.QuoteMeta(name) + `\b(\{[^}]*\})?(\s*[^\s\[{]|$)`)
			for _, m := range re.FindAllString(string(data), -1) {
				t.Errorf("%s: reads %s (recorded every %v) as an instant vector: %q", d, name, sparse[name], strings.TrimSpace(m))
			}
		}
	}
}

// instantReadsOf lists the sparse series the expression reads as instant
// vectors (outside any range selector or subquery).
func instantReadsOf(expr parser.Expr, sparse map[string]time.Duration) []string {
	var out []string
	var walk func(n parser.Node, inRange bool)
	walk = func(n parser.Node, inRange bool) {
		switch v := n.(type) {
		case *parser.MatrixSelector, *parser.SubqueryExpr:
			inRange = true
		case *parser.VectorSelector:
			if _, ok := sparse[v.Name]; ok && !inRange {
				out = append(out, v.Name)
			}
		}
		for _, c := range parser.Children(n) {
			walk(c, inRange)
		}
	}
	walk(expr, false)
	return out
}

type rangeRead struct {
	name   string
	window time.Duration
}

// rangeReadsOf lists the sparse series the expression reads through a
// range selector, with the range.
func rangeReadsOf(expr parser.Expr, sparse map[string]time.Duration) []rangeRead {
	var out []rangeRead
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if m, ok := n.(*parser.MatrixSelector); ok {
			if vs, ok := m.VectorSelector.(*parser.VectorSelector); ok {
				if _, ok := sparse[vs.Name]; ok {
					out = append(out, rangeRead{vs.Name, m.Range})
				}
			}
		}
		return nil
	})
	return out
}
