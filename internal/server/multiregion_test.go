package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsd/kmsd/internal/kmstest"
)

// mrkEnv is a kmsd and the admin's clients in three Regions.
type mrkEnv struct {
	*kmstest.Env
	east, paris, tokyo *awskms.Client
}

func startMRK(t *testing.T) *mrkEnv {
	t.Helper()
	env := kmstest.Start(t)
	return &mrkEnv{Env: env, east: env.Client, paris: env.ClientIn("eu-west-3"), tokyo: env.ClientIn("ap-northeast-1")}
}

func createMRK(t *testing.T, c *awskms.Client, in *awskms.CreateKeyInput) *types.KeyMetadata {
	t.Helper()
	in.MultiRegion = aws.Bool(true)
	out, err := c.CreateKey(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return out.KeyMetadata
}

func replicate(t *testing.T, c *awskms.Client, keyID *string, region string) *awskms.ReplicateKeyOutput {
	t.Helper()
	out, err := c.ReplicateKey(context.Background(), &awskms.ReplicateKeyInput{KeyId: keyID, ReplicaRegion: aws.String(region)})
	if err != nil {
		t.Fatalf("ReplicateKey to %s: %v", region, err)
	}
	return out
}

func describe(t *testing.T, c *awskms.Client, keyID *string) *types.KeyMetadata {
	t.Helper()
	out, err := c.DescribeKey(context.Background(), &awskms.DescribeKeyInput{KeyId: keyID})
	if err != nil {
		t.Fatal(err)
	}
	return out.KeyMetadata
}

// mrkConfig renders a MultiRegionConfiguration as "TYPE primary-region
// [replica-regions]".
func mrkConfig(md *types.KeyMetadata) string {
	c := md.MultiRegionConfiguration
	if c == nil || c.PrimaryKey == nil {
		return "none"
	}
	var rs []string
	for _, r := range c.ReplicaKeys {
		rs = append(rs, aws.ToString(r.Region))
		if !strings.HasPrefix(aws.ToString(r.Arn), "arn:aws:kms:"+aws.ToString(r.Region)+":") {
			rs = append(rs, "(bad ARN "+aws.ToString(r.Arn)+")")
		}
	}
	return string(c.MultiRegionKeyType) + " " + aws.ToString(c.PrimaryKey.Region) + " [" + strings.Join(rs, " ") + "]"
}

// TestMultiRegionKeys: a multi-Region primary key and its replicas share
// their key id and material (a ciphertext of one decrypts with another, in
// its own Region) and have their own policy, tags, description, aliases
// and state; DescribeKey shows the set; the errors of ReplicateKey leave
// nothing behind.
func TestMultiRegionKeys(t *testing.T) {
	ctx := context.Background()
	e := startMRK(t)
	tag := func(k, v string) types.Tag { return types.Tag{TagKey: aws.String(k), TagValue: aws.String(v)} }
	p := createMRK(t, e.east, &awskms.CreateKeyInput{Description: aws.String("primary"), Tags: []types.Tag{tag("site", "east")}})
	id := aws.ToString(p.KeyId)
	if !strings.HasPrefix(id, "mrk-") || len(id) != 36 || !aws.ToBool(p.MultiRegion) || mrkConfig(p) != "PRIMARY us-east-1 []" {
		t.Fatalf("CreateKey MultiRegion: %s, %v, %s", id, aws.ToBool(p.MultiRegion), mrkConfig(p))
	}

	replicaPolicy := `{"Version": "2012-10-17", "Statement": [{"Sid": "paris", "Effect": "Allow",
	  "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"}]}`
	rp, err := e.east.ReplicateKey(ctx, &awskms.ReplicateKeyInput{KeyId: p.Arn, ReplicaRegion: aws.String("eu-west-3"),
		Description: aws.String("replica in Paris"), Policy: aws.String(replicaPolicy), Tags: []types.Tag{tag("site", "paris")}})
	if err != nil {
		t.Fatal(err)
	}
	rmd := rp.ReplicaKeyMetadata
	if aws.ToString(rmd.KeyId) != id || aws.ToString(rmd.Arn) != "arn:aws:kms:eu-west-3:111122223333:key/"+id ||
		mrkConfig(rmd) != "REPLICA us-east-1 [eu-west-3]" || rmd.KeyState != types.KeyStateEnabled || aws.ToString(rmd.Description) != "replica in Paris" ||
		rmd.KeySpec != p.KeySpec || rmd.KeyUsage != p.KeyUsage || aws.ToString(rmd.CurrentKeyMaterialId) != aws.ToString(p.CurrentKeyMaterialId) {
		t.Fatalf("ReplicateKey metadata: %+v, %s", rmd, mrkConfig(rmd))
	}
	if aws.ToString(rp.ReplicaPolicy) != replicaPolicy || len(rp.ReplicaTags) != 1 || aws.ToString(rp.ReplicaTags[0].TagValue) != "paris" {
		t.Fatalf("ReplicaPolicy %q, ReplicaTags %+v", aws.ToString(rp.ReplicaPolicy), rp.ReplicaTags)
	}
	rt := replicate(t, e.east, p.KeyId, "ap-northeast-1")
	if !strings.Contains(aws.ToString(rt.ReplicaPolicy), `"AWS" : "arn:aws:iam::111122223333:root"`) || len(rt.ReplicaTags) != 0 {
		t.Fatalf("a replica without Policy and Tags: %q, %+v", aws.ToString(rt.ReplicaPolicy), rt.ReplicaTags)
	}
	if got := mrkConfig(describe(t, e.east, p.KeyId)); got != "PRIMARY us-east-1 [ap-northeast-1 eu-west-3]" {
		t.Errorf("DescribeKey of the primary: %s", got)
	}
	if got := mrkConfig(describe(t, e.tokyo, p.KeyId)); got != "REPLICA us-east-1 [ap-northeast-1 eu-west-3]" {
		t.Errorf("DescribeKey of the Tokyo replica: %s", got)
	}

	t.Run("ciphertexts are interchangeable", func(t *testing.T) {
		ec := map[string]string{"app": "mrk"}
		ct, err := e.east.Encrypt(ctx, &awskms.EncryptInput{KeyId: p.KeyId, Plaintext: []byte("across Regions"), EncryptionContext: ec})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []*awskms.Client{e.paris, e.tokyo, e.east} {
			region := c.Options().Region
			for _, keyID := range []*string{nil, p.KeyId, aws.String("arn:aws:kms:" + region + ":111122223333:key/" + id)} {
				out, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: ct.CiphertextBlob, EncryptionContext: ec, KeyId: keyID})
				if err != nil || string(out.Plaintext) != "across Regions" || aws.ToString(out.KeyId) != "arn:aws:kms:"+region+":111122223333:key/"+id {
					t.Fatalf("Decrypt in %s (KeyId %v): %+v, %v", region, aws.ToString(keyID), out, err)
				}
			}
		}
		// A data key made in Tokyo opens in us-east-1; ReEncrypt in Paris.
		dk, err := e.tokyo.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: p.KeyId, KeySpec: "AES_256"})
		if err != nil {
			t.Fatal(err)
		}
		if out, err := e.east.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: dk.CiphertextBlob}); err != nil || !bytes.Equal(out.Plaintext, dk.Plaintext) {
			t.Fatalf("Decrypt in us-east-1 of a Tokyo data key: %v", err)
		}
		re, err := e.paris.ReEncrypt(ctx, &awskms.ReEncryptInput{CiphertextBlob: dk.CiphertextBlob, DestinationKeyId: p.KeyId})
		if err != nil || aws.ToString(re.SourceKeyId) != aws.ToString(rmd.Arn) {
			t.Fatalf("ReEncrypt in Paris: %+v, %v", re, err)
		}
		// The primary's ARN names no key in Paris.
		_, err = e.paris.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: ct.CiphertextBlob, EncryptionContext: ec, KeyId: p.Arn})
		wantCode(t, err, "NotFoundException")
		// A Region without a replica does not have the key: AWS says
		// AccessDeniedException to a Decrypt without KeyId.
		_, err = e.ClientIn("sa-east-1").Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: ct.CiphertextBlob, EncryptionContext: ec})
		wantCode(t, err, "AccessDeniedException")
	})

	t.Run("each key has its own state, tags and aliases", func(t *testing.T) {
		if _, err := e.paris.DisableKey(ctx, &awskms.DisableKeyInput{KeyId: p.KeyId}); err != nil {
			t.Fatal(err)
		}
		_, err := e.paris.Encrypt(ctx, &awskms.EncryptInput{KeyId: p.KeyId, Plaintext: []byte("x")})
		wantCode(t, err, "DisabledException")
		if _, err := e.east.Encrypt(ctx, &awskms.EncryptInput{KeyId: p.KeyId, Plaintext: []byte("x")}); err != nil {
			t.Fatalf("the primary after its replica was disabled: %v", err)
		}
		if _, err := e.paris.EnableKey(ctx, &awskms.EnableKeyInput{KeyId: p.KeyId}); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			client *awskms.Client
			site   string
		}{{e.east, "east"}, {e.paris, "paris"}} {
			ts, err := c.client.ListResourceTags(ctx, &awskms.ListResourceTagsInput{KeyId: p.KeyId})
			if err != nil || len(ts.Tags) != 1 || aws.ToString(ts.Tags[0].TagValue) != c.site {
				t.Errorf("tags in %s: %+v, %v", c.client.Options().Region, ts, err)
			}
			if _, err := c.client.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/mrk"), TargetKeyId: p.KeyId}); err != nil {
				t.Fatal(err)
			}
			as, err := c.client.ListAliases(ctx, &awskms.ListAliasesInput{KeyId: p.KeyId})
			if err != nil || len(as.Aliases) != 1 || aws.ToString(as.Aliases[0].TargetKeyId) != id {
				t.Errorf("aliases in %s: %+v, %v", c.client.Options().Region, as, err)
			}
		}
		pol, err := e.paris.GetKeyPolicy(ctx, &awskms.GetKeyPolicyInput{KeyId: p.KeyId})
		if err != nil || aws.ToString(pol.Policy) != replicaPolicy {
			t.Errorf("the replica's own policy: %v, %v", pol, err)
		}
		ks, err := e.paris.ListKeys(ctx, &awskms.ListKeysInput{})
		if err != nil || len(ks.Keys) != 1 || aws.ToString(ks.Keys[0].KeyId) != id || aws.ToString(ks.Keys[0].KeyArn) != aws.ToString(rmd.Arn) {
			t.Errorf("ListKeys in Paris: %+v, %v", ks, err)
		}
	})

	t.Run("ReplicateKey refuses, and creates nothing", func(t *testing.T) {
		single := createKey(t, e.east, "single-Region")
		for _, tc := range []struct {
			client *awskms.Client
			keyID  *string
			region string
			code   string
		}{
			{e.east, single.KeyId, "eu-west-1", "UnsupportedOperationException"}, // not a multi-Region key
			{e.paris, p.KeyId, "eu-west-1", "UnsupportedOperationException"},     // a replica
			{e.east, p.KeyId, "us-east-1", "ValidationException"},                // the primary's own Region
			{e.east, p.KeyId, "eu-west-3", "AlreadyExistsException"},             // a replica is there
			{e.east, p.KeyId, "cn-north-1", "UnsupportedOperationException"},     // a Region kmsd does not serve
			{e.east, p.KeyId, "mars", "ValidationException"},                     // not a Region name
			{e.east, aws.String("mrk-00000000000000000000000000000000"), "eu-west-1", "NotFoundException"},
		} {
			_, err := tc.client.ReplicateKey(ctx, &awskms.ReplicateKeyInput{KeyId: tc.keyID, ReplicaRegion: aws.String(tc.region)})
			if got := errCode(t, err); got != tc.code {
				t.Errorf("ReplicateKey(%s from %s to %s) = %s (%v), want %s", aws.ToString(tc.keyID), tc.client.Options().Region, tc.region, got, err, tc.code)
			}
		}
		_, err := e.east.ReplicateKey(ctx, &awskms.ReplicateKeyInput{KeyId: p.KeyId, ReplicaRegion: aws.String("eu-west-1"),
			Tags: []types.Tag{tag("aws:reserved", "x")}})
		wantCode(t, err, "TagException")
		_, err = e.east.ReplicateKey(ctx, &awskms.ReplicateKeyInput{KeyId: p.KeyId, ReplicaRegion: aws.String("eu-west-1"), Policy: aws.String("not a policy")})
		wantCode(t, err, "MalformedPolicyDocumentException")
		if ks, err := e.ClientIn("eu-west-1").ListKeys(ctx, &awskms.ListKeysInput{}); err != nil || len(ks.Keys) != 0 {
			t.Errorf("keys in eu-west-1 after the refused replications: %+v, %v", ks, err)
		}
		if got := mrkConfig(describe(t, e.east, p.KeyId)); got != "PRIMARY us-east-1 [ap-northeast-1 eu-west-3]" {
			t.Errorf("the primary after the refused replications: %s", got)
		}
	})
}

// TestMultiRegionRotation: related keys rotate together, on demand and
// automatically, as their primary's settings say; rotation is managed on
// the primary only; every ciphertext still decrypts in every Region.
func TestMultiRegionRotation(t *testing.T) {
	ctx := context.Background()
	e := startMRK(t)
	p := createMRK(t, e.east, &awskms.CreateKeyInput{})
	replicate(t, e.east, p.KeyId, "eu-west-3")
	before, err := e.paris.Encrypt(ctx, &awskms.EncryptInput{KeyId: p.KeyId, Plaintext: []byte("old")})
	if err != nil {
		t.Fatal(err)
	}
	for _, call := range []func() error{
		func() error {
			_, err := e.paris.EnableKeyRotation(ctx, &awskms.EnableKeyRotationInput{KeyId: p.KeyId})
			return err
		},
		func() error {
			_, err := e.paris.DisableKeyRotation(ctx, &awskms.DisableKeyRotationInput{KeyId: p.KeyId})
			return err
		},
		func() error {
			_, err := e.paris.RotateKeyOnDemand(ctx, &awskms.RotateKeyOnDemandInput{KeyId: p.KeyId})
			return err
		},
	} {
		wantCode(t, call(), "UnsupportedOperationException")
	}
	if _, err := e.east.EnableKeyRotation(ctx, &awskms.EnableKeyRotationInput{KeyId: p.KeyId, RotationPeriodInDays: aws.Int32(90)}); err != nil {
		t.Fatal(err)
	}
	st, err := e.paris.GetKeyRotationStatus(ctx, &awskms.GetKeyRotationStatusInput{KeyId: p.KeyId})
	if err != nil || !st.KeyRotationEnabled || aws.ToInt32(st.RotationPeriodInDays) != 90 || st.NextRotationDate == nil {
		t.Fatalf("the replica's rotation status: %+v, %v", st, err)
	}
	sameMaterial := func(what string) string {
		t.Helper()
		a, b := describe(t, e.east, p.KeyId).CurrentKeyMaterialId, describe(t, e.paris, p.KeyId).CurrentKeyMaterialId
		if aws.ToString(a) != aws.ToString(b) {
			t.Fatalf("%s: current material %s in us-east-1, %s in eu-west-3", what, aws.ToString(a), aws.ToString(b))
		}
		return aws.ToString(a)
	}
	m0 := sameMaterial("before rotating")
	if _, err := e.east.RotateKeyOnDemand(ctx, &awskms.RotateKeyOnDemandInput{KeyId: p.KeyId}); err != nil {
		t.Fatal(err)
	}
	m1 := sameMaterial("after RotateKeyOnDemand")
	e.Clock.Advance(91 * 24 * time.Hour)
	if n, err := e.Service.RotateDueKeys(ctx); err != nil || n != 1 {
		t.Fatalf("RotateDueKeys = %d, %v; want the primary, once", n, err)
	}
	m2 := sameMaterial("after the automatic rotation")
	if m0 == m1 || m1 == m2 {
		t.Fatalf("materials %s, %s, %s: want three", m0, m1, m2)
	}
	rs, err := e.paris.ListKeyRotations(ctx, &awskms.ListKeyRotationsInput{KeyId: p.KeyId})
	if err != nil || len(rs.Rotations) != 2 || rs.Rotations[0].RotationType != types.RotationTypeOnDemand || rs.Rotations[1].RotationType != types.RotationTypeAutomatic ||
		aws.ToString(rs.Rotations[1].KeyMaterialId) != m2 {
		t.Fatalf("the replica's rotations: %+v, %v", rs, err)
	}
	// Encrypted in Paris under the newest material, decrypted in
	// us-east-1; the oldest ciphertext still decrypts in both.
	after, err := e.paris.Encrypt(ctx, &awskms.EncryptInput{KeyId: p.KeyId, Plaintext: []byte("new")})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*awskms.Client{e.east, e.paris} {
		for _, ct := range [][]byte{before.CiphertextBlob, after.CiphertextBlob} {
			if _, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: ct}); err != nil {
				t.Fatalf("Decrypt in %s: %v", c.Options().Region, err)
			}
		}
	}
}

// TestUpdatePrimaryRegion: the replica in PrimaryRegion becomes the
// primary, with the rotation settings; the old primary becomes a replica.
func TestUpdatePrimaryRegion(t *testing.T) {
	ctx := context.Background()
	e := startMRK(t)
	p := createMRK(t, e.east, &awskms.CreateKeyInput{})
	replicate(t, e.east, p.KeyId, "eu-west-3")
	replicate(t, e.east, p.KeyId, "ap-northeast-1")
	if _, err := e.east.EnableKeyRotation(ctx, &awskms.EnableKeyRotationInput{KeyId: p.KeyId, RotationPeriodInDays: aws.Int32(180)}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		client *awskms.Client
		region string
		code   string
	}{
		{e.paris, "ap-northeast-1", "UnsupportedOperationException"}, // called on a replica
		{e.east, "us-east-1", "ValidationException"},                 // already the primary
		{e.east, "sa-east-1", "NotFoundException"},                   // no replica there
		{e.east, "cn-north-1", "UnsupportedOperationException"},      // not served
		{e.east, "moon", "ValidationException"},
	} {
		_, err := tc.client.UpdatePrimaryRegion(ctx, &awskms.UpdatePrimaryRegionInput{KeyId: p.KeyId, PrimaryRegion: aws.String(tc.region)})
		if got := errCode(t, err); got != tc.code {
			t.Errorf("UpdatePrimaryRegion(from %s to %s) = %s (%v), want %s", tc.client.Options().Region, tc.region, got, err, tc.code)
		}
	}
	single := createKey(t, e.east, "single")
	_, err := e.east.UpdatePrimaryRegion(ctx, &awskms.UpdatePrimaryRegionInput{KeyId: single.KeyId, PrimaryRegion: aws.String("eu-west-3")})
	wantCode(t, err, "UnsupportedOperationException")

	if _, err := e.east.UpdatePrimaryRegion(ctx, &awskms.UpdatePrimaryRegionInput{KeyId: p.Arn, PrimaryRegion: aws.String("eu-west-3")}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		client *awskms.Client
		want   string
	}{
		{e.east, "REPLICA eu-west-3 [ap-northeast-1 us-east-1]"},
		{e.paris, "PRIMARY eu-west-3 [ap-northeast-1 us-east-1]"},
		{e.tokyo, "REPLICA eu-west-3 [ap-northeast-1 us-east-1]"},
	} {
		if got := mrkConfig(describe(t, c.client, p.KeyId)); got != c.want {
			t.Errorf("DescribeKey in %s: %s, want %s", c.client.Options().Region, got, c.want)
		}
	}
	// The rotation settings moved with the primary.
	st, err := e.tokyo.GetKeyRotationStatus(ctx, &awskms.GetKeyRotationStatusInput{KeyId: p.KeyId})
	if err != nil || !st.KeyRotationEnabled || aws.ToInt32(st.RotationPeriodInDays) != 180 {
		t.Errorf("rotation status after the move: %+v, %v", st, err)
	}
	_, err = e.east.DisableKeyRotation(ctx, &awskms.DisableKeyRotationInput{KeyId: p.KeyId})
	wantCode(t, err, "UnsupportedOperationException")
	if _, err := e.paris.DisableKeyRotation(ctx, &awskms.DisableKeyRotationInput{KeyId: p.KeyId}); err != nil {
		t.Fatalf("DisableKeyRotation on the new primary: %v", err)
	}
	// The old primary is a replica now: it cannot be replicated.
	_, err = e.east.ReplicateKey(ctx, &awskms.ReplicateKeyInput{KeyId: p.KeyId, ReplicaRegion: aws.String("eu-west-1")})
	wantCode(t, err, "UnsupportedOperationException")
	replicate(t, e.paris, p.KeyId, "eu-west-1")
}

// TestMultiRegionDeletion: a primary key with replicas waits in
// PendingReplicaDeletion (no deletion date) until its last replica is
// deleted, then its own waiting period begins.
func TestMultiRegionDeletion(t *testing.T) {
	ctx := context.Background()
	e := startMRK(t)
	p := createMRK(t, e.east, &awskms.CreateKeyInput{})
	replicate(t, e.east, p.KeyId, "eu-west-3")
	replicate(t, e.east, p.KeyId, "ap-northeast-1")
	out, err := e.east.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: p.KeyId, PendingWindowInDays: aws.Int32(7)})
	if err != nil {
		t.Fatal(err)
	}
	if out.KeyState != types.KeyStatePendingReplicaDeletion || out.DeletionDate != nil || aws.ToInt32(out.PendingWindowInDays) != 7 {
		t.Fatalf("ScheduleKeyDeletion of a primary with replicas: %+v", out)
	}
	md := describe(t, e.east, p.KeyId)
	if md.KeyState != types.KeyStatePendingReplicaDeletion || md.DeletionDate != nil || aws.ToInt32(md.PendingDeletionWindowInDays) != 7 || md.Enabled {
		t.Fatalf("DescribeKey: %+v", md)
	}
	_, err = e.east.Encrypt(ctx, &awskms.EncryptInput{KeyId: p.KeyId, Plaintext: []byte("x")})
	wantCode(t, err, "KMSInvalidStateException")
	_, err = e.east.ReplicateKey(ctx, &awskms.ReplicateKeyInput{KeyId: p.KeyId, ReplicaRegion: aws.String("eu-west-1")})
	wantCode(t, err, "KMSInvalidStateException")
	// The replicas still work, and cancelling leaves the primary Disabled.
	if _, err := e.paris.Encrypt(ctx, &awskms.EncryptInput{KeyId: p.KeyId, Plaintext: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.east.CancelKeyDeletion(ctx, &awskms.CancelKeyDeletionInput{KeyId: p.KeyId}); err != nil {
		t.Fatal(err)
	}
	if st := describe(t, e.east, p.KeyId).KeyState; st != types.KeyStateDisabled {
		t.Fatalf("state after CancelKeyDeletion: %s", st)
	}
	if _, err := e.east.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: p.KeyId, PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	// The replicas go first: Paris after 7 days, Tokyo after 10.
	if _, err := e.paris.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: p.KeyId, PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.tokyo.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: p.KeyId, PendingWindowInDays: aws.Int32(10)}); err != nil {
		t.Fatal(err)
	}
	reap := func(want int) {
		t.Helper()
		if n, err := e.Service.ReapDeletedKeys(ctx); err != nil || n != want {
			t.Fatalf("ReapDeletedKeys = %d, %v; want %d", n, err, want)
		}
	}
	e.Clock.Advance(8 * 24 * time.Hour)
	reap(1)
	_, err = e.paris.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: p.KeyId})
	wantCode(t, err, "NotFoundException")
	if md := describe(t, e.east, p.KeyId); md.KeyState != types.KeyStatePendingReplicaDeletion || mrkConfig(md) != "PRIMARY us-east-1 [ap-northeast-1]" {
		t.Fatalf("the primary with one replica left: %s, %s", md.KeyState, mrkConfig(md))
	}
	e.Clock.Advance(3 * 24 * time.Hour)
	reap(1)
	md = describe(t, e.east, p.KeyId)
	if want := e.Clock.Now().Add(7 * 24 * time.Hour); md.KeyState != types.KeyStatePendingDeletion || md.DeletionDate == nil ||
		md.DeletionDate.Sub(want).Abs() > time.Second {
		t.Fatalf("the primary once its last replica is deleted: %s, %v; want PendingDeletion until %v", md.KeyState, md.DeletionDate, want)
	}
	e.Clock.Advance(8 * 24 * time.Hour)
	reap(1)
	_, err = e.east.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: p.KeyId})
	wantCode(t, err, "NotFoundException")
}

// TestMultiRegionAsymmetricAndHMAC: signatures, public keys, RSA
// ciphertexts and MACs of one related key are those of the others.
func TestMultiRegionAsymmetricAndHMAC(t *testing.T) {
	ctx := context.Background()
	e := startMRK(t)
	sign := createMRK(t, e.east, &awskms.CreateKeyInput{KeySpec: "ECC_NIST_P256", KeyUsage: "SIGN_VERIFY"})
	rsaKey := createMRK(t, e.east, &awskms.CreateKeyInput{KeySpec: "RSA_2048", KeyUsage: "ENCRYPT_DECRYPT"})
	hmac := createMRK(t, e.east, &awskms.CreateKeyInput{KeySpec: "HMAC_256", KeyUsage: "GENERATE_VERIFY_MAC"})
	for _, k := range []*types.KeyMetadata{sign, rsaKey, hmac} {
		replicate(t, e.east, k.KeyId, "eu-west-3")
	}
	sig, err := e.east.Sign(ctx, &awskms.SignInput{KeyId: sign.KeyId, Message: []byte("m"), SigningAlgorithm: "ECDSA_SHA_256"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.paris.Verify(ctx, &awskms.VerifyInput{KeyId: sign.KeyId, Message: []byte("m"), Signature: sig.Signature, SigningAlgorithm: "ECDSA_SHA_256"}); err != nil {
		t.Fatalf("Verify in Paris of a signature made in us-east-1: %v", err)
	}
	pubs := [][]byte{}
	for _, c := range []*awskms.Client{e.east, e.paris} {
		pk, err := c.GetPublicKey(ctx, &awskms.GetPublicKeyInput{KeyId: sign.KeyId})
		if err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, pk.PublicKey)
	}
	if !bytes.Equal(pubs[0], pubs[1]) {
		t.Error("the related keys have different public keys")
	}
	ct, err := e.paris.Encrypt(ctx, &awskms.EncryptInput{KeyId: rsaKey.KeyId, Plaintext: []byte("rsa"), EncryptionAlgorithm: "RSAES_OAEP_SHA_256"})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := e.east.Decrypt(ctx, &awskms.DecryptInput{KeyId: rsaKey.KeyId, CiphertextBlob: ct.CiphertextBlob, EncryptionAlgorithm: "RSAES_OAEP_SHA_256"}); err != nil || string(out.Plaintext) != "rsa" {
		t.Fatalf("RSA Decrypt in us-east-1 of a Paris ciphertext: %v", err)
	}
	macs := [][]byte{}
	for _, c := range []*awskms.Client{e.east, e.paris} {
		m, err := c.GenerateMac(ctx, &awskms.GenerateMacInput{KeyId: hmac.KeyId, Message: []byte("m"), MacAlgorithm: "HMAC_SHA_256"})
		if err != nil {
			t.Fatal(err)
		}
		macs = append(macs, m.Mac)
	}
	if !bytes.Equal(macs[0], macs[1]) {
		t.Error("the related HMAC keys make different MACs")
	}
	if _, err := e.paris.VerifyMac(ctx, &awskms.VerifyMacInput{KeyId: hmac.KeyId, Message: []byte("m"), Mac: macs[0], MacAlgorithm: "HMAC_SHA_256"}); err != nil {
		t.Fatal(err)
	}
}

// TestMultiRegionImportedMaterial: an EXTERNAL multi-Region key and its
// replicas take the same material, imported into each; a different
// material is IncorrectKeyMaterialException; the ciphertexts of one
// decrypt with the others.
func TestMultiRegionImportedMaterial(t *testing.T) {
	ctx := context.Background()
	e := startMRK(t)
	p := createMRK(t, e.east, &awskms.CreateKeyInput{Origin: types.OriginTypeExternal})
	r := replicate(t, e.east, p.KeyId, "eu-west-3").ReplicaKeyMetadata
	if r.KeyState != types.KeyStatePendingImport || r.Origin != types.OriginTypeExternal {
		t.Fatalf("the replica of an EXTERNAL key: %s, %s", r.KeyState, r.Origin)
	}
	material, other := make([]byte, 32), make([]byte, 32)
	rand.Read(material)
	rand.Read(other)
	imp := func(c *awskms.Client, m []byte) (*awskms.ImportKeyMaterialOutput, error) {
		t.Helper()
		params, err := c.GetParametersForImport(ctx, &awskms.GetParametersForImportInput{KeyId: p.KeyId,
			WrappingAlgorithm: types.AlgorithmSpecRsaesOaepSha256, WrappingKeySpec: types.WrappingKeySpecRsa2048})
		if err != nil {
			t.Fatal(err)
		}
		return c.ImportKeyMaterial(ctx, &awskms.ImportKeyMaterialInput{KeyId: p.KeyId, ImportToken: params.ImportToken,
			EncryptedKeyMaterial: oaepWrap(t, params.PublicKey, m), ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire})
	}
	// The first import, into the replica, decides the material of all.
	ri, err := imp(e.paris, material)
	if err != nil {
		t.Fatal(err)
	}
	_, err = imp(e.east, other)
	wantCode(t, err, "IncorrectKeyMaterialException")
	if st := describe(t, e.east, p.KeyId).KeyState; st != types.KeyStatePendingImport {
		t.Fatalf("the primary after a refused import: %s", st)
	}
	pi, err := imp(e.east, material)
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(pi.KeyMaterialId) != aws.ToString(ri.KeyMaterialId) {
		t.Fatalf("the same material has the ids %s and %s", aws.ToString(pi.KeyMaterialId), aws.ToString(ri.KeyMaterialId))
	}
	ct, err := e.paris.Encrypt(ctx, &awskms.EncryptInput{KeyId: p.KeyId, Plaintext: []byte("imported")})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := e.east.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: ct.CiphertextBlob}); err != nil || string(out.Plaintext) != "imported" {
		t.Fatalf("Decrypt in us-east-1: %v", err)
	}
	// A replica made now waits for the same material.
	tr := replicate(t, e.east, p.KeyId, "ap-northeast-1").ReplicaKeyMetadata
	if tr.KeyState != types.KeyStatePendingImport || aws.ToString(tr.CurrentKeyMaterialId) != aws.ToString(pi.KeyMaterialId) {
		t.Fatalf("a replica of a key with material: %s, %s", tr.KeyState, aws.ToString(tr.CurrentKeyMaterialId))
	}
	_, err = imp(e.tokyo, other)
	wantCode(t, err, "IncorrectKeyMaterialException")
	if _, err := imp(e.tokyo, material); err != nil {
		t.Fatal(err)
	}
	if out, err := e.tokyo.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: ct.CiphertextBlob}); err != nil || string(out.Plaintext) != "imported" {
		t.Fatalf("Decrypt in Tokyo: %v", err)
	}
}

// TestMultiRegionAuthorization: ReplicateKey needs kms:ReplicateKey on the
// primary and kms:CreateKey in an identity policy as a request in the
// replica's Region; UpdatePrimaryRegion needs kms:UpdatePrimaryRegion in
// both keys' policies. The audit record of ReplicateKey names both keys.
func TestMultiRegionAuthorization(t *testing.T) {
	ctx := context.Background()
	const iamYAML = `
accounts:
  - id: "111122223333"
    users:
      - name: replicator
        policies:
          - document: '{"Version": "2012-10-17", "Statement": [
              {"Effect": "Allow", "Action": ["kms:ReplicateKey", "kms:DescribeKey", "kms:CreateKey"], "Resource": "*",
               "Condition": {"StringEquals": {"aws:RequestedRegion": ["us-east-1", "eu-west-3"]}}}]}'
`
	env := kmstest.StartWithIAM(t, iamYAML, t.TempDir())
	rep := env.UserClient(t, kmstest.Account, "replicator")
	p := createMRK(t, env.Client, &awskms.CreateKeyInput{})
	if _, err := rep.ReplicateKey(ctx, &awskms.ReplicateKeyInput{KeyId: p.KeyId, ReplicaRegion: aws.String("eu-west-3")}); err != nil {
		t.Fatalf("ReplicateKey allowed in both Regions: %v", err)
	}
	_, err := rep.ReplicateKey(ctx, &awskms.ReplicateKeyInput{KeyId: p.KeyId, ReplicaRegion: aws.String("ap-south-1")})
	wantDenied(t, err, denial("arn:aws:iam::111122223333:user/replicator", "kms:CreateKey", "*", noIdentity("kms:CreateKey")))
	_, err = rep.ReplicateKey(ctx, &awskms.ReplicateKeyInput{KeyId: p.KeyId, ReplicaRegion: aws.String("ap-south-1"), Tags: []types.Tag{{TagKey: aws.String("a"), TagValue: aws.String("b")}}})
	wantCode(t, err, "AccessDeniedException")

	// A replica whose policy denies UpdatePrimaryRegion cannot become the
	// primary, though the primary's policy allows it.
	denyMove := `{"Version": "2012-10-17", "Statement": [
	  {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},
	  {"Effect": "Deny", "Principal": "*", "Action": "kms:UpdatePrimaryRegion", "Resource": "*"}]}`
	if _, err := env.Client.ReplicateKey(ctx, &awskms.ReplicateKeyInput{KeyId: p.KeyId, ReplicaRegion: aws.String("ap-northeast-1"), Policy: aws.String(denyMove)}); err != nil {
		t.Fatal(err)
	}
	_, err = env.Client.UpdatePrimaryRegion(ctx, &awskms.UpdatePrimaryRegionInput{KeyId: p.KeyId, PrimaryRegion: aws.String("ap-northeast-1")})
	wantDenied(t, err, denial("arn:aws:iam::111122223333:user/admin", "kms:UpdatePrimaryRegion",
		"arn:aws:kms:ap-northeast-1:111122223333:key/"+aws.ToString(p.KeyId), "with an explicit deny in a resource-based policy"))
	// A replica policy that would lock the caller out is refused.
	lockout := `{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/nobody"}, "Action": "kms:*", "Resource": "*"}]}`
	_, err = env.Client.ReplicateKey(ctx, &awskms.ReplicateKeyInput{KeyId: p.KeyId, ReplicaRegion: aws.String("eu-west-1"), Policy: aws.String(lockout)})
	wantCode(t, err, "MalformedPolicyDocumentException")
	md := describe(t, env.Client, p.KeyId)
	if got := mrkConfig(md); got != "PRIMARY us-east-1 [ap-northeast-1 eu-west-3]" {
		t.Fatalf("after the refused requests: %s", got)
	}
	if !slices.ContainsFunc(md.MultiRegionConfiguration.ReplicaKeys, func(k types.MultiRegionKey) bool { return aws.ToString(k.Region) == "eu-west-3" }) {
		t.Fatal("no replica in eu-west-3")
	}
}

// TestMultiRegionImportedRotation: new key material for an EXTERNAL
// multi-Region key is imported into the primary and every replica
// (PENDING_MULTI_REGION_IMPORT_AND_ROTATION until then); the primary's
// on-demand rotation makes it current in all of them at once.
func TestMultiRegionImportedRotation(t *testing.T) {
	ctx := context.Background()
	e := startMRK(t)
	p := createMRK(t, e.east, &awskms.CreateKeyInput{Origin: types.OriginTypeExternal})
	replicate(t, e.east, p.KeyId, "eu-west-3")
	a, b := make([]byte, 32), make([]byte, 32)
	rand.Read(a)
	rand.Read(b)
	imp := func(c *awskms.Client, m []byte, typ types.ImportType) (string, error) {
		t.Helper()
		params, err := c.GetParametersForImport(ctx, &awskms.GetParametersForImportInput{KeyId: p.KeyId,
			WrappingAlgorithm: types.AlgorithmSpecRsaesOaepSha256, WrappingKeySpec: types.WrappingKeySpecRsa2048})
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.ImportKeyMaterial(ctx, &awskms.ImportKeyMaterialInput{KeyId: p.KeyId, ImportToken: params.ImportToken, ImportType: typ,
			EncryptedKeyMaterial: oaepWrap(t, params.PublicKey, m), ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire})
		if err != nil {
			return "", err
		}
		return aws.ToString(out.KeyMaterialId), nil
	}
	for _, c := range []*awskms.Client{e.east, e.paris} {
		if _, err := imp(c, a, ""); err != nil {
			t.Fatal(err)
		}
	}
	old, err := e.paris.Encrypt(ctx, &awskms.EncryptInput{KeyId: p.KeyId, Plaintext: []byte("a")})
	if err != nil {
		t.Fatal(err)
	}
	bID, err := imp(e.east, b, types.ImportTypeNewKeyMaterial)
	if err != nil {
		t.Fatal(err)
	}
	pendingState := func() types.KeyMaterialState {
		t.Helper()
		rs, err := e.east.ListKeyRotations(ctx, &awskms.ListKeyRotationsInput{KeyId: p.KeyId, IncludeKeyMaterial: types.IncludeKeyMaterialAllKeyMaterial})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs.Rotations {
			if aws.ToString(r.KeyMaterialId) == bID {
				return r.KeyMaterialState
			}
		}
		t.Fatalf("no entry for material %s in %+v", bID, rs.Rotations)
		return ""
	}
	if st := pendingState(); st != types.KeyMaterialStatePendingMultiRegionImportAndRotation {
		t.Fatalf("new material imported into the primary only: %s", st)
	}
	_, err = e.east.RotateKeyOnDemand(ctx, &awskms.RotateKeyOnDemandInput{KeyId: p.KeyId})
	wantCode(t, err, "UnsupportedOperationException")
	// AWS's procedure: the replica takes the primary's new material with
	// ImportType EXISTING_KEY_MATERIAL.
	if _, err := imp(e.paris, b, types.ImportTypeExistingKeyMaterial); err != nil {
		t.Fatal(err)
	}
	if st := pendingState(); st != types.KeyMaterialStatePendingRotation {
		t.Fatalf("new material imported everywhere: %s", st)
	}
	_, err = e.paris.RotateKeyOnDemand(ctx, &awskms.RotateKeyOnDemandInput{KeyId: p.KeyId})
	wantCode(t, err, "UnsupportedOperationException")
	if _, err := e.east.RotateKeyOnDemand(ctx, &awskms.RotateKeyOnDemandInput{KeyId: p.KeyId}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*awskms.Client{e.east, e.paris} {
		if m := aws.ToString(describe(t, c, p.KeyId).CurrentKeyMaterialId); m != bID {
			t.Errorf("current material in %s: %s, want %s", c.Options().Region, m, bID)
		}
	}
	ct, err := e.paris.Encrypt(ctx, &awskms.EncryptInput{KeyId: p.KeyId, Plaintext: []byte("b")})
	if err != nil {
		t.Fatal(err)
	}
	for _, blob := range [][]byte{old.CiphertextBlob, ct.CiphertextBlob} {
		if _, err := e.east.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: blob}); err != nil {
			t.Fatalf("Decrypt in us-east-1 after the rotation: %v", err)
		}
	}
}

// TestListKeysWithMultiRegionKeys: ListKeys pages through single-Region and
// multi-Region keys alike, its marker a key id.
func TestListKeysWithMultiRegionKeys(t *testing.T) {
	ctx := context.Background()
	e := startMRK(t)
	want := []string{}
	for range 2 {
		want = append(want, aws.ToString(createMRK(t, e.east, &awskms.CreateKeyInput{}).KeyId), aws.ToString(createKey(t, e.east, "").KeyId))
	}
	slices.Sort(want)
	var got []string
	var marker *string
	for {
		out, err := e.east.ListKeys(ctx, &awskms.ListKeysInput{Limit: aws.Int32(1), Marker: marker})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range out.Keys {
			got = append(got, aws.ToString(k.KeyId))
		}
		if !out.Truncated {
			break
		}
		marker = out.NextMarker
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ListKeys pages: %v, want %v", got, want)
	}
}

// importInto returns a function that imports material m into key keyID
// with client c, ImportType typ ("" for none), never expiring.
func importInto(t *testing.T, keyID *string) func(c *awskms.Client, m []byte, typ types.ImportType) (string, error) {
	return func(c *awskms.Client, m []byte, typ types.ImportType) (string, error) {
		t.Helper()
		ctx := context.Background()
		params, err := c.GetParametersForImport(ctx, &awskms.GetParametersForImportInput{KeyId: keyID,
			WrappingAlgorithm: types.AlgorithmSpecRsaesOaepSha256, WrappingKeySpec: types.WrappingKeySpecRsa2048})
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.ImportKeyMaterial(ctx, &awskms.ImportKeyMaterialInput{KeyId: keyID, ImportToken: params.ImportToken, ImportType: typ,
			EncryptedKeyMaterial: oaepWrap(t, params.PublicKey, m), ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire})
		if err != nil {
			return "", err
		}
		return aws.ToString(out.KeyMaterialId), nil
	}
}

// TestMultiRegionImportedReplicaOfRotatedKey: a replica made after an
// EXTERNAL multi-Region key rotated takes every material the related keys
// hold (each named by its Region-independent KeyMaterialId), with
// EXISTING_KEY_MATERIAL, and then opens the ciphertexts made under each;
// material no related key holds is refused, and new material goes into
// the primary first.
func TestMultiRegionImportedReplicaOfRotatedKey(t *testing.T) {
	ctx := context.Background()
	e := startMRK(t)
	p := createMRK(t, e.east, &awskms.CreateKeyInput{Origin: types.OriginTypeExternal})
	imp := importInto(t, p.KeyId)
	a, b, c, stranger := make([]byte, 32), make([]byte, 32), make([]byte, 32), make([]byte, 32)
	for _, m := range [][]byte{a, b, c, stranger} {
		rand.Read(m)
	}
	aID, err := imp(e.east, a, "")
	if err != nil {
		t.Fatal(err)
	}
	encrypt := func(cl *awskms.Client, pt string) []byte {
		t.Helper()
		out, err := cl.Encrypt(ctx, &awskms.EncryptInput{KeyId: p.KeyId, Plaintext: []byte(pt)})
		if err != nil {
			t.Fatal(err)
		}
		return out.CiphertextBlob
	}
	decrypt := func(cl *awskms.Client, blob []byte) (string, error) {
		t.Helper()
		out, err := cl.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: blob})
		if err != nil {
			return "", err
		}
		return string(out.Plaintext), nil
	}
	underA := encrypt(e.east, "under a")
	// The primary rotates to b before any replica exists.
	bID, err := imp(e.east, b, types.ImportTypeNewKeyMaterial)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.east.RotateKeyOnDemand(ctx, &awskms.RotateKeyOnDemandInput{KeyId: p.KeyId}); err != nil {
		t.Fatal(err)
	}
	underB := encrypt(e.east, "under b")

	r := replicate(t, e.east, p.KeyId, "eu-west-3").ReplicaKeyMetadata
	if r.KeyState != types.KeyStatePendingImport || aws.ToString(r.CurrentKeyMaterialId) != bID {
		t.Fatalf("the replica of a rotated EXTERNAL key: %s, current %s; want PendingImport, %s", r.KeyState, aws.ToString(r.CurrentKeyMaterialId), bID)
	}
	if id, err := imp(e.paris, b, types.ImportTypeExistingKeyMaterial); err != nil || id != bID {
		t.Fatalf("import of the current material into the replica: %s, %v", id, err)
	}
	if pt, err := decrypt(e.paris, underB); err != nil || pt != "under b" {
		t.Fatalf("Decrypt in Paris of a ciphertext under the current material: %q, %v", pt, err)
	}
	// The earlier material is not the replica's yet.
	if _, err := decrypt(e.paris, underA); err == nil {
		t.Fatal("Decrypt in Paris under material the replica does not hold succeeded")
	}
	// Material no related key holds, and earlier material as new, are refused.
	_, err = imp(e.paris, stranger, types.ImportTypeExistingKeyMaterial)
	wantCode(t, err, "IncorrectKeyMaterialException")
	_, err = imp(e.paris, a, types.ImportTypeNewKeyMaterial)
	wantCode(t, err, "IncorrectKeyMaterialException")
	_, err = imp(e.paris, stranger, types.ImportTypeNewKeyMaterial)
	wantCode(t, err, "UnsupportedOperationException")
	for range 2 { // the second import changes nothing
		if id, err := imp(e.paris, a, types.ImportTypeExistingKeyMaterial); err != nil || id != aID {
			t.Fatalf("import of the earlier material into the replica: %s, %v; want %s", id, err, aID)
		}
	}
	if pt, err := decrypt(e.paris, underA); err != nil || pt != "under a" {
		t.Fatalf("Decrypt in Paris under the earlier material, after its import: %q, %v", pt, err)
	}
	md := describe(t, e.paris, p.KeyId)
	if md.KeyState != types.KeyStateEnabled || aws.ToString(md.CurrentKeyMaterialId) != bID {
		t.Fatalf("the replica after importing its earlier material: %s, current %s", md.KeyState, aws.ToString(md.CurrentKeyMaterialId))
	}
	// New ciphertexts of the replica still use the current material.
	if pt, err := decrypt(e.east, encrypt(e.paris, "paris")); err != nil || pt != "paris" {
		t.Fatalf("Decrypt in us-east-1 of a new Paris ciphertext: %q, %v", pt, err)
	}
	rs, err := e.paris.ListKeyRotations(ctx, &awskms.ListKeyRotationsInput{KeyId: p.KeyId, IncludeKeyMaterial: types.IncludeKeyMaterialAllKeyMaterial})
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]types.KeyMaterialState{}
	for _, e := range rs.Rotations {
		states[aws.ToString(e.KeyMaterialId)] = e.KeyMaterialState
	}
	if states[aID] != types.KeyMaterialStateNonCurrent || states[bID] != types.KeyMaterialStateCurrent {
		t.Errorf("ListKeyRotations of the replica: %v; want %s NON_CURRENT, %s CURRENT", states, aID, bID)
	}

	// The next rotation: c is new in the primary, the replica takes it
	// with EXISTING_KEY_MATERIAL, and the primary rotates both.
	cID, err := imp(e.east, c, types.ImportTypeNewKeyMaterial)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := imp(e.paris, c, types.ImportTypeExistingKeyMaterial); err != nil || id != cID {
		t.Fatalf("import of the primary's new material into the replica: %s, %v", id, err)
	}
	if _, err := e.east.RotateKeyOnDemand(ctx, &awskms.RotateKeyOnDemandInput{KeyId: p.KeyId}); err != nil {
		t.Fatal(err)
	}
	if m := aws.ToString(describe(t, e.paris, p.KeyId).CurrentKeyMaterialId); m != cID {
		t.Fatalf("the replica's current material after the rotation: %s, want %s", m, cID)
	}
	for blob, want := range map[*[]byte]string{&underA: "under a", &underB: "under b"} {
		if pt, err := decrypt(e.paris, *blob); err != nil || pt != want {
			t.Errorf("Decrypt in Paris after the second rotation: %q, %v; want %q", pt, err, want)
		}
	}
}

// TestMultiRegionImportedHMACAndECC: the same HMAC or ECC material
// imported into the related keys of an EXTERNAL multi-Region key in two
// Regions gives equal MACs, and signatures one Region verifies.
func TestMultiRegionImportedHMACAndECC(t *testing.T) {
	ctx := context.Background()
	e := startMRK(t)

	hmacKey := createMRK(t, e.east, &awskms.CreateKeyInput{Origin: types.OriginTypeExternal, KeySpec: "HMAC_256", KeyUsage: "GENERATE_VERIFY_MAC"})
	replicate(t, e.east, hmacKey.KeyId, "eu-west-3")
	hmacMaterial := make([]byte, 32)
	rand.Read(hmacMaterial)
	impHMAC := importInto(t, hmacKey.KeyId)
	for _, c := range []*awskms.Client{e.paris, e.east} {
		if _, err := impHMAC(c, hmacMaterial, ""); err != nil {
			t.Fatalf("import of HMAC material in %s: %v", c.Options().Region, err)
		}
	}
	var macs [][]byte
	for _, c := range []*awskms.Client{e.east, e.paris} {
		m, err := c.GenerateMac(ctx, &awskms.GenerateMacInput{KeyId: hmacKey.KeyId, Message: []byte("m"), MacAlgorithm: "HMAC_SHA_256"})
		if err != nil {
			t.Fatal(err)
		}
		macs = append(macs, m.Mac)
	}
	if !bytes.Equal(macs[0], macs[1]) {
		t.Error("the related keys with the same imported HMAC material make different MACs")
	}
	if _, err := e.paris.VerifyMac(ctx, &awskms.VerifyMacInput{KeyId: hmacKey.KeyId, Message: []byte("m"), Mac: macs[0], MacAlgorithm: "HMAC_SHA_256"}); err != nil {
		t.Fatalf("VerifyMac in Paris of a us-east-1 MAC: %v", err)
	}

	eccKey := createMRK(t, e.east, &awskms.CreateKeyInput{Origin: types.OriginTypeExternal, KeySpec: "ECC_NIST_P256", KeyUsage: "SIGN_VERIFY"})
	replicate(t, e.east, eccKey.KeyId, "eu-west-3")
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	impECC := importInto(t, eccKey.KeyId)
	for _, c := range []*awskms.Client{e.east, e.paris} {
		if _, err := impECC(c, der, ""); err != nil {
			t.Fatalf("import of ECC material in %s: %v", c.Options().Region, err)
		}
	}
	// Different ECC material is refused in a related key.
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherDER, err := x509.MarshalPKCS8PrivateKey(other)
	if err != nil {
		t.Fatal(err)
	}
	tokyoReplica := replicate(t, e.east, eccKey.KeyId, "ap-northeast-1").ReplicaKeyMetadata
	if tokyoReplica.KeyState != types.KeyStatePendingImport {
		t.Fatalf("the Tokyo replica: %s", tokyoReplica.KeyState)
	}
	_, err = impECC(e.tokyo, otherDER, "")
	wantCode(t, err, "IncorrectKeyMaterialException")

	sig, err := e.east.Sign(ctx, &awskms.SignInput{KeyId: eccKey.KeyId, Message: []byte("m"), SigningAlgorithm: "ECDSA_SHA_256"})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := e.paris.Verify(ctx, &awskms.VerifyInput{KeyId: eccKey.KeyId, Message: []byte("m"), Signature: sig.Signature, SigningAlgorithm: "ECDSA_SHA_256"}); err != nil || !v.SignatureValid {
		t.Fatalf("Verify in Paris of a us-east-1 signature: %v", err)
	}
	pk, err := e.paris.GetPublicKey(ctx, &awskms.GetPublicKeyInput{KeyId: eccKey.KeyId})
	if err != nil {
		t.Fatal(err)
	}
	want, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pk.PublicKey, want) {
		t.Error("the Paris replica's public key is not the imported key's")
	}
	// The signature verifies with the imported key itself, outside kmsd.
	digest := sha256.Sum256([]byte("m"))
	if !ecdsa.VerifyASN1(&priv.PublicKey, digest[:], sig.Signature) {
		t.Error("the signature does not verify with the imported public key")
	}
}
