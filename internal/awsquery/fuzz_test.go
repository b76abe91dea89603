package awsquery

import (
	"strings"
	"testing"
)

// FuzzParse: Parse never panics, always returns a Request, accepts only
// the served operations at the one version, with each parameter once, and
// audits only allow-listed members.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"Action=GetCallerIdentity&Version=2011-06-15",
		"Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fapp&RoleSessionName=s1&DurationSeconds=900",
		"Action=AssumeRole&Version=2011-06-15&Policy=%7B%22Statement%22%3A%5B%5D%7D&ExternalId=xyz",
		"Action=AssumeRole&Action=AssumeRole", "%", "a=1;b=2", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := Parse(body)
		if req == nil {
			t.Fatal("nil Request")
		}
		audited := req.Audited()
		for k := range audited {
			switch k {
			case "roleArn", "roleSessionName", "policy", "externalId", "durationSeconds":
			default:
				t.Fatalf("audited member %q", k)
			}
		}
		if err != nil {
			return
		}
		op := operationNamed(req.Action)
		if op == nil || req.params.Get("Version") != Version || int64(len(body)) > op.limit {
			t.Fatalf("accepted %q", body)
		}
		for k, v := range req.params {
			if len(v) != 1 || !(k == "Action" || k == "Version" || op.accepts(k)) {
				t.Fatalf("accepted parameter %q (%d values)", k, len(v))
			}
		}
		if strings.Count(string(body), "Action=") == 0 {
			t.Fatalf("accepted without Action= in %q", body)
		}
	})
}
