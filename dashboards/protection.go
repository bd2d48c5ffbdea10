package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// Protection shows each VM's protection in layers, one row per VM defined
// on the host: its newest complete local copy, the disks missing from it,
// its copy offsite, the host's restore test and its oldest snapshot. Each
// layer is shown as its age over the limit that applies to it (the job's
// own max_age, the sync job's max_age, the restore job's max_age, the
// snapshot threshold), so one colour scale, red at 100 %, fits weekly and
// nightly jobs alike, and the cells turn red exactly when the layer's
// alert fires.
func Protection() *dashboard.DashboardBuilder {
	in := `instance=~"$instance"`
	sel := `instance=~"$instance",domain=~"$domain"`
	// The VMs defined on the host (libvirt_domain_info has every one,
	// inactive ones included), as the rows every layer is joined to: a VM
	// no backup has ever seen still gets its row, and a VM deleted from
	// the host (its copies and missing disks stay in the sets) gets none.
	vms := `group by (instance, job, domain) (libvirt_domain_info{` + sel + `})`
	perVM := func(layer string) string {
		return `min by (instance, job, domain) (` + layer + `) and on (instance, domain) ` + vms
	}
	localRatio := `(time() - vmhost_backup_vm_last_success_timestamp_seconds{` + in + `}) / on (instance, job, backup_job) group_left () vmhost_backup_max_age_seconds`
	offsiteRatio := `(time() - vmhost_backup_vm_offsite_pending_timestamp_seconds{` + in + `}) / on (instance, job, backup_job) group_left () vmhost_backup_max_age_seconds` +
		` or (vmhost_backup_vm_offsite_timestamp_seconds{` + in + `} * 0)`
	restoreRatio := `min by (instance, job) ((time() - vmhost_backup_last_success_timestamp_seconds{` + in + `}) / on (instance, job, backup_job) group_left () vmhost_backup_max_age_seconds` +
		` and on (instance, job, backup_job) vmhost_backup_job_info{backup_type="restore_log"})`
	snapshotRatio := `(time() - libvirt_domain_snapshot_oldest_timestamp_seconds{` + sel + `}) / on (instance) group_left () instance:vmhost_threshold_snapshot_max_age:seconds`

	ratioColumn := func(name, none string) []dashboard.DynamicConfigValue {
		return append(column(name, noneMapping(none)),
			dashboard.DynamicConfigValue{Id: "unit", Value: "percentunit"},
			dashboard.DynamicConfigValue{Id: "custom.cellOptions", Value: map[string]any{"type": "color-background", "mode": "basic"}},
		)
	}
	layers := []query{
		{expr: `max by (instance, job, domain) (libvirt_domain_info_state{` + sel + `})`, instant: true},
		{expr: perVM(localRatio), instant: true},
		{expr: `max by (instance, job, domain) (vmhost_backup_vm_missing_disks{` + sel + `}) and on (instance, domain) ` + vms, instant: true},
		{expr: perVM(offsiteRatio), instant: true},
		{expr: vms + ` * on (instance, job) group_left () ` + restoreRatio, instant: true},
		{expr: `max by (instance, job, domain) (` + snapshotRatio + `)`, instant: true},
	}
	ages := []query{
		{expr: `max by (instance, job, domain) (libvirt_domain_info_state{` + sel + `})`, instant: true},
		{expr: perVM(`time() - vmhost_backup_vm_last_success_timestamp_seconds{` + sel + `}`), instant: true},
		{expr: perVM(`time() - vmhost_backup_vm_offsite_timestamp_seconds{` + sel + `}`), instant: true},
		{expr: vms + ` * on (instance, job) group_left () min by (instance, job) (time() - vmhost_backup_last_success_timestamp_seconds{` + in +
			`} and on (instance, job, backup_job) vmhost_backup_job_info{backup_type="restore_log"})`, instant: true},
		{expr: `max by (instance, job, domain) (time() - libvirt_domain_snapshot_oldest_timestamp_seconds{` + sel + `})`, instant: true},
	}
	atRisk := func(expr string) string {
		// VMs of each host for which expr holds; 0 (not absent) for none.
		return `count by (instance, job) (` + expr + `) or on (instance, job) (count by (instance, job) (libvirt_domain_info{` + in + `}) * 0)`
	}
	panels := []panel{
		{
			kind: tablePanel, title: "VM protection", unit: "percentunit", width: 24, height: 12,
			description: "One row per VM defined on the host (shut-off ones included), one column per layer of protection, each as its age over the limit that applies to it: red at 100 %, when that layer's alert fires. " +
				"Local copy: the VM's newest complete copy (every disk) over its backup job's max_age (the freshest job when several hold it; VMNotBackedUp); \"never\": no job holds the VM whole. " +
				"Missing disks: disks the newest successful set holding the VM's definition cannot restore (LVM, iSCSI, RBD, outside images_source; dated_dir). " +
				"Offsite: how long the VM's oldest local copy has waited for a successful run of the sync job that copies its job (copies:), over that sync job's max_age (VMNoOffsiteCopy); 0 % when every copy is offsite; \"none\": no sync job copies its job. " +
				"Restore test: the host's newest successful restore test over the restore job's max_age (BackupRestoreTestStale). " +
				"Oldest snapshot: its age over the snapshot threshold (7 days by default; VMSnapshotTooOld); empty when the VM has none. The ages themselves are in the table below.",
			queries: layers,
			steps:   []step{{0.8, "yellow"}, {1, "red"}},
			overrides: map[string][]dashboard.DynamicConfigValue{
				"Value #A": column("state", stateMappings()),
				"Value #B": ratioColumn("local copy / max_age", "never"),
				"Value #C": append(column("missing disks", nil),
					dashboard.DynamicConfigValue{Id: "unit", Value: "none"},
					dashboard.DynamicConfigValue{Id: "thresholds", Value: dashboard.ThresholdsConfig{Mode: dashboard.ThresholdsModeAbsolute,
						Steps: []dashboard.Threshold{{Color: "green"}, {Value: ptr(1), Color: "red"}}}},
					dashboard.DynamicConfigValue{Id: "custom.cellOptions", Value: map[string]any{"type": "color-background", "mode": "basic"}}),
				"Value #D": ratioColumn("offsite wait / max_age", "none"),
				"Value #E": ratioColumn("restore test / max_age", "never"),
				"Value #F": ratioColumn("oldest snapshot / limit", ""),
			},
		},
		{
			kind: tablePanel, title: "VM protection: ages", unit: "s", width: 24, height: 10,
			description: "The ages behind the VM protection matrix: the VM's newest complete local copy, its newest copy offsite (the newest local copy a successful run of the sync job finished after), the host's newest successful restore test and the VM's oldest snapshot. Empty: none.",
			queries:     ages,
			overrides: map[string][]dashboard.DynamicConfigValue{
				"Value #A": column("state", stateMappings()),
				"Value #B": column("local copy age", nil),
				"Value #C": column("offsite copy age", nil),
				"Value #D": column("restore test age", nil),
				"Value #E": column("oldest snapshot age", nil),
			},
		},
		{
			kind: tablePanel, title: "Disks missing from the newest copy", unit: "none", width: 24, height: 6,
			description: "Which disks of each VM (by target, e.g. vdb, else by source) the newest successful set holding the VM's definition cannot restore: a block device (LVM), a network disk (iSCSI, RBD), a file outside images_source, a copy missing, or an overlay without its backing file (dated_dir). A VM with such a disk has no complete local copy from that set (VMNotBackedUp).",
			queries:     []query{{expr: `vmhost_backup_vm_missing_disk_info{` + sel + `} and on (instance, domain) ` + vms, instant: true}},
			overrides: map[string][]dashboard.DynamicConfigValue{
				"Value": append(column("missing", okMappings("yes", "no")), dashboard.DynamicConfigValue{Id: "custom.hidden", Value: true}),
			},
		},
		{
			kind: tablePanel, title: "Fleet: VMs at risk per host", unit: "none", width: 24, height: 8,
			description: "Per host: the VMs defined, and how many of them have no complete local copy within their job's max_age (or none at all), a copy that has waited longer than its sync job's max_age to go offsite, a snapshot older than the threshold. Restore test: the host's newest successful restore test over its max_age (red at 100 %, empty: never).",
			queries: []query{
				{expr: `count by (instance, job) (libvirt_domain_info{` + in + `})`, instant: true},
				{expr: atRisk(`libvirt_domain_info{` + in + `} unless on (instance, domain) (` + localRatio + ` <= 1)`), instant: true},
				{expr: atRisk(`(` + offsiteRatio + `) > 1 and on (instance, domain) libvirt_domain_info`), instant: true},
				{expr: atRisk(`(time() - libvirt_domain_snapshot_oldest_timestamp_seconds{` + in + `}) > on (instance) group_left () instance:vmhost_threshold_snapshot_max_age:seconds`), instant: true},
				{expr: restoreRatio, instant: true},
			},
			base:  "green",
			steps: []step{{1, "red"}},
			overrides: map[string][]dashboard.DynamicConfigValue{
				"Value #A": append(column("VMs", nil), dashboard.DynamicConfigValue{Id: "thresholds", Value: dashboard.ThresholdsConfig{Mode: dashboard.ThresholdsModeAbsolute, Steps: []dashboard.Threshold{{Color: "text"}}}}),
				"Value #B": append(column("no fresh local copy", nil), dashboard.DynamicConfigValue{Id: "custom.cellOptions", Value: map[string]any{"type": "color-background", "mode": "basic"}}),
				"Value #C": append(column("offsite overdue", nil), dashboard.DynamicConfigValue{Id: "custom.cellOptions", Value: map[string]any{"type": "color-background", "mode": "basic"}}),
				"Value #D": append(column("old snapshots", nil), dashboard.DynamicConfigValue{Id: "custom.cellOptions", Value: map[string]any{"type": "color-background", "mode": "basic"}}),
				"Value #E": ratioColumn("restore test / max_age", "never"),
			},
		},
	}
	return newDashboard(UIDProtection, "vmhost / VM protection",
		"Every VM's protection at a glance: local copy, missing disks, offsite copy, restore test and snapshots, each against its own limit (vmhost_exporter).", panels,
		labelVariable("instance", "Host", `label_values(libvirt_up, instance)`),
		labelVariable("domain", "VM", `label_values(libvirt_domain_info{instance=~"$instance"}, domain)`))
}

// noneMapping shows an empty cell (the layer does not exist for the VM)
// as text, in red unless text is empty.
func noneMapping(text string) []dashboard.ValueMapping {
	if text == "" {
		return nil
	}
	return []dashboard.ValueMapping{{SpecialValueMap: &dashboard.SpecialValueMap{
		Type: dashboard.MappingTypeSpecialValue,
		Options: dashboard.DashboardSpecialValueMapOptions{
			Match:  dashboard.SpecialValueMatchNullAndNan,
			Result: dashboard.ValueMappingResult{Text: cog.ToPtr(text), Color: cog.ToPtr("red"), Index: cog.ToPtr(int32(0))},
		},
	}}}
}
