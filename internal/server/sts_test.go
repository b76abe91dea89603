package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/kmsd/kmsd/internal/awsarn"
	"github.com/kmsd/kmsd/internal/kmstest"
)

const (
	stsAccount = kmstest.Account
	appRole    = "arn:aws:iam::111122223333:role/services/app"
	keyRole    = "arn:aws:iam::111122223333:role/keyonly"
)

// stsIAM declares alice (named by both trust policies), mallory (allowed
// sts:AssumeRole by her identity policy, named by no trust policy), the
// role app (everything in KMS, sessions up to two hours; its trust policy
// also lets sessions named ci-* be assumed by the account's principals
// whose identity policies allow it) and the role keyonly (no identity
// policy: only key policies that name it let it in).
const stsIAM = `
accounts:
  - id: "111122223333"
    users:
      - name: alice
      - name: mallory
        policies:
          - name: assume-anything
            document: '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}'
    roles:
      - name: app
        path: /services/
        max_session_duration: 7200
        assume_role_policy: |
          {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"}, "Action": "sts:AssumeRole"},
            {"Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": "sts:AssumeRole",
             "Condition": {"StringLike": {"sts:RoleSessionName": "ci-*"}}}]}
        policies:
          - name: kms
            document: '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}'
      - name: keyonly
        assume_role_policy: '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"}, "Action": "sts:AssumeRole"}]}'
`

// stsClient returns an STS client of kmsd for the given credentials.
func stsClient(env *kmstest.Env, creds aws.CredentialsProvider) *sts.Client {
	return sts.New(sts.Options{Region: kmstest.Region, BaseEndpoint: aws.String(env.URL), Credentials: creds, RetryMaxAttempts: 1})
}

// kmsClientOf returns a KMS client that signs with creds.
func kmsClientOf(env *kmstest.Env, creds aws.CredentialsProvider) *awskms.Client {
	return awskms.New(awskms.Options{Region: kmstest.Region, BaseEndpoint: aws.String(env.URL), Credentials: creds, RetryMaxAttempts: 1})
}

func static(akid, secret string) aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(akid, secret, "")
}

// apiCode is the AWS error code of err ("" when it has none).
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// assume calls AssumeRole as creds and returns the session's credentials.
func assume(t *testing.T, env *kmstest.Env, creds aws.CredentialsProvider, in *sts.AssumeRoleInput) (aws.CredentialsProvider, *sts.AssumeRoleOutput) {
	t.Helper()
	out, err := stsClient(env, creds).AssumeRole(context.Background(), in)
	if err != nil {
		t.Fatalf("AssumeRole %s: %v", aws.ToString(in.RoleArn), err)
	}
	c := out.Credentials
	return credentials.NewStaticCredentialsProvider(aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken)), out
}

// TestAssumeRoleProvider: the SDK's own AssumeRoleProvider gets a session
// of app from kmsd, and KMS accepts it; GetCallerIdentity names the user,
// then the session, as AWS does.
func TestAssumeRoleProvider(t *testing.T) {
	ctx := context.Background()
	env := kmstest.StartWithIAM(t, stsIAM, "")
	alice := static(env.AccessKey(t, stsAccount, "alice", "", ""))

	who, err := stsClient(env, alice).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(who.Arn) != "arn:aws:iam::111122223333:user/alice" || aws.ToString(who.Account) != stsAccount ||
		!strings.HasPrefix(aws.ToString(who.UserId), "AIDA") {
		t.Fatalf("GetCallerIdentity as alice: %s %s %s", aws.ToString(who.Arn), aws.ToString(who.Account), aws.ToString(who.UserId))
	}

	provider := stscreds.NewAssumeRoleProvider(stsClient(env, alice), appRole, func(o *stscreds.AssumeRoleOptions) {
		o.RoleSessionName = "sops@build-host.example"
		o.Duration = time.Hour // the provider asks for 15 minutes by default
	})
	session := aws.NewCredentialsCache(provider)
	creds, err := session.Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(creds.AccessKeyID, "ASIA") || creds.SessionToken == "" || !creds.CanExpire ||
		creds.Expires.Sub(time.Now()) > time.Hour+time.Minute || creds.Expires.Sub(time.Now()) < 59*time.Minute {
		t.Fatalf("session credentials: %s, token %d bytes, expires %v (%v)", creds.AccessKeyID, len(creds.SessionToken), creds.Expires, creds.CanExpire)
	}

	key, err := env.Client.CreateKey(ctx, &awskms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	kc := kmsClientOf(env, session)
	enc, err := kc.Encrypt(ctx, &awskms.EncryptInput{KeyId: key.KeyMetadata.KeyId, Plaintext: []byte("through a role")})
	if err != nil {
		t.Fatalf("Encrypt with the session: %v", err)
	}
	dec, err := kc.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	if err != nil || string(dec.Plaintext) != "through a role" {
		t.Fatalf("Decrypt with the session: %v", err)
	}

	who, err = stsClient(env, session).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	const sessionARN = "arn:aws:sts::111122223333:assumed-role/app/sops@build-host.example"
	if aws.ToString(who.Arn) != sessionARN || !strings.HasPrefix(aws.ToString(who.UserId), "AROA") ||
		!strings.HasSuffix(aws.ToString(who.UserId), ":sops@build-host.example") {
		t.Fatalf("GetCallerIdentity as the session: %s %s", aws.ToString(who.Arn), aws.ToString(who.UserId))
	}
}

// TestAssumeRoleRefused: the trust policy decides who may assume a role;
// a missing role is refused the same way; bad parameters are
// ValidationError or MalformedPolicyDocument.
func TestAssumeRoleRefused(t *testing.T) {
	ctx := context.Background()
	env := kmstest.StartWithIAM(t, stsIAM, "")
	alice := static(env.AccessKey(t, stsAccount, "alice", "", ""))
	mallory := static(env.AccessKey(t, stsAccount, "mallory", "", ""))
	long := strings.Repeat("x", 2049)
	for _, tc := range []struct {
		name  string
		creds aws.CredentialsProvider
		in    sts.AssumeRoleInput
		code  string
		msg   string
	}{
		{"not in the trust policy", mallory, sts.AssumeRoleInput{RoleArn: aws.String(appRole), RoleSessionName: aws.String("s1")}, "AccessDenied",
			"User: arn:aws:iam::111122223333:user/mallory is not authorized to perform: sts:AssumeRole on resource: " + appRole},
		{"the account, but the session name does not match", mallory, sts.AssumeRoleInput{RoleArn: aws.String(appRole), RoleSessionName: aws.String("dev-1")}, "AccessDenied", ""},
		{"no such role", alice, sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::111122223333:role/nope"), RoleSessionName: aws.String("s1")}, "AccessDenied", ""},
		{"role ARN without its path", alice, sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::111122223333:role/app"), RoleSessionName: aws.String("s1")}, "AccessDenied", ""},
		{"other account", alice, sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::444455556666:role/app"), RoleSessionName: aws.String("s1")}, "AccessDenied", ""},
		{"session name too short", alice, sts.AssumeRoleInput{RoleArn: aws.String(appRole), RoleSessionName: aws.String("s")}, "ValidationError", ""},
		{"session name with a space", alice, sts.AssumeRoleInput{RoleArn: aws.String(appRole), RoleSessionName: aws.String("a b")}, "ValidationError", ""},
		{"duration too short", alice, sts.AssumeRoleInput{RoleArn: aws.String(appRole), RoleSessionName: aws.String("s1"), DurationSeconds: aws.Int32(899)}, "ValidationError", ""},
		{"duration past the role's maximum", alice, sts.AssumeRoleInput{RoleArn: aws.String(appRole), RoleSessionName: aws.String("s1"), DurationSeconds: aws.Int32(7201)}, "ValidationError",
			"The requested DurationSeconds exceeds the MaxSessionDuration set for this role."},
		{"duration past the default maximum", alice, sts.AssumeRoleInput{RoleArn: aws.String(keyRole), RoleSessionName: aws.String("s1"), DurationSeconds: aws.Int32(3601)}, "ValidationError", ""},
		{"malformed session policy", alice, sts.AssumeRoleInput{RoleArn: aws.String(appRole), RoleSessionName: aws.String("s1"), Policy: aws.String(`{"Statement": [{"Effect": "Allow"}]}`)}, "MalformedPolicyDocument", ""},
		{"session policy with a principal", alice, sts.AssumeRoleInput{RoleArn: aws.String(appRole), RoleSessionName: aws.String("s1"),
			Policy: aws.String(`{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}]}`)}, "MalformedPolicyDocument", ""},
		{"session policy too long", alice, sts.AssumeRoleInput{RoleArn: aws.String(appRole), RoleSessionName: aws.String("s1"), Policy: aws.String(long)}, "ValidationError", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := stsClient(env, tc.creds).AssumeRole(ctx, &tc.in)
			if apiCode(err) != tc.code {
				t.Fatalf("AssumeRole: %v, want %s", err, tc.code)
			}
			var ae smithy.APIError
			errors.As(err, &ae)
			if tc.msg != "" && ae.ErrorMessage() != tc.msg {
				t.Fatalf("message %q, want %q", ae.ErrorMessage(), tc.msg)
			}
		})
	}

	// The root user may not assume roles, whatever the trust policy.
	akid, secret, err := env.IAM.CreateAccessKey(ctx, stsAccount, awsarn.Root(awsarn.Partition, stsAccount))
	if err != nil {
		t.Fatal(err)
	}
	_, err = stsClient(env, static(akid, secret)).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(appRole), RoleSessionName: aws.String("ci-root")})
	if apiCode(err) != "AccessDenied" {
		t.Fatalf("AssumeRole as root: %v", err)
	}
}

// TestSessionPolicyNarrows: a session policy leaves the session only what
// both it and the role's identity policies allow.
func TestSessionPolicyNarrows(t *testing.T) {
	ctx := context.Background()
	env := kmstest.StartWithIAM(t, stsIAM, "")
	alice := static(env.AccessKey(t, stsAccount, "alice", "", ""))
	key, err := env.Client.CreateKey(ctx, &awskms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := env.Client.Encrypt(ctx, &awskms.EncryptInput{KeyId: key.KeyMetadata.KeyId, Plaintext: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	session, out := assume(t, env, alice, &sts.AssumeRoleInput{RoleArn: aws.String(appRole), RoleSessionName: aws.String("narrow"),
		Policy: aws.String(`{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}]}`)})
	if out.PackedPolicySize == nil || *out.PackedPolicySize < 1 || *out.PackedPolicySize > 100 {
		t.Fatalf("PackedPolicySize %v", out.PackedPolicySize)
	}
	kc := kmsClientOf(env, session)
	if _, err := kc.Encrypt(ctx, &awskms.EncryptInput{KeyId: key.KeyMetadata.KeyId, Plaintext: []byte("x")}); err != nil {
		t.Fatalf("Encrypt, which the session policy allows: %v", err)
	}
	_, err = kc.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	if apiCode(err) != "AccessDeniedException" {
		t.Fatalf("Decrypt, which the session policy does not allow: %v", err)
	}

	// An explicit deny in the session policy wins over the key policy
	// that names the role.
	denying, _ := assume(t, env, alice, &sts.AssumeRoleInput{RoleArn: aws.String(appRole), RoleSessionName: aws.String("deny"),
		Policy: aws.String(`{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}, {"Effect": "Deny", "Action": "kms:Encrypt", "Resource": "*"}]}`)})
	_, err = kmsClientOf(env, denying).Encrypt(ctx, &awskms.EncryptInput{KeyId: key.KeyMetadata.KeyId, Plaintext: []byte("x")})
	if apiCode(err) != "AccessDeniedException" {
		t.Fatalf("Encrypt denied by the session policy: %v", err)
	}
}

// TestSessionExpires: a session is refused after its expiry (by kmsd's
// clock), with ExpiredTokenException; a changed or missing token is
// refused as invalid.
func TestSessionExpires(t *testing.T) {
	ctx := context.Background()
	env := kmstest.StartWithIAM(t, stsIAM, "")
	alice := static(env.AccessKey(t, stsAccount, "alice", "", ""))
	session, out := assume(t, env, alice, &sts.AssumeRoleInput{RoleArn: aws.String(appRole), RoleSessionName: aws.String("short"), DurationSeconds: aws.Int32(900)})
	if got := out.Credentials.Expiration.Sub(env.Clock.Now()); got < 899*time.Second || got > 900*time.Second {
		t.Fatalf("Expiration %v is %v from now, want 900 s", out.Credentials.Expiration, got)
	}
	kc := kmsClientOf(env, session)
	if _, err := kc.ListKeys(ctx, &awskms.ListKeysInput{}); err != nil {
		t.Fatalf("ListKeys with a fresh session: %v", err)
	}

	c := out.Credentials
	akid, secret, token := aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken)
	for _, tc := range []struct {
		name                string
		akid, secret, token string
	}{
		{"without its token", akid, secret, ""},
		{"with a changed token", akid, secret, token[:len(token)-2] + flip(token[len(token)-2:])},
		{"with a truncated token", akid, secret, token[:len(token)/2]},
		{"token of another access key id", "ASIAAAAAAAAAAAAAAAAA", secret, token},
	} {
		_, err := kmsClientOf(env, credentials.NewStaticCredentialsProvider(tc.akid, tc.secret, tc.token)).ListKeys(ctx, &awskms.ListKeysInput{})
		if apiCode(err) != "UnrecognizedClientException" {
			t.Errorf("%s: %v, want UnrecognizedClientException", tc.name, err)
		}
	}

	env.Clock.Advance(899 * time.Second)
	if _, err := kc.ListKeys(ctx, &awskms.ListKeysInput{}); err != nil {
		t.Fatalf("ListKeys a second before expiry: %v", err)
	}
	env.Clock.Advance(time.Second)
	_, err := kc.ListKeys(ctx, &awskms.ListKeysInput{})
	if apiCode(err) != "ExpiredTokenException" {
		t.Fatalf("ListKeys after expiry: %v, want ExpiredTokenException", err)
	}
	_, err = stsClient(env, session).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if apiCode(err) != "ExpiredToken" {
		t.Fatalf("GetCallerIdentity after expiry: %v, want ExpiredToken", err)
	}
}

func flip(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}

// TestKeyPolicyNamesRole: a key policy naming the role lets its sessions
// in, with no identity policy; aws:PrincipalArn is the role's ARN; a key
// policy naming one session lets in that session only.
func TestKeyPolicyNamesRole(t *testing.T) {
	ctx := context.Background()
	env := kmstest.StartWithIAM(t, stsIAM, "")
	alice := static(env.AccessKey(t, stsAccount, "alice", "", ""))
	mk := func(policy string) string {
		t.Helper()
		k, err := env.Client.CreateKey(ctx, &awskms.CreateKeyInput{Policy: aws.String(policy)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(k.KeyMetadata.KeyId)
	}
	const admin = `{"Sid": "admin", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"}`
	byRole := mk(`{"Version": "2012-10-17", "Statement": [` + admin + `,
		{"Effect": "Allow", "Principal": {"AWS": "` + keyRole + `"}, "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*"}]}`)
	byCondition := mk(`{"Version": "2012-10-17", "Statement": [` + admin + `,
		{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Encrypt", "Resource": "*",
		 "Condition": {"ArnEquals": {"aws:PrincipalArn": "` + keyRole + `"}}}]}`)
	bySession := mk(`{"Version": "2012-10-17", "Statement": [` + admin + `,
		{"Effect": "Allow", "Principal": {"AWS": "arn:aws:sts::111122223333:assumed-role/keyonly/named"}, "Action": "kms:Encrypt", "Resource": "*"}]}`)
	delegated := mk(`{"Version": "2012-10-17", "Statement": [` + admin + `]}`)

	named, _ := assume(t, env, alice, &sts.AssumeRoleInput{RoleArn: aws.String(keyRole), RoleSessionName: aws.String("named")})
	other, _ := assume(t, env, alice, &sts.AssumeRoleInput{RoleArn: aws.String(keyRole), RoleSessionName: aws.String("other")})
	for _, tc := range []struct {
		name    string
		creds   aws.CredentialsProvider
		key     string
		allowed bool
	}{
		{"role principal", other, byRole, true},
		{"aws:PrincipalArn is the role", other, byCondition, true},
		{"the named session", named, bySession, true},
		{"another session", other, bySession, false},
		{"account only, no identity policy", other, delegated, false},
	} {
		_, err := kmsClientOf(env, tc.creds).Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(tc.key), Plaintext: []byte("x")})
		if tc.allowed && err != nil || !tc.allowed && apiCode(err) != "AccessDeniedException" {
			t.Errorf("%s: Encrypt: %v (want allowed=%v)", tc.name, err, tc.allowed)
		}
	}
	_, err := kmsClientOf(env, other).Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(delegated), Plaintext: []byte("x")})
	var ae smithy.APIError
	if !errors.As(err, &ae) || !strings.HasPrefix(ae.ErrorMessage(), "User: arn:aws:sts::111122223333:assumed-role/keyonly/other is not authorized") {
		t.Fatalf("denial names the session: %v", err)
	}

	// A session policy limits what a key policy naming the role allows,
	// not what one naming the session itself allows (AWS's rule).
	decryptOnly := aws.String(`{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}]}`)
	limited, _ := assume(t, env, alice, &sts.AssumeRoleInput{RoleArn: aws.String(keyRole), RoleSessionName: aws.String("other"), Policy: decryptOnly})
	limitedNamed, _ := assume(t, env, alice, &sts.AssumeRoleInput{RoleArn: aws.String(keyRole), RoleSessionName: aws.String("named"), Policy: decryptOnly})
	for _, tc := range []struct {
		name    string
		creds   aws.CredentialsProvider
		key     string
		allowed bool
	}{
		{"role principal, session policy without Encrypt", limited, byRole, false},
		{"session principal, session policy without Encrypt", limitedNamed, bySession, true},
	} {
		_, err := kmsClientOf(env, tc.creds).Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(tc.key), Plaintext: []byte("x")})
		if tc.allowed && err != nil || !tc.allowed && apiCode(err) != "AccessDeniedException" {
			t.Errorf("%s: Encrypt: %v (want allowed=%v)", tc.name, err, tc.allowed)
		}
	}

	// A grant to the role covers its sessions.
	grantKey := mk(`{"Version": "2012-10-17", "Statement": [` + admin + `]}`)
	if _, err := env.Client.CreateGrant(ctx, &awskms.CreateGrantInput{KeyId: aws.String(grantKey), GranteePrincipal: aws.String(keyRole),
		Operations: []kmstypes.GrantOperation{kmstypes.GrantOperationEncrypt}}); err != nil {
		t.Fatal(err)
	}
	if _, err := kmsClientOf(env, other).Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(grantKey), Plaintext: []byte("x")}); err != nil {
		t.Fatalf("Encrypt under a grant to the role: %v", err)
	}
	_, err = kmsClientOf(env, limited).Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(grantKey), Plaintext: []byte("x")})
	if apiCode(err) != "AccessDeniedException" {
		t.Fatalf("Encrypt under a grant to the role, outside the session policy: %v", err)
	}
}

// TestSTSAudit: AssumeRole's record names the role and session but holds
// neither the secret access key nor the session token; a request made
// with the session is recorded as AssumedRole with its sessionContext.
func TestSTSAudit(t *testing.T) {
	ctx := context.Background()
	a := &memAuditor{}
	env := kmstest.StartWithIAMAndAuditor(t, stsIAM, "", a)
	alice := static(env.AccessKey(t, stsAccount, "alice", "", ""))
	session, out := assume(t, env, alice, &sts.AssumeRoleInput{RoleArn: aws.String(appRole), RoleSessionName: aws.String("audited")})
	if _, err := kmsClientOf(env, session).ListKeys(ctx, &awskms.ListKeysInput{}); err != nil {
		t.Fatal(err)
	}
	all := a.json(t)
	for _, secret := range []string{aws.ToString(out.Credentials.SecretAccessKey), aws.ToString(out.Credentials.SessionToken)} {
		if strings.Contains(string(all), secret) {
			t.Fatalf("audit records hold a secret of the session")
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var assumed, listed bool
	for _, r := range a.records {
		switch r.EventName {
		case "AssumeRole":
			assumed = true
			b, _ := json.Marshal(r)
			if r.EventSource != "sts.amazonaws.com" || r.RequestParameters["roleArn"] != appRole || r.RequestParameters["roleSessionName"] != "audited" ||
				!strings.Contains(string(b), aws.ToString(out.Credentials.AccessKeyId)) || r.UserIdentity.ARN != "arn:aws:iam::111122223333:user/alice" {
				t.Errorf("AssumeRole record: %s", b)
			}
		case "ListKeys":
			listed = true
			u := r.UserIdentity
			if u.Type != "AssumedRole" || u.ARN != "arn:aws:sts::111122223333:assumed-role/app/audited" || u.AccessKeyID != aws.ToString(out.Credentials.AccessKeyId) ||
				u.SessionContext == nil || u.SessionContext.SessionIssuer.ARN != appRole || u.SessionContext.SessionIssuer.UserName != "app" ||
				!strings.HasPrefix(u.PrincipalID, u.SessionContext.SessionIssuer.PrincipalID+":") || u.SessionContext.Attributes.CreationDate.IsZero() {
				b, _ := json.Marshal(u)
				t.Errorf("userIdentity of a session: %s", b)
			}
		}
	}
	if !assumed || !listed {
		t.Fatalf("records: AssumeRole %v, ListKeys %v", assumed, listed)
	}
}

// TestSTSWire: the Query protocol as curl would send it: errors are
// <ErrorResponse> XML with STS's codes, unsigned requests are refused, and
// requests signed for "kms" are refused by the STS endpoint.
func TestSTSWire(t *testing.T) {
	env := kmstest.StartWithIAM(t, stsIAM, "")
	resp, err := http.Post(env.URL, "application/x-www-form-urlencoded", strings.NewReader(url.Values{"Action": {"GetCallerIdentity"}, "Version": {"2011-06-15"}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Content-Type") != "text/xml" ||
		!strings.Contains(string(b), `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>MissingAuthenticationToken</Code>`) {
		t.Fatalf("unsigned: %d %s", resp.StatusCode, b)
	}
}

// TestSOPSRoleForm does what SOPS does for --kms "KEY_ARN+ROLE_ARN": an
// SDK configured from the environment alone (AWS_ENDPOINT_URL sends STS
// and KMS to kmsd), AssumeRole of ROLE_ARN as "sops@HOST", then KMS with
// the session on the key's full ARN.
func TestSOPSRoleForm(t *testing.T) {
	ctx := context.Background()
	env := kmstest.StartWithIAM(t, stsIAM, "")
	akid, secret := env.AccessKey(t, stsAccount, "alice", "", "")
	key, err := env.Client.CreateKey(ctx, &awskms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL": env.URL, "AWS_REGION": kmstest.Region, "AWS_ACCESS_KEY_ID": akid, "AWS_SECRET_ACCESS_KEY": secret,
		"AWS_SESSION_TOKEN": "", "AWS_PROFILE": "", "AWS_CONFIG_FILE": home + "/config", "AWS_SHARED_CREDENTIALS_FILE": home + "/credentials",
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL_STS": "", "AWS_ENDPOINT_URL_KMS": "",
	} {
		t.Setenv(k, v)
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRetryMaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	out, err := sts.NewFromConfig(cfg).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(appRole), RoleSessionName: aws.String("sops@ci-runner-7")})
	if err != nil {
		t.Fatalf("AssumeRole as SOPS does: %v", err)
	}
	c := out.Credentials
	cfg.Credentials = credentials.NewStaticCredentialsProvider(aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken))
	kc := awskms.NewFromConfig(cfg)
	enc, err := kc.Encrypt(ctx, &awskms.EncryptInput{KeyId: key.KeyMetadata.Arn, Plaintext: []byte("sops data key"),
		EncryptionContext: map[string]string{"env": "ci"}})
	if err != nil {
		t.Fatalf("Encrypt with the key ARN and the session: %v", err)
	}
	dec, err := kc.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, KeyId: key.KeyMetadata.Arn, EncryptionContext: map[string]string{"env": "ci"}})
	if err != nil || string(dec.Plaintext) != "sops data key" {
		t.Fatalf("Decrypt: %v", err)
	}
}
