package backup

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// unreadableLog explains an appended log in which no line was recognised:
// empty, or none of its lines has the expected form.
func unreadableLog(path string, otherLines int, form string) error {
	if otherLines == 0 {
		return fmt.Errorf("%s is empty", path)
	}
	return fmt.Errorf("%s has no %s", path, form)
}

// maxLogBytes bounds what is read of one log: its last 256 MiB. A log
// that grows without rotation (rclone's, appended to every night for
// years) then costs a bounded time and the newest runs are always read; a
// run that lies entirely before the window is not seen (the retention
// count of such a log says only what the window holds).
const maxLogBytes = 256 << 20

// boundedFile is a log opened for reading at most its last maxLogBytes.
type boundedFile struct {
	io.Reader
	*os.File
}

func (b boundedFile) Read(p []byte) (int, error) { return b.Reader.Read(p) }

// openRegular opens path for reading only if it is a regular file (after
// following symlinks): a FIFO would block the open until a writer comes,
// a device such as /dev/zero never ends, a socket cannot be read. The
// open itself does not block (O_NONBLOCK), so a file swapped for a FIFO
// between the check and the open is caught by the second check.
func openRegular(path string) (*os.File, os.FileInfo, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if !info.Mode().IsRegular() {
		return nil, nil, &notRegularError{path: path, kind: fileKind(info.Mode())}
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("opening %s: %w", path, err)
	}
	info, err = f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if !info.Mode().IsRegular() {
		f.Close()
		return nil, nil, &notRegularError{path: path, kind: fileKind(info.Mode())}
	}
	return f, info, nil
}

func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m.IsDir():
		return "a directory"
	}
	return m.Type().String()
}

// openLog opens a log (a regular file only) for reading its last
// maxLogBytes.
func openLog(path string) (boundedFile, os.FileInfo, error) {
	f, info, err := openRegular(path)
	if err != nil {
		return boundedFile{}, nil, err
	}
	if skip := info.Size() - maxLogBytes; skip > 0 {
		if _, err := f.Seek(skip, io.SeekStart); err != nil {
			f.Close()
			return boundedFile{}, nil, fmt.Errorf("seeking in %s: %w", path, err)
		}
	}
	return boundedFile{Reader: io.LimitReader(f, maxLogBytes), File: f}, info, nil
}

// appendedLog is an appended log read together with its rotations:
// logrotate moves the log to <log>.1 or <log>-<date> (dateext), or
// compresses it to <log>.1.gz or <log>-<date>.gz, and leaves an empty or
// missing log, so right after a rotation the last runs are in the rotated
// file, and a run's start may be in one file and its end in the next.
// After a quiet week with `ifempty` the newest rotation is empty and the
// last success is in <log>.2.gz.
type appendedLog struct {
	// Parts are the files read, oldest first, each read on its own: a
	// parser that quotes a line names its file and line number, and a
	// rotated file cut in the middle of a line (copytruncate) does not glue
	// its last line to the next file's first.
	Parts   []logPart
	closers []io.Closer
	// LastChange is when the log (or, while the log is still empty after
	// a rotation, its newest rotation with content) was last written: a
	// run without an end line is still running while this is recent.
	LastChange time.Time
}

// logPart is one file of an appended log: each keeps its own name and
// line numbers for the evidence a run quotes (run.StartRef, EndRef,
// FirstError).
type logPart struct {
	Name string
	R    io.Reader
}

func (l *appendedLog) Close() error {
	for _, c := range l.closers {
		c.Close()
	}
	return nil
}

// rotationsToRead picks, of rotated (newest first), the ones a scan reads:
// the newest, and, when since is set, the older ones back to and
// including the first last written before since. A rotated file holds
// only runs that ended before its modification time (logrotate keeps it
// when it renames and compresses), so that first file older than since is
// the last one that can hold a run within the window; it is read too, so
// a success just outside max_age shows as stale, with its age, rather
// than as never.
//
// Of a rotation that exists both plain and compressed (logrotate is
// compressing it) only the plain file, which is whole, is read.
func rotationsToRead(rotated []rotatedFile, since time.Time) []rotatedFile {
	var out []rotatedFile
	for _, r := range rotated {
		if n := len(out); n > 0 && out[n-1].number == r.number && out[n-1].date == r.date {
			continue // the compressed twin of the file just taken
		}
		if n := len(out); n > 0 && (since.IsZero() || out[n-1].mtime.Before(since)) {
			break
		}
		out = append(out, r)
	}
	return out
}

// scanAppendedLog runs parse on the job's log with its newest rotation
// and, when no success is in them, once more with every rotation within
// max_age (see rotationsToRead). A nightly job that succeeded last night
// costs what one rotation costs; a monthly restore test rotated weekly
// with ifempty (an empty <log>.1, the success in <log>.3.gz) is still
// found, also by an exporter started in that window, which has nothing
// but the files to go by.
func scanAppendedLog(j Job, now time.Time, u *unreadablePaths, parse func(*appendedLog) (*jobData, error)) (*jobData, error) {
	rotated, err := rotations(j.LogFile)
	if err != nil {
		err = fmt.Errorf("looking for rotations of %s: %w", j.LogFile, err)
		if !u.note(err) {
			return nil, err
		}
	}
	newest := rotationsToRead(rotated, time.Time{})
	d, err := parseAppendedLog(j.LogFile, newest, u, parse)
	if err == nil && d.LastSuccess != nil {
		return d, nil
	}
	window := rotationsToRead(rotated, now.Add(-time.Duration(j.MaxAge)))
	if len(window) == len(newest) {
		return d, err
	}
	return parseAppendedLog(j.LogFile, window, u, parse)
}

func parseAppendedLog(path string, rotated []rotatedFile, u *unreadablePaths, parse func(*appendedLog) (*jobData, error)) (*jobData, error) {
	f, err := openAppendedLog(path, rotated, u)
	if err != nil {
		u.note(err)
		return nil, err
	}
	defer f.Close()
	return parse(f)
}

// openAppendedLog opens path and the given rotations of it (newest
// first), oldest part first. An empty log is an error only when no rotated
// file exists either. A rotation that exists but cannot be read (root's
// 0600 file) is counted in u and left out: the runs in the other files
// are still judged, like a vzdump archive whose log cannot be read.
func openAppendedLog(path string, rotated []rotatedFile, u *unreadablePaths) (*appendedLog, error) {
	out := &appendedLog{}
	var contentChange time.Time // the newest rotation with content
	for i := len(rotated) - 1; i >= 0; i-- {
		r, info, err := openRotation(rotated[i], out)
		if err != nil {
			if !u.note(err) {
				out.Close()
				return nil, err
			}
			continue
		}
		out.Parts = append(out.Parts, logPart{Name: rotated[i].path, R: r})
		if info.Size() > 0 || contentChange.IsZero() {
			contentChange = info.ModTime()
		}
	}
	cur, info, err := openLog(path)
	switch {
	case err == nil:
		out.closers = append(out.closers, cur)
		out.Parts = append(out.Parts, logPart{Name: path, R: cur})
		out.LastChange = info.ModTime()
		if info.Size() == 0 && len(out.Parts) > 1 {
			out.LastChange = contentChange
		}
	case errors.Is(err, fs.ErrNotExist) && len(out.Parts) > 0:
		// Rotated without `create`: the log comes back with the next run.
		out.LastChange = contentChange
	default:
		out.Close()
		return nil, err
	}
	return out, nil
}

// openRotation opens one rotation, bounded like the log itself; a .gz is
// read decompressed.
func openRotation(r rotatedFile, into *appendedLog) (io.Reader, os.FileInfo, error) {
	if !r.gz {
		f, info, err := openLog(r.path)
		if err != nil {
			return nil, nil, err
		}
		into.closers = append(into.closers, f)
		return f, info, nil
	}
	f, info, err := openRegular(r.path)
	if err != nil {
		return nil, nil, err
	}
	gz, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("reading %s: %w", r.path, err)
	}
	into.closers = append(into.closers, f, gz)
	return io.LimitReader(gz, maxLogBytes), info, nil
}
