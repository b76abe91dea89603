// Package server is kmsd's HTTP front: it gives every request an id, bounds
// its body, routes it by X-Amz-Target, verifies its SigV4 signature, calls
// the operation and writes the response or the AWS error.
package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/awsjson"
	"github.com/kmsd/kmsd/internal/awsquery"
	"github.com/kmsd/kmsd/internal/kms"
	"github.com/kmsd/kmsd/internal/logging"
	"github.com/kmsd/kmsd/internal/metrics"
	"github.com/kmsd/kmsd/internal/sigv4"
)

// CallerLookup returns the principal that owns an access key, or, for
// temporary credentials, the session of an access key and session token.
type CallerLookup interface {
	Caller(ctx context.Context, accessKeyID string) (kms.Caller, error)
	SessionCaller(ctx context.Context, accessKeyID, sessionToken string) (kms.Caller, error)
}

// Config holds what a Server is built from.
type Config struct {
	Routes   map[string]*awsjson.Route
	Verifier *sigv4.Verifier
	Callers  CallerLookup
	Logger   *slog.Logger
	Now      func() time.Time
	Metrics  *metrics.Metrics // optional
	// Ready reports whether kmsd can serve (store reachable, audit log
	// healthy); /readyz answers 503 while it returns an error, with the
	// message of an *awserr.Error (never the text of another error).
	Ready func(ctx context.Context) error
	// Audit, if set, receives a record of every request before its reply.
	Audit  Auditor
	Region string // for the audit records of requests without a verified scope
	// Gate, if set, is asked first for every API request, before its body
	// is read or its signature verified: while it returns an error (an
	// *awserr.Error), every API request is answered with that error and
	// /readyz with 503 and the error's message. /healthz is never gated.
	// kmsd serve uses it while its root of trust is sealed, when no
	// secret to verify a signature with is available.
	Gate func() error
	// RefusalLogRate bounds the lines a second that log refused
	// authentications (0: DefaultRefusalLogRate); the rest are counted.
	RefusalLogRate int
	// STS, if set, serves the STS operations (AWS Query requests: a form
	// body and no X-Amz-Target), verified as Verifier does but for the
	// signing service "sts".
	STS *awsquery.Handler
}

// Server is an http.Handler serving the AWS KMS API.
type Server struct {
	routes   map[string]*awsjson.Route
	verifier *sigv4.Verifier
	callers  CallerLookup
	log      *slog.Logger
	now      func() time.Time
	metrics  *metrics.Metrics
	ready    func(ctx context.Context) error
	auditor  Auditor
	region   string
	gate     func() error
	refusals *refusalLog
	sts      *awsquery.Handler
	// stsVerifier is a copy of verifier for the signing service "sts".
	stsVerifier *sigv4.Verifier
	// changes counts the requests of operations that change state while
	// they run (see Close).
	changes inFlight
}

// New returns a Server.
func New(cfg Config) *Server {
	s := &Server{routes: cfg.Routes, verifier: cfg.Verifier, callers: cfg.Callers, log: cfg.Logger, now: cfg.Now,
		metrics: cfg.Metrics, ready: cfg.Ready, auditor: cfg.Audit, region: cfg.Region, gate: cfg.Gate, sts: cfg.STS}
	if s.sts != nil && s.verifier != nil {
		v := *s.verifier
		v.Service = "sts"
		s.stsVerifier = &v
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	rate := cfg.RefusalLogRate
	if rate <= 0 {
		rate = DefaultRefusalLogRate
	}
	s.refusals = &refusalLog{log: s.log, now: s.now, limit: rate}
	return s
}

const targetPrefix = "TrentService."

// ServeHTTP serves one request: run it, audit it, then reply. The reply
// waits for the audit record to be durable; when it cannot be made durable
// the client gets a KMSInternalException instead of the result, so that
// nothing succeeds unaudited.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	reqID := newRequestID()
	h := w.Header()
	h.Set("x-amzn-RequestId", reqID)
	// The SDKs compare Date with their clock to correct skew on retries.
	h.Set("Date", s.now().UTC().Format(http.TimeFormat))

	if r.Method == http.MethodGet && (r.URL.Path == "/healthz" || r.URL.Path == "/readyz") {
		s.health(w, r)
		return
	}

	// Once a request has arrived, it runs to its end and is audited
	// whatever its client does: a context that the client's reset or a
	// timed-out body read cancels would let an operation commit and then
	// skip its audit record (Append returns at once on a done context), or
	// stop an operation between two of its steps (a key made in an HSM but
	// never stored). The body read is bounded by the server's ReadTimeout,
	// not by this context.
	ctx, info := kms.WithRequestInfo(logging.WithRequestID(context.WithoutCancel(r.Context()), reqID))
	r = r.WithContext(ctx)
	if s.sts != nil && awsquery.Is(r) {
		s.serveQuery(w, r, &exchange{requestID: reqID, start: start, info: info})
		return
	}
	op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), targetPrefix)
	ex := &exchange{op: op, route: s.routes[op], requestID: reqID, start: start, info: info}
	release := s.admit(ex)
	defer release()
	if ex.err == nil {
		ex.out, ex.err = s.serve(r, ex)
	}
	if err := s.audit(ctx, r, ex); err != nil {
		if ex.err == nil {
			clear(ex.out)
		}
		ex.out, ex.err = nil, fmt.Errorf("audit: %w", err)
	}
	release()

	if !ex.authed && authFailure(ex.err) {
		s.refusals.refused(ctx, r, ex.err, s.verifier.Regions)
	}

	status := http.StatusOK
	body := ex.out
	if ex.err != nil {
		var internal bool
		status, body, internal = awsjson.ErrorResponse(ex.err)
		if internal {
			s.log.ErrorContext(ctx, "internal error", "operation", op, "err", ex.err)
		}
	}
	h.Set("Content-Type", awsjson.ContentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
	// The body may hold a plaintext data key; it has been written out.
	clear(body)

	outcome := "ok"
	if ex.err != nil {
		outcome = awserr.CodeOf(ex.err)
		if outcome == "" {
			outcome = awserr.KMSInternal
		}
	}
	if ex.route == nil {
		op = "unknown"
	}
	elapsed := time.Since(start)
	s.metrics.ObserveRequest(op, outcome, elapsed)
	s.log.DebugContext(ctx, "request", "operation", op, "status", status,
		"access_key", ex.caller.AccessKeyID, "outcome", outcome, "duration", elapsed)
}

// exchange is one request as it goes through the server.
type exchange struct {
	op        string
	route     *awsjson.Route // nil for an unknown operation
	requestID string
	start     time.Time
	info      *kms.RequestInfo
	body      []byte     // the request body, once read
	caller    kms.Caller // set once authenticated
	authed    bool
	out       []byte // the response body on success
	err       error
	// query is the parsed STS request (nil for KMS requests), queryOut
	// the response elements its audit record may carry.
	query    *awsquery.Request
	queryOut map[string]any
}

// health answers /healthz (the process serves) and /readyz (it can do its
// work: the store answers and the audit log accepts records).
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if r.URL.Path == "/readyz" && s.gate != nil {
		if err := s.gate(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "not ready: "+gateMessage(err)+"\n")
			return
		}
	}
	if r.URL.Path == "/readyz" && s.ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := s.ready(ctx); err != nil {
			s.log.WarnContext(ctx, "not ready", "err", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			// The reason only when Ready wrote it for this page (NotReady,
			// or an AWS error): /readyz needs no credentials.
			msg := "not ready"
			var nr *NotReady
			var e *awserr.Error
			switch {
			case errors.As(err, &nr):
				msg += ": " + nr.Reason
			case errors.As(err, &e):
				msg += ": " + e.Message
			}
			io.WriteString(w, msg+"\n")
			return
		}
	}
	io.WriteString(w, "ok\n")
}

// NotReady is an error of Config.Ready whose Reason /readyz shows; the
// text of any other error is only logged, as it may hold internal details
// (paths, addresses).
type NotReady struct {
	Reason string
	Err    error
}

func (e *NotReady) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *NotReady) Unwrap() error { return e.Err }

// gateMessage is what /readyz shows of a gate's error: the message of an
// AWS error (written for clients), never the text of another error.
func gateMessage(err error) string {
	var e *awserr.Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "unavailable"
}

// connectionFacts adds what the connection tells about a caller.
func connectionFacts(c *kms.Caller, r *http.Request) {
	c.SecureTransport = r.TLS != nil
	c.UserAgent = r.UserAgent()
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		c.SourceIP = host
	}
}

// serve authenticates and runs the request and returns the response body,
// or the error to send.
func (s *Server) serve(r *http.Request, ex *exchange) ([]byte, error) {
	ctx := r.Context()
	if s.gate != nil {
		if err := s.gate(); err != nil {
			return nil, err
		}
	}
	if s.auditor != nil {
		// Once auditing is broken, nothing runs: the record of this
		// request could not be written either.
		if err := s.auditor.Err(); err != nil {
			return nil, fmt.Errorf("audit log failed: %w", err)
		}
	}
	if r.Method != http.MethodPost {
		return nil, awserr.Newf(awserr.UnknownOperation, "Method %s is not supported: AWS KMS requests are POST.", r.Method)
	}
	route := ex.route
	limit := int64(awsjson.DefaultBodyLimit)
	if route != nil {
		limit = route.BodyLimit
	}
	body, err := readBody(r, limit)
	if err != nil {
		return nil, err
	}
	ex.body = body
	if err := s.authenticate(r, s.verifier, body, ex); err != nil {
		return nil, err
	}
	caller := ex.caller
	if route == nil {
		return nil, awserr.New(awserr.UnknownOperation, "")
	}
	return route.Serve(ctx, caller, body)
}

// authenticate verifies the signature of r with v and sets ex.caller: the
// owner of the access key, or the session of temporary credentials.
func (s *Server) authenticate(r *http.Request, v *sigv4.Verifier, body []byte, ex *exchange) error {
	ctx := r.Context()
	res, err := v.Verify(ctx, r, body)
	if err != nil {
		return err
	}
	var caller kms.Caller
	if res.SessionToken != "" {
		caller, err = s.callers.SessionCaller(ctx, res.AccessKeyID, res.SessionToken)
	} else {
		caller, err = s.callers.Caller(ctx, res.AccessKeyID)
	}
	if err != nil {
		if errors.Is(err, sigv4.ErrUnknownAccessKey) {
			return awserr.New(awserr.UnrecognizedClient, "The security token included in the request is invalid.")
		}
		if awserr.CodeOf(err) == awserr.ExpiredToken {
			// The session ended between the signature check and now.
			return awserr.New(awserr.ExpiredToken, "The security token included in the request is expired")
		}
		return fmt.Errorf("look up caller: %w", err)
	}
	// The request acts in the scope its credentials were scoped to (the
	// verifier accepts the served Regions only), as the principal's
	// account.
	caller.Scope = kms.Scope{Partition: res.Partition, Region: res.Region, Account: caller.Account}
	connectionFacts(&caller, r)
	ex.caller, ex.authed = caller, true
	return nil
}

// readBody reads the whole body, refusing more than limit bytes.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	// The errors are made only when needed: this runs for every request.
	tooLarge := func() error {
		return awserr.Newf(awserr.Validation, "The request body is larger than the %d bytes this operation accepts.", limit)
	}
	unreadable := func() error { return awserr.New(awserr.Serialization, "The request body could not be read.") }
	if r.ContentLength > limit {
		return nil, tooLarge()
	}
	if r.ContentLength > 0 {
		// The usual case, a declared length: one allocation of exactly
		// that size (net/http refuses to read more or fewer bytes than
		// Content-Length, so the body cannot be longer).
		body := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, unreadable()
		}
		return body, nil
	}
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, unreadable()
	}
	if n > limit {
		return nil, tooLarge()
	}
	return buf.Bytes(), nil
}

// newRequestID returns a random UUID (version 4) in its text form.
func newRequestID() string { return uuid.New().String() }

// errStopping refuses a request that would change state once Close began:
// 503, which the SDKs retry (on another node of a cluster).
var errStopping = awserr.New(awserr.DependencyTimeout, "kmsd is stopping; retry the request")

// inFlight counts requests in flight until it is closed; then it admits
// none and tells when the last one has left.
type inFlight struct {
	mu     sync.Mutex
	n      int
	closed bool
	idle   chan struct{} // made by close, closed when n reaches 0
}

// enter admits a request, unless closing began.
// admit counts a request that may change state from before it runs until
// its audit record is durable, so that Close can wait for it: the audit
// log must not close between its commit and its record. Once Close has
// begun, such a request is refused (ex.err). The caller calls release
// once the record is written, and defers it too: a panic on the way (which
// the server recovers from) must not leave the count up, or Close would
// wait forever. Read-only operations (Encrypt, …) only pay the branch.
func (s *Server) admit(ex *exchange) (release func()) {
	if ex.route == nil || ex.route.ReadOnly() {
		return noRelease
	}
	if !s.changes.enter() {
		ex.err = errStopping
		return noRelease
	}
	var once sync.Once
	return func() { once.Do(s.changes.leave) }
}

func noRelease() {}

func (f *inFlight) enter() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.n++
	return true
}

func (f *inFlight) leave() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n--
	if f.n == 0 && f.closed {
		close(f.idle)
	}
}

// close stops admitting requests and returns a channel closed once none
// is in flight, and how many are.
func (f *inFlight) close() (<-chan struct{}, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		f.idle = make(chan struct{})
		if f.n == 0 {
			close(f.idle)
		}
	}
	return f.idle, f.n
}

// Close stops the server from running requests that change state (later
// ones are refused with DependencyTimeoutException, before anything runs)
// and waits for those in flight to finish, their audit records included.
// kmsd serve calls it after the HTTP server's shutdown and before it
// closes the audit log, however long the shutdown grace was: a request
// still running then would otherwise commit its change after the log
// closed. If ctx ends first, Close returns its error and how many are
// still running; call it again to go on waiting.
func (s *Server) Close(ctx context.Context) (running int, err error) {
	idle, n := s.changes.close()
	select {
	case <-idle:
		return 0, nil
	case <-ctx.Done():
		s.changes.mu.Lock()
		n = s.changes.n
		s.changes.mu.Unlock()
		return n, fmt.Errorf("server: %d requests that change state still running: %w", n, ctx.Err())
	}
}

// Run serves h on ln until ctx ends, then shuts down gracefully, letting
// in-flight requests finish for up to grace.
func Run(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger, grace time.Duration) error {
	srv := &http.Server{
		Handler:           recoverer(h, log),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// recoverer turns a panic into a KMSInternalException. Nothing of the
// request is logged: a panic value might hold request data.
func recoverer(h http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.Error("panic serving request", "request_id", w.Header().Get("x-amzn-RequestId"), "panic_type", fmt.Sprintf("%T", v))
				_, body, _ := awsjson.ErrorResponse(errors.New("panic"))
				w.Header().Set("Content-Type", awsjson.ContentType)
				w.WriteHeader(http.StatusInternalServerError)
				w.Write(body)
			}
		}()
		h.ServeHTTP(w, r)
	})
}
