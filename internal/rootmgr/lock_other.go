//go:build !unix

package rootmgr

// Lock is a no-op where flock(2) is missing: run one kmsd root command at
// a time.
func Lock(dataDir string) (unlock func(), err error) { return func() {}, nil }
