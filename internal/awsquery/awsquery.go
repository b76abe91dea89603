// Package awsquery is the wire of the STS operations kmsd serves beside
// AWS KMS, in the AWS Query protocol STS speaks: a form-encoded POST
// (Action=AssumeRole&Version=2011-06-15&RoleArn=…), signed with SigV4 for
// the service "sts", answered in XML (<AssumeRoleResponse
// xmlns="https://sts.amazonaws.com/doc/2011-06-15/">…), errors as
// <ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>….
//
// It serves GetCallerIdentity and AssumeRole (package iam issues the
// temporary credentials). It is imported by package server only, as awsjson
// is.
package awsquery

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/iam"
	"github.com/kmsd/kmsd/internal/kms"
)

// Namespace is the XML namespace of STS responses.
const Namespace = "https://sts.amazonaws.com/doc/2011-06-15/"

// Version is the one STS API version.
const Version = "2011-06-15"

// ContentType is the content type of every response.
const ContentType = "text/xml"

// EventSource is the audit records' eventSource of STS requests.
const EventSource = "sts.amazonaws.com"

// Is reports whether r is an AWS Query request: a POST with a form body
// and no X-Amz-Target (which names a KMS operation).
func Is(r *http.Request) bool {
	if r.Method != http.MethodPost || r.Header.Get("X-Amz-Target") != "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/x-www-form-urlencoded"
}

// Request is a parsed Query request.
type Request struct {
	Action string
	op     *operation // nil when Action is not served
	params url.Values
}

// Parse decodes a request body. It fails with an error to send (an
// *awserr.Error) for a body that is not a form, a parameter given twice,
// a missing or unknown Version or Action. The Request is returned, with
// what was parsed, even on error, for the audit record.
func Parse(body []byte) (*Request, error) {
	req := &Request{}
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return req, awserr.New(awserr.Validation, "The request body is not a valid form (application/x-www-form-urlencoded).")
	}
	for k, v := range vals {
		if len(v) > 1 {
			return req, awserr.Newf(awserr.Validation, "Parameter %s is given %d times.", echo(k), len(v))
		}
	}
	req.params = vals
	req.Action = vals.Get("Action")
	switch {
	case req.Action == "":
		return req, awserr.New(errMissingAction, "Missing Action")
	case vals.Get("Version") == "":
		return req, awserr.New(errMissingParameter, "The request must contain the parameter Version.")
	case vals.Get("Version") != Version:
		return req, awserr.Newf(errInvalidAction, "Could not find operation %s for version %s", echo(req.Action), echo(vals.Get("Version")))
	}
	op := operationNamed(req.Action)
	if op == nil {
		return req, awserr.Newf(errInvalidAction, "Could not find operation %s for version %s", echo(req.Action), Version)
	}
	req.op = op
	if int64(len(body)) > op.limit {
		return req, awserr.Newf(awserr.Validation, "The request body is larger than the %d bytes this operation accepts.", op.limit)
	}
	for k := range vals {
		if k == "Action" || k == "Version" || op.accepts(k) {
			continue
		}
		if slices.Contains(op.refused, k) || strings.Contains(k, ".member.") {
			return req, awserr.Newf(awserr.Validation, "kmsd does not support the %s parameter of %s.", echo(k), req.Action)
		}
		return req, awserr.Newf(awserr.Validation, "%s has no parameter %s.", req.Action, echo(k))
	}
	return req, nil
}

// Known reports whether action is an operation served here (for metric
// labels, which must not take any value a client sends).
func Known(action string) bool { return operationNamed(action) != nil }

// Error codes of the Query protocol that KMS does not have.
const (
	errMissingAction    = "MissingAction"
	errMissingParameter = "MissingParameter"
	errInvalidAction    = "InvalidAction"
)

// ReadOnly reports whether the operation changes nothing (CloudTrail's
// readOnly, from the operation table). A request for no served operation
// changed nothing.
func (r *Request) ReadOnly() bool { return r.op == nil || r.op.readOnly }

// Audited returns the request parameters an audit record may carry, as the
// operation table names them: never a secret (STS requests carry none; the
// session policy is not secret and is recorded, as CloudTrail does).
func (r *Request) Audited() map[string]any {
	if r == nil || r.op == nil || r.params == nil {
		return nil
	}
	var m map[string]any
	for _, p := range r.op.params {
		v, ok := r.params[p.name]
		if !ok || p.audit == "" {
			continue
		}
		if m == nil {
			m = map[string]any{}
		}
		if !p.integer {
			m[p.audit] = truncate(v[0], auditTextLimit)
		} else if n, err := strconv.ParseInt(v[0], 10, 64); err == nil {
			m[p.audit] = n
		}
	}
	return m
}

// Handler serves the STS operations with the principals and temporary
// credentials of an iam.Directory.
type Handler struct {
	IAM *iam.Directory
}

// Serve runs an authenticated request and returns the response body and
// the response elements its audit record may carry (never the secret
// access key nor the session token).
func (h *Handler) Serve(ctx context.Context, caller kms.Caller, req *Request, requestID string) (body []byte, audited map[string]any, err error) {
	op := operationNamed(req.Action)
	if op == nil {
		return nil, nil, awserr.Newf(errInvalidAction, "Could not find operation %s for version %s", echo(req.Action), Version)
	}
	body, audited, err = op.serve(h, ctx, caller, req, requestID)
	// Only the elements the table declares are recorded.
	for k := range audited {
		if !slices.Contains(op.response, k) {
			delete(audited, k)
		}
	}
	return body, audited, err
}

// assumeRoleInput reads AssumeRole's parameters; DurationSeconds must be
// an integer.
func assumeRoleInput(p url.Values) (iam.AssumeRoleInput, error) {
	in := iam.AssumeRoleInput{RoleArn: p.Get("RoleArn"), RoleSessionName: p.Get("RoleSessionName")}
	if v, ok := p["DurationSeconds"]; ok {
		n, err := strconv.ParseInt(v[0], 10, 64)
		if err != nil {
			return in, awserr.Invalid(awserr.Violation{Field: "durationSeconds", Value: v[0], Constraint: "Member must be an integer"})
		}
		in.DurationSeconds = &n
	}
	if v, ok := p["Policy"]; ok {
		in.Policy = &v[0]
	}
	if v, ok := p["ExternalId"]; ok {
		if len(v[0]) < 2 || len(v[0]) > 1224 {
			return in, awserr.Invalid(awserr.Violation{Field: "externalId", Value: v[0], Constraint: "Member must have length greater than or equal to 2 and less than or equal to 1224"})
		}
		in.ExternalID = &v[0]
	}
	return in, nil
}

type metadata struct {
	RequestID string `xml:"RequestId"`
}

type getCallerIdentityResponse struct {
	XMLName  xml.Name                `xml:"GetCallerIdentityResponse"`
	Xmlns    string                  `xml:"xmlns,attr"`
	Result   getCallerIdentityResult `xml:"GetCallerIdentityResult"`
	Metadata metadata                `xml:"ResponseMetadata"`
}

type getCallerIdentityResult struct {
	Arn     string `xml:"Arn"`
	UserID  string `xml:"UserId"`
	Account string `xml:"Account"`
}

type assumeRoleResponse struct {
	XMLName  xml.Name         `xml:"AssumeRoleResponse"`
	Xmlns    string           `xml:"xmlns,attr"`
	Result   assumeRoleResult `xml:"AssumeRoleResult"`
	Metadata metadata         `xml:"ResponseMetadata"`
}

type assumeRoleResult struct {
	User             assumedRoleUser `xml:"AssumedRoleUser"`
	Credentials      credentials     `xml:"Credentials"`
	PackedPolicySize *int            `xml:"PackedPolicySize,omitempty"`
}

type assumedRoleUser struct {
	ID  string `xml:"AssumedRoleId"`
	Arn string `xml:"Arn"`
}

type credentials struct {
	AccessKeyID     string `xml:"AccessKeyId"`
	SecretAccessKey string `xml:"SecretAccessKey"`
	SessionToken    string `xml:"SessionToken"`
	Expiration      string `xml:"Expiration"`
}

type errorResponse struct {
	XMLName   xml.Name  `xml:"ErrorResponse"`
	Xmlns     string    `xml:"xmlns,attr"`
	Error     errorBody `xml:"Error"`
	RequestID string    `xml:"RequestId"`
}

type errorBody struct {
	Type    string `xml:"Type"`
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

func marshal(v any) []byte {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	// The values are strings the server made or checked; encoding
	// cannot fail.
	if err := xml.NewEncoder(&b).Encode(v); err != nil {
		panic("awsquery: " + err.Error())
	}
	return b.Bytes()
}

// stsCodes maps the exceptions of the layers below (KMS names) to STS's
// error codes and HTTP statuses.
var stsCodes = map[string]struct {
	code   string
	status int
}{
	awserr.AccessDenied:             {"AccessDenied", http.StatusForbidden},
	awserr.Validation:               {"ValidationError", http.StatusBadRequest},
	awserr.MalformedPolicyDocument:  {"MalformedPolicyDocument", http.StatusBadRequest},
	iam.PackedPolicyTooLarge:        {"PackedPolicyTooLarge", http.StatusBadRequest},
	awserr.ExpiredToken:             {"ExpiredToken", http.StatusBadRequest},
	awserr.UnrecognizedClient:       {"InvalidClientTokenId", http.StatusForbidden},
	awserr.InvalidSignature:         {"SignatureDoesNotMatch", http.StatusForbidden},
	awserr.IncompleteSignature:      {"IncompleteSignature", http.StatusBadRequest},
	awserr.MissingAuthenticationTok: {"MissingAuthenticationToken", http.StatusForbidden},
	awserr.Serialization:            {"MalformedQueryString", http.StatusBadRequest},
	awserr.DependencyTimeout:        {"ServiceUnavailable", http.StatusServiceUnavailable},
	awserr.ServiceUnavailable:       {"ServiceUnavailable", http.StatusServiceUnavailable},
	errMissingAction:                {errMissingAction, http.StatusBadRequest},
	errMissingParameter:             {errMissingParameter, http.StatusBadRequest},
	errInvalidAction:                {errInvalidAction, http.StatusBadRequest},
}

// Code returns the STS error code of err ("InternalFailure" for a server
// fault), for the audit record and metrics.
func Code(err error) string {
	code, _, _ := classify(err)
	return code
}

func classify(err error) (code string, status int, msg string) {
	var e *awserr.Error
	if !errors.As(err, &e) {
		return "InternalFailure", http.StatusInternalServerError, "An internal error occurred."
	}
	if c, ok := stsCodes[e.Code]; ok {
		return c.code, c.status, e.Message
	}
	if awserr.HTTPStatus(e.Code) >= 500 {
		return "InternalFailure", http.StatusInternalServerError, "An internal error occurred."
	}
	return strings.TrimSuffix(e.Code, "Exception"), http.StatusBadRequest, e.Message
}

// ErrorResponse returns the HTTP status and XML body for err, and whether
// it is an internal fault (to be logged; its text is never sent).
func ErrorResponse(err error, requestID string) (status int, body []byte, internal bool) {
	code, status, msg := classify(err)
	typ := "Sender"
	if status >= 500 {
		typ = "Receiver"
	}
	return status, marshal(errorResponse{Xmlns: Namespace, Error: errorBody{Type: typ, Code: code, Message: msg}, RequestID: requestID}),
		code == "InternalFailure"
}

// echo bounds a client-supplied value repeated in a message.
func echo(s string) string { return truncate(s, 128) }

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
