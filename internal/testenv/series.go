package testenv

import (
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
	out := map[string]int{}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			out[labelValue(m, label)] += seriesOf(mf, m)
		}
	}
	return out
}

// DomainSeriesByLabel counts one domain's series by the value of another
// label (target_device, interface, vcpu): what each disk, NIC or vCPU adds.
func DomainSeriesByLabel(families map[string]*dto.MetricFamily, domain, label string) map[string]int {
	out := map[string]int{}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			if labelValue(m, "domain") == domain {
				out[labelValue(m, label)] += seriesOf(mf, m)
			}
		}
	}
	return out
}
