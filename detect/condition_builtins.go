package detect

import (
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/encwatch/encwatch/audit"
)

// Payload kinds, decode-call encodings and modes the conditions accept.
var (
	PayloadKinds  = []string{"shebang", "elf", "shell", "blob", "text", "binary"}
	Encodings     = []string{"base64", "base32", "hex"}
	DecodeCallEnc = []string{"base64", "base32", "hex", "base85", "uu", "qp", "rot13", "compressed", "any"}
	Modes         = []string{"decode", "encode"}
)

// The conditions the policy index reads beside their predicates.
const (
	attrExecutables      = "executables"
	attrRenamedEncoder   = "renamed_encoder"
	attrUnidentifiedExec = "unidentified_exec"
)

// builtin is the table of conditions; docs/policy.md documents each. Its
// order is the order of an alert's match reasons. Never written after init:
// Builtin hands out copies.
var builtin = Table{
	{Attr: attrRenamedEncoder, Type: Bool, Cost: CostIdentity, Compile: renamedEncoder},
	{Attr: attrUnidentifiedExec, Type: Bool, Cost: CostIdentity, Compile: unidentifiedExec},
	{Attr: attrExecutables, Noun: "executable", Type: Strings, Check: FileName, NonEmpty: true, Cost: CostScan, Compile: executables},
	{Attr: "paths", Type: Strings, Check: Glob, Cost: CostScan, Compile: paths},
	{Attr: "exe_regex", Type: String, Check: Regex, Cost: CostRegex, Compile: exeRegex},
	{Attr: "argv0_mismatch", Type: Bool, Cost: CostCompare, Compile: argv0Mismatch},
	{Attr: "min_args", Type: Int, Max: math.MaxInt32, Cost: CostCompare, Compile: minArgs},
	{Attr: "max_args", Type: Int, Max: math.MaxInt32, Cost: CostCompare, Compile: maxArgs},
	{Attr: "any_flags", Type: Strings, Cost: CostScan, Compile: anyFlags},
	{Attr: "all_flags", Type: Strings, Cost: CostScan, Compile: allFlags},
	{Attr: "no_flags", Type: Strings, Cost: CostScan, Compile: noFlags},
	{Attr: "args_regex", Type: String, Check: Regex, Cost: CostRegex, Compile: argsRegex},
	{Attr: "mode", Noun: "mode", Type: String, Check: OneOf, Allowed: Modes, Cost: CostIdentity, Compile: mode},
	{Attr: "program_from", Noun: "program source", Type: Strings, Check: OneOf, Allowed: SourceNames[1:], Cost: CostScan, Compile: programFrom},
	{Attr: "uid", Type: Uint32s, Cost: CostCompare, Compile: ids(func(ev *audit.Event) uint32 { return ev.UID })},
	{Attr: "auid", Type: Uint32s, Cost: CostCompare, Compile: ids(func(ev *audit.Event) uint32 { return ev.AUID })},
	{Attr: "login", Type: Bool, Cost: CostCompare, Compile: login},
	{Attr: "tty", Type: Strings, Check: Glob, Cost: CostScan, Compile: tty},
	{Attr: "cwd", Type: Strings, Check: Glob, Cost: CostScan, Compile: cwd},
	{Attr: "success", Type: Bool, Cost: CostCompare, Compile: success},
	{Attr: "parent_executables", Type: Strings, Cost: CostAncestry, Compile: parentExecutables},
	{Attr: "parent_regex", Type: String, Check: Regex, Cost: CostAncestry, Compile: parentRegex},
	{Attr: "ancestor_executables", Type: Strings, Cost: CostAncestry, Compile: ancestorExecutables},
	{Attr: "ancestor_regex", Type: String, Check: Regex, Cost: CostAncestry, Compile: ancestorRegex},
	{Attr: "ancestor_depth", Type: Int, Min: 1, Max: 64, Needs: "ancestor_executables"},
	{Attr: "decode_calls", Noun: "decode call", Type: Strings, Check: OneOf, Allowed: DecodeCallEnc, Cost: CostPayload, Compile: decodeCallsCond},
	{Attr: "payload", Noun: "payload kind", Type: Strings, Check: OneOf, Allowed: PayloadKinds, Cost: CostPayload, Compile: payload},
	{Attr: "payload_encodings", Noun: "payload encoding", Type: Strings, Check: OneOf, Allowed: Encodings, Needs: "payload"},
}

// The Compile functions of the table, in its order. Each receives a value
// that Table.check has vetted, so its type assertion cannot fail.

func renamedEncoder(v any, _ Conditions) (*Predicate, error) {
	if !v.(bool) {
		return nil, nil
	}
	return &Predicate{
		Holds: func(x *Exec) bool {
			id := x.identity()
			return id != nil && x.exeBase != id.Name && x.ev.Success
		},
		Explain: func(x *Exec, ms []Match) []Match {
			id := x.identity()
			return append(ms, Match{Field: "exe", Value: x.ev.Exe,
				Reason: "renamed copy of the " + id.Name + " binary (same " + x.idHow + " as " + id.Path + ")"})
		},
	}, nil
}

func unidentifiedExec(v any, _ Conditions) (*Predicate, error) {
	if !v.(bool) {
		return nil, nil
	}
	return &Predicate{
		Holds: func(x *Exec) bool {
			return x.identity() == nil && x.unread != nil && x.ev.Success
		},
		Explain: func(x *Exec, ms []Match) []Match {
			u := x.unread
			owner := "uid " + strconv.FormatUint(uint64(u.path.OUID), 10)
			if u.path.OUID == 0 {
				owner = "root, writable by others (mode " + strconv.FormatUint(uint64(u.path.Mode&0o7777), 8) + ")"
			}
			name := u.path.Name
			if !strings.HasPrefix(name, "/") && x.ev.Cwd != "" {
				name = strings.TrimSuffix(x.ev.Cwd, "/") + "/" + name
			}
			return append(ms, Match{Field: "path", Value: name,
				Reason: "executed file owned by " + owner + " could not be identified: " + u.why + "; renamed encoders hide this way"})
		},
	}, nil
}

func executables(v any, _ Conditions) (*Predicate, error) {
	if len(v.([]string)) == 0 {
		return nil, nil
	}
	exes := newNameSet(v.([]string))
	return &Predicate{
		Holds:   func(x *Exec) bool { return x.exeListed(exes) },
		Explain: func(x *Exec, ms []Match) []Match { return x.exeMatch(exes, ms) },
	}, nil
}

func paths(v any, _ Conditions) (*Predicate, error) {
	if len(v.([]string)) == 0 {
		return nil, nil
	}
	globs := compileGlobs(v.([]string))
	reason := "executed path matches " + strconv.Quote(strings.Join(v.([]string), " "))
	return &Predicate{
		Holds: func(x *Exec) bool { _, ok := x.pathMatch(globs); return ok },
		Explain: func(x *Exec, ms []Match) []Match {
			p, _ := x.pathMatch(globs)
			return append(ms, Match{Field: "path", Value: p, Reason: reason})
		},
	}, nil
}

func exeRegex(v any, _ Conditions) (*Predicate, error) {
	re, err := compileRegex(v)
	if re == nil {
		return nil, err
	}
	return &Predicate{
		Holds: func(x *Exec) bool {
			return x.ev.Success && re.MatchString(x.ev.Exe) || x.filePath != "" && re.MatchString(x.filePath)
		},
		Explain: func(x *Exec, ms []Match) []Match {
			if x.ev.Success && re.MatchString(x.ev.Exe) {
				return append(ms, Match{Field: "exe", Value: x.ev.Exe, Reason: "executable matches /" + re.String() + "/"})
			}
			return append(ms, Match{Field: "path", Value: x.filePath, Reason: "executed path matches /" + re.String() + "/"})
		},
	}, nil
}

func argv0Mismatch(v any, _ Conditions) (*Predicate, error) {
	if !v.(bool) {
		return nil, nil
	}
	return &Predicate{
		Holds: func(x *Exec) bool {
			return x.argv0Base != "" && x.exeBase != "" && x.argv0Base != x.exeBase && x.ev.Success
		},
		Explain: func(x *Exec, ms []Match) []Match {
			return append(ms, Match{Field: "argv[0]", Value: x.ev.Argv[0], Reason: "argv[0] disagrees with the executable " + strconv.Quote(x.ev.Exe)})
		},
	}, nil
}

// nargs is the number of arguments after argv[0].
func nargs(ev *audit.Event) int { return max(len(ev.Argv)-1, 0) }

func minArgs(v any, _ Conditions) (*Predicate, error) {
	n := v.(int)
	if n <= 0 {
		return nil, nil
	}
	return &Predicate{Holds: func(x *Exec) bool { return nargs(x.ev) >= n }}, nil
}

func maxArgs(v any, c Conditions) (*Predicate, error) {
	n := v.(int)
	if lo, ok := c["min_args"].(int); ok && n < lo {
		return nil, errors.New("is less than min_args")
	}
	return &Predicate{Holds: func(x *Exec) bool { return nargs(x.ev) <= n }}, nil
}

func anyFlags(v any, _ Conditions) (*Predicate, error) {
	flags := slices.Clone(v.([]string))
	if len(flags) == 0 {
		return nil, nil
	}
	return &Predicate{
		Holds: func(x *Exec) bool { _, ok := anyFlag(x.ev.Argv, flags); return ok },
		Explain: func(x *Exec, ms []Match) []Match {
			f, _ := anyFlag(x.ev.Argv, flags)
			return append(ms, Match{Field: "argv", Value: f, Reason: "flag " + f + " is listed"})
		},
	}, nil
}

func allFlags(v any, _ Conditions) (*Predicate, error) {
	flags := slices.Clone(v.([]string))
	if len(flags) == 0 {
		return nil, nil
	}
	return &Predicate{Holds: func(x *Exec) bool {
		for _, f := range flags {
			if !hasFlag(x.ev.Argv, f) {
				return false
			}
		}
		return true
	}}, nil
}

func noFlags(v any, _ Conditions) (*Predicate, error) {
	flags := slices.Clone(v.([]string))
	if len(flags) == 0 {
		return nil, nil
	}
	return &Predicate{Holds: func(x *Exec) bool { _, ok := anyFlag(x.ev.Argv, flags); return !ok }}, nil
}

func argsRegex(v any, _ Conditions) (*Predicate, error) {
	re, err := compileRegex(v)
	if re == nil {
		return nil, err
	}
	return &Predicate{
		Holds: func(x *Exec) bool { return re.MatchString(x.joinedArgs()) },
		Explain: func(x *Exec, ms []Match) []Match {
			a := x.joinedArgs()
			loc := re.FindStringIndex(a)
			return append(ms, Match{Field: "argv", Value: a[loc[0]:loc[1]], Reason: "arguments match /" + re.String() + "/"})
		},
	}, nil
}

func mode(v any, _ Conditions) (*Predicate, error) {
	want := v.(string)
	if want == "" {
		return nil, nil
	}
	return &Predicate{
		Holds: func(x *Exec) bool { _, m, _ := x.mode(); return m == want },
		Explain: func(x *Exec, ms []Match) []Match {
			tool, m, why := x.mode()
			return append(ms, Match{Field: "mode", Value: m, Reason: tool + " " + why})
		},
	}, nil
}

func programFrom(v any, _ Conditions) (*Predicate, error) {
	kinds := slices.Clone(v.([]string))
	if len(kinds) == 0 {
		return nil, nil
	}
	return &Predicate{
		Holds: func(x *Exec) bool {
			s, ok := x.source()
			return ok && slices.Contains(kinds, s.Kind.String())
		},
		Explain: func(x *Exec, ms []Match) []Match {
			s, _ := x.source()
			why := "the interpreter reads its program from " + sourceWords(s)
			return append(ms, Match{Field: "program", Value: s.Kind.String(), Reason: why})
		},
	}, nil
}

// sourceWords says where s is, for a match reason.
func sourceWords(s ProgramSource) string {
	arg := ""
	if s.Arg != "" {
		arg = " (" + strconv.QuoteToASCII(s.Arg) + ")"
	}
	switch s.Kind {
	case SourceStdin:
		return "its standard input" + arg
	case SourceFD:
		return "descriptor " + strconv.Itoa(s.FD) + arg
	case SourceInline:
		return "its command line" + arg
	case SourceScript:
		return "the file " + strconv.QuoteToASCII(s.Arg)
	case SourceModule:
		return "the module " + strconv.QuoteToASCII(s.Arg)
	}
	return "nowhere"
}

// ids compiles a list of user ids compared with the field field returns.
func ids(field func(*audit.Event) uint32) func(any, Conditions) (*Predicate, error) {
	return func(v any, _ Conditions) (*Predicate, error) {
		list := slices.Clone(v.([]uint32))
		if len(list) == 0 {
			return nil, nil
		}
		return &Predicate{Holds: func(x *Exec) bool { return slices.Contains(list, field(x.Event())) }}, nil
	}
}

func login(v any, _ Conditions) (*Predicate, error) {
	want := v.(bool)
	return &Predicate{Holds: func(x *Exec) bool { return want == (x.Event().AUID != audit.Unset) }}, nil
}

func tty(v any, _ Conditions) (*Predicate, error) {
	globs := slices.Clone(v.([]string))
	if len(globs) == 0 {
		return nil, nil
	}
	return &Predicate{Holds: func(x *Exec) bool { return ttyMatch(globs, x.Event().TTY) }}, nil
}

func cwd(v any, _ Conditions) (*Predicate, error) {
	if len(v.([]string)) == 0 {
		return nil, nil
	}
	globs := compileGlobs(v.([]string))
	return &Predicate{Holds: func(x *Exec) bool { return globs.match(x.Event().Cwd) }}, nil
}

func success(v any, _ Conditions) (*Predicate, error) {
	want := v.(bool)
	return &Predicate{Holds: func(x *Exec) bool { return want == x.Event().Success }}, nil
}

func parentExecutables(v any, _ Conditions) (*Predicate, error) {
	if len(v.([]string)) == 0 {
		return nil, nil
	}
	listed := newNameSet(v.([]string)).listed
	return &Predicate{
		Holds: func(x *Exec) bool {
			par := x.parent()
			return par != nil && (listed(basename(par.Exe)) || len(par.Argv) > 0 && listed(basename(par.Argv[0])))
		},
		Explain: func(x *Exec, ms []Match) []Match {
			return append(ms, Match{Field: "parent.exe", Value: x.parent().Exe, Reason: "parent executable is listed"})
		},
	}, nil
}

func parentRegex(v any, _ Conditions) (*Predicate, error) {
	re, err := compileRegex(v)
	if re == nil {
		return nil, err
	}
	return &Predicate{
		Holds: func(x *Exec) bool {
			par := x.parent()
			return par != nil && re.MatchString(strings.Join(par.Argv, " "))
		},
		Explain: func(x *Exec, ms []Match) []Match {
			cl := strings.Join(x.parent().Argv, " ")
			return append(ms, Match{Field: "parent.argv", Value: cl, Reason: "parent command line matches /" + re.String() + "/"})
		},
	}, nil
}

func ancestorExecutables(v any, c Conditions) (*Predicate, error) {
	if len(v.([]string)) == 0 {
		return nil, nil
	}
	listed := newNameSet(v.([]string)).listed
	depth, _ := c["ancestor_depth"].(int)
	found := func(x *Exec) (int, string) {
		return x.findAncestor(depth, func(p *Process) string {
			if n := basename(p.Exe); listed(n) {
				return n
			}
			// A server that sets its process title ("php-fpm: pool www",
			// "postgres: app db [local] idle", "nginx: worker process")
			// names itself in argv[0]'s first word.
			if n := titleName(p.Argv); n != "" && listed(n) {
				return n
			}
			return ""
		})
	}
	return &Predicate{
		Holds: func(x *Exec) bool { i, _ := found(x); return i >= 0 },
		Explain: func(x *Exec, ms []Match) []Match {
			i, name := found(x)
			a := x.ancestry()[i]
			return append(ms, Match{Field: "ancestor.exe", Value: a.Exe,
				Reason: "ancestor " + strconv.Quote(name) + " (pid " + strconv.Itoa(a.PID) + ", " + strconv.Itoa(i+1) + " generation(s) up) is listed"})
		},
	}, nil
}

func ancestorRegex(v any, c Conditions) (*Predicate, error) {
	re, err := compileRegex(v)
	if re == nil {
		return nil, err
	}
	depth, _ := c["ancestor_depth"].(int)
	found := func(x *Exec) (int, string) {
		return x.findAncestor(depth, func(p *Process) string {
			if cl := x.commandLine(p.Argv); re.Match(cl) {
				return string(cl)
			}
			return ""
		})
	}
	return &Predicate{
		Holds: func(x *Exec) bool { i, _ := found(x); return i >= 0 },
		Explain: func(x *Exec, ms []Match) []Match {
			i, cl := found(x)
			a := x.ancestry()[i]
			return append(ms, Match{Field: "ancestor.argv", Value: cl,
				Reason: "ancestor " + strconv.Quote(basename(a.Exe)) + " (pid " + strconv.Itoa(a.PID) + ", " + strconv.Itoa(i+1) + " generation(s) up) has a command line matching /" + re.String() + "/"})
		},
	}, nil
}

// findAncestor returns the nearest ancestor, up to depth generations (all
// known when 0), for which name says something, and what it said; -1 for
// none.
func (x *Exec) findAncestor(depth int, name func(*Process) string) (int, string) {
	anc := x.ancestry()
	d := depth
	if d <= 0 || d > len(anc) {
		d = len(anc)
	}
	for i := range d {
		if n := name(&anc[i]); n != "" {
			return i, n
		}
	}
	return -1, ""
}

// titleName is the program a process title names: argv[0]'s first word,
// without a trailing ':' or a directory ("php-fpm: pool www" → "php-fpm").
func titleName(argv []string) string {
	if len(argv) == 0 {
		return ""
	}
	w, _, _ := strings.Cut(argv[0], " ")
	return basename(strings.TrimSuffix(w, ":"))
}

func decodeCallsCond(v any, _ Conditions) (*Predicate, error) {
	encs := slices.Clone(v.([]string))
	if len(encs) == 0 {
		return nil, nil
	}
	return &Predicate{
		Holds: func(x *Exec) bool {
			pi := x.payload()
			if pi == nil {
				return false
			}
			_, ok := pi.call(encs)
			return ok
		},
		Explain: func(x *Exec, ms []Match) []Match {
			call, _ := x.payload().call(encs)
			return append(ms, Match{Field: "argv", Value: call.text, Reason: "inline code calls a " + call.encoding + " decoder"})
		},
	}, nil
}

func payload(v any, c Conditions) (*Predicate, error) {
	kinds := slices.Clone(v.([]string))
	if len(kinds) == 0 {
		return nil, nil
	}
	encs, _ := c["payload_encodings"].([]string)
	encs = slices.Clone(encs)
	return &Predicate{
		Holds: func(x *Exec) bool {
			pi := x.payload()
			if pi == nil {
				return false
			}
			_, ok := pi.blob(kinds, encs)
			return ok
		},
		Explain: func(x *Exec, ms []Match) []Match {
			b, _ := x.payload().blob(kinds, encs)
			return append(ms, Match{Field: "argv", Value: preview([]byte(b.raw), 64), Reason: b.encoding + " blob decodes to " + b.kind})
		},
	}, nil
}

// compileRegex compiles a regular expression value; nil for "".
func compileRegex(v any) (*regex, error) {
	if v.(string) == "" {
		return nil, nil
	}
	return newRegex(v.(string))
}
