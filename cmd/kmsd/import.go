package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/kmsd/kmsd/internal/seed"
)

const importUsage = `usage: kmsd import local-kms [-o SEED] FILE

Converts the seed file of local-kms (github.com/nsmithuk/local-kms) into a
kmsd seed file, written to SEED (mode 0600: it holds key material) or to
standard output. Start kmsd with it: kmsd serve --seed SEED. Every key keeps
its id; keys with backing keys or private keys become EXTERNAL keys with
that material imported; of several backing keys only the last (current)
one is kept. Notes on what changed go to standard error. See
docs/seeding.md.
`

// importMain runs "kmsd import …".
func importMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, importUsage)
		return errors.New("import: name the format: kmsd import local-kms FILE")
	}
	switch args[0] {
	case "local-kms":
	case "help", "-h", "--help":
		fmt.Fprint(stdout, importUsage)
		return nil
	default:
		fmt.Fprint(stderr, importUsage)
		return fmt.Errorf("import: unknown format %q (kmsd imports local-kms seed files)", args[0])
	}
	fs := flag.NewFlagSet("import local-kms", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, importUsage) }
	out := fs.String("o", "", "write the kmsd seed to this file (mode 0600) instead of standard output")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("import local-kms: name one local-kms seed file")
	}
	src, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("import local-kms: %w", err)
	}
	converted, notes, err := seed.FromLocalKMS(src)
	clear(src)
	if err != nil {
		return fmt.Errorf("import local-kms %s: %w", fs.Arg(0), err)
	}
	defer clear(converted)
	for _, n := range notes {
		fmt.Fprintln(stderr, "note:", n)
	}
	if *out == "" {
		_, err := stdout.Write(converted)
		return err
	}
	return writePrivateFile(*out, converted)
}

// writePrivateFile writes b to path with mode 0600 (an existing file's
// mode is narrowed first).
func writePrivateFile(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
