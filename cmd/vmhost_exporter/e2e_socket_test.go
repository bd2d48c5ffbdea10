package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// TestFindsTheModularDaemonsSocket: on EL9 the QEMU driver runs in
// virtqemud, whose read-only socket is /run/libvirt/virtqemud-sock-ro, and
// libvirt-sock-ro does not exist. Without --libvirt.socket the exporter
// finds it, also when the daemon comes up after the exporter; with the
// flag it uses that path only. The exporter runs in a sandbox whose /run
// is its own (the machine's libvirt sockets are not there), the private
// libvirtd's read-only socket stands in for virtqemud's.
func TestFindsTheModularDaemonsSocket(t *testing.T) {
	l := testenv.StartLibvirtd(t)
	sb := testenv.StartSandboxOnHostNetwork(t)
	node, _ := filepath.Abs("../../collector/libvirt/testdata/node.xml")
	flags := []string{"--collector.disable-defaults", "--collector.libvirt", "--libvirt.uri=" + testenv.TestURI(node)}
	up := func(want float64) func(map[string]*dto.MetricFamily) bool {
		return equals("libvirt_up", nil, want)
	}

	found := testenv.StartExporterWith(t, testenv.ExporterOptions{Command: sb.Command, OwnSocket: true}, flags...)
	url := found.URL + "/metrics"
	waitFor(t, url, "libvirt_up 0 without any socket", up(0))
	found.WaitOutput(t, 10*time.Second, "/var/run/libvirt/libvirt-sock-ro", "/var/run/libvirt/virtqemud-sock-ro")

	explicit := testenv.StartExporterWith(t, testenv.ExporterOptions{Command: sb.Command, OwnSocket: true},
		append(flags, "--libvirt.socket=/var/run/libvirt/libvirt-sock-ro")...)

	// virtqemud starts.
	if err := os.MkdirAll(sb.Path("/run/libvirt"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(l.SockRO, sb.Path("/run/libvirt/virtqemud-sock-ro")); err != nil {
		t.Fatal(err)
	}
	mf := waitFor(t, url, "libvirt_up 1 over virtqemud-sock-ro", up(1))
	if got := len(mf["libvirt_domain_info"].GetMetric()); got != 6 {
		t.Errorf("libvirt_domain_info: %d domains, want the fixture's 6", got)
	}
	found.WaitOutput(t, 10*time.Second, `msg="Connected to libvirtd"`, "socket=/var/run/libvirt/virtqemud-sock-ro")

	// A socket named on the command line is the only one used.
	if v, ok := testenv.Value(testenv.Scrape(t, explicit.URL+"/metrics"), "libvirt_up", nil); !ok || v != 0 {
		t.Errorf("with --libvirt.socket=/var/run/libvirt/libvirt-sock-ro (absent): libvirt_up %v, want 0 although virtqemud-sock-ro exists", v)
	}
}
