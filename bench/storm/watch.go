package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// alertWatch tails the file sink and, for each alert line that names one of
// the storm's markers, records how long after the fork it appeared.
type alertWatch struct {
	path  string
	storm *storm

	mu sync.Mutex
	// seen is when each marker's alert line was read. It is joined with the
	// storm's spawn times only at the end: the watcher can read an alert
	// before the storm has read the spawner's line for its marker.
	seen      map[string]time.Time
	fromEvent []time.Duration // the event's kernel timestamp → alert line
	lines     int
}

// run reads the file as it grows, woken by inotify (fsnotify, on the
// file's directory, which the daemon creates the file in) at each write,
// and by a 100 ms ticker in case an event was missed. It used to poll every
// millisecond: some 3,000 system calls and 1,000 wake-ups a second on the
// machine whose CPU the spawner needs, which held the storm near 870 of
// its 1000 execs/s beside encwatch (auditd's runs have no alerts to watch).
func (w *alertWatch) run(ctx context.Context) {
	var events <-chan fsnotify.Event
	if wt, err := fsnotify.NewWatcher(); err == nil {
		defer wt.Close()
		if wt.Add(filepath.Dir(w.path)) == nil {
			events = wt.Events
		}
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	var off int64
	var partial []byte
	buf := make([]byte, 64<<10)
	for {
		select {
		case <-ctx.Done():
			return
		case <-events:
		case <-t.C:
		}
		if f == nil {
			var err error
			if f, err = os.Open(w.path); err != nil {
				continue // not written yet
			}
		}
		for {
			n, err := f.ReadAt(buf, off)
			if n > 0 {
				seen := time.Now()
				off += int64(n)
				partial = append(partial, buf[:n]...)
				for {
					i := bytes.IndexByte(partial, '\n')
					if i < 0 {
						break
					}
					w.line(partial[:i], seen)
					partial = partial[i+1:]
				}
			}
			if n == 0 || err != nil {
				break
			}
		}
	}
}

func (w *alertWatch) line(b []byte, seen time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lines++
	m := findMarker(b, w.storm.runID)
	if m == "" {
		return
	}
	if _, dup := w.seen[m]; dup {
		return
	}
	if w.seen == nil {
		w.seen = make(map[string]time.Time)
	}
	w.seen[m] = seen
	var a struct {
		Time time.Time `json:"time"`
	}
	if json.Unmarshal(b, &a) == nil && !a.Time.IsZero() {
		w.fromEvent = append(w.fromEvent, seen.Sub(a.Time))
	}
}

// findMarker returns the first marker of run id in b, or "".
func findMarker(b []byte, id string) string {
	prefix := []byte("ewm" + id + "x")
	i := bytes.Index(b, prefix)
	if i < 0 {
		return ""
	}
	j := i + len(prefix)
	k := j
	for k < len(b) && b[k] >= '0' && b[k] <= '9' {
		k++
	}
	if k == j {
		return ""
	}
	return string(b[i:k])
}

// missing returns the markers spawned whose alert was not seen, at most n.
func (w *alertWatch) missing(n int) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	w.storm.sent.Range(func(k, _ any) bool {
		if _, ok := w.seen[k.(string)]; !ok {
			out = append(out, k.(string))
		}
		return len(out) < n
	})
	return out
}

// matched returns the fork→alert and event→alert latencies seen so far,
// sorted.
func (w *alertWatch) matched() (fromFork, fromEvent []time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for m, at := range w.seen {
		if t, ok := w.storm.sent.Load(m); ok {
			fromFork = append(fromFork, at.Sub(t.(time.Time)))
		}
	}
	fromEvent = slices.Clone(w.fromEvent)
	slices.Sort(fromFork)
	slices.Sort(fromEvent)
	return fromFork, fromEvent
}

// percentile returns the pth percentile (nearest rank) of sorted d, 0 if empty.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(d))+0.999999) - 1
	return d[min(max(rank, 0), len(d)-1)]
}
