package shamir

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary text to the share parser: what an operator
// types into kmsd unseal. It must never panic; every error wraps
// ErrMalformed and never repeats the share's digits (an error may be
// logged, a share must not be); and a share it accepts is canonical up to
// case and surrounding space: encoding it gives back the text, which parses
// to the same share.
func FuzzParse(f *testing.F) {
	shares, err := Split(bytes.NewReader(bytes.Repeat([]byte{7}, 1024)), []byte("0123456789abcdef0123456789abcdef"), 3, 2)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range shares {
		f.Add(s.Encode())
	}
	f.Add("  " + textPrefix + strings.ToUpper(shares[0].Encode()[len(textPrefix):]) + "\n")
	f.Add(textPrefix + "01-00")
	f.Add(textPrefix + "256-" + strings.Repeat("0", 40))
	f.Add(textPrefix + "1-")
	f.Fuzz(func(t *testing.T, text string) {
		s, err := Parse(text)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			// The share's digits: long enough that they cannot appear in
			// a message by chance.
			rest, isShare := strings.CutPrefix(strings.TrimSpace(text), textPrefix)
			if _, body, ok := strings.Cut(rest, "-"); isShare && ok && len(body) >= 16 && isHex(body) && strings.Contains(err.Error(), body) {
				t.Fatalf("error %q repeats the share", err)
			}
			return
		}
		enc := s.Encode()
		if !strings.EqualFold(enc, strings.TrimSpace(text)) {
			t.Fatalf("share %q encodes to %q", text, enc)
		}
		again, err := Parse(enc)
		if err != nil || again.Index != s.Index || again.Threshold != s.Threshold || again.Set != s.Set || !bytes.Equal(again.Value, s.Value) {
			t.Fatalf("%q parses to %+v, then %+v (%v)", enc, s, again, err)
		}
		if s.Index == 0 || s.Threshold == 0 || len(s.Value) == 0 {
			t.Fatalf("accepted share %+v", s)
		}
	})
}

func isHex(s string) bool {
	return strings.Trim(s, "0123456789abcdefABCDEF") == ""
}
