package server_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsd/kmsd/internal/awsjson"
	"github.com/kmsd/kmsd/internal/kmstest"
	"github.com/kmsd/kmsd/internal/server"
	"github.com/kmsd/kmsd/internal/sigv4"
)

// TestRegions: one kmsd serves many Regions, and a request acts in the
// Region its signature is scoped to. Keys, aliases (one name in two
// Regions), ciphertexts, grants, ListKeys, ListAliases and
// ListRetirableGrants each live in one Region; a key ARN of another Region
// is NotFoundException; the audit record names the request's Region.
func TestRegions(t *testing.T) {
	ctx := context.Background()
	a := &memAuditor{}
	env := kmstest.StartWithAuditor(t, a)
	east, paris := env.Client, env.ClientIn("eu-west-3")

	keyIn := func(c *awskms.Client) *types.KeyMetadata {
		t.Helper()
		out, err := c.CreateKey(ctx, &awskms.CreateKeyInput{})
		if err != nil {
			t.Fatal(err)
		}
		return out.KeyMetadata
	}
	pk, ek := keyIn(paris), keyIn(east)
	if arn := aws.ToString(pk.Arn); !strings.HasPrefix(arn, "arn:aws:kms:eu-west-3:"+kmstest.Account+":key/") {
		t.Fatalf("key ARN %s, want one in eu-west-3", arn)
	}
	// The same alias name in both Regions, each naming its Region's key.
	for _, c := range []struct {
		client *awskms.Client
		key    *types.KeyMetadata
	}{{paris, pk}, {east, ek}} {
		if _, err := c.client.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/app"), TargetKeyId: c.key.KeyId}); err != nil {
			t.Fatal(err)
		}
		d, err := c.client.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String("alias/app")})
		if err != nil || aws.ToString(d.KeyMetadata.KeyId) != aws.ToString(c.key.KeyId) {
			t.Fatalf("alias/app in %s: %v, %v", c.client.Options().Region, d, err)
		}
	}
	// From us-east-1, the Paris key does not exist: by id, by ARN, by the
	// alias ARN of eu-west-3.
	for _, id := range []string{aws.ToString(pk.KeyId), aws.ToString(pk.Arn), "arn:aws:kms:eu-west-3:" + kmstest.Account + ":alias/app"} {
		_, err := east.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(id)})
		wantCode(t, err, "NotFoundException")
		_, err = east.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(id), Plaintext: []byte("x")})
		wantCode(t, err, "NotFoundException")
	}
	// A ciphertext of Paris does not decrypt in us-east-1.
	ct, err := paris.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String("alias/app"), Plaintext: []byte("bonjour")})
	if err != nil {
		t.Fatal(err)
	}
	// Without KeyId, AWS answers AccessDeniedException: it does not tell
	// where the key exists.
	_, err = east.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: ct.CiphertextBlob})
	wantCode(t, err, "AccessDeniedException")
	if err == nil || !strings.Contains(err.Error(), "The ciphertext refers to a customer master key that does not exist, does not exist in this region, or you are not allowed to access.") {
		t.Errorf("Decrypt in us-east-1 of a Paris ciphertext: %v, want AWS's message", err)
	}
	_, err = east.ReEncrypt(ctx, &awskms.ReEncryptInput{CiphertextBlob: ct.CiphertextBlob, DestinationKeyId: aws.String("alias/app")})
	wantCode(t, err, "AccessDeniedException")
	if dec, err := paris.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: ct.CiphertextBlob}); err != nil || string(dec.Plaintext) != "bonjour" {
		t.Fatalf("Decrypt in eu-west-3: %v", err)
	}
	// Lists are per Region.
	for _, c := range []struct {
		client *awskms.Client
		key    *types.KeyMetadata
	}{{paris, pk}, {east, ek}} {
		ks, err := c.client.ListKeys(ctx, &awskms.ListKeysInput{})
		if err != nil || len(ks.Keys) != 1 || aws.ToString(ks.Keys[0].KeyArn) != aws.ToString(c.key.Arn) {
			t.Errorf("ListKeys in %s: %+v, %v", c.client.Options().Region, ks, err)
		}
		as, err := c.client.ListAliases(ctx, &awskms.ListAliasesInput{})
		if err != nil || len(as.Aliases) != 1 || aws.ToString(as.Aliases[0].TargetKeyId) != aws.ToString(c.key.KeyId) ||
			!strings.Contains(aws.ToString(as.Aliases[0].AliasArn), ":"+c.client.Options().Region+":") {
			t.Errorf("ListAliases in %s: %+v, %v", c.client.Options().Region, as, err)
		}
	}
	// A grant lives in its key's Region.
	const retiring = "arn:aws:iam::" + kmstest.Account + ":user/admin"
	g, err := paris.CreateGrant(ctx, &awskms.CreateGrantInput{KeyId: pk.Arn, GranteePrincipal: aws.String(retiring),
		RetiringPrincipal: aws.String(retiring), Operations: []types.GrantOperation{types.GrantOperationEncrypt}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		client *awskms.Client
		n      int
	}{{paris, 1}, {east, 0}} {
		rg, err := c.client.ListRetirableGrants(ctx, &awskms.ListRetirableGrantsInput{RetiringPrincipal: aws.String(retiring)})
		if err != nil || len(rg.Grants) != c.n {
			t.Errorf("ListRetirableGrants in %s: %+v, %v; want %d grants", c.client.Options().Region, rg, err, c.n)
		}
	}
	_, err = east.RetireGrant(ctx, &awskms.RetireGrantInput{GrantToken: g.GrantToken})
	wantCode(t, err, "NotFoundException")
	if _, err := paris.RetireGrant(ctx, &awskms.RetireGrantInput{GrantToken: g.GrantToken}); err != nil {
		t.Fatalf("RetireGrant in eu-west-3: %v", err)
	}

	// Each record names its request's Region.
	a.mu.Lock()
	for _, r := range a.records {
		if r.EventName == "CreateKey" && r.AWSRegion != "eu-west-3" && r.AWSRegion != kmstest.Region {
			t.Errorf("CreateKey recorded in %s", r.AWSRegion)
		}
		if r.EventName == "RetireGrant" && r.ErrorCode == "" && r.AWSRegion != "eu-west-3" {
			t.Errorf("RetireGrant in eu-west-3 recorded in %s", r.AWSRegion)
		}
	}
	a.mu.Unlock()
}

// TestUnservedRegion: a deployment that serves some Regions refuses a
// request signed for another with AWS's error, naming the Regions it
// serves; the record of the refused request names the default Region (it
// has no verified scope).
func TestUnservedRegion(t *testing.T) {
	ctx := context.Background()
	a := &memAuditor{}
	env := kmstest.StartWithAuditor(t, a)
	h := server.New(server.Config{
		Routes:   awsjson.Routes(env.Service),
		Verifier: &sigv4.Verifier{Service: "kms", Regions: []string{"eu-west-3", "us-east-1"}, Lookup: env.IAM.Secret, Now: time.Now},
		Callers:  env.IAM,
		Audit:    a,
		Region:   "us-east-1",
	})
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	client := func(region string) *awskms.Client {
		return awskms.New(awskms.Options{Region: region, BaseEndpoint: aws.String(ts.URL), RetryMaxAttempts: 1,
			Credentials: credentials.NewStaticCredentialsProvider(env.AccessKeyID, env.Secret, "")})
	}
	if _, err := client("eu-west-3").ListKeys(ctx, &awskms.ListKeysInput{}); err != nil {
		t.Fatal(err)
	}
	_, err := client("ap-northeast-1").ListKeys(ctx, &awskms.ListKeysInput{})
	wantCode(t, err, "InvalidSignatureException")
	if !strings.Contains(err.Error(), "Credential should be scoped to a valid region.") || !strings.Contains(err.Error(), "eu-west-3, us-east-1") {
		t.Errorf("message %v: want AWS's, naming the served Regions", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.records) != 2 || a.records[0].AWSRegion != "eu-west-3" || a.records[1].AWSRegion != "us-east-1" {
		t.Errorf("records %+v: want eu-west-3, then the default Region", a.records)
	}
}
