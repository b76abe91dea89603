package iam

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsd/kmsd/internal/config"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/store/backend"
)

func TestValidateAccessKey(t *testing.T) {
	for _, tc := range []struct {
		id, secret string
		idOK, okS  bool
	}{
		{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", true, true},
		{"AKIAABCDEFGHIJKLMNOP", "0123456789abcdefghijABCDEFGHIJ+/01234567", true, true},
		{"ASIAIOSFODNN7EXAMPLE", "short", false, false},                // temporary-credential prefix; short secret
		{"AKIAIOSFODNN7EXAMPL", strings.Repeat("a", 41), false, false}, // 15 characters; 41
		{"AKIAiosfodnn7example", strings.Repeat("-", 40), false, false},
		{"AKIAIOSFODNN1EXAMPLE", strings.Repeat("a", 39), false, false}, // 1 is not base32
	} {
		if err := ValidateAccessKeyID(tc.id); (err == nil) != tc.idOK {
			t.Errorf("ValidateAccessKeyID(%q) = %v", tc.id, err)
		}
		err := ValidateSecretAccessKey(tc.secret)
		if (err == nil) != tc.okS {
			t.Errorf("ValidateSecretAccessKey(%d chars) = %v", len(tc.secret), err)
		}
		if err != nil && len(tc.secret) > 3 && strings.Contains(err.Error(), tc.secret) {
			t.Errorf("error shows the secret: %v", err)
		}
	}
}

func TestEnsureAccessKey(t *testing.T) {
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
	const account, id, secret = "111122223333", "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	admin := UserARN(account, AdminUser)
	d := NewDirectory(st, ks, nil)
	ids, err := Compile(config.IAM{}, account)
	if err != nil {
		t.Fatal(err)
	}
	d.SetIdentities(ids)

	for i, want := range []bool{true, false} { // created, then unchanged
		created, err := d.EnsureAccessKey(ctx, account, admin, id, secret)
		if err != nil || created != want {
			t.Fatalf("EnsureAccessKey #%d = %v, %v; want %v", i+1, created, err, want)
		}
	}
	if got, err := d.Secret(ctx, id); err != nil || string(got) != secret {
		t.Fatalf("Secret = %v", err)
	}
	for _, tc := range []struct {
		name, principal, id, secret, want string
	}{
		{"other secret", admin, id, strings.Replace(secret, "w", "v", 1), "another secret"},
		{"other principal", UserARN(account, "bob"), id, secret, "already exists for " + admin},
		{"bad id", admin, "AKIA123", secret, "is not AKIA"},
		{"bad secret", admin, "AKIAABCDEFGHIJKLMNOP", "tooshort", "40 characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.EnsureAccessKey(ctx, account, tc.principal, tc.id, tc.secret)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("EnsureAccessKey = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), tc.secret) {
				t.Fatalf("error shows the secret: %v", err)
			}
		})
	}
}
