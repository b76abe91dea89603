package keystore

import (
	"context"
	"encoding/hex"
	"fmt"
)

// Root is a keystore that names its root key: FileKeystore and the PKCS#11
// keystore both are.
type Root interface {
	Keystore
	// ID is the root key id (16 lowercase hex characters) that every wrap
	// under this root carries at bytes 1..8.
	ID() string
}

// Ring is the root of trust during and after a root rotation: Wrap uses
// the current root, Unwrap picks the root that wrapped the blob by the root
// key id in its header (every format version kmsd writes has it at bytes
// 1..8). A Ring is immutable and safe for concurrent use.
type Ring struct {
	current Root
	byID    map[string]Root
}

var _ Keystore = (*Ring)(nil)

// NewRing returns a ring whose Wrap uses current and whose Unwrap also
// accepts blobs wrapped under any of older.
func NewRing(current Root, older ...Root) (*Ring, error) {
	r := &Ring{current: current, byID: map[string]Root{current.ID(): current}}
	for _, o := range older {
		if _, dup := r.byID[o.ID()]; dup {
			return nil, fmt.Errorf("keystore: root key %s listed twice", o.ID())
		}
		r.byID[o.ID()] = o
	}
	return r, nil
}

// ID returns the current root's id.
func (r *Ring) ID() string { return r.current.ID() }

// Current returns the root that Wrap uses.
func (r *Ring) Current() Root { return r.current }

// Wrap wraps under the current root.
func (r *Ring) Wrap(ctx context.Context, plaintext, aad []byte) ([]byte, error) {
	return r.current.Wrap(ctx, plaintext, aad)
}

// Unwrap unwraps with the root named in wrapped's header. It fails with an
// error wrapping ErrUnwrap when no root of the ring has that id.
func (r *Ring) Unwrap(ctx context.Context, wrapped, aad []byte) ([]byte, error) {
	id, ok := WrappedRootID(wrapped)
	if !ok {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrUnwrap, len(wrapped))
	}
	root, ok := r.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w: wrapped under root key %s, which is not among the loaded roots", ErrUnwrap, id)
	}
	return root.Unwrap(ctx, wrapped, aad)
}

// WrappedRootID returns the id of the root key that wrapped a blob (bytes
// 1..8 of its header, as hex), or false when the blob is too short to have
// a header.
func WrappedRootID(wrapped []byte) (string, bool) {
	if len(wrapped) < wrapIDOffset+rootIDSize {
		return "", false
	}
	return hex.EncodeToString(wrapped[wrapIDOffset : wrapIDOffset+rootIDSize]), true
}

// Has reports whether the ring holds the root with the given id.
func (r *Ring) Has(id string) bool {
	_, ok := r.byID[id]
	return ok
}
