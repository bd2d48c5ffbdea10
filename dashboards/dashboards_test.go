package dashboards

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

type jsonPanel struct {
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Datasource  struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
}

type jsonDashboard struct {
	UID        string      `json:"uid"`
	Title      string      `json:"title"`
	Panels     []jsonPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Links []struct {
		URL string `json:"url"`
	} `json:"links"`
}

func loadCommitted(t *testing.T) map[string]jsonDashboard {
	t.Helper()
	files, _ := filepath.Glob("*.json")
	if len(files) != len(wantVariables) {
		t.Fatalf("want %d dashboards, found %v", len(wantVariables), files)
	}
	out := map[string]jsonDashboard{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d jsonDashboard
		if err := json.Unmarshal(data, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[f] = d
	}
	return out
}

func TestCommittedJSONIsGeneratorOutput(t *testing.T) {
	files, err := Render()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatalf("%v (run make dashboards)", err)
		}
		if string(got) != string(want) {
			t.Errorf("%s differs from the generator's output: run make dashboards", name)
		}
	}
}

var wantVariables = map[string][]string{
	UIDHostFleet: {"datasource", "instance"},
	UIDVMs:       {"datasource", "instance", "domain"},
	UIDBackups:   {"datasource", "instance", "backup_job"},
	UIDCapacity:  {"datasource", "instance"},
	// issue 26: one row per VM, so the same variables as the VMs dashboard.
	UIDProtection: {"datasource", "instance", "domain"},
}

// counterFunctions are the only functions a counter may be shown through.
var counterFunctions = map[string]bool{"rate": true, "irate": true, "increase": true}

// isCounter tells counters by their names: every counter this project
// shows ends in _total, or is one of node_exporter's vmstat counters.
func isCounter(name string) bool {
	return strings.HasSuffix(name, "_total") || strings.HasPrefix(name, "node_vmstat_")
}

// substitute replaces Grafana's variables with what "All" and a 15s scrape
// interval would give.
func substitute(expr string) string {
	r := strings.NewReplacer("$__rate_interval", "1m", "$instance", ".*", "$domain", ".*", "$backup_job", ".*")
	return r.Replace(expr)
}

// TestDashboardLint enforces dashboard-linter's rules (REQUIREMENTS §5) and
// our own: stable uids, links, variables, units, descriptions, PromQL.
func TestDashboardLint(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	rangeOK := regexp.MustCompile(`\[\$__rate_interval\]`)
	anyRange := regexp.MustCompile(`\[[^\]]*\]`)
	uids := map[string]bool{}
	for file, d := range loadCommitted(t) {
		uids[d.UID] = true
		want, known := wantVariables[d.UID]
		if !known {
			t.Errorf("%s: unexpected uid %q", file, d.UID)
			continue
		}
		var names []string
		for _, v := range d.Templating.List {
			names = append(names, v.Name)
			if v.Name == "datasource" && v.Type != "datasource" {
				t.Errorf("%s: variable datasource has type %s", file, v.Type)
			}
		}
		if strings.Join(names, ",") != strings.Join(want, ",") {
			t.Errorf("%s: variables %v, want %v", file, names, want)
		}
		if len(d.Links) != len(wantVariables)-1 {
			t.Errorf("%s: %d links, want one to each other dashboard", file, len(d.Links))
		}
		for _, panel := range d.Panels {
			where := fmt.Sprintf("%s: panel %q", file, panel.Title)
			if panel.Description == "" {
				t.Errorf("%s has no description", where)
			}
			if panel.FieldConfig.Defaults.Unit == "" {
				t.Errorf("%s has no unit", where)
			}
			if panel.Datasource.UID != "${datasource}" {
				t.Errorf("%s uses datasource %q, not ${datasource}", where, panel.Datasource.UID)
			}
			if len(panel.Targets) == 0 {
				t.Errorf("%s has no query", where)
			}
			for _, target := range panel.Targets {
				for _, r := range anyRange.FindAllString(target.Expr, -1) {
					if strings.Contains(target.Expr, "rate(") && !rangeOK.MatchString(r) {
						t.Errorf("%s: range %s in %q; rates must use $__rate_interval", where, r, target.Expr)
					}
				}
				expr, err := p.ParseExpr(substitute(target.Expr))
				if err != nil {
					t.Errorf("%s: %q does not parse: %v", where, target.Expr, err)
					continue
				}
				for _, path := range counterPaths(expr) {
					t.Errorf("%s: counter %s shown without rate/increase in %q", where, path, target.Expr)
				}
			}
		}
	}
	for uid := range wantVariables {
		if !uids[uid] {
			t.Errorf("no dashboard with uid %s", uid)
		}
	}
}

// counterPaths returns the counters in expr not wrapped in rate, irate or
// increase.
func counterPaths(expr parser.Expr) []string {
	var bad []string
	var walk func(n parser.Node, inCounterFn bool)
	walk = func(n parser.Node, inCounterFn bool) {
		switch x := n.(type) {
		case *parser.Call:
			ok := counterFunctions[x.Func.Name]
			for _, a := range x.Args {
				walk(a, ok)
			}
			return
		case *parser.VectorSelector:
			if isCounter(x.Name) && !inCounterFn {
				bad = append(bad, x.Name)
			}
			return
		case *parser.MatrixSelector:
			walk(x.VectorSelector, inCounterFn)
			return
		case *parser.AggregateExpr:
			// count and group look at which series exist, not at values.
			walk(x.Expr, x.Op == parser.COUNT || x.Op == parser.GROUP)
			return
		}
		for _, c := range parser.Children(n) {
			walk(c, false)
		}
	}
	walk(expr, false)
	return bad
}

func TestCounterCheckCatchesBareCounters(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	for expr, want := range map[string]int{
		`node_cpu_seconds_total`:           1,
		`rate(node_cpu_seconds_total[1m])`: 0,
		`sum(rate(libvirt_domain_info_cpu_time_seconds_total[1m])) / sum(node_vmstat_pswpin)`: 1,
		`increase(node_vmstat_pswpin[1h])`: 0,
	} {
		e, err := p.ParseExpr(expr)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(counterPaths(e)); got != want {
			t.Errorf("%s: %d bare counters, want %d", expr, got, want)
		}
	}
}

// guestStats serves what a guest and its QEMU process would report for
// the test-driver domains, which have neither: balloon statistics (no
// guest OS with a balloon driver runs here) and the CPU time of the
// running web1 (the test driver reports CPU time only for shut-off
// domains, and sizing now judges running time only, so without it the
// right-sizing panels would have nothing to show). Its CPU time grows by
// 0.3 s a second from when it starts.
func guestStats() http.Handler {
	start := time.Now()
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "# TYPE libvirt_domain_memory_stats_available_bytes gauge")
		fmt.Fprintln(w, `libvirt_domain_memory_stats_available_bytes{domain="web1"} 2147483648`)
		fmt.Fprintln(w, `libvirt_domain_memory_stats_available_bytes{domain="db1"} 8589934592`)
		fmt.Fprintln(w, "# TYPE libvirt_domain_memory_stats_usable_bytes gauge")
		fmt.Fprintln(w, `libvirt_domain_memory_stats_usable_bytes{domain="web1"} 536870912`)
		fmt.Fprintln(w, `libvirt_domain_memory_stats_usable_bytes{domain="db1"} 1073741824`)
		fmt.Fprintln(w, "# TYPE libvirt_domain_info_cpu_time_seconds_total counter")
		fmt.Fprintf(w, "libvirt_domain_info_cpu_time_seconds_total{domain=\"web1\"} %g\n", 0.3*time.Since(start).Seconds())
	})
}

// TestEveryPanelReturnsData: a real Prometheus with the shipped rules
// scrapes a real exporter (host metrics, test-driver domains, backup jobs)
// and every panel query, variables set to "All", returns data; so does
// VictoriaMetrics fed by vmagent, with vmalert evaluating the same rules.
func TestEveryPanelReturnsData(t *testing.T) {
	l := testenv.StartLibvirtd(t)
	node, _ := filepath.Abs("../collector/libvirt/testdata/node.xml")

	// Backups: a dated set holding the test-driver VMs' XML, and a
	// restore log.
	// Two nights of sets, so the size panel has a previous backup too.
	dir := testenv.SharedTempDir(t)
	for _, night := range []time.Time{time.Now().Add(-25 * time.Hour), time.Now().Add(-time.Hour)} {
		set := filepath.Join(dir, "kvm", night.Format("2006-01-02"))
		writeFile(t, filepath.Join(set, "vm_xml", "web1.xml"), "<domain><name>web1</name></domain>\n")
		// db1's disk has no copy in the set: VM protection names it.
		writeFile(t, filepath.Join(set, "vm_xml", "db1.xml"), "<domain><name>db1</name><devices><disk type='file' device='disk'>"+
			"<source file='/var/lib/libvirt/images/db1.img'/><target dev='vda'/></disk></devices></domain>\n")
		writeFile(t, filepath.Join(set, "images", "web1.img"), strings.Repeat("x", 4096))
		at := night.Format("2006-01-02 15:04:05")
		writeFile(t, filepath.Join(set, "backup.log"), at+" - === KVM ホストバックアップ開始 ===\n"+at+" - [5/5] バックアップ完了しました\n")
	}
	now := time.Now().Add(-time.Hour).Format("2006-01-02 15:04:05")
	writeFile(t, filepath.Join(dir, "kvm_restore.log"), now+" - === KVM ホスト復元開始 ===\n"+now+" - 復元完了。必要であれば再起動してください。\n")
	// An rclone sync of the sets that succeeded between the two nights:
	// the first night's copies are offsite, the second's wait (VM
	// protection's offsite column has both kinds). The run ends with
	// rclone's final statistics: without them it is a run rclone did not
	// finish (killed), no success, and nothing would be offsite.
	synced := time.Now().Add(-24 * time.Hour)
	writeFile(t, filepath.Join(dir, "rclone-kvm.log"), synced.Format("2006/01/02 15:04:05")+" INFO  : web1.img: Copied (new)\n"+
		synced.Format("2006/01/02 15:04:05")+" INFO  : \nTransferred:   \t        4 KiB / 4 KiB, 100%, 0 B/s, ETA -\nTransferred:            1 / 1, 100%\nElapsed time:         1.0s\n\n"+
		"Backup completed at "+synced.Format("2006-01-02 15:04:05")+"\n")
	cfg := filepath.Join(dir, "backup.yml")
	writeFile(t, cfg, "jobs:\n  - name: kvm-host\n    type: dated_dir\n    path: "+filepath.Join(dir, "kvm")+"\n    max_age: 8d\n"+
		"  - name: s3-kvm\n    type: rclone_log\n    log_file: "+filepath.Join(dir, "rclone-kvm.log")+"\n    copies: kvm-host\n    max_age: 26h\n"+
		"  - name: restore-test\n    type: restore_log\n    log_file: "+filepath.Join(dir, "kvm_restore.log")+"\n    max_age: 35d\n")

	e := testenv.StartExporterAsService(t, "--libvirt.socket="+l.SockRO, "--libvirt.uri="+testenv.TestURI(node), "--backup.config-file="+cfg)
	exporterAddr := strings.TrimPrefix(e.URL, "http://")
	balloon := httptest.NewServer(guestStats())
	t.Cleanup(balloon.Close)

	rules := hourlyGroupsEverySecond(t)
	scrapeConfigs := `scrape_configs:
  - job_name: vmhost
    static_configs:
      - targets: ['` + exporterAddr + `']
  # Guest statistics of the exporter's VMs (see guestStats),
  # labelled as if the exporter had reported them.
  - job_name: guest-stats
    static_configs:
      - targets: ['` + strings.TrimPrefix(balloon.URL, "http://") + `']
    relabel_configs:
      - target_label: instance
        replacement: '` + exporterAddr + `'
      - target_label: job
        replacement: vmhost
`
	prom := testenv.StartPrometheus(t, `global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - `+rules+`/*.yml
`+scrapeConfigs)
	// The same scrape through vmagent into VictoriaMetrics, the shipped
	// rules evaluated by vmalert.
	vm := testenv.StartVictoriaMetrics(t, "global:\n  scrape_interval: 1s\n"+scrapeConfigs, rules+"/*.yml", "")

	type pending struct{ where, expr string }
	var todo []pending
	for file, d := range loadCommitted(t) {
		for _, panel := range d.Panels {
			for _, target := range panel.Targets {
				todo = append(todo, pending{file + ": " + panel.Title, substitute(target.Expr)})
			}
		}
		for _, v := range d.Templating.List {
			if q, ok := v.Query.(string); ok && strings.HasPrefix(q, "label_values(") {
				// label_values(metric, label) returns data when the metric has series.
				inner := strings.TrimSuffix(strings.TrimPrefix(q, "label_values("), ")")
				metric := inner[:strings.LastIndex(inner, ",")]
				todo = append(todo, pending{file + ": variable " + v.Name, substitute(metric)})
			}
		}
	}
	sort.Slice(todo, func(a, b int) bool { return todo[a].where < todo[b].where })

	for _, engine := range []struct {
		name string
		api  testenv.QueryAPI
	}{{"Prometheus", prom.QueryAPI}, {"VictoriaMetrics", vm.QueryAPI}} {
		t.Run(engine.name, func(t *testing.T) {
			left := slices.Clone(todo)
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			for len(left) > 0 && ctx.Err() == nil {
				var again []pending
				for _, q := range left {
					r, err := engine.api.Query(ctx, q.expr)
					if err != nil {
						t.Errorf("%s: %v", q.where, err)
						continue
					}
					if len(r.Data.Result) == 0 {
						again = append(again, q)
					}
				}
				left = again
				if len(left) > 0 {
					time.Sleep(time.Second)
				}
			}
			for _, q := range left {
				t.Errorf("%s: no data for %s", q.where, q.expr)
			}
		})
	}
}

// hourlyGroupsEverySecond copies the shipped rules into a temporary
// directory with the hourly groups (interval: 1h) evaluated every second,
// as promtool's unit tests do: a real ruler starts an hourly group at an
// offset of up to an hour, longer than the test waits for data. So are
// the other groups with an interval of their own (the 7-day ones, every
// 4 minutes): up to 4 minutes before their first result is longer too.
func hourlyGroupsEverySecond(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	hourly := 0
	testenv.CopyRules(t, dir, func(g *testenv.RuleGroup) bool {
		if g.Interval == "1h" {
			hourly++
		}
		if g.Interval != "" {
			g.Interval = "1s"
		}
		return true
	})
	if hourly == 0 {
		t.Fatal("no hourly group in the rules: drop this copy")
	}
	return dir
}

// TestEveryDashboardImportsLikeACommunityOne: Grafana's importer asks for
// the Prometheus data source (__inputs), the datasource variable defaults
// to the one chosen, __requires names the oldest Grafana, and README
// states it.
func TestEveryDashboardImportsLikeACommunityOne(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "Grafana "+strings.TrimSuffix(MinGrafanaVersion, ".0")+" or later") {
		t.Errorf("README does not state the lowest Grafana version, %s", MinGrafanaVersion)
	}
	files, _ := filepath.Glob("*.json")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Inputs []struct {
				Name, Type, PluginID string
			} `json:"__inputs"`
			Requires []struct {
				Type, ID, Version string
			} `json:"__requires"`
			Templating struct {
				List []struct {
					Name    string `json:"name"`
					Current struct {
						Value string `json:"value"`
					} `json:"current"`
				} `json:"list"`
			} `json:"templating"`
		}
		if err := json.Unmarshal(data, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(d.Inputs) != 1 || d.Inputs[0].Type != "datasource" || d.Inputs[0].PluginID != "prometheus" {
			t.Errorf("%s: __inputs %+v, want one Prometheus data source", f, d.Inputs)
			continue
		}
		for _, v := range d.Templating.List {
			if v.Name == "datasource" && v.Current.Value != "${"+d.Inputs[0].Name+"}" {
				t.Errorf("%s: the datasource variable defaults to %q, not the imported ${%s}", f, v.Current.Value, d.Inputs[0].Name)
			}
		}
		var grafana string
		for _, r := range d.Requires {
			if r.Type == "grafana" {
				grafana = r.Version
			}
		}
		if grafana != MinGrafanaVersion {
			t.Errorf("%s: __requires Grafana %q, want %s", f, grafana, MinGrafanaVersion)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
