package fleet

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/encwatch/encwatch/internal/natstest"
)

// TestClaimsWithServer: on a real nats-server with the collector's
// documented permissions, the first collector to claim an alert gets it;
// another then finds it being delivered, and delivered once the first is
// done; a collector asking again about its own claim gets it back.
func TestClaimsWithServer(t *testing.T) {
	cl := natstest.Start(t, 1, nil)
	cl.CreateStream(1)
	c := &CollectSettings{Stream: "ENCWATCH", Consumer: DefaultConsumer, AckWait: 5 * time.Second, ManageConsumer: true}
	open := func() *claims {
		nc, err := cl.Connect(natstest.Collect, nats.CustomInboxPrefix(collectInboxPrefix))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cs, err := openClaims(ctx, js, c, 1)
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	a, b := open(), open()
	ctx := context.Background()
	if got := a.claim(ctx, []string{"x", "y"}); !slices.Equal(got, []claimResult{claimMine, claimMine}) {
		t.Fatalf("a claims x, y = %v, want both its own", got)
	}
	if got := b.claim(ctx, []string{"x", "z"}); !slices.Equal(got, []claimResult{claimPending, claimMine}) {
		t.Errorf("b claims x, z = %v, want x being delivered by a, z its own", got)
	}
	a.delivered("x")
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := b.claim(ctx, []string{"x"})
		if got[0] == claimDone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b claims x after a delivered it = %v, want done", got)
		}
		time.Sleep(20 * time.Millisecond) // the asynchronous mark
	}
	if got := a.claim(ctx, []string{"y"}); got[0] != claimMine {
		t.Errorf("a claims y again = %v, want its own claim back", got)
	}
}
