package awsjson

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash/crc32"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/kms"
	"github.com/kmsd/kmsd/internal/store/backend"
)

// testScope is where the tests' requests act.
var testScope = kms.ScopeOf("us-east-1", "111122223333")

// newRoutes returns the routes of a real service on a temp data folder.
func newRoutes(tb testing.TB) (map[string]*Route, kms.Caller) {
	tb.Helper()
	dir := tb.TempDir()
	ks, err := keystore.OpenFile(filepath.Join(dir, "root.key"))
	if err != nil {
		tb.Fatal(err)
	}
	st, err := backend.Open(context.Background(), backend.Config{DataDir: dir})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	svc, err := kms.New(kms.Config{Store: st, Keystore: ks})
	if err != nil {
		tb.Fatal(err)
	}
	return Routes(svc), kms.Caller{Scope: testScope, ARN: "arn:aws:iam::111122223333:user/admin", Identity: adminIdentity(tb)}
}

// FuzzRequest feeds arbitrary bodies to every operation of a real service.
// A body may fail only with an AWS client error: never a panic, never an
// internal error; a body that succeeds gets a JSON object back.
//
// The seeds are testdata/fuzz/FuzzRequest, at least one per operation
// (TestFuzzRequestCorpus checks): each names its operation and a body that
// gets past validation into the operation. Bodies refer to keys and values
// made when the target starts (fuzzFixtures) by placeholders, since key ids,
// ciphertexts, signatures and tokens differ in every fuzzing process.
//
// An op that names no operation picks one by its hash, so that mutating the
// name explores other operations rather than being discarded. Operations
// change the service's state (a key scheduled for deletion stays so): every
// state must answer every body with a client error at worst.
func FuzzRequest(f *testing.F) {
	routes, caller := newRoutes(f)
	names := slices.Sorted(maps.Keys(routes))
	fixtures := fuzzFixtures(f, routes, caller)
	f.Fuzz(func(t *testing.T, op string, body []byte) {
		route := routes[op]
		if route == nil {
			op = names[crc32.ChecksumIEEE([]byte(op))%uint32(len(names))]
			route = routes[op]
		}
		body = []byte(fixtures.Replace(string(body)))
		out, err := route.Serve(context.Background(), caller, body)
		if err == nil {
			if !json.Valid(out) || !bytes.HasPrefix(out, []byte("{")) {
				t.Fatalf("%s(%q) = %q: not a JSON object", op, body, out)
			}
			return
		}
		var ae *awserr.Error
		if !errors.As(err, &ae) {
			t.Fatalf("%s(%q): internal error %v", op, body, err)
		}
		if ae.Code == awserr.KMSInternal {
			t.Fatalf("%s(%q): %v", op, body, err)
		}
	})
}

// fuzzFixtures makes the keys and values the seeds of FuzzRequest refer to,
// and returns what replaces each placeholder: @sym (a symmetric key, also
// alias/fuzz), @rsa, @sign (ECC_NIST_P256 signing), @hmac, @ecdh, @kem
// (ML_KEM_768), @ext (EXTERNAL origin, awaiting import), @scratch (a
// symmetric key for the lifecycle operations), @blob (a ciphertext of @sym
// with context a=b), @sig (@sign's ECDSA_SHA_256 signature of "hello"),
// @mac (@hmac's HMAC_SHA_256 of "hello"), @ecdhpub (@ecdh's public key),
// @kemct (an encapsulation under @kem), @grantid and @granttoken (a grant
// of @sym), @importtoken and @wrapped (import parameters of @ext and 32
// bytes of key material wrapped for them with RSAES_OAEP_SHA_256), @validto
// (a ValidTo 30 days ahead).
func fuzzFixtures(tb testing.TB, routes map[string]*Route, caller kms.Caller) *strings.Replacer {
	tb.Helper()
	call := func(op, body string) map[string]any {
		tb.Helper()
		out, err := routes[op].Serve(context.Background(), caller, []byte(body))
		if err != nil {
			tb.Fatalf("fixture %s %s: %v", op, body, err)
		}
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			tb.Fatal(err)
		}
		return m
	}
	str := func(m map[string]any, member string) string {
		tb.Helper()
		s, ok := m[member].(string)
		if !ok {
			tb.Fatalf("fixture: no %s in %v", member, m)
		}
		return s
	}
	key := func(body, alias string) string {
		id := str(call("CreateKey", body)["KeyMetadata"].(map[string]any), "KeyId")
		if alias != "" {
			call("CreateAlias", `{"AliasName":"`+alias+`","TargetKeyId":"`+id+`"}`)
		}
		return id
	}
	sym := key(`{}`, "alias/fuzz")
	rsaKey := key(`{"KeySpec":"RSA_2048","KeyUsage":"ENCRYPT_DECRYPT"}`, "alias/fuzz-rsa")
	sign := key(`{"KeySpec":"ECC_NIST_P256","KeyUsage":"SIGN_VERIFY"}`, "alias/fuzz-sign")
	hmacKey := key(`{"KeySpec":"HMAC_256","KeyUsage":"GENERATE_VERIFY_MAC"}`, "alias/fuzz-hmac")
	ecdh := key(`{"KeySpec":"ECC_NIST_P256","KeyUsage":"KEY_AGREEMENT"}`, "alias/fuzz-ecdh")
	kem := key(`{"KeySpec":"ML_KEM_768","KeyUsage":"ENCAPSULATE_DECAPSULATE"}`, "alias/fuzz-kem")
	ext := key(`{"Origin":"EXTERNAL"}`, "")
	scratch := key(`{}`, "alias/fuzz-scratch")

	blob := str(call("Encrypt", `{"KeyId":"`+sym+`","Plaintext":"aGVsbG8=","EncryptionContext":{"a":"b"}}`), "CiphertextBlob")
	sig := str(call("Sign", `{"KeyId":"`+sign+`","Message":"aGVsbG8=","MessageType":"RAW","SigningAlgorithm":"ECDSA_SHA_256"}`), "Signature")
	mac := str(call("GenerateMac", `{"KeyId":"`+hmacKey+`","Message":"aGVsbG8=","MacAlgorithm":"HMAC_SHA_256"}`), "Mac")
	ecdhPub := str(call("GetPublicKey", `{"KeyId":"`+ecdh+`"}`), "PublicKey")
	kemCT := str(call("Encapsulate", `{"KeyId":"`+kem+`","EncapsulationAlgorithm":"ML_KEM"}`), "SharedSecretCiphertextBlob")
	grant := call("CreateGrant", `{"KeyId":"`+sym+`","GranteePrincipal":"arn:aws:iam::111122223333:user/bob","Operations":["Encrypt","Decrypt","RetireGrant"]}`)

	params := call("GetParametersForImport", `{"KeyId":"`+ext+`","WrappingAlgorithm":"RSAES_OAEP_SHA_256","WrappingKeySpec":"RSA_2048"}`)
	der, err := base64.StdEncoding.DecodeString(str(params, "PublicKey"))
	if err != nil {
		tb.Fatal(err)
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		tb.Fatal(err)
	}
	wrapped, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub.(*rsa.PublicKey), bytes.Repeat([]byte{0x42}, 32), nil)
	if err != nil {
		tb.Fatal(err)
	}

	return strings.NewReplacer(
		"@sym", sym, "@rsa", rsaKey, "@sign", sign, "@hmac", hmacKey, "@ecdhpub", ecdhPub, "@ecdh", ecdh,
		"@kemct", kemCT, "@kem", kem, "@ext", ext, "@scratch", scratch, "@blob", blob, "@sig", sig, "@mac", mac,
		"@grantid", str(grant, "GrantId"), "@granttoken", str(grant, "GrantToken"),
		"@importtoken", str(params, "ImportToken"), "@wrapped", base64.StdEncoding.EncodeToString(wrapped),
		"@validto", strconv.FormatInt(time.Now().Add(30*24*time.Hour).Unix(), 10),
	)
}

// TestFuzzRequestCorpus checks that FuzzRequest has a seed for every
// operation, so that a new operation is fuzzed from a body that reaches it.
func TestFuzzRequestCorpus(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzRequest", "*"))
	if err != nil {
		t.Fatal(err)
	}
	seeded := map[string]bool{}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		// go test fuzz v1, then one line per argument: string("Op") and
		// []byte("body").
		lines := strings.Split(string(b), "\n")
		if len(lines) < 3 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "string(") || !strings.HasPrefix(lines[2], "[]byte(") {
			t.Fatalf("%s: not a FuzzRequest corpus file", file)
		}
		op, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "string("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		seeded[op] = true
	}
	routes, _ := newRoutes(t)
	for name := range routes {
		if !seeded[name] {
			t.Errorf("no seed in testdata/fuzz/FuzzRequest for %s", name)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	routes, caller := newRoutes(t)
	for body, code := range map[string]string{
		`[]`:                            awserr.Serialization,
		`{} {}`:                         awserr.Serialization,
		`{"KeyId":`:                     awserr.Serialization,
		`{"KeyId":5}`:                   awserr.Serialization,
		`{"KeyId":"x","Plaintext":"*"}`: awserr.Serialization,
		`{"KeyId":"x"}`:                 awserr.Validation,
	} {
		_, err := routes["Encrypt"].Serve(context.Background(), caller, []byte(body))
		if got := awserr.CodeOf(err); got != code {
			t.Errorf("Encrypt(%s) = %s (%v), want %s", body, got, err, code)
		}
	}
}
