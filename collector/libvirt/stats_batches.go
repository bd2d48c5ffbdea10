package libvirt

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
)

// statsTypes are the stat groups every stats call asks for. One bulk call
// replaces the per-domain info, memory, vCPU, block and interface calls that
// make other exporters slow.
const statsTypes = golibvirt.DomainStatsState | golibvirt.DomainStatsCPUTotal |
	golibvirt.DomainStatsBalloon | golibvirt.DomainStatsVCPU |
	golibvirt.DomainStatsInterface | golibvirt.DomainStatsBlock

// defaultStatsBatches is how many lists of running guests are asked at once.
// libvirtd serves max_client_requests (default 5) calls of one connection
// at a time: four lists plus the call for inactive domains fill them, and
// a background XML fetch waits in libvirtd's queue for a moment at worst.
const defaultStatsBatches = 4

// statsCall is one ConnectGetAllDomainStats call for a list of domains (nil:
// every domain). It runs on its own goroutine so a scrape can stop waiting
// for it; a call left behind on a hung guest ends when the guest answers or
// the connection closes.
type statsCall struct {
	doms []golibvirt.Domain
	done chan struct{}
	recs []golibvirt.DomainStatsRecord
	err  error
}

func (c *Collector) startStatsCall(s *session, doms []golibvirt.Domain) *statsCall {
	call := &statsCall{doms: doms, done: make(chan struct{})}
	c.rpcCalls.Add(1)
	s.statsInFlight.Add(1)
	go func() {
		defer close(call.done)
		defer s.statsInFlight.Add(-1)
		call.recs, call.err = s.lv.ConnectGetAllDomainStats(doms, uint32(statsTypes), uint32(golibvirt.ConnectGetAllDomainsStatsNowait))
	}()
	return call
}

// waitUntil reports whether the call answered before the deadline.
func (call *statsCall) waitUntil(deadline time.Time) bool {
	select {
	case <-call.done:
		return true
	default:
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-call.done:
		return true
	case <-timer.C:
		return false
	}
}

// gatherStats returns one result per defined domain. With StatsBatches 1 it
// is one serial bulk call, as before batches existed. Otherwise it lists
// the domains (running ones carry an ID), asks the inactive ones in one
// call and the running ones in up to StatsBatches lists at once.
//
// Calls that have not answered by half the timeout are given up: a guest
// whose QEMU is stopped or wedged makes libvirt wait on its monitor with no
// bound of its own. Their domains are asked again one by one; libvirt then
// skips the monitor of the hung guest, whose query job the abandoned call
// still holds (NOWAIT), so its state arrives without memory and block
// figures and the other guests arrive complete. Only the listing is
// essential: when it fails the scrape fails.
func (c *Collector) gatherStats(s *session, start time.Time) ([]*domainResult, error) {
	if c.cfg.StatsBatches == 1 {
		call := c.startStatsCall(s, nil)
		<-call.done
		if call.err != nil {
			return nil, fmt.Errorf("fetching domain stats: %w", call.err)
		}
		return c.domainResults(call.recs, nil, nil), nil
	}

	c.rpcCalls.Add(1)
	all, _, err := s.lv.ConnectListAllDomains(1, 0)
	if err != nil {
		return nil, fmt.Errorf("listing domains: %w", err)
	}
	var running, inactive []golibvirt.Domain
	for _, d := range all {
		if d.ID > 0 {
			running = append(running, d)
		} else {
			inactive = append(inactive, d)
		}
	}
	var calls []*statsCall
	if len(inactive) > 0 {
		calls = append(calls, c.startStatsCall(s, inactive))
	}
	// Calls left behind by earlier scrapes still hold slots of this
	// connection; a lagging guest should not make the others queue.
	batches := max(1, c.cfg.StatsBatches-int(s.statsInFlight.Load()))
	for _, b := range splitEvenly(running, batches) {
		calls = append(calls, c.startStatsCall(s, b))
	}

	// Half the timeout from the scrape's start, but never less than a
	// quarter of it from now: a slow connect must not make healthy calls
	// look hung.
	deadline := start.Add(c.cfg.Timeout / 2)
	if least := time.Now().Add(c.cfg.Timeout / 4); deadline.Before(least) {
		deadline = least
	}
	var recs []golibvirt.DomainStatsRecord
	var retry []golibvirt.Domain
	answered := false
	for _, call := range calls {
		if !call.waitUntil(deadline) {
			c.logger.Warn("A stats call did not answer in time; asking its domains one by one", "domains", describeDomains(call.doms), "waited", c.cfg.Timeout/2)
			c.markHung(call.doms)
			retry = append(retry, call.doms...)
			continue
		}
		if call.err != nil {
			if !s.lv.IsConnected() {
				return nil, fmt.Errorf("fetching domain stats: %w", call.err)
			}
			// One list failing (a domain undefined at the wrong moment
			// on an older libvirt) must not cost the others.
			retry = append(retry, call.doms...)
			continue
		}
		answered = true
		recs = append(recs, call.recs...)
	}
	if len(calls) > 0 && !answered && len(retry) == len(all) && time.Now().After(deadline) {
		return nil, fmt.Errorf("no stats call answered within %s", c.cfg.Timeout/2)
	}

	failed := map[string]string{}
	if len(retry) > 0 {
		more, errs := c.askOneByOne(s, retry, deadline.Add(c.cfg.Timeout/4))
		recs = append(recs, more...)
		failed = errs
	}
	return c.domainResults(recs, all, failed), nil
}

// askOneByOne asks each domain in a call of its own, a few at a time, until
// the deadline. It returns the records and, by UUID, why the rest has none.
func (c *Collector) askOneByOne(s *session, doms []golibvirt.Domain, deadline time.Time) ([]golibvirt.DomainStatsRecord, map[string]string) {
	var (
		mu     sync.Mutex
		recs   []golibvirt.DomainStatsRecord
		failed = map[string]string{}
		wg     sync.WaitGroup
		slots  = make(chan struct{}, c.cfg.StatsBatches)
	)
	for _, d := range doms {
		failed[formatUUID(d.UUID)] = "stats: no answer in this scrape (the guest's QEMU monitor does not answer)"
	}
	wg.Add(len(doms))
	for _, d := range doms {
		go func() {
			defer wg.Done()
			select {
			case slots <- struct{}{}:
			case <-time.After(time.Until(deadline)):
				return
			}
			defer func() { <-slots }()
			call := c.startStatsCall(s, []golibvirt.Domain{d})
			if !call.waitUntil(deadline) {
				c.markHung(call.doms)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if call.err != nil {
				failed[formatUUID(d.UUID)] = "stats: " + call.err.Error()
				return
			}
			delete(failed, formatUUID(d.UUID))
			recs = append(recs, call.recs...)
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(recs), maps.Clone(failed)
}

// domainResults turns records into one result per domain, sorted by name.
// listed domains without a record get a result of their own carrying the
// reason from failed, so their cached XML still yields libvirt_domain_info.
func (c *Collector) domainResults(recs []golibvirt.DomainStatsRecord, listed []golibvirt.Domain, failed map[string]string) []*domainResult {
	byUUID := make(map[string]*domainResult, len(recs))
	var out []*domainResult
	for _, r := range recs {
		d := &domainResult{dom: r.Dom, name: r.Dom.Name, uuid: formatUUID(r.Dom.UUID), stats: parseDomainStats(r.Params)}
		if _, dup := byUUID[d.uuid]; dup {
			continue
		}
		byUUID[d.uuid] = d
		out = append(out, d)
	}
	for _, dom := range listed {
		id := formatUUID(dom.UUID)
		if byUUID[id] != nil {
			continue
		}
		reason, ok := failed[id]
		if !ok {
			continue // undefined between the listing and its stats call
		}
		d := &domainResult{dom: dom, name: dom.Name, uuid: id, stats: parseDomainStats(nil), errs: []string{reason}}
		byUUID[id] = d
		out = append(out, d)
	}
	c.judgeHung(out)
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// markHung remembers the domains of a call that did not answer in time. The
// call's list may hold healthy guests too; judgeHung tells them apart.
func (c *Collector) markHung(doms []golibvirt.Domain) {
	now := time.Now()
	c.cacheMu.Lock()
	defer c.cacheMu.Unlock()
	for _, d := range doms {
		id := formatUUID(d.UUID)
		if _, ok := c.hung[id]; !ok {
			c.hung[id] = now
		}
	}
}

// judgeHung settles, for each domain once suspected, whether it still
// hangs. A running guest's record carries balloon.rss only when libvirt got
// the guest's query job and asked its monitor; a suspect whose record lacks
// it is still blocked (its job held by the call that never answered), so
// its memory and block figures are missing and it reports
// scrape_success 0. A complete record, or a guest no longer active,
// clears the suspicion.
func (c *Collector) judgeHung(results []*domainResult) {
	c.cacheMu.Lock()
	defer c.cacheMu.Unlock()
	present := make(map[string]bool, len(results))
	for _, d := range results {
		present[d.uuid] = true
		since, suspect := c.hung[d.uuid]
		if !suspect {
			continue
		}
		s := d.stats
		_, hasRSS := s.Balloon["rss"]
		active := s.HasState && s.State != stateShutoff && s.State != stateCrashed && s.State != 0
		if s.HasState && (!active || hasRSS) {
			delete(c.hung, d.uuid)
			continue
		}
		if len(d.errs) == 0 {
			d.errs = append(d.errs, fmt.Sprintf("stats: the guest's QEMU monitor has not answered since %s; memory, block and interface figures missing", since.UTC().Format(time.RFC3339)))
		}
	}
	for id := range c.hung {
		if !present[id] {
			delete(c.hung, id)
		}
	}
}

// splitEvenly cuts doms into at most n lists of nearly equal length.
func splitEvenly(doms []golibvirt.Domain, n int) [][]golibvirt.Domain {
	n = min(n, len(doms))
	out := make([][]golibvirt.Domain, 0, n)
	for i := range n {
		lo, hi := i*len(doms)/n, (i+1)*len(doms)/n
		out = append(out, doms[lo:hi])
	}
	return out
}

// describeDomains names a few domains for log lines.
func describeDomains(doms []golibvirt.Domain) string {
	names := make([]string, 0, min(len(doms), 5))
	for _, d := range doms[:min(len(doms), 5)] {
		names = append(names, d.Name)
	}
	if len(doms) > 5 {
		names = append(names, fmt.Sprintf("and %d more", len(doms)-5))
	}
	return strings.Join(names, ", ")
}
