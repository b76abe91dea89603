package envelope

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// reservedPrefix starts the encryption context keys that belong to the
// AWS Encryption SDK itself; callers may not set them.
const reservedPrefix = "aws-crypto-"

// publicKeyContextKey holds the base64 compressed ECDSA verification key of a
// signed message.
const publicKeyContextKey = "aws-crypto-public-key"

// maxUint16 bounds every length and count field of the format.
const maxUint16 = 1<<16 - 1

// serializeContext encodes an encryption context as the specification's
// serialization: empty for an empty context, otherwise a pair count followed
// by the pairs sorted by key (Go compares strings bytewise, which is the
// required order of the UTF-8 encodings), each key and value length-prefixed.
func serializeContext(ec map[string]string) ([]byte, error) {
	if len(ec) == 0 {
		return nil, nil
	}
	if len(ec) > maxUint16 {
		return nil, fmt.Errorf("encryption context has %d pairs, at most %d fit", len(ec), maxUint16)
	}
	keys := slices.Sorted(maps.Keys(ec))
	out := binary.BigEndian.AppendUint16(nil, uint16(len(keys)))
	for _, k := range keys {
		v := ec[k]
		for _, s := range [2]string{k, v} {
			if !utf8.ValidString(s) {
				return nil, fmt.Errorf("encryption context %q is not valid UTF-8", s)
			}
			if len(s) > maxUint16 {
				return nil, fmt.Errorf("encryption context entry of %d bytes, at most %d fit", len(s), maxUint16)
			}
			out = binary.BigEndian.AppendUint16(out, uint16(len(s)))
			out = append(out, s...)
		}
	}
	return out, nil
}

// parseContext decodes a serialized encryption context and insists on the
// canonical form: a non-zero count, keys strictly ascending (so no
// duplicates), valid UTF-8 and no bytes left over. Anything else could be
// read differently by another implementation.
func parseContext(b []byte) (map[string]string, error) {
	ec := map[string]string{}
	if len(b) == 0 {
		return ec, nil
	}
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: encryption context: short pair count", ErrMalformed)
	}
	n := int(binary.BigEndian.Uint16(b))
	if n == 0 {
		return nil, fmt.Errorf("%w: encryption context: pair count 0 in a non-empty context", ErrMalformed)
	}
	b = b[2:]
	prev := ""
	for i := range n {
		var kv [2]string
		for j := range kv {
			if len(b) < 2 {
				return nil, fmt.Errorf("%w: encryption context pair %d: short length", ErrMalformed, i+1)
			}
			l := int(binary.BigEndian.Uint16(b))
			if len(b)-2 < l {
				return nil, fmt.Errorf("%w: encryption context pair %d: length %d past the end", ErrMalformed, i+1, l)
			}
			kv[j] = string(b[2 : 2+l])
			if !utf8.ValidString(kv[j]) {
				return nil, fmt.Errorf("%w: encryption context pair %d: not valid UTF-8", ErrMalformed, i+1)
			}
			b = b[2+l:]
		}
		if i > 0 && kv[0] <= prev {
			return nil, fmt.Errorf("%w: encryption context keys not in strictly ascending order at %q", ErrMalformed, kv[0])
		}
		prev = kv[0]
		ec[kv[0]] = kv[1]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: encryption context: %d bytes after the last pair", ErrMalformed, len(b))
	}
	return ec, nil
}

// checkCallerContext refuses encryption context keys in the reserved
// namespace: the SDK adds aws-crypto-public-key itself.
func checkCallerContext(ec map[string]string) error {
	for k := range ec {
		if strings.HasPrefix(k, reservedPrefix) {
			return fmt.Errorf("encryption context key %q uses the reserved prefix %q", k, reservedPrefix)
		}
	}
	return nil
}

// filterContext returns the pairs of ec whose keys are in keys.
func filterContext(ec map[string]string, keys []string) map[string]string {
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		if v, ok := ec[k]; ok {
			out[k] = v
		}
	}
	return out
}

// withoutKeys returns ec without the pairs whose keys are in keys.
func withoutKeys(ec map[string]string, keys []string) map[string]string {
	out := maps.Clone(ec)
	if out == nil {
		out = map[string]string{}
	}
	for _, k := range keys {
		delete(out, k)
	}
	return out
}
