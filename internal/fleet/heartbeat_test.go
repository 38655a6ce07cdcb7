package fleet

import (
	"context"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/config"
)

// TestHeartbeater: a heartbeat at start and every interval to the block's
// sinks, with the agent's counters; agent_stopped on a clean stop; nothing
// for a policy without the block.
func TestHeartbeater(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg, err := config.Parse("p.hcl", []byte("settings {\n  hostname = \"web1.example.com\"\n}\nheartbeat {\n  interval = \"10s\"\n  sinks    = [\"bus\"]\n}\n"))
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var got []detect.Alert
		var to [][]string
		policy := cfg
		h := NewHeartbeater(HeartbeatOptions{
			Policy: func() *config.Config { return policy },
			Deliver: func(a detect.Alert, sinks []string) {
				mu.Lock()
				defer mu.Unlock()
				got, to = append(got, a), append(to, sinks)
			},
			Stats: func() AgentStats { return AgentStats{Events: 7, SinkDrops: 2} },
			Log:   quietLog(),
			Mode:  "owner",
		})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- h.Run(ctx) }()
		time.Sleep(25 * time.Second) // beats at 0, 10 and 20 s
		synctest.Wait()
		h.Stopped()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
		var names []string
		for _, a := range got {
			names = append(names, a.Signature.Name)
		}
		if want := []string{SigHeartbeat, SigHeartbeat, SigHeartbeat, SigStopped}; !slices.Equal(names, want) {
			t.Fatalf("records = %v, want %v", names, want)
		}
		for i := range to {
			if !slices.Equal(to[i], []string{"bus"}) {
				t.Errorf("record %d went to %v, want [bus]", i, to[i])
			}
		}
		fields := map[string]string{}
		for _, m := range got[2].Matches {
			fields[m.Field] = m.Value
		}
		for field, want := range map[string]string{
			"heartbeat.version": "dev", "heartbeat.mode": "owner", HeartbeatUptime: "20",
			HeartbeatInterval: "10", "heartbeat.events": "7", "heartbeat.sink_drops": "2",
		} {
			if fields[field] != want {
				t.Errorf("%s = %q, want %q", field, fields[field], want)
			}
		}
		if got[0].Host != "web1.example.com" {
			t.Errorf("Host = %q, want web1.example.com", got[0].Host)
		}

		none, err := config.Parse("p.hcl", []byte(""))
		if err != nil {
			t.Fatal(err)
		}
		policy, got = none, nil
		h.Stopped()
		if len(got) != 0 {
			t.Errorf("a policy without a heartbeat block sent %d records, want none", len(got))
		}
	})
}
