package backup

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

const namespace = "vmhost_backup"

// Options are the scanner's flags.
type Options struct {
	ScanInterval    time.Duration // between background scans
	ScanConcurrency int           // jobs scanned at once
	// ScanTimeout bounds one job's scan. A scan stuck longer (a hung NFS
	// mount, a disk that stopped answering) is reported as failed and
	// stops holding up the other jobs; it is not started again while it
	// hangs.
	ScanTimeout time.Duration
	Location    *time.Location
	Now         func() time.Time // for tests; time.Now otherwise
	// Load reads a config file for Reload; LoadConfig when nil. The
	// exporter passes one that accepts a missing default file as "no jobs".
	Load func(path string) (*Config, error)
}

// scanFuncs maps a job type to its scanner.
var scanFuncs = map[string]func(Job, time.Time, *time.Location, *unreadablePaths) (*jobData, error){
	TypeDatedDir:   scanDatedDir,
	TypeRcloneLog:  scanRcloneLog,
	TypeVzdump:     scanVzdump,
	TypeRestoreLog: scanRestoreLog,
	TypeFileGlob:   scanFileGlob,
}

// Collector scans the configured jobs in the background and exports the
// result of the last scan. A scrape never touches the backup storage: a
// slow NFS mount or a million-file tree cannot slow it down.
type Collector struct {
	opts   Options
	logger *slog.Logger

	mu           sync.RWMutex
	cfg          *Config
	results      map[string]*jobResult
	reloadOK     bool
	reloadTime   time.Time
	scanMu       sync.Mutex           // one scan of all jobs at a time
	inFlight     map[string]time.Time // scans (by scanKey) that have not returned, since when
	running      bool                 // Run is scanning in the background
	trigger      chan struct{}
	lastScanDone time.Time

	d descriptors
}

// New returns a collector with the given config; call Run to scan.
func New(cfg *Config, opts Options, logger *slog.Logger) *Collector {
	if opts.ScanInterval <= 0 {
		opts.ScanInterval = 5 * time.Minute
	}
	if opts.ScanConcurrency <= 0 {
		opts.ScanConcurrency = 2
	}
	if opts.ScanTimeout <= 0 {
		opts.ScanTimeout = 10 * time.Minute
	}
	if opts.Location == nil {
		opts.Location = time.Local
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Load == nil {
		opts.Load = LoadConfig
	}
	if cfg == nil {
		cfg = &Config{}
	}
	cfg.linkCopies()
	return &Collector{
		opts:       opts,
		logger:     logger,
		cfg:        cfg,
		results:    map[string]*jobResult{},
		reloadOK:   true,
		reloadTime: opts.Now(),
		inFlight:   map[string]time.Time{},
		trigger:    make(chan struct{}, 1),
		d:          newDescriptors(),
	}
}

// Reload reads path and, only if it is valid, swaps it in and triggers a
// scan. On error the old config stays in force.
func (c *Collector) Reload(path string) error {
	cfg, err := c.opts.Load(path)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.reloadOK = false
		return err
	}
	moved := movedJobs(c.cfg, cfg)
	c.cfg = cfg
	c.reloadOK = true
	c.reloadTime = c.opts.Now()
	for name := range c.results {
		if !cfg.has(name) {
			delete(c.results, name)
		}
	}
	// A job pointed elsewhere (the usual fix for one stuck on a dead
	// mount) is scanned now, not after the scan round in progress, which
	// may be waiting out the old path's scan timeout.
	if c.running {
		for _, j := range moved {
			go c.scanWithDeadline(j)
		}
	}
	select {
	case c.trigger <- struct{}{}:
	default:
	}
	return nil
}

// movedJobs are the jobs of next that are new or read another source than
// in prev.
func movedJobs(prev, next *Config) []Job {
	var moved []Job
	for _, j := range next.Jobs {
		if old, ok := prev.job(j.Name); !ok || !sameSource(old, j) {
			moved = append(moved, j)
		}
	}
	return moved
}

func (c *Config) job(name string) (Job, bool) {
	for _, j := range c.Jobs {
		if j.Name == name {
			return j, true
		}
	}
	return Job{}, false
}

// current tells whether j is still what the config says about its job's
// source: a scan of a path the config no longer names says nothing about
// the job. Call with c.mu held.
func (c *Collector) current(j Job) bool {
	cur, ok := c.cfg.job(j.Name)
	return ok && sameSource(cur, j)
}

func (c *Config) has(name string) bool {
	for _, j := range c.Jobs {
		if j.Name == name {
			return true
		}
	}
	return false
}

// Run scans at once, then every ScanInterval and after each reload, until
// ctx ends.
func (c *Collector) Run(ctx context.Context) {
	c.mu.Lock()
	c.running = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.running = false
		c.mu.Unlock()
	}()
	ticker := time.NewTicker(c.opts.ScanInterval)
	defer ticker.Stop()
	for {
		c.ScanOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-c.trigger:
		}
	}
}

// ScanOnce scans every job, at most ScanConcurrency at a time, and stores
// the results.
func (c *Collector) ScanOnce(ctx context.Context) {
	c.scanMu.Lock()
	defer c.scanMu.Unlock()
	c.mu.RLock()
	jobs := append([]Job(nil), c.cfg.Jobs...)
	c.mu.RUnlock()

	sem := make(chan struct{}, c.opts.ScanConcurrency)
	var wg sync.WaitGroup
	for _, j := range jobs {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(j Job) {
			defer func() { <-sem; wg.Done() }()
			c.scanWithDeadline(j)
		}(j)
	}
	wg.Wait()
	c.mu.Lock()
	c.lastScanDone = c.opts.Now()
	c.mu.Unlock()
}

// scanWithDeadline scans one job, waiting at most ScanTimeout. A scan that
// takes longer goes on in the background (a goroutine blocked in a system
// call cannot be stopped); the job is reported as failing now, its last
// good values stay, and its result is stored if it ever returns. While it
// hangs, no second scan of the same source is started. Scans are told
// apart by job and source: a job a reload points at another path is
// scanned there at once, whatever hangs on the old one.
func (c *Collector) scanWithDeadline(j Job) {
	key := scanKey(j)
	c.mu.Lock()
	if since, busy := c.inFlight[key]; busy {
		c.mu.Unlock()
		if time.Since(since) >= c.opts.ScanTimeout {
			c.markStuck(j, since)
		} // else: a scan started moments ago (after a reload) stores its result
		return
	}
	started := time.Now()
	c.inFlight[key] = started
	c.mu.Unlock()
	done := make(chan *jobResult, 1)
	go func() {
		res := c.scanJob(j)
		c.mu.Lock()
		delete(c.inFlight, key)
		c.mu.Unlock()
		done <- res
	}()
	timer := time.NewTimer(c.opts.ScanTimeout)
	defer timer.Stop()
	select {
	case res := <-done:
		c.store(res)
	case <-timer.C:
		c.markStuck(j, started)
		go func() { c.store(<-done) }()
	}
}

// markStuck reports a job whose scan has not returned since since. The
// scan timestamp stays at the last scan that ended, so its age tells how
// long the job has been blind (the BackupScanStuck alert).
func (c *Collector) markStuck(j Job, since time.Time) {
	msg := fmt.Sprintf("scan has not finished after %s (timeout %s): a hung file system or mount?", time.Since(since).Round(time.Second), c.opts.ScanTimeout)
	c.logger.Warn("Backup scan failed", "backup_job", j.Name, "type", j.Type, "err", msg)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.current(j) {
		return // removed, or pointed elsewhere by a reload
	}
	res := &jobResult{Job: j, ScanErr: msg}
	if prev := c.results[j.Name]; prev != nil && sameSource(prev.Job, j) {
		res.Data, res.ScanTime, res.ScanDuration, res.Unreadable = prev.Data, prev.ScanTime, prev.ScanDuration, prev.Unreadable
	}
	c.results[j.Name] = res
}

// testHookBeforeScan lets a test hold a job's scan, as a system call on a
// dead NFS mount would: no such mount can be made in the test environment.
var testHookBeforeScan func(Job)

// scanJob never panics on input: a bug triggered by a strange file costs
// one job's scan, not the exporter.
func (c *Collector) scanJob(j Job) (res *jobResult) {
	start := time.Now()
	res = &jobResult{Job: j}
	defer func() {
		if p := recover(); p != nil {
			res.ScanOK, res.Data = false, nil
			res.ScanErr = fmt.Sprintf("internal error while scanning: %v", p)
		}
		res.ScanDuration = time.Since(start)
		res.ScanTime = c.opts.Now()
		if !res.ScanOK {
			c.logger.Warn("Backup scan failed", "backup_job", j.Name, "type", j.Type, "err", res.ScanErr)
		}
	}()
	if testHookBeforeScan != nil {
		testHookBeforeScan(j)
	}
	now := c.opts.Now()
	var unreadable unreadablePaths
	defer func() { res.Unreadable = unreadable.snapshot() }()
	data, err := scanFuncs[j.Type](j, now, j.Location(c.opts.Location), &unreadable)
	if err == nil {
		err = checkClock(data, now)
	}
	if err != nil {
		res.ScanErr = err.Error()
		return res
	}
	res.ScanOK, res.Data = true, data
	return res
}

// maxClockSkew is how far in the future a backup may claim to have
// finished before the claim is rejected.
const maxClockSkew = 5 * time.Minute

// checkClock rejects a scan whose newest success lies in the future: the
// host's clock or the backup's was wrong, and exporting it would make a
// backup look fresh for as long as the skew lasts.
func checkClock(d *jobData, now time.Time) error {
	if d.LastSuccess != nil && d.LastSuccess.End.After(now.Add(maxClockSkew)) {
		return fmt.Errorf("clock skew: the newest successful backup ends at %s, %s after this host's time %s; check the clocks",
			d.LastSuccess.End.Format(time.RFC3339), d.LastSuccess.End.Sub(now).Round(time.Second), now.Format(time.RFC3339))
	}
	return nil
}

// store keeps the previous good data when a scan fails: what was true
// then is still the last thing known (its timestamps keep ageing, so
// nothing looks fresher than it is), and scan_success says it is old.
func (c *Collector) store(res *jobResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.current(res.Job) {
		return // removed, or pointed elsewhere, by a reload during the scan
	}
	prev := c.results[res.Job.Name]
	if prev != nil && !sameSource(prev.Job, res.Job) {
		prev = nil // the job now reads something else: its old data says nothing
	}
	// Every set gone at once is what an unmounted backup disk looks like
	// (an empty mount point), not a retention policy: report it as a scan
	// failure instead of "no backups".
	if res.ScanOK && res.Data.Sets == 0 && !res.Data.Running && prev != nil && prev.Data != nil && prev.Data.Sets > 0 {
		res.ScanOK = false
		res.ScanErr = fmt.Sprintf("no backup sets found any more (the last good scan found %d); is the backup storage mounted?", prev.Data.Sets)
		c.logger.Warn("Backup scan failed", "backup_job", res.Job.Name, "err", res.ScanErr)
	}
	if !res.ScanOK && prev != nil {
		res.Data = prev.Data
	}
	// A dump rewritten in place (gzip > all.sql.gz every night) leaves no
	// finished backup on disk while it runs: the last success known stays
	// the job's, ageing, rather than the job looking as if it never had
	// one.
	if res.ScanOK && res.Data.Running && res.Data.LastSuccess == nil && prev != nil && prev.Data != nil && prev.Data.LastSuccess != nil {
		res.Data.LastSuccess = prev.Data.LastSuccess
		res.Data.PrevSuccessSize, res.Data.HasPrevSize = prev.Data.PrevSuccessSize, prev.Data.HasPrevSize
	}
	if res.ScanOK {
		c.logNewFailure(prev, res)
	}
	var before map[string]string
	if prev != nil {
		before = prev.Unreadable
	}
	for _, p := range newlyUnreadable(before, res.Unreadable) {
		c.logger.Warn("Backup evidence unreadable: the verdict leaves it out", "backup_job", res.Job.Name, "path", p, "err", res.Unreadable[p])
	}
	c.results[res.Job.Name] = res
}

// logNewFailure logs a failed newest run once, with its reason, when a
// scan first sees it (or the exporter starts), not at every scan.
func (c *Collector) logNewFailure(prev, res *jobResult) {
	r := res.Data.LastFinished
	if r == nil || r.Success {
		return
	}
	if prev != nil && prev.Data != nil {
		if p := prev.Data.LastFinished; p != nil && !p.Success && p.Start.Equal(r.Start) && p.End.Equal(r.End) {
			return
		}
	}
	args := []any{"backup_job", res.Job.Name, "type", res.Job.Type, "reason", display(FailureReason(res.Job, r)),
		"start", r.Start.Format(time.RFC3339), "end", r.End.Format(time.RFC3339), "error_lines", r.Errors}
	if r.EndRef.File != "" {
		args = append(args, "end_line", fmt.Sprintf("%s:%d", display(r.EndRef.File), r.EndRef.Line))
	}
	c.logger.Warn("Backup run failed", args...)
}

// scanKey names one job's scan of one source.
func scanKey(j Job) string {
	return strings.Join([]string{j.Name, j.Type, j.Path, j.LogFile, j.Glob}, "\x00")
}

func sameSource(a, b Job) bool {
	// A new time zone moves every time read before: the old data is wrong.
	return a.Type == b.Type && a.Path == b.Path && a.LogFile == b.LogFile && a.Glob == b.Glob && a.TimeZone == b.TimeZone
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) { c.d.describe(ch) }

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	g := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	g(c.d.reloadOK, boolFloat(c.reloadOK))
	g(c.d.reloadTime, float64(c.reloadTime.UnixNano())/1e9)
	g(c.d.scanInterval, c.opts.ScanInterval.Seconds())
	jobs := append([]Job(nil), c.cfg.Jobs...)
	sort.Slice(jobs, func(a, b int) bool { return jobs[a].Name < jobs[b].Name })
	for _, j := range jobs {
		name := j.Name
		g(c.d.jobInfo, 1, name, j.Type)
		g(c.d.maxAge, time.Duration(j.MaxAge).Seconds(), name)
		res := c.results[name]
		if res == nil {
			continue // not scanned yet
		}
		g(c.d.scanSuccess, boolFloat(res.ScanOK), name)
		g(c.d.unreadablePaths, float64(len(res.Unreadable)), name)
		if !res.ScanTime.IsZero() { // zero: stuck in its first scan
			g(c.d.scanDuration, res.ScanDuration.Seconds(), name)
			g(c.d.scanTime, ts(res.ScanTime), name)
		}
		if res.Data != nil {
			c.d.emitData(ch, name, res.Data)
			if r := res.Data.LastFinished; r != nil && !r.Success {
				g(c.d.lastRunFailure, 1, name, shorten(display(FailureReason(j, r))))
			}
		}
		if j.Copies != "" {
			c.emitOffsite(ch, j, res)
		}
	}
}

// emitOffsite exports, for a sync job that copies a local job, each VM's
// newest local copy that a successful run of the sync job finished after
// (it is offsite), and its oldest copy that none has yet (it waits). The
// labels are the sync job's: one local job may be copied by several (S3
// and another host), each with its own verdict and max_age. Nothing is
// exported before both jobs have been scanned: an unread sync log says
// nothing about what is offsite.
func (c *Collector) emitOffsite(ch chan<- prometheus.Metric, sync Job, res *jobResult) {
	local := c.results[sync.Copies]
	if res.Data == nil || local == nil || local.Data == nil {
		return
	}
	for _, vm := range slices.Sorted(maps.Keys(local.Data.VMs)) {
		o := offsiteOf(local.Data.VMs[vm], res.Data)
		label := labelSafe(vm)
		if !o.Offsite.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.d.vmOffsite, prometheus.GaugeValue, ts(o.Offsite), sync.Name, label)
		}
		if !o.Pending.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.d.vmOffsitePending, prometheus.GaugeValue, ts(o.Pending), sync.Name, label)
		}
	}
}

// offsite is where one VM's copies stand against one sync job: its
// newest local copy a successful sync run finished after (zero: none),
// and its oldest local copy none has finished after yet (zero: none
// waits).
type offsite struct{ Offsite, Pending time.Time }

// offsiteOf judges a VM's local copies v against the sync job's data:
// /metrics and /backups say the same.
func offsiteOf(v vmBackup, sync *jobData) offsite {
	var synced time.Time // end of the sync job's newest successful run
	if s := sync.LastSuccess; s != nil {
		synced = s.End
	}
	copies := v.Copies
	if len(copies) == 0 {
		copies = []time.Time{v.Time}
	}
	// copies is oldest first: those up to synced are offsite (none when
	// the sync job never succeeded: synced is zero).
	k, _ := slices.BinarySearchFunc(copies, synced, func(t, s time.Time) int {
		if t.After(s) {
			return 1
		}
		return -1
	})
	var o offsite
	if k > 0 {
		o.Offsite = copies[k-1]
	}
	if k < len(copies) {
		o.Pending = copies[k]
	}
	return o
}

func ts(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

type descriptors struct {
	reloadOK, reloadTime, scanInterval                             *prometheus.Desc
	jobInfo, maxAge                                                *prometheus.Desc
	lastSuccess, lastRun, lastRunSuccess, running, lastRunDuration *prometheus.Desc
	lastRunErrors, successSize, successDisk, successFiles          *prometheus.Desc
	lastRunFailure                                                 *prometheus.Desc
	transferredBytes, transferredFiles                             *prometheus.Desc
	sets, oldestSet, vmLastSuccess, vmSize, vmMissingDisks         *prometheus.Desc
	vmLastRunSuccess, vmOffsite, vmOffsitePending, vmMissingDisk   *prometheus.Desc
	totalSize, totalDisk, totalFiles, totalUnreadable              *prometheus.Desc
	successUnreadable, prevSuccessSize, vmPrevSize                 *prometheus.Desc
	scanSuccess, scanDuration, scanTime                            *prometheus.Desc
	// vmDefinitionUnreadable marks a VM not judged for want of readable
	// evidence: its definition, or (since the operator trial that found
	// an unreadable images/ reported as missing disks) a disk copy its
	// readable definition names. One series for both, not a second one:
	// the name is in REQUIREMENTS and may not change, the rules and
	// dashboards that read it need no new series to treat both the same,
	// and /backups says which of the two it is.
	unreadablePaths, vmDefinitionUnreadable *prometheus.Desc
}

func newDescriptors() descriptors {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(namespace+"_"+name, help, labels, nil)
	}
	j := "backup_job"
	return descriptors{
		reloadOK:               d("config_last_reload_successful", "Whether the last reload of the backup config succeeded (the old config stays in force when not)."),
		reloadTime:             d("config_last_reload_success_timestamp_seconds", "When the backup config was last loaded successfully."),
		scanInterval:           d("scan_interval_seconds", "Time between background scans (--backup.scan-interval): a job whose last scan ended several intervals ago is stuck."),
		jobInfo:                d("job_info", "One series per configured backup job; backup_type is the job's type.", j, "backup_type"),
		maxAge:                 d("max_age_seconds", "The job's configured max_age: older newest success means stale.", j),
		lastSuccess:            d("last_success_timestamp_seconds", "End time of the newest successful run (absent if none).", j),
		lastRun:                d("last_run_timestamp_seconds", "End time of the newest run, or its start while it runs.", j),
		lastRunSuccess:         d("last_run_success", "Whether the newest finished run succeeded.", j),
		running:                d("running", "1 while a run is in progress.", j),
		lastRunDuration:        d("last_run_duration_seconds", "Duration of the newest finished run.", j),
		lastRunErrors:          d("last_run_errors", "Error lines in the newest finished run's log.", j),
		lastRunFailure:         d("last_run_failure_info", "1 while the newest finished run failed; reason says why in a few words (killed at a step, rclone ERROR lines, a disk not copied), the way /backups explains it, cut to 160 bytes. One series per job, replaced when a newer run fails. Absent while it succeeded.", j, "reason"),
		successSize:            d("last_success_size_bytes", "Apparent size of the newest successful backup (sparse holes included).", j),
		successDisk:            d("last_success_disk_usage_bytes", "Disk space of the newest successful backup (sparse holes excluded, hard links counted once).", j),
		successFiles:           d("last_success_files", "Files in the newest successful backup.", j),
		transferredBytes:       d("last_success_transferred_bytes", "Bytes rclone reports it transferred in the newest successful run.", j),
		transferredFiles:       d("last_success_transferred_files", "Files rclone reports it transferred in the newest successful run.", j),
		sets:                   d("sets", "Backup sets (dated directories, archives, files, logged runs) present.", j),
		oldestSet:              d("oldest_set_timestamp_seconds", "Start time of the oldest backup set present (retention).", j),
		vmLastSuccess:          d("vm_last_success_timestamp_seconds", "End time of the newest successful backup holding this VM (domain is the VM name, or the guest id for vzdump).", j, "domain"),
		vmSize:                 d("vm_last_success_size_bytes", "Apparent size of the VM's disk images (vzdump: its archive) in that backup.", j, "domain"),
		vmLastRunSuccess:       d("vm_last_run_success", "Whether the guest's newest finished backup attempt succeeded (vzdump; domain is the guest id): a guest that fails tonight stays visible when the job's newest run is judged as a whole.", j, "domain"),
		vmOffsite:              d("vm_offsite_timestamp_seconds", "Time of the VM's newest local copy (in the job named by this sync job's copies) that a successful run of this sync job finished after: its newest copy offsite. backup_job is the sync job. Absent while none has.", j, "domain"),
		vmOffsitePending:       d("vm_offsite_pending_timestamp_seconds", "Time of the VM's oldest local copy (in the job named by this sync job's copies) that no successful run of this sync job has finished after yet: how long a copy has waited to go offsite (VMNoOffsiteCopy). backup_job is the sync job. Absent when every copy has reached offsite.", j, "domain"),
		vmMissingDisk:          d("vm_missing_disk_info", "1 for each disk counted in vmhost_backup_vm_missing_disks, named by its target (vda), else its source: which disks of the VM its backups cannot restore (dated_dir).", j, "domain", "disk"),
		vmMissingDisks:         d("vm_missing_disks", "Disks of the VM (per its XML in the newest successful set holding it) that cannot be restored from that set: block devices (LVM), network disks (iSCSI, RBD), files outside the copied images directory, copies missing, or qcow2 overlays whose backing chain is not all in the set. A VM with missing disks gets no per-VM success from a set (dated_dir).", j, "domain"),
		totalSize:              d("total_size_bytes", "Apparent size of all the job's sets together (dated_dir).", j),
		totalDisk:              d("total_disk_usage_bytes", "Disk space of all the job's sets together, hard links between sets (rsync --link-dest) counted once: what du -s reports for them (dated_dir).", j),
		prevSuccessSize:        d("previous_success_size_bytes", "Median apparent size of the up to 5 successful backups before the newest one (dated_dir sets, file_glob files): what BackupSizeDropped compares the newest successful backup with, per backup, not per time sample.", j),
		vmPrevSize:             d("vm_previous_success_size_bytes", "Median size of the up to 5 successful backups of the VM before its newest one (vzdump archives).", j, "domain"),
		successUnreadable:      d("last_success_unreadable_dirs", "Directories in the newest successful set that could not be read (permissions, I/O errors): its sizes leave them out, they are partial (dated_dir).", j),
		totalUnreadable:        d("total_unreadable_dirs", "Directories in all the job's sets that could not be read: the totals leave them out (dated_dir).", j),
		totalFiles:             d("total_files", "Files in all the job's sets together (dated_dir).", j),
		scanSuccess:            d("scan_success", "Whether the last background scan of the job succeeded; when not, the other values are from the last good scan.", j),
		scanDuration:           d("scan_duration_seconds", "Duration of the last background scan of the job.", j),
		scanTime:               d("scan_timestamp_seconds", "When the last background scan of the job ended.", j),
		unreadablePaths:        d("unreadable_paths", "Files and directories the last scan of the job needed and could not open (permissions, I/O errors; each is logged once with its error): the job's verdict and sizes leave them out. The usual cause is a backup tree written by root with private modes, read by the unprivileged service user without CAP_DAC_READ_SEARCH.", j),
		vmDefinitionUnreadable: d("vm_definition_unreadable", "1 for a VM that cannot be judged (dated_dir): its newest definition (vm_xml/<vm>.xml) in the job's sets could not be read or parsed, or it could and a disk copy it names exists in that set but could not be read (permissions, I/O errors; a copy the exporter can see is not there is a missing disk instead; behind an unsearchable images/ it cannot see that). It has no per-VM success and no missing disks from that set (an older set may still give both); an unreadable path is counted in vmhost_backup_unreadable_paths, a definition that is not XML is not. Present only for such VMs.", j, "domain"),
	}
}

func (d *descriptors) describe(ch chan<- *prometheus.Desc) {
	for _, x := range []*prometheus.Desc{
		d.reloadOK, d.reloadTime, d.scanInterval, d.jobInfo, d.maxAge, d.lastSuccess, d.lastRun, d.lastRunSuccess,
		d.running, d.lastRunDuration, d.lastRunErrors, d.lastRunFailure, d.successSize, d.successDisk, d.successFiles,
		d.transferredBytes, d.transferredFiles, d.sets, d.oldestSet, d.vmLastSuccess, d.vmSize, d.vmMissingDisks, d.vmLastRunSuccess, d.vmOffsite, d.vmOffsitePending, d.vmMissingDisk,
		d.totalSize, d.totalDisk, d.totalFiles, d.totalUnreadable, d.successUnreadable, d.prevSuccessSize, d.vmPrevSize,
		d.scanSuccess, d.scanDuration, d.scanTime, d.unreadablePaths, d.vmDefinitionUnreadable,
	} {
		ch <- x
	}
}

func (d *descriptors) emitData(ch chan<- prometheus.Metric, job string, data *jobData) {
	g := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	g(d.running, boolFloat(data.Running), job)
	g(d.sets, float64(data.Sets), job)
	if !data.OldestSet.IsZero() {
		g(d.oldestSet, ts(data.OldestSet), job)
	}
	if t := data.Total; t != nil {
		g(d.totalSize, float64(t.Apparent), job)
		g(d.totalDisk, float64(t.Allocated), job)
		g(d.totalFiles, float64(t.Files), job)
		g(d.totalUnreadable, float64(t.Unreadable), job)
	}
	if r := data.LastRun; r != nil {
		g(d.lastRun, ts(r.sortTime()), job)
	}
	if r := data.LastFinished; r != nil {
		g(d.lastRunSuccess, boolFloat(r.Success), job)
		g(d.lastRunDuration, r.End.Sub(r.Start).Seconds(), job)
		g(d.lastRunErrors, float64(r.Errors), job)
	}
	if r := data.LastSuccess; r != nil {
		g(d.lastSuccess, ts(r.End), job)
		if r.HasSize {
			g(d.successSize, float64(r.SizeBytes), job)
			g(d.successDisk, float64(r.DiskBytes), job)
			g(d.successFiles, float64(r.Files), job)
			if data.Total != nil { // dated_dir: sizes come from a walk
				g(d.successUnreadable, float64(r.UnreadableDirs), job)
			}
		}
		if data.HasPrevSize {
			g(d.prevSuccessSize, float64(data.PrevSuccessSize), job)
		}
		if r.HasTransfer {
			g(d.transferredBytes, r.TransferredBytes, job)
			g(d.transferredFiles, r.TransferredFiles, job)
		}
	}
	for _, vm := range slices.Sorted(maps.Keys(data.VMLastRunOK)) {
		g(d.vmLastRunSuccess, boolFloat(data.VMLastRunOK[vm]), job, labelSafe(vm))
	}
	for _, vm := range slices.Sorted(maps.Keys(data.UnreadableVMs)) {
		g(d.vmDefinitionUnreadable, 1, job, labelSafe(vm))
	}
	for _, vm := range slices.Sorted(maps.Keys(data.MissingDisks)) {
		g(d.vmMissingDisks, float64(data.MissingDisks[vm]), job, labelSafe(vm))
	}
	for _, vm := range slices.Sorted(maps.Keys(data.MissingDiskNames)) {
		seen := map[string]bool{} // two disks with one name would be one series twice
		for _, disk := range data.MissingDiskNames[vm] {
			if disk = labelSafe(disk); !seen[disk] {
				seen[disk] = true
				g(d.vmMissingDisk, 1, job, labelSafe(vm), disk)
			}
		}
	}
	for _, vm := range slices.Sorted(maps.Keys(data.VMs)) {
		v := data.VMs[vm]
		label := labelSafe(vm)
		g(d.vmLastSuccess, ts(v.Time), job, label)
		if v.HasSize {
			g(d.vmSize, float64(v.SizeBytes), job, label)
		}
		if v.HasPrevSize {
			g(d.vmPrevSize, float64(v.PrevSize), job, label)
		}
	}
}

// labelSafe turns a name read from disk (a file name is any bytes but '/'
// and NUL) into a valid label value: bytes that are not UTF-8 become
// \xNN. A label value that is not UTF-8 makes the client library refuse
// the metric, and the panic of MustNewConstMetric would end the whole
// Collect: every job after it would vanish from the scrape.
func labelSafe(name string) string {
	if utf8.ValidString(name) {
		return name
	}
	var b strings.Builder
	for len(name) > 0 {
		r, size := utf8.DecodeRuneInString(name)
		if r == utf8.RuneError && size <= 1 {
			fmt.Fprintf(&b, "\\x%02x", name[0])
			name = name[1:]
			continue
		}
		b.WriteString(name[:size])
		name = name[size:]
	}
	return b.String()
}
