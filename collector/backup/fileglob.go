package backup

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// scanFileGlob looks at the files matching a glob (in-guest dumps, cold
// disk copies): the newest one by modification time is the last success.
// filepath.Glob ignores I/O errors, so the directory part is read first:
// an unreadable or missing directory is a scan error, not "no backups".
func scanFileGlob(j Job, _ time.Time, _ *time.Location, u *unreadablePaths) (*jobData, error) {
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
		files = append(files, run{Start: mtime, End: mtime, Finished: true, Success: true,
			HasSize: true, SizeBytes: size, DiskBytes: disk, Files: 1})
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
	d.PrevSuccessSize, d.HasPrevSize = medianOfPrevious(sizes)
	return d, nil
}
