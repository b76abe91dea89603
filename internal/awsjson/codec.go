// Package awsjson is kmsd's wire: the AWS JSON 1.1 protocol of AWS KMS.
// It decodes and validates each operation's request, calls the kms.Service
// method, encodes the response, and turns every error into the body AWS
// sends (one function, ErrorResponse).
//
// Request members are decoded straight into the kms input structs, whose
// field names are the AWS member names. Responses whose shape needs care on
// the wire (timestamps as epoch seconds, members omitted when absent) have
// their own types here.
package awsjson

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/kmsd/kmsd/internal/awserr"
)

// ContentType is the content type of every request and response body.
const ContentType = "application/x-amz-json-1.1"

// decode parses a request body into v. An empty body is an empty object.
// Anything but one JSON object, or a member of the wrong JSON type, is a
// SerializationException.
func decode(body []byte, v any) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		body = []byte("{}")
	}
	if body[0] != '{' {
		return awserr.New(awserr.Serialization, "The request body must be a JSON object.")
	}
	// json.Unmarshal checks the syntax of the whole body (trailing data
	// included) before it decodes, in one pass over the bytes.
	if err := json.Unmarshal(body, v); err != nil {
		return serializationError(err)
	}
	return nil
}

func serializationError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "request"
		}
		want := te.Type.String()
		switch want {
		case "[]uint8":
			want = "a base64-encoded string"
		case "*int32", "int32":
			want = "an integer"
		case "string":
			want = "a string"
		case "bool":
			want = "a boolean"
		case "map[string]string":
			want = "an object of strings"
		}
		return awserr.Newf(awserr.Serialization, "Member '%s' must be %s, not a JSON %s.", field, want, te.Value)
	case errors.As(err, &se):
		return awserr.Newf(awserr.Serialization, "The request body is not valid JSON (at byte %d).", se.Offset)
	default:
		var ce base64.CorruptInputError
		if errors.As(err, &ce) {
			return awserr.New(awserr.Serialization, "A blob member is not valid base64.")
		}
		return awserr.New(awserr.Serialization, "The request body could not be parsed: "+sanitize(err.Error()))
	}
}

// sanitize keeps decoder messages short; they never contain request values
// beyond a type name, but cap them anyway.
func sanitize(s string) string {
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// epoch is a timestamp on the wire: a JSON number of seconds since the Unix
// epoch, with milliseconds, as the AWS SDKs read it.
type epoch time.Time

func (e epoch) MarshalJSON() ([]byte, error) {
	ms := time.Time(e).UnixMilli()
	return []byte(strconv.FormatFloat(float64(ms)/1000, 'f', 3, 64)), nil
}

// epochPtr returns nil for the zero time, so that omitempty drops it.
func epochPtr(t time.Time) *epoch {
	if t.IsZero() {
		return nil
	}
	e := epoch(t)
	return &e
}

// encode marshals a response body.
func encode(v any) ([]byte, error) {
	if v == nil {
		return []byte("{}"), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode response: %w", err)
	}
	return b, nil
}
