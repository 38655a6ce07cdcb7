// Package proc keeps what the daemon knows about processes: an ancestry
// cache fed from the execs it observes, with /proc as fallback, bounded in
// bytes; the identity of executed files, read off the detection path
// through the process's own view of the filesystem (identify.go); and uid
// to user name lookups. It implements detect.Processes and detect.Files.
package proc

import (
	"bytes"
	"container/list"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/detect"
)

// Defaults for Options left zero.
const (
	DefaultMaxEntries = 32768
	DefaultTTL        = 10 * time.Minute
	// DefaultMaxArgvBytes is the argv a process keeps: enough for the
	// command lines ancestry shows and parent conditions match, while an
	// exec with megabytes of arguments (ARG_MAX is a quarter of the stack
	// limit) costs the cache no more than any other.
	DefaultMaxArgvBytes = 4 << 10
	// DefaultMaxBytes is the cache's budget: at DefaultMaxEntries
	// processes of DefaultMaxArgvBytes each it would hold 128 MiB, so
	// bytes, not entries, bound it against execs with big arguments.
	DefaultMaxBytes = 32 << 20
	// DefaultReadTimeout bounds one process read from /proc. A read of
	// /proc/PID/cmdline takes the process's mmap lock, which its owner can
	// hold (a userfaultfd or FUSE-backed mapping); detection gives up and
	// goes on without the process.
	DefaultReadTimeout = 100 * time.Millisecond
	// maxStuckReads bounds the /proc reads left blocked past their
	// timeout; with that many, further misses are not read at all.
	maxStuckReads = 4
	// entryOverhead approximates an entry's bytes beyond its strings: the
	// entry, its list element, map slot and string headers.
	entryOverhead = 256
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
	// MaxArgvBytes bounds the argv kept per process; the rest is cut.
	MaxArgvBytes int
	// MaxBytes bounds the cache's memory (argv, exe and per-entry
	// overhead); the least recently used go first.
	MaxBytes int64
	// ReadTimeout bounds a read of one process from Root.
	ReadTimeout time.Duration
	// Now stands in for the clock.
	Now func() time.Time
}

// Cache remembers processes by pid. It is owned by one goroutine, the
// detection stage, and takes no lock on that per-event path; only Stats may
// be called from another goroutine.
type Cache struct {
	root        string
	offline     bool
	max         int
	maxArgv     int
	maxBytes    int64
	ttl         time.Duration
	readTimeout time.Duration
	now         func() time.Time

	entries map[int]*list.Element // of *entry
	lru     list.List             // front: most recently used
	bytes   int64                 // sum of the entries' cost
	// stuck holds a token per /proc read still running past its timeout.
	stuck chan struct{}
	// Counters, read with Stats from any goroutine.
	size                           atomic.Int64
	memory                         atomic.Int64
	hits, misses, reads, evictions atomic.Uint64
	timeouts                       atomic.Uint64
}

type entry struct {
	p    detect.Process
	seen time.Time
	cost int64
}

var _ detect.Processes = (*Cache)(nil)

// New returns an empty Cache.
func New(o Options) *Cache {
	c := &Cache{root: o.Root, offline: o.Offline, max: o.MaxEntries, maxArgv: o.MaxArgvBytes, maxBytes: o.MaxBytes,
		ttl: o.TTL, readTimeout: o.ReadTimeout, now: o.Now, entries: make(map[int]*list.Element),
		stuck: make(chan struct{}, maxStuckReads)}
	if c.root == "" {
		c.root = "/proc"
	}
	if c.max <= 0 {
		c.max = DefaultMaxEntries
	}
	if c.maxArgv <= 0 {
		c.maxArgv = DefaultMaxArgvBytes
	}
	if c.maxBytes <= 0 {
		c.maxBytes = DefaultMaxBytes
	}
	if c.readTimeout <= 0 {
		c.readTimeout = DefaultReadTimeout
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

// put remembers p, its argv cut to the cache's bound and copied, so that
// the cache never keeps an event's full arguments alive.
func (c *Cache) put(p detect.Process) {
	p.Exe, p.Argv = clipCopy(p.Exe, p.Argv, c.maxArgv)
	cost := entryOverhead + int64(len(p.Exe))
	for _, a := range p.Argv {
		cost += int64(len(a)) + 16
	}
	// The entry and list element of pid, else of the least recently used
	// process when the cache is full, are reused: no entry escapes the
	// cache (Process returns a copy), and a full cache, a daemon's steady
	// state, would otherwise allocate both on every exec.
	el, ok := c.entries[p.PID]
	switch {
	case ok:
		c.bytes -= el.Value.(*entry).cost
	case c.lru.Len() >= c.max:
		el = c.lru.Back()
		old := el.Value.(*entry)
		delete(c.entries, old.p.PID)
		c.bytes -= old.cost
		c.evictions.Add(1)
		c.entries[p.PID] = el
	default:
		el = c.lru.PushFront(new(entry))
		c.entries[p.PID] = el
	}
	*el.Value.(*entry) = entry{p: p, seen: c.now(), cost: cost}
	c.lru.MoveToFront(el)
	c.bytes += cost
	for c.lru.Len() > c.max || c.bytes > c.maxBytes && c.lru.Len() > 1 {
		c.evict(c.lru.Back())
		c.evictions.Add(1)
	}
	c.size.Store(int64(c.lru.Len()))
	c.memory.Store(c.bytes)
}

func (c *Cache) evict(el *list.Element) {
	e := el.Value.(*entry)
	c.lru.Remove(el)
	delete(c.entries, e.p.PID)
	c.bytes -= e.cost
}

// ClipArgv returns a copy of argv holding at most max bytes of it: the
// arguments that fit, the last one cut. The copy shares no memory with
// argv.
func ClipArgv(argv []string, max int) []string {
	_, out := clipCopy("", argv, max)
	return out
}

// clipCopy copies exe and argv, argv clipped as ClipArgv says, into one new
// buffer: two allocations per process (the buffer and the slice) rather
// than one per argument, on the path of every exec.
func clipCopy(exe string, argv []string, max int) (string, []string) {
	if argv == nil {
		return strings.Clone(exe), nil
	}
	// The arguments kept, and the bytes of each: what fits of it.
	keep, total := 0, len(exe)
	for budget := max; keep < len(argv); {
		n := min(len(argv[keep]), budget)
		total += n
		keep++
		if budget -= n; budget <= 0 {
			break
		}
	}
	var b strings.Builder
	b.Grow(total)
	b.WriteString(exe)
	budget := max
	for _, a := range argv[:keep] {
		n := min(len(a), budget)
		b.WriteString(a[:n])
		budget -= n
	}
	buf := b.String() // no copy: the builder's one buffer
	out := make([]string, keep)
	off, budget := len(exe), max
	for i, a := range argv[:keep] {
		n := min(len(a), budget)
		out[i] = buf[off : off+n]
		off += n
		budget -= n
	}
	return buf[:len(exe)], out
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
		c.evict(el)
		c.size.Store(int64(c.lru.Len()))
		c.memory.Store(c.bytes)
	}
	c.misses.Add(1)
	if c.offline {
		return detect.Process{}, false
	}
	p, err := c.read(pid)
	if err != nil {
		return detect.Process{}, false
	}
	c.reads.Add(1)
	c.put(p)
	return p, true
}

// KnownAncestors returns the pids of pid's ancestors the cache holds, at
// most max, nearest first: pid's parent, its parent, and so on while the
// cache knows them. It does no I/O and keeps the cache as it is, so it can
// be asked on every lookup (IdentifierOptions.Ancestors); a stale entry
// only costs the caller a try.
func (c *Cache) KnownAncestors(pid, max int) []int {
	var out []int
	for len(out) < max {
		el, ok := c.entries[pid]
		if !ok {
			break
		}
		pid = el.Value.(*entry).p.PPID
		if pid <= 1 || slices.Contains(out, pid) {
			break
		}
		out = append(out, pid)
	}
	return out
}

// Ancestry returns pid's process and its ancestors, at most max of them.
func (c *Cache) Ancestry(pid int, max int) []detect.Process {
	return detect.WalkAncestry(pid, max, c.Process)
}

// AppendAncestry appends to dst what Ancestry returns: the engine looks
// the ancestry up for most execs, into a slice it reuses.
func (c *Cache) AppendAncestry(dst []detect.Process, pid int, max int) []detect.Process {
	return detect.AppendAncestry(dst, pid, max, c.Process)
}

// Stats are the cache's counters.
type Stats struct {
	Entries int
	// Bytes is the cache's estimated memory, within Options.MaxBytes.
	Bytes                          int64
	Hits, Misses, Reads, Evictions uint64
	// Timeouts counts /proc reads given up on (or not started because
	// too many were stuck).
	Timeouts uint64
}

// Stats returns the cache's counters. It is safe from any goroutine.
func (c *Cache) Stats() Stats {
	return Stats{Entries: int(c.size.Load()), Bytes: c.memory.Load(), Hits: c.hits.Load(), Misses: c.misses.Load(),
		Reads: c.reads.Load(), Evictions: c.evictions.Load(), Timeouts: c.timeouts.Load()}
}

var errReadTimeout = errors.New("proc: read timed out")

// read reads pid from /proc within the read timeout. A read still blocked
// then (a syscall cannot be cancelled) is left to finish on its own
// goroutine, which holds a stuck token until it does; with every token
// held, the cache reads nothing more, so at most maxStuckReads goroutines
// are ever blocked and detection never is.
func (c *Cache) read(pid int) (detect.Process, error) {
	select {
	case c.stuck <- struct{}{}:
	default:
		c.timeouts.Add(1)
		return detect.Process{}, errReadTimeout
	}
	type result struct {
		p   detect.Process
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer func() { <-c.stuck }()
		p, err := Read(c.root, pid)
		done <- result{p, err}
	}()
	t := time.NewTimer(c.readTimeout)
	defer t.Stop()
	select {
	case r := <-done:
		return r.p, r.err
	case <-t.C:
		c.timeouts.Add(1)
		return detect.Process{}, errReadTimeout
	}
}

// Bounds on what is read of /proc/PID files: cmdline as the cache keeps
// argv; stat and status are a few hundred bytes to a few KiB (proc(5)).
const (
	maxCmdline = DefaultMaxArgvBytes
	maxStat    = 4 << 10
	maxStatus  = 16 << 10
)

// Read reads process pid from the proc filesystem at root: the parent pid
// from stat, argv from cmdline, the executable from the exe link (empty when
// it cannot be read, as for a kernel thread or without privilege) and the
// real uid from status.
func Read(root string, pid int) (detect.Process, error) {
	dir := filepath.Join(root, strconv.Itoa(pid))
	stat, err := readBounded(filepath.Join(dir, "stat"), maxStat)
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
	if b, err := readBounded(filepath.Join(dir, "status"), maxStatus); err == nil {
		if uid, ok := ParseStatusUID(b); ok {
			p.UID = uid
		}
	}
	return p, nil
}

// readBounded reads at most n bytes of path in one read, opened without
// following a final symbolic link and without blocking. It calls the system
// directly rather than through an os.File: the runtime tries to register
// every file os opens with its poller, which for a /proc file is one more
// system call (an epoll_ctl that fails) on every alert's container lookup.
func readBounded(path string, n int64) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	buf := make([]byte, n)
	for {
		m, err := syscall.Read(fd, buf)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		case m == 0:
			return nil, io.EOF
		}
		return buf[:m], nil
	}
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
