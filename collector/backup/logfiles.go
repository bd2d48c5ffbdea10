package backup

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
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

// appendedLog is an appended log read together with its newest rotation:
// logrotate moves the log to <log>.1 or <log>-<date> (dateext), or
// compresses it to <log>.1.gz or <log>-<date>.gz, and leaves an empty or
// missing log, so right after a rotation the last runs
// are in the rotated file, and a run's start may be in one file and its
// end in the other.
type appendedLog struct {
	io.Reader
	// Parts are the same files one by one with their names, for parsers
	// that quote lines as evidence: read either Reader or Parts.
	Parts []logPart
	// rotatedName is the rotated file's path, set by openRotation.
	rotatedName string
	closers     []io.Closer
	// LastChange is when the log (or, while the log is still empty after
	// a rotation, its rotated file) was last written: a run without an end
	// line is still running while this is recent.
	LastChange time.Time
}

func (l *appendedLog) Close() error {
	for _, c := range l.closers {
		c.Close()
	}
	return nil
}

// openAppendedLog opens path and its newest rotation, rotated part first.
// An empty log is an error only when no rotated file exists either. A
// rotation that exists but cannot be read (root's 0600 file) is counted
// in u and left out: the runs in the log itself are still judged, like a
// vzdump archive whose log cannot be read.
func openAppendedLog(path string, u *unreadablePaths) (*appendedLog, error) {
	out := &appendedLog{}
	var parts []io.Reader
	rotatedChange, rotated, err := openRotation(path, out)
	if err != nil && !u.note(err) {
		return nil, err
	}
	if rotated != nil {
		parts = append(parts, rotated, strings.NewReader("\n"))
		out.Parts = append(out.Parts, logPart{Name: out.rotatedName, R: rotated})
	}
	cur, info, err := openLog(path)
	switch {
	case err == nil:
		out.closers = append(out.closers, cur)
		parts = append(parts, cur)
		out.Parts = append(out.Parts, logPart{Name: path, R: cur})
		out.LastChange = info.ModTime()
		if info.Size() == 0 && rotated != nil {
			out.LastChange = rotatedChange
		}
	case errors.Is(err, fs.ErrNotExist) && rotated != nil:
		// Rotated without `create`: the log comes back with the next run.
		out.LastChange = rotatedChange
	default:
		out.Close()
		return nil, err
	}
	out.Reader = io.MultiReader(parts...)
	return out, nil
}

// openRotation opens the newest rotation of path (see rotations) if one
// exists (nil if none), bounded like the log itself.
func openRotation(path string, into *appendedLog) (time.Time, io.Reader, error) {
	rotated, err := rotations(path)
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("looking for rotations of %s: %w", path, err)
	}
	if len(rotated) == 0 {
		return time.Time{}, nil, nil
	}
	newest := rotated[0]
	into.rotatedName = newest.path
	if !newest.gz {
		f, info, err := openLog(newest.path)
		if err != nil {
			return time.Time{}, nil, err
		}
		into.closers = append(into.closers, f)
		return info.ModTime(), f, nil
	}
	f, info, err := openRegular(newest.path)
	if err != nil {
		return time.Time{}, nil, err
	}
	gz, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return time.Time{}, nil, fmt.Errorf("reading %s: %w", newest.path, err)
	}
	into.closers = append(into.closers, f, gz)
	return info.ModTime(), io.LimitReader(gz, maxLogBytes), nil
}
