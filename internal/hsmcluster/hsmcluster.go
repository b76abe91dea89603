// Package hsmcluster connects kmsd's custom key stores to PKCS#11 tokens:
// each configured cluster (hsm_clusters in the configuration) is a token
// that stands in for an AWS CloudHSM cluster. It implements
// kms.HSMClusters with package pkcs11.
package hsmcluster

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/kmsd/kmsd/internal/keystore/pkcs11"
	"github.com/kmsd/kmsd/internal/kms"
)

// Cluster is one configured token.
type Cluster struct {
	// ID is the CloudHsmClusterId clients name it by, e.g.
	// cluster-kmsdsofthsm2 (AWS's pattern: "cluster-" and 11 to 16
	// letters or digits 2-7).
	ID string
	// Module and TokenLabel find the token.
	Module     string
	TokenLabel string
	// TrustAnchor is the PEM certificate CreateCustomKeyStore must be
	// given for this cluster; empty accepts any well-formed certificate.
	TrustAnchor string
	// Sessions bounds the concurrent HSM operations per connected store
	// (0: 8).
	Sessions int
}

// IDPattern is the pattern of a CloudHsmClusterId.
var IDPattern = regexp.MustCompile(`^cluster-[2-7a-zA-Z]{11,16}$`)

// Clusters is the set of configured clusters. It is immutable.
type Clusters struct {
	byID map[string]Cluster
}

var _ kms.HSMClusters = (*Clusters)(nil)

// New checks the clusters and returns them as a kms.HSMClusters.
func New(cs []Cluster) (*Clusters, error) {
	c := &Clusters{byID: map[string]Cluster{}}
	for _, cl := range cs {
		switch {
		case !IDPattern.MatchString(cl.ID):
			return nil, fmt.Errorf("hsm cluster id %q does not match %s", cl.ID, IDPattern)
		case cl.Module == "" || cl.TokenLabel == "":
			return nil, fmt.Errorf("hsm cluster %s: module and token_label are required", cl.ID)
		case cl.Sessions < 0:
			return nil, fmt.Errorf("hsm cluster %s: sessions %d is negative", cl.ID, cl.Sessions)
		}
		if _, dup := c.byID[cl.ID]; dup {
			return nil, fmt.Errorf("hsm cluster %s is declared twice", cl.ID)
		}
		c.byID[cl.ID] = cl
	}
	return c, nil
}

// Lookup implements kms.HSMClusters.
func (c *Clusters) Lookup(id string) (string, bool) {
	cl, ok := c.byID[id]
	return cl.TrustAnchor, ok
}

// Connect implements kms.HSMClusters: it logs in to the cluster's token
// with password as the user PIN.
func (c *Clusters) Connect(ctx context.Context, id, password string) (kms.HSM, error) {
	cl, ok := c.byID[id]
	if !ok {
		return nil, &kms.ConnectionError{Code: kms.ConnectionClusterNotFound, Err: fmt.Errorf("cluster %s is not configured", id)}
	}
	t, err := pkcs11.OpenToken(ctx, pkcs11.TokenConfig{Module: cl.Module, TokenLabel: cl.TokenLabel, PIN: password, Sessions: cl.Sessions})
	if err != nil {
		code := kms.ConnectionInternalError
		switch {
		case errors.Is(err, pkcs11.ErrPIN):
			code = kms.ConnectionInvalidCredentials
		case errors.Is(err, pkcs11.ErrTokenNotFound):
			code = kms.ConnectionClusterNotFound
		case errors.Is(err, pkcs11.ErrUnavailable):
			code = kms.ConnectionNetworkErrors
		}
		return nil, &kms.ConnectionError{Code: code, Err: err}
	}
	return hsm{t}, nil
}

// hsm adapts a pkcs11.Token to kms.HSM, translating its errors.
type hsm struct{ t *pkcs11.Token }

func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pkcs11.ErrKeyNotFound):
		return fmt.Errorf("%w: %w", kms.ErrHSMKeyNotFound, err)
	case errors.Is(err, pkcs11.ErrAuthentication):
		return fmt.Errorf("%w: %w", kms.ErrHSMAuthentication, err)
	}
	return err
}

func (h hsm) GenerateKey(ctx context.Context, label string) error {
	return translate(h.t.GenerateKey(ctx, label))
}

func (h hsm) EncryptGCM(ctx context.Context, label string, plaintext, aad []byte) ([]byte, []byte, error) {
	iv, ct, err := h.t.EncryptGCM(ctx, label, plaintext, aad)
	return iv, ct, translate(err)
}

func (h hsm) DecryptGCM(ctx context.Context, label string, iv, ct, aad []byte) ([]byte, error) {
	pt, err := h.t.DecryptGCM(ctx, label, iv, ct, aad)
	return pt, translate(err)
}

func (h hsm) DestroyKey(ctx context.Context, label string) error {
	return translate(h.t.DestroyKey(ctx, label))
}

func (h hsm) GenerateRandom(ctx context.Context, n int) ([]byte, error) {
	b, err := h.t.GenerateRandom(ctx, n)
	return b, translate(err)
}

func (h hsm) Close() error { return h.t.Close() }
