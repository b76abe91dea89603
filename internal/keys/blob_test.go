package keys

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testRand returns a deterministic random stream for tests. It is not a
// production source; production code uses crypto/rand.
func testRand(seed byte) io.Reader {
	var s [32]byte
	s[0] = seed
	return rand.NewChaCha8(s)
}

// sealed is a fixture: material, header and a blob sealed under them.
type sealed struct {
	material []byte
	header   Header
	blob     []byte
}

var testHeader = Header{
	KeyID:      "1234abcd-12ab-34cd-56ef-1234567890ab",
	MaterialID: "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
}

func mustSeal(t testing.TB, plaintext []byte, encCtx map[string]string) sealed {
	t.Helper()
	r := testRand(1)
	material, err := NewMaterial(r)
	if err != nil {
		t.Fatal(err)
	}
	blob, err := Seal(r, material, testHeader, plaintext, encCtx)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return sealed{material, testHeader, blob}
}

func TestSizes(t *testing.T) {
	if headerSize != 81 || Overhead != 97 {
		t.Fatalf("headerSize = %d, Overhead = %d; the v1 format fixes them at 81 and 97", headerSize, Overhead)
	}
}

func TestRoundTrip(t *testing.T) {
	contexts := map[string]map[string]string{
		"nil":   nil,
		"empty": {},
		"one":   {"purpose": "test"},
		"utf8":  {"Department": "Finance", "clé": "valeur", "日本": "東京", "z": ""},
	}
	for _, size := range []int{0, 1, 16, 32, 1024, 4096} {
		for name, encCtx := range contexts {
			t.Run(fmt.Sprintf("%d/%s", size, name), func(t *testing.T) {
				plaintext := make([]byte, size)
				testRand(byte(size)).Read(plaintext)
				s := mustSeal(t, plaintext, encCtx)
				if got, want := len(s.blob), size+Overhead; got != want {
					t.Fatalf("len(blob) = %d, want %d", got, want)
				}
				h, err := ParseHeader(s.blob)
				if err != nil {
					t.Fatalf("ParseHeader: %v", err)
				}
				if h != s.header {
					t.Fatalf("ParseHeader = %+v, want %+v", h, s.header)
				}
				got, err := Open(s.material, s.blob, encCtx)
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if !bytes.Equal(got, plaintext) {
					t.Fatalf("Open returned %x, want %x", got, plaintext)
				}
				if len(plaintext) >= 8 && bytes.Contains(s.blob, plaintext) { // shorter ones can occur by chance
					t.Fatal("blob contains the plaintext")
				}
			})
		}
	}
}

// A nil and an empty context serialize identically, so either opens a blob
// sealed with the other.
func TestNilAndEmptyContextAreEqual(t *testing.T) {
	s := mustSeal(t, []byte("x"), nil)
	if _, err := Open(s.material, s.blob, map[string]string{}); err != nil {
		t.Fatalf("Open with empty context of a blob sealed with nil: %v", err)
	}
}

func TestSealUsesFreshSalt(t *testing.T) {
	material := make([]byte, MaterialSize)
	r := testRand(2)
	a, err := Seal(r, material, testHeader, []byte("same"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Seal(r, material, testHeader, []byte("same"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a[saltOffset:headerSize], b[saltOffset:headerSize]) || bytes.Equal(a[headerSize:], b[headerSize:]) {
		t.Fatal("two Seals of the same input share a salt or a ciphertext")
	}
}

func TestOpenWrongContext(t *testing.T) {
	base := map[string]string{"Purpose": "backup", "tenant": "acme"}
	s := mustSeal(t, []byte("secret"), base)
	for name, encCtx := range map[string]map[string]string{
		"nil":            nil,
		"empty":          {},
		"extra pair":     {"Purpose": "backup", "tenant": "acme", "x": "y"},
		"missing pair":   {"Purpose": "backup"},
		"changed value":  {"Purpose": "backup", "tenant": "acmf"},
		"key case":       {"purpose": "backup", "tenant": "acme"},
		"value case":     {"Purpose": "Backup", "tenant": "acme"},
		"empty value":    {"Purpose": "backup", "tenant": ""},
		"swapped":        {"backup": "Purpose", "tenant": "acme"},
		"moved boundary": {"Purpose": "backup", "tenan": "tacme"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Open(s.material, s.blob, encCtx); !errors.Is(err, ErrInvalidCiphertext) {
				t.Fatalf("Open = %v, want ErrInvalidCiphertext", err)
			}
		})
	}
}

// The length prefixes make the serialization injective: contexts whose
// concatenated bytes agree must still differ.
func TestCanonicalContextIsInjective(t *testing.T) {
	pairs := []map[string]string{
		{"ab": "c"}, {"a": "bc"}, {"abc": ""}, {"": "abc"},
		{"a": "b", "c": ""}, {"a": "", "bc": ""},
	}
	seen := map[string]int{}
	for i, p := range pairs {
		cc, err := CanonicalContext(p)
		if err != nil {
			t.Fatal(err)
		}
		if j, ok := seen[string(cc)]; ok {
			t.Fatalf("contexts %v and %v serialize identically", pairs[j], p)
		}
		seen[string(cc)] = i
	}
}

func TestOpenEveryBitFlipFails(t *testing.T) {
	encCtx := map[string]string{"k": "v"}
	s := mustSeal(t, []byte("hello"), encCtx)
	for i := range len(s.blob) * 8 {
		b := bytes.Clone(s.blob)
		b[i/8] ^= 1 << (i % 8)
		if pt, err := Open(s.material, b, encCtx); !errors.Is(err, ErrInvalidCiphertext) || pt != nil {
			t.Fatalf("flipping bit %d: Open = %q, %v; want nil, ErrInvalidCiphertext", i, pt, err)
		}
	}
}

func TestOpenWrongMaterial(t *testing.T) {
	s := mustSeal(t, []byte("secret"), nil)
	other := bytes.Clone(s.material)
	other[31] ^= 0x80
	for name, m := range map[string][]byte{
		"other":    other,
		"zero":     make([]byte, MaterialSize),
		"nil":      nil,
		"short":    s.material[:31],
		"long":     append(bytes.Clone(s.material), 0),
		"aes-128":  s.material[:16],
		"repeated": bytes.Repeat(s.material, 2),
	} {
		if _, err := Open(m, s.blob, nil); !errors.Is(err, ErrInvalidCiphertext) {
			t.Errorf("%s material: Open = %v, want ErrInvalidCiphertext", name, err)
		}
	}
}

func TestOpenTruncatedOrExtended(t *testing.T) {
	s := mustSeal(t, []byte("secret"), nil)
	for n := range len(s.blob) {
		if _, err := Open(s.material, s.blob[:n], nil); !errors.Is(err, ErrInvalidCiphertext) {
			t.Fatalf("blob truncated to %d bytes: Open = %v, want ErrInvalidCiphertext", n, err)
		}
	}
	if _, err := Open(s.material, append(bytes.Clone(s.blob), 0), nil); !errors.Is(err, ErrInvalidCiphertext) {
		t.Fatalf("blob with a byte appended: Open = %v, want ErrInvalidCiphertext", err)
	}
}

func TestOpenDoesNotAliasBlob(t *testing.T) {
	s := mustSeal(t, []byte("secret"), nil)
	orig := bytes.Clone(s.blob)
	pt, err := Open(s.material, s.blob, nil)
	if err != nil {
		t.Fatal(err)
	}
	clear(pt)
	if !bytes.Equal(s.blob, orig) {
		t.Fatal("clearing Open's result changed the blob")
	}
}

func TestParseHeaderRejects(t *testing.T) {
	valid := mustSeal(t, nil, nil).blob // exactly Overhead bytes
	withVersion := func(v byte) []byte {
		b := bytes.Clone(valid)
		b[0] = v
		return b
	}
	for name, blob := range map[string][]byte{
		"nil":               nil,
		"empty":             {},
		"version only":      {formatV1},
		"header only":       valid[:headerSize],
		"one byte short":    valid[:Overhead-1],
		"version 0":         withVersion(0x00),
		"version 2":         withVersion(0x02),
		"version 0xff":      withVersion(0xff),
		"text":              []byte(strings.Repeat("AQIDBAUGBwgJ", 20)),
		"ascii 1 + garbage": append([]byte("1"), valid[1:]...),
	} {
		if h, err := ParseHeader(blob); !errors.Is(err, ErrInvalidCiphertext) || h != (Header{}) {
			t.Errorf("%s: ParseHeader = %+v, %v; want zero Header, ErrInvalidCiphertext", name, h, err)
		}
	}
	if _, err := ParseHeader(valid); err != nil {
		t.Fatalf("ParseHeader of a blob of exactly Overhead bytes: %v", err)
	}
}

// ParseHeader does not authenticate: any bytes with the right version and
// length parse, and the fields re-encode to exactly the input bytes.
func TestParseHeaderIsCanonical(t *testing.T) {
	r := testRand(3)
	for range 100 {
		b := make([]byte, Overhead)
		r.Read(b)
		b[0] = formatV1
		h, err := ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		if got := encodeHeaderForTest(t, h); !bytes.Equal(got, b[:saltOffset]) {
			t.Fatalf("header %+v re-encodes to %x, want %x", h, got, b[:saltOffset])
		}
	}
}

// encodeHeaderForTest encodes the version, key id and material id of h.
func encodeHeaderForTest(t testing.TB, h Header) []byte {
	t.Helper()
	b := make([]byte, saltOffset)
	// A multi-Region key id takes format 3; any other, format 1.
	b[0] = formatV1
	keyOK := parseUUID(h.KeyID, b[keyIDOffset:materialIDOffset])
	if IsMultiRegionKeyID(h.KeyID) {
		b[0] = formatMRK
		keyOK = parseMRKID(h.KeyID, b[keyIDOffset:materialIDOffset])
	}
	if !keyOK || !parseLowerHex(h.MaterialID, b[materialIDOffset:saltOffset]) {
		t.Fatalf("ParseHeader returned a non-canonical header %+v", h)
	}
	return b
}

func TestSealRejects(t *testing.T) {
	material := make([]byte, MaterialSize)
	goodID, goodMat := testHeader.KeyID, testHeader.MaterialID
	badKeyIDs := []string{
		"",
		"1234ABCD-12ab-34cd-56ef-1234567890ab",   // uppercase
		"1234abcd12ab34cd56ef1234567890ab",       // no hyphens
		"{1234abcd-12ab-34cd-56ef-1234567890ab}", // braces
		"urn:uuid:1234abcd-12ab-34cd-56ef-1234567890ab", // URN
		"1234abcd-12ab-34cd-56ef-1234567890a",           // 35 chars
		"1234abcd-12ab-34cd-56ef-1234567890abc",         // 37 chars
		"1234abc-d12ab-34cd-56ef-1234567890ab",          // hyphen moved
		"1234abcd-12ab-34cd-56ef_1234567890ab",          // underscore
		"1234abcg-12ab-34cd-56ef-1234567890ab",          // not hex
		" 234abcd-12ab-34cd-56ef-1234567890ab",          // space
		"1234abcd-12ab-34cd-56ef-1234567890a\x00",       // NUL
		"1234abcd-12ab-34cd-56ef-12345678éab",           // non-ASCII, 36 bytes
		"alias/my-key",
		"arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
	}
	for _, id := range badKeyIDs {
		if _, err := Seal(testRand(4), material, Header{KeyID: id, MaterialID: goodMat}, nil, nil); err == nil {
			t.Errorf("Seal accepted key id %q", id)
		}
	}
	badMaterialIDs := []string{
		"",
		strings.ToUpper(goodMat),
		goodMat[:63],
		goodMat + "0",
		goodMat[:62] + "0g",
		goodMat[:62] + " 0",
		goodMat[:32], // 16 bytes
	}
	for _, id := range badMaterialIDs {
		if _, err := Seal(testRand(4), material, Header{KeyID: goodID, MaterialID: id}, nil, nil); err == nil {
			t.Errorf("Seal accepted material id %q", id)
		}
	}
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := Seal(testRand(4), make([]byte, n), testHeader, nil, nil); err == nil {
			t.Errorf("Seal accepted %d bytes of material", n)
		}
	}
	if _, err := Seal(iotestErrReader{}, material, testHeader, nil, nil); err == nil {
		t.Error("Seal succeeded although rand failed")
	}
	if _, err := Seal(bytes.NewReader(make([]byte, saltSize-1)), material, testHeader, nil, nil); err == nil {
		t.Error("Seal succeeded with a 31-byte salt")
	}
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errors.New("entropy exhausted") }

func TestNewMaterialAndID(t *testing.T) {
	m, err := NewMaterial(nil) // nil means crypto/rand
	if err != nil || len(m) != MaterialSize {
		t.Fatalf("NewMaterial = %d bytes, %v", len(m), err)
	}
	id, err := NewMaterialID(nil)
	if err != nil {
		t.Fatal(err)
	}
	var raw [MaterialIDSize]byte
	if !parseLowerHex(id, raw[:]) {
		t.Fatalf("NewMaterialID = %q, not %d lowercase hex", id, 2*MaterialIDSize)
	}
	if _, err := NewMaterial(iotestErrReader{}); err == nil {
		t.Error("NewMaterial succeeded although rand failed")
	}
	if _, err := NewMaterialID(bytes.NewReader(make([]byte, 31))); err == nil {
		t.Error("NewMaterialID succeeded with 31 random bytes")
	}
}

func TestUUIDRoundTrip(t *testing.T) {
	for _, s := range []string{
		"00000000-0000-0000-0000-000000000000",
		"ffffffff-ffff-ffff-ffff-ffffffffffff",
		"1234abcd-12ab-34cd-56ef-1234567890ab",
	} {
		var b [16]byte
		if !parseUUID(s, b[:]) {
			t.Fatalf("parseUUID(%q) failed", s)
		}
		if got := formatUUID(b[:]); got != s {
			t.Fatalf("formatUUID(parseUUID(%q)) = %q", s, got)
		}
	}
}

// TestCanonicalContextByHand checks CanonicalContext against byte strings
// written out by hand from the specification in docs/ciphertext-format.md.
func TestCanonicalContextByHand(t *testing.T) {
	for _, tc := range []struct {
		ctx  map[string]string
		want string // hex, spaces ignored
	}{
		{nil, "0000"},
		{map[string]string{}, "0000"},
		{map[string]string{"": ""}, "0001 0000 0000"},
		{map[string]string{"b": "2", "a": "1"}, "0002 0001 61 0001 31 0001 62 0001 32"},
		// Sorted by UTF-8 bytes: "Z" 5a < "z" 7a < "é" c3a9.
		{map[string]string{"é": "", "z": "", "Z": "x"}, "0003 0001 5a 0001 78 0001 7a 0000 0002 c3a9 0000"},
		// A prefix sorts before its extensions.
		{map[string]string{"ab": "", "a": "b"}, "0002 0001 61 0001 62 0002 6162 0000"},
	} {
		got, err := CanonicalContext(tc.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.ReplaceAll(tc.want, " ", ""); hex.EncodeToString(got) != want {
			t.Errorf("CanonicalContext(%q) = %x, want %s", tc.ctx, got, want)
		}
	}
}

func TestContextLimits(t *testing.T) {
	max := strings.Repeat("k", 0xffff)
	over := max + "k"
	s := mustSeal(t, []byte("x"), map[string]string{max: max})
	if _, err := Open(s.material, s.blob, map[string]string{max: max}); err != nil {
		t.Fatalf("65535-byte key and value: %v", err)
	}
	for name, encCtx := range map[string]map[string]string{
		"long key":   {over: "v"},
		"long value": {"k": over},
	} {
		if _, err := CanonicalContext(encCtx); err == nil {
			t.Errorf("%s: CanonicalContext succeeded", name)
		}
		if _, err := Seal(testRand(5), s.material, testHeader, nil, encCtx); err == nil {
			t.Errorf("%s: Seal succeeded", name)
		}
		if _, err := Open(s.material, s.blob, encCtx); !errors.Is(err, ErrInvalidCiphertext) {
			t.Errorf("%s: Open = %v, want ErrInvalidCiphertext", name, err)
		}
	}
	if testing.Short() {
		return
	}
	many := make(map[string]string, 0x10000)
	for i := range 0x10000 {
		many[fmt.Sprint(i)] = ""
	}
	if _, err := Seal(testRand(5), s.material, testHeader, nil, many); err == nil {
		t.Error("Seal succeeded with 65536 pairs")
	}
	if _, err := Open(s.material, s.blob, many); !errors.Is(err, ErrInvalidCiphertext) {
		t.Errorf("Open with 65536 pairs = %v, want ErrInvalidCiphertext", err)
	}
	delete(many, "0")
	if _, err := CanonicalContext(many); err != nil {
		t.Errorf("65535 pairs: %v", err)
	}
}

// vector is one file of testdata/*.txt. The line format is described in
// testdata/README.md and docs/ciphertext-format.md.
type vector struct {
	file             string
	material         []byte
	header           Header
	salt             []byte
	context          map[string]string
	canonicalContext []byte
	plaintext        []byte
	blob             []byte
}

// readVector parses a vector file strictly: every field exactly once
// (context zero or more times), nothing unknown, valid hex everywhere.
func readVector(path string) (*vector, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	v := &vector{file: filepath.Base(path), context: map[string]string{}}
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("line %d: no colon", n)
		}
		if value != "" {
			if value, ok = strings.CutPrefix(value, " "); !ok || value == "" {
				return nil, fmt.Errorf("line %d: want %q or %q", n, name+": value", name+":")
			}
		}
		if name != "context" {
			if seen[name] {
				return nil, fmt.Errorf("line %d: duplicate %s", n, name)
			}
			seen[name] = true
		}
		dst := map[string]*[]byte{
			"material": &v.material, "salt": &v.salt, "plaintext": &v.plaintext,
			"canonical_context": &v.canonicalContext, "blob": &v.blob,
		}
		switch name {
		case "description":
		case "key_id":
			v.header.KeyID = value
		case "material_id":
			v.header.MaterialID = value
		case "context":
			hk, hv, ok := strings.Cut(value, ":")
			k, err1 := hex.DecodeString(hk)
			val, err2 := hex.DecodeString(hv)
			if !ok || err1 != nil || err2 != nil {
				return nil, fmt.Errorf("line %d: context must be hexkey:hexvalue", n)
			}
			if _, dup := v.context[string(k)]; dup {
				return nil, fmt.Errorf("line %d: duplicate context key", n)
			}
			v.context[string(k)] = string(val)
		default:
			p, ok := dst[name]
			if !ok {
				return nil, fmt.Errorf("line %d: unknown field %q", n, name)
			}
			if *p, err = hex.DecodeString(value); err != nil {
				return nil, fmt.Errorf("line %d: %s: %w", n, name, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, name := range []string{"description", "material", "key_id", "material_id", "salt", "canonical_context", "plaintext", "blob"} {
		if !seen[name] {
			return nil, fmt.Errorf("missing %s", name)
		}
	}
	return v, nil
}

func readVectors(t *testing.T) []*vector {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("found %d vector files in testdata, want at least 5", len(files))
	}
	var vs []*vector
	for _, file := range files {
		v, err := readVector(file)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		vs = append(vs, v)
	}
	return vs
}

// TestVectors pins format versions 1 and 3: these blobs were generated once and
// must be produced and accepted, byte for byte, by every future kmsd.
// A failure here means the format changed. Do not regenerate the files.
func TestVectors(t *testing.T) {
	for _, v := range readVectors(t) {
		t.Run(v.file, func(t *testing.T) {
			cc, err := CanonicalContext(v.context)
			if err != nil || !bytes.Equal(cc, v.canonicalContext) {
				t.Fatalf("CanonicalContext = %x, %v; want %x", cc, err, v.canonicalContext)
			}
			salt := bytes.NewReader(v.salt)
			blob, err := Seal(salt, v.material, v.header, v.plaintext, v.context)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if salt.Len() != 0 {
				t.Fatalf("Seal read %d bytes of randomness, want %d", len(v.salt)-salt.Len(), saltSize)
			}
			if !bytes.Equal(blob, v.blob) {
				t.Fatalf("Seal = %x\nwant   %x", blob, v.blob)
			}
			h, err := ParseHeader(v.blob)
			if err != nil || h != v.header {
				t.Fatalf("ParseHeader = %+v, %v; want %+v", h, err, v.header)
			}
			pt, err := Open(v.material, v.blob, v.context)
			if err != nil || !bytes.Equal(pt, v.plaintext) {
				t.Fatalf("Open = %x, %v; want %x", pt, err, v.plaintext)
			}
		})
	}
}

// TestVectorsFromSpec rebuilds every vector from the steps written in
// docs/ciphertext-format.md, using crypto primitives directly and none of
// Seal's code, so that the document, the files and the code agree.
func TestVectorsFromSpec(t *testing.T) {
	for _, v := range readVectors(t) {
		t.Run(v.file, func(t *testing.T) {
			// Version 1: a UUID's 16 bytes; version 3: the 16 bytes after
			// "mrk-" of a multi-Region key id, and its own HKDF label.
			version, info := byte(0x01), "kmsd ciphertext blob v1"
			hexID := strings.ReplaceAll(v.header.KeyID, "-", "")
			if rest, ok := strings.CutPrefix(v.header.KeyID, "mrk-"); ok {
				version, info, hexID = 0x03, "kmsd ciphertext blob v3", rest
			}
			keyID, err := hex.DecodeString(hexID)
			if err != nil || len(keyID) != 16 {
				t.Fatalf("key id %s: %v", v.header.KeyID, err)
			}
			materialID, err := hex.DecodeString(v.header.MaterialID)
			if err != nil {
				t.Fatal(err)
			}
			header := append(append(append([]byte{version}, keyID...), materialID...), v.salt...)
			okm, err := hkdf.Key(sha256.New, v.material, v.salt, info, 44)
			if err != nil {
				t.Fatal(err)
			}
			block, err := aes.NewCipher(okm[:32])
			if err != nil {
				t.Fatal(err)
			}
			gcm, err := cipher.NewGCM(block)
			if err != nil {
				t.Fatal(err)
			}
			aad := append(bytes.Clone(header), v.canonicalContext...)
			blob := gcm.Seal(header, okm[32:44], v.plaintext, aad)
			if !bytes.Equal(blob, v.blob) {
				t.Fatalf("spec construction = %x\nwant               %x", blob, v.blob)
			}
		})
	}
}

func BenchmarkSeal(b *testing.B) {
	for _, size := range []int{32, 4096} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			material := make([]byte, MaterialSize)
			plaintext := make([]byte, size)
			encCtx := map[string]string{"purpose": "bench"}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Seal(nil, material, testHeader, plaintext, encCtx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, size := range []int{32, 4096} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			encCtx := map[string]string{"purpose": "bench"}
			s := mustSeal(b, make([]byte, size), encCtx)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Open(s.material, s.blob, encCtx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestMultiRegionKeyBlobs: a multi-Region key id makes a version 3 blob,
// which names the same id whatever key of the multi-Region key made it and
// round-trips; a version 1 blob relabelled version 3 (or the reverse) does
// not open, and malformed multi-Region key ids are refused.
func TestMultiRegionKeyBlobs(t *testing.T) {
	material := make([]byte, MaterialSize)
	h := Header{KeyID: "mrk-1234abcd12ab34cd56ef1234567890ab", MaterialID: testHeader.MaterialID}
	ec := map[string]string{"purpose": "mrk"}
	blob, err := Seal(nil, material, h, []byte("hello"), ec)
	if err != nil {
		t.Fatal(err)
	}
	if blob[0] != formatMRK || len(blob) != Overhead+5 {
		t.Fatalf("blob version %#x, length %d", blob[0], len(blob))
	}
	if got, err := ParseHeader(blob); err != nil || got != h {
		t.Fatalf("ParseHeader = %+v, %v; want %+v", got, err, h)
	}
	if pt, err := Open(material, blob, ec); err != nil || string(pt) != "hello" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	v1 := mustSeal(t, []byte("hello"), ec)
	for name, b := range map[string][]byte{
		"version 3 relabelled 1": append([]byte{formatV1}, blob[1:]...),
		"version 1 relabelled 3": append([]byte{formatMRK}, v1.blob[1:]...),
	} {
		m := material
		if name == "version 1 relabelled 3" {
			m = v1.material
		}
		if _, err := Open(m, b, ec); !errors.Is(err, ErrInvalidCiphertext) {
			t.Errorf("%s: Open = %v, want ErrInvalidCiphertext", name, err)
		}
	}
	if !IsMultiRegionKeyID(h.KeyID) {
		t.Errorf("IsMultiRegionKeyID(%s) = false", h.KeyID)
	}
	for _, id := range []string{"mrk-1234ABCD12ab34cd56ef1234567890ab", "mrk-1234abcd12ab34cd56ef1234567890a", "mrk-1234abcd12ab34cd56ef1234567890abc",
		"MRK-1234abcd12ab34cd56ef1234567890ab", "mrk_1234abcd12ab34cd56ef1234567890ab", "1234abcd12ab34cd56ef1234567890ab", "mrk-"} {
		if IsMultiRegionKeyID(id) {
			t.Errorf("IsMultiRegionKeyID(%q) = true", id)
		}
		if _, err := Seal(nil, material, Header{KeyID: id, MaterialID: testHeader.MaterialID}, nil, nil); err == nil {
			t.Errorf("Seal with key id %q succeeded", id)
		}
	}
	// Any version 3 header re-encodes to its bytes.
	r := testRand(4)
	for range 100 {
		b := make([]byte, Overhead)
		r.Read(b)
		b[0] = formatMRK
		got, err := ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		var enc [keyIDSize]byte
		if !parseMRKID(got.KeyID, enc[:]) || !bytes.Equal(enc[:], b[keyIDOffset:materialIDOffset]) {
			t.Fatalf("header %+v does not re-encode to %x", got, b[keyIDOffset:materialIDOffset])
		}
	}
}
