package daemon

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/sink"
)

// Several collectors on one durable consumer share its messages, and the
// stream delivers each at least once. After a cluster node dies, the
// consumer's new leader may hand out again messages another collector has
// delivered and acknowledged: what the old leader had handed out, or the
// acknowledgements it had taken, had not all reached the new one. (The
// fleet test saw 129 and 166 such duplicates in two of a dozen runs; the
// consumer counted none of them as redelivered.) Within one collector
// ackTracker turns such a message into an acknowledgement; across
// collectors each asks the others, once per chunk of a pull, which of its
// alerts they have delivered or are delivering.
//
// The question travels on a connection of its own, made with NoEcho: a
// collector does not hear its own question, and when it is the only one
// the server answers "no responders" at once instead of letting it wait.

// peerTimeout bounds the wait for the other collectors' answer. One that
// does not answer in time is not waited for: its alerts may then be
// delivered twice (at least once, never lost).
const peerTimeout = 250 * time.Millisecond

// The marks of an answer, one line each: "d ID" delivered and acknowledged,
// "p ID" on its way to the sinks.
const (
	peerDone    = 'd'
	peerPending = 'p'
)

// peerSubject is where the collectors of one consumer ask each other.
// Stream and consumer names hold no dots (JetStream refuses them).
func peerSubject(c *config.Collect) string {
	return "_ENCWATCH.collect." + c.Stream + "." + c.Consumer
}

// dialPeers opens the collector's connection for questions to the others
// and answers theirs.
func (col *fleetCollector) dialPeers() error {
	nc, err := sink.DialNATS(col.c.URLs, col.c.TLS, col.c.Auth, "encwatch collect peers", col.log, nats.NoEcho())
	if err != nil {
		return err
	}
	// Flush: the server has the subscription before the first pull, so no
	// other collector asks while this one cannot answer yet.
	if _, err := nc.Subscribe(peerSubject(col.c), col.answerPeers); err != nil {
		nc.Close()
		return err
	}
	if err := nc.Flush(); err != nil {
		nc.Close()
		return err
	}
	col.peers = nc
	return nil
}

// answerPeers answers another collector: which of the alert ids it asks
// about this one has delivered or is delivering.
func (col *fleetCollector) answerPeers(m *nats.Msg) {
	_ = m.Respond(col.acks.known(strings.Split(string(m.Data), "\n")))
}

// askPeers returns what the other collectors know of ids, by id: peerDone
// or peerPending. No other collector, or none that answers in time, is an
// empty answer.
func (col *fleetCollector) askPeers(ctx context.Context, ids []string) map[string]byte {
	if len(ids) == 0 {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, peerTimeout)
	defer cancel()
	resp, err := col.peers.RequestWithContext(rctx, peerSubject(col.c), []byte(strings.Join(ids, "\n")))
	if err != nil {
		if !errors.Is(err, nats.ErrNoResponders) && ctx.Err() == nil {
			col.log.WithError(err).WithField("alerts", len(ids)).Debug("no answer from the other collectors")
		}
		return nil
	}
	known := make(map[string]byte)
	for line := range strings.SplitSeq(string(resp.Data), "\n") {
		if len(line) > 2 && line[1] == ' ' {
			known[line[2:]] = line[0]
		}
	}
	return known
}

// sift delivers a chunk of pulled messages, except what another collector
// has: an alert it delivered is acknowledged here without a second
// delivery; one it is still delivering is left unacknowledged, for the
// stream to offer again after the ack wait, when the other has finished
// (and this one acknowledges it) or failed (and this one delivers it).
func (col *fleetCollector) sift(ctx context.Context, msgs []jetstream.Msg) {
	type pulled struct {
		msg   jetstream.Msg
		alert detect.Alert
	}
	alerts := make([]pulled, 0, len(msgs))
	var ask []string
	for _, msg := range msgs {
		a, ok := col.decode(msg)
		if !ok {
			continue
		}
		alerts = append(alerts, pulled{msg, a})
		if !col.acks.has(a.ID) {
			ask = append(ask, a.ID)
		}
	}
	known := col.askPeers(ctx, ask)
	for _, d := range alerts {
		switch known[d.alert.ID] {
		case peerDone:
			_ = d.msg.Ack()
			col.peerDuplicates.Add(1)
		case peerPending:
			col.peerDuplicates.Add(1)
		default:
			col.handle(d.msg, d.alert)
		}
	}
	if n := len(known); n > 0 {
		col.log.WithFields(logrus.Fields{"alerts": n}).Info("alerts another collector delivered or is delivering: not delivered again")
	}
}
