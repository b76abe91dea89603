package awsjson

import (
	"encoding/json"
	"reflect"
	"unicode"
	"unicode/utf8"
)

// members is an allow-list of the top-level members of a JSON object that
// an audit record may carry, compiled into a struct type with one
// json.RawMessage field per member. Picking them from a body is one
// decoding that copies the listed members only: the others (a plaintext,
// a ciphertext) are skipped, never copied, and each member's JSON goes
// into the record as it came (compacted by the record's encoder), with no
// second decoding. Member names match as the request decoding matches
// them (case-insensitively, the last of duplicates winning), so the record
// shows the values the operation used.
type members struct {
	typ   reflect.Type // nil when there are no members
	names []string     // CloudTrail's names (lower camel case), by field
}

func newMembers(names []string) members {
	if len(names) == 0 {
		return members{}
	}
	fields := make([]reflect.StructField, len(names))
	m := members{names: make([]string, len(names))}
	for i, n := range names {
		fields[i] = reflect.StructField{Name: n, Type: reflect.TypeFor[json.RawMessage](), Tag: reflect.StructTag(`json:"` + n + `"`)}
		m.names[i] = lowerFirst(n)
	}
	m.typ = reflect.StructOf(fields)
	return m
}

// of returns the listed members of a JSON object, by CloudTrail's names;
// nil if there are none or body is not a JSON object.
func (m members) of(body []byte) map[string]any {
	if m.typ == nil || len(body) == 0 {
		return nil
	}
	v := reflect.New(m.typ)
	if json.Unmarshal(body, v.Interface()) != nil {
		return nil
	}
	var out map[string]any
	for i, name := range m.names {
		raw := v.Elem().Field(i).Interface().(json.RawMessage)
		if raw == nil {
			continue
		}
		if out == nil {
			out = make(map[string]any, len(m.names))
		}
		out[name] = raw
	}
	return out
}

// lowerFirst turns a member name into CloudTrail's form: KeyId → keyId.
func lowerFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToLower(r)) + s[n:]
}
