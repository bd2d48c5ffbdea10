package backup

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// TestDisksThatAreNotFiles: kvm_backup.sh dumps every VM's XML and copies
// the images directory, nothing else. A VM whose disk is an LVM volume
// (type block), an iSCSI LUN or an RBD image (type network) is never in a
// set, whole or in part; neither is a qcow2 overlay whose backing file
// lives outside the images directory (a shared template): the overlay
// alone restores nothing. The chain is followed through the XML's
// <backingStore> (running domains) and, for XML without it (inactive
// domains), through the backing file name in the copied overlay's own
// qcow2 header. The overlays are made by qemu-img; an overlay whose base
// image is inside the images directory is backed up whole, its size the
// overlay's and the base's.
func TestDisksThatAreNotFiles(t *testing.T) {
	qemuImg := testenv.LookPath(t, "qemu-img", "qemu-utils")
	src, base, script, env := kvmBackupScript(t)
	images := filepath.Join(src, "images")
	templates := filepath.Join(src, "templates")
	if err := os.MkdirAll(templates, 0o755); err != nil {
		t.Fatal(err)
	}
	img := func(args ...string) {
		t.Helper()
		runCmd(t, nil, qemuImg, append([]string{"create", "-q", "-f", "qcow2"}, args...)...)
	}
	img(filepath.Join(templates, "debian12.qcow2"), "16M")
	img("-b", filepath.Join(templates, "debian12.qcow2"), "-F", "qcow2", filepath.Join(images, "web.qcow2"))
	img("-b", filepath.Join(templates, "debian12.qcow2"), "-F", "qcow2", filepath.Join(images, "mail.qcow2"))
	img(filepath.Join(images, "base-in.qcow2"), "16M")
	// A relative backing file name, as `qemu-img create -b base-in.qcow2`
	// writes it: qemu reads it relative to the overlay.
	runCmd(t, nil, "sh", "-c", fmt.Sprintf(`cd %q && %q create -q -f qcow2 -b base-in.qcow2 -F qcow2 app.qcow2`, images, qemuImg))

	file := func(path string) string {
		return "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='" + path + "'/>"
	}
	backing := func(path string) string {
		return "<backingStore type='file'><format type='qcow2'/><source file='" + path + "'/><backingStore/></backingStore>"
	}
	domains := map[string]string{
		"vm-file":  file(filepath.Join(images, "vm-a.img")) + "<target dev='vda'/></disk>",
		"vm-lvm":   "<disk type='block' device='disk'><source dev='/dev/vg0/vm-lvm'/><target dev='vda'/></disk>",
		"vm-iscsi": "<disk type='network' device='disk'><source protocol='iscsi' name='iqn.2013-06.com.example:storage/1'><host name='192.0.2.10' port='3260'/></source><target dev='vda'/></disk>",
		"vm-rbd":   "<disk type='network' device='disk'><source protocol='rbd' name='rbd/vm-rbd-disk0'><host name='192.0.2.20' port='6789'/></source><target dev='vda'/></disk>",
		"vm-mixed": file(filepath.Join(images, "vm-b.qcow2")) + "<target dev='vda'/></disk>" +
			"<disk type='block' device='disk'><source dev='/dev/vg0/vm-mixed-data'/><target dev='vdb'/></disk>",
		// Running: libvirt shows the chain.
		"vm-web": file(filepath.Join(images, "web.qcow2")) + backing(filepath.Join(templates, "debian12.qcow2")) + "<target dev='vda'/></disk>",
		// Inactive: no <backingStore>; the overlay's header names the base.
		"vm-mail": file(filepath.Join(images, "mail.qcow2")) + "<target dev='vda'/></disk>",
		"vm-app":  file(filepath.Join(images, "app.qcow2")) + backing(filepath.Join(images, "base-in.qcow2")) + "<target dev='vda'/></disk>",
	}
	var node strings.Builder
	node.WriteString("<node>\n")
	for name, disks := range domains {
		fmt.Fprintf(&node, "<domain type='test'><name>%s</name><memory>65536</memory><os><type>hvm</type></os><devices>%s</devices></domain>\n", name, disks)
	}
	node.WriteString("</node>\n")
	nodeXML := filepath.Join(t.TempDir(), "node.xml")
	if err := os.WriteFile(nodeXML, []byte(node.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	env = append(env, "VIRSH=virsh -c test://"+nodeXML, "DATE=2025-05-28")
	runCmd(t, env, script)
	set := filepath.Join(base, "2025-05-28")
	done := testenv.StepLineTime(t, filepath.Join(set, "backup.log"), "[5/5]")

	mf := scan(t, time.Now(), Job{Name: "kvm-host", Type: TypeDatedDir, Path: base, ImagesSource: images})
	for _, c := range []struct {
		vm      string
		missing float64
		size    float64 // 0: no per-VM success
	}{
		{"vm-file", 0, duBytes(t, true, filepath.Join(set, "images", "vm-a.img"))},
		{"vm-lvm", 1, 0},
		{"vm-iscsi", 1, 0},
		{"vm-rbd", 1, 0},
		{"vm-mixed", 1, 0},
		{"vm-web", 1, 0},
		{"vm-mail", 1, 0},
		{"vm-app", 0, duTotal(t, true, filepath.Join(set, "images", "app.qcow2"), filepath.Join(set, "images", "base-in.qcow2"))},
	} {
		l := map[string]string{"backup_job": "kvm-host", "domain": c.vm}
		if got := val(t, mf, "vmhost_backup_vm_missing_disks", l); got != c.missing {
			t.Errorf("%s missing disks = %v, want %v", c.vm, got, c.missing)
		}
		if c.size == 0 {
			absent(t, mf, "vmhost_backup_vm_last_success_timestamp_seconds", l)
			continue
		}
		if got := val(t, mf, "vmhost_backup_vm_last_success_timestamp_seconds", l); got != done {
			t.Errorf("%s last success = %v, want %v", c.vm, got, done)
		}
		if got := val(t, mf, "vmhost_backup_vm_last_success_size_bytes", l); got != c.size {
			t.Errorf("%s size = %v, want %v", c.vm, got, c.size)
		}
	}
	if got := val(t, mf, "vmhost_backup_unreadable_paths", map[string]string{"backup_job": "kvm-host"}); got != 0 {
		t.Errorf("unreadable paths = %v, want 0", got)
	}
}
