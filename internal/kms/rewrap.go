package kms

import (
	"fmt"

	"github.com/kmsd/kmsd/internal/store"
)

// WrappedAAD returns the keystore aad that a stored key material, import
// parameters or custom key store password blob was wrapped with, so that root rotation can unwrap and
// rewrap it exactly.
func WrappedAAD(w *store.Wrapped) ([]byte, error) {
	k := &store.Key{ID: w.KeyID, Account: w.Account, Region: w.Region}
	switch w.Kind {
	case store.WrappedMaterial:
		return materialAAD(arnOf(k), w.ID), nil
	case store.WrappedImportParams:
		return importParamsAAD(arnOf(k), w.ID), nil
	case store.WrappedCustomKeyStorePassword:
		return cksPasswordAAD(w.Account, w.Region, w.ID), nil
	}
	return nil, fmt.Errorf("kms: no aad for wrapped %s", w.Kind)
}
