// Package cluster runs kmsd as a cluster: three kmsd serve processes (the
// real binary) sharing one PostgreSQL database and one root of trust.
//
// TestClusterAWSCLI runs the harness run.sh, which can also be run by hand:
//
//	go build -o /tmp/kmsd ./cmd/kmsd && bash test/cluster/run.sh /tmp/kmsd
//
// The tests need PostgreSQL 15: the test server KMSD_TEST_POSTGRES_DSN
// names (test/pg/start.sh), or its binaries, from which they start a
// private one. Without it they skip, except under CI=true, where they
// fail.
package cluster

import (
	"os"
	"testing"

	"github.com/kmsd/kmsd/internal/pgtest"
	"github.com/kmsd/kmsd/test/e2e/e2etest"
)

// initdb is where Debian's postgresql package puts PostgreSQL 15.
const initdb = "/usr/lib/postgresql/15/bin/initdb"

// TestClusterAWSCLI starts three nodes on one PostgreSQL database and runs
// the AWS CLI scenario of run.sh through them round-robin.
func TestClusterAWSCLI(t *testing.T) {
	var env []string
	if os.Getenv(pgtest.EnvDSN) != "" {
		// A fresh database on the test server.
		env = append(env, "KMSD_CLUSTER_DSN="+pgtest.DSN(t))
	} else if _, err := os.Stat(initdb); err != nil {
		msg := "PostgreSQL 15 is missing (apt-get install postgresql), and " + pgtest.EnvDSN + " is unset: " + err.Error()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	} // else run.sh starts a private PostgreSQL with test/pg/start.sh.
	e2etest.RunWith(t, "run.sh", []string{"../e2e/lib.sh", "../pg/start.sh", "../pg/stop.sh"}, env)
}
