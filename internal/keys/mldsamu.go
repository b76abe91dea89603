package keys

// ML-DSA verification of a signature over an external μ (FIPS 204,
// Algorithm 8, ML-DSA.Verify_internal, starting after step 5).
//
// Why kmsd carries its own verifier: AWS KMS accepts MessageType EXTERNAL_MU
// in Verify, where the client sends the 64-byte message representative μ
// instead of the message. filippo.io/mldsa (kmsd's ML-DSA implementation,
// and the future crypto/mldsa) can sign such a μ but exposes verification
// only for whole messages, and μ cannot be turned back into a message. This
// file is only ever used for that one case; signing, key generation and
// verification of RAW messages use filippo.io/mldsa. It is checked against
// the Wycheproof vectors and differentially against filippo.io/mldsa.
//
// The code favours plainness over speed: verification touches no secret, so
// it needs no constant-time care, and coefficients are reduced with % on
// uint64 rather than Montgomery arithmetic.

import (
	"crypto/sha3"
	"crypto/subtle"
	"math/bits"
)

const (
	mldsaQ = 8380417 // the modulus q = 2^23 - 2^13 + 1
	mldsaN = 256     // coefficients per polynomial
	mldsaD = 13      // bits dropped from t (t1 = t >> d)

	// MLDSAMuSize is the size of the message representative μ.
	MLDSAMuSize = 64
)

// mldsaParams is one parameter set of FIPS 204, table 1.
type mldsaParams struct {
	k, l   int    // dimensions of A
	tau    int    // number of ±1 coefficients of c
	ctLen  int    // length of c̃ in bytes (λ/4)
	gamma1 uint32 // range of y, and of z
	gamma2 uint32 // low-order rounding range
	beta   uint32 // tau * eta
	omega  int    // maximum number of hint bits
}

func (p *mldsaParams) zBits() int { // 1 + bitlen(gamma1 - 1)
	if p.gamma1 == 1<<17 {
		return 18
	}
	return 20
}

func (p *mldsaParams) w1Bits() int { // bitlen((q-1)/(2*gamma2) - 1)
	if p.gamma2 == (mldsaQ-1)/88 {
		return 6
	}
	return 4
}

func (p *mldsaParams) publicKeySize() int { return 32 + 320*p.k }

func (p *mldsaParams) signatureSize() int { return p.ctLen + 32*p.zBits()*p.l + p.omega + p.k }

var (
	mldsa44Params = mldsaParams{k: 4, l: 4, tau: 39, ctLen: 32, gamma1: 1 << 17, gamma2: (mldsaQ - 1) / 88, beta: 78, omega: 80}
	mldsa65Params = mldsaParams{k: 6, l: 5, tau: 49, ctLen: 48, gamma1: 1 << 19, gamma2: (mldsaQ - 1) / 32, beta: 196, omega: 55}
	mldsa87Params = mldsaParams{k: 8, l: 7, tau: 60, ctLen: 64, gamma1: 1 << 19, gamma2: (mldsaQ - 1) / 32, beta: 120, omega: 75}
)

type poly [mldsaN]uint32 // coefficients in [0, q)

// mldsaZetas[m] = 1753^BitRev8(m) mod q, 1753 being a 512th root of unity.
var mldsaZetas = func() (z [256]uint32) {
	for m := range z {
		e := uint64(bits.Reverse8(uint8(m)))
		r, b := uint64(1), uint64(1753)
		for ; e > 0; e >>= 1 {
			if e&1 == 1 {
				r = r * b % mldsaQ
			}
			b = b * b % mldsaQ
		}
		z[m] = uint32(r)
	}
	return z
}()

func mulQ(a, b uint32) uint32 { return uint32(uint64(a) * uint64(b) % mldsaQ) }
func addQ(a, b uint32) uint32 { return (a + b) % mldsaQ }
func subQ(a, b uint32) uint32 { return (a + mldsaQ - b) % mldsaQ }

// ntt is FIPS 204 Algorithm 41, in place.
func (w *poly) ntt() {
	m := 0
	for length := 128; length >= 1; length /= 2 {
		for start := 0; start < mldsaN; start += 2 * length {
			m++
			z := mldsaZetas[m]
			for j := start; j < start+length; j++ {
				t := mulQ(z, w[j+length])
				w[j+length] = subQ(w[j], t)
				w[j] = addQ(w[j], t)
			}
		}
	}
}

// invNTT is FIPS 204 Algorithm 42, in place.
func (w *poly) invNTT() {
	m := 256
	for length := 1; length < mldsaN; length *= 2 {
		for start := 0; start < mldsaN; start += 2 * length {
			m--
			z := mldsaQ - mldsaZetas[m]
			for j := start; j < start+length; j++ {
				t := w[j]
				w[j] = addQ(t, w[j+length])
				w[j+length] = mulQ(z, subQ(t, w[j+length]))
			}
		}
	}
	for j := range w {
		w[j] = mulQ(8347681, w[j]) // 256^-1 mod q
	}
}

// rejNTTPoly is FIPS 204 Algorithm 30 on seed rho || s || r.
func rejNTTPoly(rho []byte, s, r byte) poly {
	h := sha3.NewSHAKE128()
	h.Write(rho)
	h.Write([]byte{s, r})
	var a poly
	var buf [168]byte // one SHAKE128 block
	for j := 0; j < mldsaN; {
		h.Read(buf[:])
		for i := 0; i+3 <= len(buf) && j < mldsaN; i += 3 {
			z := uint32(buf[i]) | uint32(buf[i+1])<<8 | uint32(buf[i+2]&0x7f)<<16
			if z < mldsaQ {
				a[j] = z
				j++
			}
		}
	}
	return a
}

// sampleInBall is FIPS 204 Algorithm 29 (final version: all of c̃ is
// absorbed).
func sampleInBall(ct []byte, tau int) poly {
	h := sha3.NewSHAKE256()
	h.Write(ct)
	var s [8]byte
	h.Read(s[:])
	signs := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
	var c poly
	var j [1]byte
	for i := mldsaN - tau; i < mldsaN; i++ {
		for {
			h.Read(j[:])
			if int(j[0]) <= i {
				break
			}
		}
		c[i] = c[j[0]]
		if signs&1 == 1 {
			c[j[0]] = mldsaQ - 1
		} else {
			c[j[0]] = 1
		}
		signs >>= 1
	}
	return c
}

// bitReader reads little-endian bit fields, as FIPS 204's BitUnpack lays
// them out: coefficient i occupies bits [i*w, (i+1)*w).
type bitReader struct {
	b     []byte
	acc   uint64
	nbits int
}

func (r *bitReader) read(w int) uint32 {
	for r.nbits < w {
		r.acc |= uint64(r.b[0]) << r.nbits
		r.b = r.b[1:]
		r.nbits += 8
	}
	v := uint32(r.acc & (1<<w - 1))
	r.acc >>= w
	r.nbits -= w
	return v
}

// bitWriter is the inverse of bitReader (SimpleBitPack).
type bitWriter struct {
	out   []byte
	acc   uint64
	nbits int
}

func (w *bitWriter) write(v uint32, n int) {
	w.acc |= uint64(v) << w.nbits
	w.nbits += n
	for w.nbits >= 8 {
		w.out = append(w.out, byte(w.acc))
		w.acc >>= 8
		w.nbits -= 8
	}
}

// hintBitUnpack is FIPS 204 Algorithm 21; ok is false for a malformed hint.
func hintBitUnpack(y []byte, p *mldsaParams) (h [][mldsaN]bool, ok bool) {
	h = make([][mldsaN]bool, p.k)
	index := 0
	for i := 0; i < p.k; i++ {
		end := int(y[p.omega+i])
		if end < index || end > p.omega {
			return nil, false
		}
		first := index
		for index < end {
			if index > first && y[index-1] >= y[index] {
				return nil, false
			}
			h[i][y[index]] = true
			index++
		}
	}
	for i := index; i < p.omega; i++ {
		if y[i] != 0 {
			return nil, false
		}
	}
	return h, true
}

// useHint is FIPS 204 Algorithm 40, with Decompose (Algorithm 36) inlined.
func useHint(hint bool, r uint32, gamma2 uint32) uint32 {
	m := (mldsaQ - 1) / (2 * gamma2)
	r0 := int64(r % (2 * gamma2))
	if r0 > int64(gamma2) {
		r0 -= int64(2 * gamma2)
	}
	var r1 uint32
	if int64(r)-r0 == mldsaQ-1 {
		r1, r0 = 0, r0-1
	} else {
		r1 = uint32((int64(r) - r0) / int64(2*gamma2))
	}
	switch {
	case !hint:
		return r1
	case r0 > 0:
		return (r1 + 1) % m
	default:
		return (r1 + m - 1) % m
	}
}

// verifyMLDSAMu reports whether sig is a valid ML-DSA signature of the
// message representative mu under the encoded public key pk.
func verifyMLDSAMu(p *mldsaParams, pk, mu, sig []byte) bool {
	if len(pk) != p.publicKeySize() || len(sig) != p.signatureSize() || len(mu) != MLDSAMuSize {
		return false
	}
	// pkDecode (Algorithm 23): rho, then k polynomials of 10-bit t1.
	rho := pk[:32]
	t1 := make([]poly, p.k)
	br := bitReader{b: pk[32:]}
	for i := range t1 {
		for j := range t1[i] {
			t1[i][j] = br.read(10)
		}
	}
	// sigDecode (Algorithm 27): c̃, l polynomials z, the hint.
	ct := sig[:p.ctLen]
	zb := p.zBits()
	br = bitReader{b: sig[p.ctLen : p.ctLen+32*zb*p.l]}
	z := make([]poly, p.l)
	bound := int64(p.gamma1 - p.beta)
	for i := range z {
		for j := range z[i] {
			v := int64(p.gamma1) - int64(br.read(zb))
			// ||z||∞ < γ1 − β (step 10, checked early: it needs no hashing).
			if v >= bound || -v >= bound {
				return false
			}
			if v < 0 {
				v += mldsaQ
			}
			z[i][j] = uint32(v)
		}
	}
	h, ok := hintBitUnpack(sig[p.ctLen+32*zb*p.l:], p)
	if !ok {
		return false
	}

	// w'_approx = NTT^-1(Â ∘ NTT(z) − NTT(c) ∘ NTT(t1 · 2^d)), then UseHint.
	c := sampleInBall(ct, p.tau)
	c.ntt()
	for i := range z {
		z[i].ntt()
	}
	w1 := bitWriter{out: make([]byte, 0, 32*p.w1Bits()*p.k)}
	for i := 0; i < p.k; i++ {
		var acc poly
		for j := 0; j < p.l; j++ {
			a := rejNTTPoly(rho, byte(j), byte(i)) // ExpandA: seed rho || s || r
			for n := range acc {
				acc[n] = addQ(acc[n], mulQ(a[n], z[j][n]))
			}
		}
		t := t1[i]
		for n := range t {
			t[n] = mulQ(t[n], 1<<mldsaD)
		}
		t.ntt()
		for n := range acc {
			acc[n] = subQ(acc[n], mulQ(c[n], t[n]))
		}
		acc.invNTT()
		for n := range acc {
			w1.write(useHint(h[i][n], acc[n], p.gamma2), p.w1Bits())
		}
	}

	// c̃' = H(μ || w1Encode(w1'), λ/4) must equal c̃.
	hh := sha3.NewSHAKE256()
	hh.Write(mu)
	hh.Write(w1.out)
	got := make([]byte, p.ctLen)
	hh.Read(got)
	return subtle.ConstantTimeCompare(got, ct) == 1
}

// MLDSAMu computes the message representative μ that ML-DSA signs for msg
// under the encoded public key pk with an empty context, the way AWS KMS
// defines EXTERNAL_MU: μ = SHAKE256(SHAKE256(pk, 64) || 0x00 || 0x00 || msg, 64).
func MLDSAMu(pk, msg []byte) []byte {
	return mldsaMuWithContext(pk, msg, nil)
}

func mldsaMuWithContext(pk, msg, ctx []byte) []byte {
	tr := sha3.SumSHAKE256(pk, 64)
	h := sha3.NewSHAKE256()
	h.Write(tr)
	h.Write([]byte{0, byte(len(ctx))})
	h.Write(ctx)
	h.Write(msg)
	mu := make([]byte, MLDSAMuSize)
	h.Read(mu)
	return mu
}
