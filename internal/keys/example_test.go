package keys_test

import (
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/kmsd/kmsd/internal/keys"
)

// Seal a plaintext under a fresh backing key, read the cleartext header to
// find out which key and material to use, then open the blob.
func Example() {
	material, err := keys.NewMaterial(rand.Reader)
	if err != nil {
		panic(err)
	}
	h := keys.Header{
		KeyID:      "1234abcd-12ab-34cd-56ef-1234567890ab",
		MaterialID: "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
	}
	encCtx := map[string]string{"purpose": "example"}

	blob, err := keys.Seal(rand.Reader, material, h, []byte("attack at dawn"), encCtx)
	if err != nil {
		panic(err)
	}
	fmt.Println("blob size:", len(blob), "=", len("attack at dawn"), "+", keys.Overhead)

	// Decrypt needs no key id: the header names the key and its material.
	got, err := keys.ParseHeader(blob)
	if err != nil {
		panic(err)
	}
	fmt.Println("key id:", got.KeyID)

	plaintext, err := keys.Open(material, blob, encCtx)
	if err != nil {
		panic(err)
	}
	fmt.Printf("plaintext: %s\n", plaintext)

	// The encryption context must match exactly.
	_, err = keys.Open(material, blob, map[string]string{"purpose": "other"})
	fmt.Println("wrong context:", errors.Is(err, keys.ErrInvalidCiphertext))

	// Output:
	// blob size: 111 = 14 + 97
	// key id: 1234abcd-12ab-34cd-56ef-1234567890ab
	// plaintext: attack at dawn
	// wrong context: true
}

func ExampleCanonicalContext() {
	cc, err := keys.CanonicalContext(map[string]string{"b": "2", "a": "1"})
	if err != nil {
		panic(err)
	}
	fmt.Printf("% x\n", cc)
	// Output:
	// 00 02 00 01 61 00 01 31 00 01 62 00 01 32
}
