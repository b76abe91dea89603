package policy

// Authorization gathers what the AWS evaluation logic for KMS combines:
// the key policy's verdict, the caller's identity policies and grants.
type Authorization struct {
	// Principal is the caller.
	Principal Principal
	// Action is the action checked, such as "kms:Decrypt"; Resource is the
	// key ARN (or alias ARN, or "*"). Both appear in the denial message.
	Action   string
	Resource string
	// KeyPolicy is the key policy's evaluation (EvaluateDetailed); nil for
	// an operation that is not authorized against a key (CreateKey,
	// ListKeys, GenerateRandom, the alias half of alias operations, …):
	// then identity policies alone decide.
	KeyPolicy *Result
	// ResourceAccount is the account that owns the key. A caller from
	// another account needs the key policy and its own identity policies
	// to allow the request.
	ResourceAccount string
	// Identity is the combined decision of the caller's identity policies
	// (EvaluateAll or Combine); NotApplicable when it has none.
	Identity Decision
	// Grant is set when a grant on the key covers the request (grantee,
	// operation and constraints checked by the caller).
	Grant bool
}

// Reason says why Authorize allowed or denied a request.
type Reason uint8

const (
	// Allowed.
	AllowedByKeyPolicy  Reason = iota + 1 // the key policy names the caller (same account)
	AllowedByDelegation                   // the key policy allows the caller's account and an identity policy allows
	AllowedCrossAccount                   // the key policy allows the caller (or its account) and an identity policy of the caller allows
	AllowedByGrant                        // a grant covers the request
	AllowedByIdentity                     // not a key operation: an identity policy allows
	// Denied.
	DeniedByKeyPolicy      // an explicit deny in the key policy
	DeniedByIdentity       // an explicit deny in an identity policy
	DeniedNoKeyPolicyAllow // the key policy does not allow the request
	DeniedNoIdentityAllow  // the key policy delegates to IAM (or the call is cross-account, or not a key operation) and no identity policy allows
)

func (r Reason) String() string {
	switch r {
	case AllowedByKeyPolicy:
		return "AllowedByKeyPolicy"
	case AllowedByDelegation:
		return "AllowedByDelegation"
	case AllowedCrossAccount:
		return "AllowedCrossAccount"
	case AllowedByGrant:
		return "AllowedByGrant"
	case AllowedByIdentity:
		return "AllowedByIdentity"
	case DeniedByKeyPolicy:
		return "DeniedByKeyPolicy"
	case DeniedByIdentity:
		return "DeniedByIdentity"
	case DeniedNoKeyPolicyAllow:
		return "DeniedNoKeyPolicyAllow"
	case DeniedNoIdentityAllow:
		return "DeniedNoIdentityAllow"
	}
	return "Reason(?)"
}

// Verdict is the outcome of Authorize.
type Verdict struct {
	Allowed bool
	Reason  Reason
	// Message is the AccessDeniedException message when the request is
	// denied, in AWS's words:
	//   User: ARN is not authorized to perform: ACTION on resource: RESOURCE
	//   because no resource-based policy allows the ACTION action
	// ("because no identity-based policy allows the ACTION action", "with
	// an explicit deny in a resource-based policy", "with an explicit deny
	// in an identity-based policy"). Empty when allowed.
	Message string
}

// Authorize applies the AWS authorization rules for KMS:
//
//  1. An explicit Deny wins over everything: in the key policy first (the
//     message says "resource-based policy"), then in an identity policy.
//     Grants cannot deny and cannot override a deny.
//  2. An operation that is not tied to a key (KeyPolicy nil) is allowed
//     when an identity policy allows it.
//  3. A grant that covers the request allows it.
//  4. Otherwise the key policy must allow the request. If it does not, the
//     request is denied ("no resource-based policy allows").
//  5. A caller from another account than the key's needs, besides the key
//     policy's Allow (naming it or its account), an Allow from its own
//     identity policies.
//  6. In the key's account, an Allow that names the caller directly (its
//     ARN, its role, "*", a service) is enough; an Allow that only names
//     the caller's account delegates to IAM: an identity policy must allow
//     too ("no identity-based policy allows").
//
// An account's root user is not subject to identity policies: it counts as
// allowed by them (unless Identity is Deny).
func Authorize(a *Authorization) Verdict {
	identity := a.Identity == Allow || a.Identity != Deny && a.Principal.IsAccountRoot()
	switch {
	case a.KeyPolicy != nil && a.KeyPolicy.Decision == Deny:
		return a.deny(DeniedByKeyPolicy)
	case a.Identity == Deny:
		return a.deny(DeniedByIdentity)
	case a.KeyPolicy == nil:
		if identity {
			return Verdict{Allowed: true, Reason: AllowedByIdentity}
		}
		return a.deny(DeniedNoIdentityAllow)
	case a.Grant:
		return Verdict{Allowed: true, Reason: AllowedByGrant}
	case a.KeyPolicy.Decision != Allow:
		return a.deny(DeniedNoKeyPolicyAllow)
	}
	p := &a.Principal
	crossAccount := p.isAWS() && p.Account != "" && a.ResourceAccount != "" && p.Account != a.ResourceAccount
	switch {
	case crossAccount:
		if identity {
			return Verdict{Allowed: true, Reason: AllowedCrossAccount}
		}
		return a.deny(DeniedNoIdentityAllow)
	case a.KeyPolicy.Direct:
		return Verdict{Allowed: true, Reason: AllowedByKeyPolicy}
	case identity:
		return Verdict{Allowed: true, Reason: AllowedByDelegation}
	}
	return a.deny(DeniedNoIdentityAllow)
}

func (a *Authorization) deny(r Reason) Verdict {
	head := "User: " + a.Principal.ARN + " is not authorized to perform: " + a.Action + " on resource: " + a.Resource
	var tail string
	switch r {
	case DeniedByKeyPolicy:
		tail = " with an explicit deny in a resource-based policy"
	case DeniedByIdentity:
		tail = " with an explicit deny in an identity-based policy"
	case DeniedNoKeyPolicyAllow:
		tail = " because no resource-based policy allows the " + a.Action + " action"
	default:
		tail = " because no identity-based policy allows the " + a.Action + " action"
	}
	return Verdict{Reason: r, Message: head + tail}
}
