package loadgen

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// userHZ is the unit of the CPU times in /proc/PID/stat: USER_HZ, which
// Linux fixes at 100 ticks per second for user space on every
// architecture it runs Go on (sysconf(_SC_CLK_TCK)). A tick is 10 ms, so
// the server's CPU is summed over whole rounds, never read per request.
const userHZ = 100

// processCPU returns the CPU time process pid has used so far, all its
// threads (live and exited) included: utime and stime of /proc/PID/stat.
func processCPU(pid int) (cpuTimes, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return cpuTimes{}, fmt.Errorf("server CPU: %w", err)
	}
	// The command name (field 2) is in parentheses and may hold spaces or
	// parentheses itself: the fields that follow start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return cpuTimes{}, fmt.Errorf("server CPU: /proc/%d/stat is malformed", pid)
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return cpuTimes{}, fmt.Errorf("server CPU: /proc/%d/stat has %d fields", pid, len(f)+2)
	}
	utime, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	stime, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return cpuTimes{}, fmt.Errorf("server CPU: /proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	tick := time.Second / userHZ
	return cpuTimes{time.Duration(utime) * tick, time.Duration(stime) * tick}, nil
}

// selfCPU returns the CPU time this process (the load generator) has used:
// getrusage(RUSAGE_SELF), which counts every thread and no child (a
// spawned kmsd or floor is measured on its own, by processCPU).
func selfCPU() (cpuTimes, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return cpuTimes{}, fmt.Errorf("client CPU: getrusage: %w", err)
	}
	return cpuTimes{time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())}, nil
}
