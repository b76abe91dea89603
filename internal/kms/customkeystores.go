package kms

// Custom key stores, the way AWS offers AWS CloudHSM key stores, with a
// PKCS#11 token standing in for the CloudHSM cluster (docs/operations.md,
// "Custom key stores", has the field mapping):
//
//   - CloudHsmClusterId names a token declared in kmsd's configuration
//     (hsm_clusters), which kmsd reaches through HSMClusters;
//   - KeyStorePassword is the token's user PIN (AWS: the kmsuser crypto
//     user's password). kmsd stores it wrapped by the root of trust and logs
//     in with it on ConnectCustomKeyStore;
//   - TrustAnchorCertificate must be a PEM certificate, and the configured
//     cluster's trust anchor when one is configured.
//
// A key created in a custom key store (Origin AWS_CLOUDHSM) is an AES-256
// key generated inside the token, labelled with the key id; Encrypt,
// Decrypt, ReEncrypt and GenerateDataKey run AES-GCM inside the token, and
// the ciphertext is blob format version 2 (docs/ciphertext-format.md). Its
// key material never exists outside the HSM.
//
// Connection state lives in the store, so it survives restarts and every
// node shares it: kmsd reconnects the stores that were CONNECTED when it
// starts (Service.RestoreCustomKeyStores), and each node follows the state
// through its cached view (cksconn.go). The open connections are an
// immutable map swapped atomically, so the hot path reads it without a
// lock.

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"regexp"
	"time"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/keys"
	"github.com/kmsd/kmsd/internal/store"
)

// HSM is a connection to the token behind a custom key store (package
// pkcs11's Token is one). Errors of EncryptGCM, DecryptGCM and DestroyKey
// wrap ErrHSMKeyNotFound when the token has no key with that label, and
// DecryptGCM's wrap ErrHSMAuthentication when the tag does not verify.
type HSM interface {
	GenerateKey(ctx context.Context, label string) error
	EncryptGCM(ctx context.Context, label string, plaintext, aad []byte) (iv, ct []byte, err error)
	DecryptGCM(ctx context.Context, label string, iv, ct, aad []byte) ([]byte, error)
	DestroyKey(ctx context.Context, label string) error
	GenerateRandom(ctx context.Context, n int) ([]byte, error)
	Close() error
}

// HSMClusters are what custom key stores connect to: the configured
// tokens, by CloudHsmClusterId.
type HSMClusters interface {
	// Lookup reports whether clusterID is configured and returns its
	// trust anchor certificate (PEM; empty when none is configured).
	Lookup(clusterID string) (trustAnchor string, ok bool)
	// Connect logs in to the cluster's token with password. Its error is
	// a *ConnectionError saying why, as AWS's ConnectionErrorCode.
	Connect(ctx context.Context, clusterID, password string) (HSM, error)
}

// Errors an HSM wraps.
var (
	ErrHSMKeyNotFound    = errors.New("kms: no such key in the HSM")
	ErrHSMAuthentication = errors.New("kms: HSM AES-GCM authentication failed")
)

// ConnectionError is a failed connection to a cluster. Code is one of
// AWS's ConnectionErrorCodeType values (ConnectionInvalidCredentials, …).
type ConnectionError struct {
	Code string
	Err  error
}

func (e *ConnectionError) Error() string { return e.Code + ": " + e.Err.Error() }
func (e *ConnectionError) Unwrap() error { return e.Err }

// Connection states and error codes (AWS's ConnectionStateType and
// ConnectionErrorCodeType values that apply to a PKCS#11 token).
const (
	ConnectionConnected    = "CONNECTED"
	ConnectionConnecting   = "CONNECTING"
	ConnectionDisconnected = "DISCONNECTED"
	ConnectionFailed       = "FAILED"

	ConnectionInvalidCredentials = "INVALID_CREDENTIALS"
	ConnectionClusterNotFound    = "CLUSTER_NOT_FOUND"
	ConnectionNetworkErrors      = "NETWORK_ERRORS"
	ConnectionInternalError      = "INTERNAL_ERROR"
	ConnectionUserLockedOut      = "USER_LOCKED_OUT"
)

// Custom key store types, the origin of their keys, and AWS's limits.
const (
	CustomKeyStoreCloudHSM = "AWS_CLOUDHSM"
	CustomKeyStoreExternal = "EXTERNAL_KEY_STORE"
	OriginCloudHSM         = "AWS_CLOUDHSM"
	StateUnavailable       = "Unavailable"

	// MaxCustomKeyStores is AWS's quota of custom key stores per account
	// and region.
	MaxCustomKeyStores = 10
	// connectTimeout bounds a ConnectCustomKeyStore login.
	connectTimeout = 30 * time.Second
)

// cksPasswordAAD binds a wrapped KeyStorePassword to its custom key store.
func cksPasswordAAD(account, region, id string) []byte {
	return []byte("kmsd custom key store password v1\x00" + account + "\x00" + region + "\x00" + id)
}

// hsmLabel is the CKA_LABEL of a key's material in its token.
func hsmLabel(keyID string) string { return "kmsd-key/" + keyID }

// cksIDRE matches the custom key store ids kmsd makes.
var cksIDRE = regexp.MustCompile(`^cks-[0-9a-f]{17}$`)

func cksNotFound(id string) error {
	return awserr.Newf(awserr.CustomKeyStoreNotFound, "Custom key store %s does not exist.", id)
}

func cksInvalidState(cks *store.CustomKeyStore, op, need string) error {
	return awserr.Newf(awserr.CustomKeyStoreInvalidState, "%s is not valid for custom key store %s in connection state %s; %s.", op, cks.ID, cks.ConnectionState, need)
}

// customKeyStore returns the caller's custom key store id (in this region),
// or CustomKeyStoreNotFoundException.
func (s *Service) customKeyStore(ctx context.Context, c Caller, id string) (*store.CustomKeyStore, error) {
	cks, err := s.store.GetCustomKeyStore(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (cks.Account != c.Account || cks.Region != c.Region)) {
		return nil, cksNotFound(id)
	}
	if err != nil {
		return nil, internal("get custom key store", err)
	}
	return cks, nil
}

// XksProxySettings are the external key store members of
// CreateCustomKeyStore and UpdateCustomKeyStore, accepted on the wire only
// to be refused: kmsd has no external key stores.
type XksProxySettings struct {
	XksProxyUriEndpoint              string
	XksProxyUriPath                  string
	XksProxyVpcEndpointServiceName   string
	XksProxyVpcEndpointServiceOwner  string
	XksProxyConnectivity             string
	XksProxyAuthenticationCredential *XksProxyAuthenticationCredential
}

// used reports whether any external key store member is set.
func (x *XksProxySettings) used() bool { return *x != (XksProxySettings{}) }

// CreateCustomKeyStoreInput is the CreateCustomKeyStore request.
type CreateCustomKeyStoreInput struct {
	CustomKeyStoreName     string
	CloudHsmClusterId      string
	TrustAnchorCertificate string
	KeyStorePassword       string
	CustomKeyStoreType     string
	XksProxySettings
}

// XksProxyAuthenticationCredential is an external key store credential
// (refused: kmsd has no external key stores).
type XksProxyAuthenticationCredential struct {
	AccessKeyId        string
	RawSecretAccessKey string
}

// CreateCustomKeyStoreOutput is the CreateCustomKeyStore response.
type CreateCustomKeyStoreOutput struct {
	CustomKeyStoreId string
}

var errXKS = awserr.New(awserr.UnsupportedOperation, "External key stores (EXTERNAL_KEY_STORE) are not supported by kmsd; create a custom key store of type AWS_CLOUDHSM backed by a PKCS#11 token.")

// CreateCustomKeyStore creates a custom key store of type AWS_CLOUDHSM for
// a configured cluster. It starts DISCONNECTED; ConnectCustomKeyStore logs
// in.
func (s *Service) CreateCustomKeyStore(ctx context.Context, c Caller, in *CreateCustomKeyStoreInput) (*CreateCustomKeyStoreOutput, error) {
	if err := c.Scope.check(); err != nil {
		return nil, internal("create custom key store", err)
	}
	typ := in.CustomKeyStoreType
	if typ == "" {
		typ = CustomKeyStoreCloudHSM
	}
	if typ != CustomKeyStoreCloudHSM || in.used() {
		return nil, errXKS
	}
	for _, f := range []struct{ name, v string }{
		{"CloudHsmClusterId", in.CloudHsmClusterId},
		{"KeyStorePassword", in.KeyStorePassword},
		{"TrustAnchorCertificate", in.TrustAnchorCertificate},
	} {
		if f.v == "" {
			return nil, awserr.Newf(awserr.Validation, "%s is required for a custom key store of type AWS_CLOUDHSM.", f.name)
		}
	}
	if err := s.checkCluster(in.CloudHsmClusterId, in.TrustAnchorCertificate); err != nil {
		return nil, err
	}
	existing, err := s.store.ListCustomKeyStores(ctx, c.Account, c.Region, "", MaxCustomKeyStores+1)
	if err != nil {
		return nil, internal("list custom key stores", err)
	}
	if len(existing) >= MaxCustomKeyStores {
		return nil, awserr.Newf(awserr.LimitExceeded, "An account can have at most %d custom key stores in a region.", MaxCustomKeyStores)
	}
	if err := s.checkCKSConflicts(ctx, c, "", in.CustomKeyStoreName, in.CloudHsmClusterId); err != nil {
		return nil, err
	}
	var raw [17]byte
	// 17 random hex digits, like AWS's cks-1234567890abcdef0.
	if _, err := io.ReadFull(s.rand, raw[:9]); err != nil {
		return nil, internal("generate custom key store id", err)
	}
	id := "cks-" + hex.EncodeToString(raw[:9])[:17]
	wrapped, err := s.keystore.Wrap(ctx, []byte(in.KeyStorePassword), cksPasswordAAD(c.Account, c.Region, id))
	if err != nil {
		return nil, internal("wrap key store password", err)
	}
	cks := &store.CustomKeyStore{
		ID: id, Account: c.Account, Region: c.Region, Name: in.CustomKeyStoreName, Type: typ,
		ClusterID: in.CloudHsmClusterId, TrustAnchor: in.TrustAnchorCertificate, WrappedPassword: wrapped,
		Created: s.now().UTC(), ConnectionState: ConnectionDisconnected,
	}
	if err := s.store.CreateCustomKeyStore(ctx, cks); err != nil {
		if errors.Is(err, store.ErrExists) {
			// Lost a race with another creation: say which field clashed.
			if cerr := s.checkCKSConflicts(ctx, c, "", in.CustomKeyStoreName, in.CloudHsmClusterId); cerr != nil {
				return nil, cerr
			}
		}
		return nil, internal("create custom key store", err)
	}
	s.log.InfoContext(ctx, "custom key store created", "custom_key_store", id, "cluster", cks.ClusterID)
	return &CreateCustomKeyStoreOutput{CustomKeyStoreId: id}, nil
}

// checkCluster checks that clusterID is configured and that trustAnchor
// is a PEM certificate matching the configured one, if any.
func (s *Service) checkCluster(clusterID, trustAnchor string) error {
	if s.cks.clusters == nil {
		return awserr.Newf(awserr.CloudHsmClusterNotFound, "Cluster %s is not configured: this kmsd declares no hsm_clusters.", clusterID)
	}
	want, ok := s.cks.clusters.Lookup(clusterID)
	if !ok {
		return awserr.Newf(awserr.CloudHsmClusterNotFound, "Cluster %s is not among the hsm_clusters in kmsd's configuration.", clusterID)
	}
	if trustAnchor == "" {
		return nil
	}
	got, err := certDER(trustAnchor)
	if err != nil {
		return awserr.Newf(awserr.IncorrectTrustAnchor, "TrustAnchorCertificate is not a PEM-encoded X.509 certificate: %v.", err)
	}
	if want != "" {
		wantDER, err := certDER(want)
		if err != nil {
			return internal("configured trust anchor of cluster "+clusterID, err)
		}
		if !bytes.Equal(got, wantDER) {
			return awserr.Newf(awserr.IncorrectTrustAnchor, "TrustAnchorCertificate is not the trust anchor certificate of cluster %s.", clusterID)
		}
	}
	return nil
}

// certDER returns the DER of the single certificate in a PEM text.
func certDER(p string) ([]byte, error) {
	b, rest := pem.Decode([]byte(p))
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("more than one PEM block")
	}
	if _, err := x509.ParseCertificate(b.Bytes); err != nil {
		return nil, errors.New("the certificate does not parse")
	}
	return b.Bytes, nil
}

// checkCKSConflicts refuses a name taken by another store of the account
// and region, or a cluster used by another store (self is the store being
// updated, "" on creation).
func (s *Service) checkCKSConflicts(ctx context.Context, c Caller, self, name, cluster string) error {
	if name != "" {
		mine, err := s.listAllCKS(ctx, c.Account, c.Region)
		if err != nil {
			return err
		}
		for _, o := range mine {
			if o.ID != self && o.Name == name {
				return awserr.Newf(awserr.CustomKeyStoreNameInUse, "Custom key store name %s is already in use.", name)
			}
		}
	}
	if cluster != "" {
		all, err := s.listAllCKS(ctx, "", "")
		if err != nil {
			return err
		}
		for _, o := range all {
			if o.ID != self && o.ClusterID == cluster {
				return awserr.Newf(awserr.CloudHsmClusterInUse, "Cluster %s is already associated with a custom key store.", cluster)
			}
		}
	}
	return nil
}

func (s *Service) listAllCKS(ctx context.Context, account, region string) ([]*store.CustomKeyStore, error) {
	var out []*store.CustomKeyStore
	after := ""
	for {
		page, err := s.store.ListCustomKeyStores(ctx, account, region, after, 1000)
		if err != nil {
			return nil, internal("list custom key stores", err)
		}
		out = append(out, page...)
		if len(page) < 1000 {
			return out, nil
		}
		after = page[len(page)-1].ID
	}
}

// DescribeCustomKeyStoresInput is the DescribeCustomKeyStores request.
type DescribeCustomKeyStoresInput struct {
	CustomKeyStoreId   string
	CustomKeyStoreName string
	Limit              *int32
	Marker             string
}

// CustomKeyStoresListEntry describes one custom key store.
type CustomKeyStoresListEntry struct {
	CustomKeyStoreId       string
	CustomKeyStoreName     string
	CustomKeyStoreType     string
	CloudHsmClusterId      string
	TrustAnchorCertificate string
	ConnectionState        string
	ConnectionErrorCode    string
	CreationDate           time.Time
}

// DescribeCustomKeyStoresOutput is the DescribeCustomKeyStores response.
type DescribeCustomKeyStoresOutput struct {
	CustomKeyStores []CustomKeyStoresListEntry
	NextMarker      string
	Truncated       bool
}

func entryOf(cks *store.CustomKeyStore) CustomKeyStoresListEntry {
	e := CustomKeyStoresListEntry{
		CustomKeyStoreId: cks.ID, CustomKeyStoreName: cks.Name, CustomKeyStoreType: cks.Type,
		CloudHsmClusterId: cks.ClusterID, TrustAnchorCertificate: cks.TrustAnchor,
		ConnectionState: cks.ConnectionState, CreationDate: cks.Created,
	}
	if cks.ConnectionState == ConnectionFailed {
		e.ConnectionErrorCode = cks.ConnectionErrorCode
	}
	return e
}

// DescribeCustomKeyStores lists the caller's custom key stores, or the one
// named by id or name (not both).
func (s *Service) DescribeCustomKeyStores(ctx context.Context, c Caller, in *DescribeCustomKeyStoresInput) (*DescribeCustomKeyStoresOutput, error) {
	if in.CustomKeyStoreId != "" && in.CustomKeyStoreName != "" {
		return nil, awserr.New(awserr.Validation, "Specify either CustomKeyStoreId or CustomKeyStoreName, not both.")
	}
	if in.CustomKeyStoreId != "" {
		cks, err := s.customKeyStore(ctx, c, in.CustomKeyStoreId)
		if err != nil {
			return nil, err
		}
		return &DescribeCustomKeyStoresOutput{CustomKeyStores: []CustomKeyStoresListEntry{entryOf(cks)}}, nil
	}
	if in.CustomKeyStoreName != "" {
		all, err := s.listAllCKS(ctx, c.Account, c.Region)
		if err != nil {
			return nil, err
		}
		for _, cks := range all {
			if cks.Name == in.CustomKeyStoreName {
				return &DescribeCustomKeyStoresOutput{CustomKeyStores: []CustomKeyStoresListEntry{entryOf(cks)}}, nil
			}
		}
		return nil, awserr.Newf(awserr.CustomKeyStoreNotFound, "Custom key store %s does not exist.", in.CustomKeyStoreName)
	}
	limit := limitOf(in.Limit, 100, 1000)
	after := ""
	if in.Marker != "" {
		if !cksIDRE.MatchString(in.Marker) {
			return nil, awserr.New(awserr.InvalidMarker, "Marker is invalid.")
		}
		after = in.Marker
	}
	page, err := s.store.ListCustomKeyStores(ctx, c.Account, c.Region, after, limit+1)
	if err != nil {
		return nil, internal("list custom key stores", err)
	}
	out := &DescribeCustomKeyStoresOutput{CustomKeyStores: []CustomKeyStoresListEntry{}}
	if len(page) > limit {
		page = page[:limit]
		out.Truncated = true
		out.NextMarker = page[limit-1].ID
	}
	for _, cks := range page {
		out.CustomKeyStores = append(out.CustomKeyStores, entryOf(cks))
	}
	return out, nil
}

// UpdateCustomKeyStoreInput is the UpdateCustomKeyStore request.
type UpdateCustomKeyStoreInput struct {
	CustomKeyStoreId      string
	NewCustomKeyStoreName string
	KeyStorePassword      string
	CloudHsmClusterId     string
	XksProxySettings
}

// UpdateCustomKeyStore renames a store (in any state), or changes its
// password or cluster (only while DISCONNECTED). A new cluster must hold
// the store's keys (a replacement or copy of the token); kmsd cannot tell
// before it connects, and a key missing there fails its operations with
// KMSInvalidStateException.
func (s *Service) UpdateCustomKeyStore(ctx context.Context, c Caller, in *UpdateCustomKeyStoreInput) error {
	if in.used() {
		return errXKS
	}
	cks, err := s.customKeyStore(ctx, c, in.CustomKeyStoreId)
	if err != nil {
		return err
	}
	if (in.KeyStorePassword != "" || in.CloudHsmClusterId != "") && cks.ConnectionState != ConnectionDisconnected {
		return cksInvalidState(cks, "Changing KeyStorePassword or CloudHsmClusterId", "disconnect the custom key store first")
	}
	if in.CloudHsmClusterId != "" && in.CloudHsmClusterId != cks.ClusterID {
		if err := s.checkCluster(in.CloudHsmClusterId, ""); err != nil {
			return err
		}
	}
	if err := s.checkCKSConflicts(ctx, c, cks.ID, in.NewCustomKeyStoreName, in.CloudHsmClusterId); err != nil {
		return err
	}
	var wrapped []byte
	if in.KeyStorePassword != "" {
		if wrapped, err = s.keystore.Wrap(ctx, []byte(in.KeyStorePassword), cksPasswordAAD(cks.Account, cks.Region, cks.ID)); err != nil {
			return internal("wrap key store password", err)
		}
	}
	_, err = s.store.UpdateCustomKeyStore(ctx, cks.ID, func(cur *store.CustomKeyStore) error {
		if (wrapped != nil || in.CloudHsmClusterId != "") && cur.ConnectionState != ConnectionDisconnected {
			return cksInvalidState(cur, "Changing KeyStorePassword or CloudHsmClusterId", "disconnect the custom key store first")
		}
		if in.NewCustomKeyStoreName != "" {
			cur.Name = in.NewCustomKeyStoreName
		}
		if wrapped != nil {
			cur.WrappedPassword = wrapped
		}
		if in.CloudHsmClusterId != "" {
			cur.ClusterID = in.CloudHsmClusterId
		}
		return nil
	})
	s.view.dropCKS(cks.ID)
	var ae *awserr.Error
	switch {
	case errors.As(err, &ae):
		return err
	case errors.Is(err, store.ErrNotFound):
		return cksNotFound(cks.ID)
	case errors.Is(err, store.ErrExists):
		if cerr := s.checkCKSConflicts(ctx, c, cks.ID, in.NewCustomKeyStoreName, in.CloudHsmClusterId); cerr != nil {
			return cerr
		}
		return internal("update custom key store", err)
	case err != nil:
		return internal("update custom key store", err)
	}
	s.log.InfoContext(ctx, "custom key store updated", "custom_key_store", cks.ID)
	return nil
}

// CustomKeyStoreIdInput is the request of the operations that take only a
// CustomKeyStoreId.
type CustomKeyStoreIdInput struct {
	CustomKeyStoreId string
}

// DeleteCustomKeyStore deletes a DISCONNECTED store that holds no keys.
func (s *Service) DeleteCustomKeyStore(ctx context.Context, c Caller, in *CustomKeyStoreIdInput) error {
	cks, err := s.customKeyStore(ctx, c, in.CustomKeyStoreId)
	if err != nil {
		return err
	}
	if cks.ConnectionState != ConnectionDisconnected {
		return cksInvalidState(cks, "DeleteCustomKeyStore", "disconnect the custom key store first")
	}
	err = s.store.DeleteCustomKeyStore(ctx, cks.ID)
	s.view.dropCKS(cks.ID)
	switch {
	case errors.Is(err, store.ErrInUse):
		return awserr.Newf(awserr.CustomKeyStoreHasCMKs, "Custom key store %s contains KMS keys; schedule their deletion and wait until they are deleted first.", cks.ID)
	case errors.Is(err, store.ErrNotFound):
		return cksNotFound(cks.ID)
	case err != nil:
		return internal("delete custom key store", err)
	}
	s.log.InfoContext(ctx, "custom key store deleted", "custom_key_store", cks.ID)
	return nil
}

// describe returns the metadata of k as DescribeKey and CreateKey report it.
func (s *Service) describe(ctx context.Context, k *store.Key) (*KeyMetadata, error) {
	md := metadataOf(k)
	if isMultiRegion(k) {
		mrc, err := s.multiRegionConfiguration(ctx, k)
		if err != nil {
			return nil, err
		}
		md.MultiRegionConfiguration = mrc
	}
	if k.CustomKeyStoreID == "" {
		return md, nil
	}
	md.CustomKeyStoreId = k.CustomKeyStoreID
	state, err := s.keyState(ctx, k)
	if err != nil {
		return nil, err
	}
	md.KeyState = state
	if cks, err := s.store.GetCustomKeyStore(ctx, k.CustomKeyStoreID); err == nil {
		md.CloudHsmClusterId = cks.ClusterID
	}
	return md, nil
}

// connectedCKS returns the caller's custom key store id and its HSM
// connection, or the error op gets when the store is missing or not
// CONNECTED.
func (s *Service) connectedCKS(ctx context.Context, c Caller, id, op string) (*store.CustomKeyStore, HSM, error) {
	cks, err := s.customKeyStore(ctx, c, id)
	if err != nil {
		return nil, nil, err
	}
	cc := s.cks.conn(cks.ID)
	if cks.ConnectionState != ConnectionConnected || cc == nil || cc.cluster != cks.ClusterID {
		return nil, nil, cksInvalidState(cks, op, "connect the custom key store first")
	}
	return cks, cc.hsm, nil
}

// createHSMKey validates a CreateKey in a custom key store and generates
// the key's material in the token. It returns the key's material id.
func (s *Service) createHSMKey(ctx context.Context, c Caller, k *store.Key, cksID string) error {
	if k.Origin != OriginCloudHSM {
		return awserr.Newf(awserr.UnsupportedOperation, "A key in custom key store %s must have Origin AWS_CLOUDHSM, not %s.", cksID, k.Origin)
	}
	if k.KeySpec != SpecSymmetricDefault || k.KeyUsage != UsageEncryptDecrypt {
		return awserr.Newf(awserr.UnsupportedOperation, "Custom key stores hold only SYMMETRIC_DEFAULT keys for ENCRYPT_DECRYPT, not %s for %s.", k.KeySpec, k.KeyUsage)
	}
	cks, h, err := s.connectedCKS(ctx, c, cksID, "CreateKey")
	if err != nil {
		return err
	}
	mid, err := keys.NewMaterialID(s.rand)
	if err != nil {
		return internal("generate key material id", err)
	}
	if err := h.GenerateKey(ctx, hsmLabel(k.ID)); err != nil {
		return internal("generate key in the custom key store", err)
	}
	k.CustomKeyStoreID = cks.ID
	k.CurrentMaterial = mid
	return nil
}

// sealHSM encrypts plaintext inside the HSM of k's custom key store.
func (s *Service) sealHSM(ctx context.Context, k *store.Key, plaintext []byte, ec map[string]string) ([]byte, error) {
	h, err := s.keyHSM(ctx, k)
	if err != nil {
		return nil, err
	}
	aad, err := keys.HSMAAD(keys.Header{KeyID: k.ID, MaterialID: k.CurrentMaterial}, ec)
	if err != nil {
		return nil, internal("seal", err)
	}
	iv, ct, err := h.EncryptGCM(ctx, hsmLabel(k.ID), plaintext, aad)
	if err != nil {
		return nil, hsmError(k, "encrypt", err)
	}
	blob, err := keys.MarshalHSMBlob(aad, iv, ct)
	if err != nil {
		return nil, internal("seal", err)
	}
	return blob, nil
}

// openHSM decrypts a version 2 blob inside the HSM of k's custom key store.
func (s *Service) openHSM(ctx context.Context, k *store.Key, b keys.HSMBlob, ec map[string]string) ([]byte, error) {
	if k.CustomKeyStoreID == "" || b.MaterialID != k.CurrentMaterial {
		return nil, errInvalidCiphertext
	}
	h, err := s.keyHSM(ctx, k)
	if err != nil {
		return nil, err
	}
	aad, err := keys.HSMAAD(b.Header, ec)
	if err != nil {
		return nil, errInvalidCiphertext
	}
	pt, err := h.DecryptGCM(ctx, hsmLabel(k.ID), b.IV, b.Ciphertext, aad)
	if errors.Is(err, ErrHSMAuthentication) {
		return nil, errInvalidCiphertext
	}
	if err != nil {
		return nil, hsmError(k, "decrypt", err)
	}
	return pt, nil
}

// hsmError maps an HSM failure: a key whose material is gone from the
// token is unusable (KMSInvalidStateException), anything else an internal
// fault the client may retry.
func hsmError(k *store.Key, op string, err error) error {
	if errors.Is(err, ErrHSMKeyNotFound) {
		return awserr.Newf(awserr.KMSInvalidState, "The key material of %s is missing from its custom key store's HSM.", arnOf(k))
	}
	return internal(op+" in the custom key store of "+k.ID, err)
}

// destroyHSMKey deletes a deleted key's material from its token, when the
// store is connected. Otherwise the material stays in the token, orphaned
// (as on AWS), and the log names its label so an operator can remove it.
func (s *Service) destroyHSMKey(ctx context.Context, k *store.Key) {
	h, err := s.cksHSM(ctx, k.CustomKeyStoreID)
	if err != nil || h == nil {
		s.log.WarnContext(ctx, "custom key store not connected: key material left in the HSM", "key", arnOf(k), "custom_key_store", k.CustomKeyStoreID, "label", hsmLabel(k.ID))
		return
	}
	if err := h.DestroyKey(ctx, hsmLabel(k.ID)); err != nil && !errors.Is(err, ErrHSMKeyNotFound) {
		s.log.WarnContext(ctx, "destroying key material in the HSM failed: it is left there", "key", arnOf(k), "label", hsmLabel(k.ID), "err", err)
	}
}

// randomFromCKS serves GenerateRandom with CustomKeyStoreId: random bytes
// from the store's HSM.
func (s *Service) randomFromCKS(ctx context.Context, c Caller, id string, n int) ([]byte, error) {
	_, h, err := s.connectedCKS(ctx, c, id, "GenerateRandom")
	if err != nil {
		return nil, err
	}
	b, err := h.GenerateRandom(ctx, n)
	if err != nil {
		return nil, internal("generate random in the custom key store", err)
	}
	return b, nil
}
