package main

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// kernelCounts are what the kernel counted of a daemon (every thread)
// during a window: system calls entered and times it was switched out.
type kernelCounts struct {
	syscalls, switches uint64
}

// perfEvents are the tracepoints counted: raw_syscalls:sys_enter fires on
// every system call entry, sched:sched_switch on every context switch of
// the daemon's threads (voluntary or not).
const perfEvents = "raw_syscalls:sys_enter,sched:sched_switch"

// perfCounter is a running `perf stat` attached to a process.
type perfCounter struct {
	cmd *exec.Cmd
	out bytes.Buffer
}

// startPerf attaches `perf stat -p pid` (linux-perf) to pid's threads; nil
// when perf cannot run, and the counts are then reported n/a.
func startPerf(pid int) *perfCounter {
	if _, err := exec.LookPath("perf"); err != nil {
		return nil
	}
	p := &perfCounter{}
	p.cmd = exec.Command("perf", "stat", "-x,", "-e", perfEvents, "-p", strconv.Itoa(pid))
	p.cmd.Stderr = &p.out // perf stat writes its counts to stderr
	if err := p.cmd.Start(); err != nil {
		return nil
	}
	// perf attaches after it starts: give it a moment before the storm.
	time.Sleep(200 * time.Millisecond)
	return p
}

// stop ends the count (SIGINT, as ^C) and returns it.
func (p *perfCounter) stop() (kernelCounts, error) {
	if p == nil {
		return kernelCounts{}, errors.New("perf not available")
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	p.cmd.Wait() // perf exits non-zero on SIGINT
	return parsePerfStat(p.out.String())
}

// parsePerfStat reads the CSV lines of `perf stat -x,`: COUNT,UNIT,EVENT,...
func parsePerfStat(s string) (kernelCounts, error) {
	var c kernelCounts
	seen := 0
	for _, line := range strings.Split(s, "\n") {
		f := strings.Split(line, ",")
		if len(f) < 3 {
			continue
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			continue // "<not counted>": nothing ran
		}
		switch f[2] {
		case "raw_syscalls:sys_enter":
			c.syscalls, seen = n, seen+1
		case "sched:sched_switch":
			c.switches, seen = n, seen+1
		}
	}
	if seen == 0 {
		return c, fmt.Errorf("perf stat counted nothing: %s", strings.TrimSpace(s))
	}
	return c, nil
}
