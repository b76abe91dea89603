package server_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsd/kmsd/internal/kmstest"
)

// TestImportNewKeyMaterialAndRotate: on-demand rotation of a key with
// imported material. New material imported with ImportType
// NEW_KEY_MATERIAL waits in PENDING_ROTATION until RotateKeyOnDemand makes
// it current; ciphertexts of every material keep decrypting.
func TestImportNewKeyMaterialAndRotate(t *testing.T) {
	env := kmstest.Start(t)
	ctx := context.Background()
	c := env.Client
	id := createExternalKey(t, c).KeyId
	validTo := env.Clock.Now().Add(48 * time.Hour).Truncate(time.Second)
	imp := func(material []byte, importType types.ImportType, model types.ExpirationModelType, validTo *time.Time) (string, error) {
		t.Helper()
		p, err := c.GetParametersForImport(ctx, &awskms.GetParametersForImportInput{KeyId: id,
			WrappingAlgorithm: types.AlgorithmSpecRsaesOaepSha256, WrappingKeySpec: types.WrappingKeySpecRsa2048})
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.ImportKeyMaterial(ctx, &awskms.ImportKeyMaterialInput{KeyId: id, ImportToken: p.ImportToken,
			EncryptedKeyMaterial: oaepWrap(t, p.PublicKey, material), ImportType: importType,
			ExpirationModel: model, ValidTo: validTo})
		if err != nil {
			return "", err
		}
		return aws.ToString(out.KeyMaterialId), nil
	}
	type entry struct {
		id, state, rotationType, importState, model string
		validTo                                     *time.Time
		rotated                                     bool
	}
	list := func(include types.IncludeKeyMaterial) []entry {
		t.Helper()
		out, err := c.ListKeyRotations(ctx, &awskms.ListKeyRotationsInput{KeyId: id, IncludeKeyMaterial: include})
		if err != nil {
			t.Fatal(err)
		}
		var es []entry
		for _, r := range out.Rotations {
			es = append(es, entry{aws.ToString(r.KeyMaterialId), string(r.KeyMaterialState), string(r.RotationType),
				string(r.ImportState), string(r.ExpirationModel), r.ValidTo, r.RotationDate != nil})
		}
		return es
	}
	encrypt := func() []byte {
		t.Helper()
		out, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: id, Plaintext: []byte("secret")})
		if err != nil {
			t.Fatal(err)
		}
		return out.CiphertextBlob
	}
	decryptsWith := func(ct []byte, want string) {
		t.Helper()
		out, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: ct})
		if err != nil {
			t.Fatalf("decrypt: %v", err)
		}
		if string(out.Plaintext) != "secret" {
			t.Fatalf("decrypt = %q", out.Plaintext)
		}
		if got := aws.ToString(out.KeyMaterialId); got != "" && got != want {
			t.Errorf("decrypted with material %s, want %s", got, want)
		}
	}
	a, b, other := make([]byte, 32), make([]byte, 32), make([]byte, 32)
	rand.Read(a)
	rand.Read(b)
	rand.Read(other)

	// A is the key's first material.
	midA, err := imp(a, "", types.ExpirationModelTypeKeyMaterialExpires, &validTo)
	if err != nil {
		t.Fatal(err)
	}
	ctA := encrypt()
	decryptsWith(ctA, midA)

	// No pending material: nothing to rotate to. Automatic rotation stays
	// refused for imported keys.
	_, err = c.RotateKeyOnDemand(ctx, &awskms.RotateKeyOnDemandInput{KeyId: id})
	wantCode(t, err, "UnsupportedOperationException")
	_, err = c.EnableKeyRotation(ctx, &awskms.EnableKeyRotationInput{KeyId: id})
	wantCode(t, err, "UnsupportedOperationException")
	// EXISTING_KEY_MATERIAL (the default) still refuses different material.
	_, err = imp(b, types.ImportTypeExistingKeyMaterial, types.ExpirationModelTypeKeyMaterialExpires, &validTo)
	wantCode(t, err, "IncorrectKeyMaterialException")
	// NEW_KEY_MATERIAL must be new, and share the key's expiration.
	_, err = imp(a, types.ImportTypeNewKeyMaterial, types.ExpirationModelTypeKeyMaterialExpires, &validTo)
	wantCode(t, err, "IncorrectKeyMaterialException")
	_, err = imp(b, types.ImportTypeNewKeyMaterial, types.ExpirationModelTypeKeyMaterialDoesNotExpire, nil)
	wantCode(t, err, "ValidationException")
	if es := list(types.IncludeKeyMaterialAllKeyMaterial); len(es) != 1 {
		t.Fatalf("after refused imports: %+v, want only A", es)
	}

	// B waits in PENDING_ROTATION; encryption still uses A.
	midB, err := imp(b, types.ImportTypeNewKeyMaterial, types.ExpirationModelTypeKeyMaterialExpires, &validTo)
	if err != nil {
		t.Fatal(err)
	}
	if midB == midA || midB == "" {
		t.Fatalf("material id of B = %q (A: %s)", midB, midA)
	}
	es := list(types.IncludeKeyMaterialAllKeyMaterial)
	if len(es) != 2 || es[0].id != midA || es[0].state != "CURRENT" || es[1].id != midB || es[1].state != "PENDING_ROTATION" ||
		es[1].rotationType != "" || es[1].rotated {
		t.Fatalf("ListKeyRotations with B pending = %+v", es)
	}
	for _, e := range es {
		if e.importState != "IMPORTED" || e.model != "KEY_MATERIAL_EXPIRES" || e.validTo == nil || !e.validTo.Equal(validTo) {
			t.Errorf("entry %+v: want IMPORTED, KEY_MATERIAL_EXPIRES until %v", e, validTo)
		}
	}
	if es := list(types.IncludeKeyMaterialRotationsOnly); len(es) != 0 {
		t.Errorf("ROTATIONS_ONLY before the rotation = %+v, want none", es)
	}
	// Only one material may be pending.
	_, err = imp(other, types.ImportTypeNewKeyMaterial, types.ExpirationModelTypeKeyMaterialExpires, &validTo)
	wantCode(t, err, "UnsupportedOperationException")
	ctA2 := encrypt()
	decryptsWith(ctA2, midA)

	// The rotation makes B current.
	env.Clock.Advance(time.Hour)
	ro, err := c.RotateKeyOnDemand(ctx, &awskms.RotateKeyOnDemandInput{KeyId: id})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(ro.KeyId) == "" {
		t.Error("RotateKeyOnDemand returned no KeyId")
	}
	es = list(types.IncludeKeyMaterialAllKeyMaterial)
	if len(es) != 2 || es[0].id != midA || es[0].state != "NON_CURRENT" || es[1].id != midB || es[1].state != "CURRENT" ||
		es[1].rotationType != "ON_DEMAND" || !es[1].rotated || es[1].validTo == nil {
		t.Fatalf("ListKeyRotations after the rotation = %+v", es)
	}
	if es := list(types.IncludeKeyMaterialRotationsOnly); len(es) != 1 || es[0].id != midB {
		t.Errorf("ROTATIONS_ONLY after the rotation = %+v, want B", es)
	}
	ctB := encrypt()
	decryptsWith(ctB, midB)
	decryptsWith(ctA, midA)
	decryptsWith(ctA2, midA)
	// Nothing pending any more.
	_, err = c.RotateKeyOnDemand(ctx, &awskms.RotateKeyOnDemandInput{KeyId: id})
	wantCode(t, err, "UnsupportedOperationException")

	// Re-importing A (EXISTING_KEY_MATERIAL) is accepted and changes nothing.
	if got, err := imp(a, "", types.ExpirationModelTypeKeyMaterialExpires, &validTo); err != nil || got != midA {
		t.Fatalf("re-import A = %s, %v; want %s", got, err, midA)
	}
	if es := list(types.IncludeKeyMaterialAllKeyMaterial); len(es) != 2 || es[1].state != "CURRENT" || es[1].id != midB {
		t.Fatalf("after re-importing A: %+v", es)
	}

	// Deleting the current material (B): PendingImport, B listed as
	// PENDING_IMPORT, its ciphertexts fail; re-importing it restores them.
	if _, err := c.DeleteImportedKeyMaterial(ctx, &awskms.DeleteImportedKeyMaterialInput{KeyId: id}); err != nil {
		t.Fatal(err)
	}
	if got := keyState(t, c, id); got != types.KeyStatePendingImport {
		t.Fatalf("state after delete = %s", got)
	}
	es = list(types.IncludeKeyMaterialAllKeyMaterial)
	if len(es) != 2 || es[1].id != midB || es[1].importState != "PENDING_IMPORT" || es[1].state != "CURRENT" {
		t.Fatalf("ListKeyRotations after deleting B = %+v", es)
	}
	_, err = c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: ctB})
	wantCode(t, err, "KMSInvalidStateException")
	_, err = imp(other, types.ImportTypeNewKeyMaterial, types.ExpirationModelTypeKeyMaterialExpires, &validTo)
	wantCode(t, err, "KMSInvalidStateException")
	_, err = imp(a, "", types.ExpirationModelTypeKeyMaterialExpires, &validTo)
	wantCode(t, err, "IncorrectKeyMaterialException")
	if got, err := imp(b, types.ImportTypeExistingKeyMaterial, types.ExpirationModelTypeKeyMaterialExpires, &validTo); err != nil || got != midB {
		t.Fatalf("re-import B = %s, %v; want %s", got, err, midB)
	}
	if got := keyState(t, c, id); got != types.KeyStateEnabled {
		t.Fatalf("state after re-import = %s", got)
	}
	decryptsWith(ctB, midB)
	decryptsWith(ctA, midA)
}
