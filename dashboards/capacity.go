package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// Capacity answers the fleet operator's questions of issue 27: how many
// hosts each group needs against how many it has, where there is room,
// which VMs to shrink first, and how day and night differ.
func Capacity() *dashboard.DashboardBuilder {
	sel := `instance=~"$instance"`
	// A host without running VMs has no demand series: count it as 0.
	orZero := func(series, like string) string {
		return `(` + series + `{` + sel + `} or on (instance) 0 * ` + like + `{` + sel + `})`
	}
	shrink := func(reclaimable, now, recommended string) []query {
		top := `topk(20, ` + reclaimable + `{` + sel + `})`
		return []query{
			{expr: now + `{` + sel + `} and on (instance, domain) ` + top, instant: true},
			{expr: recommended + `{` + sel + `} and on (instance, domain) ` + top, instant: true},
			{expr: top, instant: true},
		}
	}
	panels := []panel{
		{
			kind: tablePanel, title: "Hosts needed per group", unit: "none", width: 16,
			description: "Per group of hosts (label cluster; hosts without it form one group): hosts present, hosts the VMs' 7-day running demand needs at the everyday target (CPU 60 %, memory 80 % of each host) plus one spare for losing the largest host (N+1), and how many could go (below 0: hosts missing for N+1). At 1 or more for an hour ClusterOverProvisioned fires.",
			queries: []query{
				{expr: `cluster:vmhost_hosts:count`, instant: true},
				{expr: `cluster:vmhost_hosts_needed:count`, instant: true},
				{expr: `cluster:vmhost_hosts_surplus:count`, instant: true},
			},
			overrides: map[string][]dashboard.DynamicConfigValue{
				"Value #A": column("hosts present", nil), "Value #B": column("hosts needed (N+1)", nil),
				"Value #C": column("could go", nil),
			},
		},
		{
			kind: statPanel, title: "Hosts that could go", unit: "none", width: 8,
			description: "Across the fleet: the hosts every group could lose, added up (groups short of hosts count as 0). VMs do not move between groups.",
			queries:     []query{{expr: `fleet:vmhost_hosts_surplus:count`, instant: true}},
			base:        "green", steps: []step{{1, "blue"}},
		},
		{
			kind: tablePanel, title: "Which resource decides", unit: "none",
			description: "Hosts each resource needs at the everyday target, without the spare: the larger of the two decides the group's hosts needed. CPU demand = p95 of the cores each VM used; memory demand = the most guest memory each VM used (its whole memory without guest statistics).",
			queries:     []query{{expr: `cluster:vmhost_hosts_needed_by_resource:count`, instant: true}},
		},
		{
			kind: tablePanel, title: "Given back by right-sizing", unit: "none",
			description: "vCPUs and memory per group that the VMs have beyond the right-sizing recommendation (allocated − recommended, at least 0; VMs with 24 hours of running history in the last 7 days).",
			queries: []query{
				{expr: `cluster:vmhost_reclaimable_vcpus:count`, instant: true},
				{expr: `cluster:vmhost_reclaimable_memory:bytes`, instant: true},
			},
			overrides: map[string][]dashboard.DynamicConfigValue{
				"Value #A": column("vCPUs", nil),
				"Value #B": append(column("memory", nil), dashboard.DynamicConfigValue{Id: "unit", Value: "bytes"}),
			},
		},
		{
			kind: tablePanel, title: "CPU room per host", unit: "none",
			description: "Free: cores at the everyday target (60 % of the host's cores) minus the 7-day p95 of the cores its VMs used; below 0 the host runs above target. Unallocated: host cores minus the vCPUs of its running VMs; below 0 vCPUs are overcommitted.",
			queries: []query{
				{expr: `instance:vmhost_host_cpu_capacity:cores{` + sel + `} - on (instance) ` + orZero(`instance:vmhost_cpu_demand:cores`, `instance:vmhost_host_cpu_capacity:cores`), instant: true},
				{expr: `instance:vmhost_host_cpu_cores:count{` + sel + `} - on (instance) ` + orZero(`instance:libvirt_vcpus_running:sum`, `instance:vmhost_host_cpu_cores:count`), instant: true},
			},
			overrides: map[string][]dashboard.DynamicConfigValue{
				"Value #A": column("free cores at target", nil), "Value #B": column("unallocated vCPUs", nil),
			},
		},
		{
			kind: tablePanel, title: "Memory room per host", unit: "bytes",
			description: "Free: memory at the everyday target (80 % of the host's) minus the most guest memory its VMs used in 7 days; below 0 the host runs above target. Unallocated: host memory minus the maximum memory of its running VMs; below 0 memory is overcommitted.",
			queries: []query{
				{expr: `instance:vmhost_host_memory_capacity:bytes{` + sel + `} - on (instance) ` + orZero(`instance:vmhost_memory_demand:bytes`, `instance:vmhost_host_memory_capacity:bytes`), instant: true},
				{expr: `instance:vmhost_host_memory:bytes{` + sel + `} - on (instance) ` + orZero(`instance:libvirt_memory_running:bytes`, `instance:vmhost_host_memory:bytes`), instant: true},
			},
			overrides: map[string][]dashboard.DynamicConfigValue{
				"Value #A": column("free memory at target", nil), "Value #B": column("unallocated memory", nil),
			},
		},
		{
			kind: tablePanel, title: "VMs to shrink first: vCPUs", unit: "none",
			description: "The 20 VMs that give back the most vCPUs: vCPUs now, recommended (ceil of the 7-day p95 of cores used / 0.70, at least 1) and the difference. Sort by a column by clicking its header.",
			queries:     shrink(`domain:vmhost_vm_reclaimable_vcpus:count`, `libvirt_domain_info_virtual_cpus`, `domain:libvirt_vm_recommended_vcpus:count`),
			overrides: map[string][]dashboard.DynamicConfigValue{
				"Value #A": column("vCPUs now", nil), "Value #B": column("recommended", nil), "Value #C": column("gives back", nil),
			},
		},
		{
			kind: tablePanel, title: "VMs to shrink first: memory", unit: "bytes",
			description: "The 20 VMs that give back the most memory: maximum memory now, recommended (the most guest memory used in 7 days / 0.80, rounded up to 256 MiB) and the difference. Needs guest memory statistics.",
			queries:     shrink(`domain:vmhost_vm_reclaimable_memory:bytes`, `libvirt_domain_info_maximum_memory_bytes`, `domain:libvirt_vm_recommended_memory:bytes`),
			overrides: map[string][]dashboard.DynamicConfigValue{
				"Value #A": column("memory now", nil), "Value #B": column("recommended", nil), "Value #C": column("gives back", nil),
			},
		},
		{
			kind: timeSeries, title: "Day and night: host CPU", unit: "percentunit", min: ptr(0), max: ptr(1), width: 24,
			description: "Each host's CPU, filed into the busy hours (09–18 in the operator's time zone, UTC+9 unless set by vmhost_threshold_override_utc_offset_hours) and the quiet hours. Busy-hour p95 at least 4 times and 30 points above the quiet hours' over 7 days fires HostDayNightImbalance.",
			queries:     []query{{expr: dayNight(`instance:node_cpu_utilisation_busy:rate5m{`+sel+`}`, `instance:node_cpu_utilisation_quiet:rate5m{`+sel+`}`), legend: "{{instance}} {{hours}} hours"}},
		},
		{
			kind: tablePanel, title: "Day and night over 7 days: hosts", unit: "percentunit",
			description: "p95 of the hourly CPU over the busy hours and over the quiet hours of the last 7 days, per host (a row each).",
			queries:     []query{{expr: dayNight(`instance:node_cpu_utilisation_busy:p95_7d{`+sel+`}`, `instance:node_cpu_utilisation_quiet:p95_7d{`+sel+`}`), instant: true}},
		},
		{
			kind: tablePanel, title: "Day and night over 7 days: VMs", unit: "percentunit",
			description: "p95 of the hourly share of its vCPUs each VM used over the busy hours and over the quiet hours of its running time in the last 7 days (a row each). At least 4 times and 30 points apart fires VMDayNightImbalance.",
			queries:     []query{{expr: dayNight(`domain:libvirt_vm_cpu_utilisation_busy:p95_7d{`+sel+`}`, `domain:libvirt_vm_cpu_utilisation_quiet:p95_7d{`+sel+`}`), instant: true}},
		},
	}
	return newDashboard(UIDCapacity, "vmhost / Capacity",
		"Hosts needed against present per group, room per host, the VMs to shrink first and day against night (vmhost_exporter).", panels,
		labelVariable("instance", "Host", `label_values(libvirt_up, instance)`))
}

// dayNight shows a busy-hour and a quiet-hour series as one, told apart by
// the label hours="busy" or "quiet".
func dayNight(busy, quiet string) string {
	return `label_replace(` + busy + `, "hours", "busy", "", "") or label_replace(` + quiet + `, "hours", "quiet", "", "")`
}
