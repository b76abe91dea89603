package kms

import (
	"regexp"
	"testing"
)

func TestIsKeyID(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{"1234abcd-12ab-34cd-56ef-1234567890ab", true},
		{"00000000-0000-0000-0000-000000000000", true},
		{"mrk-1234abcd12ab34cd56ef1234567890ab", true},
		{"1234ABCD-12ab-34cd-56ef-1234567890ab", false}, // uppercase
		{"1234abcd-12ab-34cd-56ef-1234567890a", false},  // short
		{"1234abcd-12ab-34cd-56ef-1234567890abc", false},
		{"1234abcd012ab-34cd-56ef-1234567890ab", false}, // no dash
		{"1234abcd-12ab-34cd-56ef_1234567890ab", false},
		{"1234abcg-12ab-34cd-56ef-1234567890ab", false}, // g
		{"alias/my-key", false},
		{"", false},
		{"arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab", false},
	} {
		if got := isKeyID(tc.s); got != tc.want {
			t.Errorf("isKeyID(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}

// FuzzIsUUID holds the hand-written check to the regular expression it
// replaced.
func FuzzIsUUID(f *testing.F) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	f.Add("1234abcd-12ab-34cd-56ef-1234567890ab")
	f.Add("1234abcd-12ab-34cd-56ef-1234567890a\n")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isUUID(s), re.MatchString(s); got != want {
			t.Fatalf("isUUID(%q) = %v, the regexp says %v", s, got, want)
		}
	})
}
