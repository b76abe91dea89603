package loadgen

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"strings"
)

// Op is one workload the load generator runs: an operation and the spec
// of the key it uses (ECC_NIST_P256 for "sign:ECC_NIST_P256").
type Op struct {
	Name string
	Spec string
}

// String returns the op as ParseOps reads it.
func (o Op) String() string {
	if o.Spec == "" || o.Spec == kinds[o.Name].defaultSpec && o.Name != "sign" && o.Name != "verify" {
		return o.Name
	}
	return o.Name + ":" + o.Spec
}

// Key specs and algorithms of AWS KMS that the load generator names.
const (
	specSymmetric = "SYMMETRIC_DEFAULT"
	specP256      = "ECC_NIST_P256"
	specHMAC256   = "HMAC_256"

	usageEncrypt = "ENCRYPT_DECRYPT"
	usageSign    = "SIGN_VERIFY"
	usageMAC     = "GENERATE_VERIFY_MAC"
)

// signingAlgorithms is the algorithm the load generator signs with, by key
// spec: the one AWS KMS offers (the first for RSA and Ed25519, RAW
// messages).
var signingAlgorithms = map[string]string{
	"ECC_NIST_P256":         "ECDSA_SHA_256",
	"ECC_NIST_P384":         "ECDSA_SHA_384",
	"ECC_NIST_P521":         "ECDSA_SHA_512",
	"ECC_SECG_P256K1":       "ECDSA_SHA_256",
	"ECC_NIST_EDWARDS25519": "ED25519_SHA_512",
	"RSA_2048":              "RSASSA_PKCS1_V1_5_SHA_256",
	"RSA_3072":              "RSASSA_PKCS1_V1_5_SHA_256",
	"RSA_4096":              "RSASSA_PKCS1_V1_5_SHA_256",
	"ML_DSA_44":             "ML_DSA_SHAKE_256",
	"ML_DSA_65":             "ML_DSA_SHAKE_256",
	"ML_DSA_87":             "ML_DSA_SHAKE_256",
}

// macAlgorithms is the MAC algorithm of each HMAC key spec.
var macAlgorithms = map[string]string{
	"HMAC_224": "HMAC_SHA_224",
	"HMAC_256": "HMAC_SHA_256",
	"HMAC_384": "HMAC_SHA_384",
	"HMAC_512": "HMAC_SHA_512",
}

// usageOf returns the key usage the load generator creates keys of spec
// with.
func usageOf(spec string) string {
	switch {
	case spec == specSymmetric:
		return usageEncrypt
	case macAlgorithms[spec] != "":
		return usageMAC
	default:
		return usageSign
	}
}

// kind describes one op name.
type kind struct {
	defaultSpec string
	// specOK reports whether the op can run with a key of spec.
	specOK func(spec string) bool
	// mix is the blend of a profile: label and weight of each operation.
	mix []mixPart
}

type mixPart struct {
	op     string
	weight int
}

func symmetricOnly(spec string) bool { return spec == specSymmetric }
func signingSpec(spec string) bool   { return signingAlgorithms[spec] != "" }
func macSpec(spec string) bool       { return macAlgorithms[spec] != "" }
func anySpec(spec string) bool       { return spec == specSymmetric || signingSpec(spec) || macSpec(spec) }

var kinds = map[string]kind{
	"encrypt":           {specSymmetric, symmetricOnly, nil},
	"decrypt":           {specSymmetric, symmetricOnly, nil},
	"generate-data-key": {specSymmetric, symmetricOnly, nil},
	"describe-key":      {specSymmetric, anySpec, nil},
	"sign":              {specP256, signingSpec, nil},
	"verify":            {specP256, signingSpec, nil},
	"generate-mac":      {specHMAC256, macSpec, nil},
	"create-key":        {specSymmetric, anySpec, nil},
	// mixed is a service's typical traffic: mostly decrypt (reading
	// envelope-encrypted data), data keys (writing it), some direct
	// encrypts of small secrets, and an occasional DescribeKey (clients
	// checking a key, Terraform refreshing state). All on one symmetric
	// key.
	"mixed": {specSymmetric, symmetricOnly, []mixPart{
		{"decrypt", 50}, {"generate-data-key", 30}, {"encrypt", 15}, {"describe-key", 5},
	}},
}

// OpNames lists the op names ParseOps accepts.
func OpNames() []string {
	names := make([]string, 0, len(kinds))
	for n := range kinds {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ParseOps reads a comma-separated list of ops, each NAME or NAME:SPEC
// ("encrypt,sign:ECC_NIST_EDWARDS25519"). signSpec is the spec of sign
// and verify without one.
func ParseOps(list, signSpec string) ([]Op, error) {
	var ops []Op
	for s := range strings.SplitSeq(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		name, spec, _ := strings.Cut(s, ":")
		k, ok := kinds[name]
		if !ok {
			return nil, fmt.Errorf("unknown op %q (ops: %s)", name, strings.Join(OpNames(), ", "))
		}
		if spec == "" {
			spec = k.defaultSpec
			if name == "sign" || name == "verify" {
				spec = signSpec
			}
		}
		if !k.specOK(spec) {
			return nil, fmt.Errorf("op %s: key spec %q does not fit (or is not one the load generator knows)", name, spec)
		}
		ops = append(ops, Op{Name: name, Spec: spec})
	}
	if len(ops) == 0 {
		return nil, fmt.Errorf("no op given (ops: %s)", strings.Join(OpNames(), ", "))
	}
	return ops, nil
}

// benchContext is the encryption context of every encrypt, decrypt and
// data key request: real envelope-encryption clients always send one.
var benchContext = map[string]string{"purpose": "kmsd-bench"}

// key is a key the workload uses on one target.
type key struct {
	id, arn, spec string
	// pub is the public key of an asymmetric key as GetPublicKey returned
	// it, when crypto/x509 can parse it (nil for secp256k1 and ML-DSA).
	pub crypto.PublicKey
}

// The answers the load generator decodes (members it checks only).
type (
	keyMetadata struct {
		KeyId, Arn, KeySpec, KeyUsage, KeyState string
	}
	metadataOut struct{ KeyMetadata keyMetadata }
	encryptOut  struct {
		CiphertextBlob []byte
		KeyId          string
	}
	decryptOut struct {
		Plaintext []byte
		KeyId     string
	}
	dataKeyOut struct {
		Plaintext, CiphertextBlob []byte
		KeyId                     string
	}
	signOut struct {
		Signature        []byte
		KeyId            string
		SigningAlgorithm string
	}
	verifyOut struct {
		SignatureValid bool
		KeyId          string
	}
	macOut struct {
		Mac   []byte
		KeyId string
	}
	publicKeyOut struct {
		PublicKey []byte
		KeySpec   string
	}
)

// request is one prepared request: the KMS operation, its body and the
// check of a successful answer.
type request struct {
	api   string // e.g. "Encrypt"
	label int    // index in workload.labels
	body  []byte
	check func(answer []byte, n uint64) error // n counts the worker's answers
}

// workload is what the workers of one target send for one op: for each
// worker, one request per label, picked by weight.
type workload struct {
	labels []string
	cum    []int // cumulative weights, by label
	reqs   [][]*request
}

// targetState holds what the load generator created on one target: its
// keys by spec, reused across ops.
type targetState struct {
	c    *client
	keys map[string]*key
}

// keyFor returns the key an op of spec uses on the target: the target's
// KeyID, or one created for the run.
func (ts *targetState) keyFor(ctx context.Context, spec string) (*key, error) {
	if k := ts.keys[spec]; k != nil {
		return k, nil
	}
	if ts.c.target.KeyID != "" {
		return nil, fmt.Errorf("target %s: key %s is not a %s key, which this op needs", ts.c.target.Name, ts.c.target.KeyID, spec)
	}
	var out metadataOut
	if err := ts.c.call(ctx, "CreateKey", createKeyIn(spec), &out); err != nil {
		return nil, err
	}
	m := out.KeyMetadata
	if m.KeyId == "" || m.Arn == "" || m.KeySpec != spec {
		return nil, fmt.Errorf("CreateKey on %s: %w", ts.c.target.Name, malformed("KeyMetadata %+v", m))
	}
	k := &key{id: m.KeyId, arn: m.Arn, spec: spec}
	if err := ts.fetchPublicKey(ctx, k); err != nil {
		return nil, err
	}
	ts.keys[spec] = k
	return k, nil
}

// describeTargetKey looks up the target's own KeyID (DescribeKey) and
// keeps it as the key of its spec.
func (ts *targetState) describeTargetKey(ctx context.Context) (*key, error) {
	var out metadataOut
	if err := ts.c.call(ctx, "DescribeKey", map[string]any{"KeyId": ts.c.target.KeyID}, &out); err != nil {
		return nil, err
	}
	m := out.KeyMetadata
	if m.Arn == "" || m.KeySpec == "" {
		return nil, fmt.Errorf("DescribeKey on %s: %w", ts.c.target.Name, malformed("KeyMetadata %+v", m))
	}
	if m.KeyState != "Enabled" {
		return nil, fmt.Errorf("key %s on %s is %s, not Enabled", ts.c.target.KeyID, ts.c.target.Name, m.KeyState)
	}
	k := &key{id: ts.c.target.KeyID, arn: m.Arn, spec: m.KeySpec}
	if err := ts.fetchPublicKey(ctx, k); err != nil {
		return nil, err
	}
	ts.keys[m.KeySpec] = k
	return k, nil
}

// fetchPublicKey reads the public key of a signing key, for checking
// signatures locally.
func (ts *targetState) fetchPublicKey(ctx context.Context, k *key) error {
	if !signingSpec(k.spec) {
		return nil
	}
	var out publicKeyOut
	if err := ts.c.call(ctx, "GetPublicKey", map[string]any{"KeyId": k.id}, &out); err != nil {
		return err
	}
	if pub, err := x509.ParsePKIXPublicKey(out.PublicKey); err == nil {
		k.pub = pub
	}
	return nil
}

func createKeyIn(spec string) map[string]any {
	return map[string]any{"KeySpec": spec, "KeyUsage": usageOf(spec), "Description": "kmsd bench"}
}

// prepare builds the workload of op on one target for concurrency
// workers: it creates (or describes) the key and makes the requests, with
// what their answers must be.
func prepare(ctx context.Context, ts *targetState, op Op, concurrency, size int) (*workload, error) {
	k := &key{spec: op.Spec} // CreateKey needs none
	if op.Name != "create-key" {
		var err error
		if k, err = ts.keyFor(ctx, op.Spec); err != nil {
			return nil, err
		}
	}
	parts := kinds[op.Name].mix
	if parts == nil {
		parts = []mixPart{{op.Name, 1}}
	}
	w := &workload{reqs: make([][]*request, concurrency)}
	total := 0
	for _, p := range parts {
		w.labels = append(w.labels, p.op)
		total += p.weight
		w.cum = append(w.cum, total)
	}
	for i := range concurrency {
		for label, p := range parts {
			r, err := prepareOne(ctx, ts, p.op, k, size)
			if err != nil {
				return nil, fmt.Errorf("preparing %s on %s: %w", p.op, ts.c.target.Name, err)
			}
			r.label = label
			w.reqs[i] = append(w.reqs[i], r)
		}
	}
	return w, nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only maps of strings and byte slices
	}
	return b
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// decodeAnswer decodes a successful answer into out.
func decodeAnswer(b []byte, out any) error {
	if err := json.Unmarshal(b, out); err != nil {
		return malformed("answer is not JSON: %v", err)
	}
	return nil
}

func checkKeyID(got string, k *key) error {
	if got != k.arn {
		return mismatch("KeyId %q, want %q", got, k.arn)
	}
	return nil
}

// prepareOne makes one worker's request of operation name on key k.
func prepareOne(ctx context.Context, ts *targetState, name string, k *key, size int) (*request, error) {
	switch name {
	case "encrypt":
		pt := randomBytes(size)
		return &request{api: "Encrypt", body: mustJSON(map[string]any{"KeyId": k.id, "Plaintext": pt, "EncryptionContext": benchContext}),
			check: func(b []byte, _ uint64) error {
				var out encryptOut
				if err := decodeAnswer(b, &out); err != nil {
					return err
				}
				if len(out.CiphertextBlob) <= len(pt) {
					return malformed("CiphertextBlob of %d bytes for a %d-byte plaintext", len(out.CiphertextBlob), len(pt))
				}
				return checkKeyID(out.KeyId, k)
			}}, nil

	case "decrypt":
		pt := randomBytes(size)
		var enc encryptOut
		if err := ts.c.call(ctx, "Encrypt", map[string]any{"KeyId": k.id, "Plaintext": pt, "EncryptionContext": benchContext}, &enc); err != nil {
			return nil, err
		}
		return &request{api: "Decrypt", body: mustJSON(map[string]any{"CiphertextBlob": enc.CiphertextBlob, "EncryptionContext": benchContext}),
			check: func(b []byte, _ uint64) error {
				var out decryptOut
				if err := decodeAnswer(b, &out); err != nil {
					return err
				}
				if !bytes.Equal(out.Plaintext, pt) {
					return mismatch("Decrypt returned a plaintext other than the one encrypted")
				}
				return checkKeyID(out.KeyId, k)
			}}, nil

	case "generate-data-key":
		return &request{api: "GenerateDataKey", body: mustJSON(map[string]any{"KeyId": k.id, "KeySpec": "AES_256", "EncryptionContext": benchContext}),
			check: func(b []byte, _ uint64) error {
				var out dataKeyOut
				if err := decodeAnswer(b, &out); err != nil {
					return err
				}
				if len(out.Plaintext) != 32 || len(out.CiphertextBlob) <= 32 {
					return malformed("data key of %d bytes, CiphertextBlob of %d", len(out.Plaintext), len(out.CiphertextBlob))
				}
				return checkKeyID(out.KeyId, k)
			}}, nil

	case "describe-key":
		return &request{api: "DescribeKey", body: mustJSON(map[string]any{"KeyId": k.id}),
			check: func(b []byte, _ uint64) error {
				var out metadataOut
				if err := decodeAnswer(b, &out); err != nil {
					return err
				}
				if out.KeyMetadata.KeyState != "Enabled" {
					return mismatch("KeyState %q", out.KeyMetadata.KeyState)
				}
				return checkKeyID(out.KeyMetadata.Arn, k)
			}}, nil

	case "create-key":
		spec := k.spec
		return &request{api: "CreateKey", body: mustJSON(createKeyIn(spec)),
			check: func(b []byte, _ uint64) error {
				var out metadataOut
				if err := decodeAnswer(b, &out); err != nil {
					return err
				}
				m := out.KeyMetadata
				if m.KeyId == "" || m.KeyState != "Enabled" || m.KeySpec != spec {
					return mismatch("KeyMetadata %+v, want an Enabled %s key", m, spec)
				}
				return nil
			}}, nil

	case "generate-mac":
		msg := randomBytes(size)
		alg := macAlgorithms[k.spec]
		in := map[string]any{"KeyId": k.id, "Message": msg, "MacAlgorithm": alg}
		// HMAC is deterministic: every answer must be the first one.
		var ref macOut
		if err := ts.c.call(ctx, "GenerateMac", in, &ref); err != nil {
			return nil, err
		}
		if len(ref.Mac) == 0 {
			return nil, malformed("GenerateMac returned no Mac")
		}
		return &request{api: "GenerateMac", body: mustJSON(in),
			check: func(b []byte, _ uint64) error {
				var out macOut
				if err := decodeAnswer(b, &out); err != nil {
					return err
				}
				if !bytes.Equal(out.Mac, ref.Mac) {
					return mismatch("GenerateMac returned another MAC for the same key and message")
				}
				return checkKeyID(out.KeyId, k)
			}}, nil

	case "sign", "verify":
		msg := randomBytes(size)
		alg := signingAlgorithms[k.spec]
		in := map[string]any{"KeyId": k.id, "Message": msg, "MessageType": "RAW", "SigningAlgorithm": alg}
		var ref signOut
		if err := ts.c.call(ctx, "Sign", in, &ref); err != nil {
			return nil, err
		}
		if err := checkSignatureOnce(ctx, ts, k, alg, msg, ref.Signature); err != nil {
			return nil, err
		}
		if name == "verify" {
			in["Signature"] = ref.Signature
			return &request{api: "Verify", body: mustJSON(in),
				check: func(b []byte, _ uint64) error {
					var out verifyOut
					if err := decodeAnswer(b, &out); err != nil {
						return err
					}
					if !out.SignatureValid {
						return mismatch("Verify says a valid signature is not")
					}
					return checkKeyID(out.KeyId, k)
				}}, nil
		}
		deterministic := strings.HasPrefix(alg, "ED25519") || strings.HasPrefix(alg, "RSASSA_PKCS1")
		return &request{api: "Sign", body: mustJSON(in),
			check: func(b []byte, n uint64) error {
				var out signOut
				if err := decodeAnswer(b, &out); err != nil {
					return err
				}
				if out.SigningAlgorithm != alg {
					return mismatch("SigningAlgorithm %q, want %q", out.SigningAlgorithm, alg)
				}
				if err := checkKeyID(out.KeyId, k); err != nil {
					return err
				}
				switch {
				case deterministic:
					// Ed25519 and PKCS #1 v1.5 signatures are deterministic.
					if !bytes.Equal(out.Signature, ref.Signature) {
						return mismatch("another signature of the same message by a deterministic algorithm")
					}
				case strings.HasPrefix(alg, "ECDSA"):
					// Every answer is parsed; one in 32 is verified with the
					// public key, which costs the client more than the
					// server's signing (a full check would halve the load a
					// two-core machine can give).
					if !isDERSignature(out.Signature) {
						return malformed("signature is not a DER ECDSA signature")
					}
					if n%32 == 0 && k.pub != nil {
						if err := verifyLocally(k.pub, alg, msg, out.Signature); err != nil {
							return err
						}
					}
				case len(out.Signature) == 0:
					return malformed("empty signature")
				}
				return nil
			}}, nil
	}
	return nil, fmt.Errorf("unknown operation %q", name)
}

// checkSignatureOnce checks the setup's signature: locally with the public
// key when crypto/x509 parses it, else with the server's own Verify.
func checkSignatureOnce(ctx context.Context, ts *targetState, k *key, alg string, msg, sig []byte) error {
	if k.pub != nil {
		return verifyLocally(k.pub, alg, msg, sig)
	}
	var out verifyOut
	in := map[string]any{"KeyId": k.id, "Message": msg, "MessageType": "RAW", "SigningAlgorithm": alg, "Signature": sig}
	if err := ts.c.call(ctx, "Verify", in, &out); err != nil {
		return err
	}
	if !out.SignatureValid {
		return mismatch("Verify says the signature Sign returned is not valid")
	}
	return nil
}

// verifyLocally checks a signature by alg of msg with pub.
func verifyLocally(pub crypto.PublicKey, alg string, msg, sig []byte) error {
	ok := false
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		d, _ := digestFor(alg, msg)
		ok = ecdsa.VerifyASN1(p, d, sig)
	case ed25519.PublicKey:
		ok = ed25519.Verify(p, msg, sig)
	case *rsa.PublicKey:
		d, h := digestFor(alg, msg)
		if strings.HasPrefix(alg, "RSASSA_PSS") {
			ok = rsa.VerifyPSS(p, h, d, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
		} else {
			ok = rsa.VerifyPKCS1v15(p, h, d, sig) == nil
		}
	default:
		return nil
	}
	if !ok {
		return mismatch("the %s signature does not verify with the key's public key", alg)
	}
	return nil
}

// digestFor hashes msg with the hash of signing algorithm alg.
func digestFor(alg string, msg []byte) ([]byte, crypto.Hash) {
	switch {
	case strings.HasSuffix(alg, "_384"):
		d := sha512.Sum384(msg)
		return d[:], crypto.SHA384
	case strings.HasSuffix(alg, "_512"):
		d := sha512.Sum512(msg)
		return d[:], crypto.SHA512
	}
	d := sha256.Sum256(msg)
	return d[:], crypto.SHA256
}

// isDERSignature reports whether sig is an ASN.1 SEQUENCE of two positive
// INTEGERs, as ECDSA signatures are on the wire.
func isDERSignature(sig []byte) bool {
	var s struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(sig, &s)
	return err == nil && len(rest) == 0 && s.R.Sign() > 0 && s.S.Sign() > 0
}
