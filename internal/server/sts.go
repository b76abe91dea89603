package server

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/kmsd/kmsd/internal/awsquery"
)

// serveQuery serves an STS request (AWS Query protocol) as ServeHTTP
// serves a KMS one: gate and audit log first, the body bounded, the
// signature verified for the signing service "sts", the operation run,
// its audit record made durable, then the reply in XML.
func (s *Server) serveQuery(w http.ResponseWriter, r *http.Request, ex *exchange) {
	ctx := r.Context()
	ex.out, ex.err = s.runQuery(r, ex)
	if err := s.audit(ctx, r, ex); err != nil {
		if ex.err == nil {
			clear(ex.out)
		}
		ex.out, ex.err = nil, fmt.Errorf("audit: %w", err)
	}
	if !ex.authed && authFailure(ex.err) {
		s.refusals.refused(ctx, r, ex.err, s.verifier.Regions)
	}
	status, body := http.StatusOK, ex.out
	if ex.err != nil {
		var internal bool
		status, body, internal = awsquery.ErrorResponse(ex.err, ex.requestID)
		if internal {
			s.log.ErrorContext(ctx, "internal error", "operation", ex.op, "err", ex.err)
		}
	}
	h := w.Header()
	h.Set("Content-Type", awsquery.ContentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
	// An AssumeRole reply holds a secret access key and a session token.
	clear(body)

	outcome, op := "ok", ex.op
	if ex.err != nil {
		outcome = awsquery.Code(ex.err)
	}
	if !awsquery.Known(op) {
		op = "unknown"
	}
	elapsed := time.Since(ex.start)
	s.metrics.ObserveRequest(op, outcome, elapsed)
	s.log.DebugContext(ctx, "request", "operation", op, "status", status,
		"access_key", ex.caller.AccessKeyID, "outcome", outcome, "duration", elapsed)
}

func (s *Server) runQuery(r *http.Request, ex *exchange) ([]byte, error) {
	if s.gate != nil {
		if err := s.gate(); err != nil {
			return nil, err
		}
	}
	if s.auditor != nil {
		if err := s.auditor.Err(); err != nil {
			return nil, fmt.Errorf("audit log failed: %w", err)
		}
	}
	body, err := readBody(r, awsquery.BodyLimit())
	if err != nil {
		return nil, err
	}
	// Parsed before authentication only to name the operation in the
	// audit record; nothing runs before the signature is verified.
	req, perr := awsquery.Parse(body)
	ex.query, ex.op = req, req.Action
	if err := s.authenticate(r, s.stsVerifier, body, ex); err != nil {
		return nil, err
	}
	if perr != nil {
		return nil, perr
	}
	out, audited, err := s.sts.Serve(r.Context(), ex.caller, req, ex.requestID)
	if err != nil {
		return nil, err
	}
	ex.queryOut = audited
	return out, nil
}
