package loadgen

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// Target is a server speaking the AWS KMS API that the load generator
// drives.
type Target struct {
	// Name labels the target in reports ("kmsd", "floor").
	Name string
	// Endpoint is the base URL, e.g. http://127.0.0.1:4599. Several,
	// separated by commas, are the nodes of one cluster (one store, one
	// set of credentials): requests go to them round-robin, one request
	// each.
	Endpoint string
	// Region is the signing region; empty means us-east-1.
	Region string
	// AccessKeyID and SecretAccessKey sign the requests. The secret is
	// never printed or logged.
	AccessKeyID     string
	SecretAccessKey string
	// Binary, if set, is the executable the server was spawned from,
	// shown in the report when several builds are compared.
	Binary string
	// PID is the server's process, whose CPU time (/proc/PID/stat) is
	// measured over each round; 0 leaves the server's CPU unmeasured.
	PID int
	// KeyID names an existing key (id, ARN or alias) that every operation
	// uses; empty makes the load generator create the keys it needs.
	KeyID string
	// TLS configures HTTPS endpoints (nil: the system's roots).
	TLS *tls.Config
}

// maxResponse bounds a response body read by the client.
const maxResponse = 1 << 20

// contentType is the AWS JSON 1.1 protocol's media type.
const contentType = "application/x-amz-json-1.1"

// userAgent identifies the load generator in the server's logs, in the
// shape of an AWS SDK's.
const userAgent = "kmsd-bench/1 (aws-sdk-go-v2 compatible) lang/go"

// client sends signed requests to one target over a keep-alive connection
// pool sized to the concurrency.
type client struct {
	target   Target
	urls     []string      // the endpoints, used round-robin
	next     atomic.Uint64 // the number of requests sent: picks the next endpoint
	signer   *Signer
	http     *http.Client
	idleConn func()
}

func newClient(t Target, concurrency int) (*client, error) {
	var urls []string
	for _, e := range strings.Split(t.Endpoint, ",") {
		u, err := url.Parse(e)
		if err != nil {
			return nil, fmt.Errorf("target %s: endpoint %q: %w", t.Name, e, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("target %s: endpoint %q is not an http:// or https:// URL", t.Name, e)
		}
		if u.Path == "" {
			u.Path = "/"
		}
		urls = append(urls, u.String())
	}
	if t.AccessKeyID == "" || t.SecretAccessKey == "" {
		return nil, fmt.Errorf("target %s: no credentials (access key id and secret access key)", t.Name)
	}
	region := t.Region
	if region == "" {
		region = "us-east-1"
	}
	tr := &http.Transport{
		Proxy:               nil, // a benchmark measures the server, not a proxy
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     t.TLS,
		MaxIdleConns:        concurrency * len(urls),
		MaxIdleConnsPerHost: concurrency,
		// With several endpoints each gets its share of the
		// concurrency; one request in flight per worker bounds the
		// total either way.
		MaxConnsPerHost:   concurrency,
		IdleConnTimeout:   90 * time.Second,
		ForceAttemptHTTP2: false,
	}
	return &client{
		target:   t,
		urls:     urls,
		signer:   NewSigner(t.AccessKeyID, t.SecretAccessKey, region, "kms"),
		http:     &http.Client{Transport: tr, Timeout: 60 * time.Second},
		idleConn: tr.CloseIdleConnections,
	}, nil
}

// APIError is an answer other than success: an AWS error (Code is its
// exception name), or a failure of the exchange itself (Code is one of the
// load generator's own: "Transport", "HTTP <status>", "Malformed",
// "Mismatch").
type APIError struct {
	Code    string
	Message string
}

func (e *APIError) Error() string {
	if e.Message == "" {
		return e.Code
	}
	return e.Code + ": " + e.Message
}

// Codes of failures that are not AWS errors.
const (
	CodeTransport = "Transport" // no HTTP answer (connection refused, timeout, …)
	CodeMalformed = "Malformed" // a 200 answer that is not the operation's shape
	CodeMismatch  = "Mismatch"  // a well-formed answer with the wrong content
)

func malformed(format string, args ...any) error {
	return &APIError{Code: CodeMalformed, Message: fmt.Sprintf(format, args...)}
}

func mismatch(format string, args ...any) error {
	return &APIError{Code: CodeMismatch, Message: fmt.Sprintf(format, args...)}
}

// codeOf returns the error's code for the report.
func codeOf(err error) string {
	var e *APIError
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeTransport
}

// do sends one signed request for operation op (e.g. "Encrypt") and
// returns the body of a 2xx answer; any other answer is an *APIError. rnd
// makes the SDK's per-request invocation id.
func (c *client) do(ctx context.Context, op string, body []byte, rnd *rand.Rand) ([]byte, error) {
	u := c.urls[0]
	if len(c.urls) > 1 {
		u = c.urls[(c.next.Add(1)-1)%uint64(len(c.urls))]
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%s request: %w", op, err)
	}
	h := req.Header
	h["Content-Type"] = []string{contentType}
	h["X-Amz-Target"] = []string{"TrentService." + op}
	h["Amz-Sdk-Invocation-Id"] = []string{invocationID(rnd)}
	h["Amz-Sdk-Request"] = []string{"attempt=1; max=3"}
	h["User-Agent"] = []string{userAgent}
	c.signer.Sign(req, body, time.Now())

	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &APIError{Code: CodeTransport, Message: err.Error()}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, &APIError{Code: CodeTransport, Message: "reading the answer: " + err.Error()}
	}
	if len(b) > maxResponse {
		return nil, malformed("answer longer than %d bytes", maxResponse)
	}
	if resp.StatusCode/100 != 2 {
		return nil, errorOf(resp, b)
	}
	return b, nil
}

// call sends one request with in marshalled as its body and decodes a
// successful answer into out.
func (c *client) call(ctx context.Context, op string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("%s request: %w", op, err)
	}
	b, err := c.do(ctx, op, body, rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())))
	if err != nil {
		return fmt.Errorf("%s on %s: %w", op, c.target.Name, err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s on %s: %w", op, c.target.Name, malformed("answer is not JSON: %v", err))
	}
	return nil
}

// errorOf reads an AWS JSON 1.1 error answer: the exception name from the
// body's __type (with or without its "namespace#" prefix) or the
// X-Amzn-ErrorType header, and the message.
func errorOf(resp *http.Response, body []byte) error {
	var e struct {
		Type     string `json:"__type"`
		Message  string `json:"message"`
		Message2 string `json:"Message"`
	}
	_ = json.Unmarshal(body, &e)
	code := e.Type
	if code == "" {
		code, _, _ = strings.Cut(resp.Header.Get("X-Amzn-ErrorType"), ":")
	}
	if i := strings.LastIndexByte(code, '#'); i >= 0 {
		code = code[i+1:]
	}
	if code == "" {
		code = fmt.Sprintf("HTTP %d", resp.StatusCode)
	}
	msg := e.Message
	if msg == "" {
		msg = e.Message2
	}
	return &APIError{Code: code, Message: msg}
}

// invocationID returns a random UUID-shaped id, as the SDK's
// amz-sdk-invocation-id.
func invocationID(rnd *rand.Rand) string {
	var u [16]byte
	for i := 0; i < 16; i += 8 {
		v := rnd.Uint64()
		for j := range 8 {
			u[i+j] = byte(v >> (8 * j))
		}
	}
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return uuid.UUID(u).String()
}
