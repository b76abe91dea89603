package kms

import (
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/kmsd/kmsd/internal/awsarn"
	"github.com/kmsd/kmsd/internal/policy"
	"github.com/kmsd/kmsd/internal/store"
)

// Authorization by grants: whether a grant of the key allows a request
// that its key policy and the caller's identity policies do not, and the
// rules of the grant operations themselves.

// names reports whether principal p (of a grant) is the caller: its ARN,
// the role of its session, or its account's root when the caller is that
// root.
func (a *authzCall) names(p string) bool {
	pr := &a.id.Principal
	return p != "" && (p == pr.ARN || p == pr.RoleARN)
}

// isGrantee reports whether grantee p covers the caller. A grant to an
// account covers that account's principals whose identity policies allow
// the request (as the account principal in a key policy does).
func (a *authzCall) isGrantee(p string, identity policy.Decision) bool {
	if a.names(p) {
		// A grant to the role covers its sessions within their session
		// policies; a grant to the session itself is not limited by them.
		return p == a.id.Principal.ARN || a.id.SessionPolicy == nil || a.sessionAllows
	}
	pr := &a.id.Principal
	return awsarn.IsRoot(p, a.c.Partition, pr.Account) && (pr.IsAccountRoot() || identity == policy.Allow)
}

// grantAllows reports whether a grant of key k allows operation op to the
// caller: a grant of the key (from the cache) or one the request's grant
// tokens name.
func (a *authzCall) grantAllows(k *store.Key, op string, r *keyRequest, tokens []grantToken, identity policy.Decision) (bool, error) {
	gs, err := a.s.grantsFor(a.ctx, k.ID)
	if err != nil {
		return false, err
	}
	for _, t := range tokens {
		i := slices.IndexFunc(gs, func(g *grant) bool { return g.ID == t.grantID })
		var g *store.Grant
		if i >= 0 {
			g = gs[i].Grant
		} else {
			// A grant made through another node that this one has not
			// seen yet.
			g, err = a.s.store.GetGrant(a.ctx, t.grantID)
			if isNotFound(err) {
				continue
			}
			if err != nil {
				return false, internal("get grant", err)
			}
			if g.KeyID != k.ID {
				continue
			}
			gs = append(slices.Clip(gs), &grant{g})
		}
		if !t.verify(g) {
			return false, errInvalidGrantToken
		}
	}
	for _, g := range gs {
		if a.grantCovers(g.Grant, op, r, identity) {
			return true, nil
		}
	}
	return false, nil
}

// grantCovers applies one grant: its operations, its grantee and its
// constraints. Encryption context constraints apply to the operations that
// take an encryption context, and bound the grants CreateGrant may make;
// other operations ignore them.
func (a *authzCall) grantCovers(g *store.Grant, op string, r *keyRequest, identity policy.Decision) bool {
	if !slices.Contains(g.Operations, op) || !a.isGrantee(g.GranteePrincipal, identity) {
		return false
	}
	switch {
	case op == "CreateGrant" && r.newGrant != nil:
		return allowsSubGrant(g, r.newGrant)
	case r.ecOp:
		return constraintsHold(g, r.ec)
	}
	return true
}

// constraintsHold checks a request's encryption context against a grant's
// constraints: keys compare case-insensitively, values exactly.
func constraintsHold(g *store.Grant, ec map[string]string) bool {
	switch {
	case len(g.EncryptionContextEquals) > 0:
		return sameContextFold(ec, g.EncryptionContextEquals)
	case len(g.EncryptionContextSubset) > 0:
		return containsFold(ec, g.EncryptionContextSubset)
	}
	return true
}

// sameContextFold reports whether a and b hold the same pairs, keys compared
// ignoring case: EncryptionContextEquals is set equality. Containment both
// ways is not enough alone: {"a":"1","A":"1"} contains {"a":"1"} and is
// contained in it, but is two pairs (an encryption context's keys are case
// sensitive), one of which the constraint does not name.
func sameContextFold(a, b map[string]string) bool {
	return len(a) == len(b) && containsFold(a, b) && containsFold(b, a)
}

// containsFold reports whether every pair of sub has a pair in ec with the
// same key (ignoring case) and the same value.
func containsFold(ec, sub map[string]string) bool {
	for k, v := range sub {
		found := false
		for k2, v2 := range ec {
			if v2 == v && keyEqualFold(k, k2) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// keyEqualFold compares encryption context keys ignoring case, as
// strings.EqualFold does, except that bytes that are not UTF-8 must match
// exactly: EqualFold reads every invalid byte as U+FFFD, so it takes "\x80"
// and "\xd3" for the same key. (JSON decoding replaces invalid UTF-8, so
// such keys reach here only from within.)
func keyEqualFold(a, b string) bool {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		invalidA := ra == utf8.RuneError && na == 1
		invalidB := rb == utf8.RuneError && nb == 1
		switch {
		case invalidA || invalidB:
			if !invalidA || !invalidB || a[0] != b[0] {
				return false
			}
		case !strings.EqualFold(a[:na], b[:nb]):
			return false
		}
		a, b = a[na:], b[nb:]
	}
	return a == "" && b == ""
}

// allowsSubGrant reports whether grant g, which allows CreateGrant, allows
// the grant a request asks for: a subset of its operations, with
// constraints at least as strict as its own.
func allowsSubGrant(g *store.Grant, in *CreateGrantInput) bool {
	for _, op := range in.Operations {
		if !slices.Contains(g.Operations, op) {
			return false
		}
	}
	var eq, sub map[string]string
	if in.Constraints != nil {
		eq, sub = in.Constraints.EncryptionContextEquals, in.Constraints.EncryptionContextSubset
	}
	switch {
	case len(g.EncryptionContextEquals) > 0:
		return len(eq) > 0 && sameContextFold(eq, g.EncryptionContextEquals)
	case len(g.EncryptionContextSubset) > 0:
		if len(eq) > 0 {
			return containsFold(eq, g.EncryptionContextSubset)
		}
		return len(sub) > 0 && containsFold(sub, g.EncryptionContextSubset)
	}
	return true
}

// authorizeCreateGrant checks kms:CreateGrant with the grant's condition
// keys; a grant that allows CreateGrant allows only grants within itself.
func authorizeCreateGrant(a *authzCall, in *CreateGrantInput) error {
	k, err := a.resolve(in.KeyId, idOrARN)
	if err != nil {
		return err
	}
	r := &keyRequest{keyID: in.KeyId, cross: crossAccount, tokens: in.GrantTokens, newGrant: in}
	r.setAll("kms:grantoperations", in.Operations)
	r.set("kms:granteeprincipal", in.GranteePrincipal)
	if in.RetiringPrincipal != "" {
		r.set("kms:retiringprincipal", in.RetiringPrincipal)
	}
	r.set("kms:grantisforawsresource", "false")
	if c := in.Constraints; c != nil {
		switch {
		case len(c.EncryptionContextEquals) > 0:
			r.set("kms:grantconstrainttype", "EncryptionContextEquals")
			r.ec = c.EncryptionContextEquals
		case len(c.EncryptionContextSubset) > 0:
			r.set("kms:grantconstrainttype", "EncryptionContextSubset")
			r.ec = c.EncryptionContextSubset
		}
	}
	return a.checkKey("kms:CreateGrant", "CreateGrant", k, r)
}

// authorizeRetireGrant: a grant's retiring principal may retire it, and so
// may its grantee when the grant allows RetireGrant; otherwise the key
// policy (or IAM, through it) must allow kms:RetireGrant.
func authorizeRetireGrant(a *authzCall, in *RetireGrantInput) error {
	g, k, err := a.s.grantToRetire(a.ctx, *a.c, in)
	if err != nil {
		return err
	}
	if a.names(g.RetiringPrincipal) || slices.Contains(g.Operations, "RetireGrant") && a.names(g.GranteePrincipal) {
		return nil
	}
	return a.checkKey("kms:RetireGrant", "", k, &keyRequest{cross: crossAccount})
}

// authorizeListRetirableGrants: identity policies decide, for a retiring
// principal of the caller's own account.
func authorizeListRetirableGrants(a *authzCall, in *ListRetirableGrantsInput) error {
	if err := a.checkIdentity(a.action, "*", nil); err != nil {
		return err
	}
	if p, err := policy.NewPrincipal(in.RetiringPrincipal); err == nil && p.Account != a.id.Principal.Account {
		return deny(policy.Authorize(&policy.Authorization{Principal: a.id.Principal, Action: a.action,
			Resource: in.RetiringPrincipal, KeyPolicy: &policy.Result{Statement: -1}}))
	}
	return nil
}
