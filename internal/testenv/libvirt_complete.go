package testenv

import (
	"fmt"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// libvirtParts are the scrape parts of the libvirt collector: stats,
// autostart, snapshots, metadata and, since issue 28, pools and jobs.
const libvirtParts = 6

// LibvirtComplete reports whether a scrape has libvirt_up 1, all six
// scrape parts and every domain successful and, when want is not nil,
// exactly the domains of want (LibvirtDomains order); otherwise it says
// what is missing.
func LibvirtComplete(mf map[string]*dto.MetricFamily, want []string) (bool, string) {
	var why []string
	if v, _ := Value(mf, "libvirt_up", nil); v != 1 {
		why = append(why, fmt.Sprintf("libvirt_up %v", v))
	}
	parts := mf["libvirt_scrape_part_success"].GetMetric()
	if len(parts) != libvirtParts {
		why = append(why, fmt.Sprintf("%d scrape parts, want %d", len(parts), libvirtParts))
	}
	for _, m := range parts {
		if m.GetGauge().GetValue() != 1 {
			why = append(why, "part "+labelValue(m, "part")+" failed")
		}
	}
	for _, m := range mf["libvirt_domain_scrape_success"].GetMetric() {
		if m.GetGauge().GetValue() != 1 {
			why = append(why, "domain "+labelValue(m, "domain")+" incomplete")
		}
	}
	if got := LibvirtDomains(mf); want != nil && strings.Join(got, ",") != strings.Join(want, ",") {
		why = append(why, fmt.Sprintf("domains %v, want %v", got, want))
	}
	return len(why) == 0, strings.Join(why, "; ")
}

// LibvirtDomains lists the domains of libvirt_domain_info in exposition
// order.
func LibvirtDomains(mf map[string]*dto.MetricFamily) []string {
	var out []string
	for _, m := range mf["libvirt_domain_info"].GetMetric() {
		out = append(out, labelValue(m, "domain"))
	}
	return out
}
