package kms

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/store"
)

// The connections of custom key stores: each node logs in to the token of
// every custom key store whose shared state is CONNECTED, and follows
// that state as other nodes change it (view.go). Keys of a store that is
// not connected here are Unavailable.

// cksState is the Service's view of its custom key stores' connections.
type cksState struct {
	clusters HSMClusters
	// mu serializes connection changes (connect, disconnect, restore);
	// readers use conns alone.
	mu    sync.Mutex
	conns atomic.Pointer[map[string]HSM] // connected store id -> HSM; never mutated once stored
}

func (c *cksState) hsm(id string) HSM {
	if m := c.conns.Load(); m != nil {
		return (*m)[id]
	}
	return nil
}

// setConn publishes a new connection map with id connected to h (or
// removed when h is nil). c.mu must be held.
func (c *cksState) setConn(id string, h HSM) {
	next := map[string]HSM{}
	if m := c.conns.Load(); m != nil {
		next = maps.Clone(*m)
	}
	if h == nil {
		delete(next, id)
	} else {
		next[id] = h
	}
	c.conns.Store(&next)
}

// CloseCustomKeyStores closes every open HSM connection (on shutdown).
func (s *Service) CloseCustomKeyStores() {
	s.cks.mu.Lock()
	defer s.cks.mu.Unlock()
	if m := s.cks.conns.Load(); m != nil {
		for _, h := range *m {
			h.Close()
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
		if s.cks.hsm(cks.ID) != nil {
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
	if err != nil {
		if h != nil {
			h.Close()
		}
		return internal("record custom key store connection", err)
	}
	if h != nil {
		s.cks.setConn(cks.ID, h)
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
	if err != nil {
		return internal("record custom key store disconnection", err)
	}
	if h := s.cks.hsm(cks.ID); h != nil {
		s.cks.setConn(cks.ID, nil)
		h.Close()
	}
	s.log.InfoContext(ctx, "custom key store disconnected", "custom_key_store", cks.ID)
	return nil
}

// RestoreCustomKeyStores reconnects, at start, every custom key store that
// was CONNECTED: a store whose token cannot be reached becomes FAILED
// (with its error code) and its keys Unavailable until an operator
// disconnects and connects it again.
func (s *Service) RestoreCustomKeyStores(ctx context.Context) error {
	all, err := s.listAllCKS(ctx, "", "")
	if err != nil {
		return err
	}
	s.cks.mu.Lock()
	defer s.cks.mu.Unlock()
	for _, cks := range all {
		if cks.ConnectionState != ConnectionConnected && cks.ConnectionState != ConnectionConnecting {
			continue
		}
		if s.cks.hsm(cks.ID) != nil {
			continue
		}
		if err := s.connectLocked(ctx, cks); err != nil {
			return err
		}
	}
	return nil
}

// followCustomKeyStore brings this node's connection to custom key store
// id in line with its shared state, after another node (or this one)
// changed it: a store recorded CONNECTED is connected here too, and one
// that is not (or is gone) has its connection here closed. A node that
// cannot log in logs it and leaves the shared state alone: the cluster may
// be reachable from the others.
func (s *Service) followCustomKeyStore(ctx context.Context, id string) {
	s.cks.mu.Lock()
	defer s.cks.mu.Unlock()
	cks, err := s.store.GetCustomKeyStore(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.WarnContext(ctx, "cannot read custom key store after a change", "custom_key_store", id, "err", err)
		return
	}
	h := s.cks.hsm(id)
	want := err == nil && (cks.ConnectionState == ConnectionConnected || cks.ConnectionState == ConnectionConnecting)
	switch {
	case want && h == nil:
		h, err := s.dialCKS(ctx, cks)
		if err != nil {
			s.log.WarnContext(ctx, "custom key store connected elsewhere cannot connect here", "custom_key_store", id, "cluster", cks.ClusterID, "err", err)
			return
		}
		s.cks.setConn(id, h)
		s.log.InfoContext(ctx, "custom key store connected", "custom_key_store", id, "cluster", cks.ClusterID)
	case !want && h != nil:
		s.cks.setConn(id, nil)
		h.Close()
		s.log.InfoContext(ctx, "custom key store disconnected", "custom_key_store", id)
	}
}

// keyHSM returns the connection of the custom key store of k, or
// KMSInvalidStateException when the store is not connected.
func (s *Service) keyHSM(k *store.Key) (HSM, error) {
	if h := s.cks.hsm(k.CustomKeyStoreID); h != nil {
		return h, nil
	}
	return nil, awserr.Newf(awserr.KMSInvalidState, "%s is unavailable: its custom key store %s is not connected.", arnOf(k), k.CustomKeyStoreID)
}

// keyState is the state of k as clients see it: a key of a custom key
// store that is not connected is Unavailable (unless pending deletion).
func (s *Service) keyState(k *store.Key) string {
	if k.CustomKeyStoreID != "" && k.State != StatePendingDeletion && s.cks.hsm(k.CustomKeyStoreID) == nil {
		return StateUnavailable
	}
	return k.State
}
