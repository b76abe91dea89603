package keys

// The symmetric ciphertext blob, format version 1 (docs/ciphertext-format.md):
//
//	offset  size  field
//	     0     1  version, 0x01
//	     1    16  key id: the 16 raw bytes of the key's UUID
//	    17    32  material id: the raw bytes of the backing key's id
//	    49    32  salt: 256 random bits, fresh for every message
//	    81     n  AES-256-GCM ciphertext, n = len(plaintext)
//	  81+n    16  AES-256-GCM tag
//
// Per message: okm = HKDF-SHA256(IKM = material, salt = salt, info =
// "kmsd ciphertext blob v1", L = 44); AES key = okm[0:32], nonce =
// okm[32:44]; AAD = blob[0:81] || CanonicalContext(encCtx).
//
// Format version 3 is version 1 for the keys of a multi-Region key: the
// same layout, the version byte 0x03, the key id field the 16 bytes whose
// lowercase hex follows "mrk-" in the key id (the id every related key
// shares, so that each of them finds itself in the blob), and the HKDF info
// "kmsd ciphertext blob v3". (Version 2 is the blob of a custom key store's
// HSM, hsmblob.go.)

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/google/uuid"
)

const (
	// formatV1 is the first byte of every version 1 blob. A future format
	// gets a new byte; version 1 blobs must stay readable forever.
	formatV1 = 0x01
	// formatMRK is the first byte of every version 3 blob: version 1 for a
	// key of a multi-Region key.
	formatMRK = 0x03

	keyIDSize = 16 // raw UUID
	saltSize  = 32 // 256 random bits per message
	nonceSize = 12 // the standard GCM nonce size
	tagSize   = 16 // the full GCM tag; never truncated

	keyIDOffset      = 1
	materialIDOffset = keyIDOffset + keyIDSize
	saltOffset       = materialIDOffset + MaterialIDSize
	headerSize       = saltOffset + saltSize // 81

	// hkdfInfo is the HKDF info label of format version 1. It separates
	// these derived keys from any other use kmsd might make of the same
	// material with HKDF. Changing one byte of it breaks every blob ever
	// written: it is part of the format.
	hkdfInfo = "kmsd ciphertext blob v1"
	// hkdfInfoMRK is the HKDF info label of format version 3.
	hkdfInfoMRK = "kmsd ciphertext blob v3"

	// maxPlaintext is AES-GCM's limit for one message (2^39-256 bits, as
	// in NIST SP 800-38D). crypto/cipher panics above it, so Seal checks
	// first; it can only matter on 64-bit platforms.
	maxPlaintext = 1<<36 - 32
)

// Overhead is len(blob) - len(plaintext) for every blob Seal produces: the
// 81-byte header plus the 16-byte GCM tag.
const Overhead = headerSize + tagSize

// Header is the cleartext part of a blob: which key and which backing key
// (key material) of that key encrypted it. Decrypt uses it to find the
// material without the client naming the key.
type Header struct {
	// KeyID is a lowercase canonical UUID, e.g.
	// "1234abcd-12ab-34cd-56ef-1234567890ab" (format version 1), or a
	// multi-Region key id, "mrk-" and 32 lowercase hex characters (format
	// version 3).
	KeyID      string
	MaterialID string // 64 lowercase hex characters
}

// Seal encrypts plaintext under material (MaterialSize bytes) for the key
// h.KeyID and backing key h.MaterialID, binding encCtx, and returns the
// blob. rand supplies the 32-byte salt (nil means crypto/rand.Reader); it
// must be a cryptographically secure source in production.
//
// Seal returns an error, never a blob, when h is not canonical (see Header),
// material has the wrong size, encCtx cannot be serialized (see
// CanonicalContext) or rand fails.
func Seal(rand io.Reader, material []byte, h Header, plaintext []byte, encCtx map[string]string) ([]byte, error) {
	if len(material) != MaterialSize {
		return nil, fmt.Errorf("keys: seal: key material is %d bytes, want %d", len(material), MaterialSize)
	}
	if uint64(len(plaintext)) > maxPlaintext {
		return nil, fmt.Errorf("keys: seal: plaintext of %d bytes exceeds the AES-GCM limit", len(plaintext))
	}
	cc, err := CanonicalContext(encCtx)
	if err != nil {
		return nil, fmt.Errorf("keys: seal: %w", err)
	}

	blob := make([]byte, headerSize, Overhead+len(plaintext))
	switch {
	case parseUUID(h.KeyID, blob[keyIDOffset:materialIDOffset]):
		blob[0] = formatV1
	case parseMRKID(h.KeyID, blob[keyIDOffset:materialIDOffset]):
		blob[0] = formatMRK
	default:
		return nil, fmt.Errorf("keys: seal: key id %q is neither a lowercase canonical UUID nor a multi-Region key id", h.KeyID)
	}
	if !parseLowerHex(h.MaterialID, blob[materialIDOffset:saltOffset]) {
		return nil, fmt.Errorf("keys: seal: material id %q is not %d lowercase hex characters", h.MaterialID, 2*MaterialIDSize)
	}
	salt := blob[saltOffset:headerSize]
	// A fresh random salt per message is what makes every message use its
	// own AES key and nonce; reusing a salt with the same material would
	// reuse a (key, nonce) pair and break GCM completely.
	if _, err := io.ReadFull(orDefault(rand), salt); err != nil {
		return nil, fmt.Errorf("keys: seal: reading random salt: %w", err)
	}

	aead, nonce, err := deriveAEAD(material, salt, infoOf(blob[0]))
	if err != nil {
		return nil, fmt.Errorf("keys: seal: %w", err)
	}
	// aead.Seal appends ciphertext||tag after the header in blob's spare
	// capacity; the AAD is a separate slice so the two never overlap.
	return aead.Seal(blob, nonce[:], plaintext, additionalData(blob[:headerSize], cc)), nil
}

// ParseHeader returns the cleartext header of blob without decrypting or
// authenticating anything: the result tells which key and material to try,
// and is trustworthy only once Open succeeds.
//
// It fails with ErrInvalidCiphertext when blob is shorter than a header and
// a tag or does not start with format version 1 or 3. Every 16-byte key id
// and 32-byte material id has exactly one canonical text form, so the
// fields themselves cannot be malformed; ParseHeader(blob) always
// re-encodes to blob's first bytes.
func ParseHeader(blob []byte) (Header, error) {
	// Checking the length against header+tag (not just the header) means
	// callers never look up keys for a blob that Open would reject anyway.
	if len(blob) < Overhead {
		return Header{}, invalid("too short")
	}
	var keyID string
	switch blob[0] {
	case formatV1:
		keyID = formatUUID(blob[keyIDOffset:materialIDOffset])
	case formatMRK:
		keyID = mrkPrefix + hex.EncodeToString(blob[keyIDOffset:materialIDOffset])
	default:
		return Header{}, invalid("unknown format version")
	}
	return Header{
		KeyID:      keyID,
		MaterialID: hex.EncodeToString(blob[materialIDOffset:saltOffset]),
	}, nil
}

// Open authenticates blob under material and encCtx and returns the
// plaintext (a fresh slice, never aliasing blob). It fails with
// ErrInvalidCiphertext, without saying which input was wrong, when material
// is not MaterialSize bytes, when the blob is malformed, when encCtx cannot
// be serialized, or when authentication fails (other material, other
// context, any changed bit). It never panics.
func Open(material []byte, blob []byte, encCtx map[string]string) ([]byte, error) {
	if len(material) != MaterialSize {
		return nil, invalid("wrong key material size")
	}
	if _, err := ParseHeader(blob); err != nil {
		return nil, err
	}
	cc, err := CanonicalContext(encCtx)
	if err != nil {
		// Seal refuses such a context, so no blob can be bound to it.
		return nil, invalid("encryption context cannot be represented")
	}
	aead, nonce, err := deriveAEAD(material, blob[saltOffset:headerSize], infoOf(blob[0]))
	if err != nil {
		return nil, invalid("key derivation failed")
	}
	// GCM verifies the tag in constant time before releasing any plaintext;
	// on failure we return nothing but the sentinel.
	pt, err := aead.Open(nil, nonce[:], blob[headerSize:], additionalData(blob[:headerSize], cc))
	if err != nil {
		return nil, invalid("authentication failed")
	}
	return pt, nil
}

// CanonicalContext returns the canonical serialization of an encryption
// context, which Seal and Open use as AAD (after the header). It is the
// AWS Encryption SDK's encoding:
//
//	uint16 big-endian number of pairs
//	for each pair, sorted by the key's UTF-8 bytes:
//	    uint16 big-endian key length,   key bytes
//	    uint16 big-endian value length, value bytes
//
// An empty or nil context is the two bytes 0x00 0x00. Keys and values are
// used as given (kmsd validates UTF-8 and sizes before calling); keys are
// unique because encCtx is a map, so the order is total.
//
// It fails when the context has more than 65535 pairs or a key or value
// longer than 65535 bytes, which the encoding cannot represent.
func CanonicalContext(encCtx map[string]string) ([]byte, error) {
	if len(encCtx) > 0xffff {
		return nil, fmt.Errorf("encryption context has %d pairs, at most %d can be encoded", len(encCtx), 0xffff)
	}
	size := 2
	for k, v := range encCtx {
		if len(k) > 0xffff || len(v) > 0xffff {
			// The key is not quoted: it may be huge, and this error can
			// end up in logs.
			return nil, fmt.Errorf("encryption context pair of %d+%d bytes: keys and values are limited to %d bytes", len(k), len(v), 0xffff)
		}
		size += 2 + len(k) + 2 + len(v)
	}
	out := make([]byte, 0, size)
	out = binary.BigEndian.AppendUint16(out, uint16(len(encCtx)))
	// Go compares strings byte by byte, which is exactly "sorted by the
	// UTF-8 bytes of the key" (and also defined for invalid UTF-8).
	// The keys of the usual small context sort in an array on the stack.
	var keysBuf [8]string
	keys := keysBuf[:0]
	for k := range encCtx {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := encCtx[k]
		out = binary.BigEndian.AppendUint16(out, uint16(len(k)))
		out = append(out, k...)
		out = binary.BigEndian.AppendUint16(out, uint16(len(v)))
		out = append(out, v...)
	}
	return out, nil
}

// deriveAEAD derives the per-message AES-256-GCM key and nonce from the
// backing key and the message's salt.
//
// Why this is safe however much one backing key encrypts: NIST limits a
// GCM key used with random 96-bit nonces to 2^32 messages, because nonce
// collisions become likely after that. Here the GCM key itself is new for
// every message (HKDF of a 256-bit random salt), and each derived key
// encrypts exactly one message with one nonce. A (key, nonce) pair repeats
// only if two messages draw the same 256-bit salt, which is negligible
// (birthday bound 2^128 messages). The nonce is derived rather than random
// only to keep the blob short; any fixed nonce would be equally safe.
func deriveAEAD(material, salt []byte, info string) (cipher.AEAD, [nonceSize]byte, error) {
	var nonce [nonceSize]byte
	okm, err := hkdf.Key(sha256.New, material, salt, info, 32+nonceSize)
	if err != nil {
		return nil, nonce, fmt.Errorf("deriving message key: %w", err)
	}
	// The derived AES key must not linger on the heap. aes.NewCipher copies
	// it into its key schedule (which Go gives us no way to wipe), so the
	// okm buffer can be cleared as soon as the cipher exists.
	defer clear(okm)
	copy(nonce[:], okm[32:])
	block, err := aes.NewCipher(okm[:32])
	if err != nil {
		return nil, nonce, fmt.Errorf("creating AES cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, nonce, fmt.Errorf("creating GCM: %w", err)
	}
	return aead, nonce, nil
}

// infoOf returns the HKDF info label of a blob's format version (1 or 3;
// ParseHeader has refused the others).
func infoOf(format byte) string {
	if format == formatMRK {
		return hkdfInfoMRK
	}
	return hkdfInfo
}

// mrkPrefix begins every multi-Region key id.
const mrkPrefix = "mrk-"

// IsMultiRegionKeyID reports whether s is a multi-Region key id: "mrk-"
// and 32 lowercase hex characters.
func IsMultiRegionKeyID(s string) bool {
	var b [keyIDSize]byte
	return parseMRKID(s, b[:])
}

// parseMRKID decodes a multi-Region key id into dst (16 bytes): "mrk-" and
// exactly 32 lowercase hex characters, so that one key has one id.
func parseMRKID(s string, dst []byte) bool {
	rest, ok := strings.CutPrefix(s, mrkPrefix)
	return ok && len(dst) == keyIDSize && parseLowerHex(rest, dst)
}

// additionalData returns header || cc in a new slice.
func additionalData(header, cc []byte) []byte {
	aad := make([]byte, 0, len(header)+len(cc))
	return append(append(aad, header...), cc...)
}

// invalid returns ErrInvalidCiphertext with a short reason.
func invalid(reason string) error {
	return fmt.Errorf("%w: %s", ErrInvalidCiphertext, reason)
}

// parseUUID decodes the canonical text form of a UUID into dst (16 bytes):
// exactly 36 characters, lowercase hex, hyphens at offsets 8, 13, 18 and 23.
// Uppercase, braces, "urn:uuid:" and missing hyphens are all refused, so
// that one key has exactly one id. It reports false on any deviation.
func parseUUID(s string, dst []byte) bool {
	if len(s) != 36 || len(dst) != keyIDSize {
		return false
	}
	j := 0
	for i := 0; i < len(s); {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if s[i] != '-' {
				return false
			}
			i++
			continue
		}
		hi, ok1 := lowerHexDigit(s[i])
		lo, ok2 := lowerHexDigit(s[i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[j] = hi<<4 | lo
		j++
		i += 2
	}
	return j == keyIDSize
}

// formatUUID returns the canonical text form of a 16-byte UUID.
func formatUUID(b []byte) string { return uuid.UUID(b).String() }

// parseLowerHex decodes s into dst, requiring exactly 2*len(dst) lowercase
// hex characters (encoding/hex would also accept uppercase, which would give
// one material two ids).
func parseLowerHex(s string, dst []byte) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, ok1 := lowerHexDigit(s[2*i])
		lo, ok2 := lowerHexDigit(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

// lowerHexDigit returns the value of a lowercase hex digit.
func lowerHexDigit(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
