package main

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// TestUnreadableDiskCopiesAreNotJudged (an operator trial): the seed's
// kvm_backup.sh, run as root, leaves the VM definitions readable (virsh
// dumpxml > vm_xml/<vm>.xml, 0644) and copies the images directory with
// rsync -a, its modes included. The exporter, as a service user without
// CAP_DAC_READ_SEARCH, then cannot read the disk copies: a VM whose copy
// exists but cannot be read is not judged (vm_definition_unreadable 1, no
// missing disks, its row says which copy and why), not "missing disks"
// (VMNotBackedUp for every VM). A disk the set certainly cannot restore
// stays missing: vm-c's outside the copied directory, and vm-d's copy,
// which does not exist, once the exporter can see that it does not.
//
// The VMs (collector/backup/testdata/vms.xml): vm-a one raw image, vm-b a
// qcow2 and a data image, vm-c a disk in /srv, vm-d an image that is not
// in the images directory.
func TestUnreadableDiskCopiesAreNotJudged(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Missing(t, "root", "the backup runs as root, the exporter as nobody")
	}
	testenv.LookPath(t, "rsync", "rsync")
	testenv.LookPath(t, "virsh", "libvirt-clients")
	type vm struct {
		missing    float64  // vm_missing_disks; -1: absent
		disks      []string // vm_missing_disk_info's disk labels
		unjudged   bool     // vm_definition_unreadable 1
		row        string   // its --backup.explain row, after "    <vm>: "
		rowMissing []string // the row's missing disks, in order
	}
	// notJudged is the row of a VM whose readable definition names disk
	// copies that are root's 0600 images, in the order it names them.
	notJudged := func(set string, disks ...string) vm {
		why := make([]string, len(disks))
		for i, disk := range disks {
			why[i] = "the copy of /var/lib/libvirt/images/" + disk + " in the set is unreadable: " + filepath.Join(set, "images", disk) + ": permission denied"
		}
		return vm{missing: -1, unjudged: true, row: "not judged: " + strings.Join(why, "; ")}
	}
	// vm-c's disk is outside the copied directory whatever the modes.
	outsideCopied := vm{missing: 1, disks: []string{"vda"}, row: "no complete copy",
		rowMissing: []string{"/srv/vms/vm-c.img is outside /var/lib/libvirt/images, which the backup copies"}}
	for _, tc := range []struct {
		name string
		// imagesMode is the mode of the source images directory, which
		// rsync -a gives the set's images/; the images are root's 0600.
		imagesMode os.FileMode
		// unreadable is vmhost_backup_unreadable_paths, relative to the
		// set (the walk's images/ directory and the copies the verdict
		// needed).
		unreadable []string
		vms        func(set string) map[string]vm
	}{
		{
			// images/ 0700: not even an lstat of a copy gets through, so
			// vm-d's absent copy cannot be told from an unreadable one.
			name: "images directory 0700", imagesMode: 0o700,
			unreadable: []string{"images", "images/vm-a.img", "images/vm-b.qcow2", "images/vm-b-data.img", "images/vm-d.img"},
			vms: func(set string) map[string]vm {
				return map[string]vm{
					"vm-a": notJudged(set, "vm-a.img"),
					"vm-b": notJudged(set, "vm-b.qcow2", "vm-b-data.img"),
					"vm-c": outsideCopied,
					"vm-d": notJudged(set, "vm-d.img"),
				}
			},
		},
		{
			// images/ 0711 as /var/lib/libvirt/images is: each copy can
			// be looked up (vm-d's is not there: a missing disk, ENOENT)
			// but not opened, so its qcow2 header cannot be read.
			name: "images directory 0711", imagesMode: 0o711,
			unreadable: []string{"images", "images/vm-a.img", "images/vm-b.qcow2", "images/vm-b-data.img"},
			vms: func(set string) map[string]vm {
				return map[string]vm{
					"vm-a": notJudged(set, "vm-a.img"),
					"vm-b": notJudged(set, "vm-b.qcow2", "vm-b-data.img"),
					"vm-c": outsideCopied,
					"vm-d": {missing: 1, disks: []string{"vda"}, row: "no complete copy",
						rowMissing: []string{"no copy of /var/lib/libvirt/images/vm-d.img in the set"}},
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := testenv.SharedTempDir(t)
			src := filepath.Join(root, "src")
			for name, content := range map[string]string{
				"libvirt/libvirtd.conf": "# defaults\n", "images/vm-a.img": strings.Repeat("a", 64<<10),
				"images/vm-b.qcow2": strings.Repeat("q", 30000), "images/vm-b-data.img": strings.Repeat("d", 7000),
				"network-scripts/ifcfg-br0": "DEVICE=br0\n", "etc/hosts": "127.0.0.1 localhost\n", "etc/fstab": "# fstab\n",
			} {
				writeFile(t, filepath.Join(src, name), content, time.Time{})
			}
			// libvirt's images: root's, 0600, in a directory of the case's mode.
			for _, img := range []string{"vm-a.img", "vm-b.qcow2", "vm-b-data.img"} {
				if err := os.Chmod(filepath.Join(src, "images", img), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(filepath.Join(src, "images"), tc.imagesMode); err != nil {
				t.Fatal(err)
			}
			kvm := filepath.Join(root, "backup", "kvm")
			date := time.Now().Format("2006-01-02")
			runScript(t, "kvm_backup.sh", "SRC_LIBVIRT="+filepath.Join(src, "libvirt"), "SRC_IMAGES="+filepath.Join(src, "images"),
				"SRC_NETWORK="+filepath.Join(src, "network-scripts"), "SRC_ETC="+filepath.Join(src, "etc"),
				"VIRSH=virsh -c test://"+filepath.Join(testenv.RepoRoot(), "collector", "backup", "testdata", "vms.xml"),
				"BACKUP_BASE="+kvm, "DATE="+date)
			set := filepath.Join(kvm, date)
			// The fixture is what the case says: readable definitions,
			// images/ with the source's mode.
			for _, c := range []struct {
				path string
				mode os.FileMode
			}{{filepath.Join(set, "vm_xml", "vm-a.xml"), 0o644}, {filepath.Join(set, "images"), tc.imagesMode}, {filepath.Join(set, "images", "vm-b.qcow2"), 0o600}} {
				if fi, err := os.Stat(c.path); err != nil || fi.Mode().Perm() != c.mode {
					t.Fatalf("kvm_backup.sh left %s with %v (%v), want mode %v", c.path, fi.Mode(), err, c.mode)
				}
			}
			cfg := filepath.Join(root, "backup.yml")
			writeFile(t, cfg, "jobs:\n  - {name: kvm, type: dated_dir, path: "+kvm+", max_age: 26h}\n", time.Time{})

			e := testenv.StartExporterAs(t, testenv.Nobody, "--collector.disable-defaults", "--collector.backup", "--backup.config-file="+cfg)
			j := map[string]string{"backup_job": "kvm"}
			mf := waitFor(t, e.URL+"/metrics", "kvm scanned", has("vmhost_backup_scan_success", j))
			if v, _ := testenv.Value(mf, "vmhost_backup_last_run_success", j); v != 1 {
				t.Errorf("last_run_success = %v, want 1 (the run ended with [5/5])", v)
			}
			if v, _ := testenv.Value(mf, "vmhost_backup_unreadable_paths", j); v != float64(len(tc.unreadable)) {
				t.Errorf("unreadable_paths = %v, want %d (%v)", v, len(tc.unreadable), tc.unreadable)
			}
			for _, p := range tc.unreadable {
				e.WaitOutput(t, 10*time.Second, "path="+filepath.Join(set, p)+" err=")
			}
			want := tc.vms(set)
			for _, name := range slices.Sorted(maps.Keys(want)) {
				w := want[name]
				l := map[string]string{"backup_job": "kvm", "domain": name}
				missing, ok := testenv.Value(mf, "vmhost_backup_vm_missing_disks", l)
				if !ok {
					missing = -1
				}
				if missing != w.missing {
					t.Errorf("%s: vm_missing_disks = %v, want %v (-1: absent)", name, missing, w.missing)
				}
				if got := missingDiskInfo(mf, "kvm", name); !slices.Equal(got, w.disks) {
					t.Errorf("%s: vm_missing_disk_info disks %v, want %v", name, got, w.disks)
				}
				unjudged, ok := testenv.Value(mf, "vmhost_backup_vm_definition_unreadable", l)
				if ok != w.unjudged || (ok && unjudged != 1) {
					t.Errorf("%s: vm_definition_unreadable = %v (present %v), want 1: %v", name, unjudged, ok, w.unjudged)
				}
				if v, ok := testenv.Value(mf, "vmhost_backup_vm_last_success_timestamp_seconds", l); ok {
					t.Errorf("%s: vm_last_success_timestamp_seconds = %v, want none", name, v)
				}
			}

			// --backup.explain as the same user: each VM's row.
			cmd := exec.Command(testenv.ExporterBinary(t), "--backup.explain", "--backup.config-file="+cfg)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: testenv.Nobody, Pdeathsig: syscall.SIGKILL}
			_, stdout, stderr := runExplain(t, cmd)
			for name, w := range want {
				row := "\n    " + name + ": " + w.row + "\n"
				if len(w.rowMissing) > 0 {
					row += fmt.Sprintf("      missing disks: %d\n", len(w.rowMissing))
					for _, m := range w.rowMissing {
						row += "        - " + m + "\n"
					}
				}
				row += "      offsite: "
				if !strings.Contains(stdout, row) {
					t.Errorf("--backup.explain lacks %s's row %q:\n%s\n%s", name, row, stdout, stderr)
				}
			}
			// /backups says the same.
			page, _ := fetch(t, e.URL+"/backups")
			a := want["vm-a"]
			for _, s := range []string{
				"<tr><td>vm-a<br>not judged</td>",
				`<td class="bad">not judged<br>` + strings.TrimPrefix(a.row, "not judged: ") + "</td>\n" +
					"              <td>unknown</td>", // its missing disks: not 0
			} {
				if !strings.Contains(page, s) {
					t.Errorf("/backups lacks %q:\n%s", s, page)
				}
			}
		})
	}
}

// missingDiskInfo is the disk labels of vmhost_backup_vm_missing_disk_info
// for one VM of one job, sorted.
func missingDiskInfo(mf map[string]*dto.MetricFamily, job, domain string) []string {
	var disks []string
	for _, m := range mf["vmhost_backup_vm_missing_disk_info"].GetMetric() {
		labels := map[string]string{}
		for _, lp := range m.GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		if labels["backup_job"] == job && labels["domain"] == domain {
			disks = append(disks, labels["disk"])
		}
	}
	slices.Sort(disks)
	return disks
}
