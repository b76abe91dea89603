package iam

import (
	"context"
	"encoding/base64"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/config"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/kms"
	"github.com/kmsd/kmsd/internal/sigv4"
	"github.com/kmsd/kmsd/internal/store"
	"github.com/kmsd/kmsd/internal/store/backend"
)

const stsTestIAM = `
accounts:
  - id: "111122223333"
    users:
      - name: alice
      - name: bob
        policies:
          - document: '{"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "arn:aws:iam::444455556666:role/partner"}]}'
    roles:
      - name: app
        assume_role_policy: '{"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"}, "Action": "sts:AssumeRole"}]}'
        max_session_duration: 43200
        policies:
          - document: '{"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}'
      - name: chained
        assume_role_policy: '{"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/app"}, "Action": "sts:AssumeRole"}]}'
        max_session_duration: 43200
  - id: "444455556666"
    roles:
      - name: partner
        assume_role_policy: '{"Statement": [{"Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": "sts:AssumeRole",
          "Condition": {"StringEquals": {"sts:ExternalId": "shared-secret-id"}}}]}'
`

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// stsNode is one kmsd node's directory on a store and keystore.
func stsNode(t *testing.T, st store.Store, ks keystore.Keystore, now func() time.Time) *Directory {
	t.Helper()
	var cfg config.IAM
	if err := yaml.Unmarshal([]byte(stsTestIAM), &cfg); err != nil {
		t.Fatal(err)
	}
	ids, err := Compile(cfg, "111122223333")
	if err != nil {
		t.Fatal(err)
	}
	d := NewDirectory(st, ks, now)
	d.SetIdentities(ids)
	return d
}

func openStore(t *testing.T, dir string) (store.Store, keystore.Keystore) {
	t.Helper()
	ks, err := keystore.OpenFile(filepath.Join(dir, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := backend.Open(context.Background(), backend.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, ks
}

func callerOf(t *testing.T, d *Directory, arn string) kms.Caller {
	t.Helper()
	id, ok, err := d.Identities().Lookup(arn)
	if err != nil || !ok {
		t.Fatalf("Lookup %s: %v %v", arn, ok, err)
	}
	return kms.Caller{Scope: kms.Scope{Account: id.Principal.Account, Region: "us-east-1"}, ARN: arn, Identity: id}
}

func duration(s int64) *int64 { return &s }

// TestSessionTokens: a token issued by one node opens on another node of
// the same store (nothing but the sealing key is shared), is bound to its
// access key id, fails when any byte changes, expires by the injected
// clock, and dies with its role.
func TestSessionTokens(t *testing.T) {
	ctx := context.Background()
	st, ks := openStore(t, t.TempDir())
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	a, b := stsNode(t, st, ks, clk.now), stsNode(t, st, ks, clk.now)

	alice := callerOf(t, a, "arn:aws:iam::111122223333:user/alice")
	out, err := a.AssumeRole(ctx, alice, AssumeRoleInput{RoleArn: "arn:aws:iam::111122223333:role/app", RoleSessionName: "s1", DurationSeconds: duration(1800)})
	if err != nil {
		t.Fatal(err)
	}
	c := out.Credentials
	if !c.Expiration.Equal(clk.now().Add(30*time.Minute)) || out.AssumedRoleARN != "arn:aws:sts::111122223333:assumed-role/app/s1" {
		t.Fatalf("AssumeRole: %+v", out)
	}
	if strings.Contains(c.SessionToken, c.SecretAccessKey) {
		t.Fatal("the session token shows the secret")
	}
	raw, _ := base64.RawURLEncoding.DecodeString(c.SessionToken)
	for _, leak := range []string{"app", "s1", "alice", "111122223333"} {
		if strings.Contains(string(raw), leak) {
			t.Fatalf("the session token shows %q in clear", leak)
		}
	}

	// Node b opens what node a issued.
	secret, err := b.SessionSecret(ctx, c.AccessKeyID, c.SessionToken)
	if err != nil || string(secret) != c.SecretAccessKey {
		t.Fatalf("SessionSecret on another node: %v", err)
	}
	caller, err := b.SessionCaller(ctx, c.AccessKeyID, c.SessionToken)
	if err != nil || caller.ARN != out.AssumedRoleARN || caller.Identity.Principal.RoleARN != "arn:aws:iam::111122223333:role/app" ||
		caller.Identity.UserID != out.AssumedRoleID || !caller.SessionIssued.Equal(clk.now()) {
		t.Fatalf("SessionCaller: %+v %v", caller, err)
	}

	// Any change refuses the token: every byte of it, the access key id,
	// an access key id of long-term credentials.
	for i := range raw {
		bad := append([]byte(nil), raw...)
		bad[i] ^= 0x01
		if _, err := b.SessionSecret(ctx, c.AccessKeyID, base64.RawURLEncoding.EncodeToString(bad)); !errors.Is(err, sigv4.ErrUnknownAccessKey) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	for _, tc := range []struct{ akid, token string }{
		{"ASIAAAAAAAAAAAAAAAAA", c.SessionToken},
		{"AKIA" + c.AccessKeyID[4:], c.SessionToken},
		{c.AccessKeyID, ""},
		{c.AccessKeyID, c.SessionToken[:40]},
		{c.AccessKeyID, c.SessionToken + "A"},
		{c.AccessKeyID, "not base64 !"},
	} {
		if _, err := b.SessionSecret(ctx, tc.akid, tc.token); !errors.Is(err, sigv4.ErrUnknownAccessKey) {
			t.Errorf("SessionSecret(%s, %.20s…): %v", tc.akid, tc.token, err)
		}
	}

	// Another installation (its own sealing key) does not accept it.
	st2, ks2 := openStore(t, t.TempDir())
	if _, err := stsNode(t, st2, ks2, clk.now).SessionSecret(ctx, c.AccessKeyID, c.SessionToken); !errors.Is(err, sigv4.ErrUnknownAccessKey) {
		t.Fatalf("another installation: %v", err)
	}

	// Expiry, by the injected clock, on both nodes (one has it cached).
	clk.advance(30*time.Minute - time.Second)
	if _, err := a.SessionSecret(ctx, c.AccessKeyID, c.SessionToken); err != nil {
		t.Fatalf("a second before expiry: %v", err)
	}
	clk.advance(time.Second)
	for _, d := range []*Directory{a, b} {
		_, err := d.SessionSecret(ctx, c.AccessKeyID, c.SessionToken)
		if awserr.CodeOf(err) != awserr.ExpiredToken {
			t.Fatalf("at expiry: %v", err)
		}
		if _, err := d.SessionCaller(ctx, c.AccessKeyID, c.SessionToken); awserr.CodeOf(err) != awserr.ExpiredToken {
			t.Fatalf("SessionCaller at expiry: %v", err)
		}
	}

	// A reload that removes the role ends its sessions.
	out, err = a.AssumeRole(ctx, alice, AssumeRoleInput{RoleArn: "arn:aws:iam::111122223333:role/app", RoleSessionName: "s2"})
	if err != nil {
		t.Fatal(err)
	}
	ids, err := Compile(config.IAM{Accounts: []config.IAMAccount{{ID: "111122223333", Users: []config.IAMPrincipal{{Name: "alice"}}}}}, "111122223333")
	if err != nil {
		t.Fatal(err)
	}
	a.SetIdentities(ids)
	if _, err := a.SessionSecret(ctx, out.Credentials.AccessKeyID, out.Credentials.SessionToken); !errors.Is(err, sigv4.ErrUnknownAccessKey) {
		t.Fatalf("session of a removed role: %v", err)
	}
}

// TestSessionKeyReplaced: a sealing key that the root of trust no longer
// unwraps (its root was retired) is replaced; the sessions it sealed end,
// new ones work.
func TestSessionKeyReplaced(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, ks := openStore(t, dir)
	clk := &clock{t: time.Now()}
	a := stsNode(t, st, ks, clk.now)
	alice := callerOf(t, a, "arn:aws:iam::111122223333:user/alice")
	in := AssumeRoleInput{RoleArn: "arn:aws:iam::111122223333:role/app", RoleSessionName: "s1"}
	old, err := a.AssumeRole(ctx, alice, in)
	if err != nil {
		t.Fatal(err)
	}
	set, err := st.GetSetting(ctx, store.SettingSTSSessionKey)
	if err != nil {
		t.Fatal(err)
	}
	// A keystore that fails for another reason (an HSM away) fails the
	// call and replaces nothing.
	down := stsNode(t, st, unavailable{ks}, clk.now)
	if _, err := down.AssumeRole(ctx, alice, in); err == nil || awserr.CodeOf(err) != "" {
		t.Fatalf("AssumeRole with the keystore away: %v", err)
	}
	if now, err := st.GetSetting(ctx, store.SettingSTSSessionKey); err != nil || now.Revision != set.Revision {
		t.Fatalf("the sealing key changed while the keystore was away: %v", err)
	}

	// A node with another root of trust on the same store cannot unwrap
	// the key: it makes a new one.
	ks2, err := keystore.OpenFile(filepath.Join(t.TempDir(), "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	b := stsNode(t, st, ks2, clk.now)
	fresh, err := b.AssumeRole(ctx, alice, in)
	if err != nil {
		t.Fatal(err)
	}
	set2, err := st.GetSetting(ctx, store.SettingSTSSessionKey)
	if err != nil || set2.Revision != set.Revision+1 {
		t.Fatalf("sealing key not replaced: %v", err)
	}
	if _, err := b.SessionSecret(ctx, old.Credentials.AccessKeyID, old.Credentials.SessionToken); !errors.Is(err, sigv4.ErrUnknownAccessKey) {
		t.Fatalf("a session of the replaced key: %v", err)
	}
	if _, err := b.SessionSecret(ctx, fresh.Credentials.AccessKeyID, fresh.Credentials.SessionToken); err != nil {
		t.Fatalf("a session of the new key: %v", err)
	}
}

// TestRoleChaining: a session may assume a role that trusts its role,
// for an hour at most.
func TestRoleChaining(t *testing.T) {
	ctx := context.Background()
	st, ks := openStore(t, t.TempDir())
	d := stsNode(t, st, ks, nil)
	alice := callerOf(t, d, "arn:aws:iam::111122223333:user/alice")
	out, err := d.AssumeRole(ctx, alice, AssumeRoleInput{RoleArn: "arn:aws:iam::111122223333:role/app", RoleSessionName: "first", DurationSeconds: duration(43200)})
	if err != nil {
		t.Fatal(err)
	}
	session, err := d.SessionCaller(ctx, out.Credentials.AccessKeyID, out.Credentials.SessionToken)
	if err != nil {
		t.Fatal(err)
	}
	in := AssumeRoleInput{RoleArn: "arn:aws:iam::111122223333:role/chained", RoleSessionName: "second", DurationSeconds: duration(3601)}
	if _, err := d.AssumeRole(ctx, session, in); awserr.CodeOf(err) != awserr.Validation || !strings.Contains(err.Error(), "role chaining") {
		t.Fatalf("chained for more than an hour: %v", err)
	}
	in.DurationSeconds = duration(3600)
	if _, err := d.AssumeRole(ctx, session, in); err != nil {
		t.Fatalf("chained: %v", err)
	}
	// alice is not trusted by chained.
	if _, err := d.AssumeRole(ctx, alice, in); awserr.CodeOf(err) != awserr.AccessDenied {
		t.Fatalf("alice assumes chained: %v", err)
	}
}

func TestPackedSize(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want int
	}{
		{`{}`, 1},
		{strings.Repeat("x", 2048), 100},
		{strings.Repeat("x", 2049), 101},
		{"{ \"a b\" :\n\t1 }", 1},
		{strings.Repeat(" ", 2000) + strings.Repeat("x", 1024), 50},
		{`"` + strings.Repeat(" ", 2046) + `"`, 100}, // spaces inside strings count
	} {
		if got := packedSize(tc.doc); got != tc.want {
			t.Errorf("packedSize(%.20q…) = %d, want %d", tc.doc, got, tc.want)
		}
	}
}

// unavailable is a keystore whose Unwrap fails as an unreachable HSM does
// (not keystore.ErrUnwrap).
type unavailable struct{ keystore.Keystore }

func (unavailable) Unwrap(context.Context, []byte, []byte) ([]byte, error) {
	return nil, errors.New("pkcs11: token not present")
}

// TestCrossAccountAssumeRole: a role of another account that trusts the
// caller's account needs an identity policy of the caller too, and the
// trust policy's conditions (sts:ExternalId here); the session belongs to
// the role's account.
func TestCrossAccountAssumeRole(t *testing.T) {
	ctx := context.Background()
	st, ks := openStore(t, t.TempDir())
	d := stsNode(t, st, ks, nil)
	ext := "shared-secret-id"
	in := AssumeRoleInput{RoleArn: "arn:aws:iam::444455556666:role/partner", RoleSessionName: "x-acct", ExternalID: &ext}
	if _, err := d.AssumeRole(ctx, callerOf(t, d, "arn:aws:iam::111122223333:user/alice"), in); awserr.CodeOf(err) != awserr.AccessDenied {
		t.Fatalf("alice, without an identity policy: %v", err)
	}
	bob := callerOf(t, d, "arn:aws:iam::111122223333:user/bob")
	wrong := "other"
	if _, err := d.AssumeRole(ctx, bob, AssumeRoleInput{RoleArn: in.RoleArn, RoleSessionName: "x-acct", ExternalID: &wrong}); awserr.CodeOf(err) != awserr.AccessDenied {
		t.Fatalf("bob, wrong external id: %v", err)
	}
	out, err := d.AssumeRole(ctx, bob, in)
	if err != nil {
		t.Fatalf("bob: %v", err)
	}
	c, err := d.SessionCaller(ctx, out.Credentials.AccessKeyID, out.Credentials.SessionToken)
	if err != nil || c.Account != "444455556666" || c.ARN != "arn:aws:sts::444455556666:assumed-role/partner/x-acct" {
		t.Fatalf("session: %+v %v", c, err)
	}
}
