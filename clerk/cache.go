package clerk

import (
	"crypto/sha256"
	"sync"
	"time"
)

// expiring is what a verdictCache holds: anything good until a moment.
type expiring interface{ expiry() time.Time }

// verdictCache holds token verdicts (opaque lookups, checked JWT signatures)
// by the token's SHA-256, so the cache never holds a usable token. It is bounded: when full, expired
// entries go first, then arbitrary ones, an eighth of the capacity at a
// time so that a flood of distinct tokens costs one sweep per many inserts.
type verdictCache[V expiring] struct {
	mu      sync.RWMutex
	max     int
	entries map[[sha256.Size]byte]V
}

func newVerdictCache[V expiring](capacity int) *verdictCache[V] {
	return &verdictCache[V]{max: capacity, entries: make(map[[sha256.Size]byte]V)}
}

// get returns the verdict for key while it is still good at now.
func (c *verdictCache[V]) get(key [sha256.Size]byte, now time.Time) (V, bool) {
	c.mu.RLock()
	vd, ok := c.entries[key]
	c.mu.RUnlock()
	if !ok || !now.Before(vd.expiry()) {
		var none V
		return none, false
	}
	return vd, true
}

// put stores vd until its expiry; a verdict already stale at now is dropped.
func (c *verdictCache[V]) put(key [sha256.Size]byte, vd V, now time.Time) {
	if !now.Before(vd.expiry()) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.max {
		c.evict(now)
	}
	c.entries[key] = vd
}

// evict makes room: expired entries first, then (map order is unspecified,
// so in effect random ones) until an eighth of the capacity is free.
// Callers hold mu.
func (c *verdictCache[V]) evict(now time.Time) {
	for k, vd := range c.entries {
		if !now.Before(vd.expiry()) {
			delete(c.entries, k)
		}
	}
	target := c.max - max(c.max/8, 1)
	for k := range c.entries {
		if len(c.entries) <= target {
			break
		}
		delete(c.entries, k)
	}
}

// len reports the number of entries, expired ones included.
func (c *verdictCache[V]) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
