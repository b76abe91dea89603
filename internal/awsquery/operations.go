package awsquery

import (
	"context"
	"slices"
	"time"

	"github.com/kmsd/kmsd/internal/iam"
	"github.com/kmsd/kmsd/internal/kms"
)

// The STS operation table: everything about an operation in one
// declaration (its name, body limit, parameters and how each is audited,
// the parameters AWS has that kmsd refuses, CloudTrail's read-only mark,
// the response elements its audit record may carry, and the call).
// TestOperationTable checks it as awsjson's TestOperationTable checks the
// KMS operations. Adding an STS operation is its iam method and one entry.

// operation is one STS operation.
type operation struct {
	name string
	// limit bounds the request body.
	limit int64
	// readOnly is CloudTrail's readOnly mark of the operation.
	readOnly bool
	// params are the parameters it accepts besides Action and Version.
	params []param
	// input is the struct its parameters fill (nil when it has none):
	// each parameter names one of its fields.
	input any
	// refused are parameters AWS has and kmsd refuses rather than ignores:
	// ignoring them would grant what the caller meant to narrow or prove.
	refused []string
	// response are the response elements its audit record may carry
	// (never a secret: the secret access key and session token of
	// AssumeRole's reply are not among them).
	response []string
	// serve runs it; audited are its response elements, of which only
	// those named by response are recorded.
	serve func(h *Handler, ctx context.Context, c kms.Caller, req *Request, requestID string) (body []byte, audited map[string]any, err error)
}

// param is one Query parameter of an operation.
type param struct {
	name string
	// audit is its name in the audit record's requestParameters
	// (CloudTrail's lowerCamel), "" when it is not recorded.
	audit string
	// integer: recorded as a number (when it parses as one).
	integer bool
}

// auditTextLimit bounds a text parameter in the audit record (a session
// policy is at most 2048 characters).
const auditTextLimit = 2048

var operations = []*operation{
	{
		name:     "GetCallerIdentity",
		limit:    1 << 10, // Action and Version only
		readOnly: true,
		serve:    (*Handler).getCallerIdentity,
	},
	{
		name: "AssumeRole",
		// A session policy of 2048 characters, percent-encoded, and the
		// other parameters.
		limit:    16 << 10,
		readOnly: true,
		input:    iam.AssumeRoleInput{},
		params: []param{
			{name: "RoleArn", audit: "roleArn"},
			{name: "RoleSessionName", audit: "roleSessionName"},
			{name: "DurationSeconds", audit: "durationSeconds", integer: true},
			{name: "Policy", audit: "policy"}, // not secret; CloudTrail records it
			{name: "ExternalId", audit: "externalId"},
		},
		refused:  []string{"SerialNumber", "TokenCode", "SourceIdentity", "TransitiveTagKeys", "Tags", "PolicyArns", "ProvidedContexts"},
		response: []string{"credentials", "assumedRoleUser", "packedPolicySize"},
		serve:    (*Handler).assumeRole,
	},
}

// operationNamed returns the operation of action, nil when none.
func operationNamed(action string) *operation {
	for _, o := range operations {
		if o.name == action {
			return o
		}
	}
	return nil
}

// BodyLimit is the largest body any STS operation accepts: the server
// reads at most this much before the body names its operation, whose own
// limit Parse then applies.
func BodyLimit() int64 {
	var n int64
	for _, o := range operations {
		n = max(n, o.limit)
	}
	return n
}

func (o *operation) accepts(name string) bool {
	return slices.ContainsFunc(o.params, func(p param) bool { return p.name == name })
}

func (h *Handler) getCallerIdentity(_ context.Context, caller kms.Caller, _ *Request, requestID string) ([]byte, map[string]any, error) {
	userID := caller.Account
	if caller.Identity != nil && caller.Identity.UserID != "" {
		userID = caller.Identity.UserID
	}
	return marshal(getCallerIdentityResponse{Xmlns: Namespace,
		Result:   getCallerIdentityResult{Arn: caller.ARN, UserID: userID, Account: caller.Account},
		Metadata: metadata{RequestID: requestID}}), nil, nil
}

func (h *Handler) assumeRole(ctx context.Context, caller kms.Caller, req *Request, requestID string) ([]byte, map[string]any, error) {
	in, err := assumeRoleInput(req.params)
	if err != nil {
		return nil, nil, err
	}
	out, err := h.IAM.AssumeRole(ctx, caller, in)
	if err != nil {
		return nil, nil, err
	}
	res := assumeRoleResult{
		User: assumedRoleUser{ID: out.AssumedRoleID, Arn: out.AssumedRoleARN},
		Credentials: credentials{AccessKeyID: out.Credentials.AccessKeyID, SecretAccessKey: out.Credentials.SecretAccessKey,
			SessionToken: out.Credentials.SessionToken, Expiration: out.Credentials.Expiration.UTC().Format(time.RFC3339)},
		PackedPolicySize: out.PackedPolicySize,
	}
	audited := map[string]any{
		"credentials":     map[string]any{"accessKeyId": out.Credentials.AccessKeyID, "expiration": res.Credentials.Expiration},
		"assumedRoleUser": map[string]any{"assumedRoleId": out.AssumedRoleID, "arn": out.AssumedRoleARN},
	}
	if out.PackedPolicySize != nil {
		audited["packedPolicySize"] = *out.PackedPolicySize
	}
	// body holds the secret access key and the session token: the server
	// writes it out and clears it, and never logs or audits it.
	return marshal(assumeRoleResponse{Xmlns: Namespace, Result: res, Metadata: metadata{RequestID: requestID}}), audited, nil
}
