package iam

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/kmsd/kmsd/internal/config"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/kms"
	"github.com/kmsd/kmsd/internal/sigv4"
	"github.com/kmsd/kmsd/internal/store/backend"
)

func iamConfig(t *testing.T, src string) config.IAM {
	t.Helper()
	var c config.IAM
	if err := yaml.Unmarshal([]byte(src), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCompile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "ops.json"), []byte(`{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:Describe*", "Resource": "*"}]}`), 0o600)
	cfg := iamConfig(t, `
accounts:
  - id: "444455556666"
    users:
      - name: dave
        path: /partners/
        tags: {Team: blue}
        policies: [{file: ops.json}]
    roles:
      - name: reader
        path: /ro/
        tags: {level: "1"}
        policies: [{name: p, document: '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}]}'}]
`)
	cfg.BaseDir = dir
	ids, err := Compile(cfg, "111122223333")
	if err != nil {
		t.Fatal(err)
	}
	if got := ids.Accounts(); len(got) != 2 || got[0] != "111122223333" || got[1] != "444455556666" {
		t.Fatalf("Accounts = %v", got)
	}
	// The built-in admin of the default account allows everything.
	admin, ok, err := ids.Lookup(UserARN("111122223333", "admin"))
	if err != nil || !ok || len(admin.Policies) != 1 || admin.UserName != "admin" || admin.Type != kms.PrincipalTypeUser {
		t.Fatalf("admin = %+v %v %v", admin, ok, err)
	}
	dave, ok, _ := ids.Lookup("arn:aws:iam::444455556666:user/partners/dave")
	if !ok || dave.PolicyNames[0] != "ops" || dave.Tags["Team"] != "blue" || !strings.HasPrefix(dave.UserID, "AIDA") {
		t.Fatalf("dave = %+v", dave)
	}
	if _, ok, _ := ids.Lookup("arn:aws:iam::444455556666:user/dave"); ok {
		t.Fatal("a user is found without its path")
	}
	s, ok, err := ids.Lookup("arn:aws:sts::444455556666:assumed-role/reader/job-1")
	if err != nil || !ok || s.Principal.RoleARN != "arn:aws:iam::444455556666:role/ro/reader" || s.Type != kms.PrincipalTypeAssumedRole ||
		!strings.HasPrefix(s.UserID, "AROA") || !strings.HasSuffix(s.UserID, ":job-1") || s.UserName != "" || len(s.Policies) != 1 {
		t.Fatalf("session = %+v %v", s, err)
	}
	root, ok, _ := ids.Lookup("arn:aws:iam::444455556666:root")
	if !ok || root.Type != kms.PrincipalTypeAccount || !root.Principal.IsAccountRoot() {
		t.Fatalf("root = %+v", root)
	}
	for _, arn := range []string{"arn:aws:iam::999988887777:root", "arn:aws:sts::444455556666:assumed-role/writer/x", "arn:aws:iam::111122223333:user/nobody"} {
		if _, ok, _ := ids.Lookup(arn); ok {
			t.Errorf("%s found", arn)
		}
	}
	if arn, err := ids.PrincipalARN("444455556666", "", "reader", "s1"); err != nil || arn != "arn:aws:sts::444455556666:assumed-role/reader/s1" {
		t.Fatalf("PrincipalARN(role) = %s %v", arn, err)
	}
	if arn, err := ids.PrincipalARN("444455556666", "dave", "", ""); err != nil || arn != "arn:aws:iam::444455556666:user/partners/dave" {
		t.Fatalf("PrincipalARN(user) = %s %v", arn, err)
	}

	// A declared admin replaces the built-in one.
	own, err := Compile(iamConfig(t, `accounts: [{id: "111122223333", users: [{name: admin}]}]`), "111122223333")
	if err != nil {
		t.Fatal(err)
	}
	if a, ok, _ := own.Lookup(UserARN("111122223333", "admin")); !ok || len(a.Policies) != 0 {
		t.Fatalf("declared admin = %+v", a)
	}
}

func TestCompileRejectsBadPolicies(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{`accounts: [{id: "111122223333", users: [{name: a, policies: [{name: p, document: '{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}}'}]}]}]`,
			`user/a: identity policy "p": malformed policy document`},
		{`accounts: [{id: "111122223333", roles: [{name: r, policies: [{file: /nonexistent/p.json}]}]}]`, "role/r: policy file"},
	} {
		_, err := Compile(iamConfig(t, tc.src), "111122223333")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.src, err, tc.want)
		}
	}
}

// TestDirectoryReload: an access key whose principal a reload removes is
// unknown at once; declared again, it works again.
func TestDirectoryReload(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ks, _ := keystore.OpenFile(filepath.Join(dir, "root.key"))
	st, err := backend.Open(ctx, backend.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d := NewDirectory(st, ks, nil)
	with, _ := Compile(iamConfig(t, `accounts: [{id: "111122223333", users: [{name: temp}]}]`), "111122223333")
	without, _ := Compile(config.IAM{}, "111122223333")
	id, _, err := d.CreateAccessKey(ctx, "111122223333", UserARN("111122223333", "temp"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Caller(ctx, id); !errors.Is(err, sigv4.ErrUnknownAccessKey) {
		t.Fatalf("before any identities: %v", err)
	}
	d.SetIdentities(with)
	if c, err := d.Caller(ctx, id); err != nil || c.Identity == nil || c.Identity.UserName != "temp" {
		t.Fatalf("declared: %+v %v", c, err)
	}
	d.SetIdentities(without)
	if _, err := d.Secret(ctx, id); !errors.Is(err, sigv4.ErrUnknownAccessKey) {
		t.Fatalf("removed: %v", err)
	}
	d.SetIdentities(with)
	if _, err := d.Secret(ctx, id); err != nil {
		t.Fatalf("declared again: %v", err)
	}
}
