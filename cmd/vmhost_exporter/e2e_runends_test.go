package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// TestRunEndsAndErrorOutputAsTheService (issue 24 items 2 and 5) builds,
// with the seed's scripts, the trees of a week an operator would recognise
// and reads them with the exporter under the shipped unit's identity:
//   - kvm: the host rebooted in the middle of night 1's backup (the script
//     killed with SIGKILL in step 2); night 2 ran clean. Night 2 is judged
//     alone: success, its own duration, its end the last success.
//   - kvm-logged: kvm_backup.sh with its output appended to its log
//     (`exec >>"$LOGFILE" 2>&1`); night 2's rsync failed (the images moved)
//     and the script logged [5/5] anyway: a failed run with rsync's 2 error
//     lines, the last success still night 1.
//   - restore-test: a restore test killed by a reboot that also cut its
//     last line, then the next restore test: judged alone.
//
// rules/tests/backup_run_ends.test.yml takes these values through the
// alert rules.
func TestRunEndsAndErrorOutputAsTheService(t *testing.T) {
	testenv.LookPath(t, "rsync", "rsync")
	dir := testenv.SharedTempDir(t)
	src := filepath.Join(dir, "src")
	for _, d := range []string{"libvirt", "images", "network-scripts", "etc"} {
		if err := os.MkdirAll(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"etc/hosts", "etc/fstab", "images/vm-a.img", "network-scripts/ifcfg-br0"} {
		writeFile(t, filepath.Join(src, f), "x\n", time.Time{})
	}
	hang := filepath.Join(dir, "virsh-hangs")
	writeFile(t, hang, "#!/bin/sh\nexec sleep 600\n", time.Time{})
	if err := os.Chmod(hang, 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"VIRSH=true",
		"SRC_LIBVIRT=" + filepath.Join(src, "libvirt"), "SRC_IMAGES=" + filepath.Join(src, "images"),
		"SRC_NETWORK=" + filepath.Join(src, "network-scripts"), "SRC_ETC=" + filepath.Join(src, "etc")}
	kvm, logged := filepath.Join(dir, "kvm"), filepath.Join(dir, "kvm-logged")

	// kvm: night 1 killed in step 2, night 2 clean.
	night1 := filepath.Join(kvm, "2025-05-27", "backup.log")
	killed := startScript(t, "kvm_backup.sh", append(env, "BACKUP_BASE="+kvm, "DATE=2025-05-27", "VIRSH="+hang)...)
	waitForLine(t, night1, "[2/5]")
	killed.kill()
	runScript(t, "kvm_backup.sh", append(env, "BACKUP_BASE="+kvm, "DATE=2025-05-28")...)
	night2 := filepath.Join(kvm, "2025-05-28", "backup.log")

	// kvm-logged: the same script with its output appended to its log.
	script := filepath.Join(testenv.RepoRoot(), "collector", "backup", "testdata", "kvm_backup.sh")
	body := testenv.ReadFile(t, script)
	const after = "mkdir -p \"$BACKUP_DIR\"\n"
	if strings.Count(body, after) != 1 {
		t.Fatalf("%s no longer makes its set with %q", script, after)
	}
	modified := filepath.Join(dir, "kvm_backup_logged.sh")
	writeFile(t, modified, strings.Replace(body, after, after+"exec >>\"$LOGFILE\" 2>&1\n", 1), time.Time{})
	if err := os.Chmod(modified, 0o755); err != nil {
		t.Fatal(err)
	}
	runCommand(t, modified, append(env, "BACKUP_BASE="+logged, "DATE=2025-05-27")...)
	runCommand(t, modified, append(env, "BACKUP_BASE="+logged, "DATE=2025-05-28", "SRC_IMAGES="+filepath.Join(src, "moved"))...)
	loggedGood, loggedBad := filepath.Join(logged, "2025-05-27", "backup.log"), filepath.Join(logged, "2025-05-28", "backup.log")
	if text := testenv.ReadFile(t, loggedBad); strings.Count(text, "\nrsync") != 2 || !strings.Contains(text, "[5/5]") {
		t.Fatalf("want rsync's 2 error lines and [5/5] anyway in %s:\n%s", loggedBad, text)
	}

	// restore-test: killed in step 2, the last line cut, then the next.
	restoreLog := filepath.Join(dir, "kvm_restore.log")
	dst := filepath.Join(dir, "dst")
	for _, d := range []string{"libvirt", "images", "sysconfig", "etc"} {
		if err := os.MkdirAll(filepath.Join(dst, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	renv := append(env, "BACKUP_DIR="+filepath.Join(kvm, "2025-05-28"), "LOGFILE="+restoreLog,
		"DST_LIBVIRT="+filepath.Join(dst, "libvirt"), "DST_IMAGES="+filepath.Join(dst, "images"),
		"DST_SYSCONFIG="+filepath.Join(dst, "sysconfig"), "DST_ETC="+filepath.Join(dst, "etc"))
	killed = startScript(t, "kvm_restore.sh", append(renv, "VIRSH="+hang)...)
	waitForLine(t, restoreLog, "[2/4]")
	killed.kill()
	b := []byte(testenv.ReadFile(t, restoreLog))
	last := strings.LastIndexByte(string(b[:len(b)-1]), '\n') + 1
	if err := os.Truncate(restoreLog, int64(last+28)); err != nil { // the time stamp and "[2/4]" are left
		t.Fatal(err)
	}
	waitPastSecond(testenv.StepLineTimes(t, restoreLog, "[2/4]")[0])
	runScript(t, "kvm_restore.sh", renv...)

	cfg := filepath.Join(dir, "backup.yml")
	writeFile(t, cfg, "jobs:\n"+
		"  - {name: kvm, type: dated_dir, path: "+kvm+", max_age: 26h}\n"+
		"  - {name: kvm-logged, type: dated_dir, path: "+logged+", max_age: 26h}\n"+
		"  - {name: restore-test, type: restore_log, log_file: "+restoreLog+", max_age: 35d}\n", time.Time{})
	e := testenv.StartExporterAsService(t, "--collector.disable-defaults", "--collector.backup", "--backup.config-file="+cfg)
	mf := waitFor(t, e.URL+"/metrics", "the jobs scanned", allScanned("kvm", "kvm-logged", "restore-test"))

	start2, end2 := testenv.StepLineTimes(t, night2, "開始")[0], testenv.StepLineTimes(t, night2, "[5/5]")[0]
	rstart, rend := testenv.StepLineTimes(t, restoreLog, "開始")[1], testenv.StepLineTimes(t, restoreLog, "復元完了")[0]
	for _, c := range []struct {
		job, name string
		want      float64
	}{
		{"kvm", "vmhost_backup_last_run_success", 1},
		{"kvm", "vmhost_backup_running", 0},
		{"kvm", "vmhost_backup_last_success_timestamp_seconds", end2},
		{"kvm", "vmhost_backup_last_run_duration_seconds", end2 - start2},
		{"kvm", "vmhost_backup_sets", 2},
		{"kvm", "vmhost_backup_unreadable_paths", 0},
		{"kvm-logged", "vmhost_backup_last_run_success", 0},
		{"kvm-logged", "vmhost_backup_last_run_errors", 2},
		{"kvm-logged", "vmhost_backup_running", 0},
		{"kvm-logged", "vmhost_backup_last_success_timestamp_seconds", testenv.StepLineTimes(t, loggedGood, "[5/5]")[0]},
		{"kvm-logged", "vmhost_backup_sets", 2},
		{"restore-test", "vmhost_backup_last_run_success", 1},
		{"restore-test", "vmhost_backup_last_success_timestamp_seconds", rend},
		{"restore-test", "vmhost_backup_last_run_duration_seconds", rend - rstart},
		{"restore-test", "vmhost_backup_sets", 2},
	} {
		if got := jobValue(t, mf, c.job, c.name); got != c.want {
			t.Errorf("%s{backup_job=%q} = %v, want %v", c.name, c.job, got, c.want)
		}
	}
}

// script is an operator's script started in its own process group, for a
// SIGKILL of the group: what a reboot does to it.
type script struct {
	t   *testing.T
	cmd *exec.Cmd
}

func startScript(t *testing.T, name string, env ...string) *script {
	t.Helper()
	cmd := exec.Command(filepath.Join(testenv.RepoRoot(), "collector", "backup", "testdata", name))
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &script{t: t, cmd: cmd}
	t.Cleanup(s.kill)
	return s
}

func (s *script) kill() {
	if s.cmd.ProcessState != nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	_ = s.cmd.Wait()
}

func waitForLine(t *testing.T, path, marker string) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, filepath.Base(path)+" shows "+marker, func() (bool, string) {
		b, _ := os.ReadFile(path)
		return strings.Contains(string(b), marker), string(b)
	})
}

func runCommand(t *testing.T, path string, env ...string) {
	t.Helper()
	cmd := exec.Command(path)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, out)
	}
}

// waitPastSecond returns once the wall clock is past the second after sec.
func waitPastSecond(sec float64) {
	for float64(time.Now().Unix()) <= sec {
		time.Sleep(50 * time.Millisecond)
	}
}
