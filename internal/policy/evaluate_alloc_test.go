package policy

import (
	"testing"

	"github.com/kmsd/kmsd/internal/testalloc"
)

// TestEvaluateAllocs holds the allocation budgets of policy evaluation,
// which runs for every request (the key policy, the caller's identity
// policies), and of parsing, which runs once per policy text and key load.
// Figures of Go 1.26 (BenchmarkEvaluateDefaultKeyPolicy and the others
// measure the time).
func TestEvaluateAllocs(t *testing.T) {
	p, err := Parse([]byte(defaultKeyPolicy), ResourcePolicy)
	if err != nil {
		t.Fatal(err)
	}
	pr, _ := NewPrincipal("arn:aws:iam::111122223333:user/alice")
	ctx := NewContext(4)
	ctx.Set("kms:calleraccount", "111122223333")
	ctx.Set("aws:securetransport", "true")
	r := &Request{Principal: pr, Action: "kms:Decrypt", Resource: keyARN, Context: ctx}
	// 0 today, and it must stay 0: evaluation of a compiled policy
	// matches precompiled patterns against the request and allocates
	// nothing, on the path of every request.
	testalloc.Budget(t, "EvaluateDetailed, default key policy", 0, func() {
		if res := p.EvaluateDetailed(r); res.Decision != Allow {
			t.Fatal(res)
		}
	})

	ten, err := Parse([]byte(tenStatementPolicy), ResourcePolicy)
	if err != nil {
		t.Fatal(err)
	}
	ctx = NewContext(12)
	ctx.Set("kms:calleraccount", "111122223333")
	ctx.Set("aws:securetransport", "true")
	ctx.Set("aws:sourceip", "203.0.113.7")
	ctx.Set("aws:viaawsservice", "false")
	ctx.Set("aws:principaltag/team", "blue")
	ctx.Set("aws:resourcetag/team", "blue")
	ctx.Set("aws:currenttime", "2026-03-01T12:00:00Z")
	ctx.Set("kms:encryptioncontext:department", "IT")
	ctx.Set("kms:encryptioncontextkeys", "Department", "ProjectId")
	r = &Request{Principal: pr, Action: "kms:Decrypt", Resource: keyARN, Context: ctx}
	// 0 today, conditions (IP ranges, dates, numbers, policy variables)
	// included.
	testalloc.Budget(t, "EvaluateDetailed, ten statements with conditions", 0, func() {
		if res := ten.EvaluateDetailed(r); res.Decision != Allow {
			t.Fatal(res)
		}
	})

	doc := []byte(defaultKeyPolicy)
	// 117 today: encoding/json's decoding into maps and slices, then the
	// compiled statements. Not per request (compiled policies are cached
	// by text), but once per key loaded: with many keys it is what the
	// cache's misses cost.
	testalloc.Budget(t, "Parse, default key policy", 122, func() {
		if _, err := Parse(doc, ResourcePolicy); err != nil {
			t.Fatal(err)
		}
	})
}
