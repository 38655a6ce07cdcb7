package detect

import (
	"reflect"
	"regexp"
	"testing"
	"time"

	"github.com/encwatch/encwatch/audit"
)

// encoderSpec is the data_encoder_exec signature as config.hcl defines it.
var encoderSpec = SignatureSpec{
	Name:        "data_encoder_exec",
	Description: "Data encoder execution",
	Category:    "Execution",
	Method:      "Command and Scripting Interpreter",
	Importance:  High,
	MITRE:       []string{"T1059", "T1027", "T1132"},
	Conditions: Conditions{"executables": []string{"base16", "base32", "base32hex", "base32plain", "base58", "base64",
		"base64mime", "base64pem", "base64plain", "base64url", "basez", "ascii85",
		"urlencode", "uuencode", "uudecode", "basenc"}},
}

var encoderInfo = SignatureInfo{
	Name:        "data_encoder_exec",
	Description: "Data encoder execution",
	Category:    "Execution",
	Method:      "Command and Scripting Interpreter",
	Importance:  High,
	MITRE:       []string{"T1059", "T1027", "T1132"},
}

var evTime = time.Date(2025, 3, 1, 12, 0, 0, 123e6, time.UTC)

func mustCompile(t testing.TB, spec PolicySpec) *Policy {
	t.Helper()
	p, err := Compile(spec)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return p
}

func execEvent(exe string, argv ...string) *audit.Event {
	return &audit.Event{
		Time:    evTime,
		Serial:  4242,
		Arch:    audit.ArchX86_64,
		Syscall: 59,
		Success: true,
		PID:     100,
		PPID:    99,
		Exe:     exe,
		Argc:    len(argv),
		Argv:    argv,
		Key:     "encwatch",
	}
}

func fixedNow() time.Time { return time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) }

func TestEvaluate(t *testing.T) {
	p := mustCompile(t, PolicySpec{Environment: "production", Signatures: []SignatureSpec{encoderSpec}})
	e := NewEngine(p, "host-a", fixedNow)

	failed := execEvent("/bin/bash", "base64", "-d")
	failed.Success = false
	i386 := execEvent("/usr/bin/base64", "base64")
	i386.Arch, i386.Syscall = audit.ArchI386, 11
	openat := execEvent("/usr/bin/base64", "base64")
	openat.Syscall = 257 // openat
	execveat := execEvent("/usr/bin/base64", "base64")
	execveat.Syscall = 322

	tests := []struct {
		name string
		ev   *audit.Event
		want []Match // nil: no alert
	}{
		{"base64 by exe", execEvent("/usr/bin/base64", "base64", "-d"), []Match{
			{Field: "exe", Value: "/usr/bin/base64", Reason: `executable "base64" is listed`},
		}},
		{"ls", execEvent("/usr/bin/ls", "ls", "-l"), nil},
		{"renamed copy via argv[0]", execEvent("/tmp/x", "base64", "-d"), []Match{
			{Field: "argv[0]", Value: "base64", Reason: `argv[0] "base64" is listed but the kernel ran "/tmp/x": a multi-call binary, renamed copy or re-exec`},
		}},
		{"busybox applet by path", execEvent("/bin/busybox", "/usr/bin/base32", "-d"), []Match{
			{Field: "argv[0]", Value: "/usr/bin/base32", Reason: `argv[0] "base32" is listed but the kernel ran "/bin/busybox": a multi-call binary, renamed copy or re-exec`},
		}},
		{"busybox applet named in argv[1]", execEvent("/bin/busybox", "busybox", "base64", "-d"), []Match{
			{Field: "argv[1]", Value: "base64", Reason: `applet "base64" is listed, run through the multi-call binary "busybox"`},
		}},
		{"busybox with an option first is not an applet", execEvent("/bin/busybox", "busybox", "--list"), nil},
		{"renamed encoder, harmless argv[0]", execEvent("/usr/bin/basenc", "ls"), []Match{
			{Field: "exe", Value: "/usr/bin/basenc", Reason: `executable "basenc" is listed`},
		}},
		{"failed exec matches argv[0] only", failed, []Match{
			{Field: "argv[0]", Value: "base64", Reason: `argv[0] "base64" is listed (exec failed)`},
		}},
		{"failed exec of a shell is not the shell", func() *audit.Event {
			ev := execEvent("/usr/bin/base64")
			ev.Success = false
			return ev
		}(), nil},
		{"i386 execve", i386, []Match{{Field: "exe", Value: "/usr/bin/base64", Reason: `executable "base64" is listed`}}},
		{"execveat", execveat, []Match{{Field: "exe", Value: "/usr/bin/base64", Reason: `executable "base64" is listed`}}},
		{"non-exec syscall ignored", openat, nil},
		{"prefix is not a match", execEvent("/usr/bin/base64x", "base64x"), nil},
		{"directory named like a tool", execEvent("/opt/base64/bin/tool", "tool"), nil},
		{"empty argv", execEvent("/usr/bin/ls"), nil},
		{"nil event", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := e.Evaluate(tt.ev)
			if tt.want == nil {
				if got != nil {
					t.Fatalf("Evaluate = %+v, want no alert", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("Evaluate = %d alerts %+v, want 1", len(got), got)
			}
			a := got[0]
			if !reflect.DeepEqual(a.Matches, tt.want) {
				t.Errorf("Matches = %+v, want %+v", a.Matches, tt.want)
			}
			if !reflect.DeepEqual(a.Signature, encoderInfo) {
				t.Errorf("Signature = %+v, want %+v", a.Signature, encoderInfo)
			}
			if a.Host != "host-a" || a.Environment != "production" || !a.Time.Equal(evTime) || a.Event != tt.ev {
				t.Errorf("alert = host %q env %q time %v event %p, want host-a production %v %p",
					a.Host, a.Environment, a.Time, a.Event, evTime, tt.ev)
			}
			if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(a.ID) {
				t.Errorf("ID = %q, want 32 hex digits", a.ID)
			}
		})
	}
}

func TestAlertID(t *testing.T) {
	p := mustCompile(t, PolicySpec{Signatures: []SignatureSpec{encoderSpec}})
	id := func(host string, mod func(*audit.Event)) string {
		ev := execEvent("/usr/bin/base64", "base64")
		if mod != nil {
			mod(ev)
		}
		alerts := NewEngine(p, host, fixedNow).Evaluate(ev)
		if len(alerts) != 1 {
			t.Fatalf("Evaluate = %+v, want one alert", alerts)
		}
		return alerts[0].ID
	}
	base := id("h", nil)
	if again := id("h", nil); again != base {
		t.Errorf("ID of the same event = %q then %q, want stable", base, again)
	}
	others := map[string]string{
		"other host":   id("h2", nil),
		"other serial": id("h", func(ev *audit.Event) { ev.Serial++ }),
		"other time":   id("h", func(ev *audit.Event) { ev.Time = ev.Time.Add(time.Millisecond) }),
		"node":         id("h", func(ev *audit.Event) { ev.Node = "n" }),
	}
	for name, got := range others {
		if got == base {
			t.Errorf("ID with %s = %q, the same as the base event's", name, got)
		}
	}
	// The same node name gives the same id whichever host replays it.
	if a, b := id("h", func(ev *audit.Event) { ev.Node = "n" }), id("h2", func(ev *audit.Event) { ev.Node = "n" }); a != b {
		t.Errorf("ID of a forwarded event differs by replaying host: %q vs %q", a, b)
	}
}

func TestEvaluateNodeAndZeroTime(t *testing.T) {
	p := mustCompile(t, PolicySpec{Signatures: []SignatureSpec{encoderSpec}})
	ev := execEvent("/usr/bin/base64", "base64")
	ev.Node, ev.Time = "web-1", time.Time{}
	got := NewEngine(p, "collector", fixedNow).Evaluate(ev)
	if len(got) != 1 || got[0].Host != "web-1" || !got[0].Time.Equal(fixedNow()) {
		t.Fatalf("Evaluate = %+v, want one alert from host web-1 at now()", got)
	}
}

func TestEvaluateSeveralSignatures(t *testing.T) {
	p := mustCompile(t, PolicySpec{Signatures: []SignatureSpec{
		{Name: "first", Importance: Low, Conditions: Conditions{"executables": []string{"xxd"}}},
		{Name: "second", Importance: Medium, Conditions: Conditions{"executables": []string{"base64", "base64"}}},
		{Name: "third", Importance: Critical, Conditions: Conditions{"executables": []string{"base64"}}},
	}})
	// exe matches second and third, argv[0] matches first: policy order wins.
	got := NewEngine(p, "h", fixedNow).Evaluate(execEvent("/usr/bin/base64", "xxd"))
	var names []string
	for _, a := range got {
		names = append(names, a.Signature.Name)
		if len(a.Matches) != 1 {
			t.Errorf("%s: Matches = %+v, want one", a.Signature.Name, a.Matches)
		}
	}
	if want := []string{"first", "second", "third"}; !reflect.DeepEqual(names, want) {
		t.Errorf("alerts for %v, want %v", names, want)
	}
	if len(got) == 3 && got[1].ID == got[2].ID {
		t.Errorf("two signatures on one event share ID %q", got[1].ID)
	}
}

func TestSwap(t *testing.T) {
	base64Only := mustCompile(t, PolicySpec{Environment: "ci", Signatures: []SignatureSpec{encoderSpec}})
	xxdOnly := mustCompile(t, PolicySpec{Environment: "staging", Signatures: []SignatureSpec{
		{Name: "xxd_exec", Importance: Medium, Conditions: Conditions{"executables": []string{"xxd"}}},
	}})
	e := NewEngine(base64Only, "h", fixedNow)
	b64, xxd := execEvent("/usr/bin/base64", "base64"), execEvent("/usr/bin/xxd", "xxd", "-r")

	steps := []struct {
		policy      *Policy
		b64, xxd    int
		environment string
	}{
		{nil, 1, 0, "ci"},
		{xxdOnly, 0, 1, "staging"},
		{base64Only, 1, 0, "ci"},
	}
	for i, s := range steps {
		if s.policy != nil {
			e.Swap(s.policy)
		}
		gotB64, gotXXD := e.Evaluate(b64), e.Evaluate(xxd)
		if len(gotB64) != s.b64 || len(gotXXD) != s.xxd {
			t.Errorf("step %d: alerts base64 %d xxd %d, want %d %d", i, len(gotB64), len(gotXXD), s.b64, s.xxd)
		}
		for _, a := range append(gotB64, gotXXD...) {
			if a.Environment != s.environment {
				t.Errorf("step %d: Environment = %q, want %q", i, a.Environment, s.environment)
			}
		}
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		sigs []SignatureSpec
		want string
	}{
		{"empty name", []SignatureSpec{{Conditions: Conditions{"executables": []string{"a"}}}}, `signature "": empty name`},
		{"duplicate", []SignatureSpec{
			{Name: "a", Conditions: Conditions{"executables": []string{"a"}}},
			{Name: "a", Conditions: Conditions{"executables": []string{"b"}}},
		}, `signature "a": defined twice`},
		{"no executables", []SignatureSpec{{Name: "a"}}, `signature "a": no executables: the signature could never match`},
		{"path", []SignatureSpec{{Name: "a", Conditions: Conditions{"executables": []string{"/bin/a"}}}}, `signature "a": executable "/bin/a" is not a file name`},
		{"importance", []SignatureSpec{{Name: "a", Importance: 9, Conditions: Conditions{"executables": []string{"a"}}}}, `signature "a": importance 9 out of range`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(PolicySpec{Signatures: tt.sigs})
			if err == nil || err.Error() != tt.want {
				t.Errorf("Compile error = %v, want %s", err, tt.want)
			}
		})
	}
}

func TestPolicySignaturesIsACopy(t *testing.T) {
	p := mustCompile(t, PolicySpec{Signatures: []SignatureSpec{encoderSpec}})
	p.Signatures()[0].MITRE[0] = "T0000"
	if got := p.Signatures()[0].MITRE[0]; got != "T1059" {
		t.Errorf("after changing a copy, MITRE[0] = %q, want T1059", got)
	}
}

func TestEvaluateNoMatchDoesNotAllocate(t *testing.T) {
	p := mustCompile(t, PolicySpec{Signatures: []SignatureSpec{encoderSpec}})
	e := NewEngine(p, "h", fixedNow)
	ev := execEvent("/usr/bin/ls", "ls", "-l")
	if got := testing.AllocsPerRun(100, func() { e.Evaluate(ev) }); got != 0 {
		t.Errorf("Evaluate(ls) allocates %v times, want 0", got)
	}
}
