package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// TestSoak (make soak; not in CI): scrapes every second for SOAK_DURATION
// (default 1h) while libvirtd is killed, restarted, frozen and thawed in
// turn, and logs the exporter's RSS and goroutines every minute. It fails
// when either grows by more than half from the first to the last reading.
func TestSoak(t *testing.T) {
	spec := os.Getenv("SOAK_DURATION")
	if spec == "" {
		t.Skip("set SOAK_DURATION (make soak) to run the soak test")
	}
	duration, err := time.ParseDuration(spec)
	if err != nil {
		t.Fatal(err)
	}
	l := testenv.StartLibvirtd(t)
	node, _ := filepath.Abs("../collector/libvirt/testdata/node.xml")
	e := testenv.StartExporter(t, "--libvirt.socket="+l.SockRO, "--libvirt.uri="+testenv.TestURI(node), "--libvirt.timeout=2s")

	type reading struct{ rss, goroutines float64 }
	var first, last *reading
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for i := 0; time.Since(start) < duration; i++ {
		<-tick.C
		switch i % 120 {
		case 20:
			l.Kill()
		case 40:
			l.Start()
		case 60:
			l.Freeze()
		case 70:
			l.Thaw()
		}
		mf := testenv.Scrape(t, e.URL+"/metrics")
		if i%60 == 0 {
			rss, _ := testenv.Value(mf, "process_resident_memory_bytes", nil)
			g, _ := testenv.Value(mf, "go_goroutines", nil)
			r := &reading{rss, g}
			if first == nil && i >= 120 { // after the first fault cycle
				first = r
			}
			last = r
			t.Logf("%s: RSS %.1f MiB, goroutines %.0f", time.Since(start).Round(time.Second), rss/(1<<20), g)
		}
	}
	if first != nil && last != nil {
		if last.rss > first.rss*1.5 || last.goroutines > first.goroutines*1.5 {
			t.Errorf("growth: RSS %.1f -> %.1f MiB, goroutines %.0f -> %.0f", first.rss/(1<<20), last.rss/(1<<20), first.goroutines, last.goroutines)
		}
	}
}
