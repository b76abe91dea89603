package iam

import "testing"

// FuzzSessionToken: a token opens only as the very token sealed for that
// access key id: no other string (no other encoding of the same bytes, no
// changed byte, no other access key id) yields a session.
func FuzzSessionToken(f *testing.F) {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	const akid = "ASIAFUZZFUZZFUZZFUZZ"
	want := claims{Account: "111122223333", Role: "app", RoleARN: "arn:aws:iam::111122223333:role/app", Session: "s", Issued: 1, Expires: 2, Source: "x", Secret: "k"}
	// A fixed salt, so that every fuzzing process makes the same token.
	token, err := sealWith(key, make([]byte, 32), akid, &want)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(akid, token)
	f.Add(akid, token+"A")
	f.Add("ASIAFUZZFUZZFUZZFUZY", token)
	f.Add(akid, "AQ")
	f.Fuzz(func(t *testing.T, id, tok string) {
		c, ok := open(key, id, tok)
		if !ok {
			return
		}
		if id != akid || tok != token || *c != want {
			t.Fatalf("opened %q for %q: %+v", tok, id, c)
		}
	})
}
