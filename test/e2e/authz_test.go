package e2e

import "testing"

// TestAWSCLIAuthorization runs authz.sh: the AWS CLI as a non-admin user
// whose access comes from a key policy, with an access key made by
// `kmsd iam create-access-key` while kmsd runs, grants, key policies and a
// SIGHUP reload of the declared principals.
func TestAWSCLIAuthorization(t *testing.T) { runScenario(t, "authz.sh", nil) }

// TestAWSCLICustomKeyStores runs cks.sh: the custom key store lifecycle
// with the AWS CLI against a SoftHSM2 token, from creation to deletion,
// with cryptography inside the HSM and a restart that reconnects.
func TestAWSCLICustomKeyStores(t *testing.T) {
	runScenario(t, "cks.sh", nil, "/usr/lib/softhsm/libsofthsm2.so", "/usr/bin/softhsm2-util", "/usr/bin/openssl")
}
