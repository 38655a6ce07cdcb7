package fleet

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/sink"
)

// busMsg is a pulled message as an agent, honest or not, can make one: a
// subject and headers. Acknowledgements are recorded; the rest of
// jetstream.Msg is never called by admit.
type busMsg struct {
	jetstream.Msg
	subject string
	hdr     nats.Header
	acked   bool
	termed  bool
}

func (m *busMsg) Subject() string      { return m.subject }
func (m *busMsg) Headers() nats.Header { return m.hdr }
func (m *busMsg) Ack() error           { m.acked = true; return nil }
func (m *busMsg) Term() error          { m.termed = true; return nil }
func (m *busMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return nil, errors.New("no metadata off the server")
}

// memSink keeps what the router delivers.
type memSink struct {
	mu  sync.Mutex
	got []detect.Alert
}

func (s *memSink) Name() string { return "mem" }
func (s *memSink) Close() error { return nil }
func (s *memSink) Send(_ context.Context, as []detect.Alert) error {
	s.mu.Lock()
	s.got = append(s.got, as...)
	s.mu.Unlock()
	return nil
}

// fuzzCollector is a collector with no server: what admit and
// heartbeatSeen need, its bounds small so that a fuzzer reaches them.
func fuzzCollector(t *testing.T) (*fleetCollector, *memSink) {
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	c := &CollectSettings{MinInterval: time.Second, MaxInterval: time.Hour, MaxHosts: 4}
	out := &memSink{}
	col := &fleetCollector{
		log: logrus.NewEntry(quiet), c: c, hosts: ParseHostSubject(DefaultSubject),
		live: newLiveness(c), forgery: newForgeryLimiter(c.MaxHosts),
		router: sink.NewRouter(logrus.NewEntry(quiet), []sink.Sink{out}, sink.RouterOptions{Block: true}),
	}
	t.Cleanup(func() { col.router.Close() })
	return col, out
}

// FuzzBusMessage feeds the collector what a compromised agent can publish:
// any subject, any record bytes, any signature header, as a pulled message
// and as a heartbeat on the watch subscription. Nothing may panic; a record
// is admitted only on an agent's subject, carries that subject, and is
// delivered under that subject's host (its claimed host kept apart); the
// fleet's own records for another host are never delivered; and liveness
// stays within its bounds (hosts, intervals) whatever the payload says.
func FuzzBusMessage(f *testing.F) {
	genuine := detect.Alert{ID: "a1", Host: "web1", Time: time.Unix(1795946963, 0).UTC(),
		Signature: detect.SignatureInfo{Name: "data_encoder_exec", Importance: detect.High}}
	beat := detect.Alert{ID: "hb1", Host: "web2", Time: time.Unix(1795946963, 0).UTC(),
		Signature: detect.SignatureInfo{Name: SigHeartbeat, Importance: detect.Info},
		Matches:   []detect.Match{{Field: HeartbeatInterval, Value: "1e9"}}}
	for _, a := range []detect.Alert{genuine, beat} {
		rec, err := sink.EncodeRecord(&a)
		if err != nil {
			f.Fatal(err)
		}
		f.Add("encwatch.alerts.web1", rec, a.Signature.Name)
		f.Add("encwatch.alerts.web2", rec, a.Signature.Name)
	}
	f.Add("encwatch.alerts.web1.x", []byte("{}"), "")
	f.Add("_ENCWATCH.collect.ENCWATCH.c", []byte(`{"v":1}`), SigStopped)
	f.Fuzz(func(t *testing.T, subject string, rec []byte, sig string) {
		col, out := fuzzCollector(t)
		hdr := nats.Header{}
		hdr.Set(RecordHeader, string(rec))
		hdr.Set(SignatureHeader, sig)
		token, onAgentSubject := col.hosts.Host(subject)

		col.heartbeatSeen(&nats.Msg{Subject: subject, Header: hdr})
		col.live.mu.Lock()
		if len(col.live.hosts) > col.c.MaxHosts {
			t.Fatalf("%d hosts followed, bound %d", len(col.live.hosts), col.c.MaxHosts)
		}
		for tok, h := range col.live.hosts {
			if !onAgentSubject || tok != token {
				t.Fatalf("a heartbeat on %q made host token %q live", subject, tok)
			}
			if h.interval < col.c.MinInterval || h.interval > col.c.MaxInterval {
				t.Fatalf("interval %v outside [%v, %v]", h.interval, col.c.MinInterval, col.c.MaxInterval)
			}
		}
		col.live.mu.Unlock()

		msg := &busMsg{subject: subject, hdr: hdr}
		a, ok := col.admit(msg)
		if !ok {
			if !msg.acked && !msg.termed {
				t.Fatal("a refused message was neither acknowledged nor terminated: the stream would offer it forever")
			}
		} else {
			if !onAgentSubject {
				t.Fatalf("admitted a record on %q, which no agent publishes", subject)
			}
			if a.Subject != subject {
				t.Fatalf("admitted record carries subject %q, came on %q", a.Subject, subject)
			}
			if SubjectToken(a.Host) != token && a.Host != col.live.hostOf(token) {
				t.Fatalf("record on %q delivered as host %q", subject, a.Host)
			}
			if a.ClaimedHost != "" && fleetSignature(a.Signature.Name) {
				t.Fatalf("a forged %s for %q was admitted", a.Signature.Name, a.ClaimedHost)
			}
		}
		col.router.Close()
		out.mu.Lock()
		defer out.mu.Unlock()
		for _, d := range out.got {
			if d.Signature.Name != SigForgery && d.Signature.Name != SigBack {
				t.Fatalf("the router got %s before anything was handed to it", d.Signature.Name)
			}
		}
	})
}
