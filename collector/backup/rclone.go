package backup

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

var (
	// Transferred:   	    4.889 KiB / 4.889 KiB, 100%, 0 B/s, ETA -
	rcloneBytes = regexp.MustCompile(`^Transferred:\s+([\d.]+)\s*([KMGTPE]i?)?B(?:ytes)?\s*/`)
	// Transferred:            2 / 2, 100%
	rcloneFiles  = regexp.MustCompile(`^Transferred:\s+(\d+)\s*/\s*\d+,`)
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

// rcloneRun accumulates one run of an rclone log.
type rcloneRun struct {
	run
	statsErrors int
	seen        bool
}

// scanRcloneLog reads a log that `rclone sync --log-file=... --log-level=INFO`
// appends to, with the wrapper's end line after every run (end_pattern,
// default "Backup completed at <date>", which the operator's script writes
// whatever happened). A run failed when it has an ERROR (or worse) line, a
// fatal "Failed to ..." line or a non-zero "Errors:" in its stats, or when
// rclone wrote nothing at all before the end line.
func scanRcloneLog(j Job, now time.Time, loc *time.Location, u *unreadablePaths) (*jobData, error) {
	f, err := openAppendedLog(j.LogFile, u)
	if err != nil {
		u.note(err)
		return nil, err
	}
	defer f.Close()
	d := &jobData{VMs: map[string]vmBackup{}}
	var cur rcloneRun
	recognised, other := 0, 0
	var lastTime time.Time

	finish := func(end time.Time) {
		cur.End = end
		if cur.Start.IsZero() {
			cur.Start = end
		}
		cur.Finished = true
		// No rclone line before the wrapper's end line: rclone did not run
		// (not installed, a bad flag) or logged elsewhere (a typo in
		// --log-file). The wrapper appends its line whatever happened, so
		// that line alone is no success.
		cur.Success = cur.seen && cur.Errors == 0 && cur.statsErrors == 0
		d.addSet(cur.run)
		cur = rcloneRun{}
	}

	lr := newLineReader(f)
	for lr.next(false) {
		line := lr.line
		if j.EndPattern.MatchString(line) {
			recognised++
			end := lastTime
			if t, ok := parseDate(j.EndPattern.ReplaceAllString(line, ""), loc); ok {
				end = t
			}
			if !cur.seen && end.IsZero() {
				continue
			}
			finish(end)
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
			if !cur.seen {
				cur.seen = true
				cur.Start = t
			}
			cur.End = t
			switch m[2] {
			case "ERROR", "CRITICAL", "ALERT", "EMERGENCY":
				cur.Errors++
			case "":
				if strings.HasPrefix(m[3], "Failed to") {
					cur.Errors++
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
		// Lines of the stats block belong to the current run.
		if !strings.HasPrefix(line, "Transferred:") && !strings.HasPrefix(line, "Errors:") {
			continue
		}
		if m := rcloneErrors.FindStringSubmatch(line); m != nil {
			cur.statsErrors, _ = strconv.Atoi(m[1])
		} else if m := rcloneBytes.FindStringSubmatch(line); m != nil {
			if v, err := strconv.ParseFloat(m[1], 64); err == nil {
				cur.HasTransfer = true
				cur.TransferredBytes = v * rcloneUnits[m[2]]
			}
		} else if m := rcloneFiles.FindStringSubmatch(line); m != nil {
			if v, err := strconv.ParseFloat(m[1], 64); err == nil {
				cur.HasTransfer = true
				cur.TransferredFiles = v
			}
		}
	}
	if lr.err != nil {
		return nil, fmt.Errorf("reading %s: %w", j.LogFile, lr.err)
	}
	if recognised == 0 {
		return nil, unreadableLog(j.LogFile, other, `rclone log line ("YYYY/MM/DD HH:MM:SS LEVEL : ...") and no end line`)
	}
	if cur.seen {
		// No end line yet: running while rclone still writes (its stats
		// come every minute), killed otherwise.
		last := cur.run
		settleLastRun(&last, f.LastChange, now, time.Duration(j.RunningTimeout))
		if last.Finished {
			last.Success = false
		}
		d.addSet(last)
	}
	d.finish()
	return d, nil
}
