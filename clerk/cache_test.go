package clerk

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"
	"time"
)

// TestVerdictCache checks expiry and the size bound.
func TestVerdictCache(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	key := func(i int) [sha256.Size]byte {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(i))
		return sha256.Sum256(b[:])
	}
	c := newVerdictCache[tokenHash, verdict](100)
	c.put(key(0), verdict{until: now.Add(time.Second)}, now)
	if _, ok := c.get(key(0), now); !ok {
		t.Fatal("fresh entry missing")
	}
	if _, ok := c.get(key(0), now.Add(time.Second)); ok {
		t.Fatal("entry served at its expiry")
	}
	c.put(key(1), verdict{until: now}, now)
	if c.len() != 1 {
		t.Fatalf("an already expired verdict was stored: len %d", c.len())
	}

	// Expired entries are evicted before live ones.
	for i := 2; i < 100; i++ {
		c.put(key(i), verdict{until: now.Add(time.Hour)}, now)
	}
	later := now.Add(2 * time.Second) // key(0) has expired
	c.put(key(100), verdict{until: later.Add(time.Hour)}, later)
	if c.len() > 100 {
		t.Fatalf("len %d > capacity", c.len())
	}
	if _, ok := c.get(key(100), later); !ok {
		t.Fatal("newest entry missing")
	}

	// A flood stays bounded.
	for i := 1000; i < 10_000; i++ {
		c.put(key(i), verdict{until: later.Add(time.Hour)}, later)
		if c.len() > 100 {
			t.Fatalf("len %d > capacity after %d inserts", c.len(), i)
		}
	}
}
