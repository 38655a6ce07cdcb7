package detect

import (
	"strings"
	"testing"
)

func TestProgramSource(t *testing.T) {
	tests := []struct {
		cmd  string // argv, split on spaces
		want SourceKind
		fd   int
	}{
		// POSIX shells, busybox sh.
		{"sh", SourceStdin, 0},
		{"sh -", SourceStdin, 0},
		{"sh -s arg", SourceStdin, 0},
		{"sh -x -s", SourceStdin, 0},
		{"sh -c id", SourceInline, 0},
		{"sh -ec id", SourceInline, 0},
		{"sh -o errexit -c id", SourceInline, 0},
		{"/bin/sh /usr/bin/gunzip -c", SourceScript, 0},
		{"sh /dev/stdin", SourceStdin, 0},
		{"sh /dev/fd/0", SourceStdin, 0},
		{"sh /dev/fd/3", SourceFD, 3},
		{"sh /proc/self/fd/4", SourceFD, 4},
		{"sh -- /proc/thread-self/fd/5", SourceFD, 5},
		{"dash -e build.sh", SourceScript, 0},
		{"sh - build.sh", SourceScript, 0},
		{"sh -o pipefail", SourceStdin, 0},
		{"sh -i", SourceStdin, 0},
		// bash.
		{"bash /dev/fd/63", SourceFD, 63},
		{"bash --norc -c id", SourceInline, 0},
		{"bash --rcfile x.rc -s", SourceStdin, 0},
		{"bash --rcfile x.rc script", SourceScript, 0},
		{"bash --version", SourceNone, 0},
		{"bash -O extglob script", SourceScript, 0},
		// zsh.
		{"zsh -c id", SourceInline, 0},
		{"zsh", SourceStdin, 0},
		{"zsh -f script.zsh", SourceScript, 0},
		// python.
		{"python3", SourceStdin, 0},
		{"python3 -", SourceStdin, 0},
		{"python3 -u -", SourceStdin, 0},
		{"python3 -c print(1)", SourceInline, 0},
		{"python3 -Ic print(1)", SourceInline, 0},
		{"python3 -m json.tool", SourceModule, 0},
		{"python3 -mbase64 -d", SourceModule, 0},
		{"python3 -W ignore -m json.tool", SourceModule, 0},
		{"python3 -W ignore script.py", SourceScript, 0},
		{"python3 /dev/fd/3", SourceFD, 3},
		{"python3 --version", SourceNone, 0},
		{"python3 -c code -m json.tool", SourceInline, 0},
		// perl.
		{"perl", SourceStdin, 0},
		{"perl -", SourceStdin, 0},
		{"perl -lne print", SourceInline, 0},
		{"perl -MMIME::Base64 -e 1", SourceInline, 0},
		{"perl -I lib script.pl", SourceScript, 0},
		{"perl -w", SourceStdin, 0},
		{"perl -0777 -pe s/a/b/", SourceInline, 0},
		{"perl -i.bak -w file", SourceScript, 0},
		// ruby.
		{"ruby", SourceStdin, 0},
		{"ruby -e puts", SourceInline, 0},
		{"ruby -r json -e 1", SourceInline, 0},
		{"ruby -r json app.rb", SourceScript, 0},
		// php.
		{"php", SourceStdin, 0},
		{"php -r echo(1);", SourceInline, 0},
		{"php -f x.php", SourceScript, 0},
		{"php -d x=1 x.php", SourceScript, 0},
		{"php -c /etc/php.ini", SourceStdin, 0},
		{"php -v", SourceNone, 0},
		// node.
		{"node", SourceStdin, 0},
		{"node -", SourceStdin, 0},
		{"node -e 1", SourceInline, 0},
		{"node --eval=1", SourceInline, 0},
		{"node -r dotenv/config server.js", SourceScript, 0},
		{"node --require x /dev/fd/3", SourceFD, 3},
		// lua.
		{"lua", SourceStdin, 0},
		{"lua -", SourceStdin, 0},
		{"lua -e print(1)", SourceInline, 0},
		{"lua -l socket x.lua", SourceScript, 0},
		// tcl.
		{"tclsh", SourceStdin, 0},
		{"tclsh x.tcl", SourceScript, 0},
		{"expect -c spawn", SourceInline, 0},
		{"expect -f x.exp", SourceScript, 0},
		{"tclsh -encoding utf-8 x.tcl", SourceScript, 0},
		// PowerShell.
		{"pwsh", SourceStdin, 0},
		{"pwsh -enc AAAA", SourceInline, 0},
		{"pwsh -Command -", SourceStdin, 0},
		{"pwsh -File x.ps1", SourceScript, 0},
		{"pwsh -NoProfile x.ps1", SourceScript, 0},
		// Not an interpreter.
		{"gzip -dc", SourceNone, 0},
	}
	for _, tt := range tests {
		argv := strings.Fields(tt.cmd)
		got, ok := programSource(basename(argv[0]), argv)
		if tt.want == SourceNone && !ok {
			continue
		}
		if !ok || got.Kind != tt.want || got.Kind == SourceFD && got.FD != tt.fd {
			t.Errorf("programSource(%q) = %v %d (known %v), want %v %d", tt.cmd, got.Kind, got.FD, ok, tt.want, tt.fd)
		}
	}
}

func TestPwshEncodedCommandAbbreviations(t *testing.T) {
	for _, a := range []string{"-e", "-E", "-ec", "-EC", "-en", "-enc", "-ENC", "-enco", "-encod", "-encode", "-encoded",
		"-encodedc", "-EncodedCommand", "-encodedcommand", "--EncodedCommand", "/enc", "/EncodedCommand", "-eNcOdEdCoMmAnD"} {
		if _, v, ok := pwshEncodedCommand([]string{"pwsh", "-NoProfile", a, "ZQBjAGgAbwAgADEA"}); !ok || v != "ZQBjAGgAbwAgADEA" {
			t.Errorf("pwsh %s BLOB: got %q %v, want the blob", a, v, ok)
		}
	}
	for _, a := range []string{"-ex", "-ep", "-encodeda", "-EncodedArguments", "-c", "-f", "enc", "-encodedcommandx"} {
		if _, _, ok := pwshEncodedCommand([]string{"pwsh", a, "ZQBjAGgAbwAgADEA"}); ok {
			t.Errorf("pwsh %s BLOB: read as -EncodedCommand", a)
		}
	}
}

func TestBehaviourDecoders(t *testing.T) {
	tests := []struct {
		argv []string
		want string
	}{
		{[]string{"python3", "-m", "base64", "-d"}, ModeDecode},
		{[]string{"python3", "-mbase64", "-d", "f"}, ModeDecode},
		{[]string{"python3.12", "-I", "-m", "base64", "-u"}, ModeDecode},
		{[]string{"python3", "-m", "base64", "f"}, ModeEncode},
		{[]string{"python3", "-m", "uu", "-d", "f"}, ModeDecode},
		{[]string{"python3", "-m", "quopri", "-d"}, ModeDecode},
		{[]string{"python3", "-m", "json.tool"}, ""},
		{[]string{"python3", "script.py", "-m", "base64", "-d"}, ""},
		{[]string{"python3", "-c", "pass", "-m", "base64"}, ""},
		{[]string{"gpg", "--enarmor", "f"}, ModeEncode},
		{[]string{"gpg", "--enarm", "f"}, ModeEncode},
		{[]string{"gpg2", "-o", "x", "--enarmour"}, ModeEncode},
		{[]string{"gpg", "--dearmor", "key.asc"}, ""},
		{[]string{"gpg", "--", "--enarmor"}, ""},
		{[]string{"gpg", "--en"}, ""},
	}
	for _, tt := range tests {
		if got, _ := toolMode(basename(tt.argv[0]), tt.argv); got != tt.want {
			t.Errorf("toolMode(%q) = %q, want %q", tt.argv, got, tt.want)
		}
	}
}

func TestNestedDecodeCalls(t *testing.T) {
	for _, code := range []string{
		`import codecs;print(codecs.decode(open("q").read(),"base64"))`,
		`console.log(Buffer.from(require("fs").readFileSync("q","utf8"),"base64").toString())`,
		`Buffer.from(f(g(h)), 'base64')`,
		`codecs.decode(open(p).read().strip(), 'hex')`,
	} {
		if calls := decodeCalls(code); len(calls) == 0 {
			t.Errorf("decodeCalls(%q) found none", code)
		}
	}
	if calls := decodeCalls(`Buffer.from(x).toString("base64")`); len(calls) != 0 {
		t.Errorf("an encode call read as a decode: %v", calls)
	}
}
