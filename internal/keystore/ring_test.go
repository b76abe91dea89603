package keystore

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
)

func TestRing(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	old, err := OpenFile(filepath.Join(dir, "old.key"))
	if err != nil {
		t.Fatal(err)
	}
	cur, err := OpenFile(filepath.Join(dir, "new.key"))
	if err != nil {
		t.Fatal(err)
	}
	aad := []byte("aad")
	underOld, err := old.Wrap(ctx, []byte("old secret"), aad)
	if err != nil {
		t.Fatal(err)
	}

	r, err := NewRing(cur, old)
	if err != nil {
		t.Fatal(err)
	}
	if r.ID() != cur.ID() || r.Current() != Root(cur) {
		t.Errorf("ring id %s, want the current root's %s", r.ID(), cur.ID())
	}
	// Unwrap picks the root by id.
	if pt, err := r.Unwrap(ctx, underOld, aad); err != nil || string(pt) != "old secret" {
		t.Fatalf("unwrap under the old root: %q, %v", pt, err)
	}
	// Wrap uses the current root.
	w, err := r.Wrap(ctx, []byte("new secret"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := WrappedRootID(w); !ok || id != cur.ID() {
		t.Errorf("ring wrapped under %s, want %s", id, cur.ID())
	}
	if pt, err := cur.Unwrap(ctx, w, aad); err != nil || string(pt) != "new secret" {
		t.Fatalf("current root unwraps the ring's wrap: %q, %v", pt, err)
	}
	if pt, err := r.Unwrap(ctx, w, aad); err != nil || string(pt) != "new secret" {
		t.Fatalf("ring unwraps its wrap: %q, %v", pt, err)
	}
	// The aad is still bound.
	if _, err := r.Unwrap(ctx, underOld, []byte("other")); !errors.Is(err, ErrUnwrap) {
		t.Errorf("unwrap with other aad: %v", err)
	}

	// Without the old root, its blobs fail cleanly and the message names it.
	only, err := NewRing(cur)
	if err != nil {
		t.Fatal(err)
	}
	_, err = only.Unwrap(ctx, underOld, aad)
	if !errors.Is(err, ErrUnwrap) || !bytes.Contains([]byte(err.Error()), []byte(old.ID())) {
		t.Errorf("unwrap under a root not in the ring: %v", err)
	}
	for _, short := range [][]byte{nil, {1}, underOld[:8]} {
		if _, err := r.Unwrap(ctx, short, aad); !errors.Is(err, ErrUnwrap) {
			t.Errorf("unwrap of %d bytes: %v", len(short), err)
		}
	}
	if _, err := NewRing(cur, old, old); err == nil {
		t.Error("NewRing accepted a root twice")
	}
	if _, err := NewRing(cur, cur); err == nil {
		t.Error("NewRing accepted the current root as an older one")
	}
}
