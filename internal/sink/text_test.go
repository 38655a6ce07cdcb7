package sink

import (
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/encwatch/encwatch/detect"
)

// TestShellQuotePastesBack quotes hostile argvs and has bash read them
// back: the same bytes, and no control byte in the quoted text.
func TestShellQuotePastesBack(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("bash is needed to check that a quoted command pastes back: %v", err)
	}
	argvs := [][]string{
		{"base64", "-d"},
		{"sh", "-c", "echo 'x' | base64 -d | sh"},
		{"printf", "", "a b", "$HOME", "`id`", "\\", "!", "*", "~"},
		{"x", "tab\there", "new\nline", "\x1b[31mred", "bell\a", "\xff\xfe", "naïve", "quote'\\"},
	}
	for _, argv := range argvs {
		q := shellQuote(argv)
		if strings.ContainsFunc(q, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Errorf("shellQuote(%q) = %q holds a control byte", argv, q)
		}
		cmd := exec.Command(bash, "-c", `f() { for a in "$@"; do printf '%s\0' "$a"; done; }; f `+q)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("bash -c f %s: %v", q, err)
		}
		got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
		if !slices.Equal(got, argv) {
			t.Errorf("bash read shellQuote(%q) = %q back as %q", argv, q, got)
		}
	}
}

// TestTextFormatColour colours only when asked (stdout a terminal).
func TestTextFormatColour(t *testing.T) {
	a := detect.Alert{Time: time.Unix(1, 0), Host: "h\x1b]0;pwn\a", Signature: detect.SignatureInfo{Name: "s", Importance: detect.Critical}}
	plain := string(textFormat(false)(nil, &a))
	colour := string(textFormat(true)(nil, &a))
	if strings.Contains(plain, "\x1b") || strings.Contains(plain, "\a") {
		t.Errorf("plain text = %q, want no escape (the host's is quoted)", plain)
	}
	if !strings.Contains(colour, "\x1b[1;37;41mCRITICAL") || strings.Contains(colour, "\x1b]") {
		t.Errorf("coloured text = %q, want CRITICAL coloured and the host's escape quoted", colour)
	}
}

// textArgv checks a text block as a person's terminal would take it: valid
// UTF-8, no control byte but the newlines that end its lines, a header line
// and indented lines after it, so that no byte of the event starts a line
// of its own; and returns argv as bash reads the command line back.
func textArgv(t *testing.T, out []byte) []string {
	t.Helper()
	if !utf8.Valid(out) {
		t.Fatalf("text output is not valid UTF-8: %q", out)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	var argv []string
	for i, l := range lines {
		if strings.ContainsFunc(l, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("text line %d has a control byte: %q", i, l)
		}
		if i == 0 {
			if _, err := time.Parse("2006-01-02 15:04:05.000 UTC", l[:min(len(l), 27)]); err != nil {
				t.Fatalf("text header %q does not start with the time", l)
			}
			continue
		}
		if !strings.HasPrefix(l, "  ") {
			t.Fatalf("text line %d is not indented: %q", i, l)
		}
		if cmd, ok := strings.CutPrefix(l, "  command  "); ok {
			var err error
			if argv, err = unshell(strings.TrimSuffix(cmd, "  (from proctitle)")); err != nil {
				t.Fatalf("text command %q: %v", cmd, err)
			}
		}
	}
	return argv
}

// unshell splits a command line as shellQuote writes it: bare words,
// '...' (with '\” for a quote) and $'...' (with \\, \' and \xHH).
func unshell(s string) ([]string, error) {
	var argv []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == ' ':
			if inWord {
				argv = append(argv, w.String())
				w.Reset()
				inWord = false
			}
			i++
		case strings.HasPrefix(s[i:], "$'"):
			inWord = true
			i += 2
			for ; i < len(s) && s[i] != '\''; i++ {
				if s[i] != '\\' {
					w.WriteByte(s[i])
					continue
				}
				switch {
				case i+1 < len(s) && (s[i+1] == '\\' || s[i+1] == '\''):
					w.WriteByte(s[i+1])
					i++
				case i+3 < len(s) && s[i+1] == 'x':
					v, err := strconv.ParseUint(s[i+2:i+4], 16, 8)
					if err != nil {
						return nil, err
					}
					w.WriteByte(byte(v))
					i += 3
				default:
					return nil, fmt.Errorf("bad escape at %d", i)
				}
			}
			if i == len(s) {
				return nil, fmt.Errorf("unterminated $'")
			}
			i++
		case c == '\'':
			inWord = true
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated '")
			}
			w.WriteString(s[i+1 : i+1+j])
			i += j + 2
		case c == '\\':
			inWord = true
			if i+1 == len(s) {
				return nil, fmt.Errorf("trailing backslash")
			}
			w.WriteByte(s[i+1])
			i += 2
		default:
			inWord = true
			w.WriteByte(c)
			i++
		}
	}
	if inWord {
		argv = append(argv, w.String())
	}
	return argv, nil
}
