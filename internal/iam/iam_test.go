package iam

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsd/kmsd/internal/config"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/sigv4"
	"github.com/kmsd/kmsd/internal/store/backend"
)

func TestAccessKeys(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ks, err := keystore.OpenFile(filepath.Join(dir, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := backend.Open(ctx, backend.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d := NewDirectory(st, ks, nil)
	if has, _ := d.HasAccessKeys(ctx, "111122223333"); has {
		t.Fatal("new directory has access keys")
	}
	arn := UserARN("111122223333", "admin")
	id, secret, err := d.CreateAccessKey(ctx, "111122223333", arn)
	if err != nil {
		t.Fatal(err)
	}
	if len(id) != 20 || !strings.HasPrefix(id, "AKIA") || len(secret) != 40 {
		t.Fatalf("access key %q / secret of %d chars", id, len(secret))
	}
	// The store holds only the wrapped secret.
	rec, err := st.GetAccessKey(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(rec.WrappedSecret, []byte(secret)) {
		t.Fatal("secret stored in plaintext")
	}
	// A fresh directory (a restart) unwraps it.
	d2 := NewDirectory(st, ks, nil)
	ids, err := Compile(config.IAM{}, "111122223333")
	if err != nil {
		t.Fatal(err)
	}
	d2.SetIdentities(ids)
	got, err := d2.Secret(ctx, id)
	if err != nil || string(got) != secret {
		t.Fatalf("Secret = %v", err)
	}
	c, err := d2.Caller(ctx, id)
	if err != nil || c.Account != "111122223333" || c.ARN != arn || c.UserName != "admin" || c.AccessKeyID != id {
		t.Fatalf("Caller = %+v, %v", c, err)
	}
	if _, err := d2.Secret(ctx, "AKIANOSUCHKEY0000000"); !errors.Is(err, sigv4.ErrUnknownAccessKey) {
		t.Fatalf("unknown key: %v", err)
	}
	if has, _ := d2.HasAccessKeys(ctx, "111122223333"); !has {
		t.Fatal("HasAccessKeys = false after creation")
	}
}
