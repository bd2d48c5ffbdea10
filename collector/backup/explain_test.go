package backup

import (
	"bytes"
	"context"
	"fmt"
	htmltemplate "html/template"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// explainTrees builds, with the operator's scripts, a dated_dir job whose
// newest run was killed in step 2 (after two good sets), its mirror made
// with rsync after the first good set (a sync job that copies it), a
// restore log of a successful restore of the second good set, and a
// vzdump directory where guest 101's dump failed. The second good set
// also holds two VM definitions whose names are HTML and not UTF-8, as a
// file name may be. It returns the jobs and the time to judge them at
// (after the killed run's timeout).
func explainTrees(t *testing.T) (jobs []Job, now time.Time) {
	t.Helper()
	_, base, script, env := kvmBackupScript(t)
	runCmd(t, append(env, "DATE=2025-05-26"), script)
	mirror := filepath.Join(t.TempDir(), "kvm")
	runCmd(t, nil, "rsync", "-a", base+"/", mirror+"/")
	// The logs have whole seconds: the second set must end in a later one.
	first := testenv.StepLineTime(t, filepath.Join(base, "2025-05-26", "backup.log"), "[5/5]")
	testenv.Eventually(t, 5*time.Second, "the next second", func() (bool, string) {
		return float64(time.Now().Unix()) > first, time.Now().String()
	})
	runCmd(t, append(env, "DATE=2025-05-27"), script)
	good := filepath.Join(base, "2025-05-27")
	for _, name := range []string{"<script>alert(1)<", "bad\xff\xfename"} {
		xml, err := os.ReadFile(filepath.Join(good, "vm_xml", "vm-a.xml"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(good, "vm_xml", name+".xml"), xml, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	killGroup(startHanging(t, append(env, "DATE=2025-05-28"), script, filepath.Join(base, "2025-05-28", "backup.log"), "[2/5]"))

	restore, renv, restoreLog, _ := restoreScript(t, env, good)
	runCmd(t, renv, restore)

	// vzdump as Proxmox leaves it (REQUIREMENTS §1): 100 finished, 101
	// failed with its ERROR line and no archive.
	pve := t.TempDir()
	stamp := time.Now().Add(-time.Hour)
	name := func(id string) string { return "vzdump-qemu-" + id + "-" + stamp.Format("2006_01_02-15_04_05") }
	day := stamp.Format("2006-01-02 15:04:05")
	for path, content := range map[string]string{
		name("100") + ".vma.zst": strings.Repeat("z", 4096),
		name("100") + ".log":     day + " INFO: Starting Backup of VM 100 (qemu)\n" + day + " INFO: archive file size: 4KB\n" + day + " INFO: Finished Backup of VM 100 (00:00:17)\n",
		name("101") + ".log":     day + " INFO: Starting Backup of VM 101 (qemu)\n" + day + " ERROR: Backup of VM 101 failed - no space left on device\n",
	} {
		if err := os.WriteFile(filepath.Join(pve, path), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A dump as mysqldump | gzip leaves it, an hour old.
	dumps := t.TempDir()
	dump := filepath.Join(dumps, "all.sql.gz")
	if err := os.WriteFile(dump, []byte("dump"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(dump, stamp, stamp); err != nil {
		t.Fatal(err)
	}
	return []Job{
		{Name: "kvm-host", Type: TypeDatedDir, Path: base, MaxAge: Duration(26 * time.Hour)},
		{Name: "mysql-dumps", Type: TypeFileGlob, Glob: filepath.Join(dumps, "*.sql.gz"), MaxAge: Duration(26 * time.Hour)},
		{Name: "restore-test", Type: TypeRestoreLog, LogFile: restoreLog, MaxAge: Duration(35 * 24 * time.Hour)},
		{Name: "pve", Type: TypeVzdump, Path: pve, MaxAge: Duration(26 * time.Hour)},
		{Name: "nas", Type: TypeDatedDir, Path: mirror, Copies: "kvm-host", MaxAge: Duration(26 * time.Hour)},
	}, time.Now().Add(2 * time.Hour)
}

// first is when the first good set of explainTrees ended: the copy the
// mirror (the last job) holds.
func first(t *testing.T, jobs []Job) float64 {
	t.Helper()
	return testenv.StepLineTime(t, filepath.Join(jobs[len(jobs)-1].Path, "2025-05-26", "backup.log"), "[5/5]")
}

// TestExplainOnRealTrees: /backups and --backup.explain say which job
// failed and why, quote the lines a verdict rests on, and show every VM's
// row; names read from disk are shown safely.
func TestExplainOnRealTrees(t *testing.T) {
	jobs, now := explainTrees(t)
	var logBuf bytes.Buffer
	for i := range jobs {
		jobs[i].setDefaults()
	}
	c := New(&Config{Jobs: jobs}, Options{Now: func() time.Time { return now }}, slog.New(slog.NewTextHandler(&logBuf, nil)))
	c.ScanOnce(context.Background())
	c.ScanOnce(context.Background())

	snap := now.Add(-72 * time.Hour)
	ex := c.Explain(ExplainOptions{HostVMs: map[string]HostVM{"vm-a": {OldestSnapshot: snap}, "vm-new": {}}})
	if want := []string{"kvm-host", "pve"}; !slices.Equal(ex.Failed, want) {
		t.Errorf("failed jobs = %v, want %v", ex.Failed, want)
	}
	byName := map[string]JobView{}
	for _, j := range ex.Jobs {
		byName[j.Name] = j
	}
	kvm, restore, pve := byName["kvm-host"], byName["restore-test"], byName["pve"]
	if kvm.Verdict != VerdictFailed || restore.Verdict != VerdictOK || pve.Verdict != VerdictFailed {
		t.Fatalf("verdicts: kvm-host %q, restore-test %q, pve %q", kvm.Verdict, restore.Verdict, pve.Verdict)
	}
	// The killed run: the step log's parser says in which step it stopped
	// and how it is known to be over (its set has not changed for
	// running_timeout since it wrote [2/5], or a second later: mkdir
	// vm_xml), and quotes its first and last lines: lines 1 and 3 of the
	// set's backup.log.
	base := jobs[0].Path
	killedLog, goodLog := filepath.Join(base, "2025-05-28", "backup.log"), filepath.Join(base, "2025-05-27", "backup.log")
	killedAt := testenv.StepLineTime(t, killedLog, "[2/5]")
	var reasons []string
	for _, at := range []float64{killedAt, killedAt + 1} {
		reasons = append(reasons, "killed at step 2 of 5 (no end line); nothing written for longer than the running timeout (1h) after "+
			time.Unix(int64(at), 0).Format("2006-01-02 15:04:05"))
	}
	if kvm.LastRun == nil || kvm.LastRun.State != "failed" || !slices.Contains(reasons, kvm.LastRun.Reason) || kvm.Why != "the newest finished run failed: "+kvm.LastRun.Reason {
		t.Errorf("kvm-host: newest run %+v, why %q: want a failed run, reason one of %q", kvm.LastRun, kvm.Why, reasons)
	}
	quoted := func(who string, ref *RefView, file string, line int, text string) {
		t.Helper()
		if ref == nil || ref.File != file || ref.Line != line || !strings.HasSuffix(ref.Text, " - "+text) || len(ref.Text) != len("2006-01-02 15:04:05 - ")+len(text) {
			t.Errorf("%s: %+v, want line %d of %s: <time> - %s", who, ref, line, file, text)
		}
	}
	if r := kvm.LastRun; r != nil {
		quoted("the killed run's start line", r.StartRef, killedLog, 1, "=== KVM ホストバックアップ開始 ===")
		quoted("the killed run's last line", r.EndRef, killedLog, 3, "[2/5] 各VMの定義（XML）を保存中...")
	}
	if r := kvm.LastSuccess; r == nil || r.State != "succeeded" || r.Reason != "" {
		t.Errorf("kvm-host: the previous success is missing: %+v", r)
	} else {
		quoted("the previous success's start line", r.StartRef, goodLog, 1, "=== KVM ホストバックアップ開始 ===")
		quoted("the previous success's end line", r.EndRef, goodLog, 6, "[5/5] バックアップ完了しました")
	}
	if r := restore.LastRun; r == nil {
		t.Errorf("restore-test: no newest run")
	} else {
		quoted("the restore test's start line", r.StartRef, jobs[2].LogFile, 1, "=== KVM ホスト復元開始 ===")
		quoted("the restore test's end line", r.EndRef, jobs[2].LogFile, 6, "復元完了。必要であれば再起動してください。")
	}
	// vzdump: the failed guest's ERROR line, quoted with its file and line.
	if r := pve.LastRun; r == nil || r.EndRef == nil || r.EndRef.Line != 2 || !strings.HasSuffix(r.EndRef.File, ".log") ||
		!strings.Contains(r.EndRef.Text, "ERROR: Backup of VM 101 failed - no space left on device") ||
		r.Reason != "guest 101: Backup of VM 101 failed - no space left on device" {
		t.Errorf("pve: newest run %+v (end ref %+v)", r, r.EndRef)
	}

	rows := map[string]VMRow{}
	for _, r := range kvm.VMs {
		rows[r.Domain] = r
	}
	if len(kvm.VMs) != 7 {
		t.Errorf("kvm-host rows: %+v, want vm-a to vm-d, vm-new and the two odd names", kvm.VMs)
	}
	if r := rows["vm-a"]; r.LastCopy == "" || r.Stale || r.OldestSnapshot == "" || r.RestoreJob != "restore-test" || r.NotOnHost {
		t.Errorf("vm-a row: %+v", r)
	}
	if r := rows["vm-c"]; r.MissingCount != 1 || len(r.MissingDisks) != 1 || !strings.Contains(r.MissingDisks[0], "/srv/vms/vm-c.img is outside") || r.LastCopy != "" || !r.Stale {
		t.Errorf("vm-c row (disk outside the images directory): %+v", r)
	}
	if r := rows["vm-new"]; !r.NeverBackedUp || r.LastCopy != "" {
		t.Errorf("vm-new row (defined, never backed up): %+v", r)
	}
	// Offsite: the mirror (nas, copies: kvm-host) holds the first set, so
	// vm-a's copy of that night is offsite and the second night's waits,
	// as vmhost_backup_vm_offsite_timestamp_seconds and its pending
	// series say; the odd names are in the second set only.
	firstAt, secondAt := fmtTime(time.Unix(int64(first(t, jobs)), 0), now, time.Local), fmtTime(time.Unix(int64(testenv.StepLineTime(t, goodLog, "[5/5]")), 0), now, time.Local)
	if r := rows["vm-a"]; r.Offsite != firstAt || r.OffsiteJob != "nas" || r.OffsitePending != secondAt || r.PendingJob != "nas" {
		t.Errorf("vm-a offsite: %q (%s), waiting %q (%s); want %q (nas), waiting %q (nas)", r.Offsite, r.OffsiteJob, r.OffsitePending, r.PendingJob, firstAt, secondAt)
	}
	if r := rows[`bad\xff\xfename`]; r.Offsite != "" || !r.Synced || r.OffsitePending != secondAt {
		t.Errorf("a VM of the second set only: offsite %q, waiting %q; want none yet, waiting %q", r.Offsite, r.OffsitePending, secondAt)
	}
	mf0 := gatherFrom(t, c)
	vmA := map[string]string{"backup_job": "nas", "domain": "vm-a"}
	if got, want := val(t, mf0, "vmhost_backup_vm_offsite_timestamp_seconds", vmA), first(t, jobs); got != want {
		t.Errorf("the page and /metrics disagree: vm-a offsite %v, want %v", got, want)
	}
	if r, ok := rows[`bad\xff\xfename`]; !ok || !r.NotOnHost {
		t.Errorf("the non-UTF-8 name is not shown as \\xNN: rows %v", slices.Sorted(func(yield func(string) bool) {
			for k := range rows {
				if !yield(k) {
					return
				}
			}
		}))
	}

	var text, page bytes.Buffer
	if err := ex.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if err := ex.WriteHTML(&page, "test"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"== kvm-host (dated_dir): failed ==",
		"    why failed: " + kvm.LastRun.Reason + "\n",
		"    start line: " + killedLog + ":1: " + kvm.LastRun.StartRef.Text + "\n",
		"    end line:   " + killedLog + ":3: " + kvm.LastRun.EndRef.Text + "\n",
		"    end line:   " + goodLog + ":6: " + kvm.LastSuccess.EndRef.Text + "\n",
		"      offsite: " + firstAt + " (nas), the copy of " + secondAt + " waits (nas); restore test: ",
		// vzdump is copied by no job.
		"      offsite: no sync job copies this job; restore test: ",
		"== restore-test (restore_log): ok ==",
		"== pve (vzdump): failed ==",
		fmt.Sprintf("end line:   %s:2: ", pve.LastRun.EndRef.File),
		"/srv/vms/vm-c.img is outside /var/lib/libvirt/images",
		"vm-new: no complete copy; defined on the host, never backed up",
		`bad\xff\xfename: newest complete copy`,
		"Failed: kvm-host, pve",
		// file_glob: the dump is the evidence.
		"== mysql-dumps (file_glob): ok ==",
		"    file: " + byName["mysql-dumps"].Source[:len(byName["mysql-dumps"].Source)-len("*.sql.gz")] + "all.sql.gz",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("explain text lacks %q:\n%s", want, text.String())
		}
	}
	html := page.String()
	if strings.Contains(html, "<script>") || !strings.Contains(html, "&lt;script&gt;alert(1)&lt;") {
		t.Errorf("a VM named <script>alert(1)< is not escaped on the page")
	}
	if !strings.Contains(html, `bad\xff\xfename`) || strings.Contains(html, "\xff") {
		t.Errorf("the non-UTF-8 name is not shown as \\xNN on the page")
	}
	for _, want := range []string{"no space left on device", "never backed up", "Failed: kvm-host, pve", `<span class="verdict">failed</span>`,
		`<div class="reason">Why it failed: ` + htmltemplate.HTMLEscapeString(kvm.LastRun.Reason) + `</div>`,
		`<div>End line: <div class="ref"><span class="file">` + htmltemplate.HTMLEscapeString(killedLog) + `:3</span> <q>` + htmltemplate.HTMLEscapeString(kvm.LastRun.EndRef.Text) + `</q></div></div>`,
		firstAt + " (nas)<br>waiting: the copy of " + secondAt + " (nas)",
	} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %q", want)
		}
	}

	// The failure is logged once for two scans, with its reason, and the
	// reason is a series for BackupFailed's description.
	logged := strings.Count(logBuf.String(), `msg="Backup run failed" backup_job=kvm-host`)
	if logged != 1 {
		t.Errorf("the failed run of kvm-host was logged %d times over two scans, want once:\n%s", logged, logBuf.String())
	}
	mf := gatherFrom(t, c)
	if v := val(t, mf, "vmhost_backup_last_run_failure_info", map[string]string{"backup_job": "kvm-host", "reason": kvm.LastRun.Reason}); v != 1 {
		t.Errorf("failure info = %v", v)
	}
	absent(t, mf, "vmhost_backup_last_run_failure_info", map[string]string{"backup_job": "restore-test"})
}

// TestContentsJudgedSetSaysWhatIsMissing: a set of a log-less script
// (success_from: contents) fails because a VM's disk is not in it, and
// says which.
func TestContentsJudgedSetSaysWhatIsMissing(t *testing.T) {
	_, base, script, env := kvmBackupScript(t)
	runCmd(t, append(env, "DATE=2025-05-27"), script)
	job := Job{Name: "kvmhost", Type: TypeDatedDir, Path: base, SuccessFrom: SuccessFromContents}
	job.setDefaults()
	c := newTestCollector(t, time.Now().Add(2*time.Hour), job)
	ex := c.Explain(ExplainOptions{})
	want := "a disk of VM vm-c is not in the set: /srv/vms/vm-c.img is outside /var/lib/libvirt/images, which the backup copies"
	if got := ex.Jobs[0]; got.Verdict != VerdictFailed || got.LastRun == nil || got.LastRun.Reason != want {
		t.Errorf("verdict %q, newest run %+v; want failed: %s", got.Verdict, got.LastRun, want)
	}
}

// TestContentsJudgedSetWithAnUnreadableCopy: a set judged by its contents
// whose disk copy exists but cannot be read (a FIFO here: the test runs as
// root) is no success, and its reason says the copy is unreadable, not
// that the disk is not in the set.
func TestContentsJudgedSetWithAnUnreadableCopy(t *testing.T) {
	_, base, script, env := kvmBackupScript(t)
	runCmd(t, append(env, "DATE=2025-05-27"), script)
	img := filepath.Join(base, "2025-05-27", "images", "vm-a.img")
	if err := os.Remove(img); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(img, 0o600); err != nil {
		t.Fatal(err)
	}
	job := Job{Name: "kvmhost", Type: TypeDatedDir, Path: base, SuccessFrom: SuccessFromContents}
	job.setDefaults()
	c := newTestCollector(t, time.Now().Add(2*time.Hour), job)
	ex := c.Explain(ExplainOptions{})
	want := "the copy of /var/lib/libvirt/images/vm-a.img (VM vm-a) is unreadable: " + img + " is not a regular file (a FIFO); only regular files are read"
	if got := ex.Jobs[0]; got.Verdict != VerdictFailed || got.LastRun == nil || got.LastRun.Reason != want {
		t.Errorf("verdict %q, newest run %+v; want failed: %s", got.Verdict, got.LastRun, want)
	}
}

// TestNotJudgedIsNotNeverBackedUp: with the host's VMs known, a VM the
// scan could not judge (its definition, or a disk copy, unreadable) is
// not called "never backed up": its row says why it is not judged. A VM
// of the host in no set still is.
func TestNotJudgedIsNotNeverBackedUp(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	job := Job{Name: "kvm", Type: TypeDatedDir, Path: "/backup/kvm", MaxAge: Duration(26 * time.Hour)}
	job.setDefaults()
	copyWhy := "the copy of /var/lib/libvirt/images/b.img in the set is unreadable: /backup/kvm/2026-12-01/images/b.img: permission denied"
	d := &jobData{
		UnreadableVMs: map[string]bool{"a": true, "b": true},
		UnjudgedWhy:   map[string][]string{"b": {copyWhy}},
	}
	host := map[string]HostVM{"a": {}, "b": {}, "c": {}}
	rows := map[string]VMRow{}
	for _, r := range vmRows(job, &jobResult{Job: job, Data: d}, host, now, time.UTC) {
		rows[r.Domain] = r
	}
	for _, c := range []struct {
		vm                          string
		never, definitionUnreadable bool
		notJudged                   []string
	}{
		{"a", false, true, nil},                // its XML unreadable
		{"b", false, false, []string{copyWhy}}, // a disk copy unreadable
		{"c", true, false, nil},                // in no set
	} {
		r := rows[c.vm]
		if r.NeverBackedUp != c.never || r.DefinitionUnreadable != c.definitionUnreadable || !slices.Equal(r.NotJudged, c.notJudged) {
			t.Errorf("%s: never backed up %v, definition unreadable %v, not judged %q; want %v, %v, %q",
				c.vm, r.NeverBackedUp, r.DefinitionUnreadable, r.NotJudged, c.never, c.definitionUnreadable, c.notJudged)
		}
	}
}

// bigExplanation is a job with n VMs, every one with a missing disk, as
// one scan of a large host would leave it.
func bigExplanation(n int) *Collector {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	job := Job{Name: "kvm-host", Type: TypeDatedDir, Path: "/backup/kvm", MaxAge: Duration(26 * time.Hour)}
	job.setDefaults()
	d := &jobData{VMs: map[string]vmBackup{}, MissingDisks: map[string]int{}, MissingDiskWhy: map[string][]string{}}
	for i := range n {
		vm := fmt.Sprintf("guest-%04d-<b>&\"x\"", i)
		d.VMs[vm] = vmBackup{Time: now.Add(-time.Duration(i) * time.Minute)}
		d.MissingDisks[vm] = 1
		d.MissingDiskWhy[vm] = []string{fmt.Sprintf("/srv/vms/%s-data.img is outside /var/lib/libvirt/images, which the backup copies", vm)}
	}
	r := run{Start: now.Add(-time.Hour), End: now.Add(-time.Minute), Finished: true, Success: true}
	d.add(r)
	c := New(&Config{Jobs: []Job{job}}, Options{Now: func() time.Time { return now }, Location: time.UTC}, testLogger())
	c.results[job.Name] = &jobResult{Job: job, ScanOK: true, Data: d, ScanTime: now}
	return c
}

// TestPageStaysSmall: a host with 1,000 VMs gets a page an operator's
// browser opens at once.
func TestPageStaysSmall(t *testing.T) {
	c := bigExplanation(1000)
	var page bytes.Buffer
	if err := c.Explain(ExplainOptions{}).WriteHTML(&page, "test"); err != nil {
		t.Fatal(err)
	}
	if page.Len() > 1<<20 {
		t.Errorf("/backups for 1,000 VMs is %d bytes, want under 1 MiB", page.Len())
	}
	if n := strings.Count(page.String(), "<tr>"); n != 1001 {
		t.Errorf("%d table rows, want 1,000 VMs and the header", n)
	}
	t.Logf("/backups for 1,000 VMs: %d bytes", page.Len())
}

// BenchmarkBackupsPage renders /backups for 1,000 VMs.
func BenchmarkBackupsPage(b *testing.B) {
	c := bigExplanation(1000)
	var page bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		page.Reset()
		if err := c.Explain(ExplainOptions{}).WriteHTML(&page, "bench"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(page.Len()), "bytes/page")
}

// TestReadmeExplainExample: the README's --backup.explain example is what
// the text template prints for the night it describes (kvm-host's rerun
// killed in step 2 after the night's good run, the same night's sync
// killed mid-copy), so the example cannot drift from the output format.
func TestReadmeExplainExample(t *testing.T) {
	readme := testenv.ReadFile(t, filepath.Join(testenv.RepoRoot(), "README.md"))
	_, after, ok := strings.Cut(readme, "```text\nBackup jobs at ")
	if !ok {
		t.Fatal("README has no --backup.explain example")
	}
	example, _, _ := strings.Cut("Backup jobs at "+after, "```")

	loc := time.UTC
	now := time.Date(2026, 12, 1, 10, 5, 12, 0, loc)
	at := func(s string) time.Time {
		tm, err := time.ParseInLocation("2006-01-02 15:04:05", s, loc)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	ref := func(file string, line int, text string) *RefView { return &RefView{File: file, Line: line, Text: text} }
	run := func(state, start, end, reason string, s, e *RefView) *RunView {
		return &RunView{State: state, Start: fmtTime(at(start), now, loc), End: fmtTime(at(end), now, loc), Reason: reason, StartRef: s, EndRef: e}
	}
	withEvidence := func(r *RunView, e *RefView) *RunView { r.Evidence = e; return r }
	killed := "killed at step 2 of 5 (no end line); nothing written for longer than the running timeout (1h) after 2026-12-01 09:00:02"
	stopped := "rclone stopped at 3 of 6 transfers (killed?)"
	kvmLog, restoreLog, rcloneLog := "/backup/kvm/2026-12-01/backup.log", "/var/log/kvm_restore.log", "/var/log/rclone-kvm.log"
	restore := run("succeeded", "2026-11-20 10:00:00", "2026-11-20 10:20:00", "",
		ref(restoreLog, 13, "2026-11-20 10:00:00 - === KVM ホスト復元開始 ==="), ref(restoreLog, 18, "2026-11-20 10:20:00 - 復元完了。必要であれば再起動してください。"))
	row := func(vm, copyAt string, missing []string, offsite, pending string) VMRow {
		r := VMRow{Domain: vm, MissingDisks: missing, MissingCount: len(missing), SyncJobs: true, Synced: true,
			RestoreTest: restore.End, RestoreJob: "restore-test"}
		if copyAt != "" {
			r.LastCopy = fmtTime(at(copyAt), now, loc)
		}
		if offsite != "" {
			r.Offsite, r.OffsiteJob = fmtTime(at(offsite), now, loc), "s3-kvm"
		}
		if pending != "" {
			// s3-kvm's newest run failed: a waiting copy says so.
			r.OffsitePending, r.PendingJob, r.SyncFailed = fmtTime(at(pending), now, loc), "s3-kvm", []string{"s3-kvm"}
		}
		return r
	}
	ex := Explanation{Generated: fmtTime(now, now, loc), Failed: []string{"kvm-host", "s3-kvm"}, Jobs: []JobView{{
		Name: "kvm-host", Type: TypeDatedDir, Source: "/backup/kvm", MaxAge: "1d2h", Verdict: VerdictFailed,
		Why: "the newest finished run failed: " + killed, Sets: 8,
		LastRun: run("failed", "2026-12-01 09:00:01", "2026-12-01 09:00:02", killed,
			ref(kvmLog, 7, "2026-12-01 09:00:01 - === KVM ホストバックアップ開始 ==="), ref(kvmLog, 9, "2026-12-01 09:00:02 - [2/5] 各VMの定義（XML）を保存中...")),
		LastSuccess: run("succeeded", "2026-12-01 02:00:01", "2026-12-01 02:31:40", "",
			ref(kvmLog, 1, "2026-12-01 02:00:01 - === KVM ホストバックアップ開始 ==="), ref(kvmLog, 6, "2026-12-01 02:31:40 - [5/5] バックアップ完了しました")),
		VMs: []VMRow{
			row("db1", "", []string{"/srv/vms/db1-data.img is outside /var/lib/libvirt/images, which the backup copies"}, "", ""),
			row("web1", "2026-12-01 02:31:40", nil, "2026-11-30 02:30:55", "2026-12-01 02:31:40"),
		},
	}, {
		Name: "restore-test", Type: TypeRestoreLog, Source: restoreLog, MaxAge: "5w", Verdict: VerdictOK,
		Why: "the newest run succeeded and is within max_age", Sets: 3, LastRun: restore, LastSuccess: restore,
	}, {
		Name: "s3-kvm", Type: TypeRcloneLog, Source: rcloneLog, MaxAge: "1d2h", Verdict: VerdictFailed,
		Why: "the newest finished run failed: " + stopped, Sets: 5,
		LastRun: withEvidence(run("failed", "2026-12-01 03:00:00", "2026-12-01 03:04:31", stopped,
			ref(rcloneLog, 212, "2026/12/01 03:00:00 INFO  : 2026-12-01/images/web1.qcow2: Copied (new)"), ref(rcloneLog, 240, "Backup completed at Tue Dec  1 03:04:31 UTC 2026")),
			ref(rcloneLog, 235, "Transferred:        2.914 GiB / 6.010 GiB, 48%, 10.312 MiB/s, ETA 5m0s")),
		LastSuccess: run("succeeded", "2026-11-30 03:00:00", "2026-11-30 03:12:09", "",
			ref(rcloneLog, 170, "2026/11/30 03:00:00 INFO  : 2026-11-30/images/web1.qcow2: Copied (new)"), ref(rcloneLog, 211, "Backup completed at Mon Nov 30 03:12:09 UTC 2026")),
	}}}
	var text bytes.Buffer
	if err := ex.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimRight(text.String(), "\n") + "\n"; got != example {
		t.Errorf("README's --backup.explain example differs from the output for its night:\n--- README\n%s\n--- output\n%s", example, got)
	}
}

// A failed run's reason is a label value: an error line of 64 KiB (a tool
// printing a whole file list) must not make it one, or a server with a
// label_value_length_limit rejects the whole scrape. The page keeps the
// line's start too.
func TestLongErrorLineKeepsTheReasonShort(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "kvm_restore.log")
	long := "rsync: [sender] send_files failed to open \"" + strings.Repeat("x", 64<<10) + "\": Permission denied (13)"
	if err := os.WriteFile(logFile, []byte("2025-05-28 02:00:00 - === KVM ホスト復元開始 ===\n"+long+"\n"+
		"2025-05-28 02:10:00 - 復元完了。必要であれば再起動してください。\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 5, 28, 3, 0, 0, 0, time.Local)
	c := newTestCollector(t, now, withDefaults(Job{Name: "restore-test", Type: TypeRestoreLog, LogFile: logFile, MaxAge: Duration(35 * 24 * time.Hour)}))
	mf := gatherFrom(t, c)
	if v := val(t, mf, "vmhost_backup_last_run_success", map[string]string{"backup_job": "restore-test"}); v != 0 {
		t.Fatalf("last_run_success %v, want 0: the run has an error line", v)
	}
	var reason string
	for _, m := range mf["vmhost_backup_last_run_failure_info"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "reason" {
				reason = l.GetValue()
			}
		}
	}
	if !strings.HasPrefix(reason, "1 error line, first: rsync: [sender] send_files failed to open") || len(reason) > maxReason+len("…") {
		t.Errorf("reason label of %d bytes: %.200q…, want the error line's start within %d bytes", len(reason), reason, maxReason)
	}
	// The page quotes the error line as the run's evidence, with its
	// line number, its first KiB: enough to read, and a page of a few
	// such jobs stays small.
	ex := c.Explain(ExplainOptions{})
	if r := ex.Jobs[0].LastRun; r == nil || r.Evidence == nil || r.Evidence.Line != 2 || r.Evidence.File != logFile ||
		r.Evidence.Text != long[:maxQuote]+"…" {
		t.Errorf("the failed run's evidence %+v, want line 2 of %s, the error line's first %d bytes and …", r, logFile, maxQuote)
	}
	var page bytes.Buffer
	if err := ex.WriteHTML(&page, "test"); err != nil {
		t.Fatal(err)
	}
	want := `<div>Evidence: <div class="ref"><span class="file">` + logFile + `:2</span> <q>rsync: [sender] send_files failed to open &#34;xxx`
	if !strings.Contains(page.String(), want) {
		t.Errorf("/backups does not quote the evidence line (want %q)", want)
	}
}

// What the page and --backup.explain show of text read from disk: a tab
// (in every rclone statistics line) as a space, other control characters
// and bytes that are not UTF-8 escaped, and a long line cut at a
// character with "…".
func TestDisplayOfLogText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Transferred:   \t    1.664 MiB / 6 MiB, 28%", "Transferred:        1.664 MiB / 6 MiB, 28%"},
		{"a\x1b[31mred\nb", `a\u001b[31mred\u000ab`},
		{"caf\xe9", `caf\xe9`},
		{"バックアップ", "バックアップ"},
	} {
		if got := display(tc.in); got != tc.want {
			t.Errorf("display(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	long := strings.Repeat("あ", maxQuote) // 3 bytes each: the cut falls inside one
	if got := refView(lineRef{File: "f", Line: 1, Text: long}).Text; !utf8.ValidString(got) || !strings.HasSuffix(got, "…") || len(got) > maxQuote+len("…") {
		t.Errorf("a long line of 3-byte characters is quoted as %d bytes (valid UTF-8: %v), want at most %d and …", len(got), utf8.ValidString(got), maxQuote)
	}
}
