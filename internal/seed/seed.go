// Package seed applies a declarative seed (config.Seed: keys of any spec,
// imported key material, fixed key ids, aliases, key policies, tags and
// grants) to a running KMS service, through the same operations a client
// calls: every step is a KMS request, validated, authorized as the caller
// and audited like any other.
//
// Applying a seed is idempotent. Each seeded key is found again by its id
// or, without one, by its first alias; what exists and matches the seed is
// left alone, so a second start makes only read requests. What can be
// brought to the seed safely is (description, key policy, the seed's tags,
// enabled or disabled, missing aliases and grants); what cannot (a key of
// another spec, usage or origin, other key material, an alias naming
// another key, a grant of that name with other terms, a key pending
// deletion) is refused with an error naming the seed item, and nothing
// after it is applied.
package seed

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/config"
	"github.com/kmsd/kmsd/internal/keys"
	"github.com/kmsd/kmsd/internal/kms"
)

// Agent is the userAgent of the audit records of the seed's requests.
const Agent = "kmsd-seed"

// Invoker runs one KMS operation (its JSON request body) for caller, and
// audits it. *server.Server is one.
type Invoker interface {
	Invoke(ctx context.Context, caller kms.Caller, op, agent string, body []byte) ([]byte, error)
}

// Report counts what applying a seed did.
type Report struct {
	Keys, Imported, Aliases, Grants, Updated int // created or changed
	Unchanged                                int // keys that were as declared
}

// String summarizes the report in one line.
func (r Report) String() string {
	return fmt.Sprintf("seed: %d keys created, %d key materials imported, %d aliases and %d grants created, %d changes to existing keys; %d keys already as declared",
		r.Keys, r.Imported, r.Aliases, r.Grants, r.Updated, r.Unchanged)
}

// Apply applies seed s as caller through inv. It stops at the first item
// it cannot apply, with an error naming it.
func Apply(ctx context.Context, s *config.Seed, inv Invoker, caller kms.Caller) (Report, error) {
	a := &applier{inv: inv, caller: caller, seed: s}
	for i, k := range s.Keys {
		if err := a.key(ctx, i, k); err != nil {
			return a.report, fmt.Errorf("%s: %w", k.Name(i), err)
		}
	}
	return a.report, nil
}

// Check checks what of seed s can be checked before it is applied, with
// no service: each key policy (its file read, its text as CreateKey checks
// it) and each key material (its source read and decoded). kmsd serve runs
// it before it writes anything, so that a seed that cannot be applied for
// these reasons leaves no half-made data folder behind. What only the
// service can say (a policy that would lock the caller out, material of
// the wrong size for its spec, a grantee that is no principal) is found
// when the seed is applied.
func Check(s *config.Seed) error {
	a := &applier{seed: s}
	for i, k := range s.Keys {
		policy, err := a.policyOf(k)
		if err == nil && policy != "" {
			err = kms.CheckKeyPolicy(policy)
		}
		if err == nil && k.Material != nil {
			var m []byte
			m, err = a.materialOf(k.Material)
			clear(m)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", k.Name(i), err)
		}
	}
	return nil
}

type applier struct {
	inv    Invoker
	caller kms.Caller
	seed   *config.Seed
	report Report
}

// call runs op with request in and decodes its response into out (if not
// nil).
func (a *applier) call(ctx context.Context, op string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	resp, err := a.inv.Invoke(ctx, a.caller, op, Agent, body)
	clear(body) // it may hold wrapped material; nothing secret, but no need to keep it
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if out != nil {
		if err := json.Unmarshal(resp, out); err != nil {
			return fmt.Errorf("%s: decode the response: %w", op, err)
		}
	}
	return nil
}

// keyMetadata is what the seed reads of DescribeKey.
type keyMetadata struct {
	KeyId, Arn, KeySpec, KeyUsage, Origin, KeyState, Description string
	CurrentKeyMaterialId                                         string
}

func isNotFound(err error) bool { return errors.Is(err, awserr.New(awserr.NotFound, "")) }

// describe returns the key named by id (key id or alias name), or nil when
// there is none.
func (a *applier) describe(ctx context.Context, id string) (*keyMetadata, error) {
	var out struct{ KeyMetadata keyMetadata }
	err := a.call(ctx, "DescribeKey", map[string]any{"KeyId": id}, &out)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &out.KeyMetadata, nil
}

// specOf returns the key spec and usage a seed key declares, with their
// defaults.
func specOf(k config.SeedKey) (spec, usage string) {
	spec, usage = k.Spec, k.Usage
	if spec == "" {
		spec = "SYMMETRIC_DEFAULT"
	}
	if usage == "" {
		usage = "ENCRYPT_DECRYPT"
		if keys.IsHMAC(spec) {
			usage = "GENERATE_VERIFY_MAC"
		}
	}
	return spec, usage
}

func (a *applier) key(ctx context.Context, i int, k config.SeedKey) error {
	spec, usage := specOf(k)
	origin := k.Origin
	if origin == "" {
		origin = "AWS_KMS"
	}
	var material []byte
	if k.Material != nil {
		origin = "EXTERNAL"
		var err error
		if material, err = a.materialOf(k.Material); err != nil {
			return err
		}
		defer clear(material)
	}
	policy, err := a.policyOf(k)
	if err != nil {
		return err
	}

	lookup := k.ID
	if lookup == "" {
		lookup = k.Aliases[0]
	}
	md, err := a.describe(ctx, lookup)
	if err != nil {
		return err
	}
	created, changed := md == nil, false
	if created {
		if md, err = a.create(ctx, k, spec, usage, origin, policy); err != nil {
			return err
		}
	} else if changed, err = a.reconcile(ctx, k, md, spec, usage, origin, policy); err != nil {
		return err
	}
	if material != nil {
		if err := a.importMaterial(ctx, md, material); err != nil {
			return err
		}
	}
	toggled, err := a.state(ctx, k, md)
	if err != nil {
		return err
	}
	switch {
	case created:
	case changed || toggled:
		a.report.Updated++
	default:
		a.report.Unchanged++
	}
	for _, alias := range k.Aliases {
		if err := a.alias(ctx, md, alias); err != nil {
			return err
		}
	}
	for _, g := range k.Grants {
		if err := a.grant(ctx, md, g); err != nil {
			return fmt.Errorf("grant %s: %w", g.Name, err)
		}
	}
	return nil
}

// policyOf returns the key policy a seed key declares, read from its
// policy_file if it names one; "" for the default key policy.
func (a *applier) policyOf(k config.SeedKey) (string, error) {
	if k.PolicyFile == "" {
		return k.Policy, nil
	}
	b, err := os.ReadFile(a.seed.Path(k.PolicyFile))
	if err != nil {
		return "", fmt.Errorf("policy_file: %w", err)
	}
	return string(b), nil
}

// create creates a seed key, with its fixed id when it has one.
func (a *applier) create(ctx context.Context, k config.SeedKey, spec, usage, origin, policy string) (*keyMetadata, error) {
	in := map[string]any{"KeySpec": spec, "KeyUsage": usage, "Origin": origin}
	if k.Description != "" {
		in["Description"] = k.Description
	}
	if policy != "" {
		in["Policy"] = policy
	}
	if len(k.Tags) > 0 {
		in["Tags"] = tagList(k.Tags)
	}
	if k.ID != "" {
		ctx = kms.WithFixedKeyID(ctx, k.ID)
	}
	var out struct{ KeyMetadata keyMetadata }
	if err := a.call(ctx, "CreateKey", in, &out); err != nil {
		return nil, err
	}
	a.report.Keys++
	return &out.KeyMetadata, nil
}

func tagList(tags map[string]string) []map[string]string {
	var l []map[string]string
	for _, k := range sortedKeys(tags) {
		l = append(l, map[string]string{"TagKey": k, "TagValue": tags[k]})
	}
	return l
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// reconcile compares an existing key with its seed: what cannot change is
// a conflict; the description, key policy and the seed's tags are brought
// to the seed.
func (a *applier) reconcile(ctx context.Context, k config.SeedKey, md *keyMetadata, spec, usage, origin, policy string) (changed bool, err error) {
	switch {
	case md.KeyState == "PendingDeletion" || md.KeyState == "PendingReplicaDeletion":
		return false, fmt.Errorf("key %s exists but is pending deletion: cancel its deletion (CancelKeyDeletion) or change the seed", md.KeyId)
	case k.ID != "" && md.KeyId != k.ID:
		return false, fmt.Errorf("alias %s names key %s, not the seed's key id", k.Aliases[0], md.KeyId)
	case md.KeySpec != spec:
		return false, fmt.Errorf("key %s exists with key spec %s, not %s: a key's spec never changes; change the seed or use another key id or alias", md.KeyId, md.KeySpec, spec)
	case md.KeyUsage != usage:
		return false, fmt.Errorf("key %s exists with key usage %s, not %s: a key's usage never changes", md.KeyId, md.KeyUsage, usage)
	case md.Origin != origin:
		return false, fmt.Errorf("key %s exists with origin %s, not %s (the seed gives key material for EXTERNAL keys only)", md.KeyId, md.Origin, origin)
	}
	if md.Description != k.Description {
		if err := a.call(ctx, "UpdateKeyDescription", map[string]any{"KeyId": md.KeyId, "Description": k.Description}, nil); err != nil {
			return false, err
		}
		changed = true
	}
	if policy != "" {
		var out struct{ Policy string }
		if err := a.call(ctx, "GetKeyPolicy", map[string]any{"KeyId": md.KeyId, "PolicyName": "default"}, &out); err != nil {
			return false, err
		}
		same, err := samePolicy(out.Policy, policy)
		if err != nil {
			return false, err
		}
		if !same {
			if err := a.call(ctx, "PutKeyPolicy", map[string]any{"KeyId": md.KeyId, "PolicyName": "default", "Policy": policy}, nil); err != nil {
				return false, err
			}
			changed = true
		}
	}
	if len(k.Tags) > 0 {
		have, err := a.tags(ctx, md.KeyId)
		if err != nil {
			return false, err
		}
		want := map[string]string{}
		for tk, tv := range k.Tags {
			if v, ok := have[tk]; !ok || v != tv {
				want[tk] = tv
			}
		}
		if len(want) > 0 {
			if err := a.call(ctx, "TagResource", map[string]any{"KeyId": md.KeyId, "Tags": tagList(want)}, nil); err != nil {
				return false, err
			}
			changed = true
		}
	}
	return changed, nil
}

// samePolicy compares two JSON policies as JSON values.
func samePolicy(have, want string) (bool, error) {
	var h, w any
	if err := json.Unmarshal([]byte(have), &h); err != nil {
		return false, fmt.Errorf("the key's policy is not JSON: %w", err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		return false, fmt.Errorf("the seed's policy is not JSON: %w", err)
	}
	return reflect.DeepEqual(h, w), nil
}

// tags returns a key's tags.
func (a *applier) tags(ctx context.Context, keyID string) (map[string]string, error) {
	tags := map[string]string{}
	marker := ""
	for {
		in := map[string]any{"KeyId": keyID, "Limit": 50}
		if marker != "" {
			in["Marker"] = marker
		}
		var out struct {
			Tags       []struct{ TagKey, TagValue string }
			NextMarker string
			Truncated  bool
		}
		if err := a.call(ctx, "ListResourceTags", in, &out); err != nil {
			return nil, err
		}
		for _, t := range out.Tags {
			tags[t.TagKey] = t.TagValue
		}
		if !out.Truncated {
			return tags, nil
		}
		marker = out.NextMarker
	}
}

// state enables or disables the key as the seed says (default enabled).
// A key without key material (pending import) is left as it is. It
// reports whether it changed the key's state.
func (a *applier) state(ctx context.Context, k config.SeedKey, md *keyMetadata) (bool, error) {
	want := k.Enabled == nil || *k.Enabled
	switch {
	case md.KeyState == "Enabled" && !want:
		return true, a.call(ctx, "DisableKey", map[string]any{"KeyId": md.KeyId}, nil)
	case md.KeyState == "Disabled" && want:
		return true, a.call(ctx, "EnableKey", map[string]any{"KeyId": md.KeyId}, nil)
	}
	return false, nil
}

// alias creates an alias of the key, or checks that the existing one
// names it.
func (a *applier) alias(ctx context.Context, md *keyMetadata, alias string) error {
	target, err := a.describe(ctx, alias)
	if err != nil {
		return err
	}
	if target != nil {
		if target.KeyId != md.KeyId {
			return fmt.Errorf("alias %s exists and names key %s, not %s: kmsd does not move an alias; change the seed, or UpdateAlias", alias, target.KeyId, md.KeyId)
		}
		return nil
	}
	if err := a.call(ctx, "CreateAlias", map[string]any{"AliasName": alias, "TargetKeyId": md.KeyId}, nil); err != nil {
		return fmt.Errorf("alias %s: %w", alias, err)
	}
	a.report.Aliases++
	return nil
}

// grantEntry is what the seed reads of ListGrants.
type grantEntry struct {
	GrantId, Name, GranteePrincipal, RetiringPrincipal string
	Operations                                         []string
	Constraints                                        *struct {
		EncryptionContextSubset, EncryptionContextEquals map[string]string
	}
}

// grant creates a grant of the key, or checks that the grant of that
// name has the seed's terms.
func (a *applier) grant(ctx context.Context, md *keyMetadata, g config.SeedGrant) error {
	var found *grantEntry
	marker := ""
	for found == nil {
		in := map[string]any{"KeyId": md.KeyId, "Limit": 100}
		if marker != "" {
			in["Marker"] = marker
		}
		var out struct {
			Grants     []grantEntry
			NextMarker string
			Truncated  bool
		}
		if err := a.call(ctx, "ListGrants", in, &out); err != nil {
			return err
		}
		for i := range out.Grants {
			if out.Grants[i].Name == g.Name {
				found = &out.Grants[i]
				break
			}
		}
		if !out.Truncated {
			break
		}
		marker = out.NextMarker
	}
	if found != nil {
		var subset, equals map[string]string
		if c := found.Constraints; c != nil {
			subset, equals = c.EncryptionContextSubset, c.EncryptionContextEquals
		}
		haveOps, wantOps := slices.Sorted(slices.Values(found.Operations)), slices.Sorted(slices.Values(g.Operations))
		if found.GranteePrincipal != g.Grantee || found.RetiringPrincipal != g.RetiringPrincipal || !slices.Equal(haveOps, wantOps) ||
			!sameMap(subset, g.EncryptionContextSubset) || !sameMap(equals, g.EncryptionContextEquals) {
			return fmt.Errorf("a grant of that name (%s) exists on key %s with other terms (grantee, retiring principal, operations or constraints): kmsd does not change a grant; retire or revoke it, or rename the seed's", found.GrantId, md.KeyId)
		}
		return nil
	}
	in := map[string]any{"KeyId": md.KeyId, "GranteePrincipal": g.Grantee, "Operations": g.Operations, "Name": g.Name}
	if g.RetiringPrincipal != "" {
		in["RetiringPrincipal"] = g.RetiringPrincipal
	}
	if len(g.EncryptionContextSubset) > 0 || len(g.EncryptionContextEquals) > 0 {
		c := map[string]any{}
		if len(g.EncryptionContextSubset) > 0 {
			c["EncryptionContextSubset"] = g.EncryptionContextSubset
		}
		if len(g.EncryptionContextEquals) > 0 {
			c["EncryptionContextEquals"] = g.EncryptionContextEquals
		}
		in["Constraints"] = c
	}
	if err := a.call(ctx, "CreateGrant", in, nil); err != nil {
		return err
	}
	a.report.Grants++
	return nil
}

func sameMap(a, b map[string]string) bool {
	return len(a) == len(b) && reflect.DeepEqual(a, b) || len(a) == 0 && len(b) == 0
}

// importMaterial imports material into the EXTERNAL key md unless it holds
// it already; other material is a conflict.
func (a *applier) importMaterial(ctx context.Context, md *keyMetadata, material []byte) error {
	id := kms.ImportedKeyMaterialID(md.Arn, material)
	switch md.CurrentKeyMaterialId {
	case id:
		return nil
	case "":
	default:
		return fmt.Errorf("key %s holds other key material (key material id %s) than the seed gives (%s): imported material never changes; change the seed or use another key", md.KeyId, md.CurrentKeyMaterialId, id)
	}
	const alg = "RSA_AES_KEY_WRAP_SHA_256"
	var params struct {
		ImportToken, PublicKey []byte
	}
	if err := a.call(ctx, "GetParametersForImport", map[string]any{"KeyId": md.KeyId, "WrappingAlgorithm": alg, "WrappingKeySpec": "RSA_2048"}, &params); err != nil {
		return err
	}
	enc, err := wrapMaterial(params.PublicKey, material)
	if err != nil {
		return err
	}
	in := map[string]any{"KeyId": md.KeyId, "ImportToken": params.ImportToken, "EncryptedKeyMaterial": enc,
		"ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE", "KeyMaterialId": id}
	var out struct{ KeyMaterialId string }
	if err := a.call(ctx, "ImportKeyMaterial", in, &out); err != nil {
		return err
	}
	md.CurrentKeyMaterialId = out.KeyMaterialId
	if md.KeyState == "PendingImport" {
		md.KeyState = "Enabled"
	}
	a.report.Imported++
	return nil
}

// wrapMaterial wraps material as RSA_AES_KEY_WRAP_SHA_256 does: a fresh
// AES-256 key encrypted with RSAES-OAEP-SHA-256 to the wrapping public
// key, followed by the material wrapped with it (AES Key Wrap with
// Padding, RFC 5649).
func wrapMaterial(spki, material []byte) ([]byte, error) {
	pub, err := x509.ParsePKIXPublicKey(spki)
	if err != nil {
		return nil, fmt.Errorf("import: the wrapping public key: %w", err)
	}
	rsaPub, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("import: the wrapping public key is not RSA")
	}
	kek := make([]byte, 32)
	defer clear(kek)
	if _, err := rand.Read(kek); err != nil {
		return nil, err
	}
	head, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, rsaPub, kek, nil)
	if err != nil {
		return nil, fmt.Errorf("import: wrap: %w", err)
	}
	tail, err := keys.WrapKeyPadded(kek, material)
	if err != nil {
		return nil, fmt.Errorf("import: wrap: %w", err)
	}
	return append(head, tail...), nil
}

// materialOf returns the bytes of seed material: raw bytes for symmetric
// and HMAC keys, DER PKCS #8 for private keys (PEM converted). Errors never
// show the material.
func (a *applier) materialOf(m *config.SeedMaterial) ([]byte, error) {
	var b []byte
	var err error
	switch {
	case m.Base64 != "":
		if b, err = base64.StdEncoding.DecodeString(strings.TrimSpace(m.Base64.Reveal())); err != nil {
			return nil, errors.New("material.base64 is not standard base64")
		}
	case m.Hex != "":
		if b, err = hex.DecodeString(strings.TrimSpace(m.Hex.Reveal())); err != nil {
			return nil, errors.New("material.hex is not hex")
		}
	case m.PEM != "":
		return PrivateKeyDER([]byte(m.PEM.Reveal()))
	case m.File != "":
		path := a.seed.Path(m.File)
		if err := config.CheckPrivateFile(path, "material file"); err != nil {
			return nil, err
		}
		if b, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("material file: %w", err)
		}
		if bytes.HasPrefix(bytes.TrimSpace(b), []byte("-----BEGIN")) {
			defer clear(b)
			return PrivateKeyDER(b)
		}
	default:
		return nil, errors.New("material: no source")
	}
	return b, nil
}

// PrivateKeyDER converts a PEM private key (PKCS #8 "PRIVATE KEY", PKCS #1
// "RSA PRIVATE KEY" or SEC 1 "EC PRIVATE KEY") to DER PKCS #8, the form
// KMS imports. Errors never show the key.
func PrivateKeyDER(pemBytes []byte) ([]byte, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("material: no PEM block")
	}
	defer clear(block.Bytes)
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		return bytes.Clone(block.Bytes), nil
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("material: PEM block %q is not a private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("material: the %s does not parse", block.Type)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("material: convert the %s to PKCS #8: %w", block.Type, err)
	}
	return der, nil
}
