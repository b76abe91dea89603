package seed

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"

	"github.com/kmsd/kmsd/internal/keys"
)

func TestPrivateKeyDER(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8RSA, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	pkcs8EC, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	sec1, _ := x509.MarshalECPrivateKey(ecKey)
	enc := func(typ string, b []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}) }
	for _, tc := range []struct {
		name string
		pem  []byte
		want []byte // the DER PKCS #8; nil: an error
		spec string
		err  string
	}{
		{"PKCS #8 RSA", enc("PRIVATE KEY", pkcs8RSA), pkcs8RSA, "RSA_2048", ""},
		{"PKCS #1 RSA", enc("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)), pkcs8RSA, "RSA_2048", ""},
		{"SEC 1 EC", enc("EC PRIVATE KEY", sec1), pkcs8EC, "ECC_NIST_P384", ""},
		{"PKCS #8 EC", enc("PRIVATE KEY", pkcs8EC), pkcs8EC, "ECC_NIST_P384", ""},
		{"public key", enc("PUBLIC KEY", []byte{1}), nil, "", "is not a private key"},
		{"damaged", enc("RSA PRIVATE KEY", []byte("nonsense")), nil, "", "does not parse"},
		{"no PEM", []byte("hello"), nil, "", "no PEM block"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PrivateKeyDER(tc.pem)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("PrivateKeyDER = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("PrivateKeyDER = %x, %v", got, err)
			}
			if spec, err := specOfPEM(tc.pem); err != nil || spec != tc.spec {
				t.Fatalf("specOfPEM = %q, %v", spec, err)
			}
		})
	}
}

// TestWrapMaterial unwraps what wrapMaterial makes as kmsd's
// ImportKeyMaterial does for RSA_AES_KEY_WRAP_SHA_256.
func TestWrapMaterial(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	spki, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	for _, n := range []int{32, 64, 1217} {
		material := make([]byte, n)
		rand.Read(material)
		enc, err := wrapMaterial(spki, material)
		if err != nil {
			t.Fatal(err)
		}
		kek, err := rsa.DecryptOAEP(sha256.New(), nil, priv, enc[:priv.Size()], nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := keys.UnwrapKeyPadded(kek, enc[priv.Size():])
		if err != nil || !bytes.Equal(got, material) {
			t.Fatalf("%d bytes: unwrap = %v", n, err)
		}
	}
	if _, err := wrapMaterial([]byte("not a key"), []byte("x")); err == nil {
		t.Fatal("a bad public key was accepted")
	}
}

func TestIsLocalKMS(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want bool
	}{
		{"Keys:\n  Symmetric: {}\n", true},
		{"Aliases: []\n", true},
		{"Keys: {}\nAliases: []\n", true},
		{"keys: []\n", false},
		{"Keys: {}\nkeys: []\n", false},
		{"", false},
		{"[1, 2]", false},
	} {
		if got := IsLocalKMS([]byte(tc.src)); got != tc.want {
			t.Errorf("IsLocalKMS(%q) = %v", tc.src, got)
		}
	}
}

// ExampleFromLocalKMS converts a local-kms seed file with one AES key
// (rotated once) and an alias.
func ExampleFromLocalKMS() {
	src := `Keys:
  Symmetric:
    Aes:
      - Metadata:
          KeyId: 6F2A0F1D-7A3C-4B59-9A43-3F1C2B7D8E90
          Description: orders
        BackingKeys:
          - 0000000000000000000000000000000000000000000000000000000000000000
          - 1111111111111111111111111111111111111111111111111111111111111111
Aliases:
  - AliasName: alias/orders
    TargetKeyId: 6F2A0F1D-7A3C-4B59-9A43-3F1C2B7D8E90
`
	out, notes, err := FromLocalKMS([]byte(src))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(string(out))
	fmt.Println(len(notes), "note")
	// Output:
	// # kmsd seed converted from a local-kms seed file by kmsd import local-kms.
	// # It holds key material: keep it private (mode 0600). Use: kmsd serve --seed FILE
	// keys:
	//   - id: 6f2a0f1d-7a3c-4b59-9a43-3f1c2b7d8e90
	//     description: orders
	//     aliases:
	//       - alias/orders
	//     material:
	//       hex: "1111111111111111111111111111111111111111111111111111111111111111"
	// 1 note
}
