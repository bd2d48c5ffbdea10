package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// Series budgets per VM, the numbers docs/fleet.md sizes fleets with (a
// running guest with 1 vCPU, 1 disk and 1 user-mode NIC, whose balloon
// reports no guest statistics; a shut-off guest). A new per-VM metric must
// raise them here on purpose, and docs/fleet.md with them: at 50,000 VMs
// every series per VM is 50,000 series in the fleet's TSDB.
//
// Issue 28 raised them from 36 and 16 (32 and 16 measured) to 52 and 17
// (48 and 17): the series of inovex/prometheus-libvirt-exporter its users
// chart, 16 per running VM (12 job_info, current_balloon_bytes,
// maximum_bytes, used_percent, timed_out) and timed_out per shut-off VM.
const (
	seriesBudgetRunningVM = 52
	seriesBudgetStoppedVM = 17
)

// TestSeriesBudgetPerVM counts, in a real scrape of the exporter, the series
// of a running and of a shut-off QEMU guest and holds them to the budget.
func TestSeriesBudgetPerVM(t *testing.T) {
	mf, running, stopped := testenv.ScrapeGuestPair(t, fmt.Sprintf("vmhbudget-%d-", os.Getpid()))
	perDomain := testenv.SeriesByLabel(mf, "domain")
	t.Logf("series: running VM %d, stopped VM %d, host (no domain label) %d", perDomain[running], perDomain[stopped], perDomain[""])
	if n := perDomain[running]; n > seriesBudgetRunningVM || n < seriesBudgetRunningVM*3/4 {
		t.Errorf("a running VM has %d series; budget %d (and at least 3/4 of it, or the budget is stale): raise it on purpose and update docs/fleet.md", n, seriesBudgetRunningVM)
	}
	if n := perDomain[stopped]; n > seriesBudgetStoppedVM || n < seriesBudgetStoppedVM*3/4 {
		t.Errorf("a shut-off VM has %d series; budget %d (and at least 3/4 of it, or the budget is stale): raise it on purpose and update docs/fleet.md", n, seriesBudgetStoppedVM)
	}
}

// TestNoJobInfoDropsOnlyTheJobSeries runs two exporters on the same
// running guest, one with --no-libvirt.job-info: it has none of the 12
// libvirt_domain_job_info_* series (the one call per running guest a
// scrape that libvirt cannot batch) and every other series of the guest.
func TestNoJobInfoDropsOnlyTheJobSeries(t *testing.T) {
	l := testenv.StartLibvirtd(t)
	guest := fmt.Sprintf("vmhjobs-%d", os.Getpid())
	l.DefineQEMU(t, guest, "app")
	l.MustVirsh("qemu:///system", "start", guest)
	flags := []string{"--libvirt.socket=" + l.SockRO, "--libvirt.uri=qemu:///system", "--collector.disable-defaults", "--collector.libvirt"}
	withJobs := testenv.StartExporter(t, flags...)
	withoutJobs := testenv.StartExporter(t, append(flags, "--no-libvirt.job-info")...)
	d := map[string]string{"domain": guest}
	complete := func(e *testenv.Exporter) map[string]*dto.MetricFamily {
		var mf map[string]*dto.MetricFamily
		testenv.Eventually(t, 3*time.Minute, "the running guest complete", func() (bool, string) {
			mf = testenv.Scrape(t, e.URL+"/metrics")
			_, rss := testenv.Value(mf, "libvirt_domain_memory_stats_rss_bytes", d)
			return rss, fmt.Sprintf("series by domain %v", testenv.SeriesByLabel(mf, "domain"))
		})
		return mf
	}
	with, without := complete(withJobs), complete(withoutJobs)
	jobSeries := 0
	for name, f := range with {
		if strings.HasPrefix(name, "libvirt_domain_job_info_") {
			jobSeries += len(f.GetMetric())
		}
		if _, ok := without[name]; ok != !strings.HasPrefix(name, "libvirt_domain_job_info_") {
			t.Errorf("%s: in the scrape without job info %v", name, ok)
		}
	}
	if v, ok := testenv.Value(with, "libvirt_domain_job_info_type", d); !ok || v != 0 {
		t.Errorf("with job info: libvirt_domain_job_info_type %v (present %v), want 0 (no job)", v, ok)
	}
	if n, m := testenv.SeriesByLabel(with, "domain")[guest], testenv.SeriesByLabel(without, "domain")[guest]; jobSeries != 12 || n-m != 12 {
		t.Errorf("the guest has %d series with job info and %d without (%d job series); want 12 fewer, the job series", n, m, jobSeries)
	}
}
