package detect

import (
	"errors"
	"strings"
	"time"

	"github.com/encwatch/encwatch/audit"
)

// Simulation turns command lines into the exec events the kernel would
// report for them, without running anything: for policy tests, the check
// command and the golden corpus.

// Command is one command line to simulate.
type Command struct {
	Argv []string
	// Parent is the argv of the process that runs Argv; an interactive
	// "bash" when empty.
	Parent []string
	UID    uint32
	Cwd    string
}

// ProcessTable is a fixed set of processes; it implements Processes.
type ProcessTable map[int]Process

// Ancestry walks the table from pid up through parent pids.
func (t ProcessTable) Ancestry(pid int, max int) []Process {
	return WalkAncestry(pid, max, func(pid int) (Process, bool) {
		p, ok := t[pid]
		return p, ok
	})
}

// WalkAncestry returns pid's process and its ancestors, at most max of them,
// looking each up with lookup; it stops at an unknown pid or a process that
// is its own parent.
func WalkAncestry(pid, max int, lookup func(pid int) (Process, bool)) []Process {
	return AppendAncestry(nil, pid, max, lookup)
}

// AppendAncestry appends to dst what WalkAncestry returns, and returns the
// extended slice.
func AppendAncestry(dst []Process, pid, max int, lookup func(pid int) (Process, bool)) []Process {
	for n := 0; n < max && pid > 0; n++ {
		p, ok := lookup(pid)
		if !ok {
			break
		}
		dst = append(dst, p)
		if p.PPID == pid {
			break
		}
		pid = p.PPID
	}
	return dst
}

var _ Processes = ProcessTable(nil)

// Simulated pids: the parent, then the command, then its children.
const (
	simParentPID = 999
	simFirstPID  = 1000
)

// Simulate returns the events for c: its own exec and, when it is a shell
// running inline code ("sh -c 'echo X | base64 -d | sh'"), the execs of that
// code's simple commands as its children, in order, a millisecond apart
// (builtins such as echo and printf run no program and are left out). The
// table resolves every simulated process's ancestry.
func Simulate(c Command, start time.Time) ([]*audit.Event, ProcessTable) {
	s := &simulator{t: start, table: ProcessTable{}, nextPID: simFirstPID, uid: c.UID, cwd: c.Cwd}
	if s.cwd == "" {
		s.cwd = "/home/user"
	}
	parent := c.Parent
	if len(parent) == 0 {
		parent = []string{"bash"}
	}
	s.table[simParentPID] = Process{PID: simParentPID, PPID: 1, Exe: resolveExe(parent[0]), Argv: parent, UID: c.UID}
	s.table[1] = Process{PID: 1, PPID: 0, Exe: "/usr/lib/systemd/systemd", Argv: []string{"/sbin/init"}}
	s.exec(c.Argv, simParentPID, 0)
	return s.events, s.table
}

type simulator struct {
	t       time.Time
	table   ProcessTable
	events  []*audit.Event
	nextPID int
	uid     uint32
	cwd     string
}

func resolveExe(argv0 string) string {
	if strings.Contains(argv0, "/") {
		return argv0
	}
	return "/usr/bin/" + argv0
}

func (s *simulator) exec(argv []string, ppid, depth int) {
	if len(argv) == 0 {
		return
	}
	pid := s.nextPID
	s.nextPID++
	exe := resolveExe(argv[0])
	ev := &audit.Event{
		Time: s.t, Serial: uint64(len(s.events) + 1), Arch: audit.ArchX86_64, Syscall: 59, Success: true,
		PID: pid, PPID: ppid, UID: s.uid, EUID: s.uid, AUID: s.uid, Session: 1, TTY: "pts0",
		Comm: basename(exe), Exe: exe, Argc: len(argv), Argv: argv, Cwd: s.cwd,
		Paths: []audit.Path{{Item: 0, Name: exe, Nametype: "NORMAL"}},
		Key:   "encwatch",
	}
	if len(ev.Comm) > 15 { // TASK_COMM_LEN - 1
		ev.Comm = ev.Comm[:15]
	}
	s.events = append(s.events, ev)
	s.table[pid] = Process{PID: pid, PPID: ppid, Exe: exe, Argv: argv, UID: s.uid}
	s.t = s.t.Add(time.Millisecond)
	if depth >= 3 {
		return
	}
	name := unversioned(basename(exe))
	if !shellNames[name] {
		return
	}
	code, ok := InlineCode(name, argv)
	if !ok {
		return
	}
	for _, cmd := range ScriptCommands(code) {
		s.exec(cmd, pid, depth+1)
	}
}

// shellBuiltins run inside the shell: no exec.
var shellBuiltins = map[string]bool{
	"echo": true, "printf": true, "cd": true, "export": true, "eval": true, "source": true, ".": true,
	"set": true, "unset": true, "read": true, "true": true, "false": true, "test": true, "[": true, "[[": true,
	"local": true, "alias": true, "return": true, "exit": true, "shift": true, "trap": true, "wait": true,
	"umask": true, "ulimit": true, ":": true, "type": true, "let": true, "declare": true, "readonly": true,
	"if": true, "then": true, "else": true, "elif": true, "fi": true, "do": true, "done": true, "while": true,
	"until": true, "for": true, "case": true, "esac": true, "in": true, "function": true, "!": true, "{": true, "}": true,
	"pushd": true, "popd": true, "hash": true, "builtin": true, "getopts": true, "kill": true,
}

// shellPrefixes come before a command without being it: keywords that open
// a body, and wrappers that exec what follows.
var shellPrefixes = map[string]bool{
	"exec": true, "command": true, "nohup": true, "time": true, "do": true, "then": true, "else": true,
	"elif": true, "if": true, "while": true, "until": true, "!": true, "{": true,
}

// ScriptCommands returns the argv of each program a shell script would exec,
// in order: simple commands split at |, ;, &, && , || and newlines, command
// substitutions included, builtins, assignments and redirections left out,
// "exec CMD" and "command CMD" reduced to CMD. Quotes are removed; variables
// are left as written.
func ScriptCommands(code string) [][]string {
	toks := lex(code)
	var out [][]string
	var cur []string
	flush := func() {
		// Leading assignments (VAR=x cmd) do not name the program.
		for len(cur) > 0 && isAssignment(cur[0]) {
			cur = cur[1:]
		}
		for len(cur) > 0 && shellPrefixes[cur[0]] {
			cur = cur[1:]
		}
		if len(cur) > 0 && !shellBuiltins[cur[0]] {
			out = append(out, cur)
		}
		cur = nil
	}
	for i := 0; i < len(toks); i++ {
		tk := toks[i]
		switch {
		case tk.sub != nil:
			out = append(out, ScriptCommands(*tk.sub)...)
			if tk.word != "" {
				cur = append(cur, tk.word)
			}
		case tk.op == "<" || tk.op == ">" || tk.op == ">>" || tk.op == "<<<" || tk.op == "<<" || tk.op == ">&" || tk.op == "<&" || tk.op == "&>":
			i++ // the target
		case tk.op != "":
			flush()
		default:
			cur = append(cur, tk.word)
		}
	}
	flush()
	return out
}

func isAssignment(w string) bool {
	i := strings.IndexByte(w, '=')
	if i <= 0 {
		return false
	}
	for _, c := range w[:i] {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

type token struct {
	word string
	op   string
	sub  *string // the code of a $( ... ) or ` ... ` in this word
}

// lex splits shell code into words and operators, removing quotes. It is
// forgiving: unterminated quotes end at the end of the code. It is one
// function over 80 lines on purpose: the lexer's states share the word being
// built, and one switch over the next byte reads better than its pieces.
func lex(code string) []token {
	var toks []token
	var w strings.Builder
	inWord := false
	var sub *string
	emit := func() {
		if inWord || sub != nil {
			toks = append(toks, token{word: w.String(), sub: sub})
		}
		w.Reset()
		inWord, sub = false, nil
	}
	for i := 0; i < len(code); i++ {
		c := code[i]
		switch {
		case c == '\\' && i+1 < len(code):
			i++
			if code[i] != '\n' {
				w.WriteByte(code[i])
				inWord = true
			}
		case c == '\'':
			j := strings.IndexByte(code[i+1:], '\'')
			if j < 0 {
				j = len(code) - i - 1
			}
			w.WriteString(code[i+1 : i+1+j])
			inWord = true
			i += j + 1
		case c == '"':
			i++
			for i < len(code) && code[i] != '"' {
				if code[i] == '\\' && i+1 < len(code) && strings.IndexByte("\"\\$`", code[i+1]) >= 0 {
					i++
				} else if code[i] == '$' && i+1 < len(code) && code[i+1] == '(' {
					end := matchParen(code, i+1)
					s := code[i+2 : end]
					sub = &s
					i = end
					if i < len(code) {
						i++
					}
					continue
				}
				w.WriteByte(code[i])
				i++
			}
			inWord = true
		case (c == '<' || c == '>') && i+1 < len(code) && code[i+1] == '(':
			// Process substitution: the command runs beside, and the word
			// is the descriptor bash names it by.
			end := matchParen(code, i+1)
			s := code[i+2 : end]
			sub = &s
			w.WriteString("/dev/fd/63")
			inWord = true
			i = end
		case c == '$' && i+1 < len(code) && code[i+1] == '(':
			end := matchParen(code, i+1)
			s := code[i+2 : end]
			sub = &s
			i = end
		case c == '`':
			j := strings.IndexByte(code[i+1:], '`')
			if j < 0 {
				j = len(code) - i - 1
			}
			s := code[i+1 : i+1+j]
			sub = &s
			i += j + 1
		case c == ' ' || c == '\t':
			emit()
		case c == '#' && !inWord:
			for i < len(code) && code[i] != '\n' {
				i++
			}
			i--
		case strings.IndexByte("|&;<>()\n", c) >= 0:
			// A digit before a redirection is a file descriptor ("2>").
			if (c == '<' || c == '>') && inWord && w.Len() == 1 && w.String()[0] >= '0' && w.String()[0] <= '9' {
				w.Reset()
				inWord = false
			}
			emit()
			op := string(c)
			for _, two := range []string{"&&", "||", ">>", "<<<", "<<", ">&", "<&", "&>", ";;"} {
				if strings.HasPrefix(code[i:], two) {
					op = two
					break
				}
			}
			i += len(op) - 1
			toks = append(toks, token{op: op})
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	emit()
	return toks
}

// matchParen returns the index of the ")" closing the "(" at open, or
// len(code).
func matchParen(code string, open int) int {
	depth := 0
	for i := open; i < len(code); i++ {
		switch code[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i
			}
		case '\'':
			if j := strings.IndexByte(code[i+1:], '\''); j >= 0 {
				i += j + 1
			}
		}
	}
	return len(code)
}

// SplitCommand splits a command line written as a shell would read it into
// argv. A line holding shell operators (a pipeline, a list, a redirection) is
// returned as ["sh", "-c", line], which is how a shell runs it.
func SplitCommand(line string) ([]string, error) {
	if strings.TrimSpace(line) == "" {
		return nil, errors.New("empty command line")
	}
	var argv []string
	for _, tk := range lex(line) {
		if tk.op != "" || tk.sub != nil {
			return []string{"sh", "-c", line}, nil
		}
		argv = append(argv, tk.word)
	}
	if len(argv) == 0 {
		return nil, errors.New("empty command line")
	}
	return argv, nil
}

// DryRun evaluates the simulated events of c against p with a fresh engine,
// at time t on host, and returns every alert they raise: what the daemon
// would report had c run.
func DryRun(p *Policy, c Command, host string, t time.Time) []Alert {
	evs, table := Simulate(c, t)
	e := NewEngine(p, host, func() time.Time { return t })
	e.SetProcesses(table)
	var out []Alert
	for _, ev := range evs {
		out = append(out, e.Evaluate(ev)...)
	}
	return out
}
