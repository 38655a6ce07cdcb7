package detect

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/encwatch/encwatch/audit"
)

// filelessSpec is a critical signature a user can trigger at will.
var filelessSpec = SignatureSpec{
	Name:       "fileless_exec",
	Importance: Critical,
	MITRE:      []string{"T1620"},
	Conditions: Conditions{"exe_regex": `^/memfd:| \(deleted\)$|^/dev/fd/[0-9]+$`},
}

// decodeBy is decodeAt run by uid on host ("" for the engine's own).
func decodeBy(at time.Duration, pid int, uid uint32, host, file string) *audit.Event {
	ev := decodeAt(at, pid, file)
	ev.UID, ev.AUID, ev.Node = uid, audit.Unset, host
	return ev
}

func floods(as []Alert) []Alert {
	var out []Alert
	for _, a := range as {
		if a.Signature.Name == FloodSignature {
			out = append(out, a)
		}
	}
	return out
}

// TestFloodPerSource: nobody's 25 distinct decodes under a cap of 10 raise
// 10 alerts and one alert_flood naming nobody at once, on the 11th; root's
// decode meanwhile is raised; when the minute ends one summary holds
// nobody's 15, and a flood in the next minute raises a new alert_flood.
func TestFloodPerSource(t *testing.T) {
	e := throttledEngine(t, ThrottleSpec{Per: "parent_exe", Max: 1, Window: time.Minute}, 10)
	var got []Alert
	for i := range 25 {
		as := e.Evaluate(decodeBy(time.Duration(i)*100*time.Millisecond, 1000+i, 65534, "", fmt.Sprintf("n%d", i)))
		if i == 10 && len(floods(as)) != 1 {
			t.Errorf("the 11th new alert of nobody returned %v, want the alert_flood at once", countBy(as))
		}
		got = append(got, as...)
	}
	if c := countBy(got); c["data_encoder_exec"] != 10 || c[FloodSignature] != 1 {
		t.Errorf("nobody's flood raised %v, want 10 data_encoder_exec and 1 %s", c, FloodSignature)
	}
	f := floods(got)
	if len(f) == 1 {
		a := f[0]
		if a.Signature.Importance != Critical || matchValue(a, "flood.uid") != "65534" || matchValue(a, "flood.count") != "10" ||
			matchValue(a, "flood.host") != "h" || a.Host != "h" || a.Event == nil || a.Event.UID != 65534 {
			t.Errorf("alert_flood = importance %v host %q matches %+v, want critical on h naming uid 65534 and count 10", a.Signature.Importance, a.Host, a.Matches)
		}
		if !strings.Contains(strings.Join(a.Signature.MITRE, ","), "T1562") {
			t.Errorf("alert_flood MITRE = %v, want T1562", a.Signature.MITRE)
		}
	}
	root := e.Evaluate(decodeBy(3*time.Second, 5000, 0, "", "root.b64"))
	if c := countBy(root); c["data_encoder_exec"] != 1 || len(root) != 1 {
		t.Errorf("root's decode during nobody's flood raised %v, want one data_encoder_exec", c)
	}
	sums := e.Flush(evTime.Add(61 * time.Second))
	if len(sums) != 1 || sums[0].Throttled != 15 || !strings.Contains(matchValue(sums[0], "suppressed.key"), "uid 65534") {
		t.Fatalf("summaries after the minute = %v (%+v), want one of nobody's 15", countBy(sums), sums)
	}
	// The next minute: room again, and a new flood is reported anew.
	var next []Alert
	for i := range 12 {
		next = append(next, e.Evaluate(decodeBy(62*time.Second+time.Duration(i)*time.Millisecond, 2000+i, 65534, "", fmt.Sprintf("m%d", i)))...)
	}
	if c := countBy(next); c["data_encoder_exec"] != 10 || c[FloodSignature] != 1 {
		t.Errorf("nobody's flood in the next minute raised %v, want 10 and one new %s", c, FloodSignature)
	}
}

// TestFloodCriticalNotHeld: past nobody's cap, a critical alert of nobody
// and of another user are raised; criticals have their own, higher cap.
func TestFloodCriticalNotHeld(t *testing.T) {
	p := mustCompile(t, PolicySpec{Signatures: []SignatureSpec{encoderSpec, filelessSpec}, AlertCap: 5})
	e := NewEngine(p, "h", fixedNow)
	for i := range 20 {
		e.Evaluate(decodeBy(time.Duration(i)*time.Millisecond, 1000+i, 65534, "", fmt.Sprint(i)))
	}
	for _, uid := range []uint32{65534, 1000} {
		ev := execEvent("/tmp/x (deleted)", "x", "-d")
		ev.Time, ev.UID, ev.AUID, ev.PID = evTime.Add(time.Second), uid, audit.Unset, 3000+int(uid)
		if c := countBy(e.Evaluate(ev)); c["fileless_exec"] != 1 {
			t.Errorf("critical fileless_exec of uid %d during nobody's flood raised %v, want it", uid, c)
		}
	}
	// Critical alerts are capped too, at criticalCapFactor times the cap.
	var got []Alert
	for i := range 5*criticalCapFactor + 3 {
		ev := execEvent(fmt.Sprintf("/memfd:m%d (deleted)", i), "m")
		ev.Time, ev.UID, ev.AUID, ev.PID = evTime.Add(2*time.Second), 1000, audit.Unset, 4000+i
		got = append(got, e.Evaluate(ev)...)
	}
	if c := countBy(got); c["fileless_exec"] != 5*criticalCapFactor-1 || c[FloodSignature] != 1 {
		t.Errorf("%d distinct criticals of one user raised %v, want %d and one %s", 5*criticalCapFactor+3, c, 5*criticalCapFactor-1, FloodSignature)
	}
}

// TestThrottleHostInKeys: identical commands with identical serials on two
// hosts coalesce per host, not across: each host's first is raised and
// each host's summary names that host; one host's flood holds nothing of
// the other's.
func TestThrottleHostInKeys(t *testing.T) {
	e := throttledEngine(t, ThrottleSpec{Per: "parent_pid", Max: 1, Window: time.Minute}, 3)
	var got []Alert
	for i := range 3 {
		for _, host := range []string{"alpha", "beta"} {
			got = append(got, e.Evaluate(decodeBy(time.Duration(i)*time.Second, 100, 0, host, "same.b64"))...)
		}
	}
	hosts := map[string]int{}
	for _, a := range got {
		hosts[a.Host]++
	}
	if len(got) != 2 || hosts["alpha"] != 1 || hosts["beta"] != 1 {
		t.Errorf("identical decodes on alpha and beta raised %d alerts by host %v, want one each", len(got), hosts)
	}
	sums := e.FlushAll()
	for _, s := range sums {
		hosts[s.Host] += 10
		if s.Throttled != 2 {
			t.Errorf("summary of %s holds %d, want 2", s.Host, s.Throttled)
		}
	}
	if len(sums) != 2 || hosts["alpha"] != 11 || hosts["beta"] != 11 {
		t.Errorf("summaries = %d by host %v, want one for each host", len(sums), hosts)
	}
	// alpha's uid 0 spends its cap; beta's uid 0 is another source.
	var flood []Alert
	for i := range 6 {
		flood = append(flood, e.Evaluate(decodeBy(2*time.Minute, 200+i, 0, "alpha", fmt.Sprint(i)))...)
	}
	if c := countBy(flood); c["data_encoder_exec"] != 3 || c[FloodSignature] != 1 {
		t.Errorf("alpha's flood raised %v, want 3 and one %s", c, FloodSignature)
	}
	if b := e.Evaluate(decodeBy(2*time.Minute, 300, 0, "beta", "b")); len(b) != 1 || b[0].Host != "beta" {
		t.Errorf("beta's decode during alpha's flood raised %v, want one alert on beta", countBy(b))
	}
}

// TestThrottleFileVariantsCoalesce: one file run as /tmp/x, as
// "/tmp/x (deleted)" and through /dev/fd/3 (same device and inode) with the
// same argv is one command; without PATH records, the " (deleted)" suffix
// alone does not make a new one.
func TestThrottleFileVariantsCoalesce(t *testing.T) {
	spec := filelessSpec
	spec.Conditions = Conditions{"exe_regex": `^/tmp/|^/dev/fd/`}
	spec.Throttles = []ThrottleSpec{{Per: "parent_exe", Window: time.Minute}}
	for _, withPaths := range []bool{true, false} {
		e := NewEngine(mustCompile(t, PolicySpec{Signatures: []SignatureSpec{spec}}), "h", fixedNow)
		exes := []string{"/tmp/x", "/tmp/x (deleted)", "/dev/fd/3", "/tmp/x (deleted)"}
		if !withPaths {
			exes = []string{"/tmp/x", "/tmp/x (deleted)", "/tmp/x", "/tmp/x (deleted)"}
		}
		raised := 0
		for i, exe := range exes {
			ev := execEvent(exe, "x", "-d")
			ev.PID, ev.Time = 500+i, evTime.Add(time.Duration(i)*time.Second)
			if withPaths {
				ev.Paths = []audit.Path{{Name: exe, Dev: "00:1f", Inode: 77}}
			}
			raised += len(e.Evaluate(ev))
		}
		sums := e.FlushAll()
		if raised != 1 || len(sums) != 1 || sums[0].Throttled != 3 {
			t.Errorf("paths %v: %d raised, %d summaries, want 1 raised and 3 held in one summary", withPaths, raised, len(sums))
		}
	}
}

// TestFloodSourcesBounded: more users than the table holds each raise
// their alert; the table stops growing, the users past it share one
// bucket, and once windows end new users get sources of their own again.
func TestFloodSourcesBounded(t *testing.T) {
	e := throttledEngine(t, ThrottleSpec{Per: "parent_pid", Max: 1, Window: time.Second}, 1)
	raised := 0
	for i := range maxSources + 10 {
		raised += len(e.Evaluate(decodeBy(0, 1000+i, uint32(100000+i), "", fmt.Sprint(i))))
	}
	if len(e.thr.caps) > maxSources+1 {
		t.Errorf("source table holds %d, want at most %d", len(e.thr.caps), maxSources+1)
	}
	// maxSources own sources raise one each; the shared bucket one, then
	// its alert_flood.
	if want := maxSources + 2; raised != want {
		t.Errorf("%d users' first alerts raised %d, want %d", maxSources+10, raised, want)
	}
	if _, ok := e.thr.caps[sourceKey{shared: true}]; !ok {
		t.Errorf("no shared bucket for the users past the table")
	}
	later := decodeBy(2*time.Minute, 9000, 7, "", "late")
	if k, _ := e.thr.source(sourceOf(later, "h"), later.Time); k.shared {
		t.Errorf("a new user after every window ended got the shared bucket, want a source of its own")
	}
}

// TestReservedSignatureNames: a policy cannot define a signature that
// would pass for the engine's own summaries or flood alerts.
func TestReservedSignatureNames(t *testing.T) {
	for _, name := range []string{SuppressedSignature, FloodSignature} {
		spec := encoderSpec
		spec.Name = name
		if _, err := Compile(PolicySpec{Signatures: []SignatureSpec{spec}}); err == nil || !strings.Contains(err.Error(), "reserved") {
			t.Errorf("Compile of a signature named %q = %v, want it refused as reserved", name, err)
		}
	}
}
