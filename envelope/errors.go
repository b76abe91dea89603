package envelope

import "errors"

// Errors that Encrypt and Decrypt wrap, so that callers can tell the causes
// apart with errors.Is. The wrapping error says where (which frame, which
// field) the problem was found.
var (
	// ErrMalformed: the input is not a well-formed, canonical message of a
	// supported kind.
	ErrMalformed = errors.New("malformed message")
	// ErrTruncated: the input ended before the message did.
	ErrTruncated = errors.New("message is truncated")
	// ErrAuthentication: a header, frame or signature check failed, or the
	// data key does not match the header's key commitment. The message was
	// altered or was not produced with the data key the keyring returned.
	ErrAuthentication = errors.New("message authentication failed")
	// ErrNoDataKey: no keyring could obtain the data key from any of the
	// message's encrypted data keys (wrong key, no permission, or an
	// encryption context that differs from the one used to encrypt).
	ErrNoDataKey = errors.New("no encrypted data key could be decrypted")
	// ErrContextMismatch: the encryption context given to Decrypt disagrees
	// with the message, or a required pair is missing.
	ErrContextMismatch = errors.New("encryption context mismatch")
)
