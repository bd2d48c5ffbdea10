package libvirt

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
)

// trackingDialer dials libvirtd's unix socket and remembers the connection,
// so the collector can close it from outside. go-libvirt's own Disconnect
// first sends a ConnectClose RPC, which never returns when libvirtd is
// frozen (SIGSTOP); closing the socket is the only bound that always works.
type trackingDialer struct {
	socket  string
	timeout time.Duration

	mu   sync.Mutex
	conn net.Conn
}

func (d *trackingDialer) Dial() (net.Conn, error) {
	c, err := net.DialTimeout("unix", d.socket, d.timeout)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.conn = c
	d.mu.Unlock()
	return c, nil
}

// close closes the socket; go-libvirt then fails every pending call and
// marks itself disconnected.
func (d *trackingDialer) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn != nil {
		_ = d.conn.Close()
		d.conn = nil
	}
}

// session is one established connection to libvirtd.
type session struct {
	lv     *golibvirt.Libvirt
	dialer *trackingDialer

	// ctx ends the session's event subscriptions.
	ctx    context.Context
	cancel context.CancelFunc

	// closed is set by close, so alive is false from that moment, before
	// go-libvirt has noticed the closed socket.
	closed atomic.Bool

	// statsInFlight counts stats calls still waiting for libvirtd. Between
	// gathers only calls left behind on a hung guest remain; each holds one
	// of libvirtd's max_client_requests slots of this connection.
	statsInFlight atomic.Int32

	// noJobInfo is set when the driver answers a job info call with "not
	// supported": it is not asked again on this connection.
	noJobInfo atomic.Bool
}

// connect opens a new session. The caller bounds the time it may take by
// closing the dialer from another goroutine (see Collector.abort).
func connect(socket, uri string, timeout time.Duration, setDialer func(*trackingDialer)) (*session, error) {
	d := &trackingDialer{socket: socket, timeout: timeout}
	setDialer(d)
	lv := golibvirt.NewWithDialer(d)
	if err := lv.ConnectToURI(golibvirt.ConnectURI(uri)); err != nil {
		d.close()
		return nil, fmt.Errorf("connecting to %s via %s: %w", uri, socket, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &session{lv: lv, dialer: d, ctx: ctx, cancel: cancel}, nil
}

func (s *session) alive() bool {
	return s != nil && !s.closed.Load() && s.lv.IsConnected()
}

// close ends the session without waiting on libvirtd: the socket is closed
// first, so a frozen daemon cannot block the exporter's shutdown or
// reconnect, and libvirtd frees the connection when it sees EOF. Only then
// are the event subscriptions cancelled: their deregistering calls fail
// on the closed socket instead of joining a frozen daemon's queue.
func (s *session) close() {
	if s == nil {
		return
	}
	s.closed.Store(true)
	s.dialer.close()
	s.cancel()
}
