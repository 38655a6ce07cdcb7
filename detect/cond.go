package detect

import (
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/encwatch/encwatch/audit"
)

// cond is the compiled form of Conditions.
type cond struct {
	src      Conditions
	exes     []string
	exeRe    *regexp.Regexp
	argsRe   *regexp.Regexp
	parentRe *regexp.Regexp
	renamed  bool
}

// evalCtx is what the engine knows about one event while it checks
// conditions; costly facts (ancestry, payloads) are looked up once, on
// first use.
type evalCtx struct {
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

	pay     *payloadInfo
	payDone bool

	id     *EncoderIdentity
	idHow  string // "inode" or "sha256"
	idDone bool
}

// exeMatch says which of the event's names is listed, for the match reasons.
func (c *cond) exeMatch(x *evalCtx) []Match {
	if len(c.exes) == 0 {
		return nil
	}
	var out []Match
	if x.exeBase != "" && nameListed(c.exes, x.exeBase) {
		out = append(out, Match{Field: "exe", Value: x.ev.Exe, Reason: "executable " + strconv.Quote(x.exeBase) + " is listed"})
	}
	if x.argv0Base != "" && x.argv0Base != x.exeBase && nameListed(c.exes, x.argv0Base) && x.orig != nil {
		out = append(out, Match{Field: "argv[1]", Value: x.ev.Argv[0], Reason: "applet " + strconv.Quote(x.argv0Base) +
			" is listed, run through the multi-call binary " + strconv.Quote(x.orig.Argv[0])})
	} else if x.argv0Base != "" && x.argv0Base != x.exeBase && nameListed(c.exes, x.argv0Base) {
		reason := "argv[0] " + strconv.Quote(x.argv0Base) + " is listed"
		switch {
		case !x.ev.Success:
			reason += " (exec failed)"
		case x.exeBase != "":
			reason += " but the kernel ran " + strconv.Quote(x.ev.Exe) + ": a multi-call binary, renamed copy or re-exec"
		}
		out = append(out, Match{Field: "argv[0]", Value: x.ev.Argv[0], Reason: reason})
	}
	if x.fileBase != "" && x.fileBase != x.exeBase && x.fileBase != x.argv0Base && nameListed(c.exes, x.fileBase) {
		out = append(out, Match{Field: "path", Value: x.filePath, Reason: "file " + strconv.Quote(x.fileBase) + " is listed"})
	}
	if len(out) == 0 {
		if id := x.identity(); id != nil && nameListed(c.exes, id.Name) {
			out = append(out, Match{Field: "exe", Value: x.ev.Exe, Reason: "the file is the " + id.Name + " binary (same " + x.idHow + " as " + id.Path + ")"})
		}
	}
	return out
}

// nameListed reports whether name, or name without a version suffix
// ("python3.12" → "python"), is in list.
func nameListed(list []string, name string) bool {
	if slices.Contains(list, name) {
		return true
	}
	if v := unversioned(name); v != name {
		return slices.Contains(list, v)
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

// match reports whether the event meets c, appending why to ms.
func (c *cond) match(x *evalCtx, ms []Match) ([]Match, bool) {
	ev := x.ev
	s := &c.src
	if c.renamed {
		id := x.identity()
		if id == nil || x.exeBase == id.Name || !ev.Success {
			return ms, false
		}
		ms = append(ms, Match{Field: "exe", Value: ev.Exe,
			Reason: "renamed copy of the " + id.Name + " binary (same " + x.idHow + " as " + id.Path + ")"})
	}
	if len(c.exes) > 0 {
		em := c.exeMatch(x)
		if len(em) == 0 {
			return ms, false
		}
		ms = append(ms, em...)
	}
	if len(s.Paths) > 0 {
		p, ok := x.pathMatch(s.Paths)
		if !ok {
			return ms, false
		}
		ms = append(ms, Match{Field: "path", Value: p, Reason: "executed path matches " + strconv.Quote(strings.Join(s.Paths, " "))})
	}
	if c.exeRe != nil {
		switch {
		case ev.Success && c.exeRe.MatchString(ev.Exe):
			ms = append(ms, Match{Field: "exe", Value: ev.Exe, Reason: "executable matches /" + c.exeRe.String() + "/"})
		case x.filePath != "" && c.exeRe.MatchString(x.filePath):
			ms = append(ms, Match{Field: "path", Value: x.filePath, Reason: "executed path matches /" + c.exeRe.String() + "/"})
		default:
			return ms, false
		}
	}
	if s.Argv0Mismatch {
		if x.argv0Base == "" || x.exeBase == "" || x.argv0Base == x.exeBase || !ev.Success {
			return ms, false
		}
		ms = append(ms, Match{Field: "argv[0]", Value: ev.Argv[0], Reason: "argv[0] disagrees with the executable " + strconv.Quote(ev.Exe)})
	}
	nargs := len(ev.Argv) - 1
	if nargs < 0 {
		nargs = 0
	}
	if nargs < s.MinArgs || s.MaxArgs != nil && nargs > *s.MaxArgs {
		return ms, false
	}
	if len(s.AnyFlags) > 0 {
		f, ok := anyFlag(ev.Argv, s.AnyFlags)
		if !ok {
			return ms, false
		}
		ms = append(ms, Match{Field: "argv", Value: f, Reason: "flag " + f + " is listed"})
	}
	for _, f := range s.AllFlags {
		if !hasFlag(ev.Argv, f) {
			return ms, false
		}
	}
	if len(s.NoFlags) > 0 {
		if _, ok := anyFlag(ev.Argv, s.NoFlags); ok {
			return ms, false
		}
	}
	if c.argsRe != nil {
		a := x.joinedArgs()
		loc := c.argsRe.FindStringIndex(a)
		if loc == nil {
			return ms, false
		}
		ms = append(ms, Match{Field: "argv", Value: a[loc[0]:loc[1]], Reason: "arguments match /" + c.argsRe.String() + "/"})
	}
	if s.Mode != "" {
		tool, mode, why := x.mode()
		if mode != s.Mode {
			return ms, false
		}
		ms = append(ms, Match{Field: "mode", Value: mode, Reason: tool + " " + why})
	}
	if len(s.UIDs) > 0 && !slices.Contains(s.UIDs, ev.UID) {
		return ms, false
	}
	if len(s.AUIDs) > 0 && !slices.Contains(s.AUIDs, ev.AUID) {
		return ms, false
	}
	if s.Login != nil && *s.Login != (ev.AUID != audit.Unset) {
		return ms, false
	}
	if len(s.TTYs) > 0 && !ttyMatch(s.TTYs, ev.TTY) {
		return ms, false
	}
	if len(s.Cwd) > 0 && !globAny(s.Cwd, ev.Cwd) {
		return ms, false
	}
	if s.Success != nil && *s.Success != ev.Success {
		return ms, false
	}
	if len(s.ParentExecutables) > 0 || c.parentRe != nil {
		anc := x.ancestry()
		if len(anc) == 0 {
			return ms, false
		}
		par := &anc[0]
		if len(s.ParentExecutables) > 0 {
			if !nameListed(s.ParentExecutables, basename(par.Exe)) && (len(par.Argv) == 0 || !nameListed(s.ParentExecutables, basename(par.Argv[0]))) {
				return ms, false
			}
			ms = append(ms, Match{Field: "parent.exe", Value: par.Exe, Reason: "parent executable is listed"})
		}
		if c.parentRe != nil {
			cl := strings.Join(par.Argv, " ")
			if !c.parentRe.MatchString(cl) {
				return ms, false
			}
			ms = append(ms, Match{Field: "parent.argv", Value: cl, Reason: "parent command line matches /" + c.parentRe.String() + "/"})
		}
	}
	if len(s.AncestorExecutables) > 0 {
		anc := x.ancestry()
		depth := s.AncestorDepth
		if depth <= 0 || depth > len(anc) {
			depth = len(anc)
		}
		found := -1
		for i := range depth {
			if nameListed(s.AncestorExecutables, basename(anc[i].Exe)) {
				found = i
				break
			}
		}
		if found < 0 {
			return ms, false
		}
		ms = append(ms, Match{Field: "ancestor.exe", Value: anc[found].Exe, Reason: "ancestor " + strconv.Itoa(found+1) + " generation(s) up is listed"})
	}
	if len(s.DecodeCalls) > 0 {
		pi := x.payload()
		if pi == nil {
			return ms, false
		}
		call, ok := pi.call(s.DecodeCalls)
		if !ok {
			return ms, false
		}
		ms = append(ms, Match{Field: "argv", Value: call.text, Reason: "inline code calls a " + call.encoding + " decoder"})
	}
	if len(s.Payload) > 0 {
		pi := x.payload()
		if pi == nil {
			return ms, false
		}
		b, ok := pi.blob(s.Payload, s.PayloadEncodings)
		if !ok {
			return ms, false
		}
		ms = append(ms, Match{Field: "argv", Value: preview([]byte(b.raw), 64), Reason: b.encoding + " blob decodes to " + b.kind})
	}
	return ms, true
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

func globAny(globs []string, s string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, s); ok {
			return true
		}
		// "/tmp/*" also covers what lies deeper under /tmp.
		if strings.HasSuffix(g, "/*") && strings.HasPrefix(s, g[:len(g)-1]) && !strings.ContainsAny(g[:len(g)-1], "*?[") {
			return true
		}
	}
	return false
}

// pathMatch checks the executed paths against globs.
func (x *evalCtx) pathMatch(globs []string) (string, bool) {
	if x.ev.Success && x.ev.Exe != "" && globAny(globs, x.ev.Exe) {
		return x.ev.Exe, true
	}
	if x.filePath != "" && globAny(globs, x.filePath) {
		return x.filePath, true
	}
	return "", false
}

func (x *evalCtx) joinedArgs() string {
	if !x.argsDone {
		x.argsDone = true
		if len(x.ev.Argv) > 1 {
			x.args = strings.Join(x.ev.Argv[1:], " ")
		}
	}
	return x.args
}

func (x *evalCtx) ancestry() []Process {
	if !x.ancDone {
		x.ancDone = true
		if x.e.procs != nil && x.ev.PPID > 0 {
			x.anc = x.e.procs.Ancestry(x.ev.PPID, x.p.depth)
		}
	}
	return x.anc
}

func (x *evalCtx) payload() *payloadInfo {
	if !x.payDone {
		x.payDone = true
		x.pay = inspect(x.ev.Argv, x.exeBase, x.argv0Base)
	}
	return x.pay
}

// identity finds the executed file among the known encoders: by device and
// inode of a PATH record, else by content hash through the engine's Files.
func (x *evalCtx) identity() *EncoderIdentity {
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
	if id := x.buildIDIdentity(); id != nil {
		x.id, x.idHow = id, "build id"
		return id
	}
	if x.e.files != nil && len(x.p.byHash) > 0 && x.ev.Success && x.ev.Exe != "" {
		if sum, ok := x.e.files.Hash(x.ev.Exe, x.p.sizes); ok {
			if id, ok := x.p.byHash[sum]; ok {
				x.id, x.idHow = id, "SHA-256"
			}
		}
	}
	return x.id
}

// mode is what an encoder tool was asked to do; tool names it.
func (x *evalCtx) mode() (tool, mode, why string) {
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
