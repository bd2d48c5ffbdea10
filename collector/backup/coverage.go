package backup

import (
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// maxDomainXML bounds how much of a vm_xml file is read.
const maxDomainXML = 4 << 20

// coverVMs fills the per-VM coverage of a dated_dir job from its successful
// sets, oldest first in successes. A VM is backed up by a set only when
// its XML is in vm_xml/ and every disk that XML names has its copy in the
// set: kvm_backup.sh copies images_source (/var/lib/libvirt/images) into
// images/ and nothing else, so a disk that lives elsewhere (another
// directory, an LVM volume, iSCSI, RBD) is not in any set. A VM's missing
// disks are counted in the newest successful set holding its XML; its last
// success is the newest successful set that holds it whole.
//
// A VM whose XML cannot be read (root's 0600 copy, seen by the service
// user; or not XML at all) cannot be judged, but it is not dropped: it is
// marked in UnreadableVMs when its newest XML, in newest (the job's newest
// set, successful or not) or else in the newest successful set holding it,
// is the unreadable one. So is a VM whose XML is readable but one of whose
// disk copies exists and cannot be read (root's 0700 images/ or 0600
// image): whether that copy is whole is unknown, so the set neither backs
// the VM up nor misses a disk of it, and UnjudgedWhy says which copy and
// why. A VM with a disk the set certainly cannot restore (an LVM disk, a
// copy that does not exist) is judged all the same: it is not backed up by
// that set whatever the unreadable copy holds, and its missing disks are
// the ones known missing.
func coverVMs(d *jobData, successes []setRuns, newest *setRuns, j Job, u *unreadablePaths) {
	d.MissingDisks = map[string]int{}
	d.MissingDiskNames = map[string][]string{}
	d.UnreadableVMs = map[string]bool{}
	d.MissingDiskWhy = map[string][]string{}
	d.UnjudgedWhy = map[string][]string{}
	judged := map[string]bool{} // VMs whose newest XML has been tried
	visit := func(s setRuns, success bool) {
		xmlDir := filepath.Join(s.set.path, j.VMXMLDir)
		xmls, err := os.ReadDir(xmlDir)
		if err != nil {
			u.note(err)
			return
		}
		for _, x := range xmls {
			vm, ok := strings.CutSuffix(x.Name(), ".xml")
			if !ok || vm == "" {
				continue
			}
			if prev, done := d.VMs[vm]; done {
				// An older copy counts for offsite only: keep its time
				// when a sync job copies this one.
				if j.copied && success {
					if _, missing, unreadable, err := vmDisksInSet(filepath.Join(xmlDir, x.Name()), filepath.Join(s.set.path, j.ImagesDir), j.ImagesSource, u); err == nil && len(missing) == 0 && len(unreadable) == 0 {
						prev.Copies = append(prev.Copies, s.runs[s.lastSuccess()].End)
						d.VMs[vm] = prev
					}
				}
				continue
			}
			size, missing, unreadable, err := vmDisksInSet(filepath.Join(xmlDir, x.Name()), filepath.Join(s.set.path, j.ImagesDir), j.ImagesSource, u)
			newestXML := !judged[vm]
			judged[vm] = true
			if err != nil || (len(missing) == 0 && len(unreadable) > 0) {
				if newestXML {
					d.UnreadableVMs[vm] = true
					for _, c := range unreadable {
						d.UnjudgedWhy[vm] = append(d.UnjudgedWhy[vm], c.String())
					}
				}
				continue
			}
			if !success {
				continue
			}
			if _, counted := d.MissingDisks[vm]; !counted {
				d.MissingDisks[vm] = len(missing)
				if len(missing) > 0 {
					for _, m := range missing {
						d.MissingDiskNames[vm] = append(d.MissingDiskNames[vm], m.Name)
						d.MissingDiskWhy[vm] = append(d.MissingDiskWhy[vm], m.Why)
					}
				}
			}
			if len(missing) == 0 {
				end := s.runs[s.lastSuccess()].End
				d.VMs[vm] = vmBackup{Time: end, HasSize: true, SizeBytes: size, Copies: []time.Time{end}}
			}
		}
	}
	if newest != nil && newest.lastSuccess() < 0 {
		visit(*newest, false)
	}
	for k := len(successes) - 1; k >= 0; k-- {
		visit(successes[k], true)
	}
	for vm, v := range d.VMs { // visited newest first
		slices.SortFunc(v.Copies, time.Time.Compare)
		d.VMs[vm] = v
	}
}

// domainDisks is the part of a domain's XML that names its disks.
type domainDisks struct {
	Disks []struct {
		diskSource
		Device string `xml:"device,attr"`
		Target struct {
			Dev string `xml:"dev,attr"`
		} `xml:"target"`
	} `xml:"devices>disk"`
}

// name is how the operator knows a disk: its target (vda), else where it
// lives.
func (d diskSource) nameOr(target string) string {
	for _, n := range []string{target, d.Source.File, d.Source.Dev, d.Source.Name, d.Source.Volume} {
		if n != "" {
			return n
		}
	}
	return "?"
}

// missingDisk is a disk of a VM that a set cannot restore.
type missingDisk struct {
	Name string // its target (vda), else where it lives
	Why  string // "no copy of /var/lib/libvirt/images/a.img in the set"
}

// vmDisksInSet reads a VM's XML from a set and looks for each of its disks
// (device "disk"; CD-ROMs and floppies are media, not the VM's data) in the
// set's images directory, with every image its backing chain needs. It
// returns the apparent size of the copies found and each disk that cannot
// be restored from the set, with why: a block device (LVM), a network disk
// (iSCSI, RBD), a file outside imagesSource, a copy missing, or an overlay
// whose backing file is one of those. The names are
// vmhost_backup_vm_missing_disk_info's, the reasons what /backups shows
// for the VM. A disk whose copy exists but cannot be read is in neither
// list of missing disks nor in size: it is returned in unreadable.
func vmDisksInSet(xmlPath, imagesDir, imagesSource string, u *unreadablePaths) (size int64, missing []missingDisk, unreadable []*unreadableCopy, err error) {
	f, _, err := openRegular(xmlPath)
	if err != nil {
		u.note(err)
		return 0, nil, nil, err
	}
	defer f.Close()
	var dom domainDisks
	if err := xml.NewDecoder(io.LimitReader(f, maxDomainXML)).Decode(&dom); err != nil {
		return 0, nil, nil, fmt.Errorf("reading %s: %w", xmlPath, err)
	}
	for _, disk := range dom.Disks {
		if disk.Device != "" && disk.Device != "disk" {
			continue
		}
		n, why, unread := diskChain(disk.diskSource, imagesDir, imagesSource, u)
		size += n
		if why != "" {
			missing = append(missing, missingDisk{Name: disk.nameOr(disk.Target.Dev), Why: why})
		}
		if unread != nil {
			unreadable = append(unreadable, unread)
		}
	}
	return size, missing, unreadable, nil
}
