package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/kmsd/kmsd/internal/durable"
)

// Files that kmsd keeps in its data folder for the audit log.
const (
	DirName        = "audit"             // the log's directory
	SigningKeyFile = "audit-signing.key" // the signing key, wrapped by the root of trust
	PublicKeyFile  = "audit-signing.pub" // its public key, PEM; all that verification needs
)

// Wrapper wraps and unwraps the signing key's seed: the root of trust
// (a keystore.Keystore), so that only it can sign digests. aad binds the
// wrapped seed to its use.
type Wrapper interface {
	Wrap(ctx context.Context, plaintext, aad []byte) ([]byte, error)
	Unwrap(ctx context.Context, wrapped, aad []byte) ([]byte, error)
}

// Signer signs digests. The log calls it from one goroutine at a time.
type Signer interface {
	Sign(msg []byte) ([]byte, error)
	PublicKey() ed25519.PublicKey
}

// KeyID names a signing public key in digests: the first 8 bytes of the
// SHA-256 of the 32-byte key, in lowercase hex.
func KeyID(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:8])
}

// NewSigner returns a Signer for an Ed25519 private key held in memory.
func NewSigner(priv ed25519.PrivateKey) Signer {
	return &keySigner{priv: priv, pub: priv.Public().(ed25519.PublicKey)}
}

type keySigner struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
}

func (s *keySigner) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.priv, msg), nil }
func (s *keySigner) PublicKey() ed25519.PublicKey    { return s.pub }

// String and Format print only the key id, never the private key.
func (s keySigner) String() string              { return "audit signer (key " + KeyID(s.pub) + ")" }
func (s keySigner) Format(st fmt.State, _ rune) { io.WriteString(st, s.String()) }

// The signing key file holds two lines:
//
//	kmsd audit signing key v1
//	<standard base64 of the keystore-wrapped 32-byte Ed25519 seed>
//
// The wrap's aad is signingKeyAAD.
const (
	signingKeyMagic = "kmsd audit signing key v1"
	signingKeyAAD   = "kmsd audit signing key v1"
)

// PublicKeyPath returns where the public key of the signing key at
// keyPath lives: the same name with ".pub" instead of ".key" (or with
// ".pub" added).
func PublicKeyPath(keyPath string) string {
	return strings.TrimSuffix(keyPath, ".key") + ".pub"
}

// LoadOrCreateSigningKey returns the log's signing key, kept at path wrapped
// by ks (so that only the root of trust can sign digests). The first call
// generates it, writes it (mode 0600, created under a temporary name and
// linked into place, so it is never replaced and never partial) and writes
// its public key beside it (PublicKeyPath, PEM "PUBLIC KEY", the form
// openssl reads). Later calls unwrap it and check that the public key file
// still matches, rewriting it if it is missing.
//
// It refuses to create a key while the public key file exists without its
// key: that public key verifies existing audit files, and overwriting it
// would make them unverifiable. Move it aside first.
func LoadOrCreateSigningKey(ctx context.Context, path string, ks Wrapper) (Signer, error) {
	priv, err := loadSigningKey(ctx, path, ks)
	if errors.Is(err, fs.ErrNotExist) {
		pubPath := PublicKeyPath(path)
		if _, serr := os.Stat(pubPath); serr == nil {
			return nil, fmt.Errorf("audit: %s exists but the signing key %s does not; it verifies the existing audit log, so move it aside (keep it) before kmsd creates a new signing key", pubPath, path)
		}
		err = createSigningKey(ctx, path, ks)
		if err == nil || errors.Is(err, fs.ErrExist) {
			// Read back what is now there: ours, or the key a concurrent
			// start linked first.
			priv, err = loadSigningKey(ctx, path, ks)
		}
	}
	if err != nil {
		return nil, err
	}
	s := NewSigner(priv)
	if err := ensurePublicKeyFile(PublicKeyPath(path), s.PublicKey()); err != nil {
		return nil, err
	}
	return s, nil
}

// LoadSigningKey is LoadOrCreateSigningKey for a log that exists: it
// never creates a signing key (an error wrapping fs.ErrNotExist when the
// key file is missing), since a new key would start another log. It
// rewrites a missing public key file.
func LoadSigningKey(ctx context.Context, path string, ks Wrapper) (Signer, error) {
	priv, err := loadSigningKey(ctx, path, ks)
	if err != nil {
		return nil, err
	}
	s := NewSigner(priv)
	if err := ensurePublicKeyFile(PublicKeyPath(path), s.PublicKey()); err != nil {
		return nil, err
	}
	return s, nil
}

// ReadWrappedSigningKey returns the keystore-wrapped seed held by the
// signing key file at path (an error wrapping fs.ErrNotExist when there is
// none). Root rotation reads it to learn which root wrapped it.
func ReadWrappedSigningKey(path string) ([]byte, error) {
	f, _, err := durable.OpenPrivate(path, "signing key")
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("audit: reading signing key: %w", err)
	}
	magic, enc, ok := strings.Cut(strings.TrimSuffix(string(b), "\n"), "\n")
	if !ok || magic != signingKeyMagic {
		return nil, fmt.Errorf("audit: %s is not a kmsd audit signing key", path)
	}
	wrapped, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("audit: signing key %s: %v", path, err)
	}
	return wrapped, nil
}

// RewrapSigningKey unwraps the signing key at path with ks and wraps it
// again with ks (a keystore.Ring wraps under its current root), replacing
// the file atomically. The key itself, and so its public key, stays the
// same.
func RewrapSigningKey(ctx context.Context, path string, ks Wrapper) error {
	wrapped, err := ReadWrappedSigningKey(path)
	if err != nil {
		return err
	}
	seed, err := ks.Unwrap(ctx, wrapped, []byte(signingKeyAAD))
	if err != nil {
		return fmt.Errorf("audit: unwrapping signing key %s: %w", path, err)
	}
	defer clear(seed)
	rewrapped, err := ks.Wrap(ctx, seed, []byte(signingKeyAAD))
	if err != nil {
		return fmt.Errorf("audit: wrapping signing key: %w", err)
	}
	content := signingKeyMagic + "\n" + base64.StdEncoding.EncodeToString(rewrapped) + "\n"
	err = durable.Replace(path, []byte(content), 0o600)
	if err != nil {
		return fmt.Errorf("audit: rewrapping signing key: %w", err)
	}
	return nil
}

func loadSigningKey(ctx context.Context, path string, ks Wrapper) (ed25519.PrivateKey, error) {
	wrapped, err := ReadWrappedSigningKey(path)
	if err != nil {
		return nil, err
	}
	seed, err := ks.Unwrap(ctx, wrapped, []byte(signingKeyAAD))
	if err != nil {
		return nil, fmt.Errorf("audit: unwrapping signing key %s: %w", path, err)
	}
	defer clear(seed)
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("audit: signing key %s holds %d bytes, want %d", path, len(seed), ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

func createSigningKey(ctx context.Context, path string, ks Wrapper) error {
	seed := make([]byte, ed25519.SeedSize)
	defer clear(seed)
	if _, err := rand.Read(seed); err != nil {
		return fmt.Errorf("audit: generating signing key: %w", err)
	}
	wrapped, err := ks.Wrap(ctx, seed, []byte(signingKeyAAD))
	if err != nil {
		return fmt.Errorf("audit: wrapping signing key: %w", err)
	}
	content := signingKeyMagic + "\n" + base64.StdEncoding.EncodeToString(wrapped) + "\n"
	if err := durable.CreateExclusive(path, []byte(content), 0o600); err != nil {
		return fmt.Errorf("audit: writing signing key: %w", err)
	}
	return nil
}

// ensurePublicKeyFile checks that the file at path holds pub, writing it
// when it does not exist.
func ensurePublicKeyFile(path string, pub ed25519.PublicKey) error {
	have, err := ReadPublicKey(path)
	if err == nil {
		if !have.Equal(pub) {
			return fmt.Errorf("audit: %s holds public key %s, but the signing key's is %s", path, KeyID(have), KeyID(pub))
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return fmt.Errorf("audit: encoding public key: %w", err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	err = durable.CreateExclusive(path, pemBytes, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return ensurePublicKeyFile(path, pub) // written concurrently: check it
	}
	if err != nil {
		return fmt.Errorf("audit: writing public key: %w", err)
	}
	return nil
}

// ReadPublicKey reads an Ed25519 public key from a PEM file ("PUBLIC KEY",
// PKIX), as LoadOrCreateSigningKey writes it.
func ReadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit: reading public key: %w", err)
	}
	block, rest := pem.Decode(b)
	if block == nil || block.Type != "PUBLIC KEY" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("audit: %s is not a PEM file holding one PUBLIC KEY", path)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("audit: public key %s: %w", path, err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("audit: public key %s is a %T, not Ed25519", path, k)
	}
	return pub, nil
}
