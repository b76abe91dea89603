//go:build cgo

package server_test

import (
	"bytes"
	"context"
	"regexp"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/google/uuid"

	"github.com/kmsd/kmsd/internal/hsmcluster"
	"github.com/kmsd/kmsd/internal/keystore/pkcs11"
	"github.com/kmsd/kmsd/internal/kmstest"
	"github.com/kmsd/kmsd/internal/softhsmtest"
)

const testCluster = "cluster-kmsdsofthsm2"

func describeCKS(t *testing.T, c *awskms.Client, id string) types.CustomKeyStoresListEntry {
	t.Helper()
	out, err := c.DescribeCustomKeyStores(context.Background(), &awskms.DescribeCustomKeyStoresInput{CustomKeyStoreId: &id})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.CustomKeyStores) != 1 {
		t.Fatalf("DescribeCustomKeyStores returned %d stores", len(out.CustomKeyStores))
	}
	return out.CustomKeyStores[0]
}

// TestCustomKeyStoreLifecycle runs a custom key store backed by a SoftHSM
// token through every state with the AWS SDK: created, a failed
// connection, connected, keys created and used inside the HSM,
// disconnected (keys Unavailable), reconnected by a restart, keys deleted
// and the store deleted.
func TestCustomKeyStoreLifecycle(t *testing.T) {
	softhsmtest.Token(t, "kmsd-cks")
	clusters, err := hsmcluster.New([]hsmcluster.Cluster{{ID: testCluster, Module: softhsmtest.Module, TokenLabel: "kmsd-cks", Sessions: 4}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	env := kmstest.StartWithClusters(t, dir, clusters)
	ctx := context.Background()
	c := env.Client
	anchor := softhsmtest.TrustAnchorPEM(t)

	// Creation errors.
	create := func(name, cluster, password, anchor string) (*awskms.CreateCustomKeyStoreOutput, error) {
		return c.CreateCustomKeyStore(ctx, &awskms.CreateCustomKeyStoreInput{CustomKeyStoreName: &name,
			CloudHsmClusterId: &cluster, KeyStorePassword: &password, TrustAnchorCertificate: &anchor})
	}
	_, err = create("hr", "cluster-nosuchclusterz", softhsmtest.PIN, anchor)
	wantCode(t, err, "CloudHsmClusterNotFoundException")
	_, err = create("hr", testCluster, softhsmtest.PIN, "not a certificate")
	wantCode(t, err, "IncorrectTrustAnchorException")
	_, err = c.CreateCustomKeyStore(ctx, &awskms.CreateCustomKeyStoreInput{CustomKeyStoreName: aws.String("x"),
		CustomKeyStoreType: types.CustomKeyStoreTypeExternalKeyStore})
	wantCode(t, err, "UnsupportedOperationException")
	_, err = create("hr", testCluster, "short", anchor)
	wantCode(t, err, "ValidationException")
	if err != nil && bytes.Contains([]byte(err.Error()), []byte("short")) {
		t.Fatalf("the validation error shows the password: %v", err)
	}

	// A store created with the wrong password fails to connect.
	out, err := create("hr", testCluster, "wrong-password", anchor)
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.CustomKeyStoreId)
	if !regexp.MustCompile(`^cks-[0-9a-f]{17}$`).MatchString(id) {
		t.Fatalf("CustomKeyStoreId = %q", id)
	}
	_, err = create("hr", testCluster, softhsmtest.PIN, anchor)
	wantCode(t, err, "CustomKeyStoreNameInUseException")
	_, err = create("other", testCluster, softhsmtest.PIN, anchor)
	wantCode(t, err, "CloudHsmClusterInUseException")
	e := describeCKS(t, c, id)
	if e.ConnectionState != types.ConnectionStateTypeDisconnected || aws.ToString(e.CloudHsmClusterId) != testCluster ||
		aws.ToString(e.CustomKeyStoreName) != "hr" || e.CustomKeyStoreType != types.CustomKeyStoreTypeAwsCloudhsm ||
		aws.ToString(e.TrustAnchorCertificate) != anchor || e.CreationDate == nil {
		t.Fatalf("new store = %+v", e)
	}
	_, err = c.CreateKey(ctx, &awskms.CreateKeyInput{CustomKeyStoreId: &id, Origin: types.OriginTypeAwsCloudhsm})
	wantCode(t, err, "CustomKeyStoreInvalidStateException")

	if _, err := c.ConnectCustomKeyStore(ctx, &awskms.ConnectCustomKeyStoreInput{CustomKeyStoreId: &id}); err != nil {
		t.Fatal(err)
	}
	if e := describeCKS(t, c, id); e.ConnectionState != types.ConnectionStateTypeFailed || e.ConnectionErrorCode != types.ConnectionErrorCodeTypeInvalidCredentials {
		t.Fatalf("after connecting with a wrong password: %s %s", e.ConnectionState, e.ConnectionErrorCode)
	}
	_, err = c.ConnectCustomKeyStore(ctx, &awskms.ConnectCustomKeyStoreInput{CustomKeyStoreId: &id})
	wantCode(t, err, "CustomKeyStoreInvalidStateException")
	_, err = c.UpdateCustomKeyStore(ctx, &awskms.UpdateCustomKeyStoreInput{CustomKeyStoreId: &id, KeyStorePassword: aws.String(softhsmtest.PIN)})
	wantCode(t, err, "CustomKeyStoreInvalidStateException")
	if _, err := c.DisconnectCustomKeyStore(ctx, &awskms.DisconnectCustomKeyStoreInput{CustomKeyStoreId: &id}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DisconnectCustomKeyStore(ctx, &awskms.DisconnectCustomKeyStoreInput{CustomKeyStoreId: &id})
	wantCode(t, err, "CustomKeyStoreInvalidStateException")
	if _, err := c.UpdateCustomKeyStore(ctx, &awskms.UpdateCustomKeyStoreInput{CustomKeyStoreId: &id, KeyStorePassword: aws.String(softhsmtest.PIN)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ConnectCustomKeyStore(ctx, &awskms.ConnectCustomKeyStoreInput{CustomKeyStoreId: &id}); err != nil {
		t.Fatal(err)
	}
	if e := describeCKS(t, c, id); e.ConnectionState != types.ConnectionStateTypeConnected || e.ConnectionErrorCode != "" {
		t.Fatalf("after connecting: %s %s", e.ConnectionState, e.ConnectionErrorCode)
	}
	// Connecting a connected store is a no-op; renaming works while
	// connected, other changes and deletion do not.
	if _, err := c.ConnectCustomKeyStore(ctx, &awskms.ConnectCustomKeyStoreInput{CustomKeyStoreId: &id}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateCustomKeyStore(ctx, &awskms.UpdateCustomKeyStoreInput{CustomKeyStoreId: &id, NewCustomKeyStoreName: aws.String("payroll")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.UpdateCustomKeyStore(ctx, &awskms.UpdateCustomKeyStoreInput{CustomKeyStoreId: &id, KeyStorePassword: aws.String(softhsmtest.PIN)})
	wantCode(t, err, "CustomKeyStoreInvalidStateException")
	_, err = c.DeleteCustomKeyStore(ctx, &awskms.DeleteCustomKeyStoreInput{CustomKeyStoreId: &id})
	wantCode(t, err, "CustomKeyStoreInvalidStateException")
	byName, err := c.DescribeCustomKeyStores(ctx, &awskms.DescribeCustomKeyStoresInput{CustomKeyStoreName: aws.String("payroll")})
	if err != nil || len(byName.CustomKeyStores) != 1 || aws.ToString(byName.CustomKeyStores[0].CustomKeyStoreId) != id {
		t.Fatalf("describe by name: %+v, %v", byName, err)
	}
	_, err = c.DescribeCustomKeyStores(ctx, &awskms.DescribeCustomKeyStoresInput{CustomKeyStoreId: aws.String("cks-0123456789abcdef0")})
	wantCode(t, err, "CustomKeyStoreNotFoundException")

	// Keys: only symmetric, only with Origin AWS_CLOUDHSM.
	_, err = c.CreateKey(ctx, &awskms.CreateKeyInput{CustomKeyStoreId: &id})
	wantCode(t, err, "UnsupportedOperationException")
	_, err = c.CreateKey(ctx, &awskms.CreateKeyInput{CustomKeyStoreId: &id, Origin: types.OriginTypeAwsCloudhsm, KeySpec: types.KeySpecEccNistP256, KeyUsage: types.KeyUsageTypeSignVerify})
	wantCode(t, err, "UnsupportedOperationException")
	_, err = c.CreateKey(ctx, &awskms.CreateKeyInput{CustomKeyStoreId: aws.String("cks-0123456789abcdef0"), Origin: types.OriginTypeAwsCloudhsm})
	wantCode(t, err, "CustomKeyStoreNotFoundException")
	ck, err := c.CreateKey(ctx, &awskms.CreateKeyInput{CustomKeyStoreId: &id, Origin: types.OriginTypeAwsCloudhsm, Description: aws.String("in the HSM")})
	if err != nil {
		t.Fatal(err)
	}
	md := ck.KeyMetadata
	keyID := aws.ToString(md.KeyId)
	if aws.ToString(md.CustomKeyStoreId) != id || aws.ToString(md.CloudHsmClusterId) != testCluster ||
		md.Origin != types.OriginTypeAwsCloudhsm || md.KeyState != types.KeyStateEnabled || md.KeySpec != types.KeySpecSymmetricDefault {
		t.Fatalf("key metadata = %+v", md)
	}
	_, err = c.EnableKeyRotation(ctx, &awskms.EnableKeyRotationInput{KeyId: &keyID})
	wantCode(t, err, "UnsupportedOperationException")

	// The key material is an object in the token, labelled by key id.
	tok, err := pkcs11.OpenToken(ctx, pkcs11.TokenConfig{Module: softhsmtest.Module, TokenLabel: "kmsd-cks", PIN: softhsmtest.PIN})
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	if ok, err := tok.HasKey(ctx, "kmsd-key/"+keyID); err != nil || !ok {
		t.Fatalf("the key's material is not in the token: %v, %v", ok, err)
	}

	// Cryptography inside the HSM.
	ec := map[string]string{"dept": "payroll"}
	enc, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: &keyID, Plaintext: []byte("salary data"), EncryptionContext: ec})
	if err != nil {
		t.Fatal(err)
	}
	if enc.CiphertextBlob[0] != 0x02 {
		t.Fatalf("blob format version %d, want 2 (sealed in the HSM)", enc.CiphertextBlob[0])
	}
	dec, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ec})
	if err != nil || string(dec.Plaintext) != "salary data" || aws.ToString(dec.KeyId) != aws.ToString(md.Arn) {
		t.Fatalf("Decrypt = %+v, %v", dec, err)
	}
	_, err = c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: map[string]string{"dept": "hr"}})
	wantCode(t, err, "InvalidCiphertextException")
	tampered := bytes.Clone(enc.CiphertextBlob)
	tampered[len(tampered)-1] ^= 1
	_, err = c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: tampered, EncryptionContext: ec})
	wantCode(t, err, "InvalidCiphertextException")
	dk, err := c.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: &keyID, KeySpec: types.DataKeySpecAes256})
	if err != nil {
		t.Fatal(err)
	}
	if dec, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: dk.CiphertextBlob}); err != nil || !bytes.Equal(dec.Plaintext, dk.Plaintext) {
		t.Fatalf("data key did not round-trip: %v", err)
	}
	// ReEncrypt from a software key into the HSM and back.
	soft := createKey(t, c, "software")
	softEnc, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: soft.KeyId, Plaintext: []byte("move me")})
	if err != nil {
		t.Fatal(err)
	}
	re, err := c.ReEncrypt(ctx, &awskms.ReEncryptInput{CiphertextBlob: softEnc.CiphertextBlob, DestinationKeyId: &keyID})
	if err != nil || re.CiphertextBlob[0] != 0x02 {
		t.Fatalf("ReEncrypt into the HSM: %v", err)
	}
	back, err := c.ReEncrypt(ctx, &awskms.ReEncryptInput{CiphertextBlob: re.CiphertextBlob, DestinationKeyId: soft.KeyId})
	if err != nil {
		t.Fatal(err)
	}
	if dec, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: back.CiphertextBlob}); err != nil || string(dec.Plaintext) != "move me" {
		t.Fatalf("after two ReEncrypts: %v", err)
	}
	// A version 2 blob naming a software key is refused.
	forged := bytes.Clone(enc.CiphertextBlob)
	softID := uuid.MustParse(aws.ToString(soft.KeyId))
	copy(forged[1:17], softID[:])
	_, err = c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: forged, EncryptionContext: ec})
	wantCode(t, err, "InvalidCiphertextException")
	rnd, err := c.GenerateRandom(ctx, &awskms.GenerateRandomInput{CustomKeyStoreId: &id, NumberOfBytes: aws.Int32(64)})
	if err != nil || len(rnd.Plaintext) != 64 {
		t.Fatalf("GenerateRandom in the HSM: %v", err)
	}

	// Disconnected: keys are Unavailable and refuse cryptography.
	if _, err := c.DisconnectCustomKeyStore(ctx, &awskms.DisconnectCustomKeyStoreInput{CustomKeyStoreId: &id}); err != nil {
		t.Fatal(err)
	}
	if d, err := c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: &keyID}); err != nil || d.KeyMetadata.KeyState != types.KeyStateUnavailable {
		t.Fatalf("key of a disconnected store: %v, %v", d.KeyMetadata.KeyState, err)
	}
	_, err = c.Encrypt(ctx, &awskms.EncryptInput{KeyId: &keyID, Plaintext: []byte("x")})
	wantCode(t, err, "KMSInvalidStateException")
	_, err = c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ec})
	wantCode(t, err, "KMSInvalidStateException")
	_, err = c.GenerateRandom(ctx, &awskms.GenerateRandomInput{CustomKeyStoreId: &id, NumberOfBytes: aws.Int32(8)})
	wantCode(t, err, "CustomKeyStoreInvalidStateException")
	_, err = c.DeleteCustomKeyStore(ctx, &awskms.DeleteCustomKeyStoreInput{CustomKeyStoreId: &id})
	wantCode(t, err, "CustomKeyStoreHasCMKsException")

	// A restart reconnects the stores that were connected.
	if _, err := c.ConnectCustomKeyStore(ctx, &awskms.ConnectCustomKeyStoreInput{CustomKeyStoreId: &id}); err != nil {
		t.Fatal(err)
	}
	env.Service.CloseCustomKeyStores()
	env2 := kmstest.StartWithClusters(t, dir, clusters)
	c2 := env2.NewClient(env.AccessKeyID, env.Secret)
	if e := describeCKS(t, c2, id); e.ConnectionState != types.ConnectionStateTypeConnected {
		t.Fatalf("after restart: %s %s", e.ConnectionState, e.ConnectionErrorCode)
	}
	if dec, err := c2.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ec}); err != nil || string(dec.Plaintext) != "salary data" {
		t.Fatalf("Decrypt after restart: %v", err)
	}

	// Deleting the key destroys its material in the HSM; then the store
	// can go.
	if _, err := c2.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: &keyID, PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	env2.Clock.Advance(8 * day)
	if n, err := env2.Service.ReapDeletedKeys(ctx); err != nil || n != 1 {
		t.Fatalf("reaper deleted %d keys: %v", n, err)
	}
	if ok, err := tok.HasKey(ctx, "kmsd-key/"+keyID); err != nil || ok {
		t.Fatalf("the deleted key's material is still in the token: %v, %v", ok, err)
	}
	if _, err := c2.DisconnectCustomKeyStore(ctx, &awskms.DisconnectCustomKeyStoreInput{CustomKeyStoreId: &id}); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.DeleteCustomKeyStore(ctx, &awskms.DeleteCustomKeyStoreInput{CustomKeyStoreId: &id}); err != nil {
		t.Fatal(err)
	}
	_, err = c2.DescribeCustomKeyStores(ctx, &awskms.DescribeCustomKeyStoresInput{CustomKeyStoreId: &id})
	wantCode(t, err, "CustomKeyStoreNotFoundException")
}

// TestCustomKeyStoresPerRegion: a custom key store lives in the Region it
// was created in: another Region neither lists, describes, changes nor
// creates keys in it, and may have a store of the same name (on another
// cluster: a cluster backs one store in all).
func TestCustomKeyStoresPerRegion(t *testing.T) {
	softhsmtest.Token(t, "kmsd-cks-east", "kmsd-cks-paris")
	const eastCluster, parisCluster = "cluster-kmsdeastcluster", "cluster-kmsdpariscluster"
	clusters, err := hsmcluster.New([]hsmcluster.Cluster{
		{ID: eastCluster, Module: softhsmtest.Module, TokenLabel: "kmsd-cks-east", Sessions: 2},
		{ID: parisCluster, Module: softhsmtest.Module, TokenLabel: "kmsd-cks-paris", Sessions: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	env := kmstest.StartWithClusters(t, t.TempDir(), clusters)
	ctx := context.Background()
	east, paris := env.Client, env.ClientIn("eu-west-3")
	anchor := softhsmtest.TrustAnchorPEM(t)
	create := func(c *awskms.Client, name, cluster string) (string, error) {
		out, err := c.CreateCustomKeyStore(ctx, &awskms.CreateCustomKeyStoreInput{CustomKeyStoreName: &name,
			CloudHsmClusterId: aws.String(cluster), KeyStorePassword: aws.String(softhsmtest.PIN), TrustAnchorCertificate: &anchor})
		if err != nil {
			return "", err
		}
		return aws.ToString(out.CustomKeyStoreId), nil
	}
	eastID, err := create(east, "hr", eastCluster)
	if err != nil {
		t.Fatal(err)
	}
	// The cluster is taken, whatever the Region.
	_, err = create(paris, "other", eastCluster)
	wantCode(t, err, "CloudHsmClusterInUseException")
	// The name is free in another Region.
	parisID, err := create(paris, "hr", parisCluster)
	if err != nil {
		t.Fatalf("a store named hr in eu-west-3 beside us-east-1's: %v", err)
	}
	for c, want := range map[*awskms.Client]string{east: eastID, paris: parisID} {
		out, err := c.DescribeCustomKeyStores(ctx, &awskms.DescribeCustomKeyStoresInput{})
		if err != nil || len(out.CustomKeyStores) != 1 || aws.ToString(out.CustomKeyStores[0].CustomKeyStoreId) != want {
			t.Errorf("DescribeCustomKeyStores in %s: %+v, %v; want only %s", c.Options().Region, out, err, want)
		}
		byName, err := c.DescribeCustomKeyStores(ctx, &awskms.DescribeCustomKeyStoresInput{CustomKeyStoreName: aws.String("hr")})
		if err != nil || len(byName.CustomKeyStores) != 1 || aws.ToString(byName.CustomKeyStores[0].CustomKeyStoreId) != want {
			t.Errorf("DescribeCustomKeyStores of hr in %s: %+v, %v; want %s", c.Options().Region, byName, err, want)
		}
	}
	// us-east-1's store does not exist in eu-west-3, for any operation.
	_, err = paris.DescribeCustomKeyStores(ctx, &awskms.DescribeCustomKeyStoresInput{CustomKeyStoreId: &eastID})
	wantCode(t, err, "CustomKeyStoreNotFoundException")
	_, err = paris.ConnectCustomKeyStore(ctx, &awskms.ConnectCustomKeyStoreInput{CustomKeyStoreId: &eastID})
	wantCode(t, err, "CustomKeyStoreNotFoundException")
	_, err = paris.UpdateCustomKeyStore(ctx, &awskms.UpdateCustomKeyStoreInput{CustomKeyStoreId: &eastID, NewCustomKeyStoreName: aws.String("x")})
	wantCode(t, err, "CustomKeyStoreNotFoundException")
	_, err = paris.DeleteCustomKeyStore(ctx, &awskms.DeleteCustomKeyStoreInput{CustomKeyStoreId: &eastID})
	wantCode(t, err, "CustomKeyStoreNotFoundException")
	if _, err := east.ConnectCustomKeyStore(ctx, &awskms.ConnectCustomKeyStoreInput{CustomKeyStoreId: &eastID}); err != nil {
		t.Fatal(err)
	}
	if e := describeCKS(t, east, eastID); e.ConnectionState != types.ConnectionStateTypeConnected {
		t.Fatalf("us-east-1's store after connecting: %s %s", e.ConnectionState, e.ConnectionErrorCode)
	}
	_, err = paris.CreateKey(ctx, &awskms.CreateKeyInput{CustomKeyStoreId: &eastID, Origin: types.OriginTypeAwsCloudhsm})
	wantCode(t, err, "CustomKeyStoreNotFoundException")
	// A key of us-east-1's store is a us-east-1 key.
	ck, err := east.CreateKey(ctx, &awskms.CreateKeyInput{CustomKeyStoreId: &eastID, Origin: types.OriginTypeAwsCloudhsm})
	if err != nil {
		t.Fatal(err)
	}
	if arn := aws.ToString(ck.KeyMetadata.Arn); !regexp.MustCompile(`^arn:aws:kms:us-east-1:`).MatchString(arn) {
		t.Errorf("key of us-east-1's store: %s", arn)
	}
	_, err = paris.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: ck.KeyMetadata.KeyId})
	wantCode(t, err, "NotFoundException")
	// Disconnected and deleted in its own Region only.
	if _, err := east.DisconnectCustomKeyStore(ctx, &awskms.DisconnectCustomKeyStoreInput{CustomKeyStoreId: &eastID}); err != nil {
		t.Fatal(err)
	}
	if _, err := paris.DeleteCustomKeyStore(ctx, &awskms.DeleteCustomKeyStoreInput{CustomKeyStoreId: &parisID}); err != nil {
		t.Fatal(err)
	}
	if e := describeCKS(t, east, eastID); aws.ToString(e.CustomKeyStoreName) != "hr" {
		t.Errorf("us-east-1's store after eu-west-3's was deleted: %+v", e)
	}
}
