package backup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// treeSize is what `du -s -B1` and `du -s -B1 --apparent-size` say about a
// tree (directories included, as du counts them), plus the regular file
// count and the newest modification time in it.
type treeSize struct {
	Apparent  int64 // bytes as inodes report them (sparse holes included)
	Allocated int64 // bytes of disk blocks (sparse holes excluded)
	Files     int64 // regular files (names; hard links counted per name)
	Newest    time.Time
}

type inodeKey struct {
	dev, ino uint64
}

// measureTree walks root without following symlinks (so loops cannot trap
// it) and adds up sizes with each inode counted once, as du does: a set made
// with `rsync --link-dest` shares unchanged files with the previous set by
// hard link, and those bytes are on disk once. Entries that vanish during
// the walk are skipped; a vanished root is fs.ErrNotExist; anything else
// (permission denied, I/O error) is an error naming the path.
func measureTree(root string) (treeSize, error) {
	var ts treeSize
	seen := map[inodeKey]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path != root {
				return nil
			}
			return err
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path != root {
				return nil
			}
			return err
		}
		if mt := info.ModTime(); mt.After(ts.Newest) {
			ts.Newest = mt
		}
		if info.Mode().IsRegular() {
			ts.Files++
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			ts.Apparent += info.Size()
			return nil
		}
		if st.Nlink > 1 && !info.IsDir() {
			k := inodeKey{uint64(st.Dev), st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		ts.Apparent += st.Size
		ts.Allocated += st.Blocks * 512
		return nil
	})
	if err != nil {
		return ts, fmt.Errorf("walking %s: %w", root, err)
	}
	return ts, nil
}

// fileSize is measureTree for one file.
func fileSize(path string) (apparent, allocated int64, mtime time.Time, err error) {
	info, err := os.Lstat(path)
	if err != nil {
		return 0, 0, time.Time{}, err
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return st.Size, st.Blocks * 512, info.ModTime(), nil
	}
	return info.Size(), info.Size(), info.ModTime(), nil
}
