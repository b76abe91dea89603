package kms

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/store"
)

// MaxAliasesPerKey is AWS's alias quota per key.
const MaxAliasesPerKey = 50

// AliasInput is the CreateAlias and UpdateAlias request.
type AliasInput struct {
	AliasName   string
	TargetKeyId string
}

// DeleteAliasInput is the DeleteAlias request.
type DeleteAliasInput struct {
	AliasName string
}

// checkAliasName applies AWS's rules for names of customer aliases: a name
// that does not begin with "alias/" and a name is ValidationException; the
// prefix alias/aws/ is AWS's, for AWS managed keys, and no caller may
// create, move or delete such an alias (NotAuthorizedException); a colon,
// which the model's pattern allows, would make the alias ARN ambiguous
// (InvalidAliasNameException).
func checkAliasName(name string) error {
	if !strings.HasPrefix(name, "alias/") || len(name) == len("alias/") {
		return awserr.Invalid(awserr.Violation{Field: "aliasName", Value: name,
			Constraint: "Member must satisfy regular expression pattern: ^alias/[a-zA-Z0-9/_-]+$"})
	}
	if strings.HasPrefix(name, "alias/aws/") || name == "alias/aws" {
		return awserr.Newf(awserr.NotAuthorized, "The alias %s is reserved: names that begin with alias/aws/ belong to AWS managed keys.", name)
	}
	if strings.Contains(name, ":") {
		return awserr.Newf(awserr.InvalidAliasName, "Alias name %s is not valid: it may hold letters, digits, '/', '_' and '-' only.", name)
	}
	return nil
}

// aliasTargetKey resolves the key an alias is to point at: a customer key of
// the caller's account, named by id or ARN, not pending deletion.
func (s *Service) aliasTargetKey(ctx context.Context, c Caller, keyID string) (*store.Key, error) {
	k, err := s.resolve(ctx, c, keyID, idOrARN)
	if err != nil {
		return nil, err
	}
	if err := checkManageable(k); err != nil {
		return nil, err
	}
	return k, nil
}

// CreateAlias names a key.
func (s *Service) CreateAlias(ctx context.Context, c Caller, in *AliasInput) error {
	if err := checkAliasName(in.AliasName); err != nil {
		return err
	}
	k, err := s.aliasTargetKey(ctx, c, in.TargetKeyId)
	if err != nil {
		return err
	}
	n, err := s.store.CountAliases(ctx, k.ID)
	if err != nil {
		return internal("count aliases", err)
	}
	if n >= MaxAliasesPerKey {
		return awserr.Newf(awserr.LimitExceeded, "A KMS key can have at most %d aliases.", MaxAliasesPerKey)
	}
	now := s.now().UTC()
	err = s.store.CreateAlias(ctx, &store.Alias{Account: c.Account, Region: c.Region, Name: in.AliasName, KeyID: k.ID, Created: now, Updated: now})
	switch {
	case errors.Is(err, store.ErrExists):
		return awserr.Newf(awserr.AlreadyExists, "An alias with the name %s already exists", c.aliasARN(in.AliasName))
	case errors.Is(err, store.ErrNotFound):
		return notFoundKey(arnOf(k))
	case err != nil:
		return internal("create alias", err)
	}
	s.view.dropAlias(c.Account, c.Region, in.AliasName)
	return nil
}

// UpdateAlias points an existing alias at another key of the same type.
func (s *Service) UpdateAlias(ctx context.Context, c Caller, in *AliasInput) error {
	if err := checkAliasName(in.AliasName); err != nil {
		return err
	}
	old, err := s.store.GetAlias(ctx, c.Account, c.Region, in.AliasName)
	if err != nil {
		return s.aliasWriteError(c, in.AliasName, "get alias", err)
	}
	// The alias moves from the key it pointed at when the request was
	// authorized, and only from that one.
	from := old.KeyID
	cur := authorizedAliasTarget(c, in.AliasName)
	if cur != nil {
		from = cur.ID
	} else if k, err := s.key(ctx, from); err == nil {
		cur = k
	}
	if err := checkAliasAt(c, old, from); err != nil {
		return err
	}
	k, err := s.aliasTargetKey(ctx, c, in.TargetKeyId)
	if err != nil {
		return err
	}
	if cur != nil && (cur.KeySpec != k.KeySpec || cur.KeyUsage != k.KeyUsage) {
		return awserr.Newf(awserr.Validation, "Alias %s points at a %s key with usage %s; it cannot be moved to a %s key with usage %s.",
			in.AliasName, cur.KeySpec, cur.KeyUsage, k.KeySpec, k.KeyUsage)
	}
	// Compare and set in the store: a move by another request since the
	// read above is refused, not overwritten.
	err = s.store.UpdateAlias(ctx, c.Account, c.Region, in.AliasName, from, k.ID, s.now().UTC())
	s.view.dropAlias(c.Account, c.Region, in.AliasName)
	return s.aliasWriteError(c, in.AliasName, "update alias", err)
}

// DeleteAlias removes an alias; the key is unaffected.
func (s *Service) DeleteAlias(ctx context.Context, c Caller, in *DeleteAliasInput) error {
	if err := checkAliasName(in.AliasName); err != nil {
		return err
	}
	// The alias is deleted only while it points at the key it pointed at
	// when the request was authorized (or, for a direct call, when read
	// here): compare and set in the store.
	var from string
	if k := authorizedAliasTarget(c, in.AliasName); k != nil {
		from = k.ID
	} else {
		a, err := s.store.GetAlias(ctx, c.Account, c.Region, in.AliasName)
		if err != nil {
			return s.aliasWriteError(c, in.AliasName, "get alias", err)
		}
		from = a.KeyID
	}
	err := s.store.DeleteAlias(ctx, c.Account, c.Region, in.AliasName, from)
	s.view.dropAlias(c.Account, c.Region, in.AliasName)
	return s.aliasWriteError(c, in.AliasName, "delete alias", err)
}

// aliasWriteError maps the store's answer about an alias to the
// operation's error: a missing alias, or one moved since the request read
// it (or was authorized against it).
func (s *Service) aliasWriteError(c Caller, name, op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return awserr.Newf(awserr.NotFound, "Alias %s is not found.", c.aliasARN(name))
	case errors.Is(err, store.ErrConflict):
		return errAliasMoved(c, name)
	}
	return internal(op, err)
}

// checkAliasAt returns ConflictException unless alias a points at keyID:
// the alias moved after the request was authorized against keyID.
func checkAliasAt(c Caller, a *store.Alias, keyID string) error {
	if a.KeyID != keyID {
		return errAliasMoved(c, a.Name)
	}
	return nil
}

func errAliasMoved(c Caller, name string) error {
	return awserr.Newf(awserr.Conflict, "Alias %s changed while the request was being authorized. Try again.", c.aliasARN(name))
}

// ListAliasesInput is the ListAliases request.
type ListAliasesInput struct {
	KeyId  string
	Limit  *int32
	Marker string
}

// AliasListEntry is one alias in ListAliases.
type AliasListEntry struct {
	AliasName       string
	AliasArn        string
	TargetKeyId     string // bare key id
	CreationDate    time.Time
	LastUpdatedDate time.Time
}

// ListAliasesOutput is the ListAliases response.
type ListAliasesOutput struct {
	Aliases    []AliasListEntry
	NextMarker string
	Truncated  bool
}

// ListAliases lists the aliases of the caller's account, or of one key,
// ordered by name. The marker is the last alias name returned.
func (s *Service) ListAliases(ctx context.Context, c Caller, in *ListAliasesInput) (*ListAliasesOutput, error) {
	if in.Marker != "" && !strings.HasPrefix(in.Marker, "alias/") {
		return nil, errBadMarker
	}
	keyID := ""
	if in.KeyId != "" {
		k, err := s.resolve(ctx, c, in.KeyId, idOrARN)
		if err != nil {
			return nil, err
		}
		keyID = k.ID
	}
	limit := limitOf(in.Limit, 50, 100)
	as, err := s.store.ListAliases(ctx, c.Account, c.Region, keyID, in.Marker, limit+1)
	if err != nil {
		return nil, internal("list aliases", err)
	}
	out := &ListAliasesOutput{Aliases: []AliasListEntry{}}
	if len(as) > limit {
		as = as[:limit]
		out.Truncated = true
		out.NextMarker = as[len(as)-1].Name
	}
	for _, a := range as {
		out.Aliases = append(out.Aliases, AliasListEntry{
			AliasName:       a.Name,
			AliasArn:        aliasARNOf(a),
			TargetKeyId:     keyIDFromRecord(a.KeyID),
			CreationDate:    a.Created,
			LastUpdatedDate: a.Updated,
		})
	}
	return out, nil
}
