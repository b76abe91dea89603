package envelope

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"testing"
)

// TestJavaScriptVectors decrypts fixed messages written by the official AWS
// Encryption SDK for JavaScript (see testdata/esdk-js/vectors.json) with the
// raw AES keyring. They must keep decrypting, whatever changes here.
func TestJavaScriptVectors(t *testing.T) {
	var manifest struct {
		KeyNamespace   string
		KeyName        string
		WrappingKeyHex string
		Vectors        []struct {
			File            string
			Suite           Suite
			FrameLength     uint32
			PlaintextLength int
			Context         map[string]string
		}
	}
	b, err := os.ReadFile("testdata/esdk-js/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &manifest); err != nil {
		t.Fatal(err)
	}
	key, err := hex.DecodeString(manifest.WrappingKeyHex)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := NewRawAESKeyring(manifest.KeyNamespace, manifest.KeyName, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(manifest.Vectors) < 5 {
		t.Fatalf("only %d vectors", len(manifest.Vectors))
	}
	for _, v := range manifest.Vectors {
		msg, err := os.ReadFile(filepath.Join("testdata/esdk-js", v.File))
		if err != nil {
			t.Fatal(err)
		}
		got, info, err := decrypt(msg, DecryptOptions{Keyring: kr, EncryptionContext: v.Context})
		if err != nil {
			t.Fatalf("%s: %v", v.File, err)
		}
		if !bytes.Equal(got, pattern(v.PlaintextLength)) {
			t.Errorf("%s: plaintext differs", v.File)
		}
		if info.Suite != v.Suite || info.FrameLength != v.FrameLength {
			t.Errorf("%s: suite %v frame length %d", v.File, info.Suite, info.FrameLength)
		}
		ec := maps.Clone(info.EncryptionContext)
		delete(ec, publicKeyContextKey)
		if !maps.Equal(ec, v.Context) {
			t.Errorf("%s: context %v, want %v", v.File, ec, v.Context)
		}
		// Any bit flipped anywhere breaks them too.
		for i := 0; i < len(msg); i += 7 {
			bad := bytes.Clone(msg)
			bad[i] ^= 0x10
			if _, _, err := decrypt(bad, DecryptOptions{Keyring: kr}); err == nil {
				t.Fatalf("%s: byte %d flipped, still decrypts", v.File, i)
			}
		}
	}
}
