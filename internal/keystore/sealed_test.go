package keystore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// testArgon2 keeps the tests fast; kmsd itself always uses
// DefaultArgon2Params.
var testArgon2 = Argon2Params{Time: 1, MemoryKiB: 256, Threads: 1}

var testPassphrase = []byte("correct horse battery staple")

// sealKinds makes a fresh seal key of each kind, and the function that
// derives it again from the file's header, as unseal does.
func sealKinds(t *testing.T) map[string]struct {
	key    *SealKey
	unseal func(SealInfo) (*SealKey, error)
} {
	t.Helper()
	pk, err := NewPassphraseSealKey(testPassphrase, testArgon2)
	if err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	sk, err := NewShamirSealKey(secret, 5, 3, [8]byte{1, 2, 3, 4, 5, 6, 7, 8})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]struct {
		key    *SealKey
		unseal func(SealInfo) (*SealKey, error)
	}{
		"passphrase": {pk, func(i SealInfo) (*SealKey, error) { return i.PassphraseKey(testPassphrase) }},
		"shamir":     {sk, func(i SealInfo) (*SealKey, error) { return i.ShamirKey(secret) }},
	}
}

func TestSealedRoundTrip(t *testing.T) {
	ctx := context.Background()
	for name, c := range sealKinds(t) {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "root.key.sealed")
			ks, err := CreateSealedFile(path, c.key)
			if err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Stat(path); err != nil || (runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600) {
				t.Fatalf("sealed file: %v %v", fi.Mode(), err)
			}
			info, err := ReadSealInfo(path)
			if err != nil {
				t.Fatal(err)
			}
			if info.Kind != SealKind(name) || info.RootID != ks.ID() {
				t.Fatalf("header: %+v, want kind %s root %s", info, name, ks.ID())
			}
			key, err := c.unseal(info)
			if err != nil {
				t.Fatal(err)
			}
			ks2, err := OpenSealedFile(path, key)
			if err != nil {
				t.Fatal(err)
			}
			if ks2.ID() != ks.ID() {
				t.Fatalf("reopened root %s, want %s", ks2.ID(), ks.ID())
			}
			w, err := ks.Wrap(ctx, []byte("secret"), []byte("aad"))
			if err != nil {
				t.Fatal(err)
			}
			if p, err := ks2.Unwrap(ctx, w, []byte("aad")); err != nil || string(p) != "secret" {
				t.Fatalf("unwrap after reopening: %q %v", p, err)
			}
			// A second root sealed under the same key (a rotation)
			// opens with the same unseal.
			ks3, err := CreateSealedFile(filepath.Join(filepath.Dir(path), "root-2.key.sealed"), key)
			if err != nil {
				t.Fatal(err)
			}
			if ks3.ID() == ks.ID() {
				t.Fatal("a new sealed root has the old root key")
			}
			if _, err := OpenSealedFile(filepath.Join(filepath.Dir(path), "root-2.key.sealed"), key); err != nil {
				t.Fatal(err)
			}
			// Never over an existing file.
			if _, err := CreateSealedFile(path, key); !errors.Is(err, fs.ErrExist) {
				t.Fatalf("create over an existing sealed root: %v", err)
			}
		})
	}
}

func TestSealedWrongKey(t *testing.T) {
	kinds := sealKinds(t)
	dir := t.TempDir()
	pPath, sPath := filepath.Join(dir, "p.sealed"), filepath.Join(dir, "s.sealed")
	if _, err := CreateSealedFile(pPath, kinds["passphrase"].key); err != nil {
		t.Fatal(err)
	}
	if _, err := CreateSealedFile(sPath, kinds["shamir"].key); err != nil {
		t.Fatal(err)
	}
	pInfo, _ := ReadSealInfo(pPath)
	sInfo, _ := ReadSealInfo(sPath)
	otherP, _ := NewPassphraseSealKey(testPassphrase, testArgon2) // same passphrase, other salt

	for _, c := range []struct {
		name    string
		do      func() error
		sealKey bool // the error wraps ErrSealKey
		want    string
	}{
		{"wrong passphrase", func() error { _, err := pInfo.PassphraseKey([]byte("correct horse battery stapler")); return err }, true, "passphrase is not"},
		{"empty passphrase", func() error { _, err := pInfo.PassphraseKey(nil); return err }, true, "passphrase is not"},
		{"wrong shares", func() error { _, err := sInfo.ShamirKey(make([]byte, 32)); return err }, true, "do not recombine"},
		{"short secret", func() error { _, err := sInfo.ShamirKey(make([]byte, 31)); return err }, true, "31 bytes"},
		{"passphrase for shamir", func() error { _, err := sInfo.PassphraseKey(testPassphrase); return err }, false, "not a passphrase"},
		{"shares for passphrase", func() error { _, err := pInfo.ShamirKey(make([]byte, 32)); return err }, false, "not Shamir"},
		{"shamir key on passphrase file", func() error { _, err := OpenSealedFile(pPath, kinds["shamir"].key); return err }, true, "not with the given seal key"},
		{"other salt", func() error { _, err := OpenSealedFile(pPath, otherP); return err }, true, "not with the given seal key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.do()
			if err == nil || errors.Is(err, ErrSealKey) != c.sealKey || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error with %q (ErrSealKey: %v)", err, c.want, c.sealKey)
			}
		})
	}
}

// TestSealedTampered alters each header field and the ciphertext: the
// file must never open, whichever way it fails.
func TestSealedTampered(t *testing.T) {
	for name, c := range sealKinds(t) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "root.key.sealed")
			if _, err := CreateSealedFile(path, c.key); err != nil {
				t.Fatal(err)
			}
			orig, _ := os.ReadFile(path)
			var doc map[string]any
			if err := json.Unmarshal(orig, &doc); err != nil {
				t.Fatal(err)
			}
			seal := doc["seal"].(map[string]any)
			edits := map[string]func(map[string]any){
				"root_key_id": func(d map[string]any) { d["root_key_id"] = "0123456789abcdef" },
				"nonce":       func(d map[string]any) { d["nonce"] = "AAAAAAAAAAAAAAAA" },
				"ciphertext":  func(d map[string]any) { d["ciphertext"] = flipB64(d["ciphertext"].(string)) },
				"key_check":   func(d map[string]any) { d["seal"].(map[string]any)["key_check"] = flipB64(seal["key_check"].(string)) },
			}
			if name == "passphrase" {
				a := func(d map[string]any) map[string]any { return d["seal"].(map[string]any)["argon2id"].(map[string]any) }
				edits["argon2 time"] = func(d map[string]any) { a(d)["time"] = 2 }
				edits["argon2 memory"] = func(d map[string]any) { a(d)["memory_kib"] = 512 }
				edits["argon2 threads"] = func(d map[string]any) { a(d)["threads"] = 2 }
				edits["salt"] = func(d map[string]any) { a(d)["salt"] = flipB64(a(d)["salt"].(string)) }
			} else {
				s := func(d map[string]any) map[string]any { return d["seal"].(map[string]any)["shamir"].(map[string]any) }
				edits["shares"] = func(d map[string]any) { s(d)["shares"] = 4 }
				edits["threshold"] = func(d map[string]any) { s(d)["threshold"] = 2 }
				edits["set"] = func(d map[string]any) { s(d)["set"] = "0000000000000000" }
			}
			for field, edit := range edits {
				var d map[string]any
				json.Unmarshal(orig, &d)
				edit(d)
				b, _ := json.Marshal(d)
				os.WriteFile(path, b, 0o600)
				// Unseal as kmsd would: derive from the (altered) header,
				// then open.
				info, err := ReadSealInfo(path)
				if err == nil {
					var key *SealKey
					if key, err = c.unseal(info); err == nil {
						_, err = OpenSealedFile(path, key)
					}
				}
				if err == nil {
					t.Errorf("altered %s: the file still opens", field)
				}
				// The seal key in hand (as kmsd holds after unseal) does
				// not open it either.
				if _, err := OpenSealedFile(path, c.key); err == nil {
					t.Errorf("altered %s: opens with the seal key", field)
				}
			}
			// The authentication failure proper names the damage.
			var d map[string]any
			json.Unmarshal(orig, &d)
			d["ciphertext"] = flipB64(d["ciphertext"].(string))
			b, _ := json.Marshal(d)
			os.WriteFile(path, b, 0o600)
			if _, err := OpenSealedFile(path, c.key); err == nil || !strings.Contains(err.Error(), "altered or damaged") {
				t.Errorf("altered ciphertext: %v", err)
			}
		})
	}
}

func flipB64(s string) string {
	b := []byte(s)
	if b[2] == 'A' {
		b[2] = 'B'
	} else {
		b[2] = 'A'
	}
	return string(b)
}

func TestSealedMalformed(t *testing.T) {
	key := sealKinds(t)["passphrase"].key
	dir := t.TempDir()
	good := filepath.Join(dir, "good.sealed")
	if _, err := CreateSealedFile(good, key); err != nil {
		t.Fatal(err)
	}
	orig, _ := os.ReadFile(good)
	replace := func(old, new string) []byte { return bytes.Replace(orig, []byte(old), []byte(new), 1) }
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "EOF"},
		{"not json", []byte("kmsd"), "invalid"},
		{"trailing data", append(bytes.Clone(orig), "{}"...), "after the JSON"},
		{"unknown field", replace(`"version": 1,`, `"version": 1, "extra": 1,`), "unknown field"},
		{"other format", replace(`"kmsd sealed root key"`, `"kmsd sealed root"`), "format is"},
		{"version 2", replace(`"version": 1`, `"version": 2`), "unknown version"},
		{"unknown kind", replace(`"kind": "passphrase"`, `"kind": "tpm"`), "unknown seal kind"},
		{"shamir kind without section", replace(`"kind": "passphrase"`, `"kind": "shamir"`), "needs a shamir section"},
		{"huge memory", replace(`"memory_kib": 256`, `"memory_kib": 99999999`), "out of range"},
		{"zero time", replace(`"time": 1`, `"time": 0`), "out of range"},
		{"too large", append(bytes.Clone(orig), bytes.Repeat([]byte(" "), 9000)...), "larger than"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, "bad.sealed")
			if err := os.WriteFile(path, c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := ReadSealInfo(path)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error with %q", err, c.want)
			}
			if _, err := OpenSealedFile(path, key); err == nil {
				t.Fatal("opens")
			}
		})
	}
}

func TestSealedPermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permissions")
	}
	key := sealKinds(t)["passphrase"].key
	path := filepath.Join(t.TempDir(), "root.key.sealed")
	if _, err := CreateSealedFile(path, key); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660} {
		os.Chmod(path, mode)
		if _, err := ReadSealInfo(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %o: %v", mode, err)
		}
		if _, err := OpenSealedFile(path, key); err == nil {
			t.Errorf("mode %o: opens", mode)
		}
	}
}

func TestSealRootKeyFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	plain, err := OpenFile(filepath.Join(dir, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	w, _ := plain.Wrap(ctx, []byte("old secret"), nil)
	key := sealKinds(t)["shamir"].key
	sealed, err := SealRootKeyFile(filepath.Join(dir, "root.key"), filepath.Join(dir, "root.key.sealed"), key)
	if err != nil {
		t.Fatal(err)
	}
	if sealed.ID() != plain.ID() {
		t.Fatalf("sealed root %s, plain %s", sealed.ID(), plain.ID())
	}
	if p, err := sealed.Unwrap(ctx, w, nil); err != nil || string(p) != "old secret" {
		t.Fatalf("unwrap: %q %v", p, err)
	}
	if _, err := SealRootKeyFile(filepath.Join(dir, "root.key"), filepath.Join(dir, "root.key.sealed"), key); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("sealing over an existing sealed root: %v", err)
	}
}

func TestSealKeyNeverPrinted(t *testing.T) {
	secret := bytes.Repeat([]byte{0xc3}, 32)
	k, err := NewShamirSealKey(secret, 3, 2, [8]byte{})
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%x", "%s"} {
		if out := fmt.Sprintf(verb, k) + fmt.Sprintf(verb, *k); strings.Contains(out, "c3c3") || strings.Contains(out, "195") {
			t.Errorf("%s prints the key: %s", verb, out)
		}
	}
	k.Wipe()
	if k.key != [32]byte{} {
		t.Fatal("Wipe left the key")
	}
}

func TestSealParameterChecks(t *testing.T) {
	if p := DefaultArgon2Params(); p != (Argon2Params{Time: 3, MemoryKiB: 64 << 10, Threads: 4}) {
		t.Fatalf("default Argon2id parameters changed: %+v", p)
	}
	for _, c := range []struct {
		name string
		err  error
	}{
		{"empty passphrase", func() error { _, err := NewPassphraseSealKey(nil, testArgon2); return err }()},
		{"zero time", func() error { _, err := NewPassphraseSealKey(testPassphrase, Argon2Params{0, 256, 1}); return err }()},
		{"threshold 1", func() error { _, err := NewShamirSealKey(make([]byte, 32), 3, 1, [8]byte{}); return err }()},
		{"threshold above shares", func() error { _, err := NewShamirSealKey(make([]byte, 32), 3, 4, [8]byte{}); return err }()},
		{"short secret", func() error { _, err := NewShamirSealKey(make([]byte, 16), 3, 2, [8]byte{}); return err }()},
	} {
		if c.err == nil {
			t.Errorf("%s accepted", c.name)
		}
	}
}

// goldenSealed is a sealed root made by this code (passphrase
// testPassphrase, testArgon2). Sealed roots stay on disk for years: this
// file must open with every later version.
const goldenSealed = `{
  "format": "kmsd sealed root key",
  "version": 1,
  "root_key_id": "786099c9cc2a7e20",
  "seal": {
    "kind": "passphrase",
    "argon2id": {
      "time": 1,
      "memory_kib": 256,
      "threads": 1,
      "salt": "XfZAFa6ojRTmR6Wb6BBYFw=="
    },
    "key_check": "ybARO032RmqcRIkJp4dLGw=="
  },
  "nonce": "4T9oExgAOBV3Rhu8",
  "ciphertext": "kIV+ZtxrFFP97XEWGzEiRQoIdSjzdGwHUo1g/nhLlQ8aayl5Qwv2mlUcEWGhOD8y"
}
`

const goldenRootID = "786099c9cc2a7e20"

func TestSealedGolden(t *testing.T) {
	path := filepath.Join(t.TempDir(), "root.key.sealed")
	if err := os.WriteFile(path, []byte(goldenSealed), 0o600); err != nil {
		t.Fatal(err)
	}
	info, err := ReadSealInfo(path)
	if err != nil {
		t.Fatal(err)
	}
	key, err := info.PassphraseKey(testPassphrase)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := OpenSealedFile(path, key)
	if err != nil {
		t.Fatal(err)
	}
	if ks.ID() != goldenRootID {
		t.Fatalf("root %s, want %s", ks.ID(), goldenRootID)
	}
}
