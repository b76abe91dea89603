// Package kms is the key management service itself: one method per AWS KMS
// operation, the key state machine, key resolution by id, ARN and alias,
// authorization, the cached view of the store kept current from its change
// feed (view.go), the bounded cache of unwrapped material, and the
// background work (deletion reaper, rotation, imported material expiry).
//
// It knows nothing of HTTP or JSON. Inputs and outputs are plain structs
// whose field names are the AWS member names; every error a client may see
// is an *awserr.Error.
package kms

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/keys"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/store"
)

// Caller is the authenticated principal making a request, in the scope of
// its credentials.
type Caller struct {
	Scope              // partition, Region and the principal's account
	ARN         string // principal ARN, e.g. arn:aws:iam::111122223333:user/admin
	UserName    string
	AccessKeyID string
	// Facts about the connection, for policy conditions (aws:SourceIp,
	// aws:SecureTransport) and the audit log.
	SourceIP        string
	SecureTransport bool
	UserAgent       string
	// Identity is the principal's compiled identity (policies, tags, ids),
	// set by package iam; see Rule.Check.
	Identity *Identity
	// SessionIssued is, for STS temporary credentials, when AssumeRole
	// issued them (the audit record's sessionContext); zero otherwise.
	SessionIssued time.Time
	// authorized holds the keys authorization resolved for this request
	// (authorized.go); nil when the Caller did not come from Rule.Check.
	authorized *authorized
}

// Config holds what a Service is built from.
type Config struct {
	Store    store.Store
	Keystore keystore.Keystore
	Now      func() time.Time // clock; time.Now when nil
	Rand     io.Reader        // randomness; crypto/rand when nil
	Logger   *slog.Logger
	// MaterialCacheSize bounds the number of unwrapped key materials held
	// in memory (default 10000).
	MaterialCacheSize int
	// KeyCacheSize bounds the keys (with their compiled policy and
	// grants) and the aliases the service caches (DefaultKeyCacheSize).
	KeyCacheSize int
	// StaleAfter is how long cached state is trusted after the last
	// successful read of the store's change feed, once Follow runs
	// (DefaultStaleAfter).
	StaleAfter time.Duration
	// CacheTTL is the time-to-live of what the view caches, the backstop
	// of the change feed; custom key store connections are rechecked as
	// often (DefaultCacheTTL).
	CacheTTL time.Duration
	// HSMClusters are the tokens custom key stores connect to; nil means
	// none are configured (customkeystores.go).
	HSMClusters HSMClusters
	// Regions are the Regions the deployment serves (the verifier accepts
	// requests for these only): ReplicateKey and UpdatePrimaryRegion name
	// a Region in their request, which must be one of them. Empty means
	// any Region name (a Service used without a server, as in tests).
	Regions []string
}

// Service implements the AWS KMS operations. It is safe for concurrent use.
type Service struct {
	store    store.Store
	keystore keystore.Keystore
	now      func() time.Time
	rand     io.Reader
	log      *slog.Logger

	// view caches keys, aliases, key policies and grants, kept current
	// from the store's change feed (view.go).
	view      *view
	materials *materialCache
	// authz caches compiled key policies and grants (authz.go).
	authz authzState
	// cks holds the connections of custom key stores (customkeystores.go).
	cks cksState
	// regions are the served Regions (Config.Regions).
	regions []string
	// usage holds the key uses not yet written to the store (usage.go).
	usage usageState
	// refusedSteps rate-limits the log of background steps that keep
	// being refused (lifecycle.go, forEachDue).
	refusedSteps stepLog
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Keystore == nil {
		return nil, errors.New("kms: Store and Keystore are required")
	}
	s := &Service{
		store:     cfg.Store,
		keystore:  cfg.Keystore,
		now:       cfg.Now,
		rand:      cfg.Rand,
		log:       cfg.Logger,
		materials: newMaterialCache(cfg.MaterialCacheSize),
		view:      newView(cfg.Store, cfg.KeyCacheSize, cfg.StaleAfter, cfg.CacheTTL),
		regions:   slices.Clone(cfg.Regions),
	}
	s.cks.clusters = cfg.HSMClusters
	if s.now == nil {
		s.now = time.Now
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// CacheStats returns how often unwrapped key material was found in the
// cache and how often it had to be unwrapped by the keystore.
func (s *Service) CacheStats() (hits, misses uint64) {
	return s.materials.hits.Load(), s.materials.misses.Load()
}

// isUUID reports whether s is a UUID as kmsd writes key ids: 8-4-4-4-12
// lowercase hex digits. Checked by hand, not by a regular expression:
// every request naming a key asks (a regexp cost a microsecond).
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// isKeyID reports whether s is a key id: a UUID, or a multi-Region key id
// ("mrk-" and 32 lowercase hex digits).
func isKeyID(s string) bool { return isUUID(s) || keys.IsMultiRegionKeyID(s) }

// internal wraps an unexpected failure. The cause is logged by the caller of
// the Service (with the request id) and the client sees only a generic
// message, so that no detail of the store or keystore leaks.
func internal(op string, err error) error {
	return &internalError{op: op, err: err}
}

type internalError struct {
	op  string
	err error
}

func (e *internalError) Error() string { return e.op + ": " + e.err.Error() }
func (e *internalError) Unwrap() error { return e.err }

func notFoundKey(arn string) error {
	return awserr.Newf(awserr.NotFound, "Key '%s' does not exist", arn)
}

func invalidKeyID(id string) error {
	return awserr.Newf(awserr.NotFound, "Invalid keyId '%s'", id)
}

// key returns the current snapshot of key id, from the view or the store.
func (s *Service) key(ctx context.Context, id string) (*store.Key, error) {
	e, err := s.view.key(ctx, id)
	if err != nil {
		return nil, err
	}
	return e.key, nil
}

// forget drops every cached trace of a deleted key: its entry, its
// materials and every alias resolution (its aliases went with it).
func (s *Service) forget(id string) {
	s.view.dropKey(id)
	s.materials.evictKey(id)
	s.view.dropAliases()
}

// resolveForm says which identifier forms an operation accepts.
type resolveForm int

const (
	idOrARN    resolveForm = iota // key id or key ARN
	anyKeyForm                    // also alias name and alias ARN
)

// resolve finds the key named by keyID, as the caller sees it: in the
// caller's partition and Region. Bare ids and alias names are resolved in
// the caller's account; ARNs name their account.
func (s *Service) resolve(ctx context.Context, c Caller, keyID string, form resolveForm) (*store.Key, error) {
	if k := c.authorized.find(byName, form, keyID); k != nil {
		noteKey(ctx, k)
		return k, nil
	}
	sc := c.Scope // where the key is looked for: the account changes with an ARN
	name := keyID
	if strings.HasPrefix(keyID, "arn:") {
		// arn:partition:kms:region:account:key/id or ...:alias/name
		parts := strings.SplitN(keyID, ":", 6)
		if len(parts) != 6 || parts[2] != "kms" || parts[1] == "" {
			return nil, awserr.Newf(awserr.InvalidArn, "Invalid arn %s", keyID)
		}
		region, acct, res := parts[3], parts[4], parts[5]
		if !strings.HasPrefix(res, "key/") && !strings.HasPrefix(res, "alias/") {
			return nil, awserr.Newf(awserr.InvalidArn, "Invalid arn %s", keyID)
		}
		if strings.HasPrefix(res, "alias/") && form != anyKeyForm {
			return nil, invalidKeyID(keyID)
		}
		if region != c.Region || parts[1] != c.Partition {
			if strings.HasPrefix(res, "alias/") {
				return nil, awserr.Newf(awserr.NotFound, "Alias %s is not found.", keyID)
			}
			return nil, notFoundKey(keyID)
		}
		sc.Account = acct
		name = res
		if strings.HasPrefix(res, "key/") {
			name = strings.TrimPrefix(res, "key/")
			if !isKeyID(name) {
				return nil, invalidKeyID(keyID)
			}
		}
	}
	// rid is the key's record: an alias names it; a key id names the key of
	// that id in the request's Region (the related keys of a multi-Region
	// key share their id, one in each of their Regions).
	var rid string
	if strings.HasPrefix(name, "alias/") {
		if form != anyKeyForm {
			return nil, invalidKeyID(keyID)
		}
		id, err := s.aliasTarget(ctx, sc, name)
		if err != nil {
			return nil, err
		}
		rid, name = id, keyIDFromRecord(id)
	} else if !isKeyID(name) {
		return nil, invalidKeyID(keyID)
	} else {
		rid = recordID(sc.Region, name)
	}
	k, err := s.key(ctx, rid)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (k.Account != sc.Account || k.Region != sc.Region)) {
		return nil, notFoundKey(sc.keyARN(name))
	}
	if err != nil {
		return nil, internal("get key", err)
	}
	// A key of another account (named by ARN) resolves: authorization decides
	// whether the operation may be used across accounts.
	noteKey(ctx, k)
	return k, nil
}

// RequestInfo collects what a request touched, for the layers above the
// service (the audit log names the keys of every request), and the eventID
// of its audit record, which GetKeyLastUsage reports.
type RequestInfo struct {
	mu      sync.Mutex
	keys    []*store.Key // in the order resolved, without repeats
	eventID string
	// The key uses the request noted, recorded by CommitUses once its
	// audit record is durable: two fit without an allocation (ReEncrypt
	// uses two keys).
	uses  [2]deferredUse
	nUses int
	more  []deferredUse
}

// deferredUse is a key use waiting for its request's audit record.
type deferredUse struct {
	svc *Service
	use *store.KeyUse
}

// deferUse notes a use of svc's key, with the request's eventID, for
// CommitUses.
func (ri *RequestInfo) deferUse(svc *Service, u *store.KeyUse) {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	if ri.eventID == "" {
		ri.eventID = uuid.NewString()
	}
	u.EventID = ri.eventID
	d := deferredUse{svc, u}
	if ri.nUses < len(ri.uses) {
		ri.uses[ri.nUses] = d
		ri.nUses++
		return
	}
	ri.more = append(ri.more, d)
}

// CommitUses records the key uses the request noted (for GetKeyLastUsage,
// with the request's eventID). The server calls it once the request's
// audit record is durable, and never when it is not: a use is reported
// only with a record to back it.
func (ri *RequestInfo) CommitUses() {
	ri.mu.Lock()
	uses, more := ri.uses, ri.more
	n := ri.nUses
	ri.uses, ri.nUses, ri.more = [2]deferredUse{}, 0, nil
	ri.mu.Unlock()
	for _, d := range uses[:n] {
		d.svc.recordUse(d.use)
	}
	for _, d := range more {
		d.svc.recordUse(d.use)
	}
}

// EventID returns the request's audit eventID: a random UUID, made on first
// use. The audit record of the request carries it, and so does the key
// usage the request records (GetKeyLastUsage's CloudTrailEventId).
func (ri *RequestInfo) EventID() string {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	if ri.eventID == "" {
		ri.eventID = uuid.NewString()
	}
	return ri.eventID
}

func requestInfoOf(ctx context.Context) *RequestInfo {
	ri, _ := ctx.Value(requestInfoKey{}).(*RequestInfo)
	return ri
}

type requestInfoKey struct{}

// WithRequestInfo returns a context whose requests record into the
// returned RequestInfo.
func WithRequestInfo(ctx context.Context) (context.Context, *RequestInfo) {
	ri := &RequestInfo{}
	return context.WithValue(ctx, requestInfoKey{}, ri), ri
}

// Keys returns the ARNs and accounts of the keys the request resolved.
func (ri *RequestInfo) Keys() (arns, accounts []string) {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	for _, k := range ri.keys {
		arns = append(arns, arnOf(k))
		accounts = append(accounts, k.Account)
	}
	return arns, accounts
}

func noteKey(ctx context.Context, k *store.Key) {
	ri := requestInfoOf(ctx)
	if ri == nil {
		return
	}
	ri.mu.Lock()
	defer ri.mu.Unlock()
	for _, seen := range ri.keys {
		if seen.ID == k.ID {
			return
		}
	}
	ri.keys = append(ri.keys, k)
}

// aliasTarget returns the key id alias name of the scope's account points
// at.
func (s *Service) aliasTarget(ctx context.Context, sc Scope, name string) (string, error) {
	id, err := s.view.aliasTarget(ctx, sc.Account, sc.Region, name)
	if errors.Is(err, store.ErrNotFound) {
		return "", awserr.Newf(awserr.NotFound, "Alias %s is not found.", sc.aliasARN(name))
	}
	if err != nil {
		return "", internal("get alias", err)
	}
	return id, nil
}

// updateKey runs fn on key id in a store transaction and refreshes the cache.
func (s *Service) updateKey(ctx context.Context, id string, fn func(*store.Key) error) (*store.Key, error) {
	k, err := s.store.UpdateKey(ctx, id, fn)
	if err != nil {
		var ae *awserr.Error
		if errors.As(err, &ae) {
			return nil, err
		}
		if errors.Is(err, store.ErrNotFound) {
			s.forget(id)
			return nil, awserr.Newf(awserr.NotFound, "Key '%s' does not exist", id)
		}
		return nil, internal("update key", err)
	}
	s.view.dropKey(id)
	return k, nil
}

// manageKey resolves a key named by id or ARN and applies a management
// change to it, refusing keys pending deletion as AWS does.
func (s *Service) manageKey(ctx context.Context, c Caller, keyID string, fn func(*store.Key) error) (*store.Key, error) {
	k, err := s.resolve(ctx, c, keyID, idOrARN)
	if err != nil {
		return nil, err
	}
	return s.updateKey(ctx, k.ID, func(k *store.Key) error {
		if err := checkManageable(k); err != nil {
			return err
		}
		return fn(k)
	})
}

// State names.
const (
	StateEnabled         = "Enabled"
	StateDisabled        = "Disabled"
	StatePendingDeletion = "PendingDeletion"
	StatePendingImport   = "PendingImport"
)

// checkUsable returns the error AWS sends when a key in state k.State is used
// for cryptography.
func checkUsable(k *store.Key) error {
	switch k.State {
	case StateEnabled:
		return nil
	case StateDisabled:
		return awserr.Newf(awserr.Disabled, "%s is disabled.", arnOf(k))
	case StatePendingDeletion:
		return awserr.Newf(awserr.KMSInvalidState, "%s is pending deletion.", arnOf(k))
	case StatePendingReplicaDeletion:
		return errPendingReplicaDeletion(k)
	case StatePendingImport:
		return awserr.Newf(awserr.KMSInvalidState, "%s is pending import.", arnOf(k))
	default:
		return awserr.Newf(awserr.KMSInvalidState, "%s is %s.", arnOf(k), k.State)
	}
}

// checkManageable returns the error AWS sends when a management operation
// meets a key pending deletion.
func checkManageable(k *store.Key) error {
	switch k.State {
	case StatePendingDeletion:
		return awserr.Newf(awserr.KMSInvalidState, "%s is pending deletion.", arnOf(k))
	case StatePendingReplicaDeletion:
		return errPendingReplicaDeletion(k)
	}
	return nil
}

func errPendingReplicaDeletion(k *store.Key) error {
	return awserr.Newf(awserr.KMSInvalidState, "%s is pending deletion: its waiting period begins once its replica keys are deleted.", arnOf(k))
}

// materialAAD binds wrapped key material to its key and generation, so that
// a wrapped blob moved to another key or generation fails to unwrap.
func materialAAD(keyARN, materialID string) []byte {
	return []byte("kmsd key material v1\x00" + keyARN + "\x00" + materialID)
}

// material returns the unwrapped material of one generation of key k. The
// caller must call release when done with it.
func (s *Service) material(ctx context.Context, k *store.Key, materialID string) (*cachedMaterial, error) {
	if m := s.materials.acquire(k.ID, materialID); m != nil {
		return m, nil
	}
	rec, err := s.store.GetMaterial(ctx, k.ID, materialID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNoMaterial
	}
	if err != nil {
		return nil, internal("get key material", err)
	}
	plain, err := s.keystore.Unwrap(ctx, rec.Wrapped, materialAAD(arnOf(k), materialID))
	if err != nil {
		return nil, internal(fmt.Sprintf("unwrap key material of %s", k.ID), err)
	}
	return s.materials.put(k.ID, materialID, plain), nil
}

var errNoMaterial = errors.New("kms: no such key material")
