package policy

import (
	"fmt"
	"strings"
)

// Principal types, as they appear as keys of a policy's Principal element.
const (
	PrincipalAWS       = "AWS"
	PrincipalService   = "Service"
	PrincipalFederated = "Federated"
)

// Principal is the authenticated caller of a request.
//
// For an AWS principal (Type "AWS" or ""), ARN is the caller's ARN: an IAM
// user (arn:aws:iam::111122223333:user/path/name), an assumed-role session
// (arn:aws:sts::111122223333:assumed-role/role-name/session-name), an STS
// federated user, or the account root (arn:aws:iam::111122223333:root).
// Account is its 12-digit account. For a session, RoleARN is the ARN of the
// IAM role it assumed, with the role's path
// (arn:aws:iam::111122223333:role/path/role-name). NewPrincipal fills
// Account and RoleARN in from the ARN (a path it cannot know: set RoleARN
// yourself for a role that has one).
//
// For a service principal (Type "Service") ARN is the service name, such as
// "logs.us-east-1.amazonaws.com"; for a federated principal (Type
// "Federated") it is the identity provider.
type Principal struct {
	Type    string
	ARN     string
	Account string
	RoleARN string
}

// NewPrincipal returns the AWS principal with the given ARN, its account and,
// for an assumed-role session, the ARN of its role (assumed to have the path
// "/").
func NewPrincipal(arn string) (Principal, error) {
	a, ok := splitARN(arn)
	if !ok {
		return Principal{}, fmt.Errorf("policy: %q is not an ARN", arn)
	}
	if (a.service != "iam" && a.service != "sts") || a.region != "" || !isAccountID(a.account) {
		return Principal{}, fmt.Errorf("policy: %q is not an IAM or STS principal ARN", arn)
	}
	p := Principal{Type: PrincipalAWS, ARN: arn, Account: a.account}
	if a.service == "sts" && strings.HasPrefix(a.resource, "assumed-role/") {
		rest := a.resource[len("assumed-role/"):]
		slash := strings.IndexByte(rest, '/')
		if slash <= 0 || slash == len(rest)-1 {
			return Principal{}, fmt.Errorf("policy: %q is not an assumed-role session ARN", arn)
		}
		p.RoleARN = "arn:" + a.partition + ":iam::" + a.account + ":role/" + rest[:slash]
	}
	return p, nil
}

func (p *Principal) isAWS() bool { return p.Type == "" || p.Type == PrincipalAWS }

// IsAccountRoot reports whether p is an account's root user
// (arn:PARTITION:iam::ACCOUNT:root). The root user is not subject to
// identity policies: it has every identity permission.
func (p *Principal) IsAccountRoot() bool {
	return p.isAWS() && isRootARN(p.ARN)
}

// isRootARN reports whether s is arn:PARTITION:iam::ACCOUNT:root, without
// allocating.
func isRootARN(s string) bool {
	if !strings.HasPrefix(s, "arn:") || !strings.HasSuffix(s, ":root") {
		return false
	}
	rest := s[len("arn:") : len(s)-len(":root")] // PARTITION:iam::ACCOUNT
	i := strings.IndexByte(rest, ':')
	if i <= 0 || !strings.HasPrefix(rest[i+1:], "iam::") {
		return false
	}
	return isAccountID(rest[i+1+len("iam::"):])
}

// arnParts are the six colon-separated fields of an ARN; resource may
// itself contain colons.
type arnParts struct {
	partition, service, region, account, resource string
}

func splitARN(s string) (arnParts, bool) {
	if !strings.HasPrefix(s, "arn:") {
		return arnParts{}, false
	}
	f := strings.SplitN(s, ":", 6)
	if len(f) != 6 || f[1] == "" || f[2] == "" {
		return arnParts{}, false
	}
	return arnParts{partition: f[1], service: f[2], region: f[3], account: f[4], resource: f[5]}, true
}

// partitionOf returns the partition field of an ARN without allocating.
func partitionOf(arn string) string {
	if !strings.HasPrefix(arn, "arn:") {
		return ""
	}
	rest := arn[4:]
	if i := strings.IndexByte(rest, ':'); i >= 0 {
		return rest[:i]
	}
	return ""
}

func isAccountID(s string) bool { return len(s) == 12 && isDigits(s) }

// principalSet is a compiled Principal or NotPrincipal element.
type principalSet struct {
	any       bool      // "*" or {"AWS": "*"}
	accounts  []account // account ids and account root ARNs
	arns      []string  // user, role, session and federated-user ARNs
	services  []string  // {"Service": ...}
	federated []string  // {"Federated": ...}
}

type account struct {
	id        string
	partition string // "" for a bare account id: any partition
}

// principalMatch says how a Principal element matched a caller.
type principalMatch uint8

const (
	matchNone    principalMatch = iota
	matchAccount                // only through the caller's account
	matchDirect                 // "*", or the caller itself (its ARN, its role, a service)
)

func (ps *principalSet) matchAccount(p *Principal) bool {
	if p.Account == "" {
		return false
	}
	for _, a := range ps.accounts {
		if a.id == p.Account && (a.partition == "" || a.partition == partitionOf(p.ARN)) {
			return true
		}
	}
	return false
}

func (ps *principalSet) matchARN(s string) bool {
	if s == "" {
		return false
	}
	for _, a := range ps.arns {
		if a == s {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// match implements the Principal element. "*" matches everyone. An account
// (id or root ARN) matches every principal of that account — through the
// account, unless the caller is that account's root user. A role ARN
// matches the role's sessions; any other ARN matches only itself.
func (ps *principalSet) match(p *Principal) principalMatch {
	if ps.any {
		return matchDirect
	}
	switch {
	case p.isAWS():
		if ps.matchARN(p.ARN) || ps.matchARN(p.RoleARN) {
			return matchDirect
		}
		if ps.matchAccount(p) {
			if p.IsAccountRoot() {
				return matchDirect
			}
			return matchAccount
		}
	case p.Type == PrincipalService:
		if contains(ps.services, p.ARN) {
			return matchDirect
		}
	case p.Type == PrincipalFederated:
		if contains(ps.federated, p.ARN) {
			return matchDirect
		}
	}
	return matchNone
}

// excludes implements NotPrincipal: it reports whether the caller is one of
// the listed principals and so escapes the statement. As IAM documents,
// AWS checks the caller's account, then its role, then the session: an IAM
// user is excluded only when both its account and its ARN are listed, a
// role session only when its account and its role ARN are listed (the
// session ARN alone is not enough), the root user when its account is.
func (ps *principalSet) excludes(p *Principal) bool {
	if ps.any {
		return true
	}
	switch {
	case p.isAWS():
		if !ps.matchAccount(p) {
			return false
		}
		if p.IsAccountRoot() {
			return true
		}
		if p.RoleARN != "" {
			return ps.matchARN(p.RoleARN)
		}
		return ps.matchARN(p.ARN)
	case p.Type == PrincipalService:
		return contains(ps.services, p.ARN)
	case p.Type == PrincipalFederated:
		return contains(ps.federated, p.ARN)
	}
	return false
}

// compilePrincipal compiles the value of a Principal or NotPrincipal
// element.
func compilePrincipal(n *node, field string) (*principalSet, error) {
	ps := &principalSet{}
	switch n.kind {
	case nodeString:
		if n.str != "*" {
			return nil, errorf("%s must be \"*\" or an object such as {\"AWS\": \"arn:aws:iam::111122223333:root\"}, not the string %q", field, n.str)
		}
		ps.any = true
		return ps, nil
	case nodeObject:
	default:
		return nil, errorf("%s must be \"*\" or an object, not %s", field, n.kindName())
	}
	if len(n.keys) == 0 {
		return nil, errorf("%s names no principal", field)
	}
	for i, typ := range n.keys {
		vals, err := stringList(n.values[i], field+"."+typ)
		if err != nil {
			return nil, err
		}
		for _, v := range vals {
			switch typ {
			case PrincipalAWS:
				err = ps.addAWS(v, field+".AWS")
			case PrincipalService:
				err = addName(&ps.services, v, field+".Service")
			case PrincipalFederated:
				err = addName(&ps.federated, v, field+".Federated")
			case "CanonicalUser":
				err = errorf("%s.CanonicalUser: canonical user ids are an Amazon S3 feature that kmsd does not support", field)
			default:
				err = errorf("%s: unknown principal type %q (use AWS, Service or Federated)", field, typ)
			}
			if err != nil {
				return nil, err
			}
		}
	}
	return ps, nil
}

func addName(list *[]string, v, field string) error {
	if v == "" || strings.ContainsAny(v, "*? \t\r\n") {
		return errorf("%s: invalid principal %q (wildcards are not allowed in principals)", field, v)
	}
	*list = append(*list, v)
	return nil
}

// addAWS adds one value of the "AWS" principal type.
func (ps *principalSet) addAWS(v, field string) error {
	if v == "*" {
		ps.any = true
		return nil
	}
	if isAccountID(v) {
		ps.accounts = append(ps.accounts, account{id: v})
		return nil
	}
	if strings.ContainsAny(v, "*?") {
		return errorf("%s: invalid principal %q: a wildcard may only stand alone (\"*\"), never match part of a principal", field, v)
	}
	a, ok := splitARN(v)
	if !ok {
		return errorf("%s: invalid principal %q: expected \"*\", a 12-digit account id or a principal ARN", field, v)
	}
	if a.region != "" || !isAccountID(a.account) {
		return errorf("%s: invalid principal %q: a principal ARN has no region and a 12-digit account id", field, v)
	}
	switch {
	case a.service == "iam" && a.resource == "root":
		ps.accounts = append(ps.accounts, account{id: a.account, partition: a.partition})
		return nil
	case a.service == "iam" && (hasNamePath(a.resource, "user/") || hasNamePath(a.resource, "role/")):
	case a.service == "sts" && strings.HasPrefix(a.resource, "assumed-role/"):
		parts := strings.Split(a.resource, "/")
		if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
			return errorf("%s: invalid principal %q: expected arn:%s:sts::%s:assumed-role/ROLE-NAME/SESSION-NAME", field, v, a.partition, a.account)
		}
	case a.service == "sts" && hasNamePath(a.resource, "federated-user/"):
	case a.service == "iam" && strings.HasPrefix(a.resource, "group/"):
		return errorf("%s: invalid principal %q: IAM groups cannot be principals", field, v)
	default:
		return errorf("%s: invalid principal %q: expected an account root, user, role, assumed-role session or federated user ARN", field, v)
	}
	ps.arns = append(ps.arns, v)
	return nil
}

// hasNamePath reports whether r is prefix followed by a non-empty path and
// name, with no empty element.
func hasNamePath(r, prefix string) bool {
	if !strings.HasPrefix(r, prefix) {
		return false
	}
	rest := r[len(prefix):]
	if rest == "" || strings.HasSuffix(rest, "/") || strings.Contains(rest, "//") {
		return false
	}
	return true
}
