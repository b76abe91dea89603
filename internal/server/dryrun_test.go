package server_test

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/kmsd/kmsd/internal/kmstest"
)

// TestDryRun: every operation that takes DryRun answers a dry run that
// would succeed with DryRunOperationException (HTTP 412) and changes
// nothing; a dry run that would fail gets the real error; the audit record
// says it was a dry run.
func TestDryRun(t *testing.T) {
	ctx := context.Background()
	a := &memAuditor{}
	env := kmstest.StartWithAuditor(t, a)
	c := env.Client
	mk := func(spec types.KeySpec, usage types.KeyUsageType) *types.KeyMetadata {
		return newKey(t, c, spec, usage)
	}
	sym, sign := mk("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"), mk("ECC_NIST_P256", "SIGN_VERIFY")
	hmac, agree := mk("HMAC_256", "GENERATE_VERIFY_MAC"), mk("ECC_NIST_P256", "KEY_AGREEMENT")
	kem := mk("ML_KEM_512", "ENCAPSULATE_DECAPSULATE")
	ct, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: sym.KeyId, Plaintext: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	sig, err := c.Sign(ctx, &awskms.SignInput{KeyId: sign.KeyId, Message: []byte("m"), SigningAlgorithm: "ECDSA_SHA_256"})
	if err != nil {
		t.Fatal(err)
	}
	mac, err := c.GenerateMac(ctx, &awskms.GenerateMacInput{KeyId: hmac.KeyId, Message: []byte("m"), MacAlgorithm: "HMAC_SHA_256"})
	if err != nil {
		t.Fatal(err)
	}
	encap, err := c.Encapsulate(ctx, &awskms.EncapsulateInput{KeyId: kem.KeyId, EncapsulationAlgorithm: "ML_KEM"})
	if err != nil {
		t.Fatal(err)
	}
	peer, _ := ecdh.P256().GenerateKey(rand.Reader)
	peerDER, _ := x509.MarshalPKIXPublicKey(peer.PublicKey())
	grant, err := c.CreateGrant(ctx, &awskms.CreateGrantInput{KeyId: sym.KeyId, GranteePrincipal: aws.String("arn:aws:iam::111122223333:user/admin"),
		RetiringPrincipal: aws.String("arn:aws:iam::111122223333:user/admin"), Operations: []types.GrantOperation{"Encrypt"}})
	if err != nil {
		t.Fatal(err)
	}
	dry := aws.Bool(true)

	// Each operation's dry run, with a good request (bad: false) or one
	// that would fail (bad: true) and the error it gets.
	type dryRun func(bad bool) error
	ops := map[string]dryRun{
		"Encrypt": func(bad bool) error {
			_, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: pick(bad, sign, sym).KeyId, Plaintext: []byte("x"), DryRun: dry})
			return err
		},
		"Decrypt": func(bad bool) error {
			ec := map[string]string(nil)
			if bad {
				ec = map[string]string{"not": "the context"}
			}
			_, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: ct.CiphertextBlob, EncryptionContext: ec, DryRun: dry})
			return err
		},
		"ReEncrypt": func(bad bool) error {
			_, err := c.ReEncrypt(ctx, &awskms.ReEncryptInput{CiphertextBlob: ct.CiphertextBlob, DestinationKeyId: pick(bad, sign, sym).KeyId, DryRun: dry})
			return err
		},
		"GenerateDataKey": func(bad bool) error {
			_, err := c.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: pick(bad, sign, sym).KeyId, KeySpec: "AES_256", DryRun: dry})
			return err
		},
		"GenerateDataKeyWithoutPlaintext": func(bad bool) error {
			_, err := c.GenerateDataKeyWithoutPlaintext(ctx, &awskms.GenerateDataKeyWithoutPlaintextInput{KeyId: pick(bad, sign, sym).KeyId, KeySpec: "AES_256", DryRun: dry})
			return err
		},
		"GenerateDataKeyPair": func(bad bool) error {
			_, err := c.GenerateDataKeyPair(ctx, &awskms.GenerateDataKeyPairInput{KeyId: pick(bad, sign, sym).KeyId, KeyPairSpec: "RSA_2048", DryRun: dry})
			return err
		},
		"GenerateDataKeyPairWithoutPlaintext": func(bad bool) error {
			_, err := c.GenerateDataKeyPairWithoutPlaintext(ctx, &awskms.GenerateDataKeyPairWithoutPlaintextInput{KeyId: pick(bad, sign, sym).KeyId, KeyPairSpec: "RSA_2048", DryRun: dry})
			return err
		},
		"Sign": func(bad bool) error {
			_, err := c.Sign(ctx, &awskms.SignInput{KeyId: pick(bad, sym, sign).KeyId, Message: []byte("m"), SigningAlgorithm: "ECDSA_SHA_256", DryRun: dry})
			return err
		},
		"Verify": func(bad bool) error {
			msg := []byte("m")
			if bad {
				msg = []byte("another message")
			}
			_, err := c.Verify(ctx, &awskms.VerifyInput{KeyId: sign.KeyId, Message: msg, Signature: sig.Signature, SigningAlgorithm: "ECDSA_SHA_256", DryRun: dry})
			return err
		},
		"GenerateMac": func(bad bool) error {
			_, err := c.GenerateMac(ctx, &awskms.GenerateMacInput{KeyId: pick(bad, sym, hmac).KeyId, Message: []byte("m"), MacAlgorithm: "HMAC_SHA_256", DryRun: dry})
			return err
		},
		"VerifyMac": func(bad bool) error {
			msg := []byte("m")
			if bad {
				msg = []byte("another message")
			}
			_, err := c.VerifyMac(ctx, &awskms.VerifyMacInput{KeyId: hmac.KeyId, Message: msg, Mac: mac.Mac, MacAlgorithm: "HMAC_SHA_256", DryRun: dry})
			return err
		},
		"DeriveSharedSecret": func(bad bool) error {
			_, err := c.DeriveSharedSecret(ctx, &awskms.DeriveSharedSecretInput{KeyId: pick(bad, sym, agree).KeyId, KeyAgreementAlgorithm: "ECDH", PublicKey: peerDER, DryRun: dry})
			return err
		},
		"Encapsulate": func(bad bool) error {
			_, err := c.Encapsulate(ctx, &awskms.EncapsulateInput{KeyId: pick(bad, sym, kem).KeyId, EncapsulationAlgorithm: "ML_KEM", DryRun: dry})
			return err
		},
		"Decapsulate": func(bad bool) error {
			blob := encap.SharedSecretCiphertextBlob
			if bad {
				blob = blob[1:]
			}
			_, err := c.Decapsulate(ctx, &awskms.DecapsulateInput{KeyId: kem.KeyId, EncapsulationAlgorithm: "ML_KEM", SharedSecretCiphertextBlob: blob, DryRun: dry})
			return err
		},
		"CreateGrant": func(bad bool) error {
			op := types.GrantOperation("Encrypt")
			if bad {
				op = "Sign" // not an operation of a symmetric key
			}
			_, err := c.CreateGrant(ctx, &awskms.CreateGrantInput{KeyId: sym.KeyId, GranteePrincipal: aws.String("arn:aws:iam::111122223333:user/admin"),
				Operations: []types.GrantOperation{op}, DryRun: dry})
			return err
		},
		"RevokeGrant": func(bad bool) error {
			_, err := c.RevokeGrant(ctx, &awskms.RevokeGrantInput{KeyId: pick(bad, sign, sym).KeyId, GrantId: grant.GrantId, DryRun: dry})
			return err
		},
		"RetireGrant": func(bad bool) error {
			_, err := c.RetireGrant(ctx, &awskms.RetireGrantInput{KeyId: pick(bad, sign, sym).Arn, GrantId: grant.GrantId, DryRun: dry})
			return err
		},
	}
	failures := map[string]string{
		"Encrypt": "InvalidKeyUsageException", "Decrypt": "InvalidCiphertextException", "ReEncrypt": "InvalidKeyUsageException",
		"GenerateDataKey": "InvalidKeyUsageException", "GenerateDataKeyWithoutPlaintext": "InvalidKeyUsageException",
		"GenerateDataKeyPair": "InvalidKeyUsageException", "GenerateDataKeyPairWithoutPlaintext": "InvalidKeyUsageException",
		"Sign": "InvalidKeyUsageException", "Verify": "KMSInvalidSignatureException", "GenerateMac": "InvalidKeyUsageException",
		"VerifyMac": "KMSInvalidMacException", "DeriveSharedSecret": "InvalidKeyUsageException", "Encapsulate": "InvalidKeyUsageException",
		"Decapsulate": "InvalidCiphertextException", "CreateGrant": "ValidationException", "RevokeGrant": "NotFoundException",
		"RetireGrant": "NotFoundException",
	}
	if len(ops) != 17 {
		t.Fatalf("%d operations, want the 17 that take DryRun", len(ops))
	}
	for op, run := range ops {
		err := run(false)
		wantCode(t, err, "DryRunOperationException")
		var re *smithyhttp.ResponseError
		if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusPreconditionFailed {
			t.Errorf("%s: dry run status %v, want 412", op, err)
		}
		if got := errCode(t, run(true)); got != failures[op] {
			t.Errorf("%s: a dry run that would fail = %s, want %s", op, got, failures[op])
		}
	}

	// IGNORE_CIPHERTEXT: a dry run checks the key named and its
	// authorization, not the ciphertext, even when one is given (a damaged
	// one here); it needs KeyId (SourceKeyId).
	ignore := []types.DryRunModifierType{types.DryRunModifierTypeIgnoreCiphertext}
	garbage := []byte("not a ciphertext at all")
	_, err = c.Decrypt(ctx, &awskms.DecryptInput{KeyId: sym.KeyId, CiphertextBlob: garbage, DryRun: dry, DryRunModifiers: ignore})
	wantCode(t, err, "DryRunOperationException")
	_, err = c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: ct.CiphertextBlob, DryRun: dry, DryRunModifiers: ignore})
	wantCode(t, err, "ValidationException")
	_, err = c.ReEncrypt(ctx, &awskms.ReEncryptInput{SourceKeyId: sym.KeyId, CiphertextBlob: garbage, DestinationKeyId: sym.KeyId, DryRun: dry, DryRunModifiers: ignore})
	wantCode(t, err, "DryRunOperationException")
	_, err = c.ReEncrypt(ctx, &awskms.ReEncryptInput{CiphertextBlob: ct.CiphertextBlob, DestinationKeyId: sym.KeyId, DryRun: dry, DryRunModifiers: ignore})
	wantCode(t, err, "ValidationException")
	// The key named is still checked: a signing key cannot decrypt.
	_, err = c.Decrypt(ctx, &awskms.DecryptInput{KeyId: sign.KeyId, CiphertextBlob: garbage, DryRun: dry, DryRunModifiers: ignore})
	wantCode(t, err, "InvalidKeyUsageException")
	// Without DryRun the modifier changes nothing.
	_, err = c.Decrypt(ctx, &awskms.DecryptInput{KeyId: sym.KeyId, CiphertextBlob: garbage, DryRunModifiers: ignore})
	wantCode(t, err, "InvalidCiphertextException")

	// A ReEncrypt into an RSA key of a plaintext too large for it fails
	// the same way dry or real.
	rsaKey := mk("RSA_2048", "ENCRYPT_DECRYPT")
	big, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: sym.KeyId, Plaintext: make([]byte, 300)})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []*bool{nil, dry} {
		_, err = c.ReEncrypt(ctx, &awskms.ReEncryptInput{CiphertextBlob: big.CiphertextBlob, DestinationKeyId: rsaKey.KeyId,
			DestinationEncryptionAlgorithm: "RSAES_OAEP_SHA_256", DryRun: d})
		wantCode(t, err, "ValidationException")
	}

	// Nothing changed: the one grant is still there, no other was made,
	// and no key was used.
	gs, err := c.ListGrants(ctx, &awskms.ListGrantsInput{KeyId: sym.KeyId})
	if err != nil || len(gs.Grants) != 1 || aws.ToString(gs.Grants[0].GrantId) != aws.ToString(grant.GrantId) {
		t.Errorf("grants after the dry runs: %+v, %v", gs, err)
	}
	// Every dry run's record says so.
	a.mu.Lock()
	defer a.mu.Unlock()
	dryRuns := map[string]int{}
	for _, r := range a.records {
		b, _ := json.Marshal(r.RequestParameters["dryRun"])
		if string(b) == "true" && r.ErrorCode == "DryRunOperationException" {
			dryRuns[r.EventName]++
		}
	}
	for op := range ops {
		want := 1
		if op == "Decrypt" || op == "ReEncrypt" {
			want = 2 // and the one ignoring a ciphertext
		}
		if dryRuns[op] != want {
			t.Errorf("%s: %d audit records of a successful dry run with dryRun true, want %d", op, dryRuns[op], want)
		}
	}
}

func pick(bad bool, ifBad, ifGood *types.KeyMetadata) *types.KeyMetadata {
	if bad {
		return ifBad
	}
	return ifGood
}
