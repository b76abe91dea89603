package shamir

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"testing"
	"testing/quick"
)

// slowMul is a textbook GF(2^8) multiplication with branches, as a
// reference for the constant-time mul.
func slowMul(a, b byte) byte {
	var p byte
	for b != 0 {
		if b&1 != 0 {
			p ^= a
		}
		hi := a & 0x80
		a <<= 1
		if hi != 0 {
			a ^= 0x1b
		}
		b >>= 1
	}
	return p
}

func TestField(t *testing.T) {
	// Known AES values (FIPS-197 section 4.2): {57}·{83} = {c1}, {57}·{13} = {fe}.
	for _, c := range []struct{ a, b, want byte }{{0x57, 0x83, 0xc1}, {0x57, 0x13, 0xfe}, {0, 0x13, 0}, {1, 0xab, 0xab}} {
		if got := mul(c.a, c.b); got != c.want {
			t.Errorf("mul(%#x, %#x) = %#x, want %#x", c.a, c.b, got, c.want)
		}
	}
	for a := range 256 {
		for b := range 256 {
			if got, want := mul(byte(a), byte(b)), slowMul(byte(a), byte(b)); got != want {
				t.Fatalf("mul(%#x, %#x) = %#x, want %#x", a, b, got, want)
			}
		}
		if a != 0 && mul(byte(a), inv(byte(a))) != 1 {
			t.Fatalf("inv(%#x) = %#x is not its inverse", a, inv(byte(a)))
		}
	}
	if inv(0) != 0 {
		t.Fatal("inv(0) != 0")
	}
}

// subsets calls f with every subset of {0..n-1} of size k.
func subsets(n, k int, f func([]int)) {
	var rec func(start int, cur []int)
	rec = func(start int, cur []int) {
		if len(cur) == k {
			f(append([]int(nil), cur...))
			return
		}
		for i := start; i < n; i++ {
			rec(i+1, append(cur, i))
		}
	}
	rec(0, nil)
}

func pick(shares []Share, idx []int) []Share {
	out := make([]Share, len(idx))
	for i, j := range idx {
		out[i] = shares[j]
	}
	return out
}

func TestEveryThresholdSubsetRecovers(t *testing.T) {
	for _, c := range []struct{ n, k int }{{1, 1}, {2, 2}, {3, 2}, {5, 3}, {6, 6}, {7, 4}, {10, 1}} {
		t.Run(fmt.Sprintf("%d-of-%d", c.k, c.n), func(t *testing.T) {
			secret := make([]byte, 32)
			rand.Read(secret)
			shares, err := Split(rand.Reader, secret, c.n, c.k)
			if err != nil {
				t.Fatal(err)
			}
			for size := c.k; size <= c.n; size++ {
				subsets(c.n, size, func(idx []int) {
					got, err := Combine(pick(shares, idx))
					if err != nil {
						t.Fatalf("subset %v: %v", idx, err)
					}
					if !bytes.Equal(got, secret) {
						t.Fatalf("subset %v recovers a wrong secret", idx)
					}
				})
			}
			if c.k > 1 {
				subsets(c.n, c.k-1, func(idx []int) {
					if _, err := Combine(pick(shares, idx)); err == nil {
						t.Fatalf("Combine accepted %d shares, threshold %d", len(idx), c.k)
					}
					// Even interpolated by force, k-1 shares give
					// something else (all 32 bytes equal by chance:
					// probability about 2^-256).
					if bytes.Equal(interpolate(pick(shares, idx)), secret) {
						t.Fatalf("subset %v of size k-1 recovers the secret", idx)
					}
				})
			}
		})
	}
}

// TestOneShareRevealsNothing checks the secrecy of 2-of-n exhaustively for
// one byte: whatever the secret, as the random coefficient runs over the
// field, share x takes every value exactly once, so its distribution does
// not depend on the secret.
func TestOneShareRevealsNothing(t *testing.T) {
	for _, x := range []byte{1, 2, 7, 255} {
		for s := range 256 {
			var seen [256]bool
			for c := range 256 {
				y := eval([]byte{byte(s), byte(c)}, x)
				if seen[y] {
					t.Fatalf("x=%d secret=%d: value %d taken twice", x, s, y)
				}
				seen[y] = true
			}
		}
	}
}

func TestSplitCombineProperty(t *testing.T) {
	f := func(secret []byte, n8, k8 uint8, seed uint64) bool {
		if len(secret) == 0 {
			secret = []byte{0}
		}
		n := int(n8%20) + 1
		k := int(k8)%n + 1
		shares, err := Split(rand.Reader, secret, n, k)
		if err != nil || len(shares) != n {
			return false
		}
		r := mrand.New(mrand.NewPCG(seed, 1))
		r.Shuffle(len(shares), func(i, j int) { shares[i], shares[j] = shares[j], shares[i] })
		size := k + r.IntN(n-k+1)
		got, err := Combine(shares[:size])
		if err != nil || !bytes.Equal(got, secret) {
			return false
		}
		// Every share survives its text form.
		for _, s := range shares {
			p, err := Parse(s.Encode())
			if err != nil || p.Index != s.Index || p.Threshold != s.Threshold || p.Set != s.Set || !bytes.Equal(p.Value, s.Value) {
				return false
			}
		}
		return true
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 300}); err != nil {
		t.Fatal(err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

func TestSplitRefuses(t *testing.T) {
	for _, c := range []struct {
		name   string
		secret []byte
		n, k   int
		random interface{ Read([]byte) (int, error) }
		want   string
	}{
		{"empty secret", nil, 3, 2, rand.Reader, "empty"},
		{"k zero", []byte{1}, 3, 0, rand.Reader, "at least 1"},
		{"k above n", []byte{1}, 3, 4, rand.Reader, "larger"},
		{"too many", []byte{1}, 256, 2, rand.Reader, "more than"},
		{"no randomness", []byte{1}, 3, 2, failingReader{}, "random"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Split(c.random, c.secret, c.n, c.k)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error with %q", err, c.want)
			}
		})
	}
}

func TestCombineRefuses(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	a, _ := Split(rand.Reader, secret, 5, 3)
	b, _ := Split(rand.Reader, secret, 5, 3)
	short := a[2]
	short.Value = short.Value[:5]
	otherK := a[2]
	otherK.Threshold = 2
	for _, c := range []struct {
		name   string
		shares []Share
		want   string
	}{
		{"none", nil, "no shares"},
		{"too few", a[:2], "2 shares given, 3 needed"},
		{"mixed splits", []Share{a[0], a[1], b[2]}, "another split"},
		{"repeated", []Share{a[0], a[1], a[1]}, "twice"},
		{"other length", []Share{a[0], a[1], short}, "bytes"},
		{"other threshold", []Share{a[0], a[1], otherK}, "threshold"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Combine(c.shares)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error with %q", err, c.want)
			}
			if err != nil && strings.Contains(err.Error(), fmt.Sprintf("%x", a[0].Value)) {
				t.Fatal("error quotes a share value")
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	shares, _ := Split(rand.Reader, bytes.Repeat([]byte{7}, 32), 3, 2)
	good := shares[1].Encode()
	if !strings.HasPrefix(good, "kmsd-share-2-") {
		t.Fatalf("encoding %q lacks its index", good[:14])
	}
	body := good[len("kmsd-share-2-"):]
	flip := func(i int) string {
		b := []byte(good)
		if b[i] == '0' {
			b[i] = '1'
		} else {
			b[i] = '0'
		}
		return string(b)
	}
	for _, c := range []struct{ name, text, want string }{
		{"empty", "", "should start"},
		{"other prefix", "vault-share-2-" + body, "should start"},
		{"no number", "kmsd-share-" + body, "share number"},
		{"index zero", "kmsd-share-0-" + body, "1 to 255"},
		{"leading zero", "kmsd-share-02-" + body, "1 to 255"},
		{"wrong number", "kmsd-share-3-" + body, "named share 3"},
		{"missing digit", good[:len(good)-1], "odd number"},
		{"missing byte", good[:len(good)-2], "checksum"},
		{"not hex", good[:20] + "g" + good[21:], "hex digit"},
		{"inner space", good[:20] + " " + good[21:], "hex digit"},
		{"too short", "kmsd-share-2-0102", "too short"},
		{"typo in value", flip(40), "checksum"},
		{"typo in checksum", flip(len(good) - 1), "checksum"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(c.text)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want ErrMalformed with %q", err, c.want)
			}
			if strings.Contains(err.Error(), body[:16]) {
				t.Fatal("error quotes the share")
			}
		})
	}
	if _, err := Parse("  " + good + "\r\n"); err != nil {
		t.Fatalf("surrounding white space: %v", err)
	}
	if _, err := Parse(strings.ToUpper(good[:13]) + good[13:]); err == nil {
		t.Fatal("upper-case prefix accepted")
	}
	// Every single-digit change is caught.
	for i := len("kmsd-share-2-"); i < len(good); i++ {
		if _, err := Parse(flip(i)); err == nil {
			t.Fatalf("a change at %d passed", i)
		}
	}
}

func TestShareNeverFormatsValue(t *testing.T) {
	shares, _ := Split(rand.Reader, bytes.Repeat([]byte{0xab}, 32), 2, 2)
	s := shares[0]
	for _, verb := range []string{"%v", "%+v", "%#v", "%x", "%s", "%q"} {
		out := fmt.Sprintf(verb, s) + fmt.Sprintf(verb, &s) + fmt.Sprintf(verb, []Share{s})
		if strings.Contains(out, fmt.Sprintf("%x", s.Value[:4])) || strings.Contains(out, fmt.Sprint(s.Value[0])+" ") {
			t.Errorf("%s prints the value: %s", verb, out)
		}
	}
}
