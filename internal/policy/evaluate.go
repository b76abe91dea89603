package policy

import "strings"

// Context holds the condition keys of a request and their values. Key names
// are case-insensitive: Set and Get lower-case them (a key that is already
// lower-case costs no allocation). A single-valued key has one value; a key
// set with no values counts as absent.
//
// The zero Context is empty and ready to use; a Context must not be written
// while a Policy evaluates it.
type Context struct {
	m map[string][]string
}

// NewContext returns an empty Context with room for n keys.
func NewContext(n int) Context { return Context{m: make(map[string][]string, n)} }

// ContextOf returns a Context holding the keys and values of m (key names
// lower-cased; the value slices are shared, not copied).
func ContextOf(m map[string][]string) Context {
	c := NewContext(len(m))
	for k, v := range m {
		c.Set(k, v...)
	}
	return c
}

// Set sets key to values, replacing what it held.
func (c *Context) Set(key string, values ...string) {
	if c.m == nil {
		c.m = make(map[string][]string)
	}
	c.m[strings.ToLower(key)] = values
}

// Add appends value to the values of key.
func (c *Context) Add(key, value string) {
	if c.m == nil {
		c.m = make(map[string][]string)
	}
	k := strings.ToLower(key)
	c.m[k] = append(c.m[k], value)
}

// Delete removes key.
func (c *Context) Delete(key string) { delete(c.m, strings.ToLower(key)) }

// Get returns the values of key (nil when absent).
func (c Context) Get(key string) []string { return c.m[strings.ToLower(key)] }

// Len returns the number of keys.
func (c Context) Len() int { return len(c.m) }

// Request is what a policy is evaluated against.
type Request struct {
	// Principal is the caller. Identity policies ignore it.
	Principal Principal
	// Action is SERVICE:ACTION, such as "kms:Decrypt"; matched
	// case-insensitively.
	Action string
	// Resource is the ARN of the resource (a key ARN, an alias ARN), or "*"
	// for an action that is not tied to a resource; matched
	// case-sensitively.
	Resource string
	// Context holds the condition keys (aws:SourceIp,
	// kms:EncryptionContext:Department, …) and supplies the values of
	// policy variables.
	Context Context
}

// Decision is the outcome of evaluating one or more policies.
type Decision uint8

const (
	// NotApplicable: no statement applied (an implicit deny, unless another
	// policy allows the request).
	NotApplicable Decision = iota
	// Allow: an Allow statement applied and no Deny did.
	Allow
	// Deny: a Deny statement applied (an explicit deny, which nothing
	// overrides).
	Deny
)

func (d Decision) String() string {
	switch d {
	case NotApplicable:
		return "NotApplicable"
	case Allow:
		return "Allow"
	case Deny:
		return "Deny"
	}
	return "Decision(?)"
}

// Combine merges the decisions of several policies of the same kind (for
// example all the identity policies of a caller): Deny if any is Deny, else
// Allow if any is Allow, else NotApplicable.
func Combine(ds ...Decision) Decision {
	out := NotApplicable
	for _, d := range ds {
		switch d {
		case Deny:
			return Deny
		case Allow:
			out = Allow
		}
	}
	return out
}

// EvaluateAll evaluates r against every policy in ps and combines the
// decisions (see Combine).
func EvaluateAll(ps []*Policy, r *Request) Decision {
	out := NotApplicable
	for _, p := range ps {
		switch p.Evaluate(r) {
		case Deny:
			return Deny
		case Allow:
			out = Allow
		}
	}
	return out
}

// Result is the detailed outcome of evaluating one policy. Direct and
// ViaAccount describe how the request was allowed and are false when
// Decision is not Allow.
type Result struct {
	Decision Decision
	// Direct is set when an Allow statement applied that names the caller
	// itself: its ARN, the role of its session, a service, "*", or (for the
	// account's root user) its account. In an identity policy every Allow
	// is direct.
	Direct bool
	// ViaAccount is set when an Allow statement applied only because it
	// names the caller's account (an account id or the account root ARN).
	// In a key policy this delegates to IAM: the caller's identity policies
	// must also allow the request.
	ViaAccount bool
	// Statement is the index of the deciding statement: the first Deny that
	// applied when Decision is Deny, otherwise the first direct Allow, or
	// failing that the first Allow; -1 when no statement applied.
	Statement int
	// Sid is the Sid of that statement.
	Sid string
}

// Evaluate returns the policy's decision for r. It allocates nothing except
// in rare cases: BinaryEquals (the request value is decoded), IgnoreCase
// and Bool values that contain a policy variable, and Resource patterns
// with several *, some of them inside a segment (matched by search).
func (p *Policy) Evaluate(r *Request) Decision {
	d := NotApplicable
	for i := range p.stmts {
		st := &p.stmts[i]
		if !st.deny && d == Allow {
			continue // already allowed: only a Deny can change the outcome
		}
		if st.applies(r) == matchNone {
			continue
		}
		if st.deny {
			return Deny
		}
		d = Allow
	}
	return d
}

// EvaluateDetailed is Evaluate that also says how the request was allowed
// (see Result).
func (p *Policy) EvaluateDetailed(r *Request) Result {
	res := Result{Statement: -1}
	for i := range p.stmts {
		st := &p.stmts[i]
		if !st.deny && res.Direct {
			continue
		}
		m := st.applies(r)
		if m == matchNone {
			continue
		}
		if st.deny {
			return Result{Decision: Deny, Statement: i, Sid: st.sid}
		}
		res.Decision = Allow
		if m == matchDirect {
			res.Direct = true
			res.Statement, res.Sid = i, st.sid
		} else {
			res.ViaAccount = true
			if res.Statement < 0 {
				res.Statement, res.Sid = i, st.sid
			}
		}
	}
	return res
}

// Match describes one statement that applied to a request.
type Match struct {
	Statement  int      // 0-based index
	Sid        string   // "" when the statement has none
	Effect     Decision // Allow or Deny
	ViaAccount bool     // it applied only through the caller's account
}

// Matches returns every statement that applies to r, in document order
// (for explanations and tests; the request path uses Evaluate).
func (p *Policy) Matches(r *Request) []Match {
	var out []Match
	for i := range p.stmts {
		st := &p.stmts[i]
		m := st.applies(r)
		if m == matchNone {
			continue
		}
		e := Allow
		if st.deny {
			e = Deny
		}
		out = append(out, Match{Statement: i, Sid: st.sid, Effect: e, ViaAccount: m == matchAccount})
	}
	return out
}

// applies reports whether the statement applies to r, and how its
// principal matched (matchDirect when the statement has no Principal).
func (st *statement) applies(r *Request) principalMatch {
	if st.inert {
		return matchNone
	}
	m := matchDirect
	switch {
	case st.principal != nil:
		if m = st.principal.match(&r.Principal); m == matchNone {
			return matchNone
		}
	case st.notPrincipal != nil:
		if st.notPrincipal.excludes(&r.Principal) {
			return matchNone
		}
	}
	if anyMatch(st.actions, r.Action, r.Context) == st.notAction {
		return matchNone
	}
	if !st.anyRes && anyMatch(st.resources, r.Resource, r.Context) == st.notRes {
		return matchNone
	}
	for i := range st.conditions {
		if !st.conditions[i].eval(r.Context) {
			return matchNone
		}
	}
	return m
}

func anyMatch(ps []pattern, s string, ctx Context) bool {
	for i := range ps {
		if ps[i].match(s, ctx) {
			return true
		}
	}
	return false
}
