package awsjson

import (
	"context"
	"errors"
	"reflect"

	"github.com/kmsd/kmsd/internal/kms"
)

// Body size limits. KMS payloads are small: the largest ordinary request is
// a 6144-byte ciphertext (8 KiB of base64) with two encryption contexts.
// Key policies may be up to 32 KiB, and more once JSON-escaped.
const (
	DefaultBodyLimit = 64 << 10
	PolicyBodyLimit  = 512 << 10
)

// opSpec declares one operation: everything the layers above kms need to
// serve it (operations.go holds one per operation).
type opSpec[In, Out any] struct {
	Name  string // the operation, as X-Amz-Target names it after "TrentService."
	Limit int64  // the largest request body accepted
	// ReadOnly is CloudTrail's readOnly: the operation changes no state (the
	// cryptographic ones only compute). Its response is never audited.
	ReadOnly bool
	// Validate checks the model constraints of a request.
	Validate func(*validator, *In)
	// Authorize is the operation's authorization rule, checked after
	// validation and before Call; without one every request is refused.
	Authorize *kms.Rule[In]
	// Call runs the operation.
	Call func(*kms.Service, context.Context, kms.Caller, *In) (Out, error)
	// Wire converts the output to the response's wire shape; nil: the
	// output is the shape.
	Wire func(Out) any
	// Audit and AuditResponse are the request and response members an
	// audit record may carry (an allow-list: a member not named here is
	// never copied). Secrets — plaintext, ciphertext, messages, signatures,
	// MACs, public keys, import material, grant tokens, KeyStorePassword —
	// are never named. Response members are recorded for operations that
	// are not ReadOnly only.
	Audit, AuditResponse []string
	// ZeroIn and ZeroOut clear the secrets a request or a response holds
	// (plaintext, data keys, shared secrets) once they are no longer
	// needed: the request after the operation, the response once encoded.
	ZeroIn  func(*In)
	ZeroOut func(Out)
}

// operation is an opSpec with its types erased.
type operation struct {
	name          string
	limit         int64
	readOnly      bool
	audit         members
	auditResponse members
	serve         func(svc *kms.Service, ctx context.Context, c kms.Caller, body []byte) ([]byte, error)

	// What the table test (operations_test.go) checks of the declaration.
	inType, outType           reflect.Type // *In and Out
	validates, calls          bool
	authzOp                   string // the operation of the authorization rule; "" when none
	auditNames, responseNames []string
	zeroIn, zeroOut           func(any) // nil when the operation zeroes nothing
}

// op type-erases an operation's declaration.
func op[In, Out any](s opSpec[In, Out]) *operation {
	o := &operation{
		name: s.Name, limit: s.Limit, readOnly: s.ReadOnly,
		audit: newMembers(s.Audit), auditResponse: newMembers(s.AuditResponse),
		inType: reflect.TypeFor[*In](), outType: reflect.TypeFor[Out](),
		validates: s.Validate != nil, calls: s.Call != nil,
		auditNames: s.Audit, responseNames: s.AuditResponse,
	}
	if s.Authorize != nil {
		o.authzOp = s.Authorize.Operation()
	}
	if s.ZeroIn != nil {
		o.zeroIn = func(in any) { s.ZeroIn(in.(*In)) }
	}
	if s.ZeroOut != nil {
		o.zeroOut = func(out any) { s.ZeroOut(out.(Out)) }
	}
	o.serve = func(svc *kms.Service, ctx context.Context, c kms.Caller, body []byte) ([]byte, error) {
		if s.Validate == nil || s.Authorize == nil || s.Call == nil {
			// An operation must never run unvalidated or unauthorized.
			return nil, errors.New("awsjson: operation " + s.Name + " is declared without its validation, authorization or call")
		}
		in := new(In)
		if s.ZeroIn != nil {
			defer s.ZeroIn(in)
		}
		if err := decode(body, in); err != nil {
			return nil, err
		}
		var v validator
		s.Validate(&v, in)
		if err := v.err(); err != nil {
			return nil, err
		}
		// The operation runs with the Caller the rule returns: it acts on
		// the keys that were authorized (an alias moved since changes
		// nothing).
		c, err := s.Authorize.Check(ctx, svc, c, in)
		if err != nil {
			return nil, err
		}
		out, err := s.Call(svc, ctx, c, in)
		if err != nil {
			return nil, err
		}
		if s.ZeroOut != nil {
			defer s.ZeroOut(out)
		}
		if s.Wire != nil {
			return encode(s.Wire(out))
		}
		return encode(out)
	}
	return o
}

// none is the output of an operation that returns only an error: its
// response is {}.
type none struct{}

// noOutput adapts an operation that returns only an error.
func noOutput[In any](f func(*kms.Service, context.Context, kms.Caller, *In) error) func(*kms.Service, context.Context, kms.Caller, *In) (none, error) {
	return func(svc *kms.Service, ctx context.Context, c kms.Caller, in *In) (none, error) {
		return none{}, f(svc, ctx, c, in)
	}
}

// Route is one operation of a service.
type Route struct {
	Name      string
	BodyLimit int64
	op        *operation
	svc       *kms.Service
}

// Serve decodes and validates a request body, authorizes it, runs the
// operation and returns the encoded response body. Errors are
// *awserr.Error for every client mistake; anything else is an internal
// fault.
func (r *Route) Serve(ctx context.Context, c kms.Caller, body []byte) ([]byte, error) {
	return r.op.serve(r.svc, ctx, c, body)
}

// ReadOnly reports whether CloudTrail marks the operation readOnly.
func (r *Route) ReadOnly() bool { return r.op.readOnly }

// AuditedRequest returns the members of a request body that its audit
// record carries, with CloudTrail's names; nil when there are none or the
// body is not a JSON object. The values are json.RawMessage copies.
func (r *Route) AuditedRequest(body []byte) map[string]any { return r.op.audit.of(body) }

// AuditedResponse returns the members of a response body that its audit
// record carries; nil when there are none. Records of read-only operations
// carry no response members (their operations declare none).
func (r *Route) AuditedResponse(body []byte) map[string]any { return r.op.auditResponse.of(body) }

// Routes returns the operations of svc by name (the part of X-Amz-Target
// after "TrentService.").
func Routes(svc *kms.Service) map[string]*Route {
	m := make(map[string]*Route, len(operations))
	for _, o := range operations {
		m[o.name] = &Route{Name: o.name, BodyLimit: o.limit, op: o, svc: svc}
	}
	return m
}
