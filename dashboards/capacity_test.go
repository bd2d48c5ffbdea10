package dashboards

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

const gib = 1 << 30

// fleetHost is a host of the constructed fleet and its VMs.
type fleetHost struct {
	instance, cluster string
	cores             int
	memory            float64 // bytes
	// Hours east of UTC, chosen so that it is now 13:xx (busy hours)
	// or 02:xx (quiet hours) there: the live day/night panel then files
	// the host's CPU under a known label whenever the test runs.
	utcOffset int
	busy      bool
	// The host's typical hourly CPU in its busy (09–18 local) and quiet
	// hours; the hours vary around it and spike to 95 % (hourShape).
	cpuBusy, cpuQuiet float64
	vms               []fleetVM
}

// fleetVM is a running VM: its allocation, and the cores and guest memory
// it used per hour in its host's busy and quiet hours: typical values,
// that the hours vary around and spike from to all its vCPUs (hourShape),
// and the most memory it used, in 2 of the 168 hours (memoryShape).
type fleetVM struct {
	domain                string
	vcpus                 int
	memory                float64 // maximum memory, bytes
	coresBusy, coresQuiet float64
	memoryUsed            float64 // the most guest memory used in an hour, bytes
}

// constructedFleet is the fleet of issue 27, built so that every figure of
// the Capacity dashboard is known:
//
//   - group a: 10 hosts of 16 cores and 64 GiB, two VMs each that use
//     about 2 cores in the busy hours and 0.25 at night (p95 over the 168
//     hours: 0.35 × 2 + 0.65 × 2.12 = 2.078, between the two highest hours
//     short of the 5 % of spikes; max: the spikes, mean: far below):
//     41.56 cores of demand against 16 × 60 % = 9.6 cores a host, so 5
//     hosts plus one spare, 6 needed and 4 could go; memory (at most
//     2.5 GiB a VM, 50 GiB against 51.2 GiB a host) needs 1. The hosts run
//     at about 70 % in the busy hours and 5 % in the quiet ones. VM web<i>
//     has 3+i vCPUs and 4+i GiB, db<i> 4 vCPUs and 4 GiB; recommended are
//     3 vCPUs (ceil(2.078 / 0.70)) and 3.25 GiB (2.5 GiB / 0.80 rounded up
//     to 256 MiB), so web<i> gives back i vCPUs and i + 0.75 GiB, db<i>
//     1 vCPU and 0.75 GiB. With the max instead of the p95 they would
//     need all their vCPUs; with the mean, the room per host would differ.
//   - group b: 2 hosts of 8 cores and 32 GiB, about 40 % day and night,
//     two VMs each using about 0.75 cores (p95 0.787) and at most 10 GiB:
//     memory (40 GiB against 25.6 GiB a host) needs 2 hosts plus the
//     spare, 3 needed, one missing. The VMs are sized to their
//     recommendation (2 vCPUs, 12.5 GiB) and give nothing back, so the
//     20 VMs to shrink first are group a's.
//
// The p95s the panels show are computed by the test from the hourly
// values it writes (quantileOverTime); the counts above are the
// construction's and written out in wantCapacity.
func constructedFleet(now time.Time) []fleetHost {
	offset := func(localHour int) int { return ((localHour-now.UTC().Hour())%24 + 24) % 24 }
	var hosts []fleetHost
	for i := 1; i <= 10; i++ {
		h := fleetHost{instance: fmt.Sprintf("a%02d:9851", i), cluster: "a", cores: 16, memory: 64 * gib,
			busy: i%2 == 0, cpuBusy: 0.70, cpuQuiet: 0.05}
		h.vms = []fleetVM{
			{domain: fmt.Sprintf("web%02d", i), vcpus: 3 + i, memory: float64(4+i) * gib, coresBusy: 2, coresQuiet: 0.25, memoryUsed: 2.5 * gib},
			{domain: fmt.Sprintf("db%02d", i), vcpus: 4, memory: 4 * gib, coresBusy: 2, coresQuiet: 0.25, memoryUsed: 2.5 * gib},
		}
		hosts = append(hosts, h)
	}
	for i := 1; i <= 2; i++ {
		h := fleetHost{instance: fmt.Sprintf("b%02d:9851", i), cluster: "b", cores: 8, memory: 32 * gib,
			busy: i == 1, cpuBusy: 0.40, cpuQuiet: 0.40}
		for _, name := range []string{"app", "file"} {
			h.vms = append(h.vms, fleetVM{domain: fmt.Sprintf("%s%02d", name, i), vcpus: 2, memory: 12.5 * gib, coresBusy: 0.75, coresQuiet: 0.75, memoryUsed: 10 * gib})
		}
		hosts = append(hosts, h)
	}
	for i := range hosts {
		if hosts[i].busy {
			hosts[i].utcOffset = offset(13)
		} else {
			hosts[i].utcOffset = offset(2)
		}
	}
	return hosts
}

// hourShape is an hour's value of a series whose hours are typically
// base and spike to spike, by the hour's local time of day and its
// occurrence in the 7 days (0 the oldest): the hours vary (base, -2.5 %,
// -5 %, -7.5 %), 13:00 of the first day is 6 % and 03:00 of the first
// day 3 % above base, and 8 hours of the 168 (5 %) spike: 12:00 on three
// days (busy hours) and 02:00 on five (quiet hours: a nightly backup).
// The p95 of the 168 hours, of the 63 busy and of the 105 quiet ones
// then interpolates between two different hours short of the spikes: it
// is neither the max (a spike) nor the mean.
func hourShape(base, spike float64, local, occ int) float64 {
	switch {
	case local == 12 && occ < 3, local == 2 && occ < 5:
		return spike
	case local == 13 && occ == 0:
		return base * 1.06
	case local == 3 && occ == 0:
		return base * 1.03
	default:
		return base * (1 - 0.025*float64((local+occ)%4))
	}
}

// memoryShape is an hour's most guest memory used: max in 2 hours of the
// 168 (02:00 on two days), 70–85 % of it in the others, so its p95 is not
// its max.
func memoryShape(maxUsed float64, local, occ int) float64 {
	if local == 2 && occ < 2 {
		return maxUsed
	}
	return maxUsed * (0.7 + 0.05*float64((local+occ)%4))
}

// hourlySummaries calls add for what the hourly groups (interval: 1h)
// would have recorded for the fleet over the last 7 days, in time order:
// 168 hourly points a series, the newest at newest.
func hourlySummaries(fleet []fleetHost, newest time.Time, add func(ts time.Time, v float64, ls labels.Labels)) {
	for k := 167; k >= 0; k-- {
		ts := newest.Add(-time.Duration(k) * time.Hour)
		// The hour of the day recurs every 24 points: this is its
		// occ-th time in the 7 days.
		occ := (167 - k) / 24
		for _, h := range fleet {
			// The hour summarised, (ts-1h, ts], in the host's time zone.
			local := ts.Add(-30*time.Minute + time.Duration(h.utcOffset)*time.Hour).UTC().Hour()
			busy := local >= 9 && local < 18
			hours, cpu := "quiet", hourShape(h.cpuQuiet, 0.95, local, occ)
			if busy {
				hours, cpu = "busy", hourShape(h.cpuBusy, 0.95, local, occ)
			}
			host := []string{"instance", h.instance, "job", "vmhost", "cluster", h.cluster}
			add(ts, cpu, labels.FromStrings(append([]string{"__name__", "instance:node_cpu_utilisation_" + hours + ":avg_1h"}, host...)...))
			for _, vm := range h.vms {
				cores := hourShape(vm.coresQuiet, float64(vm.vcpus), local, occ)
				if busy {
					cores = hourShape(vm.coresBusy, float64(vm.vcpus), local, occ)
				}
				domain := append([]string{"domain", vm.domain}, host...)
				add(ts, 1, labels.FromStrings(append([]string{"__name__", "domain:libvirt_vm_running:avg_1h"}, domain...)...))
				add(ts, cores, labels.FromStrings(append([]string{"__name__", "domain:libvirt_vm_cpu_cores_used:p95_1h"}, domain...)...))
				add(ts, memoryShape(vm.memoryUsed, local, occ), labels.FromStrings(append([]string{"__name__", "domain:libvirt_vm_memory_used:max_1h"}, domain...)...))
				add(ts, cores/float64(vm.vcpus), labels.FromStrings(append([]string{"__name__", "domain:libvirt_vm_cpu_utilisation_" + hours + ":avg_1h"}, domain...)...))
			}
		}
	}
}

// writeHourlySummaries writes the hourly summaries as one TSDB block, for
// Prometheus.
func writeHourlySummaries(t *testing.T, dir string, fleet []fleetHost, newest time.Time) {
	t.Helper()
	t.Setenv("TMPDIR", t.TempDir()) // BlockWriter's head chunks
	w, err := tsdb.NewBlockWriter(slog.New(slog.DiscardHandler), dir, int64(8*24*time.Hour/time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	app := w.Appender(context.Background())
	refs := map[string]storage.SeriesRef{}
	hourlySummaries(fleet, newest, func(ts time.Time, v float64, l labels.Labels) {
		ref, err := app.Append(refs[l.String()], l, ts.UnixMilli(), v)
		if err != nil {
			t.Fatal(err)
		}
		refs[l.String()] = ref
	})
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

// importHourlySummaries sends the hourly summaries to VictoriaMetrics'
// /api/v1/import, a JSON line per series.
func importHourlySummaries(t *testing.T, url string, fleet []fleetHost, newest time.Time) {
	t.Helper()
	type line struct {
		Metric     map[string]string `json:"metric"`
		Values     []float64         `json:"values"`
		Timestamps []int64           `json:"timestamps"`
	}
	lines := map[string]*line{}
	var order []string
	hourlySummaries(fleet, newest, func(ts time.Time, v float64, l labels.Labels) {
		k := l.String()
		if lines[k] == nil {
			lines[k] = &line{Metric: l.Map()}
			order = append(order, k)
		}
		lines[k].Values = append(lines[k].Values, v)
		lines[k].Timestamps = append(lines[k].Timestamps, ts.UnixMilli())
	})
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	for _, k := range order {
		if err := enc.Encode(lines[k]); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Post(url+"/api/v1/import", "application/json", &body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("importing into VictoriaMetrics: %s: %s", resp.Status, msg)
	}
}

// fleetNow serves what the fleet's exporters report now, as they would
// be labelled after relabelling (instance, job, the operator's cluster),
// and the operator's per-host time zone. The idle counters do not
// advance: every host is busy right now, 100 %, the one current CPU
// figure that rate() gives exactly however few samples it has (a
// counter scraped for seconds does not fill a 5-minute window); the
// 7-day figures come from the hourly summaries, not from this.
func fleetNow(fleet []fleetHost) http.Handler {
	var b strings.Builder
	for _, h := range fleet {
		host := fmt.Sprintf(`instance=%q,job="vmhost",cluster=%q`, h.instance, h.cluster)
		fmt.Fprintf(&b, "libvirt_up{%s} 1\n", host)
		fmt.Fprintf(&b, "node_memory_MemTotal_bytes{%s} %g\n", host, h.memory)
		fmt.Fprintf(&b, "vmhost_threshold_override_utc_offset_hours{instance=%q} %d\n", h.instance, h.utcOffset)
		for cpu := range h.cores {
			fmt.Fprintf(&b, "node_cpu_seconds_total{%s,cpu=\"%d\",mode=\"idle\"} 1000\n", host, cpu)
		}
		for _, vm := range h.vms {
			domain := fmt.Sprintf(`%s,domain=%q`, host, vm.domain)
			fmt.Fprintf(&b, "libvirt_domain_info_state{%s,state_desc=\"running\"} 1\n", domain)
			fmt.Fprintf(&b, "libvirt_domain_info_virtual_cpus{%s} %d\n", domain, vm.vcpus)
			fmt.Fprintf(&b, "libvirt_domain_info_maximum_memory_bytes{%s} %g\n", domain, vm.memory)
		}
	}
	body := b.String()
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, body)
	})
}

// quantileOverTime is Prometheus' quantile_over_time by its definition,
// written out here rather than asked of the code under test: the values
// sorted, rank phi × (n − 1), linear interpolation between the values at
// the ranks either side.
func quantileOverTime(phi float64, values []float64) float64 {
	s := slices.Sorted(slices.Values(values))
	rank := phi * float64(len(s)-1)
	lo := math.Floor(rank)
	hi := math.Min(lo+1, float64(len(s)-1))
	w := rank - lo
	return s[int(lo)]*(1-w) + s[int(hi)]*w
}

// hourlyValues are the hourly summaries' values by series, keyed by
// metric name, instance and domain.
func hourlyValues(fleet []fleetHost, newest time.Time) map[string][]float64 {
	out := map[string][]float64{}
	hourlySummaries(fleet, newest, func(_ time.Time, v float64, l labels.Labels) {
		k := l.Get("__name__") + "|" + l.Get("instance") + "|" + l.Get("domain")
		out[k] = append(out[k], v)
	})
	return out
}

// wantCapacity is what each Capacity panel's queries must return on the
// constructed fleet, by panel title, one map per query in the panel's
// order, keyed by seriesKey. The counts are the construction's
// (constructedFleet); the p95s and maxima of the hourly values are
// computed from the values written, by their definitions, and the
// construction is checked to keep p95, max and mean apart, so that a rule
// taking the wrong one fails.
func wantCapacity(t *testing.T, fleet []fleetHost, newest time.Time) map[string][]map[string]float64 {
	t.Helper()
	hourly := hourlyValues(fleet, newest)
	values := func(name, instance, domain string) []float64 {
		v := hourly[name+"|"+instance+"|"+domain]
		if len(v) == 0 {
			t.Fatalf("no hourly values of %s{instance=%q,domain=%q}", name, instance, domain)
		}
		return v
	}
	p95 := func(name, instance, domain string) float64 {
		v := values(name, instance, domain)
		q := quantileOverTime(0.95, v)
		mean := 0.0
		for _, x := range v {
			mean += x / float64(len(v))
		}
		if q == slices.Max(v) || math.Abs(q-mean) < 1e-6 {
			t.Fatalf("%s{instance=%q,domain=%q}: p95 %g, max %g, mean %g: the construction no longer tells them apart", name, instance, domain, q, slices.Max(v), mean)
		}
		return q
	}
	maxOf := func(name, instance, domain string) float64 {
		v := values(name, instance, domain)
		if m := slices.Max(v); m != quantileOverTime(0.95, v) {
			return m
		}
		t.Fatalf("%s{instance=%q,domain=%q}: p95 equals max: the construction no longer tells them apart", name, instance, domain)
		return 0
	}
	want := map[string][]map[string]float64{
		"Hosts needed per group": {
			{"cluster=a": 10, "cluster=b": 2},
			{"cluster=a": 6, "cluster=b": 3},
			{"cluster=a": 4, "cluster=b": -1},
		},
		"Hosts that could go": {{"": 4}},
		"Which resource decides": {{
			"cluster=a,resource=cpu": 5, "cluster=a,resource=memory": 1,
			"cluster=b,resource=cpu": 1, "cluster=b,resource=memory": 2,
		}},
		"Given back by right-sizing": {
			{"cluster=a": 55 + 10, "cluster=b": 0},
			{"cluster=a": (55 + 10*0.75 + 10*0.75) * gib, "cluster=b": 0},
		},
	}
	room := func(title string, a, b func(h fleetHost) float64) {
		want[title] = []map[string]float64{{}, {}}
		for _, h := range fleet {
			// A row per host: "- on (instance)" keeps only instance.
			k := "instance=" + h.instance
			want[title][0][k], want[title][1][k] = a(h), b(h)
		}
	}
	sum := func(h fleetHost, f func(fleetVM) float64) float64 {
		s := 0.0
		for _, vm := range h.vms {
			s += f(vm)
		}
		return s
	}
	room("CPU room per host",
		func(h fleetHost) float64 {
			return 0.6*float64(h.cores) - sum(h, func(vm fleetVM) float64 {
				return p95("domain:libvirt_vm_cpu_cores_used:p95_1h", h.instance, vm.domain)
			})
		},
		func(h fleetHost) float64 {
			return float64(h.cores) - sum(h, func(vm fleetVM) float64 { return float64(vm.vcpus) })
		})
	room("Memory room per host",
		func(h fleetHost) float64 {
			return 0.8*h.memory - sum(h, func(vm fleetVM) float64 {
				return maxOf("domain:libvirt_vm_memory_used:max_1h", h.instance, vm.domain)
			})
		},
		func(h fleetHost) float64 { return h.memory - sum(h, func(vm fleetVM) float64 { return vm.memory }) })

	vcpus, memory := make([]map[string]float64, 3), make([]map[string]float64, 3)
	for i := range 3 {
		vcpus[i], memory[i] = map[string]float64{}, map[string]float64{}
	}
	daynightHosts, daynightVMs, live := map[string]float64{}, map[string]float64{}, map[string]float64{}
	for _, h := range fleet {
		k := "cluster=" + h.cluster + ",instance=" + h.instance
		daynightHosts[k+",hours=busy"] = p95("instance:node_cpu_utilisation_busy:avg_1h", h.instance, "")
		daynightHosts[k+",hours=quiet"] = p95("instance:node_cpu_utilisation_quiet:avg_1h", h.instance, "")
		if h.busy {
			live[k+",hours=busy"] = 1
		} else {
			live[k+",hours=quiet"] = 1
		}
		for _, vm := range h.vms {
			k := "cluster=" + h.cluster + ",instance=" + h.instance + ",domain=" + vm.domain
			daynightVMs[k+",hours=busy"] = p95("domain:libvirt_vm_cpu_utilisation_busy:avg_1h", h.instance, vm.domain)
			daynightVMs[k+",hours=quiet"] = p95("domain:libvirt_vm_cpu_utilisation_quiet:avg_1h", h.instance, vm.domain)
			if h.cluster != "a" { // group b gives nothing back: not in the top 20
				continue
			}
			// Recommended: 3 vCPUs, 3.25 GiB (constructedFleet).
			vcpus[0][k], vcpus[1][k], vcpus[2][k] = float64(vm.vcpus), 3, float64(vm.vcpus)-3
			memory[0][k], memory[1][k], memory[2][k] = vm.memory, 3.25*gib, vm.memory-3.25*gib
		}
	}
	want["VMs to shrink first: vCPUs"] = vcpus
	want["VMs to shrink first: memory"] = memory
	want["Day and night: host CPU"] = []map[string]float64{live}
	want["Day and night over 7 days: hosts"] = []map[string]float64{daynightHosts}
	want["Day and night over 7 days: VMs"] = []map[string]float64{daynightVMs}
	return want
}

// seriesKey names a result by the labels that tell the dashboard's rows
// apart.
func seriesKey(m map[string]string) string {
	var parts []string
	for _, l := range []string{"cluster", "instance", "domain", "resource", "hours"} {
		if v, ok := m[l]; ok {
			parts = append(parts, l+"="+v)
		}
	}
	return strings.Join(parts, ",")
}

// rulesWithoutHourlySummaries copies the shipped rules without the
// summaries of the hourly groups (interval: 1h; the rules recording
// *_1h): the test writes what they would have recorded over 7 days, and an
// evaluation of theirs during the test would add a 169th point from the
// few seconds of live data. The rest of those groups (the 7-day figures
// from the summaries) and every other group run every second: a ruler
// starts a group up to one interval after it loads it, longer than the
// test waits, and the 7-day figures read the same 7 days whenever they
// run. The expectation changed when the 7-day figures moved into the
// hourly groups (they were in groups of their own, evaluated every 4
// minutes): dropping the whole hourly groups would drop them too.
func rulesWithoutHourlySummaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	dropped, sevenDay := 0, 0
	testenv.CopyRules(t, dir, func(g *testenv.RuleGroup) bool {
		if g.Interval == "1h" {
			n := g.DropHourlySummaries()
			dropped += n
			sevenDay += len(g.Rules)
		}
		if g.Interval != "" {
			g.Interval = "1s"
		}
		return true
	})
	if dropped == 0 || sevenDay == 0 {
		t.Fatalf("%d hourly summaries and %d 7-day figures in the hourly groups: write the 30 s series instead of their summaries", dropped, sevenDay)
	}
	return dir
}

// TestCapacityPanelsShowTheConstructedFleet: on a fleet built so that every
// answer is known (constructedFleet), 7 days of its hourly summaries
// backfilled and its current state scraped, each query of the Capacity
// dashboard, as committed, returns exactly the constructed numbers: hosts
// present, needed and surplus per group, the resource that decides, what
// the VMs give back and which 20 VMs to shrink first, each host's room,
// and the day/night profile of hosts and VMs. On Prometheus (the history
// as a TSDB block) and on VictoriaMetrics with vmalert (the history
// through the import API, the state scraped by vmagent), the shipped
// rules evaluated by each.
func TestCapacityPanelsShowTheConstructedFleet(t *testing.T) {
	now := time.Now()
	newest := now.Add(-time.Minute)
	fleet := constructedFleet(now)
	target := httptest.NewServer(fleetNow(fleet))
	t.Cleanup(target.Close)
	scrapeConfigs := `scrape_configs:
  - job_name: fleet
    honor_labels: true
    static_configs:
      - targets: ['` + strings.TrimPrefix(target.URL, "http://") + `']
`
	rules := rulesWithoutHourlySummaries(t)

	var d jsonDashboard
	for file, dash := range loadCommitted(t) {
		if file == "capacity.json" {
			d = dash
		}
	}
	want := wantCapacity(t, fleet, newest)
	type check struct {
		where, expr string
		want        map[string]float64
	}
	var checks []check
	for _, panel := range d.Panels {
		w, ok := want[panel.Title]
		if !ok {
			t.Errorf("panel %q: no constructed answer; add one to wantCapacity", panel.Title)
			continue
		}
		if len(w) != len(panel.Targets) {
			t.Errorf("panel %q: %d queries, %d constructed answers", panel.Title, len(panel.Targets), len(w))
			continue
		}
		delete(want, panel.Title)
		for i, target := range panel.Targets {
			checks = append(checks, check{fmt.Sprintf("%s, query %c", panel.Title, 'A'+i), substitute(target.Expr), w[i]})
		}
	}
	for title := range want {
		t.Errorf("no panel %q in capacity.json", title)
	}
	if t.Failed() {
		return
	}

	for _, engine := range []struct {
		name  string
		start func(t *testing.T) testenv.QueryAPI
	}{
		{"Prometheus", func(t *testing.T) testenv.QueryAPI {
			dir := t.TempDir()
			writeHourlySummaries(t, dir, fleet, newest)
			return testenv.StartPrometheusOn(t, dir, "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - "+rules+"/*.yml\n"+scrapeConfigs).QueryAPI
		}},
		{"VictoriaMetrics", func(t *testing.T) testenv.QueryAPI {
			vm := testenv.StartVictoriaMetricsStorage(t, filepath.Join(t.TempDir(), "data"), "-retentionPeriod=31d", "-search.disableCache")
			importHourlySummaries(t, vm.URL, fleet, newest)
			testenv.StartVMAgent(t, vm.URL, "global:\n  scrape_interval: 1s\n"+scrapeConfigs)
			testenv.StartVMAlert(t, vm.URL, rules+"/*.yml", time.Second, "-remoteWrite.flushInterval=1s")
			return vm
		}},
	} {
		t.Run(engine.name, func(t *testing.T) {
			api := engine.start(t)
			// The rules chain through several groups: wait until every
			// query answers as constructed, then report what differs.
			testenv.Eventually(t, 2*time.Minute, "every Capacity panel showing the constructed fleet", func() (bool, string) {
				if engine.name == "VictoriaMetrics" {
					// Searchable now, not after the storage's next flush.
					if resp, err := http.Get(api.URL + "/internal/force_flush"); err == nil {
						resp.Body.Close()
					}
				}
				var wrong []string
				for _, c := range checks {
					r, err := api.Query(context.Background(), c.expr)
					if err != nil {
						return false, err.Error()
					}
					got := map[string]float64{}
					for _, s := range r.Data.Result {
						v, err := strconv.ParseFloat(fmt.Sprint(s.Value[1]), 64)
						if err != nil {
							return false, err.Error()
						}
						got[seriesKey(s.Metric)] = v
					}
					if diff := compareSeries(got, c.want); diff != "" {
						wrong = append(wrong, c.where+": "+diff)
					}
				}
				return len(wrong) == 0, strings.Join(wrong, "\n")
			})
		})
	}
}

// compareSeries says how got differs from want, values compared to 1e-9
// of their size (a quantile of equal values interpolates in floating
// point), or "" when they agree.
func compareSeries(got, want map[string]float64) string {
	var diff []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[k]
		switch {
		case !ok:
			diff = append(diff, fmt.Sprintf("missing {%s} (want %g)", k, want[k]))
		case math.Abs(g-want[k]) > 1e-9*math.Max(1, math.Abs(want[k])):
			diff = append(diff, fmt.Sprintf("{%s} = %g, want %g", k, g, want[k]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			diff = append(diff, fmt.Sprintf("unexpected {%s} = %g", k, got[k]))
		}
	}
	return strings.Join(diff, "; ")
}
