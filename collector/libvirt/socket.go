package libvirt

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
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
// exists. It runs before every (re)connect, so a daemon started after
// the exporter, or a host switched to the modular daemons, is found
// without a restart. A single candidate (a socket named on the command
// line) is used as given, and the dial says what is wrong with it. A
// candidate that cannot be checked (a directory without search
// permission) is taken too: the dial's error names the real problem.
func chooseSocket(candidates []string) (string, error) {
	if len(candidates) == 1 {
		return candidates[0], nil
	}
	for _, s := range candidates {
		if _, err := os.Stat(s); !errors.Is(err, fs.ErrNotExist) {
			return s, nil
		}
	}
	return "", fmt.Errorf("no libvirt socket: neither %s exists (is libvirtd or virtqemud running?)", strings.Join(candidates, " nor "))
}

// socketsText names the sockets the collector may use, for log lines.
func socketsText(candidates []string) string {
	return strings.Join(candidates, " or ")
}
