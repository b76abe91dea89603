package kms

// Authorization: who may call which operation on which key.
//
// The wire layer (package awsjson) checks every request with its
// operation's Rule after validating it and before running the operation; a
// Service method called directly (as in tests) is not authorized. Each
// operation has one Rule (AuthorizeEncrypt, …, declared in rules.go), which finds
// the key(s) the request acts on the way the operation does, builds the
// condition context and evaluates, with package policy, the key policy
// (compiled once per key policy text and cached), the caller's identity
// policies (compiled when iam loads its configuration) and the key's grants
// (cached per key, replaced on every grant change), with AWS's rules
// (policy.Authorize). The wire layer declares each operation with its Rule,
// so an operation cannot be served without one.

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kmsd/kmsd/internal/awsarn"
	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/policy"
	"github.com/kmsd/kmsd/internal/store"
)

// authzState is what a Service caches for authorization besides the view
// (view.go): the clock's condition values. The zero value is ready to use.
type authzState struct {
	clock atomic.Pointer[clockValues]
}

// ctxEntry is one condition key with its values. Keys are lower-case, so
// that policy.Context.Set stores them without allocating.
type ctxEntry struct {
	key  string
	vals []string
}

// keyAuthz is what authorization derives from one snapshot of a key: its
// compiled policy and the condition keys it contributes.
type keyAuthz struct {
	key    *store.Key // the snapshot this was built from
	arn    string
	policy *policy.Policy
	ctx    []ctxEntry // kms:KeySpec, …
	tagCtx []ctxEntry // aws:ResourceTag/*
	needs  ctxNeeds   // the condition keys the key policy may read
}

// keyAuthz returns the authorization view of key snapshot k: made once
// per snapshot when k is the one the view holds, with the key policy
// compiled once per policy text.
func (s *Service) keyAuthz(k *store.Key) *keyAuthz {
	e, cached := s.view.keys.load(k.ID)
	if cached && e.key == k {
		if ka := e.authz.Load(); ka != nil {
			return ka
		}
	}
	ka := &keyAuthz{key: k, arn: arnOf(k)}
	cp := s.view.policy(k.Policy)
	if cp.err != nil {
		// Only keys stored before kmsd enforced key policies can hold
		// a policy that does not compile. Such a key gets the default
		// key policy (its account, through IAM), so that an
		// administrator can still replace the policy.
		s.log.Warn("stored key policy does not compile; using the default key policy until PutKeyPolicy replaces it",
			"key", ka.arn, "err", cp.err)
		cp = s.view.policy(DefaultKeyPolicy(awsarn.PartitionOf(k.Region), k.Account))
		if cp.err != nil {
			panic("kms: the default key policy does not compile: " + cp.err.Error())
		}
	}
	ka.policy, ka.needs = cp.policy, cp.needs
	ka.ctx, ka.tagCtx = keyContext(k)
	if cached && e.key == k {
		e.authz.Store(ka)
	}
	return ka
}

// keyContext returns the condition keys that describe a key, and its tags.
func keyContext(k *store.Key) (props, tags []ctxEntry) {
	spec, usage := one(k.KeySpec), one(k.KeyUsage)
	ctx := []ctxEntry{
		{"kms:keyspec", spec},
		{"kms:customermasterkeyspec", spec},
		{"kms:keyusage", usage},
		{"kms:customermasterkeyusage", usage},
		{"kms:keyorigin", one(k.Origin)},
		{"kms:multiregion", boolVals(isMultiRegion(k))},
	}
	if t := multiRegionKeyType(k); t != "" {
		ctx = append(ctx, ctxEntry{"kms:multiregionkeytype", one(t)})
	}
	for _, t := range k.Tags {
		tags = append(tags, ctxEntry{"aws:resourcetag/" + strings.ToLower(t.Key), []string{t.Value}})
	}
	return ctx, tags
}

// keyAliases caches the aliases of one key for kms:ResourceAliases, as of
// an alias generation of the view.
type keyAliases struct {
	gen   uint64
	names []string
}

// resourceAliases returns the names of the aliases of k.
func (s *Service) resourceAliases(ctx context.Context, k *store.Key) ([]string, error) {
	e, err := s.view.key(ctx, k.ID)
	if err != nil {
		return nil, internal("get key "+k.ID, err)
	}
	return s.view.resourceAliases(ctx, e)
}

// clockValues are aws:CurrentTime and aws:EpochTime, formatted once a
// second.
type clockValues struct {
	sec            int64
	current, epoch []string
}

func (s *Service) clockValues() *clockValues {
	now := s.now()
	sec := now.Unix()
	if v := s.authz.clock.Load(); v != nil && v.sec == sec {
		return v
	}
	v := &clockValues{
		sec:     sec,
		current: []string{now.UTC().Truncate(time.Second).Format(time.RFC3339)},
		epoch:   []string{strconv.FormatInt(sec, 10)},
	}
	s.authz.clock.Store(v)
	return v
}

var (
	trueVals  = []string{"true"}
	falseVals = []string{"false"}
)

func boolVals(b bool) []string {
	if b {
		return trueVals
	}
	return falseVals
}

// interned holds one-element value slices of the enum values that condition
// keys often carry, so that setting them does not allocate.
var interned = func() map[string][]string {
	m := map[string][]string{}
	for _, v := range []string{
		SpecSymmetricDefault, UsageEncryptDecrypt, UsageSignVerify, UsageGenerateVerifyMac, UsageKeyAgreement,
		UsageEncapsulate, OriginAWSKMS, "EXTERNAL", "RAW", "DIGEST", "EXTERNAL_MU", "ECDH",
		"RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE", "HMAC_SHA_224", "HMAC_SHA_256", "HMAC_SHA_384", "HMAC_SHA_512",
		"RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512",
		"RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512",
		"ECDSA_SHA_256", "ECDSA_SHA_384", "ECDSA_SHA_512", "ML_DSA_SHAKE_256", "ED25519_SHA_512", "ED25519_PH_SHA_512",
		"EncryptionContextEquals", "EncryptionContextSubset", "30",
	} {
		m[v] = []string{v}
	}
	return m
}()

// one returns v as a one-element value list.
func one(v string) []string {
	if vs, ok := interned[v]; ok {
		return vs
	}
	return []string{v}
}

// Cross-account use: whether an operation may act on a key of another
// account (named by its ARN), as AWS's documentation lists.
const (
	sameAccount  = false
	crossAccount = true
)

// keyRequest describes one authorization against a key.
type keyRequest struct {
	keyID  string      // as the request names the key
	form   resolveForm // the identifier forms the operation accepts
	cross  bool        // the operation may be called across accounts
	tokens []string    // GrantTokens
	// ec is the request's encryption context (kms:EncryptionContext:*);
	// ecOp says that the operation takes one, so that grant constraints
	// apply to it.
	ec    map[string]string
	ecOp  bool
	extra []ctxEntry
	// newGrant is the grant a CreateGrant request asks for: a grant that
	// allows CreateGrant allows only grants within itself.
	newGrant *CreateGrantInput
	// usageDays asks for kms:TrailingDaysWithoutKeyUsage, which reads the
	// key's last use (DisableKey, ScheduleKeyDeletion).
	usageDays bool
	buf       [6]ctxEntry
}

func (r *keyRequest) set(key, value string) {
	if r.extra == nil {
		r.extra = r.buf[:0]
	}
	r.extra = append(r.extra, ctxEntry{key, one(value)})
}

func (r *keyRequest) setAll(key string, values []string) {
	if len(values) == 0 {
		return
	}
	if r.extra == nil {
		r.extra = r.buf[:0]
	}
	r.extra = append(r.extra, ctxEntry{key, values})
}

// encryptionContext sets the request's encryption context, to which grant
// constraints apply.
func (r *keyRequest) encryptionContext(ec map[string]string) {
	r.ec, r.ecOp = ec, true
}

// requestTags sets aws:RequestTag/* and aws:TagKeys.
func (r *keyRequest) requestTags(tags []Tag) {
	ks := make([]string, 0, len(tags))
	for _, t := range tags {
		r.extra = append(r.extra, ctxEntry{"aws:requesttag/" + strings.ToLower(t.TagKey), []string{t.TagValue}})
		ks = append(ks, t.TagKey)
	}
	r.setAll("aws:tagkeys", ks)
}

// authzCall is one authorization.
type authzCall struct {
	s       *Service
	ctx     context.Context
	c       *Caller
	id      *Identity
	action  string // kms:OPERATION
	grantOp string // the grant operation that can allow it; "" when none
	// observe, when set (by tests), sees every evaluation's action,
	// resource and condition context.
	observe func(action, resource string, pc policy.Context)
	// resolved collects the keys the rule resolved (authorized.go).
	resolved authorized
	// sessionAllows is false when the caller's session policy does not
	// allow the request checkKey is deciding (see Identity.SessionLimit).
	sessionAllows bool
}

// Check decides whether caller c may perform r's operation with input in
// (validated) on service s. It returns an error when the request is not
// allowed: AccessDeniedException with AWS's message, or the errors the
// operation itself would return when the key it names cannot be found
// (NotFoundException, …), so that the client sees the same answer whether
// or not it is authorized. Some checks that depend on the caller are part
// of authorization: the key policy lockout safety check of CreateKey and
// PutKeyPolicy (a policy that would lock the caller out is
// MalformedPolicyDocumentException) and the grant tokens of a request
// (InvalidGrantTokenException).
//
// When the request is allowed, Check returns c annotated with the keys the
// decision was made on (authorized.go): the operation must be called with
// that Caller, so that it acts on those very keys, even if an alias has
// moved since. The annotated Caller is good for this one request only.
//
// The wire layer checks every request; Service methods do not, so code
// that calls them directly (tests, tools) acts with every permission.
func (r *Rule[In]) Check(ctx context.Context, s *Service, c Caller, in *In) (Caller, error) {
	return r.authorize(ctx, s, c, in, nil)
}

func (r *Rule[In]) authorize(ctx context.Context, s *Service, c Caller, in *In, observe func(action, resource string, pc policy.Context)) (Caller, error) {
	if r == nil || in == nil {
		// A caller's bug, never the client's: refuse.
		return Caller{}, internal("authorize", fmt.Errorf("no rule or no input (%T)", in))
	}
	// Keys resolved for an earlier request must not stand in for this
	// one's.
	c.authorized = nil
	id, err := identityFor(&c)
	if err != nil {
		return Caller{}, internal("authorize "+r.op, err)
	}
	a := &authzCall{s: s, ctx: ctx, c: &c, id: id, action: r.action, grantOp: r.grantOp, observe: observe}
	if err := r.check(a, in); err != nil {
		return Caller{}, err
	}
	c.authorized = &a.resolved
	return c, nil
}

// deny returns the AccessDeniedException of a verdict.
func deny(v policy.Verdict) error {
	return awserr.New(awserr.AccessDenied, v.Message)
}

// context builds the condition context of a request, with the groups of
// keys in needs: the caller's keys, the connection's, the key's (ka may be
// nil) and the request's (r may be nil).
func (a *authzCall) context(ka *keyAuthz, r *keyRequest, needs ctxNeeds) (policy.Context, error) {
	if a.observe != nil {
		needs = needAll // tests see every key
	}
	if needs == 0 {
		return policy.Context{}, nil
	}
	n := 0
	if needs&needPrincipal != 0 {
		n += len(a.id.ctx)
	}
	if needs&needPrincipalTags != 0 {
		n += len(a.id.tagCtx)
	}
	if needs&needConnection != 0 {
		n += 4
	}
	if needs&needTime != 0 {
		n += 2
	}
	if ka != nil {
		n += len(ka.ctx) + len(ka.tagCtx) + 1
	}
	if r != nil {
		n += len(r.extra) + len(r.ec) + 2
	}
	pc := policy.NewContext(n)
	set := func(es []ctxEntry) {
		for _, e := range es {
			pc.Set(e.key, e.vals...)
		}
	}
	if needs&needPrincipal != 0 {
		set(a.id.ctx)
	}
	if needs&needPrincipalTags != 0 {
		set(a.id.tagCtx)
	}
	if needs&needConnection != 0 {
		if a.c.SourceIP != "" {
			pc.Set("aws:sourceip", a.c.SourceIP)
		}
		pc.Set("aws:securetransport", boolVals(a.c.SecureTransport)...)
		pc.Set("aws:requestedregion", a.c.Region)
		pc.Set("aws:viaawsservice", falseVals...)
	}
	if needs&needTime != 0 {
		cv := a.s.clockValues()
		pc.Set("aws:currenttime", cv.current...)
		pc.Set("aws:epochtime", cv.epoch...)
	}
	if ka != nil {
		if needs&needKey != 0 {
			set(ka.ctx)
		}
		if needs&needResourceTags != 0 {
			set(ka.tagCtx)
		}
		if needs&needAliases != 0 {
			names, err := a.s.resourceAliases(a.ctx, ka.key)
			if err != nil {
				return pc, err
			}
			pc.Set("kms:resourcealiases", names...)
		}
	}
	if r != nil {
		if needs&needRequest != 0 {
			set(r.extra)
			if alias := requestAliasOf(r.keyID); alias != "" {
				pc.Set("kms:requestalias", alias)
			}
		}
		if needs&needEC != 0 && len(r.ec) > 0 {
			ks := make([]string, 0, len(r.ec))
			for k, v := range r.ec {
				pc.Set("kms:encryptioncontext:"+strings.ToLower(k), v)
				ks = append(ks, k)
			}
			slices.Sort(ks)
			pc.Set("kms:encryptioncontextkeys", ks...)
		}
	}
	return pc, nil
}

// checkIdentity authorizes an action that no key policy governs: identity
// policies alone decide (resource "*" or an alias ARN).
func (a *authzCall) checkIdentity(action, resource string, r *keyRequest) error {
	pc, err := a.context(nil, r, a.id.needs)
	if err != nil {
		return err
	}
	if a.observe != nil {
		a.observe(action, resource, pc)
	}
	req := policy.Request{Principal: a.id.Principal, Action: action, Resource: resource, Context: pc}
	v := policy.Authorize(&policy.Authorization{
		Principal: a.id.Principal, Action: action, Resource: resource,
		Identity: a.id.EvaluateIdentity(&req),
	})
	if !v.Allowed {
		return deny(v)
	}
	return nil
}

// checkKey authorizes action on key k: explicit denies, then the key
// policy (with IAM delegation and the cross-account rule), then grants.
func (a *authzCall) checkKey(action, grantOp string, k *store.Key, r *keyRequest) error {
	tokens, err := parseGrantTokens(r.tokens)
	if err != nil {
		return err
	}
	ka := a.s.keyAuthz(k)
	auth := policy.Authorization{Principal: a.id.Principal, Action: action, Resource: ka.arn, ResourceAccount: k.Account}
	if !r.cross && k.Account != a.id.Principal.Account {
		// Not an operation AWS allows across accounts: no policy of the
		// key's account can allow it.
		auth.KeyPolicy = &policy.Result{Statement: -1}
		return deny(policy.Authorize(&auth))
	}
	pc, err := a.context(ka, r, ka.needs|a.id.needs)
	if err != nil {
		return err
	}
	if a.observe != nil {
		a.observe(action, ka.arn, pc)
	}
	req := policy.Request{Principal: a.id.Principal, Action: action, Resource: ka.arn, Context: pc}
	kp := a.id.SessionLimit(ka.policy, &req, ka.policy.EvaluateDetailed(&req))
	// A grant to the role (not to the session itself) is limited by the
	// session policy as a key policy statement naming the role is.
	a.sessionAllows = a.id.SessionPolicy == nil || a.id.SessionPolicy.Evaluate(&req) == policy.Allow
	auth.KeyPolicy = &kp
	auth.Identity = a.id.EvaluateIdentity(&req)
	v := policy.Authorize(&auth)
	if v.Allowed {
		return nil
	}
	if grantOp != "" && (v.Reason == policy.DeniedNoKeyPolicyAllow || v.Reason == policy.DeniedNoIdentityAllow) {
		ok, err := a.grantAllows(k, grantOp, r, tokens, auth.Identity)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
	}
	return deny(v)
}
