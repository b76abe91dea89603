package kms

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/store"
)

// The connections of custom key stores.
//
// A store's connection state is shared (a store record, cached by the view
// like any other record, view.go); the connections are this node's: each
// node logs in to the token of every custom key store recorded CONNECTED.
// Two rules keep a node in line with the others:
//
//   - A key's HSM is used only when the store's record, read through the
//     view, says CONNECTED now: the view's rules (change feed, time-to-live,
//     nothing trusted once the feed is stale) bound how long a store
//     disconnected on another node stays usable here, whether or not this
//     node has closed its connection yet (keyHSM).
//   - The connections follow the records: at once for each change the feed
//     names, for every store whenever the view starts over (Follow's first
//     read, a pruned feed) and every time-to-live as a backstop, and
//     whenever keyHSM finds a connection its record no longer wants.
//
// Keys of a store that is not connected here are Unavailable.

// cksState is the Service's view of its custom key stores' connections.
type cksState struct {
	clusters HSMClusters
	// mu serializes connection changes (connect, disconnect, restore,
	// recheck); readers use conns alone.
	mu    sync.Mutex
	conns atomic.Pointer[map[string]*cksConn] // connected store id -> connection; never mutated once stored
	// closed is set by CloseCustomKeyStores (under mu): no recheck
	// connects anything afterwards.
	closed bool
	// queue runs the rechecks in the background, at most one per store
	// (and one of every store) at a time.
	queue recheckQueue
	// lastRecheck is when (UnixNano) the last recheck of every store
	// started.
	lastRecheck atomic.Int64
}

// cksConn is this node's connection to the token of one custom key store.
type cksConn struct {
	hsm HSM
	// cluster is the cluster it logged in to: a record that names another
	// one (the store was disconnected, moved and connected again while this
	// node did not follow) needs a new connection.
	cluster string
}

func (c *cksState) conn(id string) *cksConn {
	if m := c.conns.Load(); m != nil {
		return (*m)[id]
	}
	return nil
}

// hsm returns this node's connection to store id, nil when none. It
// ignores the shared state: the hot path goes through Service.keyHSM.
func (c *cksState) hsm(id string) HSM {
	if cc := c.conn(id); cc != nil {
		return cc.hsm
	}
	return nil
}

// setConn publishes a new connection map with id connected to cc (or
// removed when cc is nil). c.mu must be held.
func (c *cksState) setConn(id string, cc *cksConn) {
	next := map[string]*cksConn{}
	if m := c.conns.Load(); m != nil {
		next = maps.Clone(*m)
	}
	if cc == nil {
		delete(next, id)
	} else {
		next[id] = cc
	}
	c.conns.Store(&next)
}

// connectedState reports whether a store in state wants a connection.
func connectedState(state string) bool {
	return state == ConnectionConnected || state == ConnectionConnecting
}

// CloseCustomKeyStores closes every open HSM connection (on shutdown).
func (s *Service) CloseCustomKeyStores() {
	s.cks.mu.Lock()
	defer s.cks.mu.Unlock()
	s.cks.closed = true
	if m := s.cks.conns.Load(); m != nil {
		for _, cc := range *m {
			cc.hsm.Close()
		}
	}
	s.cks.conns.Store(nil)
}

// ConnectCustomKeyStore logs in to the store's token. Like AWS it answers
// success whether the connection succeeds or fails; DescribeCustomKeyStores
// then shows CONNECTED, or FAILED with a ConnectionErrorCode. (kmsd
// connects before it answers, so there is no CONNECTING phase to poll.)
// A store that is CONNECTED stays so; a FAILED one must be disconnected
// first, as on AWS.
func (s *Service) ConnectCustomKeyStore(ctx context.Context, c Caller, in *CustomKeyStoreIdInput) error {
	cks, err := s.lockCKS(ctx, c, in.CustomKeyStoreId)
	if err != nil {
		return err
	}
	defer s.cks.mu.Unlock()
	switch cks.ConnectionState {
	case ConnectionConnected, ConnectionConnecting:
		if cc := s.cks.conn(cks.ID); cc != nil && cc.cluster == cks.ClusterID {
			return nil
		}
	case ConnectionFailed:
		return cksInvalidState(cks, "ConnectCustomKeyStore", "disconnect a FAILED custom key store before connecting it again")
	case ConnectionDisconnected:
	default:
		return cksInvalidState(cks, "ConnectCustomKeyStore", "wait until the state changes")
	}
	return s.connectLocked(ctx, cks)
}

// lockCKS takes the connection lock and reads the caller's store id under
// it, so that its state cannot change until the caller, on success,
// unlocks s.cks.mu.
func (s *Service) lockCKS(ctx context.Context, c Caller, id string) (*store.CustomKeyStore, error) {
	s.cks.mu.Lock()
	cks, err := s.customKeyStore(ctx, c, id)
	if err != nil {
		s.cks.mu.Unlock()
		return nil, err
	}
	return cks, nil
}

// connectLocked logs in to cks's cluster and records the outcome. Only an
// internal fault is returned; a failed login is a FAILED state.
func (s *Service) connectLocked(ctx context.Context, cks *store.CustomKeyStore) error {
	state, code := ConnectionConnected, ""
	h, err := s.dialCKS(ctx, cks)
	if err != nil {
		var ce *ConnectionError
		if !errors.As(err, &ce) {
			ce = &ConnectionError{Code: ConnectionInternalError, Err: err}
		}
		state, code = ConnectionFailed, ce.Code
		s.log.WarnContext(ctx, "custom key store connection failed", "custom_key_store", cks.ID, "cluster", cks.ClusterID, "code", ce.Code, "err", ce.Err)
	}
	_, err = s.store.UpdateCustomKeyStore(ctx, cks.ID, func(cur *store.CustomKeyStore) error {
		cur.ConnectionState, cur.ConnectionErrorCode = state, code
		return nil
	})
	s.view.dropCKS(cks.ID)
	if err != nil {
		if h != nil {
			h.Close()
		}
		return internal("record custom key store connection", err)
	}
	if old := s.cks.conn(cks.ID); old != nil {
		// A connection to the cluster the store named before.
		s.cks.setConn(cks.ID, nil)
		old.hsm.Close()
	}
	if h != nil {
		s.cks.setConn(cks.ID, &cksConn{hsm: h, cluster: cks.ClusterID})
		s.log.InfoContext(ctx, "custom key store connected", "custom_key_store", cks.ID, "cluster", cks.ClusterID)
	}
	return nil
}

// dialCKS unwraps the store's password and logs in to its cluster.
func (s *Service) dialCKS(ctx context.Context, cks *store.CustomKeyStore) (HSM, error) {
	if s.cks.clusters == nil {
		return nil, &ConnectionError{Code: ConnectionClusterNotFound, Err: errors.New("no hsm_clusters are configured")}
	}
	if _, ok := s.cks.clusters.Lookup(cks.ClusterID); !ok {
		return nil, &ConnectionError{Code: ConnectionClusterNotFound, Err: fmt.Errorf("cluster %s is not configured", cks.ClusterID)}
	}
	pw, err := s.keystore.Unwrap(ctx, cks.WrappedPassword, cksPasswordAAD(cks.Account, cks.Region, cks.ID))
	if err != nil {
		return nil, fmt.Errorf("unwrap key store password: %w", err)
	}
	defer clear(pw)
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	return s.cks.clusters.Connect(cctx, cks.ClusterID, string(pw))
}

// DisconnectCustomKeyStore closes the store's connection. Its keys become
// Unavailable until it is connected again.
func (s *Service) DisconnectCustomKeyStore(ctx context.Context, c Caller, in *CustomKeyStoreIdInput) error {
	cks, err := s.lockCKS(ctx, c, in.CustomKeyStoreId)
	if err != nil {
		return err
	}
	defer s.cks.mu.Unlock()
	if cks.ConnectionState == ConnectionDisconnected {
		return cksInvalidState(cks, "DisconnectCustomKeyStore", "it is already disconnected")
	}
	_, err = s.store.UpdateCustomKeyStore(ctx, cks.ID, func(cur *store.CustomKeyStore) error {
		cur.ConnectionState, cur.ConnectionErrorCode = ConnectionDisconnected, ""
		return nil
	})
	s.view.dropCKS(cks.ID)
	if err != nil {
		return internal("record custom key store disconnection", err)
	}
	if cc := s.cks.conn(cks.ID); cc != nil {
		s.cks.setConn(cks.ID, nil)
		cc.hsm.Close()
	}
	s.log.InfoContext(ctx, "custom key store disconnected", "custom_key_store", cks.ID)
	return nil
}

// RestoreCustomKeyStores reconnects, at start, every custom key store that
// was CONNECTED: a store whose token cannot be reached becomes FAILED
// (with its error code) and its keys Unavailable until an operator
// disconnects and connects it again. What changes after it read the stores
// and before Follow's first read of the feed is caught by that read, which
// rechecks every store.
func (s *Service) RestoreCustomKeyStores(ctx context.Context) error {
	all, err := s.listAllCKS(ctx, "", "")
	if err != nil {
		return err
	}
	s.cks.mu.Lock()
	defer s.cks.mu.Unlock()
	for _, cks := range all {
		if !connectedState(cks.ConnectionState) {
			continue
		}
		if s.cks.conn(cks.ID) != nil {
			continue
		}
		if err := s.connectLocked(ctx, cks); err != nil {
			return err
		}
	}
	return nil
}

// recheckCustomKeyStore brings this node's connection to custom key store
// id in line with its shared state, read from the store: a store recorded
// CONNECTED is connected here too (to the cluster it names), and one that
// is not (or is gone) has its connection here closed. A node that cannot
// log in logs it and leaves the shared state alone: the cluster may be
// reachable from the others.
func (s *Service) recheckCustomKeyStore(ctx context.Context, id string) {
	s.cks.mu.Lock()
	defer s.cks.mu.Unlock()
	cks, err := s.store.GetCustomKeyStore(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.WarnContext(ctx, "cannot read custom key store to follow its state", "custom_key_store", id, "err", err)
		return
	}
	if err != nil {
		cks = nil
	}
	s.reconcileLocked(ctx, id, cks)
}

// reconcileLocked makes this node's connection to store id match cks (nil:
// the store is gone). s.cks.mu must be held.
func (s *Service) reconcileLocked(ctx context.Context, id string, cks *store.CustomKeyStore) {
	cc := s.cks.conn(id)
	want := cks != nil && connectedState(cks.ConnectionState)
	if cc != nil && (!want || cc.cluster != cks.ClusterID) {
		s.cks.setConn(id, nil)
		cc.hsm.Close()
		s.log.InfoContext(ctx, "custom key store disconnected", "custom_key_store", id)
		cc = nil
	}
	if want && cc == nil && !s.cks.closed {
		h, err := s.dialCKS(ctx, cks)
		if err != nil {
			s.log.WarnContext(ctx, "custom key store connected elsewhere cannot connect here", "custom_key_store", id, "cluster", cks.ClusterID, "err", err)
			return
		}
		s.cks.setConn(id, &cksConn{hsm: h, cluster: cks.ClusterID})
		s.log.InfoContext(ctx, "custom key store connected", "custom_key_store", id, "cluster", cks.ClusterID)
	}
}

// recheckCustomKeyStores brings every connection in line with the stores'
// shared state: each store recorded in the store, and each connection of a
// store no longer there.
func (s *Service) recheckCustomKeyStores(ctx context.Context) {
	s.cks.lastRecheck.Store(time.Now().UnixNano())
	all, err := s.listAllCKS(ctx, "", "")
	if err != nil {
		s.log.WarnContext(ctx, "cannot list custom key stores to follow their state", "err", err)
		return
	}
	s.cks.mu.Lock()
	defer s.cks.mu.Unlock()
	seen := make(map[string]bool, len(all))
	for _, cks := range all {
		seen[cks.ID] = true
		s.reconcileLocked(ctx, cks.ID, cks)
	}
	if m := s.cks.conns.Load(); m != nil {
		for id := range *m {
			if !seen[id] {
				s.reconcileLocked(ctx, id, nil)
			}
		}
	}
}

// recheckQueue runs rechecks in the background: connecting may take
// seconds, never in the way of the feed or a request. A recheck asked for
// while the same one runs is run again once it ends (it may have read the
// store before the change that asked for it); asked for several times
// meanwhile, it runs again once.
type recheckQueue struct {
	mu sync.Mutex
	// again is keyed by store id ("" for every store): present while its
	// recheck runs, true when it must run again.
	again map[string]bool
}

// run starts fn for key unless it is running, in which case it is run
// again after.
func (q *recheckQueue) run(key string, fn func()) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.again == nil {
		q.again = map[string]bool{}
	}
	if _, running := q.again[key]; running {
		q.again[key] = true
		return
	}
	q.again[key] = false
	go func() {
		for {
			fn()
			q.mu.Lock()
			if !q.again[key] {
				delete(q.again, key)
				q.mu.Unlock()
				return
			}
			q.again[key] = false
			q.mu.Unlock()
		}
	}()
}

// goRecheckAll rechecks every store in the background.
func (s *Service) goRecheckAll(ctx context.Context) {
	s.cks.queue.run("", func() { s.recheckCustomKeyStores(ctx) })
}

// goRecheck rechecks store id in the background.
func (s *Service) goRecheck(ctx context.Context, id string) {
	s.cks.queue.run(id, func() { s.recheckCustomKeyStore(ctx, id) })
}

// keyHSM returns the connection of the custom key store of k, or
// KMSInvalidStateException when the store is not connected. The store's
// state is read through the view, so it obeys the view's rules: a store
// disconnected on another node is refused here within the feed's bound,
// and while the feed is stale the state is read from the store (an
// unreachable store is an internal fault, never a stale connection).
func (s *Service) keyHSM(ctx context.Context, k *store.Key) (HSM, error) {
	h, err := s.cksHSM(ctx, k.CustomKeyStoreID)
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, awserr.Newf(awserr.KMSInvalidState, "%s is unavailable: its custom key store %s is not connected.", arnOf(k), k.CustomKeyStoreID)
	}
	return h, nil
}

// cksHSM returns this node's connection to store id if the store's shared
// state (through the view) says CONNECTED, nil if not. A connection the
// state no longer wants is closed in the background; a missing one is left
// to the feed and the periodic recheck (dialing from the hot path would
// retry a failing login at the rate of requests).
func (s *Service) cksHSM(ctx context.Context, id string) (HSM, error) {
	cks, err := s.view.customKeyStore(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, internal("get custom key store "+id, err)
	}
	cc := s.cks.conn(id)
	if cc == nil {
		return nil, nil
	}
	if err != nil || !connectedState(cks.ConnectionState) || cc.cluster != cks.ClusterID {
		// The request's context ends with the request; the recheck must
		// not.
		s.goRecheck(context.WithoutCancel(ctx), id)
		return nil, nil
	}
	return cc.hsm, nil
}

// keyState is the state of k as clients see it: a key of a custom key
// store that is not connected is Unavailable (unless pending deletion).
func (s *Service) keyState(ctx context.Context, k *store.Key) (string, error) {
	if k.CustomKeyStoreID == "" || k.State == StatePendingDeletion {
		return k.State, nil
	}
	h, err := s.cksHSM(ctx, k.CustomKeyStoreID)
	if err != nil {
		return "", err
	}
	if h == nil {
		return StateUnavailable, nil
	}
	return k.State, nil
}
