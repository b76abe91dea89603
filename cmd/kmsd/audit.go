package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/config"
)

const auditUsage = `usage: kmsd audit <command> [flags]

commands:
  verify    check the audit log's hash chain and signed digests
            (kmsd audit verify -h lists the flags)
`

// auditMain runs "kmsd audit …".
func auditMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return errors.New("no audit command given")
	}
	switch args[0] {
	case "verify":
		return auditVerify(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, auditUsage)
		return nil
	default:
		fmt.Fprint(stderr, auditUsage)
		return fmt.Errorf("unknown audit command %q", args[0])
	}
}

const auditVerifyUsage = `usage: kmsd audit verify [flags] [FILE...]

Verifies the audit log: every record's place in the hash chain, every
digest's signature, and that the log ends with the digest kmsd writes when
it stops. Prints "OK: …" or the first problem found (file, line, record),
and exits non-zero on a problem.

With FILE arguments, verifies those files in the order given (for example
a copy of the log kmsd sent to stdout) instead of the log directory.

flags:
`

func auditVerify(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, auditVerifyUsage)
		fs.PrintDefaults()
	}
	dataDir := fs.String("data-dir", "", "kmsd's data folder (env KMSD_DATA_DIR; default ~/.local/share/kmsd)")
	dir := fs.String("dir", "", "the audit log directory (default DATA_DIR/"+audit.DirName+")")
	pubPath := fs.String("public-key", "", "the signing public key, PEM (default DATA_DIR/"+audit.PublicKeyFile+")")
	allowOpen := fs.Bool("allow-open", false, "accept a log that does not end with a close digest, as while kmsd is running; its unsigned records are reported as a warning")
	if err := fs.Parse(args); err != nil {
		return err
	}
	files := fs.Args()
	if len(files) > 0 && *dir != "" {
		return errors.New("give either --dir or files, not both")
	}
	if *dataDir == "" {
		*dataDir = os.Getenv("KMSD_DATA_DIR")
	}
	if *dataDir == "" {
		*dataDir = config.Defaults().DataDir
	}
	if *dir == "" {
		*dir = filepath.Join(*dataDir, audit.DirName)
	}
	if *pubPath == "" {
		*pubPath = filepath.Join(*dataDir, audit.PublicKeyFile)
	}
	pub, err := audit.ReadPublicKey(*pubPath)
	if err != nil {
		return err
	}

	var rep *audit.Report
	if len(files) > 0 {
		rep, err = audit.VerifyFiles(files, pub)
	} else {
		rep, err = audit.Verify(*dir, pub)
	}
	var p *audit.Problem
	if err != nil && !errors.As(err, &p) {
		return err
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(stdout, "note: %s\n", n)
	}
	if p != nil && !(p.Kind == audit.ProblemUnclosed && *allowOpen) {
		fmt.Fprintf(stdout, "FAILED: %v\n", p)
		if rep.Records > 0 && p.Kind != audit.ProblemUnclosed {
			fmt.Fprintf(stdout, "(the %s before it verified, through sequence %d)\n", plural(rep.Records, "record"), rep.LastSequence)
		}
		return errors.New("the audit log failed verification")
	}
	fmt.Fprintf(stdout, "OK: %s, %s, chain intact through sequence %d\n",
		plural(rep.Records, "record"), plural(uint64(rep.Digests), "digest"), rep.LastSequence)
	if p != nil {
		fmt.Fprintf(stdout, "warning: %s\n", p.Message)
	}
	return nil
}

func plural(n uint64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
