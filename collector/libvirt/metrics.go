package libvirt

import (
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// stateDescriptions are the state_desc label values, worded as
// inovex/prometheus-libvirt-exporter words them so its users' queries keep
// working.
var stateDescriptions = map[int]string{
	0: "no state",
	1: "the domain is running",
	2: "the domain is blocked on resource",
	3: "the domain is paused by user",
	4: "the domain is being shut down",
	5: "the domain is shut off",
	6: "the domain is crashed",
	7: "the domain is suspended by guest power management",
}

// stateShutoff is libvirt's VIR_DOMAIN_SHUTOFF.
const (
	stateRunning = 1
	stateShutoff = 5
	stateCrashed = 6
)

// deviceMetric maps one field of a block.N.* or net.N.* stats group to a metric.
type deviceMetric struct {
	field     string
	desc      *prometheus.Desc
	valueType prometheus.ValueType
	scale     float64
}

// balloonMetric maps one balloon.* field (KiB unless scale says otherwise) to a
// metric named libvirt_domain_memory_stats_<name>.
type balloonMetric struct {
	field     string
	desc      *prometheus.Desc
	valueType prometheus.ValueType
	scale     float64
}

// jobMetric maps one field of jobInfo to a libvirt_domain_job_info_* series.
type jobMetric struct {
	desc  *prometheus.Desc
	value func(j *jobInfo) float64
}

type descriptors struct {
	up, domains, scrapeDuration, rpcCalls *prometheus.Desc
	partSuccess, partDuration             *prometheus.Desc

	domainInfo, domainScrapeSuccess, state, stateReason, vcpus, maxMemory, memoryUsage, cpuTime *prometheus.Desc
	autostart, snapshots, snapshotOldest, snapshotNewest                                        *prometheus.Desc

	balloon          []balloonMetric
	memUsedPercent   *prometheus.Desc
	memStatsReported *prometheus.Desc

	// Series of inovex/prometheus-libvirt-exporter (v2.2.0) that say what
	// ours say under other names, kept so its users' dashboards work:
	// timedOut (scrape_success), memCurrentBalloon (actual_balloon_bytes),
	// memMaximum (info_maximum_memory_bytes); and its job series.
	timedOut, memCurrentBalloon, memMaximum *prometheus.Desc
	job                                     []jobMetric

	vcpuCurrent, vcpuMaximum, vcpuState, vcpuTime, vcpuWait, vcpuDelay *prometheus.Desc

	blockInfo, ifaceInfo *prometheus.Desc
	block, iface         []deviceMetric
}

func desc(subsystem, name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, subsystem, name), help, labels, nil)
}

func newDescriptors() descriptors {
	dl := []string{"domain"}
	devl := []string{"domain", "target_device"}
	d := descriptors{
		up:             desc("", "up", "Whether the last scrape of libvirtd succeeded (1) or not (0)."),
		domains:        desc("", "domains", "Number of defined domains, running or not."),
		scrapeDuration: desc("scrape", "duration_seconds", "Time the libvirt part of this scrape took."),
		rpcCalls:       desc("", "rpc_calls_total", "libvirt RPCs made by the collector since the exporter started."),
		partSuccess:    desc("scrape", "part_success", "Whether a part of the libvirt scrape succeeded: stats (0 when any domain's stats are missing, e.g. a guest whose QEMU does not answer; libvirt_up says whether the scrape failed as a whole), autostart, snapshots, metadata (domain XML), jobs (job info of the running domains), pools (storage pools: 0 when one timed out or could not be read).", "part"),
		partDuration:   desc("scrape", "part_duration_seconds", "Time a part of the libvirt scrape took.", "part"),

		domainInfo:          desc("domain", "info", "Metadata of a domain; role comes from the domain's <metadata> (see README), os_type, os_type_arch and os_type_machine from its <os><type>.", "domain", "os_type", "os_type_arch", "os_type_machine", "role", "uuid"),
		domainScrapeSuccess: desc("domain", "scrape_success", "Whether everything about this domain could be read (stats, XML, snapshots).", dl...),
		state:               desc("domain_info", "state", "Domain state as a libvirt code: 1 running, 2 blocked, 3 paused, 4 shutting down, 5 shut off, 6 crashed, 7 suspended by guest power management.", "domain", "state_desc"),
		stateReason:         desc("domain_info", "state_reason", "libvirt's reason code for the state; its meaning depends on the state (shut off: 1 shut down, 2 destroyed, 3 crashed, 5 saved, 6 failed to start; paused: 1 by a user, 2 migration, 5 I/O error, e.g. its storage full, 6 watchdog).", dl...),
		vcpus:               desc("domain_info", "virtual_cpus", "Number of virtual CPUs of the domain.", dl...),
		maxMemory:           desc("domain_info", "maximum_memory_bytes", "Maximum memory of the domain.", dl...),
		memoryUsage:         desc("domain_info", "memory_usage_bytes", "Memory currently allocated to the domain (balloon size); not the memory the guest uses.", dl...),
		cpuTime:             desc("domain_info", "cpu_time_seconds_total", "CPU time used by the domain.", dl...),
		autostart:           desc("domain", "autostart", "Whether the domain starts when libvirtd starts (1) or not (0).", dl...),
		snapshots:           desc("domain", "snapshots", "Number of snapshots of the domain.", dl...),
		snapshotOldest:      desc("domain", "snapshot_oldest_timestamp_seconds", "Creation time of the domain's oldest snapshot.", dl...),
		snapshotNewest:      desc("domain", "snapshot_newest_timestamp_seconds", "Creation time of the domain's newest snapshot.", dl...),

		memUsedPercent:   desc("domain_memory_stats", "used_percent", "Memory used by the guest, in percent: (available - usable) / available * 100, from the balloon driver; NaN for a running domain whose guest reports none, as inovex/prometheus-libvirt-exporter gives it.", dl...),
		memStatsReported: desc("domain_memory_stats", "guest_reported", "For a running domain: 1 if its guest reports memory use (balloon statistics: available and usable), 0 if not. Without them the VM memory alerts, memory band and memory right-sizing cannot work; enable with virsh dommemstat DOMAIN --period 10 --live --config.", dl...),

		timedOut:          desc("domain", "timed_out", "Whether a call for this domain was given up in this scrape, or libvirt could not ask its QEMU (its monitor busy or not answering): 1, else 0. Series of inovex/prometheus-libvirt-exporter; libvirt_domain_scrape_success says more.", dl...),
		memCurrentBalloon: desc("domain_memory_stats", "current_balloon_bytes", "Current balloon size of a running domain, as libvirt_domain_memory_stats_actual_balloon_bytes. Series of inovex/prometheus-libvirt-exporter.", dl...),
		memMaximum:        desc("domain_memory_stats", "maximum_bytes", "Maximum memory of a running domain (balloon.maximum), as libvirt_domain_info_maximum_memory_bytes. Series of inovex/prometheus-libvirt-exporter.", dl...),

		vcpuCurrent: desc("domain_vcpu", "current", "Number of online vCPUs.", dl...),
		vcpuMaximum: desc("domain_vcpu", "maximum", "Maximum number of vCPUs.", dl...),
		vcpuState:   desc("domain_vcpu", "state", "State of the vCPU: 0 offline, 1 running, 2 blocked.", "domain", "vcpu"),
		vcpuTime:    desc("domain_vcpu", "time_seconds_total", "Time spent by the vCPU.", "domain", "vcpu"),
		vcpuWait:    desc("domain_vcpu", "wait_seconds_total", "Time the vCPU wanted to run but the host scheduler ran something else (host CPU contention).", "domain", "vcpu"),
		vcpuDelay:   desc("domain_vcpu", "delay_seconds_total", "Time the vCPU waited in the run queue; seen by the guest as steal time.", "domain", "vcpu"),

		blockInfo: desc("domain_block_stats", "info", "Metadata of a block device of the domain, from its <disk> element (the labels of inovex/prometheus-libvirt-exporter).",
			"domain", "disk_type", "driver_cache", "driver_discard", "driver_name", "driver_type", "serial", "source_file", "source_protocol", "target_bus", "target_device"),
		ifaceInfo: desc("domain_interface_stats", "info", "Metadata of a network interface of the domain.", "domain", "target_device", "source_bridge", "mac_address"),
	}
	const ms = 1e-3
	for _, m := range []struct {
		name, help string
		value      func(j *jobInfo) float64
	}{
		{"type", "Type of the domain's current job (virDomainJobType): 0 none, 1 bounded (its time remaining known: a migration), 2 unbounded (a backup), 3 completed, 4 failed, 5 cancelled.", func(j *jobInfo) float64 { return float64(j.Type) }},
		{"time_elapsed_seconds", "Time since the domain's current job started.", func(j *jobInfo) float64 { return float64(j.TimeElapsedMS) * ms }},
		{"time_remaining_seconds", "Time the domain's current job is expected to take still (bounded jobs).", func(j *jobInfo) float64 { return float64(j.TimeRemainingMS) * ms }},
		{"data_total_bytes", "Data the domain's current job handles in all: memory plus files.", func(j *jobInfo) float64 { return float64(j.DataTotal) }},
		{"data_processed_bytes", "Data the domain's current job has handled.", func(j *jobInfo) float64 { return float64(j.DataProcessed) }},
		{"data_remaining_bytes", "Data the domain's current job has still to handle.", func(j *jobInfo) float64 { return float64(j.DataRemaining) }},
		{"memory_total_bytes", "Guest memory the domain's current job (migration, save, dump) handles in all.", func(j *jobInfo) float64 { return float64(j.MemTotal) }},
		{"memory_processed_bytes", "Guest memory the domain's current job has handled.", func(j *jobInfo) float64 { return float64(j.MemProcessed) }},
		{"memory_remaining_bytes", "Guest memory the domain's current job has still to handle.", func(j *jobInfo) float64 { return float64(j.MemRemaining) }},
		{"file_total_bytes", "Disk data the domain's current job (backup, storage migration) handles in all.", func(j *jobInfo) float64 { return float64(j.FileTotal) }},
		{"file_processed_bytes", "Disk data the domain's current job has handled.", func(j *jobInfo) float64 { return float64(j.FileProcessed) }},
		{"file_remaining_bytes", "Disk data the domain's current job has still to handle.", func(j *jobInfo) float64 { return float64(j.FileRemaining) }},
	} {
		d.job = append(d.job, jobMetric{desc: desc("domain_job_info", m.name, m.help+" Series of inovex/prometheus-libvirt-exporter, for running domains.", dl...), value: m.value})
	}
	const kib = 1024
	for _, b := range []struct {
		field, name, help string
		vt                prometheus.ValueType
		scale             float64
	}{
		{"current", "actual_balloon_bytes", "Current balloon size.", prometheus.GaugeValue, kib},
		{"swap_in", "swap_in_bytes", "Memory the guest has swapped in since boot.", prometheus.GaugeValue, kib},
		{"swap_out", "swap_out_bytes", "Memory the guest has swapped out since boot.", prometheus.GaugeValue, kib},
		{"major_fault", "major_fault_total", "Page faults in the guest that needed disk I/O.", prometheus.CounterValue, 1},
		{"minor_fault", "minor_fault_total", "Page faults in the guest without disk I/O.", prometheus.CounterValue, 1},
		{"unused", "unused_bytes", "Memory the guest leaves unused (MemFree).", prometheus.GaugeValue, kib},
		{"available", "available_bytes", "Memory the guest sees (MemTotal).", prometheus.GaugeValue, kib},
		{"usable", "usable_bytes", "Memory the guest can use without swapping (MemAvailable).", prometheus.GaugeValue, kib},
		{"rss", "rss_bytes", "Resident set size of the QEMU process on the host.", prometheus.GaugeValue, kib},
		{"disk_caches", "disk_cache_bytes", "Guest page cache that can be reclaimed.", prometheus.GaugeValue, kib},
		{"last-update", "last_update_timestamp_seconds", "When the guest last updated its balloon statistics.", prometheus.GaugeValue, 1},
	} {
		d.balloon = append(d.balloon, balloonMetric{field: b.field, desc: desc("domain_memory_stats", b.name, b.help, dl...), valueType: b.vt, scale: b.scale})
	}
	const ns = 1e-9
	for _, m := range []struct {
		field, name, help string
		vt                prometheus.ValueType
		scale             float64
	}{
		{"rd.bytes", "read_bytes_total", "Bytes read from the block device.", prometheus.CounterValue, 1},
		{"rd.reqs", "read_requests_total", "Read requests on the block device.", prometheus.CounterValue, 1},
		{"rd.times", "read_time_seconds_total", "Time spent reading from the block device.", prometheus.CounterValue, ns},
		{"wr.bytes", "write_bytes_total", "Bytes written to the block device.", prometheus.CounterValue, 1},
		{"wr.reqs", "write_requests_total", "Write requests on the block device.", prometheus.CounterValue, 1},
		{"wr.times", "write_time_seconds_total", "Time spent writing to the block device.", prometheus.CounterValue, ns},
		{"fl.reqs", "flush_requests_total", "Flush requests on the block device.", prometheus.CounterValue, 1},
		{"fl.times", "flush_time_seconds_total", "Time spent flushing the block device.", prometheus.CounterValue, ns},
		{"capacity", "capacity_bytes", "Logical size of the block device's image.", prometheus.GaugeValue, 1},
		{"allocation", "allocation_bytes", "Highest allocated extent of the image (host side).", prometheus.GaugeValue, 1},
		{"physical", "physical_bytes", "Physical size of the image on the host.", prometheus.GaugeValue, 1},
	} {
		d.block = append(d.block, deviceMetric{field: m.field, desc: desc("domain_block_stats", m.name, m.help, devl...), valueType: m.vt, scale: m.scale})
	}
	for _, m := range []struct{ field, name, help string }{
		{"rx.bytes", "receive_bytes_total", "Bytes received on the interface."},
		{"rx.pkts", "receive_packets_total", "Packets received on the interface."},
		{"rx.errs", "receive_errors_total", "Receive errors on the interface."},
		{"rx.drop", "receive_drops_total", "Receive drops on the interface."},
		{"tx.bytes", "transmit_bytes_total", "Bytes transmitted on the interface."},
		{"tx.pkts", "transmit_packets_total", "Packets transmitted on the interface."},
		{"tx.errs", "transmit_errors_total", "Transmit errors on the interface."},
		{"tx.drop", "transmit_drops_total", "Transmit drops on the interface."},
	} {
		d.iface = append(d.iface, deviceMetric{field: m.field, desc: desc("domain_interface_stats", m.name, m.help, devl...), valueType: prometheus.CounterValue, scale: 1})
	}
	return d
}

func (d *descriptors) describe(ch chan<- *prometheus.Desc) {
	for _, x := range []*prometheus.Desc{
		d.up, d.domains, d.scrapeDuration, d.rpcCalls, d.partSuccess, d.partDuration,
		d.domainInfo, d.domainScrapeSuccess, d.state, d.stateReason, d.vcpus, d.maxMemory, d.memoryUsage, d.cpuTime,
		d.autostart, d.snapshots, d.snapshotOldest, d.snapshotNewest, d.memUsedPercent, d.memStatsReported,
		d.vcpuCurrent, d.vcpuMaximum, d.vcpuState, d.vcpuTime, d.vcpuWait, d.vcpuDelay,
		d.blockInfo, d.ifaceInfo, d.timedOut, d.memCurrentBalloon, d.memMaximum,
	} {
		ch <- x
	}
	for _, b := range d.balloon {
		ch <- b.desc
	}
	for _, m := range d.block {
		ch <- m.desc
	}
	for _, m := range d.iface {
		ch <- m.desc
	}
	for _, m := range d.job {
		ch <- m.desc
	}
}

// emitDomain writes every metric of one domain. Values libvirt did not report
// are left out rather than exported as zero, except where zero is the truth
// (CPU time of a shut-off domain).
func (d *descriptors) emitDomain(ch chan<- prometheus.Metric, r *domainResult) {
	name := r.name
	s := r.stats
	dl := domainLabelPairs(name)
	// Room for every metric the record can give, so one allocation holds
	// them all.
	slab := metricSlab{free: make([]domainMetric, 20+len(d.job)+len(s.Balloon)+4*len(s.VCPUs)+
		(1+len(d.block))*len(s.Block)+(1+len(d.iface))*len(s.Net))}
	emit := func(desc *prometheus.Desc, vt prometheus.ValueType, v float64, labels []*dto.LabelPair) {
		ch <- slab.next(desc, vt, v, labels)
	}
	// dgauge and dmetric emit metrics labelled with the domain only.
	dgauge := func(desc *prometheus.Desc, v float64) { emit(desc, prometheus.GaugeValue, v, dl) }
	dmetric := func(desc *prometheus.Desc, vt prometheus.ValueType, v float64) { emit(desc, vt, v, dl) }
	// dgaugeWith adds labels to the domain's; given as name, value pairs
	// in the order of their names, as Prometheus keeps them.
	dgaugeWith := func(desc *prometheus.Desc, v float64, namesAndValues ...string) {
		emit(desc, prometheus.GaugeValue, v, withLabels(dl, namesAndValues...))
	}

	dgauge(d.domainScrapeSuccess, boolFloat(len(r.errs) == 0 && s.HasState))
	dgauge(d.timedOut, boolFloat(r.timedOut))
	if r.meta != nil {
		dgaugeWith(d.domainInfo, 1, "os_type", r.meta.OSType, "os_type_arch", r.meta.OSArch, "os_type_machine", r.meta.OSMachine, "role", r.meta.Role, "uuid", r.uuid)
	}
	if s.HasState {
		desc, ok := stateDescriptions[s.State]
		if !ok {
			desc = "unknown state " + strconv.Itoa(s.State)
		}
		dgaugeWith(d.state, float64(s.State), "state_desc", desc)
	}
	if s.HasReason {
		dgauge(d.stateReason, float64(s.Reason))
	}

	switch {
	case s.HasVCPU && s.VCPUCurrent > 0:
		dgauge(d.vcpus, s.VCPUCurrent)
	case r.meta != nil && r.meta.VCPUs > 0:
		dgauge(d.vcpus, float64(r.meta.VCPUs))
	}
	if v, ok := s.Balloon["maximum"]; ok && v > 0 {
		dgauge(d.maxMemory, v*1024)
	} else if r.meta != nil && r.meta.MaxMemoryKiB > 0 {
		dgauge(d.maxMemory, float64(r.meta.MaxMemoryKiB)*1024)
	}
	if v, ok := s.Balloon["current"]; ok && v > 0 {
		dgauge(d.memoryUsage, v*1024)
	} else if r.meta != nil && r.meta.CurMemoryKiB > 0 {
		dgauge(d.memoryUsage, float64(r.meta.CurMemoryKiB)*1024)
	}
	if s.HasCPUTime {
		dmetric(d.cpuTime, prometheus.CounterValue, s.CPUTime*1e-9)
	} else if s.HasState && s.State == stateShutoff {
		dmetric(d.cpuTime, prometheus.CounterValue, 0)
	}

	if r.autostart != nil {
		dgauge(d.autostart, boolFloat(*r.autostart))
	}
	if r.snapshots != nil {
		dgauge(d.snapshots, float64(len(r.snapshots)))
		if len(r.snapshots) > 0 {
			dgauge(d.snapshotOldest, float64(slices.Min(r.snapshots)))
			dgauge(d.snapshotNewest, float64(slices.Max(r.snapshots)))
		}
	}

	for _, b := range d.balloon {
		if v, ok := s.Balloon[b.field]; ok {
			dmetric(b.desc, b.valueType, v*b.scale)
		}
	}
	reported := false
	if avail, ok := s.Balloon["available"]; ok && avail > 0 {
		if usable, ok := s.Balloon["usable"]; ok {
			dgauge(d.memUsedPercent, (avail-usable)/avail*100)
			reported = true
		}
	}
	// A running domain whose guest reports no memory use has NaN, as
	// inovex/prometheus-libvirt-exporter gives it ((0-0)/0): its users'
	// panels keep the series, and no comparison holds for NaN, so no alert
	// reads it as a value. A domain whose record is incomplete has none.
	if !reported && s.active() && len(r.errs) == 0 {
		dgauge(d.memUsedPercent, math.NaN())
	}
	if s.HasState && s.State == stateRunning {
		dgauge(d.memStatsReported, boolFloat(reported))
	}
	if s.active() {
		if v, ok := s.Balloon["current"]; ok {
			dgauge(d.memCurrentBalloon, v*1024)
		}
		if v, ok := s.Balloon["maximum"]; ok {
			dgauge(d.memMaximum, v*1024)
		}
	}
	if r.job != nil {
		for _, m := range d.job {
			dgauge(m.desc, m.value(r.job))
		}
	}

	if s.HasVCPU {
		dgauge(d.vcpuCurrent, s.VCPUCurrent)
		dgauge(d.vcpuMaximum, s.VCPUMaximum)
	}
	for _, i := range ascending(s.VCPUs) {
		f := s.VCPUs[i].Fields
		vl := withLabels(dl, "vcpu", strconv.Itoa(i))
		if v, ok := f["state"]; ok {
			emit(d.vcpuState, prometheus.GaugeValue, v, vl)
		}
		for _, t := range []struct {
			key  string
			desc *prometheus.Desc
		}{{"time", d.vcpuTime}, {"wait", d.vcpuWait}, {"delay", d.vcpuDelay}} {
			if v, ok := f[t.key]; ok {
				emit(t.desc, prometheus.CounterValue, v*1e-9, vl)
			}
		}
	}

	seen := map[string]bool{}
	for _, i := range ascending(s.Block) {
		b := s.Block[i]
		if b.Name == "" || seen[b.Name] {
			continue // backing-chain entries repeat the name
		}
		seen[b.Name] = true
		var dm diskMeta
		if r.meta != nil {
			dm = r.meta.Disks[b.Name]
		}
		src := b.Path
		if src == "" {
			src = dm.SourceFile
		}
		dgaugeWith(d.blockInfo, 1, "disk_type", dm.DiskType, "driver_cache", dm.DriverCache, "driver_discard", dm.DriverDiscard,
			"driver_name", dm.DriverName, "driver_type", dm.DriverType, "serial", dm.Serial, "source_file", src,
			"source_protocol", dm.SourceProtocol, "target_bus", dm.TargetBus, "target_device", b.Name)
		bl := withLabels(dl, "target_device", b.Name)
		for _, m := range d.block {
			if v, ok := b.Fields[m.field]; ok {
				emit(m.desc, m.valueType, v*m.scale, bl)
			}
		}
	}
	clear(seen)
	for _, i := range ascending(s.Net) {
		n := s.Net[i]
		if n.Name == "" || seen[n.Name] {
			continue
		}
		seen[n.Name] = true
		var im interfaceMeta
		if r.meta != nil {
			im = r.meta.Interfaces[n.Name]
		}
		dgaugeWith(d.ifaceInfo, 1, "mac_address", strings.ToLower(im.MACAddress), "source_bridge", im.SourceBridge, "target_device", n.Name)
		il := withLabels(dl, "target_device", n.Name)
		for _, m := range d.iface {
			if v, ok := n.Fields[m.field]; ok {
				emit(m.desc, m.valueType, v*m.scale, il)
			}
		}
	}
}

// domainMetric is a const metric whose label pairs are shared by all the
// metrics of one domain that carry only the domain label. Building the pair
// once per domain, and the metrics of a domain in one slab (metricSlab),
// removes most of a scrape's allocations at thousands of domains (see
// BenchmarkEmitDomain). The dto value is made in Write: holding it in the
// metric would save that allocation but, with a gauge and a counter field
// in every metric, cost more memory than it saves (4 MiB more peak RSS at
// 1,000 domains, measured).
type domainMetric struct {
	desc   *prometheus.Desc
	typ    prometheus.ValueType
	value  float64
	labels []*dto.LabelPair
}

func (m *domainMetric) Desc() *prometheus.Desc { return m.desc }

func (m *domainMetric) Write(out *dto.Metric) error {
	out.Label = m.labels
	if m.typ == prometheus.CounterValue {
		out.Counter = &dto.Counter{Value: &m.value}
	} else {
		out.Gauge = &dto.Gauge{Value: &m.value}
	}
	return nil
}

// metricSlab hands out the metrics of one domain from one allocation.
// A metric is never moved: should the slab run out, it is left to the
// metrics already sent and a new one started.
type metricSlab struct {
	free []domainMetric
}

func (s *metricSlab) next(desc *prometheus.Desc, typ prometheus.ValueType, v float64, labels []*dto.LabelPair) *domainMetric {
	if len(s.free) == 0 {
		s.free = make([]domainMetric, 8)
	}
	m := &s.free[0]
	s.free = s.free[1:]
	m.desc, m.typ, m.value, m.labels = desc, typ, v, labels
	return m
}

func domainLabelPairs(name string) []*dto.LabelPair {
	key, value := "domain", strings.ToValidUTF8(name, "\uFFFD")
	return []*dto.LabelPair{{Name: &key, Value: &value}}
}

// withLabels returns the domain's pairs plus more, given as name, value,
// name, value... with the names in ascending order after "domain", the
// order Prometheus keeps label pairs in.
func withLabels(domain []*dto.LabelPair, namesAndValues ...string) []*dto.LabelPair {
	n := len(namesAndValues) / 2
	pairs := make([]dto.LabelPair, n)
	out := make([]*dto.LabelPair, 1, n+1)
	out[0] = domain[0]
	for i := range pairs {
		// The pairs point into namesAndValues, made valid UTF-8 in place.
		namesAndValues[2*i+1] = strings.ToValidUTF8(namesAndValues[2*i+1], "\uFFFD")
		pairs[i].Name, pairs[i].Value = &namesAndValues[2*i], &namesAndValues[2*i+1]
		out = append(out, &pairs[i])
	}
	return out
}

// ascending returns the keys of a map of device or vCPU indexes in order.
// libvirt numbers them 0 to n-1, so the usual case needs no sort.
func ascending[V any](m map[int]V) []int {
	keys := make([]int, 0, len(m))
	for i := 0; i < len(m); i++ {
		if _, ok := m[i]; !ok {
			return slices.Sorted(maps.Keys(m))
		}
		keys = append(keys, i)
	}
	return keys
}
