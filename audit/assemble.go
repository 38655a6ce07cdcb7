package audit

import (
	"math"
	"math/bits"
	"time"
	"unsafe"
)

// Mode says how an Assembler decides that an event is complete.
type Mode uint8

const (
	// ModeLive is for records read from the kernel (netlink) or from an
	// audisp plugin: an event completes on its EOE record, or, when EOE never
	// comes, after Timeout (see Expire), once the stream is Horizon serials
	// past it, when the in-flight bound evicts it, or on Flush.
	ModeLive Mode = iota
	// ModeReplay is for auditd log files, which hold no EOE records: an event
	// completes on its closing PROCTITLE record (the last record the kernel
	// writes for a syscall event), on EOE if one is there, once the stream is
	// Horizon serials past it, when the in-flight bound evicts it, or on
	// Flush at the end of input. Never on a wall-clock timer: Expire does
	// nothing in this mode, so a replay gives the same events however fast
	// it is read.
	ModeReplay
)

// Defaults for AssemblerConfig fields left zero.
const (
	// DefaultMaxInFlight is the default AssemblerConfig.MaxInFlight.
	DefaultMaxInFlight = 4096
	// DefaultTimeout is the default AssemblerConfig.Timeout.
	DefaultTimeout = 2 * time.Second
	// DefaultHorizon is the default AssemblerConfig.Horizon: 64 serials.
	// The kernel writes all of an event's records at syscall exit
	// (audit_log_exit, kernel/auditsc.c), so only the records of events
	// running at that moment on other CPUs can come between them; 64 whole
	// events in between is far beyond what interleaving produces.
	DefaultHorizon = 64
	// DefaultMaxEventBytes is the default AssemblerConfig.MaxEventBytes.
	DefaultMaxEventBytes = 8 << 20
)

// maxNodes is how many node windows an Assembler keeps before it forgets
// those with no open event: far more hosts than one central auditd serves.
const maxNodes = 4096

// maxArgGap bounds how many missing arguments an EXECVE index may skip; the
// kernel never skips any, and a forged log must not make argv grow to an
// index it names.
const maxArgGap = 4096

// noSplit is splitArg when the last argument read was not split.
const noSplit = math.MaxUint64

// lossWindow is how many serials below the highest one seen may still arrive
// late without being counted as lost: records of events from several CPUs
// interleave, so serials are not strictly increasing.
const lossWindow = 64

// resyncDistance is a serial jump, forwards or backwards, that is taken as a
// restart of the serial sequence (a reboot between two concatenated log files,
// an audit subsystem reset) rather than as loss or reordering. The kernel's
// backlog (backlog_limit, at most a few hundred thousand records in practice)
// cannot lose this many events between two records we receive.
const resyncDistance = 1 << 20

// AssemblerConfig configures an Assembler. Zero fields take the defaults.
type AssemblerConfig struct {
	// Mode chooses live (EOE) or replay (auditd log) completion.
	Mode Mode
	// MaxInFlight bounds the events held open at once (default 4096); when
	// it is reached the oldest is emitted as Incomplete and counted Evicted.
	MaxInFlight int
	// Timeout is how long, in live mode, an event waits for its EOE before
	// Expire emits it as Incomplete (default 2s).
	Timeout time.Duration
	// Horizon is how many serials the stream may move past an open event
	// before it is emitted (default 64). Records of one event come together,
	// so an event this far behind will get nothing more.
	Horizon uint64
	// MaxEventBytes bounds the decoded bytes (argv, paths, strings) held for
	// one event (default 8 MiB); what does not fit is dropped and the event
	// marked Incomplete. The kernel logs every argument however long argv is.
	MaxEventBytes int
	// Other, if set, receives every record that is not part of a syscall
	// event's Event (any type but SYSCALL, EXECVE, CWD, PATH, PROCTITLE, EOE
	// and BPRM_FCAPS), parsed, as soon as it is pushed: CONFIG_CHANGE,
	// FEATURE_CHANGE, DAEMON_*, USER_*, AVC, ... This is how the daemon sees
	// audit tampering (rules removed, audit disabled, auditd stopped).
	// Records that fail to parse are counted Malformed and not passed on.
	Other func(*ParsedRecord)
}

// AssemblerStats are the Assembler's counters since it was made.
type AssemblerStats struct {
	Records    uint64 // records pushed
	Events     uint64 // events emitted
	Malformed  uint64 // records with an unreadable header or field
	Lost       uint64 // serials never seen (gaps), wrap-safe, late arrivals excused
	Evicted    uint64 // events emitted early because MaxInFlight was reached
	Incomplete uint64 // events emitted with Incomplete set
	Other      uint64 // records passed to AssemblerConfig.Other (or dropped if unset)
	Orphaned   uint64 // serials whose records never included a SYSCALL; dropped
}

// Assembler joins the records of each audit serial into one Event. It is
// owned by one goroutine: its methods must not be called concurrently.
//
// Events are emitted only for syscall events (those with a SYSCALL record);
// other records go to AssemblerConfig.Other and are not counted in
// Event.Records. Records of a serial that never had a SYSCALL record are
// dropped and counted Orphaned.
// An event's strings share one allocation that is never written again, so
// the emitted *Event belongs to the caller and stays valid. Argv holds every
// argument in order: aN, aN_len with aN[i] pieces, and several EXECVE records
// are joined, and empty arguments kept. A syscall event with no EXECVE record
// (a failed execve, e.g. ENOENT during a shell's PATH search) gets Argv from
// its PROCTITLE split on NUL bytes, and Argc stays 0: Argc == 0 with a
// non-empty Argv marks that fallback. Note that for a failed exec, the
// proctitle is the calling process's command line, not the attempted one;
// Paths[0].Name holds the attempted path.
//
// Events are keyed by node and serial: a log that aggregates several hosts
// (auditd's node= prefix) holds one serial sequence per host, so each node
// has its own window of open events, serial tracker and horizon. Records
// without a node share one window, which is all a live stream has.
type Assembler struct {
	cfg   AssemblerConfig
	local window // records without node=
	// nodes holds the windows of records with a node= prefix, by node.
	nodes map[string]*window
	// last is the window of the last record pushed: consecutive records
	// of one host find it without a map lookup.
	last     *window
	inflight int // open events over all windows, for MaxInFlight
	// prunedLost is the lost count of node windows pruned away.
	prunedLost uint64
	free       []*inflight
	stats      AssemblerStats
}

// window is one host's open events and serial sequence.
type window struct {
	node     string
	inflight map[uint64]*inflight
	oldest   *inflight // age order: oldest first, linked through next
	newest   *inflight
	serials  serialTracker
}

func newWindow(node string) *window {
	return &window{node: node, inflight: make(map[uint64]*inflight, 64)}
}

// span is a slice of an in-flight arena, kept as offsets because the arena
// may move as it grows.
type span struct{ off, n uint32 }

type pathSpans struct {
	item             int
	inode            uint64
	mode, ouid       uint32
	name, dev, ntype span
}

// inflight is an open event. It is recycled after its Event is emitted, so
// its slices reach a steady size and assembling allocates nothing.
type inflight struct {
	serial     uint64
	win        *window
	hdr        rawHeader
	first      time.Time // Push's now at the first record, for Timeout
	prev, next *inflight

	ev                                              Event // numeric fields, filled as records arrive
	arena                                           []byte
	node, tty, comm, exe, key, subj, cwd, proctitle span
	argv                                            []span
	paths                                           []pathSpans

	argc                              int
	hasSyscall, hasExecve, incomplete bool
	hasProctitle                      bool
	splitArg, splitNext               uint64
	records                           int
}

// NewAssembler returns an Assembler with cfg's zero fields set to defaults.
func NewAssembler(cfg AssemblerConfig) *Assembler {
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Horizon == 0 {
		cfg.Horizon = DefaultHorizon
	}
	if cfg.MaxEventBytes <= 0 {
		cfg.MaxEventBytes = DefaultMaxEventBytes
	}
	if cfg.MaxEventBytes > math.MaxUint32/2 {
		cfg.MaxEventBytes = math.MaxUint32 / 2
	}
	a := &Assembler{cfg: cfg, local: window{inflight: make(map[uint64]*inflight, 64)}}
	a.last = &a.local
	return a
}

// Stats returns the counters so far.
func (a *Assembler) Stats() AssemblerStats {
	s := a.stats
	s.Lost = a.local.serials.lost + a.prunedLost
	for _, w := range a.nodes {
		s.Lost += w.serials.lost
	}
	return s
}

// Push adds one record. now is the arrival time, used only for the live-mode
// Timeout. emit is called, before Push returns, for each event that the
// record completes (its own, or older ones it moved the stream past).
func (a *Assembler) Push(r Record, now time.Time, emit func(*Event)) {
	a.stats.Records++
	h, body, err := parseHeader(r.Data)
	if err != nil {
		a.stats.Malformed++
		return
	}
	w := a.window(h.node)
	if r.Type < RecFirstDaemon || r.Type > RecLastDaemon {
		// auditd numbers its own DAEMON_* records from a counter of its own.
		w.serials.observe(h.serial)
		a.completeBehind(w, emit)
	}

	switch r.Type {
	case RecSyscall, RecExecve, RecCwd, RecPath, RecProctitle, RecEOE, RecBprmFcaps:
	default:
		a.stats.Other++
		if a.cfg.Other != nil {
			p, err := ParseRecord(r)
			if err != nil {
				a.stats.Malformed++
				return
			}
			a.cfg.Other(&p)
		}
		return
	}

	f := w.inflight[h.serial]
	if f == nil {
		if r.Type == RecEOE {
			return // the end of an event already emitted (or never seen)
		}
		f = a.open(w, h, now, emit)
	}
	f.records++
	if !a.fold(f, r.Type, body) {
		a.stats.Malformed++
		f.incomplete = true
	}
	if r.Type == RecEOE || (a.cfg.Mode == ModeReplay && closesReplayed(f, r.Type)) {
		a.complete(f, false, emit)
	}
}

// closesReplayed reports whether a record of type typ, just folded into f,
// is the last of its event in a log: PROCTITLE after the SYSCALL, the
// kernel's order; or SYSCALL after the PROCTITLE, the order of a tool
// that lists an event's records last first (ausearch 3.0 does; LogReader
// puts its output back in order, but not every relay says where its events
// end). A PROCTITLE ahead of its SYSCALL closing the event would split it,
// leaving the SYSCALL's half without argv when there is no EXECVE.
func closesReplayed(f *inflight, typ uint16) bool {
	switch typ {
	case RecProctitle:
		return f.hasSyscall
	case RecSyscall:
		return f.hasProctitle
	}
	return false
}

// Expire emits, as Incomplete, every live-mode event that has waited longer
// than Timeout since its first record. It does nothing in replay mode.
func (a *Assembler) Expire(now time.Time, emit func(*Event)) {
	if a.cfg.Mode == ModeReplay {
		return
	}
	a.eachWindow(func(w *window) {
		for f := w.oldest; f != nil && now.Sub(f.first) >= a.cfg.Timeout; f = w.oldest {
			a.complete(f, true, emit)
		}
	})
}

// window returns the window of node, making it on first sight.
func (a *Assembler) window(node []byte) *window {
	if a.last.node == string(node) {
		return a.last
	}
	w := &a.local
	if len(node) > 0 {
		w = a.nodes[string(node)]
		if w == nil {
			if a.nodes == nil {
				a.nodes = make(map[string]*window)
			}
			if len(a.nodes) >= maxNodes {
				a.pruneNodes()
			}
			w = newWindow(string(node))
			a.nodes[w.node] = w
		}
	}
	a.last = w
	return w
}

// pruneNodes forgets the node windows holding no open event, keeping their
// lost counts, so that a log naming endless hosts cannot grow the map
// without bound.
func (a *Assembler) pruneNodes() {
	for node, w := range a.nodes {
		if w.oldest == nil {
			w.serials.settle()
			a.prunedLost += w.serials.lost
			delete(a.nodes, node)
		}
	}
}

// eachWindow calls fn for the local window, then every node's.
func (a *Assembler) eachWindow(fn func(*window)) {
	fn(&a.local)
	for _, w := range a.nodes {
		fn(w)
	}
}

// Flush emits every open event, oldest first, as at the end of input: they
// are Incomplete, having missed their closing record. Serials still missing
// below the highest one seen are counted as lost.
func (a *Assembler) Flush(emit func(*Event)) {
	a.eachWindow(func(w *window) {
		for w.oldest != nil {
			a.complete(w.oldest, true, emit)
		}
		w.serials.settle()
	})
}

// open starts an in-flight event in w, evicting the oldest at the bound:
// w's own oldest, or, if w holds none, the oldest of another window.
func (a *Assembler) open(w *window, h rawHeader, now time.Time, emit func(*Event)) *inflight {
	if a.inflight >= a.cfg.MaxInFlight {
		victim := w.oldest
		if victim == nil {
			a.eachWindow(func(o *window) {
				if victim == nil || (o.oldest != nil && o.oldest.first.Before(victim.first)) {
					victim = o.oldest
				}
			})
		}
		if victim != nil {
			a.stats.Evicted++
			a.complete(victim, true, emit)
		}
	}
	var f *inflight
	if n := len(a.free); n > 0 {
		f = a.free[n-1]
		a.free = a.free[:n-1]
	} else {
		f = new(inflight)
	}
	f.serial, f.win, f.hdr, f.first = h.serial, w, h, now
	f.hdr.node = nil
	f.node = f.add(h.node, a.cfg.MaxEventBytes)
	w.inflight[h.serial] = f
	a.inflight++
	f.prev = w.newest
	if w.newest != nil {
		w.newest.next = f
	} else {
		w.oldest = f
	}
	w.newest = f
	return f
}

// completeBehind emits the open events of w that its stream has moved
// Horizon past, and those left on the far side of a restart of the serial
// sequence.
func (a *Assembler) completeBehind(w *window, emit func(*Event)) {
	for f := w.oldest; f != nil; f = w.oldest {
		d, ahead := serialDistance(w.serials.max, f.serial)
		if !(ahead && d > a.cfg.Horizon) && d <= resyncDistance {
			// Events are opened in near-serial order: the first one not
			// behind ends the scan, and later ones are caught on later pushes.
			return
		}
		a.complete(f, true, emit)
	}
}

// complete emits f's Event (if it is a syscall event) and recycles f.
func (a *Assembler) complete(f *inflight, early bool, emit func(*Event)) {
	w := f.win
	delete(w.inflight, f.serial)
	a.inflight--
	if f.prev != nil {
		f.prev.next = f.next
	} else {
		w.oldest = f.next
	}
	if f.next != nil {
		f.next.prev = f.prev
	} else {
		w.newest = f.prev
	}
	if f.hasSyscall || (f.hasExecve && a.cfg.Mode == ModeReplay) {
		e := f.event(early)
		if !f.hasSyscall {
			execveOnly(e)
		}
		a.stats.Events++
		if e.Incomplete {
			a.stats.Incomplete++
		}
		emit(e)
	} else {
		a.stats.Orphaned++
	}
	f.reset()
	if len(a.free) < 64 {
		a.free = append(a.free, f)
	}
}

// execveOnly marks e, built from an EXECVE without its SYSCALL, as such:
// an execve whose process is unknown (see Event.NoSyscall).
func execveOnly(e *Event) {
	e.NoSyscall = true
	e.Syscall, e.Success = 59, true // x86_64 execve: Arch 0 reads as x86_64 (IsExec)
	e.PID, e.PPID = 0, 0
	for _, id := range []*uint32{&e.UID, &e.EUID, &e.SUID, &e.FSUID, &e.GID, &e.EGID, &e.SGID, &e.FSGID, &e.AUID, &e.Session} {
		*id = Unset
	}
}

// reset clears f for reuse, dropping buffers a huge event grew.
func (f *inflight) reset() {
	arena, argv, paths := f.arena[:0], f.argv[:0], f.paths[:0]
	if cap(arena) > 64<<10 {
		arena = nil
	}
	if cap(argv) > 4096 {
		argv = nil
	}
	if cap(paths) > 64 {
		paths = nil
	}
	*f = inflight{arena: arena, argv: argv, paths: paths}
}

// add copies b into the arena, within the per-event bound.
func (f *inflight) add(b []byte, limit int) span {
	if len(b) == 0 {
		return span{}
	}
	if len(f.arena)+len(b) > limit {
		f.incomplete = true
		return span{}
	}
	off := len(f.arena)
	f.arena = append(f.arena, b...)
	return span{uint32(off), uint32(len(b))}
}

// addValue copies the scanner's decoded value into the arena.
func (f *inflight) addValue(s *fieldScanner, limit int) span {
	n := len(s.val())
	if s.kind == KindHex {
		n /= 2
	}
	if n == 0 {
		return span{}
	}
	if len(f.arena)+n > limit {
		f.incomplete = true
		return span{}
	}
	off := len(f.arena)
	f.arena = s.appendValue(f.arena)
	return span{uint32(off), uint32(len(f.arena) - off)}
}

// fold reads one record's fields into f. It returns false if the record was
// malformed; the fields before the fault are kept.
func (a *Assembler) fold(f *inflight, typ uint16, body []byte) bool {
	s := fieldScanner{typ: typ, data: body}
	limit := a.cfg.MaxEventBytes
	ok := true
	switch typ {
	case RecSyscall:
		f.hasSyscall = true
		for s.next() {
			if s.enriched {
				continue
			}
			ok = f.syscallField(&s, limit) && ok
		}
	case RecExecve:
		f.hasExecve = true
		for s.next() {
			if !s.enriched {
				ok = f.execveField(&s, limit) && ok
			}
		}
	case RecCwd:
		for s.next() {
			if !s.enriched && string(s.key()) == "cwd" {
				f.cwd = f.addValue(&s, limit)
				break
			}
		}
	case RecPath:
		p := pathSpans{item: -1}
		for s.next() {
			if s.enriched {
				continue
			}
			switch string(s.key()) {
			case "item":
				v, good := parseUint(s.val(), 10)
				ok = good && v <= math.MaxInt32 && ok
				p.item = int(v)
			case "name":
				p.name = f.addValue(&s, limit)
			case "inode":
				v, good := parseUint(s.val(), 10)
				ok = (good || s.kind != KindBare) && ok
				p.inode = v
			case "dev":
				p.dev = f.addValue(&s, limit)
			case "mode":
				v, good := parseUint(s.val(), 8)
				ok = (good && v <= math.MaxUint32 || s.kind != KindBare) && ok
				p.mode = uint32(v)
			case "ouid":
				// Only what identity needs: an odd value is left 0, root,
				// rather than failing the record.
				if v, good := parseUint(s.val(), 10); good && v <= math.MaxUint32 {
					p.ouid = uint32(v)
				}
			case "nametype":
				p.ntype = f.addValue(&s, limit)
				// The capability fields that follow (cap_fp=...) carry
				// nothing the Event holds (audit_log_name, kernel/audit.c).
				s.data = nil
			}
		}
		f.paths = append(f.paths, p)
	case RecProctitle:
		f.hasProctitle = true
		for s.next() {
			if !s.enriched && string(s.key()) == "proctitle" {
				f.proctitle = f.addValue(&s, limit)
				break
			}
		}
	default:
		// EOE, BPRM_FCAPS: nothing the Event carries, so nothing is
		// read (a damaged one costs the event nothing either).
	}
	return ok && s.err == nil
}

func (f *inflight) syscallField(s *fieldScanner, limit int) bool {
	e := &f.ev
	switch string(s.key()) {
	case "arch":
		v, ok := parseUint(s.val(), 16)
		e.Arch = uint32(v)
		return ok && v <= math.MaxUint32
	case "syscall":
		v, ok := parseInt(s.val())
		e.Syscall = int(v)
		return ok && v >= math.MinInt32 && v <= math.MaxInt32
	case "success":
		e.Success = string(s.val()) == "yes"
	case "exit":
		v, ok := parseInt(s.val())
		e.Exit = v
		return ok
	case "pid":
		return setInt(&e.PID, s.val())
	case "ppid":
		return setInt(&e.PPID, s.val())
	case "uid":
		return setID(&e.UID, s)
	case "euid":
		return setID(&e.EUID, s)
	case "suid":
		return setID(&e.SUID, s)
	case "fsuid":
		return setID(&e.FSUID, s)
	case "gid":
		return setID(&e.GID, s)
	case "egid":
		return setID(&e.EGID, s)
	case "sgid":
		return setID(&e.SGID, s)
	case "fsgid":
		return setID(&e.FSGID, s)
	case "auid":
		return setID(&e.AUID, s)
	case "ses":
		return setID(&e.Session, s)
	case "tty":
		f.tty = f.addValue(s, limit)
	case "comm":
		f.comm = f.addValue(s, limit)
	case "exe":
		f.exe = f.addValue(s, limit)
	case "key":
		f.key = f.addValue(s, limit)
	case "subj":
		f.subj = f.addValue(s, limit)
	}
	return true
}

func setInt(dst *int, b []byte) bool {
	v, ok := parseInt(b)
	*dst = int(v)
	return ok && v >= math.MinInt32 && v <= math.MaxInt32
}

// setID parses a uid/gid/auid/ses; "unset" (written by some user-space
// records) and "?" mean Unset.
func setID(dst *uint32, s *fieldScanner) bool {
	if s.kind == KindUnset || string(s.val()) == "unset" {
		*dst = Unset
		return true
	}
	v, ok := parseUint(s.val(), 10)
	*dst = uint32(v)
	return ok && v <= math.MaxUint32
}

// execveField handles argc, aN, aN_len and aN[i]. The kernel writes the
// arguments in order, a long one as aN_len=L then aN[0], aN[1], ... pieces
// (audit_log_execve_info, kernel/auditsc.c), across as many EXECVE records
// as it takes.
func (f *inflight) execveField(s *fieldScanner, limit int) bool {
	if string(s.key()) == "argc" {
		v, ok := parseUint(s.val(), 10)
		if !ok || v > math.MaxInt32 {
			return false
		}
		f.argc = int(v)
		return true
	}
	n, piece, kind := execveArgKey(s.key())
	if kind == argNone || kind == argLen {
		return true
	}
	// Arguments beyond the bound are dropped rather than grown without end.
	if n > uint64(limit) || n > math.MaxInt32 {
		f.incomplete = true
		return true
	}
	idx := int(n)
	if idx > len(f.argv)+maxArgGap {
		f.incomplete = true // an implausible index: do not grow argv to it
		return false
	}
	for len(f.argv) < idx {
		f.argv = append(f.argv, span{}) // a missing argument: keep positions
		f.incomplete = true
	}
	if kind == argWhole || len(f.argv) == idx {
		if kind == argPiece {
			f.splitArg, f.splitNext = n, piece+1
			if piece != 0 {
				f.incomplete = true // the first pieces are missing
			}
		} else {
			f.splitArg = noSplit
		}
		sp := f.addValue(s, limit)
		if idx == len(f.argv) {
			f.argv = append(f.argv, sp)
		} else {
			f.argv[idx] = sp
		}
		return true
	}
	// A later piece of argument idx.
	if f.splitArg != n || piece != f.splitNext {
		f.incomplete = true
	}
	f.splitArg, f.splitNext = n, piece+1
	cur := f.argv[idx]
	if int(cur.off+cur.n) != len(f.arena) && cur.n > 0 {
		// Not at the end of the arena (pieces out of order): move it there.
		if len(f.arena)+int(cur.n) > limit {
			f.incomplete = true
			return true
		}
		off := len(f.arena)
		f.arena = append(f.arena, f.arena[cur.off:cur.off+cur.n]...)
		cur = span{uint32(off), cur.n}
	}
	sp := f.addValue(s, limit)
	if cur.n == 0 {
		cur = sp
	} else {
		cur.n += sp.n
	}
	f.argv[idx] = cur
	return true
}

// eventBlock is an Event made together with room for a typical exec's
// arguments and paths (most run with a few arguments, and the kernel
// names two paths, the program and its ELF interpreter), so that Argv and
// Paths need no allocation of their own when they fit.
type eventBlock struct {
	ev    Event
	argv  [4]string
	paths [2]Path
}

// event builds the Event. It allocates the Event, with room for a few
// arguments and paths, and one copy of the arena that all its strings
// point into: two allocations, and one more each for an Argv or Paths too
// long for the room.
func (f *inflight) event(early bool) *Event {
	blk := new(eventBlock)
	e := &blk.ev
	*e = f.ev
	var buf []byte
	if len(f.arena) > 0 {
		buf = make([]byte, len(f.arena))
		copy(buf, f.arena)
	}
	str := func(s span) string {
		if s.n == 0 {
			return ""
		}
		return unsafe.String(&buf[s.off], int(s.n))
	}
	e.Time = f.hdr.time()
	e.Serial = f.serial
	e.Node = str(f.node)
	e.TTY, e.Comm, e.Exe, e.Key, e.Subject = str(f.tty), str(f.comm), str(f.exe), str(f.key), str(f.subj)
	e.Cwd = str(f.cwd)
	e.Proctitle = str(f.proctitle)
	e.Argc = f.argc
	e.Records = f.records
	switch {
	case f.hasExecve:
		if n := len(f.argv); n <= len(blk.argv) {
			e.Argv = blk.argv[:n:n]
		} else {
			e.Argv = make([]string, n)
		}
		for i, s := range f.argv {
			e.Argv[i] = str(s)
		}
	case e.Proctitle != "":
		e.Argc = 0
		e.Argv = splitNUL(blk.argv[:0], e.Proctitle)
		e.ArgvFromProctitle = true
	}
	switch n := len(f.paths); {
	case n == 0:
	case n <= len(blk.paths):
		e.Paths = blk.paths[:n:n]
	default:
		e.Paths = make([]Path, n)
	}
	for i, p := range f.paths {
		e.Paths[i] = Path{Item: p.item, Name: str(p.name), Inode: p.inode, Dev: str(p.dev), Mode: p.mode, OUID: p.ouid, Nametype: str(p.ntype)}
	}
	e.Incomplete = early || f.incomplete || (f.hasExecve && len(e.Argv) < f.argc)
	return e
}

// splitNUL splits a proctitle into arguments, in dst's room if they fit;
// the kernel drops trailing NULs. The result has no room beyond them.
func splitNUL(dst []string, s string) []string {
	n := 1
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			n++
		}
	}
	var out []string
	if cap(dst) >= n {
		out = dst[:0:n]
	} else {
		out = make([]string, 0, n)
	}
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// serialDistance returns how far a is from b and whether a is ahead (a > b),
// modulo 2^32 when both fit in 32 bits (the kernel's serial is an unsigned
// int that wraps: audit_serial, kernel/audit.c), else modulo 2^64. It never
// underflows: the distance is the shorter way round.
func serialDistance(a, b uint64) (d uint64, ahead bool) {
	if a <= math.MaxUint32 && b <= math.MaxUint32 {
		d32 := uint32(a) - uint32(b)
		if d32 < 1<<31 {
			return uint64(d32), true
		}
		return uint64(uint32(b) - uint32(a)), false
	}
	d = a - b
	if d < 1<<63 {
		return d, true
	}
	return b - a, false
}

// serialTracker counts serials never seen. Bit i of seen says whether serial
// max-i has been seen; a serial that leaves the window unseen is lost.
type serialTracker struct {
	started bool
	max     uint64
	seen    uint64
	lost    uint64
}

func (t *serialTracker) observe(s uint64) {
	if !t.started {
		t.started, t.max, t.seen = true, s, ^uint64(0)
		return
	}
	d, ahead := serialDistance(s, t.max)
	switch {
	case d == 0:
		return
	case d > resyncDistance:
		t.max, t.seen = s, ^uint64(0) // the sequence restarted
		return
	case !ahead:
		if d < lossWindow {
			t.seen |= 1 << d
		}
		return
	}
	old := t.max
	if d >= lossWindow {
		t.lost += lossWindow - uint64(bits.OnesCount64(t.seen))
		t.lost += d - lossWindow
		t.seen = 1
	} else {
		t.lost += d - uint64(bits.OnesCount64(t.seen>>(lossWindow-d)))
		t.seen = t.seen<<d | 1
	}
	t.max = s
	// The kernel skips serial 0 when its counter wraps (audit_serial); do
	// not count the skipped number as lost.
	if s <= math.MaxUint32 && old <= math.MaxUint32 && uint32(s) < uint32(old) {
		if p := uint64(uint32(s)); p < lossWindow {
			t.seen |= 1 << p
		} else if p >= lossWindow && t.lost > 0 {
			t.lost--
		}
	}
}

// settle counts the serials still missing from the window as lost, at the end
// of input.
func (t *serialTracker) settle() {
	if t.started {
		t.lost += lossWindow - uint64(bits.OnesCount64(t.seen))
		t.seen = ^uint64(0)
	}
}
