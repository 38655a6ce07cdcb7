package fleet

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/natstest"
	"github.com/encwatch/encwatch/internal/sink"
)

// siemLine is what these tests read of a collector's JSON line.
type siemLine struct {
	ID        string `json:"id"`
	Host      string `json:"host"`
	Signature struct {
		Name string `json:"name"`
	} `json:"signature"`
	Fleet struct {
		Subject     string `json:"subject"`
		ClaimedHost string `json:"claimed_host"`
	} `json:"fleet"`
	Matches []struct {
		Field, Value string
	} `json:"matches"`
	Throttled uint64 `json:"throttled"`
}

// readSIEM reads the complete lines of a collector's file sink.
func readSIEM(t *testing.T, path string) []siemLine {
	t.Helper()
	b, _ := os.ReadFile(path)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		return nil
	}
	var out []siemLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var l siemLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("%s: bad line %q: %v", path, sc.Text(), err)
		}
		out = append(out, l)
	}
	return out
}

// fleetCollectorProc is an in-process `encwatch collect` on a natstest
// cluster with the collector's documented credentials.
type fleetCollectorProc struct {
	out, metrics string
	cancel       context.CancelFunc
	done         chan error
	logs         lockedBuf
}

// lockedBuf is a buffer written by one goroutine and read by another.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func runCollector(t *testing.T, cl *natstest.Cluster, extra string) *fleetCollectorProc {
	t.Helper()
	dir := t.TempDir()
	p := &fleetCollectorProc{out: filepath.Join(dir, "siem.jsonl"), metrics: natstest.FreeAddr(t), done: make(chan error, 1)}
	var urls []string
	for _, u := range cl.URLs() {
		urls = append(urls, fmt.Sprintf("%q", u))
	}
	// The probe socket is the test's own: collectors of tests running at
	// once never share one.
	cfg, err := config.Parse("collect.hcl", fmt.Appendf(nil, `
metrics {
  address      = %q
  probe_socket = %q
}
collect {
  urls      = [%s]
  nkey_file = %q
  ack_wait  = "5s"
  %s
}
sink "file" "siem" {
  path = %q
}
`, p.metrics, filepath.Join(dir, "probe.sock"), strings.Join(urls, ", "), cl.Seed(natstest.Collect), extra, p.out))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	lg := logrus.New()
	lg.SetOutput(&p.logs)
	go func() {
		p.done <- Collect(ctx, cfg, logrus.NewEntry(lg), Options{Check: 50 * time.Millisecond, JunkEvery: 500 * time.Millisecond})
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("collector logs:\n%s", p.logs.String())
		}
	})
	return p
}

func (p *fleetCollectorProc) stop() {
	if p.cancel != nil {
		p.cancel()
		<-p.done
		p.cancel = nil
	}
}

// waitLine waits until the collector's file holds a line ok accepts.
func (p *fleetCollectorProc) waitLine(t *testing.T, what string, within time.Duration, ok func(siemLine) bool) siemLine {
	t.Helper()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) { // polling the file
		for _, l := range readSIEM(t, p.out) {
			if ok(l) {
				return l
			}
		}
	}
	t.Fatalf("no %s in the collector's file within %s", what, within)
	return siemLine{}
}

// waitCount waits until the collector's file holds n lines ok accepts.
func (p *fleetCollectorProc) waitCount(t *testing.T, what string, n int, within time.Duration, ok func(siemLine) bool) {
	t.Helper()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) { // polling the file
		got := 0
		for _, l := range readSIEM(t, p.out) {
			if ok(l) {
				got++
			}
		}
		if got >= n {
			return
		}
	}
	t.Fatalf("fewer than %d %s in the collector's file within %s", n, what, within)
}

// publisher is a nats sink with a host's credentials: an agent's, or a
// liar's using them.
func publisher(t *testing.T, cl *natstest.Cluster, user string) *NATS {
	t.Helper()
	s, err := NewNATS(sink.Env{Name: "bus", Log: quietLog(), Format: sink.AppendJSON},
		NATSOptions{Settings: NATSSettings{URLs: cl.URLs(), NATSAuth: NATSAuth{NKeyFile: cl.Seed(user)}, Timeout: 5 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// liar publishes records as it likes on the subject its credentials
// (user's) allow: its own.
type liar struct {
	js      jetstream.JetStream
	subject string
}

func newLiar(t *testing.T, cl *natstest.Cluster, user string) *liar {
	t.Helper()
	nc, err := cl.Connect(user)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &liar{js: js, subject: "encwatch.alerts." + natstest.Token(user)}
}

// send publishes each of alerts on the liar's subject, whatever host it
// names, and waits for the stream to store it.
func (l *liar) send(t *testing.T, alerts ...detect.Alert) {
	t.Helper()
	for i := range alerts {
		msg, err := NATSMessage(l.subject, &alerts[i], sink.AppendJSON)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = l.js.PublishMsg(ctx, msg, jetstream.WithMsgID(alerts[i].ID))
		cancel()
		if err != nil {
			t.Fatalf("liar publish on %s: %v", l.subject, err)
		}
	}
}

// heartbeatsOf sends host's heartbeat every interval until stop is closed
// (a kill -9: no agent_stopped).
func heartbeatsOf(t *testing.T, s *NATS, host string, interval time.Duration, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(interval)
		defer tk.Stop()
		for {
			_ = s.Send(context.Background(), []detect.Alert{*beat(host, time.Now(), strconv.FormatFloat(interval.Seconds(), 'f', -1, 64))})
			select {
			case <-stop:
				return
			case <-tk.C:
			}
		}
	}()
	return &wg
}

// forged is a record host claims, to be sent with another host's key.
func forged(host, sig, id string, interval string) detect.Alert {
	a := *beat(host, time.Now(), interval)
	a.ID, a.Signature.Name = id, sig
	return a
}

// TestFleetForgeryWithServer: with web1's credentials a liar sends, on
// web1's own subject, a forged agent_stopped, a forged heartbeat announcing
// a huge interval, and a forged alert, each claiming web2. web2's silence
// after its "kill" is still raised within silent_after + 2 s, each forgery
// raises a critical fleet_forgery naming web1's subject (one a minute per
// subject: the rest counted into it), and the forged alert is delivered as
// web1's, never web2's, with its subject and the claimed host.
func TestFleetForgeryWithServer(t *testing.T) {
	cl := natstest.Start(t, 1, nil)
	cl.CreateStream(1)
	col := runCollector(t, cl, "") // silent after three of each host's intervals
	web1, web2, liar := publisher(t, cl, "web1.example.com"), publisher(t, cl, "web2.example.com"), newLiar(t, cl, "web1.example.com")
	const interval = time.Second
	const silentAfter = 3 * interval
	stop1, stop2 := make(chan struct{}), make(chan struct{})
	beats1 := heartbeatsOf(t, web1, "web1.example.com", interval, stop1)
	defer func() { close(stop1); beats1.Wait() }()
	beats2 := heartbeatsOf(t, web2, "web2.example.com", interval, stop2)
	isBeat := func(host string) func(siemLine) bool {
		return func(l siemLine) bool { return l.Signature.Name == SigHeartbeat && l.Host == host }
	}
	// Two heartbeats of each: the first may have come from the stream's
	// backlog before the collector's watch began.
	col.waitCount(t, "web2's heartbeats", 2, 20*time.Second, isBeat("web2.example.com"))
	col.waitCount(t, "web1's heartbeats", 2, 5*time.Second, isBeat("web1.example.com"))

	// The lies, then web2 dies.
	enc := forged("web2.example.com", "data_encoder_exec", "forged-enc", "1")
	enc.Signature.Importance = detect.High
	liar.send(t,
		forged("web2.example.com", SigStopped, "forged-stop", "1"),
		forged("web2.example.com", SigHeartbeat, "forged-beat", "1e9"),
		enc)
	close(stop2)
	beats2.Wait()
	killed := time.Now()
	for range 3 { // keep lying after the kill
		liar.send(t, forged("web2.example.com", SigHeartbeat, fmt.Sprintf("forged-beat-%d", time.Now().UnixNano()), "1e9"))
		time.Sleep(interval)
	}
	silent := col.waitLine(t, "agent_silent for web2", silentAfter+10*time.Second, func(l siemLine) bool {
		return l.Signature.Name == SigSilent && l.Host == "web2.example.com"
	})
	took := time.Since(killed)
	t.Logf("agent_silent for web2 %.2fs after its last heartbeat (silent_after %s), despite the forgeries", took.Seconds(), silentAfter)
	if took > silentAfter+2*time.Second {
		t.Errorf("agent_silent for web2 came %.1fs after its kill, want within silent_after + 2s (%s)", took.Seconds(), silentAfter+2*time.Second)
	}
	if silent.Fleet.Subject != "encwatch.alerts.web2_example_com" {
		t.Errorf("agent_silent subject = %q, want web2's", silent.Fleet.Subject)
	}

	f := col.waitLine(t, "fleet_forgery", 10*time.Second, func(l siemLine) bool { return l.Signature.Name == SigForgery })
	if f.Fleet.Subject != "encwatch.alerts.web1_example_com" || f.Host != "web1.example.com" || f.Fleet.ClaimedHost != "web2.example.com" {
		t.Errorf("fleet_forgery = %+v, want it naming web1's subject and host, claiming web2", f)
	}
	lines := readSIEM(t, col.out)
	forgeries, delivered := 0, map[string]siemLine{}
	for _, l := range lines {
		if l.Signature.Name == SigForgery {
			forgeries++
		}
		delivered[l.ID] = l
		if l.Fleet.Subject == "" {
			t.Errorf("delivered record %s (%s) carries no subject", l.ID, l.Signature.Name)
		}
		if l.Host == "web2.example.com" && l.Fleet.Subject != "encwatch.alerts.web2_example_com" {
			t.Errorf("record %s delivered as web2's from subject %q", l.ID, l.Fleet.Subject)
		}
	}
	if forgeries != 1 {
		t.Errorf("%d fleet_forgery alerts for 6 forgeries within a minute, want 1", forgeries)
	}
	got, ok := delivered["forged-enc"]
	switch {
	case !ok:
		t.Error("the forged alert was not delivered at all, want it under web1 (the evidence of what web1 did)")
	case got.Host != "web1.example.com" || got.Fleet.ClaimedHost != "web2.example.com" || got.Fleet.Subject != "encwatch.alerts.web1_example_com":
		t.Errorf("forged alert delivered as %+v, want host web1.example.com, claimed web2.example.com, web1's subject", got)
	}
	for _, id := range []string{"forged-stop", "forged-beat"} {
		if _, ok := delivered[id]; ok {
			t.Errorf("forged fleet record %s delivered, want it dropped (counted)", id)
		}
	}
	m := natstest.Metrics(t, col.metrics, "encwatch_collect_")
	if !strings.Contains(m, `encwatch_collect_messages_total{result="forged"} 6`) {
		t.Errorf("metrics lack 6 forged messages:\n%s", grepLines(m, "encwatch_collect_messages_total"))
	}
}

// encAlert is an alert of host's, the i-th.
func encAlert(host string, i int) detect.Alert {
	a := benchAlert(i)
	a.ID, a.Host = fmt.Sprintf("%s-%d", host, i), host
	return a
}

// TestFleetLiarCannotDropAlertsWithServer: two collectors share the
// consumer while web1 publishes 200 alerts. A client without credentials
// is refused by the documented server; a liar with web2's credentials
// listens to whatever it may and answers "delivered" to all of it, and
// tries to claim every alert in the collectors' bucket first. Not one of
// the 200 goes missing.
func TestFleetLiarCannotDropAlertsWithServer(t *testing.T) {
	cl := natstest.Start(t, 1, nil)
	cl.CreateStream(1)
	if nc, err := nats.Connect(strings.Join(cl.URLs(), ","), nats.Timeout(2*time.Second)); err == nil {
		nc.Close()
		t.Fatal("a client without credentials was let in, want it refused")
	}
	const n = 200
	var ids []string
	for i := range n {
		ids = append(ids, encAlert("web1.example.com", i).ID)
	}
	// The liar, with web2's key.
	var refused atomic.Int32
	lnc, err := cl.Connect("web2.example.com", nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if strings.Contains(err.Error(), "Permissions Violation") {
			refused.Add(1)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer lnc.Close()
	answer := func(m *nats.Msg) {
		_ = lnc.Publish(m.Reply, []byte("+ACK"))
		for _, id := range ids {
			_ = lnc.Publish(m.Reply, []byte("d "+id))
		}
	}
	for _, subj := range []string{">", "_INBOX.>", collectInboxPrefix + ".>", "_ENCWATCH.>", "$KV.>", "$JS.ACK.>"} {
		_, _ = lnc.Subscribe(subj, answer)
	}
	for _, id := range ids {
		_ = lnc.Publish("$KV."+claimBucket(&CollectSettings{Stream: "ENCWATCH", Consumer: DefaultConsumer})+"."+claimKey(id), []byte("d liar"))
		_ = lnc.Publish("_ENCWATCH.collect.ENCWATCH."+DefaultConsumer, []byte(id))
	}
	_ = lnc.Flush()

	a, b := runCollector(t, cl, ""), runCollector(t, cl, "")
	web1 := publisher(t, cl, "web1.example.com")
	for i := range n {
		send(t, web1, encAlert("web1.example.com", i))
	}
	got := map[string]int{}
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // polling the files
		clear(got)
		for _, p := range []*fleetCollectorProc{a, b} {
			for _, l := range readSIEM(t, p.out) {
				if l.Host == "web1.example.com" && l.Signature.Name == "data_encoder_exec" {
					got[l.ID]++
				}
			}
		}
	}
	missing := 0
	for _, id := range ids {
		if got[id] == 0 {
			missing++
		}
	}
	t.Logf("%d of %d alerts delivered, %d missing; the server refused the liar %d times", len(got), n, missing, refused.Load())
	if missing != 0 {
		t.Errorf("%d of %d alerts never delivered with a liar about", missing, n)
	}
	if refused.Load() == 0 {
		t.Error("the server refused the liar nothing, want its subscriptions and claims refused (the documented permissions)")
	}
}

// TestFleetConsumerDeletedWithServer: deleting the collectors' durable
// consumer makes /healthz answer 503 and raises a critical
// collector_stalled within 10 s; the collector recreates the consumer and
// delivery resumes without a restart.
func TestFleetConsumerDeletedWithServer(t *testing.T) {
	cl := natstest.Start(t, 1, nil)
	cl.CreateStream(1)
	col := runCollector(t, cl, `stall_after = "3s"`)
	web1 := publisher(t, cl, "web1.example.com")
	send(t, web1, encAlert("web1.example.com", 0))
	col.waitLine(t, "the first alert", 20*time.Second, func(l siemLine) bool { return l.ID == "web1.example.com-0" })
	if code, body := healthz(t, col.metrics); code != http.StatusOK {
		t.Fatalf("/healthz = %d %q before the deletion, want 200", code, body)
	}
	js := cl.Admin()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := js.DeleteConsumer(ctx, "ENCWATCH", DefaultConsumer); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	stalled := col.waitLine(t, "collector_stalled", 10*time.Second, func(l siemLine) bool { return l.Signature.Name == SigStalled })
	t.Logf("collector_stalled %.2fs after the consumer was deleted: %+v", time.Since(deleted).Seconds(), stalled.Matches)
	saw503 := false
	for time.Since(deleted) < 10*time.Second && !saw503 {
		code, body := healthz(t, col.metrics)
		saw503 = code == http.StatusServiceUnavailable && strings.Contains(body, "consumer")
		time.Sleep(50 * time.Millisecond) // polling /healthz
	}
	if !saw503 {
		t.Error("/healthz never answered 503 naming the consumer within 10 s of its deletion")
	}
	send(t, web1, encAlert("web1.example.com", 1))
	col.waitLine(t, "an alert after the consumer was recreated", 20*time.Second, func(l siemLine) bool { return l.ID == "web1.example.com-1" })
	t.Logf("delivery resumed %.2fs after the deletion", time.Since(deleted).Seconds())
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) { // polling /healthz
		if code, _ := healthz(t, col.metrics); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/healthz not 200 again after delivery resumed")
		}
	}
	m := natstest.Metrics(t, col.metrics, "encwatch_collect_")
	for _, want := range []string{"encwatch_collect_stalls_total 1", "encwatch_collect_consumer_recreated_total 1", "encwatch_collect_healthy 1"} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(m, "encwatch_collect_"))
		}
	}
	n := 0
	for _, l := range readSIEM(t, col.out) {
		if l.ID == "web1.example.com-0" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the alert before the deletion delivered %d times, want once (the recreated consumer starts after the ack floor)", n)
	}
}

// healthz reads the collector's /healthz.
func healthz(t *testing.T, addr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// send publishes alerts with an agent's nats sink.
func send(t *testing.T, s *NATS, alerts ...detect.Alert) {
	t.Helper()
	if err := s.Send(context.Background(), alerts); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// TestFleetJunkSummarisedWithServer: 20,000 messages without an encwatch
// record on web1's subject are terminated and counted, and the log
// summarises them in a few lines rather than one a message.
func TestFleetJunkSummarisedWithServer(t *testing.T) {
	const junk = 20000
	cl := natstest.Start(t, 1, nil)
	cl.CreateStream(1)
	col := runCollector(t, cl, "")
	nc, err := cl.Connect("web1.example.com")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// In windows of 1,000 outstanding publishes: past the client's limit
	// (4,000) a loaded machine makes PublishAsync fail with "stalled".
	for i := range junk {
		if _, err := js.PublishAsync("encwatch.alerts.web1_example_com", fmt.Appendf(nil, "junk %d\n\x1b[31mlevel=error msg=forged", i)); err != nil {
			t.Fatal(err)
		}
		if (i+1)%1000 != 0 && i+1 != junk {
			continue
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(30 * time.Second):
			t.Fatalf("the stream did not take the junk within 30 s (%d sent)", i+1)
		}
	}
	want := fmt.Sprintf(`encwatch_collect_messages_total{result="undecodable"} %d`, junk)
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(natstest.Metrics(t, col.metrics, "encwatch_collect_"), want); time.Sleep(100 * time.Millisecond) { // polling /metrics
		if time.Now().After(deadline) {
			t.Fatalf("metrics never counted %d undecodable messages:\n%s", junk, grepLines(natstest.Metrics(t, col.metrics, "encwatch_collect_"), "encwatch_collect_messages_total"))
		}
	}
	// Every junk message was terminated: the consumer's backlog, as the
	// health check reads it from the server, drains to nothing.
	drained := `encwatch_collect_pending_messages{state="waiting"} 0`
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) { // polling /metrics
		m := natstest.Metrics(t, col.metrics, "encwatch_collect_")
		if strings.Contains(m, drained) && strings.Contains(m, `encwatch_collect_pending_messages{state="unacknowledged"} 0`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the consumer's backlog never drained:\n%s", grepLines(m, "encwatch_collect_pending_messages"))
		}
	}
	time.Sleep(time.Second) // one more summary interval
	lines := 0
	for line := range strings.SplitSeq(col.logs.String(), "\n") {
		if strings.Contains(line, "without an encwatch record") {
			lines++
			if strings.Contains(line, "\x1b") {
				t.Errorf("a log line carries the junk's escape byte: %q", line)
			}
		}
	}
	t.Logf("%d junk messages: %d summary lines in the log", junk, lines)
	if lines == 0 || lines > 100 {
		t.Errorf("%d log lines about %d junk messages, want a few summaries", lines, junk)
	}
}

// grepLines keeps the lines of s that start with prefix.
func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
