package loadgen

import "time"

// cpuTimes is CPU time spent by a process, in user and kernel mode.
type cpuTimes struct {
	User, System time.Duration
}

func (c cpuTimes) sub(d cpuTimes) cpuTimes {
	return cpuTimes{c.User - d.User, c.System - d.System}
}

func (c cpuTimes) add(d cpuTimes) cpuTimes {
	return cpuTimes{c.User + d.User, c.System + d.System}
}

func (c cpuTimes) total() time.Duration { return c.User + c.System }
