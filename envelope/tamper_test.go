package envelope

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
)

// checkRejected asserts that decrypting msg fails and that whatever was
// written is authentic: a proper prefix of the plaintext, never the end.
func checkRejected(t *testing.T, name string, kr Keyring, msg, pt []byte) {
	t.Helper()
	out, _, err := decrypt(msg, DecryptOptions{Keyring: kr, EncryptionContext: map[string]string{"purpose": "tamper"}})
	if err == nil {
		t.Fatalf("%s: decrypt succeeded", name)
	}
	if !bytes.HasPrefix(pt, out) || (len(pt) > 0 && len(out) == len(pt)) {
		t.Fatalf("%s: released %d bytes that are not a proper prefix of the plaintext (%v)", name, len(out), err)
	}
}

// TestEveryByteFlipped flips each bit pattern at each byte position of small
// messages of both suites: every variant must fail.
func TestEveryByteFlipped(t *testing.T) {
	kr := testKeyring(t)
	pt := pattern(40) // two regular frames of 16 bytes and a final frame of 8
	for _, s := range suites {
		msg := encrypt(t, pt, EncryptOptions{Keyring: kr, Suite: s, FrameLength: 16, EncryptionContext: map[string]string{"purpose": "tamper"}})
		for i := range msg {
			for _, mask := range []byte{0x01, 0xff} {
				bad := bytes.Clone(msg)
				bad[i] ^= mask
				checkRejected(t, fmt.Sprintf("%04x byte %d ^%02x", uint16(s), i, mask), kr, bad, pt)
			}
		}
	}
}

// TestFramesRemovedReorderedTruncated edits the frame sequence of messages
// of both suites.
func TestFramesRemovedReorderedTruncated(t *testing.T) {
	kr := testKeyring(t)
	pt := pattern(70) // four regular frames of 16 bytes and a final frame of 6
	for _, s := range suites {
		msg := encrypt(t, pt, EncryptOptions{Keyring: kr, Suite: s, FrameLength: 16, EncryptionContext: map[string]string{"purpose": "tamper"}})
		head, frames, footer := msgFrames(t, msg)
		if len(frames) != 5 {
			t.Fatalf("%d frames", len(frames))
		}
		build := func(fs [][]byte, foot []byte) []byte {
			return slices.Concat(append([][]byte{head}, append(fs, foot)...)...)
		}
		if got, _, err := decrypt(build(frames, footer), DecryptOptions{Keyring: kr}); err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("reassembled message: %v", err)
		}
		for i := range frames {
			checkRejected(t, fmt.Sprintf("%04x frame %d removed", uint16(s), i+1), kr, build(slices.Delete(slices.Clone(frames), i, i+1), footer), pt)
			dup := slices.Insert(slices.Clone(frames), i, frames[i])
			checkRejected(t, fmt.Sprintf("%04x frame %d repeated", uint16(s), i+1), kr, build(dup, footer), pt)
			for j := i + 1; j < len(frames); j++ {
				sw := slices.Clone(frames)
				sw[i], sw[j] = sw[j], sw[i]
				checkRejected(t, fmt.Sprintf("%04x frames %d and %d swapped", uint16(s), i+1, j+1), kr, build(sw, footer), pt)
			}
		}
		// The message ends early (the final frame dropped): the body must
		// end with a final frame.
		checkRejected(t, "final frame dropped", kr, build(frames[:4], nil), pt)
		for n := range len(msg) {
			out, _, err := decrypt(msg[:n], DecryptOptions{Keyring: kr})
			if !errors.Is(err, ErrTruncated) {
				t.Fatalf("%04x truncated to %d of %d bytes: %v", uint16(s), n, len(msg), err)
			}
			if !bytes.HasPrefix(pt, out) || len(out) == len(pt) {
				t.Fatalf("truncated to %d: released %d bytes", n, len(out))
			}
		}
		// Frames from another message under the same data key do not fit:
		// the message ID is in every frame's AAD and in the key derivation.
		other := encrypt(t, pt, EncryptOptions{Keyring: kr, Suite: s, FrameLength: 16, EncryptionContext: map[string]string{"purpose": "tamper"}})
		_, otherFrames, _ := msgFrames(t, other)
		mixed := slices.Clone(frames)
		mixed[2] = otherFrames[2]
		checkRejected(t, "frame from another message", kr, build(mixed, footer), pt)
	}
}

// TestSuiteDowngrade rewrites a signed message's suite to the unsigned one
// and drops the footer: the suite is authenticated, so this must fail.
func TestSuiteDowngrade(t *testing.T) {
	kr := testKeyring(t)
	pt := pattern(40)
	msg := encrypt(t, pt, EncryptOptions{Keyring: kr, FrameLength: 16, EncryptionContext: map[string]string{"purpose": "tamper"}})
	_, _, footer := msgFrames(t, msg)
	bad := bytes.Clone(msg[:len(msg)-len(footer)])
	bad[1], bad[2] = 0x04, 0x78
	checkRejected(t, "downgrade to 0x0478", kr, bad, pt)
	// Even with the public key gone from the context the commitment and
	// header tag do not match another suite.
	checkRejected(t, "footer dropped", kr, msg[:len(msg)-len(footer)], pt)
}

// TestNoUnauthenticatedRelease tampers with one frame of a message that
// spans many batches: the output must stop before the batch holding the bad
// frame, and the last frame of a signed message is never written when the
// signature is bad.
func TestNoUnauthenticatedRelease(t *testing.T) {
	kr := testKeyring(t)
	const fl = 64 << 10
	pt := pattern(40*fl + 1000)
	for _, s := range suites {
		msg := encrypt(t, pt, EncryptOptions{Keyring: kr, Suite: s, FrameLength: fl})
		head, frames, footer := msgFrames(t, msg)
		off := len(head)
		for _, f := range frames[:30] {
			off += len(f)
		}
		bad := bytes.Clone(msg)
		bad[off+100] ^= 1 // inside frame 31's ciphertext
		out, _, err := decrypt(bad, DecryptOptions{Keyring: kr})
		if !errors.Is(err, ErrAuthentication) || !bytes.HasPrefix(pt, out) || len(out) > 30*fl {
			t.Fatalf("%04x: frame 31 tampered: released %d bytes, err %v", uint16(s), len(out), err)
		}
		if !s.Signed() {
			continue
		}
		bad = bytes.Clone(msg)
		bad[len(bad)-len(footer)+10] ^= 1
		out, _, err = decrypt(bad, DecryptOptions{Keyring: kr})
		if !errors.Is(err, ErrAuthentication) || !bytes.HasPrefix(pt, out) || len(out) > len(pt)-1000 {
			t.Fatalf("bad signature: released %d of %d bytes, err %v", len(out), len(pt), err)
		}
	}
}
