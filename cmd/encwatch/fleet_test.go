package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/encwatch/encwatch/internal/natstest"
)

// fleetLine is what the fleet tests read of an alert line.
type fleetLine struct {
	ID        string `json:"id"`
	Host      string `json:"host"`
	Signature struct {
		Name string `json:"name"`
	} `json:"signature"`
}

// tail reads the complete lines appended to a file since the last call.
type tail struct {
	path string
	off  int64
}

func (tl *tail) next(t *testing.T) []fleetLine {
	t.Helper()
	f, err := os.Open(tl.path)
	if err != nil {
		return nil
	}
	defer f.Close()
	if _, err := f.Seek(tl.off, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	end := bytes.LastIndexByte(b, '\n')
	if end < 0 {
		return nil
	}
	var out []fleetLine
	sc := bufio.NewScanner(bytes.NewReader(b[:end+1]))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var l fleetLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("%s: bad line %q: %v", tl.path, sc.Text(), err)
		}
		out = append(out, l)
	}
	tl.off += int64(end + 1)
	return out
}

// agentPolicy is an audisp agent named host publishing to urls with its
// own nkey (seed), with a local file of what it raised, and heartbeats
// every interval.
func agentPolicy(host string, urls []string, seed, local, interval string) string {
	return fmt.Sprintf(`
settings {
  hostname             = %q
  alert_cap_per_minute = 10000000
}
audit {
  mode = "audisp"
}
metrics {
  address = ""
}
signature "enc" {
  importance  = "high"
  executables = ["base64"]
}
heartbeat {
  interval = %q
  sinks    = ["bus"]
}
sink "nats" "bus" {
  urls      = [%s]
  subject   = "encwatch.alerts.{host}"
  stream    = "ENCWATCH"
  nkey_file = %q
  spool {
    dir = %q
  }
}
sink "file" "local" {
  path = %q
}
`, host, interval, quoteList(urls), seed, local+".spool", local)
}

// collectorPolicy is a collector of the ENCWATCH stream, with the
// collector's nkey (seed), writing to file. Its probe socket lies beside
// out, so that collectors of tests running at once never share one.
func collectorPolicy(urls []string, seed, out, metrics, silentAfter string) string {
	return fmt.Sprintf(`
metrics {
  address      = %q
  probe_socket = %q
}
collect {
  urls         = [%s]
  stream       = "ENCWATCH"
  nkey_file    = %q
  ack_wait     = "10s"
  silent_after = %q
}
sink "file" "siem" {
  path = %q
}
`, metrics, filepath.Join(filepath.Dir(out), "collect-probe.sock"), quoteList(urls), seed, silentAfter, out)
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// TestFleetThroughJetStreamClusterAsRoot is the fleet end to end: a 3-node
// JetStream cluster of Debian's nats-server with a stream of 3 replicas,
// 20 agents (the real binary in audisp mode, each its own host) publishing
// 100,000 alerts, and 2 collectors on one durable consumer writing to file
// sinks. Meanwhile one cluster node and one collector are killed with
// SIGKILL and restarted. Every alert an agent raised must reach a
// collector's file; duplicates are allowed only after the collector kill.
func TestFleetThroughJetStreamClusterAsRoot(t *testing.T) {
	needRoot(t)
	agents, perAgent, chunks := 20, 5000, 20
	if n := os.Getenv("ENCWATCH_FLEET_AGENTS"); n != "" { // a smaller run, to debug
		fmt.Sscan(n, &agents)
	}
	bin := buildEncwatch(t)
	hosts := make([]string, agents)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("agent%02d.example.com", i)
	}
	cl := natstest.Start(t, 3, hosts)
	nodes := cl.Nodes
	urls := cl.URLs()
	cl.CreateStream(3)
	dir := t.TempDir()

	cols := make([]*daemonProc, 2)
	outs := make([]*tail, 2)
	for i := range cols {
		out := filepath.Join(dir, fmt.Sprintf("siem-%d.jsonl", i))
		policy := filepath.Join(dir, fmt.Sprintf("collect-%d.hcl", i))
		writePolicy(t, policy, collectorPolicy(urls, cl.Seed(natstest.Collect), out, freeAddr(t), "30s"))
		cols[i] = &daemonProc{args: []string{"collect", "--config", policy, "--log-format", "text"}}
		cols[i].start(t, bin)
		defer cols[i].kill()
		outs[i] = &tail{path: out}
	}
	ags := make([]*daemonProc, agents)
	locals := make([]*tail, agents)
	for i := range ags {
		host := hosts[i]
		local := filepath.Join(dir, host+".jsonl")
		policy := filepath.Join(dir, host+".hcl")
		writePolicy(t, policy, agentPolicy(host, urls, cl.Seed(host), local, "2s"))
		ags[i] = &daemonProc{args: []string{"run", "--config", policy, "--log-format", "text"}}
		ags[i].start(t, bin)
		defer ags[i].kill()
		locals[i] = &tail{path: local}
	}

	// Feed every agent its share in chunks, so that the kills fall in the
	// middle of the traffic.
	start := time.Now()
	var feed sync.WaitGroup
	for i, a := range ags {
		feed.Add(1)
		go func() {
			defer feed.Done()
			per := perAgent / chunks
			for c := range chunks {
				if _, err := io.WriteString(a.stdin, b64Events(t, 1000+c*per, per)); err != nil {
					t.Errorf("agent %d: write records: %v", i, err)
					return
				}
				time.Sleep(250 * time.Millisecond) // pacing the feed over ~5s
			}
		}()
	}

	seen := map[string]int{}
	beforeKill := map[string]int{}
	read := func(into map[string]int) {
		for _, o := range outs {
			for _, l := range o.next(t) {
				if l.Signature.Name == "enc" {
					into[l.ID]++
				}
			}
		}
	}
	// waitSeen waits until the collectors' files hold n alerts, so that
	// the kills fall in the middle of the traffic.
	waitSeen := func(n int) {
		for deadline := time.Now().Add(120 * time.Second); len(seen) < n; {
			if time.Now().After(deadline) {
				t.Fatalf("only %d alerts reached the collectors, waiting for %d (%s); collector 0 logs:\n%s\ncollector 1 logs:\n%s",
					len(seen), n, streamState(cl), tailLines(cols[0].logs.String(), 40), tailLines(cols[1].logs.String(), 40))
			}
			time.Sleep(100 * time.Millisecond) // polling the collectors' files
			read(seen)
		}
	}

	// The chaos: a cluster node dies and comes back, then a collector.
	total := agents * perAgent
	waitSeen(total / 10)
	nodes[1].Kill()
	t.Logf("%.1fs: kill -9 nats-server %s (%d alerts in the files)", time.Since(start).Seconds(), nodes[1].Name, len(seen))
	time.Sleep(3 * time.Second)
	cl.StartNode(nodes[1])
	t.Logf("%.1fs: restarted %s", time.Since(start).Seconds(), nodes[1].Name)
	waitSeen(total * 3 / 10)
	cols[0].kill()
	read(seen)
	for id, n := range seen {
		beforeKill[id] = n
	}
	t.Logf("%.1fs: kill -9 collector 0 (%d alerts in the files)", time.Since(start).Seconds(), len(seen))
	time.Sleep(3 * time.Second)
	cols[0].start(t, bin)
	t.Logf("%.1fs: restarted collector 0", time.Since(start).Seconds())
	feed.Wait()

	// What the agents raised, from their own files.
	want := map[string]bool{}
	deadline := time.Now().Add(150 * time.Second)
	t.Logf("%.1fs: fed; %s", time.Since(start).Seconds(), streamState(cl))
	for len(want) < agents*perAgent && time.Now().Before(deadline) {
		for _, l := range locals {
			for _, a := range l.next(t) {
				if a.Signature.Name == "enc" {
					want[a.ID] = true
				}
			}
		}
		time.Sleep(100 * time.Millisecond) // polling the agents' files
	}
	if len(want) != agents*perAgent {
		t.Fatalf("the agents raised %d alerts, want %d; agent 0 logs:\n%s", len(want), agents*perAgent, ags[0].logs.String())
	}
	var done time.Duration
	for {
		read(seen)
		missing := 0
		for id := range want {
			if seen[id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			done = time.Since(start)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d alerts never reached a collector's file (%s); collector 0 logs:\n%s\ncollector 1 logs:\n%s\nagent 0 logs:\n%s",
				missing, len(want), streamState(cl), cols[0].logs.String(), cols[1].logs.String(), ags[0].logs.String())
		}
		time.Sleep(100 * time.Millisecond) // polling the collectors' files
	}
	dups, dupsBefore := 0, 0
	for id, n := range seen {
		dups += n - 1
		if beforeKill[id] > 1 {
			dupsBefore += beforeKill[id] - 1
		}
	}
	if dupsBefore > 0 {
		t.Errorf("%d duplicates before the collector was killed, want none (%d stored twice by the stream); %s; collectors' cluster events:\n%s\n%s",
			dupsBefore, streamDuplicates(t, cl), streamState(cl), clusterEvents(cols[0].logs.String()), clusterEvents(cols[1].logs.String()))
	}
	t.Logf("fleet: %d alerts from %d agents through a 3-node cluster (R3) to 2 collectors in %.1fs: %.0f alerts/s end to end, %d duplicates (all after the collector kill), %d before",
		len(want), agents, done.Seconds(), float64(len(want))/done.Seconds(), dups, dupsBefore)
	for _, a := range ags {
		a.stop()
	}
	for i, c := range cols {
		c.stop()
		// The collector's own count: delivered, duplicates, redelivered,
		// delivered elsewhere (what the other collector had).
		for line := range strings.SplitSeq(c.logs.String(), "\n") {
			if strings.Contains(line, "encwatch collect stopping") {
				t.Logf("collector %d: %s", i, line)
			}
		}
	}
}

// TestAgentSilentAfterKill9AsRoot kills an agent with SIGKILL: the
// collector raises agent_silent for its host within silent_after and one
// heartbeat interval, and agent_back once a restarted agent beats again.
func TestAgentSilentAfterKill9AsRoot(t *testing.T) {
	needRoot(t)
	bin := buildEncwatch(t)
	cl := natstest.Start(t, 1, nil)
	urls := cl.URLs()
	cl.CreateStream(1)
	dir := t.TempDir()
	const interval, silentAfter = time.Second, 3 * time.Second

	out := filepath.Join(dir, "siem.jsonl")
	cpolicy := filepath.Join(dir, "collect.hcl")
	writePolicy(t, cpolicy, collectorPolicy(urls, cl.Seed(natstest.Collect), out, freeAddr(t), silentAfter.String()))
	col := &daemonProc{args: []string{"collect", "--config", cpolicy, "--log-format", "text"}}
	col.start(t, bin)
	defer col.stop()
	apolicy := filepath.Join(dir, "agent.hcl")
	writePolicy(t, apolicy, agentPolicy("web1.example.com", urls, cl.Seed("web1.example.com"), filepath.Join(dir, "local.jsonl"), interval.String()))
	agent := &daemonProc{args: []string{"run", "--config", apolicy, "--log-format", "text"}}
	agent.start(t, bin)
	defer agent.kill()

	siem := &tail{path: out}
	waitFor := func(what string, within time.Duration) time.Time {
		t.Helper()
		deadline := time.Now().Add(within)
		for time.Now().Before(deadline) {
			for _, l := range siem.next(t) {
				if l.Signature.Name == what && l.Host == "web1.example.com" {
					return time.Now()
				}
			}
			time.Sleep(20 * time.Millisecond) // polling the collector's file
		}
		t.Fatalf("no %s for web1.example.com within %s; collector logs:\n%s\nagent logs:\n%s", what, within, col.logs.String(), agent.logs.String())
		return time.Time{}
	}
	waitFor("agent_heartbeat", 20*time.Second)
	waitFor("agent_heartbeat", 5*time.Second) // a second one: the collector knows the host
	agent.kill()
	killed := time.Now()
	silent := waitFor("agent_silent", silentAfter+interval+5*time.Second)
	if got, limit := silent.Sub(killed), silentAfter+interval; got > limit {
		t.Errorf("agent_silent came %.1fs after the kill, want within silent_after + one interval (%s)", got.Seconds(), limit)
	}
	t.Logf("agent_silent %.2fs after kill -9 (silent_after %s, interval %s)", silent.Sub(killed).Seconds(), silentAfter, interval)

	agent.start(t, bin)
	waitFor("agent_back", 10*time.Second)
	// A clean stop says so: agent_stopped.
	agent.stop()
	waitFor("agent_stopped", 10*time.Second)
}

// clusterEvents picks from a collector's log the lines that tell of cluster
// changes: acknowledgements sent again, failed fetches, the consumer.
func clusterEvents(log string) string {
	var out []string
	for line := range strings.SplitSeq(log, "\n") {
		if strings.Contains(line, "cluster changed") || strings.Contains(line, "fetch failed") || strings.Contains(line, "consumer") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// tailLines is the last n lines of s.
func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
