package dashboards

import "github.com/grafana/grafana-foundation-sdk/go/dashboard"

// HostFleet shows the hosts' CPU, memory and swap against the operator's
// bands, the per-core picture and overcommit.
func HostFleet() *dashboard.DashboardBuilder {
	sel := `instance=~"$instance"`
	panels := []panel{
		{
			kind: timeSeries, title: "CPU utilisation", unit: "percentunit", min: ptr(0), max: ptr(1),
			description: "Share of non-idle CPU time (idle, iowait and steal count as not busy). Bands from the operator's notes: below " +
				pct(0.10) + " the host may be over-provisioned, " + pct(0.10) + "–" + pct(0.70) + " is ideal, above " + pct(0.70) +
				" is busy, " + pct(0.85) + " for 5 minutes alerts (HostCPUHighUsage), " + pct(0.90) + " sustained is saturation.",
			queries: []query{{expr: `instance:node_cpu_utilisation:rate5m{` + sel + `}`, legend: "{{instance}}"}},
			base:    "blue", steps: []step{{0.10, "green"}, {0.70, "yellow"}, {0.85, "orange"}, {0.90, "red"}},
		},
		{
			kind: timeSeries, title: "Memory utilisation", unit: "percentunit", min: ptr(0), max: ptr(1),
			description: "1 − (MemAvailable + free huge pages) / MemTotal: page cache counts as available, huge pages reserved for VMs too. " +
				pct(0.50) + "–" + pct(0.80) + " is ideal; above " + pct(0.90) + " is fine briefly without swapping, alerts while swapping (HostMemoryHighWithSwap) or when sustained.",
			queries: []query{{expr: `instance:node_memory_utilisation:ratio{` + sel + `}`, legend: "{{instance}}"}},
			base:    "blue", steps: []step{{0.50, "green"}, {0.80, "yellow"}, {0.90, "red"}},
		},
		{
			kind: timeSeries, title: "Swap used", unit: "bytes", min: ptr(0),
			description: "SwapTotal − SwapFree. Ideal is about zero; 1 GiB or more is a warning sign (HostSwapUsageHigh).",
			queries:     []query{{expr: `instance:node_swap_used:bytes{` + sel + `}`, legend: "{{instance}}"}},
			steps:       []step{{1 << 30, "red"}},
		},
		{
			kind: timeSeries, title: "Swap activity", unit: "short", min: ptr(0),
			description: "Pages swapped in plus out per second. Any activity while memory is above 90 % alerts; 256 pages/s or more for 10 minutes is thrashing.",
			queries: []query{{
				expr:   `rate(node_vmstat_pswpin{` + sel + `}[$__rate_interval]) + rate(node_vmstat_pswpout{` + sel + `}[$__rate_interval])`,
				legend: "{{instance}}",
			}},
			steps: []step{{1, "yellow"}, {256, "red"}},
		},
		{
			kind: timeSeries, title: "Load per CPU", unit: "short", min: ptr(0),
			description: "1-minute load average divided by the number of CPUs: above 1 means runnable tasks wait for a CPU.",
			queries: []query{{
				expr:   `node_load1{` + sel + `} / on (instance) count by (instance) (node_cpu_seconds_total{mode="idle",` + sel + `})`,
				legend: "{{instance}}",
			}},
			steps: []step{{1, "yellow"}, {2, "red"}},
		},
		{
			kind: heatmapPanel, title: "Per-core utilisation", unit: "percentunit",
			description: "Distribution of the utilisation of every core over time. On many-core hosts the average hides a single pinned core (HostCPUCoreSaturated); here it shows as a cell at the top while the rest stay low.",
			queries: []query{{
				expr:   `1 - sum without (mode) (rate(node_cpu_seconds_total{mode=~"idle|iowait|steal",` + sel + `}[$__rate_interval]))`,
				legend: "{{instance}} cpu {{cpu}}",
			}},
		},
		{
			kind: statPanel, title: "vCPU overcommit", unit: "short", width: 6, height: 5,
			description: "vCPUs of running VMs per host CPU. Above 4 alerts (HostVCPUOvercommitHigh) unless the site changed the threshold.",
			queries:     []query{{expr: `instance:libvirt_vcpu_overcommit:ratio{` + sel + `}`, legend: "{{instance}}", instant: true}},
			steps:       []step{{2, "yellow"}, {4, "red"}},
		},
		{
			kind: statPanel, title: "Memory overcommit", unit: "percentunit", width: 6, height: 5,
			description: "Maximum memory of the running VMs as a share of host memory. Above 100 % the VMs can use more than the host has (HostMemoryOvercommitted).",
			queries:     []query{{expr: `instance:libvirt_memory_overcommit:ratio{` + sel + `}`, legend: "{{instance}}", instant: true}},
			steps:       []step{{0.8, "yellow"}, {1, "red"}},
		},
		{
			kind: barGauge, title: "CPU p95 over 7 days", unit: "percentunit", min: ptr(0), max: ptr(1), width: 6, height: 5,
			description: "95th percentile of CPU utilisation over 7 days. Below " + pct(0.10) + " the host is over-provisioned (HostCPUOverProvisioned): consolidate VMs.",
			queries:     []query{{expr: `instance:node_cpu_utilisation:p95_7d{` + sel + `}`, legend: "{{instance}}", instant: true}},
			base:        "blue", steps: []step{{0.10, "green"}, {0.70, "yellow"}, {0.90, "red"}},
		},
		{
			kind: barGauge, title: "Memory p95 over 7 days", unit: "percentunit", min: ptr(0), max: ptr(1), width: 6, height: 5,
			description: "95th percentile of memory utilisation over 7 days. Below " + pct(0.30) + " the host is over-provisioned (HostMemoryOverProvisioned).",
			queries:     []query{{expr: `instance:node_memory_utilisation:p95_7d{` + sel + `}`, legend: "{{instance}}", instant: true}},
			base:        "blue", steps: []step{{0.30, "green"}, {0.80, "yellow"}, {0.90, "red"}},
		},
		{
			kind: timeSeries, title: "Storage pool usage", unit: "percentunit", min: ptr(0), max: ptr(1),
			description: "Share of each libvirt storage pool allocated, as of libvirt's last refresh of the pool (README, Storage pools). " + pct(0.85) +
				" or more alerts (StoragePoolAlmostFull); a full pool pauses the VMs writing to it. Inactive pools have no size and are not drawn.",
			queries: []query{{expr: `storage_pool:libvirt_storage_pool_allocated:ratio{` + sel + `}`, legend: "{{instance}} {{storage_pool}}"}},
			base:    "green", steps: []step{{0.70, "yellow"}, {0.85, "red"}},
		},
		{
			kind: timeSeries, title: "Storage pool free space", unit: "bytes", min: ptr(0),
			description: "Free bytes of each storage pool. A line heading for zero within a day, with less than 40 % free, alerts (StoragePoolFillingUp).",
			queries:     []query{{expr: `libvirt_storage_pool_available_bytes{` + sel + `}`, legend: "{{instance}} {{storage_pool}}"}},
		},
		{
			kind: barGauge, title: "VM disks per pool size", unit: "percentunit", min: ptr(0), width: 6, height: 5,
			description: "Virtual size of the VMs' disks in each pool as a share of the pool's size. Above 100 % thin images could outgrow the pool (StoragePoolOvercommitted, info).",
			queries: []query{{
				expr:    `libvirt_storage_pool_domain_disk_capacity_bytes{` + sel + `} / (libvirt_storage_pool_capacity_bytes{` + sel + `} > 0)`,
				legend:  "{{instance}} {{storage_pool}}",
				instant: true,
			}},
			base: "green", steps: []step{{1, "yellow"}},
		},
	}
	return newDashboard(UIDHostFleet, "vmhost / Host fleet",
		"CPU, memory and swap of the KVM hosts against the operator's bands (vmhost_exporter).", panels,
		labelVariable("instance", "Host", `label_values(vmhost_exporter_build_info, instance)`))
}
