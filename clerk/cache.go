package clerk

import (
	"crypto/sha256"
	"sync"
	"time"
)

// tokenHash is the key of the Verifier's caches: a token's SHA-256, so that
// no cache holds a usable token.
type tokenHash = [sha256.Size]byte

// expiring is what a verdictCache holds: anything good until a moment.
type expiring interface{ expiry() time.Time }

// verdictCache holds answers until they expire: the Verifier's token verdicts
// (opaque lookups, checked JWT signatures) by token hash, the Directory's
// answers about users by user ID. It is bounded: when full, expired entries
// go first, then arbitrary ones, an eighth of the capacity at a time so that
// a flood of distinct keys costs one sweep per many inserts.
type verdictCache[K comparable, V expiring] struct {
	mu      sync.RWMutex
	max     int
	entries map[K]V
}

// noReuse is the capacity of a verdictCache that keeps nothing.
const noReuse = -1

func newVerdictCache[K comparable, V expiring](capacity int) *verdictCache[K, V] {
	return &verdictCache[K, V]{max: capacity, entries: make(map[K]V)}
}

// get returns the verdict for key while it is still good at now.
func (c *verdictCache[K, V]) get(key K, now time.Time) (V, bool) {
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
func (c *verdictCache[K, V]) put(key K, vd V, now time.Time) {
	if c.max == noReuse || !now.Before(vd.expiry()) {
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
func (c *verdictCache[K, V]) evict(now time.Time) {
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
func (c *verdictCache[K, V]) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
