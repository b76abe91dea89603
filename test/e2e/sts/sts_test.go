// Package sts runs the end-to-end STS scenario of test/e2e: the AWS CLI
// with a ~/.aws/config profile that has role_arn and source_profile. It is
// a package of its own so that each e2e package stays well inside go
// test's default ten-minute limit.
package sts

import (
	"testing"

	"github.com/kmsd/kmsd/test/e2e/e2etest"
)

// TestAWSCLISTS runs sts.sh: the AWS CLI with a role profile assumes a
// role on kmsd's STS and uses the session with KMS; the trust policy,
// durations, session names, session policies and tampered tokens; the
// session in the audit log.
func TestAWSCLISTS(t *testing.T) { e2etest.Run(t, "../sts.sh", nil) }
