package sink

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

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
