package envelope

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// KMSProviderID is the key provider ID of encrypted data keys written by
// the KMS keyrings.
const KMSProviderID = "aws-kms"

// KMSClient is the part of the aws-sdk-go-v2 KMS client that the KMS
// keyrings use; *kms.Client implements it.
type KMSClient interface {
	GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, optFns ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error)
	Encrypt(ctx context.Context, in *kms.EncryptInput, optFns ...func(*kms.Options)) (*kms.EncryptOutput, error)
	Decrypt(ctx context.Context, in *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error)
}

// KMSOption configures a KMS keyring.
type KMSOption func(*kmsConfig)

type kmsConfig struct{ grantTokens []string }

// WithGrantTokens sends the grant tokens with every KMS request.
func WithGrantTokens(tokens ...string) KMSOption {
	return func(c *kmsConfig) { c.grantTokens = append(c.grantTokens, tokens...) }
}

func kmsOptions(opts []KMSOption) kmsConfig {
	var c kmsConfig
	for _, o := range opts {
		o(&c)
	}
	return c
}

// kmsKeyring is the specification's AWS KMS keyring: one KMS key.
type kmsKeyring struct {
	client KMSClient
	keyID  string
	cfg    kmsConfig
}

// NewKMSKeyring returns a keyring for one KMS key, named by key ARN, alias
// ARN, key ID or alias name. On encrypt it generates the data key with
// GenerateDataKey, or encrypts an existing one with Encrypt. On decrypt it
// is strict: it only tries encrypted data keys whose recorded key ARN is
// keyID itself, so for decryption keyID must be a key ARN.
func NewKMSKeyring(client KMSClient, keyID string, opts ...KMSOption) (Keyring, error) {
	if client == nil {
		return nil, errors.New("KMS keyring: no KMS client")
	}
	if err := checkKMSIdentifier(keyID); err != nil {
		return nil, fmt.Errorf("KMS keyring: %w", err)
	}
	return &kmsKeyring{client: client, keyID: keyID, cfg: kmsOptions(opts)}, nil
}

// NewKMSMultiKeyring returns the specification's AWS KMS multi-keyring: the
// first key generates the data key, every other key encrypts it too, and
// any of them can decrypt. Every identifier must be a KMS ARN.
func NewKMSMultiKeyring(client KMSClient, keyARNs []string, opts ...KMSOption) (Keyring, error) {
	if len(keyARNs) == 0 {
		return nil, errors.New("KMS multi-keyring: no keys")
	}
	var rings []Keyring
	for _, id := range keyARNs {
		if _, err := parseKMSARN(id); err != nil {
			return nil, fmt.Errorf("KMS multi-keyring: %w", err)
		}
		kr, err := NewKMSKeyring(client, id, opts...)
		if err != nil {
			return nil, err
		}
		rings = append(rings, kr)
	}
	return NewMultiKeyring(rings[0], rings[1:]...)
}

func kmsContext(ec map[string]string) map[string]string {
	if len(ec) == 0 {
		return nil
	}
	return ec
}

func (k *kmsKeyring) OnEncrypt(ctx context.Context, m *EncryptionMaterials) error {
	if m.DataKey == nil {
		out, err := k.client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
			KeyId:             aws.String(k.keyID),
			NumberOfBytes:     aws.Int32(dataKeyLen),
			EncryptionContext: kmsContext(m.EncryptionContext),
			GrantTokens:       k.cfg.grantTokens,
		})
		if err != nil {
			return fmt.Errorf("KMS GenerateDataKey with %s: %w", k.keyID, err)
		}
		if len(out.Plaintext) != dataKeyLen {
			clear(out.Plaintext)
			return fmt.Errorf("KMS GenerateDataKey with %s returned a %d-byte key, want %d", k.keyID, len(out.Plaintext), dataKeyLen)
		}
		arn := aws.ToString(out.KeyId)
		if err := checkKeyARN(arn); err != nil {
			clear(out.Plaintext)
			return fmt.Errorf("KMS GenerateDataKey with %s: response KeyId: %w", k.keyID, err)
		}
		m.DataKey = out.Plaintext
		m.EncryptedDataKeys = append(m.EncryptedDataKeys, EncryptedDataKey{ProviderID: KMSProviderID, ProviderInfo: []byte(arn), Ciphertext: out.CiphertextBlob})
		return nil
	}
	out, err := k.client.Encrypt(ctx, &kms.EncryptInput{
		KeyId:             aws.String(k.keyID),
		Plaintext:         m.DataKey,
		EncryptionContext: kmsContext(m.EncryptionContext),
		GrantTokens:       k.cfg.grantTokens,
	})
	if err != nil {
		return fmt.Errorf("KMS Encrypt with %s: %w", k.keyID, err)
	}
	arn := aws.ToString(out.KeyId)
	if err := checkKeyARN(arn); err != nil {
		return fmt.Errorf("KMS Encrypt with %s: response KeyId: %w", k.keyID, err)
	}
	m.EncryptedDataKeys = append(m.EncryptedDataKeys, EncryptedDataKey{ProviderID: KMSProviderID, ProviderInfo: []byte(arn), Ciphertext: out.CiphertextBlob})
	return nil
}

func (k *kmsKeyring) OnDecrypt(ctx context.Context, m *DecryptionMaterials, edks []EncryptedDataKey) error {
	if m.DataKey != nil {
		return errors.New("KMS keyring: the decryption materials already have a data key")
	}
	var errs []error
	for _, e := range edks {
		if e.ProviderID != KMSProviderID {
			continue
		}
		if err := checkKeyARN(string(e.ProviderInfo)); err != nil {
			return fmt.Errorf("%w: an aws-kms encrypted data key names %q: %v", ErrMalformed, e.ProviderInfo, err)
		}
		if string(e.ProviderInfo) != k.keyID {
			continue
		}
		key, err := kmsDecrypt(ctx, k.client, k.keyID, e, m, k.cfg)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m.DataKey = key
		return nil
	}
	if len(errs) == 0 {
		return fmt.Errorf("%w: the message has no data key encrypted under %s", ErrNoDataKey, k.keyID)
	}
	return fmt.Errorf("%w: %w", ErrNoDataKey, errors.Join(errs...))
}

// kmsDecrypt asks KMS to decrypt one encrypted data key with the given key
// and checks the answer.
func kmsDecrypt(ctx context.Context, client KMSClient, keyID string, e EncryptedDataKey, m *DecryptionMaterials, cfg kmsConfig) ([]byte, error) {
	out, err := client.Decrypt(ctx, &kms.DecryptInput{
		KeyId:             aws.String(keyID),
		CiphertextBlob:    e.Ciphertext,
		EncryptionContext: kmsContext(m.EncryptionContext),
		GrantTokens:       cfg.grantTokens,
	})
	if err != nil {
		return nil, fmt.Errorf("KMS Decrypt with %s: %w", keyID, err)
	}
	if got := aws.ToString(out.KeyId); got != keyID {
		clear(out.Plaintext)
		return nil, fmt.Errorf("KMS Decrypt with %s answered for key %s", keyID, got)
	}
	if len(out.Plaintext) != dataKeyLen {
		clear(out.Plaintext)
		return nil, fmt.Errorf("KMS Decrypt with %s returned a %d-byte key, want %d", keyID, len(out.Plaintext), dataKeyLen)
	}
	return out.Plaintext, nil
}

// DiscoveryFilter restricts a discovery keyring to the KMS keys of some
// accounts in one partition.
type DiscoveryFilter struct {
	Partition string   // "aws", "aws-cn", …
	Accounts  []string // account IDs
}

type kmsDiscoveryKeyring struct {
	client KMSClient
	filter *DiscoveryFilter
	cfg    kmsConfig
}

// NewKMSDiscoveryKeyring returns a decrypt-only keyring that asks KMS to
// decrypt any encrypted data key it finds, with the KMS key named in it
// (limited by filter if not nil). Use it only where trusting any key of the
// filtered accounts is intended; a strict keyring (NewKMSKeyring with key
// ARNs) is the default for a reason: with discovery, a message's author
// chooses which key, and therefore whose permissions, decrypt it.
func NewKMSDiscoveryKeyring(client KMSClient, filter *DiscoveryFilter, opts ...KMSOption) (Keyring, error) {
	if client == nil {
		return nil, errors.New("KMS discovery keyring: no KMS client")
	}
	if filter != nil {
		if filter.Partition == "" || len(filter.Accounts) == 0 || slices.Contains(filter.Accounts, "") {
			return nil, errors.New("KMS discovery keyring: a discovery filter needs a partition and non-empty account IDs")
		}
		filter = &DiscoveryFilter{Partition: filter.Partition, Accounts: slices.Clone(filter.Accounts)}
	}
	return &kmsDiscoveryKeyring{client: client, filter: filter, cfg: kmsOptions(opts)}, nil
}

func (k *kmsDiscoveryKeyring) OnEncrypt(context.Context, *EncryptionMaterials) error {
	return errors.New("a KMS discovery keyring cannot encrypt")
}

func (k *kmsDiscoveryKeyring) OnDecrypt(ctx context.Context, m *DecryptionMaterials, edks []EncryptedDataKey) error {
	if m.DataKey != nil {
		return errors.New("KMS discovery keyring: the decryption materials already have a data key")
	}
	var errs []error
	for _, e := range edks {
		if e.ProviderID != KMSProviderID {
			continue
		}
		arn, err := parseKMSARN(string(e.ProviderInfo))
		if err == nil && arn.resourceType != "key" {
			err = errors.New("not a key ARN")
		}
		if err != nil {
			return fmt.Errorf("%w: an aws-kms encrypted data key names %q: %v", ErrMalformed, e.ProviderInfo, err)
		}
		if k.filter != nil && (arn.partition != k.filter.Partition || !slices.Contains(k.filter.Accounts, arn.account)) {
			continue
		}
		key, err := kmsDecrypt(ctx, k.client, string(e.ProviderInfo), e, m, k.cfg)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m.DataKey = key
		return nil
	}
	if len(errs) == 0 {
		return fmt.Errorf("%w: the message has no data key encrypted under a KMS key the discovery filter allows", ErrNoDataKey)
	}
	return fmt.Errorf("%w: %w", ErrNoDataKey, errors.Join(errs...))
}

// kmsARN is a parsed AWS KMS ARN.
type kmsARN struct {
	partition, region, account, resourceType, resourceID string
}

// parseKMSARN accepts what the specification calls a valid AWS KMS ARN:
// "arn", a partition, "kms", a region, an account and a resource
// "key/ID" or "alias/NAME", with exactly five colons.
func parseKMSARN(s string) (kmsARN, error) {
	p := strings.Split(s, ":")
	if len(p) != 6 || p[0] != "arn" || p[1] == "" || p[2] != "kms" || p[3] == "" || p[4] == "" {
		return kmsARN{}, fmt.Errorf("%q is not an AWS KMS ARN", s)
	}
	typ, id, ok := strings.Cut(p[5], "/")
	if !ok || (typ != "key" && typ != "alias") || id == "" {
		return kmsARN{}, fmt.Errorf("%q is not an AWS KMS ARN (resource must be key/ID or alias/NAME)", s)
	}
	return kmsARN{partition: p[1], region: p[3], account: p[4], resourceType: typ, resourceID: id}, nil
}

// checkKeyARN accepts only a KMS key ARN (not an alias ARN).
func checkKeyARN(s string) error {
	a, err := parseKMSARN(s)
	if err != nil {
		return err
	}
	if a.resourceType != "key" {
		return fmt.Errorf("%q is an alias ARN, not a key ARN", s)
	}
	return nil
}

// checkKMSIdentifier accepts a key ARN, an alias ARN, "alias/NAME" or a
// key ID.
func checkKMSIdentifier(s string) error {
	switch {
	case s == "":
		return errors.New("empty KMS key identifier")
	case strings.HasPrefix(s, "arn:"):
		_, err := parseKMSARN(s)
		return err
	case strings.HasPrefix(s, "alias/"):
		if len(s) == len("alias/") {
			return fmt.Errorf("%q has no alias name", s)
		}
	case strings.ContainsAny(s, ":/ "):
		return fmt.Errorf("%q is not a KMS key ID, alias name or ARN", s)
	}
	return nil
}

// IsKeyARN reports whether s is an AWS KMS key ARN, the only identifier a
// strict KMS keyring can decrypt with.
func IsKeyARN(s string) bool { return checkKeyARN(s) == nil }
