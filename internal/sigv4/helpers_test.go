package sigv4

import (
	"context"
	"fmt"

	"github.com/kmsd/kmsd/internal/awserr"
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

// Temporary credentials of the test SessionLookup: testSessionToken is
// valid with testSessionKey, testExpiredToken has expired.
const (
	testSessionKey    = "ASIAEXAMPLESESSION01"
	testSessionSecret = "sessionsecretsessionsecretsessionsecret1"
	testSessionToken  = "session-token-1"
	testExpiredToken  = "session-token-expired"
	// testSessionToken2 is valid too, with the same secret.
	testSessionToken2 = "session-token-2"
)

// withSessions gives a Verifier a SessionLookup that knows one session.
func withSessions(v *Verifier) {
	v.SessionLookup = func(_ context.Context, id, token string) ([]byte, error) {
		switch {
		case id == testSessionKey && (token == testSessionToken || token == testSessionToken2):
			return []byte(testSessionSecret), nil
		case id == testSessionKey && token == testExpiredToken:
			return nil, awserr.New(awserr.ExpiredToken, "The security token included in the request is expired")
		}
		return nil, fmt.Errorf("access key %q with this token: %w", id, ErrUnknownAccessKey)
	}
}
