package awsjson

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"testing"
)

// cloudTrailReadOnly are the operations whose CloudTrail events AWS marks
// "readOnly": true (the AWS KMS Developer Guide's examples of CloudTrail
// log entries). They change no state; the cryptographic ones only compute.
var cloudTrailReadOnly = []string{
	"DescribeKey", "ListKeys", "ListAliases", "ListResourceTags", "DescribeCustomKeyStores", "GetKeyPolicy",
	"ListKeyPolicies", "ListGrants", "ListRetirableGrants", "GetPublicKey", "GetKeyRotationStatus", "ListKeyRotations",
	"GetParametersForImport", "GetKeyLastUsage",
	"Encrypt", "Decrypt", "ReEncrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "GenerateDataKeyPair",
	"GenerateDataKeyPairWithoutPlaintext", "GenerateRandom", "Sign", "Verify", "GenerateMac", "VerifyMac",
	"DeriveSharedSecret", "Encapsulate", "Decapsulate",
}

// awsOperations are the 56 operations of the AWS KMS API
// (aws-sdk-go-v2/service/kms v1.62: its api_op_*.go files).
var awsOperations = []string{
	"CancelKeyDeletion", "ConnectCustomKeyStore", "CreateAlias", "CreateCustomKeyStore", "CreateGrant", "CreateKey",
	"Decapsulate", "Decrypt", "DeleteAlias", "DeleteCustomKeyStore", "DeleteImportedKeyMaterial", "DeriveSharedSecret",
	"DescribeCustomKeyStores", "DescribeKey", "DisableKey", "DisableKeyRotation", "DisconnectCustomKeyStore", "EnableKey",
	"EnableKeyRotation", "Encapsulate", "Encrypt", "GenerateDataKey", "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext",
	"GenerateDataKeyWithoutPlaintext", "GenerateMac", "GenerateRandom", "GetKeyLastUsage", "GetKeyPolicy", "GetKeyRotationStatus",
	"GetParametersForImport", "GetPublicKey", "ImportKeyMaterial", "ListAliases", "ListGrants", "ListKeyPolicies",
	"ListKeyRotations", "ListKeys", "ListResourceTags", "ListRetirableGrants", "PutKeyPolicy", "ReEncrypt",
	"ReplicateKey", "RetireGrant", "RevokeGrant", "RotateKeyOnDemand", "ScheduleKeyDeletion", "Sign",
	"TagResource", "UntagResource", "UpdateAlias", "UpdateCustomKeyStore", "UpdateKeyDescription", "UpdatePrimaryRegion",
	"Verify", "VerifyMac",
}

// zeroedMembers are the members that carry a secret an operation must
// clear once it has been used or written out.
var zeroedMembers = []string{"Plaintext", "PrivateKeyPlaintext", "SharedSecret"}

// neverAudited are members no audit record may carry, besides every blob
// (see auditable): bearer credentials and the custom key store's PIN.
var neverAudited = []string{"GrantToken", "GrantTokens", "KeyStorePassword"}

// TestOperationTable checks every operation's declaration: each has every
// part, its rule is its own, its read-only mark is CloudTrail's, its audited
// members exist and hold no secret, and the secrets it handles are zeroed.
func TestOperationTable(t *testing.T) {
	seen := map[string]bool{}
	for _, o := range operations {
		name := o.name
		if name == "" || seen[name] {
			t.Errorf("operation %q: no name, or declared twice", name)
		}
		seen[name] = true
		if o.limit <= 0 || !o.validates || !o.calls || len(o.auditNames) == 0 {
			t.Errorf("%s: declared without a body limit, validation, call or audited request members", name)
		}
		// Two operations may share an input type (GenerateDataKey and
		// GenerateDataKeyWithoutPlaintext): the compiler cannot tell
		// their rules apart, this can.
		if o.authzOp != name {
			t.Errorf("%s: authorized by the rule of %q", name, o.authzOp)
		}
		if want := slices.Contains(cloudTrailReadOnly, name); o.readOnly != want {
			t.Errorf("%s: ReadOnly is %v, CloudTrail's readOnly is %v", name, o.readOnly, want)
		}
		if o.readOnly && len(o.responseNames) > 0 {
			t.Errorf("%s: read-only, so its response members %v would never be recorded", name, o.responseNames)
		}
		checkAudited(t, name, "request", o.inType, o.auditNames)
		checkAudited(t, name, "response", o.outType, o.responseNames)
		checkZeroed(t, name, "request", o.inType, o.zeroIn)
		checkZeroed(t, name, "response", o.outType, o.zeroOut)
	}
	for _, name := range cloudTrailReadOnly {
		if !seen[name] {
			t.Errorf("CloudTrail's read-only %s is not served", name)
		}
	}
	if len(awsOperations) != 56 {
		t.Fatalf("awsOperations lists %d operations, want 56", len(awsOperations))
	}
	for _, name := range awsOperations {
		if !seen[name] {
			t.Errorf("%s, an operation of the AWS KMS API, is not served", name)
		}
	}
	if len(seen) != len(awsOperations) {
		t.Errorf("%d operations served, the AWS KMS API has %d", len(seen), len(awsOperations))
	}
}

// structOf returns the struct type of an input or output type (*T or T).
func structOf(t reflect.Type) reflect.Type {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// checkAudited: every audited member is a member of the struct, and none
// can hold a secret.
func checkAudited(t *testing.T, op, what string, typ reflect.Type, names []string) {
	t.Helper()
	st := structOf(typ)
	for _, n := range names {
		f, ok := st.FieldByName(n)
		if !ok {
			t.Errorf("%s: audited %s member %s is not a member of %v", op, what, n, st)
			continue
		}
		if slices.Contains(neverAudited, n) || holdsBlob(f.Type) {
			t.Errorf("%s: audited %s member %s may hold a secret", op, what, n)
		}
	}
}

// holdsBlob reports whether values of t may hold bytes: plaintext,
// ciphertext, a message, signature, MAC, public key, import material or
// attestation are all blobs.
func holdsBlob(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Slice:
		return t.Elem().Kind() == reflect.Uint8 || holdsBlob(t.Elem())
	case reflect.Array, reflect.Pointer:
		return holdsBlob(t.Elem())
	case reflect.Map:
		return holdsBlob(t.Key()) || holdsBlob(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if holdsBlob(t.Field(i).Type) {
				return true
			}
		}
	}
	return false
}

// checkZeroed: when the struct has a secret member, zero clears it.
func checkZeroed(t *testing.T, op, what string, typ reflect.Type, zero func(any)) {
	t.Helper()
	st := structOf(typ)
	v := reflect.New(st)
	var secrets [][]byte
	for _, n := range zeroedMembers {
		if f := v.Elem().FieldByName(n); f.IsValid() && f.Type() == reflect.TypeFor[[]byte]() {
			b := []byte("secret")
			f.SetBytes(b)
			secrets = append(secrets, b)
		}
	}
	if len(secrets) == 0 {
		return
	}
	if zero == nil {
		t.Errorf("%s: its %s holds a secret that is never zeroed", op, what)
		return
	}
	arg := v
	if typ.Kind() != reflect.Pointer {
		arg = v.Elem()
	}
	zero(arg.Interface())
	for _, b := range secrets {
		if !bytes.Equal(b, make([]byte, len(b))) {
			t.Errorf("%s: the secret of its %s is not zeroed", op, what)
		}
	}
}

// TestAuditedMembers: a record carries the listed members only, as the
// operation decoded them (names match case-insensitively, the last
// duplicate wins), and nothing of a body that is not a JSON object.
func TestAuditedMembers(t *testing.T) {
	m := newMembers([]string{"KeyId", "EncryptionContext"})
	got := m.of([]byte(`{"KeyId":"alias/a","Plaintext":"c2VjcmV0","keyid":"alias/b","EncryptionContext":{"k":"v"}}`))
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"encryptionContext":{"k":"v"},"keyId":"alias/b"}`; string(b) != want {
		t.Errorf("audited %s, want %s", b, want)
	}
	for _, body := range []string{``, `[]`, `{"KeyId":`, `{"Plaintext":"c2VjcmV0"}`} {
		if got := m.of([]byte(body)); got != nil {
			t.Errorf("audited %v of %q", got, body)
		}
	}
	if got := newMembers(nil).of([]byte(`{"KeyId":"x"}`)); got != nil {
		t.Errorf("an empty allow-list audited %v", got)
	}
}
