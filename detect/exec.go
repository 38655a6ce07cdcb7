package detect

import (
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/encwatch/encwatch/audit"
)

// cond is a compiled block of conditions.
type cond struct {
	// checks are the predicates, cheapest first; reasons are those that
	// explain themselves, in table order: the order of an alert's match
	// reasons.
	checks, reasons []check
	// exes and renamed are what the policy index files the block under.
	exes                  []string
	renamed, unidentified bool
}

// explain appends to ms why the event meets c, which holds said it does.
// Reasons are gathered only then, so a miss costs no Match. An Explain
// looks up nothing its predicate did not, so the reasons may be gathered
// after other blocks' predicates ran.
func (c *cond) explain(x *Exec, ms []Match) []Match {
	for i := range c.reasons {
		ms = c.reasons[i].Explain(x, ms)
	}
	return ms
}

// holds reports whether the event meets c, without the reasons.
func (c *cond) holds(x *Exec) bool {
	for i := range c.checks {
		if !c.checks[i].Holds(x) {
			return false
		}
	}
	return true
}

// evalCtx is the engine's name for Exec.
type evalCtx = Exec

// Exec is what the engine knows about one event while it checks conditions;
// costly facts (ancestry, payloads, the file's identity) are looked up once,
// on first use. Predicates receive it.
type Exec struct {
	e  *Engine
	p  *Policy
	ev *audit.Event
	// orig is the event as the kernel reported it when ev is a multi-call
	// binary's applet view of it (busybox base64 -d seen as base64 -d);
	// alerts carry orig.
	orig *audit.Event

	exeBase, argv0Base, fileBase string
	filePath                     string // the file named in the call, made absolute

	args     string
	argsDone bool

	anc     []Process
	ancDone bool
	// ancShared: anc is the engine's buffer, which the next evaluation
	// reuses (keptAncestry).
	ancShared bool

	pay     *payloadInfo
	payDone bool

	id     *EncoderIdentity
	idHow  string // "inode" or "sha256"
	idDone bool
	// idPending: Files is still reading the file; the engine waits for
	// it to hand the event back.
	idPending bool
	// src is where the interpreter reads its program (source.go);
	// srcOK is false when the exec is no interpreter the table knows.
	src            ProgramSource
	srcOK, srcDone bool

	// unread is the executed file, others than root could write, that
	// Files could not read; nil when there is none.
	unread *unreadFile

	// imp is the importance the signature being admitted is raised at:
	// its own, or lower when a sequence's pipe was shown not to be there.
	imp Importance
	// seqImp, when seqImpSet, is what the last completed sequence said.
	seqImp    Importance
	seqImpSet bool
}

// Event returns the exec's event: for a multi-call binary running an applet,
// the applet's view of it.
func (x *Exec) Event() *audit.Event { return x.ev }

// exeListed reports whether one of the event's names, or failing those the
// known encoder the file is, is in exes: exeMatch finds a reason for it.
func (x *Exec) exeListed(exes nameSet) bool {
	switch {
	case x.exeBase != "" && exes.listed(x.exeBase),
		x.argv0Base != "" && x.argv0Base != x.exeBase && exes.listed(x.argv0Base),
		x.fileBase != "" && x.fileBase != x.exeBase && x.fileBase != x.argv0Base && exes.listed(x.fileBase):
		return true
	}
	id := x.identity()
	return id != nil && exes.listed(id.Name)
}

// exeMatch appends to ms which of the event's names is in exes.
func (x *Exec) exeMatch(exes nameSet, ms []Match) []Match {
	n := len(ms)
	if x.exeBase != "" && exes.listed(x.exeBase) {
		ms = append(ms, Match{Field: "exe", Value: x.ev.Exe, Reason: "executable " + strconv.Quote(x.exeBase) + " is listed"})
	}
	if x.argv0Base != "" && x.argv0Base != x.exeBase && exes.listed(x.argv0Base) && x.orig != nil {
		ms = append(ms, Match{Field: "argv[1]", Value: x.ev.Argv[0], Reason: "applet " + strconv.Quote(x.argv0Base) +
			" is listed, run through the multi-call binary " + strconv.Quote(x.orig.Argv[0])})
	} else if x.argv0Base != "" && x.argv0Base != x.exeBase && exes.listed(x.argv0Base) {
		reason := "argv[0] " + strconv.Quote(x.argv0Base) + " is listed"
		switch {
		case !x.ev.Success:
			reason += " (exec failed)"
		case x.exeBase != "":
			reason += " but the kernel ran " + strconv.Quote(x.ev.Exe) + ": a multi-call binary, renamed copy or re-exec"
		}
		ms = append(ms, Match{Field: "argv[0]", Value: x.ev.Argv[0], Reason: reason})
	}
	if x.fileBase != "" && x.fileBase != x.exeBase && x.fileBase != x.argv0Base && exes.listed(x.fileBase) {
		ms = append(ms, Match{Field: "path", Value: x.filePath, Reason: "file " + strconv.Quote(x.fileBase) + " is listed"})
	}
	if len(ms) == n {
		if id := x.identity(); id != nil && exes.listed(id.Name) {
			ms = append(ms, Match{Field: "exe", Value: x.ev.Exe, Reason: "the file is the " + id.Name + " binary (same " + x.idHow + " as " + id.Path + ")"})
		}
	}
	return ms
}

// nameSet is a list of executable names a condition gives, as a set: a
// lookup costs one hash, where a scan of the list compared each name.
type nameSet map[string]struct{}

func newNameSet(list []string) nameSet {
	s := make(nameSet, len(list))
	for _, n := range list {
		s[n] = struct{}{}
	}
	return s
}

// listed reports whether name, or name without a version suffix
// ("python3.12" → "python"), is in s.
func (s nameSet) listed(name string) bool {
	if _, ok := s[name]; ok {
		return true
	}
	if v := unversioned(name); v != name {
		_, ok := s[v]
		return ok
	}
	return false
}

// unversioned strips a trailing version ("3", "3.12", "-3.12") from a name
// that has letters before it; "base64" is kept whole because tools named by
// their encoding are listed as such and looked up first.
func unversioned(name string) string {
	i := len(name)
	for i > 0 && (name[i-1] >= '0' && name[i-1] <= '9' || name[i-1] == '.') {
		i--
	}
	if i > 0 && name[i-1] == '-' && i < len(name) {
		i--
	}
	if i == 0 || i == len(name) {
		return name
	}
	return name[:i]
}

func ttyMatch(globs []string, tty string) bool {
	none := tty == "" || tty == "(none)"
	for _, g := range globs {
		if g == "none" {
			if none {
				return true
			}
			continue
		}
		if !none {
			if ok, _ := path.Match(g, tty); ok {
				return true
			}
		}
	}
	return false
}

// globList is a list of path.Match patterns, compiled with the policy: a
// path matches one by path.Match, or by lying under a "DIR/*" of them.
// What each pattern is is worked out once, not on every exec.
type globList []glob

type glob struct {
	pattern string
	// under is set for "DIR/*" without a character path.Match gives a
	// meaning to in DIR ("/tmp/*"): what lies under dir matches, which is
	// what path.Match and the rule of deep say, without path.Match's cost.
	under bool
	dir   string
	// deep: pattern is "DIR/*" with no *, ? or [ in DIR, which also covers
	// what lies deeper under DIR.
	deep bool
}

func compileGlobs(globs []string) globList {
	out := make(globList, len(globs))
	for i, g := range globs {
		out[i].pattern = g
		if dir, ok := strings.CutSuffix(g, "/*"); ok && !hasGlobMeta(dir) {
			out[i].under, out[i].dir = true, dir
		}
		out[i].deep = strings.HasSuffix(g, "/*") && !strings.ContainsAny(g[:len(g)-1], "*?[")
	}
	return out
}

// match reports whether s matches one of the patterns.
func (l globList) match(s string) bool {
	for i := range l {
		g := &l[i]
		if g.under {
			if strings.HasPrefix(s, g.dir) && len(s) > len(g.dir) && s[len(g.dir)] == '/' {
				return true
			}
			continue
		}
		if ok, _ := path.Match(g.pattern, s); ok {
			return true
		}
		if g.deep && strings.HasPrefix(s, g.pattern[:len(g.pattern)-1]) {
			return true
		}
	}
	return false
}

// hasGlobMeta reports whether s holds a character path.Match gives a
// meaning to (a byte loop: strings.ContainsAny builds its set each call).
func hasGlobMeta(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', '\\':
			return true
		}
	}
	return false
}

// pathMatch checks the executed paths against globs.
func (x *Exec) pathMatch(globs globList) (string, bool) {
	if x.ev.Success && x.ev.Exe != "" && globs.match(x.ev.Exe) {
		return x.ev.Exe, true
	}
	if x.filePath != "" && globs.match(x.filePath) {
		return x.filePath, true
	}
	return "", false
}

func (x *Exec) joinedArgs() string {
	if !x.argsDone {
		x.argsDone = true
		if len(x.ev.Argv) > 1 {
			x.args = strings.Join(x.ev.Argv[1:], " ")
		}
	}
	return x.args
}

// commandLine is argv joined by spaces, as strings.Join makes it, in a
// buffer of the engine's that the next call reuses: an ancestor's command
// line is matched for every candidate exec and kept only when it matches.
func (x *Exec) commandLine(argv []string) []byte {
	b := x.e.line[:0]
	for i, a := range argv {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, a...)
	}
	x.e.line = b
	return b
}

func (x *Exec) ancestry() []Process {
	if !x.ancDone {
		x.ancDone = true
		if x.e.procs != nil && x.ev.PPID > 0 {
			if a, ok := x.e.procs.(ancestryAppender); ok {
				x.e.anc = a.AppendAncestry(x.e.anc[:0], x.ev.PPID, x.p.depth)
				x.anc, x.ancShared = x.e.anc, true
			} else {
				x.anc = x.e.procs.Ancestry(x.ev.PPID, x.p.depth)
			}
		}
	}
	return x.anc
}

// keptAncestry is the ancestry for what outlives the evaluation (an alert,
// a throttle's summary): a copy when it is the engine's buffer.
func (x *Exec) keptAncestry() []Process {
	anc := x.ancestry()
	switch {
	case !x.ancShared:
		return anc
	case len(anc) == 0:
		return nil // as Ancestry answers when it knows none
	}
	return slices.Clone(anc)
}

func (x *Exec) payload() *payloadInfo {
	if !x.payDone {
		x.payDone = true
		x.pay = inspect(x.ev.Argv, x.exeBase, x.argv0Base)
	}
	return x.pay
}

// identity finds the executed file among the known encoders: by device and
// inode of a PATH record, else by content (build id, SHA-256) through the
// engine's Files, which answers without blocking.
func (x *Exec) identity() *EncoderIdentity {
	if x.idDone {
		return x.id
	}
	x.idDone = true
	if len(x.p.byInode) > 0 {
		for i := range x.ev.Paths {
			pa := &x.ev.Paths[i]
			if id, ok := x.p.byInode[inodeKey{pa.Dev, pa.Inode}]; ok {
				x.id, x.idHow = id, "device and inode"
				return id
			}
		}
	}
	x.id, x.idHow = x.contentIdentity()
	return x.id
}

// mode is what an encoder tool was asked to do; tool names it.
func (x *Exec) mode() (tool, mode, why string) {
	if id := x.identity(); id != nil {
		if m, w := toolMode(id.Name, x.ev.Argv); m != "" {
			return id.Name, m, w
		}
	}
	for _, name := range [...]string{x.exeBase, x.argv0Base, x.fileBase} {
		if name == "" {
			continue
		}
		if m, w := toolMode(name, x.ev.Argv); m != "" {
			return name, m, w
		}
	}
	return "", "", ""
}

// parent is the exec's parent, nil when unknown.
func (x *Exec) parent() *Process {
	if anc := x.ancestry(); len(anc) > 0 {
		return &anc[0]
	}
	return nil
}
