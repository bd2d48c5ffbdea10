// Package libvirt collects the state, resources, statistics and snapshots of
// every domain defined in libvirtd, running or not.
//
// Design, against the known faults of other libvirt exporters:
//   - one long-lived connection over the read-only socket, re-established
//     on the next scrape after libvirtd restarts;
//   - one bulk ConnectGetAllDomainStats call per scrape (with NOWAIT, so a
//     domain busy with a job does not block the others) instead of several
//     calls per domain; domain XML (role, disks, interfaces) is cached;
//   - every scrape is bounded by Config.Timeout: when libvirtd does not answer
//     in time the socket is closed, the scrape reports libvirt_up 0 and the
//     rest of the exporter's metrics are served as usual;
//   - concurrent scrapes share one in-flight gather, so a burst of scrapes
//     does not multiply the load on libvirtd.
package libvirt

import (
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
	Socket          string
	URI             string
	Timeout         time.Duration
	MetadataRefresh time.Duration
}

// Collector implements prometheus.Collector for libvirt domains.
type Collector struct {
	cfg    Config
	logger *slog.Logger

	mu       sync.Mutex // guards sess, dialer and inflight
	sess     *session
	dialer   *trackingDialer // of the session being established or in use
	inflight *gatherCall

	cacheMu sync.Mutex
	meta    map[string]cachedMeta      // by domain UUID
	snaps   map[string]cachedSnapshots // by domain UUID

	rpcCalls atomic.Uint64
	failing  atomic.Bool // last scrape failed: log repeats at debug level only

	d descriptors
}

type gatherCall struct {
	done chan struct{}
	res  *gatherResult
	err  error
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
	return &Collector{
		cfg:    cfg,
		logger: logger,
		meta:   map[string]cachedMeta{},
		snaps:  map[string]cachedSnapshots{},
		d:      newDescriptors(),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	c.d.describe(ch)
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	start := time.Now()
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
	}
	ch <- prometheus.MustNewConstMetric(c.d.up, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(c.d.rpcCalls, prometheus.CounterValue, float64(c.rpcCalls.Load()))
	ch <- prometheus.MustNewConstMetric(c.d.scrapeDuration, prometheus.GaugeValue, time.Since(start).Seconds())
}

// Probe connects once, so the exporter can say at start-up whether libvirt
// is reachable. It is bounded by the timeout like a scrape.
func (c *Collector) Probe() error {
	_, err := c.bounded()
	c.failing.Store(err != nil) // the caller logs it
	return err
}

// Close ends the libvirt session.
func (c *Collector) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sess.close()
	c.sess = nil
	if c.dialer != nil {
		c.dialer.close()
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
		c.abort()
		return nil, fmt.Errorf("libvirtd did not answer within %s; connection closed, a new one is opened on the next scrape", c.cfg.Timeout)
	}
}

func (c *Collector) runGather(call *gatherCall) {
	defer func() {
		c.mu.Lock()
		if c.inflight == call {
			c.inflight = nil
		}
		c.mu.Unlock()
		close(call.done)
	}()
	start := time.Now()
	lv, err := c.session()
	if err != nil {
		call.err = err
		return
	}
	call.res, call.err = c.gather(lv, start)
	if call.err != nil && !lv.IsConnected() {
		call.err = fmt.Errorf("connection to libvirtd lost: %w", call.err)
	}
}

// session returns the live session or opens a new one. A session whose
// socket was closed (libvirtd restarted, or aborted by a timeout) is
// replaced here, which is what makes the collector recover on its own.
func (c *Collector) session() (*golibvirt.Libvirt, error) {
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	if s.alive() {
		return s.lv, nil
	}
	s.close()
	ns, err := connect(c.cfg.Socket, c.cfg.URI, c.cfg.Timeout, func(d *trackingDialer) {
		c.mu.Lock()
		c.dialer = d
		c.mu.Unlock()
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.sess = nil
		return nil, err
	}
	c.sess = ns
	c.logger.Info("Connected to libvirtd", "socket", c.cfg.Socket, "uri", c.cfg.URI)
	return ns.lv, nil
}

// abort closes the socket of the current or connecting session, which makes
// go-libvirt fail every pending call so the stuck gather ends.
func (c *Collector) abort() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dialer != nil {
		c.dialer.close()
	}
}

// logTransition logs the first failure and the recovery at error / info
// level and repeats of the same failure at debug level, so a host without
// libvirt does not fill the log with one error per scrape.
func (c *Collector) logTransition(err error) {
	switch {
	case err != nil && !c.failing.Swap(true):
		c.logger.Error("libvirt scrape failed; libvirt_up is 0 until it succeeds", "socket", c.cfg.Socket, "uri", c.cfg.URI, "err", err)
	case err != nil:
		c.logger.Debug("libvirt scrape failed", "err", err)
	case c.failing.Swap(false):
		c.logger.Info("libvirt scrape succeeds again", "socket", c.cfg.Socket, "uri", c.cfg.URI)
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
