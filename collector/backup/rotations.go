package backup

import (
	"cmp"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// rotatedFile is one rotation of a log that logrotate left beside it.
type rotatedFile struct {
	path  string
	gz    bool
	mtime time.Time
	// number is N of <log>.N[.gz] (0 for a dated name); date is the digits
	// of a dated name's suffix (<log>-20261124: "20261124").
	number int
	date   string
}

var (
	// numberedSuffix: <log>.1, <log>.2.gz (logrotate's default). Up to
	// four digits: a longer number is a date written without separators
	// after a dot (dateformat .%Y%m%d).
	numberedSuffix = regexp.MustCompile(`^\.([1-9][0-9]{0,3})(\.gz)?$`)
	// datedSuffix: <log>-20261124, <log>-20261124.gz (dateext, RHEL's
	// default), and the other dateformats that start with the date
	// (-%Y-%m-%d, -%Y%m%d%H, -%Y%m%d-%s).
	datedSuffix = regexp.MustCompile(`^[-._]([0-9]{4}[-_]?[0-9]{2}[-_]?[0-9]{2}(?:[-_]?[0-9]+)*)(\.gz)?$`)
)

// rotations lists the rotations of the log at path, newest first: the
// numbered ones by number, the dated ones by the date in their names, and
// the two kinds interleaved by modification time. Both kinds are found
// beside each other when a host switched from one scheme to the other
// (dateext does not remove the old <log>.N files, and without dateext
// the old dated ones stay): the leftovers of the old scheme are older
// than anything the new one wrote, and the modification time, which
// logrotate keeps when it renames and compresses, says so. Within a kind
// the name decides, as it does for logrotate itself. A directory that
// cannot be listed (execute permission only) still shows its <log>.1 and
// <log>.1.gz.
func rotations(path string) ([]rotatedFile, error) {
	dir, base := filepath.Dir(path), filepath.Base(path)
	var names []string
	entries, err := os.ReadDir(dir)
	switch {
	case err == nil:
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), base) {
				names = append(names, e.Name())
			}
		}
	case errors.Is(err, fs.ErrPermission):
		names = []string{base + ".1", base + ".1.gz"}
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil // no log either, which its open reports
	default:
		return nil, err
	}
	var numbered, dated []rotatedFile
	for _, name := range names {
		suffix := name[len(base):]
		r := rotatedFile{path: filepath.Join(dir, name)}
		if m := numberedSuffix.FindStringSubmatch(suffix); m != nil {
			r.number, _ = strconv.Atoi(m[1])
			r.gz = m[2] != ""
		} else if m := datedSuffix.FindStringSubmatch(suffix); m != nil {
			r.date = strings.Map(func(c rune) rune {
				if c >= '0' && c <= '9' {
					return c
				}
				return -1
			}, m[1])
			r.gz = m[2] != ""
		} else {
			continue
		}
		info, err := os.Stat(r.path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since the listing, or a dangling symlink
		}
		if err == nil {
			r.mtime = info.ModTime()
		}
		// Any other error is left to the open, which reports it.
		if r.date != "" {
			dated = append(dated, r)
		} else {
			numbered = append(numbered, r)
		}
	}
	// The plain file before its compressed twin: a rotation being
	// compressed exists as both for a moment, and the plain one is whole.
	slices.SortFunc(numbered, func(a, b rotatedFile) int {
		return cmp.Or(cmp.Compare(a.number, b.number), compareGz(a, b))
	})
	slices.SortFunc(dated, func(a, b rotatedFile) int {
		return cmp.Or(-strings.Compare(a.date, b.date), compareGz(a, b))
	})
	out := make([]rotatedFile, 0, len(numbered)+len(dated))
	for len(numbered) > 0 && len(dated) > 0 {
		if dated[0].mtime.After(numbered[0].mtime) {
			out, dated = append(out, dated[0]), dated[1:]
		} else {
			out, numbered = append(out, numbered[0]), numbered[1:]
		}
	}
	return append(append(out, numbered...), dated...), nil
}

func compareGz(a, b rotatedFile) int {
	switch {
	case a.gz == b.gz:
		return 0
	case b.gz:
		return -1
	}
	return 1
}
