package sink

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/detect"
)

// ANSI SGR sequences of the text format's colours (ECMA-48, 8.3.117).
const (
	sgrReset = "\x1b[0m"
	sgrBold  = "\x1b[1m"
	sgrDim   = "\x1b[2m"
)

// importanceColour is the colour of each importance's label.
var importanceColour = [...]string{
	detect.Info: "\x1b[37m", detect.Low: "\x1b[36m", detect.Medium: "\x1b[33m",
	detect.High: "\x1b[1;31m", detect.Critical: "\x1b[1;37;41m",
}

// textFormat returns the text format, for people reading a replay at 3 a.m.: one
// block per alert with the time, host, user, signature, the command line
// quoted so that it pastes back into a shell, the ancestry as an indented
// tree, and the decoded payload's preview. Every string from the event is
// escaped, so no byte of it reaches the terminal as a control sequence;
// colour is used only when colour is set (stdout is a terminal).
func textFormat(colour bool) Format {
	return func(dst []byte, a *detect.Alert) []byte {
		t := textWriter{dst: dst, colour: colour}
		t.alert(a)
		return t.dst
	}
}

type textWriter struct {
	dst    []byte
	colour bool
}

func (t *textWriter) sgr(code string) {
	if t.colour {
		t.dst = append(t.dst, code...)
	}
}

// field writes an indented "name  value" line.
func (t *textWriter) field(name, value string) {
	t.dst = append(t.dst, "  "...)
	t.sgr(sgrDim)
	t.dst = append(t.dst, name...)
	t.sgr(sgrReset)
	for i := len(name); i < 9; i++ {
		t.dst = append(t.dst, ' ')
	}
	t.dst = append(t.dst, value...)
	t.dst = append(t.dst, '\n')
}

func (t *textWriter) alert(a *detect.Alert) {
	s := &a.Signature
	t.sgr(sgrBold)
	t.dst = a.Time.UTC().AppendFormat(t.dst, "2006-01-02 15:04:05.000 UTC")
	t.sgr(sgrReset)
	t.dst = append(t.dst, "  "...)
	t.dst = append(t.dst, Printable(a.Host)...)
	t.dst = append(t.dst, "  "...)
	if int(s.Importance) >= 0 && int(s.Importance) < len(importanceColour) {
		t.sgr(importanceColour[s.Importance])
	}
	t.dst = append(t.dst, strings.ToUpper(s.Importance.String())...)
	t.sgr(sgrReset)
	t.dst = append(t.dst, "  "...)
	t.sgr(sgrBold)
	t.dst = append(t.dst, Printable(s.Name)...)
	t.sgr(sgrReset)
	if len(s.MITRE) > 0 {
		t.dst = append(t.dst, " ["...)
		t.dst = append(t.dst, Printable(strings.Join(s.MITRE, ", "))...)
		t.dst = append(t.dst, ']')
	}
	t.dst = append(t.dst, '\n')
	if s.Description != "" {
		t.field("what", Printable(s.Description))
	}
	if e := a.Event; e != nil {
		t.field("user", userText(a, e))
		cmd := shellQuote(e.Argv)
		if e.ArgvFromProctitle {
			// No EXECVE record: the kernel's proctitle, possibly cut short.
			cmd += "  (from proctitle)"
		}
		t.field("command", cmd)
		if e.Exe != "" {
			t.field("exe", Printable(e.Exe))
		}
		if e.Cwd != "" {
			t.field("cwd", Printable(e.Cwd))
		}
		t.field("process", "pid "+strconv.Itoa(e.PID)+", ppid "+strconv.Itoa(e.PPID)+", audit serial "+strconv.FormatUint(e.Serial, 10))
	}
	t.ancestry(a.Ancestry, a.Event)
	if p := a.Payload; p != nil {
		t.field("decoded", Printable(p.Encoding)+", "+strconv.Itoa(p.Length)+" bytes, "+Printable(p.Kind)+": \""+Printable(p.Preview)+"\"")
	}
	for _, m := range a.Matches {
		t.field("matched", Printable(m.Field)+" "+strconv.Quote(m.Value)+": "+Printable(m.Reason))
	}
	// The sink ends the block with a newline: a blank line between blocks.
}

// userText names the user: the names the daemon found, else the ids.
func userText(a *detect.Alert, e *audit.Event) string {
	var b strings.Builder
	if a.User != "" {
		b.WriteString(Printable(a.User) + " ")
	}
	b.WriteString("uid " + idText(e.UID))
	if e.EUID != e.UID {
		b.WriteString(", euid " + idText(e.EUID))
	}
	b.WriteString(", login uid " + idText(e.AUID))
	if a.LoginUser != "" {
		b.WriteString(" (" + Printable(a.LoginUser) + ")")
	}
	if e.TTY != "" && e.TTY != "(none)" {
		b.WriteString(", tty " + Printable(e.TTY))
	}
	return b.String()
}

func idText(id uint32) string {
	if id == audit.Unset {
		return "unset"
	}
	return strconv.FormatUint(uint64(id), 10)
}

// ancestry writes the chain (parent first) as a tree: the oldest ancestor
// first, each child indented under its parent, and the alerted process last.
func (t *textWriter) ancestry(chain []detect.Process, e *audit.Event) {
	if len(chain) == 0 || e == nil {
		return
	}
	for depth := 0; depth <= len(chain); depth++ {
		cmd, pid := "", e.PID
		if depth < len(chain) {
			p := chain[len(chain)-1-depth]
			cmd, pid = shellQuote(p.Argv), p.PID
			if cmd == "" {
				cmd = Printable(p.Exe)
			}
		} else {
			cmd = shellQuote(e.Argv)
		}
		line := ""
		if depth > 0 {
			line = strings.Repeat("   ", depth-1) + "└─ "
		}
		name := ""
		if depth == 0 {
			name = "ancestry"
		}
		t.field(name, line+cmd+"  (pid "+strconv.Itoa(pid)+")")
	}
}

// shellQuote writes argv so that pasting it into a POSIX shell (bash, zsh)
// runs the same argv: a word of safe bytes as is, else in single quotes,
// else (control bytes, invalid UTF-8) in bash's $'...' with \xHH escapes.
// The result holds no control byte.
func shellQuote(argv []string) string {
	var b strings.Builder
	for i, arg := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		switch {
		case arg == "":
			b.WriteString("''")
		case isShellSafe(arg):
			b.WriteString(arg)
		case isPrintable(arg):
			b.WriteString("'" + strings.ReplaceAll(arg, "'", `'\''`) + "'")
		default:
			b.WriteString(ansiQuote(arg))
		}
	}
	return b.String()
}

// isShellSafe reports whether s needs no quoting in a shell.
func isShellSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_@%+=:,./-", c) >= 0) {
			return false
		}
	}
	return true
}

// isPrintable reports whether s is valid UTF-8 without control or format
// runes (those a terminal might act on, or that hide text).
func isPrintable(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) && r != ' ' {
			return false
		}
	}
	return true
}

// ansiQuote quotes s as bash's $'...': printable runes as they are, \\ and
// \' escaped, everything else as \xHH bytes.
func ansiQuote(s string) string {
	var b strings.Builder
	b.WriteString("$'")
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\\' || r == '\'':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r != utf8.RuneError && (unicode.IsPrint(r) || r == ' '):
			b.WriteString(s[i : i+n])
		default:
			for j := i; j < i+n; j++ {
				b.WriteString(`\x`)
				b.WriteString(strconv.FormatUint(uint64(s[j])>>4, 16))
				b.WriteString(strconv.FormatUint(uint64(s[j])&15, 16))
			}
		}
		i += n
	}
	b.WriteByte('\'')
	return b.String()
}

// Printable returns s as it is when it is printable, else Go-quoted, so
// that no byte of it acts on the terminal: for text a person reads, as the
// text format and the replay summary are.
func Printable(s string) string {
	if isPrintable(s) {
		return s
	}
	return strconv.Quote(s)
}
