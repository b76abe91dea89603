package envelope_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"strings"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kmsd/kmsd/envelope"
)

// Encrypting and decrypting a stream with a local raw AES keyring (a KMS
// keyring is used the same way; see the other example).
func Example() {
	wrappingKey := bytes.Repeat([]byte{0x2a}, 32) // in real use: secret and random
	kr, err := envelope.NewRawAESKeyring("example", "key-1", wrappingKey)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	var message bytes.Buffer
	_, err = envelope.Encrypt(ctx, &message, strings.NewReader("attack at dawn"), envelope.EncryptOptions{
		Keyring:           kr,
		EncryptionContext: map[string]string{"purpose": "example"},
	})
	if err != nil {
		log.Fatal(err)
	}

	var plaintext bytes.Buffer
	info, err := envelope.Decrypt(ctx, &plaintext, &message, envelope.DecryptOptions{
		Keyring:           kr,
		EncryptionContext: map[string]string{"purpose": "example"}, // checked against the message
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(plaintext.String())
	fmt.Println(info.Suite)
	fmt.Println(info.EncryptionContext["purpose"])
	// Output:
	// attack at dawn
	// ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384 (0x0578)
	// example
}

// Encrypting under two KMS keys, either of which can decrypt. The client
// comes from the standard AWS configuration (environment, profiles,
// AWS_ENDPOINT_URL for kmsd).
func ExampleNewKMSKeyring() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	client := kms.NewFromConfig(cfg)
	primary, err := envelope.NewKMSKeyring(client, "alias/backups")
	if err != nil {
		log.Fatal(err)
	}
	escrow, err := envelope.NewKMSKeyring(client, "arn:aws:kms:us-east-1:111122223333:key/0d7c3c44-6e1c-4f77-8a3c-0d7e5e3f9a10")
	if err != nil {
		log.Fatal(err)
	}
	kr, err := envelope.NewMultiKeyring(primary, escrow)
	if err != nil {
		log.Fatal(err)
	}
	var message bytes.Buffer
	if _, err := envelope.Encrypt(ctx, &message, strings.NewReader("backup"), envelope.EncryptOptions{Keyring: kr}); err != nil {
		log.Fatal(err)
	}
	// To decrypt, name the keys by key ARN (strict mode): only encrypted
	// data keys under those keys are tried.
}
