package backup

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLoadConfigExample(t *testing.T) {
	cfg, err := LoadConfig("../../examples/backup.yml")
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]bool{}
	for _, j := range cfg.Jobs {
		types[j.Type] = true
	}
	for _, want := range []string{TypeDatedDir, TypeRcloneLog, TypeVzdump, TypeRestoreLog, TypeFileGlob} {
		if !types[want] {
			t.Errorf("examples/backup.yml has no job of type %s", want)
		}
	}
	// The offsite sync names the local job it copies (issue 26).
	if j, ok := cfg.job("s3-kvm"); !ok || j.Copies != "kvm-host" {
		t.Errorf("examples/backup.yml: s3-kvm copies %q, want kvm-host", j.Copies)
	}
	if j, _ := cfg.job("kvm-host"); !j.copied {
		t.Error("kvm-host is copied by s3-kvm but not marked copied")
	}
	// 26h, not the 8d it was: kvm_backup.sh runs nightly, and 8 days let a
	// week of missed nights pass unalerted (issue 23).
	if got := time.Duration(cfg.Jobs[0].MaxAge); got != 26*time.Hour {
		t.Errorf("max_age of %s = %s, want 26h", cfg.Jobs[0].Name, got)
	}
}

// The packaged conffile monitors nothing, and shows in comments the jobs
// an operator uncomments: uncommented, they must load, and include the
// offsite sync and the restore test (an operator trial found them
// missing there, only in examples/backup.yml).
func TestPackagedConfigsCommentedJobsLoad(t *testing.T) {
	data, err := os.ReadFile("../../packaging/backup.yml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err := LoadConfig("../../packaging/backup.yml"); err != nil {
		t.Fatalf("packaging/backup.yml as shipped: %v", err)
	} else if len(cfg.Jobs) != 0 {
		t.Fatalf("packaging/backup.yml as shipped has %d jobs, want none", len(cfg.Jobs))
	}
	var uncommented []string
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		if line == "# jobs:" {
			in = true
		} else if in && !strings.HasPrefix(line, "#  ") {
			break
		}
		if in {
			uncommented = append(uncommented, strings.TrimPrefix(line, "# "))
		}
	}
	file := filepath.Join(t.TempDir(), "backup.yml")
	if err := os.WriteFile(file, []byte(strings.Join(uncommented, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(file)
	if err != nil {
		t.Fatalf("packaging/backup.yml's commented jobs, uncommented:\n%s\n%v", strings.Join(uncommented, "\n"), err)
	}
	types := map[string]bool{}
	for _, j := range cfg.Jobs {
		types[j.Type] = true
	}
	if !types[TypeDatedDir] || !types[TypeRcloneLog] || !types[TypeRestoreLog] {
		t.Errorf("packaging/backup.yml's example has job types %v, want dated_dir, rclone_log and restore_log", types)
	}
	if j, ok := cfg.job("s3-kvm"); !ok || j.Copies != "kvm-host" {
		t.Errorf("packaging/backup.yml's example: s3-kvm copies %q, want kvm-host", j.Copies)
	}
}

func TestLoadConfigRejectsBadFiles(t *testing.T) {
	// Each bad file must be rejected with a message that names the file and
	// points at what is wrong.
	want := map[string][]string{
		"bad-unknown-field.yml":   {"line 5", "max_agee"},
		"bad-type.yml":            {"line 3: jobs[0] (kvm-host)", "field type", "tarball"},
		"bad-missing-max-age.yml": {"line 2: jobs[0] (kvm-host)", "max_age"}, // the job's line: the field is not there
		"bad-duplicate-name.yml":  {"line 6: jobs[1] (dumps)", "duplicate"},
		"bad-missing-path.yml":    {"line 2: jobs[0] (pve)", "field path"},
		"bad-duration.yml":        {`line 5: field max_age of job "kvm-host"`, "a week", "26h, 8d"},
		"bad-top-level.yml":       {"line 1", "job"},
		"bad-empty.yml":           {"field jobs is missing", "jobs: []"},
		"bad-comments-only.yml":   {"field jobs is missing", "jobs: []"},
		"bad-jobs-null.yml":       {"field jobs is missing", "jobs: []"},
		"bad-truncated.yml":       {"line 6: jobs[1] (rsync-offsite)", "max_age"},
		"bad-time-zone.yml":       {"line 6: jobs[0] (s3-tokyo)", "field time_zone", `"Asia/Tokio"`, "IANA"},
		// An abbreviation is no zone: JST is not in the zone database.
		"bad-time-zone-abbreviation.yml": {"jobs[0] (kvm-host)", "field time_zone", `"JST"`},
		// File times carry their zone; a zone for them means a mistake.
		"bad-time-zone-file-glob.yml": {"jobs[0] (mysql-dumps)", "field time_zone", "not used by type file_glob"},
		// copies names the local job a sync job copies (issue 26): a job
		// of this file, with per-VM backups, not the sync job itself; only
		// sync jobs (rclone_log, dated_dir) copy.
		"bad-copies-unknown-job.yml":  {"line 9: jobs[1] (s3-kvm)", "field copies", `"kvm" is not the name of a job`},
		"bad-copies-restore-log.yml":  {"jobs[0] (s3-kvm)", "field copies", "restore_log", "no per-VM backups"},
		"bad-copies-itself.yml":       {"jobs[0] (offsite)", "field copies", "cannot copy itself"},
		"bad-copies-vzdump-field.yml": {"jobs[1] (pve)", "field copies", "not used by type vzdump"},
		// Validation names every job's first problem, each at its line
		// (it stopped at the first one, without a line, before).
		// A value the decoder cannot read (d, e) does not hide the
		// others; a job with two problems (a) gets its first.
		"bad-several-problems.yml": {"line 9: jobs[0] (a): field glob is not used by type dated_dir (its fields: name, type, max_age, path,",
			"; line 11: jobs[1] (b): field log_file is required for type rclone_log",
			`; line 17: jobs[2] (c): field copies: "zz" is not the name of a job`,
			`; line 22: field max_age of job "d": not a valid duration string: "26" (a number and a unit: 26h, 8d, 5w, 90m)`,
			`; line 26: unknown field "maxage" in job "e" (known: name, type, max_age, glob, running_timeout)`},
	}
	files, err := filepath.Glob("testdata/*bad*.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad fixtures: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := LoadConfig(f)
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if !strings.Contains(msg, f) {
				t.Errorf("error does not name the file: %s", msg)
			}
			parts, ok := want[filepath.Base(f)]
			if !ok {
				t.Fatalf("no expectation for %s (error: %s)", f, msg)
			}
			if filepath.Base(f) == "bad-several-problems.yml" && strings.Count(msg, "line ") != len(parts) {
				t.Errorf("%d problems named, want %d (one a job): %s", strings.Count(msg, "line "), len(parts), msg)
			}
			for _, p := range parts {
				if !strings.Contains(msg, p) {
					t.Errorf("error %q does not contain %q", msg, p)
				}
			}
		})
	}
}

// TestConfigErrorProblemsAtTheirLines: LoadConfig's error holds each
// problem with its line, for --backup.config-check to print one
// "FILE:LINE: message" each, while its Error() stays the one line the
// service logs.
func TestConfigErrorProblemsAtTheirLines(t *testing.T) {
	syntax := filepath.Join(t.TempDir(), "syntax.yml")
	if err := os.WriteFile(syntax, []byte("jobs:\n  - name: a\n    type: b: c\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missingJobs := "field jobs is missing or empty (an empty or truncated file?); write `jobs: []` to monitor no backups"
	for _, tc := range []struct {
		file      string
		problems  []Problem
		errorText string
	}{
		// Sorted by line, though the decoder's problems (d, e) are
		// found before validation's (a, b, c).
		{"testdata/bad-several-problems.yml", []Problem{
			{9, "jobs[0] (a): field glob is not used by type dated_dir (its fields: name, type, max_age, path, log_name, images_source, vm_xml_dir, images_dir, success_from, set_pattern, start_pattern, success_pattern, error_pattern, running_timeout, time_zone, copies)"},
			{11, "jobs[1] (b): field log_file is required for type rclone_log"},
			{17, `jobs[2] (c): field copies: "zz" is not the name of a job in this file`},
			{22, `field max_age of job "d": not a valid duration string: "26" (a number and a unit: 26h, 8d, 5w, 90m)`},
			{26, `unknown field "maxage" in job "e" (known: name, type, max_age, glob, running_timeout)`},
		},
			// The service's log line, as it was before the problems
			// had their own lines.
			"file testdata/bad-several-problems.yml line 9: jobs[0] (a): field glob is not used by type dated_dir (its fields: name, type, max_age, path, log_name, images_source, vm_xml_dir, images_dir, success_from, set_pattern, start_pattern, success_pattern, error_pattern, running_timeout, time_zone, copies)" +
				"; line 11: jobs[1] (b): field log_file is required for type rclone_log" +
				`; line 17: jobs[2] (c): field copies: "zz" is not the name of a job in this file` +
				`; line 22: field max_age of job "d": not a valid duration string: "26" (a number and a unit: 26h, 8d, 5w, 90m)` +
				`; line 26: unknown field "maxage" in job "e" (known: name, type, max_age, glob, running_timeout)`},
		{"testdata/bad-missing-max-age.yml", []Problem{{2, "jobs[0] (kvm-host): field max_age is required and must be positive"}},
			"file testdata/bad-missing-max-age.yml line 2: jobs[0] (kvm-host): field max_age is required and must be positive"},
		{"testdata/bad-top-level.yml", []Problem{{1, `unknown top-level field "job" (known: jobs)`}},
			`file testdata/bad-top-level.yml line 1: unknown top-level field "job" (known: jobs)`},
		// No line to point at: the whole file is missing its jobs.
		{"testdata/bad-empty.yml", []Problem{{0, missingJobs}}, "file testdata/bad-empty.yml: " + missingJobs},
		// A syntax error is at the line yaml.v3 names, as the other
		// problems are ("file F: yaml: line 3: ..." before).
		{syntax, []Problem{{3, "yaml: mapping values are not allowed in this context"}},
			"file " + syntax + " line 3: yaml: mapping values are not allowed in this context"},
	} {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			_, err := LoadConfig(tc.file)
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T), want a *ConfigError", err, err)
			}
			if ce.File != tc.file {
				t.Errorf("File = %q, want %q", ce.File, tc.file)
			}
			if !reflect.DeepEqual(ce.Problems, tc.problems) {
				t.Errorf("problems:\n%q\nwant:\n%q", ce.Problems, tc.problems)
			}
			if got := err.Error(); got != tc.errorText {
				t.Errorf("Error() =\n%s\nwant\n%s", got, tc.errorText)
			}
		})
	}

	// A file that cannot be read is no *ConfigError: the service tells
	// a missing default file (no jobs) from a wrong one.
	_, err := LoadConfig(filepath.Join(t.TempDir(), "absent.yml"))
	var ce *ConfigError
	if errors.As(err, &ce) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: error %v (%T), want fs.ErrNotExist and no *ConfigError", err, err)
	}
}

// TestConfigCheckPathsAtTheirLines: a path problem or warning points at
// the line of the job's path, log_file or glob, as loading's problems do.
func TestConfigCheckPathsAtTheirLines(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "paths.yml")
	if err := os.WriteFile(file, []byte("jobs:\n"+
		"  - name: kvm\n    type: dated_dir\n    max_age: 26h\n    path: backup/kvm\n"+ // path at line 5
		"  - name: restore-test\n    type: restore_log\n    log_file: "+dir+"/nowhere/kvm_restore.log\n    max_age: 35d\n"+ // log_file at 8
		"  - name: dumps\n    max_age: 26h\n    type: file_glob\n    glob: "+dir+"/nodir/*.gz\n"+ // glob at 13
		"  - name: here\n    type: file_glob\n    glob: "+dir+"/*.yml\n    max_age: 26h\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(file)
	if err != nil {
		t.Fatal(err)
	}
	problems, warnings := cfg.CheckPaths()
	if want := []Problem{{5, `job "kvm": path "backup/kvm" is not an absolute path`}}; !reflect.DeepEqual(problems, want) {
		t.Errorf("problems:\n%q\nwant:\n%q", problems, want)
	}
	if want := []Problem{
		{8, `job "restore-test": log_file ` + dir + `/nowhere/kvm_restore.log does not exist`},
		{13, `job "dumps": glob ` + dir + `/nodir does not exist`},
	}; !reflect.DeepEqual(warnings, want) {
		t.Errorf("warnings:\n%q\nwant:\n%q", warnings, want)
	}
}

func TestMedianOfPrevious(t *testing.T) {
	for _, tc := range []struct {
		sizes []int64
		want  int64
		ok    bool
	}{
		{nil, 0, false},
		{[]int64{100}, 0, false},                              // only the newest: nothing to compare with
		{[]int64{100, 10}, 100, true},                         // the newest (10) is not its own reference
		{[]int64{100, 300, 10}, 200, true},                    // even count: mean of the middle two
		{[]int64{1, 100, 100, 100, 100, 100, 10}, 100, true},  // only the last 5 before the newest
		{[]int64{100, 5, 100, 100, 100, 100, 100}, 100, true}, // one odd backup does not move it
	} {
		got, ok := medianOfPrevious(tc.sizes)
		if got != tc.want || ok != tc.ok {
			t.Errorf("medianOfPrevious(%v) = %d, %v; want %d, %v", tc.sizes, got, ok, tc.want, tc.ok)
		}
	}
}
