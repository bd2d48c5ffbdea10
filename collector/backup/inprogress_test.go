package backup

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// dumpWait bounds each wait for gzip in these tests.
const dumpWait = 10 * time.Second

// makeDump writes a finished dump of chunks chunks with gzip and dates it.
func makeDump(t *testing.T, path string, chunks int, mtime time.Time) int64 {
	t.Helper()
	return testenv.WriteGzipDump(t, path, chunks, mtime, dumpWait)
}

func birthTime(t *testing.T, path string) float64 {
	t.Helper()
	out, err := exec.Command("stat", "-c", "%W %Y", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(out))
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil || v == 0 { // no birth time on this file system
		v, _ = strconv.ParseFloat(f[1], 64)
	}
	return v
}

func median3(a, b, c int64) int64 { return max(min(a, b), min(max(a, b), c)) }

// TestFileGlobDumpInProgress: three nights of 2 MiB dumps, then tonight's
// dump is being written by gzip into its final name, a quarter fed.
// While gzip writes, and until the file has been quiet for running_timeout,
// the dump is running: not a fresh last_success, not a set, and not a
// size, so BackupSizeDropped has nothing to compare (the half-written file
// used to be the newest success: a quarter of the usual size, a size drop
// every long night). Once quiet for running_timeout it is the newest
// success with its final size.
func TestFileGlobDumpInProgress(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	var sizes []int64
	var times []time.Time
	for i, night := range []string{"2025-05-25", "2025-05-26", "2025-05-27"} {
		mt := now.Add(time.Duration(i-3) * 24 * time.Hour).Truncate(time.Second)
		sizes = append(sizes, makeDump(t, filepath.Join(dir, "db-"+night+".sql.gz"), 32, mt))
		times = append(times, mt)
	}
	job := Job{Name: "mysql-dumps", Type: TypeFileGlob, Glob: filepath.Join(dir, "*.sql.gz")}
	j := map[string]string{"backup_job": "mysql-dumps"}
	expect := func(when string, mf map[string]float64, got func(string) float64) {
		t.Helper()
		for name, want := range mf {
			if v := got(name); v != want {
				t.Errorf("%s: %s = %v, want %v", when, name, v, want)
			}
		}
	}
	before := map[string]float64{
		"vmhost_backup_scan_success":                   1,
		"vmhost_backup_sets":                           3,
		"vmhost_backup_last_run_success":               1,
		"vmhost_backup_last_success_timestamp_seconds": float64(times[2].Unix()),
		"vmhost_backup_last_success_size_bytes":        float64(sizes[2]),
		"vmhost_backup_previous_success_size_bytes":    float64((sizes[0] + sizes[1]) / 2),
		"vmhost_backup_oldest_set_timestamp_seconds":   float64(times[0].Unix()),
	}

	tonight := filepath.Join(dir, "db-2025-05-28.sql.gz")
	dump := testenv.StartGzipDump(t, tonight, dumpWait)
	dump.Write(8, testenv.GzipDumpChunk)
	mf := scan(t, time.Now(), job)
	partial, err := os.Stat(tonight)
	if err != nil {
		t.Fatal(err)
	}
	if partial.Size()*2 >= sizes[2] {
		t.Fatalf("precondition: the dump in progress (%d bytes) should be under half the usual size %d", partial.Size(), sizes[2])
	}
	running := map[string]float64{"vmhost_backup_running": 1, "vmhost_backup_last_run_timestamp_seconds": birthTime(t, tonight)}
	for k, v := range before {
		running[k] = v
	}
	expect("dump in progress", running, func(name string) float64 {
		v := val(t, mf, name, j)
		if name == "vmhost_backup_last_run_timestamp_seconds" {
			v = float64(int64(v)) // stat prints whole seconds
		}
		return v
	})

	dump.Write(24, partial.Size()+1) // it really was in progress
	final := dump.Finish()

	// Done, but written moments ago: not quiet for running_timeout yet.
	mf = scan(t, time.Now(), job)
	expect("just finished", running, func(name string) float64 {
		v := val(t, mf, name, j)
		if name == "vmhost_backup_last_run_timestamp_seconds" {
			v = float64(int64(v))
		}
		return v
	})

	quiet := final.ModTime().Add(time.Duration(withDefaults(job).RunningTimeout) + time.Second)
	mf = scan(t, quiet, job)
	expect("quiet for running_timeout", map[string]float64{
		"vmhost_backup_running":                        0,
		"vmhost_backup_sets":                           4,
		"vmhost_backup_last_run_success":               1,
		"vmhost_backup_last_success_timestamp_seconds": ts(final.ModTime()),
		"vmhost_backup_last_success_size_bytes":        float64(final.Size()),
		"vmhost_backup_previous_success_size_bytes":    float64(median3(sizes[0], sizes[1], sizes[2])),
	}, func(name string) float64 { return val(t, mf, name, j) })
}

// TestFileGlobRunningTimeout: the default quiet time of a file_glob job
// is 15 minutes, and running_timeout in the config changes it.
func TestFileGlobRunningTimeout(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want time.Duration
	}{
		{"", 15 * time.Minute},
		{"    running_timeout: 2h\n", 2 * time.Hour},
	} {
		cfg, problems := parseConfig([]byte("jobs:\n  - name: d\n    type: file_glob\n    glob: /backup/*.gz\n    max_age: 26h\n" + tc.yaml))
		if len(problems) > 0 {
			t.Fatalf("%q: %v", tc.yaml, problems)
		}
		if got := time.Duration(cfg.Jobs[0].RunningTimeout); got != tc.want {
			t.Errorf("%q: running_timeout = %s, want %s", tc.yaml, got, tc.want)
		}
	}
}

// TestVzdumpArchiveInProgress: guest 100 has two nightly archives; tonight
// vzdump's compressor is filling <basename>.vma.dat. The guest's last
// success and size stay the previous archive's (not the .dat's), the job
// is running, and when vzdump renames the .dat to the archive and logs
// "Finished Backup", the new archive is the last success.
func TestVzdumpArchiveInProgress(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	stamp := func(t time.Time) string { return t.Format("2006_01_02-15_04_05") }
	var sizes []int64
	var ends []time.Time
	for i := range 2 {
		start := now.Add(time.Duration(i-2) * 24 * time.Hour).Truncate(time.Second)
		base := filepath.Join(dir, "vzdump-qemu-100-"+stamp(start))
		end := start.Add(30 * time.Second)
		sizes = append(sizes, makeDump(t, base+".vma.gz", 32, end))
		ends = append(ends, end)
		if err := os.WriteFile(base+".log", []byte("INFO: Starting Backup of VM 100 (qemu)\nINFO: Finished Backup of VM 100 (00:00:30)\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(base+".log", end, end); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now().Truncate(time.Second)
	base := filepath.Join(dir, "vzdump-qemu-100-"+stamp(start))
	if err := os.WriteFile(base+".log", []byte("INFO: Starting Backup of VM 100 (qemu)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dump := testenv.StartGzipDump(t, base+".vma.dat", dumpWait)
	dump.Write(8, testenv.GzipDumpChunk)

	job := Job{Name: "pve", Type: TypeVzdump, Path: dir}
	j := map[string]string{"backup_job": "pve"}
	g := map[string]string{"backup_job": "pve", "domain": "100"}
	mf := scan(t, time.Now(), job)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"vmhost_backup_running", j, 1},
		{"vmhost_backup_sets", j, 2},
		{"vmhost_backup_last_run_success", j, 1},
		{"vmhost_backup_last_run_timestamp_seconds", j, float64(start.Unix())},
		{"vmhost_backup_last_success_timestamp_seconds", j, float64(ends[1].Unix())},
		{"vmhost_backup_last_success_size_bytes", j, float64(sizes[1])},
		{"vmhost_backup_vm_last_success_timestamp_seconds", g, float64(ends[1].Unix())},
		{"vmhost_backup_vm_last_success_size_bytes", g, float64(sizes[1])},
		{"vmhost_backup_vm_previous_success_size_bytes", g, float64(sizes[0])},
		{"vmhost_backup_vm_last_run_success", g, 1},
	} {
		if v := val(t, mf, c.name, c.labels); v != c.want {
			t.Errorf("archive in progress: %s%v = %v, want %v", c.name, c.labels, v, c.want)
		}
	}

	dump.Write(24, testenv.GzipDumpChunk+1)
	dump.Finish()
	if err := os.Rename(base+".vma.dat", base+".vma.gz"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(base+".log", []byte("INFO: Starting Backup of VM 100 (qemu)\nINFO: Finished Backup of VM 100 (00:00:02)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(base + ".vma.gz")
	if err != nil {
		t.Fatal(err)
	}
	mf = scan(t, time.Now(), job)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"vmhost_backup_running", j, 0},
		{"vmhost_backup_sets", j, 3},
		{"vmhost_backup_last_run_success", j, 1},
		{"vmhost_backup_last_success_timestamp_seconds", j, float64(start.Add(2 * time.Second).Unix())},
		{"vmhost_backup_vm_last_success_size_bytes", g, float64(info.Size())},
		{"vmhost_backup_vm_previous_success_size_bytes", g, float64((sizes[0] + sizes[1]) / 2)},
	} {
		if v := val(t, mf, c.name, c.labels); v != c.want {
			t.Errorf("archive finished: %s%v = %v, want %v", c.name, c.labels, v, c.want)
		}
	}
}

// TestFileGlobDumpRewrittenInPlace: the dump overwrites the same name
// every night (gzip > all.sql.gz). While tonight's dump runs, no finished
// dump is on disk: the scan still succeeds (it is not the "every set
// gone" of an unmounted disk, which fails a scan), the job is running,
// and the last success known, last night's, stays the job's and keeps
// ageing instead of vanishing (which would read as "never succeeded").
func TestFileGlobDumpRewrittenInPlace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "all.sql.gz")
	lastNight := time.Now().Add(-20 * time.Hour).Truncate(time.Second)
	size := makeDump(t, path, 32, lastNight)
	job := withDefaults(Job{Name: "all", Type: TypeFileGlob, Glob: filepath.Join(dir, "*.sql.gz")})
	c := New(&Config{Jobs: []Job{job}}, Options{}, testLogger())
	j := map[string]string{"backup_job": "all"}
	c.ScanOnce(context.Background())
	mf := gatherFrom(t, c)
	for name, want := range map[string]float64{
		"vmhost_backup_scan_success":                   1,
		"vmhost_backup_running":                        0,
		"vmhost_backup_sets":                           1,
		"vmhost_backup_last_success_timestamp_seconds": float64(lastNight.Unix()),
		"vmhost_backup_last_success_size_bytes":        float64(size),
	} {
		if v := val(t, mf, name, j); v != want {
			t.Errorf("last night's dump: %s = %v, want %v", name, v, want)
		}
	}

	dump := testenv.StartGzipDump(t, path, dumpWait) // truncates last night's dump
	dump.Write(8, testenv.GzipDumpChunk)
	c.ScanOnce(context.Background())
	mf = gatherFrom(t, c)
	for name, want := range map[string]float64{
		"vmhost_backup_scan_success":                   1,
		"vmhost_backup_running":                        1,
		"vmhost_backup_sets":                           0,
		"vmhost_backup_last_success_timestamp_seconds": float64(lastNight.Unix()),
		"vmhost_backup_last_success_size_bytes":        float64(size),
	} {
		if v := val(t, mf, name, j); v != want {
			t.Errorf("tonight's dump in progress: %s = %v, want %v", name, v, want)
		}
	}
	dump.Finish()
}
