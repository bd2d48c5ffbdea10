package backup

import (
	"time"
)

// scanRestoreLog reads an appended restore log: a run starts at a line
// matching start_pattern and succeeded when a success_pattern line follows.
// The newest run decides the run state; the last success is the end of the
// newest run that completed, never a later failed run's end. Restore
// tests run monthly: when the log and its newest rotation hold no
// success, the rotations within max_age are read too (scanAppendedLog).
func scanRestoreLog(j Job, now time.Time, loc *time.Location, u *unreadablePaths) (*jobData, error) {
	return scanAppendedLog(j, now, u, func(f *appendedLog) (*jobData, error) {
		return parseRestoreLog(j, f, now, loc)
	})
}

func parseRestoreLog(j Job, f *appendedLog, now time.Time, loc *time.Location) (*jobData, error) {
	// The log is all a restore leaves: a silence longer than
	// running_timeout ends a run, as it does for the last run
	// (settleLastRun), so that the next test is judged alone even when its
	// start line was lost.
	log, err := readStepRuns(f.Parts, j, loc, time.Duration(j.RunningTimeout))
	if err != nil {
		return nil, err
	}
	if log.Lines == 0 {
		return nil, unreadableLog(j.LogFile, log.Other, `line of the form "YYYY-MM-DD HH:MM:SS - message"`)
	}
	d := &jobData{VMs: map[string]vmBackup{}}
	settleLastRun(&log.Runs[len(log.Runs)-1], f.LastChange, now, time.Duration(j.RunningTimeout))
	for _, r := range log.Runs {
		d.addSet(r)
	}
	d.finish()
	return d, nil
}
