package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/rootmgr"
)

// A kmsd command that changes state (kmsd iam create-access-key, kmsd root
// rotate, migrate, retire, kmsd audit accept-reset) leaves an audit record
// of it in the data folder's log, like a request does. The signing key is
// loaded before the change is made, so that a command that could not
// record its change does not make it.

// operatorAudit records the changes of one kmsd command.
type operatorAudit struct {
	opts  audit.Options
	close func() // closes the roots opened for the signing key, if any
}

// newOperatorAudit loads the data folder's audit signing key: with the
// open keystore of f, or with the roots opened for the purpose (on a
// sealed folder, by the seal key unseal gives).
func newOperatorAudit(ctx context.Context, f *dataFolder, unseal rootmgr.UnsealFunc, stderr io.Writer) (*operatorAudit, error) {
	discard := slog.New(slog.DiscardHandler)
	var ks keystore.Keystore
	closeRing := func() {}
	switch {
	case f.ks != nil:
		ks = f.ks
	case f.sealed == nil:
		ring, err := f.roots.OpenLiveRing(ctx, nil, discard)
		if err != nil {
			return nil, err
		}
		// The signing key is unwrapped into memory: the roots are closed
		// at once, before the command opens them for its own work.
		defer ring.Close()
		ks = ring
	case unseal == nil:
		return nil, fmt.Errorf("%w (%s): the audit signing key is wrapped by the root; give the unseal material, to sign the command's audit record", rootmgr.ErrSealed, f.sealed.Describe())
	default:
		key, err := unseal(*f.sealed)
		if err != nil {
			return nil, err
		}
		ring, err := f.roots.OpenLiveRing(ctx, key, discard)
		if err != nil {
			return nil, err
		}
		// Closed at the end of the command, not at once: closing wipes
		// the seal key, which the command's own work uses too
		// (onceUnseal hands out one key).
		ks, closeRing = ring, ring.Close
	}
	a, err := operatorAuditWith(ctx, f, ks, stderr)
	if err != nil {
		closeRing()
		return nil, err
	}
	a.close = closeRing
	return a, nil
}

// operatorAuditWith loads the data folder's audit signing key with ks.
func operatorAuditWith(ctx context.Context, f *dataFolder, ks audit.Wrapper, stderr io.Writer) (*operatorAudit, error) {
	signer, err := audit.LoadSigningKey(ctx, filepath.Join(f.cfg.DataDir, audit.SigningKeyFile), ks)
	if err != nil {
		return nil, fmt.Errorf("audit signing key (to record the command in the audit log): %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return &operatorAudit{opts: auditOptions(f.cfg, signer, f.st, log), close: func() {}}, nil
}

// record appends rec to the log (audit.AppendOne): at once when no kmsd
// serve holds it, else kept in the store for the running kmsd serve to
// append within seconds. It says which on w.
func (a *operatorAudit) record(ctx context.Context, rec *audit.Record, w io.Writer) error {
	kept, err := audit.AppendOne(ctx, a.opts, rec)
	if err != nil {
		return fmt.Errorf("recording the command in the audit log: %w", err)
	}
	if kept {
		fmt.Fprintf(w, "Audit: the record of this command (eventID %s) is kept in the store; kmsd serve appends it to its audit log (within seconds while it runs, else when it starts).\n", rec.EventID)
	} else {
		fmt.Fprintf(w, "Audit: recorded as record %d of the audit log (eventID %s).\n", rec.Sequence, rec.EventID)
	}
	return nil
}

// onceUnseal returns an UnsealFunc that asks for the unseal material once
// and gives the same seal key to every later call: every root of a sealed
// folder is sealed under one seal key, and a terminal user is asked once.
func onceUnseal(material *unsealMaterial, stderr io.Writer) rootmgr.UnsealFunc {
	var key *keystore.SealKey
	return func(info keystore.SealInfo) (*keystore.SealKey, error) {
		if key != nil {
			return key, nil
		}
		k, err := material.localKey(info, stderr)
		if err != nil {
			return nil, err
		}
		key = k
		return key, nil
	}
}
