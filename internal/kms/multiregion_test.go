package kms

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/policy"
	"github.com/kmsd/kmsd/internal/store"
)

// TestMultiRegionConditionKeys: the keys of a multi-Region key carry
// kms:MultiRegion and kms:MultiRegionKeyType; ReplicateKey is authorized on
// the primary (kms:ReplicaRegion), then as CreateKey in the replica's
// Region (aws:RequestedRegion) for a REPLICA; UpdatePrimaryRegion on both
// keys (kms:PrimaryRegion); DisableKey with kms:TrailingDaysWithoutKeyUsage.
func TestMultiRegionConditionKeys(t *testing.T) {
	ctx := context.Background()
	s := newAuthzService(t)
	alice := Caller{Scope: testScope, ARN: "arn:aws:iam::111122223333:user/alice",
		Identity: mustIdentity(t, IdentityConfig{ARN: "arn:aws:iam::111122223333:user/alice", Type: PrincipalTypeUser, UserName: "alice"}, allowAll)}
	ck, err := s.CreateKey(ctx, admin, &CreateKeyInput{MultiRegion: true})
	if err != nil {
		t.Fatal(err)
	}
	id, arn := ck.KeyMetadata.KeyId, ck.KeyMetadata.Arn
	if _, err := s.ReplicateKey(ctx, admin, &ReplicateKeyInput{KeyId: id, ReplicaRegion: "eu-west-3"}); err != nil {
		t.Fatal(err)
	}
	paris := "arn:aws:kms:eu-west-3:111122223333:key/" + id
	type eval struct {
		action, resource string
		want             map[string][]string
	}
	for _, tc := range []struct {
		name  string
		req   authzRequest
		evals []eval
	}{
		{"ReplicateKey", req(AuthorizeReplicateKey, &ReplicateKeyInput{KeyId: id, ReplicaRegion: "ap-northeast-1"}), []eval{
			{"kms:ReplicateKey", arn, map[string][]string{"kms:replicaregion": {"ap-northeast-1"}, "kms:multiregion": {"true"},
				"kms:multiregionkeytype": {"PRIMARY"}, "aws:requestedregion": {"us-east-1"}}},
			{"kms:CreateKey", "*", map[string][]string{"aws:requestedregion": {"ap-northeast-1"}, "kms:multiregion": {"true"},
				"kms:multiregionkeytype": {"REPLICA"}, "kms:keyspec": {"SYMMETRIC_DEFAULT"}}},
		}},
		{"UpdatePrimaryRegion", req(AuthorizeUpdatePrimaryRegion, &UpdatePrimaryRegionInput{KeyId: id, PrimaryRegion: "eu-west-3"}), []eval{
			{"kms:UpdatePrimaryRegion", arn, map[string][]string{"kms:primaryregion": {"eu-west-3"}, "kms:multiregionkeytype": {"PRIMARY"}}},
			{"kms:UpdatePrimaryRegion", paris, map[string][]string{"kms:primaryregion": {"eu-west-3"}, "kms:multiregionkeytype": {"REPLICA"}}},
		}},
		{"DisableKey", req(AuthorizeDisableKey, &KeyIdInput{KeyId: id}), []eval{
			{"kms:DisableKey", arn, map[string][]string{"kms:trailingdayswithoutkeyusage": {"0"}, "kms:multiregion": {"true"}}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n int
			_, err := tc.req.run(ctx, s, alice, func(action, resource string, pc policy.Context) {
				n++
				if n > len(tc.evals) {
					t.Fatalf("evaluation %d: %s on %s", n, action, resource)
				}
				want := tc.evals[n-1]
				if action != want.action || resource != want.resource {
					t.Errorf("evaluated %s on %s, want %s on %s", action, resource, want.action, want.resource)
				}
				for k, v := range want.want {
					if g := pc.Get(k); !slices.Equal(g, v) {
						t.Errorf("%s: %s = %q, want %q", action, k, g, v)
					}
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if n != len(tc.evals) {
				t.Fatalf("%d evaluations, want %d", n, len(tc.evals))
			}
		})
	}
}

// TestReplicaMaterialBinding: each related key holds its own wrapped copy
// of the shared material, bound to its own ARN: root rotation's WrappedAAD
// unwraps each, and no copy unwraps as another key's.
func TestReplicaMaterialBinding(t *testing.T) {
	ctx := context.Background()
	s := newAuthzService(t)
	ck, err := s.CreateKey(ctx, admin, &CreateKeyInput{MultiRegion: true})
	if err != nil {
		t.Fatal(err)
	}
	rctx, ri := WithRequestInfo(ctx)
	if _, err := s.ReplicateKey(rctx, admin, &ReplicateKeyInput{KeyId: ck.KeyMetadata.KeyId, ReplicaRegion: "eu-west-3"}); err != nil {
		t.Fatal(err)
	}
	// The request names both keys, for the audit record.
	if arns, _ := ri.Keys(); len(arns) != 2 || arns[0] != ck.KeyMetadata.Arn || arns[1] != "arn:aws:kms:eu-west-3:111122223333:key/"+ck.KeyMetadata.KeyId {
		t.Errorf("the request's keys: %v", arns)
	}
	ws, err := s.store.ListWrapped(ctx, store.WrappedMaterial, store.WrappedRef{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 2 || ws[0].ID != ws[1].ID {
		t.Fatalf("wrapped materials %+v: want one copy of one material per key", ws)
	}
	var plains [][]byte
	for i, w := range ws {
		aad, err := WrappedAAD(w)
		if err != nil {
			t.Fatal(err)
		}
		p, err := s.keystore.Unwrap(ctx, w.Blob, aad)
		if err != nil {
			t.Fatalf("unwrap the copy of %s with its WrappedAAD: %v", w.KeyID, err)
		}
		plains = append(plains, p)
		other, _ := WrappedAAD(ws[1-i])
		if _, err := s.keystore.Unwrap(ctx, w.Blob, other); err == nil {
			t.Errorf("the copy of %s unwraps as the copy of %s", w.KeyID, ws[1-i].KeyID)
		}
	}
	if string(plains[0]) != string(plains[1]) {
		t.Error("the related keys' copies hold different material")
	}
}

// TestReplicaDeletionOnTwoNodes: two nodes reaping the two last replicas
// of a primary at once leave it PendingDeletion, whatever the order.
func TestReplicaDeletionOnTwoNodes(t *testing.T) {
	ctx := context.Background()
	var clock struct {
		sync.Mutex
		t time.Time
	}
	clock.t = time.Now().UTC()
	now := func() time.Time { clock.Lock(); defer clock.Unlock(); return clock.t }
	nodes := newNodes(t, 2, now)
	a, b := nodes[0], nodes[1]
	ck, err := a.CreateKey(ctx, admin, &CreateKeyInput{MultiRegion: true})
	if err != nil {
		t.Fatal(err)
	}
	id := ck.KeyMetadata.KeyId
	for _, r := range []string{"eu-west-3", "ap-northeast-1"} {
		if _, err := a.ReplicateKey(ctx, admin, &ReplicateKeyInput{KeyId: id, ReplicaRegion: r}); err != nil {
			t.Fatal(err)
		}
		c := admin
		c.Region = r
		if _, err := a.ScheduleKeyDeletion(ctx, c, &ScheduleKeyDeletionInput{KeyId: id, PendingWindowInDays: ptr(int32(7))}); err != nil {
			t.Fatal(err)
		}
	}
	out, err := a.ScheduleKeyDeletion(ctx, admin, &ScheduleKeyDeletionInput{KeyId: id, PendingWindowInDays: ptr(int32(7))})
	if err != nil || out.KeyState != StatePendingReplicaDeletion {
		t.Fatalf("ScheduleKeyDeletion of the primary: %+v, %v", out, err)
	}
	clock.Lock()
	clock.t = clock.t.Add(8 * 24 * time.Hour)
	clock.Unlock()
	var wg sync.WaitGroup
	for _, n := range []*node{a, b} {
		wg.Go(func() {
			if _, err := n.ReapDeletedKeys(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	k, err := a.store.GetKey(ctx, recordID("us-east-1", id))
	if err != nil {
		t.Fatal(err)
	}
	related, err := a.store.ListMultiRegionKeys(ctx, id)
	if err != nil || len(related) != 1 {
		t.Fatalf("related keys after the reaping: %v, %v", keyIDsOf(related), err)
	}
	if k.State != StatePendingDeletion || !k.DeletionDate.Equal(now().Add(7*24*time.Hour)) {
		t.Fatalf("the primary: %s until %v, want PendingDeletion for 7 days", k.State, k.DeletionDate)
	}
}

func keyIDsOf(ks []*store.Key) []string {
	var ids []string
	for _, k := range ks {
		ids = append(ids, k.ID)
	}
	return ids
}
