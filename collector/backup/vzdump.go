package backup

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
)

// vzdumpName is Proxmox's naming: vzdump-<qemu|lxc>-<vmid>-<YYYY_MM_DD-HH_MM_SS>.<rest>
var vzdumpName = regexp.MustCompile(`^(vzdump-(qemu|lxc)-(\d+)-(\d{4}_\d{2}_\d{2}-\d{2}_\d{2}_\d{2}))\.(.+)$`)

// vzdumpArchive matches the extension of a finished archive.
var vzdumpArchive = regexp.MustCompile(`^(vma|tar|tgz)(\.(zst|gz|lzo))?$`)

var (
	vzdumpFinished = regexp.MustCompile(`INFO: Finished Backup of VM (\d+) \((\d+):(\d{2}):(\d{2})\)`)
	vzdumpFailed   = regexp.MustCompile(`ERROR: Backup of VM (\d+) failed`)
)

type vzdumpAttempt struct {
	guest    string
	start    time.Time
	archive  string // path of the finished archive
	log      string
	tmp      string // path of the .dat file being written
	newestMt time.Time
}

// scanVzdump reads a vzdump dump directory. One attempt per guest and time
// stamp: the archive exists only when vzdump finished it (it writes
// <name>.dat first and renames it), and the .log beside it says "Finished
// Backup" or "ERROR: Backup of VM ... failed". The job's newest success is
// the set of every guest's newest successful archive: its size is their
// sum, its time the newest of them. A run is one vzdump invocation (the
// attempts that follow each other that night, see vzdumpRuns): the newest
// finished run failed when any of its attempts failed, and each guest's
// newest attempt is published on its own. Coverage is per guest id (the
// domain label).
func scanVzdump(j Job, now time.Time, loc *time.Location, u *unreadablePaths) (*jobData, error) {
	entries, err := os.ReadDir(j.Path)
	if err != nil {
		u.note(err)
		return nil, fmt.Errorf("reading %s: %w", j.Path, err)
	}
	attempts := map[string]*vzdumpAttempt{}
	for _, e := range entries {
		m := vzdumpName.FindStringSubmatch(e.Name())
		if m == nil || e.IsDir() {
			continue
		}
		base, guest, stamp, ext := m[1], m[3], m[4], m[5]
		a := attempts[base]
		if a == nil {
			t, err := time.ParseInLocation("2006_01_02-15_04_05", stamp, loc)
			if err != nil {
				continue
			}
			a = &vzdumpAttempt{guest: guest, start: t}
			attempts[base] = a
		}
		p := filepath.Join(j.Path, e.Name())
		switch {
		case ext == "log":
			a.log = p
		case strings.HasSuffix(ext, ".dat") || ext == "dat" || strings.HasSuffix(ext, ".tmp"):
			a.tmp = p
		case vzdumpArchive.MatchString(ext):
			a.archive = p
		default:
			continue // notes, .log.zst etc.
		}
		if info, err := e.Info(); err == nil && info.ModTime().After(a.newestMt) {
			a.newestMt = info.ModTime()
		}
	}

	byGuest := map[string][]*vzdumpAttempt{}
	for _, a := range attempts {
		byGuest[a.guest] = append(byGuest[a.guest], a)
	}
	d := &jobData{VMs: map[string]vmBackup{}, VMLastRunOK: map[string]bool{}}
	var all []attemptRun
	var total, totalDisk int64
	var guestsWithSuccess int64
	var lastSuccess time.Time
	for guest, list := range byGuest {
		sort.Slice(list, func(a, b int) bool { return list[a].start.Before(list[b].start) })
		var newestSuccess *run
		var archiveSizes []int64
		var copies []time.Time
		for _, a := range list {
			r := a.evaluate(now, time.Duration(j.RunningTimeout), u)
			all = append(all, attemptRun{a, r})
			if r.Success {
				d.countSet(r.Start) // what can be restored from
				rr := r
				newestSuccess = &rr
				archiveSizes = append(archiveSizes, r.SizeBytes)
				copies = append(copies, r.End)
			}
			if r.Finished {
				d.VMLastRunOK[guest] = r.Success
			}
		}
		if newestSuccess != nil {
			slices.SortFunc(copies, time.Time.Compare)
			vb := vmBackup{Time: newestSuccess.End, HasSize: true, SizeBytes: newestSuccess.SizeBytes, Copies: copies}
			vb.PrevSize, vb.HasPrevSize = medianOfPrevious(archiveSizes)
			d.VMs[guest] = vb
			total += newestSuccess.SizeBytes
			totalDisk += newestSuccess.DiskBytes
			guestsWithSuccess++
			if newestSuccess.End.After(lastSuccess) {
				lastSuccess = newestSuccess.End
			}
		}
	}
	for _, r := range vzdumpRuns(all) {
		d.add(r)
	}
	d.finish()
	// The job's last success is every guest's newest successful archive
	// together: what can be restored now, whether or not the newest run
	// backed up every guest.
	d.LastSuccess = nil
	if guestsWithSuccess > 0 {
		d.LastSuccess = &run{End: lastSuccess, Finished: true, Success: true, HasSize: true,
			SizeBytes: total, DiskBytes: totalDisk, Files: guestsWithSuccess}
	}
	return d, nil
}

type attemptRun struct {
	a *vzdumpAttempt
	r run
}

// vzdumpRunGap separates two vzdump invocations: one invocation backs up
// its guests one after the other, each starting right after the previous
// ended; the next scheduled invocation starts hours later.
const vzdumpRunGap = 30 * time.Minute

// vzdumpRuns groups guest attempts into vzdump invocations, oldest first.
// A run succeeded when all its attempts did and is finished when all are;
// a guest removed long ago, whose last attempt failed, belongs to an old
// run and no longer decides last_run_success.
func vzdumpRuns(all []attemptRun) []run {
	sort.Slice(all, func(x, y int) bool { return all[x].a.start.Before(all[y].a.start) })
	var runs []run
	var end time.Time
	failedMore := map[int]int{} // by run: failed attempts beyond the first
	for i, ar := range all {
		r := ar.r
		attemptEnd := r.End
		if ar.a.newestMt.After(attemptEnd) {
			attemptEnd = ar.a.newestMt
		}
		if i == 0 || ar.a.start.After(end.Add(vzdumpRunGap)) {
			runs = append(runs, run{Start: r.Start, End: r.End, Finished: true, Success: true})
			end = time.Time{}
		}
		cur := &runs[len(runs)-1]
		if r.End.After(cur.End) {
			cur.End = r.End
		}
		if attemptEnd.After(end) {
			end = attemptEnd
		}
		cur.Finished = cur.Finished && r.Finished
		cur.Success = cur.Success && r.Success
		cur.Errors += r.Errors
		if cur.StartRef.File == "" {
			cur.StartRef = r.StartRef
		}
		// The run's evidence is its first failed attempt; the others are
		// counted in its reason.
		if r.Finished && !r.Success {
			if cur.Reason == "" {
				cur.Reason, cur.EndRef = r.Reason, r.EndRef
			} else {
				failedMore[len(runs)-1]++
			}
		} else if cur.Reason == "" {
			cur.EndRef = r.EndRef
		}
	}
	for i, n := range failedMore {
		runs[i].Reason += fmt.Sprintf(" (and %d more guests failed)", n)
	}
	for i := range runs {
		if !runs[i].Finished {
			runs[i].Success = false
		}
	}
	return runs
}

// evaluate turns one attempt's files into a run.
func (a *vzdumpAttempt) evaluate(now time.Time, timeout time.Duration, u *unreadablePaths) run {
	r := run{Start: a.start, End: a.newestMt}
	finishedLine, failedLine := false, false
	if a.log != "" {
		if f, _, err := openLog(a.log); u.note(err) {
			// The archive alone decides; the log's errors are not counted.
		} else if err == nil {
			lr := newLineReader(f)
			n := 0
			for lr.next(false) {
				line := lr.line
				n++
				if n == 1 {
					r.StartRef = lineRef{File: a.log, Line: n, Text: line}
				}
				if m := vzdumpFinished.FindStringSubmatch(line); m != nil {
					finishedLine = true
					r.EndRef = lineRef{File: a.log, Line: n, Text: line}
					var h, mi, s int
					fmt.Sscan(m[2]+" "+m[3]+" "+m[4], &h, &mi, &s)
					r.End = a.start.Add(time.Duration(h)*time.Hour + time.Duration(mi)*time.Minute + time.Duration(s)*time.Second)
				}
				if loc := vzdumpFailed.FindStringIndex(line); loc != nil && !failedLine {
					failedLine = true
					r.EndRef = lineRef{File: a.log, Line: n, Text: line}
					// From "Backup of VM": the line's time stamp stays out
					// of the reason, which is also a label value.
					r.Reason = "guest " + a.guest + ": " + shorten(line[loc[0]+len("ERROR: "):])
				}
				if strings.HasPrefix(line, "ERROR:") || strings.Contains(line, " ERROR: ") {
					r.Errors++
				}
			}
			f.Close()
		}
	}
	switch {
	case a.archive != "" && !failedLine:
		r.Finished, r.Success = true, true
		if size, disk, mt, err := fileSize(a.archive); err == nil {
			r.HasSize, r.SizeBytes, r.DiskBytes, r.Files = true, size, disk, 1
			if !finishedLine {
				r.End = mt
			}
		}
	case failedLine || finishedLine:
		r.Finished = true
	case now.Sub(a.newestMt) < timeout:
		r.Finished = false // .dat still growing or log still written
	default:
		r.Finished = true // killed: no archive, no end line, no change for long
		r.Reason = "guest " + a.guest + ": no archive and no end line, nothing written for " + model.Duration(timeout).String() + " (killed?)"
	}
	if r.Success {
		r.Reason = ""
	}
	if r.End.Before(r.Start) {
		r.End = r.Start
	}
	return r
}

// maxReason bounds a reason taken from a log line, and every reason used
// as a label value (vmhost_backup_last_run_failure_info): a log line may
// be 64 KiB, and a scrape with a label value over a server's
// label_value_length_limit is rejected whole.
const maxReason = 160

// shorten cuts s to maxReason bytes at a rune boundary.
func shorten(s string) string { return cutAt(s, maxReason) }

// cutAt cuts s to at most max bytes on a character boundary, marking the
// cut with "…".
func cutAt(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
