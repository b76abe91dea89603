package server

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/kms"
	"github.com/kmsd/kmsd/internal/logging"
)

// Invoke runs one operation for caller as kmsd itself, not over HTTP:
// kmsd serve applies its seed with it. The request is exactly what a
// client would send (the operation's JSON body), validated, authorized
// as caller and audited like every request: its record names caller,
// userAgent says who made it (agent), and it has no source IP. The
// caller's Scope must be set (partition, Region, account). Like
// ServeHTTP, Invoke returns the result only once its audit record is
// durable.
func (s *Server) Invoke(ctx context.Context, caller kms.Caller, op, agent string, body []byte) ([]byte, error) {
	reqID := newRequestID()
	ctx, info := kms.WithRequestInfo(logging.WithRequestID(context.WithoutCancel(ctx), reqID))
	ex := &exchange{op: op, route: s.routes[op], requestID: reqID, start: time.Now(), info: info, body: body}
	caller.UserAgent = agent
	ex.caller, ex.authed = caller, true
	// Counted like ServeHTTP's requests that change state (see admit).
	release := s.admit(ex)
	defer release()
	switch {
	case ex.err != nil:
	case s.gate != nil && s.gate() != nil:
		ex.err = s.gate()
	case s.auditor != nil && s.auditor.Err() != nil:
		ex.err = fmt.Errorf("audit log failed: %w", s.auditor.Err())
	case ex.route == nil:
		ex.err = awserr.New(awserr.UnknownOperation, "")
	default:
		ex.out, ex.err = ex.route.Serve(ctx, caller, body)
	}
	// The record's userAgent comes from the request; there is no
	// connection, so no source IP and no TLS details.
	r := &http.Request{Header: http.Header{"User-Agent": {agent}}}
	err := s.audit(ctx, r, ex)
	release()
	if err != nil {
		clear(ex.out)
		return nil, fmt.Errorf("audit: %w", err)
	}
	return ex.out, ex.err
}
