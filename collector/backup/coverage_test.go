package backup

import (
	"os"
	"path/filepath"
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
	testenv.LookPath(t, "rsync", "rsync")
	testenv.LookPath(t, "virsh", "libvirt-clients")
	src, env := hostSources(t)
	base := t.TempDir()
	env = append(env, "BACKUP_BASE="+base)
	script, _ := filepath.Abs("testdata/kvm_backup.sh")
	runCmd(t, append(env, "DATE=2025-05-27"), script)
	if err := os.Remove(filepath.Join(src, "images", "vm-b-data.img")); err != nil {
		t.Fatal(err)
	}
	runCmd(t, append(env, "DATE=2025-05-28"), script)
	older := stepTime(t, filepath.Join(base, "2025-05-27", "backup.log"), "[5/5]")
	newest := stepTime(t, filepath.Join(base, "2025-05-28", "backup.log"), "[5/5]")

	mf := scan(t, time.Now(), Job{Name: "kvm-host", Type: TypeDatedDir, Path: base})
	for _, c := range []struct {
		vm          string
		missing     float64
		lastSuccess float64 // 0: no per-VM success at all
		size        float64
	}{
		{"vm-a", 0, newest, 64 << 20},
		{"vm-b", 1, older, 300000 + 70000},
		{"vm-c", 1, 0, 0},
		{"vm-d", 1, 0, 0},
	} {
		l := map[string]string{"backup_job": "kvm-host", "domain": c.vm}
		if got := val(t, mf, "vmhost_backup_vm_missing_disks", l); got != c.missing {
			t.Errorf("%s missing disks = %v, want %v", c.vm, got, c.missing)
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
