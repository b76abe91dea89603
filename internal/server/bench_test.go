package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/kmstest"
)

// signedRequest builds a request signed the way aws-sdk-go-v2 signs KMS
// calls. A signature stays valid for the 15-minute skew window, so a
// benchmark can replay one request.
func signedRequest(tb testing.TB, env *kmstest.Env, op string, body []byte) *http.Request {
	tb.Helper()
	r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:4599/", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/x-amz-json-1.1")
	r.Header.Set("X-Amz-Target", "TrentService."+op)
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: env.AccessKeyID, SecretAccessKey: env.Secret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, r, hex.EncodeToString(sum[:]), "kms", kmstest.Region, time.Now()); err != nil {
		tb.Fatal(err)
	}
	return r
}

// serve replays a signed request through the full handler: body limit,
// SigV4 verification, JSON decoding and validation, the operation, encoding.
func serve(b *testing.B, env *kmstest.Env, op string, body []byte) {
	req := signedRequest(b, env, op, body)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r := req.Clone(context.Background())
		r.Body = readCloser{bytes.NewReader(body)}
		w := httptest.NewRecorder()
		env.Handler.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("%s: HTTP %d: %s", op, w.Code, w.Body.String())
		}
	}
}

type readCloser struct{ io.Reader }

func (readCloser) Close() error { return nil }

func benchKey(b *testing.B) (*kmstest.Env, string) {
	env := kmstest.Start(b)
	out, err := env.Client.CreateKey(context.Background(), &awskms.CreateKeyInput{})
	if err != nil {
		b.Fatal(err)
	}
	return env, *out.KeyMetadata.KeyId
}

func BenchmarkEncrypt(b *testing.B) {
	for _, size := range []int{32, 4096} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			env, id := benchKey(b)
			body := fmt.Appendf(nil, `{"KeyId":%q,"Plaintext":%q,"EncryptionContext":{"tenant":"t1"}}`, id, base64.StdEncoding.EncodeToString(make([]byte, size)))
			serve(b, env, "Encrypt", body)
		})
	}
}

func BenchmarkDecrypt(b *testing.B) {
	env, id := benchKey(b)
	enc, err := env.Client.Encrypt(context.Background(), &awskms.EncryptInput{KeyId: &id, Plaintext: make([]byte, 32), EncryptionContext: map[string]string{"tenant": "t1"}})
	if err != nil {
		b.Fatal(err)
	}
	body := fmt.Appendf(nil, `{"CiphertextBlob":%q,"EncryptionContext":{"tenant":"t1"}}`, base64.StdEncoding.EncodeToString(enc.CiphertextBlob))
	serve(b, env, "Decrypt", body)
}

func BenchmarkGenerateDataKey(b *testing.B) {
	env, id := benchKey(b)
	body := fmt.Appendf(nil, `{"KeyId":%q,"KeySpec":"AES_256","EncryptionContext":{"tenant":"t1"}}`, id)
	serve(b, env, "GenerateDataKey", body)
}

// BenchmarkEncryptAudit compares Encrypt through the full handler with the
// audit log off and on (a real log: hash chain, signed digests, fsync with
// group commit), with concurrent clients as in production.
func BenchmarkEncryptAudit(b *testing.B) {
	for _, mode := range []string{"off", "on"} {
		b.Run(mode, func(b *testing.B) {
			var env *kmstest.Env
			if mode == "on" {
				_, priv, err := ed25519.GenerateKey(rand.Reader)
				if err != nil {
					b.Fatal(err)
				}
				l, err := audit.Open(context.Background(), audit.Options{Dir: filepath.Join(b.TempDir(), "audit"), Signer: audit.NewSigner(priv)})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { l.Close(context.Background()) })
				env = kmstest.StartWithAuditor(b, l)
			} else {
				env = kmstest.Start(b)
			}
			out, err := env.Client.CreateKey(context.Background(), &awskms.CreateKeyInput{})
			if err != nil {
				b.Fatal(err)
			}
			body := fmt.Appendf(nil, `{"KeyId":%q,"Plaintext":%q,"EncryptionContext":{"tenant":"t1"}}`, *out.KeyMetadata.KeyId, base64.StdEncoding.EncodeToString(make([]byte, 32)))
			req := signedRequest(b, env, "Encrypt", body)
			b.SetParallelism(128) // 256 requests in flight on 2 cores, as from many clients
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := req.Clone(context.Background())
					r.Body = readCloser{bytes.NewReader(body)}
					w := httptest.NewRecorder()
					env.Handler.ServeHTTP(w, r)
					if w.Code != http.StatusOK {
						b.Errorf("HTTP %d: %s", w.Code, w.Body.String())
						return
					}
				}
			})
		})
	}
}
