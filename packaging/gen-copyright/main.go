// Command gen-copyright writes the copyright file of the packages (Debian's
// machine-readable format, also shipped in the .rpm and the tarball): the
// project's own paragraph, then one paragraph for the Go standard library
// and every module the built binary links statically, as its build
// information lists them, with the licence read from the module's own
// files in the module cache. `make package` runs it on the binary it
// packages, so the list never drifts from what ships.
//
//	gen-copyright -binary dist/vmhost_exporter -header packaging/copyright \
//	  -modcache "$(go env GOMODCACHE)" -goroot "$(go env GOROOT)" -o copyright
package main

import (
	"bytes"
	"debug/buildinfo"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
)

// module is one statically linked body of code and where its files are.
type module struct {
	path, version, dir string
}

func main() {
	binary := flag.String("binary", "", "the built Go binary whose modules to list")
	header := flag.String("header", "", "the copyright file's hand-written paragraphs (the project's own)")
	modcache := flag.String("modcache", "", "the module cache (go env GOMODCACHE)")
	goroot := flag.String("goroot", "", "the Go installation that built the binary (go env GOROOT)")
	out := flag.String("o", "", "output file (default: standard output)")
	flag.Parse()
	if err := run(*binary, *header, *modcache, *goroot, *out); err != nil {
		fmt.Fprintln(os.Stderr, "gen-copyright:", err)
		os.Exit(1)
	}
}

func run(binary, header, modcache, goroot, out string) error {
	if binary == "" || header == "" || modcache == "" || goroot == "" {
		return errors.New("-binary, -header, -modcache and -goroot are required")
	}
	bi, err := buildinfo.ReadFile(binary)
	if err != nil {
		return fmt.Errorf("reading the build information of %s: %w", binary, err)
	}
	head, err := os.ReadFile(header)
	if err != nil {
		return err
	}
	mods := []module{{path: "Go standard library", version: bi.GoVersion, dir: goroot}}
	for _, d := range bi.Deps {
		if d.Replace != nil {
			d = d.Replace
		}
		dir := d.Path
		if !filepath.IsAbs(dir) && !strings.HasPrefix(dir, ".") {
			dir = filepath.Join(modcache, escapePath(d.Path)+"@"+escapePath(d.Version))
		}
		mods = append(mods, module{path: d.Path, version: d.Version, dir: dir})
	}
	var buf bytes.Buffer
	if err := render(&buf, string(head), mods); err != nil {
		return err
	}
	if out == "" {
		_, err = os.Stdout.Write(buf.Bytes())
		return err
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}

// escapePath is a module path or version as the module cache spells it:
// an upper-case letter becomes '!' and its lower case (case-insensitive
// file systems).
func escapePath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if unicode.IsUpper(r) {
			b.WriteByte('!')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// render writes header, then a Files paragraph per module: "Files:
// <module>@<version>/*", its copyright lines, its licence ids and every
// licence text it ships but Apache-2.0's, which is the project's own
// LICENSE beside this file (and in /usr/share/common-licenses on Debian),
// then its NOTICE, which the Apache licence asks redistributors to pass
// on. A module whose licence is unknown is an error.
func render(w io.Writer, header string, mods []module) error {
	fmt.Fprint(w, strings.TrimRight(header, "\n")+"\n")
	for _, m := range mods {
		files, err := moduleLicences(m.dir)
		if err != nil {
			return fmt.Errorf("%s %s: %w", m.path, m.version, err)
		}
		if len(files) == 0 {
			return fmt.Errorf("%s %s: no licence file of a known licence in %s", m.path, m.version, m.dir)
		}
		var ids, copyrights []string
		for _, f := range files {
			for _, id := range f.ids {
				if !slices.Contains(ids, id) {
					ids = append(ids, id)
				}
			}
			for _, c := range copyrightLines(f.text) {
				if !slices.Contains(copyrights, c) {
					copyrights = append(copyrights, c)
				}
			}
		}
		if len(copyrights) == 0 {
			copyrights = []string{"the authors of " + m.path}
		}
		fmt.Fprintf(w, "\nFiles: %s@%s/*\n", m.path, m.version)
		fmt.Fprintf(w, "Copyright: %s\n", strings.Join(copyrights, "\n "))
		fmt.Fprintf(w, "License: %s\n", strings.Join(ids, " and "))
		for _, f := range files {
			if len(f.ids) == 1 && f.ids[0] == "Apache-2.0" {
				fmt.Fprintf(w, " The text of the Apache License 2.0 (the module's %s) is the file\n LICENSE of vmhost_exporter, beside this file; on Debian systems also\n /usr/share/common-licenses/Apache-2.0.\n", f.name)
				continue
			}
			fmt.Fprintf(w, " The module's %s:\n .\n%s", f.name, continuation(f.text))
		}
		notices, err := filepath.Glob(filepath.Join(m.dir, "NOTICE*"))
		if err != nil {
			return err
		}
		// One Comment field a paragraph (DEP-5): several notices are
		// parts of it, each introduced by its file name.
		for i, n := range notices {
			data, err := os.ReadFile(n)
			if err != nil {
				return err
			}
			if i == 0 {
				fmt.Fprintf(w, "Comment: The module's %s:\n .\n%s", filepath.Base(n), continuation(string(data)))
			} else {
				fmt.Fprintf(w, " .\n The module's %s:\n .\n%s", filepath.Base(n), continuation(string(data)))
			}
		}
	}
	return nil
}

// continuation is text as continuation lines of a field: each line
// indented by one space, an empty line as " .".
func continuation(text string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(strings.ReplaceAll(text, "\r\n", "\n"), "\n \t"), "\n") {
		l = strings.TrimRight(l, " \t")
		if l == "" {
			l = "."
		}
		b.WriteString(" " + l + "\n")
	}
	return b.String()
}
