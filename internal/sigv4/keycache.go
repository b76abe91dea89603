package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"sync"
)

// DefaultSigningKeyCacheSize is the bound of a SigningKeyCache made with
// size 0.
const DefaultSigningKeyCacheSize = 1024

// SigningKeyCache keeps derived SigV4 signing keys, one per access key,
// day, Region and service, so that Verify does not run the four
// HMAC-SHA256 of the derivation on every request (clients cache them the
// same way). It is safe for concurrent use and bounded: when full, adding
// a key empties it.
//
// An entry is used only with the secret it was derived from: it carries a
// fingerprint of that secret (SHA-256 under a fixed prefix), which Verify
// compares, in constant time, with the fingerprint of the secret the
// lookup returns for the request. The secret is still looked up on every
// request, so an access key that is deleted or disabled, or whose secret
// changes, stops verifying at once, whatever the cache holds. Neither the
// secret nor a signing key is ever logged or returned in an error.
type SigningKeyCache struct {
	max int
	mu  sync.RWMutex
	m   map[signingScope]*signingEntry
}

type signingScope struct{ accessKeyID, date, region, service string }

type signingEntry struct {
	fingerprint [sha256.Size]byte
	key         [sha256.Size]byte
}

// NewSigningKeyCache returns a cache of at most size signing keys
// (DefaultSigningKeyCacheSize if size <= 0).
func NewSigningKeyCache(size int) *SigningKeyCache {
	if size <= 0 {
		size = DefaultSigningKeyCacheSize
	}
	return &SigningKeyCache{max: size, m: make(map[signingScope]*signingEntry)}
}

// secretFingerprint identifies a secret without revealing it. The prefix
// keeps it from being a plain SHA-256 of the secret that another system
// might also store.
func secretFingerprint(secret []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte("kmsd sigv4 signing key cache v1\x00"))
	h.Write(secret)
	var fp [sha256.Size]byte
	h.Sum(fp[:0])
	return fp
}

// signingKey writes into dst the signing key of secret for the scope,
// from the cache or derived (and then cached). c may be nil: no cache.
func (c *SigningKeyCache) signingKey(dst *[sha256.Size]byte, secret []byte, accessKeyID, date, region, service string) {
	if c == nil {
		k := deriveSigningKey(secret, date, region, service)
		copy(dst[:], k)
		clear(k)
		return
	}
	fp := secretFingerprint(secret)
	sc := signingScope{accessKeyID, date, region, service}
	c.mu.RLock()
	e := c.m[sc]
	c.mu.RUnlock()
	// Constant time: the fingerprint is secret-derived, and how much of it
	// matched must not show in the timing.
	if e != nil && subtle.ConstantTimeCompare(e.fingerprint[:], fp[:]) == 1 {
		*dst = e.key
		return
	}
	k := deriveSigningKey(secret, date, region, service)
	copy(dst[:], k)
	clear(k)
	ne := &signingEntry{fingerprint: fp, key: *dst}
	c.mu.Lock()
	if len(c.m) >= c.max {
		// Bounded: start afresh rather than track recency. Signing
		// scopes change once a day per access key, so a cache as large
		// as the number of active access keys is refilled only daily.
		for _, old := range c.m {
			clear(old.key[:])
		}
		clear(c.m)
	}
	if old := c.m[sc]; old != nil {
		// Replaced (the secret changed): zero the stale key. A request
		// that copied it already holds its own copy.
		clear(old.key[:])
	}
	c.m[sc] = ne
	c.mu.Unlock()
}

// Len returns the number of cached signing keys.
func (c *SigningKeyCache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

// hmacSHA256To writes HMAC-SHA256(key, data) into dst.
func hmacSHA256To(dst *[sha256.Size]byte, key, data []byte) {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	m.Sum(dst[:0])
}
