package policy

import (
	"strings"
	"unicode/utf8"
)

// A pattern is a compiled policy string: literal runs, the wildcards * and ?
// (where the element allows them) and policy variables resolved from the
// request context at evaluation time. Patterns are built once by Parse and
// only read afterwards.

type tokKind uint8

const (
	tokLit   tokKind = iota // literal text
	tokStar                 // * : any run of characters
	tokQuest                // ? : exactly one character
	tokVar                  // ${key} or ${key, 'default'}
)

type token struct {
	kind tokKind
	lit  string  // tokLit
	v    *varRef // tokVar
	// free is set on a * that may match ':' too. In Resource patterns only a
	// * that ends a colon-separated segment is free; everywhere else every *
	// is.
	free bool
}

// varRef is a policy variable.
type varRef struct {
	key    string // lower-case condition key
	def    string // default value, when hasDef
	hasDef bool
}

// resolve returns the variable's value in ctx: the key's single value, else
// the default. A key that is absent (without default) or multi-valued
// cannot be substituted: ok is false and the policy value that contains the
// variable matches nothing.
func (v *varRef) resolve(ctx Context) (string, bool) {
	vals := ctx.m[v.key]
	switch len(vals) {
	case 1:
		return vals[0], true
	case 0:
		if v.hasDef {
			return v.def, true
		}
	}
	return "", false
}

type patKind uint8

const (
	patGeneral patKind = iota
	patAny             // "*": matches every string
	patExact           // no wildcard, no variable
	patPrefix          // literal followed by one free *
)

// pattern matches strings. fold makes literal comparison ASCII
// case-insensitive (the literals are stored lower-case); seg confines ? and
// non-free * to one colon-separated segment.
type pattern struct {
	kind    patKind
	lit     string // patExact, patPrefix
	toks    []token
	fold    bool
	seg     bool
	hasVars bool
	// dp is set when the pattern has several stars and some of them are
	// not free: the linear matcher would be wrong, so a memoised search
	// runs instead.
	dp bool
}

// textMode says how compileText treats the special characters of s.
type textMode struct {
	vars bool // ${...} are policy variables (Version 2012-10-17)
	wild bool // * and ? are wildcards
	fold bool // lower-case the literals (ASCII)
	seg  bool // Resource segment semantics for * and ?
}

// compileText splits s into tokens. It fails only on a malformed ${...}.
func compileText(s string, m textMode) ([]token, error) {
	var toks []token
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			toks = append(toks, token{kind: tokLit, lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case m.vars && c == '$' && i+1 < len(s) && s[i+1] == '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return nil, errorf("unterminated policy variable in %q (write ${$} for a literal $)", s)
			}
			inner := s[i+2 : i+2+end]
			i += end + 3
			v, special, err := parseVariable(inner)
			if err != nil {
				return nil, err
			}
			if v == nil {
				lit.WriteByte(special)
				continue
			}
			flush()
			toks = append(toks, token{kind: tokVar, v: v})
			continue
		case m.wild && c == '*':
			flush()
			if n := len(toks); n > 0 && toks[n-1].kind == tokStar {
				i++ // ** is *
				continue
			}
			toks = append(toks, token{kind: tokStar, free: true})
		case m.wild && c == '?':
			flush()
			toks = append(toks, token{kind: tokQuest})
		default:
			if m.fold && 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			lit.WriteByte(c)
		}
		i++
	}
	flush()
	if m.seg {
		// A * is free when it ends a segment: the pattern continues with
		// ':' or ends.
		for i := range toks {
			if toks[i].kind != tokStar {
				continue
			}
			free := i == len(toks)-1
			if !free && toks[i+1].kind == tokLit && toks[i+1].lit[0] == ':' {
				free = true
			}
			toks[i].free = free
		}
	}
	return toks, nil
}

// parseVariable parses the inside of ${...}. The escapes ${*}, ${?} and
// ${$} return a nil varRef and the character.
func parseVariable(inner string) (*varRef, byte, error) {
	t := strings.TrimSpace(inner)
	switch t {
	case "*", "?", "$":
		return nil, t[0], nil
	case "":
		return nil, 0, errorf("empty policy variable ${}")
	}
	key, def, hasDef := t, "", false
	if comma := strings.IndexByte(t, ','); comma >= 0 {
		key = strings.TrimSpace(t[:comma])
		d := strings.TrimSpace(t[comma+1:])
		if len(d) < 2 || d[0] != '\'' || d[len(d)-1] != '\'' {
			return nil, 0, errorf("policy variable ${%s}: a default value must be written in single quotes, as in ${aws:username, 'anonymous'}", inner)
		}
		def, hasDef = d[1:len(d)-1], true
	}
	if key == "" || strings.ContainsAny(key, " \t\r\n${}'") {
		return nil, 0, errorf("invalid policy variable ${%s}", inner)
	}
	return &varRef{key: strings.ToLower(key), def: def, hasDef: hasDef}, 0, nil
}

// newPattern compiles s as a wildcard pattern.
func newPattern(s string, m textMode) (pattern, error) {
	m.wild = true
	toks, err := compileText(s, m)
	if err != nil {
		return pattern{}, err
	}
	p := pattern{toks: toks, fold: m.fold, seg: m.seg}
	stars, restricted := 0, false
	for _, t := range toks {
		switch t.kind {
		case tokVar:
			p.hasVars = true
		case tokStar:
			stars++
			if !t.free {
				restricted = true
			}
		}
	}
	p.dp = stars > 1 && restricted
	switch {
	case len(toks) == 0:
		p.kind, p.lit = patExact, ""
	case len(toks) == 1 && toks[0].kind == tokStar && toks[0].free:
		p.kind = patAny
	case len(toks) == 1 && toks[0].kind == tokLit:
		p.kind, p.lit = patExact, toks[0].lit
	case len(toks) == 2 && toks[0].kind == tokLit && toks[1].kind == tokStar && toks[1].free:
		p.kind, p.lit = patPrefix, toks[0].lit
	}
	return p, nil
}

// hasPrefixFold reports whether s starts with lit; with fold, ASCII letters
// of s compare case-insensitively (lit is already lower-case).
func hasPrefixFold(s, lit string, fold bool) bool {
	if len(s) < len(lit) {
		return false
	}
	if !fold {
		return s[:len(lit)] == lit
	}
	for i := 0; i < len(lit); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lit[i] {
			return false
		}
	}
	return true
}

// text returns the literal text of a literal or variable token, lower-cased
// when the pattern folds. ok is false for a variable that cannot be
// resolved.
func (p *pattern) text(t *token, ctx Context) (string, bool) {
	if t.kind == tokLit {
		return t.lit, true
	}
	v, ok := t.v.resolve(ctx)
	if ok && p.fold {
		v = strings.ToLower(v)
	}
	return v, ok
}

// match reports whether s matches the pattern.
func (p *pattern) match(s string, ctx Context) bool {
	switch p.kind {
	case patAny:
		return true
	case patExact:
		return len(s) == len(p.lit) && hasPrefixFold(s, p.lit, p.fold)
	case patPrefix:
		return hasPrefixFold(s, p.lit, p.fold)
	}
	if p.hasVars {
		// A variable that cannot be resolved makes the pattern match
		// nothing.
		for i := range p.toks {
			if t := &p.toks[i]; t.kind == tokVar {
				if _, ok := t.v.resolve(ctx); !ok {
					return false
				}
			}
		}
	}
	if p.dp {
		return p.matchSearch(s, ctx)
	}
	return p.matchLinear(s, ctx)
}

// consumable reports whether a wildcard may take the character at s[i].
func (p *pattern) consumable(c byte, free bool) bool {
	return free || !p.seg || c != ':'
}

// matchLinear is the classic wildcard matcher that backtracks only to the
// last *. It is exact when every * is free or there is at most one *.
func (p *pattern) matchLinear(s string, ctx Context) bool {
	ti, si := 0, 0
	star, starSi := -1, 0
	for {
		if ti < len(p.toks) {
			t := &p.toks[ti]
			switch t.kind {
			case tokStar:
				star, starSi = ti, si
				ti++
				continue
			case tokQuest:
				if si < len(s) && p.consumable(s[si], false) {
					_, n := utf8.DecodeRuneInString(s[si:])
					si += n
					ti++
					continue
				}
			default:
				lit, _ := p.text(t, ctx)
				if hasPrefixFold(s[si:], lit, p.fold) {
					si += len(lit)
					ti++
					continue
				}
			}
		} else if si == len(s) {
			return true
		}
		// Mismatch: let the last * take one more character.
		if star < 0 || starSi >= len(s) || !p.consumable(s[starSi], p.toks[star].free) {
			return false
		}
		_, n := utf8.DecodeRuneInString(s[starSi:])
		starSi += n
		ti, si = star+1, starSi
	}
}

// matchSearch is a memoised depth-first search over (token, offset); it is
// exact for any mix of free and confined stars, in O(tokens × len(s)).
func (p *pattern) matchSearch(s string, ctx Context) bool {
	width := len(s) + 1
	failed := make([]uint64, ((len(p.toks)+1)*width+63)/64)
	var rec func(ti, si int) bool
	rec = func(ti, si int) bool {
		if ti == len(p.toks) {
			return si == len(s)
		}
		idx := ti*width + si
		if failed[idx/64]&(1<<(idx%64)) != 0 {
			return false
		}
		t := &p.toks[ti]
		switch t.kind {
		case tokStar:
			for j := si; ; {
				if rec(ti+1, j) {
					return true
				}
				if j == len(s) || !p.consumable(s[j], t.free) {
					break
				}
				_, n := utf8.DecodeRuneInString(s[j:])
				j += n
			}
		case tokQuest:
			if si < len(s) && p.consumable(s[si], false) {
				_, n := utf8.DecodeRuneInString(s[si:])
				if rec(ti+1, si+n) {
					return true
				}
			}
		default:
			lit, _ := p.text(t, ctx)
			if hasPrefixFold(s[si:], lit, p.fold) && rec(ti+1, si+len(lit)) {
				return true
			}
		}
		failed[idx/64] |= 1 << (idx % 64)
		return false
	}
	return rec(0, 0)
}

// template is a policy string without wildcards whose variables are
// substituted at evaluation time (used by the equality operators).
type template struct {
	lit  string  // the whole text when there are no variables
	toks []token // set when there are variables
}

func newTemplate(s string, vars bool) (template, error) {
	if !vars || !strings.Contains(s, "${") {
		return template{lit: s}, nil
	}
	toks, err := compileText(s, textMode{vars: true})
	if err != nil {
		return template{}, err
	}
	hasVar := false
	var b strings.Builder
	for _, t := range toks {
		if t.kind == tokVar {
			hasVar = true
		} else {
			b.WriteString(t.lit)
		}
	}
	if !hasVar { // only escapes such as ${*}
		return template{lit: b.String()}, nil
	}
	return template{toks: toks}, nil
}

// equals reports whether v is the template's text in ctx (false when a
// variable cannot be substituted), without building that text.
func (t *template) equals(v string, ctx Context) bool {
	if t.toks == nil {
		return v == t.lit
	}
	for i := range t.toks {
		tk := &t.toks[i]
		piece := tk.lit
		if tk.kind == tokVar {
			var ok bool
			if piece, ok = tk.v.resolve(ctx); !ok {
				return false
			}
		}
		if !strings.HasPrefix(v, piece) {
			return false
		}
		v = v[len(piece):]
	}
	return v == ""
}

// resolve returns the template's text in ctx; ok is false when one of its
// variables cannot be substituted.
func (t *template) resolve(ctx Context) (string, bool) {
	if t.toks == nil {
		return t.lit, true
	}
	var b strings.Builder
	for i := range t.toks {
		tk := &t.toks[i]
		if tk.kind == tokLit {
			b.WriteString(tk.lit)
			continue
		}
		v, ok := tk.v.resolve(ctx)
		if !ok {
			return "", false
		}
		b.WriteString(v)
	}
	return b.String(), true
}
