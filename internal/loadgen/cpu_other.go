//go:build !linux

package loadgen

import "errors"

var errNoCPU = errors.New("CPU time is measured on Linux only")

func processCPU(pid int) (cpuTimes, error) { return cpuTimes{}, errNoCPU }

func selfCPU() (cpuTimes, error) { return cpuTimes{}, errNoCPU }
