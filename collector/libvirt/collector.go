// Package libvirt collects the state, resources, statistics and snapshots of
// every domain defined in libvirtd, running or not.
//
// Design, against the known faults of other libvirt exporters:
//   - one long-lived connection over the read-only socket, re-established
//     on the next scrape after libvirtd restarts;
//   - bulk ConnectGetAllDomainStats calls instead of several calls per
//     domain: the running guests split into a few lists asked at once
//     (libvirtd asks each guest's QEMU monitor in turn within one call, so
//     one call costs the sum of the guests' round trips), the inactive
//     domains in one more call; all with NOWAIT, so a domain busy with a
//     job does not block the others (stats_batches.go);
//   - a guest whose QEMU does not answer costs only itself: the other
//     guests of its list are asked again on their own before the scrape
//     ends, the hung one keeps its state series and reports
//     libvirt_domain_scrape_success 0;
//   - domain XML (role, disks, interfaces) and snapshot times are cached,
//     refreshed when libvirt's domain events name a domain (events.go) and
//     re-validated slowly in the background as a safety net
//     (revalidate.go), so no scrape re-fetches every domain at once;
//   - every scrape is bounded by Config.Timeout: when libvirtd does not answer
//     in time the socket is closed, the scrape reports libvirt_up 0 and the
//     rest of the exporter's metrics are served as usual;
//   - concurrent scrapes share one in-flight gather, so a burst of scrapes
//     does not multiply the load on libvirtd.
//   - storage pools cost a listing and one info call each per scrape, sent
//     beside the stats calls, never a pool refresh and nothing per domain;
//     a pool stuck in libvirtd times out alone (pools.go).
package libvirt

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/prometheus/client_golang/prometheus"
)

const namespace = "libvirt"

// Config holds the flags of the libvirt collector.
type Config struct {
	// Socket is the read-only socket named on the command line, used as
	// given. Empty: the first of Sockets that exists at each connect
	// (DefaultSockets when Sockets is empty too).
	Socket  string
	Sockets []string
	URI     string
	Timeout time.Duration
	// MetadataRefresh is the period within which every cached domain XML
	// and snapshot time is re-read in the background, even when no event
	// named its domain.
	MetadataRefresh time.Duration
	// StatsBatches is how many stats calls for running guests are sent at
	// once; 1 asks for every domain in one serial bulk call, and every
	// request of a scrape waits for the one before. libvirtd
	// serves max_client_requests (default 5) calls of a connection at once.
	StatsBatches int
	// NoJobInfo leaves out the job info calls (libvirt_domain_job_info_*):
	// they are one call per running guest, since no stats group carries
	// jobs, and an operator of thousands of guests who does not chart
	// migrations or backup jobs may spare them.
	NoJobInfo bool
}

// Collector implements prometheus.Collector for libvirt domains.
type Collector struct {
	cfg    Config
	logger *slog.Logger

	mu         sync.Mutex // guards sess, connecting, inflight, connected, scrapes and quiet
	sess       *session
	connecting *trackingDialer // of a session being established, for Close
	inflight   *gatherCall
	connected  bool // a session was established before: a new one may have missed events
	// scrapes counts the Collect calls running; quiet is closed when the
	// count drops to zero. The background re-validation waits for it.
	scrapes int
	quiet   chan struct{}

	cacheMu sync.Mutex
	meta    map[string]cachedMeta      // by domain UUID
	snaps   map[string]cachedSnapshots // by domain UUID
	changes map[string]uint64          // events naming a domain, by UUID; see cachedMeta
	// known and runningByID are the last scrape's domains (by UUID) and
	// running domains (by ID), for the cheap listing of the next.
	known       map[golibvirt.UUID]golibvirt.Domain
	runningByID map[int32]golibvirt.Domain
	// runningCost is what the last scrape's calls for running domains took
	// beyond a call that waits on no guest, summed; they returned
	// runningRecs records. runningInOneCall is how the next scrape asks
	// for them, changed after votesAgainst reaches votesToSwitch. See
	// listsPay.
	runningCost      time.Duration
	runningRecs      int
	runningInOneCall bool
	votesAgainst     int
	testOneCall      bool // tests: one call for the running domains, as for a fast driver
	testLists        bool // tests: lists for the running domains, however fast the guests answer

	stopRevalidation context.CancelFunc

	rpcCalls atomic.Uint64
	failing  atomic.Bool // last scrape failed: log repeats at debug level only

	d descriptors

	pools poolState       // storage pools between scrapes (pools.go)
	pd    poolDescriptors // storage pool series
}

// gatherCall is one gather, shared by the scrapes that wait for it.
// sess and finished are guarded by Collector.mu: a scrape whose timer
// fires closes the session only while finished is false, so it can never
// close the connection a newer gather already uses. sess is nil while the
// gather is still connecting: a scrape's timer leaves that attempt alone
// (see abort).
type gatherCall struct {
	done     chan struct{}
	res      *gatherResult
	err      error
	sess     *session
	finished bool
}

// New returns a collector; it does not connect until the first scrape or
// Probe.
func New(cfg Config, logger *slog.Logger) *Collector {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MetadataRefresh <= 0 {
		cfg.MetadataRefresh = 5 * time.Minute
	}
	if cfg.StatsBatches <= 0 {
		cfg.StatsBatches = defaultStatsBatches
	}
	switch {
	case cfg.Socket != "":
		cfg.Sockets = []string{cfg.Socket}
	case len(cfg.Sockets) == 0:
		cfg.Sockets = DefaultSockets
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Collector{
		cfg:              cfg,
		logger:           logger,
		meta:             map[string]cachedMeta{},
		snaps:            map[string]cachedSnapshots{},
		changes:          map[string]uint64{},
		stopRevalidation: cancel,
		d:                newDescriptors(),
		pd:               newPoolDescriptors(),
	}
	go c.revalidateLoop(ctx)
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	c.d.describe(ch)
	c.pd.describe(ch)
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	start := time.Now()
	c.beginScrape()
	defer c.endScrape()
	res, err := c.bounded()
	up := 1.0
	if err != nil {
		up = 0
	}
	c.logTransition(err)
	if res != nil {
		for part, p := range res.parts {
			ch <- prometheus.MustNewConstMetric(c.d.partSuccess, prometheus.GaugeValue, boolFloat(p.ok), part)
			ch <- prometheus.MustNewConstMetric(c.d.partDuration, prometheus.GaugeValue, p.duration.Seconds(), part)
		}
	}
	if err == nil {
		ch <- prometheus.MustNewConstMetric(c.d.domains, prometheus.GaugeValue, float64(len(res.domains)))
		for _, d := range res.domains {
			c.d.emitDomain(ch, d)
		}
		c.pd.emit(ch, res.pools)
	}
	ch <- prometheus.MustNewConstMetric(c.d.up, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(c.d.rpcCalls, prometheus.CounterValue, float64(c.rpcCalls.Load()))
	ch <- prometheus.MustNewConstMetric(c.d.scrapeDuration, prometheus.GaugeValue, time.Since(start).Seconds())
}

// beginScrape and endScrape bracket a Collect, for waitForNoScrape.
func (c *Collector) beginScrape() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.scrapes == 0 {
		c.quiet = make(chan struct{})
	}
	c.scrapes++
}

func (c *Collector) endScrape() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.scrapes--
	if c.scrapes == 0 {
		close(c.quiet)
	}
}

// Probe connects once, so the exporter can say at start-up whether libvirt
// is reachable. It is bounded by the timeout like a scrape.
func (c *Collector) Probe() error {
	_, err := c.bounded()
	c.failing.Store(err != nil) // the caller logs it
	return err
}

// Close ends the libvirt session and the background re-validation.
func (c *Collector) Close() {
	c.stopRevalidation()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sess.close()
	c.sess = nil
	if c.connecting != nil {
		c.connecting.close()
	}
}

// RPCCalls returns the number of libvirt RPCs the collector has made; the
// benchmarks use it to show the calls per scrape.
func (c *Collector) RPCCalls() uint64 { return c.rpcCalls.Load() }

// bounded runs (or joins) a gather and waits at most the timeout for it.
func (c *Collector) bounded() (*gatherResult, error) {
	c.mu.Lock()
	call := c.inflight
	if call == nil {
		call = &gatherCall{done: make(chan struct{})}
		c.inflight = call
		go c.runGather(call)
	}
	c.mu.Unlock()

	timer := time.NewTimer(c.cfg.Timeout)
	defer timer.Stop()
	select {
	case <-call.done:
		return call.res, call.err
	case <-timer.C:
		if testHookTimeout != nil {
			testHookTimeout()
		}
		switch c.abort(call) {
		case gaveUpSession:
			return nil, fmt.Errorf("libvirtd did not answer within %s; connection closed, a new one is opened on the next scrape", c.cfg.Timeout)
		case stillConnecting:
			return nil, fmt.Errorf("libvirtd did not answer the connection request within %s; the next scrape waits for the same request instead of opening another connection", c.cfg.Timeout)
		}
		// The gather finished while the timer fired: its answer is good.
		<-call.done
		return call.res, call.err
	}
}

// Test hooks: testHookTimeout runs when a scrape's timer has fired, before
// it aborts; testHookSessionReady runs when a gather has its session,
// before the first stats call.
var testHookTimeout, testHookSessionReady func()

func (c *Collector) runGather(call *gatherCall) {
	defer func() {
		c.mu.Lock()
		call.finished = true
		if c.inflight == call {
			c.inflight = nil
		}
		c.mu.Unlock()
		close(call.done)
	}()
	start := time.Now()
	s, err := c.session(call)
	if err != nil {
		call.err = err
		return
	}
	if time.Since(start) > c.cfg.Timeout {
		// The connection was accepted after the scrape that asked for it
		// gave up (libvirtd frozen, then thawed): this gather serves the
		// scrapes waiting now, and its budget starts now.
		start = time.Now()
	}
	if testHookSessionReady != nil {
		testHookSessionReady()
	}
	call.res, call.err = c.gather(s, start)
	if call.err != nil && !s.closed.Load() && !s.lv.IsConnected() {
		call.err = fmt.Errorf("connection to libvirtd lost: %w", call.err)
	}
}

// session returns the live session or opens a new one. A session whose
// socket was closed (libvirtd restarted, or aborted by a timeout) is
// replaced here, which is what makes the collector recover on its own.
func (c *Collector) session(call *gatherCall) (*session, error) {
	c.mu.Lock()
	s := c.sess
	if s.alive() {
		call.sess = s
		c.mu.Unlock()
		return s, nil
	}
	c.mu.Unlock()
	s.close()
	socket, err := chooseSocket(c.cfg.Sockets)
	if err != nil {
		return nil, err
	}
	ns, err := connect(socket, c.cfg.URI, c.cfg.Timeout, func(d *trackingDialer) {
		c.mu.Lock()
		c.connecting = d
		c.mu.Unlock()
	})
	c.mu.Lock()
	c.connecting = nil
	if err != nil {
		c.sess = nil
		c.mu.Unlock()
		return nil, err
	}
	c.sess, call.sess = ns, ns
	reconnected := c.connected
	c.connected = true
	c.mu.Unlock()
	c.logger.Info("Connected to libvirtd", "socket", socket, "uri", c.cfg.URI)
	if reconnected {
		// Events sent while no session listened are lost: every cached
		// XML and snapshot time is re-read, within the scrapes' budget;
		// and running domains are listed by name once more.
		c.markAllStale()
	}
	if err := c.subscribe(ns); err != nil {
		c.logger.Warn("Cannot subscribe to libvirt domain events; cached domain XML is only re-validated every --libvirt.metadata-refresh-interval", "err", err)
	}
	return ns, nil
}

// abortResult is what a scrape's timer did to the gather it waited for.
type abortResult int

const (
	gatherFinished  abortResult = iota // nothing: its answer is good
	gaveUpSession                      // closed the session the gather used
	stillConnecting                    // nothing: the connection attempt goes on
)

// abort gives up the session a still running gather uses: its socket is
// closed, which makes go-libvirt fail every pending call, so the stuck
// gather ends and nothing it sent waits on the connection for libvirtd to
// wake. The calls on a connection must never outlive the scrape that
// gave up on them: a daemon frozen for a night would otherwise be handed
// every call of every scrape at once when it wakes.
//
// A gather still connecting is left alone: its one connection request
// waits in libvirtd's queue, and the next scrapes join the same gather
// (Collector.inflight) rather than each queue a connection of its own. So
// a frozen libvirtd holds one request from the exporter however long it
// stays frozen, and the answer to that request, when it comes, is the
// connection the next scrape uses. The attempt ends when libvirtd answers
// or goes away (its socket then closes), or on Close.
//
// A gather that has finished is left alone too: a session reused by a
// newer gather must not be torn down by an older scrape's timer.
func (c *Collector) abort(call *gatherCall) abortResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case call.finished:
		return gatherFinished
	case call.sess == nil:
		return stillConnecting
	}
	call.sess.close()
	return gaveUpSession
}

// logTransition logs the first failure and the recovery at error / info
// level and repeats of the same failure at debug level, so a host without
// libvirt does not fill the log with one error per scrape.
func (c *Collector) logTransition(err error) {
	switch {
	case err != nil && !c.failing.Swap(true):
		c.logger.Error("libvirt scrape failed; libvirt_up is 0 until it succeeds", "socket", socketsText(c.cfg.Sockets), "uri", c.cfg.URI, "err", err)
	case err != nil:
		c.logger.Debug("libvirt scrape failed", "err", err)
	case c.failing.Swap(false):
		c.logger.Info("libvirt scrape succeeds again", "socket", socketsText(c.cfg.Sockets), "uri", c.cfg.URI)
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
