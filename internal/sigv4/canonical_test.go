package sigv4

import (
	"net/http"
	"slices"
	"testing"

	"github.com/kmsd/kmsd/internal/awserr"
)

func TestCanonicalURIs(t *testing.T) {
	cases := []struct {
		escapedPath string
		want        []string // AWS form first, then the Go SDK form if different
	}{
		{"", []string{"/"}},
		{"/", []string{"/"}},
		{"//", []string{"/", "//"}},
		{"/./", []string{"/", "/./"}},
		{"/example/..", []string{"/", "/example/.."}},
		{"//example//", []string{"/example/", "//example//"}},
		{"/a/./b/../c", []string{"/a/c", "/a/./b/../c"}},
		{"/../a", []string{"/a", "/../a"}},
		{"/a/b/", []string{"/a/b/"}},
		// Already percent-encoded by the client, so encoded a second time.
		{"/example%20space/", []string{"/example%2520space/"}},
		{"/%E1%88%B4", []string{"/%25E1%2588%25B4"}},
		{"/a%2Fb", []string{"/a%252Fb"}},
		// Characters Go leaves unescaped in paths are escaped once.
		{"/a:b@c!$", []string{"/a%3Ab%40c%21%24"}},
		{"/-._~AZaz09", []string{"/-._~AZaz09"}},
		// An encoded dot is not a dot segment.
		{"/%2E/a", []string{"/%252E/a"}},
	}
	for _, tc := range cases {
		if got := canonicalURIs(tc.escapedPath); !slices.Equal(got, tc.want) {
			t.Errorf("canonicalURIs(%q) = %q, want %q", tc.escapedPath, got, tc.want)
		}
	}
}

func TestCanonicalQuery(t *testing.T) {
	cases := []struct {
		raw, want string
	}{
		{"", ""},
		{"Action=ListUsers&Version=2010-05-08", "Action=ListUsers&Version=2010-05-08"},
		{"Param2=value2&Param1=value1", "Param1=value1&Param2=value2"},
		{"a=2&a=1&b=", "a=1&a=2&b="},
		{"b&a", "a=&b="},
		{"a=1&&b=2&", "a=1&b=2"},
		{"k=x+y&k2=x%20y", "k=x%20y&k2=x%20y"},
		{"%E1%88%B4=bar", "%E1%88%B4=bar"},
		{"ሴ=bar", "%E1%88%B4=bar"},
		{"a=%2f%3D", "a=%2F%3D"},
		{"a=b=c", "a=b%3Dc"},
		{"Z=1&a=1", "Z=1&a=1"}, // byte order: uppercase sorts first
		{"x=-._~", "x=-._~"},
	}
	for _, tc := range cases {
		got, err := canonicalQuery(tc.raw)
		if err != nil || got != tc.want {
			t.Errorf("canonicalQuery(%q) = %q, %v; want %q", tc.raw, got, err, tc.want)
		}
	}
	for _, raw := range []string{"a=%zz", "%=1", "a=%4"} {
		if _, err := canonicalQuery(raw); awserr.CodeOf(err) != awserr.IncompleteSignature {
			t.Errorf("canonicalQuery(%q): got %v, want IncompleteSignatureException", raw, err)
		}
	}
}

func TestAppendHeaderValue(t *testing.T) {
	cases := []struct{ in, want string }{
		{"value", "value"},
		{"  value  ", "value"},
		{"\ta   b   c\t", "a b c"},
		{`"a   b   c"`, `"a b c"`},
		{"attempt=1; max=3", "attempt=1; max=3"},
		{"a \t  b", "a \t b"}, // only spaces collapse, as in aws-sdk-go-v2
		{"", ""},
	}
	for _, tc := range cases {
		if got := string(appendHeaderValue(nil, tc.in)); got != tc.want {
			t.Errorf("appendHeaderValue(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestHeaderReader(t *testing.T) {
	r, err := http.NewRequest(http.MethodPost, "http://kms.example:4599/", http.NoBody)
	if err != nil {
		t.Fatal(err)
	}
	r.ContentLength = 42
	r.TransferEncoding = []string{"chunked"}
	r.Header["X-Amz-Target"] = []string{"a"}
	r.Header["x-amz-target"] = []string{"b"}
	r.Header["X-AMZ-TARGET"] = []string{"c"}
	hr := newHeaderReader(r)
	cases := []struct {
		name string
		want []string
	}{
		{"host", []string{"kms.example:4599"}},
		{"content-length", []string{"42"}},
		{"transfer-encoding", []string{"chunked"}},
		// Canonical key first, then the others in sorted key order.
		{"x-amz-target", []string{"a", "c", "b"}},
		{"absent", nil},
	}
	for _, tc := range cases {
		if got := hr.values(tc.name); !slices.Equal(got, tc.want) {
			t.Errorf("values(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
	if !slices.Equal(r.Header["X-Amz-Target"], []string{"a"}) {
		t.Errorf("values modified the request's header: %q", r.Header["X-Amz-Target"])
	}
}
