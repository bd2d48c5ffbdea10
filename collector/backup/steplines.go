package backup

import (
	"fmt"
	"io"
	"regexp"
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

// stepLog is what one appended step log holds: the scripts log with
// `tee -a` (kvm_backup.sh) or `>>` (kvm_restore.sh), so a second run on the
// same day, or every restore test ever made, lands in the same file.
type stepLog struct {
	Runs  []run // oldest first
	Lines int   // lines in the step format
	Other int   // other non-empty lines
}

// readStepRuns splits a step log into runs: a line matching the job's
// start pattern starts a run (lines before the first such line form one
// run of their own). A run succeeded when a success line came, and ended
// at its last line. Every run but the last is finished (a newer run
// started after it); the last is finished only if it succeeded: whether it
// is still running or was killed, only the caller can tell, from the time
// the files last changed.
func readStepRuns(r io.Reader, name string, j Job, loc *time.Location) (stepLog, error) {
	var out stepLog
	var cur *run
	lr := newLineReader(r)
	for lr.next(false) {
		l, ok := parseStepLine(lr.line, loc)
		if !ok {
			if strings.TrimSpace(lr.line) != "" {
				out.Other++
			}
			continue
		}
		out.Lines++
		if cur == nil || j.StartPattern.MatchString(l.Msg) {
			if cur != nil {
				cur.Finished = true
				out.Runs = append(out.Runs, *cur)
			}
			cur = &run{Start: l.T}
		}
		cur.End = l.T
		if isSuccess(j.SuccessPattern.Regexp, l.Msg) {
			cur.Success, cur.Finished = true, true
		}
		if j.ErrorPattern.MatchString(l.Msg) {
			cur.Errors++
		}
	}
	if lr.err != nil {
		return out, fmt.Errorf("reading %s: %w", name, lr.err)
	}
	if cur != nil {
		out.Runs = append(out.Runs, *cur)
	}
	return out, nil
}

// settleLastRun decides about the last run of an appended log, which has no
// end line of its own: it is running while its files changed within
// timeout, and failed (killed) otherwise, ending at the last change.
func settleLastRun(last *run, lastChange, now time.Time, timeout time.Duration) {
	if last == nil || last.Finished {
		return
	}
	last.Finished = now.Sub(lastChange) >= timeout
	if last.Finished && lastChange.After(last.End) {
		last.End = lastChange
	}
}
