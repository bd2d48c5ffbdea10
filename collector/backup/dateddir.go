package backup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// afterListing lets tests change the tree between listing and reading a
// set, as a concurrent retention job would.
var afterListing func(setPath string)

type datedSet struct {
	name string
	path string
	date time.Time
}

// setRuns is a dated set with the runs its log holds, oldest first.
type setRuns struct {
	set  datedSet
	runs []run
	// unreadable is what judging the set by its contents could not read,
	// counted for the job only once the set's run has finished.
	unreadable *unreadablePaths
}

// lastSuccess is the index of the set's newest successful run, or -1.
func (s setRuns) lastSuccess() int {
	for k := len(s.runs) - 1; k >= 0; k-- {
		if s.runs[k].Success {
			return k
		}
	}
	return -1
}

// scanDatedDir reads the kvm_backup.sh layout: <path>/<YYYY-MM-DD>/ with
// backup.log, vm_xml/<vm>.xml and images/. Only the newest successful set is
// walked for its size, and the newest set when it has not finished (to see
// whether it is still being written); older sets cost one log read each.
func scanDatedDir(j Job, now time.Time, loc *time.Location, u *unreadablePaths) (*jobData, error) {
	entries, err := os.ReadDir(j.Path)
	if err != nil {
		u.note(err)
		return nil, fmt.Errorf("reading %s: %w", j.Path, err)
	}
	var sets []datedSet
	for _, e := range entries {
		m := j.SetPattern.FindStringSubmatch(e.Name())
		if m == nil || !e.IsDir() {
			continue
		}
		ds := datedSet{name: e.Name(), path: filepath.Join(j.Path, e.Name())}
		dateText := m[0]
		if len(m) > 1 {
			dateText = m[1]
		}
		if t, err := time.ParseInLocation("2006-01-02", dateText, loc); err == nil {
			ds.date = t
		} else if info, err := e.Info(); err == nil {
			ds.date = info.ModTime()
		}
		sets = append(sets, ds)
	}
	sort.Slice(sets, func(a, b int) bool {
		if !sets[a].date.Equal(sets[b].date) {
			return sets[a].date.Before(sets[b].date)
		}
		return sets[a].name < sets[b].name
	})

	// An empty job path is a job whose first backup has not run yet: no
	// sets, no runs, a clean "no backup yet", never an error.
	newestPath := ""
	if len(sets) > 0 {
		newestPath = sets[len(sets)-1].path
	}

	d := &jobData{VMs: map[string]vmBackup{}}
	// First the logs (cheap), then one parallel walk over every set: it
	// gives each set's size, the newest change in the newest set (is its
	// last run still writing?) and the total the sets take on disk.
	var cands []setRuns
	for i, s := range sets {
		if afterListing != nil {
			afterListing(s.path)
		}
		if j.SuccessFrom == SuccessFromContents {
			var seen unreadablePaths
			ok, why := setComplete(s.path, j, &seen)
			cands = append(cands, setRuns{set: s, runs: []run{{Start: s.date, End: s.date, Success: ok, Reason: why}}, unreadable: &seen})
			continue
		}
		newest := i == len(sets)-1
		logPath := filepath.Join(s.path, j.LogName)
		f, _, err := openLog(logPath)
		var log stepLog
		if err == nil {
			// No end at a silence here: the log of a set is silent while
			// rsync copies the images, for hours on a big host; whether the
			// set is still being written is told by its files.
			log, err = readStepRuns([]logPart{{Name: logPath, R: f}}, j, loc, 0)
			f.Close()
		}
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// A set without its log: killed before the first line, or
			// vanished during the scan (then it is simply not there).
			if _, statErr := os.Stat(s.path); errors.Is(statErr, fs.ErrNotExist) {
				continue
			}
		case err != nil:
			u.note(err)
			return nil, fmt.Errorf("set %s: %w", s.name, err)
		case newest && log.Lines == 0 && log.Other > 0:
			return nil, fmt.Errorf("set %s: %s has no line of the form \"YYYY-MM-DD HH:MM:SS - message\"", s.name, j.LogName)
		}
		if len(log.Runs) == 0 {
			log.Runs = []run{{Start: s.date, End: s.date}}
		}
		cands = append(cands, setRuns{set: s, runs: log.Runs})
	}
	paths := make([]string, len(cands))
	detail := -1 // the newest set with a successful run: its own size is exported
	for i, c := range cands {
		paths[i] = c.set.path
		if c.lastSuccess() >= 0 {
			detail = i
		}
	}
	sizes, total, err := measureSets(paths, detail)
	if err != nil {
		return nil, err
	}
	if j.SuccessFrom == SuccessFromContents {
		quiet := settleContentSets(cands, sizes, newestPath, now, time.Duration(j.RunningTimeout))
		if quiet != detail { // the set thought newest successful is still being written
			detail = quiet
			if sizes, total, err = measureSets(paths, detail); err != nil {
				return nil, err
			}
		}
	}
	d.Total = &total

	var successes []setRuns
	var successSizes []int64 // apparent size of each successful set, oldest first
	for i, c := range cands {
		if sizes[i].Missing {
			continue // vanished during the scan
		}
		last := &c.runs[len(c.runs)-1]
		if c.set.path == newestPath {
			// The newest set's last run may still be writing.
			settleLastRun(last, sizes[i].Newest, now, time.Duration(j.RunningTimeout))
		} else {
			// A newer set exists: this run is over, at the latest when the
			// next run started.
			endUnfinished(last, nextStart(cands, sizes, i))
		}
		// rsync and cp make a directory 0700 while they fill it and give
		// it its mode at the end: in a set still being written an
		// unreadable directory says nothing yet.
		// The same for files: virsh dumpxml writes a VM's XML while the
		// set is being filled.
		if last.Finished {
			u.addAll(sizes[i].UnreadableDirs)
			if c.unreadable != nil {
				u.addAll(c.unreadable.snapshot())
			}
		}
		if k := c.lastSuccess(); k >= 0 && i == detail {
			r := &c.runs[k]
			r.HasSize = true
			r.SizeBytes, r.DiskBytes, r.Files = sizes[i].Apparent, sizes[i].Allocated, sizes[i].Files
			r.UnreadableDirs = sizes[i].Unreadable
		}
		d.countSet(c.runs[0].Start)
		for _, r := range c.runs {
			d.add(r)
		}
		if c.lastSuccess() >= 0 {
			successes = append(successes, c)
			successSizes = append(successSizes, sizes[i].Apparent)
		}
	}
	d.finish()
	d.PrevSuccessSize, d.HasPrevSize = medianOfPrevious(successSizes)

	// The newest set's definitions count once its run has ended: a VM's
	// XML still being written is no unreadable definition.
	var newest *setRuns
	for i := len(cands) - 1; i >= 0; i-- {
		if !sizes[i].Missing {
			if cands[i].runs[len(cands[i].runs)-1].Finished {
				newest = &cands[i]
			}
			break
		}
	}
	coverVMs(d, successes, newest, j, u)
	return d, nil
}

// nextStart is when the run of the next set after cands[i] that is still
// there started (the end of cands[i]'s last run at the latest).
func nextStart(cands []setRuns, sizes []treeSize, i int) time.Time {
	for k := i + 1; k < len(cands); k++ {
		if !sizes[k].Missing {
			return cands[k].runs[0].Start
		}
	}
	return cands[i].runs[len(cands[i].runs)-1].End
}

// setComplete judges a set of a script that writes no log by its contents:
// at least one VM definition, and every disk each one names copied into
// the set. When not, it says why, in a few words without a time stamp
// (the run's Reason): the first thing found missing.
func setComplete(setPath string, j Job, u *unreadablePaths) (bool, string) {
	xmlDir := filepath.Join(setPath, j.VMXMLDir)
	entries, err := os.ReadDir(xmlDir)
	if err != nil {
		u.note(err)
		if errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Sprintf("the set has no %s directory", j.VMXMLDir)
		}
		return false, fmt.Sprintf("%s of the set is unreadable: %v", j.VMXMLDir, unwrapPath(err))
	}
	vms := 0
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".xml") || !e.Type().IsRegular() {
			continue
		}
		vm := strings.TrimSuffix(e.Name(), ".xml")
		_, missing, unreadable, err := vmDisksInSet(filepath.Join(xmlDir, e.Name()), filepath.Join(setPath, j.ImagesDir), j.ImagesSource, u)
		if err != nil {
			return false, fmt.Sprintf("the definition of VM %s is unreadable: %v", vm, unwrapPath(err))
		}
		if len(missing) > 0 {
			return false, fmt.Sprintf("a disk of VM %s is not in the set: %s", vm, missing[0].Why)
		}
		if len(unreadable) > 0 {
			// Whole or not is unknown: not a success, but no missing
			// disk either (the unreadable path is counted).
			return false, fmt.Sprintf("the copy of %s (VM %s) is unreadable: %v", unreadable[0].Src, vm, unwrapPath(unreadable[0].Err))
		}
		vms++
	}
	if vms == 0 {
		return false, fmt.Sprintf("the set has no VM definition in %s", j.VMXMLDir)
	}
	return true, ""
}

// unwrapPath drops the path from a *fs.PathError, which the reasons name
// themselves: "permission denied", not the whole path twice.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// settleContentSets finishes the one run of each set of a log-less job:
// it ended at the set's last change, and the newest set is still being
// written (running, not yet a success) while that change is within
// timeout. It returns the index of the newest successful set, or -1.
func settleContentSets(cands []setRuns, sizes []treeSize, newestPath string, now time.Time, timeout time.Duration) int {
	detail := -1
	for i := range cands {
		r := &cands[i].runs[0]
		if sizes[i].Newest.After(r.End) {
			r.End = sizes[i].Newest
		}
		r.Finished = true
		if cands[i].set.path == newestPath && now.Sub(sizes[i].Newest) < timeout {
			r.Finished, r.Success = false, false
		}
		if r.Success {
			detail = i
		}
	}
	return detail
}
