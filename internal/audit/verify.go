package audit

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Report is what Verify found. When Verify returns a *Problem, the report
// covers the log up to the problem.
type Report struct {
	Files           []string // the files read, in order
	Records         uint64   // records read
	Digests         int      // digests read (all valid)
	FirstSequence   uint64   // the first record's sequence: 1 unless older files were removed
	LastSequence    uint64   // the last record's sequence
	SignedThrough   uint64   // the last sequence a valid digest covers
	UnsignedRecords uint64   // records after the last digest
	Closed          bool     // the log ends with a close digest
	// Notes are facts worth knowing that are not problems: the log starts
	// after sequence 1, or kmsd restarted after an unclean shutdown.
	Notes []string
	// Duplicates are the records whose eventID an earlier record of the
	// log carries (the first MaxDuplicatesReported; DuplicateRecords
	// counts them all). The chain is intact, but one event is recorded
	// twice: a record kept in the store appended a second time (as kmsd
	// did when removing it from the store failed, before it looked for
	// kept records in its log; or after the file holding the first copy
	// was removed). Finding them costs 16 bytes of memory per record.
	Duplicates       []Duplicate
	DuplicateRecords uint64
}

// Duplicate is a record whose eventID an earlier record carries.
type Duplicate struct {
	EventID       string
	FirstSequence uint64 // the first record with this eventID
	Sequence      uint64 // this one
}

// MaxDuplicatesReported bounds Report.Duplicates.
const MaxDuplicatesReported = 100

// ProblemKind classifies a Problem.
type ProblemKind string

// The kinds of Problem.
const (
	ProblemNoLog     ProblemKind = "no-log"     // no files, or no record in them
	ProblemEmptyFile ProblemKind = "empty-file" // a file with nothing in it
	ProblemFileName  ProblemKind = "file-name"  // a file's name does not match its first record
	ProblemTorn      ProblemKind = "torn"       // the last line of a file has no newline: truncated inside a line
	ProblemMalformed ProblemKind = "malformed"  // a line is not a valid record or digest
	ProblemSequence  ProblemKind = "sequence"   // sequence not previous+1: records removed, inserted or reordered
	ProblemChain     ProblemKind = "chain"      // a hash does not match: a record altered, removed, inserted or moved
	ProblemKey       ProblemKind = "key"        // a digest was signed by another key than the one given
	ProblemSignature ProblemKind = "signature"  // a digest's signature is invalid: the digest was altered or forged
	ProblemDigest    ProblemKind = "digest"     // a valid digest does not match the records before it
	ProblemUnclosed  ProblemKind = "unclosed"   // the log does not end with a close digest
	// ProblemAnchor: a record that a checkpoint (the store's anchor, a
	// digest kept off the machine) vouches for is missing or different:
	// the log was cut back, replaced by an older copy, or removed.
	ProblemAnchor ProblemKind = "anchor"
)

// Checkpoint is a point the log is known to have reached, from outside
// the log: the store's anchor (Anchor), or a digest a DigestSink kept off
// the machine (ReadDigests). A log that does not hold record Sequence with
// line hash Hash was rolled back.
type Checkpoint struct {
	Sequence uint64
	Hash     string // hex SHA-256 of the record's line
	Source   string // where it comes from, for messages
}

// Problem is the first thing found wrong in a log: where, and what.
type Problem struct {
	Kind     ProblemKind
	File     string // the file of the line at fault ("" if none)
	Line     int    // its line number, from 1 (0 if none)
	Sequence uint64 // the sequence of the record concerned (0 if none)
	Message  string
}

func (p *Problem) Error() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			b.WriteString(":" + strconv.Itoa(p.Line))
		}
		if p.Sequence > 0 {
			b.WriteString(" (sequence " + strconv.FormatUint(p.Sequence, 10) + ")")
		}
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Verify checks the log in dir (its files audit-*.jsonl in name order)
// against the signing public key pub and the checkpoints; see
// VerifyFiles.
func Verify(dir string, pub ed25519.PublicKey, checkpoints ...Checkpoint) (*Report, error) {
	files, err := LogFiles(dir)
	if err != nil && !(errors.Is(err, os.ErrNotExist) && len(checkpoints) > 0) {
		return &Report{}, err
	}
	if len(files) == 0 {
		v := &verifier{rep: &Report{}}
		v.setCheckpoints(checkpoints)
		if p := v.missedCheckpoint(); p != nil {
			return v.rep, p
		}
		return &Report{}, &Problem{Kind: ProblemNoLog, Message: fmt.Sprintf("no audit log files (audit-*.jsonl) in %s", dir)}
	}
	return VerifyFiles(files, pub, checkpoints...)
}

// VerifyFiles checks a log made of the files at paths, in that order (for
// instance log files, or a copy of the lines a Log sent to Stdout). It
// returns a *Problem naming the first line at fault, or another error if
// a file cannot be read, or nil if:
//
//   - every line is a complete record or digest line;
//   - a file named like a log file starts with the record its name states;
//   - sequences go up by exactly one, from 1 (or from where the oldest file
//     present starts, which Report.Notes mention);
//   - every record's prevHash is the hash of the previous record's line
//     (GenesisHash for sequence 1);
//   - every digest is signed by pub, names the record just before it and
//     that record's hash, and carries the hash of the previous digest line
//     (GenesisHash for the first);
//   - the log holds every record a checkpoint names, with the checkpoint's
//     hash (ProblemAnchor otherwise: it was rolled back), except records
//     older than the oldest file present (Report.Notes say so);
//   - the last line is a close digest. A log that kmsd is still writing,
//     or that was not closed cleanly, or whose end was cut off, fails this
//     with ProblemUnclosed, and only this (Report says how many records
//     follow the last digest unsigned).
func VerifyFiles(paths []string, pub ed25519.PublicKey, checkpoints ...Checkpoint) (*Report, error) {
	v := &verifier{pub: pub, keyID: KeyID(pub), rep: &Report{}}
	if len(pub) != ed25519.PublicKeySize {
		return v.rep, errors.New("audit: the public key is not an Ed25519 key")
	}
	v.setCheckpoints(checkpoints)
	for _, path := range paths {
		if err := v.file(path); err != nil {
			return v.rep, err
		}
	}
	if v.pending != nil {
		return v.rep, v.pending(nil)
	}
	if p := v.missedCheckpoint(); p != nil {
		return v.rep, p
	}
	return v.rep, v.end()
}

// setCheckpoints indexes the checkpoints by sequence.
func (v *verifier) setCheckpoints(cps []Checkpoint) {
	for _, c := range cps {
		if c.Sequence == 0 {
			continue
		}
		if v.checkpoints == nil {
			v.checkpoints = map[uint64][]Checkpoint{}
		}
		v.checkpoints[c.Sequence] = append(v.checkpoints[c.Sequence], c)
		if c.Sequence > v.lastCheckpoint.Sequence {
			v.lastCheckpoint = c
		}
	}
}

// checkpoint checks the record just read against the checkpoints that
// name its sequence.
func (v *verifier) checkpoint(loc location, seq uint64, hash [32]byte) error {
	h := hex.EncodeToString(hash[:])
	for _, c := range v.checkpoints[seq] {
		if c.Hash != h {
			return v.problem(ProblemAnchor, loc, seq, "record %d is not the one %s vouches for (it hashes to %.16s…, not %.16s…): the log was replaced from here on", seq, c.Source, h, c.Hash)
		}
	}
	return nil
}

// missedCheckpoint reports a checkpoint past the log's last record, and
// notes checkpoints before its first one (files removed by retention).
func (v *verifier) missedCheckpoint() *Problem {
	for seq := range v.checkpoints {
		if v.haveRecord && seq < v.rep.FirstSequence {
			v.rep.Notes = append(v.rep.Notes, fmt.Sprintf("a checkpoint names record %d, which is older than the oldest file present: not checked", seq))
		}
	}
	c := v.lastCheckpoint
	if c.Sequence == 0 || (v.haveRecord && c.Sequence <= v.lastSeq) {
		return nil
	}
	if !v.haveRecord {
		return &Problem{Kind: ProblemAnchor, Sequence: c.Sequence, Message: fmt.Sprintf("the log holds no record, but %s shows it had reached record %d: the log was removed or replaced", c.Source, c.Sequence)}
	}
	return v.problem(ProblemAnchor, v.lastLoc, v.lastSeq, "the log ends at record %d, but %s shows it had reached record %d: %s removed from its end (the log was cut back, or replaced by an older copy)", v.lastSeq, c.Source, c.Sequence, records(v.lastSeq+1, c.Sequence)+verb(v.lastSeq+1, c.Sequence, " was", " were"))
}

type location struct {
	file string
	line int
}

// String names the line by the file's base name; Problem.File has the
// path, and messages say "line N" for lines of the problem's own file.
func (l location) String() string { return filepath.Base(l.file) + ":" + strconv.Itoa(l.line) }

// verb picks the singular or plural form for records(from, to).
func verb(from, to uint64, singular, plural string) string {
	if from == to {
		return singular
	}
	return plural
}

// records names a range of sequences: "record 5" or "records 5–9".
func records(from, to uint64) string {
	if from == to {
		return "record " + strconv.FormatUint(from, 10)
	}
	return fmt.Sprintf("records %d–%d", from, to)
}

type verifier struct {
	pub   ed25519.PublicKey
	keyID string
	rep   *Report

	haveRecord bool
	lastSeq    uint64
	lastHash   [32]byte
	lastLoc    location // of the last record

	anchored     bool     // lastDigest is known (the log starts at sequence 1, or a digest was seen)
	lastDigest   [32]byte // hash of the last digest line
	digestLoc    location // of the last digest, line 0 if none
	digest       *Digest  // the last digest
	lastIsDigest bool     // the last line read is a digest

	unsignedFrom    uint64 // the first record after the last digest, 0 if none
	unsignedFromLoc location

	checkpoints    map[uint64][]Checkpoint
	lastCheckpoint Checkpoint // the one with the highest sequence

	// eventIDs maps every eventID seen (by the first 16 bytes of its
	// SHA-256: 16 bytes a record, whatever its eventID's length) to the
	// sequence of its first record, to find duplicates.
	eventIDs map[[16]byte]uint64

	// pending, when set, is a problem found at the last line, whose
	// culprit the next line tells (nil: there is none, or it is unusable).
	pending func(next *nextLine) error
}

func (v *verifier) file(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	return v.read(path, f)
}

// read verifies the content of one file.
func (v *verifier) read(path string, r io.Reader) error {
	v.rep.Files = append(v.rep.Files, path)
	nameSeq, _, named := parseFileName(filepath.Base(path))

	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLineBytes+1)
	sc.Split(splitLines)
	n := 0
	for sc.Scan() {
		n++
		loc := location{path, n}
		line := sc.Bytes()
		if line[len(line)-1] != '\n' {
			if v.pending != nil {
				return v.pending(nil)
			}
			return v.problem(ProblemTorn, loc, 0, "the last line is incomplete (it has no newline): the file was cut inside a line, or a write was torn by a crash%s", v.lastGood())
		}
		p, err := parseLine(line[:len(line)-1])
		if v.pending != nil {
			if err != nil {
				return v.pending(nil)
			}
			return v.pending(&nextLine{loc: loc, line: line, p: p})
		}
		if err != nil {
			return v.problem(ProblemMalformed, loc, 0, "%v%s", err, v.lastGood())
		}
		if n == 1 && named && (p.isDigest || p.seq != nameSeq) {
			what := "a digest"
			if !p.isDigest {
				what = "record " + strconv.FormatUint(p.seq, 10)
			}
			return v.problem(ProblemFileName, loc, nameSeq, "the file's name says it starts with record %d, but its first line is %s: files were renamed or reordered, or the start of this file was removed", nameSeq, what)
		}
		if p.isDigest {
			err = v.digestLine(loc, line, p.digest)
		} else {
			err = v.record(loc, line, p)
		}
		if err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			if v.pending != nil {
				return v.pending(nil)
			}
			return v.problem(ProblemMalformed, location{path, n + 1}, 0, "the line is longer than %d bytes%s", maxLineBytes, v.lastGood())
		}
		return fmt.Errorf("audit: reading %s: %w", path, err)
	}
	if n == 0 && v.pending == nil {
		return v.problem(ProblemEmptyFile, location{path, 0}, 0, "the file is empty%s", v.lastGood())
	}
	return nil
}

// nextLine is the line after a suspicious one, which tells what happened.
type nextLine struct {
	loc  location
	line []byte
	p    parsedLine
}

// vouches reports whether next confirms that line is intact: next is a
// record whose prevHash is line's hash, or an authentic digest of it.
// ok is false when next cannot tell.
func (v *verifier) vouches(next *nextLine, line []byte) (yes, ok bool) {
	if next == nil {
		return false, false
	}
	h := lineHash(line)
	want := hex.EncodeToString(h[:])
	if !next.p.isDigest {
		return next.p.prevHash == want, true
	}
	d := next.p.digest
	sig, err := base64.StdEncoding.DecodeString(d.Signature)
	if err != nil || d.KeyID != v.keyID || !ed25519.Verify(v.pub, d.SignedMessage(), sig) {
		return false, false
	}
	return d.Hash == want, true
}

// splitLines is bufio.ScanLines keeping the newline, and returning a last
// line without one as is, so that the caller can tell it was cut.
func splitLines(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i+1], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

func (v *verifier) record(loc location, line []byte, p parsedLine) error {
	seq := p.seq
	if !v.haveRecord {
		v.rep.FirstSequence = seq
		if seq == 1 {
			if p.prevHash != GenesisHash {
				return v.problem(ProblemChain, loc, seq, "record 1 does not start from the genesis hash: it was altered")
			}
			v.anchored, v.lastDigest = true, genesis
		} else {
			v.rep.Notes = append(v.rep.Notes, fmt.Sprintf("the log starts at sequence %d (%s): the files before it are not here (removed by retention?), so the chain is verified from that record on", seq, loc))
		}
	} else {
		if seq <= v.lastSeq {
			if seq == v.lastSeq {
				return v.problem(ProblemSequence, loc, seq, "record %d appears twice, at %s and here: one of them was inserted", seq, v.lastLoc)
			}
			return v.problem(ProblemSequence, loc, seq, "record %d comes after record %d (%s): a record was inserted, duplicated or moved here", seq, v.lastSeq, v.lastLoc)
		}
		if seq != v.lastSeq+1 {
			missing := records(v.lastSeq+1, seq-1)
			lastSeq, lastLoc := v.lastSeq, v.lastLoc
			v.pending = func(next *nextLine) error {
				if next != nil && !next.p.isDigest && next.p.seq == lastSeq+1 {
					return v.problem(ProblemSequence, loc, seq, "records are out of order: record %d (%s) comes before record %d (%s); they were swapped or moved", seq, loc, lastSeq+1, next.loc)
				}
				return v.problem(ProblemSequence, loc, lastSeq+1, "%s missing: record %d (%s) is followed by record %d; records were removed or reordered", missing+verb(lastSeq+1, seq-1, " is", " are"), lastSeq, lastLoc, seq)
			}
			return nil
		}
		if want := hex.EncodeToString(v.lastHash[:]); p.prevHash != want {
			if v.digest != nil && v.digest.Sequence == v.lastSeq {
				// The previous record is vouched for by a valid digest, so
				// it is this record that was changed.
				return v.problem(ProblemChain, loc, seq, "record %d was altered: its prevHash does not match record %d, which the digest at %s vouches for", seq, v.lastSeq, v.digestLoc)
			}
			// Either the previous record was altered, or this one's
			// prevHash was. The next line tells: if it vouches for this
			// line, this line is original and the previous one changed.
			prevSeq, prevLoc := v.lastSeq, v.lastLoc
			line := bytes.Clone(line)
			v.pending = func(next *nextLine) error {
				yes, ok := v.vouches(next, line)
				switch {
				case !ok:
					return v.problem(ProblemChain, prevLoc, prevSeq, "record %d was altered, or the prevHash of record %d at %s was: record %d says the previous record hashes to %.16s…, but record %d hashes to %.16s…", prevSeq, seq, loc, seq, p.prevHash, prevSeq, want)
				case yes:
					return v.problem(ProblemChain, prevLoc, prevSeq, "record %d was altered: record %d (%s), itself intact, says it hashed to %.16s…, but now it hashes to %.16s…", prevSeq, seq, loc, p.prevHash, want)
				default:
					return v.problem(ProblemChain, loc, seq, "record %d was altered: its prevHash does not match record %d (%s), and the line after it (%s) does not match it either", seq, prevSeq, prevLoc, next.loc)
				}
			}
			return nil
		}
	}
	v.haveRecord = true
	v.lastSeq, v.lastHash, v.lastLoc = seq, lineHash(line), loc
	if err := v.checkpoint(loc, seq, v.lastHash); err != nil {
		return err
	}
	v.lastIsDigest = false
	if v.unsignedFrom == 0 {
		v.unsignedFrom, v.unsignedFromLoc = seq, loc
	}
	v.rep.Records++
	v.rep.LastSequence = seq
	v.rep.UnsignedRecords++
	v.checkEventID(p.eventID, seq)
	return nil
}

// checkEventID notes record seq's eventID, and reports it in the Report's
// Duplicates if an earlier record carries it.
func (v *verifier) checkEventID(id string, seq uint64) {
	if id == "" {
		return
	}
	h := sha256.Sum256([]byte(id))
	key := [16]byte(h[:16])
	first, seen := v.eventIDs[key]
	if !seen {
		if v.eventIDs == nil {
			v.eventIDs = make(map[[16]byte]uint64)
		}
		v.eventIDs[key] = seq
		return
	}
	v.rep.DuplicateRecords++
	if len(v.rep.Duplicates) < MaxDuplicatesReported {
		v.rep.Duplicates = append(v.rep.Duplicates, Duplicate{EventID: id, FirstSequence: first, Sequence: seq})
	}
}

func (v *verifier) digestLine(loc location, line []byte, d *Digest) error {
	if !v.haveRecord {
		return v.problem(ProblemDigest, loc, 0, "a digest comes before any record: the start of the log was removed")
	}
	if d.KeyID != v.keyID {
		return v.problem(ProblemKey, loc, 0, "the digest was signed by key %s, but the public key given is %s (wrong public key file?)", d.KeyID, v.keyID)
	}
	sig, err := base64.StdEncoding.DecodeString(d.Signature)
	if err != nil || !ed25519.Verify(v.pub, d.SignedMessage(), sig) {
		return v.problem(ProblemSignature, loc, 0, "the digest's signature is not valid: the digest line was altered or forged")
	}
	// The digest is authentic: what it says is what the writer saw.
	if d.Sequence != v.lastSeq {
		if d.Sequence > v.lastSeq {
			return v.problem(ProblemSequence, loc, v.lastSeq+1, "the digest signs record %d, but the last record before it is %d (%s): %s removed, or the digest was moved here", d.Sequence, v.lastSeq, v.lastLoc, records(v.lastSeq+1, d.Sequence)+verb(v.lastSeq+1, d.Sequence, " was", " were"))
		}
		return v.problem(ProblemSequence, loc, d.Sequence+1, "the digest signs record %d, but records up to %d (%s) come before it: records were inserted or moved before the digest, or the digest was moved here", d.Sequence, v.lastSeq, v.lastLoc)
	}
	if d.Hash != hex.EncodeToString(v.lastHash[:]) {
		return v.problem(ProblemChain, v.lastLoc, v.lastSeq, "record %d was altered: the digest at %s signed a different hash for it (or it was replaced)", v.lastSeq, loc)
	}
	if v.anchored && d.PrevDigestHash != hex.EncodeToString(v.lastDigest[:]) {
		prev := "the start of the log"
		if v.digestLoc.line > 0 {
			prev = "the digest at " + v.digestLoc.String()
		}
		return v.problem(ProblemDigest, loc, d.Sequence, "the digest chain is broken: this digest does not follow %s; a digest line between them was removed, or that one was altered", prev)
	}
	if d.Reason == ReasonRecover {
		note := fmt.Sprintf("kmsd restarted after an unclean shutdown at %s and signed the log through record %d", loc, d.Sequence)
		if d.DiscardedBytes > 0 {
			note += fmt.Sprintf(", cutting %d bytes of an incomplete line a crash left", d.DiscardedBytes)
		}
		v.rep.Notes = append(v.rep.Notes, note)
	}
	v.anchored, v.lastDigest, v.digestLoc, v.digest = true, lineHash(line), loc, d
	v.lastIsDigest = true
	v.unsignedFrom = 0
	v.rep.Digests++
	v.rep.SignedThrough = d.Sequence
	v.rep.UnsignedRecords = 0
	return nil
}

// end checks how the log ends.
func (v *verifier) end() error {
	if !v.haveRecord {
		return &Problem{Kind: ProblemNoLog, Message: "the log holds no records"}
	}
	if v.lastIsDigest && v.digest.Reason == ReasonClose {
		v.rep.Closed = true
		return nil
	}
	const why = "Either kmsd is still writing the log, or it stopped without closing it, or the end of the log was removed"
	if v.unsignedFrom != 0 {
		where := " (the log has no digest)"
		if v.digestLoc.line > 0 {
			where = " after the last digest (" + v.digestLoc.String() + ")"
		}
		return v.problem(ProblemUnclosed, v.unsignedFromLoc, v.unsignedFrom,
			"the log does not end with a close digest: %s%s %s unsigned; the chain is intact, but nothing proves that no record after %d was removed. %s",
			records(v.unsignedFrom, v.lastSeq), where, verb(v.unsignedFrom, v.lastSeq, "is", "are"), v.lastSeq, why)
	}
	return v.problem(ProblemUnclosed, v.digestLoc, v.digest.Sequence,
		"the log ends with a %s digest, not a close digest: records after %d and the close digest may have been removed. %s",
		v.digest.Reason, v.digest.Sequence, why)
}

// lastGood describes the last verified record, for messages.
func (v *verifier) lastGood() string {
	if !v.haveRecord {
		return ""
	}
	return fmt.Sprintf(" (the last good record is %d at %s)", v.lastSeq, v.lastLoc)
}

func (v *verifier) problem(kind ProblemKind, loc location, seq uint64, format string, args ...any) *Problem {
	msg := fmt.Sprintf(format, args...)
	if loc.file != "" {
		msg = strings.ReplaceAll(msg, filepath.Base(loc.file)+":", "line ")
	}
	return &Problem{Kind: kind, File: loc.file, Line: loc.line, Sequence: seq, Message: msg}
}
