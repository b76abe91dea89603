// Package hsm runs the end-to-end scenarios of test/e2e that need an HSM
// (SoftHSM2): the whole symmetric AWS CLI scenario with a PKCS#11 root of
// trust, and the custom key store lifecycle. They are a package of their
// own so that each e2e package stays well inside go test's default
// ten-minute limit. Without SoftHSM2 (apt-get install -y softhsm2 opensc)
// they skip, or fail under CI=true.
package hsm

import (
	"testing"

	"github.com/kmsd/kmsd/test/e2e/e2etest"
)

const softHSM = "/usr/lib/softhsm/libsofthsm2.so"

// TestAWSCLIPKCS11Root runs the whole awscli.sh scenario with the root of
// trust in a fresh SoftHSM2 token (keystore.type pkcs11).
func TestAWSCLIPKCS11Root(t *testing.T) {
	e2etest.Run(t, "../awscli.sh", []string{"E2E_ROOT=pkcs11"}, softHSM, "/usr/bin/softhsm2-util")
}

// TestAWSCLICustomKeyStores runs cks.sh: the custom key store lifecycle
// with the AWS CLI against a SoftHSM2 token, from creation to deletion,
// with cryptography inside the HSM and a restart that reconnects.
func TestAWSCLICustomKeyStores(t *testing.T) {
	e2etest.Run(t, "../cks.sh", nil, softHSM, "/usr/bin/softhsm2-util", "/usr/bin/openssl", "/usr/bin/pkcs11-tool")
}
