package libvirt

import (
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
)

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
	partJobs      = "jobs"
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
	snapshots []int64  // creation times; nil when unknown
	job       *jobInfo // nil when not asked or not answered
	// timedOut: a call for this domain was given up this scrape, or
	// libvirt could not ask its QEMU (libvirt_domain_timed_out).
	timedOut bool
	errs     []string
}

type gatherResult struct {
	domains []*domainResult
	pools   []*poolResult
	parts   map[string]partResult
}

// cachedMeta is a domain's parsed XML. seq is the domain's event count
// (Collector.changes) when the fetch began: an event naming the domain, or
// a reconnect that may have missed events, makes it stale, and the next
// scrape fetches it again while serving the old copy. due is when the
// background re-validation reads it again regardless.
type cachedMeta struct {
	meta domainMeta
	dom  golibvirt.Domain
	seq  uint64
	due  time.Time
}

// cachedSnapshots holds a domain's snapshot creation times by snapshot name,
// with the same seq and due as cachedMeta: a snapshot deleted and
// re-created under its old name gets its new time from either.
type cachedSnapshots struct {
	times map[string]int64
	dom   golibvirt.Domain
	seq   uint64
	due   time.Time
}

// formatUUID writes a UUID in its canonical form; it runs for every domain
// in every scrape, so without fmt.
func formatUUID(u golibvirt.UUID) string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], u[10:16])
	return string(b[:])
}

// gather fetches everything one scrape needs. Only the stats part is
// essential: when it fails the whole result is an error (libvirt_up 0).
// The other parts degrade per domain.
//
// The autostart and has-snapshot listings wait on no guest: they are sent
// right after the stats calls and answered while libvirt waits on the
// guests or works through the stats, instead of adding two round trips
// after them (a millisecond or two each for 1,000 domains). A domain
// defined in the milliseconds between a listing and the stats calls
// shows its autostart flag and first snapshot one scrape later. With
// --libvirt.stats-batches=1 every request waits for the one before, as
// before lists existed.
func (c *Collector) gather(s *session, start time.Time) (*gatherResult, error) {
	res := &gatherResult{parts: map[string]partResult{}}
	lv := s.lv

	var autostart, withSnapshots *listing
	var pools *poolGather
	askListings := func() {
		autostart = c.startListing(lv, golibvirt.ConnectListDomainsAutostart)
		withSnapshots = c.startListing(lv, golibvirt.ConnectListDomainsHasSnapshot)
		pools = c.startPools(lv)
	}
	t := time.Now()
	domains, err := c.gatherStats(s, start, askListings)
	statsOK := err == nil
	for _, d := range domains {
		statsOK = statsOK && len(d.errs) == 0
	}
	res.parts[partStats] = partResult{ok: statsOK, duration: time.Since(t)}
	if err != nil {
		return res, err
	}
	res.domains = domains
	byUUID := make(map[string]*domainResult, len(domains))
	for _, d := range domains {
		byUUID[d.uuid] = d
	}
	if autostart == nil {
		askListings()
	}
	// Job info is asked once the stats have shown which guests answer;
	// its calls run while the snapshots and XML are read. The stats may
	// take until three quarters of the timeout (a hung guest's list given
	// up, its guests asked one by one): the job calls, which wait on no
	// guest that answered, get until seven eighths.
	jobDeadline := start.Add(c.cfg.Timeout * 7 / 8)
	jobs := c.startJobInfo(s, jobsWanted(domains), jobDeadline)

	// A listing's part takes the listing's own time, wherever it
	// overlapped the stats calls.
	err = c.gatherAutostart(autostart, res.domains)
	res.parts[partAutostart] = partResult{ok: err == nil, duration: autostart.elapsed}
	if err != nil {
		c.logger.Warn("Cannot list autostart domains", "err", err)
	}

	withSnaps, err := withSnapshots.wait()
	t = time.Now()
	if err == nil {
		err = c.gatherSnapshots(lv, withSnaps, byUUID)
	}
	res.parts[partSnapshots] = partResult{ok: err == nil, duration: withSnapshots.elapsed + time.Since(t)}
	if err != nil {
		c.logger.Warn("Cannot list domain snapshots", "err", err)
	}

	t = time.Now()
	err = c.gatherMetadata(lv, res.domains, start.Add(c.cfg.Timeout/2))
	res.parts[partMetadata] = partResult{ok: err == nil, duration: time.Since(t)}
	if err != nil {
		c.logger.Warn("Cannot fetch all domain XML", "err", err)
	}

	// The pool calls were sent with the listings: by now they have
	// answered, unless a pool is stuck in libvirtd.
	var pp partResult
	res.pools, pp = c.finishPools(pools, start.Add(c.cfg.Timeout/2), res.domains)
	res.parts[partPools] = pp

	took, err := jobs.finish(jobDeadline)
	res.parts[partJobs] = partResult{ok: err == nil, duration: took}
	if err != nil {
		c.logger.Warn("Cannot read the job info of all running domains", "err", err)
	}
	c.pruneCaches(byUUID)
	return res, nil
}

// listing is a ConnectListAllDomains call on a goroutine of its own. It
// needs no deadline: it waits on no guest, and when libvirtd itself hangs
// the scrape's timeout closes the connection, which ends it.
type listing struct {
	done    chan struct{}
	doms    []golibvirt.Domain
	err     error
	elapsed time.Duration
}

func (c *Collector) startListing(lv *golibvirt.Libvirt, flags golibvirt.ConnectListAllDomainsFlags) *listing {
	l := &listing{done: make(chan struct{})}
	c.rpcCalls.Add(1)
	go func() {
		defer close(l.done)
		start := time.Now()
		l.doms, _, l.err = lv.ConnectListAllDomains(1, flags)
		l.elapsed = time.Since(start)
	}()
	return l
}

func (l *listing) wait() ([]golibvirt.Domain, error) {
	<-l.done
	return l.doms, l.err
}

func (c *Collector) gatherAutostart(autostart *listing, domains []*domainResult) error {
	auto, err := autostart.wait()
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

// gatherSnapshots lists the snapshots of the domains libvirt listed as
// having some (withSnaps). A snapshot's XML is fetched once per name and
// cached; a name deleted and re-created gets its new time when an event
// names the domain or the background re-validation comes round.
func (c *Collector) gatherSnapshots(lv *golibvirt.Libvirt, withSnaps []golibvirt.Domain, byUUID map[string]*domainResult) error {
	for _, d := range byUUID {
		d.snapshots = []int64{}
	}
	var errs []error
	for _, dom := range withSnaps {
		d := byUUID[formatUUID(dom.UUID)]
		if d == nil {
			continue // defined after the stats call; next scrape has it
		}
		times, err := c.domainSnapshots(lv, dom, d.uuid, false)
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

// domainSnapshots reads a domain's snapshot times: every snapshot's XML when
// forced or stale, only new snapshots' otherwise.
func (c *Collector) domainSnapshots(lv *golibvirt.Libvirt, dom golibvirt.Domain, uuid string, force bool) ([]int64, error) {
	c.rpcCalls.Add(1)
	snaps, _, err := lv.DomainListAllSnapshots(dom, 1, 0)
	if err != nil {
		return nil, fmt.Errorf("listing snapshots: %w", err)
	}
	c.cacheMu.Lock()
	cached, known := c.snaps[uuid]
	seq := c.changes[uuid]
	c.cacheMu.Unlock()
	stale := force || !known || cached.seq != seq
	fresh := cachedSnapshots{times: make(map[string]int64, len(snaps)), dom: dom, seq: seq, due: cached.due}
	if stale {
		fresh.due = c.nextDue(uuid, time.Now())
	}
	out := make([]int64, 0, len(snaps))
	for _, s := range snaps {
		ct, ok := cached.times[s.Name]
		if !ok || stale {
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
// is missing, stale (an event named the domain) or renamed, in parallel,
// until budget.
// Domains left without metadata still export their stats; the rest is
// fetched by the next scrapes, so a cold start with thousands of domains
// never blows the scrape timeout.
func (c *Collector) gatherMetadata(lv *golibvirt.Libvirt, domains []*domainResult, budget time.Time) error {
	var todo []*domainResult
	c.cacheMu.Lock()
	for _, d := range domains {
		if m, ok := c.meta[d.uuid]; ok {
			meta := m.meta
			d.meta = &meta
			if m.seq == c.changes[d.uuid] && m.meta.Name == d.name {
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
	m, err := c.readMeta(lv, d.dom)
	if err != nil {
		d.errs = append(d.errs, "xml: "+err.Error())
		return err
	}
	d.meta = &m
	return nil
}

// readMeta fetches and parses a domain's XML and caches it. An event that
// names the domain while the XML is on its way leaves the entry stale, so
// the change it announced is not lost.
func (c *Collector) readMeta(lv *golibvirt.Libvirt, dom golibvirt.Domain) (domainMeta, error) {
	uuid := formatUUID(dom.UUID)
	c.cacheMu.Lock()
	seq := c.changes[uuid]
	c.cacheMu.Unlock()
	c.rpcCalls.Add(1)
	doc, err := lv.DomainGetXMLDesc(dom, 0)
	if err != nil {
		return domainMeta{}, fmt.Errorf("fetching XML: %w", err)
	}
	m, err := parseDomainXML(doc)
	if err != nil {
		return domainMeta{}, err
	}
	m.Name, m.UUID = dom.Name, uuid
	c.cacheMu.Lock()
	c.meta[uuid] = cachedMeta{meta: m, dom: dom, seq: seq, due: c.nextDue(uuid, time.Now())}
	c.cacheMu.Unlock()
	return m, nil
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
	for id := range c.changes {
		if present[id] == nil {
			delete(c.changes, id)
		}
	}
}
