package backup

import (
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
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
func coverVMs(d *jobData, successes []setRuns, j Job) {
	d.MissingDisks = map[string]int{}
	for k := len(successes) - 1; k >= 0; k-- {
		s := successes[k]
		xmlDir := filepath.Join(s.set.path, j.VMXMLDir)
		xmls, err := os.ReadDir(xmlDir)
		if err != nil {
			continue
		}
		for _, x := range xmls {
			vm, ok := strings.CutSuffix(x.Name(), ".xml")
			if !ok || vm == "" {
				continue
			}
			if _, done := d.VMs[vm]; done {
				continue
			}
			size, missing, ok := vmDisksInSet(filepath.Join(xmlDir, x.Name()), filepath.Join(s.set.path, j.ImagesDir), j.ImagesSource)
			if !ok {
				continue // not a readable domain XML: nothing can be judged
			}
			if _, counted := d.MissingDisks[vm]; !counted {
				d.MissingDisks[vm] = missing
			}
			if missing == 0 {
				d.VMs[vm] = vmBackup{Time: s.runs[s.lastSuccess()].End, HasSize: true, SizeBytes: size}
			}
		}
	}
}

// domainDisks is the part of a domain's XML that names its disks.
type domainDisks struct {
	Disks []struct {
		Type   string `xml:"type,attr"`
		Device string `xml:"device,attr"`
		Source struct {
			File string `xml:"file,attr"`
		} `xml:"source"`
	} `xml:"devices>disk"`
}

// vmDisksInSet reads a VM's XML from a set and looks for each of its disks
// (device "disk"; CD-ROMs and floppies are media, not the VM's data) in the
// set's images directory. It returns the apparent size of the copies found
// and how many disks have no copy.
func vmDisksInSet(xmlPath, imagesDir, imagesSource string) (size int64, missing int, ok bool) {
	f, _, err := openRegular(xmlPath)
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	var dom domainDisks
	if err := xml.NewDecoder(io.LimitReader(f, maxDomainXML)).Decode(&dom); err != nil {
		return 0, 0, false
	}
	for _, disk := range dom.Disks {
		if disk.Device != "" && disk.Device != "disk" {
			continue
		}
		rel, err := filepath.Rel(imagesSource, disk.Source.File)
		if disk.Source.File == "" || err != nil || rel == "." || strings.HasPrefix(rel, "..") {
			missing++ // not a file below imagesSource: never copied
			continue
		}
		n, _, _, err := fileSize(filepath.Join(imagesDir, rel))
		if err != nil {
			missing++
			continue
		}
		size += n
	}
	return size, missing, true
}
