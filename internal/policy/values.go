package policy

import (
	"strings"
	"time"
)

// decimal is an exact decimal number: 0.d1d2d3… × 10^exp, where the digit
// string is a followed by b (two substrings of the source, so that parsing
// does not allocate), starts with a non-zero digit and has no trailing
// zeros. Zero has no digits.
type decimal struct {
	neg  bool
	a, b string
	exp  int
}

func (d decimal) isZero() bool { return d.a == "" && d.b == "" }

func (d decimal) digit(i int) byte {
	if i < len(d.a) {
		return d.a[i]
	}
	return d.b[i-len(d.a)]
}

func (d decimal) ndigits() int { return len(d.a) + len(d.b) }

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseDecimal accepts an optional sign, digits with an optional fraction
// and an optional exponent: "10", "-2.5", "0.001", "1e3". Nothing else
// (no hex, Inf or NaN, no spaces).
func parseDecimal(s string) (decimal, bool) {
	var d decimal
	if s == "" {
		return d, false
	}
	switch s[0] {
	case '-':
		d.neg = true
		s = s[1:]
	case '+':
		s = s[1:]
	}
	exp := 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		es := s[i+1:]
		s = s[:i]
		eneg := false
		if es != "" && (es[0] == '-' || es[0] == '+') {
			eneg = es[0] == '-'
			es = es[1:]
		}
		if es == "" || len(es) > 6 || !isDigits(es) {
			return d, false
		}
		for j := 0; j < len(es); j++ {
			exp = exp*10 + int(es[j]-'0')
		}
		if eneg {
			exp = -exp
		}
	}
	ip, fp := s, ""
	if i := strings.IndexByte(s, '.'); i >= 0 {
		ip, fp = s[:i], s[i+1:]
	}
	if ip == "" && fp == "" || !isDigits(ip) || !isDigits(fp) {
		return d, false
	}
	ip = strings.TrimLeft(ip, "0")
	if ip != "" {
		d.exp = len(ip) + exp
		fp = strings.TrimRight(fp, "0")
		if fp == "" {
			ip = strings.TrimRight(ip, "0")
		}
		d.a, d.b = ip, fp
	} else {
		t := strings.TrimLeft(fp, "0")
		t = strings.TrimRight(t, "0")
		if t != "" {
			d.exp = -(len(fp) - len(strings.TrimLeft(fp, "0"))) + exp
			d.a = t
		}
	}
	if d.isZero() {
		d.neg = false
	}
	return d, true
}

// cmpDecimal returns -1, 0 or +1 as x is less than, equal to or greater
// than y.
func cmpDecimal(x, y decimal) int {
	sx, sy := x.sign(), y.sign()
	if sx != sy {
		if sx < sy {
			return -1
		}
		return 1
	}
	if sx == 0 {
		return 0
	}
	c := cmpMagnitude(x, y)
	if sx < 0 {
		return -c
	}
	return c
}

func (d decimal) sign() int {
	switch {
	case d.isZero():
		return 0
	case d.neg:
		return -1
	}
	return 1
}

func cmpMagnitude(x, y decimal) int {
	if x.exp != y.exp {
		if x.exp < y.exp {
			return -1
		}
		return 1
	}
	nx, ny := x.ndigits(), y.ndigits()
	for i := 0; i < nx && i < ny; i++ {
		if a, b := x.digit(i), y.digit(i); a != b {
			if a < b {
				return -1
			}
			return 1
		}
	}
	switch {
	case nx < ny:
		return -1
	case nx > ny:
		return 1
	}
	return 0
}

// instant is a point in time with nanosecond precision.
type instant struct {
	sec  int64
	nsec int32
}

func cmpInstant(x, y instant) int {
	switch {
	case x.sec < y.sec:
		return -1
	case x.sec > y.sec:
		return 1
	case x.nsec < y.nsec:
		return -1
	case x.nsec > y.nsec:
		return 1
	}
	return 0
}

// parseDate accepts what IAM's date operators accept: epoch seconds
// (digits, optionally with a fraction and a sign) or one of the W3C
// profiles of ISO 8601 — YYYY-MM, YYYY-MM-DD, YYYY-MM-DDThh:mm,
// YYYY-MM-DDThh:mm:ss and YYYY-MM-DDThh:mm:ss.s…, each time optionally
// followed by Z or ±hh:mm (UTC when absent). A string of digits alone is
// epoch seconds, never a year.
func parseDate(s string) (instant, bool) {
	if s == "" {
		return instant{}, false
	}
	if t, ok := parseEpoch(s); ok {
		return t, true
	}
	return parseISO(s)
}

func parseEpoch(s string) (instant, bool) {
	neg := false
	if s[0] == '-' || s[0] == '+' {
		neg = s[0] == '-'
		s = s[1:]
	}
	ip, fp := s, ""
	if i := strings.IndexByte(s, '.'); i >= 0 {
		ip, fp = s[:i], s[i+1:]
	}
	if ip == "" || len(ip) > 15 || !isDigits(ip) || !isDigits(fp) || (len(fp) == 0 && strings.HasSuffix(s, ".")) {
		return instant{}, false
	}
	var sec int64
	for i := 0; i < len(ip); i++ {
		sec = sec*10 + int64(ip[i]-'0')
	}
	var nsec int64
	for i := 0; i < 9; i++ {
		nsec *= 10
		if i < len(fp) {
			nsec += int64(fp[i] - '0')
		}
	}
	if neg {
		sec = -sec
		if nsec > 0 {
			sec--
			nsec = 1e9 - nsec
		}
	}
	return instant{sec: sec, nsec: int32(nsec)}, true
}

// num parses exactly n digits at s[i:].
func num(s string, i, n int) (int, bool) {
	if i+n > len(s) {
		return 0, false
	}
	v := 0
	for j := i; j < i+n; j++ {
		if s[j] < '0' || s[j] > '9' {
			return 0, false
		}
		v = v*10 + int(s[j]-'0')
	}
	return v, true
}

func parseISO(s string) (instant, bool) {
	year, ok := num(s, 0, 4)
	if !ok || len(s) < 7 || s[4] != '-' {
		return instant{}, false
	}
	month, ok := num(s, 5, 2)
	if !ok || month < 1 || month > 12 {
		return instant{}, false
	}
	day, hour, min, sec, nsec := 1, 0, 0, 0, 0
	i := 7
	if i < len(s) {
		if s[i] != '-' {
			return instant{}, false
		}
		if day, ok = num(s, i+1, 2); !ok || day < 1 || day > daysIn(year, month) {
			return instant{}, false
		}
		i += 3
	}
	offset := 0
	if i < len(s) {
		if s[i] != 'T' && s[i] != 't' {
			return instant{}, false
		}
		if hour, ok = num(s, i+1, 2); !ok || hour > 23 || i+3 >= len(s) || s[i+3] != ':' {
			return instant{}, false
		}
		if min, ok = num(s, i+4, 2); !ok || min > 59 {
			return instant{}, false
		}
		i += 6
		if i < len(s) && s[i] == ':' {
			if sec, ok = num(s, i+1, 2); !ok || sec > 60 {
				return instant{}, false
			}
			i += 3
			if i < len(s) && s[i] == '.' {
				j := i + 1
				for j < len(s) && s[j] >= '0' && s[j] <= '9' {
					j++
				}
				frac := s[i+1 : j]
				if frac == "" {
					return instant{}, false
				}
				for k := 0; k < 9; k++ {
					nsec *= 10
					if k < len(frac) {
						nsec += int(frac[k] - '0')
					}
				}
				i = j
			}
		}
		// Time zone designator.
		if i < len(s) {
			switch s[i] {
			case 'Z', 'z':
				i++
			case '+', '-':
				hh, ok1 := num(s, i+1, 2)
				if !ok1 || hh > 23 {
					return instant{}, false
				}
				mm := 0
				j := i + 3
				if j < len(s) && s[j] == ':' {
					j++
				}
				if j < len(s) {
					var ok2 bool
					if mm, ok2 = num(s, j, 2); !ok2 || mm > 59 {
						return instant{}, false
					}
					j += 2
				}
				offset = hh*3600 + mm*60
				if s[i] == '-' {
					offset = -offset
				}
				i = j
			default:
				return instant{}, false
			}
		}
	}
	if i != len(s) {
		return instant{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, min, sec, nsec, time.UTC)
	return instant{sec: t.Unix() - int64(offset), nsec: int32(t.Nanosecond())}, true
}

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
