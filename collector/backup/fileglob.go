package backup

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// scanFileGlob looks at the files matching a glob (in-guest dumps, cold
// disk copies): the newest one by modification time is the last success.
// filepath.Glob ignores I/O errors, so the directory part is read first:
// an unreadable or missing directory is a scan error, not "no backups".
//
// A file written within running_timeout is a dump in progress (mysqldump
// | gzip writes into its final name): it is a running run, not a success,
// not a set and not a size, so a long dump neither looks like a fresh
// backup nor, half written, like a backup that shrank.
func scanFileGlob(j Job, now time.Time, _ *time.Location, u *unreadablePaths) (*jobData, error) {
	dir := filepath.Dir(j.Glob)
	if !strings.ContainsAny(dir, `*?[\`) {
		if _, err := os.ReadDir(dir); err != nil {
			u.note(err)
			return nil, fmt.Errorf("reading %s: %w", dir, err)
		}
	}
	matches, err := filepath.Glob(j.Glob)
	if err != nil {
		return nil, fmt.Errorf("glob %q: %w", j.Glob, err)
	}
	d := &jobData{VMs: map[string]vmBackup{}}
	var files []run
	inProgress := false
	for _, m := range matches {
		info, err := os.Lstat(m)
		if err != nil || !info.Mode().IsRegular() {
			continue // vanished, a directory or a symlink
		}
		size, disk, mtime, err := fileSize(m)
		if err != nil {
			u.note(err)
			continue
		}
		if now.Sub(mtime) < time.Duration(j.RunningTimeout) {
			d.add(run{Start: fileBirth(m, mtime), End: mtime, EndRef: lineRef{File: m}})
			inProgress = true
			continue
		}
		// The file is the evidence (no lines: EndRef.Line 0).
		files = append(files, run{Start: mtime, End: mtime, Finished: true, Success: true,
			HasSize: true, SizeBytes: size, DiskBytes: disk, Files: 1, EndRef: lineRef{File: m}})
	}
	// Oldest first: every file is a successful backup, and the size
	// comparison needs them in the order they were made.
	sort.SliceStable(files, func(a, b int) bool { return files[a].End.Before(files[b].End) })
	sizes := make([]int64, len(files))
	for i, r := range files {
		d.addSet(r)
		sizes[i] = r.SizeBytes
	}
	d.finish()
	// Dumps of several databases run side by side: one finished earlier
	// may be newer than another one's start, and the job still runs.
	d.Running = d.Running || inProgress
	d.PrevSuccessSize, d.HasPrevSize = medianOfPrevious(sizes)
	return d, nil
}

// fileBirth is when a dump in progress was created, its run's start: the
// file's birth time where the file system keeps one, else its last write.
func fileBirth(path string, mtime time.Time) time.Time {
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BTIME, &st); err != nil || st.Mask&unix.STATX_BTIME == 0 {
		return mtime
	}
	return time.Unix(st.Btime.Sec, int64(st.Btime.Nsec))
}
