package envelope

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kmsd/kmsd/internal/kmstest"
)

// countingKMS counts GenerateDataKey calls.
type countingKMS struct {
	KMSClient
	generate atomic.Int32
}

func (c *countingKMS) GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, optFns ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error) {
	c.generate.Add(1)
	return c.KMSClient.GenerateDataKey(ctx, in, optFns...)
}

func createKey(t *testing.T, c *kms.Client) string {
	t.Helper()
	out, err := c.CreateKey(context.Background(), &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.KeyMetadata.Arn)
}

// mustKeyring returns a function that unwraps a keyring constructor's
// result, failing the test on error.
func mustKeyring(t *testing.T) func(Keyring, error) Keyring {
	return func(kr Keyring, err error) Keyring {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return kr
	}
}

func TestKMSKeyrings(t *testing.T) {
	env := kmstest.Start(t)
	ctx := context.Background()
	must := mustKeyring(t)
	a, b, c := createKey(t, env.Client), createKey(t, env.Client), createKey(t, env.Client)
	if _, err := env.Client.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/envelope-a"), TargetKeyId: aws.String(a)}); err != nil {
		t.Fatal(err)
	}
	byAlias := must(NewKMSKeyring(env.Client, "alias/envelope-a"))
	byB := must(NewKMSKeyring(env.Client, b))
	enc := must(NewMultiKeyring(byAlias, byB))
	ec := map[string]string{"purpose": "kms test"}
	pt := pattern(1<<20 + 3)
	for _, s := range suites {
		ct := encrypt(t, pt, EncryptOptions{Keyring: enc, Suite: s, EncryptionContext: ec})
		h, err := parseHeaderBytes(ct)
		if err != nil {
			t.Fatal(err)
		}
		if len(h.edks) != 2 || string(h.edks[0].ProviderInfo) != a || string(h.edks[1].ProviderInfo) != b || h.edks[0].ProviderID != KMSProviderID {
			t.Fatalf("encrypted data keys %+v", h.edks)
		}
		for name, kr := range map[string]Keyring{
			"key A":          must(NewKMSKeyring(env.Client, a)),
			"key B":          byB,
			"multi":          must(NewKMSMultiKeyring(env.Client, []string{c, b})),
			"discovery":      must(NewKMSDiscoveryKeyring(env.Client, nil)),
			"discovery acct": must(NewKMSDiscoveryKeyring(env.Client, &DiscoveryFilter{Partition: "aws", Accounts: []string{kmstest.Account}})),
		} {
			got, _, err := decrypt(ct, DecryptOptions{Keyring: kr, EncryptionContext: ec})
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("%04x %s: %v", uint16(s), name, err)
			}
		}
		for name, kr := range map[string]Keyring{
			// Strict mode: an alias never matches the key ARN recorded in
			// the message, so it cannot decrypt.
			"alias":           byAlias,
			"key C":           must(NewKMSKeyring(env.Client, c)),
			"other account":   must(NewKMSDiscoveryKeyring(env.Client, &DiscoveryFilter{Partition: "aws", Accounts: []string{"444455556666"}})),
			"other partition": must(NewKMSDiscoveryKeyring(env.Client, &DiscoveryFilter{Partition: "aws-cn", Accounts: []string{kmstest.Account}})),
		} {
			if _, _, err := decrypt(ct, DecryptOptions{Keyring: kr}); !errors.Is(err, ErrNoDataKey) {
				t.Fatalf("%04x %s: %v", uint16(s), name, err)
			}
		}
	}

	// KMS binds the data key to the encryption context: materials with
	// another context do not get it.
	ct := encrypt(t, []byte("x"), EncryptOptions{Keyring: byB, EncryptionContext: ec})
	h, _ := parseHeaderBytes(ct)
	m := &DecryptionMaterials{Suite: h.suite, EncryptionContext: map[string]string{"purpose": "other"}}
	if err := byB.OnDecrypt(ctx, m, h.edks); !errors.Is(err, ErrNoDataKey) || m.DataKey != nil {
		t.Fatalf("other context: %v", err)
	}
	// An aws-kms data key that does not name a key ARN is malformed.
	bad := []EncryptedDataKey{{ProviderID: KMSProviderID, ProviderInfo: []byte("alias/x"), Ciphertext: []byte{1}}}
	if err := byB.OnDecrypt(ctx, &DecryptionMaterials{Suite: h.suite}, bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad provider info: %v", err)
	}
	// A disabled key cannot decrypt; the other key still can.
	ct = encrypt(t, []byte("y"), EncryptOptions{Keyring: must(NewKMSMultiKeyring(env.Client, []string{b, a}))})
	if _, err := env.Client.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(a)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := decrypt(ct, DecryptOptions{Keyring: must(NewKMSKeyring(env.Client, a))}); !errors.Is(err, ErrNoDataKey) || !strings.Contains(err.Error(), "Disabled") {
		t.Fatalf("disabled key: %v", err)
	}
	if _, _, err := decrypt(ct, DecryptOptions{Keyring: byB}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewKMSMultiKeyring(env.Client, []string{"alias/x"}); err == nil {
		t.Fatal("KMS multi-keyring accepted an identifier that is not an ARN")
	}
	if _, err := NewKMSKeyring(env.Client, ""); err == nil {
		t.Fatal("empty key identifier accepted")
	}
	if err := must(NewKMSDiscoveryKeyring(env.Client, nil)).OnEncrypt(ctx, &EncryptionMaterials{}); err == nil {
		t.Fatal("discovery keyring encrypted")
	}
}

func TestKMSCachingCMM(t *testing.T) {
	env := kmstest.Start(t)
	client := &countingKMS{KMSClient: env.Client}
	arn := createKey(t, env.Client)
	must := mustKeyring(t)
	kr := must(NewKMSKeyring(client, arn))
	cmm, err := NewCachingCMM(NewDefaultCMM(kr), CachingOptions{MaxAge: time.Minute, MaxMessages: 5})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		var ct bytes.Buffer
		if _, err := Encrypt(context.Background(), &ct, strings.NewReader("payload"), EncryptOptions{CMM: cmm, MaxPlaintextLength: 7}); err != nil {
			t.Fatal(i, err)
		}
		if got, _, err := decrypt(ct.Bytes(), DecryptOptions{Keyring: kr}); err != nil || string(got) != "payload" {
			t.Fatal(i, err)
		}
	}
	if n := client.generate.Load(); n != 3 {
		t.Fatalf("%d GenerateDataKey calls for 12 messages at 5 per key, want 3", n)
	}
}

func parseHeaderBytes(msg []byte) (*header, error) {
	return parseHeader(bufio.NewReader(bytes.NewReader(msg)), 0)
}
