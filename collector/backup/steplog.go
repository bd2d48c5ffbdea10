package backup

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// A step line is a line of the operator's scripts: `date '+%F %T'` -
// message, i.e. "2006-01-02 15:04:05 - message".
const stepTimeLayout = "2006-01-02 15:04:05"

type logLine struct {
	T   time.Time
	Msg string
}

func parseStepLine(s string, loc *time.Location) (logLine, bool) {
	// A shape check before the time parser: most lines of a long log are
	// either all step lines or none, and this is the hot path.
	if len(s) < 22 || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' || s[16] != ':' || s[19:22] != " - " {
		return logLine{}, false
	}
	t, err := time.ParseInLocation(stepTimeLayout, s[:19], loc)
	if err != nil {
		return logLine{}, false
	}
	return logLine{T: t, Msg: s[22:]}, true
}

// isSuccess applies a success pattern: with two capture groups it is a step
// counter "[n/m]" that must be complete (n == m); otherwise any match counts.
func isSuccess(re *regexp.Regexp, msg string) bool {
	m := re.FindStringSubmatch(msg)
	if m == nil {
		return false
	}
	if len(m) == 3 {
		n, err1 := strconv.Atoi(m[1])
		total, err2 := strconv.Atoi(m[2])
		return err1 == nil && err2 == nil && n == total && total > 0
	}
	return true
}

// stepRun reads one run's log (a dated set's backup.log).
type stepRun struct {
	run
	Lines int // lines in the log's format
	Other int // other non-empty lines
}

func readStepLog(path string, j Job, loc *time.Location) (stepRun, error) {
	f, err := os.Open(path)
	if err != nil {
		return stepRun{}, err
	}
	defer f.Close()
	var r stepRun
	lr := newLineReader(f)
	for lr.next(false) {
		l, ok := parseStepLine(lr.line, loc)
		if !ok {
			if strings.TrimSpace(lr.line) != "" {
				r.Other++
			}
			continue
		}
		if r.Lines == 0 {
			r.Start = l.T
		}
		r.Lines++
		r.End = l.T
		if isSuccess(j.SuccessPattern.Regexp, l.Msg) {
			r.Success = true
		}
		if j.ErrorPattern.MatchString(l.Msg) {
			r.Errors++
		}
	}
	if lr.err != nil {
		return r, fmt.Errorf("reading %s: %w", path, lr.err)
	}
	return r, nil
}

// afterListing lets tests change the tree between listing and reading a
// set, as a concurrent retention job would.
var afterListing func(setPath string)

type datedSet struct {
	name string
	path string
	date time.Time
}

// scanDatedDir reads the kvm_backup.sh layout: <path>/<YYYY-MM-DD>/ with
// backup.log, vm_xml/<vm>.xml and images/. Only the newest successful set is
// walked for its size, and the newest set when it has not finished (to see
// whether it is still being written); older sets cost one log read each.
func scanDatedDir(j Job, now time.Time, loc *time.Location) (*jobData, error) {
	entries, err := os.ReadDir(j.Path)
	if err != nil {
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

	d := &jobData{VMs: map[string]vmBackup{}}
	// First the logs (cheap), then one parallel walk over every set: it
	// gives each set's size, the newest change in the newest set (is it
	// still being written?) and the total the sets take on disk.
	type setRun struct {
		set datedSet
		run run
	}
	var cands []setRun
	for i, s := range sets {
		if afterListing != nil {
			afterListing(s.path)
		}
		newest := i == len(sets)-1
		sr, err := readStepLog(filepath.Join(s.path, j.LogName), j, loc)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// A set without its log: killed before the first line, or
			// vanished during the scan (then it is simply not there).
			if _, statErr := os.Stat(s.path); errors.Is(statErr, fs.ErrNotExist) {
				continue
			}
		case err != nil:
			return nil, fmt.Errorf("set %s: %w", s.name, err)
		case newest && sr.Lines == 0 && sr.Other > 0:
			return nil, fmt.Errorf("set %s: %s has no line of the form \"YYYY-MM-DD HH:MM:SS - message\"", s.name, j.LogName)
		}
		r := sr.run
		if r.Start.IsZero() {
			r.Start = s.date
		}
		if r.End.IsZero() {
			r.End = r.Start
		}
		r.Finished = true
		cands = append(cands, setRun{s, r})
	}
	paths := make([]string, len(cands))
	detail := -1 // the newest successful set: its own size is exported
	for i, c := range cands {
		paths[i] = c.set.path
		if c.run.Success {
			detail = i
		}
	}
	sizes, total, err := measureSets(paths, detail)
	if err != nil {
		return nil, err
	}
	d.Total = &total

	var successes []setRun
	for i, c := range cands {
		if sizes[i].Missing {
			continue // vanished during the scan
		}
		r := c.run
		if !r.Success && c.set.path == sets[len(sets)-1].path {
			if now.Sub(sizes[i].Newest) < time.Duration(j.RunningTimeout) {
				r.Finished = false
			} else if sizes[i].Newest.After(r.End) {
				r.End = sizes[i].Newest
			}
		}
		if r.Success && i == detail {
			r.HasSize = true
			r.SizeBytes, r.DiskBytes, r.Files = sizes[i].Apparent, sizes[i].Allocated, sizes[i].Files
		}
		d.addSet(r)
		if r.Success {
			successes = append(successes, setRun{c.set, r})
		}
	}
	d.finish()

	// Per-VM coverage: the newest successful set holding vm_xml/<vm>.xml.
	for k := len(successes) - 1; k >= 0; k-- {
		s := successes[k]
		xmlDir := filepath.Join(s.set.path, "vm_xml")
		xmls, err := os.ReadDir(xmlDir)
		if err != nil {
			continue
		}
		for _, x := range xmls {
			vm, ok := strings.CutSuffix(x.Name(), ".xml")
			if !ok || vm == "" {
				continue
			}
			if _, done := d.VMs[vm]; done {
				continue
			}
			vb := vmBackup{Time: s.run.End}
			vb.SizeBytes, vb.HasSize = vmImageSize(filepath.Join(xmlDir, x.Name()), filepath.Join(s.set.path, "images"))
			d.VMs[vm] = vb
		}
	}
	return d, nil
}

// maxDomainXML bounds how much of a vm_xml file is read.
const maxDomainXML = 4 << 20

// vmImageSize adds up the apparent size of the VM's disk images found in the
// set's images/ directory, matched by the file names of the disk sources in
// the VM's XML (kvm_backup.sh copies /var/lib/libvirt/images/ as it is).
func vmImageSize(xmlPath, imagesDir string) (int64, bool) {
	f, err := os.Open(xmlPath)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var dom struct {
		Disks []struct {
			Source struct {
				File string `xml:"file,attr"`
			} `xml:"source"`
		} `xml:"devices>disk"`
	}
	if err := xml.NewDecoder(io.LimitReader(f, maxDomainXML)).Decode(&dom); err != nil {
		return 0, false
	}
	var total int64
	found := false
	for _, disk := range dom.Disks {
		if disk.Source.File == "" {
			continue
		}
		size, _, _, err := fileSize(filepath.Join(imagesDir, filepath.Base(disk.Source.File)))
		if err != nil {
			continue
		}
		total += size
		found = true
	}
	return total, found
}

// scanRestoreLog reads an appended restore log: a run starts at a line
// matching start_pattern and succeeded when a success_pattern line follows.
func scanRestoreLog(j Job, now time.Time, loc *time.Location) (*jobData, error) {
	f, info, err := openLog(j.LogFile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d := &jobData{VMs: map[string]vmBackup{}}
	var cur *run
	parsed, other := 0, 0
	flush := func() {
		if cur == nil {
			return
		}
		d.addSet(*cur)
	}
	lr := newLineReader(f)
	for lr.next(false) {
		l, ok := parseStepLine(lr.line, loc)
		if !ok {
			if strings.TrimSpace(lr.line) != "" {
				other++
			}
			continue
		}
		parsed++
		if cur == nil || j.StartPattern.MatchString(l.Msg) {
			if cur != nil {
				cur.Finished = true // a newer run started after it
			}
			flush()
			cur = &run{Start: l.T}
		}
		cur.End = l.T
		if j.SuccessPattern.MatchString(l.Msg) {
			cur.Success, cur.Finished = true, true
		}
		if j.ErrorPattern.MatchString(l.Msg) {
			cur.Errors++
		}
	}
	if lr.err != nil {
		return nil, fmt.Errorf("reading %s: %w", j.LogFile, lr.err)
	}
	if parsed == 0 {
		return nil, unreadableLog(j.LogFile, other, `line of the form "YYYY-MM-DD HH:MM:SS - message"`)
	}
	// Every run but the last has ended; the last one is running while the
	// log still changes.
	d.markUnfinished(cur, info.ModTime(), now, time.Duration(j.RunningTimeout))
	flush()
	d.finish()
	return d, nil
}

// markUnfinished decides about the last run of an appended log: without
// its end line it is running while the log changed within timeout, and
// failed (killed) otherwise.
func (d *jobData) markUnfinished(last *run, logMtime, now time.Time, timeout time.Duration) {
	if last == nil || last.Finished {
		return
	}
	last.Finished = now.Sub(logMtime) >= timeout
	if last.Finished && logMtime.After(last.End) {
		last.End = logMtime
	}
}

// unreadableLog explains an appended log in which no line was recognised:
// empty, or none of its lines has the expected form.
func unreadableLog(path string, otherLines int, form string) error {
	if otherLines == 0 {
		return fmt.Errorf("%s is empty", path)
	}
	return fmt.Errorf("%s has no %s", path, form)
}

func openLog(path string) (*os.File, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("opening %s: %w", path, err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if !info.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s is not a regular file", path)
	}
	return f, info, nil
}
