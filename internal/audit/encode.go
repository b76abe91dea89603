package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// Records are encoded by hand, appending to a buffer: encoding/json's
// Marshal spends most of an audited request's encoding time in reflection
// and in copying map keys to sort them. The output is byte for byte what
// json.Marshal writes for the same Record (the format's definition, and
// what TestAppendJSONMatchesMarshal checks): the same member order and
// omitempty rules, the same string escaping (HTML-safe: <, >, & and
// U+2028/U+2029 as \u escapes; invalid UTF-8 as U+FFFD), map keys sorted,
// json.RawMessage compacted. A value of a type this file does not know is
// handed to json.Marshal, so the output stays the same for any value.

// appendRecordBody appends the JSON of r without its chain members (which
// Append sets apart) to b.
func appendRecordBody(b []byte, r *Record) ([]byte, error) {
	b = append(b, `{"eventVersion":`...)
	b = appendString(b, r.EventVersion)
	b = append(b, `,"userIdentity":{"type":`...)
	u := &r.UserIdentity
	b = appendString(b, u.Type)
	b = appendOmitEmpty(b, `,"principalId":`, u.PrincipalID)
	b = appendOmitEmpty(b, `,"arn":`, u.ARN)
	b = appendOmitEmpty(b, `,"accountId":`, u.AccountID)
	b = appendOmitEmpty(b, `,"accessKeyId":`, u.AccessKeyID)
	b = appendOmitEmpty(b, `,"userName":`, u.UserName)
	b = append(b, `},"eventTime":`...)
	var err error
	if b, err = appendTime(b, r.EventTime); err != nil {
		return b, err
	}
	b = append(b, `,"eventSource":`...)
	b = appendString(b, r.EventSource)
	b = append(b, `,"eventName":`...)
	b = appendString(b, r.EventName)
	b = append(b, `,"awsRegion":`...)
	b = appendString(b, r.AWSRegion)
	b = append(b, `,"sourceIPAddress":`...)
	b = appendString(b, r.SourceIPAddress)
	b = append(b, `,"userAgent":`...)
	b = appendString(b, r.UserAgent)
	b = appendOmitEmpty(b, `,"errorCode":`, r.ErrorCode)
	b = appendOmitEmpty(b, `,"errorMessage":`, r.ErrorMessage)
	b = append(b, `,"requestParameters":`...)
	if b, err = appendMap(b, r.RequestParameters); err != nil {
		return b, err
	}
	b = append(b, `,"responseElements":`...)
	if b, err = appendMap(b, r.ResponseElements); err != nil {
		return b, err
	}
	if len(r.AdditionalEventData) > 0 {
		b = append(b, `,"additionalEventData":`...)
		if b, err = appendMap(b, r.AdditionalEventData); err != nil {
			return b, err
		}
	}
	b = append(b, `,"requestID":`...)
	b = appendString(b, r.RequestID)
	b = append(b, `,"eventID":`...)
	b = appendString(b, r.EventID)
	b = append(b, `,"readOnly":`...)
	b = strconv.AppendBool(b, r.ReadOnly)
	if len(r.Resources) > 0 {
		b = append(b, `,"resources":[`...)
		for i := range r.Resources {
			if i > 0 {
				b = append(b, ',')
			}
			res := &r.Resources[i]
			b = append(b, `{"ARN":`...)
			b = appendString(b, res.ARN)
			b = append(b, `,"accountId":`...)
			b = appendString(b, res.AccountID)
			b = append(b, `,"type":`...)
			b = appendString(b, res.Type)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"eventType":`...)
	b = appendString(b, r.EventType)
	b = append(b, `,"managementEvent":`...)
	b = strconv.AppendBool(b, r.ManagementEvent)
	b = append(b, `,"recipientAccountId":`...)
	b = appendString(b, r.RecipientAccountID)
	b = append(b, `,"eventCategory":`...)
	b = appendString(b, r.EventCategory)
	if t := r.TLSDetails; t != nil {
		b = append(b, `,"tlsDetails":{"tlsVersion":`...)
		b = appendString(b, t.TLSVersion)
		b = append(b, `,"cipherSuite":`...)
		b = appendString(b, t.CipherSuite)
		b = appendOmitEmpty(b, `,"clientProvidedHostHeader":`, t.ClientProvidedHostHeader)
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

func appendOmitEmpty(b []byte, member, s string) []byte {
	if s == "" {
		return b
	}
	b = append(b, member...)
	return appendString(b, s)
}

// appendTime is time.Time's MarshalJSON, appending.
func appendTime(b []byte, t time.Time) ([]byte, error) {
	if y := t.Year(); y < 0 || y >= 10000 {
		return b, errors.New("Time.MarshalJSON: year outside of range [0,9999]")
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), nil
}

// appendMap appends m as encoding/json does: null when nil, members
// sorted by key.
func appendMap[V any](b []byte, m map[string]V) ([]byte, error) {
	if m == nil {
		return append(b, "null"...), nil
	}
	// A small array on the stack holds the keys of the usual few members.
	var keysBuf [8]string
	keys := keysBuf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	var err error
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		if b, err = appendValue(b, m[k]); err != nil {
			return b, err
		}
	}
	return append(b, '}'), nil
}

// appendValue appends one member value.
func appendValue(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendString(b, v), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case int:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(b, v, 10), nil
	case uint64:
		return strconv.AppendUint(b, v, 10), nil
	case json.RawMessage:
		if v == nil {
			return append(b, "null"...), nil
		}
		return appendCompact(b, v)
	case map[string]any:
		return appendMap(b, v)
	case map[string]string:
		return appendMap(b, v)
	}
	// Anything else: encoding/json itself, which is what the record's
	// format is defined by.
	enc, err := json.Marshal(v)
	if err != nil {
		return b, err
	}
	return append(b, enc...), nil
}

// appendCompact appends the JSON value raw without insignificant
// whitespace and with <, >, & and U+2028/U+2029 escaped, as encoding/json
// writes a json.RawMessage. raw must be valid JSON (it is checked).
func appendCompact(b, raw []byte) ([]byte, error) {
	if !json.Valid(raw) {
		return b, fmt.Errorf("json: error calling MarshalJSON for type json.RawMessage: invalid JSON")
	}
	const hex = "0123456789abcdef"
	inString, escaped := false, false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '<' || c == '>' || c == '&':
			// Only inside strings in valid JSON.
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			escaped = false
			continue
		case c == 0xe2 && i+2 < len(raw) && raw[i+1] == 0x80 && raw[i+2]&^1 == 0xa8:
			// U+2028 or U+2029.
			b = append(b, '\\', 'u', '2', '0', '2', hex[raw[i+2]&0xf])
			i += 2
			escaped = false
			continue
		}
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			b = append(b, c)
			continue
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '"':
			inString = true
		}
		b = append(b, c)
	}
	return b, nil
}

// appendString appends s as a JSON string, escaped as encoding/json
// escapes it (HTML-safe).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
