// Package proc keeps what the daemon knows about processes: an ancestry
// cache fed from the execs it observes, with /proc as fallback, a content
// hasher for executed files, and uid to user name lookups. It implements
// detect.Processes and detect.Files.
package proc

import (
	"bytes"
	"container/list"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/detect"
)

// Defaults for Options left zero.
const (
	DefaultMaxEntries = 32768
	DefaultTTL        = 10 * time.Minute
)

// Options configure a Cache.
type Options struct {
	// Root is the proc filesystem, "/proc" unless a test says otherwise.
	Root string
	// Offline keeps the cache to the execs it observes and never reads
	// Root: for replay, whose pids belong to another time or host.
	Offline bool
	// MaxEntries bounds the processes remembered; the least recently used
	// goes first.
	MaxEntries int
	// TTL is how long an entry is trusted after it was last observed or
	// read: an exited process ages out, and a reused pid is read afresh.
	TTL time.Duration
	// Now stands in for the clock.
	Now func() time.Time
}

// Cache remembers processes by pid. It is owned by one goroutine, the
// detection stage, and takes no lock on that per-event path; only Stats may
// be called from another goroutine.
type Cache struct {
	root    string
	offline bool
	max     int
	ttl     time.Duration
	now     func() time.Time

	entries map[int]*list.Element // of *entry
	lru     list.List             // front: most recently used
	// Counters, read with Stats from any goroutine.
	size                           atomic.Int64
	hits, misses, reads, evictions atomic.Uint64
}

type entry struct {
	p    detect.Process
	seen time.Time
}

var _ detect.Processes = (*Cache)(nil)

// New returns an empty Cache.
func New(o Options) *Cache {
	c := &Cache{root: o.Root, offline: o.Offline, max: o.MaxEntries, ttl: o.TTL, now: o.Now, entries: make(map[int]*list.Element)}
	if c.root == "" {
		c.root = "/proc"
	}
	if c.max <= 0 {
		c.max = DefaultMaxEntries
	}
	if c.ttl <= 0 {
		c.ttl = DefaultTTL
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// Observe records the process a successful exec event shows: its pid now
// runs ev.Exe with ev.Argv. Call it for every exec event, before Evaluate,
// so that the children it starts find it as their parent.
func (c *Cache) Observe(ev *audit.Event) {
	if ev == nil || !ev.IsExec() || !ev.Success || ev.PID <= 0 {
		return
	}
	c.put(detect.Process{PID: ev.PID, PPID: ev.PPID, Exe: ev.Exe, Argv: ev.Argv, UID: ev.UID})
}

func (c *Cache) put(p detect.Process) {
	if el, ok := c.entries[p.PID]; ok {
		el.Value = &entry{p: p, seen: c.now()}
		c.lru.MoveToFront(el)
		return
	}
	c.entries[p.PID] = c.lru.PushFront(&entry{p: p, seen: c.now()})
	for c.lru.Len() > c.max {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.entries, old.Value.(*entry).p.PID)
		c.evictions.Add(1)
	}
	c.size.Store(int64(c.lru.Len()))
}

// Process returns what is known of pid: from the cache while fresh, else
// read from /proc.
func (c *Cache) Process(pid int) (detect.Process, bool) {
	if pid <= 0 {
		return detect.Process{}, false
	}
	if el, ok := c.entries[pid]; ok {
		e := el.Value.(*entry)
		if c.now().Sub(e.seen) < c.ttl {
			c.lru.MoveToFront(el)
			c.hits.Add(1)
			return e.p, true
		}
		c.lru.Remove(el)
		delete(c.entries, pid)
		c.size.Store(int64(c.lru.Len()))
	}
	c.misses.Add(1)
	if c.offline {
		return detect.Process{}, false
	}
	p, err := Read(c.root, pid)
	if err != nil {
		return detect.Process{}, false
	}
	c.reads.Add(1)
	c.put(p)
	return p, true
}

// Ancestry returns pid's process and its ancestors, at most max of them.
func (c *Cache) Ancestry(pid int, max int) []detect.Process {
	return detect.WalkAncestry(pid, max, c.Process)
}

// Stats are the cache's counters.
type Stats struct {
	Entries                        int
	Hits, Misses, Reads, Evictions uint64
}

// Stats returns the cache's counters. It is safe from any goroutine.
func (c *Cache) Stats() Stats {
	return Stats{Entries: int(c.size.Load()), Hits: c.hits.Load(), Misses: c.misses.Load(),
		Reads: c.reads.Load(), Evictions: c.evictions.Load()}
}

// maxCmdline bounds what is read of /proc/PID/cmdline.
const maxCmdline = 64 << 10

// Read reads process pid from the proc filesystem at root: the parent pid
// from stat, argv from cmdline, the executable from the exe link (empty when
// it cannot be read, as for a kernel thread or without privilege) and the
// real uid from status.
func Read(root string, pid int) (detect.Process, error) {
	dir := filepath.Join(root, strconv.Itoa(pid))
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return detect.Process{}, err
	}
	ppid, err := ParseStatPPID(stat)
	if err != nil {
		return detect.Process{}, err
	}
	p := detect.Process{PID: pid, PPID: ppid}
	if b, err := readBounded(filepath.Join(dir, "cmdline"), maxCmdline); err == nil {
		p.Argv = ParseCmdline(b)
	}
	if exe, err := os.Readlink(filepath.Join(dir, "exe")); err == nil {
		p.Exe = strings.TrimSuffix(exe, " (deleted)")
	}
	if b, err := os.ReadFile(filepath.Join(dir, "status")); err == nil {
		if uid, ok := ParseStatusUID(b); ok {
			p.UID = uid
		}
	}
	return p, nil
}

func readBounded(path string, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, n)
	m, err := f.Read(buf)
	if m > 0 {
		return buf[:m], nil
	}
	return nil, err
}

// ParseStatPPID returns the parent pid from /proc/PID/stat: "pid (comm)
// state ppid ...". comm may hold spaces and parentheses, so the fields are
// counted from the last ')' (proc(5)).
func ParseStatPPID(b []byte) (int, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("proc: stat without comm")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, errors.New("proc: short stat")
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return 0, errors.New("proc: bad ppid in stat")
	}
	return ppid, nil
}

// ParseCmdline splits /proc/PID/cmdline at NULs; the trailing NUL ends the
// last argument and empty arguments are kept.
func ParseCmdline(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	b = bytes.TrimSuffix(b, []byte{0})
	return strings.Split(string(b), "\x00")
}

// ParseStatusUID returns the real uid from /proc/PID/status ("Uid:\treal
// effective saved fs").
func ParseStatusUID(b []byte) (uint32, bool) {
	for line := range strings.SplitSeq(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "Uid:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0, false
		}
		uid, err := strconv.ParseUint(f[0], 10, 32)
		return uint32(uid), err == nil
	}
	return 0, false
}
