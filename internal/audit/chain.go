package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// GenesisHash is the prevHash of the first record of a log and the
// prevDigestHash of its first digest: the hex SHA-256 of the string
// "kmsd audit log v1 genesis".
var GenesisHash = hex.EncodeToString(genesis[:])

var genesis = sha256.Sum256([]byte("kmsd audit log v1 genesis"))

// Reasons a digest was written.
const (
	ReasonPeriodic = "periodic" // DigestEvery records or DigestInterval passed
	ReasonRotate   = "rotate"   // the last line of a file closed by rotation
	ReasonClose    = "close"    // Log.Close: the log ended cleanly here
	ReasonRecover  = "recover"  // Open found a log that was not closed cleanly
)

// digestVersion is the format version of digests and of their signed message.
const digestVersion = 1

// digestMagic starts the signed message of every digest: a domain
// separator, so that a digest signature can never be taken for a
// signature over anything else.
const digestMagic = "kmsd audit digest v1"

// MaxRecordBytes bounds the JSON of one record; Append refuses larger ones.
const MaxRecordBytes = 1 << 20

// maxLineBytes bounds a line that Verify and Open accept: a record of
// MaxRecordBytes plus its chain members.
const maxLineBytes = MaxRecordBytes + 4096

// Digest is the member of a digest line, {"digest": {…}}. It is signed by
// the log's signing key and vouches for every record up to Sequence, whose
// line hashes to Hash (and through the chain, for all records before it).
type Digest struct {
	Version  int    `json:"version"`  // 1
	Sequence uint64 `json:"sequence"` // the last record written before this digest
	Hash     string `json:"hash"`     // hex SHA-256 of that record's line
	// PrevDigestHash is the hex SHA-256 of the previous digest line, or
	// GenesisHash for the first digest of a log: digests form a chain of
	// their own, so that removing one is detected.
	PrevDigestHash string `json:"prevDigestHash"`
	Time           string `json:"time"`   // RFC 3339, UTC, nanoseconds
	Reason         string `json:"reason"` // ReasonPeriodic, ReasonRotate, ReasonClose or ReasonRecover
	// DiscardedBytes is, in a recover digest, how many bytes of an
	// incomplete last line Open cut from the file (a write torn by a crash;
	// never acknowledged). Zero otherwise.
	DiscardedBytes int64  `json:"discardedBytes"`
	KeyID          string `json:"keyId"`     // KeyID of the signing public key
	Signature      string `json:"signature"` // base64 Ed25519 signature of SignedMessage()
}

// SignedMessage returns the exact bytes the digest's signature covers:
//
//	kmsd audit digest v1\n
//	version 1\n
//	sequence <decimal>\n
//	hash <64 hex>\n
//	prevDigestHash <64 hex>\n
//	time <RFC 3339>\n
//	reason <reason>\n
//	discardedBytes <decimal>\n
//	keyId <hex>\n
//
// Verification checks every value's syntax first (none can hold a
// newline), so the message is unambiguous.
func (d *Digest) SignedMessage() []byte {
	var b bytes.Buffer
	b.WriteString(digestMagic + "\n")
	b.WriteString("version " + strconv.Itoa(d.Version) + "\n")
	b.WriteString("sequence " + strconv.FormatUint(d.Sequence, 10) + "\n")
	b.WriteString("hash " + d.Hash + "\n")
	b.WriteString("prevDigestHash " + d.PrevDigestHash + "\n")
	b.WriteString("time " + d.Time + "\n")
	b.WriteString("reason " + d.Reason + "\n")
	b.WriteString("discardedBytes " + strconv.FormatInt(d.DiscardedBytes, 10) + "\n")
	b.WriteString("keyId " + d.KeyID + "\n")
	return b.Bytes()
}

// checkSyntax reports a digest whose values are not well formed.
func (d *Digest) checkSyntax() error {
	switch {
	case d.Version != digestVersion:
		return fmt.Errorf("unknown digest version %d", d.Version)
	case d.Sequence == 0:
		return errors.New("digest sequence is 0")
	case !isHash(d.Hash):
		return errors.New("digest hash is not 64 lowercase hex digits")
	case !isHash(d.PrevDigestHash):
		return errors.New("digest prevDigestHash is not 64 lowercase hex digits")
	case d.DiscardedBytes < 0:
		return errors.New("digest discardedBytes is negative")
	case !isHex(d.KeyID):
		return errors.New("digest keyId is not lowercase hex")
	}
	switch d.Reason {
	case ReasonPeriodic, ReasonRotate, ReasonClose, ReasonRecover:
	default:
		return fmt.Errorf("unknown digest reason %q", d.Reason)
	}
	if t, err := time.Parse(time.RFC3339Nano, d.Time); err != nil || t.UTC().Format(time.RFC3339Nano) != d.Time {
		return fmt.Errorf("digest time %q is not an RFC 3339 UTC time", d.Time)
	}
	return nil
}

// lineHash is the SHA-256 of a line exactly as written, newline included:
// `sed -n Np FILE | sha256sum` prints it.
func lineHash(line []byte) [32]byte { return sha256.Sum256(line) }

func isHash(s string) bool { return len(s) == 64 && isHex(s) }

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// appendRecordLine appends the line of a record: body is the record's JSON
// without chain members ("{" + members + "}"), which the chain members are
// put in front of. The result is what json.Marshal gives for the record
// with Sequence and PrevHash set, plus a newline.
func appendRecordLine(dst []byte, seq uint64, prev *[32]byte, body []byte) []byte {
	dst = append(dst, `{"sequence":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"prevHash":"`...)
	dst = hex.AppendEncode(dst, prev[:])
	dst = append(dst, `",`...)
	dst = append(dst, body[1:]...)
	return append(dst, '\n')
}

// parsedLine is what Verify and Open need from a line.
type parsedLine struct {
	isDigest bool
	seq      uint64  // record
	prevHash string  // record
	eventID  string  // record ("" if it has none)
	digest   *Digest // digest
}

// lineShape has exactly the members that tell the two kinds of line apart,
// and a record's eventID.
type lineShape struct {
	Sequence *uint64 `json:"sequence"`
	PrevHash *string `json:"prevHash"`
	Digest   *Digest `json:"digest"`
	EventID  string  `json:"eventID"`
}

// parseLine parses one line, newline excluded. A record line has sequence
// and prevHash (and whatever else; its bytes are covered by the chain);
// a digest line has the member digest and nothing else.
func parseLine(line []byte) (parsedLine, error) {
	var s lineShape
	if err := json.Unmarshal(line, &s); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return parsedLine{}, fmt.Errorf("not valid JSON (%v at byte %d)", se, se.Offset)
		}
		return parsedLine{}, fmt.Errorf("not an audit record or digest: %v", err)
	}
	switch {
	case s.Digest != nil && s.Sequence == nil && s.PrevHash == nil:
		d := s.Digest
		if err := d.checkSyntax(); err != nil {
			return parsedLine{}, err
		}
		// Only {"digest":{…}} and no other member: decode generically to count.
		var m map[string]json.RawMessage
		if err := json.Unmarshal(line, &m); err != nil || len(m) != 1 {
			return parsedLine{}, errors.New("a digest line has members besides digest")
		}
		return parsedLine{isDigest: true, digest: d}, nil
	case s.Digest == nil && s.Sequence != nil && s.PrevHash != nil:
		if *s.Sequence == 0 {
			return parsedLine{}, errors.New("record sequence is 0")
		}
		if !isHash(*s.PrevHash) {
			return parsedLine{}, errors.New("record prevHash is not 64 lowercase hex digits")
		}
		return parsedLine{seq: *s.Sequence, prevHash: *s.PrevHash, eventID: s.EventID}, nil
	default:
		return parsedLine{}, errors.New("neither an audit record (sequence, prevHash, …) nor a digest line ({\"digest\":…})")
	}
}
