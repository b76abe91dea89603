package envelope

import (
	"bufio"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"slices"
)

// EncryptOptions configures Encrypt. Set exactly one of Keyring and CMM.
type EncryptOptions struct {
	// Keyring supplies the data key; it is wrapped in NewDefaultCMM.
	Keyring Keyring
	// CMM supplies the encryption materials instead of Keyring.
	CMM CMM
	// EncryptionContext is authenticated with the message and stored in
	// its header (see NewRequiredContextCMM for pairs that are not stored).
	// Keys may not start with "aws-crypto-".
	EncryptionContext map[string]string
	// Suite defaults to DefaultSuite (signed).
	Suite Suite
	// FrameLength is the plaintext length of each regular frame; 0 means
	// DefaultFrameLength.
	FrameLength uint32
	// MaxPlaintextLength, when positive, is a bound on the plaintext: it
	// is given to the CMM (a caching CMM needs it to count bytes) and
	// Encrypt fails if the input turns out to be longer.
	MaxPlaintextLength int64
	// MaxEncryptedDataKeys, when positive, limits the number of encrypted
	// data keys the materials may carry.
	MaxEncryptedDataKeys int
	// Concurrency is the number of frames sealed in parallel; 0 means
	// GOMAXPROCS.
	Concurrency int

	// emptyFinalFrame makes an input that is an exact multiple of the frame
	// length end with an empty final frame (which the format allows), so
	// that tests can produce such messages.
	emptyFinalFrame bool
}

// MessageInfo describes a message that was encrypted or decrypted.
type MessageInfo struct {
	Suite     Suite
	MessageID []byte
	// EncryptionContext is the message's full encryption context, including
	// pairs that were not stored and the aws-crypto-public-key of a signed
	// message.
	EncryptionContext map[string]string
	// RequiredContextKeys are the keys of EncryptionContext that were
	// authenticated but not stored in the message.
	RequiredContextKeys []string
	EncryptedDataKeys   []EncryptedDataKey
	FrameLength         uint32
	// PlaintextLength is the number of plaintext bytes processed.
	PlaintextLength int64
}

// Encrypt reads plaintext from src until EOF and writes one message to dst.
// It returns nil only if the whole message was written.
func Encrypt(ctx context.Context, dst io.Writer, src io.Reader, opts EncryptOptions) (*MessageInfo, error) {
	cmm, err := pickCMM(opts.Keyring, opts.CMM)
	if err != nil {
		return nil, err
	}
	frameLen := opts.FrameLength
	if frameLen == 0 {
		frameLen = DefaultFrameLength
	}
	if opts.Suite != 0 {
		if err := checkSuite(opts.Suite); err != nil {
			return nil, err
		}
	}
	if err := checkCallerContext(opts.EncryptionContext); err != nil {
		return nil, err
	}
	maxLen := opts.MaxPlaintextLength
	if maxLen <= 0 {
		maxLen = -1
	}
	mats, err := cmm.GetEncryptionMaterials(ctx, &EncryptionMaterialsRequest{
		EncryptionContext:  maps.Clone(opts.EncryptionContext),
		Suite:              opts.Suite,
		MaxPlaintextLength: maxLen,
	})
	if err != nil {
		return nil, fmt.Errorf("getting encryption materials: %w", err)
	}
	defer clear(mats.DataKey)
	if err := checkEncryptionMaterials(mats, opts.MaxEncryptedDataKeys); err != nil {
		return nil, fmt.Errorf("encryption materials: %w", err)
	}

	// The message ID is the HKDF salt: it must be random so that each
	// message gets its own frame key even when a data key is reused.
	messageID := make([]byte, messageIDLen)
	if _, err := rand.Read(messageID); err != nil {
		return nil, fmt.Errorf("generating message ID: %w", err)
	}
	encKey, commitKey, err := deriveKeys(mats.Suite, mats.DataKey, messageID)
	if err != nil {
		return nil, err
	}
	defer clear(encKey)
	h := &header{
		suite:       mats.Suite,
		messageID:   messageID,
		context:     withoutKeys(mats.EncryptionContext, mats.RequiredContextKeys),
		edks:        mats.EncryptedDataKeys,
		frameLength: frameLen,
		commitKey:   commitKey,
	}
	if err := h.marshalBody(); err != nil {
		return nil, fmt.Errorf("message header: %w", err)
	}
	authOnly, err := serializeContext(filterContext(mats.EncryptionContext, mats.RequiredContextKeys))
	if err != nil {
		return nil, err
	}
	aead, err := newAEAD(encKey)
	if err != nil {
		return nil, err
	}
	// The header tag authenticates the header body and the pairs that are
	// not stored; it is an empty-plaintext GCM seal under IV 0.
	var zeroIV [ivLen]byte
	h.tag = aead.Seal(nil, zeroIV[:], nil, append(slices.Clip(h.body), authOnly...))

	var sig hash.Hash
	if mats.Suite.Signed() {
		sig = sha512.New384()
	}
	out := &hashingWriter{w: dst, h: sig}
	if err := out.write(h.body); err != nil {
		return nil, err
	}
	if err := out.write(h.tag); err != nil {
		return nil, err
	}

	total, err := encryptBody(ctx, out, src, encKey, messageID, frameLen, opts)
	if err != nil {
		return nil, err
	}
	if sig != nil {
		if err := writeFooter(out, mats.SigningKey, sig.Sum(nil)); err != nil {
			return nil, err
		}
	}
	return &MessageInfo{
		Suite:               mats.Suite,
		MessageID:           messageID,
		EncryptionContext:   maps.Clone(mats.EncryptionContext),
		RequiredContextKeys: slices.Clone(mats.RequiredContextKeys),
		EncryptedDataKeys:   slices.Clone(mats.EncryptedDataKeys),
		FrameLength:         frameLen,
		PlaintextLength:     total,
	}, nil
}

func pickCMM(kr Keyring, cmm CMM) (CMM, error) {
	switch {
	case kr != nil && cmm != nil:
		return nil, errors.New("set either a Keyring or a CMM, not both")
	case cmm != nil:
		return cmm, nil
	case kr != nil:
		return NewDefaultCMM(kr), nil
	}
	return nil, errors.New("no Keyring or CMM given")
}

// checkEncryptionMaterials enforces what the format needs of the materials,
// whatever CMM produced them.
func checkEncryptionMaterials(m *EncryptionMaterials, maxEDKs int) error {
	if err := checkSuite(m.Suite); err != nil {
		return err
	}
	if len(m.DataKey) != dataKeyLen {
		return fmt.Errorf("data key is %d bytes, want %d", len(m.DataKey), dataKeyLen)
	}
	if len(m.EncryptedDataKeys) == 0 {
		return errors.New("no encrypted data key")
	}
	if maxEDKs > 0 && len(m.EncryptedDataKeys) > maxEDKs {
		return fmt.Errorf("%d encrypted data keys, more than the limit of %d", len(m.EncryptedDataKeys), maxEDKs)
	}
	if m.Suite.Signed() != (m.SigningKey != nil) {
		return fmt.Errorf("signing key present: %v, but suite %v", m.SigningKey != nil, m.Suite)
	}
	for _, k := range m.RequiredContextKeys {
		if _, ok := m.EncryptionContext[k]; !ok {
			return fmt.Errorf("required encryption context key %q is not in the encryption context", k)
		}
	}
	return nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("gcm: %w", err)
	}
	return aead, nil
}

// hashingWriter writes to w and feeds the signature hash (if any).
type hashingWriter struct {
	w io.Writer
	h hash.Hash
}

func (hw *hashingWriter) write(p []byte) error {
	if hw.h != nil {
		hw.h.Write(p)
	}
	if _, err := hw.w.Write(p); err != nil {
		return fmt.Errorf("writing message: %w", err)
	}
	return nil
}

// frameOverhead is the most a frame adds to its plaintext: the final-frame
// marker, sequence number, IV, content length and tag.
const frameOverhead = 4 + 4 + ivLen + 4 + tagLen

// encryptBody frames src and writes the frames through the pipeline.
func encryptBody(ctx context.Context, out *hashingWriter, src io.Reader, encKey, messageID []byte, frameLen uint32, opts EncryptOptions) (int64, error) {
	p := newPipeline(opts.Concurrency, frameLen)
	fl := int(frameLen)
	perBatch := max(1, batchTarget/fl)
	batchLen := perBatch * fl
	p.work = func(b *batch) {
		aead, err := newAEAD(encKey)
		if err != nil {
			b.err = err
			return
		}
		// Size the output once: Seal grows a short slice to the exact size,
		// which would copy the batch over and over.
		b.out = slices.Grow(b.out[:0], len(b.in)+len(b.frames)*frameOverhead)
		for _, f := range b.frames {
			pt := b.in[f.off : f.off+f.n]
			if f.final {
				b.out = binary.BigEndian.AppendUint32(b.out, finalFrameMarker)
			}
			b.out = binary.BigEndian.AppendUint32(b.out, f.seq)
			iv := frameIV(f.seq)
			b.out = append(b.out, iv[:]...)
			if f.final {
				b.out = binary.BigEndian.AppendUint32(b.out, uint32(f.n))
			}
			b.aad = appendBodyAAD(b.aad[:0], messageID, f.final, f.seq, f.n)
			b.out = aead.Seal(b.out, iv[:], pt, b.aad)
		}
	}
	p.consume = func(b *batch) error { return out.write(b.out) }

	br := bufio.NewReaderSize(src, 64<<10)
	var total int64
	err := p.run(ctx, func(next func() (*batch, error), emit func(*batch)) error {
		seq := uint64(1)
		for {
			b, err := next()
			if err != nil {
				return err
			}
			var ended bool
			b.in, ended, err = fill(br, b.in, batchLen, batchLen)
			if err != nil {
				return fmt.Errorf("reading plaintext: %w", err)
			}
			total += int64(len(b.in))
			if opts.MaxPlaintextLength > 0 && total > opts.MaxPlaintextLength {
				return fmt.Errorf("plaintext is longer than MaxPlaintextLength (%d bytes)", opts.MaxPlaintextLength)
			}
			if !ended {
				// A full batch: the message ends here only if nothing follows.
				if _, err := br.Peek(1); errors.Is(err, io.EOF) {
					ended = true
				} else if err != nil {
					return fmt.Errorf("reading plaintext: %w", err)
				}
			}
			n := len(b.in)
			for off := 0; off < n || (ended && off == n); off += fl {
				size := min(fl, n-off)
				final := ended && off+size == n
				if final && size == fl && opts.emptyFinalFrame {
					final = false
				}
				// A regular frame may not take the marker value, and the
				// final frame's number is the frame count, at most 2^32-1.
				if seq > finalFrameMarker || (!final && seq == finalFrameMarker) {
					return fmt.Errorf("plaintext needs more than 2^32-1 frames of %d bytes; use a larger frame length", fl)
				}
				b.frames = append(b.frames, frame{seq: uint32(seq), final: final, off: off, n: size})
				seq++
				if final {
					break
				}
			}
			emit(b)
			if ended {
				return nil
			}
		}
	})
	return total, err
}

// writeFooter signs the SHA-384 digest of header and body and writes the
// footer: the DER signature's length and the signature.
func writeFooter(out *hashingWriter, key *ecdsa.PrivateKey, digest []byte) error {
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest)
	if err != nil {
		return fmt.Errorf("signing message: %w", err)
	}
	footer := binary.BigEndian.AppendUint16(nil, uint16(len(sig)))
	footer = append(footer, sig...)
	out.h = nil // the footer is not part of what is signed
	return out.write(footer)
}
