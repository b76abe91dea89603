package keys

// The symmetric ciphertext blob, format version 2: a blob sealed inside an
// HSM by a key of a custom key store (docs/ciphertext-format.md):
//
//	offset  size  field
//	     0     1  version, 0x02
//	     1    16  key id: the 16 raw bytes of the key's UUID
//	    17    32  material id: the raw bytes of the key's material id
//	    49    12  GCM IV, drawn at random (or by the HSM)
//	    61     n  AES-256-GCM ciphertext, n = len(plaintext)
//	  61+n    16  AES-256-GCM tag
//
// The AES-256 key is the HSM-resident key itself: it never leaves the
// token, so the per-message key derivation of version 1 cannot be done in
// kmsd. AAD = blob[0:49] || CanonicalContext(encCtx). The IV is not in the
// AAD (some HSMs choose it themselves, after the AAD is fixed); GCM
// authenticates it anyway, since another IV gives another keystream and tag.

import (
	"encoding/hex"
	"fmt"
)

const (
	// FormatHSM is the first byte of every version 2 blob.
	FormatHSM = 0x02

	// HSMIVSize is the GCM IV size of version 2 blobs.
	HSMIVSize       = 12
	hsmIVOffset     = saltOffset              // 49
	hsmHeaderSize   = hsmIVOffset + HSMIVSize // 61
	hsmAADPrefixLen = hsmIVOffset             // the header without the IV
)

// HSMOverhead is len(blob) - len(plaintext) for every version 2 blob.
const HSMOverhead = hsmHeaderSize + tagSize

// HSMBlob is a version 2 blob taken apart.
type HSMBlob struct {
	Header
	IV         []byte // HSMIVSize bytes
	Ciphertext []byte // GCM ciphertext followed by the tag
}

// HSMAAD returns the AAD an HSM must authenticate for a version 2 blob of
// key h.KeyID and material h.MaterialID under encCtx:
// 0x02 || key id || material id || CanonicalContext(encCtx).
func HSMAAD(h Header, encCtx map[string]string) ([]byte, error) {
	cc, err := CanonicalContext(encCtx)
	if err != nil {
		return nil, fmt.Errorf("keys: hsm blob: %w", err)
	}
	aad := make([]byte, hsmAADPrefixLen, hsmAADPrefixLen+len(cc))
	aad[0] = FormatHSM
	if !parseUUID(h.KeyID, aad[keyIDOffset:materialIDOffset]) {
		return nil, fmt.Errorf("keys: hsm blob: key id %q is not a lowercase canonical UUID", h.KeyID)
	}
	if !parseLowerHex(h.MaterialID, aad[materialIDOffset:saltOffset]) {
		return nil, fmt.Errorf("keys: hsm blob: material id %q is not %d lowercase hex characters", h.MaterialID, 2*MaterialIDSize)
	}
	return append(aad, cc...), nil
}

// MarshalHSMBlob assembles a version 2 blob from the AAD HSMAAD returned
// (whose first 49 bytes are the header without the IV), the IV and the
// HSM's ciphertext-and-tag.
func MarshalHSMBlob(aad, iv, ct []byte) ([]byte, error) {
	if len(aad) < hsmAADPrefixLen || aad[0] != FormatHSM {
		return nil, fmt.Errorf("keys: hsm blob: aad was not made by HSMAAD")
	}
	if len(iv) != HSMIVSize {
		return nil, fmt.Errorf("keys: hsm blob: IV is %d bytes, want %d", len(iv), HSMIVSize)
	}
	if len(ct) < tagSize {
		return nil, fmt.Errorf("keys: hsm blob: ciphertext of %d bytes has no tag", len(ct))
	}
	blob := make([]byte, 0, hsmHeaderSize+len(ct))
	blob = append(blob, aad[:hsmAADPrefixLen]...)
	blob = append(blob, iv...)
	return append(blob, ct...), nil
}

// ParseHSMBlob takes a version 2 blob apart without authenticating it; it
// fails with ErrInvalidCiphertext when blob is too short or not version 2.
// The returned slices alias blob.
func ParseHSMBlob(blob []byte) (HSMBlob, error) {
	if len(blob) < HSMOverhead {
		return HSMBlob{}, invalid("too short")
	}
	if blob[0] != FormatHSM {
		return HSMBlob{}, invalid("unknown format version")
	}
	return HSMBlob{
		Header: Header{
			KeyID:      formatUUID(blob[keyIDOffset:materialIDOffset]),
			MaterialID: hex.EncodeToString(blob[materialIDOffset:saltOffset]),
		},
		IV:         blob[hsmIVOffset:hsmHeaderSize],
		Ciphertext: blob[hsmHeaderSize:],
	}, nil
}
