package storetest

import (
	"bytes"
	"errors"
	"testing"

	"github.com/kmsd/kmsd/internal/store"
)

// ListWrapped and UpdateWrapped: what root rotation rewraps.

func listAllWrapped(t *testing.T, s store.Store, kind string, limit int) []*store.Wrapped {
	t.Helper()
	var all []*store.Wrapped
	var after store.WrappedRef
	for {
		page, err := s.ListWrapped(t.Context(), kind, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if len(page) < limit {
			return all
		}
		after = page[len(page)-1].WrappedRef
	}
}

func testWrapped(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, id := range []string{"k2", "k1"} {
		mustCreateKey(t, s, newKey(id, account2, region2), newMaterial(id, 0))
		if err := s.AddMaterial(ctx, newMaterial(id, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutImportParams(ctx, &store.ImportParams{KeyID: "k1", ID: "p1", WrappedPrivateKey: []byte("wp1"), Created: base, ValidTo: base}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"AKIAB", "AKIAA", "AKIAC"} {
		if err := s.PutAccessKey(ctx, &store.AccessKey{ID: id, Account: account, PrincipalARN: "arn:aws:iam::" + account + ":user/u", WrappedSecret: []byte("s-" + id), Created: base}); err != nil {
			t.Fatal(err)
		}
	}

	mats := listAllWrapped(t, s, store.WrappedMaterial, 3)
	if len(mats) != 4 {
		t.Fatalf("materials: got %d, want 4", len(mats))
	}
	for i, w := range mats {
		wantKey := []string{"k1", "k1", "k2", "k2"}[i]
		if w.Kind != store.WrappedMaterial || w.KeyID != wantKey || w.Account != account2 || w.Region != region2 {
			t.Errorf("material %d: %+v", i, w.WrappedRef)
		}
		m, err := s.GetMaterial(ctx, w.KeyID, w.ID)
		if err != nil || !bytes.Equal(m.Wrapped, w.Blob) {
			t.Errorf("material %d: blob %q, stored %v (%v)", i, w.Blob, m, err)
		}
	}
	if mats[0].ID > mats[1].ID {
		t.Errorf("materials not ordered by id: %s, %s", mats[0].ID, mats[1].ID)
	}
	aks := listAllWrapped(t, s, store.WrappedAccessKey, 2)
	var ids []string
	for _, w := range aks {
		ids = append(ids, w.ID)
		if string(w.Blob) != "s-"+w.ID || w.KeyID != "" {
			t.Errorf("access key %+v: blob %q", w.WrappedRef, w.Blob)
		}
	}
	checkStrings(t, "access keys", ids, []string{"AKIAA", "AKIAB", "AKIAC"})
	ps := listAllWrapped(t, s, store.WrappedImportParams, 10)
	if len(ps) != 1 || ps[0].KeyID != "k1" || ps[0].ID != "p1" || string(ps[0].Blob) != "wp1" || ps[0].Account != account2 {
		t.Fatalf("import params: %+v", ps)
	}

	// Compare and set.
	m := mats[0]
	checkConflictOnly(t, "UpdateWrapped with a stale old blob", s.UpdateWrapped(ctx, m.WrappedRef, []byte("not the blob"), []byte("x")))
	if err := s.UpdateWrapped(ctx, m.WrappedRef, m.Blob, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetMaterial(ctx, m.KeyID, m.ID); got == nil || string(got.Wrapped) != "new" {
		t.Errorf("material after UpdateWrapped: %v", got)
	}
	checkConflictOnly(t, "second UpdateWrapped with the replaced blob", s.UpdateWrapped(ctx, m.WrappedRef, m.Blob, []byte("newer")))
	if err := s.UpdateWrapped(ctx, aks[1].WrappedRef, aks[1].Blob, []byte("ak-new")); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetAccessKey(ctx, aks[1].ID); got == nil || string(got.WrappedSecret) != "ak-new" {
		t.Errorf("access key after UpdateWrapped: %v", got)
	}
	if err := s.UpdateWrapped(ctx, ps[0].WrappedRef, ps[0].Blob, []byte("wp-new")); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetImportParams(ctx, "k1", "p1"); got == nil || string(got.WrappedPrivateKey) != "wp-new" {
		t.Errorf("import params after UpdateWrapped: %v", got)
	}
	// Every kind compares on its blob: a stale blob conflicts.
	checkConflictOnly(t, "UpdateWrapped of an access key with its replaced blob", s.UpdateWrapped(ctx, aks[1].WrappedRef, aks[1].Blob, []byte("x")))
	checkConflictOnly(t, "UpdateWrapped of import parameters with their replaced blob", s.UpdateWrapped(ctx, ps[0].WrappedRef, ps[0].Blob, []byte("x")))
	missing := store.WrappedRef{Kind: store.WrappedAccessKey, ID: "AKIAZ"}
	if err := s.UpdateWrapped(ctx, missing, nil, []byte("x")); !errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		t.Errorf("UpdateWrapped of a missing record: %v, want ErrNotFound only", err)
	}
	if _, err := s.ListWrapped(ctx, "bogus", store.WrappedRef{}, 10); err == nil {
		t.Error("ListWrapped of an unknown kind: no error")
	}
}
