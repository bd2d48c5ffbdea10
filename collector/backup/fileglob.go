package backup

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// scanFileGlob looks at the files matching a glob (in-guest dumps, cold
// disk copies): the newest one by modification time is the last success.
// filepath.Glob ignores I/O errors, so the directory part is read first:
// an unreadable or missing directory is a scan error, not "no backups".
func scanFileGlob(j Job, _ time.Time, _ *time.Location) (*jobData, error) {
	dir := filepath.Dir(j.Glob)
	if !strings.ContainsAny(dir, `*?[\`) {
		if _, err := os.ReadDir(dir); err != nil {
			return nil, fmt.Errorf("reading %s: %w", dir, err)
		}
	}
	matches, err := filepath.Glob(j.Glob)
	if err != nil {
		return nil, fmt.Errorf("glob %q: %w", j.Glob, err)
	}
	d := &jobData{VMs: map[string]vmBackup{}}
	for _, m := range matches {
		info, err := os.Lstat(m)
		if err != nil || !info.Mode().IsRegular() {
			continue // vanished, a directory or a symlink
		}
		size, disk, mtime, err := fileSize(m)
		if err != nil {
			continue
		}
		d.addSet(run{Start: mtime, End: mtime, Finished: true, Success: true,
			HasSize: true, SizeBytes: size, DiskBytes: disk, Files: 1})
	}
	d.finish()
	return d, nil
}
