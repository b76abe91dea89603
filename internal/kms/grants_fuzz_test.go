package kms

import (
	"bytes"
	"encoding/base64"
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/kmsd/kmsd/internal/awserr"
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

// fuzzPairs turns fuzz bytes into an encryption context: the bytes split at
// NUL into alternating keys and values (a trailing key gets "").
func fuzzPairs(b []byte) map[string]string {
	if len(b) == 0 {
		return nil
	}
	parts := bytes.Split(b, []byte{0})
	m := make(map[string]string, len(parts)/2+1)
	for i := 0; i < len(parts); i += 2 {
		v := ""
		if i+1 < len(parts) {
			v = string(parts[i+1])
		}
		m[string(parts[i])] = v
	}
	return m
}

// fuzzConstraints builds grant constraints of the kind sel picks (none,
// EncryptionContextEquals, EncryptionContextSubset, both) from pairs.
func fuzzConstraints(sel uint8, pairs map[string]string) *GrantConstraints {
	switch sel % 4 {
	case 1:
		return &GrantConstraints{EncryptionContextEquals: pairs}
	case 2:
		return &GrantConstraints{EncryptionContextSubset: pairs}
	case 3:
		return &GrantConstraints{EncryptionContextEquals: pairs, EncryptionContextSubset: pairs}
	}
	return nil
}

// FuzzGrantConstraints feeds arbitrary grant constraints and encryption
// contexts to the constraint checks of CreateGrant and of authorization by
// grants. Nothing may panic, and CreateGrant's validation fails only with a
// client error. The properties that make grants safe to delegate:
//
//   - a grant made under another grant (CreateGrant allowed by a grant)
//     never allows a request its parent would not: if the child's
//     constraints hold for an encryption context, so do the parent's;
//   - EncryptionContextEquals holds for exactly its own pairs, keys compared
//     ignoring case; EncryptionContextSubset holds for its pairs plus any
//     others.
func FuzzGrantConstraints(f *testing.F) {
	f.Add(uint8(2), []byte("dept\x00it"), uint8(1), []byte("dept\x00it\x00app\x00x"), []byte("dept\x00it\x00app\x00x"), []byte("other\x00y"))
	f.Add(uint8(1), []byte("a\x00b"), uint8(1), []byte("A\x00b"), []byte("a\x00b"), []byte("c\x00"))
	f.Add(uint8(2), []byte("a\x00b\x00c\x00d"), uint8(2), []byte("a\x00b"), []byte("a\x00b\x00c\x00d"), []byte{})
	f.Add(uint8(0), []byte{}, uint8(3), []byte("k\x00v"), []byte("k\x00v"), []byte("K\x00w"))
	f.Add(uint8(1), []byte("x\x00"), uint8(2), []byte("x\x00"), []byte("X\x00"), []byte("\xff\x00\xfe"))
	symmetric := &store.Key{KeySpec: SpecSymmetricDefault}
	f.Fuzz(func(t *testing.T, parentSel uint8, parentPairs []byte, childSel uint8, childPairs, ecBytes, extraBytes []byte) {
		parentC := fuzzConstraints(parentSel, fuzzPairs(parentPairs))
		childC := fuzzConstraints(childSel, fuzzPairs(childPairs))
		ec := fuzzPairs(ecBytes)
		for _, c := range []*GrantConstraints{parentC, childC} {
			if err := checkConstraints(symmetric, c); err != nil {
				var ae *awserr.Error
				if !errors.As(err, &ae) || ae.Code == awserr.KMSInternal {
					t.Fatalf("checkConstraints(%+v): %v", c, err)
				}
			}
		}
		if parentC == nil || checkConstraints(symmetric, parentC) != nil || checkConstraints(symmetric, childC) != nil {
			return
		}
		// Grants as CreateGrant stores them.
		parent := &store.Grant{Operations: []string{"CreateGrant", "Decrypt"},
			EncryptionContextEquals: nonEmpty(parentC.EncryptionContextEquals), EncryptionContextSubset: nonEmpty(parentC.EncryptionContextSubset)}
		child := &store.Grant{Operations: []string{"Decrypt"}}
		if childC != nil {
			child.EncryptionContextEquals = nonEmpty(childC.EncryptionContextEquals)
			child.EncryptionContextSubset = nonEmpty(childC.EncryptionContextSubset)
		}

		if allowsSubGrant(parent, &CreateGrantInput{Operations: child.Operations, Constraints: childC}) &&
			constraintsHold(child, ec) && !constraintsHold(parent, ec) {
			t.Fatalf("sub-grant %+v of %+v allows context %q that its parent does not", childC, parentC, ec)
		}

		// The parent's own pairs, with keys in other (ASCII) case, satisfy
		// it; for a subset constraint, so do they with other pairs added.
		// (Byte by byte: strings.ToUpper turns "ı" into "I", not the same
		// key ignoring case, and strings.Map rewrites bytes that are not
		// UTF-8.)
		upper := func(k string) string {
			b := []byte(k)
			for i, c := range b {
				if 'a' <= c && c <= 'z' {
					b[i] = c - 'a' + 'A'
				}
			}
			return string(b)
		}
		own := map[string]string{}
		for k, v := range parent.EncryptionContextEquals {
			own[upper(k)] = v
		}
		for k, v := range parent.EncryptionContextSubset {
			own[upper(k)] = v
		}
		if len(own) == len(parent.EncryptionContextEquals)+len(parent.EncryptionContextSubset) && !constraintsHold(parent, own) {
			t.Fatalf("constraints %+v do not hold for their own pairs %q", parentC, own)
		}
		if len(parent.EncryptionContextSubset) > 0 {
			more := maps.Clone(parent.EncryptionContextSubset)
			for k, v := range fuzzPairs(extraBytes) {
				if _, clash := more[k]; !clash {
					more[k] = v
				}
			}
			if !constraintsHold(parent, more) {
				t.Fatalf("subset %q does not hold for %q", parent.EncryptionContextSubset, more)
			}
		}
		if len(parent.EncryptionContextEquals) > 0 && len(ec) > 0 {
			// Equals holds only when ec has the same pairs, ignoring key case.
			same := len(ec) == len(parent.EncryptionContextEquals)
			for k, v := range ec {
				found := false
				for k2, v2 := range parent.EncryptionContextEquals {
					found = found || (v == v2 && strings.EqualFold(k, k2))
				}
				same = same && found
			}
			if constraintsHold(parent, ec) && !same {
				t.Fatalf("equals %q holds for %q", parent.EncryptionContextEquals, ec)
			}
		}
	})
}
