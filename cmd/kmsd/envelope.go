package main

// kmsd encrypt / kmsd decrypt: envelope encryption of files and streams in
// the AWS Encryption SDK message format (package envelope), with data keys
// from kmsd or any AWS-KMS-compatible endpoint. See docs/envelope.md.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"golang.org/x/term"

	"github.com/kmsd/kmsd/envelope"
	"github.com/kmsd/kmsd/internal/awsarn"
)

const envelopeUsage = `usage: kmsd encrypt --key KEY [--key KEY]... [flags] [INPUT]
       kmsd decrypt (--key KEY_ARN... | --discovery) [flags] [INPUT]

Encrypts or decrypts INPUT (default: standard input, also "-") in the AWS
Encryption SDK message format, with a data key from KMS. Any of the keys
given to encrypt can decrypt. Output goes to -o FILE (written to a temporary
file and renamed into place only when complete and verified; a device or a
FIFO is written in place) or to standard output.

Common flags:
  -o, --out FILE          output file (default: standard output)
  --context KEY=VALUE     encryption context (repeatable). encrypt: stored in
                          the message and bound to it. decrypt: the message
                          must carry this pair; --context KEY only requires
                          the key to be present
  --endpoint-url URL      KMS endpoint (default: AWS_ENDPOINT_URL_KMS,
                          AWS_ENDPOINT_URL or the AWS default)
  --region REGION         AWS region (default: AWS_REGION, AWS_DEFAULT_REGION
                          or the profile's)
  --profile NAME          shared config profile (default: AWS_PROFILE)
  --progress              always show progress on standard error
  -q, --quiet             never show progress (default: shown on a terminal
                          for inputs of 8 MiB or more)

encrypt:
  --key KEY               KMS key: key ARN, alias ARN, key ID or alias name
                          (repeatable; the first generates the data key)
  --suite SUITE           0578 (default: signed with ECDSA P-384) or 0478
  --frame-length BYTES    plaintext bytes per frame (default 4096)

decrypt:
  --key KEY               a KMS key allowed to decrypt (repeatable). Only
                          encrypted data keys under these keys are tried;
                          aliases and key IDs are resolved to key ARNs
  --discovery             instead of --key: try whatever KMS key the message
                          names (limit with --discovery-account)
  --discovery-account ID  only keys of this account (repeatable)
  --discovery-partition P partition of --discovery-account (default aws)
  --max-encrypted-data-keys N
                          refuse messages with more encrypted data keys
`

// envelopeMain runs "kmsd encrypt" and "kmsd decrypt".
func envelopeMain(ctx context.Context, cmd string, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	if cmd != "encrypt" && cmd != "decrypt" {
		return fmt.Errorf("envelope: unknown command %q", cmd)
	}
	f, err := parseEnvelopeFlags(cmd, args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, envelopeUsage)
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w (kmsd %s -h for help)", cmd, err, cmd)
	}
	if err := f.run(ctx, stdin, stdout, stderr, getenv); err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	return nil
}

// envList is a repeatable string flag.
type envList []string

func (l *envList) String() string     { return strings.Join(*l, ",") }
func (l *envList) Set(v string) error { *l = append(*l, v); return nil }

type envelopeFlags struct {
	cmd         string
	in, out     string
	keys        envList
	contexts    envList
	endpointURL string
	region      string
	profile     string
	progress    bool
	quiet       bool
	// encrypt
	suite       string
	frameLength uint
	// decrypt
	discovery          bool
	discoveryAccounts  envList
	discoveryPartition string
	maxEDKs            int
}

func parseEnvelopeFlags(cmd string, args []string, stderr io.Writer) (*envelopeFlags, error) {
	f := &envelopeFlags{cmd: cmd}
	fs := flag.NewFlagSet("kmsd "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned; -h prints envelopeUsage
	fs.StringVar(&f.out, "o", "-", "")
	fs.StringVar(&f.out, "out", "-", "")
	fs.Var(&f.keys, "key", "")
	fs.Var(&f.contexts, "context", "")
	fs.StringVar(&f.endpointURL, "endpoint-url", "", "")
	fs.StringVar(&f.region, "region", "", "")
	fs.StringVar(&f.profile, "profile", "", "")
	fs.BoolVar(&f.progress, "progress", false, "")
	fs.BoolVar(&f.quiet, "q", false, "")
	fs.BoolVar(&f.quiet, "quiet", false, "")
	if cmd == "encrypt" {
		fs.StringVar(&f.suite, "suite", "0578", "")
		fs.UintVar(&f.frameLength, "frame-length", envelope.DefaultFrameLength, "")
	} else {
		fs.BoolVar(&f.discovery, "discovery", false, "")
		fs.Var(&f.discoveryAccounts, "discovery-account", "")
		fs.StringVar(&f.discoveryPartition, "discovery-partition", awsarn.Partition, "")
		fs.IntVar(&f.maxEDKs, "max-encrypted-data-keys", 0, "")
	}
	// Flags may come before or after the input file.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	switch len(positional) {
	case 0:
		f.in = "-"
	case 1:
		f.in = positional[0]
	default:
		return nil, fmt.Errorf("one input at a time, got %d: %s", len(positional), strings.Join(positional, " "))
	}
	if f.progress && f.quiet {
		return nil, errors.New("--progress and --quiet exclude each other")
	}
	if cmd == "encrypt" {
		if len(f.keys) == 0 {
			return nil, errors.New("--key is required")
		}
		if f.frameLength == 0 || f.frameLength > 1<<32-1 {
			return nil, fmt.Errorf("--frame-length must be between 1 and %d", uint32(1<<32-1))
		}
	} else {
		switch {
		case f.discovery && len(f.keys) > 0:
			return nil, errors.New("--key and --discovery exclude each other")
		case !f.discovery && len(f.keys) == 0:
			return nil, errors.New("--key KEY_ARN (repeatable) or --discovery is required")
		case !f.discovery && len(f.discoveryAccounts) > 0:
			return nil, errors.New("--discovery-account needs --discovery")
		case f.maxEDKs < 0:
			return nil, errors.New("--max-encrypted-data-keys must not be negative")
		}
	}
	return f, nil
}

// envParseSuite reads --suite: 0478 or 0578, with or without 0x.
func envParseSuite(s string) (envelope.Suite, error) {
	v, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(s), "0x"), 16, 16)
	if err == nil && envelope.Suite(v).Valid() {
		return envelope.Suite(v), nil
	}
	return 0, fmt.Errorf("--suite %q: want 0578 (signed, the default) or 0478", s)
}

// envParseContexts reads --context values; with allowBare, "KEY" alone (a key
// that must be present) is allowed too.
func envParseContexts(list []string, allowBare bool) (pairs map[string]string, bare []string, err error) {
	pairs = map[string]string{}
	for _, c := range list {
		k, v, ok := strings.Cut(c, "=")
		switch {
		case k == "":
			return nil, nil, fmt.Errorf("--context %q: empty key", c)
		case !ok && !allowBare:
			return nil, nil, fmt.Errorf("--context %q: want KEY=VALUE", c)
		case !ok:
			bare = append(bare, k)
			continue
		}
		if old, dup := pairs[k]; dup && old != v {
			return nil, nil, fmt.Errorf("--context %q given twice with different values", k)
		}
		pairs[k] = v
	}
	return pairs, bare, nil
}

// newKMSClient builds an aws-sdk-go-v2 KMS client from the standard AWS
// configuration (environment through getenv, shared config files and
// profiles) and the command-line overrides.
func (f *envelopeFlags) newKMSClient(ctx context.Context, getenv func(string) string) (*awskms.Client, error) {
	var opts []func(*config.LoadOptions) error
	region := envFirst(f.region, getenv("AWS_REGION"), getenv("AWS_DEFAULT_REGION"))
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	if p := envFirst(f.profile, getenv("AWS_PROFILE")); p != "" {
		opts = append(opts, config.WithSharedConfigProfile(p))
	}
	if p := getenv("AWS_CONFIG_FILE"); p != "" {
		opts = append(opts, config.WithSharedConfigFiles([]string{p}))
	}
	if p := getenv("AWS_SHARED_CREDENTIALS_FILE"); p != "" {
		opts = append(opts, config.WithSharedCredentialsFiles([]string{p}))
	}
	if id, secret := getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY"); id != "" && secret != "" && f.profile == "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(id, secret, getenv("AWS_SESSION_TOKEN"))))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("no AWS region: set AWS_REGION or pass --region")
	}
	endpoint := envFirst(f.endpointURL, getenv("AWS_ENDPOINT_URL_KMS"), getenv("AWS_ENDPOINT_URL"))
	return awskms.NewFromConfig(cfg, func(o *awskms.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	}), nil
}

func envFirst(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func (f *envelopeFlags) run(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	var suite envelope.Suite
	var pairs map[string]string
	var bare []string
	var err error
	if f.cmd == "encrypt" {
		if suite, err = envParseSuite(f.suite); err != nil {
			return err
		}
	}
	if pairs, bare, err = envParseContexts(f.contexts, f.cmd == "decrypt"); err != nil {
		return err
	}

	// Open the input first: a missing file should not cost a KMS call.
	in, size, closeIn, err := openEnvelopeInput(f.in, stdin)
	if err != nil {
		return err
	}
	defer closeIn()
	if f.cmd == "encrypt" && f.out == "-" && envIsTerminal(stdout) {
		return errors.New("refusing to write a binary message to a terminal; use -o FILE or redirect")
	}

	client, err := f.newKMSClient(ctx, getenv)
	if err != nil {
		return err
	}
	var kr envelope.Keyring
	if f.cmd == "encrypt" {
		kr, err = envEncryptKeyring(client, f.keys)
	} else {
		kr, err = f.decryptKeyring(ctx, client)
	}
	if err != nil {
		return err
	}

	out, err := openEnvelopeOutput(f.out, f.in, stdout)
	if err != nil {
		return err
	}
	defer out.abort() // no-op after commit

	var p *envProgress
	if f.progress || (!f.quiet && envIsTerminal(stderr) && (size < 0 || size >= 8<<20)) {
		p = startEnvProgress(stderr, size)
		in = p.reader(in)
	}
	if f.cmd == "encrypt" {
		_, err = envelope.Encrypt(ctx, out, in, envelope.EncryptOptions{
			Keyring:           kr,
			EncryptionContext: pairs,
			Suite:             suite,
			FrameLength:       uint32(f.frameLength),
		})
	} else {
		_, err = envelope.Decrypt(ctx, out, in, envelope.DecryptOptions{
			CMM:                  &envContextCheckCMM{under: envelope.NewDefaultCMM(kr), pairs: pairs, keys: bare},
			MaxEncryptedDataKeys: f.maxEDKs,
		})
	}
	if p != nil {
		p.stop(err == nil)
	}
	if err != nil {
		return envExplainError(err, out.atomic())
	}
	return out.commit()
}

// envEncryptKeyring: the first key generates the data key, the others encrypt
// it as well.
func envEncryptKeyring(client envelope.KMSClient, keys []string) (envelope.Keyring, error) {
	var rings []envelope.Keyring
	for _, k := range keys {
		kr, err := envelope.NewKMSKeyring(client, k)
		if err != nil {
			return nil, fmt.Errorf("--key: %w", err)
		}
		rings = append(rings, kr)
	}
	return envelope.NewMultiKeyring(rings[0], rings[1:]...)
}

// decryptKeyring builds a strict keyring over the --key keys (resolved to
// key ARNs, since only a key ARN can match an encrypted data key) or a
// discovery keyring.
func (f *envelopeFlags) decryptKeyring(ctx context.Context, client *awskms.Client) (envelope.Keyring, error) {
	if f.discovery {
		var filter *envelope.DiscoveryFilter
		if len(f.discoveryAccounts) > 0 {
			filter = &envelope.DiscoveryFilter{Partition: f.discoveryPartition, Accounts: f.discoveryAccounts}
		}
		return envelope.NewKMSDiscoveryKeyring(client, filter)
	}
	var rings []envelope.Keyring
	for _, k := range f.keys {
		arn := k
		if !envelope.IsKeyARN(k) {
			out, err := client.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(k)})
			if err != nil {
				return nil, fmt.Errorf("--key %s: resolving to a key ARN: %w", k, err)
			}
			if out.KeyMetadata == nil || out.KeyMetadata.Arn == nil {
				return nil, fmt.Errorf("--key %s: DescribeKey returned no key ARN", k)
			}
			arn = *out.KeyMetadata.Arn
		}
		kr, err := envelope.NewKMSKeyring(client, arn)
		if err != nil {
			return nil, fmt.Errorf("--key: %w", err)
		}
		rings = append(rings, kr)
	}
	return envelope.NewMultiKeyring(rings[0], rings[1:]...)
}

// envContextCheckCMM enforces decrypt's --context before any data key is
// decrypted, so that a message with the wrong context yields no output at
// all: every pair must be stored in the message with that value, and every
// bare key must be present.
type envContextCheckCMM struct {
	under envelope.CMM
	pairs map[string]string
	keys  []string
}

func (c *envContextCheckCMM) GetEncryptionMaterials(ctx context.Context, req *envelope.EncryptionMaterialsRequest) (*envelope.EncryptionMaterials, error) {
	return c.under.GetEncryptionMaterials(ctx, req)
}

func (c *envContextCheckCMM) DecryptMaterials(ctx context.Context, req *envelope.DecryptMaterialsRequest) (*envelope.DecryptionMaterials, error) {
	for _, k := range append(slices.Sorted(maps.Keys(c.pairs)), c.keys...) {
		got, ok := req.EncryptionContext[k]
		if !ok {
			return nil, fmt.Errorf("%w: the message has no encryption context key %q", envelope.ErrContextMismatch, k)
		}
		if want, ok := c.pairs[k]; ok && got != want {
			return nil, fmt.Errorf("%w: the message has %s=%q, --context wants %q", envelope.ErrContextMismatch, k, got, want)
		}
	}
	return c.under.DecryptMaterials(ctx, req)
}

// envExplainError says what the library's error means for the user, and
// whether output was left behind: none when the output was atomic.
func envExplainError(err error, atomic bool) error {
	var what string
	switch {
	case errors.Is(err, envelope.ErrNoDataKey):
		what = "cannot decrypt the data key (wrong key, no permission, or a different encryption context)"
	case errors.Is(err, envelope.ErrAuthentication):
		what = "the message is corrupt or has been tampered with"
	case errors.Is(err, envelope.ErrTruncated):
		what = "the message is incomplete"
	case errors.Is(err, envelope.ErrContextMismatch):
		what = "wrong encryption context"
	case errors.Is(err, envelope.ErrMalformed):
		what = "not a valid message"
	}
	outcome := "no output written"
	if !atomic {
		outcome = "discard the output"
	}
	if what == "" {
		return fmt.Errorf("%w (%s)", err, outcome)
	}
	return fmt.Errorf("%s (%s): %w", what, outcome, err)
}

// openEnvelopeInput opens a file or "-" for stdin, with its size if known
// (-1 if not).
func openEnvelopeInput(path string, stdin io.Reader) (io.Reader, int64, func(), error) {
	if path == "-" {
		size := int64(-1)
		if f, ok := stdin.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
				size = st.Size()
			}
		}
		return stdin, size, func() {}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, nil, err
	}
	if st.IsDir() {
		f.Close()
		return nil, 0, nil, fmt.Errorf("%s is a directory", path)
	}
	size := int64(-1)
	if st.Mode().IsRegular() {
		size = st.Size()
	}
	return f, size, func() { f.Close() }, nil
}

// envOutput is where the result goes: standard output; for a regular file
// (or a path that does not exist yet), a temporary file beside the target
// that is renamed over it only by commit, so that a failed or interrupted run
// leaves no output file behind and partial plaintext is never presented as a
// result; or, for a path that is not a regular file (a device such as
// /dev/null, a FIFO), the path itself, opened and written directly. Renaming
// over those would replace them with a regular file: /dev/null turned into a
// 0600 file breaks every other program on the machine.
type envOutput struct {
	io.Writer
	path    string   // the target; "" for standard output
	inPlace bool     // the target is written directly: a device, a FIFO
	tmp     *os.File // the temporary file of an atomic output; nil otherwise or once finished
	direct  *os.File // the target written in place; nil otherwise or once finished
}

// atomic reports whether a failed run leaves nothing behind (output to a
// regular file), as opposed to whatever was written so far.
func (o *envOutput) atomic() bool { return o.path != "" && !o.inPlace }

func openEnvelopeOutput(path, inPath string, stdout io.Writer) (*envOutput, error) {
	if path == "-" {
		return &envOutput{Writer: stdout}, nil
	}
	// Stat follows symbolic links: a link to /dev/null is a device too.
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("output: %w", err)
	case st.IsDir():
		// Found now, before the message is read, rather than by the
		// rename at the end.
		return nil, fmt.Errorf("output %s is a directory", path)
	case !st.Mode().IsRegular():
		return openEnvelopeSpecialOutput(path, st.Mode())
	case inPath != "-":
		if in, err := os.Stat(inPath); err == nil && os.SameFile(in, st) {
			return nil, fmt.Errorf("output %s is the input file", path)
		}
	}
	// CreateTemp makes the file with mode 0600: plaintext is never
	// readable by others, even while it is being written.
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".partial-*")
	if err != nil {
		return nil, fmt.Errorf("creating output: %w", err)
	}
	return &envOutput{Writer: tmp, path: path, tmp: tmp}, nil
}

// openEnvelopeSpecialOutput opens a path that is not a regular file for
// writing in place. A FIFO's open waits for a reader, as a shell redirection
// does.
func openEnvelopeSpecialOutput(path string, mode fs.FileMode) (*envOutput, error) {
	if mode&fs.ModeSocket != 0 {
		// open(2) cannot open a socket; say what it is rather than ENXIO.
		return nil, fmt.Errorf("output %s is a socket: write to a file, a device or a FIFO", path)
	}
	// Without O_CREATE: if the path disappeared since Stat, this fails
	// rather than create a file that would bypass the temporary file.
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("opening output: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("opening output: %w", err)
	}
	if st.Mode().IsRegular() || st.IsDir() {
		// Replaced by a regular file between Stat and open: writing it in
		// place would leave partial output on failure.
		f.Close()
		return nil, fmt.Errorf("output %s changed while it was opened", path)
	}
	return &envOutput{Writer: f, path: path, inPlace: true, direct: f}, nil
}

func (o *envOutput) commit() error {
	if o.direct != nil {
		f := o.direct
		o.direct = nil
		// No Sync: devices and FIFOs have nothing to flush to disk, and
		// some (/dev/null) refuse fsync with EINVAL.
		if err := f.Close(); err != nil {
			return fmt.Errorf("writing %s: %w", o.path, err)
		}
		return nil
	}
	if o.tmp == nil {
		return nil
	}
	tmp := o.tmp
	o.tmp = nil
	err := tmp.Sync()
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), o.path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", o.path, err)
	}
	return nil
}

func (o *envOutput) abort() {
	if o.direct != nil {
		o.direct.Close()
		o.direct = nil
	}
	if o.tmp != nil {
		o.tmp.Close()
		os.Remove(o.tmp.Name())
		o.tmp = nil
	}
}

// envIsTerminal reports whether w is a terminal. Asking the descriptor (an
// ioctl that only terminals answer) rather than testing for a character
// device matters: /dev/null is a character device, and "kmsd encrypt >
// /dev/null" must not be refused as writing to a terminal.
func envIsTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// envProgress draws a one-line progress display on standard error.
type envProgress struct {
	w     io.Writer
	total int64 // -1 if unknown
	n     atomic.Int64
	start time.Time
	quit  chan struct{}
	wg    sync.WaitGroup
}

func startEnvProgress(w io.Writer, total int64) *envProgress {
	p := &envProgress{w: w, total: total, start: time.Now(), quit: make(chan struct{})}
	p.wg.Go(func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.draw()
			case <-p.quit:
				return
			}
		}
	})
	return p
}

func (p *envProgress) reader(r io.Reader) io.Reader { return &envCountingReader{r: r, n: &p.n} }

func (p *envProgress) draw() {
	n := p.n.Load()
	rate := float64(n) / max(time.Since(p.start).Seconds(), 1e-3)
	line := envBytes(n)
	if p.total >= 0 {
		pct := 100.0
		if p.total > 0 {
			pct = 100 * float64(n) / float64(p.total)
		}
		const width = 24
		done := min(width, int(pct*width/100))
		line = fmt.Sprintf("[%s%s] %5.1f%% %s / %s", strings.Repeat("=", done), strings.Repeat(" ", width-done), pct, envBytes(n), envBytes(p.total))
	}
	fmt.Fprintf(p.w, "\r%s  %s/s\x1b[K", line, envBytes(int64(rate)))
}

func (p *envProgress) stop(ok bool) {
	close(p.quit)
	p.wg.Wait()
	if ok {
		p.draw()
	}
	fmt.Fprintln(p.w)
}

type envCountingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *envCountingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

// envBytes formats a byte count with a binary unit.
func envBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i])
}
