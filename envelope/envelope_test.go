package envelope

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
)

var suites = []Suite{SuiteCommitKey, SuiteCommitKeyECDSAP384}

// testKeyring returns a raw AES keyring with a fixed wrapping key.
func testKeyring(t testing.TB) Keyring {
	t.Helper()
	kr, err := NewRawAESKeyring("kmsd-test", "test-key", bytes.Repeat([]byte{0x42}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// pattern returns n bytes where byte i is i mod 251 (no period that divides
// a frame length, so a swapped frame changes the content).
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

func encrypt(t testing.TB, pt []byte, opts EncryptOptions) []byte {
	t.Helper()
	var ct bytes.Buffer
	if _, err := Encrypt(context.Background(), &ct, bytes.NewReader(pt), opts); err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	return ct.Bytes()
}

func decrypt(ct []byte, opts DecryptOptions) ([]byte, *MessageInfo, error) {
	var out bytes.Buffer
	info, err := Decrypt(context.Background(), &out, bytes.NewReader(ct), opts)
	return out.Bytes(), info, err
}

// msgFrames parses the body of a message made with the test keyring into
// its header, its frames (each with its serialized bytes) and its footer.
func msgFrames(t testing.TB, msg []byte) (head []byte, frames [][]byte, footer []byte) {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(msg))
	h, err := parseHeader(br, 0)
	if err != nil {
		t.Fatal(err)
	}
	off := len(h.body) + len(h.tag)
	head = msg[:off]
	for {
		start := off
		final := binary.BigEndian.Uint32(msg[off:]) == finalFrameMarker
		n := int(h.frameLength)
		if final {
			off += 4
		}
		off += 4 + ivLen
		if final {
			n = int(binary.BigEndian.Uint32(msg[off:]))
			off += 4
		}
		off += n + tagLen
		frames = append(frames, msg[start:off])
		if final {
			return head, frames, msg[off:]
		}
	}
}

func TestRoundTrip(t *testing.T) {
	kr := testKeyring(t)
	for _, s := range suites {
		for _, fl := range []uint32{1, 100, 4096} {
			for _, n := range []int{0, 1, 99, 100, 101, 300, 4096, 3*4096 + 5} {
				for _, conc := range []int{0, 1, 3} {
					name := fmt.Sprintf("%04x/fl%d/n%d/c%d", uint16(s), fl, n, conc)
					pt := pattern(n)
					ec := map[string]string{"purpose": "test", "ünïcode": "☃", "": "empty key"}
					ct := encrypt(t, pt, EncryptOptions{Keyring: kr, Suite: s, FrameLength: fl, EncryptionContext: ec, Concurrency: conc})
					got, info, err := decrypt(ct, DecryptOptions{Keyring: kr, EncryptionContext: map[string]string{"purpose": "test"}, Concurrency: conc})
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					if !bytes.Equal(got, pt) {
						t.Fatalf("%s: plaintext differs", name)
					}
					if info.Suite != s || info.FrameLength != fl || info.PlaintextLength != int64(n) {
						t.Fatalf("%s: info %+v", name, info)
					}
					_, hasPub := info.EncryptionContext[publicKeyContextKey]
					delete(info.EncryptionContext, publicKeyContextKey)
					if hasPub != s.Signed() || !maps.Equal(info.EncryptionContext, ec) {
						t.Fatalf("%s: context %v", name, info.EncryptionContext)
					}
				}
			}
		}
	}
}

// TestFrameLayout checks the framing decisions the specification leaves
// open or fixes: the final frame holds a full frame when the plaintext is an
// exact multiple, and an empty input is one empty final frame.
func TestFrameLayout(t *testing.T) {
	kr := testKeyring(t)
	for _, tc := range []struct {
		n, frames, lastLen int
		emptyFinal         bool
	}{
		{n: 0, frames: 1, lastLen: 0},
		{n: 10, frames: 1, lastLen: 10},
		{n: 100, frames: 1, lastLen: 100},
		{n: 300, frames: 3, lastLen: 100},
		{n: 301, frames: 4, lastLen: 1},
		{n: 300, frames: 4, lastLen: 0, emptyFinal: true},
	} {
		ct := encrypt(t, pattern(tc.n), EncryptOptions{Keyring: kr, Suite: SuiteCommitKey, FrameLength: 100, emptyFinalFrame: tc.emptyFinal})
		_, frames, footer := msgFrames(t, ct)
		last := frames[len(frames)-1]
		if len(frames) != tc.frames || len(last) != 4+4+ivLen+4+tc.lastLen+tagLen || len(footer) != 0 {
			t.Errorf("n=%d: %d frames, last %d bytes, footer %d", tc.n, len(frames), len(last), len(footer))
		}
		got, _, err := decrypt(ct, DecryptOptions{Keyring: kr})
		if err != nil || !bytes.Equal(got, pattern(tc.n)) {
			t.Errorf("n=%d: decrypt: %v", tc.n, err)
		}
	}
}

// TestLargeStreamBoundedReads encrypts and decrypts a stream that arrives
// in small, odd-sized reads, across many batches.
func TestLargeStreamBoundedReads(t *testing.T) {
	kr := testKeyring(t)
	pt := pattern(3<<20 + 77)
	for _, s := range suites {
		var ct bytes.Buffer
		if _, err := Encrypt(context.Background(), &ct, iotest.HalfReader(bytes.NewReader(pt)), EncryptOptions{Keyring: kr, Suite: s, FrameLength: 1000}); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if _, err := Decrypt(context.Background(), &out, iotest.OneByteReader(bytes.NewReader(ct.Bytes()[:5000])), DecryptOptions{Keyring: kr}); !errors.Is(err, ErrTruncated) {
			t.Fatalf("truncated stream: %v", err)
		}
		out.Reset()
		if _, err := Decrypt(context.Background(), &out, iotest.HalfReader(&ct), DecryptOptions{Keyring: kr}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), pt) {
			t.Fatal("plaintext differs")
		}
	}
}

func TestEncryptionContextRules(t *testing.T) {
	kr := testKeyring(t)
	ctx := context.Background()
	for _, ec := range []map[string]string{
		{"aws-crypto-public-key": "x"},
		{"aws-crypto-anything": "x"},
		{"bad": "\xff"},
		{"big": strings.Repeat("x", 70000)},
	} {
		if _, err := Encrypt(ctx, io.Discard, strings.NewReader("x"), EncryptOptions{Keyring: kr, EncryptionContext: ec}); err == nil {
			t.Errorf("context %.40v accepted", ec)
		}
	}
	// Many pairs that each fit but together exceed the header's 64 KiB AAD.
	big := map[string]string{}
	for i := range 700 {
		big[fmt.Sprintf("key-%04d", i)] = strings.Repeat("v", 90)
	}
	if _, err := Encrypt(ctx, io.Discard, strings.NewReader("x"), EncryptOptions{Keyring: kr, EncryptionContext: big}); err == nil {
		t.Error("oversized context accepted")
	}

	ct := encrypt(t, []byte("secret"), EncryptOptions{Keyring: kr, EncryptionContext: map[string]string{"tenant": "a"}})
	if _, _, err := decrypt(ct, DecryptOptions{Keyring: kr, EncryptionContext: map[string]string{"tenant": "b"}}); !errors.Is(err, ErrContextMismatch) {
		t.Errorf("wrong value: %v", err)
	}
	// A pair that is not in the message is authenticated as "required but
	// not stored" and so fails the header check.
	if _, _, err := decrypt(ct, DecryptOptions{Keyring: kr, EncryptionContext: map[string]string{"other": "x"}}); err == nil {
		t.Error("extra reproduced pair accepted")
	}
}

func TestRequiredContextCMM(t *testing.T) {
	kr := testKeyring(t)
	cmm, err := NewRequiredContextCMM(NewDefaultCMM(kr), "tenant")
	if err != nil {
		t.Fatal(err)
	}
	ec := map[string]string{"tenant": "acme", "stored": "yes"}
	if _, err := Encrypt(context.Background(), io.Discard, strings.NewReader("x"), EncryptOptions{CMM: cmm, EncryptionContext: map[string]string{"stored": "yes"}}); !errors.Is(err, ErrContextMismatch) {
		t.Fatalf("missing required key: %v", err)
	}
	for _, s := range suites {
		ct := encrypt(t, []byte("hello"), EncryptOptions{CMM: cmm, Suite: s, EncryptionContext: ec})
		if bytes.Contains(ct, []byte("acme")) || !bytes.Contains(ct, []byte("stored")) {
			t.Fatal("required pair stored, or stored pair missing")
		}
		if _, _, err := decrypt(ct, DecryptOptions{CMM: cmm}); !errors.Is(err, ErrContextMismatch) {
			t.Errorf("decrypt without the required pair: %v", err)
		}
		if _, _, err := decrypt(ct, DecryptOptions{Keyring: kr, EncryptionContext: map[string]string{"tenant": "evil"}}); err == nil {
			t.Error("decrypt with a wrong required value succeeded")
		}
		got, info, err := decrypt(ct, DecryptOptions{CMM: cmm, EncryptionContext: map[string]string{"tenant": "acme"}})
		if err != nil || string(got) != "hello" {
			t.Fatalf("decrypt: %v", err)
		}
		if info.EncryptionContext["tenant"] != "acme" || len(info.RequiredContextKeys) != 1 {
			t.Errorf("info %+v", info)
		}
	}
}

func TestMultiKeyring(t *testing.T) {
	a, _ := NewRawAESKeyring("ns", "a", bytes.Repeat([]byte{1}, 32))
	b, _ := NewRawAESKeyring("ns", "b", bytes.Repeat([]byte{2}, 16))
	c, _ := NewRawAESKeyring("ns", "c", bytes.Repeat([]byte{3}, 24))
	multi, err := NewMultiKeyring(a, b)
	if err != nil {
		t.Fatal(err)
	}
	ct := encrypt(t, []byte("shared"), EncryptOptions{Keyring: multi})
	for _, kr := range []Keyring{a, b, multi} {
		if got, _, err := decrypt(ct, DecryptOptions{Keyring: kr}); err != nil || string(got) != "shared" {
			t.Errorf("decrypt: %v", err)
		}
	}
	if _, _, err := decrypt(ct, DecryptOptions{Keyring: c}); !errors.Is(err, ErrNoDataKey) {
		t.Errorf("unrelated key: %v", err)
	}
	// Without a generator, a multi-keyring cannot start a message.
	if noGen, err := NewMultiKeyring(nil, b); err != nil {
		t.Fatal(err)
	} else if _, err := Encrypt(context.Background(), io.Discard, strings.NewReader("x"), EncryptOptions{Keyring: noGen}); err == nil {
		t.Error("multi-keyring without generator encrypted")
	}
	if _, err := NewRawAESKeyring("aws-kms-x", "n", make([]byte, 32)); err == nil {
		t.Error("reserved namespace accepted")
	}
}

func TestOptions(t *testing.T) {
	kr := testKeyring(t)
	ctx := context.Background()
	if _, err := Encrypt(ctx, io.Discard, strings.NewReader("x"), EncryptOptions{}); err == nil {
		t.Error("no keyring accepted")
	}
	if _, err := Encrypt(ctx, io.Discard, strings.NewReader("x"), EncryptOptions{Keyring: kr, CMM: NewDefaultCMM(kr)}); err == nil {
		t.Error("keyring and CMM accepted")
	}
	if _, err := Encrypt(ctx, io.Discard, strings.NewReader("x"), EncryptOptions{Keyring: kr, Suite: 0x0178}); err == nil || !strings.Contains(err.Error(), "commitment policy") {
		t.Errorf("legacy suite: %v", err)
	}
	if _, err := Encrypt(ctx, io.Discard, strings.NewReader("12345"), EncryptOptions{Keyring: kr, MaxPlaintextLength: 4}); err == nil {
		t.Error("plaintext over MaxPlaintextLength accepted")
	}
	if _, err := Encrypt(ctx, io.Discard, strings.NewReader("1234"), EncryptOptions{Keyring: kr, MaxPlaintextLength: 4}); err != nil {
		t.Errorf("plaintext at MaxPlaintextLength: %v", err)
	}
	two, _ := NewMultiKeyring(kr, kr)
	if _, err := Encrypt(ctx, io.Discard, strings.NewReader("x"), EncryptOptions{Keyring: two, MaxEncryptedDataKeys: 1}); err == nil {
		t.Error("too many encrypted data keys written")
	}
	ct := encrypt(t, []byte("x"), EncryptOptions{Keyring: two})
	if _, _, err := decrypt(ct, DecryptOptions{Keyring: kr, MaxEncryptedDataKeys: 1}); !errors.Is(err, ErrMalformed) {
		t.Errorf("MaxEncryptedDataKeys: %v", err)
	}
	if _, _, err := decrypt(ct, DecryptOptions{Keyring: kr, MaxEncryptedDataKeys: 2}); err != nil {
		t.Errorf("MaxEncryptedDataKeys at the limit: %v", err)
	}
	if _, _, err := decrypt(ct, DecryptOptions{Keyring: kr, RejectSigned: true}); err == nil {
		t.Error("RejectSigned let a signed message through")
	}
	ct = encrypt(t, []byte("x"), EncryptOptions{Keyring: kr, Suite: SuiteCommitKey})
	if _, _, err := decrypt(ct, DecryptOptions{Keyring: kr, RejectSigned: true}); err != nil {
		t.Errorf("RejectSigned on an unsigned message: %v", err)
	}
}

func TestRejectsOtherInputs(t *testing.T) {
	kr := testKeyring(t)
	ct := encrypt(t, []byte("hello"), EncryptOptions{Keyring: kr})
	b64 := make([]byte, 0)
	b64 = fmt.Appendf(b64, "%s", "AgV4"+strings.Repeat("A", 100))
	v1 := append([]byte{0x01, 0x80, 0x03, 0x78}, make([]byte, 100)...)
	for name, tc := range map[string]struct {
		in   []byte
		want error
		text string
	}{
		"empty":      {nil, ErrTruncated, "empty"},
		"base64":     {b64, ErrMalformed, "base64"},
		"version 1":  {v1, ErrMalformed, "commitment policy"},
		"version 3":  {append([]byte{0x03}, ct[1:]...), ErrMalformed, "version"},
		"suite 0178": {append([]byte{0x02, 0x01, 0x78}, ct[3:]...), ErrMalformed, "commitment policy"},
		"suite 9999": {append([]byte{0x02, 0x99, 0x99}, ct[3:]...), ErrMalformed, "unsupported"},
		"trailing":   {append(bytes.Clone(ct), 0), ErrMalformed, "follows"},
		"two":        {append(bytes.Clone(ct), ct...), ErrMalformed, "follows"},
	} {
		_, _, err := decrypt(tc.in, DecryptOptions{Keyring: kr})
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// failingWriter fails after n bytes.
type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		return 0, errors.New("disk full")
	}
	w.n -= len(p)
	return len(p), nil
}

func TestIOErrorsAndCancel(t *testing.T) {
	kr := testKeyring(t)
	pt := pattern(5 << 20)
	ctx := context.Background()
	if _, err := Encrypt(ctx, &failingWriter{n: 3 << 20}, bytes.NewReader(pt), EncryptOptions{Keyring: kr}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("encrypt write error: %v", err)
	}
	if _, err := Encrypt(ctx, io.Discard, iotest.TimeoutReader(bytes.NewReader(pt)), EncryptOptions{Keyring: kr}); !errors.Is(err, iotest.ErrTimeout) {
		t.Errorf("encrypt read error: %v", err)
	}
	ct := encrypt(t, pt, EncryptOptions{Keyring: kr})
	if _, err := Decrypt(ctx, &failingWriter{n: 3 << 20}, bytes.NewReader(ct), DecryptOptions{Keyring: kr}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("decrypt write error: %v", err)
	}
	if _, err := Decrypt(ctx, io.Discard, iotest.ErrReader(errors.New("boom")), DecryptOptions{Keyring: kr}); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("decrypt read error: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	w := &cancelWriter{cancel: cancel}
	if _, err := Decrypt(cctx, w, bytes.NewReader(ct), DecryptOptions{Keyring: kr}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled decrypt: %v", err)
	}
}

// cancelWriter cancels its context on the first write.
type cancelWriter struct {
	cancel context.CancelFunc
	n      atomic.Int64
}

func (w *cancelWriter) Write(p []byte) (int, error) {
	w.cancel()
	w.n.Add(int64(len(p)))
	return len(p), nil
}

func TestContextSerialization(t *testing.T) {
	ec := map[string]string{"b": "2", "a": "1", "ä": "x"}
	b, err := serializeContext(ec)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0, 3, 0, 1, 'a', 0, 1, '1', 0, 1, 'b', 0, 1, '2', 0, 2, 0xc3, 0xa4, 0, 1, 'x'}
	if !bytes.Equal(b, want) {
		t.Fatalf("serialized %x, want %x", b, want)
	}
	if got, err := parseContext(b); err != nil || !maps.Equal(got, ec) {
		t.Fatalf("parse: %v %v", got, err)
	}
	if b, _ := serializeContext(nil); len(b) != 0 {
		t.Fatal("empty context is not empty")
	}
	for name, bad := range map[string][]byte{
		"zero count":   {0, 0},
		"short":        {0},
		"unsorted":     {0, 2, 0, 1, 'b', 0, 0, 0, 1, 'a', 0, 0},
		"duplicate":    {0, 2, 0, 1, 'a', 0, 0, 0, 1, 'a', 0, 0},
		"trailing":     {0, 1, 0, 1, 'a', 0, 0, 9},
		"past the end": {0, 1, 0, 5, 'a'},
		"bad utf-8":    {0, 1, 0, 1, 0xff, 0, 0},
		"count high":   {0, 2, 0, 1, 'a', 0, 0},
	} {
		if _, err := parseContext(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestKMSARN(t *testing.T) {
	for _, s := range []string{
		"arn:aws:kms:us-east-1:111122223333:key/1234",
		"arn:aws-cn:kms:cn-north-1:111122223333:key/mrk-1/x",
	} {
		if !IsKeyARN(s) {
			t.Errorf("%s rejected", s)
		}
	}
	for _, s := range []string{
		"", "1234", "alias/x", "arn:aws:kms:us-east-1:111122223333:alias/x",
		"arn:aws:s3:us-east-1:111122223333:key/1", "arn::kms:us-east-1:1:key/1",
		"arn:aws:kms::1:key/1", "arn:aws:kms:r::key/1", "arn:aws:kms:r:1:key/",
		"arn:aws:kms:r:1:key", "arn:aws:kms:r:1:thing/1", "arn:aws:kms:r:1:key/1:extra",
	} {
		if IsKeyARN(s) {
			t.Errorf("%q accepted as a key ARN", s)
		}
	}
	for _, s := range []string{"1234abcd-12ab", "alias/x", "arn:aws:kms:r:1:alias/x", "arn:aws:kms:r:1:key/1"} {
		if err := checkKMSIdentifier(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	for _, s := range []string{"", "alias/", "arn:aws:kms:r:1:bogus/1", "a b"} {
		if err := checkKMSIdentifier(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}
