package config

import (
	"bytes"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzConfigFile feeds arbitrary bytes to the configuration file parser.
// Seeds: testdata/fuzz/FuzzConfigFile (every section, YAML anchors, tags,
// merge keys, several documents). It must never panic, nor take time or
// memory out of proportion to the file (YAML aliases in policy documents),
// and a file it accepts must round trip: the configuration written back
// as YAML parses to one that writes the same YAML, and validates alike.
func FuzzConfigFile(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		c := Defaults()
		if err := decodeStrict(b, &c); err != nil {
			return
		}
		valid := c.Validate()
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("accepted configuration does not encode: %v", err)
		}
		c2 := Defaults()
		if err := decodeStrict(out, &c2); err != nil {
			t.Fatalf("re-encoded configuration does not parse: %v\n%s", err, out)
		}
		out2, err := yaml.Marshal(c2)
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("round trip changed the configuration (%v):\n%s\nthen\n%s", err, out, out2)
		}
		if valid2 := c2.Validate(); (valid == nil) != (valid2 == nil) {
			t.Fatalf("validation differs after a round trip: %v, then %v", valid, valid2)
		}
	})
}
