package envelope

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"slices"
)

// DecryptOptions configures Decrypt. Set exactly one of Keyring and CMM.
type DecryptOptions struct {
	// Keyring obtains the data key; it is wrapped in NewDefaultCMM.
	Keyring Keyring
	// CMM supplies the decryption materials instead of Keyring.
	CMM CMM
	// EncryptionContext is the context the caller expects (the
	// specification's reproduced encryption context): every pair that is
	// also stored in the message must have the same value, and pairs that
	// are not stored are authenticated as context that was required but not
	// stored at encryption.
	EncryptionContext map[string]string
	// MaxEncryptedDataKeys, when positive, rejects messages with more
	// encrypted data keys before reading them.
	MaxEncryptedDataKeys int
	// RejectSigned fails right after the header if the message is signed,
	// for callers that cannot wait for the signature before using output.
	RejectSigned bool
	// Concurrency is the number of frames opened in parallel; 0 means
	// GOMAXPROCS.
	Concurrency int
}

// Decrypt reads one message from src and writes its plaintext to dst. The
// message must be the whole input: bytes after its end are an error.
//
// Plaintext is written only after the frame it comes from has been
// authenticated; the last frame of a signed message is written only after
// the signature has been verified. When Decrypt returns an error, some
// plaintext may already have been written and must be discarded.
func Decrypt(ctx context.Context, dst io.Writer, src io.Reader, opts DecryptOptions) (*MessageInfo, error) {
	cmm, err := pickCMM(opts.Keyring, opts.CMM)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(src, 64<<10)
	h, err := parseHeader(br, opts.MaxEncryptedDataKeys)
	if err != nil {
		return nil, err
	}
	if opts.RejectSigned && h.suite.Signed() {
		return nil, fmt.Errorf("the message is signed (%v) and signed messages are rejected", h.suite)
	}
	mats, err := cmm.DecryptMaterials(ctx, &DecryptMaterialsRequest{
		Suite:             h.suite,
		EncryptedDataKeys: h.edks,
		EncryptionContext: maps.Clone(h.context),
		ReproducedContext: maps.Clone(opts.EncryptionContext),
	})
	if err != nil {
		return nil, fmt.Errorf("getting decryption materials: %w", err)
	}
	defer clear(mats.DataKey)
	if err := checkDecryptionMaterials(mats, h); err != nil {
		return nil, err
	}

	encKey, commitKey, err := deriveKeys(h.suite, mats.DataKey, h.messageID)
	if err != nil {
		return nil, err
	}
	defer clear(encKey)
	// The commitment check makes sure this data key is the only one the
	// message can be decrypted with. Compared in constant time because
	// the derived value comes from the secret data key.
	if subtle.ConstantTimeCompare(commitKey, h.commitKey) != 1 {
		return nil, fmt.Errorf("%w: the data key does not match the key commitment in the header", ErrAuthentication)
	}
	authOnly, err := serializeContext(filterContext(mats.EncryptionContext, mats.RequiredContextKeys))
	if err != nil {
		return nil, err
	}
	aead, err := newAEAD(encKey)
	if err != nil {
		return nil, err
	}
	var zeroIV [ivLen]byte
	if _, err := aead.Open(nil, zeroIV[:], h.tag, append(slices.Clip(h.body), authOnly...)); err != nil {
		return nil, fmt.Errorf("%w: header authentication tag does not verify", ErrAuthentication)
	}

	var sig hash.Hash
	if h.suite.Signed() {
		sig = sha512.New384()
		sig.Write(h.body)
		sig.Write(h.tag)
	}
	total, err := decryptBody(ctx, dst, br, sig, mats.VerificationKey, h, encKey, opts.Concurrency)
	if err != nil {
		return nil, err
	}
	return &MessageInfo{
		Suite:               h.suite,
		MessageID:           h.messageID,
		EncryptionContext:   maps.Clone(mats.EncryptionContext),
		RequiredContextKeys: slices.Clone(mats.RequiredContextKeys),
		EncryptedDataKeys:   h.edks,
		FrameLength:         h.frameLength,
		PlaintextLength:     total,
	}, nil
}

// checkDecryptionMaterials enforces what decryption needs of the
// materials, whatever CMM produced them.
func checkDecryptionMaterials(m *DecryptionMaterials, h *header) error {
	if m.Suite != h.suite {
		return fmt.Errorf("decryption materials are for suite %v, the message uses %v", m.Suite, h.suite)
	}
	if len(m.DataKey) != dataKeyLen {
		return fmt.Errorf("decryption materials: data key is %d bytes, want %d", len(m.DataKey), dataKeyLen)
	}
	if m.Suite.Signed() != (m.VerificationKey != nil) {
		return fmt.Errorf("decryption materials: verification key present: %v, but suite %v", m.VerificationKey != nil, m.Suite)
	}
	for _, k := range m.RequiredContextKeys {
		if _, ok := m.EncryptionContext[k]; !ok {
			return fmt.Errorf("decryption materials: required encryption context key %q is not in the encryption context", k)
		}
	}
	return nil
}

// appendN appends exactly n bytes from r to dst, growing dst only as data
// arrives (a length field of a hostile message costs nothing until the
// bytes are really there).
func appendN(r io.Reader, dst []byte, n int, at string) ([]byte, error) {
	start := len(dst)
	dst, _, err := fill(r, dst, start+n, max(start+n, 2*batchTarget))
	if err != nil {
		return nil, fmt.Errorf("reading message: %w", err)
	}
	if len(dst)-start != n {
		return nil, fmt.Errorf("%w: input ends in %s", ErrTruncated, at)
	}
	return dst, nil
}

func truncated(err error, at string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: input ends in %s", ErrTruncated, at)
	}
	return fmt.Errorf("reading message (%s): %w", at, err)
}

// decryptBody reads, authenticates and writes the frames, and for a signed
// message verifies the footer's signature before writing the last batch.
//
// The producer copies each frame verbatim (framing included) into the
// batch and checks its framing; the workers open the frames into b.out;
// the consumer, in order, feeds the raw bytes to the signature hash and
// writes the plaintext. Hashing there keeps the one sequential, expensive
// step (SHA-384) off the reading goroutine.
func decryptBody(ctx context.Context, dst io.Writer, br *bufio.Reader, sig hash.Hash, pub *ecdsa.PublicKey, h *header, encKey []byte, concurrency int) (int64, error) {
	p := newPipeline(concurrency, h.frameLength)
	p.work = func(b *batch) {
		aead, err := newAEAD(encKey)
		if err != nil {
			b.err = err
			return
		}
		b.out = slices.Grow(b.out[:0], len(b.in))
		for _, f := range b.frames {
			iv := frameIV(f.seq)
			b.aad = appendBodyAAD(b.aad[:0], h.messageID, f.final, f.seq, f.n)
			if b.out, err = aead.Open(b.out, iv[:], b.in[f.off:f.off+f.n+tagLen], b.aad); err != nil {
				b.err = fmt.Errorf("%w: frame %d does not verify", ErrAuthentication, f.seq)
				return
			}
		}
	}
	var total int64
	p.consume = func(b *batch) error {
		if sig != nil {
			sig.Write(b.in)
			// The batch with the final frame is written only once the
			// signature over the whole message has been verified.
			if b.footer != nil && !ecdsa.VerifyASN1(pub, sig.Sum(nil), b.footer) {
				return fmt.Errorf("%w: the message signature does not verify", ErrAuthentication)
			}
		}
		if _, err := dst.Write(b.out); err != nil {
			return fmt.Errorf("writing plaintext: %w", err)
		}
		total += int64(len(b.out))
		return nil
	}

	fl := int(h.frameLength)
	err := p.run(ctx, func(next func() (*batch, error), emit func(*batch)) error {
		seq := uint64(1)
		for {
			b, err := next()
			if err != nil {
				return err
			}
			final := false
			for !final && len(b.in) < batchTarget {
				at := fmt.Sprintf("frame %d", seq)
				start := len(b.in)
				if b.in, err = appendN(br, b.in, 4, at); err != nil {
					return err
				}
				final = binary.BigEndian.Uint32(b.in[start:]) == finalFrameMarker
				rest := ivLen // a regular frame: its first 4 bytes were the sequence number
				if final {
					rest = 4 + ivLen + 4 // sequence number, IV, content length
				}
				if b.in, err = appendN(br, b.in, rest, at); err != nil {
					return err
				}
				fields := b.in[start:]
				if final {
					fields = fields[4:]
				}
				if got := binary.BigEndian.Uint32(fields); uint64(got) != seq {
					return fmt.Errorf("%w: frame %d has sequence number %d", ErrAuthentication, seq, got)
				}
				// The IV is determined by the sequence number; any other
				// value is not canonical (and would not be used anyway).
				if iv := frameIV(uint32(seq)); !bytes.Equal(fields[4:4+ivLen], iv[:]) {
					return fmt.Errorf("%w: frame %d has a non-canonical IV", ErrMalformed, seq)
				}
				n := fl
				if final {
					l := binary.BigEndian.Uint32(fields[4+ivLen:])
					if l > h.frameLength {
						return fmt.Errorf("%w: final frame content of %d bytes exceeds the frame length %d", ErrMalformed, l, h.frameLength)
					}
					n = int(l)
				}
				off := len(b.in)
				if b.in, err = appendN(br, b.in, n+tagLen, at); err != nil {
					return err
				}
				b.frames = append(b.frames, frame{seq: uint32(seq), final: final, off: off, n: n})
				seq++
			}
			if final {
				if b.footer, err = readFooter(br, sig != nil); err != nil {
					return err
				}
			}
			emit(b)
			if final {
				return nil
			}
		}
	})
	return total, err
}

// readFooter reads the footer of a signed message (returning its
// signature) and checks that nothing follows the message. For an unsigned
// message it returns an empty, non-nil signature.
func readFooter(br *bufio.Reader, signed bool) ([]byte, error) {
	s := []byte{}
	if signed {
		var l [2]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			return nil, truncated(err, "the footer")
		}
		s = make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(br, s); err != nil {
			return nil, truncated(err, "the footer")
		}
	}
	if _, err := br.ReadByte(); err == nil {
		return nil, fmt.Errorf("%w: data follows the end of the message", ErrMalformed)
	} else if !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading message: %w", err)
	}
	return s, nil
}
