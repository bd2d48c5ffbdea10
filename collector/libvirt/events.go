package libvirt

import (
	"fmt"

	golibvirt "github.com/digitalocean/go-libvirt"
)

// metadataEvents are the domain events after which a domain's XML or
// snapshots may differ: lifecycle (defined, undefined, started, stopped,
// a snapshot's pause and resume), <metadata> changes (`virsh metadata`,
// the role), devices added or removed (disks and interfaces) and tunables
// (vCPUs). The read-only socket may subscribe to all of them.
var metadataEvents = []golibvirt.DomainEventID{
	golibvirt.DomainEventIDLifecycle,
	golibvirt.DomainEventIDMetadataChange,
	golibvirt.DomainEventIDDeviceAdded,
	golibvirt.DomainEventIDDeviceRemoved,
	golibvirt.DomainEventIDTunable,
}

// subscribe registers for metadataEvents on the session. The subscriptions
// end with the session (its context, or the socket closing).
func (c *Collector) subscribe(s *session) error {
	for _, id := range metadataEvents {
		c.rpcCalls.Add(1)
		ch, err := s.lv.SubscribeEvents(s.ctx, id, golibvirt.OptDomain{})
		if err != nil {
			return fmt.Errorf("subscribing to %s: %w", id, err)
		}
		go c.consumeEvents(ch)
	}
	return nil
}

func (c *Collector) consumeEvents(ch <-chan any) {
	for ev := range ch {
		dom, ok := eventDomain(ev)
		if !ok {
			continue
		}
		c.domainChanged(formatUUID(dom.UUID))
	}
}

// domainChanged makes the domain's cached XML and snapshot times stale: the
// next scrape fetches them again.
func (c *Collector) domainChanged(uuid string) {
	c.cacheMu.Lock()
	defer c.cacheMu.Unlock()
	c.changes[uuid]++
}

// markAllStale makes every cached domain stale, after a reconnect.
func (c *Collector) markAllStale() {
	c.cacheMu.Lock()
	defer c.cacheMu.Unlock()
	c.runningByID, c.runningRecs = nil, 0
	c.runningInOneCall, c.votesAgainst = false, 0 // a new libvirtd may have other guests
	for id := range c.meta {
		c.changes[id]++
	}
	for id := range c.snaps {
		if _, seen := c.meta[id]; !seen {
			c.changes[id]++
		}
	}
}

// eventDomain returns the domain an event names.
func eventDomain(ev any) (golibvirt.Domain, bool) {
	switch e := ev.(type) {
	case *golibvirt.DomainEventCallbackLifecycleMsg:
		return e.Msg.Dom, true
	case *golibvirt.DomainEventCallbackMetadataChangeMsg:
		return e.Dom, true
	case *golibvirt.DomainEventCallbackDeviceAddedMsg:
		return e.Dom, true
	case *golibvirt.DomainEventCallbackDeviceRemovedMsg:
		return e.Msg.Dom, true
	case *golibvirt.DomainEventCallbackTunableMsg:
		return e.Dom, true
	}
	return golibvirt.Domain{}, false
}
