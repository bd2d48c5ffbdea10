package libvirt

import (
	"encoding/xml"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/prometheus/client_golang/prometheus"
)

// Storage pools. The series carry the names, labels and meaning of
// inovex/prometheus-libvirt-exporter (libvirt_storage_pool_*, label
// storage_pool), so its users' dashboards keep working; one series is ours:
// the virtual capacity of the domains' disks in each pool, which says how
// far thin images could grow.
//
// Cost: one listing and one StoragePoolGetInfo per pool, sent beside the
// stats calls, and each pool's XML (its target path) once per
// --libvirt.metadata-refresh-interval; nothing per domain. The disks are
// matched to pools from what the scrape already has: the domains' cached XML
// and their block stats.
//
// StoragePoolGetInfo answers from libvirtd's memory: the figures are those
// of the pool's last refresh (pool start, volume created or deleted, virsh
// pool-refresh). The exporter never forces a refresh: it rescans every
// volume of the pool, and on a hung NFS mount it hangs with the pool locked.
//
// A pool whose call does not answer in time (a refresh or volume job holds
// it) reports libvirt_storage_pool_timed_out 1 and nothing else; the other
// pools and the domains are unaffected. Its call is not sent again while it
// is still waiting in libvirtd, so a pool stuck for hours holds one request
// of the connection, not one per scrape.

const partPools = "pools"

type poolDescriptors struct {
	state, capacity, allocation, available, timedOut, diskCapacity *prometheus.Desc
}

func newPoolDescriptors() poolDescriptors {
	pl := []string{"storage_pool"}
	return poolDescriptors{
		state:        desc("storage_pool", "state", "State of the storage pool, as libvirt codes it: 0 inactive, 1 building, 2 running, 3 degraded, 4 inaccessible.", pl...),
		capacity:     desc("storage_pool", "capacity_bytes", "Size of the storage pool in bytes, as of libvirt's last refresh of the pool.", pl...),
		allocation:   desc("storage_pool", "allocation_bytes", "Bytes of the storage pool allocated, as of libvirt's last refresh of the pool.", pl...),
		available:    desc("storage_pool", "available_bytes", "Free space of the storage pool in bytes, as of libvirt's last refresh of the pool.", pl...),
		timedOut:     desc("storage_pool", "timed_out", "Whether reading the storage pool timed out (1: libvirt did not answer for it in time, its other series are missing) or not (0).", pl...),
		diskCapacity: desc("storage_pool", "domain_disk_capacity_bytes", "Sum of the virtual capacity (logical size) of the disks of every defined domain, running or not, whose image is in the pool (source pool attribute or a path under the pool's target path). A volume disk (type volume) counts while its domain runs: only then does libvirt resolve it and report its size. Above capacity_bytes the thin images can outgrow the pool.", pl...),
	}
}

func (d *poolDescriptors) describe(ch chan<- *prometheus.Desc) {
	for _, x := range []*prometheus.Desc{d.state, d.capacity, d.allocation, d.available, d.timedOut, d.diskCapacity} {
		ch <- x
	}
}

func (d *poolDescriptors) emit(ch chan<- prometheus.Metric, pools []*poolResult) {
	for _, p := range pools {
		name := strings.ToValidUTF8(p.name, "\uFFFD")
		ch <- prometheus.MustNewConstMetric(d.timedOut, prometheus.GaugeValue, boolFloat(p.timedOut), name)
		if !p.hasInfo {
			continue
		}
		ch <- prometheus.MustNewConstMetric(d.state, prometheus.GaugeValue, float64(p.state), name)
		ch <- prometheus.MustNewConstMetric(d.capacity, prometheus.GaugeValue, float64(p.capacity), name)
		ch <- prometheus.MustNewConstMetric(d.allocation, prometheus.GaugeValue, float64(p.allocation), name)
		ch <- prometheus.MustNewConstMetric(d.available, prometheus.GaugeValue, float64(p.available), name)
		if p.hasTarget {
			ch <- prometheus.MustNewConstMetric(d.diskCapacity, prometheus.GaugeValue, p.diskCapacity, name)
		}
	}
}

// poolResult is one pool as a scrape saw it.
type poolResult struct {
	name                            string
	timedOut                        bool
	hasInfo                         bool
	state                           uint8
	capacity, allocation, available uint64
	// target is the pool's target path, hasTarget whether its XML was
	// read: without it the disks in the pool are not known.
	target       string
	hasTarget    bool
	diskCapacity float64
}

// poolState is what the collector keeps about pools between scrapes.
type poolState struct {
	mu sync.Mutex
	// busy holds the pools (by UUID) whose call of an earlier scrape is
	// still waiting in libvirtd; listBusy a listing still waiting.
	busy     map[golibvirt.UUID]bool
	listBusy bool
	// known are the pools of the last listing: reported as timed out when
	// a listing does not answer.
	known []golibvirt.StoragePool
	// targets caches each pool's target path until due.
	targets map[golibvirt.UUID]cachedPool
}

type cachedPool struct {
	target string
	due    time.Time
}

// poolCall reads one pool: its info, then its XML when the cache has none.
type poolCall struct {
	pool    golibvirt.StoragePool
	done    chan struct{}
	skipped bool // an earlier call for the pool still waits: not asked
	res     poolResult
	err     error
}

// poolGather is the pool part of one scrape, started beside the stats calls.
type poolGather struct {
	done    chan struct{} // the listing answered and every call is sent
	start   time.Time
	skipped bool // an earlier listing still waits: not asked
	err     error
	calls   []*poolCall
}

// startPools lists the pools and asks for each one's info, on goroutines
// of their own: none of it waits on a guest.
func (c *Collector) startPools(lv *golibvirt.Libvirt) *poolGather {
	g := &poolGather{done: make(chan struct{}), start: time.Now()}
	ps := &c.pools
	ps.mu.Lock()
	if ps.listBusy {
		ps.mu.Unlock()
		g.skipped = true
		close(g.done)
		return g
	}
	ps.listBusy = true
	ps.mu.Unlock()
	c.rpcCalls.Add(1)
	go func() {
		pools, _, err := lv.ConnectListAllStoragePools(1, 0)
		ps.mu.Lock()
		ps.listBusy = false
		if err == nil {
			ps.known = pools
		}
		ps.mu.Unlock()
		if err != nil {
			g.err = fmt.Errorf("listing storage pools: %w", err)
			close(g.done)
			return
		}
		for _, p := range pools {
			g.calls = append(g.calls, c.startPoolCall(lv, p))
		}
		close(g.done)
	}()
	return g
}

// testHookPoolInfo runs before a pool's info is asked for.
var testHookPoolInfo func(pool string)

func (c *Collector) startPoolCall(lv *golibvirt.Libvirt, p golibvirt.StoragePool) *poolCall {
	call := &poolCall{pool: p, done: make(chan struct{}), res: poolResult{name: p.Name}}
	ps := &c.pools
	ps.mu.Lock()
	if ps.busy[p.UUID] {
		ps.mu.Unlock()
		call.skipped = true
		close(call.done)
		return call
	}
	if ps.busy == nil {
		ps.busy = map[golibvirt.UUID]bool{}
	}
	ps.busy[p.UUID] = true
	cached, haveTarget := ps.targets[p.UUID]
	ps.mu.Unlock()
	go func() {
		defer close(call.done)
		defer func() {
			ps.mu.Lock()
			delete(ps.busy, p.UUID)
			ps.mu.Unlock()
		}()
		if testHookPoolInfo != nil {
			testHookPoolInfo(p.Name)
		}
		c.rpcCalls.Add(1)
		state, capacity, allocation, available, err := lv.StoragePoolGetInfo(p)
		if err != nil {
			call.err = fmt.Errorf("storage pool %s: %w", p.Name, err)
			return
		}
		r := &call.res
		r.hasInfo = true
		r.state, r.capacity, r.allocation, r.available = state, capacity, allocation, available
		if haveTarget && time.Now().Before(cached.due) {
			r.target, r.hasTarget = cached.target, true
			return
		}
		c.rpcCalls.Add(1)
		doc, err := lv.StoragePoolGetXMLDesc(p, 0)
		if err == nil {
			r.target, err = parsePoolTarget(doc)
		}
		if err != nil {
			call.err = fmt.Errorf("storage pool %s XML: %w", p.Name, err)
			return
		}
		r.hasTarget = true
		ps.mu.Lock()
		if ps.targets == nil {
			ps.targets = map[golibvirt.UUID]cachedPool{}
		}
		ps.targets[p.UUID] = cachedPool{target: r.target, due: time.Now().Add(c.cfg.MetadataRefresh)}
		ps.mu.Unlock()
	}()
	return call
}

// finishPools waits for the pool part until deadline and matches the
// domains' disks to the pools. The part fails when the listing fails or a
// pool does not answer.
func (c *Collector) finishPools(g *poolGather, deadline time.Time, domains []*domainResult) ([]*poolResult, partResult) {
	var pools []*poolResult
	var errs []error
	if g.skipped || !waitDeadline(g.done, deadline) {
		// The listing waits in libvirtd: the pools it listed last are
		// reported as timed out.
		c.pools.mu.Lock()
		for _, p := range c.pools.known {
			pools = append(pools, &poolResult{name: p.Name, timedOut: true})
		}
		c.pools.mu.Unlock()
		c.logger.Warn("libvirtd did not list the storage pools in time")
		return pools, partResult{ok: false, duration: time.Since(g.start)}
	}
	if g.err != nil {
		c.logger.Warn("Cannot list storage pools", "err", g.err)
		return nil, partResult{ok: false, duration: time.Since(g.start)}
	}
	listed := make(map[golibvirt.UUID]bool, len(g.calls))
	for _, call := range g.calls {
		listed[call.pool.UUID] = true
		if call.skipped || !waitDeadline(call.done, deadline) {
			errs = append(errs, fmt.Errorf("storage pool %s: no answer in time", call.pool.Name))
			pools = append(pools, &poolResult{name: call.pool.Name, timedOut: true})
			continue
		}
		if call.err != nil {
			errs = append(errs, call.err)
		}
		if call.res.hasInfo {
			r := call.res
			pools = append(pools, &r)
		}
	}
	elapsed := time.Since(g.start)
	c.pools.mu.Lock()
	for id := range c.pools.targets {
		if !listed[id] {
			delete(c.pools.targets, id)
		}
	}
	c.pools.mu.Unlock()
	addDiskCapacities(pools, domains)
	err := errors.Join(errs...)
	if err != nil {
		c.logger.Warn("Cannot read all storage pools", "err", err)
	}
	return pools, partResult{ok: err == nil, duration: elapsed}
}

// addDiskCapacities sums, per pool, the capacity block stats report for
// each disk of each domain in it. libvirt reports no capacity for a
// volume disk (type='volume') of a shut-off domain, so such a disk counts
// only while its domain runs. A disk is in a pool when its XML names
// the pool (<source pool=...>) or its path lies under the pool's target
// path (the deepest one, should pools nest). CD-ROMs and floppies are
// left out: they never grow.
func addDiskCapacities(pools []*poolResult, domains []*domainResult) {
	byName := make(map[string]*poolResult, len(pools))
	var withPath []*poolResult
	for _, p := range pools {
		if !p.hasTarget {
			continue
		}
		byName[p.name] = p
		if p.target != "" {
			withPath = append(withPath, p)
		}
	}
	if len(byName) == 0 {
		return
	}
	seen := map[string]bool{}
	for _, d := range domains {
		clear(seen)
		for _, i := range ascending(d.stats.Block) {
			b := d.stats.Block[i]
			capacity, ok := b.Fields["capacity"]
			if b.Name == "" || seen[b.Name] || !ok {
				continue // backing-chain entries repeat the name
			}
			seen[b.Name] = true
			var dm diskMeta
			if d.meta != nil {
				dm = d.meta.Disks[b.Name]
			}
			if dm.Device == "cdrom" || dm.Device == "floppy" {
				continue
			}
			var pool *poolResult
			if dm.Pool != "" {
				pool = byName[dm.Pool]
			} else {
				path := b.Path
				if path == "" {
					path = dm.SourceFile
				}
				pool = poolOfPath(withPath, path)
			}
			if pool != nil {
				pool.diskCapacity += capacity
			}
		}
	}
}

func poolOfPath(pools []*poolResult, path string) *poolResult {
	if path == "" {
		return nil
	}
	var best *poolResult
	for _, p := range pools {
		dir := strings.TrimSuffix(p.target, "/") + "/" // "/" stays "/"
		if strings.HasPrefix(path, dir) && (best == nil || len(p.target) > len(best.target)) {
			best = p
		}
	}
	return best
}

type xmlPool struct {
	Target struct {
		Path string `xml:"path"`
	} `xml:"target"`
}

// parsePoolTarget returns a pool's target path, cleaned ("" for pools
// without one, such as rbd).
func parsePoolTarget(doc string) (string, error) {
	var p xmlPool
	if err := xml.Unmarshal([]byte(doc), &p); err != nil {
		return "", fmt.Errorf("parsing storage pool XML: %w", err)
	}
	if p.Target.Path == "" {
		return "", nil
	}
	return filepath.Clean(p.Target.Path), nil
}

func waitDeadline(done <-chan struct{}, deadline time.Time) bool {
	select {
	case <-done:
		return true
	default:
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-done:
		return true
	case <-timer.C:
		return false
	}
}
