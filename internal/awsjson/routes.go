package awsjson

import (
	"context"

	"github.com/kmsd/kmsd/internal/kms"
)

// Body size limits. KMS payloads are small: the largest ordinary request is
// a 6144-byte ciphertext (8 KiB of base64) with two encryption contexts.
// Key policies may be up to 32 KiB, and more once JSON-escaped.
const (
	DefaultBodyLimit = 64 << 10
	PolicyBodyLimit  = 512 << 10
)

// Route is one operation: how large its body may be and how it is served.
type Route struct {
	Name      string
	BodyLimit int64
	serve     func(ctx context.Context, c kms.Caller, body []byte) (any, error)
	// authorize is the gate every request passes after validation
	// (kms.Service.Authorize); a Route without one refuses every request.
	authorize func(ctx context.Context, c kms.Caller, op string, in any) (kms.Caller, error)
	newInput  func() any // a new, empty input of the operation (for tests)
}

// Serve decodes and validates a request body, runs the operation and
// returns the encoded response body. Errors are *awserr.Error for every
// client mistake; anything else is an internal fault.
func (r *Route) Serve(ctx context.Context, c kms.Caller, body []byte) ([]byte, error) {
	out, err := r.serve(ctx, c, body)
	if err != nil {
		return nil, err
	}
	b, err := encode(out)
	zeroSecrets(out)
	return b, err
}

// op builds a Route from an operation's validation, its kms method and the
// conversion of its output to the wire shape (nil: the output is the shape).
func op[In, Out any](name string, limit int64, validate func(*validator, *In), call func(context.Context, kms.Caller, *In) (Out, error), wire func(Out) any) *Route {
	r := &Route{Name: name, BodyLimit: limit, newInput: func() any { return new(In) }}
	r.serve = func(ctx context.Context, c kms.Caller, body []byte) (any, error) {
		in := new(In)
		if err := decode(body, in); err != nil {
			return nil, err
		}
		defer zeroSecrets(in)
		var v validator
		validate(&v, in)
		if err := v.err(); err != nil {
			return nil, err
		}
		// The operation runs with the Caller Authorize returns: it acts on
		// the keys that were authorized (an alias moved since changes
		// nothing).
		c, err := r.authorizeRequest(ctx, c, in)
		if err != nil {
			return nil, err
		}
		out, err := call(ctx, c, in)
		if err != nil {
			return nil, err
		}
		if wire != nil {
			return wire(out), nil
		}
		return out, nil
	}
	return r
}

// noOutput adapts an operation that returns only an error.
func noOutput[In any](f func(context.Context, kms.Caller, *In) error) func(context.Context, kms.Caller, *In) (any, error) {
	return func(ctx context.Context, c kms.Caller, in *In) (any, error) { return nil, f(ctx, c, in) }
}

// zeroSecrets clears plaintext buffers once they are no longer needed.
func zeroSecrets(v any) {
	switch x := v.(type) {
	case *kms.EncryptInput:
		clear(x.Plaintext)
	case *kms.DecryptOutput:
		clear(x.Plaintext)
	case *kms.GenerateDataKeyOutput:
		clear(x.Plaintext)
	case *kms.GenerateRandomOutput:
		clear(x.Plaintext)
	case *kms.GenerateDataKeyPairOutput:
		clear(x.PrivateKeyPlaintext)
	case *kms.DeriveSharedSecretOutput:
		clear(x.SharedSecret)
	case *kms.EncapsulateOutput:
		clear(x.SharedSecret)
	case *kms.DecapsulateOutput:
		clear(x.SharedSecret)
	}
}

// Routes returns the operations of svc by name (the part of X-Amz-Target
// after "TrentService.").
func Routes(svc *kms.Service) map[string]*Route {
	rs := []*Route{
		op("CreateKey", PolicyBodyLimit, validateCreateKey, svc.CreateKey, wireCreateKey),
		op("DescribeKey", DefaultBodyLimit, validateKeyIDInput, svc.DescribeKey, wireDescribeKey),
		op("ListKeys", DefaultBodyLimit, func(v *validator, in *kms.ListInput) { v.list(in.Limit, in.Marker) }, svc.ListKeys, wireListKeys),
		op("UpdateKeyDescription", DefaultBodyLimit, validateUpdateKeyDescription, noOutput(svc.UpdateKeyDescription), nil),
		op("EnableKey", DefaultBodyLimit, validateKeyIDInput, noOutput(svc.EnableKey), nil),
		op("DisableKey", DefaultBodyLimit, validateKeyIDInput, noOutput(svc.DisableKey), nil),
		op("ScheduleKeyDeletion", DefaultBodyLimit, validateScheduleKeyDeletion, svc.ScheduleKeyDeletion, wireScheduleKeyDeletion),
		op("CancelKeyDeletion", DefaultBodyLimit, validateKeyIDInput, svc.CancelKeyDeletion, nil),
		op("Encrypt", DefaultBodyLimit, validateEncrypt, svc.Encrypt, nil),
		op("Decrypt", DefaultBodyLimit, validateDecrypt, svc.Decrypt, nil),
		op("ReEncrypt", DefaultBodyLimit, validateReEncrypt, svc.ReEncrypt, nil),
		op("GenerateDataKey", DefaultBodyLimit, validateGenerateDataKey, svc.GenerateDataKey, nil),
		op("GenerateDataKeyWithoutPlaintext", DefaultBodyLimit, validateGenerateDataKey, svc.GenerateDataKeyWithoutPlaintext, wireWithoutPlaintext),
		op("GenerateRandom", DefaultBodyLimit, validateGenerateRandom, svc.GenerateRandom, nil),
		op("Sign", DefaultBodyLimit, validateSign, svc.Sign, nil),
		op("Verify", DefaultBodyLimit, validateVerify, svc.Verify, nil),
		op("GetPublicKey", DefaultBodyLimit, validateKeyIDInput, svc.GetPublicKey, wireGetPublicKey),
		op("GenerateDataKeyPair", DefaultBodyLimit, validateGenerateDataKeyPair, svc.GenerateDataKeyPair, nil),
		op("GenerateDataKeyPairWithoutPlaintext", DefaultBodyLimit, validateGenerateDataKeyPair, svc.GenerateDataKeyPairWithoutPlaintext, wireDataKeyPairWithoutPlaintext),
		op("GenerateMac", DefaultBodyLimit, validateGenerateMac, svc.GenerateMac, nil),
		op("VerifyMac", DefaultBodyLimit, validateVerifyMac, svc.VerifyMac, nil),
		op("DeriveSharedSecret", DefaultBodyLimit, validateDeriveSharedSecret, svc.DeriveSharedSecret, nil),
		op("Encapsulate", DefaultBodyLimit, validateEncapsulate, svc.Encapsulate, nil),
		op("Decapsulate", DefaultBodyLimit, validateDecapsulate, svc.Decapsulate, nil),
		op("CreateAlias", DefaultBodyLimit, validateAlias, noOutput(svc.CreateAlias), nil),
		op("UpdateAlias", DefaultBodyLimit, validateAlias, noOutput(svc.UpdateAlias), nil),
		op("DeleteAlias", DefaultBodyLimit, validateDeleteAlias, noOutput(svc.DeleteAlias), nil),
		op("ListAliases", DefaultBodyLimit, validateListAliases, svc.ListAliases, wireListAliases),
		op("TagResource", DefaultBodyLimit, validateTagResource, noOutput(svc.TagResource), nil),
		op("UntagResource", DefaultBodyLimit, validateUntagResource, noOutput(svc.UntagResource), nil),
		op("ListResourceTags", DefaultBodyLimit, validateListResourceTags, svc.ListResourceTags, wireListResourceTags),
	}
	rs = append(rs, authzRoutes(svc)...)
	rs = append(rs, rotationRoutes(svc)...)
	rs = append(rs, importRoutes(svc)...)
	rs = append(rs, customKeyStoreRoutes(svc)...)
	m := make(map[string]*Route, len(rs))
	for _, r := range rs {
		r.authorize = svc.Authorize
		m[r.Name] = r
	}
	return m
}
