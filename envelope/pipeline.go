package envelope

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"sync"
)

// Body framing constants.
const (
	regularFrameAAD  = "AWSKMSEncryptionClient Frame"
	finalFrameAAD    = "AWSKMSEncryptionClient Final Frame"
	finalFrameMarker = 0xFFFFFFFF
	// DefaultFrameLength is the plaintext length of a regular frame unless
	// EncryptOptions.FrameLength says otherwise.
	DefaultFrameLength = 4096
)

// appendBodyAAD appends the AAD of one frame: message ID, the content
// string, the sequence number and the plaintext length. Binding the sequence
// number and the final-frame string is what makes dropping, reordering or
// truncating frames detectable.
func appendBodyAAD(dst, messageID []byte, final bool, seq uint32, ptLen int) []byte {
	dst = append(dst, messageID...)
	if final {
		dst = append(dst, finalFrameAAD...)
	} else {
		dst = append(dst, regularFrameAAD...)
	}
	dst = binary.BigEndian.AppendUint32(dst, seq)
	return binary.BigEndian.AppendUint64(dst, uint64(ptLen))
}

// frameIV returns the IV of frame seq: the sequence number, big-endian, in
// the last four bytes of twelve. A deterministic IV is safe here because the
// frame key is unique to the message (derived with its random 256-bit ID)
// and sequence numbers are unique within it; the header tag uses IV 0, which
// no frame uses since sequence numbers start at 1.
func frameIV(seq uint32) [ivLen]byte {
	var iv [ivLen]byte
	binary.BigEndian.PutUint32(iv[ivLen-4:], seq)
	return iv
}

// Pipeline sizing. A batch holds many frames so that the per-batch
// synchronisation is small next to the cryptography; the number of batches
// in flight is bounded, which bounds memory whatever the input size.
const (
	batchTarget = 1 << 20  // bytes of frame content per batch
	memBudget   = 64 << 20 // bound on buffered input bytes (outputs add about as much)
)

// frame describes one frame inside a batch buffer.
type frame struct {
	seq   uint32
	final bool
	off   int // offset of the content in batch.in (decrypt: of the ciphertext)
	n     int // plaintext length
}

// batch is the unit of parallel work: consecutive frames of one message.
type batch struct {
	in     []byte // encrypt: plaintext; decrypt: the serialized frames
	out    []byte // encrypt: the serialized frames; decrypt: plaintext
	footer []byte // decrypt, last batch: the signature (empty if unsigned)
	aad    []byte // scratch
	frames []frame
	err    error
	done   chan struct{}
}

// pipeline runs produce (sequential: reads input into batches), work (in
// parallel on each batch) and consume (sequential, in input order: writes
// output). It returns the first error in input order: a consume or work
// error of an earlier batch wins over a later produce error.
type pipeline struct {
	workers int
	depth   int
	work    func(b *batch)
	consume func(b *batch) error
}

// newPipeline sizes a pipeline for frames of frameLen bytes.
func newPipeline(concurrency int, frameLen uint32) *pipeline {
	workers := concurrency
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	per := max(int64(batchTarget), int64(frameLen)+64)
	depth := int(min(int64(2*workers+2), memBudget/per))
	return &pipeline{workers: workers, depth: max(depth, 2)}
}

// run drives the pipeline. produce gets batches with next (which blocks
// while every batch is in flight: the memory bound) and hands them on with
// emit, in order.
func (p *pipeline) run(ctx context.Context, produce func(next func() (*batch, error), emit func(*batch)) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	free := make(chan *batch, p.depth)
	for range p.depth {
		free <- &batch{}
	}
	work := make(chan *batch, p.depth)
	ordered := make(chan *batch, p.depth)
	var wg sync.WaitGroup
	for range p.workers {
		wg.Go(func() {
			for b := range work {
				if err := ctx.Err(); err != nil {
					b.err = err // never pass on a batch that was not processed
				} else {
					p.work(b)
				}
				close(b.done)
			}
		})
	}
	var produceErr error
	go func() {
		defer close(ordered)
		defer close(work)
		next := func() (*batch, error) {
			select {
			case b := <-free:
				b.in, b.out, b.frames, b.footer, b.err = b.in[:0], b.out[:0], b.frames[:0], nil, nil
				b.done = make(chan struct{})
				return b, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		emit := func(b *batch) {
			ordered <- b // capacity depth: never blocks
			work <- b
		}
		produceErr = produce(next, emit)
	}()
	var firstErr error
	for b := range ordered {
		<-b.done
		if firstErr == nil {
			switch {
			case ctx.Err() != nil:
				firstErr = ctx.Err()
			case b.err != nil:
				firstErr = b.err
			default:
				firstErr = p.consume(b)
			}
			if firstErr != nil {
				cancel() // stop the producer; keep draining so nothing blocks
			}
		}
		free <- b
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return produceErr
}

// fill reads from r until buf holds n bytes or the input ends. It grows
// buf only as data arrives, doubling (up to capLimit) so that appending
// costs amortised constant time: a short input never costs a full batch,
// and a length field read from a hostile message never allocates more than
// about twice the bytes that really arrived.
func fill(r io.Reader, buf []byte, n, capLimit int) (out []byte, ended bool, err error) {
	for len(buf) < n {
		if len(buf) == cap(buf) {
			newCap := max(2*cap(buf), len(buf)+min(n-len(buf), 16<<10))
			grown := make([]byte, len(buf), max(min(newCap, capLimit), len(buf)+1))
			copy(grown, buf)
			buf = grown
		}
		m, err := r.Read(buf[len(buf):min(n, cap(buf))])
		buf = buf[:len(buf)+m]
		if errors.Is(err, io.EOF) {
			return buf, true, nil
		}
		if err != nil {
			return buf, false, err
		}
	}
	return buf, false, nil
}
