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
	"unicode"
	"unicode/utf8"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/awserr"
)

// Auditor makes audit records durable. *audit.Log is one. Err reports a
// failed log: the server then runs no operation at all.
type Auditor interface {
	Append(ctx context.Context, r *audit.Record) error
	Err() error
}

var _ Auditor = (*audit.Log)(nil)

// auditedMembers are the request and response members that may appear in an
// audit record, as CloudTrail records them. It is an allow-list: plaintext,
// ciphertext, messages, signatures, MACs, public keys, import material and
// grant tokens (bearer credentials) are never copied, whatever the
// operation, and a member added to the API later stays out until it is
// listed here.
var auditedMembers = map[string]bool{
	"KeyId": true, "KeyArn": true, "EncryptionContext": true, "EncryptionAlgorithm": true,
	"KeySpec": true, "NumberOfBytes": true, "KeyUsage": true, "Description": true, "Origin": true,
	"CustomerMasterKeySpec": true, "CustomKeyStoreId": true, "MultiRegion": true,
	"BypassPolicyLockoutSafetyCheck": true, "Policy": true, "PolicyName": true, "Tags": true, "TagKeys": true,
	"AliasName": true, "TargetKeyId": true, "PendingWindowInDays": true, "Limit": true, "Marker": true,
	"SourceKeyId": true, "DestinationKeyId": true, "SourceEncryptionContext": true,
	"DestinationEncryptionContext": true, "SourceEncryptionAlgorithm": true, "DestinationEncryptionAlgorithm": true,
	"DryRun": true, "DryRunModifiers": true, "SigningAlgorithm": true, "MessageType": true, "MacAlgorithm": true,
	"KeyPairSpec": true, "KeyAgreementAlgorithm": true, "EncapsulationAlgorithm": true,
	"GranteePrincipal": true, "RetiringPrincipal": true, "Operations": true, "Constraints": true,
	"Name": true, "GrantId": true, "RotationPeriodInDays": true, "WrappingAlgorithm": true,
	"WrappingKeySpec": true, "ExpirationModel": true, "ValidTo": true, "ImportType": true,
	// Custom key stores (never KeyStorePassword: it is the token's PIN).
	"CustomKeyStoreName": true, "NewCustomKeyStoreName": true, "CustomKeyStoreType": true, "CloudHsmClusterId": true,
	// Response members.
	"KeyMetadata": true, "DeletionDate": true, "KeyState": true, "KeyMaterialId": true,
}

// readOnlyOps are the operations CloudTrail marks readOnly: they change no
// state (the cryptographic ones only compute).
var readOnlyOps = map[string]bool{
	"DescribeKey": true, "ListKeys": true, "ListAliases": true, "ListResourceTags": true,
	"DescribeCustomKeyStores": true, "GetKeyPolicy": true, "ListKeyPolicies": true, "ListGrants": true, "ListRetirableGrants": true,
	"GetPublicKey": true, "GetKeyRotationStatus": true, "ListKeyRotations": true, "GetKeyLastUsage": true,
	"Encrypt": true, "Decrypt": true, "ReEncrypt": true, "GenerateDataKey": true,
	"GenerateDataKeyWithoutPlaintext": true, "GenerateDataKeyPair": true,
	"GenerateDataKeyPairWithoutPlaintext": true, "GenerateRandom": true, "Sign": true, "Verify": true,
	"GenerateMac": true, "VerifyMac": true, "DeriveSharedSecret": true, "Encapsulate": true, "Decapsulate": true,
}

// audit records one request. It returns an error only when the record
// could not be made durable.
func (s *Server) audit(ctx context.Context, r *http.Request, ex *exchange) error {
	if s.auditor == nil {
		return nil
	}
	rec := &audit.Record{
		EventTime:         ex.start,
		EventName:         eventName(ex.op),
		AWSRegion:         s.region,
		SourceIPAddress:   sourceIP(r),
		UserAgent:         truncate(r.UserAgent(), 256),
		RequestID:         ex.requestID,
		ReadOnly:          readOnlyOps[ex.op],
		RequestParameters: auditedMembersOf(ex.body),
	}
	if ex.authed {
		c := ex.caller
		rec.UserIdentity = audit.UserIdentity{Type: principalType(c.ARN), ARN: c.ARN, AccountID: c.Account,
			AccessKeyID: c.AccessKeyID, UserName: c.UserName}
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
	} else if !rec.ReadOnly {
		rec.ResponseElements = auditedMembersOf(ex.out)
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
	err := s.auditor.Append(ctx, rec)
	s.metrics.ObserveAudit(time.Since(start))
	return err
}

// auditedMembersOf returns the allow-listed top-level members of a JSON
// object, with CloudTrail's lower-camel-case names; nil if there are none
// or the body is not a JSON object.
func auditedMembersOf(body []byte) map[string]any {
	if len(body) == 0 {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return nil
	}
	var out map[string]any
	for k, raw := range m {
		if !auditedMembers[k] {
			continue
		}
		if out == nil {
			out = make(map[string]any)
		}
		// The member's JSON goes into the record as it came (compacted by
		// the encoder): no second decoding on the request path.
		out[lowerFirst(k)] = raw
	}
	return out
}

// lowerFirst turns a member name into CloudTrail's form: KeyId → keyId.
func lowerFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToLower(r)) + s[n:]
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
func claimedAccessKey(r *http.Request) string {
	a := r.Header.Get("Authorization")
	i := strings.Index(a, "Credential=")
	if i < 0 {
		return ""
	}
	id := a[i+len("Credential="):]
	if j := strings.IndexAny(id, "/, "); j >= 0 {
		id = id[:j]
	}
	return eventName(truncate(id, 128))
}

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
