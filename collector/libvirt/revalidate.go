package libvirt

import (
	"context"
	"hash/fnv"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
)

// Events tell the collector which domains changed, but an event can be lost
// (libvirtd restarted between two sessions, a change libvirt announces with
// no event). So every cached XML and snapshot time is read again within
// MetadataRefresh, in the background, off the scrape path. Each domain's
// turn comes at its own offset within the period, so the domains fetched
// together at a cold start do not all fall due in the same second again.

// nextDue is when a domain's cache, fetched at now, is re-validated: between
// half and the whole period later, at an offset fixed by its UUID.
func (c *Collector) nextDue(uuid string, now time.Time) time.Time {
	h := fnv.New64a()
	_, _ = h.Write([]byte(uuid))
	period := c.cfg.MetadataRefresh
	offset := time.Duration(h.Sum64() % uint64(period/2+1))
	return now.Add(period - offset)
}

// revalidationTick is how often the loop looks for due entries: often enough
// to spread them, rarely enough to cost nothing.
func (c *Collector) revalidationTick() time.Duration {
	return min(max(c.cfg.MetadataRefresh/100, 100*time.Millisecond), 5*time.Second)
}

func (c *Collector) revalidateLoop(ctx context.Context) {
	ticker := time.NewTicker(c.revalidationTick())
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			c.revalidateDue(ctx)
		}
	}
}

// revalidateDue re-reads the due entries one at a time on the current
// session. Without a live session it waits for a scrape to open one: a
// frozen libvirtd costs a scrape its timeout, not a background goroutine
// per tick. Each call has the scrape timeout as its deadline (see
// withDeadline), so none waits on a frozen libvirtd for a scrape to come.
func (c *Collector) revalidateDue(ctx context.Context) {
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	if !s.alive() {
		return
	}
	now := time.Now()
	var metas, snaps []golibvirt.Domain
	c.cacheMu.Lock()
	for _, m := range c.meta {
		if now.After(m.due) {
			metas = append(metas, m.dom)
		}
	}
	for _, sn := range c.snaps {
		if now.After(sn.due) {
			snaps = append(snaps, sn.dom)
		}
	}
	c.cacheMu.Unlock()

	for _, dom := range metas {
		if !c.waitForNoScrape(ctx) || !s.alive() {
			return
		}
		if err := c.withDeadline(s, func() error { _, err := c.readMeta(s.lv, dom); return err }); err != nil {
			c.postpone(formatUUID(dom.UUID), now, false)
			c.logger.Debug("Background re-validation of domain XML failed", "domain", dom.Name, "err", err)
		}
	}
	for _, dom := range snaps {
		if !c.waitForNoScrape(ctx) || !s.alive() {
			return
		}
		if err := c.withDeadline(s, func() error { return c.revalidateSnapshots(s.lv, dom) }); err != nil {
			c.postpone(formatUUID(dom.UUID), now, true)
			c.logger.Debug("Background re-validation of snapshot times failed", "domain", dom.Name, "err", err)
		}
	}
}

// withDeadline runs fn, background calls on s that wait on no guest (a
// domain's XML, its snapshots), within the scrape timeout. No answer by
// then means libvirtd itself does not answer: the session is closed, which
// ends fn and every other call on the connection, as a scrape's timeout
// does, and the next scrape connects anew. A call left waiting instead
// would reach libvirtd whenever it woke, and with no scrape coming (the
// Prometheus server down too) nothing else would end it.
func (c *Collector) withDeadline(s *session, fn func() error) error {
	timer := time.AfterFunc(c.cfg.Timeout, s.close)
	defer timer.Stop()
	return fn()
}

// waitForNoScrape holds the background work while a scrape runs, from its
// libvirt calls to the last metric it sends (or while Probe's gather runs),
// so a re-read never competes with a scrape for libvirtd or the CPU (on a
// small host that showed as the slowest scrapes); it resumes the moment the
// scrape ends. Scrapes that overlap without pause would starve it; events
// still mark changed domains then. It reports false when the collector
// closes.
func (c *Collector) waitForNoScrape(ctx context.Context) bool {
	for {
		c.mu.Lock()
		var wait <-chan struct{}
		switch {
		case c.scrapes > 0:
			wait = c.quiet
		case c.inflight != nil: // Probe's gather
			wait = c.inflight.done
		}
		c.mu.Unlock()
		if wait == nil {
			return ctx.Err() == nil
		}
		select {
		case <-ctx.Done():
			return false
		case <-wait:
		}
	}
}

// postpone moves a failed entry's turn to the next period, so a domain that
// vanished is not asked for on every tick until the next scrape prunes it.
func (c *Collector) postpone(uuid string, now time.Time, snapshots bool) {
	c.cacheMu.Lock()
	defer c.cacheMu.Unlock()
	if snapshots {
		if e, ok := c.snaps[uuid]; ok {
			e.due = c.nextDue(uuid, now)
			c.snaps[uuid] = e
		}
		return
	}
	if e, ok := c.meta[uuid]; ok {
		e.due = c.nextDue(uuid, now)
		c.meta[uuid] = e
	}
}

// revalidateSnapshots lists the domain's snapshots and reads every one's
// creation time again.
func (c *Collector) revalidateSnapshots(lv *golibvirt.Libvirt, dom golibvirt.Domain) error {
	_, err := c.domainSnapshots(lv, dom, formatUUID(dom.UUID), true)
	return err
}
