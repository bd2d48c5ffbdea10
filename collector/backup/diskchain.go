package backup

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
)

// diskSource is where one layer of a VM disk lives, as the domain XML
// names it: a file, a block device (LVM, a local iSCSI LUN), a network
// disk (RBD, iSCSI, NBD, Gluster) or a storage pool volume.
type diskSource struct {
	Type   string `xml:"type,attr"`
	Source struct {
		File     string `xml:"file,attr"`
		Dev      string `xml:"dev,attr"`
		Protocol string `xml:"protocol,attr"`
		Name     string `xml:"name,attr"`
		Pool     string `xml:"pool,attr"`
		Volume   string `xml:"volume,attr"`
	} `xml:"source"`
	BackingStore *diskSource `xml:"backingStore"`
}

// maxBackingChain bounds how far a backing chain is followed: real chains
// are a few snapshots deep, and a loop (a.qcow2 backed by itself) must end.
const maxBackingChain = 32

// diskChain finds the copies in the set of a disk and of every image it is
// backed by. A qcow2 overlay restores only with its backing file, so the
// chain is followed both ways libvirt and qemu record it: the domain XML's
// <backingStore> (running domains) and the backing file name in the
// header of the qcow2 copy itself (inactive domains have no
// <backingStore>). It returns the apparent size of the copies found and
// a description of the first layer without one ("" when all are there).
//
// A copy that exists but cannot be read (the service user without
// CAP_DAC_READ_SEARCH before root's 0700 images/ or 0600 image: lstat or
// the header read fails with EACCES; an I/O error; a FIFO where an image
// should be) is no missing copy: the chain is then unjudged, returned in
// unreadable with the path and error, and missing stays "". Only a copy
// that is not there (copyAbsent) is missing.
func diskChain(disk diskSource, imagesDir, imagesSource string, u *unreadablePaths) (size int64, missing string, unreadable *unreadableCopy) {
	seen := map[string]bool{}
	var layers []string // source paths still to look at, outermost first
	for l, depth := &disk, 0; l != nil && depth < maxBackingChain; l, depth = l.BackingStore, depth+1 {
		if l.Type == "" && l.Source.File == "" && l.Source.Dev == "" && l.Source.Protocol == "" && l.Source.Volume == "" {
			break // <backingStore/>: the chain ends here
		}
		path, why := layerFile(*l, imagesSource)
		if why != "" {
			return size, why, nil
		}
		layers = append(layers, path)
	}
	for i := 0; i < len(layers) && i < maxBackingChain; i++ {
		src := layers[i]
		if seen[src] {
			continue
		}
		seen[src] = true
		rel, err := filepath.Rel(imagesSource, src)
		if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
			return size, fmt.Sprintf("%s is outside %s, which the backup copies", src, imagesSource), nil
		}
		cp := filepath.Join(imagesDir, rel)
		n, _, _, err := fileSize(cp)
		if err != nil {
			if !copyAbsent(err) && u.note(err) { // a copy behind a directory the exporter may not search
				return size, "", &unreadableCopy{Src: src, Err: err}
			}
			return size, fmt.Sprintf("no copy of %s in the set", src), nil
		}
		size += n
		backing, err := qcow2BackingFile(cp)
		if err != nil {
			if !copyAbsent(err) && u.note(err) { // root's 0600 image, an I/O error
				return size, "", &unreadableCopy{Src: src, Err: err}
			}
			return size, fmt.Sprintf("cannot read the image header of the copy of %s: %v", src, err), nil
		}
		switch {
		case backing == "":
		case strings.Contains(backing, ":") && !strings.HasPrefix(backing, "/"):
			// rbd:pool/img, nbd://..., json:{...}: not a file
			return size, fmt.Sprintf("%s is backed by %s, not a file", src, backing), nil
		default:
			if !filepath.IsAbs(backing) { // relative to the overlay, as qemu reads it
				backing = filepath.Join(filepath.Dir(src), backing)
			}
			layers = append(layers, filepath.Clean(backing))
		}
	}
	return size, "", nil
}

// copyAbsent tells the errors that say there is no copy at all from those
// that say there is one the exporter cannot read: besides ENOENT, a path
// through a regular file (ENOTDIR: images/ is a file in a broken set) and
// a directory where the image should be. Neither is evidence that could
// be read with more privilege, so the disk is missing and the VM judged.
func copyAbsent(err error) bool {
	var nr *notRegularError
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) ||
		(errors.As(err, &nr) && nr.kind == "a directory")
}

// unreadableCopy is a disk copy in a set that exists but that the
// exporter could not read: the VM cannot be judged in that set.
type unreadableCopy struct {
	Src string // the disk (or backing image) as the source host names it
	Err error  // what lstat or open said, with the copy's path
}

// String is what /backups and --backup.explain show for the VM: "the copy
// of /var/lib/libvirt/images/a.qcow2 in the set is unreadable:
// /backup/kvm/2025-05-27/images/a.qcow2: permission denied", the path the
// error is about once (openRegular's errors name it twice).
func (c *unreadableCopy) String() string {
	var pe *fs.PathError
	if errors.As(c.Err, &pe) {
		return fmt.Sprintf("the copy of %s in the set is unreadable: %s: %v", c.Src, pe.Path, pe.Err)
	}
	return fmt.Sprintf("the copy of %s in the set is unreadable: %v", c.Src, c.Err) // notRegularError names its path
}

// layerFile is the file path of one layer of a disk chain as the source
// host sees it, or why the layer is no file the backup copies.
func layerFile(l diskSource, imagesSource string) (path, missing string) {
	s := l.Source
	switch {
	case s.File != "":
		return filepath.Clean(s.File), ""
	case l.Type == "volume" && s.Volume != "" && !strings.Contains(s.Volume, "/"):
		// A volume of a directory pool: the default pool is images_source.
		return filepath.Join(imagesSource, s.Volume), ""
	case s.Dev != "":
		return "", fmt.Sprintf("block device %s is not a file", s.Dev)
	case s.Protocol != "":
		return "", fmt.Sprintf("network disk %s:%s is not a file", s.Protocol, s.Name)
	case s.Volume != "":
		return "", fmt.Sprintf("volume %s of pool %s is not a file below %s", s.Volume, s.Pool, imagesSource)
	}
	return "", "disk without a source"
}

// qcow2Magic starts every qcow2 image.
var qcow2Magic = []byte{'Q', 'F', 'I', 0xfb}

// qcow2BackingFile reads the backing file name from a qcow2 image's
// header ("" for any other format, or a qcow2 image without one).
func qcow2BackingFile(path string) (string, error) {
	f, _, err := openRegular(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var hdr [20]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil || !bytes.Equal(hdr[:4], qcow2Magic) {
		return "", nil // short or not qcow2: raw images have no backing file
	}
	off := binary.BigEndian.Uint64(hdr[8:16])
	n := binary.BigEndian.Uint32(hdr[16:20])
	if off == 0 || n == 0 {
		return "", nil
	}
	if n > 1023 { // qemu's own limit
		return "", fmt.Errorf("%s: backing file name of %d bytes", path, n)
	}
	name := make([]byte, n)
	if _, err := f.ReadAt(name, int64(off)); err != nil {
		return "", fmt.Errorf("reading the backing file name of %s: %w", path, err)
	}
	return string(name), nil
}
