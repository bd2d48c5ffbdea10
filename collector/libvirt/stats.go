package libvirt

import (
	"math"
	"strconv"
	"strings"

	golibvirt "github.com/digitalocean/go-libvirt"
)

// domainStats is one domain's record of ConnectGetAllDomainStats, decoded.
// Absent fields are marked by the has* flags or missing map entries: libvirt
// omits what a domain cannot report (inactive domains, no balloon driver, a
// busy job with NOWAIT) and the collector must not turn absence into zero.
type domainStats struct {
	State       int
	HasState    bool
	Reason      int
	HasReason   bool
	CPUTime     float64 // ns
	HasCPUTime  bool
	Balloon     map[string]float64 // balloon.<key>, KiB for sizes
	VCPUCurrent float64
	VCPUMaximum float64
	HasVCPU     bool
	VCPUs       map[int]*vcpuStats
	Net         map[int]*deviceStats
	Block       map[int]*deviceStats
}

// active reports whether libvirt runs the domain (running, blocked,
// paused, shutting down, suspended): the domains
// inovex/prometheus-libvirt-exporter reports beyond their state and info,
// the way virDomainIsActive tells it.
func (s domainStats) active() bool {
	return s.HasState && s.State != 0 && s.State != stateShutoff && s.State != stateCrashed
}

type vcpuStats struct {
	Fields map[string]float64 // state, time, wait, delay, halted
}

type deviceStats struct {
	Name   string
	Path   string
	Fields map[string]float64 // rx.bytes, rd.reqs, capacity, ...
}

// numeric converts a typed parameter to float64. Strings and unknown types
// report ok=false so they are never exported as numbers.
func numeric(v golibvirt.TypedParamValue) (float64, bool) {
	switch x := v.I.(type) {
	case int32:
		return float64(x), true
	case uint32:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, false
		}
		return x, true
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

func stringValue(v golibvirt.TypedParamValue) string {
	if s, ok := v.I.(string); ok {
		return s
	}
	return ""
}

// maxDeviceIndex bounds the per-domain device index a record may use, so a
// corrupt or hostile record cannot make the collector allocate without limit.
const maxDeviceIndex = 4096

// splitIndexed splits "net.3.rx.bytes" after the prefix into (3, "rx.bytes").
func splitIndexed(field, prefix string) (int, string, bool) {
	rest, ok := strings.CutPrefix(field, prefix)
	if !ok {
		return 0, "", false
	}
	idx, key, ok := strings.Cut(rest, ".")
	if !ok {
		return 0, "", false
	}
	n, err := strconv.Atoi(idx)
	if err != nil || n < 0 || n > maxDeviceIndex {
		return 0, "", false
	}
	return n, key, true
}

func device(m map[int]*deviceStats, i int) *deviceStats {
	d := m[i]
	if d == nil {
		d = &deviceStats{Fields: map[string]float64{}}
		m[i] = d
	}
	return d
}

func parseDomainStats(params []golibvirt.TypedParam) domainStats {
	s := domainStats{
		Balloon: map[string]float64{},
		VCPUs:   map[int]*vcpuStats{},
		Net:     map[int]*deviceStats{},
		Block:   map[int]*deviceStats{},
	}
	for _, p := range params {
		f := p.Field
		switch {
		case f == "state.state":
			if v, ok := numeric(p.Value); ok {
				s.State, s.HasState = int(v), true
			}
		case f == "state.reason":
			if v, ok := numeric(p.Value); ok {
				s.Reason, s.HasReason = int(v), true
			}
		case f == "cpu.time":
			if v, ok := numeric(p.Value); ok {
				s.CPUTime, s.HasCPUTime = v, true
			}
		case strings.HasPrefix(f, "balloon."):
			if v, ok := numeric(p.Value); ok {
				s.Balloon[strings.TrimPrefix(f, "balloon.")] = v
			}
		case f == "vcpu.current":
			if v, ok := numeric(p.Value); ok {
				s.VCPUCurrent, s.HasVCPU = v, true
			}
		case f == "vcpu.maximum":
			if v, ok := numeric(p.Value); ok {
				s.VCPUMaximum = v
			}
		case strings.HasPrefix(f, "vcpu."):
			if i, key, ok := splitIndexed(f, "vcpu."); ok {
				if v, ok := numeric(p.Value); ok {
					vc := s.VCPUs[i]
					if vc == nil {
						vc = &vcpuStats{Fields: map[string]float64{}}
						s.VCPUs[i] = vc
					}
					vc.Fields[key] = v
				}
			}
		case strings.HasPrefix(f, "net."):
			if i, key, ok := splitIndexed(f, "net."); ok {
				d := device(s.Net, i)
				if key == "name" {
					d.Name = stringValue(p.Value)
				} else if v, ok := numeric(p.Value); ok {
					d.Fields[key] = v
				}
			}
		case strings.HasPrefix(f, "block."):
			if i, key, ok := splitIndexed(f, "block."); ok {
				d := device(s.Block, i)
				switch key {
				case "name":
					d.Name = stringValue(p.Value)
				case "path":
					d.Path = stringValue(p.Value)
				default:
					if v, ok := numeric(p.Value); ok {
						d.Fields[key] = v
					}
				}
			}
		}
	}
	return s
}
