package libvirt

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
)

// statsTypes are the stat groups one ConnectGetAllDomainStats call returns for
// every domain. That one bulk call replaces the per-domain info, memory,
// vCPU, block and interface calls that make other exporters slow.
const statsTypes = golibvirt.DomainStatsState | golibvirt.DomainStatsCPUTotal |
	golibvirt.DomainStatsBalloon | golibvirt.DomainStatsVCPU |
	golibvirt.DomainStatsInterface | golibvirt.DomainStatsBlock

// metadataConcurrency bounds parallel domain XML fetches: enough to hide the
// round trip, and below libvirtd's default max_client_requests of 5 per
// connection (more would queue in libvirtd and risk keep-alive timeouts).
const metadataConcurrency = 4

// Scrape parts, each reported with its own success and duration.
const (
	partStats     = "stats"
	partAutostart = "autostart"
	partSnapshots = "snapshots"
	partMetadata  = "metadata"
)

type partResult struct {
	ok       bool
	duration time.Duration
}

type domainResult struct {
	dom       golibvirt.Domain
	name      string
	uuid      string
	stats     domainStats
	meta      *domainMeta
	autostart *bool
	snapshots []int64 // creation times; nil when unknown
	errs      []string
}

type gatherResult struct {
	domains []*domainResult
	parts   map[string]partResult
}

type cachedMeta struct {
	meta    domainMeta
	fetched time.Time
}

type cachedSnapshots struct {
	times   map[string]int64 // by snapshot name
	fetched time.Time
}

func formatUUID(u golibvirt.UUID) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// gather fetches everything one scrape needs. Only the stats part is
// essential: when it fails the whole result is an error (libvirt_up 0).
// The other parts degrade per domain.
func (c *Collector) gather(lv *golibvirt.Libvirt, start time.Time) (*gatherResult, error) {
	res := &gatherResult{parts: map[string]partResult{}}

	t := time.Now()
	c.rpcCalls.Add(1)
	records, err := lv.ConnectGetAllDomainStats(nil, uint32(statsTypes), uint32(golibvirt.ConnectGetAllDomainsStatsNowait))
	res.parts[partStats] = partResult{ok: err == nil, duration: time.Since(t)}
	if err != nil {
		return res, fmt.Errorf("fetching domain stats: %w", err)
	}
	byUUID := make(map[string]*domainResult, len(records))
	for _, r := range records {
		d := &domainResult{dom: r.Dom, name: r.Dom.Name, uuid: formatUUID(r.Dom.UUID), stats: parseDomainStats(r.Params)}
		if _, dup := byUUID[d.uuid]; dup {
			continue
		}
		byUUID[d.uuid] = d
		res.domains = append(res.domains, d)
	}
	sort.Slice(res.domains, func(i, j int) bool { return res.domains[i].name < res.domains[j].name })

	t = time.Now()
	err = c.gatherAutostart(lv, res.domains)
	res.parts[partAutostart] = partResult{ok: err == nil, duration: time.Since(t)}
	if err != nil {
		c.logger.Warn("Cannot list autostart domains", "err", err)
	}

	t = time.Now()
	err = c.gatherSnapshots(lv, byUUID)
	res.parts[partSnapshots] = partResult{ok: err == nil, duration: time.Since(t)}
	if err != nil {
		c.logger.Warn("Cannot list domain snapshots", "err", err)
	}

	t = time.Now()
	err = c.gatherMetadata(lv, res.domains, start.Add(c.cfg.Timeout/2))
	res.parts[partMetadata] = partResult{ok: err == nil, duration: time.Since(t)}
	if err != nil {
		c.logger.Warn("Cannot fetch all domain XML", "err", err)
	}
	c.pruneCaches(byUUID)
	return res, nil
}

func (c *Collector) gatherAutostart(lv *golibvirt.Libvirt, domains []*domainResult) error {
	c.rpcCalls.Add(1)
	auto, _, err := lv.ConnectListAllDomains(1, golibvirt.ConnectListDomainsAutostart)
	if err != nil {
		return err
	}
	set := make(map[string]bool, len(auto))
	for _, d := range auto {
		set[formatUUID(d.UUID)] = true
	}
	for _, d := range domains {
		v := set[d.uuid]
		d.autostart = &v
	}
	return nil
}

// gatherSnapshots asks libvirt once which domains have snapshots, then lists
// the snapshots of only those. A snapshot's creation time never changes, so
// its XML is fetched once per name and cached.
func (c *Collector) gatherSnapshots(lv *golibvirt.Libvirt, byUUID map[string]*domainResult) error {
	c.rpcCalls.Add(1)
	withSnaps, _, err := lv.ConnectListAllDomains(1, golibvirt.ConnectListDomainsHasSnapshot)
	if err != nil {
		return err
	}
	for _, d := range byUUID {
		d.snapshots = []int64{}
	}
	var errs []error
	for _, dom := range withSnaps {
		d := byUUID[formatUUID(dom.UUID)]
		if d == nil {
			continue // defined after the stats call; next scrape has it
		}
		times, err := c.domainSnapshots(lv, dom, d.uuid)
		if err != nil {
			d.snapshots = nil
			d.errs = append(d.errs, "snapshots: "+err.Error())
			errs = append(errs, fmt.Errorf("domain %s: %w", d.name, err))
			continue
		}
		d.snapshots = times
	}
	return errors.Join(errs...)
}

func (c *Collector) domainSnapshots(lv *golibvirt.Libvirt, dom golibvirt.Domain, uuid string) ([]int64, error) {
	c.rpcCalls.Add(1)
	snaps, _, err := lv.DomainListAllSnapshots(dom, 1, 0)
	if err != nil {
		return nil, fmt.Errorf("listing snapshots: %w", err)
	}
	c.cacheMu.Lock()
	cached := c.snaps[uuid]
	c.cacheMu.Unlock()
	fresh := cachedSnapshots{times: make(map[string]int64, len(snaps)), fetched: time.Now()}
	out := make([]int64, 0, len(snaps))
	for _, s := range snaps {
		ct, ok := cached.times[s.Name]
		if !ok {
			c.rpcCalls.Add(1)
			doc, err := lv.DomainSnapshotGetXMLDesc(s, 0)
			if err != nil {
				return nil, fmt.Errorf("snapshot %q XML: %w", s.Name, err)
			}
			if ct, err = parseSnapshotCreationTime(doc); err != nil {
				return nil, fmt.Errorf("snapshot %q: %w", s.Name, err)
			}
		}
		fresh.times[s.Name] = ct
		out = append(out, ct)
	}
	c.cacheMu.Lock()
	c.snaps[uuid] = fresh
	c.cacheMu.Unlock()
	return out, nil
}

// gatherMetadata attaches cached domain XML to each domain and fetches what
// is missing or older than the refresh interval, in parallel, until budget.
// Domains left without metadata still export their stats; the rest is
// fetched by the next scrapes, so a cold start with thousands of domains
// never blows the scrape timeout.
func (c *Collector) gatherMetadata(lv *golibvirt.Libvirt, domains []*domainResult, budget time.Time) error {
	now := time.Now()
	var todo []*domainResult
	c.cacheMu.Lock()
	for _, d := range domains {
		if m, ok := c.meta[d.uuid]; ok {
			meta := m.meta
			d.meta = &meta
			if now.Sub(m.fetched) < c.cfg.MetadataRefresh && m.meta.Name == d.name {
				continue
			}
		}
		todo = append(todo, d)
	}
	c.cacheMu.Unlock()
	if len(todo) == 0 {
		return nil
	}

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		errs     []error
		skipped  int
		work     = make(chan *domainResult)
		workerFn = func() {
			defer wg.Done()
			for d := range work {
				err := c.fetchMeta(lv, d)
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("domain %s: %w", d.name, err))
					mu.Unlock()
				}
			}
		}
	)
	workers := min(metadataConcurrency, len(todo))
	wg.Add(workers)
	for range workers {
		go workerFn()
	}
	for i, d := range todo {
		if time.Now().After(budget) {
			skipped = len(todo) - i
			break
		}
		work <- d
	}
	close(work)
	wg.Wait()
	if skipped > 0 {
		errs = append(errs, fmt.Errorf("%d domains left for the next scrape: time budget of this scrape used up", skipped))
	}
	return errors.Join(errs...)
}

func (c *Collector) fetchMeta(lv *golibvirt.Libvirt, d *domainResult) error {
	c.rpcCalls.Add(1)
	doc, err := lv.DomainGetXMLDesc(d.dom, 0)
	if err != nil {
		d.errs = append(d.errs, "xml: "+err.Error())
		return fmt.Errorf("fetching XML: %w", err)
	}
	m, err := parseDomainXML(doc)
	if err != nil {
		d.errs = append(d.errs, "xml: "+err.Error())
		return err
	}
	m.Name, m.UUID = d.name, d.uuid
	d.meta = &m
	c.cacheMu.Lock()
	c.meta[d.uuid] = cachedMeta{meta: m, fetched: time.Now()}
	c.cacheMu.Unlock()
	return nil
}

// pruneCaches forgets undefined domains so the caches never outgrow the
// host's current domain list.
func (c *Collector) pruneCaches(present map[string]*domainResult) {
	c.cacheMu.Lock()
	defer c.cacheMu.Unlock()
	for id := range c.meta {
		if present[id] == nil {
			delete(c.meta, id)
		}
	}
	for id := range c.snaps {
		if present[id] == nil {
			delete(c.snaps, id)
		}
	}
}
