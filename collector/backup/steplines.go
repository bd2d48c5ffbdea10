package backup

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
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

// readStepRuns splits a step log into runs. A run begins at a line
// matching the job's start pattern (lines before the first such line form
// one run of their own) and ends
//   - at its success line, when one came (then it succeeded unless it has
//     error lines),
//   - at the next run's start: it had no end line, so it failed (killed,
//     or the host rebooted under it),
//   - with gap > 0 (restore_log, whose log is its only witness), at a
//     silence longer than gap: a line written later than that after the
//     run's last one begins a new run, even when its start line was lost.
//
// The last run is finished only if it has its success line: whether it
// is still running or was killed, only the caller can tell, from the time
// the files last changed (settleLastRun).
//
// Every line of a run, step line (its message) or not (the output of the
// script's commands when the script appends it to its log, e.g.
// `exec >>"$LOGFILE" 2>&1`), that matches error_pattern is an error line
// and fails the run: scripts without `set -e` log their final step after
// a failed rsync or cp.
func readStepRuns(parts []logPart, j Job, loc *time.Location, gap time.Duration) (stepLog, error) {
	p := stepRunReader{j: j, loc: loc, gap: gap}
	for _, part := range parts {
		lr := newLineReader(part.R)
		n := 0
		for lr.next(false) {
			n++
			p.line(lineRef{File: part.Name, Line: n, Text: lr.line})
		}
		if lr.err != nil {
			return p.out, fmt.Errorf("reading %s: %w", part.Name, lr.err)
		}
	}
	if p.cur != nil {
		p.close("")
	}
	return p.out, nil
}

// stepRunReader is readStepRuns' state, carried from one part to the next:
// a run may start in the rotated log and end in the log.
type stepRunReader struct {
	j          Job
	loc        *time.Location
	gap        time.Duration
	out        stepLog
	cur        *run
	sawSuccess bool
	prev       string // the previous line, to see tee's doubles
	// Error lines before the first run's first line (the script's
	// output before its first log line) count for that run.
	pending      int
	pendingFirst lineRef
}

func (p *stepRunReader) line(ref lineRef) {
	// A reboot can leave the end of an appended log as NUL bytes (the
	// file's size was written, its last block was not), and the next
	// run appends after them.
	text := strings.TrimLeft(ref.Text, "\x00")
	if head, tail, ok := p.gluedStart(text); ok {
		// The previous run's last line was cut short by the reboot and
		// the next run's first line is glued to it.
		if h := strings.TrimRight(head, "\x00"); h != "" {
			p.line(lineRef{File: ref.File, Line: ref.Line, Text: h})
		}
		text = tail
	}
	ref.Text = text
	prev := p.prev
	p.prev = text
	l, ok := parseStepLine(text, p.loc)
	if !ok {
		if strings.TrimSpace(text) == "" {
			return
		}
		p.out.Other++
		if p.j.ErrorPattern.MatchString(text) {
			p.addError(ref)
		}
		return
	}
	p.out.Lines++
	if text == prev {
		// log() writes with `tee -a "$LOGFILE"` and a script whose output
		// is appended to the same log (`exec >>"$LOGFILE"`) gets each
		// step line twice in a row: one line, not a new run.
		return
	}
	switch {
	case p.cur == nil:
		p.begin(l, ref)
	case p.j.StartPattern.MatchString(l.Msg):
		p.close("the next run started at " + l.T.Format(stepTimeLayout))
		p.begin(l, ref)
	case p.gap > 0 && l.T.Sub(p.cur.End) > p.gap:
		p.close(fmt.Sprintf("nothing written for longer than the running timeout (%s) after %s",
			model.Duration(p.gap), p.cur.End.Format(stepTimeLayout)))
		p.begin(l, ref)
	}
	p.cur.End, p.cur.EndRef = l.T, ref
	if strings.IndexByte(l.Msg, '[') >= 0 { // most lines have no counter: skip the regexp
		if m := stepCounter.FindStringSubmatch(l.Msg); m != nil {
			p.cur.LastStep = m[1] + " of " + m[2]
		}
	}
	if isSuccess(p.j.SuccessPattern.Regexp, l.Msg) {
		p.sawSuccess, p.cur.Finished = true, true
	}
	if p.j.ErrorPattern.MatchString(l.Msg) {
		p.addError(ref)
	}
}

// gluedStart finds a start line glued to the end of another line: the
// last line a reboot cut short, with no newline, then the next run's
// first line. Only a start line is split off, so that a message quoting
// a time stamp stays whole.
func (p *stepRunReader) gluedStart(s string) (head, tail string, ok bool) {
	for from := 1; from < len(s); {
		i := strings.Index(s[from:], " - ")
		if i < 0 {
			return "", "", false
		}
		at := from + i - len(stepTimeLayout)
		from += i + 1
		if at <= 0 {
			continue
		}
		if l, ok := parseStepLine(s[at:], p.loc); ok && p.j.StartPattern.MatchString(l.Msg) {
			return s[:at], s[at:], true
		}
	}
	return "", "", false
}

func (p *stepRunReader) begin(l logLine, ref lineRef) {
	p.cur = &run{Start: l.T, End: l.T, StartRef: ref, EndRef: ref, Errors: p.pending, FirstError: p.pendingFirst}
	p.sawSuccess, p.pending, p.pendingFirst = false, 0, lineRef{}
}

func (p *stepRunReader) addError(ref lineRef) {
	if p.cur == nil {
		if p.pending == 0 {
			p.pendingFirst = ref
		}
		p.pending++
		return
	}
	if p.cur.Errors == 0 {
		p.cur.FirstError = ref
	}
	p.cur.Errors++
}

// close files the current run. ended says why a run without its success
// line is over; empty: the log ends here, and the caller settles it.
func (p *stepRunReader) close(ended string) {
	r := p.cur
	p.cur = nil
	switch {
	case p.sawSuccess:
		r.Finished = true
		r.Success = r.Errors == 0
		r.Reason = failReason("", r)
	case ended != "":
		r.Finished = true
		r.Reason = failReason(noEndLine(r)+"; "+ended, r)
	}
	p.out.Runs = append(p.out.Runs, *r)
}

// stepCounter is the scripts' step counter, "[2/5]" in
// "2026-12-01 09:00:02 - [2/5] 各VMの定義（XML）を保存中...".
var stepCounter = regexp.MustCompile(`\[(\d+)/(\d+)\]`)

// noEndLine begins the reason of a run that has no end line: with the
// step it was in when it stopped, when its lines count steps ("killed at
// step 2 of 5"), which tells the operator where to look (step 2 exports
// the VM definitions: a virsh that hung).
func noEndLine(r *run) string {
	if r.LastStep != "" {
		return "killed at step " + r.LastStep + " (no end line)"
	}
	return "no end line"
}

// failReason says why a finished run failed: how it ended without its end
// line (noEnd, may be empty) and its error lines. Empty for a success.
func failReason(noEnd string, r *run) string {
	var parts []string
	if noEnd != "" {
		parts = append(parts, noEnd)
	}
	if r.Errors > 0 {
		lines := fmt.Sprintf("%d error lines", r.Errors)
		if r.Errors == 1 {
			lines = "1 error line"
		}
		if f := r.FirstError; f.Line > 0 {
			lines += fmt.Sprintf(", first: %s (line %d of %s)", shorten(strings.TrimSpace(f.Text)), f.Line, filepath.Base(f.File))
		}
		parts = append(parts, lines)
	}
	return strings.Join(parts, "; ")
}

// endUnfinished ends a run that has no end line because a newer run (in a
// newer set) started: it was killed, or the host went down under it.
func endUnfinished(r *run, nextStart time.Time) {
	if r.Finished {
		return
	}
	r.Finished, r.Success = true, false
	r.Reason = failReason(noEndLine(r)+"; the next run started at "+nextStart.Format(stepTimeLayout), r)
}

// settleLastRun decides about the last run of an appended log, which has no
// end line of its own: it is running while its files changed within
// timeout, and failed (killed) otherwise, ending at the last change.
func settleLastRun(last *run, lastChange, now time.Time, timeout time.Duration) {
	if last == nil || last.Finished {
		return
	}
	if now.Sub(lastChange) < timeout {
		return
	}
	last.Finished, last.Success = true, false
	if lastChange.After(last.End) {
		last.End = lastChange
	}
	// In the zone the log's own times are read in.
	at := lastChange
	if loc := last.Start.Location(); !last.Start.IsZero() {
		at = lastChange.In(loc)
	}
	last.Reason = failReason(fmt.Sprintf("%s; nothing written for longer than the running timeout (%s) after %s",
		noEndLine(last), model.Duration(timeout), at.Format(stepTimeLayout)), last)
}
