package rules

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// lookback is Prometheus' default -query.lookback-delta: an instant
// vector sees a series only if it has a sample this recent.
const lookback = 5 * time.Minute

// sparseSeries maps each series recorded by a group whose interval is at
// or above the lookback (the hourly groups) to that interval. It fails
// on an alert in such a group: its state would be seen only now and then.
func sparseSeries(t *testing.T) map[string]time.Duration {
	t.Helper()
	sparse := map[string]time.Duration{}
	for f, rgs := range loadGroups(t) {
		for _, g := range rgs.Groups {
			interval := time.Duration(g.Interval)
			if interval < lookback { // zero: the global interval, 30 s in the README
				continue
			}
			for _, r := range g.Rules {
				if r.Record == "" {
					t.Errorf("%s: group %s (interval %v) holds alert %s", f, g.Name, interval, r.Alert)
					continue
				}
				sparse[r.Record] = interval
			}
		}
	}
	if len(sparse) == 0 {
		t.Fatal("no group with an interval at or above the lookback: the checks below check nothing")
	}
	return sparse
}

// TestHourlySeriesAreReadOnlyThroughRanges: a series recorded by a group
// with an interval at or above the lookback (the hourly groups) is
// visible at an instant for 5 minutes of its hour. Any rule, annotation
// or dashboard query reading it as an instant vector would show it, fire
// on it or join on it only now and then; they must read it through a
// range. Whatever reads it through a range at an instant (the 4-minute
// groups, a dashboard) reads more than two of its intervals, so that a
// missed hourly evaluation, and the half minute an evaluation takes to
// write its results, leave no gap.
func TestHourlySeriesAreReadOnlyThroughRanges(t *testing.T) {
	sparse := sparseSeries(t)
	p := parser.NewParser(parser.Options{})
	carried := 0
	for f, rgs := range loadGroups(t) {
		for _, g := range rgs.Groups {
			if time.Duration(g.Interval) >= lookback {
				continue // the hourly groups themselves read 7 days of their summaries
			}
			for _, r := range g.Rules {
				name := r.Record + r.Alert
				expr, err := p.ParseExpr(r.Expr)
				if err != nil {
					t.Fatalf("%s: %s: %v", f, name, err)
				}
				for _, problem := range sparseReadProblems(expr, sparse) {
					t.Errorf("%s: %s %s", f, name, problem)
				}
				carried += len(rangeReadsOf(expr, sparse))
				for key, text := range r.Annotations {
					for s := range sparse {
						if regexp.MustCompile(`\b` + regexp.QuoteMeta(s) + `\b`).MatchString(text) {
							t.Errorf("%s: %s: annotation %s queries %s, recorded every %v", f, name, key, s, sparse[s])
						}
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
	exprs := 0
	for _, d := range dashboards {
		data, err := os.ReadFile(d)
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		for _, q := range exprsIn(doc) {
			exprs++
			expr, err := p.ParseExpr(grafanaVariables.Replace(q))
			if err != nil {
				t.Errorf("%s: %q does not parse with Grafana's variables replaced: %v", d, q, err)
				continue
			}
			for _, problem := range sparseReadProblems(expr, sparse) {
				t.Errorf("%s: %q %s", d, q, problem)
			}
		}
	}
	if exprs == 0 {
		t.Error("no query in the dashboards: the check above checked nothing")
	}
}

// TestSparseReadProblems shows the check above finds what it is for.
func TestSparseReadProblems(t *testing.T) {
	sparse := map[string]time.Duration{"x:p95_7d_hourly": time.Hour}
	p := parser.NewParser(parser.Options{})
	for _, c := range []struct {
		expr  string
		wants int
	}{
		{`last_over_time(x:p95_7d_hourly[3h])`, 0},
		{`max_over_time(x:p95_7d_hourly{instance=~"a.*"}[3h]) > 0.1`, 0},
		{`other_series * 2`, 0},
		{`x:p95_7d_hourly`, 1},
		{`clamp_min(ceil(x:p95_7d_hourly / 0.7), 1)`, 1},
		{`x:p95_7d_hourly and on (instance) up`, 1},
		{`last_over_time(x:p95_7d_hourly[2h])`, 1},                        // two intervals: no margin
		{`max_over_time(x:p95_7d_hourly[3h:5m])`, 1},                      // a subquery reads instants
		{`{__name__="x:p95_7d_hourly"}`, 1},                               // the name as a matcher
		{`sum({__name__=~"x:.*_hourly", instance="a"})`, 1},               // or a regular expression
		{`last_over_time({__name__=~"x:.*_hourly"}[5m])`, 1},              // too short a range
		{`avg_over_time(x:p95_7d_hourly[3h]) / x:p95_7d_hourly`, 1},       // one of two reads
		{`quantile_over_time(0.95, x:p95_7d_hourly[7d]) and x:other`, 0},  // a long range is fine
		{`last_over_time(x:p95_7d_hourly[3h] offset 1h) unless other`, 0}, // offset keeps the range
	} {
		expr, err := p.ParseExpr(c.expr)
		if err != nil {
			t.Fatalf("%s: %v", c.expr, err)
		}
		if got := sparseReadProblems(expr, sparse); len(got) != c.wants {
			t.Errorf("%s: %d problems %q, want %d", c.expr, len(got), got, c.wants)
		}
	}
}

// sparseReadProblems lists the expression's reads of sparse series as
// instant vectors (outside any range selector: a subquery evaluates its
// inner expression at instants) and through ranges no longer than two of
// the series' intervals.
func sparseReadProblems(expr parser.Expr, sparse map[string]time.Duration) []string {
	var out []string
	var walk func(n parser.Node, window time.Duration)
	walk = func(n parser.Node, window time.Duration) {
		switch v := n.(type) {
		case *parser.MatrixSelector:
			window = v.Range
		case *parser.SubqueryExpr:
			window = 0
		case *parser.VectorSelector:
			for _, name := range selectedSparse(v, sparse) {
				switch {
				case window == 0:
					out = append(out, "reads "+name+" (recorded every "+sparse[name].String()+") as an instant vector: read it through a range")
				case window <= 2*sparse[name]:
					out = append(out, "reads "+name+" over "+window.String()+": more than two of its intervals ("+(2*sparse[name]).String()+") survives a missed evaluation")
				}
			}
		}
		for _, c := range parser.Children(n) {
			walk(c, window)
		}
	}
	walk(expr, 0)
	return out
}

// rangeReadsOf counts the expression's reads of sparse series through a
// range selector.
func rangeReadsOf(expr parser.Expr, sparse map[string]time.Duration) []string {
	var out []string
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if m, ok := n.(*parser.MatrixSelector); ok {
			if vs, ok := m.VectorSelector.(*parser.VectorSelector); ok {
				out = append(out, selectedSparse(vs, sparse)...)
			}
		}
		return nil
	})
	return out
}

// selectedSparse lists the sparse series a selector may select, by its
// name or by its __name__ matchers.
func selectedSparse(vs *parser.VectorSelector, sparse map[string]time.Duration) []string {
	var out []string
	for name := range sparse {
		if vs.Name != "" && vs.Name != name {
			continue
		}
		all := true
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel && !m.Matches(name) {
				all = false
			}
		}
		if all && (vs.Name != "" || slices.ContainsFunc(vs.LabelMatchers, func(m *labels.Matcher) bool { return m.Name == model.MetricNameLabel })) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// grafanaVariables replaces a dashboard query's variables with values
// that parse: the range variables with 5 minutes (the lookback: a range
// that short is no carry), the others with a label value.
var grafanaVariables = strings.NewReplacer(
	"$__rate_interval", "5m", "${__rate_interval}", "5m", "$__interval", "5m", "${__interval}", "5m",
	"$__range", "5m", "${__range}", "5m",
	"${instance}", "x", "$instance", "x", "${domain}", "x", "$domain", "x", "${cluster}", "x", "$cluster", "x",
	"${backup_job}", "x", "$backup_job", "x", "${datasource}", "x", "$datasource", "x", "${pool}", "x", "$pool", "x",
)

// exprsIn collects every "expr" string of a dashboard's JSON.
func exprsIn(v any) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && k == "expr" && s != "" {
				out = append(out, s)
				continue
			}
			out = append(out, exprsIn(e)...)
		}
	case []any:
		for _, e := range x {
			out = append(out, exprsIn(e)...)
		}
	}
	return out
}
