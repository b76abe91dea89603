package audit

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// marshalBody is the definition appendRecordBody must match: the Record
// as encoding/json writes it, without its chain members.
func marshalBody(t testing.TB, r *Record) ([]byte, error) {
	t.Helper()
	c := *r
	c.Sequence, c.PrevHash = 0, ""
	return json.Marshal(&c)
}

// TestAppendJSONMatchesMarshal checks that the hand-written encoding of a
// record is byte for byte encoding/json's, for records of every shape and
// strings that need every kind of escape.
func TestAppendJSONMatchesMarshal(t *testing.T) {
	when := time.Date(2026, 12, 6, 12, 0, 1, 0, time.UTC)
	nasty := "a\"b\\c\b\f\n\r\t\x00\x1f\x7f<>&\u2028\u2029é😀\xff\xc3(end"
	tests := []struct {
		name string
		rec  Record
	}{
		{"zero", Record{}},
		{"encrypt", Record{EventVersion: EventVersion, EventTime: when, EventName: "Encrypt",
			UserIdentity: UserIdentity{Type: "IAMUser", ARN: "arn:aws:iam::111122223333:user/alice", AccountID: "111122223333", AccessKeyID: "AKIA", UserName: "alice"},
			RequestParameters: map[string]any{"keyId": json.RawMessage(` "alias/x" `), "encryptionContext": json.RawMessage("{ \"b\" : \"<1>\",\n \"a\":\"\u2028&\" }"),
				"numberOfBytes": json.RawMessage(`32`), "dryRun": json.RawMessage(`null`)},
			RequestID: "r", EventID: "e", ReadOnly: true,
			Resources: []Resource{{ARN: "arn:k1", AccountID: "1", Type: ResourceType}, {ARN: "arn:k2", AccountID: "2"}},
			EventType: EventType, ManagementEvent: true, RecipientAccountID: "111122223333", EventCategory: EventCategory}},
		{"error", Record{EventTime: when, UserIdentity: UserIdentity{Type: "Unknown", AccessKeyID: nasty},
			ErrorCode: "AccessDeniedException", ErrorMessage: nasty, UserAgent: nasty, EventName: nasty, SourceIPAddress: "::1"}},
		{"response and extra data", Record{EventTime: when,
			RequestParameters: map[string]any{},
			ResponseElements:  map[string]any{"keyMetadata": map[string]any{"keyId": "k", "enabled": true, "n": 3, "big": int64(1) << 40, "u": uint64(7)}, nasty: nil},
			AdditionalEventData: map[string]any{"replacedAnchor": map[string]any{"sequence": uint64(4), "hash": "ab", "time": "t"},
				"logEndFound": uint64(9), "list": []string{"x", "<y>"}, "tags": map[string]string{"z": "1", "a": "&"}, "f": 1.5}}},
		{"tls", Record{EventTime: when.Add(-time.Hour * 24 * 365 * 30), TLSDetails: &TLSDetails{TLSVersion: "TLSv1.3", CipherSuite: "TLS_AES_128_GCM_SHA256", ClientProvidedHostHeader: nasty}}},
		{"tls without host", Record{EventTime: when, TLSDetails: &TLSDetails{TLSVersion: "TLSv1.2"}}},
		{"chain members are left out", Record{Sequence: 7, PrevHash: "ab", EventTime: when}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, err := marshalBody(t, &tc.rec)
			if err != nil {
				t.Fatal(err)
			}
			got, err := appendRecordBody(nil, &tc.rec)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("appendRecordBody:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// TestAppendJSONErrors checks that what json.Marshal refuses is refused.
func TestAppendJSONErrors(t *testing.T) {
	tests := []struct {
		name string
		rec  Record
	}{
		{"invalid raw member", Record{RequestParameters: map[string]any{"keyId": json.RawMessage(`{"a":`)}}},
		{"year past 9999", Record{EventTime: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"unencodable value", Record{ResponseElements: map[string]any{"c": make(chan int)}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := marshalBody(t, &tc.rec); err == nil {
				t.Fatal("json.Marshal accepts it: the test is wrong")
			}
			if _, err := appendRecordBody(nil, &tc.rec); err == nil {
				t.Fatal("appendRecordBody accepted it")
			}
		})
	}
}

// FuzzAppendJSON checks the string escaping and the compaction of raw
// members against encoding/json on arbitrary input.
func FuzzAppendJSON(f *testing.F) {
	f.Add("alice", []byte(`{"a": [1, 2, {"b": "<&>"}]}`))
	f.Add("\u2028\xff\"", []byte(` "\u2028 \" \\" `))
	f.Fuzz(func(t *testing.T, s string, raw []byte) {
		r := Record{UserAgent: s, ErrorMessage: s, RequestParameters: map[string]any{s: s}}
		if json.Valid(raw) {
			r.ResponseElements = map[string]any{"raw": json.RawMessage(raw)}
		}
		want, werr := marshalBody(t, &r)
		got, gerr := appendRecordBody(nil, &r)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("json.Marshal error %v, appendRecordBody error %v", werr, gerr)
		}
		if werr == nil && !bytes.Equal(got, want) {
			t.Fatalf("appendRecordBody:\n got %q\nwant %q", got, want)
		}
	})
}

// BenchmarkRecordAppend measures the encoding of an Encrypt request's
// record, the part of Append that runs on the request's goroutine (the
// rest is the writer's: the chain hash, the write and the fsync, which
// BenchmarkAppendSerial includes). BenchmarkRecordMarshal is the same
// record through encoding/json.
func BenchmarkRecordAppend(b *testing.B) {
	keyARN := "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	r := &Record{EventVersion: EventVersion, EventTime: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC), EventName: "Encrypt",
		UserIdentity: UserIdentity{Type: "IAMUser", ARN: "arn:aws:iam::111122223333:user/alice", AccountID: "111122223333", AccessKeyID: "AKIAEXAMPLE", UserName: "alice"},
		EventSource:  EventSource, AWSRegion: "us-east-1", SourceIPAddress: "127.0.0.1",
		UserAgent: "aws-sdk-go-v2/1.48.0 ua/2.1 os/linux lang/go#1.26.8 api/kms#1.62.6",
		RequestParameters: map[string]any{"keyId": json.RawMessage(`"` + keyARN + `"`), "encryptionAlgorithm": json.RawMessage(`"SYMMETRIC_DEFAULT"`),
			"encryptionContext": json.RawMessage(`{"tenant":"t1"}`)},
		RequestID: "5ef7d0b4-0f6c-4c5a-9a51-3f5d1c8e2b77", EventID: "b1c7a1d2-8f0e-4b7a-9d3c-2e6f5a4b3c21", ReadOnly: true,
		Resources: []Resource{{ARN: keyARN, AccountID: "111122223333", Type: ResourceType}},
		EventType: EventType, ManagementEvent: true, RecipientAccountID: "111122223333", EventCategory: EventCategory}
	b.ReportAllocs()
	buf := make([]byte, 0, recordBufSize)
	for b.Loop() {
		var err error
		if buf, err = appendRecordBody(buf[:0], r); err != nil {
			b.Fatal(err)
		}
	}
}
