package awsjson

import (
	"encoding/json"
	"errors"

	"github.com/kmsd/kmsd/internal/awserr"
)

// ErrorResponse is the one place an error becomes a wire response: the HTTP
// status and the body {"__type": ..., "message": ...}. An error that is not
// an *awserr.Error is an internal fault; internal reports so, and the client
// sees a generic KMSInternalException without any detail of the cause.
func ErrorResponse(err error) (status int, body []byte, internal bool) {
	var e *awserr.Error
	if !errors.As(err, &e) {
		e = awserr.New(awserr.KMSInternal, "An internal error occurred. The request id identifies it in kmsd's log.")
		internal = true
	}
	b, mErr := json.Marshal(struct {
		Type    string `json:"__type"`
		Message string `json:"message,omitempty"`
	}{e.Code, e.Message})
	if mErr != nil {
		b = []byte(`{"__type":"KMSInternalException"}`)
	}
	return awserr.HTTPStatus(e.Code), b, internal
}
