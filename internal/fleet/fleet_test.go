package fleet

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/sink"
)

func beat(host string, at time.Time, interval string) *detect.Alert {
	return &detect.Alert{
		ID: "hb-" + host + "-" + strconv.FormatInt(at.UnixNano(), 10), Time: at, Host: host,
		Signature: detect.SignatureInfo{Name: SigHeartbeat},
		Matches:   []detect.Match{{Field: HeartbeatInterval, Value: interval}},
	}
}

// TestLiveness drives the heartbeat watch with injected times.
func TestLiveness(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLiveness(&CollectSettings{MinInterval: 100 * time.Millisecond}) // three of the host's intervals
	names := func(ss []detect.Alert) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s.Signature.Name+" "+s.Host+" "+s.Subject)
		}
		return out
	}
	l.seen(beat("a", t0, "1"), "a", "encwatch.alerts.a", t0)
	l.seen(beat("b", t0, "10"), "b", "encwatch.alerts.b", t0)
	if got := l.overdue(t0.Add(3 * time.Second)); len(got) != 0 {
		t.Errorf("overdue at 3s = %v, want none (3s is not more than 3 intervals)", names(got))
	}
	got := l.overdue(t0.Add(3100 * time.Millisecond))
	if len(got) != 1 || got[0].Signature.Name != SigSilent || got[0].Host != "a" || got[0].Subject != "encwatch.alerts.a" {
		t.Fatalf("overdue at 3.1s = %v, want agent_silent a on its subject", names(got))
	}
	if got[0].Signature.Importance != detect.Critical {
		t.Errorf("agent_silent importance = %v, want critical", got[0].Signature.Importance)
	}
	if again := l.overdue(t0.Add(5 * time.Second)); len(again) != 0 {
		t.Errorf("overdue again = %v, want agent_silent once", names(again))
	}
	back := l.seen(beat("a", t0.Add(6*time.Second), "1"), "a", "encwatch.alerts.a", t0.Add(6*time.Second))
	if back == nil || back.Signature.Name != SigBack || back.Host != "a" {
		t.Fatalf("heartbeat after silence = %v, want agent_back", back)
	}
	// A clean stop is not silence.
	stop := beat("a", t0.Add(7*time.Second), "1")
	stop.Signature.Name = SigStopped
	l.seen(stop, "a", "encwatch.alerts.a", t0.Add(7*time.Second))
	if got := l.overdue(t0.Add(20 * time.Second)); len(got) != 0 {
		t.Errorf("overdue after agent_stopped = %v, want none", names(got))
	}
	// The collector's own outage blames nobody.
	l.pause()
	if got := l.overdue(t0.Add(100 * time.Second)); len(got) != 0 {
		t.Errorf("overdue while paused = %v, want none", names(got))
	}
	l.resume(t0.Add(100 * time.Second))
	if got := l.overdue(t0.Add(101 * time.Second)); len(got) != 0 {
		t.Errorf("overdue 1s after resume = %v, want none", names(got))
	}
	if got := names(l.overdue(t0.Add(131 * time.Second))); len(got) != 1 || got[0] != "agent_silent b encwatch.alerts.b" {
		t.Errorf("overdue 31s after resume = %v, want b silent", got)
	}
	// Identical ids in every collector that saw the same last heartbeat.
	l2 := newLiveness(&CollectSettings{SilentAfter: 2 * time.Second})
	l2.seen(beat("c", t0, "1"), "c", "s", t0)
	if a, b := l2.overdue(t0.Add(3*time.Second)), newLivenessFrom(beat("c", t0, "1"), t0).overdue(t0.Add(3*time.Second)); len(a) != 1 || len(b) != 1 || a[0].ID != b[0].ID {
		t.Errorf("agent_silent ids differ between collectors: %v, %v", a, b)
	}
}

func newLivenessFrom(a *detect.Alert, at time.Time) *liveness {
	l := newLiveness(&CollectSettings{SilentAfter: 2 * time.Second})
	l.seen(a, a.Host, "s", at.Add(10*time.Millisecond))
	return l
}

// TestLivenessBounds: an announced interval is clamped to the collect
// block's bounds, the host table is capped and forgets hosts long stopped
// or silent, and many hosts silent at once are one summary.
func TestLivenessBounds(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLiveness(&CollectSettings{MinInterval: time.Second, MaxInterval: 10 * time.Second, MaxHosts: 3, ForgetAfter: time.Hour})
	l.seen(beat("huge", t0, "1e9"), "huge", "s.huge", t0)
	l.seen(beat("tiny", t0, "0.001"), "tiny", "s.tiny", t0)
	got := map[string]time.Time{}
	for _, at := range []time.Duration{2 * time.Second, 3100 * time.Millisecond, 29 * time.Second, 31 * time.Second} {
		for _, s := range l.overdue(t0.Add(at)) {
			got[s.Host] = t0.Add(at)
		}
	}
	if want := t0.Add(3100 * time.Millisecond); !got["tiny"].Equal(want) {
		t.Errorf("tiny (0.001s announced) silent at %v, want %v (the 1s minimum, three times)", got["tiny"].Sub(t0), want.Sub(t0))
	}
	if want := t0.Add(31 * time.Second); !got["huge"].Equal(want) {
		t.Errorf("huge (1e9s announced) silent at %v, want %v (the 10s maximum, three times)", got["huge"].Sub(t0), want.Sub(t0))
	}
	l.seen(beat("c", t0, "1"), "c", "s.c", t0)
	l.seen(beat("d", t0, "1"), "d", "s.d", t0)
	if states, refused := l.counts(); len(l.hosts) != 3 || refused != 1 {
		t.Errorf("hosts %d (%v), refused %d after 4 hosts with max_hosts 3; want 3 and 1", len(l.hosts), states, refused)
	}
	l.overdue(t0.Add(2 * time.Hour)) // c falls silent
	l.overdue(t0.Add(2 * time.Hour))
	if len(l.hosts) != 0 {
		t.Errorf("%d hosts remembered 2h after they fell silent, want 0 (forget_after 1h)", len(l.hosts))
	}
	var ss []detect.Alert
	for i := range 50 {
		ss = append(ss, detect.Alert{ID: strconv.Itoa(i), Host: fmt.Sprintf("h%02d", i)})
	}
	m := massSilenceAlert(ss, t0)
	if m.Signature.Name != SigMassSilence || m.Signature.Importance != detect.Critical || m.Matches[0].Value != "50" || !strings.HasPrefix(m.Matches[1].Value, "h00,h01,") {
		t.Errorf("mass silence = %+v, want one critical agents_silent counting 50 and naming h00, h01…", m)
	}
}

// TestForgeryLimiter: one fleet_forgery a minute per subject, the held-back
// ones counted into the next.
func TestForgeryLimiter(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := newForgeryLimiter(2)
	a := detect.Alert{ID: "x", Host: "web1.example.com", Subject: "encwatch.alerts.web1_example_com", ClaimedHost: "web2.example.com", Signature: detect.SignatureInfo{Name: SigHeartbeat}}
	first := f.raise("web1_example_com", a, 1, t0)
	if first == nil || first.Signature.Name != SigForgery || first.Subject != a.Subject || first.ClaimedHost != "web2.example.com" || first.Signature.Importance != detect.Critical {
		t.Fatalf("first forgery = %+v, want a critical fleet_forgery naming the subject and the claimed host", first)
	}
	n := 0
	for i := range 1000 {
		if f.raise("web1_example_com", a, uint64(i+2), t0.Add(time.Duration(i)*time.Millisecond)) != nil {
			n++
		}
	}
	if n != 0 {
		t.Errorf("%d more fleet_forgery within the minute, want 0", n)
	}
	next := f.raise("web1_example_com", a, 2000, t0.Add(time.Minute))
	if next == nil || next.Throttled != 1000 {
		t.Errorf("after a minute: %+v, want one with throttled 1000", next)
	}
	// Subjects beyond the cap share one budget.
	f.raise("b", a, 1, t0)
	if f.raise("c", a, 1, t0) == nil || f.raise("d", a, 1, t0) != nil {
		t.Errorf("subjects beyond the cap: want one alert for them all a minute")
	}
}

// fakeMsg is a jetstream.Msg that counts its acknowledgements.
type fakeMsg struct {
	jetstream.Msg
	acks, naks *atomic.Int32
}

func (m fakeMsg) Ack() error    { m.acks.Add(1); return nil }
func (m fakeMsg) Reply() string { return "$JS.ACK.reply" }
func (m fakeMsg) Nak() error    { m.naks.Add(1); return nil }

// TestAckTracker: a message is acknowledged once every sink is done with
// its alert, together with a redelivery that came meanwhile; what no sink
// took is handed back.
func TestAckTracker(t *testing.T) {
	var acks, naks atomic.Int32
	m := fakeMsg{acks: &acks, naks: &naks}
	tr := newAckTracker(2)
	a := detect.Alert{ID: "x"}
	if !tr.add("x", m) {
		t.Fatal("add(x) = false, want the first")
	}
	if tr.add("x", m) {
		t.Fatal("add(x) again = true, want it held as a redelivery")
	}
	tr.accepted(0, &a)
	if acks.Load() != 0 {
		t.Fatalf("acknowledged after one sink of two")
	}
	tr.accepted(1, &a)
	if acks.Load() != 2 {
		t.Errorf("acks = %d after both sinks, want 2 (the message and its redelivery)", acks.Load())
	}
	if got, ids := tr.since(time.Now().Add(-time.Minute)); len(got) != 2 || len(ids) != 1 {
		t.Errorf("remembered %d acknowledgements, want 2 to resend after a cluster change", len(got))
	}
	tr.accepted(1, &a) // a late one: nothing pending
	// A redelivery after the acknowledgement (lost with a cluster node) is
	// acknowledged again, not delivered twice.
	if tr.add("x", m) {
		t.Error("add(x) after its acknowledgement = true, want it acknowledged, not delivered again")
	}
	if acks.Load() != 3 {
		t.Errorf("acks = %d after the late redelivery, want 3", acks.Load())
	}
	tr.add("y", m)
	tr.nakAll()
	if naks.Load() != 1 || len(tr.pending) != 0 {
		t.Errorf("naks = %d, pending %d after nakAll, want 1 and 0", naks.Load(), len(tr.pending))
	}
}

// startNATS starts Debian's nats-server with JetStream on a loopback
// port, with extra appended to its configuration, and returns its URL. It
// is killed at the end of the test.
func startNATS(tb testing.TB, extra string) string {
	tb.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatal("needs Debian's nats-server (make test-deps installs it)")
		}
		tb.Skip("!!! SKIPPED: needs Debian's nats-server (apt-get install nats-server)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := tb.TempDir()
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "listen: %q\njetstream { store_dir: %q }\n%s\n", addr, dir, extra), 0o600); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return "nats://" + addr
		}
		if time.Now().After(deadline) {
			tb.Fatalf("nats-server did not start on %s", addr)
		}
		time.Sleep(20 * time.Millisecond) // polling the port
	}
}

func benchAlert(i int) detect.Alert {
	return detect.Alert{
		ID: fmt.Sprintf("bench-%d", i), Time: time.Now(), Host: "bench.example.com", Environment: "production",
		Signature: detect.SignatureInfo{Name: "data_encoder_exec", Description: "a data-encoding tool ran", Category: "Defense Evasion", Importance: detect.High, MITRE: []string{"T1027", "T1140"}},
		Event: &audit.Event{Time: time.Now(), Serial: uint64(i), Syscall: 59, Success: true, PID: 4242, PPID: 4200,
			Comm: "base64", Exe: "/usr/bin/base64", Argc: 3, Argv: []string{"/usr/bin/base64", "--decode", "/etc/hostname"}, Cwd: "/root"},
		Matches: []detect.Match{{Field: "exe", Value: "/usr/bin/base64", Reason: "known encoder"}, {Field: "argv", Value: "--decode", Reason: "decode flag"}},
	}
}

func quietLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

// routeAll delivers n alerts through a router waiting for room (so the
// figure is the sink's, not the queue's drops) to s, and returns when the
// sink has taken them all.
func routeAll(b *testing.B, s sink.Sink, n int) {
	r := sink.NewRouter(quietLog(), []sink.Sink{s}, sink.RouterOptions{Block: true, BatchSize: 256, DrainTimeout: time.Minute})
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	for i := range n {
		r.Deliver(benchAlert(i))
	}
	r.Close()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	if st := r.Stats()[0]; st.Sent != uint64(n) {
		b.Fatalf("sent %d of %d (%+v)", st.Sent, n, st)
	}
}

// BenchmarkFleet measures, in one run, alerts per second from one agent's
// router to a JetStream stream (the nats sink: publish and wait for the
// stream's acknowledgement), to a syslog TCP receiver beside it, and from
// the stream through one collector into a file sink (pull, deliver,
// acknowledge). Run it with
// go test -run '^$' -bench BenchmarkFleet -benchtime 50000x ./internal/fleet/
func BenchmarkFleet(b *testing.B) {
	url := startNATS(b, "")
	b.Run("agent-to-stream", func(b *testing.B) {
		s, err := NewNATS(sink.Env{Name: "bus", Log: quietLog(), Format: sink.AppendJSON},
			NATSOptions{Settings: NATSSettings{URLs: []string{url}, Stream: "BENCH", Subject: "bench.{host}", CreateStream: true}})
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		routeAll(b, s, b.N)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "alerts/s")
	})
	b.Run("agent-to-syslog-tcp", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
			}
		}()
		s, err := sink.NewSyslog(quietLog(), "syslog", sink.SyslogOptions{Address: "tcp://" + ln.Addr().String()})
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		routeAll(b, s, b.N)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "alerts/s")
	})
	b.Run("stream-through-collector", func(b *testing.B) { benchCollector(b, url) })
}

// benchCollector fills the stream with b.N alerts, then times one
// collector until the durable consumer has every one acknowledged.
func benchCollector(b *testing.B, url string) {
	stream := fmt.Sprintf("COLLECT%d", b.N)
	s, err := NewNATS(sink.Env{Name: "bus", Log: quietLog(), Format: sink.AppendJSON},
		NATSOptions{Settings: NATSSettings{URLs: []string{url}, Stream: stream, Subject: stream + ".{host}", CreateStream: true}})
	if err != nil {
		b.Fatal(err)
	}
	routeAll(b, s, b.N)
	dir := b.TempDir()
	cfg, err := config.Parse("collect.hcl", fmt.Appendf(nil, `
metrics {
  address = ""
}
collect {
  url      = %q
  stream   = %q
  insecure = true
}
sink "file" "siem" {
  path = %q
}
`, url, stream, filepath.Join(dir, "siem.jsonl")))
	if err != nil {
		b.Fatal(err)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	b.ResetTimer()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Collect(ctx, cfg, quietLog(), Options{}) }()
	for {
		c, err := js.Consumer(ctx, stream, DefaultConsumer)
		if err == nil && c.CachedInfo().AckFloor.Stream >= uint64(b.N) {
			break
		}
		time.Sleep(5 * time.Millisecond) // polling the consumer's state
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "alerts/s")
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
