// Package shamir splits a secret into shares with Shamir's secret sharing
// over GF(2^8), so that any threshold K of the N shares recover it and K-1
// shares reveal nothing about it; and it encodes a share as checked text
// that a person can copy, print or type.
//
// Each byte of the secret is the constant term of its own random
// polynomial of degree K-1; share i holds every polynomial's value at x = i
// (1..255). Combine interpolates the polynomials at x = 0 (Lagrange).
//
// The field is GF(2^8) with the AES polynomial x^8+x^4+x^3+x+1 (0x11b).
// Multiplication is done bit by bit with masks instead of log/exp tables:
// table lookups indexed by secret bytes leak them through the cache timing
// side channel, and the secrets here are tiny, so the slower constant-time
// code costs nothing that matters. Inversion is exponentiation by the fixed
// exponent 254, also constant time.
//
// This package holds no global state and never formats a share's value:
// Share implements fmt.Formatter to print only its index.
package shamir

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
)

// SetIDSize is the length of a split's random set id.
const SetIDSize = 8

// MaxShares is the largest number of shares: x coordinates are the nonzero
// elements of GF(2^8).
const MaxShares = 255

// Share is one share of a split secret.
type Share struct {
	// Index is the share's x coordinate, 1..255; shares of one split have
	// distinct indices.
	Index byte
	// Threshold is the number of shares (K) that recover the secret.
	Threshold byte
	// Set identifies the split: random, the same in every share of one
	// Split and different between splits, so that shares of two splits
	// (two data folders, or an old and a new split) are never combined.
	// It is public.
	Set [SetIDSize]byte
	// Value holds the share's y coordinates, one per secret byte. It is
	// secret: K of them recover the secret.
	Value []byte
}

// Format prints the share's index and set only, whatever the verb, so that
// a share passed to fmt or a logger by mistake does not leak its value.
func (s Share) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "shamir.Share(index %d of set %x)", s.Index, s.Set)
}

// Wipe zeroes the share's value.
func (s *Share) Wipe() { clear(s.Value) }

// Split splits secret into n shares, any k of which recover it. random is
// the source of the polynomials' coefficients and of the set id: use
// crypto/rand.Reader. 1 <= k <= n <= 255.
func Split(random io.Reader, secret []byte, n, k int) ([]Share, error) {
	switch {
	case len(secret) == 0:
		return nil, errors.New("shamir: empty secret")
	case k < 1 || n < 1:
		return nil, fmt.Errorf("shamir: %d shares with threshold %d: both must be at least 1", n, k)
	case k > n:
		return nil, fmt.Errorf("shamir: threshold %d is larger than the number of shares %d", k, n)
	case n > MaxShares:
		return nil, fmt.Errorf("shamir: %d shares is more than the %d GF(2^8) allows", n, MaxShares)
	}
	shares := make([]Share, n)
	var set [SetIDSize]byte
	if _, err := io.ReadFull(random, set[:]); err != nil {
		return nil, fmt.Errorf("shamir: reading random set id: %w", err)
	}
	for i := range shares {
		shares[i] = Share{Index: byte(i + 1), Threshold: byte(k), Set: set, Value: make([]byte, len(secret))}
	}
	// coef[0] is the secret byte; coef[1..k-1] are uniformly random,
	// zero included: that is what makes any k-1 shares independent of the
	// secret (for fixed nonzero distinct x, the map from coefficients to
	// the k-1 values is a bijection). Forcing the top coefficient nonzero
	// would bias that distribution.
	coef := make([]byte, k)
	defer clear(coef)
	for b, s := range secret {
		coef[0] = s
		if _, err := io.ReadFull(random, coef[1:]); err != nil {
			for i := range shares {
				shares[i].Wipe()
			}
			return nil, fmt.Errorf("shamir: reading random coefficients: %w", err)
		}
		for i := range shares {
			shares[i].Value[b] = eval(coef, shares[i].Index)
		}
	}
	return shares, nil
}

// Combine recovers the secret from at least Threshold shares of one split.
// It refuses fewer shares, shares of different splits, thresholds or
// lengths, and a repeated index. It cannot tell a wrong share (one whose
// value was altered but still passes the text checksum) from a right one:
// the result is then just a wrong secret, so check it (a key check value,
// an AEAD tag) before use. The caller must clear the result.
func Combine(shares []Share) ([]byte, error) {
	if len(shares) == 0 {
		return nil, errors.New("shamir: no shares")
	}
	first := shares[0]
	if int(first.Threshold) < 1 || len(first.Value) == 0 {
		return nil, errors.New("shamir: malformed share")
	}
	seen := map[byte]bool{}
	for _, s := range shares {
		switch {
		case s.Set != first.Set:
			return nil, fmt.Errorf("shamir: share %d belongs to another split (set %x, not %x)", s.Index, s.Set, first.Set)
		case s.Threshold != first.Threshold:
			return nil, fmt.Errorf("shamir: share %d has threshold %d, share %d has %d", s.Index, s.Threshold, first.Index, first.Threshold)
		case len(s.Value) != len(first.Value):
			return nil, fmt.Errorf("shamir: share %d is %d bytes, share %d is %d", s.Index, len(s.Value), first.Index, len(first.Value))
		case s.Index == 0:
			return nil, errors.New("shamir: share index 0 is invalid")
		case seen[s.Index]:
			return nil, fmt.Errorf("shamir: share %d given twice", s.Index)
		}
		seen[s.Index] = true
	}
	if len(shares) < int(first.Threshold) {
		return nil, fmt.Errorf("shamir: %d shares given, %d needed", len(shares), first.Threshold)
	}
	return interpolate(shares[:first.Threshold]), nil
}

// interpolate evaluates at x = 0 the polynomials through the shares'
// points (Lagrange). With fewer shares than the threshold the result is
// unrelated to the secret; Combine never lets that happen.
func interpolate(shares []Share) []byte {
	out := make([]byte, len(shares[0].Value))
	for i, si := range shares {
		// l_i(0) = prod_{j != i} x_j / (x_j - x_i); subtraction is XOR.
		// The indices are public, so working on them is not secret.
		basis := byte(1)
		for j, sj := range shares {
			if i != j {
				basis = mul(basis, mul(sj.Index, inv(sj.Index^si.Index)))
			}
		}
		for b := range out {
			out[b] ^= mul(basis, si.Value[b])
		}
	}
	return out
}

// eval evaluates the polynomial coef (constant term first) at x, Horner's
// rule.
func eval(coef []byte, x byte) byte {
	var y byte
	for i := len(coef) - 1; i >= 0; i-- {
		y = mul(y, x) ^ coef[i]
	}
	return y
}

// mul multiplies in GF(2^8) modulo 0x11b in constant time: eight rounds,
// no branch and no memory access depending on a or b.
func mul(a, b byte) byte {
	var p byte
	for range 8 {
		p ^= -(b & 1) & a // add a when b's low bit is set (mask 0x00 or 0xff)
		b >>= 1
		carry := -(a >> 7) // 0xff when a's top bit is set
		a = a<<1 ^ 0x1b&carry
	}
	return p
}

// inv returns a^-1 = a^254 (a^255 = 1 for a != 0), by a fixed
// square-and-multiply chain; inv(0) = 0.
func inv(a byte) byte {
	// 254 = 0b11111110: a^2, a^4, ..., a^128 multiplied together.
	sq := mul(a, a) // a^2
	r := sq
	for range 6 {
		sq = mul(sq, sq) // a^4 .. a^128
		r = mul(r, sq)
	}
	return r
}

// equal reports whether a and b are equal, in time independent of their
// content.
func equal(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
