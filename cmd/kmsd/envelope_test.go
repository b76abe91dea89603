package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kmsd/kmsd/internal/kmstest"
)

// envelopeCLI is a kmsd with two keys (A has an alias) and a third key
// that encrypts nothing.
type envelopeCLI struct {
	t       *testing.T
	env     *kmstest.Env
	a, b, c string
	dir     string
}

func newEnvelopeCLI(t *testing.T) *envelopeCLI {
	t.Helper()
	env := kmstest.Start(t)
	e := &envelopeCLI{t: t, env: env, dir: t.TempDir()}
	for _, k := range []*string{&e.a, &e.b, &e.c} {
		out, err := env.Client.CreateKey(context.Background(), &awskms.CreateKeyInput{})
		if err != nil {
			t.Fatal(err)
		}
		*k = aws.ToString(out.KeyMetadata.Arn)
	}
	if _, err := env.Client.CreateAlias(context.Background(), &awskms.CreateAliasInput{AliasName: aws.String("alias/cli"), TargetKeyId: aws.String(e.a)}); err != nil {
		t.Fatal(err)
	}
	return e
}

// run runs kmsd encrypt/decrypt with the AWS configuration in a fake
// environment pointing at the test kmsd.
func (e *envelopeCLI) run(stdin io.Reader, args ...string) (stdout, stderr string, err error) {
	e.t.Helper()
	var out bytes.Buffer
	stderr, err = e.runTo(stdin, &out, args...)
	return out.String(), stderr, err
}

// runTo is run with stdout given, for an *os.File.
func (e *envelopeCLI) runTo(stdin io.Reader, stdout io.Writer, args ...string) (stderr string, err error) {
	e.t.Helper()
	vars := map[string]string{
		"AWS_ACCESS_KEY_ID":           e.env.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY":       e.env.Secret,
		"AWS_REGION":                  "us-east-1",
		"AWS_ENDPOINT_URL":            e.env.URL,
		"AWS_CONFIG_FILE":             filepath.Join(e.dir, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(e.dir, "no-aws-credentials"),
	}
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	var errOut bytes.Buffer
	err = envelopeMain(context.Background(), args[0], args[1:], stdin, stdout, &errOut, func(k string) string { return vars[k] })
	return errOut.String(), err
}

func (e *envelopeCLI) path(name string) string { return filepath.Join(e.dir, name) }

func (e *envelopeCLI) write(name string, b []byte) string {
	e.t.Helper()
	if err := os.WriteFile(e.path(name), b, 0o600); err != nil {
		e.t.Fatal(err)
	}
	return e.path(name)
}

func (e *envelopeCLI) read(name string) []byte {
	e.t.Helper()
	b, err := os.ReadFile(e.path(name))
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// noLeftovers fails if the folder holds anything but the given files: no
// output and no temporary file may survive a failed run.
func (e *envelopeCLI) noLeftovers(keep ...string) {
	e.t.Helper()
	entries, _ := os.ReadDir(e.dir)
	for _, ent := range entries {
		found := false
		for _, k := range keep {
			found = found || ent.Name() == k
		}
		if !found {
			e.t.Fatalf("left behind: %s", ent.Name())
		}
	}
}

func envRandomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestEnvelopeCLIRoundTrip(t *testing.T) {
	e := newEnvelopeCLI(t)
	pt := envRandomBytes(t, 300<<10+17)
	e.write("plain", pt)
	for _, suite := range []string{"0578", "0x0478"} {
		// Keys by alias and by ARN; flags after the input work too.
		if _, stderr, err := e.run(nil, "encrypt", "--key", "alias/cli", "--key", e.b, "--context", "purpose=cli", "--context", "owner=ops", "--suite", suite, e.path("plain"), "-o", e.path("msg"), "--frame-length", "1000"); err != nil {
			t.Fatalf("encrypt: %v\n%s", err, stderr)
		}
		for name, args := range map[string][]string{
			"key B by ARN":            {"--key", e.b},
			"key A by alias":          {"--key", "alias/cli", "--context", "purpose=cli"},
			"unrelated key and key A": {"--key", e.c, "--key", e.a, "--context", "owner"},
			"discovery":               {"--discovery"},
			"discovery in account":    {"--discovery", "--discovery-account", kmstest.Account},
		} {
			os.Remove(e.path("out"))
			args = append([]string{"decrypt", "-o", e.path("out"), e.path("msg")}, args...)
			if _, stderr, err := e.run(nil, args...); err != nil {
				t.Fatalf("%s %s: %v\n%s", suite, name, err, stderr)
			}
			if !bytes.Equal(e.read("out"), pt) {
				t.Fatalf("%s %s: plaintext differs", suite, name)
			}
			if st, _ := os.Stat(e.path("out")); st.Mode().Perm() != 0o600 {
				t.Fatalf("output mode %v", st.Mode())
			}
		}
	}
	// Standard input to standard output, both ways.
	msg, stderr, err := e.run(bytes.NewReader(pt[:1000]), "encrypt", "--key", e.a)
	if err != nil {
		t.Fatalf("encrypt stdin: %v\n%s", err, stderr)
	}
	out, stderr, err := e.run(strings.NewReader(msg), "decrypt", "--key", e.a, "-")
	if err != nil || out != string(pt[:1000]) {
		t.Fatalf("decrypt stdin: %v\n%s", err, stderr)
	}
	// Forced progress display ends at 100%.
	if _, stderr, err := e.run(nil, "encrypt", "--key", e.a, "--progress", "-o", e.path("msg2"), e.path("plain")); err != nil || !strings.Contains(stderr, "100.0%") {
		t.Fatalf("progress: %v\n%q", err, stderr)
	}
	e.noLeftovers("plain", "msg", "msg2", "out")
}

func TestEnvelopeCLIFailures(t *testing.T) {
	e := newEnvelopeCLI(t)
	pt := envRandomBytes(t, 20000)
	e.write("plain", pt)
	for _, suite := range []string{"0578", "0478"} {
		if _, stderr, err := e.run(nil, "encrypt", "--key", e.a, "--context", "purpose=cli", "--suite", suite, "-o", e.path("msg"), e.path("plain")); err != nil {
			t.Fatalf("encrypt: %v\n%s", err, stderr)
		}
		msg := e.read("msg")
		tampered := bytes.Clone(msg)
		tampered[len(tampered)-200] ^= 1 // in the final frame or the signature
		early := bytes.Clone(msg)
		early[400] ^= 1 // in the header or the first frame
		for name, tc := range map[string]struct {
			msg  []byte
			args []string
			want string
		}{
			"tampered end":     {tampered, []string{"--key", e.a}, "tampered"},
			"tampered start":   {early, []string{"--key", e.a}, "tampered"},
			"truncated":        {msg[:len(msg)-10], []string{"--key", e.a}, "incomplete"},
			"trailing data":    {append(bytes.Clone(msg), 0), []string{"--key", e.a}, "not a valid message"},
			"wrong key":        {msg, []string{"--key", e.c}, "cannot decrypt the data key"},
			"wrong account":    {msg, []string{"--discovery", "--discovery-account", "444455556666"}, "cannot decrypt the data key"},
			"wrong context":    {msg, []string{"--key", e.a, "--context", "purpose=other"}, "wrong encryption context"},
			"missing context":  {msg, []string{"--key", e.a, "--context", "tenant"}, "no encryption context key \"tenant\""},
			"not a message":    {[]byte("hello"), []string{"--key", e.a}, "not a valid message"},
			"base64 message":   {[]byte("AgV4AAAAAAAAAAAAAAAAAAAA"), []string{"--key", e.a}, "base64"},
			"EDK limit met":    {msg, []string{"--key", e.a, "--max-encrypted-data-keys", "1"}, ""},
			"unknown alias":    {msg, []string{"--key", "alias/none"}, "resolving"},
			"no key":           {msg, nil, "--key KEY_ARN"},
			"key and discover": {msg, []string{"--key", e.a, "--discovery"}, "exclude"},
		} {
			in := e.write("in", tc.msg)
			_, stderr, err := e.run(nil, append([]string{"decrypt", "-o", e.path("out"), in}, tc.args...)...)
			if tc.want == "" { // a valid variant
				if err != nil {
					t.Fatalf("%s %s: %v\n%s", suite, name, err, stderr)
				}
				os.Remove(e.path("out"))
				continue
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%s %s: got %v, want an error with %q", suite, name, err, tc.want)
			}
			e.noLeftovers("plain", "msg", "in")
		}
	}
	// To standard output a failure is still an error (and the last frame
	// of the bad message is not written).
	msg := e.read("msg")
	msg[len(msg)-30] ^= 1
	out, _, err := e.run(bytes.NewReader(msg), "decrypt", "--key", e.a)
	if err == nil || !strings.Contains(err.Error(), "discard the output") || !bytes.HasPrefix(pt, []byte(out)) || len(out) == len(pt) {
		t.Fatalf("stdout decrypt of a bad message: %v, %d bytes out", err, len(out))
	}

	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"encrypt without key": {[]string{"encrypt", e.path("plain")}, "--key is required"},
		"bad suite":           {[]string{"encrypt", "--key", e.a, "--suite", "0178", e.path("plain")}, "--suite"},
		"bad context":         {[]string{"encrypt", "--key", e.a, "--context", "novalue", e.path("plain")}, "KEY=VALUE"},
		"reserved context":    {[]string{"encrypt", "--key", e.a, "--context", "aws-crypto-x=1", "-o", e.path("x"), e.path("plain")}, "reserved"},
		"frame length":        {[]string{"encrypt", "--key", e.a, "--frame-length", "0", e.path("plain")}, "--frame-length"},
		"two inputs":          {[]string{"encrypt", "--key", e.a, e.path("plain"), e.path("plain")}, "one input"},
		"missing input":       {[]string{"encrypt", "--key", e.a, e.path("nope")}, "no such file"},
		"output is input":     {[]string{"encrypt", "--key", e.a, "-o", e.path("plain"), e.path("plain")}, "is the input"},
		"unknown key":         {[]string{"encrypt", "--key", "alias/none", "-o", e.path("x"), e.path("plain")}, "NotFoundException"},
		"bad flag":            {[]string{"decrypt", "--bogus"}, "flag provided but not defined"},
	} {
		if _, _, err := e.run(nil, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error with %q", name, err, tc.want)
		}
	}
	e.noLeftovers("plain", "msg", "in")
	if out, _, err := e.run(nil, "encrypt", "-h"); err != nil || !strings.Contains(out, "usage: kmsd encrypt") {
		t.Errorf("help: %v", err)
	}
}

// TestEnvelopeCLIConfig checks where the KMS settings come from.
func TestEnvelopeCLIConfig(t *testing.T) {
	e := newEnvelopeCLI(t)
	e.write("plain", []byte("x"))
	var out, errOut bytes.Buffer
	noRegion := func(k string) string {
		return map[string]string{"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "AWS_CONFIG_FILE": e.path("none"), "AWS_SHARED_CREDENTIALS_FILE": e.path("none")}[k]
	}
	err := envelopeMain(context.Background(), "encrypt", []string{"--key", e.a, "-o", e.path("x"), e.path("plain")}, nil, &out, &errOut, noRegion)
	if err == nil || !strings.Contains(err.Error(), "region") {
		t.Fatalf("no region: %v", err)
	}
	// --endpoint-url and --region win over the environment.
	vars := map[string]string{
		"AWS_ACCESS_KEY_ID": e.env.AccessKeyID, "AWS_SECRET_ACCESS_KEY": e.env.Secret,
		"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_REGION": "eu-west-1",
		"AWS_CONFIG_FILE": e.path("none"), "AWS_SHARED_CREDENTIALS_FILE": e.path("none"),
	}
	args := []string{"--key", e.a, "--endpoint-url", e.env.URL, "--region", "us-east-1", "-o", e.path("msg"), e.path("plain")}
	if err := envelopeMain(context.Background(), "encrypt", args, nil, &out, &errOut, func(k string) string { return vars[k] }); err != nil {
		t.Fatalf("flags over environment: %v", err)
	}
}
