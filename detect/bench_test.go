package detect

import "testing"

func BenchmarkEvaluateNoMatch(b *testing.B) {
	p := mustCompile(b, PolicySpec{Environment: "production", Signatures: []SignatureSpec{encoderSpec}})
	e := NewEngine(p, "host", fixedNow)
	ev := execEvent("/usr/bin/ls", "ls", "-l", "--color=auto", "/var/log")
	b.ReportAllocs()
	for b.Loop() {
		if e.Evaluate(ev) != nil {
			b.Fatal("ls raised an alert")
		}
	}
}

func BenchmarkEvaluateMatch(b *testing.B) {
	p := mustCompile(b, PolicySpec{Environment: "production", Signatures: []SignatureSpec{encoderSpec}})
	e := NewEngine(p, "host", fixedNow)
	e.Uncap() // the same command a million times a minute: measure matching, not the safety cap
	ev := execEvent("/usr/bin/base64", "base64", "-d")
	b.ReportAllocs()
	for b.Loop() {
		if len(e.Evaluate(ev)) != 1 {
			b.Fatal("base64 raised no alert")
		}
	}
}

// BenchmarkEvaluateNoMatchDefault is the no-match path under every kind of
// signature the default policy uses (sequences, payloads, alternatives).
func BenchmarkEvaluateNoMatchDefault(b *testing.B) {
	p := mustCompile(b, PolicySpec{Environment: "production", Signatures: []SignatureSpec{
		encoderSpec,
		{Name: "seq", Importance: Critical, Sequence: &SequenceSpec{By: "parent", Within: 3e9, Steps: []StepSpec{
			{Name: "a", Conditions: Conditions{"executables": []string{"base64"}, "mode": "decode"}},
			{Name: "b", Conditions: Conditions{"executables": []string{"sh", "bash"}}},
		}}},
		{Name: "inline", Importance: High, Conditions: Conditions{"executables": []string{"python", "perl", "sh"}, "decode_calls": []string{"base64"}}},
		{Name: "hex", Importance: High, Any: []Conditions{{"executables": []string{"xxd"}, "mode": "decode"}, {"executables": []string{"python"}, "decode_calls": []string{"hex"}}}},
	}})
	e := NewEngine(p, "host", fixedNow)
	ev := execEvent("/usr/bin/ls", "ls", "-l", "--color=auto", "/var/log")
	b.ReportAllocs()
	for b.Loop() {
		if e.Evaluate(ev) != nil {
			b.Fatal("ls raised an alert")
		}
	}
}
