package backup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// yaml.v3 reports what it cannot decode in Go's words: "line 5: field
// maxage not found in type backup.Job", several such lines joined by
// newlines (which a log shows as a literal \n). An operator edits YAML, so
// the errors are retold in its words: the job's name, the field, the
// fields that job accepts.
var (
	yamlUnknownField = regexp.MustCompile(`^line (\d+): field (.+) not found in type (.+)$`)
	// valueError's: a field value that does not parse.
	yamlBadValue = regexp.MustCompile(`^line (\d+) column (\d+): (.*)$`)
	yamlCannot   = regexp.MustCompile(`^line (\d+): cannot unmarshal !!(\w+)(?: ` + "`" + `(.*)` + "`" + `)? into (.+)$`)
)

// yamlNodeKinds names what a YAML node is, for an operator.
var yamlNodeKinds = map[yaml.Kind]string{
	yaml.SequenceNode: "a list", yaml.MappingNode: "a mapping", yaml.AliasNode: "an alias", yaml.DocumentNode: "a document",
}

// yamlKinds names YAML node tags for an operator.
var yamlKinds = map[string]string{
	"str": "a string", "int": "a number", "float": "a number", "bool": "true or false",
	"seq": "a list", "map": "a mapping", "null": "nothing", "timestamp": "a date",
}

// yamlError retells a decoder error of data in YAML's words; other errors
// pass unchanged.
func yamlError(err error, data []byte) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root) // best effort: only to name the jobs
	msgs := make([]string, 0, len(te.Errors))
	for _, e := range te.Errors {
		msgs = append(msgs, retell(e, &root))
	}
	return errors.New(strings.Join(msgs, "; "))
}

func retell(e string, root *yaml.Node) string {
	if m := yamlBadValue.FindStringSubmatch(e); m != nil {
		line, _ := strconv.Atoi(m[1])
		column, _ := strconv.Atoi(m[2])
		if field, where := fieldAt(root, line, column); field != "" {
			return fmt.Sprintf("line %d: field %s of %s: %s", line, field, where, m[3])
		}
		return fmt.Sprintf("line %d: %s", line, m[3])
	}
	if m := yamlUnknownField.FindStringSubmatch(e); m != nil {
		line, _ := strconv.Atoi(m[1])
		if strings.HasSuffix(m[3], "backup.Job") {
			where, typ := jobAtLine(root, line)
			return fmt.Sprintf("line %d: unknown field %q in %s (known: %s)", line, m[2], where, strings.Join(knownJobFields(typ), ", "))
		}
		return fmt.Sprintf("line %d: unknown top-level field %q (known: jobs)", line, m[2])
	}
	if m := yamlCannot.FindStringSubmatch(e); m != nil {
		line, _ := strconv.Atoi(m[1])
		got := yamlKinds[m[2]]
		if got == "" {
			got = m[2]
		}
		if m[3] != "" {
			got += fmt.Sprintf(" (%s)", m[3])
		}
		want := map[string]string{
			"backup.Config": "a mapping with the key jobs", "[]backup.Job": "a list of jobs",
			"backup.Job": "a job (a mapping with name, type, max_age…)", "string": "a string",
			"backup.Duration": "a duration such as 26h or 8d", "backup.Regexp": "a regular expression (a string)",
		}[strings.TrimPrefix(m[4], "*")]
		if want == "" {
			want = "something else"
		}
		if strings.HasPrefix(m[4], "struct") {
			want = "a mapping with the key jobs"
		}
		where := ""
		if w, _ := jobAtLine(root, line); w != "the job" {
			where = " in " + w
		}
		return fmt.Sprintf("line %d: found %s%s where YAML must have %s", line, got, where, want)
	}
	return e
}

// jobAtLine names the job whose mapping holds line, and its type.
func jobAtLine(root *yaml.Node, line int) (where, typ string) {
	where = "the job"
	if root == nil || len(root.Content) == 0 {
		return where, ""
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return where, ""
	}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value != "jobs" || doc.Content[i+1].Kind != yaml.SequenceNode {
			continue
		}
		items := doc.Content[i+1].Content
		for k, item := range items {
			next := int(^uint(0) >> 1)
			if k+1 < len(items) {
				next = items[k+1].Line
			}
			if line < item.Line || line >= next || item.Kind != yaml.MappingNode {
				continue
			}
			name := ""
			for f := 0; f+1 < len(item.Content); f += 2 {
				switch item.Content[f].Value {
				case "name":
					name = item.Content[f+1].Value
				case "type":
					typ = item.Content[f+1].Value
				}
			}
			if name == "" {
				return fmt.Sprintf("job %d of jobs", k+1), typ
			}
			return fmt.Sprintf("job %q", name), typ
		}
	}
	return where, ""
}

// knownJobFields are the fields a job of type typ accepts, or every job
// field when the type is unknown.
func knownJobFields(typ string) []string {
	common := []string{"name", "type", "max_age"}
	if fields, ok := fieldsByType[typ]; ok {
		return append(common, fields...)
	}
	var all []string
	rt := reflect.TypeOf(Job{})
	for i := range rt.NumField() {
		tag, _, _ := strings.Cut(rt.Field(i).Tag.Get("yaml"), ",")
		if tag != "" && tag != "-" && !slices.Contains(common, tag) {
			all = append(all, tag)
		}
	}
	return append(common, all...)
}

// loadError names the file in an error of parseConfig: "file F line N:
// ..." for what the decoder points at, "file F: ..." otherwise.
func loadError(path string, err error) error {
	if strings.HasPrefix(err.Error(), "line ") {
		return fmt.Errorf("file %s %w", path, err)
	}
	return fmt.Errorf("file %s: %w", path, err)
}

// CheckPaths says what is wrong with the paths of the jobs beyond what
// loading checks: problems (a path that is not absolute, which would be
// read relative to wherever the service starts) and warnings (a path that
// does not exist now: a typo, or a backup that has not run yet).
func (c *Config) CheckPaths() (problems, warnings []string) {
	for _, j := range c.Jobs {
		p := jobSource(j)
		field := map[bool]string{true: "path", false: "log_file"}[j.Path != ""]
		if j.Glob != "" {
			field = "glob"
		}
		if !filepath.IsAbs(p) {
			problems = append(problems, fmt.Sprintf("job %q: %s %q is not an absolute path", j.Name, field, p))
			continue
		}
		check := p
		if j.Glob != "" {
			// The directory a glob lists, up to its first pattern.
			check = filepath.Dir(p)
			for strings.ContainsAny(check, `*?[\`) {
				check = filepath.Dir(check)
			}
		}
		if _, err := os.Stat(check); err != nil {
			what := "does not exist"
			if !errors.Is(err, os.ErrNotExist) {
				what = "cannot be read: " + unwrapPath(err).Error()
			}
			warnings = append(warnings, fmt.Sprintf("job %q: %s %s %s", j.Name, field, check, what))
		}
	}
	return problems, warnings
}

// lineFinder knows where each job of a file starts and where its fields
// are, so that a validation error can point at the line to fix.
type lineFinder []map[string]int

// jobLines reads the lines of the jobs of a decoded file: per job, ""
// is the job's first line, and each field's key line.
func jobLines(root *yaml.Node) lineFinder {
	var lines lineFinder
	if root == nil || len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	doc := root.Content[0]
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value != "jobs" || doc.Content[i+1].Kind != yaml.SequenceNode {
			continue
		}
		for _, item := range doc.Content[i+1].Content {
			fields := map[string]int{"": item.Line}
			for f := 0; f+1 < len(item.Content); f += 2 {
				fields[item.Content[f].Value] = item.Content[f].Line
			}
			lines = append(lines, fields)
		}
	}
	return lines
}

// line is the line of job i's field, or of the job when the field is
// not in the file (a required one left out).
func (l lineFinder) line(i int, field string) int {
	if i >= len(l) {
		return 1 // not reached: the jobs were decoded from the same file
	}
	if n, ok := l[i][field]; ok {
		return n
	}
	return l[i][""]
}

// valueError reports a field value that does not parse (a duration
// without its unit, a bad regular expression) as the decoder's own type
// errors are reported: decoding goes on, so the other fields' and jobs'
// problems are found in the same run. retell names the field and job
// from the value's line and column.
func valueError(n *yaml.Node, msg string) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d column %d: %s", n.Line, n.Column, msg)}}
}

// lineOf is the line a problem starts with ("line 5: ..."), 0 if none.
func lineOf(problem string) int {
	rest, ok := strings.CutPrefix(problem, "line ")
	if !ok {
		return 0
	}
	end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(rest)
	}
	n, _ := strconv.Atoi(rest[:end])
	return n
}

// jobAt is the index of the job whose lines hold line, -1 before the
// first.
func (l lineFinder) jobAt(line int) int {
	at := -1
	for i, fields := range l {
		if fields[""] <= line {
			at = i
		}
	}
	return at
}

// fieldAt names the key whose value starts at line and column, and the
// job that holds it.
func fieldAt(root *yaml.Node, line, column int) (field, where string) {
	var walk func(n *yaml.Node) bool
	walk = func(n *yaml.Node) bool {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if v := n.Content[i+1]; v.Line == line && v.Column == column {
					field = n.Content[i].Value
					return true
				}
			}
		}
		for _, c := range n.Content {
			if walk(c) {
				return true
			}
		}
		return false
	}
	walk(root)
	where, _ = jobAtLine(root, line)
	return field, where
}
