package libvirt

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// peerSeries is one line of testdata/peer-series.txt: a series name of
// inovex/prometheus-libvirt-exporter and the labels it carries.
type peerSeries struct {
	name   string
	labels []string
}

func readPeerSeries(t *testing.T) []peerSeries {
	t.Helper()
	f, err := os.Open("testdata/peer-series.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []peerSeries
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		out = append(out, peerSeries{name: fields[0], labels: fields[1:]})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) != 46 {
		t.Fatalf("testdata/peer-series.txt lists %d series, want the 46 its header counts", len(out))
	}
	return out
}

// peerSeriesMissing returns the lines of the list no series in mf
// satisfies: one of that name with every listed label, whose domain label
// (if listed) is domain and storage_pool label (if listed) is pool.
func peerSeriesMissing(mf map[string]*dto.MetricFamily, list []peerSeries, domain, pool string) []string {
	var missing []string
	for _, ps := range list {
		found := false
		for _, m := range mf[ps.name].GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			ok := true
			for _, l := range ps.labels {
				v, present := have[l]
				switch {
				case !present:
					ok = false
				case l == "domain" && v != domain, l == "storage_pool" && v != pool:
					ok = false
				}
			}
			if ok {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, strings.TrimSpace(ps.name+" "+strings.Join(ps.labels, ",")))
		}
	}
	return missing
}

// labelsOf returns the labels of the first series of name whose labels
// include want.
func labelsOf(mf map[string]*dto.MetricFamily, name string, want map[string]string) map[string]string {
	for _, m := range mf[name].GetMetric() {
		if !labelsMatchAll(m, want) {
			continue
		}
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		return have
	}
	return nil
}

func labelsMatchAll(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := want[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

// definePool defines and starts a directory storage pool over dir.
func definePool(t *testing.T, l *testenv.Libvirtd, name, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	l.MustVirsh("qemu:///system", "pool-define-as", name, "dir", "--target", dir)
	l.MustVirsh("qemu:///system", "pool-start", name)
}

// fillDisk replaces a guest's disk image with size bytes of data (not
// zeros: QEMU copies holes and zeros without reading them), so a backup
// of it has something to copy.
func fillDisk(t *testing.T, path string, size int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := bytes.Repeat([]byte("vmhost-backup-data\n"), (1<<20)/19+1)[:1<<20]
	for range size >> 20 {
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkBackupJob starts a push-mode backup of dom's vda (disk of diskSize
// bytes of data) to a file, slowed to 1 MiB/s so it lasts, and waits for
// the job series to show it: type 2 (unbounded: libvirt gives a backup
// no time remaining), its total the disk's size,
// progress under the total. After `virsh domjobabort` they fall back to
// type 0 and nothing to do, so they are read live, not kept. noJobs, a
// collector with NoJobInfo, shows the guest but no job series meanwhile.
func checkBackupJob(t *testing.T, l *testenv.Libvirtd, reg, noJobs prometheus.Gatherer, dom, dir string, diskSize int) {
	target := filepath.Join(dir, dom+"-backup.raw")
	xmlPath := filepath.Join(dir, dom+"-backup.xml")
	doc := fmt.Sprintf(`<domainbackup><disks><disk name='vda' type='file'><target file='%s'/><driver type='raw'/></disk></disks></domainbackup>`, target)
	if err := os.WriteFile(xmlPath, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	// The speed can only be set once the job runs: both commands go in
	// one virsh run, a millisecond apart, while QEMU copies the first of
	// the disk's chunks (64 of 1 MiB at once). A backup that still
	// copied the whole disk before is taken again.
	slowed := false
	for attempt := 0; attempt < 3 && !slowed; attempt++ {
		_ = os.Remove(target)
		out, err := l.Virsh("qemu:///system", fmt.Sprintf("backup-begin %s %s; blockjob %s vda --bandwidth 1", dom, xmlPath, dom))
		if err != nil {
			t.Logf("attempt %d: the backup could not be slowed (over already?): %v %s", attempt+1, err, out)
			testenv.Eventually(t, time.Minute, "the backup job over", func() (bool, string) {
				out, _ := l.Virsh("qemu:///system", "domjobinfo", dom)
				return strings.Contains(out, "None"), out
			})
			continue
		}
		ji, _ := l.Virsh("qemu:///system", "domjobinfo", dom)
		if slowed = strings.Contains(ji, "Backup"); !slowed {
			t.Logf("attempt %d: the backup was over before it was slowed: %s", attempt+1, ji)
		}
	}
	if !slowed {
		t.Fatalf("three backups of %d MiB were over before virsh blockjob could slow them", diskSize>>20)
	}
	d := map[string]string{"domain": dom}
	testenv.Eventually(t, time.Minute, "the backup in the job series", func() (bool, string) {
		mf := gather(t, reg)
		v := map[string]float64{}
		for _, n := range []string{"type", "data_total_bytes", "data_processed_bytes", "data_remaining_bytes", "file_total_bytes", "file_processed_bytes", "memory_total_bytes", "time_elapsed_seconds"} {
			v[n], _ = testenv.Value(mf, "libvirt_domain_job_info_"+n, d)
		}
		ok := v["type"] == 2 && v["data_total_bytes"] == float64(diskSize) && v["file_total_bytes"] == v["data_total_bytes"] &&
			v["data_processed_bytes"] > 0 && v["data_processed_bytes"] < v["data_total_bytes"] &&
			v["data_remaining_bytes"] == v["data_total_bytes"]-v["data_processed_bytes"] &&
			v["file_processed_bytes"] == v["data_processed_bytes"] && v["memory_total_bytes"] == 0 && v["time_elapsed_seconds"] > 0
		ji, _ := l.Virsh("qemu:///system", "domjobinfo", dom)
		present := mf["libvirt_domain_job_info_type"] != nil
		return ok, fmt.Sprintf("%v (job series present: %v); virsh domjobinfo: %s", v, present, ji)
	})
	// The backup still runs (slowed to 1 MiB/s, aborted below).
	mf := gather(t, noJobs)
	if v, ok := testenv.Value(mf, "libvirt_domain_info_state", d); !ok || v != 1 {
		t.Errorf("without job info: %s state %v (present %v), want 1 (running)", dom, v, ok)
	}
	for name := range mf {
		if strings.HasPrefix(name, "libvirt_domain_job_info_") {
			t.Errorf("without job info (--no-libvirt.job-info) the collector still exports %s", name)
		}
	}
	if ji, _ := l.Virsh("qemu:///system", "domjobinfo", dom); !strings.Contains(ji, "Backup") {
		t.Errorf("the backup was over before the collector without job info was asked: %s", ji)
	}
	l.MustVirsh("qemu:///system", "domjobabort", dom)
	testenv.Eventually(t, time.Minute, "no job after domjobabort", func() (bool, string) {
		mf := gather(t, reg)
		typ, ok := testenv.Value(mf, "libvirt_domain_job_info_type", d)
		total, _ := testenv.Value(mf, "libvirt_domain_job_info_data_total_bytes", d)
		return ok && typ == 0 && total == 0, fmt.Sprintf("type %v (present %v), data total %v", typ, ok, total)
	})
}

// checkPeerValues checks what the peer's series say for a running guest
// without a job (running) and a shut-off one (off), beyond their names.
func checkPeerValues(t *testing.T, mf map[string]*dto.MetricFamily, running, off, disk string) {
	d := map[string]string{"domain": running}
	for name, want := range map[string]float64{
		"libvirt_domain_timed_out":                          0,
		"libvirt_domain_memory_stats_current_balloon_bytes": 64 << 20,
		"libvirt_domain_memory_stats_maximum_bytes":         64 << 20,
		"libvirt_domain_job_info_type":                      0,
		"libvirt_domain_job_info_data_total_bytes":          0,
		"libvirt_domain_job_info_time_elapsed_seconds":      0,
	} {
		if v := mustValue(t, mf, name, d); v != want {
			t.Errorf("%s{domain=%q} = %v, want %v", name, running, v, want)
		}
	}
	// No guest OS reports memory use: NaN, as the peer, never a number.
	if v := mustValue(t, mf, "libvirt_domain_memory_stats_used_percent", d); !math.IsNaN(v) {
		t.Errorf("used_percent of %s, whose guest reports no memory use, = %v, want NaN", running, v)
	}
	info := labelsOf(mf, "libvirt_domain_info", d)
	if info["os_type"] != "hvm" || info["os_type_arch"] != "x86_64" || !strings.HasPrefix(info["os_type_machine"], "pc-i440fx-") {
		t.Errorf("libvirt_domain_info of %s = %v, want os_type hvm, arch x86_64, machine pc-i440fx-* (the live XML's expanded machine type)", running, info)
	}
	blk := labelsOf(mf, "libvirt_domain_block_stats_info", map[string]string{"domain": running, "target_device": "vda"})
	want := map[string]string{"disk_type": "file", "driver_name": "qemu", "driver_type": "raw", "target_bus": "virtio",
		"driver_cache": "", "driver_discard": "", "serial": "", "source_protocol": "", "source_file": disk}
	for k, v := range want {
		if blk[k] != v {
			t.Errorf("libvirt_domain_block_stats_info of %s vda: %s = %q, want %q (all: %v)", running, k, blk[k], v, blk)
		}
	}

	o := map[string]string{"domain": off}
	if v := mustValue(t, mf, "libvirt_domain_timed_out", o); v != 0 {
		t.Errorf("timed_out of the shut-off %s = %v, want 0", off, v)
	}
	for _, name := range []string{"libvirt_domain_job_info_type", "libvirt_domain_memory_stats_current_balloon_bytes", "libvirt_domain_memory_stats_used_percent"} {
		if v, ok := testenv.Value(mf, name, o); ok {
			t.Errorf("%s{domain=%q} = %v for a shut-off domain; the peer reports only running ones", name, off, v)
		}
	}
}
