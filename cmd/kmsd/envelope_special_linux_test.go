package main

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestEnvelopeCLISpecialOutputs writes to outputs that are not regular
// files. Renaming a temporary file over one of them replaces it: run as
// root, "kmsd decrypt -o /dev/null" once turned /dev/null into a 0600
// regular file.
func TestEnvelopeCLISpecialOutputs(t *testing.T) {
	e := newEnvelopeCLI(t)
	pt := envRandomBytes(t, 50<<10+3)
	e.write("plain", pt)
	if _, stderr, err := e.run(nil, "encrypt", "--key", e.a, "--frame-length", "1000", "-o", e.path("msg"), e.path("plain")); err != nil {
		t.Fatalf("encrypt: %v\n%s", err, stderr)
	}

	t.Run("dev null", func(t *testing.T) {
		before := statDevice(t, os.DevNull)
		for _, args := range [][]string{
			{"decrypt", "--key", e.a, "-o", os.DevNull, e.path("msg")},
			{"encrypt", "--key", e.a, "-o", os.DevNull, e.path("plain")},
			{"encrypt", "--key", e.a, "-o", os.DevNull, os.DevNull}, // input and output the same device
		} {
			if _, stderr, err := e.run(nil, args...); err != nil {
				t.Fatalf("%s: %v\n%s", args, err, stderr)
			}
			if after := statDevice(t, os.DevNull); after != before {
				t.Fatalf("%s changed %s from %+v to %+v", args, os.DevNull, before, after)
			}
		}
	})

	t.Run("fifo", func(t *testing.T) {
		fifo := e.path("fifo")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(fifo)
		// The read end is opened first, without waiting for a writer, so
		// that the writer's open does not wait either; the plaintext (less
		// than the pipe's 64 KiB buffer) then fits in the pipe, and a run
		// that writes elsewhere leaves the reader with nothing rather than
		// hanging the test.
		read := func(run func()) []byte {
			t.Helper()
			r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			run()
			b, err := io.ReadAll(r)
			if err != nil {
				t.Fatalf("reading the FIFO: %v", err)
			}
			return b
		}
		got := read(func() {
			if _, stderr, err := e.run(nil, "decrypt", "--key", e.a, "-o", fifo, e.path("msg")); err != nil {
				t.Fatalf("decrypt to a FIFO: %v\n%s", err, stderr)
			}
		})
		if st, err := os.Lstat(fifo); err != nil || st.Mode().Type() != fs.ModeNamedPipe {
			t.Fatalf("after decrypt the FIFO is %v (%v)", st.Mode(), err)
		}
		if !bytes.Equal(got, pt) {
			t.Fatalf("the FIFO's reader got %d bytes, want the %d-byte plaintext", len(got), len(pt))
		}
		e.noLeftovers("plain", "msg", "fifo")

		// A message that fails late: what was written cannot be taken back,
		// so the error says to discard it.
		bad := e.read("msg")
		bad[len(bad)-30] ^= 1
		e.write("bad", bad)
		read(func() {
			_, _, err := e.run(nil, "decrypt", "--key", e.a, "-o", fifo, e.path("bad"))
			if err == nil || !strings.Contains(err.Error(), "discard the output") {
				t.Fatalf("bad message to a FIFO: %v", err)
			}
		})
		os.Remove(e.path("bad"))
	})

	t.Run("socket", func(t *testing.T) {
		sock := e.path("sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		_, _, err = e.run(nil, "decrypt", "--key", e.a, "-o", sock, e.path("msg"))
		if err == nil || !strings.Contains(err.Error(), "is a socket") {
			t.Fatalf("output to a socket: %v", err)
		}
		if st, err := os.Lstat(sock); err != nil || st.Mode().Type() != fs.ModeSocket {
			t.Fatalf("after decrypt the socket is %v (%v)", st.Mode(), err)
		}
	})

	t.Run("directory", func(t *testing.T) {
		_, _, err := e.run(nil, "decrypt", "--key", e.a, "-o", e.dir, e.path("msg"))
		if err == nil || !strings.Contains(err.Error(), "is a directory") {
			t.Fatalf("output to a directory: %v", err)
		}
		e.noLeftovers("plain", "msg")
	})

	t.Run("stdout is dev null", func(t *testing.T) {
		// "kmsd encrypt > /dev/null": a character device, not a terminal.
		null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer null.Close()
		if stderr, err := e.runTo(nil, null, "encrypt", "--key", e.a, e.path("plain")); err != nil {
			t.Fatalf("encrypt > /dev/null: %v\n%s", err, stderr)
		}
	})

	t.Run("stdout is a terminal", func(t *testing.T) {
		tty := openPTY(t)
		_, err := e.runTo(nil, tty, "encrypt", "--key", e.a, e.path("plain"))
		if err == nil || !strings.Contains(err.Error(), "terminal") {
			t.Fatalf("encrypt to a terminal: %v", err)
		}
		if !envIsTerminal(tty) {
			t.Fatal("envIsTerminal(pty) = false")
		}
	})
}

// device is what must not change about a device file.
type device struct {
	mode fs.FileMode
	rdev uint64
}

func statDevice(t *testing.T, path string) device {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&fs.ModeCharDevice == 0 {
		t.Fatalf("%s is not a character device: %v", path, st.Mode())
	}
	return device{mode: st.Mode(), rdev: uint64(st.Sys().(*syscall.Stat_t).Rdev)}
}

// openPTY returns the terminal end of a new pseudo-terminal.
func openPTY(t *testing.T) *os.File {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no pseudo-terminals: %v", err)
		}
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlocking the pty: %v", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("opening the pty: %v", err)
	}
	t.Cleanup(func() { tty.Close() })
	return tty
}
