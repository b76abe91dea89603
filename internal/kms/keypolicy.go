package kms

import (
	"context"
	"strings"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/policy"
	"github.com/kmsd/kmsd/internal/store"
)

// DefaultPolicyName is the name of a key's policy: AWS keys have exactly
// one, called "default".
const DefaultPolicyName = "default"

// errLockout is AWS's answer to a key policy that would lock its author out.
var errLockout = awserr.New(awserr.MalformedPolicyDocument,
	"The new key policy will not allow you to update the key policy in the future.")

// checkPolicy applies AWS's rules to a key policy document: the 32 KiB
// quota (LimitExceededException) and the policy language
// (MalformedPolicyDocumentException with the parser's message, which names
// the statement and element at fault). Principals are checked for form
// (account ids and IAM ARNs), not for existence.
func checkPolicy(p string) error {
	_, err := compileKeyPolicy(p)
	return err
}

// CheckKeyPolicy applies to a key policy document the checks of its text
// that CreateKey and PutKeyPolicy make, with their errors, so that a
// policy can be checked before any request: kmsd serve checks a seed's
// before it writes anything. The lockout check, which depends on the
// caller, is not among them.
func CheckKeyPolicy(p string) error { return checkPolicy(p) }

// compileKeyPolicy is checkPolicy that also returns the compiled policy.
func compileKeyPolicy(p string) (*policy.Policy, error) {
	if len(p) > MaxPolicyBytes {
		return nil, awserr.Newf(awserr.LimitExceeded, "The key policy is %d bytes; the maximum is %d bytes.", len(p), MaxPolicyBytes)
	}
	pol, err := policy.Parse([]byte(p), policy.ResourcePolicy)
	if err != nil {
		return nil, awserr.New(awserr.MalformedPolicyDocument, err.Error())
	}
	return pol, nil
}

// checkPolicyName accepts only the default policy name (absent means it).
func checkPolicyName(name string) error {
	if name != "" && name != DefaultPolicyName {
		return awserr.Newf(awserr.NotFound, "Key policy '%s' does not exist: a KMS key has one policy, named default.", name)
	}
	return nil
}

// GetKeyPolicyInput is the GetKeyPolicy request.
type GetKeyPolicyInput struct {
	KeyId      string
	PolicyName string
}

// GetKeyPolicyOutput is the GetKeyPolicy response.
type GetKeyPolicyOutput struct {
	Policy     string
	PolicyName string
}

// GetKeyPolicy returns a key's policy document as it was stored, in any
// key state.
func (s *Service) GetKeyPolicy(ctx context.Context, c Caller, in *GetKeyPolicyInput) (*GetKeyPolicyOutput, error) {
	if err := checkPolicyName(in.PolicyName); err != nil {
		return nil, err
	}
	k, err := s.resolve(ctx, c, in.KeyId, idOrARN)
	if err != nil {
		return nil, err
	}
	return &GetKeyPolicyOutput{Policy: k.Policy, PolicyName: DefaultPolicyName}, nil
}

// PutKeyPolicyInput is the PutKeyPolicy request.
type PutKeyPolicyInput struct {
	KeyId                          string
	Policy                         string
	PolicyName                     string
	BypassPolicyLockoutSafetyCheck bool
}

// PutKeyPolicy replaces a key's policy. The new policy takes effect with the
// next request. The lockout safety check is part of authorization (it
// depends on the caller): see Rule.Check.
func (s *Service) PutKeyPolicy(ctx context.Context, c Caller, in *PutKeyPolicyInput) error {
	if err := checkPolicyName(in.PolicyName); err != nil {
		return err
	}
	if err := checkPolicy(in.Policy); err != nil {
		return err
	}
	k, err := s.manageKey(ctx, c, in.KeyId, func(k *store.Key) error {
		k.Policy = in.Policy
		return nil
	})
	if err != nil {
		return err
	}
	s.log.InfoContext(ctx, "key policy replaced", "key", arnOf(k))
	return nil
}

// ListKeyPoliciesInput is the ListKeyPolicies request.
type ListKeyPoliciesInput struct {
	KeyId  string
	Limit  *int32
	Marker string
}

// ListKeyPoliciesOutput is the ListKeyPolicies response.
type ListKeyPoliciesOutput struct {
	PolicyNames []string
	NextMarker  string
	Truncated   bool
}

// ListKeyPolicies lists the names of a key's policies: always "default".
// kmsd never returns a marker, so any marker is invalid.
func (s *Service) ListKeyPolicies(ctx context.Context, c Caller, in *ListKeyPoliciesInput) (*ListKeyPoliciesOutput, error) {
	if in.Marker != "" {
		return nil, errBadMarker
	}
	if _, err := s.resolve(ctx, c, in.KeyId, idOrARN); err != nil {
		return nil, err
	}
	return &ListKeyPoliciesOutput{PolicyNames: []string{DefaultPolicyName}}, nil
}

// checkLockout is the key policy lockout safety check: the new policy must
// allow the caller to call PutKeyPolicy on the key afterwards (naming it or
// its account; an account-level Allow counts, as on AWS, because IAM can
// then grant the permission). pctx is the request's condition context.
func checkLockout(pol *policy.Policy, id *Identity, keyARN string, pctx policy.Context) error {
	req := policy.Request{Principal: id.Principal, Action: "kms:PutKeyPolicy", Resource: keyARN, Context: pctx}
	if pol.Evaluate(&req) != policy.Allow {
		return errLockout
	}
	return nil
}

// requestAliasOf returns the alias a key identifier names (alias/NAME, or
// the alias part of an alias ARN), or "".
func requestAliasOf(keyID string) string {
	if strings.HasPrefix(keyID, "alias/") {
		return keyID
	}
	if i := strings.Index(keyID, ":alias/"); i >= 0 && strings.HasPrefix(keyID, "arn:") {
		return keyID[i+1:]
	}
	return ""
}
