package kms

// Operations of asymmetric keys: Sign, Verify, GetPublicKey, RSA encryption
// (the asymmetric half of Encrypt, Decrypt and ReEncrypt), GenerateDataKeyPair,
// DeriveSharedSecret, Encapsulate and Decapsulate.
//
// Every operation keeps the shape of the symmetric ones: resolve the key,
// check usage, algorithm and state (the place for authorization), then do
// the work with the private key parsed from the material cache. Private keys
// never leave this package, except the data key pairs GenerateDataKeyPair
// creates for the caller.

import (
	"context"
	"errors"
	"slices"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/keys"
	"github.com/kmsd/kmsd/internal/store"
)

// reason returns the explanation a keys error adds to its sentinel, for
// the message of an AWS exception (keys errors never carry key material).
func reason(err, sentinel error) string {
	msg := err.Error()
	if p := sentinel.Error() + ": "; len(msg) > len(p) && msg[:len(p)] == p {
		return msg[len(p):]
	}
	return msg
}

// checkAsymmetricEncryption applies the rules of RSA encryption keys that
// symmetric keys do not have: no encryption context (RSA-OAEP has nowhere
// to bind it, and AWS refuses it) and AWS's plaintext size limits.
func checkAsymmetricEncryption(k *store.Key, alg string, plaintextLen int, ec map[string]string) error {
	if k.KeySpec == SpecSymmetricDefault {
		return nil
	}
	if len(ec) > 0 {
		return awserr.Newf(awserr.Validation, "EncryptionContext is not supported with asymmetric KMS keys; %s is a %s key.", arnOf(k), k.KeySpec)
	}
	if max := keys.MaxPlaintext(k.KeySpec, alg); plaintextLen > max {
		return awserr.Newf(awserr.Validation, "Plaintext of %d bytes is too long for %s with %s: the limit is %d bytes.", plaintextLen, k.KeySpec, alg, max)
	}
	return nil
}

// encryptWith encrypts under the current material of k: the symmetric blob
// for SYMMETRIC_DEFAULT, a raw RSA-OAEP ciphertext for RSA keys (as AWS
// returns it, so that anyone with the private key can decrypt it).
func (s *Service) encryptWith(ctx context.Context, k *store.Key, alg string, plaintext []byte, ec map[string]string) ([]byte, error) {
	if k.KeySpec == SpecSymmetricDefault {
		return s.seal(ctx, k, plaintext, ec)
	}
	priv, release, err := s.privateKey(ctx, k)
	if err != nil {
		return nil, err
	}
	defer release()
	ct, err := priv.Encrypt(s.rand, alg, plaintext)
	if errors.Is(err, keys.ErrPlaintextSize) {
		return nil, awserr.New(awserr.Validation, reason(err, keys.ErrPlaintextSize))
	}
	if err != nil {
		return nil, internal("encrypt", err)
	}
	return ct, nil
}

// openAsymmetric decrypts an RSA-OAEP ciphertext for Decrypt and ReEncrypt.
// Any failure to decrypt is InvalidCiphertextException, without detail.
func (s *Service) openAsymmetric(ctx context.Context, k *store.Key, blob []byte, ec map[string]string, alg string, dryRun bool) (*store.Key, string, []byte, error) {
	if err := usableForEncryption(k, alg); err != nil {
		return nil, "", nil, err
	}
	if err := checkAsymmetricEncryption(k, alg, 0, ec); err != nil {
		return nil, "", nil, err
	}
	priv, release, err := s.privateKey(ctx, k)
	if err != nil {
		return nil, "", nil, err
	}
	defer release()
	pt, err := priv.Decrypt(alg, blob)
	if err != nil {
		return nil, "", nil, errInvalidCiphertext
	}
	if dryRun {
		clear(pt)
		return nil, "", nil, errDryRun
	}
	return k, k.CurrentMaterial, pt, nil
}

// SignInput is the Sign request.
type SignInput struct {
	KeyId            string
	Message          []byte
	MessageType      string
	SigningAlgorithm string
	GrantTokens      []string
	DryRun           bool
}

// SignOutput is the Sign response.
type SignOutput struct {
	KeyId            string // key ARN
	Signature        []byte
	SigningAlgorithm string
}

// checkSigning is the part Sign and Verify share: the key, its usage, the
// algorithm, its state and the message type and length.
func (s *Service) checkSigning(ctx context.Context, c Caller, keyID, alg, msgType string, msg []byte) (*store.Key, error) {
	k, err := s.keyFor(ctx, c, keyID, useSigning, alg)
	if err != nil {
		return nil, err
	}
	if err := keys.CheckMessage(alg, msgType, msg); err != nil {
		return nil, awserr.New(awserr.Validation, reason(err, keys.ErrMessage))
	}
	return k, nil
}

// Sign signs a message, a message digest (MessageType DIGEST) or an ML-DSA
// μ (EXTERNAL_MU) with the private key of an asymmetric SIGN_VERIFY key.
func (s *Service) Sign(ctx context.Context, c Caller, in *SignInput) (*SignOutput, error) {
	k, err := s.checkSigning(ctx, c, in.KeyId, in.SigningAlgorithm, in.MessageType, in.Message)
	if err != nil {
		return nil, err
	}
	priv, release, err := s.operationKey(ctx, k, in.DryRun)
	if err != nil {
		return nil, err
	}
	defer release()
	sig, err := priv.Sign(s.rand, in.SigningAlgorithm, in.MessageType, in.Message)
	if err != nil {
		return nil, internal("sign", err)
	}
	s.noteUse(ctx, k, useSign)
	return &SignOutput{KeyId: arnOf(k), Signature: sig, SigningAlgorithm: in.SigningAlgorithm}, nil
}

// VerifyInput is the Verify request.
type VerifyInput struct {
	KeyId            string
	Message          []byte
	MessageType      string
	Signature        []byte
	SigningAlgorithm string
	GrantTokens      []string
	DryRun           bool
}

// VerifyOutput is the Verify response; like AWS, Verify never answers
// SignatureValid false: an invalid signature is KMSInvalidSignatureException.
type VerifyOutput struct {
	KeyId            string // key ARN
	SignatureValid   bool
	SigningAlgorithm string
}

// Verify checks a signature made with an asymmetric SIGN_VERIFY key. A dry
// run verifies too: it succeeds only when the signature is valid.
func (s *Service) Verify(ctx context.Context, c Caller, in *VerifyInput) (*VerifyOutput, error) {
	k, err := s.checkSigning(ctx, c, in.KeyId, in.SigningAlgorithm, in.MessageType, in.Message)
	if err != nil {
		return nil, err
	}
	priv, release, err := s.privateKey(ctx, k)
	if err != nil {
		return nil, err
	}
	defer release()
	ok, err := priv.Verify(in.SigningAlgorithm, in.MessageType, in.Message, in.Signature)
	if err != nil {
		return nil, internal("verify", err)
	}
	if !ok {
		return nil, awserr.New(awserr.KMSInvalidSignature, "The signature is not valid for this message, key and signing algorithm.")
	}
	if in.DryRun {
		return nil, errDryRun
	}
	s.noteUse(ctx, k, useVerify)
	return &VerifyOutput{KeyId: arnOf(k), SignatureValid: true, SigningAlgorithm: in.SigningAlgorithm}, nil
}

// GetPublicKeyOutput is the GetPublicKey response.
type GetPublicKeyOutput struct {
	KeyId                 string // key ARN
	PublicKey             []byte // DER SubjectPublicKeyInfo
	CustomerMasterKeySpec string // "" unless the deprecated enum has the spec
	KeySpec               string
	KeyUsage              string
	// The algorithms of the key's usage; the others are nil.
	EncryptionAlgorithms    []string
	SigningAlgorithms       []string
	KeyAgreementAlgorithms  []string
	EncapsulationAlgorithms []string
}

// GetPublicKey returns the public key of an asymmetric key and what it may
// be used for. Symmetric and HMAC keys have none: UnsupportedOperation.
func (s *Service) GetPublicKey(ctx context.Context, c Caller, in *KeyIdInput) (*GetPublicKeyOutput, error) {
	k, err := s.resolve(ctx, c, in.KeyId, anyKeyForm)
	if err != nil {
		return nil, err
	}
	if !keys.IsAsymmetric(k.KeySpec) {
		return nil, awserr.Newf(awserr.UnsupportedOperation, "%s is a %s key, which has no public key: GetPublicKey needs an asymmetric KMS key.", arnOf(k), k.KeySpec)
	}
	if err := checkUsable(k); err != nil {
		return nil, err
	}
	priv, release, err := s.privateKey(ctx, k)
	if err != nil {
		return nil, err
	}
	defer release()
	algs := algorithmsOf(k.KeySpec, k.KeyUsage)
	return &GetPublicKeyOutput{
		KeyId:                   arnOf(k),
		PublicKey:               priv.PublicKey(),
		CustomerMasterKeySpec:   cmkSpec(k.KeySpec),
		KeySpec:                 k.KeySpec,
		KeyUsage:                k.KeyUsage,
		EncryptionAlgorithms:    algs.Encryption,
		SigningAlgorithms:       algs.Signing,
		KeyAgreementAlgorithms:  algs.KeyAgreement,
		EncapsulationAlgorithms: algs.Encapsulation,
	}, nil
}

// GenerateDataKeyPairInput is the GenerateDataKeyPair and
// GenerateDataKeyPairWithoutPlaintext request.
type GenerateDataKeyPairInput struct {
	KeyId             string
	KeyPairSpec       string
	EncryptionContext map[string]string
	GrantTokens       []string
	Recipient         *RecipientInfo
	DryRun            bool
}

// GenerateDataKeyPairOutput is the GenerateDataKeyPair response;
// PrivateKeyPlaintext is nil for GenerateDataKeyPairWithoutPlaintext. The
// caller owns PrivateKeyPlaintext and should clear it once written out.
type GenerateDataKeyPairOutput struct {
	PrivateKeyCiphertextBlob []byte
	PrivateKeyPlaintext      []byte // DER PKCS #8
	PublicKey                []byte // DER SubjectPublicKeyInfo
	KeyId                    string // key ARN
	KeyPairSpec              string
	KeyMaterialId            string
}

// dataKeyPairSpecs are the DataKeyPairSpec values kmsd generates (SM2 is
// declined).
var dataKeyPairSpecs = []string{
	keys.SpecRSA2048, keys.SpecRSA3072, keys.SpecRSA4096, keys.SpecP256, keys.SpecP384, keys.SpecP521,
	keys.SpecSecp256k1, keys.SpecEd25519, keys.SpecMLKEM512, keys.SpecMLKEM768, keys.SpecMLKEM1024,
}

// GenerateDataKeyPair returns a fresh key pair: the public key, the private
// key in plaintext (the one documented exception to "private keys never
// leave kmsd": this key pair is the caller's, not kmsd's) and encrypted
// under a symmetric encryption key with the encryption context bound.
func (s *Service) GenerateDataKeyPair(ctx context.Context, c Caller, in *GenerateDataKeyPairInput) (*GenerateDataKeyPairOutput, error) {
	return s.generateDataKeyPair(ctx, c, in, true)
}

// GenerateDataKeyPairWithoutPlaintext is GenerateDataKeyPair without the
// plaintext private key.
func (s *Service) GenerateDataKeyPairWithoutPlaintext(ctx context.Context, c Caller, in *GenerateDataKeyPairInput) (*GenerateDataKeyPairOutput, error) {
	return s.generateDataKeyPair(ctx, c, in, false)
}

func (s *Service) generateDataKeyPair(ctx context.Context, c Caller, in *GenerateDataKeyPairInput, withPlaintext bool) (*GenerateDataKeyPairOutput, error) {
	if in.Recipient != nil {
		return nil, errRecipient
	}
	k, err := s.resolve(ctx, c, in.KeyId, anyKeyForm)
	if err != nil {
		return nil, err
	}
	if k.KeySpec != SpecSymmetricDefault {
		return nil, awserr.Newf(awserr.InvalidKeyUsage, "%s is a %s key: data key pairs are encrypted under a symmetric encryption KMS key.", arnOf(k), k.KeySpec)
	}
	if err := usableForEncryption(k, ""); err != nil {
		return nil, err
	}
	if err := checkContext("encryptionContext", in.EncryptionContext); err != nil {
		return nil, err
	}
	switch {
	case in.KeyPairSpec == keys.SpecSM2:
		return nil, errSM2("KeyPairSpec")
	case !slices.Contains(dataKeyPairSpecs, in.KeyPairSpec):
		return nil, awserr.Newf(awserr.UnsupportedOperation, "KeyPairSpec %s is not supported by kmsd.", in.KeyPairSpec)
	}
	if in.DryRun {
		return nil, errDryRun
	}
	der, err := keys.GenerateKey(in.KeyPairSpec, s.rand)
	if err != nil {
		return nil, internal("generate data key pair", err)
	}
	pair, err := keys.ParsePrivateKey(in.KeyPairSpec, der)
	if err != nil {
		clear(der)
		return nil, internal("parse data key pair", err)
	}
	pub := pair.PublicKey()
	pair.Destroy()
	blob, err := s.seal(ctx, k, der, in.EncryptionContext)
	if err != nil {
		clear(der)
		return nil, err
	}
	out := &GenerateDataKeyPairOutput{
		PrivateKeyCiphertextBlob: blob,
		PublicKey:                pub,
		KeyId:                    arnOf(k),
		KeyPairSpec:              in.KeyPairSpec,
		KeyMaterialId:            k.CurrentMaterial,
	}
	if withPlaintext {
		out.PrivateKeyPlaintext = der
		s.noteUse(ctx, k, useGenerateDataKeyPair)
	} else {
		clear(der)
		s.noteUse(ctx, k, useGenerateDataKeyPairWithoutPlaintext)
	}
	return out, nil
}

// DeriveSharedSecretInput is the DeriveSharedSecret request.
type DeriveSharedSecretInput struct {
	KeyId                 string
	KeyAgreementAlgorithm string
	PublicKey             []byte // the peer's DER SubjectPublicKeyInfo
	GrantTokens           []string
	Recipient             *RecipientInfo
	DryRun                bool
}

// DeriveSharedSecretOutput is the DeriveSharedSecret response. The caller
// owns SharedSecret and should clear it once written out.
type DeriveSharedSecretOutput struct {
	KeyId                 string // key ARN
	SharedSecret          []byte
	KeyAgreementAlgorithm string
	KeyOrigin             string
}

// DeriveSharedSecret runs ECDH between the private key of a KEY_AGREEMENT
// key and a peer's public key, and returns the raw shared secret.
func (s *Service) DeriveSharedSecret(ctx context.Context, c Caller, in *DeriveSharedSecretInput) (*DeriveSharedSecretOutput, error) {
	if in.Recipient != nil {
		return nil, errRecipient
	}
	k, err := s.keyFor(ctx, c, in.KeyId, useKeyAgreement, in.KeyAgreementAlgorithm)
	if err != nil {
		return nil, err
	}
	priv, release, err := s.privateKey(ctx, k)
	if err != nil {
		return nil, err
	}
	defer release()
	secret, err := priv.DeriveSharedSecret(in.PublicKey)
	if errors.Is(err, keys.ErrPeerKey) {
		return nil, awserr.Newf(awserr.Validation, "PublicKey is not valid for %s: %s.", arnOf(k), reason(err, keys.ErrPeerKey))
	}
	if err != nil {
		return nil, internal("derive shared secret", err)
	}
	if in.DryRun {
		clear(secret)
		return nil, errDryRun
	}
	s.noteUse(ctx, k, useDeriveSharedSecret)
	return &DeriveSharedSecretOutput{KeyId: arnOf(k), SharedSecret: secret, KeyAgreementAlgorithm: in.KeyAgreementAlgorithm, KeyOrigin: k.Origin}, nil
}

// EncapsulateInput is the Encapsulate request.
type EncapsulateInput struct {
	KeyId                  string
	EncapsulationAlgorithm string
	GrantTokens            []string
	DryRun                 bool
}

// EncapsulateOutput is the Encapsulate response. The caller owns
// SharedSecret and should clear it once written out.
type EncapsulateOutput struct {
	KeyId                      string // key ARN
	SharedSecret               []byte
	SharedSecretCiphertextBlob []byte
	EncapsulationAlgorithm     string
}

// Encapsulate makes a fresh shared secret and its ML-KEM encapsulation
// under the public key of an ENCAPSULATE_DECAPSULATE key.
func (s *Service) Encapsulate(ctx context.Context, c Caller, in *EncapsulateInput) (*EncapsulateOutput, error) {
	k, err := s.keyFor(ctx, c, in.KeyId, useEncapsulation, in.EncapsulationAlgorithm)
	if err != nil {
		return nil, err
	}
	priv, release, err := s.operationKey(ctx, k, in.DryRun)
	if err != nil {
		return nil, err
	}
	defer release()
	secret, ct, err := priv.Encapsulate(s.rand)
	if err != nil {
		return nil, internal("encapsulate", err)
	}
	s.noteUse(ctx, k, useEncapsulate)
	return &EncapsulateOutput{KeyId: arnOf(k), SharedSecret: secret, SharedSecretCiphertextBlob: ct, EncapsulationAlgorithm: in.EncapsulationAlgorithm}, nil
}

// DecapsulateInput is the Decapsulate request.
type DecapsulateInput struct {
	KeyId                      string
	EncapsulationAlgorithm     string
	SharedSecretCiphertextBlob []byte
	GrantTokens                []string
	DryRun                     bool
}

// DecapsulateOutput is the Decapsulate response. The caller owns
// SharedSecret and should clear it once written out.
type DecapsulateOutput struct {
	KeyId                  string // key ARN
	SharedSecret           []byte
	EncapsulationAlgorithm string
}

// Decapsulate recovers the shared secret of an ML-KEM ciphertext. Like
// ML-KEM itself it cannot tell a forged ciphertext of the right size (it
// yields an unrelated secret); a ciphertext of the wrong size is
// InvalidCiphertextException.
func (s *Service) Decapsulate(ctx context.Context, c Caller, in *DecapsulateInput) (*DecapsulateOutput, error) {
	k, err := s.keyFor(ctx, c, in.KeyId, useEncapsulation, in.EncapsulationAlgorithm)
	if err != nil {
		return nil, err
	}
	if n := keys.MLKEMCiphertextSize(k.KeySpec); len(in.SharedSecretCiphertextBlob) != n {
		return nil, awserr.Newf(awserr.InvalidCiphertext, "The ciphertext is %d bytes; a %s ciphertext is %d bytes.", len(in.SharedSecretCiphertextBlob), k.KeySpec, n)
	}
	priv, release, err := s.operationKey(ctx, k, in.DryRun)
	if err != nil {
		return nil, err
	}
	defer release()
	secret, err := priv.Decapsulate(in.SharedSecretCiphertextBlob)
	if err != nil {
		return nil, internal("decapsulate", err)
	}
	s.noteUse(ctx, k, useDecapsulate)
	return &DecapsulateOutput{KeyId: arnOf(k), SharedSecret: secret, EncapsulationAlgorithm: in.EncapsulationAlgorithm}, nil
}
