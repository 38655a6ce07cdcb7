package abuse

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// floodPolicy adds to the test policy the critical correlation of a decoder
// piped to a shell, and the default safety cap.
const floodPolicy = `
settings {
  alert_cap_per_minute = 1000
}
signature "decoder_piped_to_interpreter" {
  importance = "critical"
  sequence {
    by     = "parent"
    within = "3s"
    step "decoder" {
      executables = ["base64"]
      mode        = "decode"
    }
    step "interpreter" {
      executables = ["sh", "dash", "bash"]
      no_flags    = ["-c"]
    }
  }
}
`

// floodAlert is what the flood test reads of an alert.
type floodAlert struct {
	Host      string `json:"host"`
	Signature struct {
		Name string `json:"name"`
	} `json:"signature"`
	Matches []struct {
		Field string `json:"field"`
		Value string `json:"value"`
	} `json:"matches"`
}

func (a floodAlert) match(field string) string {
	for _, m := range a.Matches {
		if m.Field == field {
			return m.Value
		}
	}
	return ""
}

// allAlerts reads every alert of d's file sink.
func (d *daemon) allAlerts(t *testing.T) []floodAlert {
	t.Helper()
	b, err := os.ReadFile(d.alerts)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []floodAlert
	for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		var a floodAlert
		if line != "" && json.Unmarshal([]byte(line), &a) == nil {
			out = append(out, a)
		}
	}
	return out
}

// TestKernelFloodByNobodyBlindsNoOne needs root and the kernel audit:
// nobody runs 2,000 distinct decodes in one loop (twice the safety cap of
// new alerts a minute); one alert_flood names nobody's uid at once, a
// critical correlation of nobody's and of root's during the flood is
// raised, and root's plain decode afterwards alerts (the cap was one
// budget per host: nobody's flood used to hold every other user's alerts
// until the minute ended). The latency and the daemon's peak RSS are
// logged; RSS must stay under 256 MiB.
func TestKernelFloodByNobodyBlindsNoOne(t *testing.T) {
	const budget = 256 << 20
	f := setup(t)
	d := startDaemonPolicy(t, f, "", floodPolicy)
	marker := fmt.Sprintf("flood-%d", time.Now().UnixNano())

	// Distinct commands: the files differ, so no throttle coalesces them
	// and each is a new alert against nobody's cap.
	loop := fmt.Sprintf(`i=0; while [ $i -lt 2000 ]; do base64 -d /nonexistent-%s-$i 2>/dev/null; i=$((i+1)); done`, marker)
	flood := asNobody("sh", "-c", loop)
	start := time.Now()
	if err := flood.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- flood.Wait() }()

	// During the flood, once nobody is past the cap: a decoder piped to a
	// shell by nobody and by root, both critical.
	deadline := time.Now().Add(30 * time.Second)
	for !hasFlood(d.allAlerts(t)) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	flooded := time.Since(start)
	pipe := func(who string) string { return "echo ZWNobyBoaQo= | base64 -d | sh # pipe-" + who + "-" + marker }
	asNobody("sh", "-c", pipe("nobody")).Run()
	if out, err := exec.Command("sh", "-c", pipe("root")).CombinedOutput(); err != nil {
		t.Fatalf("root's pipeline: %v\n%s", err, out)
	}
	select {
	case <-done:
	case <-time.After(40 * time.Second):
		flood.Process.Kill()
		t.Fatalf("nobody's loop of 2,000 decodes still running after 40 s")
	}
	floodTook := time.Since(start)

	// Root, after the flood, in another directory.
	rootMarker := "root-" + marker
	root := exec.Command("sh", "-c", "echo aGVsbG8K | base64 -d # "+rootMarker)
	root.Dir = "/"
	if out, err := root.CombinedOutput(); err != nil {
		t.Fatalf("root's base64 -d: %v\n%s", err, out)
	}
	took, got := d.waitAlerts(rootMarker, []string{"data_encoder_exec"}, 15*time.Second)
	if !hasAll(got, []string{"data_encoder_exec"}) {
		t.Fatalf("root's echo aGVsbG8K | base64 -d after nobody's flood raised %v within 15 s, want data_encoder_exec (blinded by another user's flood); daemon logs:\n%s", names(got), tail(d.log(), 30))
	}
	for _, who := range []string{"nobody", "root"} {
		_, got := d.waitAlerts("pipe-"+who+"-"+marker, []string{"decoder_piped_to_interpreter"}, 15*time.Second)
		if !hasAll(got, []string{"decoder_piped_to_interpreter"}) {
			t.Errorf("%s's decoder piped to sh during the flood raised %v, want the critical decoder_piped_to_interpreter", who, names(got))
		}
		t.Logf("%s's pipeline during the flood raised %v", who, names(got))
		// Root's own decode in it is not held for nobody's flood.
		if who == "root" && !hasAll(got, []string{"data_encoder_exec"}) {
			t.Errorf("root's base64 -d during nobody's flood raised %v, want data_encoder_exec too", names(got))
		}
	}
	peak := vmHWM(t, d.cmd.Process.Pid)

	all := d.allAlerts(t)
	bySig := map[string]int{}
	var floodUIDs []string
	for _, a := range all {
		bySig[a.Signature.Name]++
		if a.Signature.Name == "alert_flood" {
			floodUIDs = append(floodUIDs, a.match("flood.uid"))
		}
	}
	if len(floodUIDs) != 1 || floodUIDs[0] != "65534" {
		t.Errorf("alert_flood alerts name uids %v, want exactly one, naming nobody (65534)", floodUIDs)
	}
	t.Logf("nobody's 2,000 decodes took %v; alert_flood in the sink %v after the start; root's decode alerted within %v of its exit", floodTook.Round(time.Millisecond), flooded.Round(time.Millisecond), took)
	t.Logf("alerts in the sink before stop: %v", bySig)
	t.Logf("daemon VmHWM: %.1f MiB", mib(peak))
	if peak >= budget {
		t.Errorf("daemon peak RSS = %.1f MiB, want under %.0f MiB", mib(peak), mib(budget))
	}

	// At stop, what the cap held is summarised: nobody's, not root's.
	d.stop(t)
	var held []string
	for _, a := range d.allAlerts(t) {
		if a.Signature.Name == "alerts_suppressed" {
			held = append(held, a.match("suppressed.count")+" of "+a.match("suppressed.key"))
		}
	}
	t.Logf("summaries at stop: %v", held)
	if len(held) == 0 || !strings.Contains(strings.Join(held, ";"), "uid 65534") {
		t.Errorf("summaries at stop = %v, want nobody's held decodes", held)
	}
	if strings.Contains(strings.Join(held, ";"), "from uid 0 ") {
		t.Errorf("summaries at stop = %v, want none of root's", held)
	}
}

func hasFlood(as []floodAlert) bool {
	for _, a := range as {
		if a.Signature.Name == "alert_flood" {
			return true
		}
	}
	return false
}
