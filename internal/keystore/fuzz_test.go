package keystore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzUnwrap feeds arbitrary wrapped secrets and additional data to the
// file root's Unwrap: what the store hands it, which whoever can write the
// data folder controls. It must never panic, must fail only with ErrUnwrap,
// and must accept nothing but what Wrap made with the same additional data;
// Wrap then Unwrap gives back the plaintext.
func FuzzUnwrap(f *testing.F) {
	ks := newFileKeystore(bytes.Repeat([]byte{0x17}, rootKeySize))
	ctx := context.Background()
	seedPlaintext, seedAAD := []byte("key material"), []byte("arn:aws:kms:us-east-1:111122223333:key/k|m")
	seed, err := ks.Wrap(ctx, seedPlaintext, seedAAD)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed, seedAAD, seedPlaintext)
	f.Add(seed, []byte("arn:aws:kms:us-east-1:111122223333:key/k|n"), []byte{})
	f.Add(seed[:wrapOverhead], []byte{}, []byte{0})
	f.Add([]byte{wrapVersion + 1}, []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, wrapped, aad, plaintext []byte) {
		pt, err := ks.Unwrap(ctx, wrapped, aad)
		if err != nil {
			if !errors.Is(err, ErrUnwrap) || pt != nil {
				t.Fatalf("Unwrap: %v (plaintext %v)", err, pt != nil)
			}
		} else if !bytes.Equal(aad, seedAAD) || !bytes.Equal(pt, seedPlaintext) {
			// Only the seeds were wrapped under this root (by whichever
			// process made them, each with its own nonce): GCM lets no one
			// else make a wrap that authenticates.
			t.Fatalf("Unwrap accepted %x with aad %q", wrapped, aad)
		}

		w, err := ks.Wrap(ctx, plaintext, aad)
		if err != nil {
			t.Fatalf("Wrap: %v", err)
		}
		if got, err := ks.Unwrap(ctx, w, aad); err != nil || !bytes.Equal(got, plaintext) {
			t.Fatalf("Wrap then Unwrap: %x, %v", got, err)
		}
	})
}

// FuzzSealedFile feeds arbitrary content to the sealed root key file reader
// (a file in the data folder). It must never panic; a file it accepts must
// round trip (written back, it reads the same); and a Shamir-sealed file
// opens with the seal key derived from its header only if its header and
// ciphertext are as sealed. (Passphrase headers are not opened: their
// Argon2id parameters, up to 4 GiB, come from the file.)
func FuzzSealedFile(f *testing.F) {
	secret := bytes.Repeat([]byte{0x5e}, sealKeySize)
	set := [sealSetSize]byte{1, 2, 3, 4, 5, 6, 7, 8}
	sk, err := NewShamirSealKey(secret, 5, 3, set)
	if err != nil {
		f.Fatal(err)
	}
	pk, err := NewPassphraseSealKey([]byte("correct horse battery staple"), Argon2Params{Time: 1, MemoryKiB: 8, Threads: 1})
	if err != nil {
		f.Fatal(err)
	}
	// A fixed root key, so that every fuzzing process knows which root the
	// seeds (sealed by the first) hold.
	root := bytes.Repeat([]byte{0x42}, rootKeySize)
	sealedRoot := newFileKeystore(root).ID()
	for _, k := range []*SealKey{sk, pk} {
		content, err := sealRoot(root, k)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(content)
	}
	f.Add([]byte(`{"format":"kmsd sealed root key","version":1}`))
	f.Add([]byte(`{} {}`))
	f.Fuzz(func(t *testing.T, content []byte) {
		path := filepath.Join(t.TempDir(), "root.key"+SealedSuffix)
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		file, info, id, err := readSealed(path)
		if err != nil {
			return
		}
		again, err := json.Marshal(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, again, 0o600); err != nil {
			t.Fatal(err)
		}
		file2, info2, id2, err := readSealed(path)
		if err != nil || id2 != id || info2.Describe() != info.Describe() || !bytes.Equal(headerAAD(info, id), headerAAD(info2, id2)) ||
			!bytes.Equal(file2.Ciphertext, file.Ciphertext) || !bytes.Equal(file2.Nonce, file.Nonce) {
			t.Fatalf("accepted file does not round trip: %v\n%s\n%s", err, content, again)
		}

		if info.Kind != SealShamir {
			return
		}
		k, err := info.ShamirKey(secret)
		if err != nil {
			return
		}
		ks, err := OpenSealedFile(path, k)
		if err == nil && ks.ID() != sealedRoot {
			t.Fatalf("opened a root (%s) that was never sealed under this key", ks.ID())
		}
	})
}
