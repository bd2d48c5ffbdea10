package libvirt

import (
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestParseDomainXML(t *testing.T) {
	for _, tc := range []struct {
		file    string
		want    domainMeta
		wantErr string
	}{
		{
			file: "domain-qemu.xml",
			want: domainMeta{
				Name: "db-prod-1", UUID: "3c1d8a2e-5b7f-4e4a-9d35-0a3a7f1e2b44", Role: "db",
				VCPUs: 4, MaxMemoryKiB: 16777216, CurMemoryKiB: 8388608,
				OSType: "hvm", OSArch: "x86_64", OSMachine: "pc-q35-7.2",
				Disks: map[string]diskMeta{
					"vda": {SourceFile: "/var/lib/libvirt/images/db-prod-1.qcow2", DiskType: "file", TargetBus: "virtio", DriverName: "qemu", DriverType: "qcow2", Device: "disk"},
					"vdb": {SourceFile: "/dev/vg0/db-prod-1-data", DiskType: "block", TargetBus: "virtio", DriverName: "qemu", DriverType: "raw", Device: "disk"},
					"sda": {SourceFile: "vms/db-prod-1-logs", DiskType: "network", TargetBus: "scsi", DriverName: "qemu", DriverType: "raw",
						DriverCache: "none", DriverDiscard: "unmap", SourceProtocol: "rbd", Serial: "LOGS-01", Device: "disk"},
				},
				Interfaces: map[string]interfaceMeta{
					"vnet3": {SourceBridge: "br0", MACAddress: "52:54:00:AB:CD:EF"},
					"vnet4": {SourceBridge: "default", MACAddress: "52:54:00:11:22:33"},
				},
			},
		},
		{
			file: "domain-no-metadata.xml",
			want: domainMeta{
				Name: "plain", UUID: "3c1d8a2e-5b7f-4e4a-9d35-0a3a7f1e2b45",
				VCPUs: 1, MaxMemoryKiB: 1048576, CurMemoryKiB: 1048576,
				Disks: map[string]diskMeta{}, Interfaces: map[string]interfaceMeta{},
			},
		},
		{
			// A role element in someone else's namespace is not ours.
			file: "domain-foreign-role.xml",
			want: domainMeta{
				Name: "foreign", UUID: "3c1d8a2e-5b7f-4e4a-9d35-0a3a7f1e2b46",
				VCPUs: 2, MaxMemoryKiB: 2 * 1024 * 1024, CurMemoryKiB: 2 * 1024 * 1024,
				Disks: map[string]diskMeta{}, Interfaces: map[string]interfaceMeta{},
			},
		},
		{file: "domain-truncated.xml", wantErr: "parsing domain XML"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			doc, err := os.ReadFile("testdata/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseDomainXML(string(doc))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestNormaliseRole(t *testing.T) {
	for in, want := range map[string]string{
		" DB\n":                  "db",
		"web":                    "web",
		"Database":               "db",
		"MySQL":                  "db",
		"postgres":               "db",
		"nginx":                  "web",
		"Frontend":               "web",
		"fileserver":             "file",
		"NFS":                    "file",
		"samba":                  "file",
		"api":                    "app",
		"backend":                "app",
		"build-runner":           "build-runner", // unknown: kept, VMRoleUnknown names it
		strings.Repeat("x", 200): strings.Repeat("x", maxRoleLength),
		"bad\xffutf8":            "badutf8",
	} {
		if got := normaliseRole(in); got != want {
			t.Errorf("normaliseRole(%q) = %q, want %q", in, got, want)
		}
	}
}

func param(field string, v any) golibvirt.TypedParam {
	return golibvirt.TypedParam{Field: field, Value: golibvirt.TypedParamValue{I: v}}
}

func TestParseDomainStats(t *testing.T) {
	s := parseDomainStats([]golibvirt.TypedParam{
		param("state.state", int32(1)),
		param("cpu.time", uint64(849762000)),
		param("balloon.current", uint64(65536)),
		param("balloon.rss", uint64(43048)),
		param("vcpu.current", uint32(2)),
		param("vcpu.maximum", uint32(4)),
		param("vcpu.0.time", uint64(170000000)),
		param("vcpu.1.state", int32(1)),
		param("net.0.name", "vnet0"),
		param("net.0.rx.bytes", uint64(1000)),
		param("block.0.name", "vda"),
		param("block.0.path", "/img/a.raw"),
		param("block.0.capacity", uint64(16777216)),
		// Hostile or broken input is ignored, never exported.
		param("block.99999999.rd.bytes", uint64(1)),
		param("block.-1.rd.bytes", uint64(1)),
		param("block.x.rd.bytes", uint64(1)),
		param("net.1.rx.bytes", "not a number"),
		param("balloon.usable", math.NaN()),
		param("cpu.time.extra", struct{}{}),
	})
	if !s.HasState || s.State != 1 {
		t.Errorf("state = %v %v", s.State, s.HasState)
	}
	if !s.HasCPUTime || s.CPUTime != 849762000 {
		t.Errorf("cpu.time = %v", s.CPUTime)
	}
	if s.Balloon["current"] != 65536 || s.Balloon["rss"] != 43048 {
		t.Errorf("balloon = %v", s.Balloon)
	}
	if _, ok := s.Balloon["usable"]; ok {
		t.Error("NaN balloon.usable was kept")
	}
	if s.VCPUCurrent != 2 || s.VCPUMaximum != 4 || s.VCPUs[0].Fields["time"] != 170000000 || s.VCPUs[1].Fields["state"] != 1 {
		t.Errorf("vcpu = %+v %+v", s, s.VCPUs)
	}
	if len(s.Block) != 1 || s.Block[0].Name != "vda" || s.Block[0].Path != "/img/a.raw" || s.Block[0].Fields["capacity"] != 16777216 {
		t.Errorf("block = %+v", s.Block)
	}
	if s.Net[0].Name != "vnet0" || s.Net[0].Fields["rx.bytes"] != 1000 || len(s.Net[1].Fields) != 0 {
		t.Errorf("net = %+v %+v", s.Net[0], s.Net[1])
	}
}

func TestFormatUUID(t *testing.T) {
	u := golibvirt.UUID{0x3c, 0x1d, 0x8a, 0x2e, 0x5b, 0x7f, 0x4e, 0x4a, 0x9d, 0x35, 0x0a, 0x3a, 0x7f, 0x1e, 0x2b, 0x44}
	if got, want := formatUUID(u), "3c1d8a2e-5b7f-4e4a-9d35-0a3a7f1e2b44"; got != want {
		t.Errorf("formatUUID = %s, want %s", got, want)
	}
}

func TestParseSnapshotCreationTime(t *testing.T) {
	got, err := parseSnapshotCreationTime("<domainsnapshot><name>s1</name><creationTime>1700000000</creationTime></domainsnapshot>")
	if err != nil || got != 1700000000 {
		t.Errorf("got %d, %v", got, err)
	}
	if _, err := parseSnapshotCreationTime("<domainsnapshot><creationTime>soon"); err == nil {
		t.Error("truncated snapshot XML accepted")
	}
}

// TestEmitDomainWithErrors: a domain whose XML or snapshots could not be
// read is flagged by libvirt_domain_scrape_success 0 and still exports the
// stats it has.
func TestEmitDomainWithErrors(t *testing.T) {
	d := newDescriptors()
	ch := make(chan prometheus.Metric, 100)
	d.emitDomain(ch, &domainResult{
		name:  "broken",
		uuid:  "3c1d8a2e-5b7f-4e4a-9d35-0a3a7f1e2b44",
		stats: parseDomainStats([]golibvirt.TypedParam{param("state.state", int32(1)), param("cpu.time", uint64(2e9))}),
		errs:  []string{"xml: connection reset"},
	})
	close(ch)
	got := map[string]float64{}
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		name := m.Desc().String()
		name = name[strings.Index(name, `"`)+1:]
		name = name[:strings.Index(name, `"`)]
		switch {
		case pb.Gauge != nil:
			got[name] = pb.GetGauge().GetValue()
		case pb.Counter != nil:
			got[name] = pb.GetCounter().GetValue()
		}
	}
	if got["libvirt_domain_scrape_success"] != 0 {
		t.Errorf("scrape_success = %v, want 0", got["libvirt_domain_scrape_success"])
	}
	if got["libvirt_domain_info_state"] != 1 || got["libvirt_domain_info_cpu_time_seconds_total"] != 2 {
		t.Errorf("stats of the broken domain were not exported: %v", got)
	}
	if _, ok := got["libvirt_domain_info"]; ok {
		t.Error("libvirt_domain_info exported without metadata: its role label would be a guess")
	}
}

// BenchmarkEmitDomain: the per-domain cost of turning one bulk stats record
// into metrics, for a running domain with two disks and two interfaces.
func BenchmarkEmitDomain(b *testing.B) {
	var params []golibvirt.TypedParam
	add := func(f string, v any) { params = append(params, param(f, v)) }
	add("state.state", int32(1))
	add("state.reason", int32(1))
	add("cpu.time", uint64(123456789000))
	for _, k := range []string{"current", "maximum", "swap_in", "swap_out", "major_fault", "minor_fault", "unused", "available", "usable", "rss", "disk_caches", "last-update"} {
		add("balloon."+k, uint64(1048576))
	}
	add("vcpu.current", uint32(2))
	add("vcpu.maximum", uint32(2))
	for i := range 2 {
		p := "vcpu." + strconv.Itoa(i) + "."
		add(p+"state", int32(1))
		add(p+"time", uint64(1e9))
		add(p+"wait", uint64(1e6))
		add(p+"delay", uint64(1e6))
		n := "net." + strconv.Itoa(i) + "."
		add(n+"name", "vnet"+strconv.Itoa(i))
		for _, k := range []string{"rx.bytes", "rx.pkts", "rx.errs", "rx.drop", "tx.bytes", "tx.pkts", "tx.errs", "tx.drop"} {
			add(n+k, uint64(1000))
		}
		bl := "block." + strconv.Itoa(i) + "."
		add(bl+"name", "vd"+string(rune('a'+i)))
		add(bl+"path", "/var/lib/libvirt/images/x.qcow2")
		for _, k := range []string{"rd.reqs", "rd.bytes", "rd.times", "wr.reqs", "wr.bytes", "wr.times", "fl.reqs", "fl.times", "allocation", "capacity", "physical"} {
			add(bl+k, uint64(1000))
		}
	}
	d := newDescriptors()
	meta := &domainMeta{Name: "vm", UUID: "u", Role: "db", VCPUs: 2, MaxMemoryKiB: 1 << 20, CurMemoryKiB: 1 << 20,
		Disks: map[string]diskMeta{"vda": {}, "vdb": {}}, Interfaces: map[string]interfaceMeta{"vnet0": {}, "vnet1": {}}}
	yes := true
	ch := make(chan prometheus.Metric, 1024)
	done := make(chan struct{})
	go func() {
		for range ch {
		}
		close(done)
	}()
	b.ReportAllocs()
	for b.Loop() {
		r := &domainResult{name: "vm", uuid: "u", stats: parseDomainStats(params), meta: meta, autostart: &yes, snapshots: []int64{1, 2}}
		d.emitDomain(ch, r)
	}
	close(ch)
	<-done
}
