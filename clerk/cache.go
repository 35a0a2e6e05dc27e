package clerk

import (
	"crypto/sha256"
	"sync"
	"time"
)

// verdictCache holds opaque token verdicts by the token's SHA-256, so the
// cache never holds a usable token. It is bounded: when full, expired
// entries go first, then arbitrary ones, an eighth of the capacity at a
// time so that a flood of distinct tokens costs one sweep per many inserts.
type verdictCache struct {
	mu      sync.RWMutex
	max     int
	entries map[[sha256.Size]byte]verdict
}

func newVerdictCache(capacity int) *verdictCache {
	return &verdictCache{max: capacity, entries: make(map[[sha256.Size]byte]verdict)}
}

// get returns the verdict for key while it is still good at now.
func (c *verdictCache) get(key [sha256.Size]byte, now time.Time) (verdict, bool) {
	c.mu.RLock()
	vd, ok := c.entries[key]
	c.mu.RUnlock()
	if !ok || !now.Before(vd.until) {
		return verdict{}, false
	}
	return vd, true
}

// put stores vd until vd.until; a verdict already stale at now is dropped.
func (c *verdictCache) put(key [sha256.Size]byte, vd verdict, now time.Time) {
	if !now.Before(vd.until) {
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
func (c *verdictCache) evict(now time.Time) {
	for k, vd := range c.entries {
		if !now.Before(vd.until) {
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
func (c *verdictCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
