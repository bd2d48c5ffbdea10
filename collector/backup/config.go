// Package backup will monitor the freshness, success, size and VM coverage of
// the host's backups. This file holds the job configuration, parsed strictly
// so that a typo in a field name is an error and not a silently ignored key.
package backup

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
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

// Config is the content of --backup.config-file.
type Config struct {
	Jobs []Job `yaml:"jobs"`
}

// Job is one monitored backup.
type Job struct {
	Name    string   `yaml:"name"`
	Type    string   `yaml:"type"`
	MaxAge  Duration `yaml:"max_age"`
	Path    string   `yaml:"path,omitempty"`
	LogFile string   `yaml:"log_file,omitempty"`
	Glob    string   `yaml:"glob,omitempty"`
}

// LoadConfig reads and validates a config file. Errors name the file and,
// where the YAML decoder knows it, the line and field.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	cfg, err := parseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

func parseConfig(data []byte) (*Config, error) {
	cfg := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (c *Config) validate() error {
	seen := map[string]bool{}
	for i, j := range c.Jobs {
		where := fmt.Sprintf("jobs[%d]", i)
		if j.Name == "" {
			return fmt.Errorf("%s: field name is required", where)
		}
		where = fmt.Sprintf("jobs[%d] (%s)", i, j.Name)
		if seen[j.Name] {
			return fmt.Errorf("%s: duplicate job name", where)
		}
		seen[j.Name] = true
		if time.Duration(j.MaxAge) <= 0 {
			return fmt.Errorf("%s: field max_age is required and must be positive", where)
		}
		need := map[string]string{
			TypeDatedDir: j.Path, TypeVzdump: j.Path,
			TypeRcloneLog: j.LogFile, TypeRestoreLog: j.LogFile,
			TypeFileGlob: j.Glob,
		}
		field := map[string]string{
			TypeDatedDir: "path", TypeVzdump: "path",
			TypeRcloneLog: "log_file", TypeRestoreLog: "log_file",
			TypeFileGlob: "glob",
		}
		v, known := need[j.Type]
		if !known {
			return fmt.Errorf("%s: field type: unknown job type %q (want one of dated_dir, rclone_log, vzdump, restore_log, file_glob)", where, j.Type)
		}
		if v == "" {
			return fmt.Errorf("%s: field %s is required for type %s", where, field[j.Type], j.Type)
		}
	}
	return nil
}

// Duration is a Prometheus duration ("26h", "8d") whose parse errors carry
// the YAML line, which model.Duration's own decoder loses.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := model.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}
