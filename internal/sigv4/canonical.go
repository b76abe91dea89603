package sigv4

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/kmsd/kmsd/internal/awserr"
)

// headerReader reads header values by lowercase name from a request as
// received.
type headerReader struct {
	r *http.Request
	// mixedCase is set when some header keys are not in canonical MIME form.
	// net/http canonicalizes every key it parses, but a request built in
	// process may carry keys like "x-amz-date"; only then is a slower
	// case-insensitive scan needed.
	mixedCase bool
}

func newHeaderReader(r *http.Request) headerReader {
	hr := headerReader{r: r}
	for k := range r.Header {
		if textproto.CanonicalMIMEHeaderKey(k) != k {
			hr.mixedCase = true
			break
		}
	}
	return hr
}

// values returns the values of the header with the given lowercase name.
// "host" is r.Host (net/http moves it out of r.Header); "content-length" and
// "transfer-encoding" fall back to r.ContentLength and r.TransferEncoding
// when the header map lacks them.
func (hr headerReader) values(name string) []string {
	r := hr.r
	if name == "host" {
		return []string{hr.host()}
	}
	key := canonicalKey(name)
	vals := r.Header[key]
	if hr.mixedCase {
		var others []string
		for k := range r.Header {
			if k != key && strings.EqualFold(k, name) {
				others = append(others, k)
			}
		}
		slices.Sort(others) // map order is random; the result must not be
		if len(others) > 0 {
			vals = slices.Clone(vals)
			for _, k := range others {
				vals = append(vals, r.Header[k]...)
			}
		}
	}
	if len(vals) > 0 {
		return vals
	}
	switch name {
	case "content-length":
		if r.ContentLength > 0 {
			return []string{strconv.FormatInt(r.ContentLength, 10)}
		}
	case "transfer-encoding":
		if len(r.TransferEncoding) > 0 {
			return r.TransferEncoding
		}
	}
	return nil
}

// host is the value of "host": r.Host exactly as received, port
// included, since the client signed the Host it sent. r.URL.Host only
// serves requests built in process.
func (hr headerReader) host() string {
	if hr.r.Host != "" {
		return hr.r.Host
	}
	return hr.r.URL.Host
}

// canonicalKey is textproto.CanonicalMIMEHeaderKey(name) for a lowercase
// name, without its allocation for the names the SDKs sign on every
// request.
func canonicalKey(name string) string {
	switch name {
	case "amz-sdk-invocation-id":
		return "Amz-Sdk-Invocation-Id"
	case "amz-sdk-request":
		return "Amz-Sdk-Request"
	case "authorization":
		return "Authorization"
	case "content-length":
		return "Content-Length"
	case "content-type":
		return "Content-Type"
	case "x-amz-date":
		return "X-Amz-Date"
	case "x-amz-target":
		return "X-Amz-Target"
	case "x-amz-security-token":
		return "X-Amz-Security-Token"
	case "x-amz-content-sha256":
		return "X-Amz-Content-Sha256"
	case "x-amz-user-agent":
		return "X-Amz-User-Agent"
	case "date":
		return "Date"
	}
	return textproto.CanonicalMIMEHeaderKey(name)
}

// canonicalURIs returns the canonical URI for an escaped request path: first
// the form AWS documents for every service but S3 (dot and empty segments
// removed, then URI-encoded again), then, if it differs, the form
// aws-sdk-go-v2 signs (URI-encoded again, not normalized). Both are
// deterministic functions of the path the client sent, so accepting either
// accepts nothing the client did not sign.
func canonicalURIs(escapedPath string) []string {
	if escapedPath == "" {
		escapedPath = "/"
	}
	normalized := uriEncode(removeDotSegments(escapedPath), false)
	plain := uriEncode(escapedPath, false)
	if plain == normalized {
		return []string{normalized}
	}
	return []string{normalized, plain}
}

// removeDotSegments resolves "." and ".." segments (RFC 3986 section 5.2.4)
// and drops empty segments, as AWS does for the canonical URI: "//a/./b/../c/"
// becomes "/a/c/". It works on the escaped path, so "%2E" is not a dot.
func removeDotSegments(path string) string {
	var out []string
	for seg := range strings.SplitSeq(path, "/") {
		switch seg {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, seg)
		}
	}
	if len(out) == 0 {
		return "/"
	}
	var b strings.Builder
	for _, seg := range out {
		b.WriteByte('/')
		b.WriteString(seg)
	}
	if strings.HasSuffix(path, "/") {
		b.WriteByte('/')
	}
	return b.String()
}

// uriEncode percent-encodes every byte except the RFC 3986 unreserved
// characters (and '/' unless encodeSlash), with uppercase hex, as SigV4
// requires.
func uriEncode(s string, encodeSlash bool) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !isUnreserved(s[i]) && (encodeSlash || s[i] != '/') {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const upperhex = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isUnreserved(c) || (!encodeSlash && c == '/') {
			b = append(b, c)
		} else {
			b = append(b, '%', upperhex[c>>4], upperhex[c&15])
		}
	}
	return string(b)
}

func isUnreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// canonicalQuery decodes the raw query string and re-encodes it in canonical
// form: each name and value URI-encoded (RFC 3986, '+' in the raw query
// meaning a space as in HTML forms), pairs sorted by encoded name, then by
// encoded value, joined with '&'. A parameter without '=' has an empty value.
func canonicalQuery(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	type pair struct{ name, value string }
	var pairs []pair
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		name, value, _ := strings.Cut(part, "=")
		dn, err := url.QueryUnescape(name)
		if err != nil {
			return "", errBadQuery()
		}
		dv, err := url.QueryUnescape(value)
		if err != nil {
			return "", errBadQuery()
		}
		pairs = append(pairs, pair{uriEncode(dn, true), uriEncode(dv, true)})
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		return cmp.Or(strings.Compare(a.name, b.name), strings.Compare(a.value, b.value))
	})
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.name)
		b.WriteByte('=')
		b.WriteString(p.value)
	}
	return b.String(), nil
}

func errBadQuery() error {
	return awserr.New(awserr.IncompleteSignature, "The query string is not valid percent-encoding, so it cannot be canonicalized.")
}

// canonicalSuffix returns the canonical request from the query string on
// (everything after the URI line): query, headers, signed header list and
// payload hash. It is the same for every candidate URI.
func canonicalSuffix(r *http.Request, hdr headerReader, a authorization, body []byte) ([]byte, error) {
	query, err := canonicalQuery(r.URL.RawQuery)
	if err != nil {
		return nil, err
	}
	payloadHash, err := payloadHash(hdr, a.signedHeaders, body)
	if err != nil {
		return nil, err
	}

	b := make([]byte, 0, 512)
	b = append(b, query...)
	b = append(b, '\n')
	for _, name := range a.signedHeaders {
		b = append(b, name...)
		b = append(b, ':')
		if name == "host" {
			// hdr.values would allocate a one-element slice.
			b = appendHeaderValue(b, hdr.host())
			b = append(b, '\n')
			continue
		}
		for i, v := range hdr.values(name) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendHeaderValue(b, v)
		}
		b = append(b, '\n')
	}
	b = append(b, '\n')
	b = append(b, a.signedHeadersRaw...)
	b = append(b, '\n')
	b = append(b, payloadHash...)
	return b, nil
}

// payloadHash is the last line of the canonical request: hex(SHA-256(body)),
// unless the client signed an X-Amz-Content-Sha256 header, whose value then
// stands in for it. That value must be the real hash: UNSIGNED-PAYLOAD,
// which SigV4 allows for S3 uploads, is refused, because a KMS request body
// says which key to use and what to encrypt, so it must be authenticated.
func payloadHash(hdr headerReader, signed []string, body []byte) (string, error) {
	sum := sha256.Sum256(body)
	actual := hex.EncodeToString(sum[:])
	if !slices.Contains(signed, "x-amz-content-sha256") {
		return actual, nil
	}
	claimed := hdr.values("x-amz-content-sha256")
	switch {
	case len(claimed) == 0:
		return actual, nil
	case len(claimed) == 1 && strings.TrimSpace(claimed[0]) == unsignedPayload:
		return "", awserr.New(awserr.InvalidSignature,
			"The request body must be signed: 'x-amz-content-sha256: UNSIGNED-PAYLOAD' is not accepted.")
	case len(claimed) == 1 && strings.TrimSpace(claimed[0]) == actual:
		return actual, nil
	}
	return "", awserr.New(awserr.InvalidSignature,
		"The provided 'x-amz-content-sha256' header does not match what was computed.")
}

// appendHeaderValue appends v with leading and trailing whitespace removed
// and each run of spaces inside collapsed to one space.
func appendHeaderValue(b []byte, v string) []byte {
	v = strings.TrimSpace(v)
	for i := 0; i < len(v); i++ {
		if v[i] == ' ' && i > 0 && v[i-1] == ' ' {
			continue
		}
		b = append(b, v[i])
	}
	return b
}
