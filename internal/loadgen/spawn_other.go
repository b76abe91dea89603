//go:build !linux

package loadgen

import "os/exec"

// setParentDeathSignal does nothing here: the child still ends when its
// standard input (a pipe from the load generator) closes, if it is the
// floor; a spawned kmsd must be stopped by hand if the load generator is
// killed.
func setParentDeathSignal(*exec.Cmd) {}
