package server

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/awserr"
)

// TestRefusalLogRateLimit: at most limit lines a second; the refusals
// held back are counted, and the count goes out with the next line.
func TestRefusalLogRateLimit(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	now := time.Date(2025, 5, 20, 12, 0, 0, 0, time.UTC)
	l := &refusalLog{log: slog.New(slog.NewJSONHandler(&buf, nil)), limit: 3, now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}}
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	r := httptest.NewRequest("POST", "/", nil)
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAFLOOD/20250520/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=00")
	refuse := func(n int) {
		for range n {
			l.refused(context.Background(), r, awserr.New(awserr.UnrecognizedClient, "The security token included in the request is invalid."), []string{"us-east-1"})
		}
	}
	lines := func() []map[string]any {
		var out []map[string]any
		for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
			var m map[string]any
			if err := json.Unmarshal(line, &m); err != nil {
				t.Fatal(err)
			}
			out = append(out, m)
		}
		return out
	}

	refuse(10)
	if got := lines(); len(got) != 3 {
		t.Fatalf("%d lines for 10 refusals in a second, want 3", len(got))
	}
	advance(999 * time.Millisecond)
	refuse(1)
	if got := lines(); len(got) != 3 {
		t.Fatalf("%d lines within the same second, want 3", len(got))
	}
	advance(time.Millisecond)
	refuse(2)
	got := lines()
	if len(got) != 5 {
		t.Fatalf("%d lines after the second passed, want 5", len(got))
	}
	if got[3]["suppressed"] != float64(8) || got[4]["suppressed"] != nil {
		t.Errorf("suppressed counts %v, %v; want 8 on the first line of the new second, none after", got[3]["suppressed"], got[4]["suppressed"])
	}
	if got[0]["access_key"] != "AKIAFLOOD" || got[0]["reason"] != awserr.UnrecognizedClient {
		t.Errorf("line = %v", got[0])
	}
}
