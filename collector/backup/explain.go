package backup

import (
	"context"
	_ "embed"
	"fmt"
	htmltemplate "html/template"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode"

	"github.com/prometheus/common/model"
)

// Verdicts of a job, as /backups and --backup.explain name them.
const (
	VerdictOK            = "ok"
	VerdictRunning       = "running"
	VerdictFailed        = "failed"
	VerdictStale         = "stale"
	VerdictNeverSucceded = "never succeeded"
	VerdictNoScanYet     = "not scanned yet"
	VerdictScanFailing   = "scan failing"
	// VerdictPartlyRead: what could be read says ok (or running), but
	// some of the job's evidence could not be read (the service user
	// without its capability, say): the paths BackupEvidenceUnreadable
	// alerts on. An unreadable old rotation cannot change the verdict,
	// an unreadable newest vzdump log can; either way the operator has
	// permissions to fix, and "ok" alone would hide it.
	VerdictPartlyRead = "evidence unreadable"
)

// Explanation is every job's verdict with its evidence: what /backups
// shows and --backup.explain prints. It is built from the last scan only;
// building it never touches the backup storage.
type Explanation struct {
	Generated string
	Jobs      []JobView
	// Failed names the jobs whose newest finished run failed or whose scan
	// fails (--backup.explain exits 1 for them).
	Failed []string
	// PartlyRead names the jobs judged ok on part of their evidence
	// (VerdictPartlyRead; --backup.explain exits 1 for them too: a config
	// tried as the service user must not pass while it reads nothing).
	PartlyRead []string
}

// JobView is one job's verdict and the evidence for it. Every string
// read from disk has passed through display: valid UTF-8 without control
// characters, whatever the file names hold.
type JobView struct {
	Name, Type, Source string
	MaxAge             string
	Verdict            string
	// Class is the verdict's colour on the page: ok, bad, warn or info.
	Class string
	// Why says in words what makes the verdict, e.g. why the newest run
	// counts as failed.
	Why     string
	ScanErr string // the last scan's error; the evidence is then older
	LastRun *RunView
	// LastSuccess is the newest successful run: for a failed job the
	// previous success, the backup that is ageing now.
	LastSuccess *RunView
	Sets        int
	Unreadable  []PathError
	VMs         []VMRow
}

// RunView is one run with the lines it is read from.
type RunView struct {
	Start, End string
	State      string // succeeded, failed, running
	Errors     int
	Reason     string
	StartRef   *RefView
	EndRef     *RefView
	// Evidence is the line that shows why a failed run failed, when it is
	// neither the start nor the end line.
	Evidence *RefView
	// File is the file a run is (file_glob: the dump itself).
	File string
}

// RefView quotes one line of a log.
type RefView struct {
	File string
	Line int
	Text string
}

// PathError is a path the scan could not read and why.
type PathError struct{ Path, Err string }

// VMRow is one VM's protection in one job: a row of the "VM protection"
// matrix (issue 26).
type VMRow struct {
	Domain string
	// LastCopy is the end of the newest successful backup holding the VM
	// whole; empty when there is none.
	LastCopy string
	Stale    bool // LastCopy older than the job's max_age, or none
	// MissingDisks are the VM's disks that cannot be restored from the
	// newest successful set holding it (dated_dir), with why.
	MissingDisks []string
	MissingCount int
	// DefinitionUnreadable: the VM's newest XML could not be read.
	DefinitionUnreadable bool
	// NotJudged: the VM's newest XML could be read, but a disk copy it
	// names exists and could not be (dated_dir): each such copy and its
	// error. The VM is neither backed up nor missing a disk in that set.
	NotJudged []string
	// LastAttemptFailed: vzdump's newest attempt for this guest failed.
	LastAttemptFailed bool
	// Offsite is the newest offsite copy of the VM: the time of its newest
	// local copy that a successful run of a sync job naming this job in
	// `copies:` finished after (issue 26 item 1,
	// vmhost_backup_vm_offsite_timestamp_seconds), and that sync job; of
	// several sync jobs, the one with the newest copy.
	Offsite, OffsiteJob string
	// OffsitePending is the VM's oldest local copy that a sync job has not
	// taken yet (vmhost_backup_vm_offsite_pending_timestamp_seconds, what
	// VMNoOffsiteCopy ages), and that sync job; of several, the oldest.
	OffsitePending, PendingJob string
	// Offsite's state when it is empty: SyncJobs, a job of the config
	// copies this one; Synced, one of them has been scanned (its copies
	// are known: none yet).
	SyncJobs, Synced bool
	// SyncFailed names the sync jobs copying this one whose newest
	// finished run failed: why a copy still waits.
	SyncFailed []string
	// RestoreTest is the newest successful restore test (restore_log
	// jobs) and its job.
	RestoreTest, RestoreJob string
	// OldestSnapshot is the VM's oldest libvirt snapshot, when the caller
	// knows the host's VMs (HostVM); empty otherwise.
	OldestSnapshot string
	// NotOnHost: the host's VMs are known and this one is not defined
	// there (any more). NeverBackedUp: defined on the host, no copy here.
	NotOnHost, NeverBackedUp bool

	key string // the domain as the job's data names it (Domain is shown)
}

// HostVM is what the libvirt side knows of a VM defined on the host.
type HostVM struct {
	OldestSnapshot time.Time // zero: none or unknown
}

// ExplainOptions are the inputs of an explanation beyond the last scan.
type ExplainOptions struct {
	// HostVMs are the VMs defined on the host, by name; nil when libvirt
	// is not asked (then no row is added for VMs never backed up).
	HostVMs map[string]HostVM
}

// Explain builds the explanation of the last scan of every job.
func (c *Collector) Explain(o ExplainOptions) Explanation {
	c.mu.RLock()
	defer c.mu.RUnlock()
	now := c.opts.Now()
	loc := c.opts.Location
	jobs := append([]Job(nil), c.cfg.Jobs...)
	sort.Slice(jobs, func(a, b int) bool { return jobs[a].Name < jobs[b].Name })

	// The newest restore test of the host: restore_log jobs name no
	// backup job, so every VM row shows the newest successful one.
	var restoreAt time.Time
	var restoreJob string
	for _, j := range jobs {
		if res := c.results[j.Name]; j.Type == TypeRestoreLog && res != nil && res.Data != nil && res.Data.LastSuccess != nil {
			if e := res.Data.LastSuccess.End; e.After(restoreAt) {
				restoreAt, restoreJob = e, j.Name
			}
		}
	}
	// The sync jobs that copy each job (copies:), by name.
	syncs := map[string][]Job{}
	for _, j := range jobs {
		if j.Copies != "" {
			syncs[j.Copies] = append(syncs[j.Copies], j)
		}
	}
	ex := Explanation{Generated: fmtTime(now, now, loc)}
	for _, j := range jobs {
		jv := explainJob(j, c.results[j.Name], now, loc)
		switch jv.Verdict {
		case VerdictFailed, VerdictScanFailing:
			ex.Failed = append(ex.Failed, j.Name)
		case VerdictPartlyRead:
			ex.PartlyRead = append(ex.PartlyRead, j.Name)
		}
		if hasVMs(j.Type) {
			jv.VMs = vmRows(j, c.results[j.Name], o.HostVMs, now, loc)
			for i := range jv.VMs {
				if !restoreAt.IsZero() {
					jv.VMs[i].RestoreTest, jv.VMs[i].RestoreJob = fmtTime(restoreAt, now, loc), display(restoreJob)
				}
			}
			c.offsiteColumn(jv.VMs, c.results[j.Name], syncs[j.Name], now, loc)
		}
		ex.Jobs = append(ex.Jobs, jv)
	}
	return ex
}

// offsiteColumn fills the rows' offsite column from the sync jobs that
// copy their job, judged as vmhost_backup_vm_offsite_timestamp_seconds
// and its pending series are (offsiteOf). c.mu is held.
func (c *Collector) offsiteColumn(rows []VMRow, local *jobResult, syncJobs []Job, now time.Time, loc *time.Location) {
	if len(syncJobs) == 0 {
		return
	}
	var vms map[string]vmBackup
	if local != nil && local.Data != nil {
		vms = local.Data.VMs
	}
	for i := range rows {
		r := &rows[i]
		r.SyncJobs = true
		v, ok := vms[r.key]
		var newest, oldest time.Time
		var failed []string
		for _, s := range syncJobs {
			res := c.results[s.Name]
			if res == nil || res.Data == nil {
				continue
			}
			r.Synced = true
			if f := res.Data.LastFinished; f != nil && !f.Success {
				failed = append(failed, display(s.Name))
			}
			if !ok {
				continue
			}
			o := offsiteOf(v, res.Data)
			if !o.Offsite.IsZero() && o.Offsite.After(newest) {
				newest, r.Offsite, r.OffsiteJob = o.Offsite, fmtTime(o.Offsite, now, loc), display(s.Name)
			}
			if !o.Pending.IsZero() && (oldest.IsZero() || o.Pending.Before(oldest)) {
				oldest, r.OffsitePending, r.PendingJob = o.Pending, fmtTime(o.Pending, now, loc), display(s.Name)
			}
		}
		// Why a copy waits, or none is offsite: not for a VM whose newest
		// copy is offsite already, nor one with nothing to copy.
		if ok && (r.OffsitePending != "" || r.Offsite == "") {
			r.SyncFailed = failed
		}
	}
}

// hasVMs: the job types whose backups are per VM.
func hasVMs(typ string) bool { return typ == TypeDatedDir || typ == TypeVzdump }

func explainJob(j Job, res *jobResult, now time.Time, loc *time.Location) JobView {
	jv := JobView{Name: display(j.Name), Type: j.Type, Source: display(jobSource(j)), MaxAge: model.Duration(j.MaxAge).String()}
	if res == nil {
		jv.Verdict, jv.Class, jv.Why = VerdictNoScanYet, "info", "the first scan of this job has not finished"
		return jv
	}
	jv.ScanErr = display(res.ScanErr)
	for _, p := range slices.Sorted(maps.Keys(res.Unreadable)) {
		jv.Unreadable = append(jv.Unreadable, PathError{display(p), display(res.Unreadable[p])})
	}
	d := res.Data
	if d == nil {
		jv.Verdict, jv.Class, jv.Why = VerdictScanFailing, "bad", "the job could not be scanned: "+jv.ScanErr
		return jv
	}
	jv.Sets = d.Sets
	if d.LastRun != nil {
		jv.LastRun = runView(j, d.LastRun, now, loc)
	}
	if d.LastSuccess != nil {
		jv.LastSuccess = runView(j, d.LastSuccess, now, loc)
	}
	maxAge := time.Duration(j.MaxAge)
	switch {
	case d.LastFinished != nil && !d.LastFinished.Success:
		jv.Verdict, jv.Class = VerdictFailed, "bad"
		jv.Why = "the newest finished run failed: " + display(FailureReason(j, d.LastFinished))
		if d.LastRun != d.LastFinished && jv.LastRun != nil {
			// A run in progress is the newest run; the failed one is
			// what the verdict rests on.
			jv.LastRun = runView(j, d.LastFinished, now, loc)
			jv.Why += "; a new run is in progress"
		}
	case d.LastSuccess == nil && d.Running:
		jv.Verdict, jv.Class, jv.Why = VerdictRunning, "info", "the first run is in progress; no successful backup yet"
	case d.LastSuccess == nil:
		jv.Verdict, jv.Class, jv.Why = VerdictNeverSucceded, "bad", "no successful backup was found"
	case now.Sub(d.LastSuccess.End) > maxAge:
		jv.Verdict, jv.Class = VerdictStale, "bad"
		jv.Why = fmt.Sprintf("the newest successful backup is %s old, more than max_age %s", age(now.Sub(d.LastSuccess.End)), jv.MaxAge)
	case d.Running:
		jv.Verdict, jv.Class, jv.Why = VerdictRunning, "ok", "a run is in progress; the newest successful backup is within max_age"
	default:
		jv.Verdict, jv.Class, jv.Why = VerdictOK, "ok", "the newest run succeeded and is within max_age"
	}
	if !res.ScanOK {
		jv.Verdict, jv.Class = VerdictScanFailing, "bad"
		jv.Why = "the last scan failed (" + jv.ScanErr + "); what follows is from the last good scan, which said: " + jv.Why
	}
	if n := len(jv.Unreadable); n > 0 && (jv.Verdict == VerdictOK || jv.Verdict == VerdictRunning) {
		paths := "path"
		if n > 1 {
			paths = "paths"
		}
		jv.Verdict, jv.Class = VerdictPartlyRead, "warn"
		jv.Why = fmt.Sprintf("%d %s of this job could not be read (first: %s: %s), so the verdict may rest on part of its evidence and BackupEvidenceUnreadable fires; what could be read says: %s",
			n, paths, jv.Unreadable[0].Path, jv.Unreadable[0].Err, jv.Why)
	}
	return jv
}

// jobSource is what a job reads.
func jobSource(j Job) string {
	switch {
	case j.Path != "":
		return j.Path
	case j.LogFile != "":
		return j.LogFile
	}
	return j.Glob
}

func runView(j Job, r *run, now time.Time, loc *time.Location) *RunView {
	rv := &RunView{Start: fmtTime(r.Start, now, loc), Errors: r.Errors}
	switch {
	case !r.Finished:
		rv.State = "running"
	case r.Success:
		rv.State, rv.End = "succeeded", fmtTime(r.End, now, loc)
	default:
		rv.State, rv.End = "failed", fmtTime(r.End, now, loc)
		rv.Reason = display(FailureReason(j, r))
		ev := r.Evidence
		if ev.File == "" {
			ev = r.FirstError // the step logs' first error line
		}
		if ev != r.StartRef && ev != r.EndRef {
			rv.Evidence = refView(ev)
		}
	}
	rv.StartRef, rv.EndRef = refView(r.StartRef), refView(r.EndRef)
	if rv.EndRef != nil && rv.EndRef.Line == 0 {
		// A file, not a line of a log (file_glob): the file itself.
		rv.File, rv.EndRef = rv.EndRef.File, nil
	}
	return rv
}

// maxQuote is how much of a log line the page quotes: enough for any
// error message, while a tool printing a whole file list on one line
// (64 KiB, what the line reader keeps) does not swell the page.
const maxQuote = 1024

func refView(l lineRef) *RefView {
	if l.File == "" {
		return nil
	}
	return &RefView{File: display(l.File), Line: l.Line, Text: display(cutAt(l.Text, maxQuote))}
}

// FailureReason says why a finished run that did not succeed counts as
// failed: the reason its parser recorded. Every parser records one for a
// failed run (the step logs' error lines and missing end lines, rclone's
// verdict, a set's missing disk, a guest's ERROR line), but for a vzdump
// guest that wrote its end line and left no archive: that one is said
// here. It stays short and holds no time stamp of its own: it is also a
// label value (vmhost_backup_last_run_failure_info).
func FailureReason(j Job, r *run) string {
	if r.Reason != "" {
		return r.Reason
	}
	errs := ""
	if r.Errors > 0 {
		errs = fmt.Sprintf(" (%d error lines)", r.Errors)
	}
	if j.Type == TypeVzdump {
		return "a guest's dump failed" + errs
	}
	return "the run did not succeed" + errs
}

// vmRows lists the VMs of a job, and, when the host's VMs are known, the
// ones defined there that the job never backed up.
func vmRows(j Job, res *jobResult, host map[string]HostVM, now time.Time, loc *time.Location) []VMRow {
	names := map[string]bool{}
	var d *jobData
	if res != nil && res.Data != nil {
		d = res.Data
		for _, m := range []map[string]bool{d.UnreadableVMs, d.VMLastRunOK} {
			for vm := range m {
				names[vm] = true
			}
		}
		for vm := range d.VMs {
			names[vm] = true
		}
		for vm := range d.MissingDisks {
			names[vm] = true
		}
	}
	// vzdump names guests by id, not by libvirt name: the host's VMs
	// cannot be matched with its rows.
	if j.Type == TypeDatedDir {
		for vm := range host {
			names[vm] = true
		}
	}
	maxAge := time.Duration(j.MaxAge)
	rows := make([]VMRow, 0, len(names))
	for _, vm := range slices.Sorted(maps.Keys(names)) {
		row := VMRow{Domain: display(vm), Stale: true, key: vm}
		if d != nil {
			if b, ok := d.VMs[vm]; ok {
				row.LastCopy = fmtTime(b.Time, now, loc)
				row.Stale = now.Sub(b.Time) > maxAge
			}
			row.MissingCount = d.MissingDisks[vm]
			for _, why := range d.MissingDiskWhy[vm] {
				row.MissingDisks = append(row.MissingDisks, display(why))
			}
			for _, why := range d.UnjudgedWhy[vm] {
				row.NotJudged = append(row.NotJudged, display(why))
			}
			row.DefinitionUnreadable = d.UnreadableVMs[vm] && len(row.NotJudged) == 0
			if ok, known := d.VMLastRunOK[vm]; known && !ok {
				row.LastAttemptFailed = true
			}
		}
		if host != nil && j.Type == TypeDatedDir {
			h, defined := host[vm]
			row.NotOnHost = !defined
			// A VM not judged may well be backed up: its row says why it
			// is not judged instead (VMNotBackedUp keeps quiet for it too).
			row.NeverBackedUp = defined && row.LastCopy == "" && !row.DefinitionUnreadable && len(row.NotJudged) == 0
			if !h.OldestSnapshot.IsZero() {
				row.OldestSnapshot = fmtTime(h.OldestSnapshot, now, loc)
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// fmtTime writes a time in the exporter's zone with its age.
func fmtTime(t, now time.Time, loc *time.Location) string {
	s := t.In(loc).Format("2006-01-02 15:04:05 MST")
	if d := now.Sub(t); d >= time.Second {
		s += " (" + age(d) + " ago)"
	}
	return s
}

// age writes a duration the way an operator reads an age: 3d 4h, 5h 12m, 40s.
func age(d time.Duration) string {
	d = d.Round(time.Second)
	days, hours, mins := int(d/(24*time.Hour)), int(d/time.Hour)%24, int(d/time.Minute)%60
	switch {
	case days > 0:
		return fmt.Sprintf("%dd %dh", days, hours)
	case hours > 0:
		return fmt.Sprintf("%dh %dm", hours, mins)
	case mins > 0:
		return fmt.Sprintf("%dm %ds", mins, int(d/time.Second)%60)
	}
	return d.String()
}

// display makes a name read from disk safe to show: bytes that are not
// UTF-8 become \xNN (as in the metrics' label values) and control
// characters (a newline or an escape sequence in a file name) become
// \uNNNN, so neither a terminal nor a page is garbled by them; a tab
// (rclone's statistics lines have one) is a space. HTML in a name is left
// to the page's template, which escapes it.
func display(s string) string {
	s = labelSafe(s)
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if r == '\t' {
			b.WriteByte(' ')
			continue
		}
		if unicode.IsControl(r) {
			fmt.Fprintf(&b, `\u%04x`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

var (
	//go:embed explain.html
	explainHTML string
	//go:embed explain.txt
	explainText string

	templateFuncs = map[string]any{"join": strings.Join}
	pageTemplate  = htmltemplate.Must(htmltemplate.New("backups").Funcs(templateFuncs).Parse(explainHTML))
	textTemplate  = texttemplate.Must(texttemplate.New("explain").Funcs(templateFuncs).Parse(explainText))
)

// PageData is what the /backups template renders.
type PageData struct {
	Explanation
	Version string
}

// WriteHTML renders the explanation as the /backups page.
func (e Explanation) WriteHTML(w io.Writer, version string) error {
	return pageTemplate.Execute(w, PageData{Explanation: e, Version: version})
}

// WriteText renders the explanation as plain text (--backup.explain).
func (e Explanation) WriteText(w io.Writer) error {
	return textTemplate.Execute(w, e)
}

// ExplainOnce loads nothing: it scans every job of cfg once, as the
// exporter's first background scan would, and explains the result
// (--backup.explain).
func ExplainOnce(ctx context.Context, cfg *Config, opts Options, logger *slog.Logger) Explanation {
	c := New(cfg, opts, logger)
	c.ScanOnce(ctx)
	return c.Explain(ExplainOptions{})
}
