package bench

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// seriesSamples is what benchSevenDayRules writes for the series at index
// i of fleetSeries, one series at a time: the 30 s input from fullFrom to
// end and the hourly summaries of [begin, end), each of the 30 s samples
// of the hour before it or, before fullFrom, of the same cycle.
func seriesSamples(s inputSeries, i int, begin, end, fullFrom time.Time, input, hourly func(ts time.Time, v float64)) {
	const step = 30 * time.Second
	var hour []float64
	for ts := begin; ts.Before(end); ts = ts.Add(step) {
		if ts.Truncate(time.Hour).Equal(ts) && ts.After(begin) {
			v := sample(ts, i)
			if len(hour) > 0 {
				v = s.summary(hour)
			}
			hourly(ts, v)
			hour = hour[:0]
		}
		if !ts.Before(fullFrom) {
			v := sample(ts, i)
			input(ts, v)
			hour = append(hour, v)
		}
	}
}

// importSeries sends the bench's input for the series to VictoriaMetrics'
// /api/v1/import (a JSON line per series), gzipped and streamed, and
// returns the number of samples sent.
func importSeries(t *testing.T, url string, all []inputSeries, begin, end, fullFrom time.Time) int {
	pr, pw := io.Pipe()
	counted := make(chan int, 1)
	go func() {
		samples := 0
		defer func() { counted <- samples }()
		gz := gzip.NewWriter(pw)
		w := bufio.NewWriterSize(gz, 1<<20)
		line := func(ls labels.Labels, ts []int64, vs []float64) error {
			if len(ts) == 0 {
				return nil
			}
			metric, err := json.Marshal(ls.Map())
			if err != nil {
				return err
			}
			b := append([]byte(`{"metric":`), metric...)
			b = append(b, `,"values":[`...)
			for j, v := range vs {
				if j > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendFloat(b, v, 'g', -1, 64)
			}
			b = append(b, `],"timestamps":[`...)
			for j, x := range ts {
				if j > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendInt(b, x, 10)
			}
			b = append(b, "]}\n"...)
			samples += len(ts)
			_, err = w.Write(b)
			return err
		}
		var err error
		for i, s := range all {
			var its, hts []int64
			var ivs, hvs []float64
			seriesSamples(s, i, begin, end, fullFrom,
				func(ts time.Time, v float64) { its, ivs = append(its, ts.UnixMilli()), append(ivs, v) },
				func(ts time.Time, v float64) { hts, hvs = append(hts, ts.UnixMilli()), append(hvs, v) })
			if err = line(s.input, its, ivs); err != nil {
				break
			}
			if err = line(s.hourly, hts, hvs); err != nil {
				break
			}
		}
		if err == nil {
			err = w.Flush()
		}
		if err == nil {
			err = gz.Close()
		}
		pw.CloseWithError(err)
	}()
	req, err := http.NewRequest(http.MethodPost, url+"/api/v1/import", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("importing into VictoriaMetrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("importing into VictoriaMetrics: %s: %s", resp.Status, body)
	}
	return <-counted
}

// benchSevenDayRulesVMAlert is benchSevenDayRules on VictoriaMetrics: the
// same input (the hourly summaries of 7 days and the last 70 minutes at
// 30 s; the errors against the exact figures are the Prometheus run's,
// they depend on the rules, not the engine) imported into Debian's
// victoria-metrics, and vmalert evaluating the shipped groups with an
// interval of their own on it, the hourly ones alone, then the 4-minute
// ones alone. Both servers run with GOMAXPROCS=1, so the rules get one
// core (of the storage, which runs the queries, and of vmalert), and the
// storage's cache is off: every evaluation reads its 7 days again. It
// reports the wall time of one evaluation of each group
// (vmalert_iteration_duration_seconds, the mean) and the CPU time the two
// servers spend per evaluation of each set (process_cpu_seconds_total),
// which a busy machine does not inflate.
func benchSevenDayRulesVMAlert(t *testing.T, fleet *report, hosts, perHost int) {
	t.Setenv("GOMAXPROCS", "1") // inherited by the servers started below
	vms := hosts * perHost
	end := time.Now().Truncate(30 * time.Second)
	begin := end.Truncate(time.Hour).Add(-7*24*time.Hour - time.Hour)
	fullFrom := end.Add(-time.Hour - 10*time.Minute)
	all := fleetSeries(hosts, perHost)

	vm := testenv.StartVictoriaMetricsStorage(t, filepath.Join(testenv.SharedTempDir(t), fmt.Sprintf("vm-%d", vms)),
		"-retentionPeriod=31d", "-search.disableCache", "-search.maxQueryDuration=10m",
		"-search.maxUniqueTimeseries=10000000", "-search.maxSamplesPerQuery=10000000000")
	start := time.Now()
	samples := importSeries(t, vm.URL, all, begin, end, fullFrom)
	// Searchable once the storage has flushed what it buffers.
	ctx := context.Background()
	testenv.Eventually(t, 10*time.Minute, "the imported series searchable", func() (bool, string) {
		_, _ = http.Get(vm.URL + "/internal/force_flush")
		r, err := vm.Query(ctx, "count(count_over_time(domain:libvirt_vm_running:avg_1h[8d]))")
		if err != nil || len(r.Data.Result) == 0 {
			return false, fmt.Sprint(err)
		}
		return r.Data.Result[0].Value[1] == strconv.Itoa(vms), fmt.Sprint(r.Data.Result[0].Value[1])
	})
	written := time.Since(start)
	defer func() { t.Log("\n" + fleet.markdown()) }() // the rows so far, should a later part fail
	// The storage merges what it imported in the background: measure
	// after it has finished, or its merges would count as the rules' cost.
	testenv.Eventually(t, 30*time.Minute, "VictoriaMetrics' merges of the import finished", func() (bool, string) {
		active := 0.0
		for _, m := range testenv.Scrape(t, vm.URL+"/metrics")["vm_active_merges"].GetMetric() {
			active += m.GetUntyped().GetValue() + m.GetGauge().GetValue()
		}
		return active == 0, fmt.Sprintf("%g active merges", active)
	})

	// The hourly groups record 14 series per VM an evaluation: a queue
	// for all of them, so that none is dropped at 50,000 VMs.
	queue := []string{"-remoteWrite.maxQueueSize=5000000", "-remoteWrite.maxBatchSize=10000", "-remoteWrite.flushInterval=1s"}
	hourlyEvery := hourlyBenchInterval(vms)
	phase := time.Now()
	rules, groups := benchRules(t, fmt.Sprintf("vmalert-rules-1h-%d", vms), map[string]string{"1h": hourlyEvery}, false)
	proc, alert := testenv.StartVMAlertProcess(t, vm.URL, rules+"/*.yml", 30*time.Second, queue...)
	hourly := measureCycle(t, vmalertCost(t, vm, alert), groups, hourlyEvery)
	vmalertHealthy(t, alert)
	writtenAfter(t, vm, "domain:libvirt_vm_cpu_cores_used:p95_7d_hourly", vms, float64(phase.Unix()))
	read := queryNumber(t, vm, "avg(count_over_time(domain:libvirt_vm_running:bool[1h])) / 120")
	proc.Signal(syscall.SIGTERM)
	proc.WaitExited(t, 2*time.Minute, "SIGTERM")
	phase = time.Now()
	rules, groups = benchRules(t, fmt.Sprintf("vmalert-rules-4m-%d", vms), map[string]string{"4m": "30s"}, false)
	_, alert = testenv.StartVMAlertProcess(t, vm.URL, rules+"/*.yml", 30*time.Second, queue...)
	carried := measureCycle(t, vmalertCost(t, vm, alert), groups, "30s")
	vmalertHealthy(t, alert)
	writtenAfter(t, vm, "domain:libvirt_vm_recommended_vcpus:count", vms, float64(phase.Unix()))

	addCycleRows(fleet, "vmalert", "CPU time of victoria-metrics and vmalert", "mean over the window", vms, hourly, carried)
	fleet.add(fmt.Sprintf("vmalert, %d VMs: share of an hour of 30 s input the hourly summaries read at the end of the window (the input ends when the bench wrote it)", vms),
		strconv.FormatFloat(read*100, 'f', 0, 64)+" %")
	fleet.add(fmt.Sprintf("vmalert: input imported for %d VMs (samples, time)", vms), fmt.Sprintf("%d, %s", samples, written.Round(time.Second)))
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		fleet.add("vmalert: load average at the end (1, 5, 15 min)", strings.Join(strings.Fields(string(load))[:3], ", "))
	}
}

// vmalertCost reads vmalert's and the storage's metrics: the CPU time of
// both servers (each must run with GOMAXPROCS=1), per group the started
// and finished evaluations and their mean wall time, and the missed ones.
func vmalertCost(t *testing.T, vm testenv.QueryAPI, alert string) engineCost {
	value := func(m *dto.Metric) float64 {
		return m.GetUntyped().GetValue() + m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return func() (float64, map[string]evaluations, float64) {
		cpu := 0.0
		for _, url := range []string{vm.URL, alert} {
			mf := testenv.Scrape(t, url+"/metrics")
			if m := mf["go_gomaxprocs"].GetMetric(); len(m) != 1 || value(m[0]) != 1 {
				t.Fatalf("%s runs with go_gomaxprocs %v, want 1", url, m)
			}
			for _, m := range mf["process_cpu_seconds_total"].GetMetric() {
				cpu += value(m)
			}
		}
		mf := testenv.Scrape(t, alert+"/metrics")
		groups := map[string]evaluations{}
		sums := map[string]float64{}
		for _, m := range mf["vmalert_iteration_duration_seconds_sum"].GetMetric() {
			sums[labelOf(m.GetLabel(), "group")] = value(m)
		}
		// Finished evaluations and their time; the count of started
		// ones below: an evaluation's end moves with its duration, its
		// start keeps to the schedule.
		for _, m := range mf["vmalert_iteration_duration_seconds_count"].GetMetric() {
			g := labelOf(m.GetLabel(), "group")
			if n := value(m); n > 0 {
				groups[g] = evaluations{done: n, wall: sums[g] / n, sum: sums[g]}
			}
		}
		for _, m := range mf["vmalert_iteration_total"].GetMetric() {
			g := labelOf(m.GetLabel(), "group")
			e := groups[g]
			e.count = value(m)
			groups[g] = e
		}
		missed := 0.0
		for _, m := range mf["vmalert_iteration_missed_total"].GetMetric() {
			missed += value(m)
		}
		return cpu, groups, missed
	}
}

// vmalertHealthy fails when an evaluation failed or lost results
// (vmalert 1.79's names), and when the families are missing, so that this
// check can fail.
func vmalertHealthy(t *testing.T, alert string) {
	t.Helper()
	mf := testenv.Scrape(t, alert+"/metrics")
	for _, family := range []string{"vmalert_execution_errors_total", "vmalert_recording_rules_error",
		"vmalert_remotewrite_errors_total", "vmalert_remotewrite_dropped_rows_total"} {
		if len(mf[family].GetMetric()) == 0 {
			t.Errorf("vmalert reports no %s", family)
		}
		for _, m := range mf[family].GetMetric() {
			if v := m.GetUntyped().GetValue() + m.GetCounter().GetValue() + m.GetGauge().GetValue(); v > 0 {
				t.Errorf("%s %v = %g: an evaluation failed or lost results", family, m.GetLabel(), v)
			}
		}
	}
}

// writtenAfter waits until VictoriaMetrics holds one sample of the
// series per VM newer than after (Unix seconds): the answer rests on the
// phase that began then. A sample's own timestamp (tlast_over_time), not
// a window ending now: a window could reach results an earlier vmalert
// wrote.
func writtenAfter(t *testing.T, vm testenv.QueryAPI, series string, vms int, after float64) {
	t.Helper()
	testenv.Eventually(t, 5*time.Minute, "one "+series+" per VM in VictoriaMetrics", func() (bool, string) {
		_, _ = http.Get(vm.URL + "/internal/force_flush")
		r, err := vm.Query(context.Background(), fmt.Sprintf("count(tlast_over_time(%s[1h]) > %f)", series, after))
		if err != nil || len(r.Data.Result) == 0 {
			return false, fmt.Sprint(err)
		}
		return r.Data.Result[0].Value[1] == strconv.Itoa(vms), fmt.Sprint(r.Data.Result[0].Value[1])
	})
}
