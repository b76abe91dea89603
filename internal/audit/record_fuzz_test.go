package audit

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzRecord writes records whose client-supplied members (what a request
// sent: user agent, key id, encryption context, and an error message that
// may repeat them) hold arbitrary bytes. Whatever a client sends, the log
// must stay one record per line and verify, and each member must read back
// as written (invalid UTF-8 as U+FFFD, as encoding/json writes it): a
// client must not be able to break the audit log or make it lie.
func FuzzRecord(f *testing.F) {
	f.Add("aws-cli/2.15.0", "alias/app", "Department", "Engineering", "")
	f.Add("a\nb\r\"}\x00", "arn:aws:kms:us-east-1:111122223333:key/\u2028", "\xff", "\xc0\xaf", "AccessDeniedException: \\u0000")
	f.Add("", "", "", "", "{\"sequence\":1}\n{")
	f.Add(strings.Repeat("x", 4096), "\ud7ff\ue000", "k", "\U0010ffff", "\t")
	f.Fuzz(func(t *testing.T, userAgent, keyID, ecKey, ecValue, errMsg string) {
		dir := t.TempDir()
		l := openLog(t, dir, Options{})
		r := testRecord(1)
		r.UserAgent = userAgent
		r.ErrorMessage = errMsg
		if errMsg != "" {
			r.ErrorCode = "AccessDeniedException"
		}
		r.RequestParameters = map[string]any{"keyId": keyID, "encryptionContext": map[string]string{ecKey: ecValue}}
		appendN(t, l, 0, 1)
		if err := l.Append(t.Context(), r); err != nil {
			t.Fatalf("Append: %v", err)
		}
		closeLog(t, l)
		rep := mustVerify(t, dir)
		if rep.Records != 2 || !rep.Closed {
			t.Fatalf("report %+v, want 2 records and closed", rep)
		}

		type readBack struct {
			Sequence          uint64 `json:"sequence"`
			UserAgent         string `json:"userAgent"`
			ErrorMessage      string `json:"errorMessage"`
			RequestParameters struct {
				KeyID             string            `json:"keyId"`
				EncryptionContext map[string]string `json:"encryptionContext"`
			} `json:"requestParameters"`
		}
		var got *readBack
		for _, line := range lines(t, logFiles(t, dir)[0]) {
			var r readBack
			if err := json.Unmarshal(line, &r); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			if r.Sequence == 2 {
				got = &r
				break
			}
		}
		if got == nil {
			t.Fatal("record 2 not found")
		}
		ec, ok := got.RequestParameters.EncryptionContext[asJSON(ecKey)]
		if got.UserAgent != asJSON(userAgent) || got.ErrorMessage != asJSON(errMsg) || got.RequestParameters.KeyID != asJSON(keyID) ||
			len(got.RequestParameters.EncryptionContext) != 1 || !ok || ec != asJSON(ecValue) {
			t.Fatalf("record read back as %+.200v", *got)
		}
	})
}

// asJSON is s as encoding/json writes it: each byte that is not part of
// valid UTF-8 becomes U+FFFD.
func asJSON(s string) string {
	var b strings.Builder
	for _, r := range s { // range yields U+FFFD for each invalid byte
		b.WriteRune(r)
	}
	return b.String()
}
