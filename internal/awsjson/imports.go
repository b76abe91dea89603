package awsjson

import "github.com/kmsd/kmsd/internal/kms"

// Imported key material: model constraints and response shapes.

var (
	wrappingAlgorithms = []string{"RSAES_PKCS1_V1_5", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256",
		"RSA_AES_KEY_WRAP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256", "SM2PKE"}
	wrappingKeySpecs = []string{"RSA_2048", "RSA_3072", "RSA_4096", "SM2"}
	expirationModels = []string{"KEY_MATERIAL_EXPIRES", "KEY_MATERIAL_DOES_NOT_EXPIRE"}
	importTypes      = []string{"NEW_KEY_MATERIAL", "EXISTING_KEY_MATERIAL"}
)

func validateGetParametersForImport(v *validator, in *kms.GetParametersForImportInput) {
	v.keyID("keyId", in.KeyId)
	v.requiredEnum("wrappingAlgorithm", in.WrappingAlgorithm, wrappingAlgorithms)
	v.requiredEnum("wrappingKeySpec", in.WrappingKeySpec, wrappingKeySpecs)
}

func validateImportKeyMaterial(v *validator, in *kms.ImportKeyMaterialInput) {
	v.keyID("keyId", in.KeyId)
	v.blob("importToken", in.ImportToken, true, 1, 6144)
	v.blob("encryptedKeyMaterial", in.EncryptedKeyMaterial, true, 1, 6144)
	v.enum("expirationModel", in.ExpirationModel, expirationModels)
	v.enum("importType", in.ImportType, importTypes)
	v.optLength("keyMaterialDescription", in.KeyMaterialDescription, 0, 256)
	v.optLength("keyMaterialId", in.KeyMaterialId, 64, 64)
}

func validateDeleteImportedKeyMaterial(v *validator, in *kms.DeleteImportedKeyMaterialInput) {
	v.keyID("keyId", in.KeyId)
	v.optLength("keyMaterialId", in.KeyMaterialId, 64, 64)
}

type getParametersForImportResponse struct {
	KeyId             string
	ImportToken       []byte
	PublicKey         []byte
	ParametersValidTo epoch
}

func wireGetParametersForImport(o *kms.GetParametersForImportOutput) any {
	return getParametersForImportResponse{o.KeyId, o.ImportToken, o.PublicKey, epoch(o.ParametersValidTo)}
}
