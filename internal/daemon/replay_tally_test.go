package daemon

import (
	"fmt"
	"testing"
)

// TestTopCounter: counts are exact while the names fit; past the capacity
// memory stays bounded, a frequent name is still listed first, and the
// distinct count is exact below maxDistinct.
func TestTopCounter(t *testing.T) {
	c := newTopCounter()
	for i := range 100 {
		for range i + 1 {
			c.add(fmt.Sprintf("h%d", i))
		}
	}
	got := c.top(3)
	want := []Count{{"h99", 100}, {"h98", 99}, {"h97", 98}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("top(3) = %v, want %v", got, want)
	}
	if n, atLeast := c.distinctNames(); n != 100 || atLeast {
		t.Errorf("distinct = %d (at least %v), want 100 exactly", n, atLeast)
	}

	c = newTopCounter()
	const flood = 50_000
	for i := range flood {
		c.add(fmt.Sprintf("noise%d", i))
		if i%10 == 0 {
			c.add("heavy")
		}
	}
	if len(c.byName) > tallyCapacity || len(c.least) > tallyCapacity {
		t.Errorf("following %d names (%d in the heap), want at most %d", len(c.byName), len(c.least), tallyCapacity)
	}
	top := c.top(1)
	if len(top) != 1 || top[0].Name != "heavy" || top[0].N < flood/10 {
		t.Errorf("top(1) after a flood of distinct names = %v, want heavy with at least %d", top, flood/10)
	}
	for _, x := range c.top(0) {
		if x.Name != "heavy" && x.N != 1 {
			t.Errorf("noise name %s shown with %d, want its own 1 (not an evicted name's count)", x.Name, x.N)
			break
		}
	}
	if n, atLeast := c.distinctNames(); n != flood+1 || atLeast {
		t.Errorf("distinct = %d (at least %v), want %d exactly", n, atLeast, flood+1)
	}
}
