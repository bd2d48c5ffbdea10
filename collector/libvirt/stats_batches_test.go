package libvirt

import (
	"testing"
	"time"
)

// TestListsOrOneCallVotes: how the running domains are asked follows what
// their calls cost, but one scrape measuring the other way (a busy
// machine stretching a fast driver's answer, a moment when real guests
// answer fast) does not change it; two in a row do, and a reconnect starts
// over with lists.
func TestListsOrOneCallVotes(t *testing.T) {
	const (
		fastDriver = 10 * time.Microsecond * 1000 // 1,000 test-driver domains: 10 ms, 10 µs each
		guests     = 4 * time.Millisecond * 8     // 8 QEMU guests, 4 ms each
		stall      = 30 * time.Millisecond        // a fast driver's scrape stretched by a busy machine
	)
	type scrape struct {
		cost time.Duration
		recs int
	}
	driver, slowDriver, qemu, fastQEMU := scrape{fastDriver, 1000}, scrape{stall * 10, 1000}, scrape{guests, 8}, scrape{time.Millisecond, 8}
	for _, tc := range []struct {
		name           string
		scrapes        []scrape
		reconnect      bool
		afterReconnect []scrape
		wantLists      bool
	}{
		{name: "nothing measured", wantLists: true},
		{name: "one fast scrape", scrapes: []scrape{driver}, wantLists: true},
		{name: "two fast scrapes", scrapes: []scrape{driver, driver}, wantLists: false},
		{name: "fast driver, one stretched scrape", scrapes: []scrape{driver, driver, slowDriver}, wantLists: false},
		{name: "fast driver, stretched scrapes apart", scrapes: []scrape{driver, driver, slowDriver, driver, slowDriver}, wantLists: false},
		{name: "fast driver turned slow", scrapes: []scrape{driver, driver, slowDriver, slowDriver}, wantLists: true},
		{name: "guests", scrapes: []scrape{qemu, qemu, qemu}, wantLists: true},
		{name: "guests, one fast moment", scrapes: []scrape{qemu, fastQEMU, qemu, fastQEMU}, wantLists: true},
		{name: "guests gone quiet", scrapes: []scrape{qemu, fastQEMU, fastQEMU}, wantLists: false},
		{name: "reconnect", scrapes: []scrape{driver, driver}, reconnect: true, wantLists: true},
		{name: "reconnect, then one fast scrape", scrapes: []scrape{driver, driver, driver}, reconnect: true, afterReconnect: []scrape{driver}, wantLists: true},
		{name: "reconnect, then two fast scrapes", scrapes: []scrape{qemu}, reconnect: true, afterReconnect: []scrape{driver, driver}, wantLists: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New(Config{Socket: "/nonexistent"}, testLogger())
			t.Cleanup(c.Close)
			for _, s := range tc.scrapes {
				c.noteRunningCost(s.cost, s.recs)
			}
			if tc.reconnect {
				c.markAllStale()
			}
			for _, s := range tc.afterReconnect {
				c.noteRunningCost(s.cost, s.recs)
			}
			if got := c.listsPay(); got != tc.wantLists {
				t.Errorf("lists = %v after %v, want %v", got, tc.scrapes, tc.wantLists)
			}
		})
	}
}
