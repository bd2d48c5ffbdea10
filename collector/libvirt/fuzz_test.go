package libvirt

import (
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"
)

// FuzzDomainXML feeds arbitrary documents to the domain XML parser, seeded
// with real domain XML; the role it returns must always be a valid, bounded
// label value.
func FuzzDomainXML(f *testing.F) {
	files, _ := filepath.Glob("testdata/domain-*.xml")
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(data))
	}
	f.Fuzz(func(t *testing.T, doc string) {
		m, err := parseDomainXML(doc)
		if err != nil {
			return
		}
		if !utf8.ValidString(m.Role) || utf8.RuneCountInString(m.Role) > maxRoleLength {
			t.Fatalf("role %q is not a bounded UTF-8 label value", m.Role)
		}
	})
}

func FuzzSnapshotXML(f *testing.F) {
	f.Add("<domainsnapshot><name>s1</name><state>running</state><creationTime>1700000000</creationTime></domainsnapshot>")
	f.Fuzz(func(t *testing.T, doc string) {
		_, _ = parseSnapshotCreationTime(doc)
	})
}
