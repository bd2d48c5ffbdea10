package bench

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// benchSeries measures, from real scrapes of the exporter binary, the series
// of a running QEMU guest (1 vCPU, 1 disk, a user-mode NIC), of a shut-off
// one, of a test-driver domain's bridged NIC, and of the host.
func benchSeries(t *testing.T, fleet *report) {
	backups := filepath.Join(testenv.SharedTempDir(t), "backup.yml")
	if err := os.WriteFile(backups, []byte("jobs:\n  - name: etc\n    type: file_glob\n    glob: /etc/*.conf\n    max_age: 1d\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mf, running, stopped := testenv.ScrapeGuestPair(t, fmt.Sprintf("vmhfleet-%d-", os.Getpid()), "--backup.config-file="+backups)
	perDomain := testenv.SeriesByLabel(mf, "domain")
	perDevice := testenv.DomainSeriesByLabel(mf, running, "target_device")

	fleet.add("series per running VM (1 vCPU, 1 disk; balloon without guest statistics)", strconv.Itoa(perDomain[running]))
	fleet.add("series per shut-off VM", strconv.Itoa(perDomain[stopped]))
	fleet.add("series each further disk adds", strconv.Itoa(perDevice["vda"]))
	fleet.add("series per host (default collectors on this machine, one backup job, no domain label)", strconv.Itoa(perDomain[""]))
	fleet.add("series per VM recorded by the rule pack (domain:* rules)", strconv.Itoa(recordedPerVM(t)))
}

// recordedPerVM counts the rule pack's recording rules that record one
// series per VM.
func recordedPerVM(t *testing.T) int {
	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "rules", "*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^\s*- record: domain:`)
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		n += len(re.FindAll(data, -1))
	}
	return n
}

// sevenDayInputs are the recorded series the hourly groups summarise, per
// VM and per host, with the summary each gets (the *_1h series the 7-day
// groups read).
var sevenDayInputs = struct{ vm, host []summarised }{
	vm: []summarised{
		{"domain:libvirt_vm_running:bool", "domain:libvirt_vm_running:avg_1h", mean},
		{"domain:libvirt_vm_cpu_utilisation_running:rate5m", "domain:libvirt_vm_cpu_utilisation:p95_1h", p95},
		{"domain:libvirt_vm_cpu_cores_used_running:rate5m", "domain:libvirt_vm_cpu_cores_used:p95_1h", p95},
		{"domain:libvirt_vm_memory_utilisation_running:ratio", "domain:libvirt_vm_memory_utilisation:p95_1h", p95},
		{"domain:libvirt_vm_memory_used_running:bytes", "domain:libvirt_vm_memory_used:max_1h", maximum},
		// The day/night inputs exist only in busy or in quiet hours; the
		// bench writes both at every hour, an upper bound of their cost.
		{"domain:libvirt_vm_cpu_utilisation_busy:rate5m", "domain:libvirt_vm_cpu_utilisation_busy:avg_1h", mean},
		{"domain:libvirt_vm_cpu_utilisation_quiet:rate5m", "domain:libvirt_vm_cpu_utilisation_quiet:avg_1h", mean},
	},
	host: []summarised{
		{"instance:node_cpu_utilisation:rate5m", "instance:node_cpu_utilisation:p95_1h", p95},
		{"instance:node_memory_utilisation:ratio", "instance:node_memory_utilisation:p95_1h", p95},
		{"instance:node_cpu_utilisation_busy:rate5m", "instance:node_cpu_utilisation_busy:avg_1h", mean},
		{"instance:node_cpu_utilisation_quiet:rate5m", "instance:node_cpu_utilisation_quiet:avg_1h", mean},
	},
}

type summarised struct {
	input, hourly string
	summary       func([]float64) float64
}

func mean(v []float64) float64 {
	sum := 0.0
	for _, x := range v {
		sum += x
	}
	return sum / float64(len(v))
}

func maximum(v []float64) float64 { return slices.Max(v) }

// p95 is PromQL's quantile_over_time(0.95, ...): linear interpolation
// between the closest ranks.
func p95(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	rank := 0.95 * float64(len(s)-1)
	lo := int(math.Floor(rank))
	if lo+1 >= len(s) {
		return s[lo]
	}
	w := rank - float64(lo)
	return s[lo]*(1-w) + s[lo+1]*w
}

// sample is the bench's input: a daily cycle with some noise, so that
// quantiles cost what real data costs and hourly summaries lose what they
// lose on real data.
func sample(ts time.Time, i int) float64 {
	x := float64(ts.Unix())/86400*2*math.Pi + float64(i)
	return 0.4 + 0.3*math.Sin(x) + 0.05*math.Sin(float64(ts.Unix()%977))
}

// inputSeries is one input series of the 7-day bench and its hourly
// summary; its index in fleetSeries' answer picks its phase in sample.
type inputSeries struct {
	input, hourly labels.Labels
	summary       func([]float64) float64
}

// fleetSeries lists the input series of hosts × perHost VMs, the same for
// every engine the bench runs.
func fleetSeries(hosts, perHost int) []inputSeries {
	var all []inputSeries
	for h := range hosts {
		instance := fmt.Sprintf("host%04d:9851", h)
		for _, s := range sevenDayInputs.host {
			all = append(all, inputSeries{labels.FromStrings("__name__", s.input, "instance", instance, "job", "vmhost"),
				labels.FromStrings("__name__", s.hourly, "instance", instance, "job", "vmhost"), s.summary})
		}
		for v := range perHost {
			domain := fmt.Sprintf("vm%03d", v)
			for _, s := range sevenDayInputs.vm {
				all = append(all, inputSeries{labels.FromStrings("__name__", s.input, "instance", instance, "job", "vmhost", "domain", domain),
					labels.FromStrings("__name__", s.hourly, "instance", instance, "job", "vmhost", "domain", domain), s.summary})
			}
		}
	}
	return all
}

// benchSevenDayRules writes the 7-day figures' input for hosts × perHost
// VMs as TSDB blocks (one a day): the recorded series at the example
// configuration's 30 s evaluation interval and, once an hour, their hourly
// summaries computed from them as the hourly groups would. With exact, the
// 30 s series cover the 7 days and the bench also compares each 7-day
// figure with the exact one on the same data, up to the last whole hour;
// without, they cover only the last 70 minutes up to now, so 50,000 VMs
// fit on a small machine, and the hourly summaries before them come from
// the same cycle. It starts Debian's Prometheus on them, on one core, with the
// shipped groups that have an interval of their own, as they run in a
// ruler: first the hourly groups alone (the hour's summaries, then the
// 7-day figures from them), then the 4-minute groups alone (the 7-day
// figures readable at any instant), and reports each one's CPU time per
// evaluation against its shipped interval.
func benchSevenDayRules(t *testing.T, fleet *report, hosts, perHost int, exact bool) {
	const step = 30 * time.Second
	dir := filepath.Join(testenv.SharedTempDir(t), fmt.Sprintf("tsdb-%d", hosts*perHost))
	// Without exact, the 30 s input ends now, so that the hourly groups'
	// summaries read as much of an hour of it as they can while the bench
	// runs (the bench reports how much). With exact, it ends at the last
	// whole hour, the newest summary, and the exact figures are taken at
	// that time.
	end := time.Now().Truncate(step)
	begin := end.Truncate(time.Hour).Add(-7*24*time.Hour - time.Hour)
	fullFrom := begin
	if exact {
		end = end.Truncate(time.Hour)
	} else {
		fullFrom = end.Add(-time.Hour - 10*time.Minute)
	}
	t.Setenv("TMPDIR", testenv.SharedTempDir(t)) // BlockWriter's head chunks
	start := time.Now()
	all := fleetSeries(hosts, perHost)
	samples := 0
	hour := make([][]float64, len(all))
	for day := begin; day.Before(end); day = day.Add(24 * time.Hour) {
		dayEnd := day.Add(24 * time.Hour)
		if dayEnd.After(end) {
			dayEnd = end
		}
		w, err := tsdb.NewBlockWriter(slog.New(slog.DiscardHandler), dir, int64(24*time.Hour/time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		// In time order: the head accepts samples only near its newest.
		refs := make([]storage.SeriesRef, len(all))
		hourlyRefs := make([]storage.SeriesRef, len(all))
		app := w.Appender(context.Background())
		n := 0
		appendOne := func(ref storage.SeriesRef, ls labels.Labels, ts time.Time, v float64) storage.SeriesRef {
			ref, err := app.Append(ref, ls, ts.UnixMilli(), v)
			if err != nil {
				t.Fatal(err)
			}
			samples++
			return ref
		}
		for ts := day; ts.Before(dayEnd); ts = ts.Add(step) {
			full := !ts.Before(fullFrom)
			onHour := ts.Truncate(time.Hour).Equal(ts) && ts.After(begin)
			for i, s := range all {
				if onHour {
					// The hourly group's result at ts, over (ts-1h, ts].
					v := sample(ts, i)
					if len(hour[i]) > 0 {
						v = s.summary(hour[i])
					}
					hourlyRefs[i] = appendOne(hourlyRefs[i], s.hourly, ts, v)
					hour[i] = hour[i][:0]
				}
				if full {
					v := sample(ts, i)
					refs[i] = appendOne(refs[i], s.input, ts, v)
					hour[i] = append(hour[i], v)
				}
			}
			if n++; n%120 == 0 {
				if err := app.Commit(); err != nil {
					t.Fatal(err)
				}
				app = w.Appender(context.Background())
			}
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	written := time.Since(start)
	vms := hosts * perHost
	defer func() { t.Log("\n" + fleet.markdown()) }() // the rows so far, should a later part fail

	// One core, as the target reads ("on one core of Prometheus"):
	// GOMAXPROCS is inherited by the server; its CPU time is the cost
	// whatever else shares the machine.
	t.Setenv("GOMAXPROCS", "1")
	run := func(name string, intervals map[string]string, withoutSummaries bool) (*testenv.Prometheus, []string) {
		rules, groups := benchRules(t, fmt.Sprintf("%s-%d", name, vms), intervals, withoutSummaries)
		p := testenv.StartPrometheusOn(t, dir, `global:
  scrape_interval: 30s
  evaluation_interval: 30s
rule_files:
  - `+rules+`/*.yml
`, "--storage.tsdb.retention.time=30d", "--storage.tsdb.min-block-duration=1d", "--storage.tsdb.max-block-duration=1d")
		// Debian 12's Prometheus has no go_gomaxprocs: its environment says.
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p.Cmd.Process.Pid))
		if err != nil || !slices.Contains(strings.Split(string(env), "\x00"), "GOMAXPROCS=1") {
			t.Fatalf("Prometheus runs without GOMAXPROCS=1: %v", err)
		}
		return p, groups
	}
	stop := func(p *testenv.Prometheus) {
		p.Signal(syscall.SIGTERM)
		p.WaitExited(t, 2*time.Minute, "SIGTERM")
	}
	// writtenSince waits until Prometheus holds one sample of the series
	// per VM recorded since the phase began (the sample's own timestamp):
	// the answer rests on this phase's evaluations, not an earlier one's.
	writtenSince := func(p *testenv.Prometheus, series string, since time.Time) {
		t.Helper()
		q := fmt.Sprintf("count(timestamp(%s) >= %d)", series, since.Unix())
		testenv.Eventually(t, 5*time.Minute, "one "+series+" per VM since "+since.Format(time.TimeOnly), func() (bool, string) {
			r, err := p.Query(context.Background(), q)
			if err != nil || len(r.Data.Result) == 0 {
				return false, fmt.Sprint(err)
			}
			return r.Data.Result[0].Value[1] == strconv.Itoa(vms), fmt.Sprint(r.Data.Result[0].Value[1])
		})
	}

	if exact {
		// Each 7-day figure against the exact one on the same 30 s data,
		// from the 168 summaries the bench wrote: the hourly groups'
		// summaries left out, as an evaluation of theirs now would add a
		// 169th point. The exact figures at end, the newest summary's
		// time: the 168 summaries cover the 7 days before it.
		phase := time.Now()
		p, _ := run("rules-errors", map[string]string{"1h": "30s", "4m": "30s"}, true)
		writtenSince(p, "domain:libvirt_vm_recommended_vcpus:count", phase)
		for _, c := range []struct{ what, approx, exact string }{
			{"p95 of VM CPU utilisation", "domain:libvirt_vm_cpu_utilisation:p95_7d", "quantile_over_time(0.95, domain:libvirt_vm_cpu_utilisation_running:rate5m[7d])"},
			{"p95 of VM cores used", "domain:libvirt_vm_cpu_cores_used:p95_7d", "quantile_over_time(0.95, domain:libvirt_vm_cpu_cores_used_running:rate5m[7d])"},
			{"max of VM memory used", "domain:libvirt_vm_memory_used:max_7d", "max_over_time(domain:libvirt_vm_memory_used_running:bytes[7d])"},
			{"share of 7 days running", "domain:libvirt_vm_running:ratio_7d", "avg_over_time(domain:libvirt_vm_running:bool[7d])"},
			{"p95 of host CPU utilisation", "instance:node_cpu_utilisation:p95_7d", "quantile_over_time(0.95, instance:node_cpu_utilisation:rate5m[7d])"},
		} {
			at := strings.Replace(c.exact, "[7d]", fmt.Sprintf("[7d] @ %d", end.Unix()), 1)
			q := fmt.Sprintf("max(abs(%s - %s) / abs(%s))", c.approx, at, at)
			var r *testenv.QueryResult
			testenv.Eventually(t, 5*time.Minute, "the 7-day figure "+c.approx, func() (bool, string) {
				var err error
				r, err = p.Query(context.Background(), q)
				return err == nil && len(r.Data.Result) > 0, fmt.Sprint(err)
			})
			rel, _ := strconv.ParseFloat(r.Data.Result[0].Value[1].(string), 64)
			fleet.add("largest error of "+c.what+" (7 days from hourly summaries against the exact figure)", strconv.FormatFloat(rel*100, 'f', 2, 64)+" %")
		}
		stop(p)
	}

	hourlyEvery := hourlyBenchInterval(vms)
	phase := time.Now()
	p, groups := run("rules-1h", map[string]string{"1h": hourlyEvery}, false)
	hourly := measureCycle(t, prometheusCost(t, p), groups, hourlyEvery)
	writtenSince(p, "domain:libvirt_vm_cpu_cores_used:p95_7d_hourly", phase)
	// How much of its hour of 30 s input a summary read at the end of the
	// window: the input ends when it was written.
	read := queryNumber(t, p.QueryAPI, "avg(count_over_time(domain:libvirt_vm_running:bool[1h])) / 120")
	stop(p)
	phase = time.Now()
	p, groups = run("rules-4m", map[string]string{"4m": "30s"}, false)
	carried := measureCycle(t, prometheusCost(t, p), groups, "30s")
	writtenSince(p, "domain:libvirt_vm_recommended_vcpus:count", phase)

	addCycleRows(fleet, "Prometheus", "Prometheus' CPU time", "last", vms, hourly, carried)
	fleet.add(fmt.Sprintf("Prometheus, %d VMs: share of an hour of 30 s input the hourly summaries read at the end of the window (the input ends when the bench wrote it)", vms),
		strconv.FormatFloat(read*100, 'f', 0, 64)+" %")
	fleet.add(fmt.Sprintf("input written for %d VMs (samples, time)", vms), fmt.Sprintf("%d, %s", samples, written.Round(time.Second)))
}

// hourlyBenchInterval is how often the bench evaluates the hourly groups:
// every 3 minutes from 10,000 VMs (an evaluation takes about a minute at
// 50,000), every 30 s for a small fleet. The CPU time of an evaluation
// does not depend on the interval.
func hourlyBenchInterval(vms int) string {
	if vms >= 10000 {
		return "3m"
	}
	return "30s"
}

// groups1h and groups4m are the shipped groups with an interval of their
// own, by interval; benchRules checks the rule files still hold them.
var (
	groups1h = []string{"vmhost-daynight-1h.rules", "vmhost-host-1h.rules", "vmhost-vm-1h.rules"}
	groups4m = []string{"vmhost-daynight-7d.rules", "vmhost-host-7d.rules", "vmhost-vm-7d.rules"}
)

// benchRules copies into a directory named name the shipped groups whose
// interval is a key of intervals, with the interval set to its value, and
// no other group: what a ruler spends on the 7-day figures, the cost the
// 10 % target is about (the 30 s recording rules and the alerts cost the
// same with or without them). Leaving groups out rather than giving them
// a long interval keeps the measurement independent of when an engine
// first runs a group (Prometheus and vmalert both spread the first run
// over the interval). withoutSummaries leaves out the hourly summaries
// (the rules recording *_1h), so that the 7-day figures read only those
// the bench wrote.
func benchRules(t *testing.T, name string, intervals map[string]string, withoutSummaries bool) (dir string, groups []string) {
	dir = filepath.Join(testenv.SharedTempDir(t), name)
	byInterval := map[string][]string{}
	testenv.CopyRules(t, dir, func(g *testenv.RuleGroup) bool {
		byInterval[g.Interval] = append(byInterval[g.Interval], g.Name)
		every, ok := intervals[g.Interval]
		if !ok {
			return false
		}
		g.Interval = every
		if withoutSummaries {
			g.DropHourlySummaries()
		}
		groups = append(groups, g.Name)
		return true
	})
	for interval, want := range map[string][]string{"1h": groups1h, "4m": groups4m} {
		got := byInterval[interval]
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("the shipped groups with interval: %s are %q, want %q: the bench reports these by name", interval, got, want)
		}
	}
	slices.Sort(groups)
	return dir, groups
}

// engineCost reads what a ruler has spent: the CPU time of its servers
// so far, per group the evaluations so far and the wall time of one
// (zero before the first has finished), and the evaluations missed.
type engineCost func() (cpu float64, groups map[string]evaluations, missed float64)

// evaluations: how many have started (on the group's schedule, so that
// a window of two intervals holds two), the wall time of one, and where
// the engine reports them (vmalert) how many have finished and the sum of
// their wall times.
type evaluations struct{ count, wall, done, sum float64 }

// cycleCost is what one cycle of a set of groups cost: the CPU time of
// one evaluation of each, their wall times and the evaluations missed.
type cycleCost struct {
	cpu    float64
	groups map[string]evaluations
	missed float64
}

// measureCycle waits until every group has been evaluated once (the
// first evaluation reads a cold cache and starts at an engine's chosen
// offset), then measures the CPU time over two whole intervals and
// halves it. Every group runs once an interval, so the window holds two
// evaluations of each: one under way when the window opens is completed
// by the one under way when it closes. The servers' idle work counts too.
func measureCycle(t *testing.T, cost engineCost, groups []string, every string) cycleCost {
	t.Helper()
	interval, err := time.ParseDuration(every)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Minute, "an evaluation of "+strings.Join(groups, ", "), func() (bool, string) {
		_, seen, _ := cost()
		done := 0
		for _, g := range groups {
			if seen[g].wall > 0 {
				done++
			}
		}
		return done == len(groups), fmt.Sprint(seen)
	})
	cpu0, seen0, missed0 := cost()
	// The measurement window itself, not a wait for a condition: two of
	// the groups' intervals.
	time.Sleep(2 * interval)
	cpu1, seen1, missed1 := cost()
	for _, g := range groups {
		e := seen1[g]
		n := e.count - seen0[g].count
		if n != 2 {
			t.Errorf("%s: %g evaluations in two intervals, want 2: the CPU time is not one evaluation of each", g, n)
		}
		if done := e.done - seen0[g].done; e.sum > 0 && done > 0 { // the mean over the window, not the cold first one
			e.wall = (e.sum - seen0[g].sum) / done
			seen1[g] = e
		}
	}
	if missed1 > missed0 {
		t.Errorf("%g evaluations missed in the window: the CPU time is not one evaluation of each", missed1-missed0)
	}
	return cycleCost{cpu: (cpu1 - cpu0) / 2, groups: seen1, missed: missed1}
}

// addCycleRows reports what an engine's hourly and 4-minute groups cost;
// cpu names whose CPU time it is, wall which evaluation's wall time.
func addCycleRows(fleet *report, engine, cpu, wall string, vms int, hourly, carried cycleCost) {
	fleet.add(fmt.Sprintf("%s, %d VMs: one evaluation of each hourly group (the hour's summaries, then the 7-day figures): %s, wall (%s)", engine, vms, strings.Join(groups1h, ", "), wall),
		hourly.walls(groups1h))
	fleet.add(fmt.Sprintf("%s, %d VMs: %s per evaluation of the hourly groups, and its share of their 1-hour interval", engine, vms, cpu),
		hourly.share(time.Hour))
	fleet.add(fmt.Sprintf("%s, %d VMs: one evaluation of each 4-minute group (the 7-day figures at any instant): %s, wall (%s)", engine, vms, strings.Join(groups4m, ", "), wall),
		carried.walls(groups4m))
	fleet.add(fmt.Sprintf("%s, %d VMs: %s per evaluation of the 4-minute groups, and its share of their 4-minute interval", engine, vms, cpu),
		carried.share(4*time.Minute))
	fleet.add(fmt.Sprintf("%s, %d VMs: %s for the 7-day figures per hour as shipped (one evaluation of the hourly groups, 15 of the 4-minute ones), and its share of one core", engine, vms, cpu),
		perHour(hourly, carried))
	fleet.add(fmt.Sprintf("%s, %d VMs: evaluations missed (longer than the interval)", engine, vms),
		strconv.FormatFloat(hourly.missed+carried.missed, 'f', 0, 64))
}

// walls lists each group's wall time of one evaluation.
func (c cycleCost) walls(groups []string) string {
	var out []string
	for _, g := range groups {
		out = append(out, strconv.FormatFloat(c.groups[g].wall, 'f', 3, 64)+" s")
	}
	return strings.Join(out, ", ")
}

// share is the CPU time of one cycle and its share of interval.
func (c cycleCost) share(interval time.Duration) string {
	return fmt.Sprintf("%.2f s, %.2f %%", c.cpu, c.cpu/interval.Seconds()*100)
}

// perHour is the CPU time the 7-day figures cost an hour as shipped: one
// evaluation of the hourly groups and 15 of the 4-minute ones.
func perHour(hourly, carried cycleCost) string {
	cpu := hourly.cpu + 15*carried.cpu
	return fmt.Sprintf("%.1f s, %.2f %%", cpu, cpu/3600*100)
}

// queryNumber is a query's single number.
func queryNumber(t *testing.T, api testenv.QueryAPI, q string) float64 {
	t.Helper()
	r, err := api.Query(context.Background(), q)
	if err != nil || len(r.Data.Result) != 1 {
		t.Fatalf("%s: %v %+v", q, err, r)
	}
	v, err := strconv.ParseFloat(fmt.Sprint(r.Data.Result[0].Value[1]), 64)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

// prometheusCost reads Prometheus' own metrics: an evaluation counts
// when it starts (iterations_total counts the missed ones too), its wall
// time is the group's last.
func prometheusCost(t *testing.T, p *testenv.Prometheus) engineCost {
	return func() (float64, map[string]evaluations, float64) {
		mf := testenv.Scrape(t, p.URL+"/metrics")
		groups := map[string]evaluations{}
		missed := 0.0
		each := func(family string, f func(e *evaluations, v float64)) {
			for _, m := range mf[family].GetMetric() {
				g := groupName(labelOf(m.GetLabel(), "rule_group"))
				e := groups[g]
				f(&e, m.GetCounter().GetValue()+m.GetGauge().GetValue())
				groups[g] = e
			}
		}
		each("prometheus_rule_group_iterations_total", func(e *evaluations, v float64) { e.count += v })
		each("prometheus_rule_group_iterations_missed_total", func(e *evaluations, v float64) { e.count -= v; missed += v })
		each("prometheus_rule_group_last_duration_seconds", func(e *evaluations, v float64) { e.wall = v })
		return mf["process_cpu_seconds_total"].GetMetric()[0].GetCounter().GetValue(), groups, missed
	}
}

// groupName is a rule_group label's group: "file;name".
func groupName(label string) string {
	return label[strings.LastIndex(label, ";")+1:]
}

func labelOf(ls []*dto.LabelPair, name string) string {
	for _, l := range ls {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// TestFleetRuleCost runs only the 7-day rule benchmarks of make bench (at
// 1,000 VMs with the errors against the exact figures, and at 50,000 VMs,
// on Prometheus, then on VictoriaMetrics and vmalert), for a change to the
// rules: VMHOST_BENCH_FLEET=1 go test -run TestFleetRuleCost -v ./bench/;
// one of them: -run 'TestFleetRuleCost/fleet-7d-vmalert$' (1,000 VMs,
// a few minutes) or 'TestFleetRuleCost/fleet-7d-vmalert-50000'.
func TestFleetRuleCost(t *testing.T) {
	if os.Getenv("VMHOST_BENCH_FLEET") == "" {
		t.Skip("VMHOST_BENCH_FLEET=1 runs it")
	}
	fleet := &report{header: []string{"fleet sizing (docs/fleet.md)", "measured"}}
	t.Run("fleet-7d-rules", func(t *testing.T) { benchSevenDayRules(t, fleet, 20, 50, true) })
	t.Run("fleet-7d-rules-50000", func(t *testing.T) { benchSevenDayRules(t, fleet, 1000, 50, false) })
	t.Run("fleet-7d-vmalert", func(t *testing.T) { benchSevenDayRulesVMAlert(t, fleet, 20, 50) })
	t.Run("fleet-7d-vmalert-50000", func(t *testing.T) { benchSevenDayRulesVMAlert(t, fleet, 1000, 50) })
	fmt.Println(fleet.markdown())
}
