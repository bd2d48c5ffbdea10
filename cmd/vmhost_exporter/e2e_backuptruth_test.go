package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// growingDump is a real gzip writing a dump into its final name, caught
// in the middle (testenv.GzipDump); finish ends it as the dumping program
// does when done.
func growingDump(t *testing.T, path string) (finish func()) {
	t.Helper()
	d := testenv.StartGzipDump(t, path, 20*time.Second)
	d.Write(8, 64<<10)
	return func() {
		t.Helper()
		d.Finish()
	}
}

// finishedDump writes a finished 2 MiB dump with gzip and dates it: a
// night's dump, quiet since.
func finishedDump(t *testing.T, path string, mtime time.Time) int64 {
	t.Helper()
	return testenv.WriteGzipDump(t, path, 2<<20/testenv.GzipDumpChunk, mtime, 20*time.Second)
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

// defineDomain defines a QEMU domain in the private libvirtd whose disks
// are disks (libvirt <disk> elements) instead of the usual raw file.
func defineDomain(t *testing.T, l *testenv.Libvirtd, name, disks string) {
	t.Helper()
	xml := fmt.Sprintf(testenv.QEMUDomainXML, name, "app", "@DISK@")
	start, end := strings.Index(xml, "<disk "), strings.Index(xml, "</disk>")+len("</disk>")
	if start < 0 || end < start {
		t.Fatalf("testenv.QEMUDomainXML has no <disk> element to replace:\n%s", xml)
	}
	path := filepath.Join(testenv.SharedTempDir(t), name+".xml")
	if err := os.WriteFile(path, []byte(xml[:start]+disks+xml[end:]), 0o644); err != nil {
		t.Fatal(err)
	}
	l.MustVirsh("qemu:///system", "define", path)
}

// TestBackupTruthAsTheService (issue 24 items 4, 6, 7, 8 and 9) builds a
// host's day with the real tools and reads it with the exporter as the
// shipped unit runs it, one exporter for every case:
//
//   - kvm (items 7 and 8): a private libvirtd holds the host's VMs, all
//     shut off; kvm_backup.sh (the seed's, unchanged) backs them up last
//     night. Disks on LVM, iSCSI and RBD and a qcow2 overlay (qemu-img)
//     whose backing file is a template outside the images directory are
//     never whole in a set; an overlay whose base is inside is. Then the
//     day: one VM is undefined, one renamed (virsh domrename), one created.
//   - mysql, pve (item 4): three nights of gzip dumps, and tonight's dump
//     being written by gzip into its final name (running, the last
//     success and sizes last night's), then finished and quiet for
//     running_timeout (the newest success); a vzdump directory whose
//     tonight's .vma.dat gzip is filling.
//   - new (item 6): a success_from: contents job on a fresh, empty path.
//   - moved (item 9): the operator points a job at another path and sends
//     SIGHUP (the unit's ExecReload); the scan interval is an hour, so
//     the new path is read at once or not within the test. The old path
//     answers here; TestBackupReloadAwayFromAHungMount moves a job away
//     from a mount that never does.
//
// rules/tests/backup_vms.test.yml, vm_lifecycle.test.yml and
// backup_in_progress.test.yml take series of these shapes through the
// alert rules.
func TestBackupTruthAsTheService(t *testing.T) {
	testenv.LookPath(t, "rsync", "rsync")
	testenv.LookPath(t, "gzip", "gzip")
	qemuImg := testenv.LookPath(t, "qemu-img", "qemu-utils")
	l := testenv.StartLibvirtd(t)
	root := testenv.SharedTempDir(t)
	images, templates := filepath.Join(root, "images"), filepath.Join(root, "templates")
	for _, d := range []string{images, templates, filepath.Join(root, "network-scripts"), filepath.Join(root, "etc")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(root, "etc", "hosts"), "127.0.0.1 localhost\n", time.Time{})
	writeFile(t, filepath.Join(root, "etc", "fstab"), "# fstab\n", time.Time{})
	qemu := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command(qemuImg, append([]string{"create", "-q", "-f", "qcow2"}, args...)...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("qemu-img %v: %v\n%s", args, err, out)
		}
	}
	qemu(templates, "debian12.qcow2", "16M")
	qemu(images, "-b", filepath.Join(templates, "debian12.qcow2"), "-F", "qcow2", "web.qcow2")
	qemu(images, "base-in.qcow2", "16M")
	qemu(images, "-b", "base-in.qcow2", "-F", "qcow2", "app.qcow2") // relative, as qemu-img writes it

	qcow2 := func(path string) string {
		return "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='" + path + "'/><target dev='vda' bus='virtio'/></disk>"
	}
	for _, vm := range []string{"steady", "deleted", "old-name"} {
		l.DefineQEMUWithDisk(t, vm, "app", filepath.Join(images, vm+".img"))
	}
	defineDomain(t, l, "lvm", "<disk type='block' device='disk'><driver name='qemu' type='raw'/><source dev='/dev/vg0/lvm'/><target dev='vda' bus='virtio'/></disk>")
	defineDomain(t, l, "iscsi", "<disk type='network' device='disk'><driver name='qemu' type='raw'/><source protocol='iscsi' name='iqn.2013-06.com.example:storage/1'><host name='192.0.2.10' port='3260'/></source><target dev='vda' bus='virtio'/></disk>")
	defineDomain(t, l, "rbd", "<disk type='network' device='disk'><driver name='qemu' type='raw'/><source protocol='rbd' name='rbd/vm-rbd-disk0'><host name='192.0.2.20' port='6789'/></source><target dev='vda' bus='virtio'/></disk>")
	defineDomain(t, l, "web", qcow2(filepath.Join(images, "web.qcow2")))
	defineDomain(t, l, "app", qcow2(filepath.Join(images, "app.qcow2")))

	kvm := filepath.Join(root, "kvm")
	night := time.Now().AddDate(0, 0, -1).Format("2006-01-02")
	runScript(t, "kvm_backup.sh", "VIRSH="+l.VirshCommand(), "SRC_LIBVIRT="+l.ConfigDir(), "SRC_IMAGES="+images,
		"SRC_NETWORK="+filepath.Join(root, "network-scripts"), "SRC_ETC="+filepath.Join(root, "etc"),
		"BACKUP_BASE="+kvm, "DATE="+night)
	set := filepath.Join(kvm, night)
	done := testenv.StepLineTimes(t, filepath.Join(set, "backup.log"), "[5/5]")[0]
	for _, vm := range []string{"steady", "lvm", "iscsi", "rbd", "web", "app", "deleted", "old-name"} {
		if _, err := os.Stat(filepath.Join(set, "vm_xml", vm+".xml")); err != nil {
			t.Fatalf("kvm_backup.sh did not dump %s's definition: %v", vm, err)
		}
	}
	// Today.
	l.MustVirsh("qemu:///system", "undefine", "deleted")
	l.MustVirsh("qemu:///system", "domrename", "old-name", "new-name")
	l.DefineQEMUWithDisk(t, "created", "app", filepath.Join(images, "created.img"))

	// file_glob: three nights, tonight's dump in progress.
	mysql := filepath.Join(root, "mysql")
	if err := os.Mkdir(mysql, 0o755); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var sizes []int64
	var nights []time.Time
	for i := 3; i >= 1; i-- {
		mt := now.Add(-time.Duration(i)*24*time.Hour + time.Hour).Truncate(time.Second)
		sizes = append(sizes, finishedDump(t, filepath.Join(mysql, fmt.Sprintf("db-%d.sql.gz", i)), mt))
		nights = append(nights, mt)
	}
	tonightsDump := filepath.Join(mysql, "db-0.sql.gz")
	finishDump := growingDump(t, tonightsDump)

	// vzdump: two archives of guest 100, tonight's .vma.dat being filled.
	pve := filepath.Join(root, "pve")
	if err := os.Mkdir(pve, 0o755); err != nil {
		t.Fatal(err)
	}
	stamp := func(t time.Time) string { return "vzdump-qemu-100-" + t.Format("2006_01_02-15_04_05") }
	var archives []int64
	var ends []time.Time
	for i := 2; i >= 1; i-- {
		start := now.Add(-time.Duration(i) * 24 * time.Hour).Truncate(time.Second)
		end := start.Add(30 * time.Second)
		archives = append(archives, finishedDump(t, filepath.Join(pve, stamp(start)+".vma.gz"), end))
		writeFile(t, filepath.Join(pve, stamp(start)+".log"), "INFO: Starting Backup of VM 100 (qemu)\nINFO: Finished Backup of VM 100 (00:00:30)\n", end)
		ends = append(ends, end)
	}
	tonight := now.Truncate(time.Second)
	writeFile(t, filepath.Join(pve, stamp(tonight)+".log"), "INFO: Starting Backup of VM 100 (qemu)\n", time.Time{})
	growingDump(t, filepath.Join(pve, stamp(tonight)+".vma.dat"))

	// new: a fresh mount, no set yet. moved: on the old path first.
	fresh := filepath.Join(root, "kvmhost")
	oldPath, newPath := filepath.Join(root, "old-nfs"), filepath.Join(root, "new-nfs")
	if err := os.Mkdir(fresh, 0o755); err != nil {
		t.Fatal(err)
	}
	oldTime, newTime := now.Add(-3*time.Hour).Truncate(time.Second), now.Add(-2*time.Hour).Truncate(time.Second)
	for _, d := range []string{oldPath, newPath} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	finishedDump(t, filepath.Join(oldPath, "db.sql.gz"), oldTime)
	newSize := finishedDump(t, filepath.Join(newPath, "db.sql.gz"), newTime)

	cfg := filepath.Join(root, "backup.yml")
	config := func(moved, mysqlQuiet string) string {
		return fmt.Sprintf(`jobs:
  - {name: kvm, type: dated_dir, path: %s, images_source: %s, max_age: 26h}
  - {name: mysql, type: file_glob, glob: '%s/*.sql.gz', max_age: 26h%s}
  - {name: pve, type: vzdump, path: %s, max_age: 26h}
  - {name: new, type: dated_dir, path: %s, set_pattern: '^kvmhost-(\d{4}-\d{2}-\d{2})$', success_from: contents, max_age: 8d}
  - {name: moved, type: file_glob, glob: '%s/*.sql.gz', max_age: 26h}
`, kvm, images, mysql, mysqlQuiet, pve, fresh, moved)
	}
	writeFile(t, cfg, config(oldPath, ""), time.Time{})
	e := testenv.StartExporterAsService(t, "--collector.disable-defaults", "--collector.backup", "--collector.libvirt",
		"--libvirt.socket="+l.SockRO, "--libvirt.uri=qemu:///system",
		"--backup.config-file="+cfg, "--backup.scan-interval=1h")
	var mf map[string]*dto.MetricFamily
	testenv.Eventually(t, time.Minute, "every job scanned and the VMs listed", func() (bool, string) {
		mf = testenv.Scrape(t, e.URL+"/metrics")
		return allScanned("kvm", "mysql", "pve", "new", "moved")(mf) && has("libvirt_domain_info", map[string]string{"domain": "created"})(mf), e.Output()
	})

	type series = expectedSeries
	check := func(what string, mf map[string]*dto.MetricFamily, cases []series) {
		t.Helper()
		checkSeries(t, what, mf, cases)
	}
	job := func(j string) map[string]string { return map[string]string{"backup_job": j} }
	vm := func(j, d string) map[string]string { return map[string]string{"backup_job": j, "domain": d} }
	dom := func(d string) map[string]string { return map[string]string{"domain": d} }

	// Items 7 and 8: which VM is defined now, which is backed up whole.
	var cases []series
	for _, c := range []struct {
		vm             string
		defined        bool
		missing, since float64 // -1: in no set
		size           int64
	}{
		{"steady", true, 0, done, 16 << 20},
		{"app", true, 0, done, fileSize(t, filepath.Join(set, "images", "app.qcow2")) + fileSize(t, filepath.Join(set, "images", "base-in.qcow2"))},
		{"lvm", true, 1, -1, 0},
		{"iscsi", true, 1, -1, 0},
		{"rbd", true, 1, -1, 0},
		{"web", true, 1, -1, 0}, // its template is outside the set
		{"deleted", false, 0, done, 16 << 20},
		{"old-name", false, 0, done, 16 << 20},
		{"new-name", true, -1, -1, 0},
		{"created", true, -1, -1, 0},
	} {
		info := -1.0
		if c.defined {
			info = 1
		}
		size := float64(c.size)
		if c.since == -1 {
			size = -1
		}
		cases = append(cases,
			series{"libvirt_domain_info", dom(c.vm), info},
			series{"vmhost_backup_vm_missing_disks", vm("kvm", c.vm), c.missing},
			series{"vmhost_backup_vm_last_success_timestamp_seconds", vm("kvm", c.vm), c.since},
			series{"vmhost_backup_vm_last_success_size_bytes", vm("kvm", c.vm), size})
	}
	cases = append(cases,
		series{"libvirt_domain_info_state", dom("steady"), 5}, // shut off, yet in the set (virsh list --all)
		series{"vmhost_backup_last_run_success", job("kvm"), 1},
		series{"vmhost_backup_last_success_timestamp_seconds", job("kvm"), done},
		series{"vmhost_backup_unreadable_paths", job("kvm"), 0},
		// Item 4: the dump being written is running, not the newest
		// success, not a set, not a size.
		series{"vmhost_backup_running", job("mysql"), 1},
		series{"vmhost_backup_sets", job("mysql"), 3},
		series{"vmhost_backup_last_run_success", job("mysql"), 1},
		series{"vmhost_backup_last_success_timestamp_seconds", job("mysql"), float64(nights[2].Unix())},
		series{"vmhost_backup_last_success_size_bytes", job("mysql"), float64(sizes[2])},
		series{"vmhost_backup_previous_success_size_bytes", job("mysql"), float64((sizes[0] + sizes[1]) / 2)},
		series{"vmhost_backup_running", job("pve"), 1},
		series{"vmhost_backup_sets", job("pve"), 2},
		series{"vmhost_backup_last_success_timestamp_seconds", job("pve"), float64(ends[1].Unix())},
		series{"vmhost_backup_vm_last_success_size_bytes", vm("pve", "100"), float64(archives[1])},
		series{"vmhost_backup_vm_previous_success_size_bytes", vm("pve", "100"), float64(archives[0])},
		// Item 6: no backup yet, cleanly (BackupNeverSucceeded's case).
		series{"vmhost_backup_scan_success", job("new"), 1},
		series{"vmhost_backup_sets", job("new"), 0},
		series{"vmhost_backup_running", job("new"), 0},
		series{"vmhost_backup_unreadable_paths", job("new"), 0},
		series{"vmhost_backup_last_success_timestamp_seconds", job("new"), -1},
		series{"vmhost_backup_last_run_success", job("new"), -1},
		series{"vmhost_backup_last_success_timestamp_seconds", job("moved"), float64(oldTime.Unix())},
	)
	check("as the service", mf, cases)
	if strings.Contains(e.Output(), "internal error") {
		t.Errorf("the exporter logged an internal error:\n%s", e.Output())
	}

	// Item 4, the end of the dump: gzip finishes. Quiet for
	// running_timeout (2s here, 15m by default: the reload that moves the
	// next job sets it), tonight's dump is the newest success with its
	// final size, and the previous size the median of the three nights.
	finishDump()
	final, err := os.Stat(tonightsDump)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the finished dump quiet for 2s", func() (bool, string) {
		return time.Since(final.ModTime()) > 2500*time.Millisecond, final.ModTime().String()
	})

	// Item 9: the fix of the path takes effect at once.
	writeFile(t, cfg, config(newPath, ", running_timeout: 2s"), time.Time{})
	reloaded := time.Now()
	if err := e.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	mf = waitFor(t, e.URL+"/metrics", "the moved job scanned on its new path", equals("vmhost_backup_last_success_timestamp_seconds", job("moved"), float64(newTime.Unix())))
	check("after the reload", mf, []series{
		{"vmhost_backup_config_last_reload_successful", nil, 1},
		{"vmhost_backup_scan_success", job("moved"), 1},
		{"vmhost_backup_sets", job("moved"), 1},
		{"vmhost_backup_last_success_size_bytes", job("moved"), float64(newSize)},
		{"vmhost_backup_running", job("mysql"), 0},
		{"vmhost_backup_sets", job("mysql"), 4},
		{"vmhost_backup_last_run_success", job("mysql"), 1},
		{"vmhost_backup_last_success_timestamp_seconds", job("mysql"), float64(final.ModTime().UnixNano()) / 1e9},
		{"vmhost_backup_last_success_size_bytes", job("mysql"), float64(final.Size())},
		{"vmhost_backup_previous_success_size_bytes", job("mysql"), float64(max(min(sizes[0], sizes[1]), min(max(sizes[0], sizes[1]), sizes[2])))},
	})
	if ts, _ := testenv.Value(mf, "vmhost_backup_scan_timestamp_seconds", job("moved")); ts < float64(reloaded.UnixNano())/1e9 {
		t.Errorf("moved: scanned at %v, before the reload at %v", ts, reloaded)
	}
}
