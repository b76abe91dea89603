// Command kmsd is a self-hosted key management service that speaks the AWS
// KMS API.
//
//	kmsd serve [flags]          start the service (kmsd serve -h lists the flags)
//	kmsd init --passphrase | --shares N --threshold K
//	                            create a sealed root of trust in a new data folder
//	kmsd unseal                 give a sealed kmsd its passphrase or one Shamir share
//	kmsd encrypt / decrypt      envelope-encrypt files or streams with KMS keys
//	kmsd iam create-access-key  create an access key for a declared user or role
//	kmsd audit verify           verify the audit log's hash chain and signatures
//	kmsd audit accept-reset     accept an audit log that no longer reaches its anchor
//	kmsd audit drop-kept        remove refused records kept in the store for the audit log
//	kmsd store check            check the integrity of the store
//	kmsd backup -o FILE         write a consistent snapshot of the store
//	kmsd restore FILE           load a snapshot into an empty store
//	kmsd bench                  load-test a kmsd, optionally against a bare floor server
//	kmsd import local-kms FILE  convert a local-kms seed file into a kmsd seed file
//	kmsd completion SHELL       print a bash, zsh or fish completion script
//	kmsd healthcheck            probe /healthz of the kmsd configured here
//	kmsd version                print the version (also kmsd --version)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "kmsd:", err)
		os.Exit(1)
	}
}

const usage = `usage: kmsd <command> [flags]

commands:
  serve                    start kmsd (no configuration needed: kmsd serve)
  init --passphrase | --shares N --threshold K
                           create a sealed root of trust in a new data folder (kmsd serve
                           then starts sealed); --seal-existing seals an existing root.key
  unseal                   give a sealed kmsd serve its passphrase or one Shamir share
  encrypt, decrypt         envelope encryption of files or streams (AWS Encryption SDK format)
  iam create-access-key    create an access key for a user or role declared in the configuration
  audit verify             verify the audit log (and that it reaches its anchor)
  audit accept-reset       accept, on the record, an audit log that was cut back or lost
  audit drop-kept          remove, on the record, refused records kept in the store for the audit log
  store check              check the integrity of the whole store
  root rotate|migrate|status|retire   rotate the root of trust, move between file and PKCS#11 roots
  backup -o FILE           write a consistent snapshot of the store (SQLite or PostgreSQL); the
                           root key is not in it: back it up separately
  restore FILE             load a snapshot into an empty store (SQLite or PostgreSQL)
  bench                    load-test a kmsd (or --spawn one), optionally against a bare --floor server
  import local-kms FILE    convert a local-kms seed file into a kmsd seed file (docs/seeding.md)
  completion bash|zsh|fish print a shell completion script
  healthcheck              probe /healthz of the kmsd configured on this machine (a container's HEALTHCHECK)
  version                  print the version and VCS revision (also --version)

Run "kmsd <command> -h" for the flags of a command.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	// -h and --help are no error, for every command: the flag sets
	// return flag.ErrHelp once they have printed their usage.
	if err := dispatch(ctx, args, stdout, stderr, getenv); !errors.Is(err, flag.ErrHelp) {
		return err
	}
	return nil
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	switch args[0] {
	case "serve":
		return serveWithPprof(ctx, args[1:], stdout, stderr, getenv)
	case "init":
		return initMain(ctx, args[1:], stdout, stderr, getenv)
	case "unseal":
		return unsealMain(ctx, args[1:], stdout, stderr, getenv)
	case "encrypt", "decrypt":
		return envelopeMain(ctx, args[0], args[1:], os.Stdin, stdout, stderr, getenv)
	case "iam":
		return iamMain(ctx, args[1:], stdout, stderr, getenv)
	case "root":
		return rootMain(ctx, args[1:], stdout, stderr, getenv)
	case "audit":
		return auditMain(ctx, args[1:], stdout, stderr, getenv)
	case "store":
		return storeMain(ctx, args[1:], stdout, stderr, getenv)
	case "backup":
		return backupMain(ctx, args[1:], stdout, stderr, getenv)
	case "restore":
		return restoreMain(ctx, args[1:], os.Stdin, stdout, stderr, getenv)
	case "bench":
		return benchMain(ctx, args[1:], stdout, stderr, getenv)
	case "healthcheck":
		return healthcheckMain(ctx, args[1:], stdout, stderr, getenv)
	case "import":
		return importMain(ctx, args[1:], stdout, stderr)
	case "completion":
		return completionMain(ctx, args[1:], stdout, stderr, getenv)
	case "version", "--version", "-version":
		return versionMain(args[1:], stdout, stderr)
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}
