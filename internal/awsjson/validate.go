package awsjson

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/kms"
)

// validator collects the model-constraint violations of one request, so
// that the client gets all of them in one ValidationException, as from AWS.
type validator struct {
	vs []awserr.Violation
}

func (v *validator) add(field, value string, constraint string) {
	v.vs = append(v.vs, awserr.Violation{Field: field, Value: value, Constraint: constraint})
}

func (v *validator) err() error {
	if len(v.vs) == 0 {
		return nil
	}
	return awserr.Invalid(v.vs...)
}

// required reports a required string member that is absent (or empty: the
// decoder cannot tell them apart, and both fail the length constraint).
func (v *validator) required(field, s string) bool {
	if s == "" {
		v.vs = append(v.vs, awserr.Violation{Field: field, Null: true, Constraint: "Member must not be null"})
		return false
	}
	return true
}

// length checks the length of a string member in characters.
func (v *validator) length(field, s string, min, max int) {
	n := utf8.RuneCountInString(s)
	switch {
	case n < min:
		v.add(field, s, fmt.Sprintf("Member must have length greater than or equal to %d", min))
	case n > max:
		v.add(field, truncate(s), fmt.Sprintf("Member must have length less than or equal to %d", max))
	}
}

// optLength checks an optional string member: empty means absent.
func (v *validator) optLength(field, s string, min, max int) {
	if s != "" {
		v.length(field, s, min, max)
	}
}

// keyID checks a required KeyId-type member.
func (v *validator) keyID(field, s string) {
	if v.required(field, s) {
		v.length(field, s, 1, 2048)
	}
}

// blob checks a blob member; its value is never echoed.
func (v *validator) blob(field string, b []byte, required bool, min, max int) {
	switch {
	case b == nil && required:
		v.vs = append(v.vs, awserr.Violation{Field: field, Null: true, Constraint: "Member must not be null"})
	case b == nil:
	case len(b) < min:
		v.vs = append(v.vs, awserr.Violation{Field: field, Sensitive: true, Constraint: fmt.Sprintf("Member must have length greater than or equal to %d", min)})
	case len(b) > max:
		v.vs = append(v.vs, awserr.Violation{Field: field, Sensitive: true, Constraint: fmt.Sprintf("Member must have length less than or equal to %d", max)})
	}
}

// intRange checks an optional integer member.
func (v *validator) intRange(field string, n *int32, min, max int32) {
	switch {
	case n == nil:
	case *n < min:
		v.add(field, fmt.Sprint(*n), fmt.Sprintf("Member must have value greater than or equal to %d", min))
	case *n > max:
		v.add(field, fmt.Sprint(*n), fmt.Sprintf("Member must have value less than or equal to %d", max))
	}
}

// enum checks an optional enum member against its value set.
func (v *validator) enum(field, s string, set []string) {
	if s == "" {
		return
	}
	for _, e := range set {
		if s == e {
			return
		}
	}
	v.add(field, truncate(s), "Member must satisfy enum value set: ["+strings.Join(set, ", ")+"]")
}

// requiredEnum checks a required enum member.
func (v *validator) requiredEnum(field, s string, set []string) {
	if v.required(field, s) {
		v.enum(field, s, set)
	}
}

// pattern checks an optional string member against a regular expression.
func (v *validator) pattern(field, s string, re *regexp.Regexp) {
	if s != "" && !re.MatchString(s) {
		v.add(field, truncate(s), "Member must satisfy regular expression pattern: "+re.String())
	}
}

func (v *validator) grantTokens(ts []string) {
	if len(ts) > 10 {
		v.add("grantTokens", fmt.Sprintf("%d items", len(ts)), "Member must have length less than or equal to 10")
	}
	for i, t := range ts {
		v.length(fmt.Sprintf("grantTokens.%d.member", i+1), t, 1, 8192)
	}
}

func (v *validator) tags(ts []kms.Tag) {
	for i, t := range ts {
		v.length(fmt.Sprintf("tags.%d.member.tagKey", i+1), t.TagKey, 1, 128)
		v.length(fmt.Sprintf("tags.%d.member.tagValue", i+1), t.TagValue, 0, 256)
	}
}

func (v *validator) list(l *int32, marker string) {
	v.intRange("limit", l, 1, 1000)
	if marker != "" {
		v.length("marker", marker, 1, 1024)
		v.pattern("marker", marker, markerRE)
	}
}

// truncate keeps echoed values short.
func truncate(s string) string {
	if len(s) > 128 {
		return s[:128] + "..."
	}
	return s
}

// Value sets and patterns of the AWS KMS model.
var (
	keySpecs = []string{"RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521",
		"ECC_SECG_P256K1", "SYMMETRIC_DEFAULT", "HMAC_224", "HMAC_256", "HMAC_384", "HMAC_512", "SM2",
		"ML_DSA_44", "ML_DSA_65", "ML_DSA_87", "ECC_NIST_EDWARDS25519", "ML_KEM_512", "ML_KEM_768", "ML_KEM_1024"}
	customerMasterKeySpecs = []string{"RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384",
		"ECC_NIST_P521", "ECC_SECG_P256K1", "SYMMETRIC_DEFAULT", "HMAC_224", "HMAC_256", "HMAC_384", "HMAC_512", "SM2"}
	keyUsages            = []string{"SIGN_VERIFY", "ENCRYPT_DECRYPT", "GENERATE_VERIFY_MAC", "KEY_AGREEMENT", "ENCAPSULATE_DECAPSULATE"}
	origins              = []string{"AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"}
	encryptionAlgorithms = []string{"SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE"}
	dataKeySpecs         = []string{"AES_256", "AES_128"}
	dataKeyPairSpecs     = []string{"RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521",
		"ECC_SECG_P256K1", "SM2", "ECC_NIST_EDWARDS25519", "ML_KEM_512", "ML_KEM_768", "ML_KEM_1024"}
	signingAlgorithms = []string{"RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512",
		"RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512",
		"ECDSA_SHA_256", "ECDSA_SHA_384", "ECDSA_SHA_512", "SM2DSA", "ML_DSA_SHAKE_256", "ED25519_SHA_512", "ED25519_PH_SHA_512"}
	messageTypes            = []string{"RAW", "DIGEST", "EXTERNAL_MU"}
	macAlgorithms           = []string{"HMAC_SHA_224", "HMAC_SHA_256", "HMAC_SHA_384", "HMAC_SHA_512"}
	keyAgreementAlgorithms  = []string{"ECDH"}
	encapsulationAlgorithms = []string{"ML_KEM"}
	dryRunModifiers         = []string{"IGNORE_CIPHERTEXT"}
	keyEncryptionMechs      = []string{"RSAES_OAEP_SHA_256"}

	aliasNameRE = regexp.MustCompile(`^[a-zA-Z0-9:/_-]+$`)
	markerRE    = regexp.MustCompile(`^[\x{0020}-\x{00FF}]*$`)
	policyRE    = regexp.MustCompile(`^[\x{0009}\x{000A}\x{000D}\x{0020}-\x{00FF}]+$`)
	xksKeyIDRE  = regexp.MustCompile(`^[a-zA-Z0-9-_.]+$`)
	regionRE    = regexp.MustCompile(`^([a-z]+-){2,3}\d+$`)
)

func (v *validator) recipient(r *kms.RecipientInfo) {
	if r == nil {
		return
	}
	v.blob("recipient.attestationDocument", r.AttestationDocument, false, 1, 262144)
	v.enum("recipient.keyEncryptionAlgorithm", r.KeyEncryptionAlgorithm, keyEncryptionMechs)
}

func (v *validator) dryRunModifiers(ms []string) {
	for i, m := range ms {
		v.enum(fmt.Sprintf("dryRunModifiers.%d.member", i+1), m, dryRunModifiers)
	}
}
