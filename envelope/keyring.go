package envelope

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
)

type multiKeyring struct {
	generator Keyring
	children  []Keyring
}

// NewMultiKeyring combines keyrings: generator (may be nil if the
// materials will already hold a data key) makes the data key, then every
// child encrypts it as well. On decrypt the first keyring (generator first,
// then children in order) that obtains the data key wins.
func NewMultiKeyring(generator Keyring, children ...Keyring) (Keyring, error) {
	if generator == nil && len(children) == 0 {
		return nil, errors.New("multi-keyring: no generator and no children")
	}
	for _, c := range children {
		if c == nil {
			return nil, errors.New("multi-keyring: nil child keyring")
		}
	}
	return &multiKeyring{generator: generator, children: children}, nil
}

func (k *multiKeyring) OnEncrypt(ctx context.Context, m *EncryptionMaterials) error {
	// Work on a copy so that m is untouched if any keyring fails.
	w := *m
	w.EncryptedDataKeys = append([]EncryptedDataKey(nil), m.EncryptedDataKeys...)
	if k.generator != nil {
		if w.DataKey != nil {
			return errors.New("multi-keyring: the materials already have a data key, but this keyring has a generator")
		}
		if err := k.generator.OnEncrypt(ctx, &w); err != nil {
			return err
		}
		if w.DataKey == nil {
			return errors.New("multi-keyring: the generator returned no data key")
		}
	} else if w.DataKey == nil {
		return errors.New("multi-keyring: no generator and no data key in the materials")
	}
	for _, c := range k.children {
		if err := c.OnEncrypt(ctx, &w); err != nil {
			if m.DataKey == nil {
				clear(w.DataKey)
			}
			return err
		}
	}
	*m = w
	return nil
}

func (k *multiKeyring) OnDecrypt(ctx context.Context, m *DecryptionMaterials, edks []EncryptedDataKey) error {
	if m.DataKey != nil {
		return errors.New("multi-keyring: the decryption materials already have a data key")
	}
	var errs []error
	for _, kr := range append([]Keyring{k.generator}, k.children...) {
		if kr == nil {
			continue
		}
		err := kr.OnDecrypt(ctx, m, edks)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	err := errors.Join(errs...)
	if !errors.Is(err, ErrNoDataKey) {
		err = fmt.Errorf("%w: %w", ErrNoDataKey, err)
	}
	return err
}

// rawAESKeyring is the specification's raw AES keyring.
type rawAESKeyring struct {
	namespace string
	name      string
	key       []byte
}

// NewRawAESKeyring returns a keyring that wraps data keys locally with an
// AES-GCM key you hold (16, 24 or 32 bytes), in the specification's raw AES
// keyring format, so other AWS Encryption SDKs configured with the same
// namespace, name and key can read the messages. The wrapping key lives in
// your process, not in a KMS: use it for tests and offline tools.
func NewRawAESKeyring(namespace, name string, wrappingKey []byte) (Keyring, error) {
	switch len(wrappingKey) {
	case 16, 24, 32:
	default:
		return nil, fmt.Errorf("raw AES keyring: wrapping key of %d bytes, want 16, 24 or 32", len(wrappingKey))
	}
	if namespace == "" || name == "" {
		return nil, errors.New("raw AES keyring: namespace and name are required")
	}
	// Provider IDs starting with aws-kms are reserved for the KMS keyrings.
	if strings.HasPrefix(namespace, KMSProviderID) {
		return nil, fmt.Errorf("raw AES keyring: namespace %q is reserved", namespace)
	}
	return &rawAESKeyring{namespace: namespace, name: name, key: bytes.Clone(wrappingKey)}, nil
}

// The provider info of a raw AES encrypted data key is the key name, the tag
// length in bits and the IV length (both uint32) and the IV; the ciphertext
// is the wrapped data key followed by the tag; the AAD is the serialized
// encryption context.
func (k *rawAESKeyring) providerInfo(iv []byte) []byte {
	info := append([]byte(k.name), 0, 0, 0, tagLen*8, 0, 0, 0, ivLen)
	return append(info, iv...)
}

func (k *rawAESKeyring) OnEncrypt(_ context.Context, m *EncryptionMaterials) error {
	aad, err := serializeContext(m.EncryptionContext)
	if err != nil {
		return err
	}
	aead, err := newAEAD(k.key)
	if err != nil {
		return err
	}
	dataKey := m.DataKey
	if dataKey == nil {
		dataKey = make([]byte, dataKeyLen)
		if _, err := rand.Read(dataKey); err != nil {
			return fmt.Errorf("raw AES keyring: generating data key: %w", err)
		}
	}
	// A random IV per wrapped key: the wrapping key wraps many data keys.
	iv := make([]byte, ivLen)
	if _, err := rand.Read(iv); err != nil {
		return fmt.Errorf("raw AES keyring: generating IV: %w", err)
	}
	m.EncryptedDataKeys = append(m.EncryptedDataKeys, EncryptedDataKey{
		ProviderID:   k.namespace,
		ProviderInfo: k.providerInfo(iv),
		Ciphertext:   aead.Seal(nil, iv, dataKey, aad),
	})
	m.DataKey = dataKey
	return nil
}

func (k *rawAESKeyring) OnDecrypt(_ context.Context, m *DecryptionMaterials, edks []EncryptedDataKey) error {
	if m.DataKey != nil {
		return errors.New("raw AES keyring: the decryption materials already have a data key")
	}
	aad, err := serializeContext(m.EncryptionContext)
	if err != nil {
		return err
	}
	aead, err := newAEAD(k.key)
	if err != nil {
		return err
	}
	prefix := k.providerInfo(nil)
	for _, e := range edks {
		info := e.ProviderInfo
		if e.ProviderID != k.namespace || len(info) != len(prefix)+ivLen || !bytes.HasPrefix(info, prefix) ||
			len(e.Ciphertext) != dataKeyLen+tagLen {
			continue
		}
		key, err := aead.Open(nil, info[len(prefix):], e.Ciphertext, aad)
		if err != nil {
			continue
		}
		m.DataKey = key
		return nil
	}
	return fmt.Errorf("%w: no data key wrapped by raw AES key %s/%s could be unwrapped", ErrNoDataKey, k.namespace, k.name)
}
