package detect

import (
	"container/heap"
	"time"
)

// expiry is one group's window end, filed in the throttles' heap when the
// group is created; a group's end never changes.
type expiry struct {
	end time.Time
	key groupKey
	g   *group
}

// expiries is a min-heap of window ends: the groups expire in time order,
// each popped once, so that expiring costs O(log n) per group and nothing
// per alert (a scan of every group on each alert once the first window had
// passed cost ~0.5 ms an event at 16,384 groups).
type expiries []expiry

func (h expiries) Len() int           { return len(h) }
func (h expiries) Less(i, j int) bool { return h[i].end.Before(h[j].end) }
func (h expiries) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiries) Push(x any)        { *h = append(*h, x.(expiry)) }
func (h *expiries) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = expiry{} // let the group go
	*h = old[:len(old)-1]
	return x
}

// add files g under k and schedules its expiry.
func (th *throttles) add(k groupKey, g *group) {
	th.groups[k] = g
	heap.Push(&th.expiry, expiry{end: g.end, key: k, g: g})
}

// rollDue moves the summaries of windows that ended by t into th.due and
// forgets those windows, earliest first.
func (e *Engine) rollDue(t time.Time) {
	th := &e.thr
	for len(th.expiry) > 0 && !t.Before(th.expiry[0].end) {
		x := heap.Pop(&th.expiry).(expiry)
		if th.groups[x.key] != x.g {
			continue // forgotten already (FlushAll)
		}
		if x.g.held > 0 {
			th.due = append(th.due, e.summary(x.g))
		}
		delete(th.groups, x.key)
	}
}
