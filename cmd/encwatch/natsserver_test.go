package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/encwatch/encwatch/internal/fleet"
	"github.com/encwatch/encwatch/internal/natstest"
)

// streamState says how many messages the stream holds and where the
// collectors' consumer is, for failure messages.
func streamState(cl *natstest.Cluster) string {
	nc, err := cl.Connect(natstest.Admin)
	if err != nil {
		return err.Error()
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "ENCWATCH")
	if err != nil {
		return err.Error()
	}
	si := st.CachedInfo()
	out := fmt.Sprintf("stream: %d messages", si.State.Msgs)
	if c, err := st.Consumer(ctx, fleet.DefaultConsumer); err == nil {
		ci := c.CachedInfo()
		out += fmt.Sprintf("; consumer: pending %d, ack pending %d, redelivered %d, delivered %d, ack floor %d",
			ci.NumPending, ci.NumAckPending, ci.NumRedelivered, ci.Delivered.Stream, ci.AckFloor.Stream)
	}
	return out
}

// streamDuplicates counts the messages of the stream whose Nats-Msg-Id an
// earlier message already had: duplicates stored by the stream itself, as
// opposed to ones delivered twice by the consumer.
func streamDuplicates(t *testing.T, cl *natstest.Cluster) int {
	t.Helper()
	js := cl.Admin()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "ENCWATCH")
	if err != nil {
		t.Fatal(err)
	}
	total := st.CachedInfo().State.Msgs
	c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{HeadersOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	dups := 0
	for n := uint64(0); n < total; {
		batch, err := c.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			n++
			id := m.Headers().Get(jetstream.MsgIDHeader)
			if ids[id] {
				dups++
			}
			ids[id] = true
		}
		if ctx.Err() != nil {
			t.Fatal(ctx.Err())
		}
	}
	return dups
}
