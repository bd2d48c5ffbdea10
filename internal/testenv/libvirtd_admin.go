package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// VirtAdmin runs virt-admin against the daemon's admin socket, which a test
// uses to see the daemon from its own side: its clients, and what they
// sent it (LogRPC). It fails the test when virt-admin fails.
func (l *Libvirtd) VirtAdmin(t testing.TB, args ...string) string {
	t.Helper()
	LookPath(t, "virt-admin", "libvirt-clients")
	uri := "libvirtd:///system?socket=" + filepath.Join(l.RunDir, "libvirt-admin-sock")
	out, err := exec.Command("virt-admin", append([]string{"-c", uri}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("virt-admin %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

var nclientsLine = regexp.MustCompile(`(?m)^\s*nclients\s*:\s*(\d+)\s*$`)

// Clients is how many clients the daemon's libvirtd server (its read-only
// and read-write sockets; not the admin socket virt-admin uses) has now.
func (l *Libvirtd) Clients(t testing.TB) int {
	t.Helper()
	out := l.VirtAdmin(t, "srv-clients-info", "libvirtd")
	m := nclientsLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("virt-admin srv-clients-info libvirtd: no nclients in\n%s", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// RPCLog is the daemon's own record of the connections it accepted and the
// calls it read from them, in a file of the test's (see LogRPC).
type RPCLog struct {
	path string
}

// LogRPC makes the daemon log, from now on, every client it accepts and
// every message it reads, at info level: libvirt's RPC_SERVER_CLIENT_NEW
// and RPC_SERVER_CLIENT_MSG_RX probes. Warnings still go to its stderr.
func (l *Libvirtd) LogRPC(t testing.TB) *RPCLog {
	t.Helper()
	r := &RPCLog{path: filepath.Join(t.TempDir(), "libvirtd-rpc.log")}
	l.VirtAdmin(t, "daemon-log-filters", "2:rpc.netserverclient")
	l.VirtAdmin(t, "daemon-log-outputs", "3:stderr 2:file:"+r.path)
	return r
}

// RPCMark is a position in an RPCLog.
type RPCMark int64

// Mark is the end of the log now: Since counts what the daemon logs after it.
func (r *RPCLog) Mark(t testing.TB) RPCMark {
	t.Helper()
	fi, err := os.Stat(r.path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return RPCMark(fi.Size())
}

// RPCCounts is what the daemon's libvirtd server saw in a part of its log.
type RPCCounts struct {
	// Clients is how many connections it accepted.
	Clients int
	// Calls is how many calls of the remote program (every libvirt API
	// call a client such as the exporter makes) it read, by procedure
	// number (remote_protocol.x).
	Calls map[int]int
}

// Total is the number of calls of every procedure.
func (c RPCCounts) Total() int {
	n := 0
	for _, v := range c.Calls {
		n += v
	}
	return n
}

func (c RPCCounts) String() string {
	return fmt.Sprintf("%d new clients, %d calls (by procedure: %v)", c.Clients, c.Total(), c.Calls)
}

// remoteProgram is REMOTE_PROGRAM, the libvirt API over RPC; the admin
// socket speaks another program, so virt-admin's own calls do not count.
const remoteProgram = "536903814"

var (
	clientNew = regexp.MustCompile(`RPC_SERVER_CLIENT_NEW: client=(0x[0-9a-f]+)`)
	msgRX     = regexp.MustCompile(`RPC_SERVER_CLIENT_MSG_RX: client=(0x[0-9a-f]+) len=\d+ prog=(\d+) vers=\d+ proc=(\d+) type=0 `)
)

// Since counts the clients accepted and the calls read after mark. A client
// counts once its first remote-program call is read, so virt-admin's own
// connections to the admin socket are left out.
func (r *RPCLog) Since(t testing.TB, mark RPCMark) RPCCounts {
	t.Helper()
	data, err := os.ReadFile(r.path)
	if err != nil {
		t.Fatalf("libvirtd's RPC log: %v", err)
	}
	if int64(mark) > int64(len(data)) {
		t.Fatalf("libvirtd's RPC log shrank below mark %d", mark)
	}
	// A client's address may be reused by a later one: each
	// RPC_SERVER_CLIENT_NEW starts a new client at that address.
	pending := map[string]bool{}
	out := RPCCounts{Calls: map[int]int{}}
	for _, line := range strings.Split(string(data[mark:]), "\n") {
		if m := clientNew.FindStringSubmatch(line); m != nil {
			pending[m[1]] = true
			continue
		}
		m := msgRX.FindStringSubmatch(line)
		if m == nil || m[2] != remoteProgram {
			continue
		}
		proc, _ := strconv.Atoi(m[3])
		out.Calls[proc]++
		if pending[m[1]] {
			delete(pending, m[1])
			out.Clients++
		}
	}
	return out
}
