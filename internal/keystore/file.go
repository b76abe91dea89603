package keystore

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/kmsd/kmsd/internal/durable"
)

// Wrapped output of FileKeystore, format version 1:
//
//	offset  size  field
//	     0     1  version, 0x01
//	     1     8  root key id (ID() in binary)
//	     9    12  random GCM nonce
//	    21     n  AES-256-GCM ciphertext, n = len(plaintext)
//	  21+n    16  AES-256-GCM tag
//
// The GCM key is the root key itself; the AAD is
// "kmsd keystore wrap v1" || 0x01 || root key id || caller's aad.
// Wrapped material lives in the store for as long as its key exists, so
// this layout, like the ciphertext blob, must stay readable forever.
const (
	rootKeySize = 32 // AES-256
	rootIDSize  = 8

	wrapVersion   = 0x01
	wrapNonceSize = 12
	wrapTagSize   = 16
	wrapIDOffset  = 1
	wrapNonceOff  = wrapIDOffset + rootIDSize    // 9
	wrapHeaderLen = wrapNonceOff + wrapNonceSize // 21
	wrapOverhead  = wrapHeaderLen + wrapTagSize  // 37

	// wrapLabel starts the AAD of every wrap. It is a domain separator:
	// nothing else kmsd authenticates under the root key can be mistaken
	// for a wrapped secret. Part of the format; never change it.
	wrapLabel = "kmsd keystore wrap v1"

	// rootIDLabel is the HMAC message that derives the public root key id.
	rootIDLabel = "kmsd root key id"

	// maxWrapPlaintext is AES-GCM's per-message limit; crypto/cipher panics
	// above it. Wrapped secrets are tiny, so this only guards against bugs.
	maxWrapPlaintext = 1<<36 - 32
)

// FileKeystore is a Keystore whose 256-bit root key lives in a local file.
// It suits development and single machines: anyone who can read the file
// can unwrap every secret in the store, so protect it at least as well as,
// and apart from, the store and its backups. Its methods are safe for
// concurrent use.
//
// A FileKeystore never prints its root key: every fmt verb shows only the
// root key id.
type FileKeystore struct {
	root  [rootKeySize]byte // the only copy kept; never leaves this struct
	id    [rootIDSize]byte
	idHex string
}

var _ Keystore = (*FileKeystore)(nil)

// OpenFile loads the root key from path, creating it when it does not
// exist: 32 bytes from crypto/rand, mode 0600, written and fsynced under a
// temporary name created with O_EXCL, then hard-linked to path (which fails
// rather than replace an existing file, so concurrent starts agree on one
// key and a crash never leaves a partial key file), and the directory
// fsynced. The directory must exist.
//
// It refuses a file that is not a regular file, is not exactly 32 bytes, is
// all zeros, or is readable or writable by group or others.
func OpenFile(path string) (*FileKeystore, error) {
	root, err := readRootKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		root, err = createRootKey(path)
		if errors.Is(err, fs.ErrExist) {
			// Another process created it between our read and our link;
			// use the key it wrote.
			root, err = readRootKey(path)
		}
	}
	if err != nil {
		return nil, err
	}
	// root is a temporary copy: the struct keeps the only one.
	defer clear(root)
	return newFileKeystore(root), nil
}

// newFileKeystore returns a FileKeystore holding a copy of root (32
// bytes), which the caller clears.
func newFileKeystore(root []byte) *FileKeystore {
	f := &FileKeystore{}
	copy(f.root[:], root)
	f.id = rootKeyID(root)
	f.idHex = hex.EncodeToString(f.id[:])
	return f
}

// rootKeyID derives the public id of a root key.
func rootKeyID(root []byte) [rootIDSize]byte {
	mac := hmac.New(sha256.New, root)
	mac.Write([]byte(rootIDLabel))
	var id [rootIDSize]byte
	copy(id[:], mac.Sum(nil))
	return id
}

// ID returns a short identifier of the root key: the first 8 bytes of
// HMAC-SHA256(root key, "kmsd root key id") as 16 lowercase hex characters.
// It reveals nothing about the key and is safe to log; wrapped output
// carries it so that unwrapping under the wrong root fails with a clear
// message, and a future root rotation knows which root wrapped what.
func (f *FileKeystore) ID() string { return f.idHex }

// String returns a description that names only the root key id.
//
// String and Format have value receivers so that they also cover a
// FileKeystore value (not only a pointer) passed to fmt or a logger.
func (f FileKeystore) String() string { return "FileKeystore(root key " + f.idHex + ")" }

// Format makes every fmt verb (%v, %+v, %#v, %x, %d, …) print String():
// without it, fmt would print the unexported root key field.
func (f FileKeystore) Format(s fmt.State, _ rune) { io.WriteString(s, f.String()) }

// Wrap encrypts plaintext under the root key, binding aad. See the format
// above. The output is len(plaintext)+37 bytes.
func (f *FileKeystore) Wrap(ctx context.Context, plaintext, aad []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("keystore: wrap: %w", err)
	}
	if uint64(len(plaintext)) > maxWrapPlaintext {
		return nil, fmt.Errorf("keystore: wrap: %d bytes is too large", len(plaintext))
	}
	aead, err := f.newAEAD()
	if err != nil {
		return nil, fmt.Errorf("keystore: wrap: %w", err)
	}
	// Random 96-bit nonces under one fixed key are safe only while the
	// number of messages stays far below 2^32 (NIST SP 800-38D). The root
	// key wraps one secret per key material, access key or similar: a few
	// thousand or million over its life, where a collision has probability
	// below 2^-50. Never use this to encrypt per-request data.
	var nonce [wrapNonceSize]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("keystore: wrap: reading random nonce: %w", err)
	}
	out := make([]byte, wrapHeaderLen, wrapOverhead+len(plaintext))
	out[0] = wrapVersion
	copy(out[wrapIDOffset:wrapNonceOff], f.id[:])
	copy(out[wrapNonceOff:wrapHeaderLen], nonce[:])
	return aead.Seal(out, nonce[:], plaintext, f.additionalData(aad)), nil
}

// Unwrap authenticates and decrypts the output of Wrap. It fails with an
// error wrapping ErrUnwrap when wrapped is malformed, was wrapped under
// another root key (the message names both ids), or fails authentication
// (altered, or other aad). It never panics.
func (f *FileKeystore) Unwrap(ctx context.Context, wrapped, aad []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("keystore: unwrap: %w", err)
	}
	if len(wrapped) < wrapOverhead {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrUnwrap, len(wrapped))
	}
	if wrapped[0] != wrapVersion {
		return nil, fmt.Errorf("%w: unknown format version %d", ErrUnwrap, wrapped[0])
	}
	// The root key id is public (it is in the clear in every wrap), so a
	// plain comparison leaks nothing; the GCM tag check below is what
	// authenticates, in constant time.
	if id := wrapped[wrapIDOffset:wrapNonceOff]; !bytes.Equal(id, f.id[:]) {
		return nil, fmt.Errorf("%w: wrapped under root key %x, but this keystore's root key is %s", ErrUnwrap, id, f.idHex)
	}
	aead, err := f.newAEAD()
	if err != nil {
		return nil, fmt.Errorf("keystore: unwrap: %w", err)
	}
	pt, err := aead.Open(nil, wrapped[wrapNonceOff:wrapHeaderLen], wrapped[wrapHeaderLen:], f.additionalData(aad))
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed (altered data or wrong aad)", ErrUnwrap)
	}
	return pt, nil
}

// newAEAD returns AES-256-GCM under the root key. It is built per call,
// which costs well under a microsecond, so that correctness does not rest
// on crypto/cipher's AEADs being safe for concurrent use (which Go does not
// document).
func (f *FileKeystore) newAEAD() (cipher.AEAD, error) {
	block, err := aes.NewCipher(f.root[:])
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// additionalData returns wrapLabel || version || root key id || aad. Every
// part before the caller's aad has a fixed length, so the split is
// unambiguous and callers are free to choose their own aad encoding.
func (f *FileKeystore) additionalData(aad []byte) []byte {
	out := make([]byte, 0, len(wrapLabel)+1+rootIDSize+len(aad))
	out = append(out, wrapLabel...)
	out = append(out, wrapVersion)
	out = append(out, f.id[:]...)
	return append(out, aad...)
}

// readRootKey reads and checks an existing root key file. The returned
// slice must be cleared by the caller.
func readRootKey(path string) ([]byte, error) {
	file, fi, err := durable.OpenPrivate(path, "root key file")
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	defer file.Close()
	if fi.Size() != rootKeySize {
		return nil, fmt.Errorf("keystore: root key file %s is %d bytes, want exactly %d", path, fi.Size(), rootKeySize)
	}
	// Read one byte more than expected so that a file that grew after the
	// Stat is noticed.
	buf := make([]byte, rootKeySize+1)
	n, err := io.ReadFull(file, buf)
	if n != rootKeySize || err != io.ErrUnexpectedEOF {
		clear(buf)
		if err == nil || err == io.ErrUnexpectedEOF || err == io.EOF {
			return nil, fmt.Errorf("keystore: root key file %s changed size while being read", path)
		}
		return nil, fmt.Errorf("keystore: reading root key file: %w", err)
	}
	key := buf[:rootKeySize]
	// An all-zero key is not random: most likely a preallocated or damaged
	// file. Refusing it is cheaper than discovering it later.
	if bytes.Equal(key, make([]byte, rootKeySize)) {
		return nil, fmt.Errorf("keystore: root key file %s is all zeros; refusing it", path)
	}
	return key, nil
}

// createRootKey creates a new root key file at path and returns the key
// (which the caller must clear). It returns an error wrapping fs.ErrExist
// when path already exists.
func createRootKey(path string) (key []byte, err error) {
	key = make([]byte, rootKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("keystore: generating root key: %w", err)
	}
	defer func() {
		if err != nil {
			clear(key)
			key = nil
		}
	}()

	if err := durable.CreateExclusive(path, key, 0o600); err != nil {
		return nil, fmt.Errorf("keystore: creating root key file: %w", err)
	}
	return key, nil
}
