package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/encwatch/encwatch/internal/daemon"
)

// TestSummaryHostsBounded: a replay of 200,000 hosts prints the hosts
// listed and one line saying how many more, not a line per host.
func TestSummaryHostsBounded(t *testing.T) {
	s := &daemon.ReplaySummary{Hosts: 200_000}
	for i := range 10 {
		s.ByHost = append(s.ByHost, daemon.Count{Name: fmt.Sprintf("h%d", i), N: 1})
	}
	var b strings.Builder
	writeSummary(&b, s)
	out := b.String()
	if n := strings.Count(out, "\n"); n > 30 {
		t.Errorf("summary of 200,000 hosts is %d lines, want at most 30:\n%s", n, out)
	}
	if !strings.Contains(out, "and 199990 more hosts (200000 in all)") {
		t.Errorf("summary lacks the count of the hosts not listed:\n%s", out)
	}
	s.HostsAtLeast = true
	b.Reset()
	writeSummary(&b, s)
	if !strings.Contains(b.String(), "at least 199990 more hosts") {
		t.Errorf("summary with a lower bound does not say so:\n%s", b.String())
	}
}
