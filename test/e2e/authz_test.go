package e2e

import (
	"testing"

	"github.com/kmsd/kmsd/test/e2e/e2etest"
)

// TestAWSCLIAuthorization runs authz.sh: the AWS CLI as a non-admin user
// whose access comes from a key policy, with an access key made by
// `kmsd iam create-access-key` while kmsd runs, grants, key policies and a
// SIGHUP reload of the declared principals.
func TestAWSCLIAuthorization(t *testing.T) { e2etest.Run(t, "authz.sh", nil) }
