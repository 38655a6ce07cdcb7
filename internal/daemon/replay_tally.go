package daemon

import (
	"cmp"
	"container/heap"
	"hash/maphash"
	"slices"
	"strings"
)

// Bounds of a replay's per-host and per-parent tallies: a log of 200,000
// node= hosts (or as many distinct parents) must not grow the replay's
// memory with each, nor print a line for each.
const (
	// tallyCapacity is how many names a topCounter follows at once.
	tallyCapacity = 1024
	// maxDistinct bounds the names a topCounter counts as distinct; past
	// it the count is a lower bound.
	maxDistinct = 1 << 18
	// topHosts is how many hosts a summary lists.
	topHosts = 10
)

// topCounter counts the most frequent names in bounded memory (the
// Space-Saving algorithm, Metwally et al. 2005): it follows at most
// tallyCapacity names; a new name past that takes the place of the least
// counted one and inherits its count as its error. While there are no more
// names than its capacity every count is exact; past it, any name seen
// more than total/tallyCapacity times is still listed, its count high by
// at most its error. Distinct names are counted by hash up to maxDistinct.
type topCounter struct {
	seed     maphash.Seed
	byName   map[string]*topEntry
	least    topHeap // by count, least first
	distinct map[uint64]struct{}
	// capped: distinct stopped at maxDistinct; evicted: a name was
	// replaced, so counts may be high.
	capped, evicted bool
}

type topEntry struct {
	name     string
	n, error uint64
	index    int // in least
}

func newTopCounter() *topCounter {
	return &topCounter{seed: maphash.MakeSeed(), byName: make(map[string]*topEntry), distinct: make(map[uint64]struct{})}
}

// add counts one of name.
func (c *topCounter) add(name string) {
	if len(c.distinct) < maxDistinct {
		c.distinct[maphash.String(c.seed, name)] = struct{}{}
	} else if _, ok := c.distinct[maphash.String(c.seed, name)]; !ok {
		c.capped = true
	}
	if e := c.byName[name]; e != nil {
		e.n++
		heap.Fix(&c.least, e.index)
		return
	}
	if len(c.byName) < tallyCapacity {
		e := &topEntry{name: strings.Clone(name), n: 1}
		c.byName[e.name] = e
		heap.Push(&c.least, e)
		return
	}
	e := c.least[0]
	delete(c.byName, e.name)
	c.evicted = true
	e.name, e.error, e.n = strings.Clone(name), e.n, e.n+1
	c.byName[e.name] = e
	heap.Fix(&c.least, 0)
}

// top lists the limit most counted names (0: all followed), most first,
// then by name. Each count is the one guaranteed (the estimate less the
// error it inherited): a name that took an evicted one's place is not
// shown with the evicted name's count.
func (c *topCounter) top(limit int) []Count {
	out := make([]Count, 0, len(c.byName))
	for _, e := range c.byName {
		out = append(out, Count{e.name, e.n - e.error})
	}
	slices.SortFunc(out, func(a, b Count) int {
		return cmp.Or(cmp.Compare(b.N, a.N), strings.Compare(a.Name, b.Name))
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// distinctNames is how many distinct names were counted, and whether that
// is a lower bound.
func (c *topCounter) distinctNames() (uint64, bool) {
	return uint64(len(c.distinct)), c.capped
}

type topHeap []*topEntry

func (h topHeap) Len() int           { return len(h) }
func (h topHeap) Less(i, j int) bool { return h[i].n < h[j].n }
func (h topHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *topHeap) Push(x any) {
	e := x.(*topEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *topHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
