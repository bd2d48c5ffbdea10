package bench

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
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

// sevenDayInputs are the recorded series the 7-day groups read, per VM and
// per host.
var sevenDayInputs = struct{ vm, host []string }{
	vm: []string{"domain:libvirt_vm_running:bool", "domain:libvirt_vm_cpu_utilisation_running:rate5m",
		"domain:libvirt_vm_cpu_cores_used_running:rate5m", "domain:libvirt_vm_memory_utilisation_running:ratio",
		"domain:libvirt_vm_memory_used_running:bytes"},
	host: []string{"instance:node_cpu_utilisation:rate5m", "instance:node_memory_utilisation:ratio"},
}

// benchSevenDayRules writes seven days of the 7-day groups' inputs for
// hosts × perHost VMs, at the example configuration's 30 s evaluation
// interval, as TSDB blocks (one a day); starts Debian's Prometheus on them
// with the shipped rules; and reports how long one evaluation of each
// 7-day group takes.
func benchSevenDayRules(t *testing.T, fleet *report, hosts, perHost int) {
	const step = 30 * time.Second
	dir := filepath.Join(testenv.SharedTempDir(t), "tsdb")
	end := time.Now().Truncate(step)
	begin := end.Add(-7*24*time.Hour - time.Hour)
	t.Setenv("TMPDIR", testenv.SharedTempDir(t)) // BlockWriter's head chunks
	start := time.Now()
	samples := 0
	for day := begin; day.Before(end); day = day.Add(24 * time.Hour) {
		dayEnd := day.Add(24 * time.Hour)
		if dayEnd.After(end) {
			dayEnd = end
		}
		w, err := tsdb.NewBlockWriter(slog.New(slog.DiscardHandler), dir, int64(24*time.Hour/time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		var series []labels.Labels
		for h := range hosts {
			instance := fmt.Sprintf("host%03d:9851", h)
			for _, name := range sevenDayInputs.host {
				series = append(series, labels.FromStrings("__name__", name, "instance", instance, "job", "vmhost"))
			}
			for v := range perHost {
				for _, name := range sevenDayInputs.vm {
					series = append(series, labels.FromStrings("__name__", name, "instance", instance, "job", "vmhost", "domain", fmt.Sprintf("vm%03d", v)))
				}
			}
		}
		// In time order: the head accepts samples only near its newest.
		refs := make([]storage.SeriesRef, len(series))
		app := w.Appender(context.Background())
		n := 0
		for ts := day; ts.Before(dayEnd); ts = ts.Add(step) {
			for i, ls := range series {
				// A daily cycle with some noise: quantiles over it cost
				// what real data costs.
				x := float64(ts.Unix())/86400*2*math.Pi + float64(i)
				v := 0.4 + 0.3*math.Sin(x) + 0.05*math.Sin(float64(ts.Unix()%977))
				ref, err := app.Append(refs[i], ls, ts.UnixMilli(), v)
				if err != nil {
					t.Fatal(err)
				}
				refs[i] = ref
				samples++
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

	rules := filepath.Join(testenv.RepoRoot(), "rules")
	p := testenv.StartPrometheusOn(t, dir, `global:
  scrape_interval: 30s
  evaluation_interval: 30s
rule_files:
  - `+rules+`/*.yml
`, "--storage.tsdb.retention.time=30d", "--storage.tsdb.min-block-duration=1d", "--storage.tsdb.max-block-duration=1d")
	durations := map[string]float64{}
	testenv.Eventually(t, 10*time.Minute, "two evaluations of the 7-day groups", func() (bool, string) {
		mf := testenv.Scrape(t, p.URL+"/metrics")
		done := 0
		for _, g := range []string{"vmhost-vm-7d.rules", "vmhost-host-7d.rules"} {
			for _, m := range mf["prometheus_rule_group_iterations_total"].GetMetric() {
				if strings.HasSuffix(labelOf(m.GetLabel(), "rule_group"), ";"+g) && m.GetCounter().GetValue() >= 2 {
					done++
				}
			}
			for _, m := range mf["prometheus_rule_group_last_duration_seconds"].GetMetric() {
				if strings.HasSuffix(labelOf(m.GetLabel(), "rule_group"), ";"+g) {
					durations[g] = m.GetGauge().GetValue()
				}
			}
		}
		return done == 2, fmt.Sprint(durations)
	})
	// The answer must rest on the data: one recommendation per VM.
	r, err := p.Query(context.Background(), "count(domain:libvirt_vm_recommended_vcpus:count)")
	if err != nil || len(r.Data.Result) == 0 {
		t.Fatalf("no recommendations from the 7-day data: %v %+v", err, r)
	}
	vms := hosts * perHost
	fleet.add(fmt.Sprintf("one evaluation of vmhost-vm-7d.rules, %d VMs × 7 days at 30 s (%d recommendations)", vms, vms),
		strconv.FormatFloat(durations["vmhost-vm-7d.rules"], 'f', 2, 64)+" s")
	fleet.add(fmt.Sprintf("one evaluation of vmhost-host-7d.rules, %d hosts", hosts),
		strconv.FormatFloat(durations["vmhost-host-7d.rules"]*1000, 'f', 1, 64)+" ms")
	fleet.add("7-day input written for it (samples, time)", fmt.Sprintf("%d, %s", samples, written.Round(time.Second)))
}

func labelOf(ls []*dto.LabelPair, name string) string {
	for _, l := range ls {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
