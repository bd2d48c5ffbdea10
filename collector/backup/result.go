package backup

import (
	"slices"
	"time"
)

// run is one backup (or restore) run as read from disk.
type run struct {
	Start, End time.Time
	Finished   bool // the run ended (successfully or not); false while running
	Success    bool
	Errors     int

	// Size of what the run left behind, when the job type can tell.
	HasSize              bool
	SizeBytes, DiskBytes int64
	Files                int64
	UnreadableDirs       int64 // directories left out of the size

	// What rclone reports it transferred.
	HasTransfer      bool
	TransferredBytes float64
	TransferredFiles float64

	// Reason says, in an operator's words, why a finished run is not a
	// success ("killed at step 2 of 5 (no end line); the next run started
	// at ...", "rclone logged 3 ERROR lines"). It is what /backups,
	// --backup.explain, the failed-run log line and BackupFailed's
	// description show, so a killed run with no error lines is still
	// explained. Empty for a success and for a run still going.
	Reason string
	// StartRef and EndRef are the evidence of a run read from a log: the
	// file, line number and text of its first and last lines. Zero for
	// runs that are not read from lines (sets judged by their contents,
	// dumps).
	StartRef, EndRef lineRef
	// FirstError is the first of the run's Errors lines, quoted in Reason.
	FirstError lineRef
	// Evidence is the line that shows why a failed run failed when that
	// is neither its first nor its last line: rclone's last statistics
	// line of a run killed mid-copy ("Transferred: 0 / 6, 0%"), or the
	// first error line. Shown by /backups and --backup.explain.
	Evidence lineRef
	// LastStep is the newest step counter of a step-log run, "2 of 5" for
	// "[2/5]": the step a run without end line stopped in, for Reason.
	LastStep string
}

// lineRef points at one line of a log, for quoting it as evidence.
type lineRef struct {
	File string
	Line int // 1-based
	Text string
}

// vmBackup is the newest successful backup of one VM in a job.
type vmBackup struct {
	Time      time.Time
	HasSize   bool
	SizeBytes int64
	// PrevSize is the median apparent size of the VM's previous successful
	// backups (vzdump), what BackupSizeDropped compares the newest with.
	HasPrevSize bool
	PrevSize    int64
	// Copies are the end times of every successful backup of the VM the
	// job still holds, oldest first, the newest being Time: what a sync
	// job copying this one (copies:) may have taken offsite. Filled for
	// vzdump always and for dated_dir only when a job copies it (older
	// sets cost a read of the VM's XML each).
	Copies []time.Time
}

// jobData is what one scan found out about a job.
type jobData struct {
	LastRun      *run // newest run, finished or not
	LastFinished *run // newest finished run
	LastSuccess  *run // newest successful run
	Running      bool
	Sets         int
	OldestSet    time.Time
	VMs          map[string]vmBackup // by domain name (or vzdump guest id)
	MissingDisks map[string]int      // dated_dir: disks without a copy, by domain
	// MissingDiskNames names those disks (target, else source), by domain.
	MissingDiskNames map[string][]string
	// MissingDiskWhy says for each of those disks, in the same order, why
	// it cannot be restored ("no copy of /var/lib/libvirt/images/a.img in
	// the set"): what /backups shows in the VM's row.
	MissingDiskWhy map[string][]string
	// UnreadableVMs are the VMs that cannot be judged (dated_dir): their
	// newest definition in the job's sets could not be read, or it could
	// and a disk copy it names exists but could not be read.
	UnreadableVMs map[string]bool
	// UnjudgedWhy names, for the VMs of UnreadableVMs that are there for
	// their disk copies, each unreadable copy and its error ("the copy of
	// /var/lib/libvirt/images/a.qcow2 in the set is unreadable:
	// .../images/a.qcow2: permission denied"): what /backups shows in the
	// VM's row.
	UnjudgedWhy map[string][]string
	VMLastRunOK map[string]bool // vzdump: each guest's newest finished attempt
	Total       *treeSize       // all sets together (dated_dir)
	// PrevSuccessSize is the median apparent size of the successful
	// backups before the newest one (up to previousBackups of them).
	HasPrevSize     bool
	PrevSuccessSize int64
}

// add files r into the newest-run bookkeeping. Callers add runs oldest
// first, so on equal times (runs within the same second) the later one wins.
func (d *jobData) add(r run) {
	rr := r
	if d.LastRun == nil || !r.sortTime().Before(d.LastRun.sortTime()) {
		d.LastRun = &rr
	}
	if !r.Finished {
		return
	}
	if d.LastFinished == nil || !r.End.Before(d.LastFinished.End) {
		d.LastFinished = &rr
	}
	if r.Success && (d.LastSuccess == nil || !r.End.Before(d.LastSuccess.End)) {
		d.LastSuccess = &rr
	}
}

// sortTime orders runs: the end of a finished run, the start of a running one.
func (r run) sortTime() time.Time {
	if r.Finished {
		return r.End
	}
	return r.Start
}

// addSet counts r as one set present (retention) and files it as a run.
func (d *jobData) addSet(r run) {
	d.countSet(r.Start)
	d.add(r)
}

// countSet counts one set present that started at start.
func (d *jobData) countSet(start time.Time) {
	d.Sets++
	if d.OldestSet.IsZero() || start.Before(d.OldestSet) {
		d.OldestSet = start
	}
}

// finish recomputes Running after all runs were added: only a run that is
// still the newest counts as running.
func (d *jobData) finish() {
	d.Running = d.LastRun != nil && !d.LastRun.Finished
}

// jobResult is the state of one job as the collector exports it.
type jobResult struct {
	Job          Job
	ScanOK       bool
	ScanErr      string
	ScanDuration time.Duration
	ScanTime     time.Time
	Data         *jobData // from the last successful scan; nil before the first
	// Unreadable is what this scan, successful or not, could not read:
	// path to error.
	Unreadable map[string]string
}

// previousBackups is how many successful backups before the newest one the
// size comparison looks at: enough that one odd backup does not move the
// median, few enough to follow a real change of size within a week of
// nightly runs.
const previousBackups = 5

// medianOfPrevious returns the median of the up to previousBackups sizes
// before the last one of sizes (oldest first; the last is the newest
// successful backup), and false when there is none.
func medianOfPrevious(sizes []int64) (int64, bool) {
	if len(sizes) < 2 {
		return 0, false
	}
	prev := slices.Clone(sizes[max(0, len(sizes)-1-previousBackups) : len(sizes)-1])
	slices.Sort(prev)
	n := len(prev)
	if n%2 == 1 {
		return prev[n/2], true
	}
	return (prev[n/2-1] + prev[n/2]) / 2, true
}
