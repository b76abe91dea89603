package kms

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/keys"
	"github.com/kmsd/kmsd/internal/store"
)

// Imported key material (BYOK) for symmetric encryption, HMAC, RSA and ECC
// keys (importableSpec): a key created
// with Origin EXTERNAL starts in PendingImport without material;
// GetParametersForImport hands out a fresh RSA public key and an import
// token; ImportKeyMaterial unwraps the caller's material with the private
// half and makes it the key's material.
//
// The KeyMaterialId of imported material is derived from the material (a
// domain-separated SHA-256 with the key ARN), so that re-importing the same
// material after DeleteImportedKeyMaterial gives the same id: ciphertexts,
// which name their material id, decrypt again, and different material is
// recognized and refused.

// OriginExternal is the origin of keys with imported material.
const OriginExternal = "EXTERNAL"

// Expiration models of imported material.
const (
	ExpirationExpires       = "KEY_MATERIAL_EXPIRES"
	ExpirationDoesNotExpire = "KEY_MATERIAL_DOES_NOT_EXPIRE"
)

// Import limits.
const (
	importParamsLifetime = 24 * time.Hour
	maxMaterialValidity  = 365 * day
)

// importableSpec reports whether kmsd imports key material for keys of
// spec: symmetric encryption keys (256 bits), HMAC keys (as long as the
// hash output) and RSA and ECC keys (a DER PKCS #8 private key).
func importableSpec(spec string) bool {
	switch {
	case spec == SpecSymmetricDefault, keys.IsHMAC(spec):
		return true
	case strings.HasPrefix(spec, "RSA_"), strings.HasPrefix(spec, "ECC_NIST_P"), spec == "ECC_SECG_P256K1":
		return keys.IsAsymmetric(spec)
	}
	return false
}

// checkImportedMaterial checks that material fits key k.
func checkImportedMaterial(k *store.Key, material []byte) error {
	switch {
	case k.KeySpec == SpecSymmetricDefault:
		if len(material) != keys.MaterialSize {
			return awserr.Newf(awserr.IncorrectKeyMaterial, "Key material for a %s key must be %d bytes.", k.KeySpec, keys.MaterialSize)
		}
	case keys.IsHMAC(k.KeySpec):
		if _, err := keys.MAC(k.KeySpec, keys.MacAlgorithms(k.KeySpec)[0], material, nil); err != nil {
			return awserr.Newf(awserr.IncorrectKeyMaterial, "Key material for a %s key must be as long as the output of its hash.", k.KeySpec)
		}
	default:
		priv, err := keys.ParsePrivateKey(k.KeySpec, material)
		if err != nil {
			return awserr.Newf(awserr.IncorrectKeyMaterial, "Key material for a %s key must be a DER-encoded PKCS #8 private key of that key spec.", k.KeySpec)
		}
		priv.Destroy()
	}
	return nil
}

// wrappingHash returns the OAEP hash of a wrapping algorithm, and whether
// the algorithm wraps with an ephemeral AES key (RSA_AES_KEY_WRAP_*).
func wrappingHash(alg string) (h crypto.Hash, aesWrap, ok bool) {
	switch alg {
	case "RSAES_OAEP_SHA_1":
		return crypto.SHA1, false, true
	case "RSAES_OAEP_SHA_256":
		return crypto.SHA256, false, true
	case "RSA_AES_KEY_WRAP_SHA_1":
		return crypto.SHA1, true, true
	case "RSA_AES_KEY_WRAP_SHA_256":
		return crypto.SHA256, true, true
	}
	return 0, false, false
}

func wrappingBits(spec string) int {
	switch spec {
	case "RSA_2048":
		return 2048
	case "RSA_3072":
		return 3072
	case "RSA_4096":
		return 4096
	}
	return 0
}

// checkImportable refuses import operations on keys without imported
// material, and on keys pending deletion.
func checkImportable(k *store.Key) error {
	if k.Origin != OriginExternal {
		return awserr.Newf(awserr.UnsupportedOperation, "%s origin is %s which is not valid for this operation.", arnOf(k), k.Origin)
	}
	return checkManageable(k)
}

// lacksImportedMaterial reports whether k is an EXTERNAL key without key
// material: never imported, deleted or expired. Every import sets an
// ExpirationModel, and removing the material clears it.
func lacksImportedMaterial(k *store.Key) bool {
	return k.Origin == OriginExternal && k.ExpirationModel == ""
}

// importParamsAAD binds a wrapped wrapping private key to its key and
// import token.
func importParamsAAD(keyARN, paramsID string) []byte {
	return []byte("kmsd import wrapping key v1\x00" + keyARN + "\x00" + paramsID)
}

// tokenID is the stored name of an import token: its SHA-256.
func tokenID(token []byte) string {
	h := sha256.Sum256(token)
	return hex.EncodeToString(h[:])
}

// ImportedKeyMaterialID is the KeyMaterialId that material imported into
// the single-Region key keyARN gets: a caller that knows the material can
// tell whether a key holds it (DescribeKey's CurrentKeyMaterialId)
// without importing it again.
func ImportedKeyMaterialID(keyARN string, material []byte) string {
	return importedMaterialID(keyARN, material)
}

// importedMaterialID derives the KeyMaterialId of imported material.
func importedMaterialID(keyARN string, material []byte) string {
	h := sha256.New()
	h.Write([]byte("kmsd imported key material id v1\x00" + keyARN + "\x00"))
	h.Write(material)
	return hex.EncodeToString(h.Sum(nil))
}

// GetParametersForImportInput is the GetParametersForImport request.
type GetParametersForImportInput struct {
	KeyId             string
	WrappingAlgorithm string
	WrappingKeySpec   string
}

// GetParametersForImportOutput is the GetParametersForImport response.
type GetParametersForImportOutput struct {
	KeyId             string // key ARN
	ImportToken       []byte
	PublicKey         []byte // DER SubjectPublicKeyInfo
	ParametersValidTo time.Time
}

// GetParametersForImport makes a fresh RSA wrapping key pair for one key,
// valid 24 hours, and returns its public half and the import token that
// names it.
func (s *Service) GetParametersForImport(ctx context.Context, c Caller, in *GetParametersForImportInput) (*GetParametersForImportOutput, error) {
	k, err := s.resolve(ctx, c, in.KeyId, idOrARN)
	if err != nil {
		return nil, err
	}
	if err := checkImportable(k); err != nil {
		return nil, err
	}
	if !importableSpec(k.KeySpec) {
		return nil, awserr.Newf(awserr.UnsupportedOperation, "Importing key material for %s keys is not supported by this kmsd version.", k.KeySpec)
	}
	if _, _, ok := wrappingHash(in.WrappingAlgorithm); !ok {
		return nil, awserr.Newf(awserr.UnsupportedOperation, "Wrapping algorithm %s is not supported for importing key material.", in.WrappingAlgorithm)
	}
	bits := wrappingBits(in.WrappingKeySpec)
	if bits == 0 {
		return nil, awserr.Newf(awserr.UnsupportedOperation, "Wrapping key spec %s is not supported for importing key material.", in.WrappingKeySpec)
	}
	priv, err := rsa.GenerateKey(s.rand, bits)
	if err != nil {
		return nil, internal("generate wrapping key", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, internal("marshal wrapping key", err)
	}
	defer clear(der)
	pub, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return nil, internal("marshal wrapping public key", err)
	}
	token := make([]byte, 32)
	if _, err := io.ReadFull(s.rand, token); err != nil {
		return nil, internal("generate import token", err)
	}
	id := tokenID(token)
	wrapped, err := s.keystore.Wrap(ctx, der, importParamsAAD(arnOf(k), id))
	if err != nil {
		return nil, internal("wrap wrapping key", err)
	}
	now := s.now().UTC()
	p := &store.ImportParams{KeyID: k.ID, ID: id, WrappedPrivateKey: wrapped, WrappingAlgorithm: in.WrappingAlgorithm,
		WrappingKeySpec: in.WrappingKeySpec, Created: now, ValidTo: now.Add(importParamsLifetime)}
	if err := s.store.PutImportParams(ctx, p); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			s.forget(k.ID)
			return nil, notFoundKey(arnOf(k))
		}
		return nil, internal("store import parameters", err)
	}
	return &GetParametersForImportOutput{KeyId: arnOf(k), ImportToken: token, PublicKey: pub, ParametersValidTo: p.ValidTo}, nil
}

// ImportKeyMaterialInput is the ImportKeyMaterial request. ValidTo is
// seconds since the Unix epoch, as on the wire.
type ImportKeyMaterialInput struct {
	KeyId                  string
	ImportToken            []byte
	EncryptedKeyMaterial   []byte
	ValidTo                *float64
	ExpirationModel        string
	ImportType             string
	KeyMaterialDescription string
	KeyMaterialId          string
}

// ImportKeyMaterialOutput is the ImportKeyMaterial response.
type ImportKeyMaterialOutput struct {
	KeyId         string // key ARN
	KeyMaterialId string
}

var errInvalidImportToken = awserr.New(awserr.InvalidImportToken, "The import token is invalid or does not belong to this key.")

// ImportKeyMaterial imports (or re-imports the same) key material into a
// key with Origin EXTERNAL. On any error the key is left as it was.
func (s *Service) ImportKeyMaterial(ctx context.Context, c Caller, in *ImportKeyMaterialInput) (*ImportKeyMaterialOutput, error) {
	k, err := s.resolve(ctx, c, in.KeyId, idOrARN)
	if err != nil {
		return nil, err
	}
	if err := checkImportable(k); err != nil {
		return nil, err
	}
	if !importableSpec(k.KeySpec) {
		return nil, awserr.Newf(awserr.UnsupportedOperation, "Importing key material for %s keys is not supported by this kmsd version.", k.KeySpec)
	}
	newMaterial := in.ImportType == "NEW_KEY_MATERIAL" && k.CurrentMaterial != ""
	if newMaterial && k.KeySpec != SpecSymmetricDefault {
		return nil, awserr.Newf(awserr.UnsupportedOperation, "Importing NEW_KEY_MATERIAL into %s is supported only for symmetric encryption keys.", arnOf(k))
	}
	if newMaterial && lacksImportedMaterial(k) {
		return nil, awserr.Newf(awserr.KMSInvalidState, "%s is pending import: import its current key material with ImportType EXISTING_KEY_MATERIAL first.", arnOf(k))
	}
	now := s.now().UTC()
	model := in.ExpirationModel
	if model == "" {
		model = ExpirationExpires
	}
	var validTo time.Time
	switch {
	case model == ExpirationExpires && in.ValidTo == nil:
		return nil, awserr.New(awserr.Validation, "ValidTo is required when ExpirationModel is KEY_MATERIAL_EXPIRES.")
	case model == ExpirationDoesNotExpire && in.ValidTo != nil:
		return nil, awserr.New(awserr.Validation, "ValidTo must be omitted when ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE.")
	case in.ValidTo != nil:
		v := *in.ValidTo
		if math.IsNaN(v) || math.IsInf(v, 0) || v > 1e12 || v < 0 {
			return nil, awserr.New(awserr.Validation, "ValidTo is not a valid timestamp.")
		}
		sec, frac := math.Modf(v)
		validTo = time.Unix(int64(sec), int64(frac*1e9)).UTC()
		if !validTo.After(now) || validTo.After(now.Add(maxMaterialValidity)) {
			return nil, awserr.New(awserr.Validation, "ValidTo must be in the future and at most 365 days from now.")
		}
	}

	p, err := s.store.GetImportParams(ctx, k.ID, tokenID(in.ImportToken))
	if errors.Is(err, store.ErrNotFound) {
		return nil, errInvalidImportToken
	}
	if err != nil {
		return nil, internal("get import parameters", err)
	}
	if !now.Before(p.ValidTo) {
		return nil, awserr.New(awserr.ExpiredImportToken, "The import token has expired. Call GetParametersForImport for new import parameters.")
	}
	material, err := s.unwrapImport(ctx, k, p, in.EncryptedKeyMaterial)
	if err != nil {
		return nil, err
	}
	defer clear(material)
	if err := checkImportedMaterial(k, material); err != nil {
		return nil, err
	}
	id := importedMaterialID(materialIDScope(k), material)
	if in.KeyMaterialId != "" && in.KeyMaterialId != id {
		return nil, awserr.New(awserr.IncorrectKeyMaterial, "The key material does not match the KeyMaterialId in the request.")
	}
	if isMultiRegion(k) && k.CurrentMaterial != "" && id != k.CurrentMaterial {
		// Material another related key holds: the primary's new material
		// pending rotation, or an earlier material a replica lacks (a
		// replica made after rotations, or a primary moved to a Region).
		out, handled, err := s.importRelatedMaterial(ctx, k, id, material, in.ImportType == "NEW_KEY_MATERIAL", now)
		if handled {
			return out, err
		}
		if isReplica(k) && newMaterial {
			return nil, awserr.Newf(awserr.UnsupportedOperation, "%s is a replica key: import new key material into its primary key in %s with ImportType NEW_KEY_MATERIAL, then the same material into the replica key with ImportType EXISTING_KEY_MATERIAL.", arnOf(k), k.PrimaryRegion)
		}
	}
	if newMaterial {
		return s.importNewMaterial(ctx, k, id, material, model, validTo, now)
	}
	if k.CurrentMaterial != "" && k.CurrentMaterial != id {
		// Re-importing an earlier (non-current) material the key still
		// holds changes nothing.
		if m, err := s.store.GetMaterial(ctx, k.ID, id); err == nil && m.RotationType != store.RotationPending && !lacksImportedMaterial(k) {
			return &ImportKeyMaterialOutput{KeyId: arnOf(k), KeyMaterialId: id}, nil
		}
		return nil, errIncorrectMaterial(k)
	}
	wrapped, err := s.keystore.Wrap(ctx, material, materialAAD(arnOf(k), id))
	if err != nil {
		return nil, internal("wrap key material", err)
	}
	m := &store.Material{KeyID: k.ID, ID: id, Wrapped: wrapped, Created: now}
	importInto := func(tx store.Tx) (*store.Key, error) {
		return tx.ReplaceMaterial(ctx, k.ID, m, id, func(cur *store.Key) error {
			if err := checkImportable(cur); err != nil {
				return err
			}
			if cur.CurrentMaterial != "" && cur.CurrentMaterial != id {
				return errIncorrectMaterial(cur)
			}
			cur.CurrentMaterial = id
			if cur.State == StatePendingImport {
				cur.State = StateEnabled
			}
			cur.MaterialValidTo = validTo
			cur.ExpirationModel = model
			return nil
		})
	}
	var updated *store.Key
	if isMultiRegion(k) {
		updated, err = s.importMultiRegion(ctx, k, id, importInto)
	} else {
		updated, err = importInto(s.store)
	}
	if err != nil {
		return nil, s.materialWriteError(k, err)
	}
	s.view.dropKey(updated.ID)
	s.log.InfoContext(ctx, "key material imported", "key", arnOf(updated), "key_material_id", id, "valid_to", validTo)
	return &ImportKeyMaterialOutput{KeyId: arnOf(updated), KeyMaterialId: id}, nil
}

// importNewMaterial stores material (ImportType NEW_KEY_MATERIAL) as the
// key's one material in PENDING_ROTATION, which RotateKeyOnDemand makes
// current. kmsd keeps one expiration per key, so the new material must have
// the key's ExpirationModel and ValidTo.
func (s *Service) importNewMaterial(ctx context.Context, k *store.Key, id string, material []byte, model string, validTo, now time.Time) (*ImportKeyMaterialOutput, error) {
	if model != k.ExpirationModel || !validTo.Equal(k.MaterialValidTo) {
		return nil, awserr.New(awserr.Validation, "kmsd keeps one expiration per key: NEW_KEY_MATERIAL must have the ExpirationModel and ValidTo of the key's current key material.")
	}
	ms, err := s.store.ListMaterials(ctx, k.ID)
	if err != nil {
		return nil, internal("list key materials", err)
	}
	for _, m := range ms {
		if m.ID == id {
			return nil, awserr.Newf(awserr.IncorrectKeyMaterial, "The key material is already associated with %s. Import it with ImportType EXISTING_KEY_MATERIAL.", arnOf(k))
		}
		if m.RotationType == store.RotationPending {
			return nil, awserr.Newf(awserr.UnsupportedOperation, "%s already has key material %s in PENDING_ROTATION state. Rotate the key with RotateKeyOnDemand before importing new key material.", arnOf(k), m.ID)
		}
	}
	wrapped, err := s.keystore.Wrap(ctx, material, materialAAD(arnOf(k), id))
	if err != nil {
		return nil, internal("wrap key material", err)
	}
	m := &store.Material{KeyID: k.ID, ID: id, Wrapped: wrapped, Created: now, RotationType: store.RotationPending}
	updated, err := s.store.ReplaceMaterial(ctx, k.ID, m, "", func(cur *store.Key) error {
		if err := checkImportable(cur); err != nil {
			return err
		}
		if cur.CurrentMaterial != k.CurrentMaterial || lacksImportedMaterial(cur) {
			return awserr.Newf(awserr.Conflict, "%s changed while key material was being imported. Try again.", arnOf(cur))
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, store.ErrExists) {
			return nil, awserr.Newf(awserr.IncorrectKeyMaterial, "The key material is already associated with %s.", arnOf(k))
		}
		return nil, s.materialWriteError(k, err)
	}
	s.view.dropKey(updated.ID)
	s.log.InfoContext(ctx, "new key material imported pending rotation", "key", arnOf(updated), "key_material_id", id)
	return &ImportKeyMaterialOutput{KeyId: arnOf(updated), KeyMaterialId: id}, nil
}

func errIncorrectMaterial(k *store.Key) error {
	return awserr.Newf(awserr.IncorrectKeyMaterial, "The key material is not the key material previously imported into %s.", arnOf(k))
}

// materialWriteError maps an error of a material-changing store call.
func (s *Service) materialWriteError(k *store.Key, err error) error {
	var ae *awserr.Error
	if errors.As(err, &ae) {
		return err
	}
	if errors.Is(err, store.ErrNotFound) {
		s.forget(k.ID)
		return notFoundKey(arnOf(k))
	}
	return internal("update key material", err)
}

// unwrapImport decrypts EncryptedKeyMaterial with the wrapping private key
// of import parameters p. Any failure of the wrapping is
// InvalidCiphertextException.
func (s *Service) unwrapImport(ctx context.Context, k *store.Key, p *store.ImportParams, enc []byte) ([]byte, error) {
	der, err := s.keystore.Unwrap(ctx, p.WrappedPrivateKey, importParamsAAD(arnOf(k), p.ID))
	if err != nil {
		return nil, internal("unwrap wrapping key", err)
	}
	defer clear(der)
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, internal("parse wrapping key", err)
	}
	priv, ok := parsed.(*rsa.PrivateKey)
	if !ok {
		return nil, internal("parse wrapping key", fmt.Errorf("wrapping key is %T", parsed))
	}
	h, aesWrap, ok := wrappingHash(p.WrappingAlgorithm)
	if !ok {
		return nil, internal("import", fmt.Errorf("stored wrapping algorithm %q", p.WrappingAlgorithm))
	}
	return unwrapKeyMaterial(priv, h, aesWrap, enc)
}

// unwrapKeyMaterial undoes the client's wrapping of EncryptedKeyMaterial
// with the wrapping private key priv: RSAES-OAEP with hash h, or, for the
// RSA_AES_KEY_WRAP algorithms (aesWrap), an ephemeral AES key encrypted with
// RSAES-OAEP followed by the material wrapped with it (AES key wrap with
// padding, RFC 5649). enc comes from the client: any failure is
// InvalidCiphertextException.
func unwrapKeyMaterial(priv *rsa.PrivateKey, h crypto.Hash, aesWrap bool, enc []byte) ([]byte, error) {
	bad := awserr.New(awserr.InvalidCiphertext, "The encrypted key material could not be unwrapped with the import parameters of the import token.")
	oaep := func(ct []byte) ([]byte, error) {
		var hf = sha256.New()
		if h == crypto.SHA1 {
			hf = sha1.New()
		}
		pt, err := rsa.DecryptOAEP(hf, nil, priv, ct, nil)
		if err != nil {
			return nil, bad
		}
		return pt, nil
	}
	if !aesWrap {
		return oaep(enc)
	}
	n := priv.Size()
	if len(enc) <= n {
		return nil, bad
	}
	kek, err := oaep(enc[:n])
	if err != nil {
		return nil, err
	}
	defer clear(kek)
	if len(kek) != 16 && len(kek) != 24 && len(kek) != 32 {
		return nil, bad
	}
	material, err := keys.UnwrapKeyPadded(kek, enc[n:])
	if err != nil {
		return nil, bad
	}
	return material, nil
}

// DeleteImportedKeyMaterialInput is the DeleteImportedKeyMaterial request.
type DeleteImportedKeyMaterialInput struct {
	KeyId         string
	KeyMaterialId string
}

// DeleteImportedKeyMaterialOutput is the DeleteImportedKeyMaterial response.
type DeleteImportedKeyMaterialOutput struct {
	KeyId         string // key ARN
	KeyMaterialId string
}

// DeleteImportedKeyMaterial deletes a key's imported material: the key
// returns to PendingImport, and its ciphertexts fail until the same
// material is imported again.
func (s *Service) DeleteImportedKeyMaterial(ctx context.Context, c Caller, in *DeleteImportedKeyMaterialInput) (*DeleteImportedKeyMaterialOutput, error) {
	k, err := s.resolve(ctx, c, in.KeyId, idOrARN)
	if err != nil {
		return nil, err
	}
	if err := checkImportable(k); err != nil {
		return nil, err
	}
	if k.State == StatePendingImport {
		return nil, checkUsable(k)
	}
	if in.KeyMaterialId != "" && in.KeyMaterialId != k.CurrentMaterial {
		return nil, awserr.Newf(awserr.NotFound, "Key material %s of %s does not exist.", in.KeyMaterialId, arnOf(k))
	}
	updated, err := s.removeMaterial(ctx, k, func(cur *store.Key) error {
		if err := checkImportable(cur); err != nil {
			return err
		}
		if cur.State == StatePendingImport {
			return checkUsable(cur)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "imported key material deleted", "key", arnOf(updated), "key_material_id", updated.CurrentMaterial)
	return &DeleteImportedKeyMaterialOutput{KeyId: arnOf(updated), KeyMaterialId: updated.CurrentMaterial}, nil
}

// removeMaterial deletes the current (imported) material of k and puts it in
// PendingImport, when check, run on the key as stored, allows it. The key
// keeps its CurrentMaterial id, which a re-import must match.
func (s *Service) removeMaterial(ctx context.Context, k *store.Key, check func(*store.Key) error) (*store.Key, error) {
	updated, err := s.store.ReplaceMaterial(ctx, k.ID, nil, k.CurrentMaterial, func(cur *store.Key) error {
		if cur.CurrentMaterial != k.CurrentMaterial {
			return errRotationRaced
		}
		if err := check(cur); err != nil {
			return err
		}
		if cur.State != StatePendingDeletion && cur.State != StatePendingReplicaDeletion {
			// A key pending deletion stays so; CancelKeyDeletion
			// returns it to PendingImport.
			cur.State = StatePendingImport
		}
		cur.MaterialValidTo = time.Time{}
		cur.ExpirationModel = ""
		return nil
	})
	if errors.Is(err, errRotationRaced) {
		return nil, err
	}
	if err != nil {
		return nil, s.materialWriteError(k, err)
	}
	s.materials.evictKey(k.ID)
	s.view.dropKey(updated.ID)
	return updated, nil
}

// ExpireImportedMaterial deletes the imported material whose ValidTo has
// passed (its keys return to PendingImport) and returns how many it
// deleted; it also drops expired import parameters. Like RotateDueKeys it is a compare-and-set per key, safe to run
// on several nodes at once.
func (s *Service) ExpireImportedMaterial(ctx context.Context) (int, error) {
	now := s.now().UTC()
	// Import parameters past their 24 hours are of no use any more.
	if _, err := s.store.DeleteExpiredImportParams(ctx, now); err != nil {
		return 0, fmt.Errorf("expire: delete expired import parameters: %w", err)
	}
	due, err := s.store.KeysWithExpiredMaterial(ctx, now)
	if err != nil {
		return 0, fmt.Errorf("expire: list keys with expired material: %w", err)
	}
	return s.forEachDue(ctx, "expire material of key", due, func(k *store.Key) error {
		seen := k.MaterialValidTo
		_, err := s.removeMaterial(ctx, k, func(cur *store.Key) error {
			if !cur.MaterialValidTo.Equal(seen) || lacksImportedMaterial(cur) {
				return errRotationRaced
			}
			return nil
		})
		if err == nil {
			s.log.InfoContext(ctx, "imported key material expired", "key", arnOf(k), "key_material_id", k.CurrentMaterial)
		}
		return err
	})
}
