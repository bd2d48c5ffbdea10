package testenv

import (
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// fatalRecorder is a testing.TB whose Fatal ends only the calling goroutine
// and keeps the message, for checking how a helper fails.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (r *fatalRecorder) Fatal(args ...any) {
	r.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

// TestServerLosingItsPortFailsAtOnce replays a CI failure: a port from
// FreePort taken by another server before ours bound it. Ours exits
// ("address already in use") while the other answers every path with 404;
// waiting must end at once with our server's output, not after the
// readiness timeout.
func TestServerLosingItsPortFailsAtOnce(t *testing.T) {
	addr := FreePort(t)
	other, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler()}
	go func() { _ = srv.Serve(other) }()
	t.Cleanup(func() { srv.Close() })

	p := Start(t, ExporterBinary(t), "--web.listen-address="+addr, "--no-collector.libvirt", "--no-collector.backup")
	rec := &fatalRecorder{TB: t}
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.WaitHTTP(rec, "http://"+addr+"/-/ready", 5*time.Minute)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("still waiting after a minute for a server that had exited")
	}
	if !strings.Contains(rec.msg, "ended before") || !strings.Contains(rec.msg, "address already in use") {
		t.Errorf("failure message does not say the server ended and why:\n%s", rec.msg)
	}
	t.Logf("failed after %s", time.Since(start).Round(time.Millisecond))
}

// TestFreePortsAreThisProcesssOwn: ports are on a loopback address other
// than the system's 127.0.0.1 (which every test binary would share) and
// never handed out twice in one process.
func TestFreePortsAreThisProcesssOwn(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		addr := FreePort(t)
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		ip := net.ParseIP(host)
		if !ip.IsLoopback() || host == "127.0.0.1" {
			t.Fatalf("FreePort gave %s, want an address of this process in 127.0.0.0/8", addr)
		}
		if seen[addr] {
			t.Fatalf("FreePort gave %s twice", addr)
		}
		seen[addr] = true
	}
}
