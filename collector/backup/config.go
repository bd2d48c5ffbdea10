// Package backup monitors the freshness, success, size and VM coverage of
// the host's backups, and when a restore was last tested. Jobs come from a
// YAML file; a background scanner reads the backups' own traces (dated
// directories and their logs, rclone's log, vzdump's dump directory, a
// restore log, plain files) and scrapes serve the last scan's result.
package backup

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// Job types of REQUIREMENTS §3.
const (
	TypeDatedDir   = "dated_dir"
	TypeRcloneLog  = "rclone_log"
	TypeVzdump     = "vzdump"
	TypeRestoreLog = "restore_log"
	TypeFileGlob   = "file_glob"
)

// What decides that a dated set succeeded (success_from).
const (
	SuccessFromLog      = "log"
	SuccessFromContents = "contents"
)

// Defaults for the optional fields; they match the operator's scripts.
const (
	defaultLogName        = "backup.log"
	defaultImagesSource   = "/var/lib/libvirt/images"
	defaultSetPattern     = `^\d{4}-\d{2}-\d{2}$`
	defaultStepSuccess    = `\[(\d+)/(\d+)\]`
	defaultRcloneEnd      = `^Backup completed at`
	defaultRestoreStart   = `(?i)^===.*(開始|start)`
	defaultRestoreSuccess = `(?i)復元完了|restore completed`
	defaultRunningTimeout = time.Hour
	// A dump pipeline (mysqldump | gzip) writes at least every few minutes;
	// a longer wait would eat the slack of a nightly job's max_age (26h).
	defaultFileGlobRunningTimeout = 15 * time.Minute
)

// defaultErrorPattern is what error_pattern defaults to: the lines, step
// messages or the output of the script's commands appended to its log,
// that fail a run of dated_dir and restore_log. The operator's scripts have
// no `set -e`: after a failed rsync or cp they log their final step anyway.
//   - "error" as a word: `rsync error: ... (code 23)`, virsh's `error: ...`,
//     `Input/output error`, and the scripts' own messages;
//   - エラー, 失敗: the same in the operator's Japanese messages;
//   - a tool's own prefix, as GNU tools and rsync print their failures:
//     `cp: cannot stat ...`, `rsync: [sender] change_dir ... failed`,
//     `mkdir: cannot create directory ...`, `tee: ...`, `virsh: ...`;
//   - failures any tool or bash reports: `No space left on device`,
//     `Permission denied`, `Read-only file system`, `command not found`.
//
// Not `rsync warning: ... (code 24)` (files that vanished during the copy).
// A step line is matched by its message, so `^` is the message's start.
const defaultErrorPattern = `(?i)\berror\b|エラー|失敗` +
	`|^(cp|mv|rm|ln|mkdir|rsync|tee|tar|gzip|virsh): ` +
	`|no space left on device|permission denied|read-only file system|command not found`

// Config is the content of --backup.config-file.
type Config struct {
	Jobs []Job `yaml:"jobs"`

	// lines are where each job and its fields are in the file, so that
	// CheckPaths can point at the line to fix as loading does.
	lines lineFinder
}

// ConfigError is a file LoadConfig refused, with every problem found in
// it: --backup.config-check prints each at its own line, where an editor
// can jump to it, while the service logs Error()'s one line.
type ConfigError struct {
	File     string
	Problems []Problem // by line
}

// Problem is one thing to fix in a config file.
type Problem struct {
	Line    int // 0: the problem is not at one line (no jobs at all)
	Message string
}

// String is the problem as Error() joins it, its line first.
func (p Problem) String() string {
	if p.Line == 0 {
		return p.Message
	}
	return fmt.Sprintf("line %d: %s", p.Line, p.Message)
}

// Error is "file F line N: ...; line M: ...", or "file F: ..." when the
// first problem has no line: one log line, as the service has always
// logged a refused file, and which operators may grep their logs for.
func (e *ConfigError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	sep := ": "
	if len(e.Problems) > 0 && e.Problems[0].Line > 0 {
		sep = " "
	}
	return "file " + e.File + sep + strings.Join(parts, "; ")
}

// Job is one monitored backup. Only the fields of its type may be set.
type Job struct {
	Name    string   `yaml:"name"`
	Type    string   `yaml:"type"`
	MaxAge  Duration `yaml:"max_age"`
	Path    string   `yaml:"path,omitempty"`
	LogFile string   `yaml:"log_file,omitempty"`
	Glob    string   `yaml:"glob,omitempty"`

	// dated_dir: name of the log in each set, which set directory names
	// count (the date is the first capture group, or the whole name), and
	// the line that marks success: with two capture groups "[n/m]" it must
	// have n == m, otherwise any match counts.
	LogName string `yaml:"log_name,omitempty"`
	// dated_dir: the directory the backup copies into each set's images/
	// (kvm_backup.sh: rsync /var/lib/libvirt/images/ images/); a VM disk
	// outside it is never in a set.
	ImagesSource string `yaml:"images_source,omitempty"`
	// dated_dir: where in a set the VM definitions and the disk copies are
	// (kvm_backup.sh: vm_xml/<vm>.xml and images/; the seed's first
	// script: libvirt-config/qemu/<vm>.xml and images/images/).
	VMXMLDir  string `yaml:"vm_xml_dir,omitempty"`
	ImagesDir string `yaml:"images_dir,omitempty"`
	// dated_dir: what says a set succeeded: its log's final step line
	// ("log"), or, for scripts that write no log, the set's contents
	// ("contents": every VM XML's disks present and nothing changed for
	// running_timeout).
	SuccessFrom    string `yaml:"success_from,omitempty"`
	SetPattern     Regexp `yaml:"set_pattern,omitempty"`
	SuccessPattern Regexp `yaml:"success_pattern,omitempty"`
	ErrorPattern   Regexp `yaml:"error_pattern,omitempty"`
	// dated_dir and restore_log: the line that starts a run (the scripts
	// append, so one log may hold several runs).
	StartPattern Regexp `yaml:"start_pattern,omitempty"`
	// rclone_log: the line the wrapper script appends after every run.
	EndPattern Regexp `yaml:"end_pattern,omitempty"`
	// A run without its success or end line is "running" while its files
	// changed within this time, and failed (killed) after it.
	RunningTimeout Duration `yaml:"running_timeout,omitempty"`
	// TimeZone is the IANA zone (Asia/Tokyo) the backup's times are
	// written in: its logs carry local times without an offset (`date
	// '+%F %T'`, rclone's --log-file, vzdump's archive names). Empty: the
	// exporter's own zone (TZ, else /etc/localtime), right when the backup
	// runs on this host; a log copied from a host in another zone needs
	// its zone here.
	TimeZone string `yaml:"time_zone,omitempty"`
	// Copies names the local job whose tree this sync job copies
	// elsewhere (rclone to S3, rsync to another mount): a VM's local copy
	// counts as offsite once a successful run of this job finished after
	// it (vmhost_backup_vm_offsite_timestamp_seconds, VMNoOffsiteCopy).
	// Only rclone_log and dated_dir jobs copy trees; only jobs with
	// per-VM backups (dated_dir, vzdump) can be copied.
	Copies string `yaml:"copies,omitempty"`

	// location is TimeZone loaded by validate; nil: the exporter's zone.
	location *time.Location
	// copied: some job of the config copies this one, so its scan keeps
	// every VM's copy times, not only the newest (set by linkCopies).
	copied bool
}

// copyableTypes are the job types with per-VM backups, which a sync job
// may name in copies.
var copyableTypes = []string{TypeDatedDir, TypeVzdump}

// fieldsByType lists the optional fields each type accepts.
var fieldsByType = map[string][]string{
	TypeDatedDir:   {"path", "log_name", "images_source", "vm_xml_dir", "images_dir", "success_from", "set_pattern", "start_pattern", "success_pattern", "error_pattern", "running_timeout", "time_zone", "copies"},
	TypeRcloneLog:  {"log_file", "end_pattern", "running_timeout", "time_zone", "copies"},
	TypeVzdump:     {"path", "running_timeout", "time_zone"},
	TypeRestoreLog: {"log_file", "start_pattern", "success_pattern", "error_pattern", "running_timeout", "time_zone"},
	// file_glob reads file times only, which carry no zone; its
	// running_timeout is how long a dump in progress may pause.
	TypeFileGlob: {"glob", "running_timeout"},
}

var requiredByType = map[string]string{
	TypeDatedDir: "path", TypeVzdump: "path", TypeRcloneLog: "log_file", TypeRestoreLog: "log_file", TypeFileGlob: "glob",
}

// LoadConfig reads and validates a config file. A file that cannot be
// read is an error wrapping the *fs.PathError (a missing default file is
// no error to the service); a file that is wrong is a *ConfigError.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	cfg, problems := parseConfig(data)
	if len(problems) > 0 {
		return nil, &ConfigError{File: path, Problems: problems}
	}
	return cfg, nil
}

// parseConfig insists on the jobs key: an empty file, or one cut short
// before it, is what a half-written or truncated file looks like (an editor
// saving, a config management run interrupted), and reading it as "no
// jobs" would silently stop all backup monitoring. `jobs: []` says "no
// jobs" on purpose. The problems come sorted by line.
func parseConfig(data []byte) (*Config, []Problem) {
	var raw struct {
		Jobs *[]Job `yaml:"jobs"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root) // best effort: only to point at lines and name fields
	at := jobLines(&root)
	// Fields the decoder cannot read (an unknown field, a duration
	// without unit) do not stop it: their jobs are left out of the
	// validation below and every other job is still checked, so that one
	// config-check run names all there is to fix.
	var problems []Problem
	undecoded := map[int]bool{}
	if err := dec.Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, []Problem{syntaxProblem(err)}
		}
		for _, e := range te.Errors {
			p := retell(e, &root)
			problems = append(problems, p)
			if i := at.jobAt(p.Line); i >= 0 {
				undecoded[i] = true
			}
		}
	}
	if raw.Jobs == nil {
		if len(problems) > 0 { // jobs is there, but no list of jobs
			return nil, problems
		}
		return nil, []Problem{{Message: "field jobs is missing or empty (an empty or truncated file?); write `jobs: []` to monitor no backups"}}
	}
	cfg := &Config{Jobs: *raw.Jobs, lines: at}
	problems = append(problems, cfg.validate(at, undecoded)...)
	if len(problems) > 0 {
		slices.SortStableFunc(problems, func(a, b Problem) int { return a.Line - b.Line })
		return nil, problems
	}
	cfg.linkCopies()
	for i := range cfg.Jobs {
		cfg.Jobs[i].setDefaults()
	}
	return cfg, nil
}

func (j *Job) setFields() map[string]bool {
	return map[string]bool{
		"path": j.Path != "", "log_file": j.LogFile != "", "glob": j.Glob != "",
		"log_name": j.LogName != "", "images_source": j.ImagesSource != "",
		"vm_xml_dir": j.VMXMLDir != "", "images_dir": j.ImagesDir != "", "success_from": j.SuccessFrom != "", "set_pattern": j.SetPattern.Regexp != nil,
		"success_pattern": j.SuccessPattern.Regexp != nil, "error_pattern": j.ErrorPattern.Regexp != nil,
		"start_pattern": j.StartPattern.Regexp != nil, "end_pattern": j.EndPattern.Regexp != nil,
		"running_timeout": j.RunningTimeout != 0, "time_zone": j.TimeZone != "", "copies": j.Copies != "",
	}
}

// validate checks every job but those the decoder could not read
// (undecoded: their problem is reported already) and returns each job's
// first problem, at the line of the field it is about (or of the job).
// at gives the lines.
func (c *Config) validate(at lineFinder, undecoded map[int]bool) []Problem {
	seen := map[string]bool{}
	var problems []Problem
	failed := map[string]bool{}
	for i := range c.Jobs {
		if undecoded[i] {
			failed[c.Jobs[i].Name] = true
			seen[c.Jobs[i].Name] = true
			continue
		}
		if p := c.validateJob(i, seen, at); p != nil {
			problems = append(problems, *p)
			failed[c.Jobs[i].Name] = true
		}
	}
	// After all jobs: copies may name a job further down the file. A job
	// with a problem already, or copying one, is not judged again: one
	// problem a job.
	for i, j := range c.Jobs {
		if failed[j.Name] || failed[j.Copies] {
			continue
		}
		if p := c.checkCopies(i, at); p != nil {
			problems = append(problems, *p)
		}
	}
	return problems
}

// jobLabel names job i in an error: its index and name.
func jobLabel(i int, j Job) string {
	if j.Name == "" {
		return fmt.Sprintf("jobs[%d]", i)
	}
	return fmt.Sprintf("jobs[%d] (%s)", i, j.Name)
}

func (c *Config) validateJob(i int, seen map[string]bool, at lineFinder) *Problem {
	j := &c.Jobs[i]
	bad := func(field, format string, args ...any) *Problem {
		return &Problem{Line: at.line(i, field), Message: jobLabel(i, *j) + ": " + fmt.Sprintf(format, args...)}
	}
	if j.Name == "" {
		return bad("", "field name is required")
	}
	if seen[j.Name] {
		return bad("name", "duplicate job name")
	}
	seen[j.Name] = true
	if time.Duration(j.MaxAge) <= 0 {
		return bad("max_age", "field max_age is required and must be positive")
	}
	allowed, known := fieldsByType[j.Type]
	if !known {
		return bad("type", "field type: unknown job type %q (want one of dated_dir, rclone_log, vzdump, restore_log, file_glob)", j.Type)
	}
	set := j.setFields()
	if req := requiredByType[j.Type]; !set[req] {
		return bad("", "field %s is required for type %s", req, j.Type)
	}
	for _, field := range slices.Sorted(maps.Keys(set)) {
		if set[field] && !contains(allowed, field) {
			return bad(field, "field %s is not used by type %s (its fields: %s)", field, j.Type, strings.Join(knownJobFields(j.Type), ", "))
		}
	}
	if j.SuccessFrom != "" && j.SuccessFrom != SuccessFromLog && j.SuccessFrom != SuccessFromContents {
		return bad("success_from", "field success_from: %q is neither log nor contents", j.SuccessFrom)
	}
	for _, field := range []string{"vm_xml_dir", "images_dir"} {
		dir := map[string]string{"vm_xml_dir": j.VMXMLDir, "images_dir": j.ImagesDir}[field]
		if filepath.IsAbs(dir) || strings.HasPrefix(filepath.Clean(dir), "..") {
			return bad(field, "field %s: %q must be a path inside each set", field, dir)
		}
	}
	if j.RunningTimeout < 0 {
		return bad("running_timeout", "field running_timeout must be positive")
	}
	if err := j.loadTimeZone(); err != nil {
		return bad("time_zone", "field time_zone: %v", err)
	}
	return nil
}

// checkCopies checks that job i's copies names a local job with per-VM
// backups: the offsite time of a VM is read from that job's copies.
func (c *Config) checkCopies(i int, at lineFinder) *Problem {
	j := c.Jobs[i]
	if j.Copies == "" {
		return nil
	}
	bad := func(format string, args ...any) *Problem {
		return &Problem{Line: at.line(i, "copies"), Message: jobLabel(i, j) + ": field copies: " + fmt.Sprintf(format, args...)}
	}
	if j.Copies == j.Name {
		return bad("a job cannot copy itself; name the local job whose tree this one copies")
	}
	target, ok := c.job(j.Copies)
	if !ok {
		return bad("%q is not the name of a job in this file", j.Copies)
	}
	if !contains(copyableTypes, target.Type) {
		return bad("job %q is of type %s, which has no per-VM backups; name a dated_dir or vzdump job", j.Copies, target.Type)
	}
	return nil
}

// linkCopies marks the jobs another job copies.
func (c *Config) linkCopies() {
	for i := range c.Jobs {
		c.Jobs[i].copied = false
	}
	for _, j := range c.Jobs {
		for k := range c.Jobs {
			if j.Copies != "" && c.Jobs[k].Name == j.Copies {
				c.Jobs[k].copied = true
			}
		}
	}
}

// loadTimeZone accepts IANA names only. "Local" would mean whatever zone
// the exporter runs in, which is what leaving the field out says, and a
// fixed abbreviation such as "JST" or "CET" is not a name the zone database
// knows (time.LoadLocation rejects it).
func (j *Job) loadTimeZone() error {
	if j.TimeZone == "" {
		return nil
	}
	if j.TimeZone == "Local" {
		return errors.New(`"Local" is not a zone name; leave time_zone out to use the exporter's zone`)
	}
	loc, err := time.LoadLocation(j.TimeZone)
	if err != nil {
		return fmt.Errorf("%q is not a known IANA time zone name such as Asia/Tokyo, Europe/Berlin or UTC: %w", j.TimeZone, err)
	}
	j.location = loc
	return nil
}

// Location is the zone the job's times are read in: its time_zone, or
// def (the exporter's zone).
func (j *Job) Location(def *time.Location) *time.Location {
	if j.location != nil {
		return j.location
	}
	return def
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (j *Job) setDefaults() {
	if j.LogName == "" {
		j.LogName = defaultLogName
	}
	if j.ImagesSource == "" {
		j.ImagesSource = defaultImagesSource
	}
	if j.VMXMLDir == "" {
		j.VMXMLDir = "vm_xml"
	}
	if j.ImagesDir == "" {
		j.ImagesDir = "images"
	}
	if j.SuccessFrom == "" {
		j.SuccessFrom = SuccessFromLog
	}
	def := func(r *Regexp, expr string) {
		if r.Regexp == nil {
			r.Regexp = regexp.MustCompile(expr)
		}
	}
	def(&j.SetPattern, defaultSetPattern)
	def(&j.ErrorPattern, defaultErrorPattern)
	def(&j.EndPattern, defaultRcloneEnd)
	def(&j.StartPattern, defaultRestoreStart)
	if j.Type == TypeRestoreLog {
		def(&j.SuccessPattern, defaultRestoreSuccess)
	}
	def(&j.SuccessPattern, defaultStepSuccess)
	if j.RunningTimeout == 0 && j.Type == TypeFileGlob {
		j.RunningTimeout = Duration(defaultFileGlobRunningTimeout)
	}
	if j.RunningTimeout == 0 {
		j.RunningTimeout = Duration(defaultRunningTimeout)
	}
}

// Duration is a Prometheus duration ("26h", "8d") whose parse errors carry
// the YAML line, which model.Duration's own decoder loses.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return valueError(n, "want a duration such as 26h or 8d, found "+yamlNodeKinds[n.Kind])
	}
	v, err := model.ParseDuration(n.Value)
	if err != nil {
		return valueError(n, fmt.Sprintf("%v (a number and a unit: 26h, 8d, 5w, 90m)", err))
	}
	*d = Duration(v)
	return nil
}

// Regexp is a regular expression field, compiled when the config is read.
type Regexp struct {
	*regexp.Regexp
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (r *Regexp) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return valueError(n, "want a regular expression (a string), found "+yamlNodeKinds[n.Kind])
	}
	re, err := regexp.Compile(n.Value)
	if err != nil {
		return valueError(n, err.Error())
	}
	r.Regexp = re
	return nil
}
