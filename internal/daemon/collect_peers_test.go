package daemon

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/config"
)

// peerCollector is the part of a collector that talks to the others: its
// ackTracker and its peer connection, on a real nats-server.
func peerCollector(t *testing.T, url string) *fleetCollector {
	t.Helper()
	col := &fleetCollector{log: quietLog(), c: &config.Collect{URLs: []string{url}, Stream: "ENCWATCH", Consumer: "siem"}, acks: newAckTracker(1)}
	if err := col.dialPeers(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(col.peers.Close)
	return col
}

// TestCollectorsAskEachOtherWithServer: a collector alone hears "no
// responders" at once; with another on the same consumer it learns which of
// its alerts the other has delivered (to acknowledge, not deliver) and
// which the other is delivering (to leave for later); what the other does
// not know is its to deliver.
func TestCollectorsAskEachOtherWithServer(t *testing.T) {
	url := startNATS(t)
	a := peerCollector(t, url)
	start := time.Now()
	if got := a.askPeers(context.Background(), []string{"x"}); got != nil {
		t.Fatalf("alone: askPeers = %v, want no answer", got)
	}
	if waited := time.Since(start); waited >= peerTimeout {
		t.Errorf("alone: waited %v, want the server's no-responders at once (not the %v timeout)", waited, peerTimeout)
	}

	b := peerCollector(t, url)
	var acks, naks atomic.Int32
	m := fakeMsg{acks: &acks, naks: &naks}
	b.acks.add("delivered", m)
	b.acks.accepted(0, &detect.Alert{ID: "delivered"})
	b.acks.add("in-flight", m)
	got := a.askPeers(context.Background(), []string{"delivered", "in-flight", "unknown"})
	want := map[string]byte{"delivered": peerDone, "in-flight": peerPending}
	if len(got) != len(want) || got["delivered"] != peerDone || got["in-flight"] != peerPending {
		t.Fatalf("askPeers = %q, want %q", got, want)
	}
	// A collector does not answer itself: b alone knows these.
	if got := b.askPeers(context.Background(), []string{"delivered"}); got["delivered"] != 0 {
		t.Errorf("b heard its own answer: %q", got)
	}
}
