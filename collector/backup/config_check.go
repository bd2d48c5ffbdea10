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

// yamlSyntax is the decoder's error for a file it cannot parse as YAML.
var yamlSyntax = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxProblem points at the line yaml.v3 names in a syntax error
// (where the construct it could not finish starts, at worst a few lines
// above the mistake), so that an editor jumps there.
func syntaxProblem(err error) Problem {
	if m := yamlSyntax.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{Line: line, Message: "yaml: " + m[2]}
	}
	return Problem{Message: err.Error()}
}

// yamlLine is the line a decoder's type error starts with, when retell
// has no better words for it.
var yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)

// retell says one of the decoder's type errors in an operator's words, at
// its line.
func retell(e string, root *yaml.Node) Problem {
	if m := yamlBadValue.FindStringSubmatch(e); m != nil {
		line, _ := strconv.Atoi(m[1])
		column, _ := strconv.Atoi(m[2])
		if field, where := fieldAt(root, line, column); field != "" {
			return Problem{line, fmt.Sprintf("field %s of %s: %s", field, where, m[3])}
		}
		return Problem{line, m[3]}
	}
	if m := yamlUnknownField.FindStringSubmatch(e); m != nil {
		line, _ := strconv.Atoi(m[1])
		if strings.HasSuffix(m[3], "backup.Job") {
			where, typ := jobAtLine(root, line)
			return Problem{line, fmt.Sprintf("unknown field %q in %s (known: %s)", m[2], where, strings.Join(knownJobFields(typ), ", "))}
		}
		return Problem{line, fmt.Sprintf("unknown top-level field %q (known: jobs)", m[2])}
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
		return Problem{line, fmt.Sprintf("found %s%s where YAML must have %s", got, where, want)}
	}
	if m := yamlLine.FindStringSubmatch(e); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{line, m[2]}
	}
	return Problem{Message: e}
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

// CheckPaths says what is wrong with the paths of the jobs beyond what
// loading checks: problems (a path that is not absolute, which would be
// read relative to wherever the service starts) and warnings (a path that
// does not exist now: a typo, or a backup that has not run yet), each at
// the line of the job's path, log_file or glob.
func (c *Config) CheckPaths() (problems, warnings []Problem) {
	for i, j := range c.Jobs {
		p := jobSource(j)
		field := map[bool]string{true: "path", false: "log_file"}[j.Path != ""]
		if j.Glob != "" {
			field = "glob"
		}
		line := c.lines.line(i, field)
		if !filepath.IsAbs(p) {
			problems = append(problems, Problem{line, fmt.Sprintf("job %q: %s %q is not an absolute path", j.Name, field, p)})
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
			warnings = append(warnings, Problem{line, fmt.Sprintf("job %q: %s %s %s", j.Name, field, check, what)})
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
// not in the file (a required one left out); 0 for a job of no file.
func (l lineFinder) line(i int, field string) int {
	if i >= len(l) {
		return 0
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
