package detect

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/encwatch/encwatch/audit"
)

// throttledEngine compiles encoderSpec with one throttle and the given cap.
func throttledEngine(t *testing.T, th ThrottleSpec, alertCap int) *Engine {
	t.Helper()
	spec := encoderSpec
	spec.Throttles = []ThrottleSpec{th}
	return NewEngine(mustCompile(t, PolicySpec{Signatures: []SignatureSpec{spec}, AlertCap: alertCap}), "h", fixedNow)
}

// decodeAt is `base64 -d file` run by pid under parent 99 at evTime+at.
func decodeAt(at time.Duration, pid int, file string) *audit.Event {
	ev := execEvent("/usr/bin/base64", "base64", "-d", file)
	ev.Time, ev.PID, ev.Serial = evTime.Add(at), pid, uint64(pid)
	return ev
}

func countBy(as []Alert) map[string]int {
	m := map[string]int{}
	for _, a := range as {
		m[a.Signature.Name]++
	}
	return m
}

func matchValue(a Alert, field string) string {
	for _, m := range a.Matches {
		if m.Field == field {
			return m.Value
		}
	}
	return ""
}

// TestThrottleIdenticalAndDistinct: 50 identical and 50 distinct decodes
// from one parent in 10 s raise the 50 distinct ones, the first identical
// one, and, when the window ends, one summary of the 49 held.
func TestThrottleIdenticalAndDistinct(t *testing.T) {
	for _, per := range []string{"parent_pid", "parent_exe", "ancestry", "host"} {
		t.Run(per, func(t *testing.T) {
			e := throttledEngine(t, ThrottleSpec{Per: per, Max: 1, Window: time.Minute}, 0)
			var got []Alert
			for i := range 100 {
				at := time.Duration(i) * 100 * time.Millisecond
				file := "same.b64"
				if i%2 == 1 {
					file = fmt.Sprintf("payload-%d.b64", i)
				}
				got = append(got, e.Evaluate(decodeAt(at, 1000+i, file))...)
			}
			if c := countBy(got); c["data_encoder_exec"] != 51 || c[SuppressedSignature] != 0 {
				t.Errorf("alerts within the window = %v, want 51 data_encoder_exec (50 distinct, 1 of the identical) and no summary yet", c)
			}
			if early := e.Flush(evTime.Add(59 * time.Second)); len(early) != 0 {
				t.Errorf("Flush before the window ends = %d alerts, want 0", len(early))
			}
			sums := e.Flush(evTime.Add(61 * time.Second))
			if len(sums) != 1 || sums[0].Signature.Name != SuppressedSignature {
				t.Fatalf("Flush after the window = %v, want one %s", countBy(sums), SuppressedSignature)
			}
			s := sums[0]
			if s.Throttled != 49 || matchValue(s, "suppressed.count") != "49" || matchValue(s, "suppressed.signature") != "data_encoder_exec" {
				t.Errorf("summary count %d, matches %+v, want 49 of data_encoder_exec", s.Throttled, s.Matches)
			}
			if f, l := matchValue(s, "suppressed.first_argv"), matchValue(s, "suppressed.last_argv"); f != "base64 -d same.b64" || l != f {
				t.Errorf("summary first, last argv = %q, %q, want both %q", f, l, "base64 -d same.b64")
			}
			if s.Mode != ModeDecode || s.Signature.Importance != High || s.Event == nil || s.Event.PID != 1098 {
				t.Errorf("summary mode %q importance %v event %+v, want decode, high, the last held (pid 1098)", s.Mode, s.Signature.Importance, s.Event)
			}
			if again := e.Flush(evTime.Add(2 * time.Minute)); len(again) != 0 {
				t.Errorf("second Flush = %d alerts, want 0", len(again))
			}
		})
	}
}

// TestThrottleDecoysThenPayload: a script runs five decoy decodes, then a
// different payload; the decoys' repeats are coalesced and the payload is
// raised, whatever the old max said.
func TestThrottleDecoysThenPayload(t *testing.T) {
	tests := []struct {
		name   string
		decoys []string
	}{
		{"identical decoys", []string{"decoy.b64", "decoy.b64", "decoy.b64", "decoy.b64", "decoy.b64"}},
		{"distinct decoys", []string{"d1", "d2", "d3", "d4", "d5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := throttledEngine(t, ThrottleSpec{Per: "ancestry", Max: 5, Window: time.Minute}, 0)
			for i, f := range tt.decoys {
				e.Evaluate(decodeAt(time.Duration(i)*time.Millisecond, 2000+i, f))
			}
			// Five more identical decoys: past max, they coalesce.
			for i := range 5 {
				e.Evaluate(decodeAt(10*time.Millisecond, 2100+i, tt.decoys[0]))
			}
			got := e.Evaluate(decodeAt(20*time.Millisecond, 2200, "payload.b64"))
			if len(got) != 1 || got[0].Event.PID != 2200 {
				t.Errorf("payload after decoys raised %v, want its data_encoder_exec alert", countBy(got))
			}
		})
	}
}

// TestThrottleSafetyCap: past the cap of new alerts a minute, new commands
// are held and summarised when the minute ends, never dropped unreported.
func TestThrottleSafetyCap(t *testing.T) {
	e := throttledEngine(t, ThrottleSpec{Per: "parent_pid", Max: 1, Window: time.Minute}, 10)
	var got []Alert
	for i := range 15 {
		got = append(got, e.Evaluate(decodeAt(time.Duration(i)*time.Second, 3000+i, fmt.Sprintf("f%d", i)))...)
	}
	if c := countBy(got); c["data_encoder_exec"] != 10 || c[FloodSignature] != 1 {
		t.Errorf("alerts under a cap of 10 = %v, want 10 and one %s", c, FloodSignature)
	}
	sums := e.Flush(evTime.Add(61 * time.Second))
	if len(sums) != 1 || sums[0].Throttled != 5 {
		t.Fatalf("summaries after the minute = %+v, want one with count 5", sums)
	}
	if k := matchValue(sums[0], "suppressed.key"); !strings.Contains(k, "safety cap") {
		t.Errorf("summary key = %q, want it to name the safety cap", k)
	}
	if f, l := matchValue(sums[0], "suppressed.first_argv"), matchValue(sums[0], "suppressed.last_argv"); f != "base64 -d f10" || l != "base64 -d f14" {
		t.Errorf("summary first, last argv = %q, %q, want base64 -d f10, base64 -d f14", f, l)
	}
	// A new minute has room again.
	if a := e.Evaluate(decodeAt(62*time.Second, 3100, "late")); len(a) != 1 {
		t.Errorf("alerts in the next minute = %d, want 1", len(a))
	}
}

// TestThrottleDefaultCap: without a cap in the policy, 1000 new commands
// in a minute are all raised.
func TestThrottleDefaultCap(t *testing.T) {
	e := NewEngine(mustCompile(t, PolicySpec{Signatures: []SignatureSpec{encoderSpec}}), "h", fixedNow)
	n := 0
	for i := range DefaultAlertCap + 5 {
		n += len(e.Evaluate(decodeAt(time.Duration(i)*time.Millisecond, 4000+i, fmt.Sprint(i))))
	}
	if n != DefaultAlertCap+1 {
		t.Errorf("alerts raised = %d, want the default cap %d and one %s", n, DefaultAlertCap, FloodSignature)
	}
	if sums := e.FlushAll(); len(sums) != 1 || sums[0].Throttled != 5 {
		t.Errorf("FlushAll = %d summaries, want one with count 5", len(sums))
	}
}

// TestThrottleSummaryOnNextEvent: an event after a window ended returns
// the window's summary before its own alert.
func TestThrottleSummaryOnNextEvent(t *testing.T) {
	e := throttledEngine(t, ThrottleSpec{Per: "host", Max: 1, Window: 10 * time.Second}, 0)
	e.Evaluate(decodeAt(0, 1, "x"))
	e.Evaluate(decodeAt(time.Second, 2, "x"))
	got := e.Evaluate(decodeAt(11*time.Second, 3, "x"))
	if len(got) != 2 || got[0].Signature.Name != SuppressedSignature || got[1].Signature.Name != "data_encoder_exec" {
		t.Errorf("alerts after the window = %v, want the summary then data_encoder_exec", countBy(got))
	}
}

func TestActionsByMode(t *testing.T) {
	spec := encoderSpec
	spec.Actions = map[string][]string{"default": {"any"}, "production": {"prod"}}
	spec.ModeActions = map[string]map[string][]string{"encode": {"default": {"enc"}}, "decode": {"production": {"dec-prod"}}}
	tests := []struct {
		env  string
		argv []string
		want string
	}{
		{"production", []string{"base64", "f"}, "enc"},
		{"ci", []string{"base64", "f"}, "enc"},
		{"production", []string{"base64", "-d", "f"}, "dec-prod"},
		{"ci", []string{"base64", "-d", "f"}, "any"},
		{"production", []string{"base64", "--bogus"}, "prod"},
	}
	for _, tt := range tests {
		p := mustCompile(t, PolicySpec{Environment: tt.env, Signatures: []SignatureSpec{spec}})
		got := NewEngine(p, "h", fixedNow).Evaluate(execEvent("/usr/bin/base64", tt.argv...))
		if len(got) != 1 || strings.Join(got[0].Actions, ",") != tt.want {
			t.Errorf("%s %q: actions = %+v, want [%s]", tt.env, tt.argv, got, tt.want)
		}
	}
	spec.ModeActions = map[string]map[string][]string{"decrypt": {"default": {"x"}}}
	if _, err := Compile(PolicySpec{Signatures: []SignatureSpec{spec}}); err == nil {
		t.Errorf("Compile with actions for mode %q = nil error, want one", "decrypt")
	}
}

// TestUncapRaisesEveryNewCommand: with the safety cap off (replay), distinct
// commands past the cap are all raised, none held.
func TestUncapRaisesEveryNewCommand(t *testing.T) {
	p := mustCompile(t, PolicySpec{Signatures: []SignatureSpec{encoderSpec}, AlertCap: 5})
	for _, uncap := range []bool{false, true} {
		e := NewEngine(p, "h", fixedNow)
		if uncap {
			e.Uncap()
		}
		raised := 0
		for i := range 20 {
			ev := execEvent("/usr/bin/base64", "base64", "-d", fmt.Sprintf("payload%d.b64", i))
			raised += len(e.Evaluate(ev))
		}
		want := 5 + 1 // and the alert_flood
		if uncap {
			want = 20
		}
		if raised != want {
			t.Errorf("uncapped %v: %d alerts from 20 distinct decodes, want %d", uncap, raised, want)
		}
	}
}
