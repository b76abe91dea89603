package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/awsquery"
)

// Auditor makes audit records durable. *audit.Log is one. Err reports a
// failed log: the server then runs no operation at all.
type Auditor interface {
	Append(ctx context.Context, r *audit.Record) error
	Err() error
}

// Keeper is an Auditor that can keep a record its Append could not write
// elsewhere, durably, to be appended to the log later (*audit.Log keeps
// it in the store, see audit.Log.Keep). The server keeps the record of a
// change that is committed, so that no change is left without its record.
type Keeper interface {
	Keep(ctx context.Context, r *audit.Record) error
}

var (
	_ Auditor = (*audit.Log)(nil)
	_ Keeper  = (*audit.Log)(nil)
)

// audit records one request. It returns an error only when the record
// could not be made durable. Once it is, the key uses the request noted
// are recorded (GetKeyLastUsage): never a use without its record.
func (s *Server) audit(ctx context.Context, r *http.Request, ex *exchange) error {
	if s.auditor == nil {
		ex.info.CommitUses()
		return nil
	}
	rec := &audit.Record{
		EventTime:       ex.start,
		EventName:       eventName(ex.op),
		AWSRegion:       s.region,
		SourceIPAddress: sourceIP(r),
		UserAgent:       truncate(r.UserAgent(), 256),
		RequestID:       ex.requestID,
		// The eventID the request's key usage names (GetKeyLastUsage).
		EventID: ex.info.EventID(),
	}
	// What an operation's record may carry of its request and response is
	// the operation's own allow-list (awsjson's operation table); a request
	// for no known operation carries none of its body.
	if ex.route != nil {
		rec.ReadOnly = ex.route.ReadOnly()
		rec.RequestParameters = ex.route.AuditedRequest(ex.body)
	}
	if ex.query != nil {
		rec.EventSource = awsquery.EventSource
		rec.ReadOnly = ex.query.ReadOnly()
		rec.RequestParameters = ex.query.Audited()
	}
	if ex.authed {
		c := ex.caller
		rec.AWSRegion = c.Region
		rec.UserIdentity = audit.UserIdentity{Type: principalType(c.ARN), ARN: c.ARN, AccountID: c.Account,
			AccessKeyID: c.AccessKeyID, UserName: c.UserName}
		if id := c.Identity; id != nil {
			rec.UserIdentity.PrincipalID = id.UserID
			if !c.SessionIssued.IsZero() && id.Principal.RoleARN != "" {
				// Temporary credentials from AssumeRole, described as
				// CloudTrail does.
				roleID, _, _ := strings.Cut(id.UserID, ":")
				roleARN := id.Principal.RoleARN
				rec.UserIdentity.SessionContext = &audit.SessionContext{
					SessionIssuer: audit.SessionIssuer{Type: "Role", PrincipalID: roleID, ARN: roleARN, AccountID: c.Account,
						UserName: roleARN[strings.LastIndexByte(roleARN, '/')+1:]},
					Attributes: audit.SessionAttributes{CreationDate: c.SessionIssued, MFAAuthenticated: "false"},
				}
			}
		}
		rec.RecipientAccountID = c.Account
	} else {
		rec.UserIdentity = audit.UserIdentity{Type: "Unknown", AccessKeyID: claimedAccessKey(r)}
	}
	if ex.err != nil {
		rec.ErrorCode = awserr.CodeOf(ex.err)
		rec.ErrorMessage = truncate(awserrMessage(ex.err), 1024)
		if rec.ErrorCode == "" {
			rec.ErrorCode, rec.ErrorMessage = awserr.KMSInternal, "internal error"
		}
		if ex.query != nil {
			rec.ErrorCode = awsquery.Code(ex.err)
		}
	} else if ex.route != nil && !rec.ReadOnly {
		rec.ResponseElements = ex.route.AuditedResponse(ex.out)
	} else if ex.query != nil {
		// Never the secret access key nor the session token: the
		// handler's allow-list (awsquery.Handler.Serve).
		rec.ResponseElements = ex.queryOut
	}
	arns, accounts := ex.info.Keys()
	for i, arn := range arns {
		rec.Resources = append(rec.Resources, audit.Resource{ARN: arn, AccountID: accounts[i]})
		if rec.RecipientAccountID == "" {
			rec.RecipientAccountID = accounts[i]
		}
	}
	if r.TLS != nil {
		rec.TLSDetails = &audit.TLSDetails{TLSVersion: tlsVersion(r.TLS.Version), CipherSuite: tls.CipherSuiteName(r.TLS.CipherSuite),
			ClientProvidedHostHeader: truncate(r.Host, 256)}
	}
	start := time.Now()
	// ctx is the request's, which no client can cancel (ServeHTTP): the
	// record of a committed change is written even if the client left.
	err := s.auditor.Append(ctx, rec)
	s.metrics.ObserveAudit(time.Since(start))
	if err != nil {
		return s.keep(ctx, ex, rec, err)
	}
	ex.info.CommitUses()
	return nil
}

// keep handles a record Append could not write. A request that changed
// nothing (it failed, or its operation is read-only) just fails: nothing
// happened without a record. The record of a committed change is kept
// (Keeper) for the log to append later; the change and its record are
// then both durable and the request succeeds. If that fails too, the
// change stays committed without a record: the request fails, and the
// operator is told at error level which event and keys it concerned, with
// the record itself (only allow-listed members, never a secret).
func (s *Server) keep(ctx context.Context, ex *exchange, rec *audit.Record, appendErr error) error {
	if ex.err != nil || ex.route == nil || rec.ReadOnly {
		return appendErr
	}
	arns, _ := ex.info.Keys()
	k, ok := s.auditor.(Keeper)
	if !ok {
		s.log.ErrorContext(ctx, "a committed change has no audit record: the audit log could not write it", "operation", ex.op, "event_id", rec.EventID, "keys", arns, "err", appendErr)
		return appendErr
	}
	if err := k.Keep(ctx, rec); err != nil {
		// The record itself goes to the operator's log: it holds only
		// the allow-listed members an audit record may hold (no secret),
		// and names what changed (a new key's id is in its response).
		b, _ := json.Marshal(rec)
		s.log.ErrorContext(ctx, "a committed change has no audit record: neither the audit log nor the store could take it", "operation", ex.op, "event_id", rec.EventID, "keys", arns, "err", appendErr, "keep_err", err, "record", string(b))
		return appendErr
	}
	s.log.ErrorContext(ctx, "the audit log could not write the record of a committed change: it is kept in the store, and the log appends it when it opens again", "operation", ex.op, "event_id", rec.EventID, "keys", arns, "err", appendErr)
	ex.info.CommitUses()
	return nil
}

// eventName is the operation name, or a bounded, printable version of an
// unknown X-Amz-Target.
func eventName(op string) string {
	op = truncate(op, 64)
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, op)
}

func principalType(arn string) string {
	switch {
	case strings.HasSuffix(arn, ":root"):
		return "Root"
	case strings.Contains(arn, ":assumed-role/"):
		return "AssumedRole"
	case strings.Contains(arn, ":user/"):
		return "IAMUser"
	}
	return "Unknown"
}

// claimedAccessKey is the access key id an unauthenticated request claims
// in its Authorization header (it proves nothing; it helps investigation).
func claimedAccessKey(r *http.Request) string { return claimedScope(r).accessKey }

func sourceIP(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return ""
}

func awserrMessage(err error) string {
	var e *awserr.Error
	if errors.As(err, &e) {
		return e.Message
	}
	return ""
}

func tlsVersion(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "TLSv1.3"
	case tls.VersionTLS12:
		return "TLSv1.2"
	}
	return "TLS"
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
