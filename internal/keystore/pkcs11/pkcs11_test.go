//go:build cgo

package pkcs11

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	p11 "github.com/miekg/pkcs11"

	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/softhsmtest"
)

const (
	testModule = softhsmtest.Module
	testToken  = "kmsd-test"
	testPIN    = softhsmtest.PIN
	testSOPIN  = softhsmtest.SOPIN
)

// setupErr is why the SoftHSM token could not be made; tests skip on it
// (fail under CI=true).
var (
	setupErr error
	tokenDir string
)

// TestMain creates one fresh SoftHSM token for the whole run, in a
// temporary token directory named by a private SOFTHSM2_CONF.
func TestMain(m *testing.M) {
	os.Exit(func() int {
		tmp, err := os.MkdirTemp("", "kmsd-softhsm-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(tmp)
		conf, err := softhsmtest.Init(tmp, testToken)
		setupErr = err
		tokenDir = filepath.Join(tmp, "tokens")
		os.Setenv("SOFTHSM2_CONF", conf)
		return m.Run()
	}())
}

func requireHSM(t *testing.T) {
	t.Helper()
	if setupErr == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(setupErr)
	}
	t.Skip(setupErr)
}

func openKS(t *testing.T, label string, sessions int) *Keystore {
	t.Helper()
	requireHSM(t)
	ks, err := Open(context.Background(), Config{Module: testModule, TokenLabel: testToken, PIN: testPIN, KeyLabel: label, Sessions: sessions})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	return ks
}

func TestRoundTrip(t *testing.T) {
	ks := openKS(t, "round-trip", 0)
	ctx := context.Background()
	for _, pt := range [][]byte{nil, {0}, []byte("a 32-byte backing key material!!"), bytes.Repeat([]byte{7}, 4096)} {
		aad := []byte("arn:aws:kms:us-east-1:111122223333:key/x|material-1")
		w, err := ks.Wrap(ctx, pt, aad)
		if err != nil {
			t.Fatal(err)
		}
		if len(w) != len(pt)+wrapOverhead || w[0] != wrapVersion {
			t.Fatalf("wrapped %d bytes into %d bytes, version %d", len(pt), len(w), w[0])
		}
		if len(pt) > 8 && bytes.Contains(w, pt) {
			t.Fatal("plaintext visible in wrapped output")
		}
		got, err := ks.Unwrap(ctx, w, aad)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, pt) {
			t.Fatalf("round trip: got %x, want %x", got, pt)
		}
		if _, err := ks.Unwrap(ctx, w, []byte("arn:aws:kms:us-east-1:111122223333:key/y|material-1")); !errors.Is(err, keystore.ErrUnwrap) {
			t.Fatalf("unwrap with wrong aad: %v, want ErrUnwrap", err)
		}
	}
	w1, _ := ks.Wrap(ctx, []byte("same"), nil)
	w2, _ := ks.Wrap(ctx, []byte("same"), nil)
	if bytes.Equal(w1, w2) {
		t.Fatal("two wraps of the same plaintext are equal: IV not random")
	}
	if s := fmt.Sprintf("%v %+v %#v %s", ks, ks, ks, ks); strings.Contains(s, testPIN) {
		t.Fatalf("formatting shows the PIN: %s", s)
	}
	if len(ks.ID()) != 16 || ks.KeyLabel() != "round-trip" {
		t.Fatalf("ID %q, KeyLabel %q", ks.ID(), ks.KeyLabel())
	}
}

func TestTamperedFails(t *testing.T) {
	ks := openKS(t, "tamper", 0)
	ctx := context.Background()
	aad := []byte("aad")
	w, err := ks.Wrap(ctx, []byte("0123456789abcdef0123456789abcdef"), aad)
	if err != nil {
		t.Fatal(err)
	}
	for i := range w {
		bad := bytes.Clone(w)
		bad[i] ^= 0x40
		if _, err := ks.Unwrap(ctx, bad, aad); !errors.Is(err, keystore.ErrUnwrap) {
			t.Fatalf("byte %d altered: %v, want ErrUnwrap", i, err)
		}
	}
	for _, bad := range [][]byte{nil, w[:wrapOverhead-1], w[:len(w)-1], append(bytes.Clone(w), 0)} {
		if _, err := ks.Unwrap(ctx, bad, aad); !errors.Is(err, keystore.ErrUnwrap) {
			t.Fatalf("%d bytes: %v, want ErrUnwrap", len(bad), err)
		}
	}
}

func TestReopenFindsSameKey(t *testing.T) {
	requireHSM(t)
	ctx := context.Background()
	cfg := Config{Module: testModule, TokenLabel: testToken, PIN: testPIN, KeyLabel: "reopen"}
	ks, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	id := ks.ID()
	w, err := ks.Wrap(ctx, []byte("survives a restart"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	ks.Close()
	if _, err := ks.Wrap(ctx, []byte("x"), nil); err == nil {
		t.Fatal("wrap after Close succeeded")
	}

	ks2 := openKS(t, "reopen", 0)
	if ks2.ID() != id {
		t.Fatalf("reopened key id %s, want %s", ks2.ID(), id)
	}
	pt, err := ks2.Unwrap(ctx, w, []byte("aad"))
	if err != nil || string(pt) != "survives a restart" {
		t.Fatalf("unwrap after reopen: %q, %v", pt, err)
	}
	// Another key label is another root key: its wraps do not unwrap here.
	other := openKS(t, "reopen-other", 0)
	if other.ID() == id {
		t.Fatal("two keys share an id")
	}
	if _, err := other.Unwrap(ctx, w, []byte("aad")); !errors.Is(err, keystore.ErrUnwrap) || !strings.Contains(err.Error(), id) {
		t.Fatalf("unwrap under another key: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	requireHSM(t)
	ctx := context.Background()
	good := Config{Module: testModule, TokenLabel: testToken, PIN: testPIN, KeyLabel: "open-errors"}
	for name, mod := range map[string]func(*Config){
		"no module":     func(c *Config) { c.Module = "" },
		"bad module":    func(c *Config) { c.Module = "/nonexistent/libnothing.so" },
		"no such token": func(c *Config) { c.TokenLabel = "no-such-token" },
		"wrong PIN":     func(c *Config) { c.PIN = "00000000" },
		"no key label":  func(c *Config) { c.KeyLabel = "" },
		"bad sessions":  func(c *Config) { c.Sessions = -1 },
	} {
		cfg := good
		mod(&cfg)
		ks, err := Open(ctx, cfg)
		if err == nil {
			ks.Close()
			t.Errorf("%s: Open succeeded", name)
			continue
		}
		if strings.Contains(err.Error(), testPIN) || strings.Contains(err.Error(), "00000000") {
			t.Errorf("%s: error shows the PIN: %v", name, err)
		}
	}
}

// TestKeyCannotBeRead proves that the wrapping key never leaves the
// token: its value cannot be read, it cannot be wrapped by another key,
// and it cannot be made extractable.
func TestKeyCannotBeRead(t *testing.T) {
	ks := openKS(t, "unreadable", 0)
	assertKeyNeverLeaves(t, ks.KeyLabel())
	// The keystore still works.
	if _, err := ks.Wrap(context.Background(), []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
}

// assertKeyNeverLeaves checks that the secret key labelled label cannot
// be read, made readable, or wrapped out of the token.
func assertKeyNeverLeaves(t *testing.T, label string) {
	t.Helper()
	// A second handle on the same (already initialized) module, logged in
	// as the user: what any code in this process could do.
	raw := p11.New(testModule)
	if raw == nil {
		t.Fatal("cannot load module")
	}
	defer raw.Destroy() // no Finalize: ks still uses the module
	slot, err := findSlot(raw, testToken)
	if err != nil {
		t.Fatal(err)
	}
	sh, err := raw.OpenSession(slot, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.CloseSession(sh)
	if err := raw.Login(sh, p11.CKU_USER, testPIN); err != nil && !hasCode(err, p11.CKR_USER_ALREADY_LOGGED_IN) {
		t.Fatal(err)
	}
	objs, err := findObjects(raw, sh, []*p11.Attribute{p11.NewAttribute(p11.CKA_LABEL, label)})
	if err != nil || len(objs) != 1 {
		t.Fatalf("finding the key: %v, %d objects", err, len(objs))
	}
	key := objs[0]

	if a, err := raw.GetAttributeValue(sh, key, []*p11.Attribute{p11.NewAttribute(p11.CKA_VALUE, nil)}); err == nil {
		t.Fatalf("CKA_VALUE was read: %d bytes", len(a[0].Value))
	} else if !hasCode(err, p11.CKR_ATTRIBUTE_SENSITIVE) {
		t.Logf("reading CKA_VALUE failed with %v", err)
	}
	attrs, err := raw.GetAttributeValue(sh, key, []*p11.Attribute{
		p11.NewAttribute(p11.CKA_SENSITIVE, nil),
		p11.NewAttribute(p11.CKA_EXTRACTABLE, nil),
		p11.NewAttribute(p11.CKA_NEVER_EXTRACTABLE, nil),
		p11.NewAttribute(p11.CKA_ALWAYS_SENSITIVE, nil),
		p11.NewAttribute(p11.CKA_TOKEN, nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint][]byte{p11.CKA_SENSITIVE: attrTrue, p11.CKA_EXTRACTABLE: attrFalse, p11.CKA_NEVER_EXTRACTABLE: attrTrue, p11.CKA_ALWAYS_SENSITIVE: attrTrue, p11.CKA_TOKEN: attrTrue}
	for _, a := range attrs {
		if !bytes.Equal(a.Value, want[a.Type]) {
			t.Errorf("attribute %#x is %x, want %x", a.Type, a.Value, want[a.Type])
		}
	}
	if err := raw.SetAttributeValue(sh, key, []*p11.Attribute{p11.NewAttribute(p11.CKA_EXTRACTABLE, true)}); err == nil {
		t.Error("CKA_EXTRACTABLE could be set to true")
	}
	if err := raw.SetAttributeValue(sh, key, []*p11.Attribute{p11.NewAttribute(p11.CKA_SENSITIVE, false)}); err == nil {
		t.Error("CKA_SENSITIVE could be set to false")
	}

	// A session key allowed to wrap anything extractable.
	wrapper, err := raw.GenerateKey(sh, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_KEY_GEN, nil)}, []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
		p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_AES),
		p11.NewAttribute(p11.CKA_VALUE_LEN, 32),
		p11.NewAttribute(p11.CKA_TOKEN, false),
		p11.NewAttribute(p11.CKA_WRAP, true),
		p11.NewAttribute(p11.CKA_TRUSTED, false),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, mech := range []uint{p11.CKM_AES_KEY_WRAP_PAD, p11.CKM_AES_KEY_WRAP} {
		if out, err := raw.WrapKey(sh, []*p11.Mechanism{p11.NewMechanism(mech, nil)}, wrapper, key); err == nil {
			t.Errorf("C_WrapKey (mechanism %#x) wrapped the root key out: %d bytes", mech, len(out))
		}
	}
}

func TestConcurrent(t *testing.T) {
	ks := openKS(t, "concurrent", 4)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				pt := []byte(fmt.Sprintf("goroutine %d message %d", g, i))
				aad := []byte(fmt.Sprint(g))
				w, err := ks.Wrap(ctx, pt, aad)
				if err != nil {
					errs <- err
					return
				}
				got, err := ks.Unwrap(ctx, w, aad)
				if err != nil || !bytes.Equal(got, pt) {
					errs <- fmt.Errorf("unwrap: %q, %v", got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	ks.mu.Lock()
	idle := len(ks.idle)
	ks.mu.Unlock()
	if idle > 4 {
		t.Fatalf("%d idle sessions, want at most 4", idle)
	}
}

// TestHSMGoesAway finalizes the module under the keystore and hides the
// token: calls fail cleanly with ErrUnavailable; when the token returns,
// the keystore reconnects and unwraps what it wrapped before.
func TestHSMGoesAway(t *testing.T) {
	ks := openKS(t, "goes-away", 4)
	ks.retry = 10 * time.Millisecond
	ctx := context.Background()
	before, err := ks.Wrap(ctx, []byte("before the outage"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}

	// Sessions lost (C_Finalize from elsewhere in the process), token
	// still there: the keystore reconnects transparently.
	finalize(t)
	if _, err := ks.Unwrap(ctx, before, []byte("aad")); err != nil {
		t.Fatalf("after losing the sessions: %v", err)
	}

	// Token gone.
	away := tokenDir + ".away"
	if err := os.Rename(tokenDir, away); err != nil {
		t.Fatal(err)
	}
	restored := false
	defer func() {
		if !restored {
			os.Rename(away, tokenDir)
		}
	}()
	finalize(t)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := ks.Wrap(ctx, []byte("during"), nil); !errors.Is(err, ErrUnavailable) {
				t.Errorf("wrap while the token is gone: %v, want ErrUnavailable", err)
			}
			if _, err := ks.Unwrap(ctx, before, []byte("aad")); !errors.Is(err, ErrUnavailable) || errors.Is(err, keystore.ErrUnwrap) {
				t.Errorf("unwrap while the token is gone: %v, want ErrUnavailable", err)
			}
		}()
	}
	wg.Wait()
	_, err = ks.Wrap(ctx, []byte("during"), nil)
	t.Logf("while the token is gone: %v", err)

	// Token back.
	if err := os.Rename(away, tokenDir); err != nil {
		t.Fatal(err)
	}
	restored = true
	deadline := time.Now().Add(10 * time.Second)
	for {
		pt, err := ks.Unwrap(ctx, before, []byte("aad"))
		if err == nil {
			if string(pt) != "before the outage" {
				t.Fatalf("unwrap after recovery: %q", pt)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after the token came back: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := ks.Wrap(ctx, []byte("after"), nil); err != nil {
		t.Fatal(err)
	}
}

// finalize calls C_Finalize on the module, as a crashed or restarted HSM
// client library would: every session and the login are gone.
func finalize(t *testing.T) {
	t.Helper()
	raw := p11.New(testModule)
	if raw == nil {
		t.Fatal("cannot load module")
	}
	defer raw.Destroy()
	if err := raw.Finalize(); err != nil {
		t.Fatal(err)
	}
}

// TestPoolBounded: with every session busy, a call waits, and gives up
// when its context ends.
func TestPoolBounded(t *testing.T) {
	ks := openKS(t, "pool", 1)
	ks.sem <- struct{}{} // the only session slot is taken
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := ks.Wrap(ctx, []byte("x"), nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wrap with the pool exhausted: %v, want DeadlineExceeded", err)
	}
	<-ks.sem
	if _, err := ks.Wrap(context.Background(), []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
}
