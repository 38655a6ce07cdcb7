package sink

import (
	"context"
	"sync"
	"testing"

	"github.com/encwatch/encwatch/detect"
)

// TestRouterAccepted: RouterOptions.Accepted hears of each alert once per
// sink that is done with it (sent after a retry, filtered by importance,
// stored by a spool), and DeliverTo reaches only the sinks it names.
func TestRouterAccepted(t *testing.T) {
	flaky, filtered := newFake("flaky"), newFake("filtered")
	flaky.failFirst = 1
	sp, err := OpenSpool(SpoolOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[string][]int{}
	r := NewRouter(discardLog(), []Sink{
		flaky,
		WithDelivery(filtered, Delivery{MinImportance: detect.Critical}),
		WithDelivery(newFake("spooled"), Delivery{Spool: sp}),
	}, RouterOptions{RetryMin: 1, Accepted: func(sink int, a *detect.Alert) {
		mu.Lock()
		got[a.ID] = append(got[a.ID], sink)
		mu.Unlock()
	}})
	done := start(r, context.Background())
	r.Deliver(alertN(1))
	r.DeliverTo(alertN(2), []string{"flaky"})
	r.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	count := func(id string) map[int]int {
		m := map[int]int{}
		for _, s := range got[id] {
			m[s]++
		}
		return m
	}
	if c := count("1"); len(c) != 3 || c[0] != 1 || c[1] != 1 || c[2] != 1 {
		t.Errorf("alert 1 accepted by sinks %v, want each of 0, 1, 2 once", got["1"])
	}
	if c := count("2"); len(c) != 1 || c[0] != 1 {
		t.Errorf("alert 2 (DeliverTo flaky) accepted by sinks %v, want [0]", got["2"])
	}
	if st := r.Stats(); st[1].Filtered != 1 || st[2].Queued != 1 {
		t.Errorf("filtered %d, spooled %d: DeliverTo counted in sinks it left out", st[1].Filtered, st[2].Queued)
	}
}
