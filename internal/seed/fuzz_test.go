package seed

import (
	"bytes"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/kmsd/kmsd/internal/config"
)

var lowerUUIDRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// FuzzFromLocalKMS feeds arbitrary bytes to the local-kms seed converter:
// kmsd serve --seed takes a local-kms seed file as it is, and kmsd import
// local-kms converts one, so its content is untrusted input. Seeds:
// testdata/fuzz/FuzzFromLocalKMS (every kind of key, aliases, rotations).
// It must never panic, and what it writes is a seed kmsd reads: kmsd's
// shape (no unknown member), every key with a lowercase UUID of its own,
// each material in one form that kmsd imports (64 hex digits, or a PEM
// private key), and nothing that Validate refuses but alias names, which
// are carried over as local-kms had them.
func FuzzFromLocalKMS(f *testing.F) {
	f.Add([]byte("Keys:\n  Symmetric:\n    Aes:\n      - Metadata: {KeyId: 6F2A0F1D-7A3C-4B59-9A43-3F1C2B7D8E90, Origin: EXTERNAL}\n"))
	f.Add([]byte("Aliases:\n  - {AliasName: alias/x, TargetKeyId: arn:aws:kms:us-east-1:111122223333:key/6f2a0f1d-7a3c-4b59-9a43-3f1c2b7d8e90}\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		out, _, err := FromLocalKMS(src)
		if err != nil {
			if out != nil {
				t.Fatalf("output with the error %v", err)
			}
			return
		}
		var s config.Seed
		d := yaml.NewDecoder(bytes.NewReader(out))
		d.KnownFields(true)
		if err := d.Decode(&s); err != nil {
			t.Fatalf("the converted seed does not parse as kmsd's: %v\n%s", err, out)
		}
		ids := map[string]bool{}
		for _, k := range s.Keys {
			if !lowerUUIDRE.MatchString(k.ID) || ids[k.ID] {
				t.Fatalf("key id %q: not a lowercase UUID, or twice", k.ID)
			}
			ids[k.ID] = true
			if m := k.Material; m != nil {
				switch {
				case m.Hex != "" && m.PEM == "" && m.Base64 == "" && m.File == "":
					if b, err := hex.DecodeString(m.Hex.Reveal()); err != nil || len(b) != 32 {
						t.Fatalf("key %s: material hex is not a 256-bit key", k.ID)
					}
				case m.PEM != "" && m.Hex == "" && m.Base64 == "" && m.File == "":
					der, err := PrivateKeyDER([]byte(m.PEM.Reveal()))
					if err != nil {
						t.Fatalf("key %s: material PEM: %v", k.ID, err)
					}
					clear(der)
				default:
					t.Fatalf("key %s: material not in exactly one form", k.ID)
				}
			}
		}
		if err := s.Validate(); err != nil && !strings.Contains(err.Error(), "alias") {
			t.Fatalf("the converted seed does not validate: %v\n%s", err, out)
		}
	})
}
