package libvirt

import (
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
)

// MetadataNamespace is the XML namespace of the element that carries the
// VM's role inside the domain's <metadata>. Operators set it with
//
//	virsh metadata DOMAIN --uri https://github.com/vmhost-exporter/vmhost_exporter/xmlns/vm/1 \
//	  --key vmhost --set '<vm><role>db</role></vm>'
//
// which libvirt stores as
//
//	<metadata>
//	  <vmhost:vm xmlns:vmhost="https://github.com/vmhost-exporter/vmhost_exporter/xmlns/vm/1">
//	    <vmhost:role>db</vmhost:role>
//	  </vmhost:vm>
//	</metadata>
//
// A namespace of our own keeps the element apart from other tools' metadata
// (OpenStack Nova, virt-manager), and the URI only names it: nothing is
// fetched from it.
const MetadataNamespace = "https://github.com/vmhost-exporter/vmhost_exporter/xmlns/vm/1"

// maxRoleLength bounds the role label so a hostile or mistaken XML edit cannot
// create an unbounded label value.
const maxRoleLength = 64

// domainMeta is what the collector needs from a domain's XML. It changes only
// when the domain is redefined, so it is cached between scrapes.
type domainMeta struct {
	Name         string
	UUID         string
	Role         string
	VCPUs        uint64
	MaxMemoryKiB uint64
	CurMemoryKiB uint64
	// OSType, OSArch and OSMachine are <os><type arch machine>: the
	// os_type, os_type_arch and os_type_machine labels of
	// libvirt_domain_info, as inovex/prometheus-libvirt-exporter has them.
	OSType     string
	OSArch     string
	OSMachine  string
	Disks      map[string]diskMeta      // by target device
	Interfaces map[string]interfaceMeta // by target device
}

// diskMeta is one <disk> element. Besides the source, it keeps the
// attributes inovex/prometheus-libvirt-exporter puts on
// libvirt_domain_block_stats_info, named after its labels.
type diskMeta struct {
	SourceFile     string
	DiskType       string // <disk type>: file, block, network, volume
	TargetBus      string
	DriverName     string
	DriverType     string // image format: raw, qcow2
	DriverCache    string
	DriverDiscard  string
	SourceProtocol string // network disks: rbd, iscsi, nbd...
	Serial         string
	// Device is the disk's device attribute (disk, cdrom, floppy, lun);
	// Pool and Volume its <source pool= volume=> when it is a volume of a
	// storage pool (type='volume').
	Device string
	Pool   string
	Volume string
}

type interfaceMeta struct {
	SourceBridge string
	MACAddress   string
}

type xmlMemory struct {
	Value uint64 `xml:",chardata"`
	Unit  string `xml:"unit,attr"`
}

type xmlDomain struct {
	Name          string    `xml:"name"`
	UUID          string    `xml:"uuid"`
	Memory        xmlMemory `xml:"memory"`
	CurrentMemory xmlMemory `xml:"currentMemory"`
	VCPU          struct {
		Value   uint64 `xml:",chardata"`
		Current string `xml:"current,attr"`
	} `xml:"vcpu"`
	OS struct {
		Type struct {
			Value   string `xml:",chardata"`
			Arch    string `xml:"arch,attr"`
			Machine string `xml:"machine,attr"`
		} `xml:"type"`
	} `xml:"os"`
	Metadata struct {
		VM []struct {
			XMLName xml.Name
			Role    []struct {
				XMLName xml.Name
				Value   string `xml:",chardata"`
			} `xml:",any"`
		} `xml:",any"`
	} `xml:"metadata"`
	Devices struct {
		Disks []struct {
			Type   string `xml:"type,attr"`
			Device string `xml:"device,attr"`
			Driver struct {
				Name    string `xml:"name,attr"`
				Type    string `xml:"type,attr"`
				Cache   string `xml:"cache,attr"`
				Discard string `xml:"discard,attr"`
			} `xml:"driver"`
			Source struct {
				File     string `xml:"file,attr"`
				Dev      string `xml:"dev,attr"`
				Name     string `xml:"name,attr"`
				Protocol string `xml:"protocol,attr"`
				Pool     string `xml:"pool,attr"`
				Volume   string `xml:"volume,attr"`
			} `xml:"source"`
			Target struct {
				Dev string `xml:"dev,attr"`
				Bus string `xml:"bus,attr"`
			} `xml:"target"`
			Serial string `xml:"serial"`
		} `xml:"disk"`
		Interfaces []struct {
			MAC struct {
				Address string `xml:"address,attr"`
			} `xml:"mac"`
			Source struct {
				Bridge  string `xml:"bridge,attr"`
				Network string `xml:"network,attr"`
				Dev     string `xml:"dev,attr"`
			} `xml:"source"`
			Target struct {
				Dev string `xml:"dev,attr"`
			} `xml:"target"`
		} `xml:"interface"`
	} `xml:"devices"`
}

// parseDomainXML extracts domainMeta from libvirt's domain XML. It accepts
// any well-formed document; fields that are missing stay zero.
func parseDomainXML(doc string) (domainMeta, error) {
	var d xmlDomain
	if err := xml.Unmarshal([]byte(doc), &d); err != nil {
		return domainMeta{}, fmt.Errorf("parsing domain XML: %w", err)
	}
	m := domainMeta{
		Name:         d.Name,
		UUID:         d.UUID,
		VCPUs:        d.VCPU.Value,
		MaxMemoryKiB: toKiB(d.Memory),
		CurMemoryKiB: toKiB(d.CurrentMemory),
		OSType:       strings.TrimSpace(d.OS.Type.Value),
		OSArch:       d.OS.Type.Arch,
		OSMachine:    d.OS.Type.Machine,
		Disks:        map[string]diskMeta{},
		Interfaces:   map[string]interfaceMeta{},
	}
	if cur, err := strconv.ParseUint(d.VCPU.Current, 10, 64); err == nil && cur > 0 {
		m.VCPUs = cur
	}
	if m.CurMemoryKiB == 0 {
		m.CurMemoryKiB = m.MaxMemoryKiB
	}
	for _, vm := range d.Metadata.VM {
		if vm.XMLName.Space != MetadataNamespace || vm.XMLName.Local != "vm" {
			continue
		}
		for _, r := range vm.Role {
			if r.XMLName.Local == "role" {
				m.Role = normaliseRole(r.Value)
			}
		}
	}
	for _, disk := range d.Devices.Disks {
		if disk.Target.Dev == "" {
			continue
		}
		src := disk.Source.File
		if src == "" {
			src = disk.Source.Dev
		}
		if src == "" {
			src = disk.Source.Name
		}
		m.Disks[disk.Target.Dev] = diskMeta{
			SourceFile: src, DiskType: disk.Type, TargetBus: disk.Target.Bus,
			DriverName: disk.Driver.Name, DriverType: disk.Driver.Type,
			DriverCache: disk.Driver.Cache, DriverDiscard: disk.Driver.Discard,
			SourceProtocol: disk.Source.Protocol, Serial: strings.TrimSpace(disk.Serial),
			Device: disk.Device, Pool: disk.Source.Pool, Volume: disk.Source.Volume,
		}
	}
	for _, iface := range d.Devices.Interfaces {
		bridge := iface.Source.Bridge
		if bridge == "" {
			bridge = iface.Source.Network
		}
		if bridge == "" {
			bridge = iface.Source.Dev
		}
		if iface.Target.Dev != "" {
			m.Interfaces[iface.Target.Dev] = interfaceMeta{SourceBridge: bridge, MACAddress: iface.MAC.Address}
		}
	}
	return m, nil
}

// roleSynonyms maps the names people give roles to the four roles the
// rules have bands for (REQUIREMENTS §1): web, app, db and file. A role
// that is neither one of them nor a synonym is exported as written; the
// VMRoleUnknown alert names such VMs, since no band applies to them.
var roleSynonyms = map[string]string{
	"database": "db", "mysql": "db", "mariadb": "db", "postgres": "db", "postgresql": "db", "pgsql": "db",
	"oracle": "db", "mssql": "db", "mongodb": "db",
	"nginx": "web", "apache": "web", "httpd": "web", "frontend": "web", "www": "web", "webserver": "web",
	"fileserver": "file", "nfs": "file", "samba": "file", "smb": "file", "cifs": "file",
	"api": "app", "backend": "app", "application": "app", "appserver": "app",
}

// normaliseRole trims and lower-cases a role (so "DB" is "db"), bounds its
// length and maps synonyms to their role.
func normaliseRole(s string) string {
	r := []rune(strings.ToLower(strings.TrimSpace(strings.ToValidUTF8(s, ""))))
	if len(r) > maxRoleLength {
		r = r[:maxRoleLength]
	}
	if role, ok := roleSynonyms[string(r)]; ok {
		return role
	}
	return string(r)
}

// toKiB converts a libvirt memory element to KiB; libvirt's default unit is
// KiB and it always writes "KiB" in XML it generates, but hand-written test
// driver files may use other units.
func toKiB(m xmlMemory) uint64 {
	switch strings.ToLower(m.Unit) {
	case "", "k", "kib":
		return m.Value
	case "b", "bytes":
		return m.Value / 1024
	case "kb":
		return m.Value * 1000 / 1024
	case "m", "mib":
		return m.Value * 1024
	case "mb":
		return m.Value * 1000 * 1000 / 1024
	case "g", "gib":
		return m.Value * 1024 * 1024
	case "gb":
		return m.Value * 1000 * 1000 * 1000 / 1024
	case "t", "tib":
		return m.Value * 1024 * 1024 * 1024
	default:
		return m.Value
	}
}

type xmlSnapshot struct {
	Name         string `xml:"name"`
	CreationTime int64  `xml:"creationTime"`
}

// parseSnapshotCreationTime returns the creation time (epoch seconds) from a
// snapshot's XML.
func parseSnapshotCreationTime(doc string) (int64, error) {
	var s xmlSnapshot
	if err := xml.Unmarshal([]byte(doc), &s); err != nil {
		return 0, fmt.Errorf("parsing snapshot XML: %w", err)
	}
	return s.CreationTime, nil
}
