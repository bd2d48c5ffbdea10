package backup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
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
	Missing   bool // the root vanished before the walk reached it
}

type inodeKey struct {
	dev, ino uint64
}

// fileSize is what du says about one file.
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

// walkWorkers bounds the goroutines one parallel walk uses. Walking is
// mostly waiting for lstat; a few in flight keep a disk or NFS queue busy
// without starving the rest of the host.
const walkWorkers = 8

// measureSets walks several set directories at once, without following
// symlinks (so loops cannot trap it), and returns each one's
// size as `du -s <set>` counts it (an inode once within the set) and the
// total as `du -s <set>...` counts it (an inode once over all sets, which is
// what rsync --link-dest sets really take on disk). One pass serves both.
func measureSets(roots []string) ([]treeSize, treeSize, error) {
	w := &parallelWalk{
		per:      make([]treeSize, len(roots)),
		perSeen:  make([]map[inodeKey]bool, len(roots)),
		seen:     map[inodeKey]bool{},
		sem:      make(chan struct{}, walkWorkers),
		rootPath: roots,
	}
	for i, root := range roots {
		w.perSeen[i] = map[inodeKey]bool{}
		info, err := os.Lstat(root)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				w.per[i].Missing = true // vanished since it was listed
				continue
			}
			return nil, treeSize{}, fmt.Errorf("walking %s: %w", root, err)
		}
		w.add(i, info)
		if info.IsDir() {
			w.descend(i, root)
		}
	}
	w.wg.Wait()
	if w.err != nil {
		return nil, treeSize{}, w.err
	}
	return w.per, w.total, nil
}

type parallelWalk struct {
	wg       sync.WaitGroup
	sem      chan struct{}
	rootPath []string

	mu      sync.Mutex
	per     []treeSize
	perSeen []map[inodeKey]bool
	total   treeSize
	seen    map[inodeKey]bool
	err     error
}

// dir reads one directory and descends into its subdirectories, in a new
// goroutine while a worker slot is free and inline otherwise, so the walk
// never holds more than walkWorkers goroutines however wide the tree.
func (w *parallelWalk) dir(root int, path string) {
	entries, err := os.ReadDir(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		w.fail(fmt.Errorf("walking %s: %w", path, err))
	}
	for _, e := range entries {
		info, ierr := e.Info()
		if ierr != nil {
			if !errors.Is(ierr, fs.ErrNotExist) {
				w.fail(fmt.Errorf("walking %s: %w", filepath.Join(path, e.Name()), ierr))
			}
			continue
		}
		w.add(root, info)
		if info.IsDir() {
			w.descend(root, filepath.Join(path, e.Name()))
		}
	}
}

func (w *parallelWalk) descend(root int, path string) {
	select {
	case w.sem <- struct{}{}:
		w.wg.Add(1)
		go func() {
			defer func() { <-w.sem; w.wg.Done() }()
			w.dir(root, path)
		}()
	default:
		w.dir(root, path)
	}
}

func (w *parallelWalk) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

// add counts one inode into its set and into the total.
func (w *parallelWalk) add(root int, info fs.FileInfo) {
	st, ok := info.Sys().(*syscall.Stat_t)
	w.mu.Lock()
	defer w.mu.Unlock()
	per := &w.per[root]
	if info.ModTime().After(per.Newest) {
		per.Newest = info.ModTime()
	}
	if info.ModTime().After(w.total.Newest) {
		w.total.Newest = info.ModTime()
	}
	if info.Mode().IsRegular() {
		per.Files++
		w.total.Files++
	}
	if !ok {
		per.Apparent += info.Size()
		w.total.Apparent += info.Size()
		return
	}
	inSet, inTotal := true, true
	if st.Nlink > 1 && !info.IsDir() {
		k := inodeKey{uint64(st.Dev), st.Ino}
		inSet, inTotal = !w.perSeen[root][k], !w.seen[k]
		w.perSeen[root][k], w.seen[k] = true, true
	}
	if inSet {
		per.Apparent += st.Size
		per.Allocated += st.Blocks * 512
	}
	if inTotal {
		w.total.Apparent += st.Size
		w.total.Allocated += st.Blocks * 512
	}
}
