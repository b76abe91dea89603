package envelope

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// Fixed values of message format version 2.
const (
	formatVersion2 = 0x02
	formatVersion1 = 0x01
	contentFramed  = 0x02
	contentSingle  = 0x01
)

// header is a parsed or to-be-written version 2 message header.
type header struct {
	suite       Suite
	messageID   []byte            // 32 bytes
	context     map[string]string // the stored encryption context
	edks        []EncryptedDataKey
	frameLength uint32
	commitKey   []byte // algorithm suite data: 32 bytes
	body        []byte // the serialized header body, the AAD of the header tag
	tag         []byte // header authentication tag
}

// marshalBody serializes the header body into h.body:
// version, suite, message ID, AAD (stored context), encrypted data keys,
// content type, frame length, algorithm suite data.
func (h *header) marshalBody() error {
	ec, err := serializeContext(h.context)
	if err != nil {
		return err
	}
	if len(ec) > maxUint16 {
		return fmt.Errorf("serialized encryption context is %d bytes, at most %d fit in a message header", len(ec), maxUint16)
	}
	if len(h.edks) == 0 || len(h.edks) > maxUint16 {
		return fmt.Errorf("%d encrypted data keys: a message needs 1 to %d", len(h.edks), maxUint16)
	}
	b := []byte{formatVersion2}
	b = binary.BigEndian.AppendUint16(b, uint16(h.suite))
	b = append(b, h.messageID...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(ec)))
	b = append(b, ec...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.edks)))
	for i, k := range h.edks {
		if b, err = appendEDK(b, k); err != nil {
			return fmt.Errorf("encrypted data key %d: %w", i+1, err)
		}
	}
	b = append(b, contentFramed)
	b = binary.BigEndian.AppendUint32(b, h.frameLength)
	b = append(b, h.commitKey...)
	h.body = b
	return nil
}

// appendEDK appends one serialized encrypted data key entry.
func appendEDK(b []byte, k EncryptedDataKey) ([]byte, error) {
	if !utf8.ValidString(k.ProviderID) {
		return nil, errors.New("provider ID is not valid UTF-8")
	}
	for _, f := range [3][]byte{[]byte(k.ProviderID), k.ProviderInfo, k.Ciphertext} {
		if len(f) > maxUint16 {
			return nil, fmt.Errorf("field of %d bytes, at most %d fit", len(f), maxUint16)
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(f)))
		b = append(b, f...)
	}
	return b, nil
}

// recordingReader reads from a bufio.Reader and keeps a copy of every byte,
// because the header body is needed verbatim (as AAD and for the signature).
type recordingReader struct {
	r   *bufio.Reader
	raw []byte
	at  string // the field being read, for error messages
}

// next reads exactly n bytes. Running out of input is ErrTruncated. The
// bytes are copied into raw as they arrive, so a header that claims to be
// huge costs memory only as fast as the input really supplies it.
func (rr *recordingReader) next(n int) ([]byte, error) {
	start := len(rr.raw)
	for len(rr.raw)-start < n {
		chunk := min(n-(len(rr.raw)-start), 64<<10)
		rr.raw = append(rr.raw, make([]byte, chunk)...)
		got, err := io.ReadFull(rr.r, rr.raw[len(rr.raw)-chunk:])
		if err != nil {
			rr.raw = rr.raw[:len(rr.raw)-chunk+got]
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("%w: input ends in the header (%s)", ErrTruncated, rr.at)
			}
			return nil, fmt.Errorf("reading message header: %w", err)
		}
	}
	return rr.raw[start : start+n], nil
}

func (rr *recordingReader) u8(at string) (byte, error) {
	rr.at = at
	b, err := rr.next(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (rr *recordingReader) u16(at string) (uint16, error) {
	rr.at = at
	b, err := rr.next(2)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint16(b), nil
}

func (rr *recordingReader) u32(at string) (uint32, error) {
	rr.at = at
	b, err := rr.next(4)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(b), nil
}

func (rr *recordingReader) bytes(at string, n int) ([]byte, error) {
	rr.at = at
	b, err := rr.next(n)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), b...), nil
}

// parseHeader reads a version 2 header (body and authentication tag) and
// checks everything that can be checked without the data key. maxEDKs > 0
// limits the number of encrypted data keys; the count is checked before any
// of them is read.
func parseHeader(r *bufio.Reader, maxEDKs int) (*header, error) {
	rr := &recordingReader{r: r}
	first, err := r.Peek(2)
	if len(first) == 0 && errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: the input is empty", ErrTruncated)
	}
	// A base64-encoded message starts with "AY" (version 1) or "Ag"
	// (version 2); say so rather than reporting a bad version byte.
	if len(first) == 2 && first[0] == 'A' && (first[1] == 'Y' || first[1] == 'g') {
		return nil, fmt.Errorf("%w: the input looks base64-encoded; decode it first", ErrMalformed)
	}
	v, err := rr.u8("version")
	if err != nil {
		return nil, err
	}
	if v == formatVersion1 {
		return nil, fmt.Errorf("%w: message format version 1 has no key commitment and is not allowed by the commitment policy REQUIRE_ENCRYPT_REQUIRE_DECRYPT", ErrMalformed)
	}
	if v != formatVersion2 {
		return nil, fmt.Errorf("%w: unknown message format version 0x%02X", ErrMalformed, v)
	}
	h := &header{}
	s, err := rr.u16("algorithm suite")
	if err != nil {
		return nil, err
	}
	h.suite = Suite(s)
	if err := checkSuite(h.suite); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if h.messageID, err = rr.bytes("message ID", messageIDLen); err != nil {
		return nil, err
	}
	ecLen, err := rr.u16("AAD length")
	if err != nil {
		return nil, err
	}
	ecBytes, err := rr.bytes("AAD", int(ecLen))
	if err != nil {
		return nil, err
	}
	if h.context, err = parseContext(ecBytes); err != nil {
		return nil, err
	}
	n, err := rr.u16("encrypted data key count")
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: the message has no encrypted data key", ErrMalformed)
	}
	if maxEDKs > 0 && int(n) > maxEDKs {
		return nil, fmt.Errorf("%w: the message has %d encrypted data keys, more than the limit of %d", ErrMalformed, n, maxEDKs)
	}
	h.edks = make([]EncryptedDataKey, n)
	for i := range h.edks {
		var f [3][]byte
		for j, name := range [3]string{"provider ID", "provider info", "ciphertext"} {
			at := fmt.Sprintf("encrypted data key %d %s", i+1, name)
			l, err := rr.u16(at)
			if err != nil {
				return nil, err
			}
			if f[j], err = rr.bytes(at, int(l)); err != nil {
				return nil, err
			}
		}
		if !utf8.Valid(f[0]) {
			return nil, fmt.Errorf("%w: encrypted data key %d: provider ID is not valid UTF-8", ErrMalformed, i+1)
		}
		h.edks[i] = EncryptedDataKey{ProviderID: string(f[0]), ProviderInfo: f[1], Ciphertext: f[2]}
	}
	ct, err := rr.u8("content type")
	if err != nil {
		return nil, err
	}
	switch ct {
	case contentFramed:
	case contentSingle:
		// Non-framed content can only be authenticated after all of it has
		// been read, so it cannot be streamed in constant memory; no SDK
		// has written it since message format version 2 began.
		return nil, fmt.Errorf("%w: non-framed content is not supported", ErrMalformed)
	default:
		return nil, fmt.Errorf("%w: unknown content type 0x%02X", ErrMalformed, ct)
	}
	if h.frameLength, err = rr.u32("frame length"); err != nil {
		return nil, err
	}
	if h.frameLength == 0 {
		return nil, fmt.Errorf("%w: frame length 0 in framed content", ErrMalformed)
	}
	if h.commitKey, err = rr.bytes("algorithm suite data", commitKeyLen); err != nil {
		return nil, err
	}
	h.body = rr.raw
	rr.raw = nil
	if h.tag, err = rr.bytes("header authentication tag", tagLen); err != nil {
		return nil, err
	}
	return h, nil
}
