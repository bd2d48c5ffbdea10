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
// at a time: four lists plus the call for inactive domains fill them; the
// autostart and has-snapshot listings sent after them, and a background
// XML fetch, wait in libvirtd's queue until the inactive call has
// answered, a few milliseconds at worst.
const defaultStatsBatches = 4

// statsCall is one ConnectGetAllDomainStats call for a list of domains (nil:
// every domain). It runs on its own goroutine so a scrape can stop waiting
// for it; a call left behind on a hung guest ends when the guest answers or
// the connection closes.
type statsCall struct {
	doms    []golibvirt.Domain // asked for; nil: what the filter selects
	done    chan struct{}
	recs    []golibvirt.DomainStatsRecord
	err     error
	elapsed time.Duration
}

// startStatsCall asks for the stats of doms (nil: every domain libvirt's
// filter flags select).
func (c *Collector) startStatsCall(s *session, doms []golibvirt.Domain, filter golibvirt.ConnectGetAllDomainStatsFlags) *statsCall {
	call := &statsCall{doms: doms, done: make(chan struct{})}
	c.rpcCalls.Add(1)
	s.statsInFlight.Add(1)
	go func() {
		defer close(call.done)
		defer s.statsInFlight.Add(-1)
		start := time.Now()
		call.recs, call.err = s.lv.ConnectGetAllDomainStats(doms, uint32(statsTypes), uint32(golibvirt.ConnectGetAllDomainsStatsNowait|filter))
		call.elapsed = time.Since(start)
	}()
	return call
}

// Lists asked at once pay when libvirt waits on the guests (QEMU monitor
// round trips, about 1 to 10 ms a guest): the waits overlap. When libvirt
// answers from memory (the test driver: about 7 µs a domain), or the
// running domains take a couple of milliseconds in all, lists only add
// their cost (an RPC each, and libvirtd looks every listed domain up): one
// call for all running domains is then faster. Each scrape's answer times
// vote, each call's time counted beyond the time of the call for the
// inactive domains, which waits on no guest.
const (
	guestWaitThreshold   = 200 * time.Microsecond // per running domain
	runningCostThreshold = 2 * time.Millisecond   // all running domains
	// votesToSwitch scrapes in a row must vote against the current way
	// before it changes: one scrape slowed by a busy machine (a CI run saw
	// a test-driver scrape stretched past runningCostThreshold) must not
	// put a fast driver back into lists, nor one fast moment real guests
	// into one call. Both ways give the same series; only the speed of a
	// scrape or two is at stake.
	votesToSwitch = 2
)

// listsPay reports whether the running domains are asked in lists. A new
// connection starts with lists: nothing is measured yet, and lists keep a
// hung guest to its own list.
func (c *Collector) listsPay() bool {
	c.cacheMu.Lock()
	defer c.cacheMu.Unlock()
	return !c.testOneCall && (c.testLists || !c.runningInOneCall)
}

// noteRunningCost takes a scrape's vote: its calls for the running
// domains took cost beyond a call that waits on no guest and returned
// recs records.
func (c *Collector) noteRunningCost(cost time.Duration, recs int) {
	c.cacheMu.Lock()
	defer c.cacheMu.Unlock()
	c.runningCost, c.runningRecs = cost, recs
	lists := cost >= runningCostThreshold && cost/time.Duration(recs) >= guestWaitThreshold
	if lists != c.runningInOneCall {
		c.votesAgainst = 0
		return
	}
	c.votesAgainst++
	if c.votesAgainst >= votesToSwitch {
		c.runningInOneCall, c.votesAgainst = !lists, 0
	}
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
// is one serial bulk call, as before batches existed. Otherwise the
// inactive domains come in one bulk call (libvirt's inactive filter) and,
// at the same time, the running ones: listed by ID (the cheapest listing)
// and asked in up to StatsBatches lists at once while libvirt waits on
// its guests, in one call (the active filter) while it does not (see
// guestWaitThreshold; the first scrape of a session uses lists).
//
// Calls that have not answered by half the timeout are given up: a guest
// whose QEMU is stopped or wedged makes libvirt wait on its monitor with no
// bound of its own. Their domains are asked again one by one; libvirt then
// skips the monitor of the hung guest, whose query job the abandoned call
// still holds (NOWAIT), so its state arrives without memory and block
// figures and the other guests arrive complete. The listing and the
// inactive call are essential: when they fail the scrape fails.
//
// besideStats runs once the stats calls are sent, except with
// StatsBatches 1, to send requests that libvirtd answers meanwhile.
func (c *Collector) gatherStats(s *session, start time.Time, besideStats func()) ([]*domainResult, error) {
	if c.cfg.StatsBatches == 1 {
		call := c.startStatsCall(s, nil, 0)
		<-call.done
		if call.err != nil {
			return nil, fmt.Errorf("fetching domain stats: %w", call.err)
		}
		return c.domainResults(call.recs, nil, nil), nil
	}

	// Calls left behind by earlier scrapes still hold slots of this
	// connection; a lagging guest should not make the others queue.
	batches := max(1, c.cfg.StatsBatches-int(s.statsInFlight.Load()))
	useLists := c.listsPay()
	calls := []*statsCall{c.startStatsCall(s, nil, golibvirt.ConnectGetAllDomainsStatsInactive)}
	var running []golibvirt.Domain
	if useLists {
		var err error
		if running, err = c.runningDomains(s); err != nil {
			return nil, err
		}
		for _, b := range splitEvenly(running, batches) {
			calls = append(calls, c.startStatsCall(s, b, 0))
		}
	} else {
		calls = append(calls, c.startStatsCall(s, nil, golibvirt.ConnectGetAllDomainsStatsActive))
	}
	besideStats()

	// Half the timeout from the scrape's start, but never less than a
	// quarter of it from now: a slow connect must not make healthy calls
	// look hung.
	deadline := start.Add(c.cfg.Timeout / 2)
	if least := time.Now().Add(c.cfg.Timeout / 4); deadline.Before(least) {
		deadline = least
	}
	var recs []golibvirt.DomainStatsRecord
	var retry []golibvirt.Domain
	var cost time.Duration
	var costRecs int
	for i, call := range calls {
		answered := call.waitUntil(deadline)
		if i == 0 {
			// The inactive domains touch no guest: no answer means
			// libvirtd itself does not answer (frozen, or every slot
			// of this connection held by calls waiting on guests).
			// Every call on the connection is given up for good: the
			// session is closed, so none of them waits there for
			// libvirtd to wake, and the next scrape connects anew.
			if !answered {
				s.close()
				return nil, fmt.Errorf("no answer for the inactive domains' stats within %s; connection closed, a new one is opened on the next scrape", time.Since(start).Round(time.Millisecond))
			}
			if call.err != nil {
				return nil, fmt.Errorf("fetching inactive domains' stats: %w", call.err)
			}
			recs = append(recs, call.recs...)
			continue
		}
		doms := call.doms
		if !answered || call.err != nil {
			if doms == nil {
				// The one call for all running domains: which are they?
				var err error
				if running, err = c.runningDomains(s); err != nil {
					return nil, err
				}
				doms = running
			}
		}
		if !answered {
			c.logger.Warn("A stats call did not answer in time; asking its domains one by one", "domains", describeDomains(doms), "waited", time.Since(start).Round(time.Millisecond))
			retry = append(retry, doms...)
			continue
		}
		if call.err != nil {
			if !s.lv.IsConnected() {
				return nil, fmt.Errorf("fetching domain stats: %w", call.err)
			}
			// One list failing (a domain undefined at the wrong moment
			// on an older libvirt) must not cost the others.
			retry = append(retry, doms...)
			continue
		}
		// What the call took beyond a call that waits on no guest.
		cost += max(0, call.elapsed-calls[0].elapsed)
		costRecs += len(call.recs)
		recs = append(recs, call.recs...)
	}
	if costRecs > 0 {
		c.noteRunningCost(cost, costRecs)
	}
	// A domain that started or stopped between the listing and the calls
	// is in neither answer: ask for the ones the last scrape knew.
	retry = append(retry, c.slippedThrough(recs, retry)...)

	failed := map[string]string{}
	if len(retry) > 0 {
		more, errs := c.askOneByOne(s, retry, deadline.Add(c.cfg.Timeout/4))
		recs = append(recs, more...)
		failed = errs
	}
	c.remember(recs)
	return c.domainResults(recs, append(running, retry...), failed), nil
}

// runningDomains lists the running guests. ConnectListDomains returns bare
// IDs, a fraction of the cost of listing names and UUIDs (3.5 ms for 1,000
// domains); IDs the last scrape saw are mapped back to their domains, and
// when more than a few are new the full listing of active domains is
// cheaper than looking each up.
func (c *Collector) runningDomains(s *session) ([]golibvirt.Domain, error) {
	c.rpcCalls.Add(1)
	ids, err := s.lv.ConnectListDomains(remoteDomainIDListMax)
	if err != nil {
		return nil, fmt.Errorf("listing running domains: %w", err)
	}
	c.cacheMu.Lock()
	out := make([]golibvirt.Domain, 0, len(ids))
	var unknown []int32
	for _, id := range ids {
		if d, ok := c.runningByID[id]; ok {
			out = append(out, d)
		} else {
			unknown = append(unknown, id)
		}
	}
	c.cacheMu.Unlock()
	if len(unknown) == 0 {
		return out, nil
	}
	if len(unknown) > 4 {
		c.rpcCalls.Add(1)
		all, _, err := s.lv.ConnectListAllDomains(1, golibvirt.ConnectListDomainsActive)
		if err != nil {
			return nil, fmt.Errorf("listing running domains: %w", err)
		}
		return all, nil
	}
	for _, id := range unknown {
		c.rpcCalls.Add(1)
		d, err := s.lv.DomainLookupByID(id)
		if err != nil {
			continue // stopped since the listing
		}
		out = append(out, d)
	}
	return out, nil
}

// remoteDomainIDListMax is libvirt's REMOTE_DOMAIN_ID_LIST_MAX, the most IDs
// one ConnectListDomains answer may carry.
const remoteDomainIDListMax = 16384

// slippedThrough returns the domains the last scrape saw that are neither
// in recs nor in asked.
func (c *Collector) slippedThrough(recs []golibvirt.DomainStatsRecord, asked []golibvirt.Domain) []golibvirt.Domain {
	seen := make(map[golibvirt.UUID]bool, len(recs)+len(asked))
	for _, r := range recs {
		seen[r.Dom.UUID] = true
	}
	for _, d := range asked {
		seen[d.UUID] = true
	}
	c.cacheMu.Lock()
	defer c.cacheMu.Unlock()
	var out []golibvirt.Domain
	for id, d := range c.known {
		if !seen[id] {
			out = append(out, d)
		}
	}
	return out
}

// remember keeps the domains of this scrape's records, those asked one by
// one included, for the next scrape's cheap listing: all of them by UUID,
// the running ones by ID.
func (c *Collector) remember(recs []golibvirt.DomainStatsRecord) {
	known := make(map[golibvirt.UUID]golibvirt.Domain, len(recs))
	byID := make(map[int32]golibvirt.Domain)
	for _, r := range recs {
		known[r.Dom.UUID] = r.Dom
		if r.Dom.ID > 0 {
			byID[r.Dom.ID] = r.Dom
		}
	}
	c.cacheMu.Lock()
	c.known, c.runningByID = known, byID
	c.cacheMu.Unlock()
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
		failed[formatUUID(d.UUID)] = noAnswerReason
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
			call := c.startStatsCall(s, []golibvirt.Domain{d}, 0)
			if !call.waitUntil(deadline) {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if call.err != nil {
				failed[formatUUID(d.UUID)] = "stats: " + call.err.Error()
				return
			}
			if len(call.recs) == 0 {
				delete(failed, formatUUID(d.UUID)) // undefined meanwhile
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
		d := &domainResult{dom: dom, name: dom.Name, uuid: id, stats: parseDomainStats(nil), errs: []string{reason}, timedOut: reason == noAnswerReason}
		byUUID[id] = d
		out = append(out, d)
	}
	markIncomplete(out)
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// noAnswerReason is why a domain asked on its own has no stats: its call
// was given up at the deadline (libvirt_domain_timed_out 1).
const noAnswerReason = "stats: no answer in this scrape (the guest's QEMU monitor does not answer)"

// markIncomplete marks the records libvirt answered without asking the
// guest's QEMU. With NOWAIT libvirt skips the monitor of a domain whose
// query job someone else holds (a call stuck on a hung guest: ours, an
// abandoned one, another client's) and still reports what it knows without
// it. The QEMU driver then sends balloon.current and balloon.maximum but
// not balloon.rss, which it adds whenever it got the job; such a record
// lacks the memory, block and vCPU figures of the monitor, so the domain
// reports scrape_success 0 while its state series stay. (The test driver
// sends no balloon group at all and is never marked.)
func markIncomplete(results []*domainResult) {
	for _, d := range results {
		s := d.stats
		if !s.HasState || s.State == stateShutoff || s.State == stateCrashed || s.State == 0 || len(d.errs) > 0 {
			continue
		}
		_, current := s.Balloon["current"]
		_, rss := s.Balloon["rss"]
		if current && !rss {
			d.timedOut = true
			d.errs = append(d.errs, "stats: libvirt could not query the guest's QEMU (its monitor is busy or does not answer); memory, block and vCPU figures missing")
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
