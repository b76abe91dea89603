package policy

import (
	"bytes"
	"encoding/base64"
	"net/netip"
	"strings"
)

// opBase is the comparison a condition operator makes; the negated operators
// (StringNotEquals, NotIpAddress, ArnNotLike, …) are their positive base
// with negated set.
type opBase uint8

const (
	opStringEquals opBase = iota
	opStringEqualsIgnoreCase
	opStringLike
	opNumericEquals
	opNumericLessThan
	opNumericLessThanEquals
	opNumericGreaterThan
	opNumericGreaterThanEquals
	opDateEquals
	opDateLessThan
	opDateLessThanEquals
	opDateGreaterThan
	opDateGreaterThanEquals
	opBool
	opBinaryEquals
	opIPAddress
	opArnLike
	opNull
)

type opInfo struct {
	base    opBase
	negated bool
}

// operators maps every IAM condition operator (without prefix or IfExists
// suffix) to its comparison.
var operators = map[string]opInfo{
	"StringEquals":              {opStringEquals, false},
	"StringNotEquals":           {opStringEquals, true},
	"StringEqualsIgnoreCase":    {opStringEqualsIgnoreCase, false},
	"StringNotEqualsIgnoreCase": {opStringEqualsIgnoreCase, true},
	"StringLike":                {opStringLike, false},
	"StringNotLike":             {opStringLike, true},
	"NumericEquals":             {opNumericEquals, false},
	"NumericNotEquals":          {opNumericEquals, true},
	"NumericLessThan":           {opNumericLessThan, false},
	"NumericLessThanEquals":     {opNumericLessThanEquals, false},
	"NumericGreaterThan":        {opNumericGreaterThan, false},
	"NumericGreaterThanEquals":  {opNumericGreaterThanEquals, false},
	"DateEquals":                {opDateEquals, false},
	"DateNotEquals":             {opDateEquals, true},
	"DateLessThan":              {opDateLessThan, false},
	"DateLessThanEquals":        {opDateLessThanEquals, false},
	"DateGreaterThan":           {opDateGreaterThan, false},
	"DateGreaterThanEquals":     {opDateGreaterThanEquals, false},
	"Bool":                      {opBool, false},
	"BinaryEquals":              {opBinaryEquals, false},
	"IpAddress":                 {opIPAddress, false},
	"NotIpAddress":              {opIPAddress, true},
	"ArnEquals":                 {opArnLike, false},
	"ArnLike":                   {opArnLike, false},
	"ArnNotEquals":              {opArnLike, true},
	"ArnNotLike":                {opArnLike, true},
	"Null":                      {opNull, false},
}

type setMode uint8

const (
	setNone setMode = iota
	setAnyValue
	setAllValues
)

// condition is one (operator, key) pair of a Condition element with its
// values, compiled.
type condition struct {
	base     opBase
	negated  bool
	ifExists bool
	set      setMode
	key      string // lower-case
	values   []cvalue
}

// cvalue is one policy value of a condition, in the form its operator
// compares.
type cvalue struct {
	tmpl   template     // string equality, Bool with a variable
	glob   pattern      // StringLike
	arn    []pattern    // ArnLike: the pattern's colon-separated fields
	num    decimal      // Numeric*
	date   instant      // Date*
	prefix netip.Prefix // IpAddress
	bin    []byte       // BinaryEquals
	b      bool         // Bool (without variable), Null
}

// compileCondition compiles one operator's block: {key: value(s), ...}.
func compileCondition(opName string, block *node, vars bool, field string) ([]condition, error) {
	name := opName
	set := setNone
	switch {
	case strings.HasPrefix(name, "ForAnyValue:"):
		set, name = setAnyValue, name[len("ForAnyValue:"):]
	case strings.HasPrefix(name, "ForAllValues:"):
		set, name = setAllValues, name[len("ForAllValues:"):]
	}
	ifExists := false
	if base, ok := strings.CutSuffix(name, "IfExists"); ok {
		ifExists, name = true, base
	}
	info, ok := operators[name]
	if !ok {
		return nil, errorf("%s: unknown condition operator %q", field, opName)
	}
	if info.base == opNull && (ifExists || set != setNone) {
		return nil, errorf("%s: the Null operator takes neither the IfExists suffix nor ForAnyValue/ForAllValues", field)
	}
	if block.kind != nodeObject {
		return nil, errorf("%s must be an object of condition keys and values, not %s", field, block.kindName())
	}
	if len(block.keys) == 0 {
		return nil, errorf("%s has no condition key", field)
	}
	conds := make([]condition, 0, len(block.keys))
	for i, key := range block.keys {
		kf := field + "." + key
		if strings.TrimSpace(key) == "" {
			return nil, errorf("%s: empty condition key", field)
		}
		raw, err := scalarList(block.values[i], kf)
		if err != nil {
			return nil, err
		}
		c := condition{base: info.base, negated: info.negated, ifExists: ifExists, set: set, key: strings.ToLower(key)}
		c.values = make([]cvalue, len(raw))
		for j, s := range raw {
			if err := c.compileValue(&c.values[j], s, vars, kf); err != nil {
				return nil, err
			}
		}
		conds = append(conds, c)
	}
	return conds, nil
}

func (c *condition) compileValue(v *cvalue, s string, vars bool, field string) error {
	var err error
	switch c.base {
	case opStringEquals, opStringEqualsIgnoreCase:
		v.tmpl, err = newTemplate(s, vars)
	case opStringLike:
		v.glob, err = newPattern(s, textMode{vars: vars})
	case opArnLike:
		// Each colon-separated field of the pattern matches the
		// corresponding field of the value; the last field of the pattern
		// takes the rest of the value.
		fields := strings.SplitN(s, ":", 6)
		v.arn = make([]pattern, len(fields))
		for k, f := range fields {
			if v.arn[k], err = newPattern(f, textMode{vars: vars}); err != nil {
				break
			}
		}
	case opNumericEquals, opNumericLessThan, opNumericLessThanEquals, opNumericGreaterThan, opNumericGreaterThanEquals:
		var ok bool
		if v.num, ok = parseDecimal(s); !ok {
			return errorf("%s: %q is not a number", field, s)
		}
	case opDateEquals, opDateLessThan, opDateLessThanEquals, opDateGreaterThan, opDateGreaterThanEquals:
		var ok bool
		if v.date, ok = parseDate(s); !ok {
			return errorf("%s: %q is not a date (use ISO 8601 such as 2025-01-01T00:00:00Z, or epoch seconds)", field, s)
		}
	case opBool, opNull:
		text := s
		if c.base == opBool && vars && strings.Contains(s, "${") {
			t, err := newTemplate(s, vars)
			if err != nil {
				return errorf("%s: %v", field, err)
			}
			if t.toks != nil { // compared once substituted
				v.tmpl = t
				return nil
			}
			text = t.lit // only escapes such as ${$}
		}
		switch {
		case strings.EqualFold(text, "true"):
			v.b = true
		case strings.EqualFold(text, "false"):
			v.b = false
		default:
			return errorf("%s: %q is not a boolean (use \"true\" or \"false\")", field, s)
		}
	case opBinaryEquals:
		if v.bin, err = decodeBase64(s); err != nil {
			return errorf("%s: %q is not base64", field, s)
		}
	case opIPAddress:
		var ok bool
		if v.prefix, ok = parseIPRange(s); !ok {
			return errorf("%s: %q is not an IP address or CIDR range", field, s)
		}
	}
	if err != nil {
		return errorf("%s: %v", field, err)
	}
	return nil
}

func decodeBase64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(s)
	}
	return b, err
}

// parseIPRange parses a CIDR range or a single address (a /32 or /128).
func parseIPRange(s string) (netip.Prefix, bool) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, false
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), true
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), true
}

// eval evaluates the condition against the request context.
//
// An absent key (or one with no values) makes the condition true with
// IfExists, true with ForAllValues, false with ForAnyValue; otherwise false
// for a positive operator and true for a negated one. For present values:
// without a set operator the condition holds when some request value
// matches some policy value (negated: when none does); ForAnyValue holds
// when at least one request value satisfies the operator, ForAllValues when
// every one does, where a request value satisfies a negated operator when
// it matches none of the policy values.
func (c *condition) eval(ctx Context) bool {
	vals := ctx.m[c.key]
	if c.base == opNull {
		absent := len(vals) == 0
		for i := range c.values {
			if c.values[i].b == absent {
				return true
			}
		}
		return false
	}
	if len(vals) == 0 {
		switch {
		case c.ifExists:
			return true
		case c.set == setAllValues:
			return true
		case c.set == setAnyValue:
			return false
		}
		return c.negated
	}
	switch c.set {
	case setAnyValue:
		for _, v := range vals {
			if c.matchAny(v, ctx) != c.negated {
				return true
			}
		}
		return false
	case setAllValues:
		for _, v := range vals {
			if c.matchAny(v, ctx) == c.negated {
				return false
			}
		}
		return true
	}
	for _, v := range vals {
		if c.matchAny(v, ctx) {
			return !c.negated
		}
	}
	return c.negated
}

// matchAny reports whether the request value v matches at least one of the
// policy values under the positive form of the operator. A policy value
// whose variable cannot be substituted matches nothing.
func (c *condition) matchAny(v string, ctx Context) bool {
	switch c.base {
	case opStringEquals:
		for i := range c.values {
			if c.values[i].tmpl.equals(v, ctx) {
				return true
			}
		}
	case opStringEqualsIgnoreCase:
		for i := range c.values {
			if t, ok := c.values[i].tmpl.resolve(ctx); ok && strings.EqualFold(t, v) {
				return true
			}
		}
	case opStringLike:
		for i := range c.values {
			if c.values[i].glob.match(v, ctx) {
				return true
			}
		}
	case opArnLike:
		for i := range c.values {
			if matchARNFields(c.values[i].arn, v, ctx) {
				return true
			}
		}
	case opNumericEquals, opNumericLessThan, opNumericLessThanEquals, opNumericGreaterThan, opNumericGreaterThanEquals:
		n, ok := parseDecimal(v)
		if !ok {
			return false
		}
		for i := range c.values {
			if cmpHolds(c.base, cmpDecimal(n, c.values[i].num)) {
				return true
			}
		}
	case opDateEquals, opDateLessThan, opDateLessThanEquals, opDateGreaterThan, opDateGreaterThanEquals:
		d, ok := parseDate(v)
		if !ok {
			return false
		}
		for i := range c.values {
			if cmpHolds(c.base, cmpInstant(d, c.values[i].date)) {
				return true
			}
		}
	case opBool:
		for i := range c.values {
			cv := &c.values[i]
			if cv.tmpl.toks != nil {
				if t, ok := cv.tmpl.resolve(ctx); ok && strings.EqualFold(t, v) {
					return true
				}
				continue
			}
			if cv.b && strings.EqualFold(v, "true") || !cv.b && strings.EqualFold(v, "false") {
				return true
			}
		}
	case opBinaryEquals:
		b, err := decodeBase64(v)
		if err != nil {
			return false
		}
		for i := range c.values {
			if bytes.Equal(b, c.values[i].bin) {
				return true
			}
		}
	case opIPAddress:
		a, err := netip.ParseAddr(v)
		if err != nil {
			return false
		}
		a = a.Unmap()
		for i := range c.values {
			if c.values[i].prefix.Contains(a) {
				return true
			}
		}
	}
	return false
}

// cmpHolds reports whether comparison result c (value vs policy value)
// satisfies the operator.
func cmpHolds(op opBase, c int) bool {
	switch op {
	case opNumericEquals, opDateEquals:
		return c == 0
	case opNumericLessThan, opDateLessThan:
		return c < 0
	case opNumericLessThanEquals, opDateLessThanEquals:
		return c <= 0
	case opNumericGreaterThan, opDateGreaterThan:
		return c > 0
	case opNumericGreaterThanEquals, opDateGreaterThanEquals:
		return c >= 0
	}
	return false
}

// matchARNFields matches v field by field: the value is split into as many
// colon-separated fields as the pattern has (at most six), the last one
// taking the rest, and each field is matched on its own, so a wildcard
// never spans a colon between fields.
func matchARNFields(fields []pattern, v string, ctx Context) bool {
	rest := v
	for i := range fields {
		var f string
		if i == len(fields)-1 {
			f = rest
		} else {
			j := strings.IndexByte(rest, ':')
			if j < 0 {
				return false
			}
			f, rest = rest[:j], rest[j+1:]
		}
		if !fields[i].match(f, ctx) {
			return false
		}
	}
	return true
}
