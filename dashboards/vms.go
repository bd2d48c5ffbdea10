package dashboards

import "github.com/grafana/grafana-foundation-sdk/go/dashboard"

// VMs shows every VM's state, its utilisation against its role's band,
// right-sizing and snapshots.
func VMs() *dashboard.DashboardBuilder {
	sel := `instance=~"$instance",domain=~"$domain"`
	withRole := ` * on (instance, domain) group_left (role) libvirt_domain_info{role!="",` + sel + `}`
	bandPosition := func(util, lower, upper string) string {
		// 0 at the band's lower edge, 1 at its upper edge.
		return `(` + util + withRole + ` - on (role) group_left () ` + lower + `) / on (role) group_left () (` + upper + ` - ` + lower + `)`
	}
	bandDescription := "Where the VM's utilisation sits in the band of its role (role from the domain metadata): 0 = the band's lower edge, 100 % = its upper edge. " +
		"Below 0 the VM works below its band (VMBelowRoleBand: maybe over-sized), above 100 % above it (VMAboveRoleBand). Bands CPU / memory: web 10–30 / 30–70 %, app 30–70 / 50–90 %, db 20–80 / 70–90 %, file 10–40 / 30–70 %."
	panels := []panel{
		{
			kind: tablePanel, title: "VM states", unit: "none", width: 24, height: 8,
			description: "State of every defined VM, running or not, with autostart. Crashed, paused and autostart VMs that are not running alert.",
			queries: []query{
				{expr: `libvirt_domain_info_state{` + sel + `}`, instant: true},
				{expr: `libvirt_domain_autostart{` + sel + `}`, instant: true},
			},
			overrides: map[string][]dashboard.DynamicConfigValue{
				"Value #A": column("state", stateMappings()),
				"Value #B": column("autostart", okMappings("yes", "no")),
			},
		},
		{
			kind: timeSeries, title: "VM CPU utilisation", unit: "percentunit", min: ptr(0),
			description: "Share of the VM's vCPUs in use (1 = every vCPU busy). " + pct(0.85) + " for 5 minutes alerts (VMCPUHighUsage).",
			queries:     []query{{expr: `domain:libvirt_vm_cpu_utilisation:rate5m{` + sel + `}`, legend: "{{domain}}"}},
			steps:       []step{{0.70, "yellow"}, {0.85, "red"}},
		},
		{
			kind: timeSeries, title: "VM memory utilisation", unit: "percentunit", min: ptr(0), max: ptr(1),
			description: "Guest memory in use from the balloon driver (1 − usable / available). VMs without guest memory statistics have no line here and no memory alerts; the Guest memory statistics table names them.",
			queries:     []query{{expr: `domain:libvirt_vm_memory_utilisation:ratio{` + sel + `}`, legend: "{{domain}}"}},
			steps:       []step{{0.80, "yellow"}, {0.90, "red"}},
		},
		{
			kind: tablePanel, title: "Guest memory statistics", unit: "none",
			description: "Whether each running VM's guest reports its memory use (balloon statistics). Without them the VM memory alerts, the memory band and memory right-sizing cannot work (VMMemoryStatsMissing): virsh dommemstat DOMAIN --period 10 --live --config.",
			queries:     []query{{expr: `libvirt_domain_memory_stats_guest_reported{` + sel + `}`, instant: true}},
			mappings:    okMappings("reported", "MISSING"),
			base:        "red", steps: []step{{1, "green"}},
		},
		{
			kind: timeSeries, title: "CPU position in role band", unit: "percentunit",
			description: bandDescription,
			queries: []query{{
				expr:   bandPosition(`domain:libvirt_vm_cpu_utilisation:rate5m{`+sel+`}`, `role:vmhost_threshold_role_cpu_lower:ratio`, `role:vmhost_threshold_role_cpu_upper:ratio`),
				legend: "{{domain}} ({{role}})",
			}},
			base: "red", steps: []step{{0, "green"}, {1, "red"}},
		},
		{
			kind: timeSeries, title: "Memory position in role band", unit: "percentunit",
			description: bandDescription,
			queries: []query{{
				expr:   bandPosition(`domain:libvirt_vm_memory_utilisation:ratio{`+sel+`}`, `role:vmhost_threshold_role_memory_lower:ratio`, `role:vmhost_threshold_role_memory_upper:ratio`),
				legend: "{{domain}} ({{role}})",
			}},
			base: "red", steps: []step{{0, "green"}, {1, "red"}},
		},
		{
			kind: tablePanel, title: "Right-sizing: vCPUs", unit: "none",
			description: "Current vCPUs against the recommendation from the running time of the last 7 days: ceil(p95 of cores used / 0.70), at least 1, so busy hours sit at 70 %, the top of the ideal band. \"Ran\" is the share of the 7 days the VM was running: a cold standby has no recommendation, and the over-provisioning alerts wait for 1/7 (24 hours).",
			queries: []query{
				{expr: `libvirt_domain_info_virtual_cpus{` + sel + `}`, instant: true},
				{expr: `domain:libvirt_vm_recommended_vcpus:count{` + sel + `}`, instant: true},
				{expr: `domain:libvirt_vm_running:ratio_7d{` + sel + `}`, instant: true},
			},
			overrides: map[string][]dashboard.DynamicConfigValue{
				"Value #A": column("vCPUs now", nil), "Value #B": column("recommended vCPUs", nil),
				"Value #C": append(column("ran (7 days)", nil), dashboard.DynamicConfigValue{Id: "unit", Value: "percentunit"}),
			},
		},
		{
			kind: tablePanel, title: "Right-sizing: memory", unit: "bytes",
			description: "Maximum memory against the recommendation from 7 days of history: max guest memory used / 0.80, rounded up to 256 MiB, so the worst hour sits at 80 %, the top of the ideal band. Needs a guest balloon driver.",
			queries: []query{
				{expr: `libvirt_domain_info_maximum_memory_bytes{` + sel + `}`, instant: true},
				{expr: `domain:libvirt_vm_recommended_memory:bytes{` + sel + `}`, instant: true},
			},
			overrides: map[string][]dashboard.DynamicConfigValue{
				"Value #A": column("memory now", nil), "Value #B": column("recommended memory", nil),
			},
		},
		{
			kind: tablePanel, title: "Snapshots", unit: "s",
			description: "Age of each VM's oldest snapshot. Snapshots are short-term only (before an upgrade); older than 7 days alerts (VMSnapshotTooOld).",
			queries: []query{
				{expr: `time() - libvirt_domain_snapshot_oldest_timestamp_seconds{` + sel + `}`, instant: true},
			},
			steps: []step{{86400, "yellow"}, {604800, "red"}},
		},
		{
			kind: statPanel, title: "Snapshot count", unit: "none", width: 12, height: 8,
			description: "Snapshots per VM. Long snapshot chains slow the disk down.",
			queries:     []query{{expr: `libvirt_domain_snapshots{` + sel + `} > 0`, legend: "{{domain}}", instant: true}},
			steps:       []step{{3, "yellow"}, {10, "red"}},
		},
		{
			kind: barGauge, title: "Storage pools", unit: "percentunit", min: ptr(0), max: ptr(1), width: 12, height: 8,
			description: "Share of each storage pool of the host allocated (libvirt's last refresh of the pool). When a pool is full, the VMs writing to it are paused with an I/O error (VMPaused names the cause); " +
				pct(0.85) + " or more alerts (StoragePoolAlmostFull).",
			queries: []query{{expr: `storage_pool:libvirt_storage_pool_allocated:ratio{instance=~"$instance"}`, legend: "{{instance}} {{storage_pool}}", instant: true}},
			base:    "green", steps: []step{{0.70, "yellow"}, {0.85, "red"}},
		},
	}
	return newDashboard(UIDVMs, "vmhost / VMs",
		"State, utilisation against role bands, right-sizing and snapshots of every VM (vmhost_exporter).", panels,
		labelVariable("instance", "Host", `label_values(libvirt_up, instance)`),
		labelVariable("domain", "VM", `label_values(libvirt_domain_info{instance=~"$instance"}, domain)`))
}
