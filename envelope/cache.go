package envelope

import (
	"bytes"
	"container/list"
	"context"
	"crypto/rand"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// Cache is an in-memory, least-recently-used cache of encryption and
// decryption materials (the specification's local cryptographic materials
// cache), safe for concurrent use. Several caching CMMs may share one; each
// sees only its own entries unless they share a partition ID. Data keys are
// cleared when their entry is evicted.
type Cache struct {
	mu       sync.Mutex
	capacity int
	lru      *list.List // front = most recently used
	entries  map[string]*list.Element
	now      func() time.Time
}

// pruneTail is how many least recently used entries each Get checks for
// expiry.
const pruneTail = 8

// NewCache returns a cache holding at most capacity entries.
func NewCache(capacity int) *Cache {
	return &Cache{capacity: max(capacity, 1), lru: list.New(), entries: map[string]*list.Element{}, now: time.Now}
}

type cacheEntry struct {
	id       string
	enc      *EncryptionMaterials
	dec      *DecryptionMaterials
	expires  time.Time
	messages uint64
	bytes    uint64
}

func (e *cacheEntry) wipe() {
	if e.enc != nil {
		clear(e.enc.DataKey)
	}
	if e.dec != nil {
		clear(e.dec.DataKey)
	}
}

// remove must be called with c.mu held.
func (c *Cache) remove(el *list.Element) {
	e := el.Value.(*cacheEntry)
	c.lru.Remove(el)
	delete(c.entries, e.id)
	e.wipe()
}

// get returns the live entry for id after pruning expired entries, and
// lets use decide (under the lock) whether to take it; a refused entry is
// evicted.
func (c *Cache) get(id string, use func(*cacheEntry) bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	el := c.lru.Back()
	for i := 0; i < pruneTail && el != nil; i++ {
		prev := el.Prev()
		if !now.Before(el.Value.(*cacheEntry).expires) {
			c.remove(el)
		}
		el = prev
	}
	el, ok := c.entries[id]
	if !ok {
		return false
	}
	if !now.Before(el.Value.(*cacheEntry).expires) || !use(el.Value.(*cacheEntry)) {
		c.remove(el)
		return false
	}
	c.lru.MoveToFront(el)
	return true
}

func (c *Cache) put(e *cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[e.id]; ok {
		c.remove(el)
	}
	c.entries[e.id] = c.lru.PushFront(e)
	for c.lru.Len() > c.capacity {
		c.remove(c.lru.Back())
	}
}

// CachingOptions configures NewCachingCMM.
type CachingOptions struct {
	// Cache to use; nil means a new private cache of 100 entries.
	Cache *Cache
	// PartitionID lets caching CMMs that share a Cache share entries; empty
	// means a random ID unique to this CMM.
	PartitionID string
	// MaxAge is how long a data key may be used (required, > 0).
	MaxAge time.Duration
	// MaxMessages is how many messages a data key may encrypt; 0 means
	// 2^32.
	MaxMessages uint64
	// MaxBytes is how many plaintext bytes a data key may encrypt; 0 means
	// 2^63-1.
	MaxBytes uint64
}

// NewCachingCMM returns a CMM that reuses the materials of under (a data
// key and, for signed suites, the signing key) for up to opts.MaxMessages
// messages, opts.MaxBytes bytes and opts.MaxAge. Reuse saves KMS calls; each
// message still gets its own frame key (derived with its random message ID).
//
// Encryption can be served from the cache only when the plaintext length is
// bounded (EncryptOptions.MaxPlaintextLength), since the byte limit must be
// charged before encrypting; otherwise the request goes to under.
func NewCachingCMM(under CMM, opts CachingOptions) (CMM, error) {
	if under == nil {
		return nil, errors.New("caching CMM: no underlying CMM")
	}
	if opts.MaxAge <= 0 {
		return nil, errors.New("caching CMM: MaxAge must be positive")
	}
	if opts.Cache == nil {
		opts.Cache = NewCache(100)
	}
	if opts.PartitionID == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		opts.PartitionID = hex.EncodeToString(b[:])
	}
	if opts.MaxMessages == 0 {
		opts.MaxMessages = 1 << 32
	}
	if opts.MaxBytes == 0 || opts.MaxBytes > 1<<63-1 {
		opts.MaxBytes = 1<<63 - 1
	}
	return &cachingCMM{under: under, opts: opts}, nil
}

type cachingCMM struct {
	under CMM
	opts  CachingOptions
}

// Cache entry identifiers, as the specification's appendix A defines them:
// SHA-384 over resource ID 0x01 (caching CMM), scope ID (0x01 encrypt,
// 0x02 decrypt), the partition ID and a suffix, separated by NUL bytes.
func (c *cachingCMM) entryID(scope byte, suffix ...[]byte) string {
	h := sha512.New384()
	h.Write([]byte{0x01, 0x00, scope, 0x00})
	h.Write([]byte(c.opts.PartitionID))
	for _, s := range suffix {
		h.Write([]byte{0x00})
		h.Write(s)
	}
	return string(h.Sum(nil))
}

func (c *cachingCMM) GetEncryptionMaterials(ctx context.Context, req *EncryptionMaterialsRequest) (*EncryptionMaterials, error) {
	if req.MaxPlaintextLength < 0 {
		return c.under.GetEncryptionMaterials(ctx, req)
	}
	ec, err := serializeContext(req.EncryptionContext)
	if err != nil {
		return nil, err
	}
	var id string
	if req.Suite == 0 {
		id = c.entryID(0x01, []byte{0x00}, ec)
	} else {
		id = c.entryID(0x01, []byte{0x01}, binary.BigEndian.AppendUint16(nil, uint16(req.Suite)), ec)
	}
	n := uint64(req.MaxPlaintextLength)
	var hit *EncryptionMaterials
	c.opts.Cache.get(id, func(e *cacheEntry) bool {
		if e.enc == nil || !sameKeys(e.enc.RequiredContextKeys, req.RequiredContextKeys) {
			return false
		}
		// Charge this message to the entry; an entry that would exceed a
		// limit is evicted and a fresh data key fetched.
		if e.messages+1 > c.opts.MaxMessages || n > c.opts.MaxBytes-e.bytes {
			return false
		}
		e.messages++
		e.bytes += n
		hit = e.enc.clone()
		return true
	})
	if hit != nil {
		return hit, nil
	}
	m, err := c.under.GetEncryptionMaterials(ctx, req)
	if err != nil {
		return nil, err
	}
	if n <= c.opts.MaxBytes {
		c.opts.Cache.put(&cacheEntry{id: id, enc: m.clone(), expires: c.opts.Cache.now().Add(c.opts.MaxAge), messages: 1, bytes: n})
	}
	return m, nil
}

func (c *cachingCMM) DecryptMaterials(ctx context.Context, req *DecryptMaterialsRequest) (*DecryptionMaterials, error) {
	edks := make([][]byte, 0, len(req.EncryptedDataKeys))
	for _, k := range req.EncryptedDataKeys {
		b, err := appendEDK(nil, k)
		if err != nil {
			return nil, fmt.Errorf("caching CMM: %w", err)
		}
		edks = append(edks, b)
	}
	slices.SortFunc(edks, bytes.Compare)
	ec, err := serializeContext(req.EncryptionContext)
	if err != nil {
		return nil, err
	}
	id := c.entryID(0x02, binary.BigEndian.AppendUint16(nil, uint16(req.Suite)), bytes.Join(edks, nil), ec)
	var hit *DecryptionMaterials
	c.opts.Cache.get(id, func(e *cacheEntry) bool {
		// The identifier does not cover the caller's reproduced context,
		// but the cached materials were checked against an earlier one:
		// reuse them only if this caller's context gives the same result.
		if e.dec == nil || !reproducedAgrees(e.dec, req) {
			return false
		}
		hit = e.dec.clone()
		return true
	})
	if hit != nil {
		return hit, nil
	}
	m, err := c.under.DecryptMaterials(ctx, req)
	if err != nil {
		return nil, err
	}
	c.opts.Cache.put(&cacheEntry{id: id, dec: m.clone(), expires: c.opts.Cache.now().Add(c.opts.MaxAge)})
	return m, nil
}

// reproducedAgrees reports whether cached decryption materials are what
// the default CMM would produce for req's reproduced context: every
// reproduced pair matches the materials, and the pairs that were not stored
// are exactly the reproduced ones missing from the stored context.
func reproducedAgrees(m *DecryptionMaterials, req *DecryptMaterialsRequest) bool {
	var missing []string
	for k, v := range req.ReproducedContext {
		if mv, ok := m.EncryptionContext[k]; !ok || mv != v {
			return false
		}
		if _, stored := req.EncryptionContext[k]; !stored {
			missing = append(missing, k)
		}
	}
	return sameKeys(missing, m.RequiredContextKeys) && len(m.EncryptionContext) == len(req.EncryptionContext)+len(missing)
}

func sameKeys(a, b []string) bool {
	return maps.Equal(set(a), set(b))
}

func set(keys []string) map[string]bool {
	s := make(map[string]bool, len(keys))
	for _, k := range keys {
		s[k] = true
	}
	return s
}
