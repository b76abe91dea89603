package keystore

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/argon2"

	"github.com/kmsd/kmsd/internal/durable"
)

// A sealed root key file holds a FileKeystore's root key encrypted under a
// 256-bit seal key, so that the file (a stolen disk, a backup) is useless
// without the passphrase or the Shamir shares the seal key comes from.
// Format version 1 is one JSON object, mode 0600:
//
//	{
//	  "format": "kmsd sealed root key",
//	  "version": 1,
//	  "root_key_id": "<16 hex: the public id of the sealed root key>",
//	  "seal": {
//	    "kind": "passphrase" | "shamir",
//	    "argon2id": {"time": 3, "memory_kib": 65536, "threads": 4, "salt": "<base64, 16..64 bytes>"},  // passphrase only
//	    "shamir": {"shares": N, "threshold": K, "set": "<16 hex: the split's set id>"},               // shamir only
//	    "key_check": "<base64, 16 bytes>"
//	  },
//	  "nonce": "<base64, 12 bytes>",
//	  "ciphertext": "<base64, 48 bytes: AES-256-GCM of the 32-byte root key, then the tag>"
//	}
//
// Keys:
//
//	seal key   passphrase: Argon2id(passphrase, salt, time, memory, threads), 32 bytes
//	           shamir:     the 32 random bytes split into the shares
//	enc key    HKDF-SHA256(seal key, no salt, "kmsd sealed root v1 encryption key"), 32 bytes
//	key_check  HKDF-SHA256(seal key, no salt, "kmsd sealed root v1 key check"), first 16 bytes
//
// The AAD is sealedAADLabel || the header in a fixed binary layout (see
// headerAAD): every header field is authenticated, so a header altered to
// weaker Argon2 parameters, another root id or another split makes the
// file fail to open. key_check tells a wrong passphrase or wrong shares
// ("wrong seal key") apart from a damaged file (right key_check, GCM tag
// fails); it lets an attacker test guesses no faster than the GCM tag
// would, since both need the full Argon2id derivation.
//
// Every sealed root of a data folder shares one seal key (a rotation
// copies the seal section), so one unseal opens the whole ring.
const (
	// SealedSuffix ends the name of every sealed root key file.
	SealedSuffix = ".sealed"

	sealedFormat  = "kmsd sealed root key"
	sealedVersion = 1

	// Domain-separation labels: part of the format, never change them.
	sealedAADLabel  = "kmsd sealed root v1"
	sealEncInfo     = "kmsd sealed root v1 encryption key"
	sealCheckInfo   = "kmsd sealed root v1 key check"
	sealKeySize     = 32 // AES-256
	sealCheckSize   = 16 // 128 bits: a false match is out of reach
	sealNonceSize   = 12 // GCM's standard nonce
	sealSaltMin     = 16 // 128-bit salt (RFC 9106 recommends 16 bytes)
	sealSaltMax     = 64
	sealSetSize     = 8 // the shamir package's set id
	maxSealedFile   = 8 << 10
	maxArgon2Time   = 64      // a damaged header must not hang kmsd
	maxArgon2Memory = 4 << 20 // 4 GiB in KiB
)

// SealKind is how the seal key is obtained.
type SealKind string

const (
	SealPassphrase SealKind = "passphrase" // Argon2id of a passphrase
	SealShamir     SealKind = "shamir"     // K of N Shamir shares
)

// ErrSealKey is wrapped by the errors of a seal key that does not open a
// sealed root: a wrong passphrase, shares that combine to something else,
// or a file sealed under another seal key.
var ErrSealKey = errors.New("keystore: wrong seal key")

// Argon2Params are the Argon2id costs of a passphrase seal.
type Argon2Params struct {
	Time      uint32 // passes over memory
	MemoryKiB uint32 // memory in KiB
	Threads   uint8  // lanes
}

// DefaultArgon2Params are the costs kmsd init uses: 3 passes over 64 MiB
// with 4 lanes, RFC 9106's second recommended option (section 4), about
// half a second on a small server. A guess at the passphrase costs an
// attacker as much, and the memory makes GPUs and ASICs little faster.
func DefaultArgon2Params() Argon2Params {
	return Argon2Params{Time: 3, MemoryKiB: 64 << 10, Threads: 4}
}

// SealInfo is the public header of a sealed root key file: how its seal
// key is obtained, and which root key it holds.
type SealInfo struct {
	Kind SealKind
	// Passphrase seals.
	Argon2 Argon2Params
	Salt   []byte
	// Shamir seals.
	Shares, Threshold int
	ShareSet          [sealSetSize]byte
	// KeyCheck is derived from the seal key (see the format).
	KeyCheck []byte
	// RootID is the id of the root key in the file (empty in a SealKey's
	// Info).
	RootID string
}

// sameSeal reports whether a and b describe the same seal key. KeyCheck is
// compared in constant time: it is derived from the secret seal key.
func (a SealInfo) sameSeal(b SealInfo) bool {
	return a.Kind == b.Kind && a.Argon2 == b.Argon2 && bytes.Equal(a.Salt, b.Salt) &&
		a.Shares == b.Shares && a.Threshold == b.Threshold && a.ShareSet == b.ShareSet &&
		subtle.ConstantTimeCompare(a.KeyCheck, b.KeyCheck) == 1
}

// Describe returns a one-line description of the seal for people.
func (a SealInfo) Describe() string {
	if a.Kind == SealShamir {
		return fmt.Sprintf("Shamir shares, %d of %d (set %x)", a.Threshold, a.Shares, a.ShareSet)
	}
	return fmt.Sprintf("passphrase, Argon2id time=%d memory=%d MiB threads=%d", a.Argon2.Time, a.Argon2.MemoryKiB>>10, a.Argon2.Threads)
}

// SealKey is the 256-bit key that seals root key files, with the public
// parameters it was derived with. Its fmt output names only its kind.
type SealKey struct {
	key  [sealKeySize]byte
	info SealInfo
}

// Format makes every fmt verb print the seal kind only, never the key.
func (k SealKey) Format(s fmt.State, _ rune) { fmt.Fprintf(s, "SealKey(%s)", k.info.Kind) }

// Info returns the seal parameters (RootID empty).
func (k *SealKey) Info() SealInfo { return k.info }

// Wipe zeroes the key. The SealKey is unusable afterwards.
func (k *SealKey) Wipe() { clear(k.key[:]) }

// NewPassphraseSealKey derives a new seal key from passphrase with a fresh
// random salt.
func NewPassphraseSealKey(passphrase []byte, p Argon2Params) (*SealKey, error) {
	if len(passphrase) == 0 {
		return nil, errors.New("keystore: empty passphrase")
	}
	if err := checkArgon2(p); err != nil {
		return nil, err
	}
	salt := make([]byte, sealSaltMin)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("keystore: reading random salt: %w", err)
	}
	info := SealInfo{Kind: SealPassphrase, Argon2: p, Salt: salt}
	k := &SealKey{info: info}
	derivePassphrase(&k.key, passphrase, info)
	if err := k.setCheck(); err != nil {
		return nil, err
	}
	return k, nil
}

// NewShamirSealKey makes a seal key of secret (32 bytes, random), which
// the caller has split into shares of one split (set), threshold of them
// recovering it.
func NewShamirSealKey(secret []byte, shares, threshold int, set [sealSetSize]byte) (*SealKey, error) {
	info := SealInfo{Kind: SealShamir, Shares: shares, Threshold: threshold, ShareSet: set}
	if err := checkShamir(info); err != nil {
		return nil, err
	}
	if len(secret) != sealKeySize {
		return nil, fmt.Errorf("keystore: a Shamir seal secret is %d bytes, want %d", len(secret), sealKeySize)
	}
	k := &SealKey{info: info}
	copy(k.key[:], secret)
	if err := k.setCheck(); err != nil {
		return nil, err
	}
	return k, nil
}

// PassphraseKey derives the seal key of a passphrase seal and checks it
// against the header's key check: a wrong passphrase gives an error
// wrapping ErrSealKey. It costs one Argon2id derivation.
func (a SealInfo) PassphraseKey(passphrase []byte) (*SealKey, error) {
	if a.Kind != SealPassphrase {
		return nil, fmt.Errorf("keystore: the root is sealed with %s, not a passphrase", a.Describe())
	}
	if err := checkArgon2(a.Argon2); err != nil {
		return nil, err
	}
	k := &SealKey{info: a.seal()}
	derivePassphrase(&k.key, passphrase, a)
	if err := k.verify(); err != nil {
		k.Wipe()
		return nil, fmt.Errorf("%w: the passphrase is not the one this root was sealed with", ErrSealKey)
	}
	return k, nil
}

// ShamirKey checks the secret recombined from shares against the header's
// key check: wrong shares give an error wrapping ErrSealKey.
func (a SealInfo) ShamirKey(secret []byte) (*SealKey, error) {
	if a.Kind != SealShamir {
		return nil, fmt.Errorf("keystore: the root is sealed with a %s, not Shamir shares", a.Describe())
	}
	if len(secret) != sealKeySize {
		return nil, fmt.Errorf("%w: the shares recombine to %d bytes, want %d", ErrSealKey, len(secret), sealKeySize)
	}
	k := &SealKey{info: a.seal()}
	copy(k.key[:], secret)
	if err := k.verify(); err != nil {
		k.Wipe()
		return nil, fmt.Errorf("%w: the shares do not recombine to this root's seal key (one of them is wrong or from another split)", ErrSealKey)
	}
	return k, nil
}

// seal returns a copy of the seal part of the header (no root id).
func (a SealInfo) seal() SealInfo {
	a.RootID = ""
	a.Salt = bytes.Clone(a.Salt)
	a.KeyCheck = bytes.Clone(a.KeyCheck)
	return a
}

func derivePassphrase(dst *[sealKeySize]byte, passphrase []byte, a SealInfo) {
	// Argon2id (RFC 9106): memory-hard, so each guess costs the attacker
	// the configured time and memory; the random salt stops precomputed
	// tables and makes the same passphrase give different keys in
	// different data folders.
	k := argon2.IDKey(passphrase, a.Salt, a.Argon2.Time, a.Argon2.MemoryKiB, a.Argon2.Threads, sealKeySize)
	copy(dst[:], k)
	clear(k)
}

// subkey derives a 32-byte key for one purpose from the seal key.
func (k *SealKey) subkey(info string) ([]byte, error) {
	// HKDF with distinct info strings: the encryption key and the key
	// check are independent, so publishing the check reveals nothing
	// about the encryption key.
	return hkdf.Key(sha256.New, k.key[:], nil, info, sealKeySize)
}

func (k *SealKey) check() ([]byte, error) {
	c, err := k.subkey(sealCheckInfo)
	if err != nil {
		return nil, fmt.Errorf("keystore: deriving the seal key check: %w", err)
	}
	return c[:sealCheckSize], nil
}

func (k *SealKey) setCheck() error {
	c, err := k.check()
	if err != nil {
		return err
	}
	k.info.KeyCheck = c
	return nil
}

// verify compares the key's check value with the one in its info, in
// constant time.
func (k *SealKey) verify() error {
	c, err := k.check()
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(c, k.info.KeyCheck) != 1 {
		return ErrSealKey
	}
	return nil
}

func (k *SealKey) aead() (cipher.AEAD, error) {
	ek, err := k.subkey(sealEncInfo)
	if err != nil {
		return nil, err
	}
	defer clear(ek)
	block, err := aes.NewCipher(ek)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func checkArgon2(p Argon2Params) error {
	if p.Time < 1 || p.Time > maxArgon2Time || p.Threads < 1 || p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxArgon2Memory {
		return fmt.Errorf("keystore: Argon2id parameters time=%d memory=%d KiB threads=%d are out of range", p.Time, p.MemoryKiB, p.Threads)
	}
	return nil
}

func checkShamir(a SealInfo) error {
	if a.Threshold < 2 || a.Threshold > a.Shares || a.Shares > 255 {
		return fmt.Errorf("keystore: Shamir seal of %d shares with threshold %d: want 2 <= threshold <= shares <= 255", a.Shares, a.Threshold)
	}
	return nil
}

// sealedFile is the JSON form of a sealed root key file.
type sealedFile struct {
	Format     string        `json:"format"`
	Version    int           `json:"version"`
	RootKeyID  string        `json:"root_key_id"`
	Seal       sealedSection `json:"seal"`
	Nonce      []byte        `json:"nonce"`
	Ciphertext []byte        `json:"ciphertext"`
}

type sealedSection struct {
	Kind     SealKind      `json:"kind"`
	Argon2id *sealedArgon2 `json:"argon2id,omitempty"`
	Shamir   *sealedShamir `json:"shamir,omitempty"`
	KeyCheck []byte        `json:"key_check"`
}

type sealedArgon2 struct {
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
	Salt      []byte `json:"salt"`
}

type sealedShamir struct {
	Shares    int    `json:"shares"`
	Threshold int    `json:"threshold"`
	Set       string `json:"set"`
}

// headerAAD is the AAD of a sealed root: the label, then every header
// field in a fixed layout (lengths fixed or prefixed, so unambiguous):
//
//	label || version u8 || root key id (8) || kind u8 (1 passphrase, 2 shamir)
//	passphrase: time u32 || memory KiB u32 || threads u8 || salt length u8 || salt
//	shamir:     shares u8 || threshold u8 || set (8)
//	|| key check (16)
func headerAAD(info SealInfo, rootID [rootIDSize]byte) []byte {
	b := append([]byte(sealedAADLabel), sealedVersion)
	b = append(b, rootID[:]...)
	switch info.Kind {
	case SealPassphrase:
		b = append(b, 1)
		b = binary.BigEndian.AppendUint32(b, info.Argon2.Time)
		b = binary.BigEndian.AppendUint32(b, info.Argon2.MemoryKiB)
		b = append(b, info.Argon2.Threads, byte(len(info.Salt)))
		b = append(b, info.Salt...)
	case SealShamir:
		b = append(b, 2, byte(info.Shares), byte(info.Threshold))
		b = append(b, info.ShareSet[:]...)
	}
	return append(b, info.KeyCheck...)
}

// sealRoot returns the sealed file content for root under k.
func sealRoot(root []byte, k *SealKey) ([]byte, error) {
	aead, err := k.aead()
	if err != nil {
		return nil, fmt.Errorf("keystore: sealing: %w", err)
	}
	// A random 96-bit nonce: the encryption key is fixed per seal key,
	// which seals one root key per root rotation, a handful over its
	// life, so a nonce collision is out of reach.
	nonce := make([]byte, sealNonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("keystore: reading random nonce: %w", err)
	}
	id := rootKeyID(root)
	info := k.info
	f := sealedFile{
		Format:     sealedFormat,
		Version:    sealedVersion,
		RootKeyID:  hex.EncodeToString(id[:]),
		Seal:       sealedSection{Kind: info.Kind, KeyCheck: info.KeyCheck},
		Nonce:      nonce,
		Ciphertext: aead.Seal(nil, nonce, root, headerAAD(info, id)),
	}
	switch info.Kind {
	case SealPassphrase:
		f.Seal.Argon2id = &sealedArgon2{Time: info.Argon2.Time, MemoryKiB: info.Argon2.MemoryKiB, Threads: info.Argon2.Threads, Salt: info.Salt}
	case SealShamir:
		f.Seal.Shamir = &sealedShamir{Shares: info.Shares, Threshold: info.Threshold, Set: hex.EncodeToString(info.ShareSet[:])}
	default:
		return nil, fmt.Errorf("keystore: unknown seal kind %q", info.Kind)
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// readSealed reads and validates a sealed root key file (everything but
// the ciphertext's authenticity).
func readSealed(path string) (sealedFile, SealInfo, [rootIDSize]byte, error) {
	var f sealedFile
	var info SealInfo
	var id [rootIDSize]byte
	file, _, err := durable.OpenPrivate(path, "sealed root key file")
	if err != nil {
		return f, info, id, fmt.Errorf("keystore: %w", err)
	}
	defer file.Close()
	b, err := io.ReadAll(io.LimitReader(file, maxSealedFile+1))
	if err != nil {
		return f, info, id, fmt.Errorf("keystore: reading sealed root key file: %w", err)
	}
	if len(b) > maxSealedFile {
		return f, info, id, fmt.Errorf("keystore: sealed root key file %s is larger than %d bytes", path, maxSealedFile)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("keystore: sealed root key file %s: "+format, append([]any{path}, args...)...)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return f, info, id, bad("%v", err)
	}
	if dec.More() {
		return f, info, id, bad("data after the JSON object")
	}
	if f.Format != sealedFormat {
		return f, info, id, bad("format is %q, want %q", f.Format, sealedFormat)
	}
	if f.Version != sealedVersion {
		return f, info, id, bad("unknown version %d", f.Version)
	}
	if n, err := hex.Decode(id[:], []byte(f.RootKeyID)); err != nil || n != rootIDSize || len(f.RootKeyID) != 2*rootIDSize || strings.ToLower(f.RootKeyID) != f.RootKeyID {
		return f, info, id, bad("root_key_id must be %d lowercase hex digits", 2*rootIDSize)
	}
	info = SealInfo{Kind: f.Seal.Kind, KeyCheck: f.Seal.KeyCheck, RootID: f.RootKeyID}
	switch f.Seal.Kind {
	case SealPassphrase:
		a := f.Seal.Argon2id
		if a == nil || f.Seal.Shamir != nil {
			return f, info, id, bad("a passphrase seal needs argon2id and no shamir section")
		}
		info.Argon2 = Argon2Params{Time: a.Time, MemoryKiB: a.MemoryKiB, Threads: a.Threads}
		info.Salt = a.Salt
		if err := checkArgon2(info.Argon2); err != nil {
			return f, info, id, bad("%v", err)
		}
		if len(a.Salt) < sealSaltMin || len(a.Salt) > sealSaltMax {
			return f, info, id, bad("salt is %d bytes, want %d to %d", len(a.Salt), sealSaltMin, sealSaltMax)
		}
	case SealShamir:
		s := f.Seal.Shamir
		if s == nil || f.Seal.Argon2id != nil {
			return f, info, id, bad("a shamir seal needs a shamir section and no argon2id")
		}
		info.Shares, info.Threshold = s.Shares, s.Threshold
		if err := checkShamir(info); err != nil {
			return f, info, id, bad("%v", err)
		}
		if n, err := hex.Decode(info.ShareSet[:], []byte(s.Set)); err != nil || n != sealSetSize || len(s.Set) != 2*sealSetSize {
			return f, info, id, bad("shamir set must be %d hex digits", 2*sealSetSize)
		}
	default:
		return f, info, id, bad("unknown seal kind %q", f.Seal.Kind)
	}
	if len(f.Seal.KeyCheck) != sealCheckSize {
		return f, info, id, bad("key_check is %d bytes, want %d", len(f.Seal.KeyCheck), sealCheckSize)
	}
	if len(f.Nonce) != sealNonceSize {
		return f, info, id, bad("nonce is %d bytes, want %d", len(f.Nonce), sealNonceSize)
	}
	if len(f.Ciphertext) != rootKeySize+16 {
		return f, info, id, bad("ciphertext is %d bytes, want %d", len(f.Ciphertext), rootKeySize+16)
	}
	return f, info, id, nil
}

// ReadSealInfo reads the public header of a sealed root key file: what
// unsealing it needs. It checks the file's permissions and syntax, not its
// authenticity (only the seal key can).
func ReadSealInfo(path string) (SealInfo, error) {
	_, info, _, err := readSealed(path)
	return info, err
}

// IsSealedPath reports whether path names a sealed root key file.
func IsSealedPath(path string) bool { return strings.HasSuffix(path, SealedSuffix) }

// OpenSealedFile opens a sealed root key file with k. It fails with an
// error wrapping ErrSealKey when the file is sealed under another seal key,
// and with a plain error when the file fails authentication (altered or
// damaged) or holds another root key than its header names.
func OpenSealedFile(path string, k *SealKey) (*FileKeystore, error) {
	f, info, id, err := readSealed(path)
	if err != nil {
		return nil, err
	}
	if !info.sameSeal(k.info) {
		return nil, fmt.Errorf("%w: sealed root key file %s is sealed with %s, not with the given seal key (%s)", ErrSealKey, path, info.Describe(), k.info.Describe())
	}
	aead, err := k.aead()
	if err != nil {
		return nil, fmt.Errorf("keystore: unsealing: %w", err)
	}
	root, err := aead.Open(nil, f.Nonce, f.Ciphertext, headerAAD(info, id))
	if err != nil {
		return nil, fmt.Errorf("keystore: sealed root key file %s fails authentication: it was altered or damaged (the seal key is right)", path)
	}
	defer clear(root)
	ks := newFileKeystore(root)
	// Defence in depth: the id is in the AAD, so this holds whenever the
	// tag does.
	if ks.id != id {
		return nil, fmt.Errorf("keystore: sealed root key file %s holds root key %s, not %s as its header says", path, ks.idHex, f.RootKeyID)
	}
	return ks, nil
}

// CreateSealedFile creates a new random root key sealed under k at path
// (mode 0600, fsynced, never replacing an existing file: the error then
// wraps fs.ErrExist) and returns its keystore.
func CreateSealedFile(path string, k *SealKey) (*FileKeystore, error) {
	root := make([]byte, rootKeySize)
	defer clear(root)
	if _, err := rand.Read(root); err != nil {
		return nil, fmt.Errorf("keystore: generating root key: %w", err)
	}
	return writeSealed(path, root, k)
}

// SealRootKeyFile seals the existing plaintext root key file plainPath
// under k into sealedPath (created like CreateSealedFile), and checks the
// result opens to the same root key. It leaves plainPath in place: the
// caller removes it once it is satisfied.
func SealRootKeyFile(plainPath, sealedPath string, k *SealKey) (*FileKeystore, error) {
	root, err := readRootKey(plainPath)
	if err != nil {
		return nil, err
	}
	defer clear(root)
	return writeSealed(sealedPath, root, k)
}

func writeSealed(path string, root []byte, k *SealKey) (*FileKeystore, error) {
	data, err := sealRoot(root, k)
	if err != nil {
		return nil, err
	}
	if err := durable.CreateExclusive(path, data, 0o600); err != nil {
		return nil, fmt.Errorf("keystore: creating sealed root key file: %w", err)
	}
	// Read it back: a root sealed wrongly would be found only at the next
	// start, too late.
	ks, err := OpenSealedFile(path, k)
	if err != nil {
		return nil, fmt.Errorf("keystore: checking the new sealed root key file: %w", err)
	}
	if subtle.ConstantTimeCompare(ks.root[:], root) != 1 {
		return nil, errors.New("keystore: the new sealed root key file does not hold the root key")
	}
	return ks, nil
}
