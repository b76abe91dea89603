package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kmsd/kmsd/internal/awserr"
)

// DefaultRefusalLogRate is how many refused authentications a second the
// log shows at most.
const DefaultRefusalLogRate = 10

// refusalLog logs the requests that failed authentication, so that an
// operator sees a client with a wrong secret, clock or Region (or someone
// guessing), at the default level but at most limit lines a second: past
// that, refusals are counted, and the count goes out with the next line
// logged. A line names the claimed access key id and the source address,
// never a secret (the signature is not logged either).
type refusalLog struct {
	log   *slog.Logger
	now   func() time.Time
	limit int

	mu         sync.Mutex
	window     time.Time // start of the current one-second window
	logged     int       // lines logged in it
	suppressed int       // refusals not logged since the last line
}

// authFailure reports whether err is a refused authentication: no, a
// malformed or a wrong signature, an unknown access key.
func authFailure(err error) bool {
	switch awserr.CodeOf(err) {
	case awserr.MissingAuthenticationTok, awserr.IncompleteSignature, awserr.InvalidSignature, awserr.UnrecognizedClient:
		return true
	}
	return false
}

// refused logs one refused request, unless the rate limit holds it back.
func (l *refusalLog) refused(ctx context.Context, r *http.Request, err error, served []string) {
	l.mu.Lock()
	now := l.now()
	if now.Sub(l.window) >= time.Second || now.Before(l.window) {
		l.window, l.logged = now, 0
	}
	if l.logged >= l.limit {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	l.logged++
	suppressed := l.suppressed
	l.suppressed = 0
	l.mu.Unlock()

	code := awserr.CodeOf(err)
	var msg string
	var ae *awserr.Error
	if errors.As(err, &ae) {
		msg = ae.Message
	}
	scope := claimedScope(r)
	attrs := []any{"reason", code, "access_key", scope.accessKey, "source", sourceIP(r)}
	if scope.region != "" && !slices.Contains(served, scope.region) && code == awserr.InvalidSignature {
		// The client-facing message is AWS's, which names no Region; the
		// operator's names both.
		msg = "the request is signed for Region " + scope.region + ", but this kmsd serves " + strings.Join(served, ", ")
		attrs = append(attrs, "credential_region", eventName(scope.region), "regions_served", served)
	}
	attrs = append(attrs, "message", truncate(msg, 256))
	if suppressed > 0 {
		attrs = append(attrs, "suppressed", suppressed)
	}
	l.log.WarnContext(ctx, "authentication failed", attrs...)
}

// credentialScope is what a request claims in its Authorization header's
// Credential: proves nothing, helps investigation.
type credentialScope struct {
	accessKey, region string
}

// claimedScope reads the Credential of the Authorization header:
// AKID/date/region/service/aws4_request.
func claimedScope(r *http.Request) credentialScope {
	a := r.Header.Get("Authorization")
	i := strings.Index(a, "Credential=")
	if i < 0 {
		return credentialScope{}
	}
	cred := a[i+len("Credential="):]
	if j := strings.IndexAny(cred, ", "); j >= 0 {
		cred = cred[:j]
	}
	parts := strings.Split(truncate(cred, 256), "/")
	s := credentialScope{accessKey: eventName(truncate(parts[0], 128))}
	if len(parts) >= 3 {
		s.region = truncate(parts[2], 64)
	}
	return s
}
