package policy

import (
	"errors"
	"fmt"
	"strings"
)

// Policy language versions.
const (
	Version2012 = "2012-10-17" // current: policy variables are substituted
	Version2008 = "2008-10-17" // legacy, and the default: ${...} is literal text
)

// Kind says which sort of policy a document is, which decides whether its
// statements must or must not name principals.
type Kind uint8

const (
	// ResourcePolicy is a policy attached to a resource, such as a key
	// policy or a bucket policy: every statement needs Principal or
	// NotPrincipal. A statement without Action or Resource is accepted and
	// never applies (as KMS does for key policies).
	ResourcePolicy Kind = iota + 1
	// IdentityPolicy is a policy attached to a user or role: Principal and
	// NotPrincipal are refused, Action/NotAction and Resource/NotResource
	// are required, and Sids must be unique.
	IdentityPolicy
	// TrustPolicy is a role's trust policy (AssumeRolePolicyDocument): a
	// resource policy of the role itself, so every statement needs
	// Principal or NotPrincipal and Action or NotAction, and Resource and
	// NotResource are refused (IAM: "Has prohibited field Resource"). Its
	// statements apply whatever Request.Resource is.
	TrustPolicy
)

func (k Kind) String() string {
	switch k {
	case ResourcePolicy:
		return "resource policy"
	case IdentityPolicy:
		return "identity policy"
	case TrustPolicy:
		return "trust policy"
	}
	return fmt.Sprintf("Kind(%d)", k)
}

// SyntaxError is returned by Parse for a document that is not a valid
// policy. Its message names the statement (index and Sid) and the element
// at fault; callers serving the KMS API return it as
// MalformedPolicyDocumentException.
type SyntaxError struct {
	// Statement is the 0-based index of the offending statement in the
	// Statement list, or -1 when the problem is outside any statement.
	Statement int
	// Sid is that statement's Sid, when it has one.
	Sid string
	// Msg describes the problem, starting with the element path, such as
	// `Condition.StringEquals.kms:CallerAccount: ...`.
	Msg string
}

func (e *SyntaxError) Error() string {
	var b strings.Builder
	b.WriteString("malformed policy document: ")
	if e.Statement >= 0 {
		fmt.Fprintf(&b, "Statement[%d]", e.Statement)
		if e.Sid != "" {
			fmt.Fprintf(&b, " (Sid %q)", e.Sid)
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// errorf makes the plain errors the compilers return; Parse wraps them in a
// SyntaxError that locates the statement.
func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// Policy is a compiled policy document. It is immutable and safe for
// concurrent use.
type Policy struct {
	version string
	id      string
	kind    Kind
	stmts   []statement
}

// Version returns the document's policy language version (Version2008 when
// the document has none).
func (p *Policy) Version() string { return p.version }

// ID returns the document's Id element, or "".
func (p *Policy) ID() string { return p.id }

// Kind returns the kind the document was parsed as.
func (p *Policy) Kind() Kind { return p.kind }

// NumStatements returns the number of statements.
func (p *Policy) NumStatements() int { return len(p.stmts) }

// Sid returns the Sid of statement i (0 <= i < NumStatements()), or "".
func (p *Policy) Sid(i int) string { return p.stmts[i].sid }

type statement struct {
	sid  string
	deny bool

	principal    *principalSet // nil: no Principal element
	notPrincipal *principalSet

	actions    []pattern
	notAction  bool
	resources  []pattern
	notRes     bool
	inert      bool // no Action/NotAction or no Resource/NotResource: never applies
	anyRes     bool // a trust policy's statement: no resource to match
	conditions []condition
}

// Parse compiles a policy document of the given kind. Every problem is a
// *SyntaxError.
//
// The grammar is strict: only the elements Version, Id and Statement at the
// top level and Sid, Effect, Principal, NotPrincipal, Action, NotAction,
// Resource, NotResource and Condition in a statement (names are
// case-sensitive); no duplicate keys anywhere; strings where strings belong.
func Parse(doc []byte, kind Kind) (*Policy, error) {
	if kind != ResourcePolicy && kind != IdentityPolicy && kind != TrustPolicy {
		return nil, fmt.Errorf("policy: Parse called with invalid kind %d", kind)
	}
	root, err := decodeJSON(doc)
	if err != nil {
		return nil, &SyntaxError{Statement: -1, Msg: err.Error()}
	}
	docErr := func(format string, args ...any) error {
		return &SyntaxError{Statement: -1, Msg: fmt.Sprintf(format, args...)}
	}
	if root.kind != nodeObject {
		return nil, docErr("the policy must be a JSON object, not %s", root.kindName())
	}
	p := &Policy{version: Version2008, kind: kind}
	var stmtNode *node
	for i, k := range root.keys {
		v := root.values[i]
		switch k {
		case "Version":
			if v.kind != nodeString {
				return nil, docErr("Version must be a string, not %s", v.kindName())
			}
			if v.str != Version2012 && v.str != Version2008 {
				return nil, docErr("Version: %q is not a policy language version (use %q or %q)", v.str, Version2012, Version2008)
			}
			p.version = v.str
		case "Id":
			if v.kind != nodeString {
				return nil, docErr("Id must be a string, not %s", v.kindName())
			}
			p.id = v.str
		case "Statement":
			stmtNode = v
		default:
			return nil, docErr("unknown top-level element %q (allowed: Version, Id, Statement)", k)
		}
	}
	if stmtNode == nil {
		return nil, docErr("the policy has no Statement")
	}
	var list []*node
	switch stmtNode.kind {
	case nodeObject:
		list = []*node{stmtNode}
	case nodeArray:
		list = stmtNode.values
		if len(list) == 0 {
			return nil, docErr("Statement is an empty list")
		}
	default:
		return nil, docErr("Statement must be an object or a list of objects, not %s", stmtNode.kindName())
	}
	vars := p.version == Version2012
	p.stmts = make([]statement, len(list))
	sids := map[string]int{}
	for i, n := range list {
		st := &p.stmts[i]
		if err := compileStatement(st, n, kind, vars); err != nil {
			return nil, &SyntaxError{Statement: i, Sid: st.sid, Msg: err.Error()}
		}
		if kind == IdentityPolicy && st.sid != "" {
			if j, dup := sids[st.sid]; dup {
				return nil, &SyntaxError{Statement: i, Sid: st.sid, Msg: fmt.Sprintf("Sid: %q is already the Sid of Statement[%d]; Sids must be unique", st.sid, j)}
			}
			sids[st.sid] = i
		}
	}
	return p, nil
}

func compileStatement(st *statement, n *node, kind Kind, vars bool) error {
	if n.kind != nodeObject {
		return errorf("a statement must be an object, not %s", n.kindName())
	}
	// Sid first, so that every later error can name the statement.
	for i, k := range n.keys {
		if k == "Sid" {
			v := n.values[i]
			if v.kind != nodeString {
				return errorf("Sid must be a string, not %s", v.kindName())
			}
			st.sid = v.str
		}
	}
	var effect, principal, notPrincipal, action, notAction, resource, notResource, cond *node
	for i, k := range n.keys {
		v := n.values[i]
		switch k {
		case "Sid":
		case "Effect":
			effect = v
		case "Principal":
			principal = v
		case "NotPrincipal":
			notPrincipal = v
		case "Action":
			action = v
		case "NotAction":
			notAction = v
		case "Resource":
			resource = v
		case "NotResource":
			notResource = v
		case "Condition":
			cond = v
		default:
			return errorf("unknown element %q (allowed: Sid, Effect, Principal, NotPrincipal, Action, NotAction, Resource, NotResource, Condition)", k)
		}
	}

	if effect == nil {
		return errorf("Effect is missing (use \"Allow\" or \"Deny\")")
	}
	if effect.kind != nodeString || (effect.str != "Allow" && effect.str != "Deny") {
		return errorf("Effect must be \"Allow\" or \"Deny\", not %s", describe(effect))
	}
	st.deny = effect.str == "Deny"

	var err error
	switch {
	case principal != nil && notPrincipal != nil:
		return errorf("a statement cannot have both Principal and NotPrincipal")
	case kind == IdentityPolicy && (principal != nil || notPrincipal != nil):
		return errorf("an identity policy cannot name principals (Principal/NotPrincipal): it applies to the identity it is attached to")
	case kind != IdentityPolicy && principal == nil && notPrincipal == nil:
		return errorf("Principal is missing: every statement of a resource policy must name a Principal (or NotPrincipal)")
	case principal != nil:
		if st.principal, err = compilePrincipal(principal, "Principal"); err != nil {
			return err
		}
	case notPrincipal != nil:
		if !st.deny {
			return errorf("NotPrincipal can only be used with \"Effect\": \"Deny\"")
		}
		if st.notPrincipal, err = compilePrincipal(notPrincipal, "NotPrincipal"); err != nil {
			return err
		}
	}

	switch {
	case action != nil && notAction != nil:
		return errorf("a statement cannot have both Action and NotAction")
	case action != nil:
		st.actions, err = compileActions(action, "Action")
	case notAction != nil:
		st.notAction = true
		st.actions, err = compileActions(notAction, "NotAction")
	case kind == IdentityPolicy || kind == TrustPolicy:
		return errorf("Action is missing (a statement needs Action or NotAction)")
	default:
		st.inert = true
	}
	if err != nil {
		return err
	}

	switch {
	case kind == TrustPolicy && (resource != nil || notResource != nil):
		return errorf("a trust policy cannot have Resource or NotResource: it applies to the role it is attached to")
	case kind == TrustPolicy:
		st.anyRes = true
	case resource != nil && notResource != nil:
		return errorf("a statement cannot have both Resource and NotResource")
	case resource != nil:
		st.resources, err = compileResources(resource, "Resource", vars)
	case notResource != nil:
		st.notRes = true
		st.resources, err = compileResources(notResource, "NotResource", vars)
	case kind == IdentityPolicy:
		return errorf("Resource is missing (a statement needs Resource or NotResource)")
	default:
		st.inert = true
	}
	if err != nil {
		return err
	}

	if cond != nil {
		if cond.kind != nodeObject {
			return errorf("Condition must be an object, not %s", cond.kindName())
		}
		for i, op := range cond.keys {
			cs, err := compileCondition(op, cond.values[i], vars, "Condition."+op)
			if err != nil {
				return err
			}
			st.conditions = append(st.conditions, cs...)
		}
	}
	return nil
}

func describe(n *node) string {
	if n.kind == nodeString {
		return fmt.Sprintf("%q", n.str)
	}
	return n.kindName()
}

// stringList reads a string or a non-empty list of strings.
func stringList(n *node, field string) ([]string, error) {
	switch n.kind {
	case nodeString:
		return []string{n.str}, nil
	case nodeArray:
		if len(n.values) == 0 {
			return nil, errorf("%s is an empty list", field)
		}
		out := make([]string, len(n.values))
		for i, v := range n.values {
			if v.kind != nodeString {
				return nil, errorf("%s[%d] must be a string, not %s", field, i, v.kindName())
			}
			out[i] = v.str
		}
		return out, nil
	}
	return nil, errorf("%s must be a string or a list of strings, not %s", field, n.kindName())
}

// scalarList reads a condition value: a string, number or boolean, or a
// non-empty list of them, each as its text.
func scalarList(n *node, field string) ([]string, error) {
	scalar := func(v *node) (string, bool) {
		switch v.kind {
		case nodeString, nodeNumber:
			return v.str, true
		case nodeBool:
			if v.b {
				return "true", true
			}
			return "false", true
		}
		return "", false
	}
	if n.kind == nodeArray {
		if len(n.values) == 0 {
			return nil, errorf("%s is an empty list", field)
		}
		out := make([]string, len(n.values))
		for i, v := range n.values {
			s, ok := scalar(v)
			if !ok {
				return nil, errorf("%s[%d] must be a string, number or boolean, not %s", field, i, v.kindName())
			}
			out[i] = s
		}
		return out, nil
	}
	s, ok := scalar(n)
	if !ok {
		return nil, errorf("%s must be a string, number, boolean or a list of them, not %s", field, n.kindName())
	}
	return []string{s}, nil
}

func compileActions(n *node, field string) ([]pattern, error) {
	vals, err := stringList(n, field)
	if err != nil {
		return nil, err
	}
	out := make([]pattern, len(vals))
	for i, a := range vals {
		if a != "*" {
			svc, name, ok := strings.Cut(a, ":")
			if !ok || svc == "" || name == "" || !isServicePrefix(svc) || strings.ContainsAny(name, " \t\r\n") {
				return nil, errorf("%s: invalid action %q (expected \"*\" or SERVICE:ACTION such as \"kms:Encrypt\" or \"kms:*\")", field, a)
			}
		}
		// Actions match case-insensitively; ${...} is never a variable here.
		if out[i], err = newPattern(a, textMode{fold: true}); err != nil {
			return nil, errorf("%s: %v", field, err)
		}
	}
	return out, nil
}

func isServicePrefix(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func compileResources(n *node, field string, vars bool) ([]pattern, error) {
	vals, err := stringList(n, field)
	if err != nil {
		return nil, err
	}
	out := make([]pattern, len(vals))
	for i, r := range vals {
		if r != "*" {
			// An ARN has six fields; a pattern may stop early with a *
			// that runs to the end ("arn:aws:kms:*").
			f := strings.SplitN(r, ":", 6)
			if f[0] != "arn" || len(f) < 3 || f[1] == "" || f[2] == "" || len(f) < 6 && !strings.HasSuffix(r, "*") {
				return nil, errorf("%s: invalid resource %q (expected \"*\" or an ARN such as \"arn:aws:kms:us-east-1:111122223333:key/*\")", field, r)
			}
			if strings.ContainsAny(f[2], "*?") {
				return nil, errorf("%s: invalid resource %q: the service field of an ARN cannot contain a wildcard", field, r)
			}
			if vars {
				head := r
				if len(f) == 6 {
					head = r[:len(r)-len(f[5])]
				}
				if strings.Contains(head, "${") && !onlyEscapes(head) {
					return nil, errorf("%s: invalid resource %q: policy variables are only allowed in the resource part of an ARN (after the fifth colon)", field, r)
				}
			}
		}
		if out[i], err = newPattern(r, textMode{vars: vars, seg: true}); err != nil {
			return nil, errorf("%s: %v", field, err)
		}
	}
	return out, nil
}

// onlyEscapes reports whether every ${...} in s is one of ${*}, ${?}, ${$}.
func onlyEscapes(s string) bool {
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			return true
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return false
		}
		switch strings.TrimSpace(s[i+2 : i+j]) {
		case "*", "?", "$":
		default:
			return false
		}
		s = s[i+j+1:]
	}
}

// IsSyntaxError reports whether err is (or wraps) a *SyntaxError.
func IsSyntaxError(err error) bool {
	var se *SyntaxError
	return errors.As(err, &se)
}
