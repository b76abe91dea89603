// Package audit is kmsd's tamper-evident audit log: one record per request,
// shaped like a CloudTrail event for KMS, in a hash chain that periodic
// digests, signed by a key held by the root of trust, vouch for.
//
// docs/audit-format.md describes the format in full, for readers that
// verify a log without this package. In short:
//
// # Files
//
// A log is a directory of files named
//
//	audit-<sequence of the first record, 20 digits>-<UTC creation time YYYYMMDDTHHMMSSZ>.jsonl
//
// (mode 0600, directory 0700), whose order is their name order. Each holds
// JSON Lines: one JSON object per line, each ended by "\n". A line is a
// record or a digest. A new file is started when the current one would
// pass Options.MaxFileBytes or is older than Options.MaxFileAge; the chain
// simply continues in it, and the old file ends with a rotate digest.
//
// # Records
//
// A record line is the JSON of a Record: the CloudTrail members
// (eventVersion, userIdentity, eventTime, eventSource, eventName, awsRegion,
// sourceIPAddress, userAgent, errorCode, errorMessage, requestParameters,
// responseElements, requestID, eventID, readOnly, resources, eventType,
// managementEvent, recipientAccountId, eventCategory, …) preceded by two
// chain members:
//
//	{"sequence":7,"prevHash":"<64 hex>","eventVersion":"1.11",…}
//
// sequence is 1 for the first record of a log and goes up by exactly one.
// prevHash is the SHA-256, in lowercase hex, of the previous record's line
// exactly as written, its "\n" included (`sed -n 6p FILE | sha256sum`), or
// GenesisHash for record 1. Digest lines between records are not part of
// this chain. Hashing the bytes as written means that verification never
// re-encodes JSON.
//
// # Digests
//
// A digest line is {"digest":{…}} (see Digest). It names the last record
// written before it (sequence and line hash), carries the hash of the
// previous digest line (GenesisHash for the first), so that digests form a
// chain of their own, and an Ed25519 signature over Digest.SignedMessage.
// The writer appends one after every Options.DigestEvery records, when a
// record has waited Options.DigestInterval, at the end of a file it rotates
// away from, on Close (reason "close"), and on Open after an unclean end
// (reason "recover").
//
// # What verification proves
//
// With the public key alone (PublicKeyFile), Verify detects any change to
// the records a digest covers: an altered byte, a removed, inserted,
// duplicated or reordered record, a removed or altered digest, files
// renamed or reordered, a file cut inside a line. A log must end with a
// close digest; if it does not, the records after the last digest are
// chained but unsigned, and Verify reports ProblemUnclosed: kmsd is still
// running, or crashed, or the end was cut off, which the log alone cannot
// tell apart. Against someone who can both rewrite the files and restart
// kmsd, keep a copy of the digests elsewhere (Options.Stdout copies every
// line): the log can only be checked up to the last digest you trust.
//
// # Durability and failure
//
// Append returns once the record is written and fsynced. Concurrent
// Appends share one write and one fsync (group commit). If a write, an
// fsync, a signature or the Stdout copy fails, every Append of that batch
// and every later one fails: the log fails closed, and the caller must
// fail the request rather than let it go unaudited — or, when the request
// already changed something, keep its record (Log.Keep) in the Outbox,
// which the log appends when it opens again (see kept.go).
//
// # Secrets
//
// Records never hold plaintext, ciphertext, key material, data keys or
// secrets. That is the caller's duty: it fills RequestParameters and
// ResponseElements from a per-operation allow-list of members, as
// CloudTrail records them (encryption context included), never by copying
// a request or response.
package audit
