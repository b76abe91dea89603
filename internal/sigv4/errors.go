package sigv4

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/kmsd/kmsd/internal/awserr"
)

// Messages AWS sends verbatim; clients and people search for them.
const (
	msgSignatureMismatch = "The request signature we calculated does not match the signature you provided. " +
		"Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
	msgUnrecognizedClient = "The security token included in the request is invalid."
	msgInternalFailure    = "The request processing has failed because of an unknown error, exception or failure."
)

func errSignatureMismatch() error {
	return awserr.New(awserr.InvalidSignature, msgSignatureMismatch)
}

func errUnrecognizedClient() error {
	return awserr.New(awserr.UnrecognizedClient, msgUnrecognizedClient)
}

// internalError marks cause as the server's fault. The result wraps cause
// (for the log) and an *awserr.Error (for the client): cause's own
// *awserr.Error if it carries one, InternalFailure otherwise.
func internalError(cause error) error {
	var ae *awserr.Error
	if errors.As(cause, &ae) {
		return cause
	}
	return fmt.Errorf("%w: %w", cause, awserr.New(awserr.InternalFailure, msgInternalFailure))
}

// maxEcho bounds how much of a client-supplied value an error message
// repeats, so that a huge header cannot make a huge response or log line.
const maxEcho = 512

// echo prepares a client-supplied value for an error message: truncated to
// maxEcho bytes (at a rune boundary) with "..." appended when cut. Only
// values the client sent are echoed, never anything derived from a secret.
func echo(s string) string {
	if len(s) <= maxEcho {
		return s
	}
	cut := maxEcho
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
