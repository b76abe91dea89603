// Package envelope encrypts and decrypts streams of any size in the AWS
// Encryption SDK message format, version 2, so that its messages can be read
// by the official AWS Encryption SDKs (Java, Python, C, JavaScript, .NET, …)
// and it can read theirs.
//
// Each message gets a fresh 256-bit data key from a [Keyring] (usually KMS:
// GenerateDataKey under the first key, Encrypt under the others). The data is
// cut into frames and each frame is sealed with AES-256-GCM under a key that
// HKDF-SHA512 derives from the data key and the message's random 256-bit ID.
// The encrypted copies of the data key travel in the message header, so
// anyone allowed to decrypt one of them with its KMS key can read the message.
//
// Only the two key-committing algorithm suites are written and accepted:
// [SuiteCommitKeyECDSAP384] (the default: adds an ECDSA P-384 signature over
// the whole message, so that a reader who can decrypt cannot forge a message)
// and [SuiteCommitKey]. This is the specification's commitment policy
// REQUIRE_ENCRYPT_REQUIRE_DECRYPT, its default; older non-committing messages
// (format version 1) are refused with an explanatory error.
//
// Memory use is constant whatever the size of the input: frames are read in
// batches, sealed or opened in parallel on all cores and written in order
// through a bounded pipeline. [Decrypt] writes plaintext only after the frame
// it comes from has been authenticated, and for a signed message holds the
// last frame back until the signature has been verified. For a signed
// message, earlier plaintext may already have been written when a later
// frame or the signature turns out to be bad: treat the output as valid only
// when Decrypt returns nil (the kmsd CLI writes to a temporary file and
// renames it only then).
//
// The encryption context is a set of non-secret key/value pairs that is
// authenticated with the message (and, through KMS, with the data key). Keys
// beginning with "aws-crypto-" are reserved. [NewRequiredContextCMM] keeps
// chosen pairs out of the stored message: the reader must supply them again.
// [NewCachingCMM] reuses data keys for a bounded number of messages, bytes and
// seconds to save KMS calls.
//
// The format, the trust model and the kmsd encrypt/decrypt commands are
// described in docs/envelope.md.
package envelope
