package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/term"

	"github.com/kmsd/kmsd/internal/durable"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/shamir"
	"github.com/kmsd/kmsd/internal/unseal"
)

// maxSecretFile bounds a passphrase or share file.
const maxSecretFile = 4 << 10

const unsealUsage = `usage: kmsd unseal [--config FILE] [--data-dir DIR] [--passphrase-file FILE | --share-file FILE] [--status]

Gives a sealed kmsd serve on this machine its passphrase, or one Shamir
share, through the unix socket DIR/kmsd.sock. Without a file it asks on the
terminal (without echo), or reads one share from standard input. With
shares, run it once per share: the share that completes the threshold
unseals. --status only reports whether kmsd is sealed.
`

// unsealMain runs kmsd unseal.
func unsealMain(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := newCommandFlags("unseal", unsealUsage, stderr)
	dirFlags := addDataDirFlags(fs)
	status := fs.Bool("status", false, "only report whether kmsd is sealed")
	var material unsealMaterial
	fs.StringVar(&material.passphraseFile, "passphrase-file", "", "file holding the passphrase (mode 0600; one trailing newline is ignored)")
	fs.Var(&material.shareFiles, "share-file", "file holding one Shamir share (mode 0600)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("kmsd unseal: unexpected arguments %v", fs.Args())
	}
	if len(material.shareFiles) > 1 {
		return errors.New("kmsd unseal: give one --share-file per run (each run submits one share)")
	}
	cfg, err := dirFlags.load(getenv)
	if err != nil {
		return err
	}
	sock := filepath.Join(cfg.DataDir, unseal.SocketFile)
	st, err := unseal.Call(ctx, sock, &unseal.Request{Op: unseal.OpStatus})
	if err != nil {
		return fmt.Errorf("kmsd unseal: %w", err)
	}
	if !st.Sealed {
		fmt.Fprintln(stdout, st.Message)
		return nil
	}
	if *status {
		fmt.Fprintln(stdout, st.Message)
		return nil
	}
	req := &unseal.Request{}
	defer func() { clear(req.Passphrase); clear(req.Share) }()
	switch keystore.SealKind(st.Kind) {
	case keystore.SealPassphrase:
		if len(material.shareFiles) > 0 {
			return errors.New("kmsd unseal: kmsd is sealed with a passphrase, not shares: give --passphrase-file")
		}
		req.Op = unseal.OpPassphrase
		if req.Passphrase, err = material.passphrase(stderr, false); err != nil {
			return fmt.Errorf("kmsd unseal: %w", err)
		}
	case keystore.SealShamir:
		if material.passphraseFile != "" {
			return fmt.Errorf("kmsd unseal: kmsd is sealed with Shamir shares (%d of %d), not a passphrase: give --share-file", st.Threshold, st.Shares)
		}
		req.Op = unseal.OpShare
		prompt := fmt.Sprintf("Share (%d of %d given so far; %d needed): ", st.Have, st.Threshold, st.Threshold)
		if req.Share, err = material.share(0, prompt, stderr, true); err != nil {
			return fmt.Errorf("kmsd unseal: %w", err)
		}
	default:
		return fmt.Errorf("kmsd unseal: kmsd reports an unknown seal kind %q", st.Kind)
	}
	resp, err := unseal.Call(ctx, sock, req)
	if err != nil {
		return fmt.Errorf("kmsd unseal: %w", err)
	}
	if resp.Error != "" {
		return fmt.Errorf("kmsd unseal: %s", resp.Error)
	}
	fmt.Fprintln(stdout, resp.Message)
	return nil
}

// unsealMaterial is the unseal material a command was given: a passphrase
// file, or share files, or neither (then it asks on the terminal).
type unsealMaterial struct {
	passphraseFile string
	shareFiles     stringList
}

func (m *unsealMaterial) empty() bool { return m.passphraseFile == "" && len(m.shareFiles) == 0 }

// newCommandFlags is the flag set of command name: errors and -h go to
// stderr, -h prints usage and then the flags.
func newCommandFlags(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	return fs
}

// addSealedFlags adds --passphrase-file and --share-file to fs, for a
// command that needs the root key of a data folder that may be sealed.
func (m *unsealMaterial) addSealedFlags(fs *flag.FlagSet) {
	fs.StringVar(&m.passphraseFile, "passphrase-file", "", "on a sealed data folder: file holding the passphrase (mode 0600)")
	fs.Var(&m.shareFiles, "share-file", "on a sealed data folder: file holding one Shamir share (mode 0600); repeat it")
}

// passphrase returns the passphrase from the file, or asked on the
// terminal (twice when confirm). The caller clears it.
func (m *unsealMaterial) passphrase(stderr io.Writer, confirm bool) ([]byte, error) {
	if m.passphraseFile != "" {
		return readSecretFile(m.passphraseFile, "passphrase file")
	}
	p, err := promptSecret("Passphrase: ", stderr)
	if err != nil {
		return nil, err
	}
	if confirm {
		again, err := promptSecret("Passphrase again: ", stderr)
		if err != nil {
			clear(p)
			return nil, err
		}
		same := bytes.Equal(p, again)
		clear(again)
		if !same {
			clear(p)
			return nil, errors.New("the two passphrases differ")
		}
	}
	if len(p) == 0 {
		return nil, errors.New("empty passphrase")
	}
	return p, nil
}

// share returns the i-th share's text: from the i-th --share-file, else
// asked on the terminal, else (fromStdin) one line of standard input.
func (m *unsealMaterial) share(i int, prompt string, stderr io.Writer, fromStdin bool) ([]byte, error) {
	if i < len(m.shareFiles) {
		return readSecretFile(m.shareFiles[i], "share file")
	}
	if len(m.shareFiles) > 0 {
		return nil, fmt.Errorf("%d --share-file given, more shares needed", len(m.shareFiles))
	}
	s, err := promptSecret(prompt, stderr)
	if errors.Is(err, errNoTerminal) && fromStdin {
		return readLine(os.Stdin)
	}
	return s, err
}

// localKey derives the seal key of info here, for a command that opens
// sealed roots itself (kmsd root on a sealed data folder).
func (m *unsealMaterial) localKey(info keystore.SealInfo, stderr io.Writer) (*keystore.SealKey, error) {
	if info.Kind == keystore.SealPassphrase {
		if len(m.shareFiles) > 0 {
			return nil, errors.New("the root is sealed with a passphrase, not shares: give --passphrase-file")
		}
		p, err := m.passphrase(stderr, false)
		if err != nil {
			return nil, sealedHint(info, err)
		}
		defer clear(p)
		return info.PassphraseKey(p)
	}
	if m.passphraseFile != "" {
		return nil, fmt.Errorf("the root is sealed with %s, not a passphrase: give --share-file once per share", info.Describe())
	}
	var shares []shamir.Share
	defer func() {
		for i := range shares {
			shares[i].Wipe()
		}
	}()
	for i := range info.Threshold {
		text, err := m.share(i, fmt.Sprintf("Share %d of %d: ", i+1, info.Threshold), stderr, false)
		if err != nil {
			return nil, sealedHint(info, err)
		}
		s, err := shamir.Parse(string(text))
		clear(text)
		if err != nil {
			return nil, fmt.Errorf("share %d: %w", i+1, err)
		}
		shares = append(shares, s)
		if err := unseal.CheckShare(info, s); err != nil {
			return nil, err
		}
	}
	secret, err := shamir.Combine(shares)
	if err != nil {
		return nil, err
	}
	defer clear(secret)
	return info.ShamirKey(secret)
}

func sealedHint(info keystore.SealInfo, err error) error {
	if !errors.Is(err, errNoTerminal) {
		return err
	}
	if info.Kind == keystore.SealPassphrase {
		return errors.New("the root of trust is sealed with a passphrase: give --passphrase-file FILE (or run this on a terminal)")
	}
	return fmt.Errorf("the root of trust is sealed with %s: give --share-file FILE %d times (or run this on a terminal)", info.Describe(), info.Threshold)
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

var errNoTerminal = errors.New("standard input is not a terminal")

// promptSecret asks for a secret on the terminal without echo. The caller
// clears it.
func promptSecret(prompt string, stderr io.Writer) ([]byte, error) {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil, errNoTerminal
	}
	fmt.Fprint(stderr, prompt)
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	if err != nil {
		return nil, fmt.Errorf("reading from the terminal: %w", err)
	}
	return b, nil
}

// readLine reads one line (a share piped in) from r.
func readLine(r io.Reader) ([]byte, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, maxSecretFile), 512)
	line, err := br.ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		clear(line)
		return nil, fmt.Errorf("reading standard input: %w", err)
	}
	line = bytes.TrimRight(line, "\r\n")
	if len(line) == 0 {
		return nil, errors.New("nothing on standard input")
	}
	return line, nil
}

// readSecretFile reads a passphrase or share file: mode 0600 (like every
// secret kmsd reads), at most 4 KiB; one trailing newline is dropped. The
// caller clears the result.
func readSecretFile(path, what string) ([]byte, error) {
	f, _, err := durable.OpenPrivate(path, what)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		clear(b)
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	if len(b) > maxSecretFile {
		clear(b)
		return nil, fmt.Errorf("%s %s is larger than %d bytes", what, path, maxSecretFile)
	}
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%s %s is empty", what, path)
	}
	return b, nil
}
