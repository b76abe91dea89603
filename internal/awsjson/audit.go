package awsjson

import (
	"bytes"
	"encoding/json"
	"unicode"
	"unicode/utf8"
)

// members is an allow-list of the top-level members of a JSON object that
// an audit record may carry. Picking them from a body is one scan of its
// top level that slices out the listed members only: the others (a
// plaintext, a ciphertext) are skipped, never copied, and each member's
// JSON goes into the record as it came (compacted by the record's
// encoder). Nothing is decoded a second time: the scan finds where each
// top-level value begins and ends, no more. Member names match as the
// request decoding matches them (case-insensitively, the last of
// duplicates winning), so the record shows the values the operation used.
type members struct {
	fields []string // the operation's member names (upper camel case)
	names  []string // CloudTrail's names (lower camel case), by field
}

func newMembers(fields []string) members {
	if len(fields) == 0 {
		return members{}
	}
	m := members{fields: fields, names: make([]string, len(fields))}
	for i, n := range fields {
		m.names[i] = lowerFirst(n)
	}
	return m
}

// of returns the listed members of a JSON object, by CloudTrail's names;
// nil if there are none or body is not a JSON object. The values are
// json.RawMessage copies of the members' JSON, all in one allocation.
func (m members) of(body []byte) map[string]any {
	if len(m.fields) == 0 || len(body) == 0 {
		return nil
	}
	// What encoding/json's Unmarshal accepts, and only that: it checks the
	// whole input before decoding any of it. After this, the scan below
	// can trust the syntax.
	if !json.Valid(body) {
		return nil
	}
	i := skipSpace(body, 0)
	if body[i] != '{' {
		return nil // null, or not an object: no members
	}
	// The listed members' spans first, then one copy of them all: the
	// record must not alias body (an Auditor may keep the record, and a
	// response body is cleared once sent).
	type span struct{ field, start, end int }
	var spansBuf [16]span
	spans, size := spansBuf[:0], 0
	i = skipSpace(body, i+1)
	for body[i] != '}' {
		keyEnd := stringEnd(body, i)
		key := body[i+1 : keyEnd-1]
		i = skipSpace(body, keyEnd)
		i = skipSpace(body, i+1) // past ':'
		valEnd := valueEnd(body, i)
		if f := m.field(key); f >= 0 {
			spans = append(spans, span{f, i, valEnd})
			size += valEnd - i
		}
		i = skipSpace(body, valEnd)
		if body[i] == ',' {
			i = skipSpace(body, i+1)
		}
	}
	if len(spans) == 0 {
		return nil
	}
	buf := make([]byte, 0, size)
	out := make(map[string]any, len(spans))
	for _, sp := range spans {
		start := len(buf)
		buf = append(buf, body[sp.start:sp.end]...)
		// Later duplicates overwrite earlier ones, as in decoding.
		out[m.names[sp.field]] = json.RawMessage(buf[start:len(buf):len(buf)])
	}
	return out
}

// field returns the index of the field a member's quoted name (without
// its quotes, escapes still in) matches, or -1. As encoding/json, it
// unescapes the name and compares it case-insensitively with Unicode
// case folding (bytes.EqualFold).
func (m members) field(quoted []byte) int {
	name := quoted
	if bytes.IndexByte(quoted, '\\') >= 0 || !utf8.Valid(quoted) {
		// Rare: let encoding/json unquote it (escapes, and invalid UTF-8
		// turned into U+FFFD) exactly as the request's decoding did.
		var s string
		q := make([]byte, 0, len(quoted)+2)
		q = append(append(append(q, '"'), quoted...), '"')
		if json.Unmarshal(q, &s) != nil {
			return -1
		}
		name = []byte(s)
	}
	for i, f := range m.fields {
		if len(name) >= len(f) && bytes.EqualFold(name, []byte(f)) {
			return i
		}
	}
	return -1
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the closing quote of the valid
// JSON string that starts at b[i].
func stringEnd(b []byte, i int) int {
	for i++; ; i++ {
		switch b[i] {
		case '\\':
			i++ // the escaped character cannot end the string
		case '"':
			return i + 1
		}
	}
}

// valueEnd returns the index just past the valid JSON value that starts at
// b[i].
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
	}
	// A number or a literal: up to the next delimiter.
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	return i
}

// lowerFirst turns a member name into CloudTrail's form: KeyId → keyId.
func lowerFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToLower(r)) + s[n:]
}
