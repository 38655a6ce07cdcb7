package detect

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/encwatch/encwatch/audit"
)

// Processes looks up the ancestry of a process. internal/proc implements it
// from the execs the daemon has seen, with /proc as fallback.
type Processes interface {
	// Ancestry returns pid's process followed by its parent, grandparent
	// and so on, at most max entries; nil when pid is unknown.
	Ancestry(pid int, max int) []Process
}

// FileID is what reading an executed file found out about its content.
type FileID struct {
	// SHA256 is the lowercase hex SHA-256 of the file, "" when it was not
	// hashed (its size is that of no known encoder).
	SHA256 string
	// BuildID is the lowercase hex GNU build id, "" when it has none.
	BuildID string
	// Text is the lowercase hex SHA-256 of the file's executable code (its
	// executable PT_LOAD segments), "" when it was not hashed (their size
	// is that of no known encoder's). It survives a patched or stripped
	// build id, stripping and bytes appended.
	Text string
	// Unread says why the file could not be identified ("" when it was):
	// it was gone, or another file stood at its path, before it could be
	// read. Dev and Inode then name its PATH record.
	Unread string
	Dev    string
	Inode  uint64
}

// Lookup says how far Files got with an event's files.
type Lookup int

// The answers of Files.Identify.
const (
	// Known: every file of the event is identified; the ids are final.
	Known Lookup = iota
	// Pending: a file needs reading. The lookup is queued, and the event
	// Identify was given will be handed back to Engine.Reevaluate.
	Pending
	// Unknown: the files cannot be identified (no process to read them
	// through, or the lookup queue was full); nothing will follow.
	Unknown
)

// Files identifies the files an exec event ran, by content, for the
// renamed-encoder check: a copy of /usr/bin/base64 has a new inode but the
// same bytes or build id. internal/proc implements it.
type Files interface {
	// Identify returns the content ids of ev's executed files that have
	// any (ids is valid until the next call). It never blocks and does no
	// I/O when the files are known by device and inode; for an unknown
	// one it queues the read and answers Pending at once. sizes (sorted)
	// are the sizes of known encoders' files and of their executable
	// code: only a file, or executable code, of one of them is hashed.
	Identify(ev *audit.Event, sizes []int64) (ids []FileID, l Lookup)
}

// ancestryAppender is a Processes that can append an ancestry to a slice
// the engine reuses from one exec to the next, rather than allocate one
// for each (proc.Cache).
type ancestryAppender interface {
	// AppendAncestry appends to dst what Ancestry returns.
	AppendAncestry(dst []Process, pid int, max int) []Process
}

// Stats are the engine's counters since it started.
type Stats struct {
	// Alerts counts alerts raised, by signature.
	Alerts map[string]uint64
	// Suppressed counts alerts an allow block suppressed, by its reason.
	Suppressed map[string]uint64
	// Throttled counts alerts a throttle held back, by signature.
	Throttled map[string]uint64
}

// Engine evaluates audit events against the current Policy.
//
// Evaluate is called from one goroutine, the detection stage, and is not safe
// for concurrent use: the throttle and correlation state belong to that
// goroutine alone. Swap and Stats are safe to call from any goroutine at any
// time; SetProcesses and SetFiles are called before the first Evaluate.
type Engine struct {
	policy atomic.Pointer[Policy]
	host   string
	now    func() time.Time
	procs  Processes
	files  Files
	desc   Descriptors
	// uncapped turns the per-source safety cap off (Uncap).
	uncapped bool

	// Owned by the Evaluate goroutine.
	mark    []uint32 // mark[i] == gen: signature i is a candidate for this event
	gen     uint32
	thr     throttles
	pending map[seqKey]*seqState
	// held counts, per signature name, alerts throttled since the last one
	// that passed.
	held map[string]uint64
	// x is the Exec of the event being evaluated, reused: predicates are
	// called through func values, so one on the stack would escape and
	// cost an allocation per event.
	x Exec
	// line is Exec.commandLine's buffer.
	line []byte
	// anc is Exec.ancestry's buffer, when procs can append to one.
	anc []Process
	// hit is the hit of the event being evaluated for a sequence, reused
	// until it is stored (newSeqHit).
	hit seqHit
	// deferred are the events whose file identity was Pending, by the
	// event handed to Files, until Reevaluate.
	deferred map[*audit.Event]deferredEval
	// matched collects the signatures an evaluation found matching,
	// reused.
	matched []string
	// skip are the signatures Reevaluate leaves out: they matched before.
	skip     []string
	retrying bool

	alerts, suppressed, throttled sync.Map // string → *atomic.Uint64
}

// Bounds on the engine's state: the keys an attacker can make it remember
// (a parent pid per fork) must not grow without limit.
const (
	maxThrottleKeys = 16384
	maxPending      = 16384
	// maxDeferred bounds the events waiting for a file identity; Files
	// bounds its own queue well below it.
	maxDeferred = 4096
)

// NewEngine returns an Engine that evaluates against p. host names this
// machine in alerts; now stands in for the clock (time.Now in production).
// p must not be nil: an empty policy is Compile(PolicySpec{}).
func NewEngine(p *Policy, host string, now func() time.Time) *Engine {
	if p == nil {
		panic("detect: NewEngine with nil policy")
	}
	e := &Engine{
		host:     host,
		now:      now,
		thr:      newThrottles(),
		pending:  make(map[seqKey]*seqState),
		held:     make(map[string]uint64),
		deferred: make(map[*audit.Event]deferredEval),
	}
	e.policy.Store(p)
	return e
}

// SetProcesses sets where ancestry comes from; without it alerts carry none
// and parent conditions never hold.
func (e *Engine) SetProcesses(p Processes) { e.procs = p }

// SetFiles sets the content identifier for the renamed-encoder check;
// without it a renamed copy is recognised by device and inode only (a hard
// link or the file itself moved).
func (e *Engine) SetFiles(f Files) { e.files = f }

// Uncap turns off the per-source safety cap on new alerts, for a forensic
// replay: there no sink is flooded in real time, and every command not seen
// before must be an alert of its own. Identical repeats still coalesce.
// Call it before the first Evaluate.
func (e *Engine) Uncap() { e.uncapped = true }

// Swap makes p the policy for every later Evaluate. p must not be nil.
func (e *Engine) Swap(p *Policy) {
	if p == nil {
		panic("detect: Swap with nil policy")
	}
	e.policy.Store(p)
}

// Policy returns the policy in force.
func (e *Engine) Policy() *Policy { return e.policy.Load() }

// Stats returns a copy of the counters.
func (e *Engine) Stats() Stats {
	read := func(m *sync.Map) map[string]uint64 {
		out := make(map[string]uint64)
		m.Range(func(k, v any) bool {
			out[k.(string)] = v.(*atomic.Uint64).Load()
			return true
		})
		return out
	}
	return Stats{Alerts: read(&e.alerts), Suppressed: read(&e.suppressed), Throttled: read(&e.throttled)}
}

func count(m *sync.Map, key string) {
	v, ok := m.Load(key)
	if !ok {
		v, _ = m.LoadOrStore(key, new(atomic.Uint64))
	}
	v.(*atomic.Uint64).Add(1)
}

// Evaluate returns the alerts ev raises, or nil. Only exec events are
// evaluated, failed ones included (a decoded script without a shebang fails
// with ENOEXEC). ev is shared by every returned alert and must not be
// modified afterwards.
//
// The candidates are found by map lookups on the basenames of the executed
// file (ev.Exe), of argv[0] and of the file named in the call (PATH item 0):
// the exe is what the kernel ran; argv[0] is what the caller called it, which
// differs for a multi-call binary, a renamed copy or an exec through
// /proc/self/exe; the named file is a script run through its shebang. For a
// failed exec the kernel reports the caller's exe, so it is not used.
//
// The no-match path does not allocate.
func (e *Engine) Evaluate(ev *audit.Event) []Alert {
	if ev == nil || !ev.IsExec() {
		return nil
	}
	return e.evaluateView(ev, launcherView(ev))
}

// Reevaluate evaluates again an event whose file identity Files answered
// Pending, when Files hands it back (the pointer it was given): only the
// signatures that did not match the first time, so that nothing is raised
// twice. It returns nil for an event it was not waiting for.
func (e *Engine) Reevaluate(ev *audit.Event) []Alert {
	d, ok := e.deferred[ev]
	if !ok {
		return nil
	}
	delete(e.deferred, ev)
	e.skip, e.retrying = d.matched, true
	out := e.evaluateView(d.orig, d.view)
	e.skip, e.retrying = nil, false
	return out
}

// deferredEval is an evaluation waiting for a file identity.
type deferredEval struct {
	orig, view *audit.Event
	matched    []string
}

// deferEval remembers x's event for Reevaluate, with the signatures that
// matched it already. A second Pending on a retry is not waited for.
func (e *Engine) deferEval(x *Exec) {
	if e.retrying {
		return
	}
	if len(e.deferred) >= maxDeferred {
		clear(e.deferred)
	}
	d := deferredEval{orig: x.ev, matched: slices.Clone(e.matched)}
	if x.orig != nil {
		d.orig, d.view = x.orig, x.ev
	}
	e.deferred[x.ev] = d
}

// evaluateView evaluates ev, seen as view when a launcher runs another
// program in its process (nil otherwise).
func (e *Engine) evaluateView(ev, view *audit.Event) []Alert {
	p := e.policy.Load()
	x := &e.x
	*x = Exec{e: e, p: p, ev: ev}
	e.matched = e.matched[:0]
	if view != nil {
		x.ev, x.orig = view, ev
		ev = view
	}
	if ev.Success && ev.Exe != "" {
		x.exeBase = basename(ev.Exe)
	}
	if len(ev.Argv) > 0 && ev.Argv[0] != "" {
		x.argv0Base = basename(ev.Argv[0])
	}
	if len(ev.Paths) > 0 && ev.Paths[0].Name != "" {
		x.filePath = ev.Paths[0].Name
		if x.filePath[0] != '/' && ev.Cwd != "" {
			x.filePath = strings.TrimSuffix(ev.Cwd, "/") + "/" + x.filePath
		}
		x.fileBase = basename(x.filePath)
	}
	if len(e.mark) < len(p.sigs) {
		e.mark = make([]uint32, len(p.sigs))
	}
	e.gen++
	if e.gen == 0 { // wrapped: stale marks could equal it
		clear(e.mark)
		e.gen = 1
	}
	lo, hi := len(p.sigs), -1
	mark := func(list []*signature) {
		for _, s := range list {
			e.mark[s.index] = e.gen
			lo, hi = min(lo, s.index), max(hi, s.index)
		}
	}
	names := [...]string{x.exeBase, x.argv0Base, x.fileBase}
	for i, name := range names {
		// A name already looked up (argv[0] and the file are mostly the
		// executable's) marks nothing more.
		if name == "" || slices.Contains(names[:i], name) {
			continue
		}
		list, ok := p.byExe[name]
		if !ok {
			if v := unversioned(name); v != name {
				list = p.byExe[v]
			}
		}
		mark(list)
	}
	mark(p.scan)
	if len(p.byInode)+len(p.byHash)+len(p.byText) > 0 {
		// A known encoder under any name is a candidate for the signatures
		// that list its real name; a file that could not be read, for
		// those that ask for one.
		if id := x.identity(); id != nil {
			mark(p.byExe[id.Name])
			mark(p.renamed)
		} else if x.unread != nil {
			mark(p.unidentified)
		}
	}
	var out []Alert
	if hi >= 0 {
		out = e.evaluate(x, lo, hi)
	}
	if x.idPending {
		e.deferEval(x)
	}
	return out
}

func (e *Engine) evaluate(x *evalCtx, lo, hi int) []Alert {
	p, ev := x.p, x.ev
	reported := ev
	if x.orig != nil {
		reported = x.orig
	}
	t := ev.Time
	if t.IsZero() {
		t = e.now()
	}
	var out []Alert
	for i := lo; i <= hi; i++ {
		if e.mark[i] != e.gen {
			continue
		}
		s := p.sigs[i]
		if len(e.skip) > 0 && slices.Contains(e.skip, s.info.Name) {
			continue
		}
		x.seqImpSet = false
		ms, first, ok := e.match(x, s, t)
		if !ok {
			continue
		}
		x.imp = s.info.Importance
		if x.seqImpSet {
			x.imp = x.seqImp
		}
		e.matched = append(e.matched, s.info.Name)
		if a := e.allowed(x, s); a != nil {
			count(&e.suppressed, a.reason)
			continue
		}
		host := e.host
		if ev.Node != "" {
			// A forwarded or replayed record names the host it came from.
			host = ev.Node
		}
		if !e.admit(x, s, host, t) {
			continue
		}
		count(&e.alerts, s.info.Name)
		mode := x.alertMode()
		a := Alert{
			ID:          alertID(host, reported, s.info.Name),
			Time:        t,
			Host:        host,
			Environment: p.env,
			Signature:   s.info,
			Event:       reported,
			Ancestry:    x.keptAncestry(),
			Matches:     ms,
			Actions:     s.actionsFor(mode, p.env),
			Throttled:   e.held[s.info.Name],
			Mode:        mode,
		}
		a.Signature.Importance = x.imp
		delete(e.held, s.info.Name)
		if first != nil {
			a.Related = []Process{first.proc}
		}
		if pi := x.payload(); pi != nil {
			a.Payload = pi.best()
		}
		out = append(out, a)
	}
	if len(e.thr.due) > 0 {
		// Windows that this event's time closed report what they held,
		// before the event's own alerts.
		out = append(e.thr.due, out...)
		e.thr.due = nil
	}
	return out
}

// match reports whether s matches x's event, with the reasons, and for a
// sequence the step it completes.
func (e *Engine) match(x *evalCtx, s *signature, t time.Time) ([]Match, *seqHit, bool) {
	if s.seq != nil {
		return e.sequence(x, s, t)
	}
	if !s.all.holds(x) {
		return nil, nil, false
	}
	if len(s.any) == 0 {
		return s.all.explain(x, nil), nil, true
	}
	// The shared conditions' reasons are gathered once an alternative
	// holds: most execs that meet them (every "sh -c" for an interpreter
	// signature) meet no alternative.
	for _, c := range s.any {
		if c.holds(x) {
			return c.explain(x, s.all.explain(x, nil)), nil, true
		}
	}
	return nil, nil, false
}

// actionsFor returns the actions for an alert of the given process mode in
// env: the mode's own list for env, else its default, else the signature's
// list for env, else its default.
func (s *signature) actionsFor(mode, env string) []string {
	if byEnv, ok := s.modeActions[mode]; ok {
		if a, ok := byEnv[env]; ok {
			return a
		}
		if a, ok := byEnv["default"]; ok {
			return a
		}
	}
	if a, ok := s.actions[env]; ok {
		return a
	}
	return s.actions["default"]
}

// allowed returns the allow block that suppresses s for this event, if any.
func (e *Engine) allowed(x *evalCtx, s *signature) *allow {
	for _, a := range x.p.allows {
		if a.sigs != nil && !a.sigs[s.info.Name] {
			continue
		}
		if a.c.holds(x) {
			return a
		}
	}
	return nil
}

func throttleValue(x *evalCtx, per string) string {
	switch per {
	case "parent_pid":
		return strconv.Itoa(x.ev.PPID)
	case "parent_exe":
		if anc := x.ancestry(); len(anc) > 0 {
			return anc[0].Exe
		}
		return "ppid:" + strconv.Itoa(x.ev.PPID)
	case "ancestry":
		anc := x.ancestry()
		if len(anc) == 0 {
			return "ppid:" + strconv.Itoa(x.ev.PPID)
		}
		var b strings.Builder
		for _, p := range anc {
			b.WriteString(p.Exe)
			b.WriteByte(0)
		}
		return b.String()
	}
	return "" // host: one bucket
}

// Sequence correlation.

// seqKey is where a sequence's first step waits: per signature, host (the
// event's node; "" for this machine) and parent or session, so that two
// hosts' pids in one forwarded or replayed stream never pair up.
type seqKey struct {
	sig  string
	host string
	key  uint64
}

type seqHit struct {
	at   time.Time
	proc Process
	comm string
	// stdio is the process's standard streams, once read (pipes.go).
	stdio Stdio
	read  bool
	// src is where a consumer reads its program; prog is the descriptor
	// it names (sh /dev/fd/3), once read.
	src      ProgramSource
	prog     Stream
	progRead bool
	// capturedBy is the shell (parent or grandparent) that holds a
	// producer's output pipe to read it, 0 for none; captureRead says
	// whether every shell above it was read.
	capturedBy  int
	captureRead bool
	// slots counts the pending slots the hit was stored in, ever: one,
	// and the slot that holds it is its only holder.
	slots int
}

type seqState struct {
	steps [2]*seqHit
}

// sequence records this event as a step of s and reports whether it
// completes the sequence. The first step's process is returned for the
// alert.
func (e *Engine) sequence(x *evalCtx, s *signature, t time.Time) ([]Match, *seqHit, bool) {
	q := s.seq
	if q.by == "session" && x.ev.Session == audit.Unset {
		return nil, nil, false
	}
	var keys [4]uint64
	n := 0
	var cur *seqHit
	for step := range 2 {
		// Reasons are built only for a pair that completes: most steps
		// that hold ("sh -c" for an interpreter step) wait or pair with
		// nothing.
		if !q.steps[step].holds(x) {
			continue
		}
		if n == 0 {
			n = seqKeys(x, q.by, &keys)
		}
		consumer := q.pipe != nil && step != q.pipe.from
		var src ProgramSource
		if consumer {
			src, _ = x.source()
		}
		// Inline code pairs only with a decoder that ran before it: it is
		// looked up, never waited for (every "sh -c" on the host would be).
		waits := !(consumer && src.Kind == SourceInline)
		if waits && cur == nil {
			cur = e.newSeqHit(x, t)
			e.readHit(x, q, cur, step, src)
		}
		other := 1 - step
		for _, k := range keys[:n] {
			key := seqKey{sig: s.info.Name, host: x.ev.Node, key: k}
			st := e.pending[key]
			if st == nil {
				continue
			}
			h := st.steps[other]
			if h == nil || !within(h.at, t, q.within) || q.ordered && other != 0 || h.proc.PID == x.ev.PID ||
				k == uint64(h.proc.PID) && h.src.Kind == SourceInline {
				// (An interpreter running inline code is no pair with
				// what its own children run after it.)
				continue
			}
			if cur == nil {
				cur = e.newSeqHit(x, t)
				e.readHit(x, q, cur, step, src)
			}
			cons := h
			if consumer {
				cons = cur
			}
			if q.pipe != nil && cons.src.Kind == SourceInline && !e.inlinePaired(s, cur, h, step) {
				// Inline code run with a decoder's output: seen only live,
				// as a shell capturing that output.
				continue
			}
			delete(e.pending, key)
			ms := q.steps[step].explain(x, nil)
			ms = append(ms, Match{
				Field:  "sequence",
				Value:  strings.Join(h.proc.Argv, " "),
				Reason: q.names[other] + " (pid " + strconv.Itoa(h.proc.PID) + ") and " + q.names[step] + " ran under the same " + q.by + " within " + q.within.String(),
			})
			if imp, m := e.pipeEvidence(x, s, cur, h, step); m != nil {
				ms = append(ms, *m)
				x.seqImp, x.seqImpSet = imp, true
			}
			return ms, h, true
		}
		if !waits {
			continue
		}
		for _, k := range keys[:n] {
			key := seqKey{sig: s.info.Name, host: x.ev.Node, key: k}
			st := e.pending[key]
			if st == nil {
				if len(e.pending) >= maxPending {
					e.expirePending(t)
				}
				st = &seqState{}
				e.pending[key] = st
			}
			cur = e.keepSeqHit(cur, st.steps[step])
			cur.slots++
			st.steps[step] = cur
		}
	}
	return nil, nil, false
}

// seqKeys fills keys with where x's event waits for, and looks up, the other
// step of a sequence by by, and returns how many.
func seqKeys(x *evalCtx, by string, keys *[4]uint64) int {
	switch by {
	case "session":
		keys[0] = uint64(x.ev.Session)
		return 1
	case "lineage":
		// The process itself (a shell that execs its last command), its
		// parent, and the shell above any forked subshell between them: a
		// decoder in a command or process substitution, or a network tool
		// in a while loop, runs in a subshell (a fork of the shell, same
		// executable and argv); the interpreter is the shell's child or
		// the shell itself.
		keys[0], keys[1] = uint64(x.ev.PID), uint64(x.ev.PPID)
		n := 2
		anc := x.ancestry()
		for i := 0; i+1 < len(anc) && n < len(keys) && subshellOf(&anc[i], &anc[i+1]); i++ {
			keys[n] = uint64(anc[i+1].PID)
			n++
		}
		return n
	}
	keys[0] = uint64(x.ev.PPID)
	return 1
}

// readHit reads, for a step of q, what must be read while the process
// lives: a producer's standard streams (and the shell capturing its
// output), a consumer's program source and the descriptor it names.
func (e *Engine) readHit(x *evalCtx, q *sequence, h *seqHit, step int, src ProgramSource) {
	if q.pipe == nil {
		return
	}
	if step != q.pipe.from {
		h.src = src
	}
	if e.desc == nil {
		return
	}
	if step == q.pipe.from && !h.read {
		// The producer of a pipe (an encoder) is often gone within
		// milliseconds: its descriptors are read as soon as it is seen.
		// The consumer is read when the sequence completes.
		h.stdio, h.read = e.desc.Stdio(x.ev.PID, x.ev.Comm), true
		if q.pipe.capture {
			e.capture(x, h)
		}
	}
	if step != q.pipe.from && h.src.Kind == SourceFD && !h.progRead {
		// Read now too: sh /dev/fd/3 may be done before the decoder's
		// event completes the sequence.
		h.prog, h.progRead = e.desc.FD(x.ev.PID, x.ev.Comm, h.src.FD), true
	}
}

func within(a, b time.Time, d time.Duration) bool {
	diff := b.Sub(a)
	if diff < 0 {
		diff = -diff
	}
	return diff <= d
}

// expirePending drops correlation state older than every sequence's window;
// if that frees nothing, it drops it all.
func (e *Engine) expirePending(t time.Time) {
	var longest time.Duration
	for _, s := range e.policy.Load().sigs {
		if s.seq != nil && s.seq.within > longest {
			longest = s.seq.within
		}
	}
	for k, st := range e.pending {
		live := false
		for _, h := range st.steps {
			if h != nil && within(h.at, t, longest) {
				live = true
			}
		}
		if !live {
			delete(e.pending, k)
		}
	}
	if len(e.pending) >= maxPending {
		clear(e.pending)
	}
}

// alertID is a stable id for the alert signature raises on ev at host, so
// that a sink retrying a delivery, or a replay of the same log, produces the
// same id and the receiver can drop duplicates: the first 128 bits of
// SHA-256 over host, event time, serial and signature name.
func alertID(host string, ev *audit.Event, sig string) string {
	var stack [128]byte
	b := append(stack[:0], host...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(ev.Time.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, ev.Serial)
	b = append(b, sig...)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// basename is the last element of a slash-separated path, without
// allocating. Unlike path.Base it does not clean: "" stays "" and a path
// ending in "/" gives "", which no signature lists.
func basename(s string) string {
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// subshellOf reports whether a is a forked subshell of b: b's child, with
// b's executable and argv (it forked without an exec).
func subshellOf(a, b *Process) bool {
	return a.PPID == b.PID && a.Exe == b.Exe && a.Exe != "" && slices.Equal(a.Argv, b.Argv)
}

// newSeqHit returns the hit of x's event for a sequence: the engine's
// scratch hit, which keepSeqHit moves to the heap when it waits. A hit
// that completes a pair, or that does not wait (inline code), is dropped
// when the evaluation ends and costs no allocation.
func (e *Engine) newSeqHit(x *evalCtx, t time.Time) *seqHit {
	e.hit = seqHit{at: t, proc: Process{PID: x.ev.PID, PPID: x.ev.PPID, Exe: x.ev.Exe, Argv: x.ev.Argv, UID: x.ev.UID}, comm: x.ev.Comm}
	return &e.hit
}

// keepSeqHit returns h to be stored in a pending slot that holds old: h
// itself once it is on the heap, else a copy of the scratch hit, made in
// old when nothing else holds old. A hit stored in one slot only is held
// by that slot alone (the engine keeps no other pointer to it past an
// evaluation), so a new hit of the same step and key, a shell running one
// command after another, reuses it rather than allocating.
func (e *Engine) keepSeqHit(h, old *seqHit) *seqHit {
	if h != &e.hit {
		return h
	}
	kept := old
	if kept == nil || kept.slots != 1 {
		kept = new(seqHit)
	}
	*kept = *h
	return kept
}
