package kms

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/kmsd/kmsd/internal/awsarn"
	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/policy"
	"github.com/kmsd/kmsd/internal/store"
)

// GrantOperations are the operations a grant can allow (AWS's GrantOperation
// enum). Grants only allow: they never deny.
var GrantOperations = []string{
	"Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom", "ReEncryptTo",
	"Sign", "Verify", "GetPublicKey", "CreateGrant", "RetireGrant", "DescribeKey", "GenerateDataKeyPair",
	"GenerateDataKeyPairWithoutPlaintext", "GenerateMac", "VerifyMac", "DeriveSharedSecret", "Encapsulate", "Decapsulate",
}

// MaxGrantsPerKey is AWS's grant quota per key.
const MaxGrantsPerKey = 50000

// grantOperationsFor returns the grant operations valid for key k: those of
// its key usage, and the three every key has.
func grantOperationsFor(k *store.Key) []string {
	ops := []string{"CreateGrant", "RetireGrant", "DescribeKey"}
	switch k.KeyUsage {
	case UsageEncryptDecrypt:
		if k.KeySpec == SpecSymmetricDefault {
			return append(ops, "Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom",
				"ReEncryptTo", "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext")
		}
		return append(ops, "Decrypt", "Encrypt", "ReEncryptFrom", "ReEncryptTo", "GetPublicKey")
	case UsageSignVerify:
		return append(ops, "Sign", "Verify", "GetPublicKey")
	case UsageGenerateVerifyMac:
		return append(ops, "GenerateMac", "VerifyMac")
	case UsageKeyAgreement:
		return append(ops, "DeriveSharedSecret", "GetPublicKey")
	case UsageEncapsulate:
		return append(ops, "Encapsulate", "Decapsulate", "GetPublicKey")
	}
	return ops
}

// GrantConstraints restricts a grant to requests with an encryption context.
type GrantConstraints struct {
	EncryptionContextEquals map[string]string
	EncryptionContextSubset map[string]string
	SourceArn               string
}

// CreateGrantInput is the CreateGrant request.
type CreateGrantInput struct {
	KeyId                    string
	GranteePrincipal         string
	GranteeServicePrincipal  string
	RetiringPrincipal        string
	RetiringServicePrincipal string
	Operations               []string
	Constraints              *GrantConstraints
	GrantTokens              []string
	Name                     string
	DryRun                   bool
}

// CreateGrantOutput is the CreateGrant response.
type CreateGrantOutput struct {
	GrantId    string
	GrantToken string
}

// ListGrantsInput is the ListGrants request.
type ListGrantsInput struct {
	KeyId                   string
	GrantId                 string
	GranteePrincipal        string
	GranteeServicePrincipal string
	Limit                   *int32
	Marker                  string
}

// GrantListEntry describes one grant.
type GrantListEntry struct {
	KeyId             string // key ARN
	GrantId           string
	Name              string
	CreationDate      time.Time
	GranteePrincipal  string
	RetiringPrincipal string
	IssuingAccount    string
	Operations        []string
	Constraints       *GrantConstraints // nil when the grant has none
}

// ListGrantsOutput is the ListGrants and ListRetirableGrants response.
type ListGrantsOutput struct {
	Grants     []GrantListEntry
	NextMarker string
	Truncated  bool
}

// ListRetirableGrantsInput is the ListRetirableGrants request.
type ListRetirableGrantsInput struct {
	RetiringPrincipal        string
	RetiringServicePrincipal string
	Limit                    *int32
	Marker                   string
}

// RetireGrantInput is the RetireGrant request: a grant token, or a key and
// a grant id.
type RetireGrantInput struct {
	GrantToken string
	KeyId      string
	GrantId    string
	DryRun     bool
}

// RevokeGrantInput is the RevokeGrant request.
type RevokeGrantInput struct {
	KeyId   string
	GrantId string
	DryRun  bool
}

var (
	errInvalidGrantToken = awserr.New(awserr.InvalidGrantToken, "The grant token is invalid.")
	errServicePrincipal  = awserr.New(awserr.UnsupportedOperation, "Service principals are not supported by kmsd: kmsd has no AWS services in front of it.")
)

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// isGrantID reports whether s has the form of a grant id: 64 lowercase hex
// characters.
func isGrantID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func invalidGrantID(id string) error {
	return awserr.Newf(awserr.InvalidGrantID, "Grant id '%s' is not valid: a grant id is 64 hexadecimal characters.", id)
}

func grantNotFound(id string) error {
	return awserr.Newf(awserr.NotFound, "Grant '%s' does not exist.", id)
}

// checkGrantPrincipal accepts the principals a grant may name: IAM users
// and roles, assumed-role sessions, federated users and account roots.
func checkGrantPrincipal(partition, field, p string) error {
	if _, err := policy.NewPrincipal(p); err != nil || !strings.HasPrefix(p, "arn:"+partition+":") {
		return awserr.Newf(awserr.Validation, "%s '%s' is not a valid principal: use the ARN of an account (%s), an IAM user or role, or an assumed-role session.", field, p, awsarn.Root(partition, "ACCOUNT"))
	}
	return nil
}

// grant is a cached grant with its constraints ready for comparison.
type grant struct {
	*store.Grant
}

// grantsFor returns the grants of a key, ordered by id, from the view.
func (s *Service) grantsFor(ctx context.Context, keyID string) ([]*grant, error) {
	e, err := s.view.key(ctx, keyID)
	if err != nil {
		return nil, internal("get key "+keyID, err)
	}
	return s.view.grants(ctx, e)
}

// Grant tokens. A token is base64url(version 1 || grant id (32 bytes) ||
// nonce (16 bytes) || HMAC-SHA256(TokenHash, the preceding bytes)). A
// grant's TokenHash is the SHA-256 of a random secret that is never stored;
// every token of the grant is a MAC under it, so that each CreateGrant call
// returns a new token and all the tokens of a grant work alike, as on AWS.
// As on AWS a token is not a credential: it only lets a request use a grant
// (of a caller who is its grantee) that the request's node has not seen yet.
const (
	tokenVersion  = 1
	tokenIDLen    = 32
	tokenNonceLen = 16
	tokenMACLen   = sha256.Size
	tokenLen      = 1 + tokenIDLen + tokenNonceLen + tokenMACLen
)

type grantToken struct {
	grantID string
	raw     []byte
}

func parseGrantToken(t string) (grantToken, error) {
	raw, err := base64.RawURLEncoding.DecodeString(t)
	if err != nil || len(raw) != tokenLen || raw[0] != tokenVersion {
		return grantToken{}, errInvalidGrantToken
	}
	return grantToken{grantID: hex.EncodeToString(raw[1 : 1+tokenIDLen]), raw: raw}, nil
}

func parseGrantTokens(ts []string) ([]grantToken, error) {
	if len(ts) == 0 {
		return nil, nil
	}
	out := make([]grantToken, len(ts))
	for i, t := range ts {
		var err error
		if out[i], err = parseGrantToken(t); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func tokenMAC(g *store.Grant, msg []byte) []byte {
	m := hmac.New(sha256.New, g.TokenHash)
	m.Write(msg)
	return m.Sum(nil)
}

func (t grantToken) verify(g *store.Grant) bool {
	return t.grantID == g.ID && hmac.Equal(tokenMAC(g, t.raw[:tokenLen-tokenMACLen]), t.raw[tokenLen-tokenMACLen:])
}

func (s *Service) newGrantToken(g *store.Grant) (string, error) {
	id, err := hex.DecodeString(g.ID)
	if err != nil || len(id) != tokenIDLen {
		return "", internal("grant token", errors.New("malformed grant id "+g.ID))
	}
	raw := make([]byte, 0, tokenLen)
	raw = append(raw, tokenVersion)
	raw = append(raw, id...)
	raw = raw[:1+tokenIDLen+tokenNonceLen]
	if _, err := io.ReadFull(s.rand, raw[1+tokenIDLen:]); err != nil {
		return "", internal("grant token", err)
	}
	raw = append(raw, tokenMAC(g, raw)...)
	return base64.RawURLEncoding.EncodeToString(raw), nil
}

// sameGrant reports whether an existing grant has exactly the parameters of
// a CreateGrant request (for Name idempotence).
func sameGrant(g *store.Grant, in *CreateGrantInput, ops []string) bool {
	var eq, sub map[string]string
	if in.Constraints != nil {
		eq, sub = in.Constraints.EncryptionContextEquals, in.Constraints.EncryptionContextSubset
	}
	have := slices.Clone(g.Operations)
	slices.Sort(have)
	return g.GranteePrincipal == in.GranteePrincipal && g.RetiringPrincipal == in.RetiringPrincipal &&
		slices.Equal(have, ops) && mapsEqual(g.EncryptionContextEquals, eq) && mapsEqual(g.EncryptionContextSubset, sub)
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// checkConstraints applies AWS's rules to grant constraints.
func checkConstraints(k *store.Key, c *GrantConstraints) error {
	if c == nil {
		return nil
	}
	if c.SourceArn != "" {
		return awserr.New(awserr.UnsupportedOperation, "The SourceArn grant constraint is for AWS service principals, which kmsd does not support.")
	}
	if len(c.EncryptionContextEquals) > 0 && len(c.EncryptionContextSubset) > 0 {
		return awserr.New(awserr.Validation, "A grant constraint is either EncryptionContextEquals or EncryptionContextSubset, not both.")
	}
	ec := c.EncryptionContextEquals
	if len(ec) == 0 {
		ec = c.EncryptionContextSubset
	}
	if len(ec) > 0 && k.KeySpec != SpecSymmetricDefault {
		return awserr.Newf(awserr.Validation, "Encryption context grant constraints are supported only for symmetric encryption KMS keys; %s is %s.", arnOf(k), k.KeySpec)
	}
	if err := checkContext("constraints", ec); err != nil {
		return err
	}
	return nil
}

// CreateGrant adds a grant to a key. With a Name, a request whose
// parameters equal those of an existing grant of that name returns that
// grant (and a new token) instead of creating another.
func (s *Service) CreateGrant(ctx context.Context, c Caller, in *CreateGrantInput) (*CreateGrantOutput, error) {
	if in.GranteeServicePrincipal != "" || in.RetiringServicePrincipal != "" {
		return nil, errServicePrincipal
	}
	if in.GranteePrincipal == "" {
		return nil, awserr.Invalid(awserr.Violation{Field: "granteePrincipal", Null: true, Constraint: "Member must not be null"})
	}
	if err := checkGrantPrincipal(c.Partition, "GranteePrincipal", in.GranteePrincipal); err != nil {
		return nil, err
	}
	if in.RetiringPrincipal != "" {
		if err := checkGrantPrincipal(c.Partition, "RetiringPrincipal", in.RetiringPrincipal); err != nil {
			return nil, err
		}
	}
	if _, err := parseGrantTokens(in.GrantTokens); err != nil {
		return nil, err
	}
	k, err := s.resolve(ctx, c, in.KeyId, idOrARN)
	if err != nil {
		return nil, err
	}
	if err := checkUsable(k); err != nil {
		return nil, err
	}
	valid := grantOperationsFor(k)
	ops := slices.Clone(in.Operations)
	slices.Sort(ops)
	ops = slices.Compact(ops)
	for _, op := range ops {
		if !slices.Contains(valid, op) {
			return nil, awserr.Newf(awserr.Validation, "Grant operation %s is not valid for %s, a %s key with usage %s; valid operations are %s.",
				op, arnOf(k), k.KeySpec, k.KeyUsage, strings.Join(valid, ", "))
		}
	}
	if len(ops) == 0 {
		return nil, awserr.Invalid(awserr.Violation{Field: "operations", Null: true, Constraint: "Member must not be null"})
	}
	if err := checkConstraints(k, in.Constraints); err != nil {
		return nil, err
	}
	gs, err := s.grantsFor(ctx, k.ID)
	if err != nil {
		return nil, err
	}
	if in.Name != "" {
		for _, g := range gs {
			if g.Name == in.Name && sameGrant(g.Grant, in, ops) {
				if in.DryRun {
					return nil, errDryRun
				}
				tok, err := s.newGrantToken(g.Grant)
				if err != nil {
					return nil, err
				}
				return &CreateGrantOutput{GrantId: g.ID, GrantToken: tok}, nil
			}
		}
	}
	if len(gs) >= MaxGrantsPerKey {
		return nil, awserr.Newf(awserr.LimitExceeded, "A KMS key can have at most %d grants.", MaxGrantsPerKey)
	}
	if in.DryRun {
		return nil, errDryRun
	}
	var id, secret [32]byte
	if _, err := io.ReadFull(s.rand, id[:]); err != nil {
		return nil, internal("generate grant id", err)
	}
	if _, err := io.ReadFull(s.rand, secret[:]); err != nil {
		return nil, internal("generate grant secret", err)
	}
	tokenHash := sha256.Sum256(secret[:])
	g := &store.Grant{
		ID:                hex.EncodeToString(id[:]),
		KeyID:             k.ID,
		Name:              in.Name,
		GranteePrincipal:  in.GranteePrincipal,
		RetiringPrincipal: in.RetiringPrincipal,
		IssuingAccount:    awsarn.Root(awsarn.PartitionOf(k.Region), k.Account),
		Operations:        ops,
		TokenHash:         tokenHash[:],
		Created:           s.now().UTC(),
	}
	if in.Constraints != nil {
		g.EncryptionContextEquals = nonEmpty(in.Constraints.EncryptionContextEquals)
		g.EncryptionContextSubset = nonEmpty(in.Constraints.EncryptionContextSubset)
	}
	err = s.store.CreateGrant(ctx, g)
	s.view.dropGrants(k.ID)
	switch {
	case isNotFound(err):
		return nil, notFoundKey(arnOf(k))
	case err != nil:
		return nil, internal("create grant", err)
	}
	tok, err := s.newGrantToken(g)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "grant created", "key", arnOf(k), "grant", g.ID, "grantee", g.GranteePrincipal, "operations", ops)
	return &CreateGrantOutput{GrantId: g.ID, GrantToken: tok}, nil
}

func nonEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

func (s *Service) grantEntry(k *store.Key, g *store.Grant) GrantListEntry {
	e := GrantListEntry{
		KeyId:             arnOf(k),
		GrantId:           g.ID,
		Name:              g.Name,
		CreationDate:      g.Created,
		GranteePrincipal:  g.GranteePrincipal,
		RetiringPrincipal: g.RetiringPrincipal,
		IssuingAccount:    g.IssuingAccount,
		Operations:        g.Operations,
	}
	if len(g.EncryptionContextEquals) > 0 || len(g.EncryptionContextSubset) > 0 {
		e.Constraints = &GrantConstraints{EncryptionContextEquals: g.EncryptionContextEquals, EncryptionContextSubset: g.EncryptionContextSubset}
	}
	return e
}

// ListGrants lists the grants of a key ordered by grant id, optionally only
// one grant or the grants of one grantee. The marker is the last grant id
// returned.
func (s *Service) ListGrants(ctx context.Context, c Caller, in *ListGrantsInput) (*ListGrantsOutput, error) {
	if in.Marker != "" && !isGrantID(in.Marker) {
		return nil, errBadMarker
	}
	if in.GrantId != "" && !isGrantID(in.GrantId) {
		return nil, invalidGrantID(in.GrantId)
	}
	k, err := s.resolve(ctx, c, in.KeyId, idOrARN)
	if err != nil {
		return nil, err
	}
	out := &ListGrantsOutput{Grants: []GrantListEntry{}}
	if in.GranteeServicePrincipal != "" {
		return out, nil // kmsd has no grants to service principals
	}
	gs, err := s.grantsFor(ctx, k.ID)
	if err != nil {
		return nil, err
	}
	limit := limitOf(in.Limit, 50, 100)
	for _, g := range gs {
		if g.ID <= in.Marker || in.GrantId != "" && g.ID != in.GrantId ||
			in.GranteePrincipal != "" && g.GranteePrincipal != in.GranteePrincipal {
			continue
		}
		if len(out.Grants) == limit {
			out.Truncated = true
			out.NextMarker = out.Grants[limit-1].GrantId
			break
		}
		out.Grants = append(out.Grants, s.grantEntry(k, g.Grant))
	}
	return out, nil
}

// ListRetirableGrants lists the grants (on keys of any account, in the
// caller's Region) that a principal may retire, ordered by grant id.
func (s *Service) ListRetirableGrants(ctx context.Context, c Caller, in *ListRetirableGrantsInput) (*ListGrantsOutput, error) {
	out := &ListGrantsOutput{Grants: []GrantListEntry{}}
	if in.RetiringPrincipal == "" {
		if in.RetiringServicePrincipal != "" {
			return out, nil
		}
		return nil, awserr.Invalid(awserr.Violation{Field: "retiringPrincipal", Null: true, Constraint: "Member must not be null"})
	}
	if in.Marker != "" && !isGrantID(in.Marker) {
		return nil, errBadMarker
	}
	limit := limitOf(in.Limit, 50, 100)
	// A grant lives in its key's Region: the grants of keys in other
	// Regions are skipped, page after page, until a page is full.
	after := in.Marker
	for len(out.Grants) <= limit {
		gs, err := s.store.ListRetirableGrants(ctx, in.RetiringPrincipal, after, limit+1)
		if err != nil {
			return nil, internal("list retirable grants", err)
		}
		for _, g := range gs {
			after = g.ID
			k, err := s.key(ctx, g.KeyID)
			if isNotFound(err) || err == nil && k.Region != c.Region {
				continue
			}
			if err != nil {
				return nil, internal("get key", err)
			}
			if len(out.Grants) == limit {
				out.Truncated = true
				out.NextMarker = out.Grants[limit-1].GrantId
				return out, nil
			}
			out.Grants = append(out.Grants, s.grantEntry(k, g))
		}
		if len(gs) <= limit {
			break
		}
	}
	return out, nil
}

// grantToRetire finds the grant a RetireGrant request names, and its key.
func (s *Service) grantToRetire(ctx context.Context, c Caller, in *RetireGrantInput) (*store.Grant, *store.Key, error) {
	var g *store.Grant
	switch {
	case in.GrantToken != "":
		t, err := parseGrantToken(in.GrantToken)
		if err != nil {
			return nil, nil, err
		}
		g, err = s.store.GetGrant(ctx, t.grantID)
		if isNotFound(err) {
			return nil, nil, grantNotFound(t.grantID)
		}
		if err != nil {
			return nil, nil, internal("get grant", err)
		}
		if !t.verify(g) {
			return nil, nil, errInvalidGrantToken
		}
		if in.GrantId != "" && in.GrantId != g.ID {
			return nil, nil, awserr.New(awserr.InvalidGrantID, "The grant id does not match the grant token.")
		}
	case in.GrantId != "" && in.KeyId != "":
		if !isGrantID(in.GrantId) {
			return nil, nil, invalidGrantID(in.GrantId)
		}
		k, err := s.resolve(ctx, c, in.KeyId, idOrARN)
		if err != nil {
			return nil, nil, err
		}
		g, err = s.store.GetGrant(ctx, in.GrantId)
		if isNotFound(err) || err == nil && g.KeyID != k.ID {
			return nil, nil, grantNotFound(in.GrantId)
		}
		if err != nil {
			return nil, nil, internal("get grant", err)
		}
	default:
		return nil, nil, awserr.New(awserr.Validation, "RetireGrant needs a GrantToken, or a KeyId (the key ARN) and a GrantId.")
	}
	k, err := s.key(ctx, g.KeyID)
	// A grant of a key in another Region does not exist in this one (a
	// grant token names its grant wherever it is presented).
	if isNotFound(err) || err == nil && k.Region != c.Region {
		return nil, nil, grantNotFound(g.ID)
	}
	if err != nil {
		return nil, nil, internal("get key", err)
	}
	return g, k, nil
}

// RetireGrant deletes a grant named by its token, or by its key and id.
// Who may retire it is decided by its Rule (AuthorizeRetireGrant).
func (s *Service) RetireGrant(ctx context.Context, c Caller, in *RetireGrantInput) error {
	g, k, err := s.grantToRetire(ctx, c, in)
	if err != nil {
		return err
	}
	if in.DryRun {
		return errDryRun
	}
	return s.deleteGrant(ctx, k, g.ID, "grant retired")
}

// RevokeGrant deletes a grant of a key.
func (s *Service) RevokeGrant(ctx context.Context, c Caller, in *RevokeGrantInput) error {
	if !isGrantID(in.GrantId) {
		return invalidGrantID(in.GrantId)
	}
	k, err := s.resolve(ctx, c, in.KeyId, idOrARN)
	if err != nil {
		return err
	}
	gs, err := s.grantsFor(ctx, k.ID)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(gs, func(g *grant) bool { return g.ID == in.GrantId })
	if i < 0 {
		return grantNotFound(in.GrantId)
	}
	if in.DryRun {
		return errDryRun
	}
	return s.deleteGrant(ctx, k, in.GrantId, "grant revoked")
}

func (s *Service) deleteGrant(ctx context.Context, k *store.Key, id, msg string) error {
	err := s.store.DeleteGrant(ctx, id)
	s.view.dropGrants(k.ID)
	if isNotFound(err) {
		return grantNotFound(id)
	}
	if err != nil {
		return internal("delete grant", err)
	}
	s.log.InfoContext(ctx, msg, "key", arnOf(k), "grant", id)
	return nil
}
