package libvirt

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

// The read-only sockets a host may have: the monolithic libvirtd's
// (Debian, EL8), and the modular QEMU daemon's (EL9, where virtqemud
// replaces libvirtd and libvirt-sock-ro exists only if virtproxyd runs).
const (
	LibvirtdSocket  = "/var/run/libvirt/libvirt-sock-ro"
	VirtqemudSocket = "/var/run/libvirt/virtqemud-sock-ro"
)

// DefaultSockets are tried in this order when no socket is configured.
var DefaultSockets = []string{LibvirtdSocket, VirtqemudSocket}

// chooseSocket picks the socket to dial: the first of candidates that
// exists and is not stale. It runs before every (re)connect, so a daemon
// started after the exporter, or a host switched to the modular daemons,
// is found without a restart. A socket file that refuses connections is
// stale (its daemon stopped without removing it, as a host switched from
// libvirtd to virtqemud may keep libvirt-sock-ro until a reboot): it is
// passed over while another candidate remains, so it cannot hide a
// working socket. A single candidate (a socket named on the command line)
// is used as given, and the dial says what is wrong with it. A candidate
// that cannot be checked (a directory without search permission) is taken
// too: the dial's error names the real problem.
func chooseSocket(candidates []string) (string, error) {
	if len(candidates) == 1 {
		return candidates[0], nil
	}
	var stale string
	for _, s := range candidates {
		if _, err := os.Stat(s); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if refusesConnections(s) {
			stale = s
			continue
		}
		return s, nil
	}
	if stale != "" {
		return stale, nil // the dial reports the refusal
	}
	return "", fmt.Errorf("no libvirt socket: neither %s exists (is libvirtd or virtqemud running?)", strings.Join(candidates, " nor "))
}

// refusesConnections reports whether nothing listens on the unix socket
// at path. A frozen daemon still accepts into its backlog, so only a
// socket without a listener is refused; the probe connection is closed at
// once.
func refusesConnections(path string) bool {
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return errors.Is(err, syscall.ECONNREFUSED)
	}
	conn.Close()
	return false
}

// socketsText names the sockets the collector may use, for log lines.
func socketsText(candidates []string) string {
	return strings.Join(candidates, " or ")
}
