package backup

import (
	"errors"
	"io/fs"
	"maps"
	"slices"
	"sync"
)

// unreadablePaths collects, during one scan of a job, the files and
// directories a verdict needed that could not be opened: a log, a rotated
// log, a VM's XML, a set's images directory. The exporter runs as an
// unprivileged user; a backup tree written by root with 0600 files and
// 0700 directories (cp -a of /etc/libvirt, rsync -a) hides part of the
// evidence from it. A verdict made on part of the evidence is not a lie
// only when it says so: every such path is counted
// (vmhost_backup_unreadable_paths) and logged, never passed over.
//
// A path that does not exist is not unreadable: a missing file is what
// the verdict is about (a set without its log, a disk never copied).
type unreadablePaths struct {
	mu    sync.Mutex
	paths map[string]string // path -> the error, as logged
}

// note records err when it is a failure to read a path that exists, and
// reports whether it did. err is what os.Open, os.ReadDir, os.Stat or
// openRegular returned, wrapped or not: the path comes from the
// *fs.PathError (or *notRegularError) inside it.
func (u *unreadablePaths) note(err error) bool {
	if u == nil || err == nil || errors.Is(err, fs.ErrNotExist) {
		return false
	}
	var path string
	var pe *fs.PathError
	var nr *notRegularError
	switch {
	case errors.As(err, &nr):
		path = nr.path
	case errors.As(err, &pe):
		path = pe.Path
	default:
		return false
	}
	u.addAll(map[string]string{path: err.Error()})
	return true
}

// addAll records paths found unreadable elsewhere (a tree walk, a set's
// own collection), path to error.
func (u *unreadablePaths) addAll(paths map[string]string) {
	if u == nil || len(paths) == 0 {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.paths == nil {
		u.paths = map[string]string{}
	}
	maps.Copy(u.paths, paths)
}

// snapshot is the paths collected so far, path to error.
func (u *unreadablePaths) snapshot() map[string]string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return maps.Clone(u.paths)
}

// newlyUnreadable returns the paths of now that were not in before, sorted:
// each is logged once, when it first becomes unreadable, not at every scan.
func newlyUnreadable(before, now map[string]string) []string {
	var fresh []string
	for p := range now {
		if _, seen := before[p]; !seen {
			fresh = append(fresh, p)
		}
	}
	slices.Sort(fresh)
	return fresh
}

// notRegularError is openRegular's refusal of a FIFO, a device or a
// directory where a file was expected: the evidence exists but cannot be
// read as a file.
type notRegularError struct {
	path string
	kind string
}

func (e *notRegularError) Error() string {
	return e.path + " is not a regular file (" + e.kind + "); only regular files are read"
}
