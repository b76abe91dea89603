package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/kms"
	"github.com/kmsd/kmsd/internal/kmstest"
)

// TestInvokeIsAudited: an operation kmsd runs itself (Invoke) is
// validated, authorized and audited as the caller, with its user agent;
// a failed one is audited with its error; with the audit log failed,
// nothing runs.
func TestInvokeIsAudited(t *testing.T) {
	a := &memAuditor{}
	env := kmstest.StartWithAuditor(t, a)
	ctx := context.Background()
	caller, err := env.IAM.Caller(ctx, env.AccessKeyID)
	if err != nil {
		t.Fatal(err)
	}
	caller.Scope = kms.ScopeOf(kmstest.Region, caller.Account)
	out, err := env.Handler.Invoke(ctx, caller, "CreateKey", "kmsd-seed", []byte(`{"Description":"seeded"}`))
	if err != nil {
		t.Fatal(err)
	}
	var ck struct{ KeyMetadata struct{ KeyId string } }
	if err := json.Unmarshal(out, &ck); err != nil || ck.KeyMetadata.KeyId == "" {
		t.Fatalf("CreateKey response %s: %v", out, err)
	}
	_, err = env.Handler.Invoke(ctx, caller, "CreateKey", "kmsd-seed", []byte(`{"KeySpec":"AES_512"}`))
	if !errors.Is(err, awserr.New(awserr.Validation, "")) {
		t.Fatalf("invalid CreateKey: %v", err)
	}
	_, err = env.Handler.Invoke(ctx, caller, "NoSuchOperation", "kmsd-seed", []byte(`{}`))
	if !errors.Is(err, awserr.New(awserr.UnknownOperation, "")) {
		t.Fatalf("unknown operation: %v", err)
	}

	a.mu.Lock()
	rs := append(a.records[:0:0], a.records...)
	a.mu.Unlock()
	if len(rs) != 3 {
		t.Fatalf("%d records for 3 invocations", len(rs))
	}
	for i, want := range []struct{ event, code string }{{"CreateKey", ""}, {"CreateKey", "ValidationException"}, {"NoSuchOperation", "UnknownOperationException"}} {
		r := rs[i]
		if r.EventName != want.event || r.ErrorCode != want.code || r.UserAgent != "kmsd-seed" || r.SourceIPAddress != "" ||
			r.UserIdentity.ARN != "arn:aws:iam::111122223333:user/admin" || r.AWSRegion != kmstest.Region || r.RequestID == "" {
			t.Errorf("record %d: %+v", i, r)
		}
	}
	if !strings.Contains(string(a.json(t)), `"description":"seeded"`) {
		t.Error("the request parameters are not recorded")
	}

	a.fail(errors.New("disk full"))
	if out, err := env.Handler.Invoke(ctx, caller, "ListKeys", "kmsd-seed", []byte(`{}`)); err == nil || out != nil {
		t.Fatalf("Invoke with a failed audit log = %s, %v", out, err)
	}
}
