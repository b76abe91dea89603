package shamir

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The text form of a share, version 1:
//
//	kmsd-share-<index>-<hex>
//
// <index> is the share's index in decimal (for people: which share is
// this), and <hex> is lowercase hex of:
//
//	offset  size  field
//	     0     1  format version, 0x01
//	     1     1  threshold K
//	     2     1  index (must equal <index>)
//	     3     8  set id
//	    11     n  value (n >= 1)
//	  11+n     4  checksum: SHA-256("kmsd share v1" || bytes 0..11+n)[:4]
//
// The checksum catches a mistyped or truncated share (a random change
// passes it with probability 2^-32) before it is combined; it is not a
// security check, since anyone holding a share can recompute it. Whether
// the shares recover the right secret is for the caller to check.
const (
	textPrefix      = "kmsd-share-"
	textVersion     = 0x01
	textHeaderLen   = 3 + SetIDSize
	textChecksumLen = 4
	// checksumLabel domain-separates the checksum hash. Part of the
	// format; never change it.
	checksumLabel = "kmsd share v1"
)

// ErrMalformed is wrapped by every error of Parse.
var ErrMalformed = errors.New("not a valid kmsd share")

// Encode returns the text form of s. The text holds the share's secret
// value: print it for its holder only, never log it.
func (s Share) Encode() string {
	b := make([]byte, 0, textHeaderLen+len(s.Value)+textChecksumLen)
	b = append(b, textVersion, s.Threshold, s.Index)
	b = append(b, s.Set[:]...)
	b = append(b, s.Value...)
	b = append(b, checksum(b)...)
	out := textPrefix + strconv.Itoa(int(s.Index)) + "-" + hex.EncodeToString(b)
	clear(b)
	return out
}

// Parse decodes the text form of a share. Leading and trailing white space
// is ignored; anything else out of place is refused with an error that
// wraps ErrMalformed and never quotes the share.
func Parse(text string) (Share, error) {
	text = strings.TrimSpace(text)
	rest, ok := strings.CutPrefix(text, textPrefix)
	if !ok {
		return Share{}, fmt.Errorf("%w: it should start with %q", ErrMalformed, textPrefix)
	}
	idxText, body, ok := strings.Cut(rest, "-")
	if !ok {
		return Share{}, fmt.Errorf("%w: no '-' after the share number", ErrMalformed)
	}
	idx, err := strconv.ParseUint(idxText, 10, 8)
	if err != nil || idx == 0 || strconv.FormatUint(idx, 10) != idxText {
		return Share{}, fmt.Errorf("%w: the share number must be 1 to 255", ErrMalformed)
	}
	if len(body)%2 != 0 {
		return Share{}, fmt.Errorf("%w: odd number of hex digits (a character is missing or extra)", ErrMalformed)
	}
	b, err := hex.DecodeString(body)
	if err != nil {
		return Share{}, fmt.Errorf("%w: a character is not a hex digit", ErrMalformed)
	}
	defer clear(b)
	if len(b) < textHeaderLen+1+textChecksumLen {
		return Share{}, fmt.Errorf("%w: too short (%d hex digits)", ErrMalformed, len(body))
	}
	data, sum := b[:len(b)-textChecksumLen], b[len(b)-textChecksumLen:]
	if !equal(sum, checksum(data)) {
		return Share{}, fmt.Errorf("%w: checksum mismatch (share %d is mistyped or damaged)", ErrMalformed, idx)
	}
	if data[0] != textVersion {
		return Share{}, fmt.Errorf("%w: unknown format version %d", ErrMalformed, data[0])
	}
	s := Share{Threshold: data[1], Index: data[2]}
	if uint64(s.Index) != idx {
		return Share{}, fmt.Errorf("%w: it is named share %d but holds share %d", ErrMalformed, idx, s.Index)
	}
	if s.Threshold == 0 {
		return Share{}, fmt.Errorf("%w: threshold 0", ErrMalformed)
	}
	copy(s.Set[:], data[3:textHeaderLen])
	s.Value = append([]byte(nil), data[textHeaderLen:]...)
	return s, nil
}

func checksum(data []byte) []byte {
	h := sha256.New()
	h.Write([]byte(checksumLabel))
	h.Write(data)
	return h.Sum(nil)[:textChecksumLen]
}
