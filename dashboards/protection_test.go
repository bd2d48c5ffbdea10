package dashboards

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

const (
	hour = 3600.0
	day  = 24 * hour
)

// protectionState serves what two hosts' exporters report, as relabelled
// (instance, job), with every timestamp taken back from t0, built so that
// each cell of the VM protection dashboard is known (wantProtection):
//
//   - h1 has four jobs with different max_age: kvm-nightly (26h),
//     kvm-weekly (8d), s3-nightly (rclone, copies kvm-nightly, 48h) and
//     restore-test (35d), and five VMs: web1 (nightly, 13h ago), app1
//     (nightly 30h ago, over its 26h, and weekly 2 days ago, within its
//     8d: the freshest job decides), db1 (weekly only, 9 days ago, two
//     disks missing from the newest set, a 8-day-old snapshot), mail1
//     (nightly 20h ago, every copy offsite) and never1 (shut off, in no
//     backup). old1, deleted from the host, is still in the sets: it has
//     copies, an overdue offsite copy and a missing disk, and no row.
//   - h2 has one job named like h1's nightly one but with max_age 8d, no
//     sync or restore job, and a VM named like h1's web1 whose snapshot
//     is judged against h2's own threshold of 2 days.
func protectionState(t0 float64) http.Handler {
	var b strings.Builder
	series := func(name, labels string, v float64) {
		fmt.Fprintf(&b, "%s{%s} %s\n", name, labels, strconv.FormatFloat(v, 'f', -1, 64))
	}
	host := func(instance string) string { return fmt.Sprintf(`instance=%q,job="vmhost"`, instance) }
	vm := func(h, domain string, state int) {
		series("libvirt_domain_info", fmt.Sprintf(`%s,domain=%q,os_type="hvm"`, h, domain), 1)
		desc := map[int]string{1: "the domain is running", 5: "the domain is shut off"}[state]
		series("libvirt_domain_info_state", fmt.Sprintf(`%s,domain=%q,state_desc=%q`, h, domain, desc), float64(state))
	}
	job := func(h, name, kind string, maxAge, lastSuccess float64) {
		l := fmt.Sprintf(`%s,backup_job=%q`, h, name)
		series("vmhost_backup_job_info", fmt.Sprintf(`%s,backup_type=%q`, l, kind), 1)
		series("vmhost_backup_max_age_seconds", l, maxAge)
		series("vmhost_backup_last_success_timestamp_seconds", l, t0-lastSuccess)
	}
	perVM := func(name, h, job, domain string, v float64) {
		series(name, fmt.Sprintf(`%s,backup_job=%q,domain=%q`, h, job, domain), v)
	}
	copyOf := func(h, job, domain string, age float64, missing int) {
		perVM("vmhost_backup_vm_last_success_timestamp_seconds", h, job, domain, t0-age)
		perVM("vmhost_backup_vm_missing_disks", h, job, domain, float64(missing))
	}
	missingDisk := func(h, job, domain, disk string) {
		series("vmhost_backup_vm_missing_disk_info", fmt.Sprintf(`%s,backup_job=%q,domain=%q,disk=%q`, h, job, domain, disk), 1)
	}
	offsite := func(h, domain string, newestOffsite, oldestPending float64) {
		perVM("vmhost_backup_vm_offsite_timestamp_seconds", h, "s3-nightly", domain, t0-newestOffsite)
		if oldestPending > 0 {
			perVM("vmhost_backup_vm_offsite_pending_timestamp_seconds", h, "s3-nightly", domain, t0-oldestPending)
		}
	}
	snapshot := func(h, domain string, age float64) {
		series("libvirt_domain_snapshot_oldest_timestamp_seconds", fmt.Sprintf(`%s,domain=%q`, h, domain), t0-age)
	}

	h1, h2 := host("h1:9851"), host("h2:9851")
	series("libvirt_up", h1, 1)
	vm(h1, "web1", 1)
	vm(h1, "app1", 1)
	vm(h1, "db1", 1)
	vm(h1, "mail1", 1)
	vm(h1, "never1", 5)
	job(h1, "kvm-nightly", "dated_dir", 26*hour, 10*hour)
	job(h1, "kvm-weekly", "dated_dir", 8*day, 2*day)
	job(h1, "s3-nightly", "rclone_log", 48*hour, 20*hour)
	job(h1, "restore-test", "restore_log", 35*day, 7*day)
	copyOf(h1, "kvm-nightly", "web1", 13*hour, 0)
	copyOf(h1, "kvm-nightly", "app1", 30*hour, 0)
	copyOf(h1, "kvm-nightly", "mail1", 20*hour, 0)
	copyOf(h1, "kvm-nightly", "old1", 10*hour, 1)
	missingDisk(h1, "kvm-nightly", "old1", "vda")
	copyOf(h1, "kvm-weekly", "app1", 2*day, 0)
	copyOf(h1, "kvm-weekly", "db1", 9*day, 2)
	missingDisk(h1, "kvm-weekly", "db1", "vdb")
	missingDisk(h1, "kvm-weekly", "db1", "/dev/vg0/data")
	offsite(h1, "web1", 37*hour, 13*hour)
	offsite(h1, "app1", 78*hour, 54*hour)
	offsite(h1, "mail1", 20*hour, 0)
	offsite(h1, "old1", 34*hour, 58*hour)
	snapshot(h1, "web1", 3*day)
	snapshot(h1, "db1", 8*day)

	series("libvirt_up", h2, 1)
	series("vmhost_threshold_override_snapshot_max_age_seconds", `instance="h2:9851"`, 2*day)
	vm(h2, "web1", 1)
	job(h2, "kvm-nightly", "dated_dir", 8*day, 2*day)
	copyOf(h2, "kvm-nightly", "web1", 2*day, 0)
	snapshot(h2, "web1", 1*day)

	body := b.String()
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, body)
	})
}

// wantProtection is what each panel's queries of the VM protection
// dashboard return on protectionState at query time now, by panel title,
// one map per query in the panel's order, keyed by protectionKey. age(x)
// is the age at now of what was x seconds old at t0. A VM without a value
// in a column is absent from that query's map: its cell is empty and the
// dashboard shows "never" or "none" there (checked on the JSON).
func wantProtection(t0, now float64) map[string][]map[string]float64 {
	age := func(x float64) float64 { return x + now - t0 }
	const h1, h2 = "instance=h1:9851", "instance=h2:9851"
	row := func(h, domain string) string { return h + ",domain=" + domain }
	state := map[string]float64{
		row(h1, "web1"): 1, row(h1, "app1"): 1, row(h1, "db1"): 1, row(h1, "mail1"): 1, row(h1, "never1"): 5,
		row(h2, "web1"): 1,
	}
	// The restore test is the host's, shown on each of its VMs' rows.
	restore, restoreAge := map[string]float64{}, map[string]float64{}
	for _, d := range []string{"web1", "app1", "db1", "mail1", "never1"} {
		restore[row(h1, d)], restoreAge[row(h1, d)] = age(7*day)/(35*day), age(7*day)
	}
	return map[string][]map[string]float64{
		"VM protection": {
			state,
			{ // each VM over its own job's max_age, the freshest job when several hold it
				row(h1, "web1"): age(13*hour) / (26 * hour), row(h1, "app1"): age(2*day) / (8 * day),
				row(h1, "db1"): age(9*day) / (8 * day), row(h1, "mail1"): age(20*hour) / (26 * hour),
				row(h2, "web1"): age(2*day) / (8 * day),
			},
			{row(h1, "web1"): 0, row(h1, "app1"): 0, row(h1, "db1"): 2, row(h1, "mail1"): 0, row(h2, "web1"): 0},
			{ // the oldest waiting copy over the sync job's max_age; 0 when all are offsite
				row(h1, "web1"): age(13*hour) / (48 * hour), row(h1, "app1"): age(54*hour) / (48 * hour), row(h1, "mail1"): 0,
			},
			restore,
			{row(h1, "web1"): age(3*day) / (7 * day), row(h1, "db1"): age(8*day) / (7 * day), row(h2, "web1"): age(day) / (2 * day)},
		},
		"VM protection: ages": {
			state,
			{
				row(h1, "web1"): age(13 * hour), row(h1, "app1"): age(30 * hour), row(h1, "db1"): age(9 * day),
				row(h1, "mail1"): age(20 * hour), row(h2, "web1"): age(2 * day),
			},
			{row(h1, "web1"): age(37 * hour), row(h1, "app1"): age(78 * hour), row(h1, "mail1"): age(20 * hour)},
			restoreAge,
			{row(h1, "web1"): age(3 * day), row(h1, "db1"): age(8 * day), row(h2, "web1"): age(day)},
		},
		"Disks missing from the newest copy": {{row(h1, "db1") + ",disk=vdb": 1, row(h1, "db1") + ",disk=/dev/vg0/data": 1}},
		"Fleet: VMs at risk per host": {
			{h1: 5, h2: 1},
			{h1: 2, h2: 0}, // db1 (stale) and never1 (never)
			{h1: 1, h2: 0}, // app1 (old1's is overdue too, but old1 is gone)
			{h1: 1, h2: 0}, // db1's 8 days over 7; h2's web1 1 day of 2
			{h1: age(7*day) / (35 * day)},
		},
	}
}

// protectionKey names a result by the labels that tell the rows apart.
func protectionKey(m map[string]string) string {
	var parts []string
	for _, l := range []string{"instance", "domain", "disk"} {
		if v, ok := m[l]; ok {
			parts = append(parts, l+"="+v)
		}
	}
	return strings.Join(parts, ",")
}

// queryAt runs an instant query at the given time, so that time() in
// the queries is a known number.
func queryAt(ctx context.Context, api testenv.QueryAPI, q string, at time.Time) (map[string]float64, error) {
	r, err := api.QueryAt(ctx, q, at)
	if err != nil {
		return nil, err
	}
	got := map[string]float64{}
	for _, s := range r.Data.Result {
		v, err := strconv.ParseFloat(fmt.Sprint(s.Value[1]), 64)
		if err != nil {
			return nil, err
		}
		k := protectionKey(s.Metric)
		if _, dup := got[k]; dup {
			return nil, fmt.Errorf("query %q: two results for {%s}", q, k)
		}
		got[k] = v
	}
	return got, nil
}

// TestVMProtectionPanelsShowTheConstructedHosts: on two hosts built so
// that every cell is known (protectionState), the shipped rules evaluated
// by a real Prometheus, each query of the VM protection dashboard, as
// committed, returns exactly the constructed values at a known time: one
// row per VM defined (a VM never backed up included, a VM deleted from
// the host excluded), each layer over its own job's max_age (two local
// jobs of 26h and 8d, the sync job's 48h, the restore job's 35d, the
// host's snapshot threshold), the missing disks by count and name, and
// per host the VMs at risk.
func TestVMProtectionPanelsShowTheConstructedHosts(t *testing.T) {
	t0 := float64(time.Now().Unix())
	target := httptest.NewServer(protectionState(t0))
	t.Cleanup(target.Close)

	var d jsonDashboard
	for file, dash := range loadCommitted(t) {
		if file == "protection.json" {
			d = dash
		}
	}
	titles := map[string]bool{}
	for title := range wantProtection(0, 0) {
		titles[title] = true
	}
	for _, panel := range d.Panels {
		w, ok := wantProtection(0, 0)[panel.Title]
		if !ok {
			t.Errorf("panel %q: no constructed answer; add one to wantProtection", panel.Title)
			continue
		}
		if len(w) != len(panel.Targets) {
			t.Errorf("panel %q: %d queries, %d constructed answers", panel.Title, len(panel.Targets), len(w))
		}
		delete(titles, panel.Title)
	}
	for title := range titles {
		t.Errorf("no panel %q in protection.json", title)
	}
	if t.Failed() {
		return
	}

	prom := testenv.StartPrometheus(t, `global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - `+rulesDir(t)+`/*.yml
scrape_configs:
  - job_name: protection
    honor_labels: true
    static_configs:
      - targets: ['`+strings.TrimPrefix(target.URL, "http://")+`']
`)
	testenv.Eventually(t, time.Minute, "every VM protection panel showing the constructed hosts", func() (bool, string) {
		at := time.Now().Truncate(time.Second)
		want := wantProtection(t0, float64(at.Unix()))
		var wrong []string
		for _, panel := range d.Panels {
			for i, target := range panel.Targets {
				got, err := queryAt(context.Background(), prom.QueryAPI, substitute(target.Expr), at)
				if err != nil {
					return false, err.Error()
				}
				if diff := compareSeries(got, want[panel.Title][i]); diff != "" {
					wrong = append(wrong, fmt.Sprintf("%s, query %c: %s", panel.Title, 'A'+i, diff))
				}
			}
		}
		return len(wrong) == 0, strings.Join(wrong, "\n")
	})
}

// rulesDir is the shipped rules' directory, absolute (Prometheus reads
// rule files relative to its config file).
func rulesDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(dir, "/dashboards") + "/rules"
}

// TestVMProtectionColoursAgainstEachLimit: in the committed JSON, every
// ratio cell of the matrix and of the fleet view turns red at 1 (100 % of
// its own limit, when the layer's alert fires) and not below, on a
// coloured background; the counts of missing disks and of VMs at risk
// turn red at 1; an empty cell reads "never" or "none" in red where the
// layer is missing, and stays empty for a VM without snapshots.
func TestVMProtectionColoursAgainstEachLimit(t *testing.T) {
	data, err := os.ReadFile("protection.json")
	if err != nil {
		t.Fatal(err)
	}
	type threshold struct {
		Color string   `json:"color"`
		Value *float64 `json:"value"`
	}
	type property struct {
		ID    string          `json:"id"`
		Value json.RawMessage `json:"value"`
	}
	var d struct {
		Panels []struct {
			Title       string `json:"title"`
			FieldConfig struct {
				Defaults struct {
					Thresholds struct {
						Steps []threshold `json:"steps"`
					} `json:"thresholds"`
				} `json:"defaults"`
				Overrides []struct {
					Matcher struct {
						Options string `json:"options"`
					} `json:"matcher"`
					Properties []property `json:"properties"`
				} `json:"overrides"`
			} `json:"fieldConfig"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	// colour is what Grafana paints a value in: the last step at or
	// below it.
	colour := func(steps []threshold, v float64) string {
		c := ""
		for _, s := range steps {
			if s.Value == nil || *s.Value <= v {
				c = s.Color
			}
		}
		return c
	}
	type column struct {
		name    string  // displayName
		redAt   float64 // the lowest value painted red
		below   float64 // a value just under it, not red
		noValue string  // text of an empty cell, "" for none
	}
	for title, columns := range map[string]map[string]column{
		"VM protection": {
			"Value #B": {"local copy / max_age", 1, 0.999, "never"},
			"Value #C": {"missing disks", 1, 0, ""},
			"Value #D": {"offsite wait / max_age", 1, 0.999, "none"},
			"Value #E": {"restore test / max_age", 1, 0.999, "never"},
			"Value #F": {"oldest snapshot / limit", 1, 0.999, ""},
		},
		"Fleet: VMs at risk per host": {
			"Value #B": {"no fresh local copy", 1, 0, ""},
			"Value #C": {"offsite overdue", 1, 0, ""},
			"Value #D": {"old snapshots", 1, 0, ""},
			"Value #E": {"restore test / max_age", 1, 0.999, "never"},
		},
	} {
		found := false
		for _, p := range d.Panels {
			if p.Title != title {
				continue
			}
			found = true
			for field, c := range columns {
				steps := p.FieldConfig.Defaults.Thresholds.Steps
				var name, cell, noValue string
				for _, o := range p.FieldConfig.Overrides {
					if o.Matcher.Options != field {
						continue
					}
					for _, prop := range o.Properties {
						switch prop.ID {
						case "displayName":
							_ = json.Unmarshal(prop.Value, &name)
						case "thresholds":
							var th struct{ Steps []threshold }
							if err := json.Unmarshal(prop.Value, &th); err != nil {
								t.Fatal(err)
							}
							steps = th.Steps
						case "custom.cellOptions":
							var co struct{ Type string }
							_ = json.Unmarshal(prop.Value, &co)
							cell = co.Type
						case "mappings":
							var ms []struct {
								Type    string
								Options struct {
									Match  string
									Result struct{ Text, Color string }
								}
							}
							_ = json.Unmarshal(prop.Value, &ms)
							for _, m := range ms {
								if m.Type == "special" && m.Options.Match == "null+nan" && m.Options.Result.Color == "red" {
									noValue = m.Options.Result.Text
								}
							}
						}
					}
				}
				where := fmt.Sprintf("%s: %s (%s)", title, field, c.name)
				if name != c.name {
					t.Errorf("%s: named %q", where, name)
				}
				if got := colour(steps, c.redAt); got != "red" {
					t.Errorf("%s: %g painted %q, want red", where, c.redAt, got)
				}
				if got := colour(steps, c.below); got == "red" || got == "" {
					t.Errorf("%s: %g painted %q, want a colour short of red", where, c.below, got)
				}
				if cell != "color-background" {
					t.Errorf("%s: cell type %q, want color-background", where, cell)
				}
				if noValue != c.noValue {
					t.Errorf("%s: an empty cell reads %q in red, want %q", where, noValue, c.noValue)
				}
			}
		}
		if !found {
			t.Errorf("no panel %q in protection.json", title)
		}
	}
}
