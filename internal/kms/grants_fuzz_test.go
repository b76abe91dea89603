package kms

import (
	"bytes"
	"encoding/base64"
	"testing"

	"github.com/kmsd/kmsd/internal/store"
)

// FuzzGrantToken feeds arbitrary grant tokens to the parser and verifier:
// never a panic, and only a token made for a grant verifies against it.
func FuzzGrantToken(f *testing.F) {
	// A fixed nonce: every fuzzing process must make the same token.
	s := &Service{rand: bytes.NewReader(make([]byte, tokenNonceLen))}
	g := &store.Grant{ID: "7f3c0e3b4a8d9e2f1c6b5a4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f", TokenHash: make([]byte, 32)}
	tok, err := s.newGrantToken(g)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{tok, "", "AQ", "not-a-token", base64.RawURLEncoding.EncodeToString(make([]byte, tokenLen)), tok[:len(tok)-1] + "A"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		parsed, err := parseGrantToken(s)
		if err != nil {
			return
		}
		if len(parsed.grantID) != 64 || !isGrantID(parsed.grantID) {
			t.Fatalf("grant id %q", parsed.grantID)
		}
		if parsed.verify(g) && s != tok && parsed.grantID == g.ID {
			// Another encoding of the same bytes is fine; other bytes are not.
			raw, _ := base64.RawURLEncoding.DecodeString(tok)
			if string(raw) != string(parsed.raw) {
				t.Fatalf("forged token %q verifies", s)
			}
		}
	})
}
