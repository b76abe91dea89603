package envelope

import (
	"crypto/hkdf"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
)

// Suite is an algorithm suite ID of the AWS Encryption SDK. Only the two
// key-committing suites of message format version 2 are supported.
type Suite uint16

const (
	// SuiteCommitKey is ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY (0x0478):
	// AES-256-GCM, HKDF-SHA512 key derivation, key commitment, no signature.
	SuiteCommitKey Suite = 0x0478
	// SuiteCommitKeyECDSAP384 is ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384
	// (0x0578): as SuiteCommitKey plus an ECDSA P-384/SHA-384 signature over
	// the whole message. It is the default.
	SuiteCommitKeyECDSAP384 Suite = 0x0578
)

// DefaultSuite is the suite used when none is chosen: the specification's
// default under the REQUIRE_ENCRYPT_REQUIRE_DECRYPT commitment policy.
const DefaultSuite = SuiteCommitKeyECDSAP384

// Sizes fixed by the two supported suites.
const (
	dataKeyLen   = 32 // key derivation input length: 256 bits
	encKeyLen    = 32 // AES-256
	commitKeyLen = 32 // algorithm suite data length
	messageIDLen = 32 // version 2 message ID, also the HKDF salt (256 bits)
	ivLen        = 12
	tagLen       = 16
)

// legacySuites are the message format version 1 suites that exist but do not
// commit to their key; the commitment policy forbids decrypting them.
var legacySuites = map[Suite]bool{
	0x0014: true, 0x0046: true, 0x0078: true,
	0x0114: true, 0x0146: true, 0x0178: true,
	0x0214: true, 0x0346: true, 0x0378: true,
}

// Valid reports whether s is one of the supported suites.
func (s Suite) Valid() bool { return s == SuiteCommitKey || s == SuiteCommitKeyECDSAP384 }

// Signed reports whether messages of suite s carry an ECDSA signature.
func (s Suite) Signed() bool { return s == SuiteCommitKeyECDSAP384 }

func (s Suite) String() string {
	switch s {
	case SuiteCommitKey:
		return "ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY (0x0478)"
	case SuiteCommitKeyECDSAP384:
		return "ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384 (0x0578)"
	}
	return fmt.Sprintf("0x%04X", uint16(s))
}

// checkSuite returns an error explaining why s cannot be used.
func checkSuite(s Suite) error {
	if s.Valid() {
		return nil
	}
	if legacySuites[s] {
		return fmt.Errorf("algorithm suite 0x%04X does not commit to its key and is not allowed by the commitment policy REQUIRE_ENCRYPT_REQUIRE_DECRYPT", uint16(s))
	}
	return fmt.Errorf("unsupported algorithm suite 0x%04X", uint16(s))
}

var (
	deriveKeyLabel = "DERIVEKEY"
	commitKeyLabel = "COMMITKEY"
)

// deriveKeys derives the message's AES-256-GCM key and its commitment key
// from the data key. Both come from one HKDF-SHA512 extract with the random
// 256-bit message ID as salt, which is why a data key may safely be reused
// across messages (the caching CMM does): every message gets its own
// encryption key, so the deterministic frame IVs never repeat under a key.
// The encryption key's info binds it to the suite ID (big-endian) so that the
// same data key can never yield the same key under another suite.
func deriveKeys(s Suite, dataKey, messageID []byte) (encKey, commitKey []byte, err error) {
	if len(dataKey) != dataKeyLen {
		return nil, nil, fmt.Errorf("data key is %d bytes, suite needs %d", len(dataKey), dataKeyLen)
	}
	prk, err := hkdf.Extract(sha512.New, dataKey, messageID)
	if err != nil {
		return nil, nil, fmt.Errorf("hkdf extract: %w", err)
	}
	defer clear(prk)
	info := binary.BigEndian.AppendUint16(nil, uint16(s))
	info = append(info, deriveKeyLabel...)
	encKey, err = hkdf.Expand(sha512.New, prk, string(info), encKeyLen)
	if err != nil {
		return nil, nil, fmt.Errorf("hkdf expand: %w", err)
	}
	commitKey, err = hkdf.Expand(sha512.New, prk, commitKeyLabel, commitKeyLen)
	if err != nil {
		clear(encKey)
		return nil, nil, fmt.Errorf("hkdf expand: %w", err)
	}
	return encKey, commitKey, nil
}
