package kms

import (
	"testing"

	"github.com/kmsd/kmsd/internal/store"
)

// TestGrantConstraintEquality checks how encryption contexts compare with
// grant constraints: keys ignoring case, values exactly, and
// EncryptionContextEquals as set equality. A request context with a pair
// the constraint lacks does not satisfy it, even when that pair's key
// differs from one of the constraint's only in case ({"a":"1","A":"1"} is
// two pairs; before, Equals {"a":"1"} accepted it). FuzzGrantConstraints
// found it, through keys that are not UTF-8 (which EqualFold took for one
// another).
func TestGrantConstraintEquality(t *testing.T) {
	cases := []struct {
		name      string
		equals    map[string]string
		subset    map[string]string
		ec        map[string]string
		wantHolds bool
	}{
		{"equals: same pairs", map[string]string{"a": "1", "b": "2"}, nil, map[string]string{"b": "2", "a": "1"}, true},
		{"equals: key in other case", map[string]string{"Dept": "IT"}, nil, map[string]string{"dept": "IT"}, true},
		{"equals: value in other case", map[string]string{"dept": "IT"}, nil, map[string]string{"dept": "it"}, false},
		{"equals: extra pair", map[string]string{"a": "1"}, nil, map[string]string{"a": "1", "b": "2"}, false},
		{"equals: extra pair differing in key case", map[string]string{"a": "1"}, nil, map[string]string{"a": "1", "A": "1"}, false},
		{"equals: missing pair", map[string]string{"a": "1", "b": "2"}, nil, map[string]string{"a": "1"}, false},
		{"equals: invalid UTF-8 keys are not alike", map[string]string{"\x80": "", "\xd2": ""}, nil, map[string]string{"\xd3": ""}, false},
		{"equals: invalid UTF-8 key against itself", map[string]string{"\x80": "v"}, nil, map[string]string{"\x80": "v"}, true},
		{"equals: invalid UTF-8 key in other case", map[string]string{"k\x80é": "v"}, nil, map[string]string{"K\x80É": "v"}, true},
		{"subset: extra pairs", nil, map[string]string{"a": "1"}, map[string]string{"A": "1", "b": "2"}, true},
		{"subset: missing pair", nil, map[string]string{"a": "1", "b": "2"}, map[string]string{"a": "1"}, false},
		{"subset: invalid UTF-8 key", nil, map[string]string{"\x80": ""}, map[string]string{"\xd3": ""}, false},
		{"no constraint", nil, nil, map[string]string{"a": "1"}, true},
	}
	for _, tc := range cases {
		g := &store.Grant{EncryptionContextEquals: tc.equals, EncryptionContextSubset: tc.subset}
		if got := constraintsHold(g, tc.ec); got != tc.wantHolds {
			t.Errorf("%s: constraintsHold = %v, want %v", tc.name, got, tc.wantHolds)
		}
	}

	// A grant may not make a sub-grant whose Equals it would not itself
	// satisfy.
	parent := &store.Grant{Operations: []string{"CreateGrant", "Decrypt"}, EncryptionContextEquals: map[string]string{"a": "1"}}
	child := &CreateGrantInput{Operations: []string{"Decrypt"},
		Constraints: &GrantConstraints{EncryptionContextEquals: map[string]string{"a": "1", "A": "1"}}}
	if allowsSubGrant(parent, child) {
		t.Error("Equals {a:1} allows a sub-grant with Equals {a:1, A:1}")
	}
}
