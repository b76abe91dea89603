package server_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsd/kmsd/internal/kmstest"
)

const day = 24 * time.Hour

type generation struct {
	ciphertext []byte
	plaintext  []byte
	materialID string
}

// TestKeyRotation rotates a key automatically (with the injected clock) and
// on demand, N times each, and checks that ciphertexts of every generation
// decrypt with the material that made them, that ListKeyRotations lists
// every rotation in order, and that ReEncrypt moves a ciphertext to the
// current material.
func TestKeyRotation(t *testing.T) {
	env := kmstest.Start(t)
	ctx := context.Background()
	c := env.Client
	md := createKey(t, c, "rotating")
	id := aws.ToString(md.KeyId)
	first := aws.ToString(md.CurrentKeyMaterialId)
	if len(first) != 64 {
		t.Fatalf("CurrentKeyMaterialId = %q, want 64 hex characters", first)
	}

	st, err := c.GetKeyRotationStatus(ctx, &awskms.GetKeyRotationStatusInput{KeyId: &id})
	if err != nil {
		t.Fatal(err)
	}
	if st.KeyRotationEnabled || st.NextRotationDate != nil || st.RotationPeriodInDays != nil {
		t.Fatalf("new key rotation status = %+v, want disabled", st)
	}
	if _, err := c.EnableKeyRotation(ctx, &awskms.EnableKeyRotationInput{KeyId: &id, RotationPeriodInDays: aws.Int32(90)}); err != nil {
		t.Fatal(err)
	}
	st, err = c.GetKeyRotationStatus(ctx, &awskms.GetKeyRotationStatusInput{KeyId: &id})
	if err != nil {
		t.Fatal(err)
	}
	wantNext := env.Clock.Now().Add(90 * day)
	if !st.KeyRotationEnabled || aws.ToInt32(st.RotationPeriodInDays) != 90 || st.NextRotationDate == nil ||
		st.NextRotationDate.Sub(wantNext).Abs() > time.Second || aws.ToString(st.KeyId) != aws.ToString(md.Arn) {
		t.Fatalf("rotation status = %+v, want enabled every 90 days, next %v", st, wantNext)
	}
	if st.OnDemandRotationStartDate != nil {
		t.Errorf("OnDemandRotationStartDate = %v, want absent", st.OnDemandRotationStartDate)
	}

	encrypt := func(i int) generation {
		t.Helper()
		pt := []byte(fmt.Sprintf("generation %d", i))
		out, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: &id, Plaintext: pt})
		if err != nil {
			t.Fatal(err)
		}
		d, err := c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: &id})
		if err != nil {
			t.Fatal(err)
		}
		return generation{out.CiphertextBlob, pt, aws.ToString(d.KeyMetadata.CurrentKeyMaterialId)}
	}
	gens := []generation{encrypt(0)}
	if gens[0].materialID != first {
		t.Fatalf("material changed without a rotation")
	}
	wantTypes := []types.RotationType{}
	const n = 3
	for i := 1; i <= n; i++ {
		env.Clock.Advance(91 * day)
		if got, err := env.Service.RotateDueKeys(ctx); err != nil || got != 1 {
			t.Fatalf("automatic rotation %d: rotated %d keys (%v), want 1", i, got, err)
		}
		if got, err := env.Service.RotateDueKeys(ctx); err != nil || got != 0 {
			t.Fatalf("automatic rotation %d repeated: rotated %d keys (%v), want 0", i, got, err)
		}
		gens = append(gens, encrypt(len(gens)))
		wantTypes = append(wantTypes, types.RotationTypeAutomatic)

		env.Clock.Advance(day)
		ro, err := c.RotateKeyOnDemand(ctx, &awskms.RotateKeyOnDemandInput{KeyId: &id})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(ro.KeyId) != aws.ToString(md.Arn) {
			t.Errorf("RotateKeyOnDemand KeyId = %s, want %s", aws.ToString(ro.KeyId), aws.ToString(md.Arn))
		}
		gens = append(gens, encrypt(len(gens)))
		wantTypes = append(wantTypes, types.RotationTypeOnDemand)
	}
	seen := map[string]bool{}
	for i, g := range gens {
		if seen[g.materialID] {
			t.Fatalf("generation %d reuses material %s", i, g.materialID)
		}
		seen[g.materialID] = true
	}
	// On-demand rotation does not move the automatic schedule.
	st, err = c.GetKeyRotationStatus(ctx, &awskms.GetKeyRotationStatusInput{KeyId: &id})
	if err != nil {
		t.Fatal(err)
	}
	if st.NextRotationDate == nil || st.NextRotationDate.Before(env.Clock.Now()) {
		t.Errorf("next rotation %v is not after now %v", st.NextRotationDate, env.Clock.Now())
	}

	// Every generation decrypts, reporting the material that made it.
	for i, g := range gens {
		out, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: g.ciphertext})
		if err != nil {
			t.Fatalf("decrypt generation %d: %v", i, err)
		}
		if !bytes.Equal(out.Plaintext, g.plaintext) || aws.ToString(out.KeyMaterialId) != g.materialID {
			t.Errorf("generation %d decrypted to %q with material %s, want %q with %s",
				i, out.Plaintext, aws.ToString(out.KeyMaterialId), g.plaintext, g.materialID)
		}
	}

	// ListKeyRotations, two at a time, lists the rotations in order.
	var entries []types.RotationsListEntry
	var marker *string
	for pages := 0; ; pages++ {
		out, err := c.ListKeyRotations(ctx, &awskms.ListKeyRotationsInput{KeyId: &id, Limit: aws.Int32(2), Marker: marker})
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, out.Rotations...)
		if !out.Truncated {
			break
		}
		if pages > 10 || out.NextMarker == nil {
			t.Fatalf("paging does not end: %+v", out)
		}
		marker = out.NextMarker
	}
	if len(entries) != len(gens)-1 {
		t.Fatalf("ListKeyRotations returned %d entries, want %d", len(entries), len(gens)-1)
	}
	var last time.Time
	for i, e := range entries {
		g := gens[i+1]
		wantState := types.KeyMaterialStateNonCurrent
		if i == len(entries)-1 {
			wantState = types.KeyMaterialStateCurrent
		}
		if aws.ToString(e.KeyId) != id || aws.ToString(e.KeyMaterialId) != g.materialID ||
			e.RotationType != wantTypes[i] || e.KeyMaterialState != wantState || e.RotationDate == nil {
			t.Errorf("rotation %d = {%s %s %s %s %v}, want {%s %s %s %s date}", i, aws.ToString(e.KeyId),
				aws.ToString(e.KeyMaterialId), e.RotationType, e.KeyMaterialState, e.RotationDate,
				id, g.materialID, wantTypes[i], wantState)
			continue
		}
		if !e.RotationDate.After(last) {
			t.Errorf("rotation %d date %v is not after %v", i, *e.RotationDate, last)
		}
		last = *e.RotationDate
	}
	all, err := c.ListKeyRotations(ctx, &awskms.ListKeyRotationsInput{KeyId: &id, IncludeKeyMaterial: types.IncludeKeyMaterialAllKeyMaterial})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Rotations) != len(gens) || aws.ToString(all.Rotations[0].KeyMaterialId) != first ||
		all.Rotations[0].KeyMaterialState != types.KeyMaterialStateNonCurrent {
		t.Errorf("ALL_KEY_MATERIAL listed %d entries starting %+v, want %d starting with %s", len(all.Rotations), all.Rotations[0], len(gens), first)
	}
	_, err = c.ListKeyRotations(ctx, &awskms.ListKeyRotationsInput{KeyId: &id, Marker: aws.String("nonsense")})
	wantCode(t, err, "InvalidMarkerException")

	// ReEncrypt to the same key moves the oldest ciphertext to the current
	// material.
	current := gens[len(gens)-1].materialID
	re, err := c.ReEncrypt(ctx, &awskms.ReEncryptInput{CiphertextBlob: gens[0].ciphertext, DestinationKeyId: &id})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(re.SourceKeyMaterialId) != first || aws.ToString(re.DestinationKeyMaterialId) != current {
		t.Errorf("ReEncrypt materials %s -> %s, want %s -> %s", aws.ToString(re.SourceKeyMaterialId),
			aws.ToString(re.DestinationKeyMaterialId), first, current)
	}
	out, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: re.CiphertextBlob})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Plaintext, gens[0].plaintext) || aws.ToString(out.KeyMaterialId) != current {
		t.Errorf("re-encrypted ciphertext decrypted to %q with %s", out.Plaintext, aws.ToString(out.KeyMaterialId))
	}

	// AWS's limit: 10 on-demand rotations per key.
	for i := n; i < 10; i++ {
		if _, err := c.RotateKeyOnDemand(ctx, &awskms.RotateKeyOnDemandInput{KeyId: &id}); err != nil {
			t.Fatalf("on-demand rotation %d: %v", i+1, err)
		}
	}
	_, err = c.RotateKeyOnDemand(ctx, &awskms.RotateKeyOnDemandInput{KeyId: &id})
	wantCode(t, err, "LimitExceededException")
	// Automatic rotation goes on.
	env.Clock.Advance(91 * day)
	if got, err := env.Service.RotateDueKeys(ctx); err != nil || got != 1 {
		t.Fatalf("automatic rotation after the on-demand limit: %d (%v)", got, err)
	}

	// Disabled, rotation stops; the period is kept.
	if _, err := c.DisableKeyRotation(ctx, &awskms.DisableKeyRotationInput{KeyId: &id}); err != nil {
		t.Fatal(err)
	}
	st, err = c.GetKeyRotationStatus(ctx, &awskms.GetKeyRotationStatusInput{KeyId: &id})
	if err != nil {
		t.Fatal(err)
	}
	if st.KeyRotationEnabled || st.NextRotationDate != nil {
		t.Errorf("status after DisableKeyRotation = %+v", st)
	}
	env.Clock.Advance(400 * day)
	if got, err := env.Service.RotateDueKeys(ctx); err != nil || got != 0 {
		t.Fatalf("rotation disabled, yet %d keys rotated (%v)", got, err)
	}
}

// TestKeyRotationStates: rotation of disabled keys, keys pending deletion,
// and keys that cannot rotate.
func TestKeyRotationStates(t *testing.T) {
	env := kmstest.Start(t)
	ctx := context.Background()
	c := env.Client

	for _, spec := range []types.KeySpec{types.KeySpecRsa2048, types.KeySpecHmac256, types.KeySpecEccNistP256} {
		usage := types.KeyUsageTypeSignVerify
		if spec == types.KeySpecHmac256 {
			usage = types.KeyUsageTypeGenerateVerifyMac
		}
		out, err := c.CreateKey(ctx, &awskms.CreateKeyInput{KeySpec: spec, KeyUsage: usage})
		if err != nil {
			t.Fatal(err)
		}
		id := out.KeyMetadata.KeyId
		_, err = c.EnableKeyRotation(ctx, &awskms.EnableKeyRotationInput{KeyId: id})
		wantCode(t, err, "UnsupportedOperationException")
		_, err = c.GetKeyRotationStatus(ctx, &awskms.GetKeyRotationStatusInput{KeyId: id})
		wantCode(t, err, "UnsupportedOperationException")
		_, err = c.RotateKeyOnDemand(ctx, &awskms.RotateKeyOnDemandInput{KeyId: id})
		wantCode(t, err, "UnsupportedOperationException")
		_, err = c.ListKeyRotations(ctx, &awskms.ListKeyRotationsInput{KeyId: id})
		wantCode(t, err, "UnsupportedOperationException")
	}

	id := createKey(t, c, "states").KeyId
	for _, days := range []int32{89, 2561} {
		_, err := c.EnableKeyRotation(ctx, &awskms.EnableKeyRotationInput{KeyId: id, RotationPeriodInDays: aws.Int32(days)})
		wantCode(t, err, "ValidationException")
	}
	if _, err := c.EnableKeyRotation(ctx, &awskms.EnableKeyRotationInput{KeyId: id}); err != nil {
		t.Fatal(err)
	}
	st, err := c.GetKeyRotationStatus(ctx, &awskms.GetKeyRotationStatusInput{KeyId: id})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToInt32(st.RotationPeriodInDays) != 365 {
		t.Errorf("default period = %d, want 365", aws.ToInt32(st.RotationPeriodInDays))
	}

	// A disabled key refuses rotation changes and is not rotated when due;
	// enabled again, it rotates.
	if _, err := c.DisableKey(ctx, &awskms.DisableKeyInput{KeyId: id}); err != nil {
		t.Fatal(err)
	}
	_, err = c.EnableKeyRotation(ctx, &awskms.EnableKeyRotationInput{KeyId: id})
	wantCode(t, err, "DisabledException")
	_, err = c.DisableKeyRotation(ctx, &awskms.DisableKeyRotationInput{KeyId: id})
	wantCode(t, err, "DisabledException")
	_, err = c.RotateKeyOnDemand(ctx, &awskms.RotateKeyOnDemandInput{KeyId: id})
	wantCode(t, err, "DisabledException")
	if _, err := c.GetKeyRotationStatus(ctx, &awskms.GetKeyRotationStatusInput{KeyId: id}); err != nil {
		t.Errorf("GetKeyRotationStatus of a disabled key: %v", err)
	}
	if _, err := c.ListKeyRotations(ctx, &awskms.ListKeyRotationsInput{KeyId: id}); err != nil {
		t.Errorf("ListKeyRotations of a disabled key: %v", err)
	}
	env.Clock.Advance(366 * day)
	if got, err := env.Service.RotateDueKeys(ctx); err != nil || got != 0 {
		t.Fatalf("disabled key rotated: %d (%v)", got, err)
	}
	if _, err := c.EnableKey(ctx, &awskms.EnableKeyInput{KeyId: id}); err != nil {
		t.Fatal(err)
	}
	if got, err := env.Service.RotateDueKeys(ctx); err != nil || got != 1 {
		t.Fatalf("re-enabled due key: rotated %d (%v), want 1", got, err)
	}

	// Pending deletion: every rotation operation fails with KMSInvalidState.
	if _, err := c.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: id, PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	_, err = c.EnableKeyRotation(ctx, &awskms.EnableKeyRotationInput{KeyId: id})
	wantCode(t, err, "KMSInvalidStateException")
	_, err = c.DisableKeyRotation(ctx, &awskms.DisableKeyRotationInput{KeyId: id})
	wantCode(t, err, "KMSInvalidStateException")
	_, err = c.RotateKeyOnDemand(ctx, &awskms.RotateKeyOnDemandInput{KeyId: id})
	wantCode(t, err, "KMSInvalidStateException")
	_, err = c.GetKeyRotationStatus(ctx, &awskms.GetKeyRotationStatusInput{KeyId: id})
	wantCode(t, err, "KMSInvalidStateException")
	_, err = c.ListKeyRotations(ctx, &awskms.ListKeyRotationsInput{KeyId: id})
	wantCode(t, err, "KMSInvalidStateException")
	env.Clock.Advance(366 * day)
	if got, err := env.Service.RotateDueKeys(ctx); err != nil || got != 0 {
		t.Fatalf("key pending deletion rotated: %d (%v)", got, err)
	}

	_, err = c.RotateKeyOnDemand(ctx, &awskms.RotateKeyOnDemandInput{KeyId: aws.String("1234abcd-12ab-34cd-56ef-1234567890ab")})
	wantCode(t, err, "NotFoundException")
	// Rotation operations take a key id or key ARN, not an alias.
	_, err = c.RotateKeyOnDemand(ctx, &awskms.RotateKeyOnDemandInput{KeyId: aws.String("alias/some")})
	wantCode(t, err, "NotFoundException")
}
