// Package policy implements the IAM policy language: it parses and
// validates key policies and identity policies, compiles them once, and
// evaluates requests against the compiled form. It is pure: no I/O, no
// global mutable state, no re-parsing on the request path; a *Policy is
// immutable and may be shared between goroutines.
//
// # Language
//
// Parse(doc, kind) accepts a JSON document with Version, Id and Statement
// (an object or a non-empty list). Version is "2012-10-17" or "2008-10-17"
// (the default when absent); any other value is refused and named in the
// error. A statement has an optional Sid, an Effect ("Allow" or "Deny"),
// Principal or NotPrincipal, Action or NotAction, Resource or NotResource,
// and an optional Condition. Element names are case-sensitive; unknown
// elements, duplicate keys, wrong types, a missing Effect and conflicting
// pairs (Action with NotAction, …) are refused with a *SyntaxError that
// names the statement (index and Sid) and the element.
//
// The kind decides principals: a ResourcePolicy (key policy, bucket
// policy) needs Principal or NotPrincipal in every statement, and accepts
// but never applies a statement without Action or without Resource, as KMS
// does; an IdentityPolicy must not name principals, needs Action and
// Resource, and must have unique Sids. NotPrincipal requires "Effect":
// "Deny".
//
// Principal is "*" or an object with the types "AWS" ("*", 12-digit
// account ids, arn:…:iam::ACCOUNT:root, IAM user and role ARNs,
// assumed-role session ARNs, STS federated-user ARNs), "Service" (service
// principal names) and "Federated" (identity providers); each a string or
// a list. Wildcards inside a principal, IAM groups and CanonicalUser are
// refused.
//
// Action and Resource values are strings or lists. In both, * matches any
// run of characters and ? exactly one. Actions ("*" or SERVICE:ACTION)
// match case-insensitively. Resources ("*" or ARNs) match
// case-sensitively, and as IAM documents a wildcard stays within one
// colon-separated segment of the ARN, except a * that ends a segment (or
// the pattern), which may run across colons. In a key policy "Resource":
// "*" means the key itself.
//
// Condition maps operators to {key: value or list of values}. All IAM
// operators are supported: StringEquals, StringNotEquals,
// StringEqualsIgnoreCase, StringNotEqualsIgnoreCase, StringLike,
// StringNotLike, NumericEquals, NumericNotEquals, NumericLessThan,
// NumericLessThanEquals, NumericGreaterThan, NumericGreaterThanEquals,
// DateEquals, DateNotEquals, DateLessThan, DateLessThanEquals,
// DateGreaterThan, DateGreaterThanEquals, Bool, BinaryEquals, IpAddress,
// NotIpAddress, ArnEquals, ArnLike, ArnNotEquals, ArnNotLike and Null;
// the IfExists suffix on all but Null; and the ForAnyValue: and
// ForAllValues: prefixes. Values are strings, numbers or booleans (or
// lists of them) and are checked for their operator when parsed: numbers
// are exact decimals ("10", "2.5", "1e3"); dates are ISO 8601 (W3C
// profiles: 2025-01-01, 2025-01-01T12:00:00Z, with fractions and ±hh:mm
// offsets) or epoch seconds (a string of digits is always epoch seconds);
// Bool takes "true"/"false" (any case); BinaryEquals takes base64; IP
// operators take IPv4 or IPv6 CIDR ranges or single addresses (/32,
// /128); Arn operators compare the six colon-separated ARN fields one by
// one, each with * and ? wildcards (ArnEquals behaves like ArnLike).
//
// Policy variables — ${aws:username}, ${aws:PrincipalTag/team}, any
// ${condition-key}, a default as in ${aws:userid, 'anonymous'}, and the
// escapes ${*}, ${?}, ${$} — are substituted only under Version
// 2012-10-17 (under 2008-10-17 they are literal text), in Resource (after
// the fifth colon only, as IAM requires) and in the values of the String,
// Arn and Bool operators. A substituted value is literal: its * and ? are
// not wildcards. A variable whose key is absent from the request (and has
// no default) or has several values cannot be substituted, and the value
// that contains it matches nothing: a Resource pattern or StringEquals
// value with ${aws:username} never matches a request without a user name,
// and for a negated operator that value excludes nothing.
//
// # Evaluation
//
// A statement applies to a request when its principal matches (resource
// policies), its action and resource match, and every condition holds.
// Evaluate returns Deny when a Deny statement applies, otherwise Allow
// when an Allow statement applies, otherwise NotApplicable (an implicit
// deny). EvaluateDetailed also says whether an Allow named the caller
// directly or only its account; Matches lists every statement that
// applied.
//
// Principal matching: "*" (or {"AWS": "*"}) matches everyone. An account
// id or account root ARN matches every principal of that account — "via
// the account": in a key policy this delegates to IAM, so the caller's
// identity policies must allow too (the account's root user itself counts
// as named directly). A user ARN matches that user. A role ARN matches
// the role's assumed-role sessions (Principal.RoleARN) — this is how IAM
// treats a role principal in a resource policy; a session ARN matches that
// session only. Service and Federated principals match a caller of that
// type and name. NotPrincipal excludes a caller only when its account is
// listed and, for an IAM user its ARN, for a role session its role ARN
// (the account root needs only the account): AWS checks the account, the
// role, then the session, so a listed user without its account is still
// denied.
//
// Conditions: the operators of a Condition block, and the keys within an
// operator, are ANDed; the values of one key are ORed (for a negated
// operator: the request value must match none of them). Condition key
// names are case-insensitive. A key absent from the request makes a
// positive operator false and a negated one true; with IfExists the
// condition is true; ForAllValues is true and ForAnyValue false. Null
// "true" holds when the key is absent, "false" when it is present.
// ForAnyValue holds when some request value satisfies the operator,
// ForAllValues when every one does (a request value satisfies a negated
// operator when it matches none of the policy values). Without a set
// prefix a multi-valued key holds for a positive operator when any of its
// values matches, and for a negated one when none does. A request value
// that is not of the operator's type (a non-number for Numeric*, …)
// matches nothing.
//
// Authorize combines the key policy's Result, the caller's identity
// policies (EvaluateAll) and grants into AWS's decision and
// AccessDeniedException message; see its documentation for the rules.
//
// # Building a Request
//
// The caller fills Request.Principal (NewPrincipal from the caller's ARN,
// or a Principal literal with Type "Service"), Request.Action ("kms:" +
// operation), Request.Resource (the key ARN; an alias ARN for the alias
// half of alias operations; "*" for operations without a resource) and
// Request.Context with every condition key the request carries, through
// Context.Set so that names are lower-cased (pass lower-case constants to
// avoid an allocation per key):
//
//	ctx := policy.NewContext(8)
//	ctx.Set("aws:principalarn", caller.ARN)
//	ctx.Set("kms:calleraccount", caller.Account)
//	ctx.Set("kms:encryptioncontext:"+strings.ToLower(k), v) // one per pair
//	ctx.Set("kms:encryptioncontextkeys", keys...)           // multi-valued
//	ctx.Set("aws:sourceip", "203.0.113.7")
//	ctx.Set("aws:securetransport", "true")
//	ctx.Set("aws:currenttime", now.UTC().Format(time.RFC3339))
//	ctx.Set("aws:epochtime", strconv.FormatInt(now.Unix(), 10))
//
// Single-valued keys get one value; multi-valued keys (kms:GrantOperations,
// kms:EncryptionContextKeys, kms:ResourceAliases, aws:TagKeys) get all of
// theirs. Binary keys are given base64-encoded, dates as ISO 8601 or epoch
// seconds, booleans as "true"/"false". Policy variables read the same
// keys (${aws:username} reads "aws:username").
package policy
