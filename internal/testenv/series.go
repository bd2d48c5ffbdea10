package testenv

import (
	"fmt"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// seriesOf is how many series one metric of a family stands for in the
// exposition: a histogram's buckets, +Inf, sum and count; a summary's
// quantiles, sum and count; one otherwise.
func seriesOf(mf *dto.MetricFamily, m *dto.Metric) int {
	switch mf.GetType() {
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		return len(m.GetHistogram().GetBucket()) + 3
	case dto.MetricType_SUMMARY:
		return len(m.GetSummary().GetQuantile()) + 2
	}
	return 1
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// SeriesByLabel counts a scrape's series by the value of one label; series
// without the label count under "".
func SeriesByLabel(families map[string]*dto.MetricFamily, label string) map[string]int {
	return countByLabel(families, label, func(*dto.Metric) bool { return true })
}

// DomainSeriesByLabel counts one domain's series by the value of another
// label (target_device, interface, vcpu): what each disk, NIC or vCPU adds.
func DomainSeriesByLabel(families map[string]*dto.MetricFamily, domain, label string) map[string]int {
	return countByLabel(families, label, func(m *dto.Metric) bool { return labelValue(m, "domain") == domain })
}

func countByLabel(families map[string]*dto.MetricFamily, label string, include func(*dto.Metric) bool) map[string]int {
	out := map[string]int{}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			if include(m) {
				out[labelValue(m, label)] += seriesOf(mf, m)
			}
		}
	}
	return out
}

// ScrapeGuestPair starts a private libvirtd with a running QEMU guest
// (prefix+"run", role app) and a shut-off one (prefix+"off", role db), and
// the exporter on it with the extra flags. It returns the first scrape in
// which the running guest has its memory and block figures, for counting
// what one VM of each kind costs in series.
func ScrapeGuestPair(t *testing.T, prefix string, flags ...string) (scrape map[string]*dto.MetricFamily, running, stopped string) {
	t.Helper()
	l := StartLibvirtd(t)
	running, stopped = prefix+"run", prefix+"off"
	l.DefineQEMU(t, running, "app")
	l.DefineQEMU(t, stopped, "db")
	l.MustVirsh("qemu:///system", "start", running)
	e := StartExporter(t, append([]string{"--libvirt.socket=" + l.SockRO, "--libvirt.uri=qemu:///system"}, flags...)...)
	Eventually(t, 3*time.Minute, "the running guest complete", func() (bool, string) {
		scrape = Scrape(t, e.URL+"/metrics")
		_, rss := Value(scrape, "libvirt_domain_memory_stats_rss_bytes", map[string]string{"domain": running})
		_, block := Value(scrape, "libvirt_domain_block_stats_read_requests_total", map[string]string{"domain": running})
		return rss && block, fmt.Sprintf("series by domain %v", SeriesByLabel(scrape, "domain"))
	})
	return scrape, running, stopped
}
