package backup

import (
	"errors"
	"fmt"
	"io"
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
	// Unreadable counts directories below the root that could not be
	// read (permissions, I/O errors): the sizes leave them out.
	Unreadable int64
	// UnreadableDirs holds those directories' paths and errors.
	UnreadableDirs map[string]string
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
const walkWorkers = 4

// inodeShards splits the hard-link sets so parallel walkers rarely wait
// for each other.
const inodeShards = 64

// inodeSet remembers inodes already counted. Only inodes with more than one
// link go in, so its size follows the hard links, not the tree.
type inodeSet struct {
	shards [inodeShards]struct {
		mu sync.Mutex
		m  map[inodeKey]struct{}
	}
}

// first reports whether k is seen for the first time, and records it.
func (s *inodeSet) first(k inodeKey) bool {
	sh := &s.shards[k.ino%inodeShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.m == nil {
		sh.m = map[inodeKey]struct{}{}
	}
	if _, ok := sh.m[k]; ok {
		return false
	}
	sh.m[k] = struct{}{}
	return true
}

// measureSets walks several set directories at once, without following
// symlinks (so loops cannot trap it). It returns the total as
// `du -s <set>...` counts it (an inode once over all sets: what rsync
// --link-dest sets really take on disk), each set's file count and newest
// change, and for the set named by detail (-1: none) its size as
// `du -s <set>` alone counts it. One pass serves all of these; only the
// detailed set keeps a hard-link set of its own, so memory grows with the
// links, not with the number of sets.
func measureSets(roots []string, detail int) ([]treeSize, treeSize, error) {
	w := &parallelWalk{
		per:    make([]treeSize, len(roots)),
		detail: detail,
		sem:    make(chan struct{}, walkWorkers),
	}
	for i, root := range roots {
		info, err := os.Lstat(root)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				w.per[i].Missing = true // vanished since it was listed
				continue
			}
			return nil, treeSize{}, fmt.Errorf("walking %s: %w", root, err)
		}
		var local sums
		w.count(i, info, &local)
		w.merge(i, &local)
		if info.IsDir() {
			w.descend(i, root)
		}
	}
	w.wg.Wait()
	return w.per, w.total, nil
}

type parallelWalk struct {
	wg     sync.WaitGroup
	sem    chan struct{}
	detail int

	all, detailSeen inodeSet

	mu    sync.Mutex // guards per and total
	per   []treeSize
	total treeSize
}

// sums is what one directory adds, merged under the lock once per
// directory instead of once per file.
type sums struct {
	set, total treeSize
}

// dirBatch is how many entries of a directory are read at a time: a
// directory of a million files costs one batch of memory, not a million
// entries.
const dirBatch = 1024

// dir reads one directory, batch by batch, and descends into its
// subdirectories, in a new goroutine while a worker slot is free and
// inline otherwise, so the walk never holds more than walkWorkers
// goroutines however wide the tree. A directory that cannot be read is
// counted as unreadable: the set's size is then partial, which says
// nothing about whether the backup succeeded.
func (w *parallelWalk) dir(root int, path string) {
	f, err := os.Open(path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			w.unreadable(root, path, err)
		}
		return
	}
	defer f.Close()
	for {
		entries, err := f.ReadDir(dirBatch)
		var local sums
		var subdirs []string
		for _, e := range entries {
			info, ierr := e.Info()
			if ierr != nil {
				continue // vanished since it was listed
			}
			w.count(root, info, &local)
			if info.IsDir() {
				subdirs = append(subdirs, filepath.Join(path, e.Name()))
			}
		}
		w.merge(root, &local)
		for _, sd := range subdirs {
			w.descend(root, sd)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				w.unreadable(root, path, err)
			}
			return
		}
	}
}

func (w *parallelWalk) unreadable(root int, path string, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := &w.per[root]
	p.Unreadable++
	if p.UnreadableDirs == nil {
		p.UnreadableDirs = map[string]string{}
	}
	p.UnreadableDirs[path] = err.Error()
	w.total.Unreadable++
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

// count adds one inode to the directory's sums: to its set (counted once
// within the set, for the detailed set only) and to the total (once over
// all sets).
func (w *parallelWalk) count(root int, info fs.FileInfo, l *sums) {
	if mt := info.ModTime(); mt.After(l.set.Newest) {
		l.set.Newest = mt
	}
	if info.Mode().IsRegular() {
		l.set.Files++
		l.total.Files++
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		l.set.Apparent += info.Size()
		l.total.Apparent += info.Size()
		return
	}
	inSet, inTotal := true, true
	if st.Nlink > 1 && !info.IsDir() {
		k := inodeKey{uint64(st.Dev), st.Ino}
		inTotal = w.all.first(k)
		if root == w.detail {
			inSet = w.detailSeen.first(k)
		}
	}
	if inSet {
		l.set.Apparent += st.Size
		l.set.Allocated += st.Blocks * 512
	}
	if inTotal {
		l.total.Apparent += st.Size
		l.total.Allocated += st.Blocks * 512
	}
}

func (w *parallelWalk) merge(root int, l *sums) {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := &w.per[root]
	p.Apparent += l.set.Apparent
	p.Allocated += l.set.Allocated
	p.Files += l.set.Files
	if l.set.Newest.After(p.Newest) {
		p.Newest = l.set.Newest
	}
	w.total.Apparent += l.total.Apparent
	w.total.Allocated += l.total.Allocated
	w.total.Files += l.total.Files
	if l.set.Newest.After(w.total.Newest) {
		w.total.Newest = l.set.Newest
	}
}
