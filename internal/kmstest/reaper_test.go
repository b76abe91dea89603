package kmstest_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsd/kmsd/internal/kmstest"
)

// TestCancelKeyDeletionRacingTheReaper is the black-box test of the
// reaper's compare-and-set: keys whose waiting period ended are cancelled
// through the API, all at once, while the reaper runs a pass every
// millisecond. Each cancellation either wins (CancelKeyDeletion succeeds:
// the key must survive, Disabled, however the reaper's passes fall) or
// comes after the reaper deleted the key (NotFoundException: the key is
// gone). A reaper that deleted a key it had listed as due without checking
// that it was still due destroyed keys whose deletion had been cancelled
// and acknowledged (kms.TestReaperLeavesCancelledDeletion is the same
// race, forced at one point by a store hook).
func TestCancelKeyDeletionRacingTheReaper(t *testing.T) {
	e := kmstest.StartWithReaper(t, time.Millisecond)
	ctx := context.Background()
	const n = 60
	ids := make([]string, n)
	for i := range ids {
		ck, err := e.Client.CreateKey(ctx, &awskms.CreateKeyInput{})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = *ck.KeyMetadata.KeyId
		if _, err := e.Client.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: &ids[i], PendingWindowInDays: aws.Int32(7)}); err != nil {
			t.Fatal(err)
		}
	}
	// The waiting period (7 days, AWS's least) ends now by the service's
	// clock: the reaper's passes start deleting the keys.
	e.Clock.Advance(7*24*time.Hour + time.Minute)
	cancelled := make([]bool, n)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.Client.CancelKeyDeletion(ctx, &awskms.CancelKeyDeletionInput{KeyId: &ids[i]})
			var nf *types.NotFoundException
			switch {
			case err == nil:
				cancelled[i] = true
			case errors.As(err, &nf): // the reaper came first
			default:
				t.Errorf("CancelKeyDeletion %s: %v", ids[i], err)
			}
		}()
	}
	wg.Wait()
	// One more pass, finished before the check: whatever it finds due.
	if _, err := e.Service.ReapDeletedKeys(ctx); err != nil {
		t.Fatal(err)
	}
	won := 0
	for i, id := range ids {
		out, err := e.Client.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: &id})
		var nf *types.NotFoundException
		switch {
		case cancelled[i] && err != nil:
			t.Errorf("key %s: its deletion was cancelled (acknowledged), but DescribeKey says %v: the reaper deleted it", id, err)
		case cancelled[i] && out.KeyMetadata.KeyState != types.KeyStateDisabled:
			t.Errorf("key %s: cancelled, but in state %s, want Disabled", id, out.KeyMetadata.KeyState)
		case !cancelled[i] && !errors.As(err, &nf):
			t.Errorf("key %s: CancelKeyDeletion found it gone, but DescribeKey says %v", id, err)
		}
		if cancelled[i] {
			won++
		}
	}
	t.Logf("%d of %d cancellations came before the reaper", won, n)
}
