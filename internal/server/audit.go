package server

import (
	"context"
	"crypto/tls"
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

var _ Auditor = (*audit.Log)(nil)

// audit records one request. It returns an error only when the record
// could not be made durable.
func (s *Server) audit(ctx context.Context, r *http.Request, ex *exchange) error {
	if s.auditor == nil {
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
	return err
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
