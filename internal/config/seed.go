package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Seed declares keys (with their aliases, key policy, tags and grants)
// that kmsd serve creates at start, through the KMS service as the admin
// user, audited like any request. It is idempotent: what exists and
// matches is left as it is. See docs/seeding.md.
type Seed struct {
	Keys []SeedKey `yaml:"keys"`
	// BaseDir resolves the relative paths in the seed (policy_file,
	// material.file): the folder of the file the seed came from.
	BaseDir string `yaml:"-"`
	// Source is the file the seed came from, for messages and its mode
	// check (a seed holding key material must be private).
	Source string `yaml:"-"`
}

// SeedKey is one key of a seed. A key is found again on a later start by
// its id when it has one, else by its first alias: it needs one of them.
type SeedKey struct {
	// ID fixes the key id (a UUID such as
	// 1234abcd-12ab-34cd-56ef-1234567890ab); empty: a random one.
	ID string `yaml:"id"`
	// Spec is the KeySpec (default SYMMETRIC_DEFAULT) and Usage the
	// KeyUsage (default: ENCRYPT_DECRYPT, or GENERATE_VERIFY_MAC for HMAC
	// keys; asymmetric keys must name it).
	Spec        string `yaml:"spec"`
	Usage       string `yaml:"usage"`
	Description string `yaml:"description"`
	// Policy is the key policy (JSON); PolicyFile a file holding it.
	// Neither: the default key policy.
	Policy     string            `yaml:"policy"`
	PolicyFile string            `yaml:"policy_file"`
	Tags       map[string]string `yaml:"tags"`
	Aliases    []string          `yaml:"aliases"`
	// Enabled is the key's state; default true.
	Enabled *bool `yaml:"enabled"`
	// Material, if set, is imported: the key has Origin EXTERNAL.
	Material *SeedMaterial `yaml:"material"`
	// Origin is AWS_KMS (the default: kmsd makes the material) or
	// EXTERNAL (the default with material; without, the key waits for
	// its material in PendingImport).
	Origin string      `yaml:"origin"`
	Grants []SeedGrant `yaml:"grants"`
}

// SeedMaterial is key material given by the user: for symmetric keys 32
// bytes, for HMAC keys as many bytes as the hash output, for RSA and ECC
// keys a private key (DER PKCS #8, or PEM: PKCS #8, PKCS #1 or SEC 1).
// Exactly one of its members is set.
type SeedMaterial struct {
	Base64 Secret `yaml:"base64"` // the bytes in standard base64
	Hex    Secret `yaml:"hex"`    // the bytes in hex
	PEM    Secret `yaml:"pem"`    // a PEM private key
	File   string `yaml:"file"`   // a file holding the bytes or a PEM private key (mode 0600)
}

// SeedGrant is a grant on a seeded key, found again by its name.
type SeedGrant struct {
	Name                    string            `yaml:"name"`
	Grantee                 string            `yaml:"grantee"`
	RetiringPrincipal       string            `yaml:"retiring_principal"`
	Operations              []string          `yaml:"operations"`
	EncryptionContextSubset map[string]string `yaml:"encryption_context_subset"`
	EncryptionContextEquals map[string]string `yaml:"encryption_context_equals"`
}

var (
	keyIDRE     = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	aliasNameRE = regexp.MustCompile(`^alias/[a-zA-Z0-9/_-]{1,250}$`)
	grantNameRE = regexp.MustCompile(`^[a-zA-Z0-9:/_-]{1,256}$`)
)

// Name is how messages name the key: its id, its first alias, or its
// place in the seed.
func (k SeedKey) Name(i int) string {
	switch {
	case k.ID != "":
		return "seed key " + k.ID
	case len(k.Aliases) > 0:
		return "seed key " + k.Aliases[0]
	}
	return fmt.Sprintf("seed key #%d", i+1)
}

// Validate checks what can be checked without the service: the key ids,
// alias and grant names, one material source, one way to find each key
// again. The service checks the rest (specs, usages, policies, material)
// when the seed is applied, with AWS's errors.
func (s *Seed) Validate() error {
	ids := map[string]bool{}
	aliases := map[string]bool{}
	for i, k := range s.Keys {
		name := k.Name(i)
		switch {
		case k.ID == "" && len(k.Aliases) == 0:
			return fmt.Errorf("%s: give it an id or an alias, by which a later start finds it again", name)
		case k.ID != "" && !keyIDRE.MatchString(k.ID):
			return fmt.Errorf("%s: id %q is not a key id in UUID form (lowercase), such as 1234abcd-12ab-34cd-56ef-1234567890ab", name, k.ID)
		case k.ID != "" && ids[k.ID]:
			return fmt.Errorf("%s: the id is declared twice", name)
		case k.Origin != "" && k.Origin != "AWS_KMS" && k.Origin != "EXTERNAL":
			return fmt.Errorf("%s: origin %q is not AWS_KMS or EXTERNAL", name, k.Origin)
		case k.Material != nil && k.Origin == "AWS_KMS":
			return fmt.Errorf("%s: a key with material has origin EXTERNAL", name)
		case k.Policy != "" && k.PolicyFile != "":
			return fmt.Errorf("%s: give policy or policy_file, not both", name)
		}
		ids[k.ID] = k.ID != ""
		for _, a := range k.Aliases {
			switch {
			case !aliasNameRE.MatchString(a):
				return fmt.Errorf("%s: alias %q is not an alias name such as alias/my-key", name, a)
			case strings.HasPrefix(a, "alias/aws/"):
				return fmt.Errorf("%s: alias %s: the prefix alias/aws/ is reserved for AWS managed keys", name, a)
			case aliases[a]:
				return fmt.Errorf("%s: alias %s is declared twice", name, a)
			}
			aliases[a] = true
		}
		if m := k.Material; m != nil {
			n := 0
			for _, set := range []bool{m.Base64 != "", m.Hex != "", m.PEM != "", m.File != ""} {
				if set {
					n++
				}
			}
			if n != 1 {
				return fmt.Errorf("%s: material: set exactly one of base64, hex, pem and file", name)
			}
		}
		grants := map[string]bool{}
		for _, g := range k.Grants {
			switch {
			case !grantNameRE.MatchString(g.Name):
				return fmt.Errorf("%s: every grant needs a name (letters, digits, :/_-), by which a later start finds it again; %q is not one", name, g.Name)
			case grants[g.Name]:
				return fmt.Errorf("%s: grant %s is declared twice", name, g.Name)
			case g.Grantee == "":
				return fmt.Errorf("%s: grant %s: grantee (the grantee principal's ARN) is required", name, g.Name)
			case len(g.Operations) == 0:
				return fmt.Errorf("%s: grant %s: operations are required", name, g.Name)
			}
			grants[g.Name] = true
		}
	}
	return nil
}

// HoldsMaterial reports whether the seed holds key material itself
// (rather than naming files that hold it).
func (s *Seed) HoldsMaterial() bool {
	return slices.ContainsFunc(s.Keys, func(k SeedKey) bool {
		return k.Material != nil && k.Material.File == ""
	})
}

// Path resolves a path of the seed against its folder.
func (s *Seed) Path(p string) string {
	if p == "" || filepath.IsAbs(p) || s.BaseDir == "" {
		return p
	}
	return filepath.Join(s.BaseDir, p)
}

// LoadSeed reads a seed file (its top level is the seed: keys: …).
// Unknown keys are an error. A seed file holding key material must not be
// accessible by group or others.
func LoadSeed(path string) (*Seed, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read seed file: %w", err)
	}
	defer clear(b)
	return ParseSeed(b, path)
}

// ParseSeed parses the seed file content b, read from path (which the
// seed's relative paths are relative to, and whose mode is checked when
// the seed holds key material).
func ParseSeed(b []byte, path string) (*Seed, error) {
	var s Seed
	d := yaml.NewDecoder(bytes.NewReader(b))
	d.KnownFields(true)
	if err := d.Decode(&s); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse seed file %s: %w", path, err)
	}
	s.BaseDir, s.Source = filepath.Dir(path), path
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("seed file %s: %w", path, err)
	}
	if s.HoldsMaterial() {
		if err := CheckPrivateFile(path, "seed file (it holds key material)"); err != nil {
			return nil, err
		}
	}
	return &s, nil
}

// CheckPrivateFile refuses a file that group or others may access: one
// holding a secret (key material, an access key's secret).
func CheckPrivateFile(path, what string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s %s has mode %04o, which lets group or others read it; run: chmod 600 %s", what, path, perm, path)
	}
	return nil
}

// ReadAdminCredentials reads the admin access key from an AWS shared
// credentials file: aws_access_key_id and aws_secret_access_key, in its
// [default] profile or in its only profile (or with no profile header).
// The file must not be accessible by group or others. Errors never show
// the secret.
func ReadAdminCredentials(path string) (id string, secret Secret, err error) {
	what := "admin credentials file"
	if err := CheckPrivateFile(path, what); err != nil {
		return "", "", err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", what, err)
	}
	defer clear(b)
	return parseAdminCredentials(b, path)
}

// parseAdminCredentials is ReadAdminCredentials's parser of the file's
// content b, read from path.
func parseAdminCredentials(b []byte, path string) (id string, secret Secret, err error) {
	const what = "admin credentials file"
	profiles := map[string]map[string]string{}
	var order []string
	cur := ""
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
			continue
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			cur = strings.TrimSpace(line[1 : len(line)-1])
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return "", "", fmt.Errorf("%s %s, line %d: not a key = value line", what, path, n+1)
		}
		if profiles[cur] == nil {
			profiles[cur] = map[string]string{}
			order = append(order, cur)
		}
		profiles[cur][strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	var p map[string]string
	switch {
	case profiles["default"] != nil:
		p = profiles["default"]
	case len(order) == 1:
		p = profiles[order[0]]
	default:
		return "", "", fmt.Errorf("%s %s: it must hold one profile, or a [default] one", what, path)
	}
	id, sec := p["aws_access_key_id"], p["aws_secret_access_key"]
	if id == "" || sec == "" {
		return "", "", fmt.Errorf("%s %s: aws_access_key_id and aws_secret_access_key are required", what, path)
	}
	return id, Secret(sec), nil
}
