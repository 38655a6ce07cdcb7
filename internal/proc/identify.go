package proc

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/detect"
)

// Defaults for IdentifierOptions left zero.
const (
	// DefaultIdentifyWorkers read files in parallel; two keep one slow
	// file from holding up every other lookup.
	DefaultIdentifyWorkers = 2
	// DefaultIdentifyQueue bounds the lookups waiting for a worker. Each
	// holds its event, so the bound is also one on memory.
	DefaultIdentifyQueue = 256
	// DefaultIdentifyTimeout is the deadline of one lookup: a file bigger
	// than what reads in it is not identified.
	DefaultIdentifyTimeout = 2 * time.Second
	// DefaultIdentifyEntries bounds the files known by device and inode
	// (about 200 bytes each: a key, two hex ids).
	DefaultIdentifyEntries = 16384
	// DefaultIdentifyBytes bounds the argv of the events waiting for a
	// lookup: a user can run their own binary with 2 MB of arguments over
	// and over, and each lookup holds its event until detection takes it
	// back.
	DefaultIdentifyBytes = 16 << 20
)

// IdentifierOptions configure an Identifier.
type IdentifierOptions struct {
	// Root is the proc filesystem, "/proc" unless a test says otherwise.
	Root string
	// Offline answers every lookup Unknown: for replay, whose pids and
	// files belong to another time or host.
	Offline bool
	// Workers, Queue, Timeout, MaxEntries and MaxBytes: see the defaults.
	Workers    int
	Queue      int
	Timeout    time.Duration
	MaxEntries int
	MaxBytes   int64
	// Ancestors, if set, returns the pids of pid's ancestors it knows of
	// (Cache.KnownAncestors), without I/O: it is called on the detection
	// goroutine, for a file not yet known. A worker reads the file through
	// their roots when the process and its parent are gone.
	Ancestors func(pid int) []int
}

// Identifier identifies the files exec events ran (detect.Files), by the
// rule for every file the daemon touches on an event's behalf: never by a
// path a user can swap, never blocking detection.
//
// Identify, on the detection goroutine, answers from a cache keyed by the
// PATH records' device and inode, with no system call. A file it does not
// know is queued for a worker (a full queue drops the lookup and counts
// it), and Identify answers Pending at once. A worker opens the file
// through the process's own view of the filesystem (/proc/PID/exe, else
// the path under /proc/PID/root, its parent's, a known ancestor's or
// init's), without following a final symbolic link and without blocking,
// checks that the descriptor is a regular file with the record's device and
// inode, and reads its build id, when its size is an encoder's its SHA-256,
// and when the size of its code is an encoder's the SHA-256 of its code,
// within a deadline. A file no root holds comes back with why it was not
// read (detect.FileID.Unread). The finished Job comes back on Done; the
// detection goroutine passes it to Learn and re-evaluates the event Learn
// returns.
//
// Only files that no untrusted user can change (owned by root, not group
// or world writable, linked) are cached, by device and inode, and answer
// only a PATH record with the owner root and the mode they were read with.
// A lookup that failed is cached the same way when its record shows such a
// file (the same owner, mode and age checks answer it): a root binary whose
// process is gone before a worker looks fails again on every exec, through
// every root, and costs the exec a dozen system calls each time. The
// system's dynamic loader, as the ELF interpreter of a program, is not
// looked up at all (systemLoader). So in steady state the programs a host
// runs, and their loaders and script interpreters, cost no system call.
// Any other file is looked at again on each exec, by a worker that
// re-reads it only when its size or change time differ: a user who rewrites
// their own file in place keeps its inode. A file system hands a freed
// inode number to the next file it creates (ext4 does at once), so the
// device and inode of a deleted root binary, say a test binary under /tmp,
// soon name a user's copy of an encoder: the owner and mode of the record
// keep that copy from being answered with the binary's identity, and the
// entry ages out after knownFor, so that root's own rewrite of a file in
// place is read again within that time. The path is not part of the key:
// a user who names one binary in many ways (symbolic links, "/usr//bin")
// must not grow the cache, nor clear it for everyone.
type Identifier struct {
	root       string
	offline    bool
	workers    int
	timeout    time.Duration
	maxEntries int
	ancestors  func(pid int) []int

	// Owned by the detection goroutine.
	known map[fileKey]knownFile
	fresh *Job
	buf   []detect.FileID
	// waiting is the argv bytes of the events whose lookup is not back.
	waiting, maxBytes int64

	jobs chan *Job
	done chan *Job

	// Shared by the workers.
	mu      sync.Mutex
	content map[contentKey]detect.FileID

	queued, dropped, read, failed, timedOut, opened atomic.Uint64
}

var _ detect.Files = (*Identifier)(nil)

// fileKey is a file as an audit PATH record names it.
type fileKey struct {
	dev string // "fe:00", as the kernel prints it
	ino uint64
}

// knownFile is what the cache knows of a file: its identity, its st_mode,
// and the time of the event whose lookup read it.
type knownFile struct {
	id   detect.FileID
	mode uint32
	at   time.Time
}

// knownFor is how long a cached file is trusted, by the time of the events
// that ask (their audit timestamps: no clock is read). A hot binary is
// read again once in that time, from the workers' content cache when it
// has not changed.
const knownFor = time.Minute

// contentKey is a file's content as far as fstat tells: a write changes
// the change time, which no unprivileged user can set.
type contentKey struct {
	dev, ino uint64
	size     int64
	ctime    int64
}

// Job is one queued lookup: the event Identify was asked about and the
// files of it that were not known. A worker fills in the results.
type Job struct {
	ev  *audit.Event
	pid int
	// roots are the processes through whose root the files are opened
	// when /proc/PID/exe is not the file: the process, its parent, the
	// ancestors known alive last, then init (the host's mount namespace).
	roots   []int
	exe     string
	sizes   []int64
	refs    []fileRef
	results []fileResult
	bytes   int64 // what ev holds, counted in Identifier.waiting
}

// fileRef is a file to read: from a PATH record (key set) or a path alone
// (key.ino 0: the program a dynamic loader runs, which no record names).
type fileRef struct {
	key  fileKey
	path string // absolute, in the process's view
	// rootOnly and mode are the record's: a file only root can have made
	// (rootOnly), with that st_mode.
	rootOnly bool
	mode     uint32
}

type fileResult struct {
	key    fileKey
	id     detect.FileID // id.Unread says why a file was not read
	stable bool          // no untrusted user can change the file (or, unread, the record says so)
	mode   uint32        // st_mode of the file read (unread: the record's), when stable
}

// NewIdentifier returns an Identifier with an empty cache. Run starts its
// workers.
func NewIdentifier(o IdentifierOptions) *Identifier {
	i := &Identifier{root: o.Root, offline: o.Offline, workers: o.Workers, timeout: o.Timeout, maxEntries: o.MaxEntries, maxBytes: o.MaxBytes,
		ancestors: o.Ancestors}
	if i.root == "" {
		i.root = "/proc"
	}
	if i.workers <= 0 {
		i.workers = DefaultIdentifyWorkers
	}
	if i.timeout <= 0 {
		i.timeout = DefaultIdentifyTimeout
	}
	if i.maxEntries <= 0 {
		i.maxEntries = DefaultIdentifyEntries
	}
	if i.maxBytes <= 0 {
		i.maxBytes = DefaultIdentifyBytes
	}
	queue := o.Queue
	if queue <= 0 {
		queue = DefaultIdentifyQueue
	}
	i.known = make(map[fileKey]knownFile)
	i.content = make(map[contentKey]detect.FileID)
	i.jobs = make(chan *Job, queue)
	i.done = make(chan *Job, queue)
	return i
}

// Identify implements detect.Files. It is called from the detection
// goroutine only.
func (i *Identifier) Identify(ev *audit.Event, sizes []int64) ([]detect.FileID, detect.Lookup) {
	i.buf = i.buf[:0]
	j := i.fresh
	i.fresh = nil // kept for the next call only, whatever it asks
	if j != nil && j.ev == ev {
		// The re-evaluation of a finished lookup: its results, trusted
		// or not, are the answer.
		for _, r := range j.results {
			i.add(r.id)
		}
		return i.buf, detect.Known
	}
	if i.offline || ev.PID <= 0 {
		return nil, detect.Unknown
	}
	var missing []fileRef
	for k := range ev.Paths {
		pa := &ev.Paths[k]
		if !execPath(pa) || systemLoader(pa) {
			continue
		}
		key := fileKey{pa.Dev, pa.Inode}
		if k, ok := i.known[key]; ok && pa.Inode != 0 && rootOnly(pa) && pa.Mode == k.mode &&
			ev.Time.Sub(k.at) < knownFor && !ev.Time.Before(k.at) {
			i.add(k.id)
			continue
		}
		// Only a miss needs the path, for the worker that opens it.
		missing = append(missing, fileRef{key: key, path: absPath(pa.Name, ev.Cwd), rootOnly: rootOnly(pa), mode: pa.Mode})
	}
	if len(missing) == 0 {
		return i.buf, detect.Known
	}
	j = &Job{ev: ev, pid: ev.PID, roots: i.roots(ev), exe: ev.Exe, sizes: sizes, refs: missing, bytes: eventBytes(ev)}
	if i.waiting+j.bytes > i.maxBytes {
		i.dropped.Add(1)
		return i.buf, detect.Unknown
	}
	select {
	case i.jobs <- j:
		i.queued.Add(1)
		i.waiting += j.bytes
		return i.buf, detect.Pending
	default:
		i.dropped.Add(1)
		return i.buf, detect.Unknown
	}
}

// maxRoots bounds the processes a lookup tries the root of: an exec's
// process, its parent, ancestors, init.
const maxRoots = 10

// roots lists the processes whose roots a worker may open ev's files
// through, most likely first. A short-lived renamed copy has exited, and
// its parent (a shell running one pipeline) often too, before the records
// reach a worker: a live ancestor, or init, shares their mount namespace
// in the common case. A root that holds another file at the path, or
// another namespace, cannot mislead: the file opened must have the
// record's device and inode.
func (i *Identifier) roots(ev *audit.Event) []int {
	out := make([]int, 0, maxRoots)
	add := func(pid int) {
		if pid > 0 && len(out) < maxRoots && !slices.Contains(out, pid) {
			out = append(out, pid)
		}
	}
	add(ev.PID)
	add(ev.PPID)
	if i.ancestors != nil {
		for _, pid := range i.ancestors(ev.PPID) {
			if len(out) == maxRoots-1 {
				break
			}
			add(pid)
		}
	}
	add(1)
	return out
}

// eventBytes approximates what an event holds in memory: its arguments
// dominate.
func eventBytes(ev *audit.Event) int64 {
	n := int64(1024 + len(ev.Proctitle))
	for _, a := range ev.Argv {
		n += int64(len(a)) + 16
	}
	return n
}

func (i *Identifier) add(id detect.FileID) {
	if id != (detect.FileID{}) {
		i.buf = append(i.buf, id)
	}
}

// rootOnly reports whether a PATH record names a file that only root can
// have made or changed: owned by root, not group or world writable. Only
// such a file is answered from the cache.
func rootOnly(pa *audit.Path) bool {
	return pa.OUID == 0 && pa.Mode&0o022 == 0
}

// systemLoader reports whether a PATH record is the ELF interpreter the
// kernel mapped for a dynamic program (an item after the first, named as
// PT_INTERP names a dynamic loader: /lib64/ld-linux-x86-64.so.2) and only
// root can have made it. It is not looked up at all. The kernel jumps to
// an ELF interpreter without loading its own interpreter or libraries, so
// only a static program can run there, and every encoder a host ships is
// dynamic; the ELF interpreter's name is a symbolic link on every
// merged-/usr system, which the worker's open refuses (O_NOFOLLOW) through
// every root, on every exec. A loader a user made (another owner, or
// writable by others) is looked up like any file. ld.so run as a program
// is item 0 and is looked up; what it runs is the loader view's
// (detect.launcherView).
func systemLoader(pa *audit.Path) bool {
	return pa.Item > 0 && rootOnly(pa) && loaderName(pa.Name[strings.LastIndexByte(pa.Name, '/')+1:])
}

// loaderName reports whether name is a dynamic loader's file name: glibc's
// ld-linux*.so.N and ld.so, musl's ld-musl-ARCH.so.1, ld64.so.N (as
// detect's isLoader).
func loaderName(name string) bool {
	return name == "ld.so" || strings.HasPrefix(name, "ld-linux") && strings.Contains(name, ".so") ||
		strings.HasPrefix(name, "ld-musl-") || strings.HasPrefix(name, "ld64.so")
}

// execPath reports whether a PATH record of an exec names a file the
// kernel ran: the program, its script interpreter or its ELF interpreter.
func execPath(pa *audit.Path) bool {
	const sIFMT, sIFREG = 0o170000, 0o100000 // st_mode, include/uapi/linux/stat.h
	return (pa.Nametype == "NORMAL" || pa.Nametype == "") && (pa.Mode == 0 || pa.Mode&sIFMT == sIFREG) && pa.Name != ""
}

// absPath makes a record's name absolute against the cwd.
func absPath(name, cwd string) string {
	if strings.HasPrefix(name, "/") || cwd == "" {
		return name
	}
	return strings.TrimSuffix(cwd, "/") + "/" + name
}

// Done delivers finished lookups, for the detection goroutine to pass to
// Learn.
func (i *Identifier) Done() <-chan *Job { return i.done }

// Learn records what a finished lookup found and returns its event, which
// the caller re-evaluates (detect.Engine.Reevaluate) before the next
// Identify. It is called from the detection goroutine only.
func (i *Identifier) Learn(j *Job) *audit.Event {
	i.waiting -= j.bytes
	for _, r := range j.results {
		if !r.stable || r.key.ino == 0 {
			continue
		}
		if len(i.known) >= i.maxEntries {
			clear(i.known)
		}
		i.known[r.key] = knownFile{id: r.id, mode: r.mode, at: j.ev.Time}
	}
	i.fresh = j
	return j.ev
}

// Run runs the workers until ctx ends.
func (i *Identifier) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range i.workers {
		wg.Go(func() { i.work(ctx) })
	}
	wg.Wait()
	return nil
}

func (i *Identifier) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-i.jobs:
			deadline := time.Now().Add(i.timeout)
			for _, ref := range j.refs {
				r, err := i.identify(j, ref, deadline)
				if err != nil {
					i.failed.Add(1)
					if err == errDeadline {
						i.timedOut.Add(1)
					}
					r.id = detect.FileID{Unread: unreadReason(err), Dev: ref.key.dev, Inode: ref.key.ino}
					// A failure is remembered for a file only root can
					// have made, as the record shows it: its lookup
					// fails the same way on the next exec (ld.so's
					// name a symbolic link, the process gone), and
					// retrying it costs every exec a walk through
					// every root. A user's file is looked at again.
					r.stable, r.mode = ref.rootOnly, ref.mode
				}
				j.results = append(j.results, r)
			}
			select {
			case i.done <- j:
			case <-ctx.Done():
				return
			}
		}
	}
}

// IdentifierStats are an Identifier's counters.
type IdentifierStats struct {
	// Queued lookups went to a worker; Dropped found the queue or the
	// byte budget full.
	Queued, Dropped uint64
	// Read counts files read; Failed, those that could not be opened,
	// verified or read in time; TimedOut, those past the deadline.
	Read, Failed, TimedOut uint64
	// Opened counts the open system calls of lookups, failed ones
	// included (a process's root, a file): what the cache saves.
	Opened uint64
}

// Stats returns the counters. It is safe from any goroutine.
func (i *Identifier) Stats() IdentifierStats {
	return IdentifierStats{Queued: i.queued.Load(), Dropped: i.dropped.Load(),
		Read: i.read.Load(), Failed: i.failed.Load(), TimedOut: i.timedOut.Load(), Opened: i.opened.Load()}
}

// procPath is root/PID/name.
func (i *Identifier) procPath(pid int, name string) string {
	return i.root + "/" + strconv.Itoa(pid) + "/" + name
}

// AuditDev formats a device number as audit PATH records print it
// ("dev=%02x:%02x", MAJOR and MINOR, kernel/audit.c audit_log_name).
func AuditDev(dev uint64) string {
	return fmt.Sprintf("%02x:%02x", unix.Major(dev), unix.Minor(dev))
}
