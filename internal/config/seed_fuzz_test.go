package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// seedMaterials returns the material strings a seed file gives (keys[*].
// material.base64, hex and pem), read loosely, whatever else is wrong
// with the file.
func seedMaterials(b []byte) []string {
	var loose struct {
		Keys []struct {
			Material map[string]any `yaml:"material"`
		} `yaml:"keys"`
	}
	yaml.Unmarshal(b, &loose) // partial is fine: what it could read
	var ms []string
	for _, k := range loose.Keys {
		for _, f := range []string{"base64", "hex", "pem"} {
			if s, ok := k.Material[f].(string); ok {
				ms = append(ms, s)
			}
		}
	}
	return ms
}

// FuzzParseSeed feeds arbitrary bytes to the seed file parser (kmsd serve
// --seed; the seed: section of the configuration file goes through
// FuzzConfigFile, whose corpus has seed sections too). Seeds:
// testdata/fuzz/FuzzParseSeed. It must never panic; an error never shows
// key material; a seed it accepts is valid, writes out (YAML) with its key
// material redacted, and what it writes parses to a seed that writes the
// same.
func FuzzParseSeed(f *testing.F) {
	path := filepath.Join(f.TempDir(), "seed.yaml")
	// A private file: a seed holding key material must be one.
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		materials := seedMaterials(b)
		s, err := ParseSeed(b, path)
		if err != nil {
			for _, m := range materials {
				// Only a value that the input holds once, as material:
				// the same text elsewhere (an alias, an id) may be shown.
				if len(m) >= 8 && bytes.Count(b, []byte(m)) == 1 && strings.Contains(err.Error(), m) {
					t.Fatalf("the error shows key material %q: %v", m, err)
				}
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("accepted a seed that does not validate: %v", err)
		}
		out, err := yaml.Marshal(s)
		if err != nil {
			t.Fatalf("accepted seed does not encode: %v", err)
		}
		for i, k := range s.Keys {
			if m := k.Material; m != nil {
				for _, v := range []Secret{m.Base64, m.Hex, m.PEM} {
					if v != "" && fmt.Sprint(v) != redacted {
						t.Fatalf("key %d: material shown as %q", i, fmt.Sprint(v))
					}
				}
			}
		}
		var written struct {
			Keys []struct {
				Material map[string]any `yaml:"material"`
			} `yaml:"keys"`
		}
		if err := yaml.Unmarshal(out, &written); err != nil {
			t.Fatal(err)
		}
		for i, k := range written.Keys {
			for _, f := range []string{"base64", "hex", "pem"} {
				if v, ok := k.Material[f]; ok && v != "" && v != redacted {
					t.Fatalf("key %d: material %s written as %q", i, f, v)
				}
			}
		}
		s2, err := ParseSeed(out, path)
		if err != nil {
			t.Fatalf("the written seed does not parse: %v\n%s", err, out)
		}
		out2, err := yaml.Marshal(s2)
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("round trip changed the seed (%v):\n%s\nthen\n%s", err, out, out2)
		}
	})
}

// FuzzAdminCredentials feeds arbitrary bytes to the parser of the admin
// credentials file (admin_credentials_file, an AWS shared credentials
// file). Seeds: testdata/fuzz/FuzzAdminCredentials. It must never panic;
// an error never shows the secret; what it accepts is an access key id
// and a secret, neither empty nor padded, which read back the same from a
// file that gives just them.
func FuzzAdminCredentials(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		id, secret, err := parseAdminCredentials(b, "creds")
		if err != nil {
			for _, line := range strings.Split(string(b), "\n") {
				k, v, ok := strings.Cut(line, "=")
				v = strings.TrimSpace(v)
				if ok && strings.TrimSpace(k) == "aws_secret_access_key" && len(v) >= 8 && bytes.Count(b, []byte(v)) == 1 && strings.Contains(err.Error(), v) {
					t.Fatalf("the error shows the secret %q: %v", v, err)
				}
			}
			return
		}
		if id == "" || secret == "" || id != strings.TrimSpace(id) || secret.Reveal() != strings.TrimSpace(secret.Reveal()) {
			t.Fatalf("accepted id %q, secret of %d bytes: empty or padded", id, len(secret))
		}
		again := fmt.Sprintf("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n", id, secret.Reveal())
		id2, secret2, err := parseAdminCredentials([]byte(again), "creds")
		if err != nil || id2 != id || secret2 != secret {
			t.Fatalf("read back as %q (%v), want %q and the same secret", id2, err, id)
		}
	})
}
