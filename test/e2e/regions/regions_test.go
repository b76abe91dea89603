// Package regions runs the end-to-end scenarios of test/e2e about Regions
// and accounts: two accounts using each other's keys, and multi-Region
// keys across three Regions of one kmsd. They are a package of their own
// so that each e2e package stays well inside go test's default ten-minute
// limit.
package regions

import (
	"testing"

	"github.com/kmsd/kmsd/test/e2e/e2etest"
)

// TestAWSCLIAccounts runs accounts.sh: two accounts with a user each, and
// the AWS CLI using a key of one from the other, by each rule of
// cross-account use.
func TestAWSCLIAccounts(t *testing.T) { e2etest.Run(t, "../accounts.sh", nil) }

// TestAWSCLIMultiRegion runs multiregion.sh: one kmsd serving three
// Regions, a multi-Region key replicated from one to another, encrypted in
// one and decrypted in the other, signed and verified across Regions,
// rotation, update-primary-region and deletion with the AWS CLI.
func TestAWSCLIMultiRegion(t *testing.T) { e2etest.Run(t, "../multiregion.sh", nil) }
