package awsjson

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/kms"
	"github.com/kmsd/kmsd/internal/store/backend"
)

// testScope is where the tests' requests act.
var testScope = kms.Scope{Partition: kms.Partition, Region: "us-east-1", Account: "111122223333"}

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

// FuzzRequest feeds arbitrary bodies to every operation. A body may fail
// only with an AWS client error: never a panic, never an internal error.
func FuzzRequest(f *testing.F) {
	routes, caller := newRoutes(f)
	names := make([]string, 0, len(routes))
	for n := range routes {
		names = append(names, n)
	}
	seeds := []string{
		``, `{}`, `[]`, `null`, `{"KeyId":1}`, `{"KeyId":"alias/x"}`, `{"Plaintext":"!!"}`,
		`{"KeyId":"11111111-2222-3333-4444-555555555555","Plaintext":"aGVsbG8="}`,
		`{"CiphertextBlob":"AQIDBA==","EncryptionContext":{"a":"b"}}`,
		`{"CiphertextBlob":"AQIDBA==","EncryptionContext":{"a":1}}`,
		`{"NumberOfBytes":1.5}`, `{"NumberOfBytes":99999999999}`, `{"Limit":-1,"Marker":"\u0000"}`,
		`{"AliasName":"alias/a","TargetKeyId":"arn:aws:kms:us-east-1:111122223333:alias/a"}`,
		`{"Tags":[{"TagKey":"aws:x","TagValue":"y"}]}`, `{"Policy":"{}"}`, `{} trailing`, `{"a":`,
	}
	for i, s := range seeds {
		f.Add(uint8(i), []byte(s))
	}
	f.Fuzz(func(t *testing.T, op uint8, body []byte) {
		name := names[int(op)%len(names)]
		_, err := routes[name].Serve(context.Background(), caller, body)
		if err == nil {
			return
		}
		var ae *awserr.Error
		if !errors.As(err, &ae) {
			t.Fatalf("%s(%q): internal error %v", name, body, err)
		}
		if ae.Code == awserr.KMSInternal {
			t.Fatalf("%s(%q): %v", name, body, err)
		}
	})
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
