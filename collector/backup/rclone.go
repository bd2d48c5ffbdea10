package backup

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

var (
	// Transferred:   	    4.889 KiB / 4.889 KiB, 100%, 0 B/s, ETA -
	rcloneBytes = regexp.MustCompile(`^Transferred:\s+([\d.]+)\s*([KMGTPE]i?)?B(?:ytes)?\s*/\s*([\d.]+\s*(?:[KMGTPE]i?)?B(?:ytes)?),\s*(\d+%|-)`)
	// Transferred:            2 / 2, 100%
	rcloneFiles  = regexp.MustCompile(`^Transferred:\s+(\d+)\s*/\s*(\d+),`)
	rcloneChecks = regexp.MustCompile(`^Checks:\s+(\d+)\s*/\s*(\d+),`)
	rcloneErrors = regexp.MustCompile(`^Errors:\s+(\d+)`)
)

var rcloneUnits = map[string]float64{
	"": 1, "K": 1 << 10, "Ki": 1 << 10, "M": 1 << 20, "Mi": 1 << 20, "G": 1 << 30, "Gi": 1 << 30,
	"T": 1 << 40, "Ti": 1 << 40, "P": 1 << 50, "Pi": 1 << 50, "E": 1 << 60, "Ei": 1 << 60,
}

// dateLayouts are what `date` prints in the wrapper's "Backup completed at
// $(date)" line under common locales.
var dateLayouts = []string{
	"Mon Jan _2 15:04:05 MST 2006",
	"Mon Jan _2 03:04:05 PM MST 2006",
	"Mon _2 Jan 15:04:05 MST 2006",
	"Mon Jan _2 15:04:05 2006",
	time.RFC3339,
	"2006-01-02 15:04:05",
}

func parseDate(s string, loc *time.Location) (time.Time, bool) {
	s = strings.TrimSpace(s)
	for _, layout := range dateLayouts {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

var rcloneLevels = []string{"EMERGENCY", "ALERT", "CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG"}

// matchRcloneLine splits "2006/01/02 15:04:05[.frac] LEVEL : message" (the
// level is optional: rclone's fatal "Failed to ..." has none) into
// [line, time, level, message], like a regexp match, or returns nil. It is
// written out by hand because it runs on every line of logs that reach
// gigabytes.
func matchRcloneLine(line string) []string {
	if len(line) < 19 || line[4] != '/' || line[7] != '/' || line[10] != ' ' || line[13] != ':' || line[16] != ':' {
		return nil
	}
	rest := line[19:]
	if strings.HasPrefix(rest, ".") {
		k := 1
		for k < len(rest) && rest[k] >= '0' && rest[k] <= '9' {
			k++
		}
		rest = rest[k:]
	}
	if !strings.HasPrefix(rest, " ") {
		return nil
	}
	rest = rest[1:]
	for _, level := range rcloneLevels {
		if after, ok := strings.CutPrefix(rest, level); ok {
			after = strings.TrimLeft(after, " ")
			if msg, ok := strings.CutPrefix(after, ":"); ok {
				return []string{line, line[:19], level, strings.TrimPrefix(msg, " ")}
			}
		}
	}
	return []string{line, line[:19], "", rest}
}

// rcloneStats is one statistics block of rclone: rclone prints one every
// --stats interval (1m) while it runs and one when it ends, at INFO:
//
//	Transferred:   	    1.664 MiB / 6 MiB, 28%, 594.170 KiB/s, ETA 7s
//	Transferred:            0 / 6, 0%
//	Checks:                 2 / 2, 100%
//	Elapsed time:         3.1s
//	Transferring:
//	 *                                            f1: 33% /1Mi, 141.382Ki/s, 4s
type rcloneStats struct {
	seen                bool
	bytesDone, bytesAll string // as printed
	bytesPercent        string // "100%", "-" (nothing to transfer) or "28%"
	hasFiles            bool   // the files line is left out when nothing was queued
	files, filesAll     int
	hasChecks           bool
	checks, checksAll   int
	inFlight            bool // a Transferring: or Checking: list follows
	// The lines each figure came from, the evidence of an unfinished one.
	bytesRef, filesRef, checksRef, inFlightRef, errorsRef lineRef
}

// incomplete says, in an operator's words, what the block shows unfinished,
// or "" when it says every transfer and check finished: a block printed
// by an rclone killed mid-copy (kill -9, the OOM killer) is the last one
// of its run, and the wrapper's end line follows it all the same.
func (s rcloneStats) incomplete() (reason string, evidence lineRef) {
	switch {
	case !s.seen:
		return "no rclone statistics (rclone was killed before its first, or runs with --stats 0 or a log level above INFO)", lineRef{}
	case s.hasFiles && s.files < s.filesAll:
		// The block's bytes line quoted: how far the copy got (26 of 36
		// files may be 8 % of the bytes).
		return fmt.Sprintf("rclone stopped at %d of %d transfers (killed?)", s.files, s.filesAll), s.bytesRef
	case s.hasChecks && s.checks < s.checksAll:
		return fmt.Sprintf("rclone stopped at %d of %d checks (killed?)", s.checks, s.checksAll), s.checksRef
	case !percentComplete(s.bytesPercent):
		return fmt.Sprintf("rclone stopped at %s of %s (%s, killed?)", s.bytesDone, s.bytesAll, s.bytesPercent), s.bytesRef
	case s.inFlight:
		return "rclone stopped with transfers in progress (killed?)", s.inFlightRef
	}
	return "", lineRef{}
}

// percentComplete: rclone prints "-" for 0 of 0 bytes and rounds down, so
// 100% is all.
func percentComplete(p string) bool {
	if p == "-" {
		return true
	}
	n, err := strconv.Atoi(strings.TrimSuffix(p, "%"))
	return err == nil && strings.HasSuffix(p, "%") && n >= 100
}

// rcloneRun accumulates one run of an rclone log.
type rcloneRun struct {
	run
	statsErrors int
	stats       rcloneStats
	lastLine    lineRef // rclone's newest log line
	seen        bool
}

// verdict decides a run that reached the wrapper's end line.
func (r *rcloneRun) verdict() {
	switch {
	case !r.seen:
		// No rclone line before the wrapper's end line: rclone did not
		// run (not installed, a bad flag) or logged elsewhere (a typo in
		// --log-file). The wrapper appends its line whatever happened,
		// so that line alone is no success.
		r.Reason = "no rclone line before the end line (rclone did not run, or logged elsewhere)"
	case r.Errors > 0:
		r.Reason = fmt.Sprintf("rclone logged %d ERROR %s", r.Errors, plural(r.Errors, "line", "lines"))
		if f := r.FirstError; f.Line > 0 {
			// The message without rclone's time and level: the same
			// error on another night gives the same reason.
			msg := f.Text
			if m := matchRcloneLine(f.Text); m != nil {
				msg = m[3]
			}
			r.Reason += fmt.Sprintf(", first: %s (line %d of %s)", shorten(strings.TrimSpace(msg)), f.Line, filepath.Base(f.File))
			r.Evidence = f
		}
	case r.statsErrors > 0:
		r.Reason = fmt.Sprintf("rclone's statistics count %d %s", r.statsErrors, plural(r.statsErrors, "error", "errors"))
		r.Evidence = r.stats.errorsRef
	default:
		r.Reason, r.Evidence = r.stats.incomplete()
		if !r.stats.seen {
			r.Evidence = r.lastLine // what rclone wrote before it stopped
		}
	}
	r.Success = r.Reason == ""
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// scanRcloneLog reads a log that `rclone sync --log-file=... --log-level=INFO`
// appends to, with the wrapper's end line after every run (end_pattern,
// default "Backup completed at <date>", which the operator's script writes
// whatever happened), and its rotations (scanAppendedLog). A run succeeded
// only when rclone's own last statistics block says every transfer and
// check finished, and it has no ERROR (or worse) line, no fatal "Failed to
// ..." line and no non-zero "Errors:". An rclone killed mid-copy leaves a
// partial block ("Transferred: 0 / 6, 0%") and the wrapper's end line; one
// that did not run at all leaves the end line alone.
func scanRcloneLog(j Job, now time.Time, loc *time.Location, u *unreadablePaths) (*jobData, error) {
	return scanAppendedLog(j, now, u, func(f *appendedLog) (*jobData, error) {
		return parseRcloneLog(j, f, now, loc)
	})
}

func parseRcloneLog(j Job, f *appendedLog, now time.Time, loc *time.Location) (*jobData, error) {
	d := &jobData{VMs: map[string]vmBackup{}}
	var cur rcloneRun
	recognised, other := 0, 0
	var lastTime time.Time
	var last lineRef // the newest line read, for a run without end line

	finish := func(end time.Time, ref lineRef) {
		cur.End = end
		if cur.Start.IsZero() {
			cur.Start = end
			cur.StartRef = ref
		}
		cur.EndRef = ref
		cur.Finished = true
		cur.verdict()
		d.addSet(cur.run)
		cur = rcloneRun{}
	}

	for _, part := range f.Parts {
		lr := newLineReader(part.R)
		for n := 1; lr.next(false); n++ {
			line := lr.line
			ref := lineRef{File: part.Name, Line: n, Text: line}
			if j.EndPattern.MatchString(line) {
				recognised++
				end := lastTime
				if t, ok := parseDate(j.EndPattern.ReplaceAllString(line, ""), loc); ok {
					end = t
				}
				if !cur.seen && end.IsZero() {
					continue
				}
				finish(end, ref)
				continue
			}
			if m := matchRcloneLine(line); m != nil {
				t, err := time.ParseInLocation("2006/01/02 15:04:05", m[1], loc)
				if err != nil {
					other++
					continue
				}
				recognised++
				lastTime = t
				last = ref
				if !cur.seen {
					cur.seen = true
					cur.Start = t
					cur.StartRef = ref
				}
				cur.End = t
				cur.lastLine = ref
				switch m[2] {
				case "ERROR", "CRITICAL", "ALERT", "EMERGENCY":
					cur.error(ref)
				case "":
					if strings.HasPrefix(m[3], "Failed to") {
						cur.error(ref)
					}
				}
				continue
			}
			if !cur.seen {
				if strings.TrimSpace(line) != "" {
					other++
				}
				continue
			}
			last = ref
			cur.statsLine(line, ref)
		}
		if lr.err != nil {
			return nil, fmt.Errorf("reading %s: %w", part.Name, lr.err)
		}
	}
	if recognised == 0 {
		return nil, unreadableLog(j.LogFile, other, `rclone log line ("YYYY/MM/DD HH:MM:SS LEVEL : ...") and no end line`)
	}
	if cur.seen {
		// No end line yet: running while rclone still writes (its stats
		// come every minute), killed otherwise.
		r := cur.run
		r.EndRef = last
		settleLastRun(&r, f.LastChange, now, time.Duration(j.RunningTimeout))
		if r.Finished {
			r.Success = false
			r.Reason = "no end line, and the log has not changed for running_timeout (killed?)"
		}
		d.addSet(r)
	}
	d.finish()
	return d, nil
}

// error counts an error line of the run, keeping the first as evidence.
func (r *rcloneRun) error(ref lineRef) {
	if r.Errors++; r.FirstError.Line == 0 {
		r.FirstError = ref
	}
}

// statsLine reads a line of a statistics block into the current run.
func (r *rcloneRun) statsLine(line string, ref lineRef) {
	switch {
	case strings.HasPrefix(line, "Transferred:"):
		if m := rcloneBytes.FindStringSubmatch(line); m != nil {
			// The bytes line opens a block.
			r.stats = rcloneStats{seen: true, bytesDone: m[1] + " " + m[2] + "B", bytesAll: m[3], bytesPercent: m[4], bytesRef: ref}
			if v, err := strconv.ParseFloat(m[1], 64); err == nil {
				r.HasTransfer = true
				r.TransferredBytes = v * rcloneUnits[m[2]]
			}
		} else if m := rcloneFiles.FindStringSubmatch(line); m != nil {
			done, err1 := strconv.Atoi(m[1])
			all, err2 := strconv.Atoi(m[2])
			if err1 == nil && err2 == nil {
				r.HasTransfer = true
				r.TransferredFiles = float64(done)
				r.stats.hasFiles, r.stats.files, r.stats.filesAll, r.stats.filesRef = true, done, all, ref
			}
		}
	case strings.HasPrefix(line, "Errors:"):
		if m := rcloneErrors.FindStringSubmatch(line); m != nil {
			r.statsErrors, _ = strconv.Atoi(m[1])
			r.stats.errorsRef = ref
		}
	case strings.HasPrefix(line, "Checks:"):
		if m := rcloneChecks.FindStringSubmatch(line); m != nil {
			done, err1 := strconv.Atoi(m[1])
			all, err2 := strconv.Atoi(m[2])
			if err1 == nil && err2 == nil {
				r.stats.hasChecks, r.stats.checks, r.stats.checksAll, r.stats.checksRef = true, done, all, ref
			}
		}
	case strings.HasPrefix(line, "Transferring:"), strings.HasPrefix(line, "Checking:"):
		r.stats.inFlight, r.stats.inFlightRef = true, ref
	case strings.HasPrefix(line, " *") && r.stats.inFlight && !strings.HasPrefix(r.stats.inFlightRef.Text, " *"):
		// The first file in flight says more than the list's heading.
		r.stats.inFlightRef = ref
	}
}
