package kms

import (
	"fmt"
	"sort"
	"strings"

	"github.com/kmsd/kmsd/internal/policy"
)

// Values of aws:PrincipalType.
const (
	PrincipalTypeUser        = "User"
	PrincipalTypeAssumedRole = "AssumedRole"
	PrincipalTypeAccount     = "Account"
)

// Identity is what authorization knows about a principal besides the
// connection facts of a request: its policy principal, the global condition
// keys it carries and its compiled identity policies. Package iam builds one
// per declared principal (NewIdentity) when it loads its configuration; it is
// immutable and shared by every request of that principal, so that a request
// copies one pointer and parses nothing.
type Identity struct {
	Principal policy.Principal
	Type      string            // aws:PrincipalType
	UserID    string            // aws:userid
	UserName  string            // aws:username (IAM users only)
	Tags      map[string]string // aws:PrincipalTag/*
	Policies  []*policy.Policy  // identity policies, combined by policy.EvaluateAll
	// PolicyNames names Policies, in the same order (for logs).
	PolicyNames []string
	// SessionPolicy is the session policy of an STS session (the Policy
	// parameter of AssumeRole), nil when it has none. It limits what the
	// identity policies and the resource policies naming the role allow:
	// a request is allowed only when it allows too (see SessionLimit).
	SessionPolicy *policy.Policy

	// ctx and tagCtx hold the condition keys the principal contributes to
	// every request (tagCtx: aws:PrincipalTag/*), built once.
	ctx, tagCtx []ctxEntry
	// needs says which condition keys the identity policies may read.
	needs ctxNeeds
}

// IdentityConfig describes a principal to NewIdentity.
type IdentityConfig struct {
	// ARN is the principal's ARN: an IAM user, an assumed-role session or
	// an account root.
	ARN string
	// RoleARN is, for a role session, the ARN of its role with the role's
	// path; empty means the path "/".
	RoleARN  string
	Type     string // one of the PrincipalType constants
	UserID   string
	UserName string
	Tags     map[string]string
	Policies []*IdentityPolicy
	// SessionPolicy is an STS session's session policy (nil: none).
	SessionPolicy *IdentityPolicy
}

// IdentityPolicy is a compiled identity policy document.
type IdentityPolicy struct {
	Name   string
	Policy *policy.Policy
	needs  ctxNeeds
}

// CompileIdentityPolicy parses an identity policy document.
func CompileIdentityPolicy(name, document string) (*IdentityPolicy, error) {
	pol, err := policy.Parse([]byte(document), policy.IdentityPolicy)
	if err != nil {
		return nil, fmt.Errorf("identity policy %q: %w", name, err)
	}
	return &IdentityPolicy{Name: name, Policy: pol, needs: contextNeeds(document)}, nil
}

// NewIdentity builds an identity.
func NewIdentity(cfg IdentityConfig) (*Identity, error) {
	p, err := policy.NewPrincipal(cfg.ARN)
	if err != nil {
		return nil, err
	}
	if cfg.RoleARN != "" {
		p.RoleARN = cfg.RoleARN
	}
	id := &Identity{Principal: p, Type: cfg.Type, UserID: cfg.UserID, UserName: cfg.UserName}
	if len(cfg.Tags) > 0 {
		id.Tags = make(map[string]string, len(cfg.Tags))
		for k, v := range cfg.Tags {
			id.Tags[k] = v
		}
	}
	for _, ip := range cfg.Policies {
		id.Policies = append(id.Policies, ip.Policy)
		id.PolicyNames = append(id.PolicyNames, ip.Name)
		id.needs |= ip.needs
	}
	if sp := cfg.SessionPolicy; sp != nil {
		id.SessionPolicy = sp.Policy
		id.needs |= sp.needs
	}
	id.buildContext()
	return id, nil
}

// buildContext precomputes the principal's global condition keys.
func (id *Identity) buildContext() {
	add := func(k, v string) {
		if v != "" {
			id.ctx = append(id.ctx, ctxEntry{k, []string{v}})
		}
	}
	// For a role session aws:PrincipalArn is the role's ARN, not the
	// session's: that is what AWS sets, so that a condition can name a
	// role whatever its sessions are called.
	if id.Principal.RoleARN != "" {
		add("aws:principalarn", id.Principal.RoleARN)
	} else {
		add("aws:principalarn", id.Principal.ARN)
	}
	add("aws:principalaccount", id.Principal.Account)
	add("kms:calleraccount", id.Principal.Account)
	add("aws:principaltype", id.Type)
	add("aws:userid", id.UserID)
	add("aws:username", id.UserName)
	keys := make([]string, 0, len(id.Tags))
	for k := range id.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		id.tagCtx = append(id.tagCtx, ctxEntry{"aws:principaltag/" + strings.ToLower(k), []string{id.Tags[k]}})
	}
}

// AddContext sets in pc the condition keys the principal contributes to
// every request: aws:PrincipalArn, aws:PrincipalAccount, aws:PrincipalType,
// aws:userid, aws:username and aws:PrincipalTag/*. Package iam uses it to
// evaluate trust policies.
func (id *Identity) AddContext(pc *policy.Context) {
	for _, e := range id.ctx {
		pc.Set(e.key, e.vals...)
	}
	for _, e := range id.tagCtx {
		pc.Set(e.key, e.vals...)
	}
}

// EvaluateIdentity returns the decision of the identity's identity
// policies for req, limited by its session policy when it has one: Deny
// when either denies, Allow when both allow, NotApplicable otherwise (the
// effective permissions of a session are the intersection of its role's
// identity policies and its session policy).
func (id *Identity) EvaluateIdentity(req *policy.Request) policy.Decision {
	d := policy.EvaluateAll(id.Policies, req)
	if id.SessionPolicy == nil || d == policy.Deny {
		return d
	}
	switch id.SessionPolicy.Evaluate(req) {
	case policy.Deny:
		return policy.Deny
	case policy.Allow:
		return d
	}
	return policy.NotApplicable
}

// SessionLimit applies the session policy (if any) to a resource policy's
// Allow. AWS's rule: a resource policy that names the session's own ARN
// adds its permissions after the session policy, unlimited; one that names
// the role (or its account, or "*") is limited by the session policy like
// the identity policies. res is the resource policy's evaluation of req,
// rp the policy. It returns res, downgraded to "no Allow" when the session
// policy does not allow req and no statement names the session itself.
func (id *Identity) SessionLimit(rp *policy.Policy, req *policy.Request, res policy.Result) policy.Result {
	if id.SessionPolicy == nil || res.Decision != policy.Allow {
		return res
	}
	switch id.SessionPolicy.Evaluate(req) {
	case policy.Allow:
		return res
	case policy.Deny:
		// An explicit deny in a session policy wins over every allow:
		// EvaluateIdentity returns Deny for it, which Authorize reports.
		return policy.Result{Statement: -1}
	}
	// Does a statement name the session ARN itself? Evaluate as the bare
	// session (no role) and keep only a direct Allow.
	bare := *req
	bare.Principal.RoleARN = ""
	if r := rp.EvaluateDetailed(&bare); r.Decision == policy.Allow && r.Direct && !bare.Principal.IsAccountRoot() {
		return r
	}
	return policy.Result{Statement: -1}
}

// identityFor returns the identity of a caller. A Caller built without one
// (by code that does not go through package iam) is its bare principal with
// no identity policies: only a key policy or grant naming it can allow it.
func identityFor(c *Caller) (*Identity, error) {
	if c.Identity != nil {
		return c.Identity, nil
	}
	id, err := NewIdentity(IdentityConfig{ARN: c.ARN, Type: principalTypeOf(c.ARN), UserName: userNameOf(c.ARN)})
	if err != nil {
		return nil, fmt.Errorf("caller %q: %w", c.ARN, err)
	}
	return id, nil
}

func principalTypeOf(arn string) string {
	switch {
	case strings.HasSuffix(arn, ":root"):
		return PrincipalTypeAccount
	case strings.Contains(arn, ":assumed-role/"):
		return PrincipalTypeAssumedRole
	}
	return PrincipalTypeUser
}

func userNameOf(arn string) string {
	if i := strings.Index(arn, ":user/"); i >= 0 {
		name := arn[i+len(":user/"):]
		return name[strings.LastIndexByte(name, '/')+1:]
	}
	return ""
}

// ctxNeeds is a set of groups of condition keys: those a policy may read.
// Authorization builds only the groups the policies of a request may read,
// so that the condition context of a request under policies without
// conditions (such as the default key policy) costs nothing.
type ctxNeeds uint16

const (
	needPrincipal     ctxNeeds = 1 << iota // aws:PrincipalArn, aws:userid, kms:CallerAccount, …
	needPrincipalTags                      // aws:PrincipalTag/*
	needConnection                         // aws:SourceIp, aws:SecureTransport, aws:RequestedRegion, aws:ViaAWSService
	needTime                               // aws:CurrentTime, aws:EpochTime
	needKey                                // kms:KeySpec, kms:KeyUsage, kms:KeyOrigin, kms:MultiRegion
	needResourceTags                       // aws:ResourceTag/*
	needAliases                            // kms:ResourceAliases (the one that may cost a lookup)
	needRequest                            // the request's own keys (kms:EncryptionAlgorithm, kms:Grant*, aws:RequestTag/*, …)
	needEC                                 // kms:EncryptionContext:*, kms:EncryptionContextKeys
	needAll           = 1<<iota - 1
)

// needNames maps the (lower-case) names and name prefixes of the condition
// keys kmsd sets to their groups.
var needNames = []struct {
	name  string
	needs ctxNeeds
}{
	{"aws:principalarn", needPrincipal}, {"aws:principalaccount", needPrincipal}, {"aws:principaltype", needPrincipal},
	{"aws:userid", needPrincipal}, {"aws:username", needPrincipal}, {"kms:calleraccount", needPrincipal},
	{"aws:principaltag/", needPrincipalTags},
	{"aws:sourceip", needConnection}, {"aws:securetransport", needConnection}, {"aws:requestedregion", needConnection},
	{"aws:viaawsservice", needConnection},
	{"aws:currenttime", needTime}, {"aws:epochtime", needTime},
	// Key properties are request keys of CreateKey.
	{"kms:keyspec", needKey | needRequest}, {"kms:customermasterkeyspec", needKey | needRequest},
	{"kms:keyusage", needKey | needRequest}, {"kms:customermasterkeyusage", needKey | needRequest},
	{"kms:keyorigin", needKey | needRequest}, {"kms:multiregion", needKey | needRequest},
	{"aws:resourcetag/", needResourceTags},
	{"kms:resourcealiases", needAliases},
	{"kms:encryptioncontext", needEC},
	{"kms:requestalias", needRequest}, {"kms:encryptionalgorithm", needRequest}, {"kms:signingalgorithm", needRequest},
	{"kms:messagetype", needRequest}, {"kms:macalgorithm", needRequest}, {"kms:keyagreementalgorithm", needRequest},
	{"kms:datakeypairspec", needRequest}, {"kms:reencryptonsamekey", needRequest},
	{"kms:schedulekeydeletionpendingwindowindays", needRequest}, {"kms:grant", needRequest},
	{"kms:rotationperiodindays", needRequest}, {"kms:wrappingalgorithm", needRequest},
	{"kms:wrappingkeyspec", needRequest}, {"kms:expirationmodel", needRequest}, {"kms:validto", needRequest},
	{"kms:retiringprincipal", needRequest}, {"kms:bypasspolicylockoutsafetycheck", needRequest},
	{"aws:requesttag/", needRequest}, {"aws:tagkeys", needRequest},
	{"kms:trailingdayswithoutkeyusage", needRequest}, {"kms:replicaregion", needRequest}, {"kms:primaryregion", needRequest},
}

// contextNeeds returns the groups of condition keys a policy document may
// read: those whose names appear in it (condition key names are
// case-insensitive; policy variables name keys too). A document with a
// backslash may spell a name with JSON escapes: it gets every group.
func contextNeeds(doc string) ctxNeeds {
	if strings.IndexByte(doc, '\\') >= 0 {
		return needAll
	}
	lower := strings.ToLower(doc)
	var n ctxNeeds
	for _, e := range needNames {
		if n&e.needs != e.needs && strings.Contains(lower, e.name) {
			n |= e.needs
		}
	}
	return n
}
