package audit_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/testalloc"
)

// encryptRecord is the record of an Encrypt request as the server writes
// it, with the members Append would fill in already set.
func encryptRecord() *audit.Record {
	keyARN := "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	return &audit.Record{
		EventVersion: audit.EventVersion,
		UserIdentity: audit.UserIdentity{Type: "IAMUser", PrincipalID: "AIDAEXAMPLE", ARN: "arn:aws:iam::111122223333:user/alice",
			AccountID: "111122223333", AccessKeyID: "AKIAEXAMPLE", UserName: "alice"},
		EventTime:       time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC),
		EventSource:     audit.EventSource,
		EventName:       "Encrypt",
		AWSRegion:       "us-east-1",
		SourceIPAddress: "127.0.0.1",
		UserAgent:       "aws-sdk-go-v2/1.48.0 ua/2.1 os/linux lang/go#1.26.8 api/kms#1.62.6",
		RequestParameters: map[string]any{"keyId": keyARN, "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
			"encryptionContext": map[string]string{"tenant": "t1"}},
		RequestID:          "5ef7d0b4-0f6c-4c5a-9a51-3f5d1c8e2b77",
		EventID:            "b1c7a1d2-8f0e-4b7a-9d3c-2e6f5a4b3c21",
		ReadOnly:           true,
		Resources:          []audit.Resource{{ARN: keyARN, AccountID: "111122223333", Type: audit.ResourceType}},
		EventType:          audit.EventType,
		ManagementEvent:    true,
		RecipientAccountID: "111122223333",
		EventCategory:      audit.EventCategory,
	}
}

func openTestLog(tb testing.TB) *audit.Log {
	tb.Helper()
	seed := make([]byte, ed25519.SeedSize)
	l, err := audit.Open(context.Background(), audit.Options{Dir: filepath.Join(tb.TempDir(), "audit"),
		Signer: audit.NewSigner(ed25519.NewKeyFromSeed(seed)), DigestEvery: -1, DigestInterval: -1})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close(context.Background()) })
	return l
}

// TestAppendAllocs holds the allocation budget of one audited request's
// Append (one appender, so each batch is one record and one fsync; no
// periodic digest), the request side and the writer goroutine together.
// Figure of Go 1.26.
func TestAppendAllocs(t *testing.T) {
	l := openTestLog(t)
	ctx := context.Background()
	rec := encryptRecord()
	// 7 today (18 when records went through encoding/json's Marshal),
	// all on the request's side (the writer reuses its buffer): the
	// record's buffer, the pending entry and its channel, the chain hash
	// in hex (PrevHash), the test's own copy of the record, and the
	// request parameters' values boxed in the test's map.
	testalloc.Budget(t, "Append", 8, func() {
		r := *rec
		if err := l.Append(ctx, &r); err != nil {
			t.Fatal(err)
		}
	})
}

// BenchmarkRecordMarshal measures encoding/json's encoding of an Encrypt
// request's record, which Append used before its own encoder
// (BenchmarkRecordAppend in the package's internal tests).
func BenchmarkRecordMarshal(b *testing.B) {
	rec := encryptRecord()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(rec); err != nil {
			b.Fatal(err)
		}
	}
}
