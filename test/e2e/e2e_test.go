// Package e2e runs kmsd end to end with the real AWS clients: the AWS CLI v2
// (/usr/bin/aws, Debian's awscli package) and, when installed, boto3
// (/usr/bin/python3 with python3-boto3). The scenario itself is the bash
// script awscli.sh, which can also be run by hand:
//
//	go build -o /tmp/kmsd ./cmd/kmsd && bash test/e2e/awscli.sh /tmp/kmsd
//
// Without the clients the test is skipped, except under CI=true, where it
// fails so that a CI image missing them does not pass silently.
package e2e

import (
	"testing"

	"github.com/kmsd/kmsd/test/e2e/e2etest"
)

func TestAWSCLI(t *testing.T) { e2etest.Run(t, "awscli.sh", nil) }
