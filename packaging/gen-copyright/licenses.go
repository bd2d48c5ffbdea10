package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// licenceMarks tells the licences apart by wording only their texts have,
// compared after folding case, punctuation and line breaks. A text may
// match several (a file holding two licences); the ids are SPDX's.
var licenceMarks = []struct {
	id   string
	all  []string
	none []string
}{
	{id: "Apache-2.0", all: []string{"apache license", "version 2.0", "grant of patent license"}},
	// The licence's notice instead of its text, as a file naming two
	// licences has it.
	{id: "Apache-2.0", all: []string{"licensed under the apache license version 2.0"}},
	{id: "MPL-2.0", all: []string{"mozilla public license version 2.0"}},
	{id: "MIT", all: []string{"permission is hereby granted free of charge to any person obtaining a copy"}},
	{id: "ISC", all: []string{"permission to use copy modify and/or distribute this software for any purpose with or without fee is hereby granted"}},
	{id: "BSD-3-Clause", all: []string{"redistribution and use in source and binary forms", "neither the name"}},
	{id: "BSD-3-Clause", all: []string{"redistribution and use in source and binary forms", "names of its contributors may be used to endorse"}},
	{id: "BSD-2-Clause", all: []string{"redistribution and use in source and binary forms"},
		none: []string{"neither the name", "names of its contributors may be used to endorse"}},
}

var nonWord = regexp.MustCompile(`[^a-z0-9]+`)

// fold is text in lower case with every run of other characters one space,
// so that a licence reflowed or re-punctuated still matches.
func fold(text string) string {
	return " " + strings.TrimSpace(nonWord.ReplaceAllString(strings.ToLower(text), " ")) + " "
}

// classify returns the ids of the licences text is, sorted; none when it is
// none this program knows (which fails the build: a module under a licence
// nobody has read must not ship unnoticed).
func classify(text string) []string {
	f := fold(text)
	var ids []string
	for _, m := range licenceMarks {
		ok := true
		for _, w := range m.all {
			ok = ok && strings.Contains(f, fold(w))
		}
		for _, w := range m.none {
			ok = ok && !strings.Contains(f, fold(w))
		}
		if ok && !slices.Contains(ids, m.id) {
			ids = append(ids, m.id)
		}
	}
	slices.Sort(ids)
	return ids
}

var licenceFileName = regexp.MustCompile(`(?i)^(licen[cs]e|copying)([.-][a-z0-9.-]+)?$`)

// licenceFile is one licence text of a module and what it is.
type licenceFile struct {
	name string
	text string
	ids  []string
}

// moduleLicences reads the licence files at the top of a module's
// directory: LICENSE, LICENSE.md, COPYING, LICENSE.BSD and the like. Files
// that name no licence (a COPYING.md explaining a dual licence) are left
// out when another file does.
func moduleLicences(dir string) ([]licenceFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []licenceFile
	for _, e := range entries {
		if e.IsDir() || !licenceFileName.MatchString(e.Name()) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		if ids := classify(string(data)); len(ids) > 0 {
			files = append(files, licenceFile{name: e.Name(), text: string(data), ids: ids})
		}
	}
	return files, nil
}

// copyrightStatement is a line that states a copyright: the word or sign,
// perhaps "(c)", then a year. A sentence that merely begins with the word
// is no statement.
var copyrightStatement = regexp.MustCompile(`(?i)^(copyright|©)\s*(\(c\)|©)?\s*\d{4}`)

// copyrightLines are the copyright statements of a licence text.
func copyrightLines(text string) []string {
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if copyrightStatement.MatchString(l) && !slices.Contains(lines, l) {
			lines = append(lines, l)
		}
	}
	return lines
}
