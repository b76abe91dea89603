package kms

// The Service's one cached view of the store.
//
// Every request reads keys, aliases, key policies, grants and (for keys of
// custom key stores) its store's connection state; reading the
// store each time would put a database round trip on the hot path. The view
// caches them in one component with one invalidation rule:
//
//   - Every write to the store, from this node or any other sharing the
//     store, appends a store.Change in its own transaction. Follow reads the
//     change feed (every FollowInterval; a backend that can announce changes
//     wakes it sooner) and drops what the view holds of each changed record.
//     A node's own writes also drop their records at once, so that it reads
//     its own writes.
//   - An entry older than the time-to-live is reloaded anyway (a backstop
//     against a change the feed did not name); custom key store
//     connections are rechecked against their records as often.
//   - When the feed has not been read successfully for StaleAfter (the
//     store is unreachable, say), nothing cached is trusted: every read goes
//     to the store, and fails with it. A node cut off from the store never
//     answers from stale authorization for longer than that bound.
//   - Every map is bounded: memory does not grow with the number of keys.
//     Compiled key policies are shared by text, so the thousands of keys
//     with their account's default policy share one compiled policy.
//
// A load that raced an invalidation must not put back what the
// invalidation removed: loads note the view's generation before reading the
// store, and drop what they stored when the generation moved meanwhile.
//
// Cache ages are measured with the real clock (time.Now), not the service's
// injected clock, which tests move by days.

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/policy"
	"github.com/kmsd/kmsd/internal/store"
)

// Defaults of the view's bounds (Config overrides them).
const (
	DefaultKeyCacheSize   = 10000
	DefaultFollowInterval = 100 * time.Millisecond
	DefaultStaleAfter     = time.Second
	DefaultCacheTTL       = 30 * time.Second
	// policyCacheSize bounds the compiled key policies, shared by text.
	policyCacheSize = 1024
	// changesPage is how many changes Follow reads at a time.
	changesPage = 1000
)

type view struct {
	st        store.Store
	ttl       time.Duration
	staleNano int64

	// gen is bumped before every invalidation (see the package comment
	// above).
	gen atomic.Uint64
	// aliasGen is bumped by every alias change: it invalidates each key's
	// list of aliases (kms:ResourceAliases) at once.
	aliasGen atomic.Uint64

	keys     boundedMap[string, *keyEntry]
	aliases  boundedMap[aliasRef, *aliasEntry]
	policies boundedMap[string, *compiledPolicy]
	// cks holds custom key store records: their connection state decides
	// whether this node may use its connection to their token (cksconn.go).
	cks boundedMap[string, *cksEntry]

	// following is set once Follow runs; synced is when (UnixNano) the
	// last successful read of the feed started. A view that is not
	// followed (a Service used by one process alone, as in tests) trusts
	// its entries, since its own writes invalidate them.
	following atomic.Bool
	synced    atomic.Int64
	// seen is the Seq of the last change applied.
	seen atomic.Int64
}

// keyEntry is what the view holds of one key: its snapshot and what is
// derived from it, each derived part made on first use.
type keyEntry struct {
	key    *store.Key
	loaded int64 // UnixNano

	authz   atomic.Pointer[keyAuthz]
	grants  atomic.Pointer[[]*grant]
	aliases atomic.Pointer[keyAliases]
}

type aliasRef struct{ account, region, name string }

type cksEntry struct {
	cks    *store.CustomKeyStore
	loaded int64
}

type aliasEntry struct {
	keyID  string
	loaded int64
}

// compiledPolicy is one key policy text, compiled.
type compiledPolicy struct {
	text   string // the text, shared by the cached keys that have it
	policy *policy.Policy
	needs  ctxNeeds
	err    error
}

func newView(st store.Store, keys int, stale, ttl time.Duration) *view {
	if keys <= 0 {
		keys = DefaultKeyCacheSize
	}
	if stale <= 0 {
		stale = DefaultStaleAfter
	}
	if ttl <= 0 {
		ttl = DefaultCacheTTL
	}
	v := &view{st: st, ttl: ttl, staleNano: int64(stale)}
	v.keys.max = int64(keys)
	v.aliases.max = int64(keys)
	v.cks.max = int64(keys)
	v.policies.max = policyCacheSize
	return v
}

// trusted reports whether cached entries may be used at time now.
func (v *view) trusted(now int64) bool {
	return !v.following.Load() || now-v.synced.Load() < v.staleNano
}

func (v *view) fresh(loaded, now int64) bool {
	return now-loaded < int64(v.ttl) && v.trusted(now)
}

// key returns the entry of key id, from the cache or the store
// (store.ErrNotFound when there is none).
func (v *view) key(ctx context.Context, id string) (*keyEntry, error) {
	now := time.Now().UnixNano()
	if e, ok := v.keys.load(id); ok && v.fresh(e.loaded, now) {
		return e, nil
	}
	gen := v.gen.Load()
	k, err := v.st.GetKey(ctx, id)
	if err != nil {
		return nil, err
	}
	if cp, ok := v.policies.load(k.Policy); ok {
		// The text already compiled (most keys have their account's
		// default policy): share its string rather than hold one more
		// copy per cached key. Equal strings, so nothing else changes.
		k.Policy = cp.text
	}
	e := &keyEntry{key: k, loaded: now}
	remember(v, &v.keys, id, e, gen, now)
	return e, nil
}

// aliasTarget returns the id of the key an alias points at, or
// store.ErrNotFound.
func (v *view) aliasTarget(ctx context.Context, account, region, name string) (string, error) {
	now := time.Now().UnixNano()
	ref := aliasRef{account, region, name}
	if e, ok := v.aliases.load(ref); ok && v.fresh(e.loaded, now) {
		return e.keyID, nil
	}
	gen := v.gen.Load()
	a, err := v.st.GetAlias(ctx, account, region, name)
	if err != nil {
		return "", err
	}
	e := &aliasEntry{keyID: a.KeyID, loaded: now}
	remember(v, &v.aliases, ref, e, gen, now)
	return a.KeyID, nil
}

// customKeyStore returns the record of custom key store id, from the cache
// or the store (store.ErrNotFound when there is none).
func (v *view) customKeyStore(ctx context.Context, id string) (*store.CustomKeyStore, error) {
	now := time.Now().UnixNano()
	if e, ok := v.cks.load(id); ok && v.fresh(e.loaded, now) {
		return e.cks, nil
	}
	gen := v.gen.Load()
	cks, err := v.st.GetCustomKeyStore(ctx, id)
	if err != nil {
		return nil, err
	}
	e := &cksEntry{cks: cks, loaded: now}
	remember(v, &v.cks, id, e, gen, now)
	return cks, nil
}

// remember caches e, read from the store at time now by a reader that
// loaded v.gen as gen before the read, unless the cache may not be trusted
// now, or an invalidation came meanwhile (gen moved on): then e may be
// older than the change that invalidated, and must not stay.
func remember[K, V comparable](v *view, m *boundedMap[K, V], k K, e V, gen uint64, now int64) {
	if !v.trusted(now) {
		return
	}
	m.store(k, e)
	if v.gen.Load() != gen {
		m.compareAndDelete(k, e)
	}
}

// grants returns the grants of the key of entry e, ordered by id.
func (v *view) grants(ctx context.Context, e *keyEntry) ([]*grant, error) {
	if gs := e.grants.Load(); gs != nil {
		return *gs, nil
	}
	gen := v.gen.Load()
	list, err := v.st.ListGrants(ctx, e.key.ID, "", "", 0)
	if err != nil {
		return nil, internal("list grants of "+e.key.ID, err)
	}
	gs := make([]*grant, len(list))
	for i, g := range list {
		gs[i] = &grant{g}
	}
	p := &gs
	e.grants.Store(p)
	if v.gen.Load() != gen {
		e.grants.CompareAndSwap(p, nil)
	}
	return gs, nil
}

// resourceAliases returns the names of the aliases of the key of entry e.
func (v *view) resourceAliases(ctx context.Context, e *keyEntry) ([]string, error) {
	gen := v.aliasGen.Load()
	if ka := e.aliases.Load(); ka != nil && ka.gen == gen {
		return ka.names, nil
	}
	k := e.key
	as, err := v.st.ListAliases(ctx, k.Account, k.Region, k.ID, "", 0)
	if err != nil {
		return nil, internal("list aliases of "+k.ID, err)
	}
	names := make([]string, len(as))
	for i, a := range as {
		names[i] = a.Name
	}
	// Stored with the generation read before the store: a change since
	// then makes it stale at once.
	e.aliases.Store(&keyAliases{gen: gen, names: names})
	return names, nil
}

// policy returns the compiled form of a key policy text.
func (v *view) policy(text string) *compiledPolicy {
	if cp, ok := v.policies.load(text); ok {
		return cp
	}
	cp := &compiledPolicy{text: text}
	cp.policy, cp.err = policy.Parse([]byte(text), policy.ResourcePolicy)
	if cp.err == nil {
		cp.needs = contextNeeds(text)
	}
	v.policies.store(text, cp)
	return cp
}

// Invalidation.

func (v *view) dropKey(id string) {
	v.gen.Add(1)
	v.keys.delete(id)
}

func (v *view) dropGrants(keyID string) {
	v.gen.Add(1)
	if e, ok := v.keys.load(keyID); ok {
		e.grants.Store(nil)
	}
}

func (v *view) dropAlias(account, region, name string) {
	v.gen.Add(1)
	v.aliasGen.Add(1)
	v.aliases.delete(aliasRef{account, region, name})
}

func (v *view) dropCKS(id string) {
	v.gen.Add(1)
	v.cks.delete(id)
}

// dropAliases drops every alias resolution and every key's alias list.
func (v *view) dropAliases() {
	v.gen.Add(1)
	v.aliasGen.Add(1)
	v.aliases.clear()
}

// dropAll empties the view (its compiled policies stay: they depend only
// on the policy text).
func (v *view) dropAll() {
	v.gen.Add(1)
	v.aliasGen.Add(1)
	v.keys.clear()
	v.aliases.clear()
	v.cks.clear()
}

// Following the change feed.

// Follow keeps the view current from the store's change feed until ctx
// ends: every interval (DefaultFollowInterval when <= 0) it reads the
// changes since the last one it saw and drops what they name, including the
// materials and custom key store connections they concern. kmsd serve runs
// it for the life of the process; until it has read the feed once, and
// whenever it has not for the staleness bound, nothing cached is trusted.
// Every time-to-live it also rechecks every custom key store connection
// (the backstop of what the feed names).
func (s *Service) Follow(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultFollowInterval
	}
	v := s.view
	v.following.Store(true)
	wake := make(chan struct{}, 1)
	if n, ok := v.st.(store.Notifier); ok {
		go s.listen(ctx, n, wake)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	cursor := int64(-1) // unknown until LastChange answers
	failing := false
	for {
		start := time.Now().UnixNano()
		next, err := s.followOnce(ctx, cursor)
		switch {
		case err == nil:
			cursor = next
			v.seen.Store(cursor)
			v.synced.Store(start)
			if failing {
				s.log.InfoContext(ctx, "change feed readable again")
				failing = false
			}
			if start-s.cks.lastRecheck.Load() >= int64(v.ttl) {
				s.goRecheckAll(ctx)
			}
		case ctx.Err() != nil:
			return
		case !failing:
			// Logged once per outage; the view stops trusting its
			// entries after the staleness bound.
			s.log.ErrorContext(ctx, "cannot read the store's change feed; cached state is not used until it can", "err", err)
			failing = true
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-wake:
		}
	}
}

// listen wakes Follow whenever the store announces a commit, reconnecting
// (after a pause) when the listening connection fails; meanwhile Follow
// polls.
func (s *Service) listen(ctx context.Context, n store.Notifier, wake chan<- struct{}) {
	for {
		err := n.Notify(ctx, func() {
			select {
			case wake <- struct{}{}:
			default: // a wake-up is already pending
			}
		})
		if ctx.Err() != nil {
			return
		}
		s.log.WarnContext(ctx, "change notifications lost; polling until they resume", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// followOnce applies the changes after cursor and returns the new cursor.
// A cursor of -1 starts following: everything cached so far is dropped and
// every custom key store connection rechecked, since changes made before
// are unknown.
func (s *Service) followOnce(ctx context.Context, cursor int64) (int64, error) {
	v := s.view
	if cursor < 0 {
		last, err := v.st.LastChange(ctx)
		if err != nil {
			return cursor, err
		}
		v.dropAll()
		s.goRecheckAll(ctx)
		return last, nil
	}
	for {
		cs, err := v.st.Changes(ctx, cursor, changesPage)
		if errors.Is(err, store.ErrChangesPruned) {
			s.log.WarnContext(ctx, "changes were pruned before this node read them; dropping every cached entry")
			return s.followOnce(ctx, -1)
		}
		if err != nil {
			return cursor, err
		}
		for i := range cs {
			s.apply(ctx, &cs[i])
			cursor = cs[i].Seq
		}
		if len(cs) < changesPage {
			return cursor, nil
		}
	}
}

// apply drops what the view holds of the record a change names.
func (s *Service) apply(ctx context.Context, c *store.Change) {
	v := s.view
	switch c.Kind {
	case store.ChangeKey:
		v.dropKey(c.ID)
	case store.ChangeMaterial:
		// A material removed (imported material deleted or expired, a
		// key deleted) must not stay usable from memory.
		v.dropKey(c.ID)
		s.materials.evictKey(c.ID)
	case store.ChangeGrant:
		v.dropGrants(c.KeyID)
	case store.ChangeAlias:
		v.dropAlias(c.Account, c.Region, c.ID)
	case store.ChangeCustomKeyStore:
		v.dropCKS(c.ID)
		s.goRecheck(ctx, c.ID)
	case store.ChangeAccessKey, store.ChangeSetting:
		// Not cached by the view: identities and the root of trust
		// follow the feed themselves.
	default:
		// A kind this node does not know (a newer node wrote it): drop
		// everything rather than risk keeping what it changed.
		v.dropAll()
	}
}

// Errors of lookups through the view, as the operations report them.

func (s *Service) keyOrNotFound(ctx context.Context, id, arn string) (*keyEntry, error) {
	e, err := s.view.key(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, awserr.Newf(awserr.NotFound, "Key '%s' does not exist", arn)
	}
	if err != nil {
		return nil, internal("get key", err)
	}
	return e, nil
}

// boundedMap is a concurrent map of at most max entries (approximately:
// concurrent stores may overshoot by a few). Reads take no lock. When full,
// a store evicts about an eighth of the entries, arbitrary ones.
type boundedMap[K comparable, V comparable] struct {
	m   sync.Map
	n   atomic.Int64
	max int64
}

func (b *boundedMap[K, V]) load(k K) (V, bool) {
	x, ok := b.m.Load(k)
	if !ok {
		var zero V
		return zero, false
	}
	return x.(V), true
}

func (b *boundedMap[K, V]) store(k K, v V) {
	if _, loaded := b.m.Swap(k, v); loaded {
		return
	}
	if b.n.Add(1) > b.max {
		keep := b.max - b.max/8
		b.m.Range(func(k, _ any) bool {
			b.delete(k.(K))
			return b.n.Load() > keep
		})
	}
}

func (b *boundedMap[K, V]) delete(k K) {
	if _, ok := b.m.LoadAndDelete(k); ok {
		b.n.Add(-1)
	}
}

func (b *boundedMap[K, V]) compareAndDelete(k K, v V) {
	if b.m.CompareAndDelete(k, v) {
		b.n.Add(-1)
	}
}

func (b *boundedMap[K, V]) clear() {
	b.m.Range(func(k, _ any) bool {
		b.delete(k.(K))
		return true
	})
}

func (b *boundedMap[K, V]) len() int { return int(b.n.Load()) }
