package keystore

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func newTestKeystore(t *testing.T) (*FileKeystore, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "root.key")
	ks, err := OpenFile(path)
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	return ks, path
}

func skipOnWindows(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits on Windows")
	}
}

func TestOpenFileCreatesAndReuses(t *testing.T) {
	ks, path := newTestKeystore(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("new root key file has mode %04o, want 0600", fi.Mode().Perm())
	}
	if fi.Size() != rootKeySize {
		t.Errorf("new root key file is %d bytes, want %d", fi.Size(), rootKeySize)
	}
	if id := ks.ID(); len(id) != 16 || strings.Trim(id, "0123456789abcdef") != "" {
		t.Errorf("ID() = %q, want 16 lowercase hex characters", id)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil || len(entries) != 1 {
		t.Errorf("directory holds %v (%v), want only the root key file", entries, err)
	}

	wrapped, err := ks.Wrap(context.Background(), []byte("secret"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := OpenFile(path)
	if err != nil {
		t.Fatalf("reopening: %v", err)
	}
	if again.ID() != ks.ID() {
		t.Fatalf("reopened keystore has root key %s, want %s", again.ID(), ks.ID())
	}
	got, err := again.Unwrap(context.Background(), wrapped, []byte("aad"))
	if err != nil || string(got) != "secret" {
		t.Fatalf("Unwrap after reopening = %q, %v", got, err)
	}
}

// Concurrent first starts must agree on one root key.
func TestOpenFileConcurrentCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "root.key")
	ids := make([]string, 16)
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			ks, err := OpenFile(path)
			if err == nil {
				ids[i] = ks.ID()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i := range ids {
		if errs[i] != nil {
			t.Fatalf("OpenFile %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("concurrent OpenFile calls got root keys %s and %s", ids[0], ids[i])
		}
	}
}

func TestWrapRoundTrip(t *testing.T) {
	ks, _ := newTestKeystore(t)
	ctx := context.Background()
	for _, size := range []int{0, 1, 32, 1000} {
		for _, aad := range [][]byte{nil, []byte("arn:aws:kms:us-east-1:111122223333:key/x material 0")} {
			t.Run(fmt.Sprintf("%d/%d", size, len(aad)), func(t *testing.T) {
				plaintext := bytes.Repeat([]byte{0xa5}, size)
				wrapped, err := ks.Wrap(ctx, plaintext, aad)
				if err != nil {
					t.Fatal(err)
				}
				if len(wrapped) != size+wrapOverhead {
					t.Fatalf("len(wrapped) = %d, want %d", len(wrapped), size+wrapOverhead)
				}
				if wrapped[0] != wrapVersion || hex.EncodeToString(wrapped[1:9]) != ks.ID() {
					t.Fatalf("wrapped starts %x, want version 1 and root id %s", wrapped[:9], ks.ID())
				}
				if size >= 8 && bytes.Contains(wrapped, plaintext) { // shorter ones can occur by chance
					t.Fatal("wrapped output contains the plaintext")
				}
				got, err := ks.Unwrap(ctx, wrapped, aad)
				if err != nil || !bytes.Equal(got, plaintext) {
					t.Fatalf("Unwrap = %x, %v; want %x", got, err, plaintext)
				}
			})
		}
	}
}

func TestWrapFreshNonce(t *testing.T) {
	ks, _ := newTestKeystore(t)
	a, _ := ks.Wrap(context.Background(), []byte("same"), nil)
	b, _ := ks.Wrap(context.Background(), []byte("same"), nil)
	if bytes.Equal(a[wrapNonceOff:wrapHeaderLen], b[wrapNonceOff:wrapHeaderLen]) {
		t.Fatal("two wraps used the same nonce")
	}
}

func TestUnwrapWrongAAD(t *testing.T) {
	ks, _ := newTestKeystore(t)
	ctx := context.Background()
	wrapped, err := ks.Wrap(ctx, []byte("secret"), []byte("key/1 material/a"))
	if err != nil {
		t.Fatal(err)
	}
	for _, aad := range []string{"", "key/1 material/b", "key/1 material/a ", "key/1 material/", "KEY/1 material/a"} {
		if _, err := ks.Unwrap(ctx, wrapped, []byte(aad)); !errors.Is(err, ErrUnwrap) {
			t.Errorf("Unwrap with aad %q = %v, want ErrUnwrap", aad, err)
		}
	}
}

func TestUnwrapEveryBitFlipFails(t *testing.T) {
	ks, _ := newTestKeystore(t)
	ctx := context.Background()
	wrapped, err := ks.Wrap(ctx, []byte("hello"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range len(wrapped) * 8 {
		b := bytes.Clone(wrapped)
		b[i/8] ^= 1 << (i % 8)
		if pt, err := ks.Unwrap(ctx, b, []byte("aad")); !errors.Is(err, ErrUnwrap) || pt != nil {
			t.Fatalf("flipping bit %d: Unwrap = %q, %v; want ErrUnwrap", i, pt, err)
		}
	}
}

func TestUnwrapTruncatedOrExtended(t *testing.T) {
	ks, _ := newTestKeystore(t)
	ctx := context.Background()
	wrapped, err := ks.Wrap(ctx, []byte("hello"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(wrapped) {
		if _, err := ks.Unwrap(ctx, wrapped[:n], nil); !errors.Is(err, ErrUnwrap) {
			t.Fatalf("truncated to %d bytes: Unwrap = %v, want ErrUnwrap", n, err)
		}
	}
	if _, err := ks.Unwrap(ctx, append(bytes.Clone(wrapped), 0), nil); !errors.Is(err, ErrUnwrap) {
		t.Fatalf("extended: Unwrap = %v, want ErrUnwrap", err)
	}
}

func TestUnwrapOtherRootKey(t *testing.T) {
	a, _ := newTestKeystore(t)
	b, _ := newTestKeystore(t)
	ctx := context.Background()
	wrapped, err := a.Wrap(ctx, []byte("secret"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Unwrap(ctx, wrapped, nil)
	if !errors.Is(err, ErrUnwrap) || !strings.Contains(err.Error(), a.ID()) || !strings.Contains(err.Error(), b.ID()) {
		t.Fatalf("Unwrap under another root = %v; want ErrUnwrap naming both root ids", err)
	}
	// Even with the id rewritten, authentication fails: the id is in the AAD.
	copy(wrapped[wrapIDOffset:wrapNonceOff], b.id[:])
	if _, err := b.Unwrap(ctx, wrapped, nil); !errors.Is(err, ErrUnwrap) {
		t.Fatalf("Unwrap with a forged root id = %v, want ErrUnwrap", err)
	}
}

func TestCanceledContext(t *testing.T) {
	ks, _ := newTestKeystore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ks.Wrap(ctx, []byte("x"), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Wrap with a canceled context = %v", err)
	}
	if _, err := ks.Unwrap(ctx, make([]byte, 64), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Unwrap with a canceled context = %v", err)
	}
}

// TestKnownAnswer pins the wrap format: a root key file with known bytes,
// the id and a wrap built by hand from the format description in file.go
// with crypto primitives directly.
func TestKnownAnswer(t *testing.T) {
	root, _ := hex.DecodeString("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	path := filepath.Join(t.TempDir(), "root.key")
	if err := os.WriteFile(path, root, 0o600); err != nil {
		t.Fatal(err)
	}
	ks, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, root)
	mac.Write([]byte("kmsd root key id"))
	id := mac.Sum(nil)[:8]
	if ks.ID() != hex.EncodeToString(id) {
		t.Fatalf("ID() = %s, want %x", ks.ID(), id)
	}

	nonce := bytes.Repeat([]byte{0x42}, 12)
	aad := []byte("caller aad")
	block, _ := aes.NewCipher(root)
	gcm, _ := cipher.NewGCM(block)
	fullAAD := append(append(append([]byte("kmsd keystore wrap v1"), 0x01), id...), aad...)
	wrapped := gcm.Seal(append(append([]byte{0x01}, id...), nonce...), nonce, []byte("plaintext"), fullAAD)
	got, err := ks.Unwrap(context.Background(), wrapped, aad)
	if err != nil || string(got) != "plaintext" {
		t.Fatalf("Unwrap of a hand-built wrap = %q, %v", got, err)
	}
}

func TestOpenFileRefusesPermissions(t *testing.T) {
	skipOnWindows(t)
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o602, 0o620, 0o666, 0o777} {
		path := filepath.Join(t.TempDir(), "root.key")
		if err := os.WriteFile(path, bytes.Repeat([]byte{1}, rootKeySize), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := OpenFile(path)
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: OpenFile = %v, want an error saying chmod 600", mode, err)
		}
	}
	// Owner-only modes other than 0600 are fine.
	path := filepath.Join(t.TempDir(), "root.key")
	if err := os.WriteFile(path, bytes.Repeat([]byte{1}, rootKeySize), 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFile(path); err != nil {
		t.Errorf("mode 0400: %v", err)
	}
}

func TestOpenFileRefusesBadFiles(t *testing.T) {
	for _, size := range []int{0, 1, 31, 33, 64} {
		path := filepath.Join(t.TempDir(), "root.key")
		if err := os.WriteFile(path, bytes.Repeat([]byte{1}, size), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenFile(path); err == nil {
			t.Errorf("OpenFile accepted a %d-byte file", size)
		}
	}
	zero := filepath.Join(t.TempDir(), "root.key")
	if err := os.WriteFile(zero, make([]byte, rootKeySize), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFile(zero); err == nil {
		t.Error("OpenFile accepted an all-zero key")
	}
	dir := t.TempDir()
	if _, err := OpenFile(dir); err == nil {
		t.Error("OpenFile accepted a directory")
	}
	if _, err := OpenFile(filepath.Join(t.TempDir(), "missing", "root.key")); err == nil {
		t.Error("OpenFile succeeded in a missing directory")
	}
}

func TestFormatHidesRootKey(t *testing.T) {
	ks, _ := newTestKeystore(t)
	secretHex := hex.EncodeToString(ks.root[:])
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%d", "%q"} {
		for _, arg := range []any{ks, *ks} {
			out := fmt.Sprintf(verb, arg)
			if strings.Contains(strings.ToLower(out), secretHex) || out != ks.String() {
				t.Errorf("fmt %s of %T = %s, want %s", verb, arg, out, ks.String())
			}
		}
	}
}
