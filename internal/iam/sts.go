package iam

// STS: temporary credentials for the sessions of declared roles.
//
// AssumeRole checks the role's trust policy (and, as AWS does, the
// caller's identity policies when the trust policy names only the caller's
// account, or the caller is in another account) with package policy, then
// issues an access key id (ASIA…), a secret access key and a session token.
//
// The session token is self-contained: it holds, sealed with AES-256-GCM,
// everything the session is (account, role, session name, session policy,
// issue and expiry times, the source principal) and its secret access key.
// No session is stored anywhere, so that any node of a cluster of stateless
// nodes validates a token another node issued, with no store access once
// it holds the sealing key, and nothing is left to clean up when sessions
// expire. The sealing key is 32 random bytes kept in the store (the setting
// store.SettingSTSSessionKey) wrapped by the root of trust, so the root of
// trust is what every token ultimately depends on; each token is sealed
// under its own key, derived with HKDF-SHA256 from the sealing key and a
// random 256-bit salt carried in the token (as ciphertext blobs are), so
// that no nonce is ever reused whatever the number of tokens. The access key
// id is the additional data: a token opens only with the access key id it
// was issued with.
//
// Token format (base64url without padding):
//
//	0x01 | salt (32 bytes) | AES-256-GCM(key = HKDF(sealing key, salt,
//	"kmsd sts session token v1"), nonce = 12 zero bytes,
//	plaintext = claims (JSON), aad = 0x01 | access key id)
//
// A token is accepted until its expiry (the injected clock decides), and
// only while its role is still declared: a reload that removes the role
// ends its sessions. Its identity policies are the role's as currently
// declared, intersected with the session policy the token carries.

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kmsd/kmsd/internal/awsarn"
	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/kms"
	"github.com/kmsd/kmsd/internal/policy"
	"github.com/kmsd/kmsd/internal/sigv4"
	"github.com/kmsd/kmsd/internal/store"
)

// Session durations.
const (
	// DefaultMaxSessionDuration is a role's MaxSessionDuration when its
	// declaration sets none, and the DurationSeconds of an AssumeRole
	// request that gives none.
	DefaultMaxSessionDuration = time.Hour
	// MinSessionDuration is the shortest session AssumeRole issues.
	MinSessionDuration = 15 * time.Minute
	// chainedMaxSession bounds a session assumed with the credentials of
	// another role session (role chaining), as AWS does.
	chainedMaxSession = time.Hour
)

// maxSessionPolicy is the longest Policy parameter STS accepts.
const maxSessionPolicy = 2048

// sessionCacheSize bounds the opened tokens a Directory keeps.
const sessionCacheSize = 10000

var (
	roleSessionNameRE = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
	roleARNRE         = regexp.MustCompile(`^arn:` + regexp.QuoteMeta(awsarn.Partition) + `:iam::(\d{12}):role(/[\x21-\x7e]*)?/([\w+=,.@-]{1,64})$`)
)

// AssumeRoleInput is an AssumeRole request.
type AssumeRoleInput struct {
	RoleArn         string
	RoleSessionName string
	// DurationSeconds is the requested duration; nil means one hour.
	DurationSeconds *int64
	// Policy is the session policy; nil when the request has none.
	Policy *string
	// ExternalID is the request's ExternalId, which trust policies check
	// with the condition key sts:ExternalId; nil when absent.
	ExternalID *string
}

// Credentials are temporary credentials.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	Expiration      time.Time
}

// AssumeRoleOutput is what AssumeRole returns.
type AssumeRoleOutput struct {
	Credentials Credentials
	// AssumedRoleARN is the session's ARN
	// (arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION), AssumedRoleID its
	// id (ROLEID:SESSION).
	AssumedRoleARN string
	AssumedRoleID  string
	// PackedPolicySize is the session policy's size in percent of what
	// a session may carry; nil without a session policy.
	PackedPolicySize *int
}

// claims is what a session token carries. Short JSON names keep tokens
// small; the token is authenticated, so its content is trusted once open.
type claims struct {
	Account string `json:"a"`
	Role    string `json:"r"`  // role name
	RoleARN string `json:"ra"` // with its path, as declared when issued
	Session string `json:"s"`
	Policy  string `json:"p,omitempty"`
	Issued  int64  `json:"i"` // Unix seconds
	Expires int64  `json:"e"` // Unix seconds
	Source  string `json:"src"`
	Secret  string `json:"k"`
}

const tokenVersion = 1

// tokenInfo is the HKDF info of the per-token keys.
const tokenInfo = "kmsd sts session token v1"

// sessionKeyAAD binds the wrapped sealing key to its purpose.
var sessionKeyAAD = []byte("kmsd sts session key v1")

// sealer is the sealing key as loaded from the store, with the revision of
// the setting it came from.
type sealer struct {
	key      []byte
	revision int64
}

// sessions is what a Directory keeps for STS.
type sessions struct {
	sealer atomic.Pointer[sealer]
	loadMu sync.Mutex // serializes loading and creating the sealing key
	// lastReload is when a failed token last made this node read the
	// sealing key again (guarded by loadMu).
	lastReload time.Time

	mu    sync.Mutex
	cache map[[sha256.Size]byte]*session
}

// session is an opened token.
type session struct {
	claims
	secret []byte
	policy *kms.IdentityPolicy // compiled session policy, nil when none
	ident  atomic.Pointer[identityRef]
}

// AssumeRole issues temporary credentials for a session of the role
// in.RoleArn to caller, if the role's trust policy (and, where AWS requires
// it, the caller's identity policies) allow caller to assume it. Errors are
// *awserr.Error for the client: ValidationException (STS:
// ValidationError), MalformedPolicyDocumentException, AccessDeniedException;
// any other error is a server fault.
func (d *Directory) AssumeRole(ctx context.Context, caller kms.Caller, in AssumeRoleInput) (*AssumeRoleOutput, error) {
	var vs []awserr.Violation
	if n := len(in.RoleArn); n < 20 || n > 2048 {
		vs = append(vs, awserr.Violation{Field: "roleArn", Value: in.RoleArn, Null: in.RoleArn == "", Constraint: "Member must have length greater than or equal to 20 and less than or equal to 2048"})
	}
	if name := in.RoleSessionName; !roleSessionNameRE.MatchString(name) {
		v := awserr.Violation{Field: "roleSessionName", Value: name, Null: name == "", Constraint: `Member must satisfy regular expression pattern: [\w+=,.@-]*`}
		switch {
		case name == "":
			v.Constraint = "Member must not be null"
		case len(name) < 2:
			v.Constraint = "Member must have length greater than or equal to 2"
		case len(name) > 64:
			v.Constraint = "Member must have length less than or equal to 64"
		}
		vs = append(vs, v)
	}
	dur := DefaultMaxSessionDuration
	if in.DurationSeconds != nil {
		ds := *in.DurationSeconds
		switch {
		case ds < int64(MinSessionDuration/time.Second):
			vs = append(vs, awserr.Violation{Field: "durationSeconds", Value: strconv.FormatInt(ds, 10), Constraint: "Member must have value greater than or equal to 900"})
		case ds > 43200:
			vs = append(vs, awserr.Violation{Field: "durationSeconds", Value: strconv.FormatInt(ds, 10), Constraint: "Member must have value less than or equal to 43200"})
		default:
			dur = time.Duration(ds) * time.Second
		}
	}
	if in.Policy != nil && (len(*in.Policy) < 1 || len(*in.Policy) > maxSessionPolicy) {
		vs = append(vs, awserr.Violation{Field: "policy", Value: *in.Policy, Constraint: "Member must have length greater than or equal to 1 and less than or equal to 2048"})
	}
	if len(vs) > 0 {
		return nil, awserr.Invalid(vs...)
	}

	src := caller.Identity
	if src == nil {
		return nil, fmt.Errorf("assume role: caller %s has no identity", caller.ARN)
	}
	denied := awserr.Newf(awserr.AccessDenied, "User: %s is not authorized to perform: sts:AssumeRole on resource: %s", caller.ARN, in.RoleArn)
	if src.Principal.IsAccountRoot() {
		// AWS refuses the root user whatever the trust policy says.
		return nil, awserr.New(awserr.AccessDenied, "Roles may not be assumed by root accounts.")
	}
	ids := d.ids.Load()
	m := roleARNRE.FindStringSubmatch(in.RoleArn)
	if ids == nil || m == nil {
		// Not a role ARN at all, or nothing declared: as AWS does, the
		// answer does not tell a missing role from a refused one.
		return nil, denied
	}
	r := ids.roles[roleKey{m[1], m[3]}]
	if r == nil || r.arn != in.RoleArn || r.trust == nil {
		return nil, denied
	}

	now := d.now().UTC().Truncate(time.Second)
	pc := policy.NewContext(16)
	src.AddContext(&pc)
	pc.Set("sts:rolesessionname", in.RoleSessionName)
	if in.ExternalID != nil {
		pc.Set("sts:externalid", *in.ExternalID)
	}
	if caller.SourceIP != "" {
		pc.Set("aws:sourceip", caller.SourceIP)
	}
	pc.Set("aws:securetransport", strconv.FormatBool(caller.SecureTransport))
	pc.Set("aws:requestedregion", caller.Region)
	pc.Set("aws:currenttime", now.Format(time.RFC3339))
	pc.Set("aws:epochtime", strconv.FormatInt(now.Unix(), 10))
	req := policy.Request{Principal: src.Principal, Action: "sts:AssumeRole", Resource: r.arn, Context: pc}
	trust := src.SessionLimit(r.trust, &req, r.trust.EvaluateDetailed(&req))
	v := policy.Authorize(&policy.Authorization{
		Principal: src.Principal, Action: req.Action, Resource: r.arn, KeyPolicy: &trust,
		ResourceAccount: r.account, Identity: src.EvaluateIdentity(&req),
	})
	if !v.Allowed {
		return nil, denied
	}

	// Checked once the caller may assume the role, so that the error does
	// not tell others the role's limit.
	max := r.maxSession
	if src.Type == kms.PrincipalTypeAssumedRole {
		max = min(max, chainedMaxSession)
		if dur > max {
			return nil, awserr.New(awserr.Validation, "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.")
		}
	}
	if dur > max {
		return nil, awserr.New(awserr.Validation, "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
	}
	out := &AssumeRoleOutput{AssumedRoleARN: SessionARN(r.account, r.name, in.RoleSessionName), AssumedRoleID: r.id + ":" + in.RoleSessionName}
	c := claims{Account: r.account, Role: r.name, RoleARN: r.arn, Session: in.RoleSessionName,
		Issued: now.Unix(), Expires: now.Add(dur).Unix(), Source: caller.ARN}
	if in.Policy != nil {
		// Refused here, before anything is issued, with the parser's
		// message (it names the statement and element, never a secret).
		if _, err := kms.CompileIdentityPolicy("session", *in.Policy); err != nil {
			return nil, awserr.New(awserr.MalformedPolicyDocument, err.Error())
		}
		c.Policy = *in.Policy
		size := packedSize(*in.Policy)
		if size > 100 {
			return nil, awserr.New(PackedPolicyTooLarge, "Packed size of the session policy exceeds the limit.")
		}
		out.PackedPolicySize = &size
	}

	var raw [10]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, fmt.Errorf("assume role: %w", err)
	}
	// Temporary access key ids are "ASIA" + 16 characters of base32.
	akid := "ASIA" + base32.StdEncoding.EncodeToString(raw[:])
	var sec [30]byte
	if _, err := rand.Read(sec[:]); err != nil {
		return nil, fmt.Errorf("assume role: %w", err)
	}
	c.Secret = base64.StdEncoding.EncodeToString(sec[:])
	clear(sec[:])
	token, err := d.seal(ctx, akid, &c)
	if err != nil {
		return nil, fmt.Errorf("assume role %s: %w", r.arn, err)
	}
	out.Credentials = Credentials{AccessKeyID: akid, SecretAccessKey: c.Secret, SessionToken: token, Expiration: time.Unix(c.Expires, 0).UTC()}
	return out, nil
}

// PackedPolicyTooLarge is STS's error for session policies too large to
// pack; KMS has no such exception, so it lives here.
const PackedPolicyTooLarge = "PackedPolicyTooLarge"

// packedSize is the size, in percent of the 2048 bytes a session may
// carry, of a session policy compacted (JSON whitespace removed), rounded
// up.
func packedSize(doc string) int {
	n := 0
	inString, escaped := false, false
	for i := 0; i < len(doc); i++ {
		ch := doc[i]
		switch {
		case inString:
			n++
			if escaped {
				escaped = false
			} else if ch == '\\' {
				escaped = true
			} else if ch == '"' {
				inString = false
			}
		case ch == '"':
			inString = true
			n++
		case ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r':
		default:
			n++
		}
	}
	return (n*100 + maxSessionPolicy - 1) / maxSessionPolicy
}

// seal makes the session token of c for access key id akid.
func (d *Directory) seal(ctx context.Context, akid string, c *claims) (string, error) {
	s, err := d.sealingKey(ctx)
	if err != nil {
		return "", err
	}
	var salt [32]byte
	if _, err := rand.Read(salt[:]); err != nil {
		return "", fmt.Errorf("session token salt: %w", err)
	}
	return sealWith(s.key, salt[:], akid, c)
}

// sealWith seals c under key with the given salt, which must be random
// and never reused.
func sealWith(key, salt []byte, akid string, c *claims) (string, error) {
	pt, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("encode session: %w", err)
	}
	defer clear(pt)
	out := make([]byte, 1+32, 1+32+len(pt)+16)
	out[0] = tokenVersion
	copy(out[1:33], salt)
	aead, err := tokenAEAD(key, out[1:33])
	if err != nil {
		return "", err
	}
	// The nonce is fixed: each token has a key of its own (random salt),
	// used for this one message.
	out = aead.Seal(out, make([]byte, aead.NonceSize()), pt, tokenAAD(akid))
	return base64.RawURLEncoding.EncodeToString(out), nil
}

func tokenAAD(akid string) []byte { return append([]byte{tokenVersion}, akid...) }

func tokenAEAD(key, salt []byte) (cipher.AEAD, error) {
	k, err := hkdf.Key(sha256.New, key, salt, tokenInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("session token key: %w", err)
	}
	defer clear(k)
	b, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("session token key: %w", err)
	}
	return cipher.NewGCM(b)
}

// open returns the claims of token if it was sealed for akid by this
// store's sealing key; ok is false for any token that was not.
func open(key []byte, akid, token string) (c *claims, ok bool) {
	raw, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil || len(raw) < 1+32+16 || raw[0] != tokenVersion {
		return nil, false
	}
	aead, err := tokenAEAD(key, raw[1:33])
	if err != nil {
		return nil, false
	}
	pt, err := aead.Open(nil, make([]byte, aead.NonceSize()), raw[33:], tokenAAD(akid))
	if err != nil {
		return nil, false
	}
	defer clear(pt)
	dec := json.NewDecoder(strings.NewReader(string(pt)))
	dec.DisallowUnknownFields()
	c = new(claims)
	if err := dec.Decode(c); err != nil || dec.More() {
		// Authentic but not understood: only a kmsd of another version
		// could have made it.
		return nil, false
	}
	return c, true
}

// sealingKey returns the sealing key, loading it from the store (or
// creating it there) on first use.
func (d *Directory) sealingKey(ctx context.Context) (*sealer, error) {
	if s := d.sts.sealer.Load(); s != nil {
		return s, nil
	}
	return d.loadSealingKey(ctx, 0)
}

// loadSealingKey reads the sealing key from the store unless the one held
// is newer than stale (a revision: 0 loads whatever is there). A key that
// does not exist, or that the keystore refuses to unwrap (keystore.ErrUnwrap:
// its root was retired, or it was damaged), is replaced by a new one, by
// compare and set: the sessions it sealed end. Any other keystore error
// fails the call and changes nothing.
func (d *Directory) loadSealingKey(ctx context.Context, stale int64) (*sealer, error) {
	d.sts.loadMu.Lock()
	defer d.sts.loadMu.Unlock()
	cur := d.sts.sealer.Load()
	if cur != nil && cur.revision > stale {
		return cur, nil
	}
	if cur != nil {
		// A token that does not open makes this node read the setting
		// again, in case another node replaced the key. Anyone can send
		// such tokens, unauthenticated: at most one read a second, and no
		// keystore call unless the key did change. (A rate limit, not a
		// time of the service: the real clock.)
		if time.Since(d.sts.lastReload) < time.Second {
			return cur, nil
		}
		d.sts.lastReload = time.Now()
	}
	for attempt := 0; attempt < 3; attempt++ {
		var revision int64
		set, err := d.store.GetSetting(ctx, store.SettingSTSSessionKey)
		switch {
		case err == nil && cur != nil && set.Revision == cur.revision:
			return cur, nil
		case err == nil:
			key, uerr := d.keystore.Unwrap(ctx, set.Value, sessionKeyAAD)
			if uerr == nil && len(key) == 32 {
				s := &sealer{key: key, revision: set.Revision}
				d.sts.sealer.Store(s)
				return s, nil
			}
			if uerr != nil && !errors.Is(uerr, keystore.ErrUnwrap) {
				// A keystore that cannot answer now (an HSM away) is no
				// reason to end every session: fail this request only.
				return nil, fmt.Errorf("unwrap the STS session key: %w", uerr)
			}
			// Wrapped under a root no longer in the keystore (retired), or
			// damaged: replace it.
			revision = set.Revision
		case !errors.Is(err, store.ErrNotFound):
			return nil, fmt.Errorf("read the STS session key: %w", err)
		}
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("make the STS session key: %w", err)
		}
		wrapped, err := d.keystore.Wrap(ctx, key, sessionKeyAAD)
		if err != nil {
			return nil, fmt.Errorf("wrap the STS session key: %w", err)
		}
		rev, err := d.store.PutSetting(ctx, store.SettingSTSSessionKey, wrapped, revision)
		if errors.Is(err, store.ErrConflict) {
			// Another node made one first: use that one.
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("store the STS session key: %w", err)
		}
		s := &sealer{key: key, revision: rev}
		d.sts.sealer.Store(s)
		return s, nil
	}
	return nil, errors.New("store the STS session key: conflicting writes")
}

// errExpired is what AWS answers for expired session credentials.
func errExpired() error {
	return awserr.New(awserr.ExpiredToken, "The security token included in the request is expired")
}

// session returns the opened session of akid and token: from the cache, or
// opened and cached. An error wraps sigv4.ErrUnknownAccessKey for a token
// that is not one of ours for akid; it is ExpiredTokenException for one
// that has expired.
func (d *Directory) session(ctx context.Context, akid, token string) (*session, error) {
	if !strings.HasPrefix(akid, "ASIA") || token == "" {
		return nil, fmt.Errorf("access key %s with a session token: %w", akid, sigv4.ErrUnknownAccessKey)
	}
	// The cache is keyed by a hash of the pair: no comparison ever
	// touches a token itself.
	h := sha256.New()
	h.Write([]byte(akid))
	h.Write([]byte{0})
	h.Write([]byte(token))
	var k [sha256.Size]byte
	h.Sum(k[:0])
	d.sts.mu.Lock()
	s := d.sts.cache[k]
	d.sts.mu.Unlock()
	if s == nil {
		sl, err := d.sealingKey(ctx)
		if err != nil {
			return nil, err
		}
		c, ok := open(sl.key, akid, token)
		if !ok {
			// Another node may have replaced the sealing key: read it
			// again, once.
			if sl, err = d.loadSealingKey(ctx, sl.revision); err != nil {
				return nil, err
			}
			if c, ok = open(sl.key, akid, token); !ok {
				return nil, fmt.Errorf("access key %s: session token does not open: %w", akid, sigv4.ErrUnknownAccessKey)
			}
		}
		s = &session{claims: *c, secret: []byte(c.Secret)}
		s.claims.Secret = ""
		if c.Policy != "" {
			if s.policy, err = kms.CompileIdentityPolicy("session", c.Policy); err != nil {
				return nil, fmt.Errorf("access key %s: session policy: %w", akid, err)
			}
		}
		d.sts.mu.Lock()
		if d.sts.cache == nil || len(d.sts.cache) >= sessionCacheSize {
			d.sts.cache = make(map[[sha256.Size]byte]*session)
		}
		d.sts.cache[k] = s
		d.sts.mu.Unlock()
	}
	// Checked on every use, with the injected clock: a cached session
	// expires like any other.
	if !d.now().Before(time.Unix(s.Expires, 0)) {
		return nil, errExpired()
	}
	return s, nil
}

// identity returns the identity of a session in the current snapshot: its
// role as declared now, limited by its session policy. A session whose
// role is no longer declared (or declared with another path) is unknown.
func (d *Directory) sessionIdentity(akid string, s *session) (*kms.Identity, error) {
	ids := d.ids.Load()
	if ref := s.ident.Load(); ref != nil && ref.ids == ids {
		return ref.id, nil
	}
	if ids == nil {
		return nil, fmt.Errorf("access key %s: no identities loaded: %w", akid, sigv4.ErrUnknownAccessKey)
	}
	r := ids.roles[roleKey{s.Account, s.Role}]
	if r == nil || r.arn != s.RoleARN {
		return nil, fmt.Errorf("access key %s: role %s is not declared: %w", akid, s.RoleARN, sigv4.ErrUnknownAccessKey)
	}
	id, err := r.session(s.Session, s.policy)
	if err != nil {
		return nil, fmt.Errorf("access key %s: %w", akid, err)
	}
	s.ident.Store(&identityRef{ids: ids, id: id})
	return id, nil
}

// SessionSecret is a sigv4.SessionLookup: the secret access key of the
// temporary credentials akid, whose session token is token.
func (d *Directory) SessionSecret(ctx context.Context, akid, token string) ([]byte, error) {
	s, err := d.session(ctx, akid, token)
	if err != nil {
		return nil, err
	}
	if _, err := d.sessionIdentity(akid, s); err != nil {
		return nil, err
	}
	return s.secret, nil
}

// SessionCaller returns the principal of the temporary credentials akid
// with session token token: the assumed-role session.
func (d *Directory) SessionCaller(ctx context.Context, akid, token string) (kms.Caller, error) {
	s, err := d.session(ctx, akid, token)
	if err != nil {
		return kms.Caller{}, err
	}
	id, err := d.sessionIdentity(akid, s)
	if err != nil {
		return kms.Caller{}, err
	}
	return kms.Caller{Scope: kms.Scope{Account: s.Account}, ARN: id.Principal.ARN, AccessKeyID: akid, Identity: id,
		SessionIssued: time.Unix(s.Issued, 0).UTC()}, nil
}
