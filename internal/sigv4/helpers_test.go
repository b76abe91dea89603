package sigv4

import (
	"context"
	"fmt"
)

// staticLookup serves secrets from a map, as a SecretLookup.
func staticLookup(secrets map[string]string) SecretLookup {
	return func(_ context.Context, id string) ([]byte, error) {
		s, ok := secrets[id]
		if !ok {
			return nil, fmt.Errorf("access key %q: %w", id, ErrUnknownAccessKey)
		}
		return []byte(s), nil
	}
}
