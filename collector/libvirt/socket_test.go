package libvirt

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestChooseSocket(t *testing.T) {
	dir := t.TempDir()
	ro, qemud := filepath.Join(dir, "libvirt-sock-ro"), filepath.Join(dir, "virtqemud-sock-ro")
	listen := func(path string) {
		t.Helper()
		l, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
	}
	for _, tc := range []struct {
		name       string
		present    []string
		candidates []string
		want       string
		wantErr    []string
	}{
		{"none: both named", nil, []string{ro, qemud}, "", []string{ro, qemud, "virtqemud"}},
		{"virtqemud only (EL9)", []string{qemud}, []string{ro, qemud}, qemud, nil},
		{"libvirtd first", []string{ro, qemud}, []string{ro, qemud}, ro, nil},
		{"libvirtd only", []string{ro}, []string{ro, qemud}, ro, nil},
		// Named on the command line: used as given, the dial reports it.
		{"one, absent", []string{qemud}, []string{ro}, ro, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range []string{ro, qemud} {
				os.Remove(p)
			}
			for _, p := range tc.present {
				listen(p)
			}
			got, err := chooseSocket(tc.candidates)
			if got != tc.want {
				t.Errorf("chose %q, want %q", got, tc.want)
			}
			if (err != nil) != (tc.wantErr != nil) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}
