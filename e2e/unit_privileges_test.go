package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

const shippedUnit = "../deploy/systemd/vmhost_exporter.service"

// rootBackupTree writes one dated set as a root-run kvm_backup.sh leaves
// it: cp -a of /etc/libvirt (0700 directories, 0600 files) and rsync -a of
// /var/lib/libvirt/images (0711: enter, not list; 0600 images). It returns
// the job's path, the number of its files and its apparent size.
func rootBackupTree(t *testing.T) (base string, files, bytes int) {
	t.Helper()
	base = filepath.Join(testenv.SharedTempDir(t), "kvm")
	// The night's set: 02:00 of the date 3 hours ago is at least an hour
	// past at any time of day. (It used today's date, so between midnight
	// and 02:00 the run ended in the future and the scan reported clock
	// skew: a test that failed by the hour it ran at.)
	night := time.Now().Add(-3 * time.Hour).Format("2006-01-02")
	set := filepath.Join(base, night)
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{
		{base, 0o755}, {set, 0o755}, {filepath.Join(set, "vm_xml"), 0o700},
		{filepath.Join(set, "etc"), 0o700}, {filepath.Join(set, "etc", "libvirt"), 0o700},
		{filepath.Join(set, "etc", "libvirt", "qemu"), 0o700}, {filepath.Join(set, "images"), 0o711},
	} {
		if err := os.Mkdir(d.path, d.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d.path, d.mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	for name, size := range map[string]int{
		"vm_xml/web1.xml":              300,
		"etc/libvirt/qemu/web1.xml":    300,
		"etc/libvirt/libvirtd.conf":    120,
		"images/web1.qcow2":            65536,
		"images/web1-data.qcow2":       4096,
		"etc/libvirt/qemu/autostart.x": 1,
	} {
		if err := os.WriteFile(filepath.Join(set, name), []byte(strings.Repeat("x", size)), 0o600); err != nil {
			t.Fatal(err)
		}
		files++
	}
	// The VM's definition as virsh dumpxml writes it, naming both disks.
	domain := "<domain type='kvm'><name>web1</name><devices>" +
		"<disk type='file' device='disk'><source file='/var/lib/libvirt/images/web1.qcow2'/></disk>" +
		"<disk type='file' device='disk'><source file='/var/lib/libvirt/images/web1-data.qcow2'/></disk>" +
		"</devices></domain>\n"
	if err := os.WriteFile(filepath.Join(set, "vm_xml", "web1.xml"), []byte(domain), 0o600); err != nil {
		t.Fatal(err)
	}
	// The script's log, written with root's default umask.
	log := night + " 02:00:00 - [5/5] バックアップ完了しました\n"
	if err := os.WriteFile(filepath.Join(set, "backup.log"), []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	// The reference for the size: du as root (directories count too).
	out, err := exec.Command("du", "-s", "-B1", "--apparent-size", set).Output()
	if err != nil {
		t.Fatalf("du: %v", err)
	}
	bytes, err = strconv.Atoi(strings.Fields(string(out))[0])
	if err != nil {
		t.Fatal(err)
	}
	return base, files + 1, bytes
}

// TestShippedServiceReadsRootBackups runs the exporter as the shipped
// unit's user with exactly the capabilities it gives it
// (AmbientCapabilities=, through setpriv), against a backup tree root wrote with root's
// modes: it must count every file and byte and find no directory
// unreadable. The same user without the unit's capabilities is the
// control: it cannot read the tree, so the tree does test the privilege.
func TestShippedServiceReadsRootBackups(t *testing.T) {
	testenv.RequireRoot(t, "a root-owned tree and another user's capabilities need root")
	unit := unitServiceSettings(t, shippedUnit)
	// Exactly the one capability, in the bounding set too: the service can
	// never gain another (NoNewPrivileges blocks setuid binaries).
	for _, k := range []string{"AmbientCapabilities", "CapabilityBoundingSet"} {
		if unit[k] != "CAP_DAC_READ_SEARCH" {
			t.Errorf("unit %s=%q, want CAP_DAC_READ_SEARCH (root's 0700/0600 backup trees)", k, unit[k])
		}
	}
	if unit["NoNewPrivileges"] != "yes" {
		t.Errorf("unit NoNewPrivileges=%q, want yes", unit["NoNewPrivileges"])
	}
	id := testenv.ShippedUnitIdentity(t)

	base, files, bytes := rootBackupTree(t)
	config := filepath.Join(testenv.SharedTempDir(t), "backup.yml")
	if err := os.WriteFile(config, []byte("jobs:\n  - name: kvm-host\n    type: dated_dir\n    path: "+base+"\n    max_age: 8d\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	job := map[string]string{"backup_job": "kvm-host"}
	for _, tc := range []struct {
		name           string
		id             testenv.UnitIdentity
		wantFiles      int
		wantUnreadable bool
	}{
		{"the unit's identity", id, files, false},
		{"no capabilities", id.WithoutCapabilities(), 1, true}, // only backup.log, in the 0755 set directory
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := testenv.StartExporterAsUnit(t, tc.id, "--backup.config-file="+config)
			var got map[string]float64
			testenv.Eventually(t, 30*time.Second, "the first backup scan", func() (bool, string) {
				mf := testenv.Scrape(t, e.URL+"/metrics")
				got = map[string]float64{}
				for _, name := range []string{"vmhost_backup_scan_success", "vmhost_backup_total_files", "vmhost_backup_total_size_bytes", "vmhost_backup_total_unreadable_dirs", "vmhost_backup_unreadable_paths"} {
					if v, ok := testenv.Value(mf, name, job); ok {
						got[name] = v
					}
				}
				vm := map[string]string{"backup_job": "kvm-host", "domain": "web1"}
				if v, ok := testenv.Value(mf, "vmhost_backup_vm_last_success_timestamp_seconds", vm); ok {
					got["vm_last_success"] = v
				}
				if v, ok := testenv.Value(mf, "vmhost_backup_vm_definition_unreadable", vm); ok {
					got["vm_definition_unreadable"] = v
				}
				return len(got) >= 5, ""
			})
			// The VM's XML sits in the 0700 vm_xml/: read with the
			// capability, the VM is covered; without, the directory is
			// counted as unreadable evidence.
			if _, covered := got["vm_last_success"]; covered == tc.wantUnreadable {
				t.Errorf("web1 covered: %v, want %v", covered, !tc.wantUnreadable)
			}
			if v, ok := got["vm_definition_unreadable"]; ok {
				t.Errorf("vm_definition_unreadable{web1} = %v with a valid XML", v)
			}
			if unreadable := got["vmhost_backup_unreadable_paths"] > 0; unreadable != tc.wantUnreadable {
				t.Errorf("vmhost_backup_unreadable_paths = %v, want some: %v", got["vmhost_backup_unreadable_paths"], tc.wantUnreadable)
			}
			if got["vmhost_backup_total_files"] != float64(tc.wantFiles) {
				t.Errorf("vmhost_backup_total_files = %v, want %d", got["vmhost_backup_total_files"], tc.wantFiles)
			}
			// All of du's bytes only when it reads everything.
			if size := got["vmhost_backup_total_size_bytes"]; (size == float64(bytes)) == tc.wantUnreadable {
				t.Errorf("vmhost_backup_total_size_bytes = %v, du as root %d; want equal: %v", size, bytes, !tc.wantUnreadable)
			}
			if unreadable := got["vmhost_backup_total_unreadable_dirs"] > 0; unreadable != tc.wantUnreadable {
				t.Errorf("vmhost_backup_total_unreadable_dirs = %v, want unreadable directories: %v", got["vmhost_backup_total_unreadable_dirs"], tc.wantUnreadable)
			}
		})
	}
}

// TestShippedUnitOrderingAndEnvironment: the unit starts after libvirt
// in either of its forms (Debian's and EL8's libvirtd, EL9's modular
// virtqemud) and reads the flags file of either packaging convention.
func TestShippedUnitOrderingAndEnvironment(t *testing.T) {
	data := testenv.ReadFile(t, shippedUnit)
	var after, env []string
	for _, line := range strings.Split(data, "\n") {
		if v, ok := strings.CutPrefix(line, "After="); ok {
			after = append(after, strings.Fields(v)...)
		}
		if v, ok := strings.CutPrefix(line, "EnvironmentFile="); ok {
			env = append(env, v)
		}
	}
	for _, want := range []string{"libvirtd.service", "libvirtd-ro.socket", "virtqemud.service", "virtqemud-ro.socket"} {
		if !slices.Contains(after, want) {
			t.Errorf("unit not ordered after %s: After=%v", want, after)
		}
	}
	for _, want := range []string{"-/etc/default/vmhost_exporter", "-/etc/sysconfig/vmhost_exporter"} {
		if !slices.Contains(env, want) {
			t.Errorf("unit lacks EnvironmentFile=%s (optional): %v", want, env)
		}
	}
}
