package backup

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// TestVMCoverageNeedsItsDisks: kvm_backup.sh dumps every VM's XML but
// copies only /var/lib/libvirt/images. vm-c's disk lives in /srv, vm-d's
// image does not exist, and vm-b's data disk is gone from the images
// directory before the second night (the script still ends with [5/5]: it
// never checks rsync). A VM counts as backed up by a set only with all its
// disks in it: vm-a by the newest set, vm-b by the older one only, vm-c
// and vm-d by none; vm_missing_disks says why.
func TestVMCoverageNeedsItsDisks(t *testing.T) {
	src, base, script, env := kvmBackupScript(t)
	runCmd(t, append(env, "DATE=2025-05-27"), script)
	if err := os.Remove(filepath.Join(src, "images", "vm-b-data.img")); err != nil {
		t.Fatal(err)
	}
	runCmd(t, append(env, "DATE=2025-05-28"), script)
	older := testenv.StepLineTime(t, filepath.Join(base, "2025-05-27", "backup.log"), "[5/5]")
	newest := testenv.StepLineTime(t, filepath.Join(base, "2025-05-28", "backup.log"), "[5/5]")

	mf := scan(t, time.Now(), Job{Name: "kvm-host", Type: TypeDatedDir, Path: base})
	for _, c := range []struct {
		vm          string
		missing     float64
		lastSuccess float64 // 0: no per-VM success at all
		size        float64
		disks       []string // the missing ones, by target (issue 26: which disks)
	}{
		{"vm-a", 0, newest, 64 << 20, nil},
		{"vm-b", 1, older, 300000 + 70000, []string{"vdb"}},
		{"vm-c", 1, 0, 0, []string{"vda"}},
		{"vm-d", 1, 0, 0, []string{"vda"}},
	} {
		l := map[string]string{"backup_job": "kvm-host", "domain": c.vm}
		if got := val(t, mf, "vmhost_backup_vm_missing_disks", l); got != c.missing {
			t.Errorf("%s missing disks = %v, want %v", c.vm, got, c.missing)
		}
		var named []string
		for _, m := range mf["vmhost_backup_vm_missing_disk_info"].GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["domain"] == c.vm && labels["backup_job"] == "kvm-host" {
				named = append(named, labels["disk"])
			}
		}
		if strings.Join(named, ",") != strings.Join(c.disks, ",") {
			t.Errorf("%s missing disks named %v, want %v", c.vm, named, c.disks)
		}
		if c.lastSuccess == 0 {
			absent(t, mf, "vmhost_backup_vm_last_success_timestamp_seconds", l)
			absent(t, mf, "vmhost_backup_vm_last_success_size_bytes", l)
			continue
		}
		if got := val(t, mf, "vmhost_backup_vm_last_success_timestamp_seconds", l); got != c.lastSuccess {
			t.Errorf("%s last success = %v, want %v", c.vm, got, c.lastSuccess)
		}
		if got := val(t, mf, "vmhost_backup_vm_last_success_size_bytes", l); got != c.size {
			t.Errorf("%s size = %v, want %v", c.vm, got, c.size)
		}
	}
	// The job itself succeeded: the script's own verdict is the run's.
	if got := val(t, mf, "vmhost_backup_last_success_timestamp_seconds", map[string]string{"backup_job": "kvm-host"}); got != newest {
		t.Errorf("job last success = %v, want %v", got, newest)
	}
}

// TestDatedSetsWithoutALog runs the notes' first script, which writes
// /backup/kvmhost-YYYY-MM-DD sets with no log at all. With success_from:
// contents a set succeeded when every VM definition in it has its disks
// copied and nothing changed for running_timeout: the first night's set
// is running while fresh and a success once quiet; the second night, vm-b's
// data disk is gone from the images directory, so that set is incomplete
// (a failed run) and the last success stays the first night's.
func TestDatedSetsWithoutALog(t *testing.T) {
	testenv.LookPath(t, "rsync", "rsync")
	src, env := hostSources(t)
	domains := map[string][]string{
		"vm-a": {"/var/lib/libvirt/images/vm-a.img"},
		"vm-b": {"/var/lib/libvirt/images/vm-b.qcow2", "/var/lib/libvirt/images/vm-b-data.img"},
	}
	for vm, disks := range domains {
		xml := "<domain type='kvm'><name>" + vm + "</name><devices>"
		for _, d := range disks {
			xml += "<disk type='file' device='disk'><source file='" + d + "'/></disk>"
		}
		xml += "</devices></domain>\n"
		if err := os.WriteFile(filepath.Join(src, "libvirt", "qemu", vm+".xml"), []byte(xml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	root := t.TempDir()
	env = append(env, "BACKUP_ROOT="+root)
	script, _ := filepath.Abs("testdata/kvmhost_backup.sh")
	job := Job{Name: "kvmhost", Type: TypeDatedDir, Path: root, SuccessFrom: SuccessFromContents,
		VMXMLDir: "libvirt-config/qemu", ImagesDir: "images/images"}
	job.SetPattern.Regexp = regexp.MustCompile(`^kvmhost-(\d{4}-\d{2}-\d{2})$`)
	j := map[string]string{"backup_job": "kvmhost"}

	runCmd(t, append(env, "DATE=2025-05-27"), script)
	first := filepath.Join(root, "kvmhost-2025-05-27")
	mf := scan(t, time.Now(), job)
	if v := val(t, mf, "vmhost_backup_running", j); v != 1 {
		t.Errorf("fresh set: running = %v, want 1 (changed within running_timeout)", v)
	}
	absent(t, mf, "vmhost_backup_last_success_timestamp_seconds", j)

	later := time.Now().Add(2 * time.Hour)
	mf = scan(t, later, job)
	for name, want := range map[string]float64{
		"vmhost_backup_running":                 0,
		"vmhost_backup_last_run_success":        1,
		"vmhost_backup_sets":                    1,
		"vmhost_backup_last_success_size_bytes": duBytes(t, true, first),
		"vmhost_backup_last_success_files":      countFiles(t, first),
	} {
		if v := val(t, mf, name, j); v != want {
			t.Errorf("quiet set: %s = %v, want %v", name, v, want)
		}
	}
	firstSuccess := val(t, mf, "vmhost_backup_last_success_timestamp_seconds", j)
	if d := time.Since(time.Unix(int64(firstSuccess), 0)); d < 0 || d > time.Minute {
		t.Errorf("last success %v is not the set's last change", time.Unix(int64(firstSuccess), 0))
	}

	if err := os.Remove(filepath.Join(src, "images", "vm-b-data.img")); err != nil {
		t.Fatal(err)
	}
	runCmd(t, append(env, "DATE=2025-05-28"), script)
	mf = scan(t, later, job)
	for name, want := range map[string]float64{
		"vmhost_backup_running":                        0,
		"vmhost_backup_last_run_success":               0,
		"vmhost_backup_sets":                           2,
		"vmhost_backup_last_success_timestamp_seconds": firstSuccess,
		"vmhost_backup_last_success_size_bytes":        duBytes(t, true, first),
	} {
		if v := val(t, mf, name, j); v != want {
			t.Errorf("incomplete second set: %s = %v, want %v", name, v, want)
		}
	}
	if v := val(t, mf, "vmhost_backup_vm_missing_disks", map[string]string{"backup_job": "kvmhost", "domain": "vm-b"}); v != 0 {
		// The newest *successful* set holding vm-b's XML is the first one,
		// where it is whole.
		t.Errorf("vm-b missing disks = %v, want 0", v)
	}
}

// twoNightsOfKvmBackup runs the seed's kvm_backup.sh for 2025-05-27 and
// 2025-05-28 and returns the sets' directory and the older set's success
// time (its [5/5] line): tests break the newest set and see which
// verdicts fall back on the older, whole one.
func twoNightsOfKvmBackup(t *testing.T) (base string, older float64) {
	t.Helper()
	_, base, script, env := kvmBackupScript(t)
	runCmd(t, append(env, "DATE=2025-05-27"), script)
	runCmd(t, append(env, "DATE=2025-05-28"), script)
	return base, testenv.StepLineTime(t, filepath.Join(base, "2025-05-27", "backup.log"), "[5/5]")
}

// TestUnreadableDefinitionIsTheNewest: a VM is reported as unreadable
// only when its newest definition is the one that cannot be read. vm-a's
// XML in the older set is not a file (a directory where virsh dumpxml
// should have written), and the newest set lacks its disk, so the older
// set is looked at too: the VM is read fine in the newest, and is not
// reported. vm-b's newest XML is the broken one: it is reported and keeps
// the older set's coverage.
func TestUnreadableDefinitionIsTheNewest(t *testing.T) {
	base, older := twoNightsOfKvmBackup(t)
	// vm-a's XML is broken in the older set, vm-b's in the newest.
	for _, broken := range []string{"2025-05-27/vm_xml/vm-a.xml", "2025-05-28/vm_xml/vm-b.xml"} {
		p := filepath.Join(base, broken)
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(base, "2025-05-28/images/vm-a.img")); err != nil {
		t.Fatal(err)
	}
	mf := scan(t, time.Now(), Job{Name: "kvm-host", Type: TypeDatedDir, Path: base})
	a := map[string]string{"backup_job": "kvm-host", "domain": "vm-a"}
	b := map[string]string{"backup_job": "kvm-host", "domain": "vm-b"}
	absent(t, mf, "vmhost_backup_vm_definition_unreadable", a)
	if got := val(t, mf, "vmhost_backup_vm_definition_unreadable", b); got != 1 {
		t.Errorf("vm-b, whose newest XML is not a file: definition_unreadable = %v, want 1", got)
	}
	// vm-b keeps the older set's coverage (its data disk was there then).
	if got := val(t, mf, "vmhost_backup_vm_last_success_timestamp_seconds", b); got != older {
		t.Errorf("vm-b last success = %v, want the older set's %v", got, older)
	}
	if got := val(t, mf, "vmhost_backup_vm_missing_disks", a); got != 1 {
		t.Errorf("vm-a missing disks = %v, want 1 (its copy gone from the newest set)", got)
	}
	// Both broken XMLs were needed: vm-b's newest, and vm-a's older one
	// (its newest set does not cover it).
	if got := val(t, mf, "vmhost_backup_unreadable_paths", map[string]string{"backup_job": "kvm-host"}); got != 2 {
		t.Errorf("unreadable_paths = %v, want 2", got)
	}
}

// TestUnreadableDiskCopy: a disk copy that exists but cannot be read
// leaves its VM not judged in that set, as an unreadable definition does;
// a copy that does not exist is a missing disk; and a VM with a disk the
// set certainly cannot restore is judged whatever its unreadable copy
// holds. The scan runs as root here, which reads any mode, so the
// unreadable copy is a FIFO where rsync should have left the image
// (openRegular refuses it: unreadablePaths counts it, as it counts
// EACCES); cmd/vmhost_exporter's TestUnreadableDiskCopiesAreNotJudged has
// the service user before root's 0700 and 0711 images/.
//
// Two nights of kvm_backup.sh; in the newest set vm-a's image is a FIFO,
// vm-b's qcow2 is a FIFO and its data image is gone, vm-d's image was
// never there (vms.xml).
func TestUnreadableDiskCopy(t *testing.T) {
	base, older := twoNightsOfKvmBackup(t)
	newest := filepath.Join(base, "2025-05-28", "images")
	for _, img := range []string{"vm-a.img", "vm-b.qcow2"} {
		p := filepath.Join(newest, img)
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(newest, "vm-b-data.img")); err != nil {
		t.Fatal(err)
	}
	job := Job{Name: "kvm-host", Type: TypeDatedDir, Path: base}
	c := newTestCollector(t, time.Now(), job)
	mf := gatherFrom(t, c)
	var text strings.Builder
	if err := c.Explain(ExplainOptions{}).WriteText(&text); err != nil {
		t.Fatal(err)
	}
	fifo := func(img string) string {
		p := filepath.Join(newest, img)
		return "the copy of /var/lib/libvirt/images/" + img + " in the set is unreadable: " + p + " is not a regular file (a FIFO); only regular files are read"
	}
	for _, c := range []struct {
		vm          string
		missing     float64 // -1: absent
		disks       []string
		unjudged    bool
		lastSuccess float64 // 0: none
		row         string  // the explain row, from the VM's name to "offsite:"
	}{
		// Not judged in the newest set: no missing disk from it. Its
		// older set, where it is whole, still backs it up (and counts
		// its 0 missing disks), as for an unreadable definition.
		{"vm-a", 0, nil, true, older, "vm-a: newest complete copy "},
		// The data disk is certainly gone: judged, one missing disk,
		// the unreadable qcow2 not counted as a second.
		{"vm-b", 1, []string{"vdb"}, false, older, "vm-b: newest complete copy "},
		// Never copied (ENOENT): missing, as before.
		{"vm-d", 1, []string{"vda"}, false, 0, "vm-d: no complete copy\n      missing disks: 1\n        - no copy of /var/lib/libvirt/images/vm-d.img in the set\n      offsite: "},
	} {
		l := map[string]string{"backup_job": "kvm-host", "domain": c.vm}
		if c.missing < 0 {
			absent(t, mf, "vmhost_backup_vm_missing_disks", l)
		} else if got := val(t, mf, "vmhost_backup_vm_missing_disks", l); got != c.missing {
			t.Errorf("%s missing disks = %v, want %v", c.vm, got, c.missing)
		}
		var named []string
		for _, m := range mf["vmhost_backup_vm_missing_disk_info"].GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["domain"] == c.vm {
				named = append(named, labels["disk"])
			}
		}
		if strings.Join(named, ",") != strings.Join(c.disks, ",") {
			t.Errorf("%s missing disks named %v, want %v", c.vm, named, c.disks)
		}
		if c.unjudged {
			if got := val(t, mf, "vmhost_backup_vm_definition_unreadable", l); got != 1 {
				t.Errorf("%s definition_unreadable = %v, want 1", c.vm, got)
			}
		} else {
			absent(t, mf, "vmhost_backup_vm_definition_unreadable", l)
		}
		if c.lastSuccess == 0 {
			absent(t, mf, "vmhost_backup_vm_last_success_timestamp_seconds", l)
		} else if got := val(t, mf, "vmhost_backup_vm_last_success_timestamp_seconds", l); got != c.lastSuccess {
			t.Errorf("%s last success = %v, want %v", c.vm, got, c.lastSuccess)
		}
		if !strings.Contains(text.String(), "\n    "+c.row) {
			t.Errorf("--backup.explain lacks %q:\n%s", c.row, text.String())
		}
	}
	// vm-a's row names the copy and why, after its older whole copy.
	if want := "; its newest set not judged: " + fifo("vm-a.img") + "\n"; !strings.Contains(text.String(), want) {
		t.Errorf("--backup.explain lacks %q:\n%s", want, text.String())
	}
	// Both FIFOs, each read for its VM's verdict.
	if got := val(t, mf, "vmhost_backup_unreadable_paths", map[string]string{"backup_job": "kvm-host"}); got != 2 {
		t.Errorf("unreadable_paths = %v, want 2", got)
	}
}

// TestAbsentDiskCopyIsMissing: a set's images that are not there in
// another shape than ENOENT (images/ a regular file, so every lookup
// through it fails with ENOTDIR; a directory where vm-a's image should
// be) have no copy that more privilege could read: the disks are missing
// and the VMs judged, not left unjudged with their paths counted as
// unreadable evidence.
func TestAbsentDiskCopyIsMissing(t *testing.T) {
	for _, tc := range []struct {
		name     string
		breakSet func(t *testing.T, images string)
	}{
		{"images is a file", func(t *testing.T, images string) {
			if err := os.RemoveAll(images); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(images, []byte("not a directory\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"a directory in place of the image", func(t *testing.T, images string) {
			p := filepath.Join(images, "vm-a.img")
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, older := twoNightsOfKvmBackup(t)
			tc.breakSet(t, filepath.Join(base, "2025-05-28", "images"))
			mf := scan(t, time.Now(), Job{Name: "kvm-host", Type: TypeDatedDir, Path: base})
			a := map[string]string{"backup_job": "kvm-host", "domain": "vm-a"}
			if got := val(t, mf, "vmhost_backup_vm_missing_disks", a); got != 1 {
				t.Errorf("vm-a missing disks = %v, want 1 (no copy of its image in the newest set)", got)
			}
			absent(t, mf, "vmhost_backup_vm_definition_unreadable", a)
			if got := val(t, mf, "vmhost_backup_vm_last_success_timestamp_seconds", a); got != older {
				t.Errorf("vm-a last success = %v, want the older set's %v", got, older)
			}
			if got := val(t, mf, "vmhost_backup_unreadable_paths", map[string]string{"backup_job": "kvm-host"}); got != 0 {
				t.Errorf("unreadable_paths = %v, want 0: nothing there could be read with more privilege", got)
			}
		})
	}
}
