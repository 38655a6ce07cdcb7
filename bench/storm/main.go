// Command storm is encwatch's end-to-end exec-storm benchmark and soak test.
// It spawns programs at a fixed rate (or flat out) while encwatch, and then
// Debian's auditd, consume the kernel audit records of the same storm, and
// reports CPU per exec, peak RSS, loss and exec→alert latency side by side.
//
//	storm bench -bin bin/encwatch -config config.hcl -out docs/performance.md
//	storm soak  -bin bin/encwatch -config config.hcl -duration 10m
//
// It must run as root on a kernel with audit; it takes the kernel-test lock
// (internal/audittest) around each measured run and restores the kernel audit
// state it found.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "storm:", err)
		os.Exit(1)
	}
}
