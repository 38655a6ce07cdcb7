package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/fleet"
	"github.com/encwatch/encwatch/internal/natstest"
	"github.com/encwatch/encwatch/internal/sink"
)

// buildAttacker builds testdata/attacker where nobody can run it.
func buildAttacker(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "encwatch-attacker-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "attacker")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	if out, err := exec.Command(goBin, "build", "-o", bin, "./testdata/attacker").CombinedOutput(); err != nil {
		t.Fatalf("go build attacker: %v\n%s", err, out)
	}
	return bin
}

// asNobody runs args as the user nobody.
func asNobody(args ...string) *exec.Cmd {
	return exec.Command("runuser", append([]string{"-u", "nobody", "--"}, args...)...)
}

// startAttacker starts the attacker as nobody and returns its first line.
func startAttacker(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := asNobody(append([]string{bin}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	return strings.TrimSpace(line)
}

// TestCollectorEndpointAbuseAsRoot: a metrics port taken by nobody is
// refused at start with the holder named; 20,000 idle keep-alive
// connections by nobody to the collector's /metrics leave its descriptors
// bounded, and /healthz still answers meanwhile.
func TestCollectorEndpointAbuseAsRoot(t *testing.T) {
	needRoot(t)
	const conns, maxFDs = 20000, 200
	bin, attacker := buildEncwatch(t), buildAttacker(t)
	cl := natstest.Start(t, 1, nil)
	cl.CreateStream(1)
	dir := t.TempDir()

	taken := freeAddr(t)
	if line := startAttacker(t, attacker, "listen", taken, "30"); line != "listening" {
		t.Fatalf("listen as nobody: %q", line)
	}
	policy := filepath.Join(dir, "taken.hcl")
	writePolicy(t, policy, collectorPolicy(cl.URLs(), cl.Seed(natstest.Collect), filepath.Join(dir, "x.jsonl"), taken, "30s"))
	out, err := exec.Command(bin, "collect", "--config", policy).CombinedOutput()
	if err == nil {
		t.Errorf("collect started with its metrics port taken; output:\n%s", out)
	}
	for _, want := range []string{taken, "already in use", "uid 65534"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("collect's error lacks %q:\n%s", want, out)
		}
	}

	addr := freeAddr(t)
	policy = filepath.Join(dir, "collect.hcl")
	writePolicy(t, policy, collectorPolicy(cl.URLs(), cl.Seed(natstest.Collect), filepath.Join(dir, "siem.jsonl"), addr, "30s"))
	col := &daemonProc{args: []string{"collect", "--config", policy, "--log-format", "text"}}
	col.start(t, bin)
	defer col.stop()
	waitMetric(t, addr, "encwatch_collect_healthy", 1)
	line := startAttacker(t, attacker, "keepalive", addr, strconv.Itoa(conns), "60")
	t.Logf("attacker: %s", line)
	fds := countFDs(t, col.cmd.Process.Pid)
	t.Logf("collector descriptors with %d idle connections attempted: %d", conns, fds)
	if fds > maxFDs {
		t.Errorf("collector holds %d descriptors, want at most %d", fds, maxFDs)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	start := time.Now()
	resp, err := client.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("/healthz with %d idle connections held: %v; collector logs:\n%s", conns, err, col.logs.String())
	}
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	resp.Body.Close()
	t.Logf("/healthz answered %d %q in %v", resp.StatusCode, strings.TrimSpace(body.String()), time.Since(start))
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz = %d %q, want 200", resp.StatusCode, body.String())
	}
}

// countFDs is how many descriptors pid has open.
func countFDs(t *testing.T, pid int) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}

// vmHWM is the peak resident set of pid in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// TestFleetFloodAsRoot: with web1's credentials a liar publishes, on web1's
// subject, 100,000 heartbeats of distinct invented hosts within 15 s,
// while web2's real agent beats every second and is killed with SIGKILL in
// the middle of the flood. The collector's peak RSS stays under 100 MiB,
// the SIEM gets a bounded number of records (one fleet_forgery, not a
// record per invented host), and web2's agent_silent arrives within
// silent_after + 2 s of the kill.
func TestFleetFloodAsRoot(t *testing.T) {
	needRoot(t)
	const hosts, flood = 100_000, 14 * time.Second
	const silentAfter = 3 * time.Second
	bin := buildEncwatch(t)
	cl := natstest.Start(t, 1, nil)
	cl.CreateStream(1)
	dir := t.TempDir()
	out := filepath.Join(dir, "siem.jsonl")
	metrics := freeAddr(t)
	cpolicy := filepath.Join(dir, "collect.hcl")
	writePolicy(t, cpolicy, collectorPolicy(cl.URLs(), cl.Seed(natstest.Collect), out, metrics, silentAfter.String()))
	col := &daemonProc{args: []string{"collect", "--config", cpolicy, "--log-format", "text"}}
	col.start(t, bin)
	defer col.stop()
	apolicy := filepath.Join(dir, "web2.hcl")
	writePolicy(t, apolicy, agentPolicy("web2.example.com", cl.URLs(), cl.Seed("web2.example.com"), filepath.Join(dir, "web2.jsonl"), "1s"))
	web2 := &daemonProc{args: []string{"run", "--config", apolicy, "--log-format", "text"}}
	web2.start(t, bin)
	defer web2.kill()
	siem := &tail{path: out}
	beats := 0
	for deadline := time.Now().Add(30 * time.Second); beats < 2; time.Sleep(50 * time.Millisecond) { // polling the collector's file
		if time.Now().After(deadline) {
			t.Fatalf("no two heartbeats of web2 within 30 s; collector logs:\n%s", col.logs.String())
		}
		for _, l := range siem.next(t) {
			if l.Signature.Name == "agent_heartbeat" && l.Host == "web2.example.com" {
				beats++
			}
		}
	}

	// The liar.
	nc, err := cl.Connect("web1.example.com")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		t.Fatal(err)
	}
	floodStart := time.Now()
	var killed time.Time
	silentAt := make(chan time.Time, 1)
	go func() {
		for {
			for _, l := range siem.next(t) {
				if l.Signature.Name == "agent_silent" && l.Host == "web2.example.com" {
					silentAt <- time.Now()
					return
				}
			}
			if time.Since(floodStart) > 5*time.Minute {
				return
			}
			time.Sleep(20 * time.Millisecond) // polling the collector's file
		}
	}()
	for i := range hosts {
		if killed.IsZero() && time.Since(floodStart) > flood/3 {
			web2.kill()
			killed = time.Now()
		}
		host := fmt.Sprintf("host%06d.example.com", i)
		a := detect.Alert{ID: "forged-" + host, Time: time.Now(), Host: host,
			Signature: detect.SignatureInfo{Name: "agent_heartbeat", Importance: detect.Info},
			Matches:   []detect.Match{{Field: "heartbeat.interval_seconds", Value: "1"}}}
		msg, err := fleet.NATSMessage("encwatch.alerts.web1_example_com", &a, sink.AppendJSON)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsgAsync(msg); err != nil {
			t.Fatalf("liar publish %d: %v", i, err)
		}
		// Paced to spread the hosts over the flood.
		if want := floodStart.Add(time.Duration(i) * flood / hosts); time.Now().Before(want) {
			time.Sleep(time.Until(want))
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(60 * time.Second):
		t.Fatal("the stream did not acknowledge the flood within 60 s")
	}
	published := time.Since(floodStart)
	t.Logf("liar: %d forged heartbeats of distinct hosts published in %.1fs", hosts, published.Seconds())
	if published > 15*time.Second+2*time.Second {
		t.Logf("(the flood took longer than 15 s on this machine)")
	}
	select {
	case at := <-silentAt:
		took := at.Sub(killed)
		t.Logf("agent_silent for web2 %.2fs after its kill -9 during the flood (bound: silent_after %s + 2s)", took.Seconds(), silentAfter)
		if took > silentAfter+2*time.Second {
			t.Errorf("agent_silent for web2 came %.1fs after its kill, want within %s", took.Seconds(), silentAfter+2*time.Second)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("no agent_silent for web2 within 60 s of its kill; collector logs:\n%s", col.logs.String())
	}

	// Let the collector work through the flood, then look at its peak.
	admin := cl.Admin()
	drained := false
	for deadline := time.Now().Add(120 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) { // polling the consumer
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := admin.Consumer(ctx, "ENCWATCH", fleet.DefaultConsumer)
		cancel()
		if err == nil && c.CachedInfo().NumPending == 0 && c.CachedInfo().NumAckPending == 0 {
			drained = true
			break
		}
	}
	t.Logf("collector worked through the flood %.1fs after it began", time.Since(floodStart).Seconds())
	if !drained {
		t.Errorf("the collector did not work through the flood within 120 s (%s)", streamState(cl))
	}
	rss := vmHWM(t, col.cmd.Process.Pid)
	t.Logf("collector peak RSS %.1f MiB", float64(rss)/(1<<20))
	if rss > 100<<20 {
		t.Errorf("collector peak RSS %.1f MiB, want under 100 MiB", float64(rss)/(1<<20))
	}
	counts := map[string]int{}
	total := 0
	b, _ := os.ReadFile(out)
	for line := range strings.SplitSeq(string(b), "\n") {
		if line == "" {
			continue
		}
		var l fleetLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatal(err)
		}
		total++
		counts[l.Signature.Name+" "+l.Host]++
	}
	t.Logf("SIEM records: %d in all: %v", total, counts)
	for k, n := range counts {
		if strings.HasPrefix(k, "agent_heartbeat host") || strings.HasPrefix(k, "agent_silent host") {
			t.Errorf("%d %q records reached the SIEM, want none for an invented host", n, k)
		}
	}
	// web1 sent no heartbeat of its own: its forgeries are raised under
	// its subject's token.
	if n := counts["fleet_forgery web1_example_com"]; n == 0 || n > 2 {
		t.Errorf("%d fleet_forgery for web1's subject, want one (two if the flood crossed a minute)", n)
	}
	if total > 200 {
		t.Errorf("%d records reached the SIEM, want a bounded number (web2's heartbeats and the summaries)", total)
	}
	m := natstest.Metrics(t, metrics, "encwatch_collect_")
	if !strings.Contains(m, fmt.Sprintf(`encwatch_collect_messages_total{result="forged"} %d`, hosts)) {
		t.Errorf("metrics do not count %d forged messages:\n%s", hosts, m)
	}
}

// TestValidateRefusesNATSWithoutCredentials: validate refuses a nats sink
// or a collect block reaching a server without credentials, and accepts
// one that says insecure = true with a warning.
func TestValidateRefusesNATSWithoutCredentials(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, src, want string
		ok              bool
	}{
		{"sink", "sink \"nats\" \"bus\" {\n  url = \"nats://127.0.0.1:4222\"\n}\n", `sink "bus": no credentials`, false},
		{"collect", "collect {\n  url = \"nats://127.0.0.1:4222\"\n}\n", `collect block: no credentials`, false},
		{"insecure", "collect {\n  url = \"nats://127.0.0.1:4222\"\n  insecure = true\n}\n", `warning: ` + filepath.Join(dir, "insecure.hcl") + `:1:1: collect block: insecure = true`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name+".hcl")
			if err := os.WriteFile(p, []byte(tc.src), 0o600); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			err := cmdValidate([]string{p}, &stdout, &stderr)
			if (err == nil) != tc.ok || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("validate = %v, stderr %q; want ok %v and %q", err, stderr.String(), tc.ok, tc.want)
			}
		})
	}
}
