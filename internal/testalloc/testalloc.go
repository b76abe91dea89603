// Package testalloc checks the allocation budgets of hot paths in tests:
// each budget is the figure measured when it was set plus a small margin,
// so that a change that makes a hot path allocate more fails a test
// instead of going unnoticed until the next profile. A change that makes
// it allocate less should lower the budget in the same commit.
package testalloc

import "testing"

// Budget fails t when f allocates more than budget times per call,
// averaged over 100 calls after a warm-up call (testing.AllocsPerRun), and
// logs the figure. Under the race detector, which makes sync.Pool drop
// items at random, it only logs.
func Budget(t testing.TB, name string, budget float64, f func()) {
	t.Helper()
	got := testing.AllocsPerRun(100, f)
	t.Logf("%s: %.0f allocations per call (budget %.0f)", name, got, budget)
	if got > budget && !raceEnabled {
		t.Errorf("%s: %.0f allocations per call, over its budget of %.0f: find the new allocation (go test -bench with -memprofile) or, if it must stay, raise the budget and say why", name, got, budget)
	}
}
