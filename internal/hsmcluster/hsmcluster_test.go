//go:build cgo

package hsmcluster_test

import (
	"context"
	"errors"
	"testing"

	"github.com/kmsd/kmsd/internal/hsmcluster"
	"github.com/kmsd/kmsd/internal/kms"
	"github.com/kmsd/kmsd/internal/softhsmtest"
)

func TestNewRefuses(t *testing.T) {
	good := hsmcluster.Cluster{ID: "cluster-kmsdsofthsm2", Module: softhsmtest.Module, TokenLabel: "t"}
	for name, cs := range map[string][]hsmcluster.Cluster{
		"bad id":    {{ID: "cluster-1", Module: "m", TokenLabel: "t"}},
		"no module": {{ID: good.ID, TokenLabel: "t"}},
		"no token":  {{ID: good.ID, Module: "m"}},
		"twice":     {good, good},
		"negative":  {{ID: good.ID, Module: "m", TokenLabel: "t", Sessions: -1}},
	} {
		if _, err := hsmcluster.New(cs); err == nil {
			t.Errorf("%s: New accepted %+v", name, cs)
		}
	}
}

// TestConnect maps what the token answers to AWS's connection error codes.
func TestConnect(t *testing.T) {
	softhsmtest.Token(t, "kmsd-cluster")
	cs, err := hsmcluster.New([]hsmcluster.Cluster{
		{ID: "cluster-kmsdsofthsm2", Module: softhsmtest.Module, TokenLabel: "kmsd-cluster", TrustAnchor: "PEM"},
		{ID: "cluster-kmsdnotokenzz", Module: softhsmtest.Module, TokenLabel: "no-such-token"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if anchor, ok := cs.Lookup("cluster-kmsdsofthsm2"); !ok || anchor != "PEM" {
		t.Fatalf("Lookup = %q, %v", anchor, ok)
	}
	if _, ok := cs.Lookup("cluster-unknownclust"); ok {
		t.Fatal("Lookup found an undeclared cluster")
	}
	ctx := context.Background()
	for _, tc := range []struct{ cluster, password, code string }{
		{"cluster-kmsdsofthsm2", "wrong-password", kms.ConnectionInvalidCredentials},
		{"cluster-kmsdnotokenzz", softhsmtest.PIN, kms.ConnectionClusterNotFound},
		{"cluster-unknownclust", softhsmtest.PIN, kms.ConnectionClusterNotFound},
	} {
		_, err := cs.Connect(ctx, tc.cluster, tc.password)
		var ce *kms.ConnectionError
		if !errors.As(err, &ce) || ce.Code != tc.code {
			t.Errorf("Connect(%s) = %v, want code %s", tc.cluster, err, tc.code)
		}
	}
	h, err := cs.Connect(ctx, "cluster-kmsdsofthsm2", softhsmtest.PIN)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// The token's errors reach kms as its sentinels.
	if _, _, err := h.EncryptGCM(ctx, "kmsd-key/none", []byte("x"), nil); !errors.Is(err, kms.ErrHSMKeyNotFound) {
		t.Fatalf("EncryptGCM with a missing key: %v, want kms.ErrHSMKeyNotFound", err)
	}
	if err := h.GenerateKey(ctx, "kmsd-key/k"); err != nil {
		t.Fatal(err)
	}
	iv, ct, err := h.EncryptGCM(ctx, "kmsd-key/k", []byte("x"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.DecryptGCM(ctx, "kmsd-key/k", iv, ct, []byte("other")); !errors.Is(err, kms.ErrHSMAuthentication) {
		t.Fatalf("DecryptGCM with other aad: %v, want kms.ErrHSMAuthentication", err)
	}
}
