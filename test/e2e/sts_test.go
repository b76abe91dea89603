package e2e

import (
	"testing"

	"github.com/kmsd/kmsd/test/e2e/e2etest"
)

// TestAWSCLISTS runs sts.sh: the AWS CLI with a ~/.aws/config profile
// that has role_arn and source_profile assumes a role on kmsd's STS and
// uses the session with KMS; the trust policy, durations, session names,
// session policies and tampered tokens; the session in the audit log.
func TestAWSCLISTS(t *testing.T) { e2etest.Run(t, "sts.sh", nil) }
