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

	"github.com/kmsd/kmsd/internal/awsjson"
	"github.com/kmsd/kmsd/internal/kmstest"
	"github.com/kmsd/kmsd/internal/server"
	"github.com/kmsd/kmsd/internal/sigv4"
)

// TestRequestScope: a request acts in the Region its signature is scoped
// to. A second front on the same service verifies signatures for
// eu-west-3: its keys have eu-west-3 ARNs and do not exist in us-east-1,
// and its audit records name eu-west-3, except for a request without a
// valid signature, which has no scope (the configured Region).
func TestRequestScope(t *testing.T) {
	ctx := context.Background()
	a := &memAuditor{}
	env := kmstest.StartWithAuditor(t, a)
	paris := server.New(server.Config{
		Routes:   awsjson.Routes(env.Service),
		Verifier: &sigv4.Verifier{Service: "kms", Region: "eu-west-3", Lookup: env.IAM.Secret, Now: time.Now},
		Callers:  env.IAM,
		Audit:    a,
		Region:   kmstest.Region,
	})
	ts := httptest.NewServer(paris)
	t.Cleanup(ts.Close)
	client := func(region, akid, secret string) *awskms.Client {
		return awskms.New(awskms.Options{Region: region, BaseEndpoint: aws.String(ts.URL), RetryMaxAttempts: 1,
			Credentials: credentials.NewStaticCredentialsProvider(akid, secret, "")})
	}

	ck, err := client("eu-west-3", env.AccessKeyID, env.Secret).CreateKey(ctx, &awskms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	if arn := *ck.KeyMetadata.Arn; !strings.HasPrefix(arn, "arn:aws:kms:eu-west-3:"+kmstest.Account+":key/") {
		t.Fatalf("key ARN %s, want one in eu-west-3", arn)
	}
	_, err = env.Client.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: ck.KeyMetadata.KeyId})
	wantCode(t, err, "NotFoundException")
	// The verifier still accepts its own Region only.
	_, err = client(kmstest.Region, env.AccessKeyID, env.Secret).ListKeys(ctx, &awskms.ListKeysInput{})
	wantCode(t, err, "InvalidSignatureException")

	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.records) != 3 {
		t.Fatalf("%d records for 3 requests", len(a.records))
	}
	for i, want := range []string{"eu-west-3", kmstest.Region, kmstest.Region} {
		if got := a.records[i].AWSRegion; got != want {
			t.Errorf("record %d (%s): awsRegion %s, want %s", i, a.records[i].EventName, got, want)
		}
	}
}
