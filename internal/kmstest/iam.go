package kmstest

import (
	"context"
	"testing"

	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"go.yaml.in/yaml/v3"

	"github.com/kmsd/kmsd/internal/config"
	"github.com/kmsd/kmsd/internal/iam"
	"github.com/kmsd/kmsd/internal/server"
)

// StartWithIAM starts kmsd in a fresh data folder with the principals the
// iam section iamYAML declares (the YAML of config.IAM, without the "iam:"
// key: "accounts: [...]"). Relative policy files are read from baseDir.
// Env.Client is the built-in admin's client, as with Start.
func StartWithIAM(tb testing.TB, iamYAML, baseDir string) *Env {
	tb.Helper()
	cfg := ParseIAM(tb, iamYAML)
	cfg.BaseDir = baseDir
	return startIn(tb, tb.TempDir(), options{iam: cfg})
}

// ParseIAM parses the YAML of an iam section, failing the test on error.
func ParseIAM(tb testing.TB, iamYAML string) config.IAM {
	tb.Helper()
	var cfg config.IAM
	if err := yaml.Unmarshal([]byte(iamYAML), &cfg); err != nil {
		tb.Fatalf("iam YAML: %v", err)
	}
	return cfg
}

// SetIAM replaces the declared principals, as a reload on SIGHUP does.
func (e *Env) SetIAM(tb testing.TB, cfg config.IAM) {
	tb.Helper()
	ids, err := iam.Compile(cfg, Account)
	if err != nil {
		tb.Fatal(err)
	}
	e.IAM.SetIdentities(ids)
}

// UserClient creates an access key for IAM user name of account (which must
// be declared) and returns a client that signs with it.
func (e *Env) UserClient(tb testing.TB, account, name string) *awskms.Client {
	tb.Helper()
	return e.principalClient(tb, account, name, "", "")
}

// RoleClient creates an access key for a session of role name of account
// and returns a client that signs with it.
func (e *Env) RoleClient(tb testing.TB, account, name, session string) *awskms.Client {
	tb.Helper()
	return e.principalClient(tb, account, "", name, session)
}

func (e *Env) principalClient(tb testing.TB, account, user, role, session string) *awskms.Client {
	tb.Helper()
	akid, secret := e.AccessKey(tb, account, user, role, session)
	return e.NewClient(akid, secret)
}

// AccessKey creates an access key for a declared user (or a session of a
// declared role) and returns its id and secret.
func (e *Env) AccessKey(tb testing.TB, account, user, role, session string) (akid, secret string) {
	tb.Helper()
	arn, err := e.IAM.Identities().PrincipalARN(account, user, role, session)
	if err != nil {
		tb.Fatal(err)
	}
	akid, secret, err = e.IAM.CreateAccessKey(context.Background(), account, arn)
	if err != nil {
		tb.Fatal(err)
	}
	return akid, secret
}

// StartWithIAMAndAuditor is StartWithIAM with an audit sink.
func StartWithIAMAndAuditor(tb testing.TB, iamYAML, baseDir string, a server.Auditor) *Env {
	tb.Helper()
	cfg := ParseIAM(tb, iamYAML)
	cfg.BaseDir = baseDir
	return startIn(tb, tb.TempDir(), options{iam: cfg, auditor: a})
}
