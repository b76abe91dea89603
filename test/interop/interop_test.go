// Package interop checks that package envelope and the official AWS
// Encryption SDK for JavaScript (@aws-crypto/client-node, driven by
// esdk.js) read each other's messages, both using an in-process kmsd as
// the keyrings' KMS.
//
// It needs Node.js and the npm packages: (cd test/interop && npm ci). Without
// them the test skips, or fails under CI=true.
package interop

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kmsd/kmsd/envelope"
	"github.com/kmsd/kmsd/internal/kmstest"
)

// needNode returns the node binary, or skips (fails under CI=true).
func needNode(t *testing.T) string {
	t.Helper()
	missing := func(why string) {
		msg := why + "; install with: (cd test/interop && npm ci --no-audit --no-fund)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not on PATH")
	}
	if _, err := os.Stat("node_modules/@aws-crypto/client-node/package.json"); err != nil {
		missing("node_modules/@aws-crypto/client-node is missing")
	}
	return node
}

type jsJob struct {
	Op          string            `json:"op"`
	In          string            `json:"in"`
	Out         string            `json:"out"`
	Keyring     map[string]any    `json:"keyring"`
	Suite       envelope.Suite    `json:"suite,omitempty"`
	FrameLength uint32            `json:"frameLength,omitempty"`
	Context     map[string]string `json:"context,omitempty"`
}

type jsResult struct {
	OK      bool              `json:"ok"`
	Error   string            `json:"error"`
	Context map[string]string `json:"context"`
	Suite   envelope.Suite    `json:"suite"`
}

type interopCase struct {
	name        string
	suite       envelope.Suite
	size        int
	frameLength uint32
	plaintext   []byte
	context     map[string]string
}

func (c *interopCase) file(tmp, kind string) string {
	return filepath.Join(tmp, fmt.Sprintf("%s.%s", c.name, kind))
}

func TestInteropWithJavaScriptSDK(t *testing.T) {
	node := needNode(t)
	env := kmstest.Start(t)
	ctx := context.Background()
	var keyA, keyB string
	for _, k := range []*string{&keyA, &keyB} {
		out, err := env.Client.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("interop")})
		if err != nil {
			t.Fatal(err)
		}
		*k = aws.ToString(out.KeyMetadata.Arn)
	}
	tmp := t.TempDir()

	var cases []*interopCase
	for _, s := range []envelope.Suite{envelope.SuiteCommitKey, envelope.SuiteCommitKeyECDSAP384} {
		for _, sz := range []struct {
			name string
			size int
			fl   uint32
		}{
			{"empty", 0, 1024},
			{"one-byte", 1, 1024},
			{"one-frame-short", 1023, 1024},
			{"one-frame-exact", 1024, 1024},
			{"exact-multiple", 3 * 1024, 1024},
			{"non-multiple", 3*1024 + 100, 1024},
			{"large", 4<<20 + 123, 4096},
			{"large-exact-multiple", 2 << 20, 64 << 10},
		} {
			c := &interopCase{
				name:        fmt.Sprintf("%04x-%s", uint16(s), sz.name),
				suite:       s,
				size:        sz.size,
				frameLength: sz.fl,
				plaintext:   make([]byte, sz.size),
				context:     map[string]string{"interop": sz.name, "suite": fmt.Sprintf("%04x", uint16(s))},
			}
			rand.Read(c.plaintext)
			if err := os.WriteFile(c.file(tmp, "pt"), c.plaintext, 0o600); err != nil {
				t.Fatal(err)
			}
			cases = append(cases, c)
		}
	}

	// Go encrypts under both keys.
	both, err := envelope.NewKMSMultiKeyring(env.Client, []string{keyA, keyB})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		var msg bytes.Buffer
		if _, err := envelope.Encrypt(ctx, &msg, bytes.NewReader(c.plaintext), envelope.EncryptOptions{
			Keyring: both, Suite: c.suite, FrameLength: c.frameLength, EncryptionContext: c.context,
		}); err != nil {
			t.Fatalf("%s: Go encrypt: %v", c.name, err)
		}
		if err := os.WriteFile(c.file(tmp, "go.esdk"), msg.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// JavaScript decrypts them with only the second key, and encrypts the
	// same plaintexts under both keys.
	var jobs []jsJob
	for _, c := range cases {
		jobs = append(jobs,
			jsJob{Op: "decrypt", In: c.file(tmp, "go.esdk"), Out: c.file(tmp, "go.js-pt"), Keyring: map[string]any{"kms": []string{keyB}}},
			jsJob{Op: "encrypt", In: c.file(tmp, "pt"), Out: c.file(tmp, "js.esdk"), Keyring: map[string]any{"kms": []string{keyA, keyB}},
				Suite: c.suite, FrameLength: c.frameLength, Context: c.context},
		)
	}
	results := runNode(t, node, tmp, env, jobs)

	strictB, err := envelope.NewKMSKeyring(env.Client, keyB)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		dec, enc := results[2*i], results[2*i+1]
		if !dec.OK {
			t.Errorf("%s: JavaScript could not decrypt Go's message: %s", c.name, dec.Error)
		} else if got, err := os.ReadFile(c.file(tmp, "go.js-pt")); err != nil || !bytes.Equal(got, c.plaintext) {
			t.Errorf("%s: JavaScript decrypted Go's message to different bytes (%v)", c.name, err)
		} else if dec.Suite != c.suite || !sameContext(dec.Context, c.context, c.suite) {
			t.Errorf("%s: JavaScript saw suite %v, context %v", c.name, dec.Suite, dec.Context)
		}
		if !enc.OK {
			t.Errorf("%s: JavaScript could not encrypt: %s", c.name, enc.Error)
			continue
		}
		msg, err := os.ReadFile(c.file(tmp, "js.esdk"))
		if err != nil {
			t.Fatal(err)
		}
		var pt bytes.Buffer
		info, err := envelope.Decrypt(ctx, &pt, bytes.NewReader(msg), envelope.DecryptOptions{Keyring: strictB, EncryptionContext: c.context})
		if err != nil {
			t.Errorf("%s: Go could not decrypt JavaScript's message: %v", c.name, err)
			continue
		}
		if !bytes.Equal(pt.Bytes(), c.plaintext) {
			t.Errorf("%s: Go decrypted JavaScript's message to different bytes", c.name)
		}
		if info.Suite != c.suite || info.FrameLength != c.frameLength || !sameContext(info.EncryptionContext, c.context, c.suite) {
			t.Errorf("%s: Go saw suite %v, frame length %d, context %v", c.name, info.Suite, info.FrameLength, info.EncryptionContext)
		}
	}
}

// sameContext compares a message's context with the one given to encrypt,
// allowing for the public key a signed suite adds.
func sameContext(got, want map[string]string, s envelope.Suite) bool {
	got = maps.Clone(got)
	_, hasKey := got["aws-crypto-public-key"]
	delete(got, "aws-crypto-public-key")
	return hasKey == s.Signed() && maps.Equal(got, want)
}

// runNode runs all jobs in one node process (starting node is the slow
// part) and returns one result per job.
func runNode(t *testing.T, node, tmp string, env *kmstest.Env, jobs []jsJob) []jsResult {
	t.Helper()
	manifest, err := json.Marshal(map[string]any{"endpoint": env.URL, "jobs": jobs})
	if err != nil {
		t.Fatal(err)
	}
	mf := filepath.Join(tmp, "manifest.json")
	if err := os.WriteFile(mf, manifest, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "esdk.js", mf)
	cmd.Env = append(os.Environ(),
		"AWS_ACCESS_KEY_ID="+env.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY="+env.Secret,
		"AWS_SESSION_TOKEN=",
		"AWS_REGION="+kmstest.Region,
		"AWS_PROFILE=",
		"AWS_EC2_METADATA_DISABLED=true",
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node esdk.js: %v\n%s", err, stderr.String())
	}
	var results []jsResult
	if err := json.Unmarshal(out, &results); err != nil || len(results) != len(jobs) {
		t.Fatalf("node esdk.js: %d results for %d jobs (%v)\n%s\n%s", len(results), len(jobs), err, out, stderr.String())
	}
	return results
}
