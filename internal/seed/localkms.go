package seed

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The seed file of local-kms (github.com/nsmithuk/local-kms), as its
// README documents it:
//
//	Keys:
//	  Symmetric:
//	    Aes:
//	      - Metadata: {KeyId: UUID, Description: TEXT, Origin: EXTERNAL}
//	        BackingKeys: [HEX, …]     # 256-bit keys; more than one: rotations, the last current
//	        NextKeyRotation: DATE
//	  Asymmetric:
//	    Rsa: | Ecc:
//	      - Metadata: {KeyId: UUID, KeyUsage: SIGN_VERIFY|ENCRYPT_DECRYPT, Description: TEXT}
//	        PrivateKeyPem: PEM        # the key size or curve gives the key spec
//	Aliases:
//	  - {AliasName: alias/NAME, TargetKeyId: UUID}
type localKMSFile struct {
	Keys struct {
		Symmetric struct {
			Aes []localKMSAes `yaml:"Aes"`
		} `yaml:"Symmetric"`
		Asymmetric struct {
			Rsa []localKMSAsym `yaml:"Rsa"`
			Ecc []localKMSAsym `yaml:"Ecc"`
		} `yaml:"Asymmetric"`
	} `yaml:"Keys"`
	Aliases []struct {
		AliasName   string `yaml:"AliasName"`
		TargetKeyId string `yaml:"TargetKeyId"`
	} `yaml:"Aliases"`
}

type localKMSMetadata struct {
	KeyId       string `yaml:"KeyId"`
	Description string `yaml:"Description"`
	Origin      string `yaml:"Origin"`
	KeyUsage    string `yaml:"KeyUsage"`
}

type localKMSAes struct {
	Metadata        localKMSMetadata `yaml:"Metadata"`
	BackingKeys     []string         `yaml:"BackingKeys"`
	NextKeyRotation string           `yaml:"NextKeyRotation"`
}

type localKMSAsym struct {
	Metadata      localKMSMetadata `yaml:"Metadata"`
	PrivateKeyPem string           `yaml:"PrivateKeyPem"`
}

// seedOut is a seed as kmsd import writes it: config.Seed's shape, with
// the material in plain strings (config.Secret would write it redacted).
type seedOut struct {
	Keys []seedKeyOut `yaml:"keys"`
}

type seedKeyOut struct {
	ID          string       `yaml:"id"`
	Spec        string       `yaml:"spec,omitempty"`
	Usage       string       `yaml:"usage,omitempty"`
	Origin      string       `yaml:"origin,omitempty"`
	Description string       `yaml:"description,omitempty"`
	Aliases     []string     `yaml:"aliases,omitempty"`
	Material    *materialOut `yaml:"material,omitempty"`
}

type materialOut struct {
	Hex string `yaml:"hex,omitempty"`
	PEM string `yaml:"pem,omitempty"`
}

var anyUUIDRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// FromLocalKMS converts a local-kms seed file into a kmsd seed file (YAML,
// as kmsd serve --seed reads it), and returns notes on what could not be
// carried over as it was:
//
//   - Every key keeps its id. A key whose material local-kms was given
//     (BackingKeys, PrivateKeyPem) becomes an EXTERNAL key with that
//     material imported, so that it is known as it was; an Aes key with
//     Origin EXTERNAL and no backing key waits in PendingImport.
//   - Of several BackingKeys (rotations) only the last, the current one,
//     is imported: ciphertexts of local-kms do not decrypt in kmsd (the
//     formats differ), so the earlier ones would decrypt nothing, and a
//     kmsd key with imported material does not rotate automatically.
//     NextKeyRotation is dropped for the same reason.
//   - An Rsa or Ecc key's spec comes from its private key (RSA_2048,
//     ECC_NIST_P256, …); its usage defaults to SIGN_VERIFY.
//
// The output holds key material: write it to a private file.
func FromLocalKMS(src []byte) (out []byte, notes []string, err error) {
	var in localKMSFile
	if err := yaml.Unmarshal(src, &in); err != nil {
		return nil, nil, fmt.Errorf("local-kms seed: %w", err)
	}
	var s seedOut
	index := map[string]int{}
	add := func(what string, md localKMSMetadata, k seedKeyOut) error {
		if !anyUUIDRE.MatchString(md.KeyId) {
			return fmt.Errorf("local-kms seed: %s key %q: KeyId is not a UUID", what, md.KeyId)
		}
		k.ID = strings.ToLower(md.KeyId)
		if _, dup := index[k.ID]; dup {
			return fmt.Errorf("local-kms seed: key %s is declared twice", k.ID)
		}
		k.Description = md.Description
		index[k.ID] = len(s.Keys)
		s.Keys = append(s.Keys, k)
		return nil
	}
	for _, a := range in.Keys.Symmetric.Aes {
		k := seedKeyOut{}
		switch n := len(a.BackingKeys); {
		case n > 0:
			last := strings.ToLower(strings.TrimSpace(a.BackingKeys[n-1]))
			if b, err := hex.DecodeString(last); err != nil || len(b) != 32 {
				return nil, nil, fmt.Errorf("local-kms seed: Aes key %s: its last backing key is not 64 hex digits (a 256-bit key)", a.Metadata.KeyId)
			}
			k.Material = &materialOut{Hex: last}
			if n > 1 {
				notes = append(notes, fmt.Sprintf("key %s: %d backing keys (rotations): only the last, current one is imported; ciphertexts of local-kms do not decrypt in kmsd, so the earlier ones would decrypt nothing", a.Metadata.KeyId, n))
			}
		case a.Metadata.Origin == "EXTERNAL":
			k.Origin = "EXTERNAL"
			notes = append(notes, fmt.Sprintf("key %s: Origin EXTERNAL without a backing key: created in PendingImport, as local-kms does", a.Metadata.KeyId))
		default:
			notes = append(notes, fmt.Sprintf("key %s: no backing key: kmsd makes its material", a.Metadata.KeyId))
		}
		if a.NextKeyRotation != "" {
			notes = append(notes, fmt.Sprintf("key %s: NextKeyRotation dropped: a kmsd key with imported material does not rotate automatically (RotateKeyOnDemand it with new imported material)", a.Metadata.KeyId))
		}
		if err := add("Aes", a.Metadata, k); err != nil {
			return nil, nil, err
		}
	}
	for _, group := range []struct {
		what string
		keys []localKMSAsym
	}{{"Rsa", in.Keys.Asymmetric.Rsa}, {"Ecc", in.Keys.Asymmetric.Ecc}} {
		for _, a := range group.keys {
			spec, err := specOfPEM([]byte(a.PrivateKeyPem))
			if err != nil {
				return nil, nil, fmt.Errorf("local-kms seed: %s key %s: %w", group.what, a.Metadata.KeyId, err)
			}
			if (group.what == "Rsa") != strings.HasPrefix(spec, "RSA_") {
				return nil, nil, fmt.Errorf("local-kms seed: %s key %s: its private key is a %s key", group.what, a.Metadata.KeyId, spec)
			}
			usage := a.Metadata.KeyUsage
			if usage == "" {
				usage = "SIGN_VERIFY"
			}
			k := seedKeyOut{Spec: spec, Usage: usage, Material: &materialOut{PEM: strings.TrimSpace(a.PrivateKeyPem) + "\n"}}
			if err := add(group.what, a.Metadata, k); err != nil {
				return nil, nil, err
			}
		}
	}
	for _, al := range in.Aliases {
		target := strings.ToLower(al.TargetKeyId)
		if i := strings.LastIndex(target, ":key/"); i >= 0 {
			target = target[i+len(":key/"):]
		}
		i, ok := index[target]
		if !ok {
			return nil, nil, fmt.Errorf("local-kms seed: alias %s names key %s, which the file does not declare", al.AliasName, al.TargetKeyId)
		}
		s.Keys[i].Aliases = append(s.Keys[i].Aliases, al.AliasName)
	}
	var b bytes.Buffer
	b.WriteString("# kmsd seed converted from a local-kms seed file by kmsd import local-kms.\n# It holds key material: keep it private (mode 0600). Use: kmsd serve --seed FILE\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(s); err != nil {
		return nil, nil, err
	}
	return b.Bytes(), notes, nil
}

// IsLocalKMS reports whether src looks like a local-kms seed file: a YAML
// mapping whose top-level keys are local-kms's (Keys, Aliases), not
// kmsd's (keys).
func IsLocalKMS(src []byte) bool {
	var top map[string]any
	if yaml.Unmarshal(src, &top) != nil || len(top) == 0 {
		return false
	}
	for k := range top {
		if k != "Keys" && k != "Aliases" {
			return false
		}
	}
	return true
}

// specOfPEM returns the KMS key spec of a PEM private key.
func specOfPEM(p []byte) (string, error) {
	der, err := PrivateKeyDER(p)
	if err != nil {
		return "", err
	}
	defer clear(der)
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return "", errors.New("PrivateKeyPem does not parse (kmsd reads RSA keys and NIST P-256, P-384 and P-521 EC keys)")
	}
	switch key := key.(type) {
	case *rsa.PrivateKey:
		switch n := key.N.BitLen(); n {
		case 2048, 3072, 4096:
			return fmt.Sprintf("RSA_%d", n), nil
		default:
			return "", fmt.Errorf("an RSA key of %d bits: KMS keys have 2048, 3072 or 4096", n)
		}
	case *ecdsa.PrivateKey:
		switch key.Curve {
		case elliptic.P256():
			return "ECC_NIST_P256", nil
		case elliptic.P384():
			return "ECC_NIST_P384", nil
		case elliptic.P521():
			return "ECC_NIST_P521", nil
		}
	}
	return "", fmt.Errorf("a %T key is not one KMS imports", key)
}
