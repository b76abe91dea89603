package awsjson

import (
	"fmt"
	"regexp"

	"github.com/kmsd/kmsd/internal/kms"
)

// Key policies and grants: their model constraints and response shapes.

var (
	policyNameRE  = regexp.MustCompile(`^[\w]+$`)
	principalIDRE = regexp.MustCompile(`^[\w+=,.@:/-]+$`)
	grantNameRE   = regexp.MustCompile(`^[a-zA-Z0-9:/_-]+$`)
)

func (v *validator) policyName(name string) {
	v.optLength("policyName", name, 1, 128)
	v.pattern("policyName", name, policyNameRE)
}

func (v *validator) principalID(field, p string) {
	v.optLength(field, p, 1, 256)
	v.pattern(field, p, principalIDRE)
}

func validateGetKeyPolicy(v *validator, in *kms.GetKeyPolicyInput) {
	v.keyID("keyId", in.KeyId)
	v.policyName(in.PolicyName)
}

func validatePutKeyPolicy(v *validator, in *kms.PutKeyPolicyInput) {
	v.keyID("keyId", in.KeyId)
	if v.required("policy", in.Policy) {
		v.length("policy", in.Policy, 1, 131072)
		v.pattern("policy", in.Policy, policyRE)
	}
	v.policyName(in.PolicyName)
}

func validateListKeyPolicies(v *validator, in *kms.ListKeyPoliciesInput) {
	v.keyID("keyId", in.KeyId)
	v.list(in.Limit, in.Marker)
}

func validateCreateGrant(v *validator, in *kms.CreateGrantInput) {
	v.keyID("keyId", in.KeyId)
	if in.Operations == nil {
		v.required("operations", "")
	}
	for i, op := range in.Operations {
		v.enum(fmt.Sprintf("operations.%d.member", i+1), op, kms.GrantOperations)
	}
	v.principalID("granteePrincipal", in.GranteePrincipal)
	v.principalID("retiringPrincipal", in.RetiringPrincipal)
	v.optLength("name", in.Name, 1, 256)
	v.pattern("name", in.Name, grantNameRE)
	v.grantTokens(in.GrantTokens)
}

func validateListGrants(v *validator, in *kms.ListGrantsInput) {
	v.keyID("keyId", in.KeyId)
	v.optLength("grantId", in.GrantId, 1, 128)
	v.principalID("granteePrincipal", in.GranteePrincipal)
	v.list(in.Limit, in.Marker)
}

func validateListRetirableGrants(v *validator, in *kms.ListRetirableGrantsInput) {
	v.principalID("retiringPrincipal", in.RetiringPrincipal)
	v.list(in.Limit, in.Marker)
}

func validateRetireGrant(v *validator, in *kms.RetireGrantInput) {
	v.optLength("grantToken", in.GrantToken, 1, 8192)
	v.optLength("keyId", in.KeyId, 1, 2048)
	v.optLength("grantId", in.GrantId, 1, 128)
}

func validateRevokeGrant(v *validator, in *kms.RevokeGrantInput) {
	v.keyID("keyId", in.KeyId)
	if v.required("grantId", in.GrantId) {
		v.length("grantId", in.GrantId, 1, 128)
	}
}

type listKeyPoliciesResponse struct {
	PolicyNames []string
	NextMarker  string `json:",omitempty"`
	Truncated   bool
}

func wireListKeyPolicies(o *kms.ListKeyPoliciesOutput) any {
	return listKeyPoliciesResponse{o.PolicyNames, o.NextMarker, o.Truncated}
}

type grantConstraints struct {
	EncryptionContextEquals map[string]string `json:",omitempty"`
	EncryptionContextSubset map[string]string `json:",omitempty"`
}

type grantListEntry struct {
	KeyId             string
	GrantId           string
	Name              string `json:",omitempty"`
	CreationDate      epoch
	GranteePrincipal  string `json:",omitempty"`
	RetiringPrincipal string `json:",omitempty"`
	IssuingAccount    string
	Operations        []string
	Constraints       *grantConstraints `json:",omitempty"`
}

type listGrantsResponse struct {
	Grants     []grantListEntry
	NextMarker string `json:",omitempty"`
	Truncated  bool
}

func wireListGrants(o *kms.ListGrantsOutput) any {
	r := listGrantsResponse{Grants: make([]grantListEntry, 0, len(o.Grants)), NextMarker: o.NextMarker, Truncated: o.Truncated}
	for _, g := range o.Grants {
		e := grantListEntry{
			KeyId: g.KeyId, GrantId: g.GrantId, Name: g.Name, CreationDate: epoch(g.CreationDate),
			GranteePrincipal: g.GranteePrincipal, RetiringPrincipal: g.RetiringPrincipal,
			IssuingAccount: g.IssuingAccount, Operations: g.Operations,
		}
		if c := g.Constraints; c != nil {
			e.Constraints = &grantConstraints{c.EncryptionContextEquals, c.EncryptionContextSubset}
		}
		r.Grants = append(r.Grants, e)
	}
	return r
}
