// Package iam holds kmsd's principals and their access keys: it creates
// access key pairs, stores their secrets wrapped by the keystore, and answers
// the SigV4 verifier's "which secret, which principal" questions.
//
// Principals (accounts, IAM users, roles, their identity policies and tags)
// are declared in kmsd's configuration and compiled into an immutable
// snapshot (Identities) that a Directory holds and swaps on reload. An
// access key whose principal is not declared (any more) is refused as
// unknown: UnrecognizedClientException.
package iam

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kmsd/kmsd/internal/awsarn"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/kms"
	"github.com/kmsd/kmsd/internal/sigv4"
	"github.com/kmsd/kmsd/internal/store"
)

// Directory resolves access keys to principals and secrets. It caches the
// unwrapped secrets in memory so that a signed request costs no disk I/O and
// no keystore call once its access key has been seen.
type Directory struct {
	store    store.Store
	keystore keystore.Keystore
	now      func() time.Time

	mu    sync.RWMutex
	cache map[string]*entry

	ids atomic.Pointer[Identities]

	// sts holds the STS sealing key and the session tokens opened
	// (sts.go).
	sts sessions
}

type entry struct {
	caller kms.Caller
	secret []byte
	// ident is the principal's identity in the snapshot it was looked up
	// in; it is looked up again when the snapshot changes.
	ident atomic.Pointer[identityRef]
}

type identityRef struct {
	ids *Identities
	id  *kms.Identity
}

// identity returns the identity of an access key's principal in the
// current snapshot, or an error wrapping sigv4.ErrUnknownAccessKey when the
// principal is not declared.
func (d *Directory) identity(accessKeyID string, e *entry) (*kms.Identity, error) {
	ids := d.ids.Load()
	if ref := e.ident.Load(); ref != nil && ref.ids == ids {
		return ref.id, nil
	}
	if ids == nil {
		return nil, fmt.Errorf("access key %s: no identities loaded: %w", accessKeyID, sigv4.ErrUnknownAccessKey)
	}
	id, ok, err := ids.Lookup(e.caller.ARN)
	if err != nil {
		return nil, fmt.Errorf("access key %s: %w", accessKeyID, err)
	}
	if !ok || id.Principal.Account != e.caller.Account {
		return nil, fmt.Errorf("access key %s: principal %s is not declared: %w", accessKeyID, e.caller.ARN, sigv4.ErrUnknownAccessKey)
	}
	e.ident.Store(&identityRef{ids: ids, id: id})
	return id, nil
}

// NewDirectory returns a Directory backed by st, with secrets wrapped by ks.
func NewDirectory(st store.Store, ks keystore.Keystore, now func() time.Time) *Directory {
	if now == nil {
		now = time.Now
	}
	return &Directory{store: st, keystore: ks, now: now, cache: make(map[string]*entry)}
}

// secretAAD binds a wrapped secret to its access key id, so that a wrapped
// secret copied onto another access key row fails to unwrap.
func secretAAD(accessKeyID string) []byte {
	return []byte("kmsd access key secret v1\x00" + accessKeyID)
}

// CreateAccessKey creates an access key pair for principalARN in account and
// returns the id and the secret. The secret is returned this once: only its
// wrapped form is stored.
func (d *Directory) CreateAccessKey(ctx context.Context, account, principalARN string) (id, secret string, err error) {
	var raw [10]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", "", fmt.Errorf("create access key: %w", err)
	}
	// AWS access key ids are "AKIA" + 16 characters of base32.
	id = "AKIA" + base32.StdEncoding.EncodeToString(raw[:])
	var sec [30]byte
	if _, err := rand.Read(sec[:]); err != nil {
		return "", "", fmt.Errorf("create access key: %w", err)
	}
	// 40 characters, like AWS secret access keys; StdEncoding of 30 bytes has
	// no padding. '+' and '/' are valid in AWS secrets too.
	secret = base64.StdEncoding.EncodeToString(sec[:])
	wrapped, err := d.keystore.Wrap(ctx, []byte(secret), secretAAD(id))
	if err != nil {
		return "", "", fmt.Errorf("create access key %s: wrap secret: %w", id, err)
	}
	ak := &store.AccessKey{ID: id, Account: account, PrincipalARN: principalARN, WrappedSecret: wrapped, Created: d.now().UTC()}
	if err := d.store.PutAccessKey(ctx, ak); err != nil {
		return "", "", fmt.Errorf("create access key %s: %w", id, err)
	}
	return id, secret, nil
}

// lookup returns the cached entry of an access key, loading it on first use.
func (d *Directory) lookup(ctx context.Context, id string) (*entry, error) {
	d.mu.RLock()
	e := d.cache[id]
	d.mu.RUnlock()
	if e != nil {
		return e, nil
	}
	ak, err := d.store.GetAccessKey(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("access key %s: %w", id, sigv4.ErrUnknownAccessKey)
	}
	if err != nil {
		return nil, fmt.Errorf("access key %s: %w", id, err)
	}
	secret, err := d.keystore.Unwrap(ctx, ak.WrappedSecret, secretAAD(id))
	if err != nil {
		return nil, fmt.Errorf("access key %s: unwrap secret: %w", id, err)
	}
	e = &entry{caller: callerFor(ak), secret: secret}
	d.mu.Lock()
	d.cache[id] = e
	d.mu.Unlock()
	return e, nil
}

// Secret is a sigv4.SecretLookup. The access key of a principal that is
// not declared is unknown.
func (d *Directory) Secret(ctx context.Context, accessKeyID string) ([]byte, error) {
	e, err := d.lookup(ctx, accessKeyID)
	if err != nil {
		return nil, err
	}
	if _, err := d.identity(accessKeyID, e); err != nil {
		return nil, err
	}
	return e.secret, nil
}

// Caller returns the principal that owns accessKeyID, with its identity
// from the current snapshot.
func (d *Directory) Caller(ctx context.Context, accessKeyID string) (kms.Caller, error) {
	e, err := d.lookup(ctx, accessKeyID)
	if err != nil {
		return kms.Caller{}, err
	}
	id, err := d.identity(accessKeyID, e)
	if err != nil {
		return kms.Caller{}, err
	}
	c := e.caller
	c.AccessKeyID = accessKeyID
	c.Identity = id
	return c, nil
}

// HasAccessKeys reports whether any access key exists for account.
func (d *Directory) HasAccessKeys(ctx context.Context, account string) (bool, error) {
	keys, err := d.store.ListAccessKeys(ctx, account)
	if err != nil {
		return false, fmt.Errorf("list access keys of %s: %w", account, err)
	}
	return len(keys) > 0, nil
}

func callerFor(ak *store.AccessKey) kms.Caller {
	// The account only: a request's partition and Region are those of
	// its signature's credential scope, which the server adds.
	c := kms.Caller{Scope: kms.Scope{Account: ak.Account}, ARN: ak.PrincipalARN}
	if strings.Contains(ak.PrincipalARN, ":user/") {
		c.UserName = ak.PrincipalARN[strings.LastIndexByte(ak.PrincipalARN, '/')+1:]
	}
	return c
}

// UserARN is the ARN of IAM user name in account.
func UserARN(account, name string) string {
	return awsarn.IAM(awsarn.Partition, account, "user", "/", name)
}

// SecretAAD returns the keystore aad of the wrapped secret of an access
// key, so that root rotation can unwrap and rewrap it exactly.
func SecretAAD(accessKeyID string) []byte { return secretAAD(accessKeyID) }

var (
	accessKeyIDRE = regexp.MustCompile(`^AKIA[A-Z2-7]{16}$`)
	secretKeyRE   = regexp.MustCompile(`^[A-Za-z0-9+/]{40}$`)
)

// ValidateAccessKeyID checks that id has the form of the long-term access
// key ids kmsd makes and AWS issues: "AKIA" and 16 characters of base32
// (A-Z, 2-7).
func ValidateAccessKeyID(id string) error {
	if !accessKeyIDRE.MatchString(id) {
		return fmt.Errorf("access key id %q is not AKIA followed by 16 characters A-Z or 2-7 (for example AKIAIOSFODNN7EXAMPLE)", sigv4Echo(id))
	}
	return nil
}

// ValidateSecretAccessKey checks that secret has the form of the secret
// access keys kmsd makes and AWS issues: 40 characters of A-Z, a-z, 0-9,
// '+' and '/'. The error never shows the secret.
func ValidateSecretAccessKey(secret string) error {
	if !secretKeyRE.MatchString(secret) {
		return fmt.Errorf("the secret access key (%d characters) is not 40 characters of A-Z, a-z, 0-9, + and /", len(secret))
	}
	return nil
}

// sigv4Echo bounds an access key id shown in a message.
func sigv4Echo(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

// EnsureAccessKey makes the access key id with secret belong to
// principalARN in account, as a preset access key (kmsd serve
// --admin-credentials-file, dev mode): it creates it when it does not
// exist, and changes nothing when it exists for that principal with that
// secret (created is then false). An access key id that exists for
// another principal, or with another secret, is refused. Errors never
// show the secret.
func (d *Directory) EnsureAccessKey(ctx context.Context, account, principalARN, id, secret string) (created bool, err error) {
	if err := ValidateAccessKeyID(id); err != nil {
		return false, err
	}
	if err := ValidateSecretAccessKey(secret); err != nil {
		return false, fmt.Errorf("access key %s: %w", id, err)
	}
	ak, err := d.store.GetAccessKey(ctx, id)
	switch {
	case err == nil:
		if ak.Account != account || ak.PrincipalARN != principalARN {
			return false, fmt.Errorf("access key %s already exists for %s, not %s: choose another access key id", id, ak.PrincipalARN, principalARN)
		}
		have, err := d.keystore.Unwrap(ctx, ak.WrappedSecret, secretAAD(id))
		if err != nil {
			return false, fmt.Errorf("access key %s: unwrap secret: %w", id, err)
		}
		defer clear(have)
		if subtle.ConstantTimeCompare(have, []byte(secret)) != 1 {
			return false, fmt.Errorf("access key %s already exists with another secret: kmsd never changes an access key's secret; give its secret, or another access key id", id)
		}
		return false, nil
	case !errors.Is(err, store.ErrNotFound):
		return false, fmt.Errorf("access key %s: %w", id, err)
	}
	wrapped, err := d.keystore.Wrap(ctx, []byte(secret), secretAAD(id))
	if err != nil {
		return false, fmt.Errorf("access key %s: wrap secret: %w", id, err)
	}
	ak = &store.AccessKey{ID: id, Account: account, PrincipalARN: principalARN, WrappedSecret: wrapped, Created: d.now().UTC()}
	if err := d.store.PutAccessKey(ctx, ak); err != nil {
		return false, fmt.Errorf("create access key %s: %w", id, err)
	}
	return true, nil
}
