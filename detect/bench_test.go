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
	ev := execEvent("/usr/bin/base64", "base64", "-d")
	b.ReportAllocs()
	for b.Loop() {
		if len(e.Evaluate(ev)) != 1 {
			b.Fatal("base64 raised no alert")
		}
	}
}
