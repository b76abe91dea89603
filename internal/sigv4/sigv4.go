// Package sigv4 verifies requests signed with AWS Signature Version 4, header
// form, algorithm AWS4-HMAC-SHA256: the way the AWS SDKs and the AWS CLI sign
// every request they send to AWS KMS.
//
// Verification is a pure function of the request, a secret lookup and a
// clock. A Verifier holds configuration and, optionally, a SigningKeyCache
// (derived signing keys, checked against the secret looked up for every
// request), and is safe for concurrent use.
//
// # Errors
//
// Every rejection is an *awserr.Error carrying the exception name and message
// AWS itself sends, so the server can put it on the wire unchanged:
//
//   - MissingAuthenticationTokenException: no Authorization header.
//   - IncompleteSignatureException: the Authorization header (or the date
//     header it depends on) is malformed or incomplete.
//   - InvalidSignatureException: credential scope for another service,
//     for a Region the verifier does not serve (the message names those it
//     serves) or for another day; request time outside the allowed skew; a
//     required header (Host, the date, any X-Amz-* header present) left
//     unsigned; signature mismatch.
//   - UnrecognizedClientException: unknown access key; a session token
//     (X-Amz-Security-Token) that SessionLookup does not accept for the
//     access key, or any session token when SessionLookup is nil.
//   - ExpiredTokenException (from SessionLookup): temporary credentials
//     past their expiry.
//
// A failure that is the server's fault (a SecretLookup error other than
// ErrUnknownAccessKey, a misconfigured Verifier) is returned as an error that
// wraps both the cause, for the log, and an *awserr.Error, for the client. If
// the cause already carries an *awserr.Error, that one is what errors.As and
// awserr.CodeOf find; otherwise it is InternalFailure.
//
// # What a valid signature proves
//
// The holder of the secret for Result.AccessKeyID signed, at
// Result.SigningTime (within MaxSkew of the verifier's clock): the method,
// the path, the query string, the body and the values of the headers named in
// SignedHeaders. Every X-Amz-* header the request carries is among them
// (X-Amz-Target, the operation, in particular); a request with an unsigned
// one is refused. Nothing else in the request is covered: a caller must treat
// every other header as attacker-controlled. The body is covered by its
// SHA-256 hash, always: "X-Amz-Content-Sha256: UNSIGNED-PAYLOAD", which
// SigV4 allows for S3, is refused.
//
// A valid signature can be replayed by anyone who captured the request until
// the skew window closes; SigV4 has no nonce. TLS is what prevents capture.
//
// # Canonicalization
//
// The canonical request is rebuilt from the request as received, following
// the AWS General Reference ("Create a canonical request for Signature
// Version 4"):
//
//   - URI: r.URL.EscapedPath(), dot segments and empty segments removed (RFC
//     3986 5.2.4, as AWS does for every service but S3), then URI-encoded
//     again. aws-sdk-go-v2 does not normalize, so when normalization changes
//     the path the un-normalized form is accepted too.
//   - Query: pairs decoded, re-encoded per RFC 3986, sorted by name then value.
//   - Headers: only those named in SignedHeaders. "host" is r.Host exactly as
//     received, port included. "content-length" is the header value (net/http
//     keeps it in r.Header for server requests; r.ContentLength is the fallback
//     for requests built in process). Values are trimmed, runs of spaces
//     collapsed to one, repeated headers joined with ",".
package sigv4

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kmsd/kmsd/internal/awsarn"
	"github.com/kmsd/kmsd/internal/awserr"
)

const (
	// algorithm is the only signing algorithm accepted.
	algorithm = "AWS4-HMAC-SHA256"
	// terminator ends every SigV4 credential scope.
	terminator = "aws4_request"
	// amzDateLayout is ISO 8601 basic format, as X-Amz-Date carries it.
	amzDateLayout = "20060102T150405Z"
	// scopeDateLayout is the date element of a credential scope.
	scopeDateLayout = "20060102"
	// defaultMaxSkew is what AWS allows between the signing time and its own
	// clock for most services.
	defaultMaxSkew = 15 * time.Minute
	// unsignedPayload is the X-Amz-Content-Sha256 value by which a client
	// declares that the body is not covered by the signature.
	unsignedPayload = "UNSIGNED-PAYLOAD"
)

// ErrUnknownAccessKey is wrapped by the error a SecretLookup returns for an
// access key id it does not know. Verify turns it into
// UnrecognizedClientException; any other lookup error is a server fault.
var ErrUnknownAccessKey = errors.New("sigv4: unknown access key")

// SecretLookup returns the secret access key for an access key id. It returns
// an error wrapping ErrUnknownAccessKey when the id is unknown.
//
// Verify only reads the returned slice and never keeps or modifies it, so the
// lookup may return a slice it owns (and zero it later as it sees fit).
type SecretLookup func(ctx context.Context, accessKeyID string) (secret []byte, err error)

// SessionLookup returns the secret access key of temporary credentials:
// an access key id with the session token the request carries
// (X-Amz-Security-Token). It returns an error wrapping ErrUnknownAccessKey
// when the pair is not valid, and may return an *awserr.Error (such as
// ExpiredTokenException) that Verify passes on. The same ownership rules as
// for SecretLookup apply to the returned slice.
type SessionLookup func(ctx context.Context, accessKeyID, sessionToken string) (secret []byte, err error)

// Verifier checks SigV4 signatures for one service in a set of Regions.
// The zero value is not usable: Service, Regions and Lookup are required.
type Verifier struct {
	Service string           // signing name the credential scope must carry, "kms"
	Regions []string         // the Regions accepted in the credential scope
	Lookup  SecretLookup     // resolves access key ids to secrets
	Now     func() time.Time // injected clock; nil means time.Now
	MaxSkew time.Duration    // allowed |now - signing time|; 0 means 15 minutes

	// SessionLookup resolves temporary credentials (requests with a
	// session token); nil refuses every session token.
	SessionLookup SessionLookup

	// Keys, if set, caches the derived signing keys (see
	// SigningKeyCache); nil derives the key on every request.
	Keys *SigningKeyCache
}

// Result is what a verified request proves.
type Result struct {
	AccessKeyID string    // the access key whose secret signed the request
	Region      string    // Region of the credential scope (one of Verifier.Regions)
	Partition   string    // the partition of Region (awsarn.PartitionOf)
	Service     string    // service of the credential scope (always Verifier.Service)
	SigningTime time.Time // the request date the client signed, UTC
	// SessionToken is the session token of temporary credentials that
	// SessionLookup accepted, "" for long-term credentials.
	SessionToken string
}

// Verify checks the signature of r, whose body the caller has already read
// fully into body (r.Body is not read).
//
// On success it returns what the signature proves. On failure the error is
// (or wraps) an *awserr.Error ready for the wire; see the package comment.
func (v *Verifier) Verify(ctx context.Context, r *http.Request, body []byte) (Result, error) {
	if err := v.validate(); err != nil {
		return Result{}, err
	}
	if r == nil || r.URL == nil {
		// net/http never passes such a request; a caller bug, not input.
		return Result{}, internalError(errors.New("sigv4: Verify called with a nil request or URL"))
	}
	hdr := newHeaderReader(r)

	authz, err := authorizationValue(hdr)
	if err != nil {
		return Result{}, err
	}
	date, err := findRequestDate(hdr)
	if err != nil {
		return Result{}, err
	}
	auth, err := parseAuthorization(authz, date.name != "")
	if err != nil {
		return Result{}, err
	}
	if err := checkRequiredSignedHeaders(auth.signedHeaders, date.name); err != nil {
		return Result{}, err
	}
	if err := checkAmzHeadersSigned(r, auth.signedHeaders); err != nil {
		return Result{}, err
	}
	signingTime, err := date.parse()
	if err != nil {
		return Result{}, err
	}
	amzDate := signingTime.Format(amzDateLayout)
	if err := v.checkScope(auth, signingTime, date.value); err != nil {
		return Result{}, err
	}
	if err := v.checkSkew(signingTime); err != nil {
		return Result{}, err
	}
	token, err := sessionToken(r, hdr)
	if err != nil {
		return Result{}, err
	}
	if token != "" && v.SessionLookup == nil {
		// No temporary credentials are issued here, so every session
		// token is one we did not issue. AWS answers an invalid token so.
		return Result{}, errUnrecognizedClient()
	}

	// Everything that does not need the secret is checked before the lookup,
	// so malformed or stale requests cost no store access.
	suffix, err := canonicalSuffix(r, hdr, auth, body)
	if err != nil {
		return Result{}, err
	}
	uris := canonicalURIs(r.URL.EscapedPath())
	stringsToSign := make([][]byte, 0, len(uris))
	for _, uri := range uris {
		stringsToSign = append(stringsToSign, stringToSign(r.Method, uri, suffix, amzDate, auth.scope()))
	}

	var secret []byte
	if token != "" {
		// The token is covered by the signature (a signed header, or part
		// of the canonical query), and the lookup accepts it only with the
		// access key id it was issued with.
		secret, err = v.SessionLookup(ctx, auth.accessKeyID, token)
	} else {
		secret, err = v.Lookup(ctx, auth.accessKeyID)
	}
	if err != nil {
		if errors.Is(err, ErrUnknownAccessKey) {
			return Result{}, errUnrecognizedClient()
		}
		// Not the client's fault: keep the cause for the log. The access key
		// id is not secret; the secret is never part of an error.
		return Result{}, internalError(fmt.Errorf("sigv4: looking up secret for access key %q: %w", echo(auth.accessKeyID), err))
	}
	var signingKey, expected [sha256.Size]byte
	v.Keys.signingKey(&signingKey, secret, auth.accessKeyID, auth.date, auth.region, auth.service)
	// The stack copies are zeroed however Verify returns.
	defer clear(signingKey[:])
	defer clear(expected[:])

	for _, sts := range stringsToSign {
		hmacSHA256To(&expected, signingKey[:], sts)
		// hmac.Equal runs in time independent of where the two MACs differ.
		// A plain bytes.Equal would let a client learn, byte by byte, how much
		// of a forged signature is right by timing the rejection.
		if hmac.Equal(expected[:], auth.signature) {
			return Result{
				AccessKeyID:  auth.accessKeyID,
				Region:       auth.region,
				Partition:    awsarn.PartitionOf(auth.region),
				Service:      auth.service,
				SigningTime:  signingTime,
				SessionToken: token,
			}, nil
		}
	}
	return Result{}, errSignatureMismatch()
}

// sessionToken returns the session token of the request: the
// X-Amz-Security-Token header or query parameter, "" when it has neither.
// Two tokens (two headers, two parameters, or one of each that differ) are
// refused: which one was meant would be ambiguous.
func sessionToken(r *http.Request, hdr headerReader) (string, error) {
	var tokens []string
	tokens = append(tokens, hdr.values("x-amz-security-token")...)
	if r.URL.RawQuery != "" {
		tokens = append(tokens, r.URL.Query()["X-Amz-Security-Token"]...)
	}
	switch {
	case len(tokens) == 0:
		return "", nil
	case len(tokens) == 2 && tokens[0] == tokens[1] || len(tokens) == 1:
		if strings.TrimSpace(tokens[0]) == "" {
			return "", errUnrecognizedClient()
		}
		return strings.TrimSpace(tokens[0]), nil
	}
	return "", awserr.New(awserr.IncompleteSignature, "Request must contain at most one X-Amz-Security-Token.")
}

// validate reports a misconfigured Verifier as a server fault.
func (v *Verifier) validate() error {
	var problem string
	switch {
	case v == nil:
		problem = "nil Verifier"
	case v.Service == "":
		problem = "Service is empty"
	case len(v.Regions) == 0:
		problem = "Regions is empty"
	case v.Lookup == nil:
		problem = "Lookup is nil"
	case v.MaxSkew < 0:
		problem = "MaxSkew is negative"
	default:
		return nil
	}
	return internalError(fmt.Errorf("sigv4: misconfigured Verifier: %s", problem))
}

func (v *Verifier) now() time.Time {
	if v.Now == nil {
		return time.Now()
	}
	return v.Now()
}

func (v *Verifier) maxSkew() time.Duration {
	if v.MaxSkew == 0 {
		return defaultMaxSkew
	}
	return v.MaxSkew
}

// checkScope compares the credential scope with this verifier and with the
// request date. dateValue is the date header as received, for the message.
func (v *Verifier) checkScope(a authorization, signingTime time.Time, dateValue string) error {
	if a.terminator != terminator {
		return awserr.Newf(awserr.InvalidSignature,
			"Credential should be scoped with a valid terminator: '%s', not '%s'. ", terminator, echo(a.terminator))
	}
	if a.service != v.Service {
		return awserr.Newf(awserr.InvalidSignature,
			"Credential should be scoped to correct service: '%s'. ", v.Service)
	}
	if !slices.Contains(v.Regions, a.region) {
		// AWS's message, and the Regions this deployment serves: the
		// client most likely has a Region configured that kmsd does not.
		return awserr.Newf(awserr.InvalidSignature, "Credential should be scoped to a valid region. Region '%s' is not served; this kmsd serves %s.",
			echo(a.region), strings.Join(v.Regions, ", "))
	}
	var b [len(scopeDateLayout)]byte
	if day := signingTime.AppendFormat(b[:0], scopeDateLayout); a.date != string(day) {
		return awserr.Newf(awserr.InvalidSignature,
			"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'.",
			echo(a.date), day, echo(dateValue))
	}
	return nil
}

// checkSkew rejects a request signed too far from now, in either direction.
// Exactly MaxSkew away is still accepted.
func (v *Verifier) checkSkew(signingTime time.Time) error {
	now := v.now().UTC()
	skew := v.maxSkew()
	if earliest := now.Add(-skew); signingTime.Before(earliest) {
		return awserr.Newf(awserr.InvalidSignature, "Signature expired: %s is now earlier than %s (%s - %s.)",
			signingTime.Format(amzDateLayout), earliest.Format(amzDateLayout), now.Format(amzDateLayout), formatSkew(skew))
	}
	if latest := now.Add(skew); signingTime.After(latest) {
		return awserr.Newf(awserr.InvalidSignature, "Signature not yet current: %s is still later than %s (%s + %s.)",
			signingTime.Format(amzDateLayout), latest.Format(amzDateLayout), now.Format(amzDateLayout), formatSkew(skew))
	}
	return nil
}

// formatSkew renders the skew as AWS does ("15 min"), falling back to Go's
// duration syntax for skews that are not whole minutes.
func formatSkew(d time.Duration) string {
	if d%time.Minute == 0 {
		return strconv.FormatInt(int64(d/time.Minute), 10) + " min"
	}
	return d.String()
}

// authorizationValue returns the single Authorization header of the request.
func authorizationValue(hdr headerReader) (string, error) {
	values := hdr.values("authorization")
	switch {
	case len(values) == 0, len(values) == 1 && strings.TrimSpace(values[0]) == "":
		return "", awserr.New(awserr.MissingAuthenticationTok, "Missing Authentication Token")
	case len(values) > 1:
		// Two headers would leave it ambiguous which one was verified.
		return "", awserr.New(awserr.IncompleteSignature, "Request must contain exactly one Authorization header.")
	}
	return values[0], nil
}

// requestDate is the header that carries the signing time: X-Amz-Date when
// present (it takes precedence), else Date.
type requestDate struct {
	name  string // "x-amz-date", "date", or "" when the request has neither
	value string // as received
}

func findRequestDate(hdr headerReader) (requestDate, error) {
	for _, name := range []string{"x-amz-date", "date"} {
		values := hdr.values(name)
		switch len(values) {
		case 0:
			continue
		case 1:
			return requestDate{name: name, value: values[0]}, nil
		default:
			return requestDate{}, awserr.Newf(awserr.IncompleteSignature,
				"Request must contain at most one '%s' header.", displayName(name))
		}
	}
	return requestDate{}, nil
}

// parse returns the signing time in UTC. X-Amz-Date must be exactly ISO 8601
// basic format; Date may be any HTTP date format.
func (d requestDate) parse() (time.Time, error) {
	v := strings.TrimSpace(d.value)
	if d.name == "x-amz-date" {
		t, err := time.Parse(amzDateLayout, v)
		// time.Parse accepts some variations (for example single-digit
		// fields in other layouts); the round trip insists on the exact form.
		var b [len(amzDateLayout)]byte // the comparison allocates nothing
		if err != nil || string(t.AppendFormat(b[:0], amzDateLayout)) != v {
			return time.Time{}, awserr.Newf(awserr.IncompleteSignature,
				"Date must be in ISO-8601 'basic format'. Got '%s'. See http://en.wikipedia.org/wiki/ISO_8601", echo(d.value))
		}
		return t, nil
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return time.Time{}, awserr.Newf(awserr.IncompleteSignature,
			"Date header must be an HTTP date (RFC 7231). Got '%s'.", echo(d.value))
	}
	return t.UTC(), nil
}

// checkRequiredSignedHeaders insists that the host and the date the signature
// depends on are signed: without them a signature could be replayed to
// another host or at another time.
func checkRequiredSignedHeaders(signed []string, dateName string) error {
	if !slices.Contains(signed, "host") {
		return awserr.New(awserr.InvalidSignature, "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
	}
	if !slices.Contains(signed, dateName) {
		return awserr.Newf(awserr.InvalidSignature, "'%s' must be a 'SignedHeader' in the AWS Authorization.", displayName(dateName))
	}
	return nil
}

// amzHeaderPrefix starts the names of the headers that carry request
// parameters in the AWS protocols (X-Amz-Target names the operation).
const amzHeaderPrefix = "x-amz-"

// checkAmzHeadersSigned insists that every X-Amz-* header the request carries
// is signed. Such headers carry request parameters: X-Amz-Target names the
// operation, X-Amz-Security-Token the session, X-Amz-Content-Sha256 the
// body's hash. A signature that leaves X-Amz-Target out could be replayed,
// within the skew window, as another operation with the same body
// (Encrypt's body sent as CreateKey). Every AWS SDK and the AWS CLI sign all
// the X-Amz-* headers they send, so this refuses no real client.
//
// The message follows S3's for the same case ("There were headers present in
// the request which were not signed", with HeadersNotSigned listing them);
// the exception is the one KMS uses for every signature problem.
//
// A request may carry thousands of headers (the server allows 64 KiB of
// them) before it is authenticated, so the work stays O(n log n): signed is
// sorted (as parseSignedHeaders insists) and searched by bisection.
func checkAmzHeadersSigned(r *http.Request, signed []string) error {
	var unsigned []string
	for key := range r.Header {
		if len(key) < len(amzHeaderPrefix) || !strings.EqualFold(key[:len(amzHeaderPrefix)], amzHeaderPrefix) {
			continue
		}
		name := strings.ToLower(key)
		if _, found := slices.BinarySearch(signed, name); !found {
			unsigned = append(unsigned, name)
		}
	}
	if len(unsigned) == 0 {
		return nil
	}
	// Map order is random, and a request built in process may carry one
	// name in several cases; the message must be neither.
	slices.Sort(unsigned)
	unsigned = slices.Compact(unsigned)
	return awserr.Newf(awserr.InvalidSignature,
		"There were headers present in the request which were not signed. HeadersNotSigned: %s",
		echo(strings.Join(unsigned, ", ")))
}

// displayName spells a lowercase header name the way AWS messages do.
func displayName(name string) string {
	if name == "x-amz-date" {
		return "X-Amz-Date"
	}
	return http.CanonicalHeaderKey(name)
}

// stringToSign assembles the canonical request from its parts, hashes it and
// returns the SigV4 string to sign.
func stringToSign(method, uri string, suffix []byte, amzDate, scope string) []byte {
	h := sha256.New()
	h.Write([]byte(method))
	h.Write([]byte{'\n'})
	h.Write([]byte(uri))
	h.Write([]byte{'\n'})
	h.Write(suffix)
	var sum [sha256.Size]byte

	b := make([]byte, 0, len(algorithm)+1+len(amzDate)+1+len(scope)+1+2*sha256.Size)
	b = append(b, algorithm...)
	b = append(b, '\n')
	b = append(b, amzDate...)
	b = append(b, '\n')
	b = append(b, scope...)
	b = append(b, '\n')
	return hex.AppendEncode(b, h.Sum(sum[:0]))
}

// deriveSigningKey computes the SigV4 signing key for one day, region and
// service. Intermediate keys are zeroed; the caller zeroes the result.
// secret belongs to the caller and is only read.
func deriveSigningKey(secret []byte, date, region, service string) []byte {
	k := make([]byte, 0, 4+len(secret))
	k = append(k, "AWS4"...)
	k = append(k, secret...)
	kDate := hmacSHA256(k, []byte(date))
	clear(k)
	kRegion := hmacSHA256(kDate, []byte(region))
	clear(kDate)
	kService := hmacSHA256(kRegion, []byte(service))
	clear(kRegion)
	kSigning := hmacSHA256(kService, []byte(terminator))
	clear(kService)
	return kSigning
}

func hmacSHA256(key, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil)
}
