package backup

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// TestOffsiteFromAMirrorAndANeverSuccessfulSync (issue 26 item 1): the
// sync job may be a dated_dir on another mount (`rsync -a /backup/kvm/
// /mnt/nas/kvm/` after kvm_backup.sh): its successful sets are the copied
// ones, so what reached the mirror is offsite and a newer local set
// waits. A sync job that never succeeded (its first run found no rclone)
// has nothing offsite, and every copy the local job holds waits, the
// oldest first: that is what VMNoOffsiteCopy ages.
func TestOffsiteFromAMirrorAndANeverSuccessfulSync(t *testing.T) {
	_, base, script, env := kvmBackupScript(t)
	mirror := filepath.Join(t.TempDir(), "kvm")

	runCmd(t, append(env, "DATE=2025-05-26"), script)
	runCmd(t, nil, "rsync", "-a", base+"/", mirror+"/")
	first := testenv.StepLineTime(t, filepath.Join(base, "2025-05-26", "backup.log"), "[5/5]")
	// The logs have whole seconds: the second set must end in a later one.
	testenv.Eventually(t, 5*time.Second, "the next second", func() (bool, string) {
		return float64(time.Now().Unix()) > first, time.Now().String()
	})
	runCmd(t, append(env, "DATE=2025-05-27"), script)
	second := testenv.StepLineTime(t, filepath.Join(base, "2025-05-27", "backup.log"), "[5/5]")

	// The sync job that never succeeded: its log has the wrapper's end
	// line only (rclone was not found), as TestRcloneLogFromRealRclone's
	// third run leaves it.
	_, logFile, s3Script, s3Env, _ := rcloneSyncFixture(t)
	bin := t.TempDir()
	date, err := exec.LookPath("date")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(date, filepath.Join(bin, "date")); err != nil {
		t.Fatal(err)
	}
	runCmd(t, append(s3Env, "DATE=2025-05-26", "PATH="+bin), s3Script)

	kvm := Job{Name: "kvm-host", Type: TypeDatedDir, Path: base}
	nas := Job{Name: "nas", Type: TypeDatedDir, Path: mirror, Copies: "kvm-host"}
	s3 := Job{Name: "s3-kvm", Type: TypeRcloneLog, LogFile: logFile, Copies: "kvm-host"}
	c := newTestCollector(t, time.Now(), kvm, nas, s3)
	mf := gatherFrom(t, c)

	if got := val(t, mf, "vmhost_backup_last_run_success", map[string]string{"backup_job": "s3-kvm"}); got != 0 {
		t.Fatalf("the sync without rclone counts as success (%v): the fixture is wrong", got)
	}
	for _, vm := range []string{"vm-a", "vm-b"} {
		onNAS := map[string]string{"backup_job": "nas", "domain": vm}
		if got := val(t, mf, "vmhost_backup_vm_offsite_timestamp_seconds", onNAS); got != first {
			t.Errorf("%s on the mirror: offsite %v, want the mirrored set's %v", vm, got, first)
		}
		if got := val(t, mf, "vmhost_backup_vm_offsite_pending_timestamp_seconds", onNAS); got != second {
			t.Errorf("%s on the mirror: pending %v, want the newer set's %v", vm, got, second)
		}
		onS3 := map[string]string{"backup_job": "s3-kvm", "domain": vm}
		absent(t, mf, "vmhost_backup_vm_offsite_timestamp_seconds", onS3)
		if got := val(t, mf, "vmhost_backup_vm_offsite_pending_timestamp_seconds", onS3); got != first {
			t.Errorf("%s, sync never succeeded: pending %v, want the oldest copy's %v", vm, got, first)
		}
	}
	// vm-c was never copied whole (its disk is outside images_source):
	// nothing of it can be offsite or wait.
	for _, job := range []string{"nas", "s3-kvm"} {
		l := map[string]string{"backup_job": job, "domain": "vm-c"}
		absent(t, mf, "vmhost_backup_vm_offsite_timestamp_seconds", l)
		absent(t, mf, "vmhost_backup_vm_offsite_pending_timestamp_seconds", l)
	}
	// Jobs without copies export neither series.
	absent(t, mf, "vmhost_backup_vm_offsite_pending_timestamp_seconds", map[string]string{"backup_job": "kvm-host", "domain": "vm-a"})

	// /backups and --backup.explain say why the copies wait: s3-kvm's
	// newest run failed (the mirror's did not); not for vm-c, which has
	// no complete copy to wait.
	var kvmView *JobView
	ex := c.Explain(ExplainOptions{})
	for i := range ex.Jobs {
		if ex.Jobs[i].Name == "kvm-host" {
			kvmView = &ex.Jobs[i]
		}
	}
	if kvmView == nil {
		t.Fatalf("no kvm-host in the explanation: %+v", ex.Jobs)
	}
	rows := map[string]VMRow{}
	for _, r := range kvmView.VMs {
		rows[r.Domain] = r
	}
	if r, ok := rows["vm-a"]; !ok || !slices.Equal(r.SyncFailed, []string{"s3-kvm"}) {
		t.Errorf("vm-a's row (found %v) names %q as failed sync jobs, want s3-kvm only", ok, r.SyncFailed)
	}
	if r, ok := rows["vm-c"]; !ok || len(r.SyncFailed) != 0 {
		t.Errorf("vm-c's row (found %v, nothing to copy) names %q as failed sync jobs, want none", ok, r.SyncFailed)
	}
	var text bytes.Buffer
	if err := (&Explanation{Jobs: []JobView{*kvmView}}).WriteText(&text); err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`(?m)^    vm-a: newest complete copy .*\n      offsite: .* waits \((nas|s3-kvm)\); the newest run of s3-kvm failed; restore test: `)
	if !line.MatchString(text.String()) {
		t.Errorf("--backup.explain has no line matching %s:\n%s", line, text.String())
	}
}
