package envelope

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// NewDefaultCMM returns the specification's default CMM around kr: it picks
// the suite (DefaultSuite unless asked otherwise), makes a fresh signing key
// for signed suites and publishes its public half in the encryption context
// as aws-crypto-public-key, and asks kr for the data key.
func NewDefaultCMM(kr Keyring) CMM { return &defaultCMM{kr: kr} }

type defaultCMM struct{ kr Keyring }

func (c *defaultCMM) GetEncryptionMaterials(ctx context.Context, req *EncryptionMaterialsRequest) (*EncryptionMaterials, error) {
	suite := req.Suite
	if suite == 0 {
		suite = DefaultSuite
	}
	if err := checkSuite(suite); err != nil {
		return nil, err
	}
	if _, ok := req.EncryptionContext[publicKeyContextKey]; ok {
		return nil, fmt.Errorf("the encryption context already holds %s", publicKeyContextKey)
	}
	m := &EncryptionMaterials{
		Suite:               suite,
		EncryptionContext:   maps.Clone(req.EncryptionContext),
		RequiredContextKeys: slices.Clone(req.RequiredContextKeys),
	}
	if m.EncryptionContext == nil {
		m.EncryptionContext = map[string]string{}
	}
	if suite.Signed() {
		key, pub, err := newSigningKey()
		if err != nil {
			return nil, err
		}
		m.SigningKey = key
		m.EncryptionContext[publicKeyContextKey] = pub
	}
	if err := c.kr.OnEncrypt(ctx, m); err != nil {
		return nil, err
	}
	if len(m.DataKey) != dataKeyLen {
		return nil, fmt.Errorf("keyring returned a data key of %d bytes, want %d", len(m.DataKey), dataKeyLen)
	}
	if len(m.EncryptedDataKeys) == 0 {
		return nil, errors.New("keyring returned no encrypted data key")
	}
	return m, nil
}

func (c *defaultCMM) DecryptMaterials(ctx context.Context, req *DecryptMaterialsRequest) (*DecryptionMaterials, error) {
	if err := checkSuite(req.Suite); err != nil {
		return nil, err
	}
	m := &DecryptionMaterials{Suite: req.Suite, EncryptionContext: maps.Clone(req.EncryptionContext)}
	if m.EncryptionContext == nil {
		m.EncryptionContext = map[string]string{}
	}
	pub, hasPub := req.EncryptionContext[publicKeyContextKey]
	switch {
	case req.Suite.Signed() && !hasPub:
		return nil, fmt.Errorf("%w: signed message without %s in its encryption context", ErrMalformed, publicKeyContextKey)
	case !req.Suite.Signed() && hasPub:
		return nil, fmt.Errorf("%w: unsigned message with %s in its encryption context", ErrMalformed, publicKeyContextKey)
	case hasPub:
		key, err := parseVerificationKey(pub)
		if err != nil {
			return nil, err
		}
		m.VerificationKey = key
	}
	// Pairs the caller reproduced must agree with the stored ones; those
	// that are not stored were authenticated but not stored at encryption,
	// so they join the context and are checked by the header tag.
	for _, k := range slices.Sorted(maps.Keys(req.ReproducedContext)) {
		v := req.ReproducedContext[k]
		if stored, ok := req.EncryptionContext[k]; ok {
			if stored != v {
				return nil, fmt.Errorf("%w: the message has %q = %q, expected %q", ErrContextMismatch, k, stored, v)
			}
			continue
		}
		m.EncryptionContext[k] = v
		m.RequiredContextKeys = append(m.RequiredContextKeys, k)
	}
	if err := c.kr.OnDecrypt(ctx, m, req.EncryptedDataKeys); err != nil {
		return nil, err
	}
	if len(m.DataKey) != dataKeyLen {
		return nil, fmt.Errorf("keyring returned a data key of %d bytes, want %d", len(m.DataKey), dataKeyLen)
	}
	return m, nil
}

// NewRequiredContextCMM returns a CMM that requires the given encryption
// context keys: Encrypt must be given a value for each, and those pairs are
// authenticated but not stored in the message; Decrypt must be given them
// again in DecryptOptions.EncryptionContext.
func NewRequiredContextCMM(under CMM, keys ...string) (CMM, error) {
	if under == nil {
		return nil, errors.New("required context CMM: no underlying CMM")
	}
	if len(keys) == 0 {
		return nil, errors.New("required context CMM: no keys")
	}
	return &requiredContextCMM{under: under, keys: slices.Clone(keys)}, nil
}

type requiredContextCMM struct {
	under CMM
	keys  []string
}

func (c *requiredContextCMM) GetEncryptionMaterials(ctx context.Context, req *EncryptionMaterialsRequest) (*EncryptionMaterials, error) {
	for _, k := range c.keys {
		if _, ok := req.EncryptionContext[k]; !ok {
			return nil, fmt.Errorf("%w: required encryption context key %q is missing", ErrContextMismatch, k)
		}
	}
	r := *req
	r.RequiredContextKeys = slices.Clone(req.RequiredContextKeys)
	for _, k := range c.keys {
		if !slices.Contains(r.RequiredContextKeys, k) {
			r.RequiredContextKeys = append(r.RequiredContextKeys, k)
		}
	}
	m, err := c.under.GetEncryptionMaterials(ctx, &r)
	if err != nil {
		return nil, err
	}
	for _, k := range c.keys {
		if !slices.Contains(m.RequiredContextKeys, k) {
			clear(m.DataKey)
			return nil, fmt.Errorf("underlying CMM dropped required encryption context key %q", k)
		}
	}
	return m, nil
}

func (c *requiredContextCMM) DecryptMaterials(ctx context.Context, req *DecryptMaterialsRequest) (*DecryptionMaterials, error) {
	for _, k := range c.keys {
		if _, ok := req.ReproducedContext[k]; !ok {
			return nil, fmt.Errorf("%w: required encryption context key %q was not supplied", ErrContextMismatch, k)
		}
	}
	m, err := c.under.DecryptMaterials(ctx, req)
	if err != nil {
		return nil, err
	}
	for _, k := range c.keys {
		if _, ok := m.EncryptionContext[k]; !ok {
			clear(m.DataKey)
			return nil, fmt.Errorf("underlying CMM dropped required encryption context key %q", k)
		}
	}
	return m, nil
}
