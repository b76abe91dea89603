package sigv4

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strings"

	"github.com/kmsd/kmsd/internal/awserr"
)

// authorization is a parsed SigV4 Authorization header:
//
//	AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature=<64 hex>
type authorization struct {
	accessKeyID string
	// Credential scope elements, as sent; Verify compares them with its
	// configuration.
	date, region, service, terminator string
	// signedHeaders are the SignedHeaders names: lowercase, sorted, unique.
	signedHeaders []string
	// signedHeadersRaw is the SignedHeaders value exactly as sent; the
	// canonical request repeats it.
	signedHeadersRaw string
	// signature is the decoded Signature value, 32 bytes.
	signature []byte
}

// scope is the credential scope that goes into the string to sign.
func (a authorization) scope() string {
	return a.date + "/" + a.region + "/" + a.service + "/" + a.terminator
}

// Parameter names of the Authorization header, in the order AWS reports
// them missing.
const (
	paramCredential    = "Credential"
	paramSignature     = "Signature"
	paramSignedHeaders = "SignedHeaders"
)

// parseAuthorization parses an Authorization header strictly: the algorithm,
// one or more spaces, then exactly the three parameters Credential,
// SignedHeaders and Signature in any order, separated by commas with optional
// spaces. Unknown, duplicated or empty parameters are rejected rather than
// ignored, so that what is verified is unambiguous.
//
// haveDate tells whether the request carries X-Amz-Date or Date: AWS reports
// a missing date together with missing parameters, in one message.
//
// Every error is an IncompleteSignatureException.
func parseAuthorization(header string, haveDate bool) (authorization, error) {
	header = strings.Trim(header, " \t")
	scheme, rest, _ := strings.Cut(header, " ")
	if scheme != algorithm {
		if strings.HasPrefix(scheme, "AWS4-") || scheme == "AWS" {
			// Another AWS scheme (SigV2, SigV4a): name it.
			return authorization{}, awserr.Newf(awserr.IncompleteSignature,
				"Unsupported AWS 'algorithm': '%s'. Only '%s' is supported.", echo(scheme), algorithm)
		}
		// Not AWS at all (a bearer token, garbage): AWS reports every
		// parameter as missing.
		return authorization{}, errMissingParameters(header, "", "", "", haveDate)
	}

	var params [3]string // Credential, SignedHeaders, Signature
	if rest = strings.Trim(rest, " "); rest != "" {
		var seen [3]bool
		for part := range strings.SplitSeq(rest, ",") {
			name, value, ok := strings.Cut(strings.Trim(part, " "), "=")
			if !ok {
				// AWS does not echo the header here but a hash of it, which
				// lets an operator match a client's log line without the
				// response carrying the header.
				sum := sha256.Sum256([]byte(header))
				return authorization{}, awserr.Newf(awserr.IncompleteSignature,
					"Invalid key=value pair (missing equal-sign) in Authorization header (hashed with SHA-256 and encoded with Base64): '%s'.",
					base64.StdEncoding.EncodeToString(sum[:]))
			}
			var i int
			switch name {
			case paramCredential:
				i = 0
			case paramSignedHeaders:
				i = 1
			case paramSignature:
				i = 2
			default:
				return authorization{}, awserr.Newf(awserr.IncompleteSignature,
					"Authorization header has an unknown parameter '%s'. Expected only '%s', '%s' and '%s'.",
					echo(name), paramCredential, paramSignedHeaders, paramSignature)
			}
			if seen[i] {
				return authorization{}, awserr.Newf(awserr.IncompleteSignature,
					"Authorization header has more than one '%s' parameter.", name)
			}
			seen[i] = true
			params[i] = value
		}
	}
	credential, signedHeaders, signature := params[0], params[1], params[2]
	if credential == "" || signedHeaders == "" || signature == "" || !haveDate {
		return authorization{}, errMissingParameters(header, credential, signedHeaders, signature, haveDate)
	}

	var a authorization
	scope := strings.Split(credential, "/")
	if len(scope) != 5 || slices.Contains(scope, "") {
		return authorization{}, awserr.Newf(awserr.IncompleteSignature,
			"Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '%s'",
			echo(credential))
	}
	a.accessKeyID, a.date, a.region, a.service, a.terminator = scope[0], scope[1], scope[2], scope[3], scope[4]

	names, err := parseSignedHeaders(signedHeaders)
	if err != nil {
		return authorization{}, err
	}
	a.signedHeaders, a.signedHeadersRaw = names, signedHeaders

	// A SHA-256 HMAC is 32 bytes, sent as 64 hex digits. Anything else cannot
	// be a signature; saying so helps whoever debugs a hand-written signer.
	if len(signature) != 2*sha256.Size {
		return authorization{}, errBadSignatureFormat(signature)
	}
	a.signature, err = hex.DecodeString(signature)
	if err != nil {
		return authorization{}, errBadSignatureFormat(signature)
	}
	return a, nil
}

// errMissingParameters lists, as AWS does, every required part the header
// lacks, then repeats the header.
func errMissingParameters(header, credential, signedHeaders, signature string, haveDate bool) error {
	var b strings.Builder
	for _, p := range []struct{ name, value string }{
		{paramCredential, credential},
		{paramSignature, signature},
		{paramSignedHeaders, signedHeaders},
	} {
		if p.value == "" {
			b.WriteString("Authorization header requires '" + p.name + "' parameter. ")
		}
	}
	if !haveDate {
		b.WriteString("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ")
	}
	b.WriteString("Authorization=")
	b.WriteString(echo(header))
	return awserr.New(awserr.IncompleteSignature, b.String())
}

func errBadSignatureFormat(signature string) error {
	return awserr.Newf(awserr.IncompleteSignature,
		"Signature must be %d hexadecimal characters, got '%s'.", 2*sha256.Size, echo(signature))
}

// parseSignedHeaders splits a SignedHeaders value and checks that the names
// are valid lowercase header names, sorted, each appearing once: the form
// every signer produces. Accepting other forms would mean guessing how the
// client built its canonical request.
func parseSignedHeaders(value string) ([]string, error) {
	names := strings.Split(value, ";")
	for i, name := range names {
		if name == "" {
			return nil, errSignedHeaders(value, "empty header name")
		}
		for j := 0; j < len(name); j++ {
			c := name[j]
			if 'A' <= c && c <= 'Z' {
				return nil, errSignedHeaders(value, "header names must be lowercase")
			}
			if !isTokenChar(c) {
				return nil, errSignedHeaders(value, "'"+echo(name)+"' is not a valid header name")
			}
		}
		if i > 0 && names[i-1] >= name {
			return nil, errSignedHeaders(value, "header names must be sorted and appear only once")
		}
	}
	return names, nil
}

func errSignedHeaders(value, reason string) error {
	return awserr.Newf(awserr.IncompleteSignature, "Invalid SignedHeaders '%s': %s.", echo(value), reason)
}

// isTokenChar reports whether c may appear in an HTTP header name (RFC 9110
// "token").
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
