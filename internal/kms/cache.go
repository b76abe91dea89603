package kms

import (
	"sync"
	"sync/atomic"

	"github.com/kmsd/kmsd/internal/keys"
)

// materialCache holds unwrapped key material, bounded in size. An evicted
// material is zeroed as soon as no request is using it any more: requests
// take a reference with acquire and give it back with release, so eviction
// never zeroes bytes under a running encryption (which would silently
// produce a ciphertext under an all-zero key).
type materialCache struct {
	max int

	hits, misses atomic.Uint64

	mu sync.Mutex
	m  map[materialKey]*cachedMaterial
}

type materialKey struct{ keyID, materialID string }

// cachedMaterial is one unwrapped material. state packs the number of
// references in the low bits and the evicted flag in the top bit, so that
// "evicted and unused" is detected atomically by whoever comes last.
type cachedMaterial struct {
	key   []byte
	state atomic.Int64

	// parsed is the asymmetric private key parsed from key, made once by
	// the first request that needs it (while holding a reference) and
	// dropped with key: parsing costs as much as signing (see
	// BenchmarkParsePrivateKey in package keys).
	parseOnce sync.Once
	parsed    *keys.PrivateKey
	parseErr  error
}

const evictedBit = int64(1) << 62

func newMaterialCache(max int) *materialCache {
	if max <= 0 {
		max = 10000
	}
	return &materialCache{max: max, m: make(map[materialKey]*cachedMaterial)}
}

// acquire returns the cached material with a reference taken, or nil.
func (c *materialCache) acquire(keyID, materialID string) *cachedMaterial {
	c.mu.Lock()
	m := c.m[materialKey{keyID, materialID}]
	c.mu.Unlock()
	if m == nil || !m.ref() {
		c.misses.Add(1)
		return nil
	}
	c.hits.Add(1)
	return m
}

// ref takes a reference unless the material was evicted.
func (m *cachedMaterial) ref() bool {
	for {
		v := m.state.Load()
		if v&evictedBit != 0 {
			return false
		}
		if m.state.CompareAndSwap(v, v+1) {
			return true
		}
	}
}

// release gives back a reference; the last user of an evicted material
// zeroes it.
func (m *cachedMaterial) release() {
	if m.state.Add(-1) == evictedBit {
		m.wipe()
	}
}

// wipe zeroes the material and drops its parsed form. Only the last user
// of an evicted material calls it, so nobody else can be reading either.
func (m *cachedMaterial) wipe() {
	clear(m.key)
	if m.parsed != nil {
		m.parsed.Destroy()
		m.parsed = nil
	}
}

// evict marks the material evicted and zeroes it if nobody uses it.
func (m *cachedMaterial) evict() {
	for {
		v := m.state.Load()
		if v&evictedBit != 0 {
			return
		}
		if m.state.CompareAndSwap(v, v|evictedBit) {
			if v == 0 {
				m.wipe()
			}
			return
		}
	}
}

// put caches key (taking ownership of the slice) and returns it with a
// reference taken. When the cache is full an arbitrary entry is evicted.
func (c *materialCache) put(keyID, materialID string, key []byte) *cachedMaterial {
	m := &cachedMaterial{key: key}
	m.state.Store(1)
	mk := materialKey{keyID, materialID}
	c.mu.Lock()
	if old := c.m[mk]; old != nil {
		old.evict()
	}
	for k, v := range c.m {
		if len(c.m) < c.max {
			break
		}
		v.evict()
		delete(c.m, k)
	}
	c.m[mk] = m
	c.mu.Unlock()
	return m
}

// evictKey evicts every material of a key.
func (c *materialCache) evictKey(keyID string) {
	c.mu.Lock()
	for k, v := range c.m {
		if k.keyID == keyID {
			v.evict()
			delete(c.m, k)
		}
	}
	c.mu.Unlock()
}

// len returns the number of cached materials.
func (c *materialCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
