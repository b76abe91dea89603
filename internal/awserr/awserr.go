// Package awserr defines the error every kmsd layer returns to a client: an
// AWS exception name and a message, exactly as AWS KMS puts them on the wire.
//
// It is a leaf package so that sigv4, iam, kms and awsjson can all produce
// errors that the server maps to the wire in one place.
package awserr

import (
	"errors"
	"fmt"
)

// Error is an AWS exception. Code is the exception's short name
// ("NotFoundException"); Message is shown to the client and must never
// contain key material, plaintext or secrets.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Is reports whether target is an *Error with the same Code, so that
// errors.Is(err, awserr.New(awserr.NotFound, "")) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// New returns an *Error with the given code and message.
func New(code, msg string) *Error { return &Error{Code: code, Message: msg} }

// Newf returns an *Error with the given code and a formatted message.
func Newf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the exception name of err, or "" when err is not (and does
// not wrap) an *Error.
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// HTTPStatus is the status AWS KMS sends with code: 5xx for server faults
// (clients retry those), 412 for a successful dry run, 400 for every client
// mistake.
func HTTPStatus(code string) int {
	switch code {
	case KMSInternal, KeyUnavailable, InternalFailure:
		return 500
	case DependencyTimeout, ServiceUnavailable:
		return 503
	case DryRunOperation:
		return 412
	default:
		return 400
	}
}

// Exception names used by kmsd. They are case-sensitive on the wire: the Go
// SDK matches them byte for byte.
const (
	AccessDenied            = "AccessDeniedException"
	AlreadyExists           = "AlreadyExistsException"
	Conflict                = "ConflictException"
	DependencyTimeout       = "DependencyTimeoutException"
	Disabled                = "DisabledException"
	DryRunOperation         = "DryRunOperationException"
	ExpiredImportToken      = "ExpiredImportTokenException"
	IncorrectKey            = "IncorrectKeyException"
	IncorrectKeyMaterial    = "IncorrectKeyMaterialException"
	InvalidAliasName        = "InvalidAliasNameException"
	InvalidArn              = "InvalidArnException"
	InvalidCiphertext       = "InvalidCiphertextException"
	InvalidGrantID          = "InvalidGrantIdException"
	InvalidGrantToken       = "InvalidGrantTokenException"
	InvalidImportToken      = "InvalidImportTokenException"
	InvalidKeyUsage         = "InvalidKeyUsageException"
	InvalidMarker           = "InvalidMarkerException"
	KMSInternal             = "KMSInternalException"
	KMSInvalidMac           = "KMSInvalidMacException"
	KMSInvalidSignature     = "KMSInvalidSignatureException"
	KMSInvalidState         = "KMSInvalidStateException"
	KeyUnavailable          = "KeyUnavailableException"
	LimitExceeded           = "LimitExceededException"
	MalformedPolicyDocument = "MalformedPolicyDocumentException"
	NotFound                = "NotFoundException"
	// NotAuthorized is AWS's common error for a request no permission
	// can allow (an alias under the reserved prefix alias/aws/).
	NotAuthorized            = "NotAuthorizedException"
	Tag                      = "TagException"
	UnsupportedOperation     = "UnsupportedOperationException"
	Validation               = "ValidationException"
	Serialization            = "SerializationException"
	UnknownOperation         = "UnknownOperationException"
	UnrecognizedClient       = "UnrecognizedClientException"
	InvalidSignature         = "InvalidSignatureException"
	IncompleteSignature      = "IncompleteSignatureException"
	MissingAuthenticationTok = "MissingAuthenticationTokenException"
	ExpiredToken             = "ExpiredTokenException"
	InternalFailure          = "InternalFailure"
	ServiceUnavailable       = "ServiceUnavailable"
)

// Exceptions of custom key stores (AWS CloudHSM key stores).
const (
	CustomKeyStoreNotFound       = "CustomKeyStoreNotFoundException"
	CustomKeyStoreInvalidState   = "CustomKeyStoreInvalidStateException"
	CustomKeyStoreNameInUse      = "CustomKeyStoreNameInUseException"
	CustomKeyStoreHasCMKs        = "CustomKeyStoreHasCMKsException"
	CloudHsmClusterNotFound      = "CloudHsmClusterNotFoundException"
	CloudHsmClusterInUse         = "CloudHsmClusterInUseException"
	CloudHsmClusterNotActive     = "CloudHsmClusterNotActiveException"
	CloudHsmClusterInvalidConfig = "CloudHsmClusterInvalidConfigurationException"
	CloudHsmClusterNotRelated    = "CloudHsmClusterNotRelatedException"
	IncorrectTrustAnchor         = "IncorrectTrustAnchorException"
)

// Violation is one failed constraint of a request member, reported the way
// AWS's request validation reports it.
type Violation struct {
	Field string // member path in camelCase, e.g. "keyId" or "tags.1.member.tagKey"
	// Value is the offending value as the client sent it. Null means the
	// member was absent. Sensitive members (plaintext, blobs) are reported
	// without their value.
	Value      string
	Null       bool
	Sensitive  bool
	Constraint string // e.g. "Member must have length less than or equal to 2048"
}

func (v Violation) String() string {
	switch {
	case v.Null:
		return fmt.Sprintf("Value null at '%s' failed to satisfy constraint: %s", v.Field, v.Constraint)
	case v.Sensitive:
		return fmt.Sprintf("Value at '%s' failed to satisfy constraint: %s", v.Field, v.Constraint)
	default:
		return fmt.Sprintf("Value '%s' at '%s' failed to satisfy constraint: %s", v.Value, v.Field, v.Constraint)
	}
}

// Invalid returns the ValidationException for a list of violations:
// "1 validation error detected: Value ” at 'keyId' failed to satisfy
// constraint: Member must have length greater than or equal to 1".
func Invalid(vs ...Violation) *Error {
	noun := "errors"
	if len(vs) == 1 {
		noun = "error"
	}
	msg := fmt.Sprintf("%d validation %s detected: ", len(vs), noun)
	for i, v := range vs {
		if i > 0 {
			msg += "; "
		}
		msg += v.String()
	}
	return New(Validation, msg)
}
