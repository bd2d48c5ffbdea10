package dashboards

import "github.com/grafana/grafana-foundation-sdk/go/dashboard"

// Backups shows every backup job's freshness against its max age, its last
// run, its size history, per-VM coverage and restore tests.
func Backups() *dashboard.DashboardBuilder {
	sel := `instance=~"$instance",backup_job=~"$backup_job"`
	panels := []panel{
		{
			kind: barGauge, title: "Backup age / max age", unit: "percentunit", min: ptr(0), max: ptr(1.5), width: 12,
			description: "Age of each job's newest successful backup as a share of its max_age from the backup config. At 100 % the backup is stale (BackupStale).",
			queries: []query{{
				expr:   `(time() - vmhost_backup_last_success_timestamp_seconds{` + sel + `}) / on (instance, backup_job) vmhost_backup_max_age_seconds`,
				legend: "{{backup_job}}", instant: true,
			}},
			steps: []step{{0.8, "yellow"}, {1, "red"}},
		},
		{
			kind: statPanel, title: "Last run", unit: "none", width: 6,
			description: "Whether each job's newest finished run succeeded (BackupFailed alerts when not).",
			queries:     []query{{expr: `vmhost_backup_last_run_success{` + sel + `}`, legend: "{{backup_job}}", instant: true}},
			mappings:    okMappings("OK", "FAILED"),
			base:        "red", steps: []step{{1, "green"}},
		},
		{
			kind: statPanel, title: "Scan health", unit: "none", width: 6,
			description: "Whether the exporter could read each job on its last background scan. When not, the job's values are from its last good scan (BackupScanFailing).",
			queries:     []query{{expr: `vmhost_backup_scan_success{` + sel + `}`, legend: "{{backup_job}}", instant: true}},
			mappings:    okMappings("OK", "ERROR"),
			base:        "red", steps: []step{{1, "green"}},
		},
		{
			kind: timeSeries, title: "Size of the newest successful backup", unit: "bytes", min: ptr(0),
			description: "Apparent size (sparse holes included) of each job's newest successful backup over time, and the median of the successful backups before it (dated_dir, file_glob). Under half of that median alerts (BackupSizeDropped): data may be missing.",
			queries: []query{
				{expr: `vmhost_backup_last_success_size_bytes{` + sel + `}`, legend: "{{backup_job}}"},
				{expr: `vmhost_backup_previous_success_size_bytes{` + sel + `}`, legend: "{{backup_job}}: median of the previous"},
			},
		},
		{
			kind: timeSeries, title: "Disk usage of the newest successful backup", unit: "bytes", min: ptr(0),
			description: "Disk space of each job's newest successful backup: sparse images as stored, hard links (rsync --link-dest) counted once.",
			queries:     []query{{expr: `vmhost_backup_last_success_disk_usage_bytes{` + sel + `}`, legend: "{{backup_job}}"}},
		},
		{
			kind: tablePanel, title: "Per-VM coverage", unit: "s",
			description: "Age of the newest successful backup of each VM per job (dated_dir: vm_xml/<vm>.xml in the set; vzdump: guest id). Older than the job's max_age alerts (VMNotBackedUp).",
			queries:     []query{{expr: `time() - vmhost_backup_vm_last_success_timestamp_seconds{` + sel + `}`, instant: true}},
			steps:       []step{{86400, "yellow"}, {7 * 86400, "red"}},
		},
		{
			kind: tablePanel, title: "VM disks missing from the backup", unit: "none",
			description: "dated_dir: disks each VM's XML names that have no copy in the newest successful set holding that XML (a disk outside the copied images directory, or a copy the script lost). Above 0 the VM gets no per-VM success from that set (VMNotBackedUp).",
			queries:     []query{{expr: `vmhost_backup_vm_missing_disks{` + sel + `}`, instant: true}},
			base:        "green", steps: []step{{1, "red"}},
		},
		{
			kind: tablePanel, title: "Retention", unit: "s",
			description: "Age of the oldest backup set each job still keeps. Too short a retention loses restore points; too long fills the disk.",
			queries:     []query{{expr: `time() - vmhost_backup_oldest_set_timestamp_seconds{` + sel + `}`, instant: true}},
		},
		{
			kind: statPanel, title: "Last successful restore test", unit: "s", width: 12,
			description: "Time since each restore_log job last logged a completed restore. A backup that was never restored is not a backup: older than the job's max_age alerts (BackupRestoreTestStale).",
			queries: []query{{
				expr:   `time() - vmhost_backup_last_success_timestamp_seconds{` + sel + `} and on (instance, backup_job) vmhost_backup_job_info{backup_type="restore_log"}`,
				legend: "{{backup_job}}", instant: true,
			}},
			steps: []step{{30 * 86400, "yellow"}, {35 * 86400, "red"}},
		},
		{
			kind: statPanel, title: "Running now", unit: "none", width: 12,
			description: "Jobs with a run in progress (a dated set still being written, an rclone run without its end line, a vzdump .dat file growing).",
			queries:     []query{{expr: `vmhost_backup_running{` + sel + `}`, legend: "{{backup_job}}", instant: true}},
			mappings:    okMappings("running", "idle"),
			base:        "blue", steps: []step{{1, "green"}},
		},
	}
	return newDashboard(UIDBackups, "vmhost / Backups",
		"Freshness, last run, size, per-VM coverage and restore tests of the host's backups (vmhost_exporter).", panels,
		labelVariable("instance", "Host", `label_values(vmhost_backup_job_info, instance)`),
		labelVariable("backup_job", "Backup job", `label_values(vmhost_backup_job_info{instance=~"$instance"}, backup_job)`))
}
