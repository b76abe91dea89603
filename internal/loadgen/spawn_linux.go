package loadgen

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal has the kernel end the child with SIGTERM if the
// load generator dies first (kill -9 included), so that no kmsd or floor
// is left running.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
