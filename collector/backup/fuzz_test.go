package backup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The fuzz targets feed arbitrary bytes to every parser; the seed corpora
// are real outputs (kvm_backup.sh and rclone logs from the tests, vzdump
// names and logs, the example config). `make fuzz` runs each for a while;
// `go test` runs the seeds.

func seedFile(f *testing.F, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
}

func FuzzConfig(f *testing.F) {
	seedFile(f, "../../examples/backup.yml")
	files, _ := filepath.Glob("testdata/*bad*.yml")
	for _, p := range files {
		seedFile(f, p)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, problems := parseConfig(data)
		if len(problems) == 0 {
			for _, j := range cfg.Jobs {
				if j.Name == "" || j.MaxAge <= 0 || scanFuncs[j.Type] == nil {
					t.Fatalf("accepted an invalid job: %+v", j)
				}
			}
		}
	})
}

func fuzzLog(f *testing.F, typ string, seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "log")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		j := Job{Name: "f", Type: typ, LogFile: p, MaxAge: Duration(time.Hour)}
		j.setDefaults()
		d, err := scanFuncs[typ](j, time.Now(), time.UTC, nil)
		if err != nil {
			return
		}
		if d.LastSuccess != nil && !d.LastSuccess.Success {
			t.Fatal("a failed run reported as last success")
		}
		if d.Running && (d.LastRun == nil || d.LastRun.Finished) {
			t.Fatal("running without an unfinished newest run")
		}
	})
}

func FuzzRcloneLog(f *testing.F) {
	fuzzLog(f, TypeRcloneLog, goodRcloneLog,
		"2026/11/25 12:31:47 ERROR : c.txt: Failed to copy: permission denied\n2026/11/25 12:31:47 INFO  : \nTransferred:   \t    4.889 KiB / 4.889 KiB, 100%, 0 B/s, ETA -\nErrors:                 1 (retrying may help)\nChecks:                 2 / 2, 100%\nTransferred:            2 / 2, 100%\nElapsed time:         0.0s\n\n2026/11/25 12:31:47 Failed to sync: permission denied\nBackup completed at Wed Nov 25 12:31:47 UTC 2026\n",
		"Backup completed at garbage\n", "\x00\xff\r\n")
}

func FuzzRestoreLog(f *testing.F) {
	fuzzLog(f, TypeRestoreLog,
		"2025-05-28 02:00:00 - === KVM ホスト復元開始 ===\n2025-05-28 02:00:01 - [1/4] libvirt設定を復元中...\n2025-05-28 02:10:00 - 復元完了。必要であれば再起動してください。\n",
		"2025-05-28 02:00:00 - === start ===\r\n2025-13-45 99:99:99 - x\n")
}

func FuzzStepLog(f *testing.F) {
	f.Add([]byte("2025-05-28 02:00:01 - === KVM ホストバックアップ開始 ===\n2025-05-28 02:00:01 - [1/5] libvirt設定を保存中...\n2025-05-28 03:10:00 - [5/5] バックアップ完了しました\n"))
	f.Add([]byte("2025-05-28 02:00:01 - [3/5] 仮想ディスクイメージをバックアップ中...\n"))
	// A reboot cut the last line short, or left NUL bytes; the next run
	// appended after it. A script whose output goes to its log as well.
	f.Add([]byte("2025-05-28 02:00:01 - === KVM ホストバックアップ開始 ===\n2025-05-28 02:00:02 - [2/5] 各VM2025-05-29 02:00:01 - === KVM ホストバックアップ開始 ===\n2025-05-29 03:00:00 - [5/5] バックアップ完了しました\n"))
	f.Add([]byte("2025-05-28 02:00:02 - [2/5] 各VMの定義\n\x00\x00\x002025-05-29 02:00:01 - === start ===\n"))
	f.Add([]byte("2025-05-28 02:00:01 - === start ===\n2025-05-28 02:00:01 - === start ===\nrsync error: some files/attrs were not transferred (code 23)\n2025-05-28 02:00:09 - [5/5] done\n2025-05-28 02:00:09 - [5/5] done\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "backup.log")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		j := Job{Type: TypeDatedDir}
		j.setDefaults()
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		log, err := readStepRuns([]logPart{{Name: p, R: f}}, j, time.UTC, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if len(log.Runs) > log.Lines {
			t.Fatalf("%d runs from %d step lines", len(log.Runs), log.Lines)
		}
		for i, r := range log.Runs {
			if i < len(log.Runs)-1 && !r.Finished {
				t.Fatalf("run %d of %d is unfinished though a newer run started", i, len(log.Runs))
			}
			if r.Success && !r.Finished {
				t.Fatal("a successful run is not finished")
			}
			// Every verdict is explained: a failed run says why, a
			// success or a run still going says nothing.
			if failed := r.Finished && !r.Success; failed != (r.Reason != "") {
				t.Fatalf("run %d: finished %v, success %v, reason %q", i, r.Finished, r.Success, r.Reason)
			}
			if r.StartRef.Line == 0 || r.EndRef.Line < r.StartRef.Line {
				t.Fatalf("run %d: lines %d to %d", i, r.StartRef.Line, r.EndRef.Line)
			}
		}
	})
}

func FuzzVzdumpNames(f *testing.F) {
	f.Add("vzdump-qemu-100-2025_05_28-02_00_01.vma.zst", "INFO: Finished Backup of VM 100 (00:00:17)\n")
	f.Add("vzdump-lxc-101-2025_05_28-02_01_00.log", "ERROR: Backup of VM 101 failed - command 'tar' failed: exit code 2\n")
	f.Add("vzdump-qemu-102-2025_05_28-02_02_00.vma.dat", "INFO: Starting Backup of VM 102 (qemu)\n")
	f.Fuzz(func(t *testing.T, name, log string) {
		if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." || len(name) > 200 {
			return
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			return
		}
		if m := vzdumpName.FindStringSubmatch(name); m != nil {
			_ = os.WriteFile(filepath.Join(dir, m[1]+".log"), []byte(log), 0o644)
		}
		d, err := scanVzdump(Job{Path: dir, RunningTimeout: Duration(time.Hour)}, time.Now(), time.UTC, nil)
		if err != nil {
			t.Fatal(err)
		}
		if d.Sets > 1 {
			t.Fatalf("%d sets from one archive", d.Sets)
		}
	})
}

// BenchmarkRcloneLogParse reports the parser's throughput on a real-format
// rclone log (b.SetBytes: MB/s).
func BenchmarkRcloneLogParse(b *testing.B) {
	var sb strings.Builder
	for sb.Len() < 8<<20 {
		sb.WriteString("2025/05/28 02:00:01 INFO  : data/file-000123.bin: Copied (new)\n")
		if sb.Len()%50 == 0 {
			sb.WriteString(goodRcloneLog)
		}
	}
	sb.WriteString(goodRcloneLog)
	p := filepath.Join(b.TempDir(), "rclone.log")
	if err := os.WriteFile(p, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	j := Job{Name: "b", Type: TypeRcloneLog, LogFile: p}
	j.setDefaults()
	b.SetBytes(int64(sb.Len()))
	for b.Loop() {
		if _, err := scanRcloneLog(j, time.Now(), time.UTC, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStepLogParse: the same for the operator's "date - message" logs.
func BenchmarkStepLogParse(b *testing.B) {
	var sb strings.Builder
	for sb.Len() < 8<<20 {
		sb.WriteString("2025-05-28 02:00:01 - === KVM ホスト復元開始 ===\n2025-05-28 02:00:02 - [1/4] libvirt設定を復元中...\n2025-05-28 02:10:00 - 復元完了。必要であれば再起動してください。\n")
	}
	p := filepath.Join(b.TempDir(), "restore.log")
	if err := os.WriteFile(p, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	j := Job{Name: "b", Type: TypeRestoreLog, LogFile: p}
	j.setDefaults()
	b.SetBytes(int64(sb.Len()))
	for b.Loop() {
		if _, err := scanRestoreLog(j, time.Now(), time.UTC, nil); err != nil {
			b.Fatal(err)
		}
	}
}
