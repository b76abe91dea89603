package iam

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kmsd/kmsd/internal/awsarn"
	"github.com/kmsd/kmsd/internal/config"
	"github.com/kmsd/kmsd/internal/kms"
	"github.com/kmsd/kmsd/internal/policy"
)

// AdminUser is the built-in user of the default account, for which `kmsd
// serve` creates the first access key.
const AdminUser = "admin"

// AdminPolicy is the identity policy of the built-in admin user (unless the
// configuration declares its own admin): everything. Like every identity
// policy it does not reach past key policies: a key whose policy neither
// names admin nor delegates to its account is closed to it too.
const AdminPolicy = `{"Version": "2012-10-17", "Statement": [{"Sid": "KmsdBuiltinAdmin", "Effect": "Allow", "Action": "*", "Resource": "*"}]}`

// Identities is a compiled, immutable snapshot of the declared principals:
// users, roles (whose sessions are built on first use) and the root of every
// declared account. Compile builds one from the configuration; a Directory
// swaps snapshots atomically (on SIGHUP), so that requests in flight finish
// with the snapshot they started with.
type Identities struct {
	defaultAccount string
	accounts       []string
	byARN          map[string]*kms.Identity // users and account roots
	roles          map[roleKey]*role
}

type roleKey struct{ account, name string }

type role struct {
	account  string
	name     string
	arn      string // with its path
	id       string // the role's unique id (AROA…)
	tags     map[string]string
	policies []*kms.IdentityPolicy
	// trust is the role's trust policy (nil: no one may assume it through
	// STS); maxSession bounds its STS sessions.
	trust      *policy.Policy
	maxSession time.Duration
}

// Compile compiles the iam section of the configuration. defaultAccount is
// the account kmsd serves by default: its built-in admin user is added
// unless the configuration declares an admin there. Every policy is parsed;
// the first that does not parse is an error naming it.
func Compile(cfg config.IAM, defaultAccount string) (*Identities, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ids := &Identities{defaultAccount: defaultAccount, byARN: map[string]*kms.Identity{}, roles: map[roleKey]*role{}}
	accounts := append([]config.IAMAccount(nil), cfg.Accounts...)
	declared := false
	for _, a := range accounts {
		declared = declared || a.ID == defaultAccount
	}
	if !declared {
		accounts = append(accounts, config.IAMAccount{ID: defaultAccount})
	}
	for _, a := range accounts {
		ids.accounts = append(ids.accounts, a.ID)
		root, err := kms.NewIdentity(kms.IdentityConfig{ARN: awsarn.Root(awsarn.Partition, a.ID), Type: kms.PrincipalTypeAccount, UserID: a.ID})
		if err != nil {
			return nil, err
		}
		ids.byARN[root.Principal.ARN] = root
		users := a.Users
		if a.ID == defaultAccount && !hasPrincipal(users, AdminUser) {
			users = append(append([]config.IAMPrincipal(nil), users...), config.IAMPrincipal{
				Name:     AdminUser,
				Policies: []config.IAMPolicy{{Name: "kmsd-builtin-admin", Document: AdminPolicy}},
			})
		}
		for _, u := range users {
			arn := awsarn.IAM(awsarn.Partition, a.ID, "user", pathOf(u.Path), u.Name)
			pols, err := compilePolicies(cfg.BaseDir, arn, u.Policies)
			if err != nil {
				return nil, err
			}
			id, err := kms.NewIdentity(kms.IdentityConfig{
				ARN: arn, Type: kms.PrincipalTypeUser, UserID: uniqueID("AIDA", arn), UserName: u.Name, Tags: u.Tags, Policies: pols,
			})
			if err != nil {
				return nil, fmt.Errorf("user %s: %w", arn, err)
			}
			ids.byARN[arn] = id
		}
		for _, r := range a.Roles {
			arn := awsarn.IAM(awsarn.Partition, a.ID, "role", pathOf(r.Path), r.Name)
			pols, err := compilePolicies(cfg.BaseDir, arn, r.Policies)
			if err != nil {
				return nil, err
			}
			ro := &role{account: a.ID, name: r.Name, arn: arn, id: uniqueID("AROA", arn), tags: r.Tags, policies: pols,
				maxSession: time.Duration(r.MaxSessionDuration) * time.Second}
			if ro.maxSession == 0 {
				ro.maxSession = DefaultMaxSessionDuration
			}
			if r.AssumeRolePolicy != "" {
				if ro.trust, err = policy.Parse([]byte(r.AssumeRolePolicy), policy.TrustPolicy); err != nil {
					return nil, fmt.Errorf("%s: assume_role_policy: %w", arn, err)
				}
			}
			ids.roles[roleKey{a.ID, r.Name}] = ro
		}
	}
	sort.Strings(ids.accounts)
	return ids, nil
}

func hasPrincipal(ps []config.IAMPrincipal, name string) bool {
	for _, p := range ps {
		if p.Name == name {
			return true
		}
	}
	return false
}

func pathOf(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// uniqueID derives a stable IAM-style unique id (aws:userid) from an ARN.
func uniqueID(prefix, arn string) string {
	sum := sha256.Sum256([]byte(arn))
	return prefix + base32.StdEncoding.EncodeToString(sum[:])[:17]
}

func compilePolicies(baseDir, owner string, ps []config.IAMPolicy) ([]*kms.IdentityPolicy, error) {
	out := make([]*kms.IdentityPolicy, 0, len(ps))
	for i, p := range ps {
		doc, name := string(p.Document), p.Name
		if p.File != "" {
			path := p.File
			if !filepath.IsAbs(path) && baseDir != "" {
				path = filepath.Join(baseDir, path)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("%s: policy file: %w", owner, err)
			}
			doc = string(b)
			if name == "" {
				name = strings.TrimSuffix(filepath.Base(p.File), filepath.Ext(p.File))
			}
		}
		if name == "" {
			name = fmt.Sprintf("inline-%d", i+1)
		}
		ip, err := kms.CompileIdentityPolicy(name, doc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", owner, err)
		}
		out = append(out, ip)
	}
	return out, nil
}

// Lookup returns the identity of a principal ARN: a declared user, a
// session of a declared role, or the root of a declared account. ok is
// false for any other principal.
func (ids *Identities) Lookup(arn string) (id *kms.Identity, ok bool, err error) {
	if id := ids.byARN[arn]; id != nil {
		return id, true, nil
	}
	account, roleName, session, isSession := parseSessionARN(arn)
	if !isSession {
		return nil, false, nil
	}
	r := ids.roles[roleKey{account, roleName}]
	if r == nil {
		return nil, false, nil
	}
	id, err = r.session(session, nil)
	if err != nil {
		return nil, false, err
	}
	return id, true, nil
}

// session returns the identity of a session of r, limited by the session
// policy sp (nil: none).
func (r *role) session(name string, sp *kms.IdentityPolicy) (*kms.Identity, error) {
	return kms.NewIdentity(kms.IdentityConfig{
		ARN: SessionARN(r.account, r.name, name), RoleARN: r.arn, Type: kms.PrincipalTypeAssumedRole,
		UserID: r.id + ":" + name, Tags: r.tags, Policies: r.policies, SessionPolicy: sp,
	})
}

// Accounts returns the declared accounts (the default one included).
func (ids *Identities) Accounts() []string { return append([]string(nil), ids.accounts...) }

// PrincipalARN returns the ARN of a declared user, or of a session of a
// declared role, for `kmsd iam create-access-key`.
func (ids *Identities) PrincipalARN(account, user, roleName, session string) (string, error) {
	switch {
	case user != "" && roleName != "":
		return "", fmt.Errorf("give a user or a role, not both")
	case user != "":
		for arn, id := range ids.byARN {
			if id.Principal.Account == account && id.Type == kms.PrincipalTypeUser && id.UserName == user {
				return arn, nil
			}
		}
		return "", fmt.Errorf("user %s is not declared in account %s (declare it in the iam section of the configuration)", user, account)
	case roleName != "":
		if ids.roles[roleKey{account, roleName}] == nil {
			return "", fmt.Errorf("role %s is not declared in account %s (declare it in the iam section of the configuration)", roleName, account)
		}
		if !sessionNameRE(session) {
			return "", fmt.Errorf("session name %q: use 2-64 of A-Z a-z 0-9 _+=,.@-", session)
		}
		return SessionARN(account, roleName, session), nil
	}
	return "", fmt.Errorf("give --user NAME or --role NAME")
}

func sessionNameRE(s string) bool {
	if len(s) < 2 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("_+=,.@-", c)) {
			return false
		}
	}
	return true
}

// parseSessionARN splits arn:PARTITION:sts::ACCOUNT:assumed-role/ROLE/SESSION.
func parseSessionARN(arn string) (account, roleName, session string, ok bool) {
	return awsarn.ParseAssumedRole(arn, awsarn.Partition)
}

// SessionARN is the ARN of a session of role roleName in account.
func SessionARN(account, roleName, session string) string {
	return awsarn.AssumedRole(awsarn.Partition, account, roleName, session)
}

// SetIdentities replaces the declared principals. Requests in flight keep
// the snapshot they started with; the next request of every access key sees
// the new one. Until the first call every access key is refused.
func (d *Directory) SetIdentities(ids *Identities) { d.ids.Store(ids) }

// Identities returns the current snapshot (nil before SetIdentities).
func (d *Directory) Identities() *Identities { return d.ids.Load() }

// HasAccessKeyFor reports whether principalARN of account has an access
// key.
func (d *Directory) HasAccessKeyFor(ctx context.Context, account, principalARN string) (bool, error) {
	keys, err := d.store.ListAccessKeys(ctx, account)
	if err != nil {
		return false, fmt.Errorf("list access keys of %s: %w", account, err)
	}
	for _, k := range keys {
		if k.PrincipalARN == principalARN {
			return true, nil
		}
	}
	return false, nil
}
