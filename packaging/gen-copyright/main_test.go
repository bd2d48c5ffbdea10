package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestClassify: each fixture is a licence text as modules ship it; the
// file name says what it is.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string
	}{
		{"apache-2.0.txt", []string{"Apache-2.0"}},
		{"mpl-2.0.txt", []string{"MPL-2.0"}},
		{"mit.txt", []string{"MIT"}},
		{"isc.txt", []string{"ISC"}},
		{"bsd-2-clause.txt", []string{"BSD-2-Clause"}},
		{"bsd-3-clause.txt", []string{"BSD-3-Clause"}},
		// gopkg.in/yaml.v3: the MIT text and the Apache licence's notice.
		{"mit-and-apache-2.0-notice.txt", []string{"Apache-2.0", "MIT"}},
		// A licence this program does not know is none, never a guess.
		{"gpl-2.0-unknown.txt", nil},
	} {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "licenses", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if got := classify(string(data)); !slices.Equal(got, tc.want) {
				t.Errorf("classify = %v, want %v", got, tc.want)
			}
			// Reflowed (as some modules ship it) it is still the same.
			reflowed := strings.Join(strings.Fields(string(data)), "\n")
			if got := classify(reflowed); !slices.Equal(got, tc.want) {
				t.Errorf("classify of the reflowed text = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCopyrightLines(t *testing.T) {
	text := "Copyright (c) 2006-2010 Kirill Simonov\n" +
		"copyright staring in 2011 when the project was ported over:\n" +
		"   Copyright [yyyy] [name of copyright owner]\n" +
		"  Copyright 2009 The Go Authors.\n" +
		"Copyright (c) 2006-2010 Kirill Simonov\n" +
		"© 2020 Someone\n"
	want := []string{"Copyright (c) 2006-2010 Kirill Simonov", "Copyright 2009 The Go Authors.", "© 2020 Someone"}
	if got := copyrightLines(text); !slices.Equal(got, want) {
		t.Errorf("copyrightLines = %q, want %q", got, want)
	}
}

func TestEscapePath(t *testing.T) {
	if got := escapePath("github.com/BurntSushi/toml"); got != "github.com/!burnt!sushi/toml" {
		t.Errorf("escapePath = %q", got)
	}
}

// fakeModule writes a module directory with the given files from
// testdata/licenses (name in module: fixture).
func fakeModule(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, fixture := range files {
		data := []byte(fixture)
		if strings.HasSuffix(fixture, ".txt") {
			var err error
			if data, err = os.ReadFile(filepath.Join("testdata", "licenses", fixture)); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRender: every module gets a Files paragraph with its licences, the
// texts it must carry (not Apache's, which is the project's LICENSE), and
// its NOTICE; a module under an unknown licence fails the build.
func TestRender(t *testing.T) {
	root := t.TempDir()
	mit, dual, apache := filepath.Join(root, "mit"), filepath.Join(root, "dual"), filepath.Join(root, "apache")
	fakeModule(t, mit, map[string]string{"LICENSE.md": "mit.txt", "README.md": "not a licence"})
	fakeModule(t, dual, map[string]string{"LICENSE.BSD": "bsd-3-clause.txt", "LICENSE.MPL-2.0": "mpl-2.0.txt", "COPYING.md": "See the two files."})
	fakeModule(t, apache, map[string]string{"LICENSE": "apache-2.0.txt", "NOTICE": "Prometheus instrumentation library\nCopyright 2012-2015 The Prometheus Authors\n\nThis product includes software developed at SoundCloud Ltd.\n"})
	var b strings.Builder
	err := render(&b, "Format: x\n\nFiles: *\nLicense: Apache-2.0\n", []module{
		{"example.com/mit", "v1.0.0", mit}, {"example.com/dual", "v0.6.1", dual}, {"example.com/apache", "v1.2.3", apache},
	})
	if err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"Files: example.com/mit@v1.0.0/*\nCopyright: Copyright (C) 2013 Blake Mizerany\nLicense: MIT\n The module's LICENSE.md:\n .\n Copyright (C) 2013 Blake Mizerany\n .\n Permission is hereby granted",
		"Files: example.com/dual@v0.6.1/*\nCopyright: Copyright 2009 The Go Authors.\nLicense: BSD-3-Clause and MPL-2.0\n",
		" The module's LICENSE.MPL-2.0:\n .\n Mozilla Public License Version 2.0\n",
		"Files: example.com/apache@v1.2.3/*\nCopyright: the authors of example.com/apache\nLicense: Apache-2.0\n The text of the Apache License 2.0",
		"Comment: The module's NOTICE:\n .\n Prometheus instrumentation library\n Copyright 2012-2015 The Prometheus Authors\n .\n This product includes",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "See the two files") || strings.Contains(out, "TERMS AND CONDITIONS") {
		t.Errorf("output carries a file that is no licence, or Apache's text:\n%s", out)
	}
	// Every line of a paragraph is a field or a continuation.
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if l != "" && !strings.HasPrefix(l, " ") && !strings.Contains(l, ": ") {
			t.Errorf("line is neither field nor continuation: %q", l)
		}
	}

	gpl := filepath.Join(root, "gpl")
	fakeModule(t, gpl, map[string]string{"COPYING": "gpl-2.0-unknown.txt"})
	err = render(&strings.Builder{}, "", []module{{"example.com/gpl", "v1.0.0", gpl}})
	if err == nil || !strings.Contains(err.Error(), "example.com/gpl v1.0.0: no licence file of a known licence") {
		t.Errorf("render of a GPL-2.0 module: err = %v, want one naming the module", err)
	}
}
