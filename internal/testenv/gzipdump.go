package testenv

import (
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"
)

// GzipDump is a real compressor writing a dump into its final name, fed by
// the test a chunk at a time through a pipe it keeps open: a long
// `mysqldump | gzip > db.sql.gz`, or vzdump's compressor filling its .dat,
// caught in the middle. It ends with the test if not finished.
type GzipDump struct {
	t       testing.TB
	path    string
	in      *os.File
	proc    *Process
	timeout time.Duration
}

// GzipDumpChunk is what Write feeds per chunk.
const GzipDumpChunk = 64 << 10

// StartGzipDump starts gzip writing path; timeout bounds each wait for it.
func StartGzipDump(t testing.TB, path string, timeout time.Duration) *GzipDump {
	t.Helper()
	LookPath(t, "gzip", "gzip")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", `exec gzip -1 > "$0"`, path)
	cmd.Stdin = r
	p := StartCommand(t, cmd)
	r.Close()
	t.Cleanup(func() { w.Close() })
	return &GzipDump{t: t, path: path, in: w, proc: p, timeout: timeout}
}

// Write feeds n chunks of random (incompressible) data and waits until
// gzip has written at least minSize bytes of the dump. gzip reads up to
// 256 KiB before it writes, so a partial dump is fed more than that.
func (d *GzipDump) Write(n int, minSize int64) {
	d.t.Helper()
	buf := make([]byte, GzipDumpChunk)
	for range n {
		if _, err := io.ReadFull(rand.Reader, buf); err != nil {
			d.t.Fatal(err)
		}
		if _, err := d.in.Write(buf); err != nil {
			d.t.Fatalf("feeding gzip: %v", err)
		}
	}
	Eventually(d.t, d.timeout, "gzip writing "+d.path, func() (bool, string) {
		info, err := os.Stat(d.path)
		if err != nil {
			return false, err.Error()
		}
		return info.Size() >= minSize, fmt.Sprintf("%d bytes", info.Size())
	})
}

// Finish ends the input, as the dumping program does when done, and waits
// for gzip to write its trailer and exit.
func (d *GzipDump) Finish() os.FileInfo {
	d.t.Helper()
	d.in.Close()
	select {
	case <-d.proc.Exited():
	case <-time.After(d.timeout):
		d.t.Fatal("gzip did not finish the dump")
	}
	if !d.proc.Cmd.ProcessState.Success() {
		d.t.Fatalf("gzip: %v: %s", d.proc.Cmd.ProcessState, d.proc.Output())
	}
	info, err := os.Stat(d.path)
	if err != nil {
		d.t.Fatal(err)
	}
	return info
}

// WriteGzipDump writes a finished dump of chunks chunks with gzip and dates
// it mtime: a night's dump, quiet since. It returns the dump's size.
func WriteGzipDump(t testing.TB, path string, chunks int, mtime time.Time, timeout time.Duration) int64 {
	t.Helper()
	d := StartGzipDump(t, path, timeout)
	d.Write(chunks, 1)
	d.Finish()
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}
