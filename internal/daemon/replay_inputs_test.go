package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/internal/config"
)

// hostAlert is the part of an alert line the input tests look at.
type hostAlert struct {
	Host      string `json:"host"`
	Signature struct {
		Name string `json:"name"`
	} `json:"signature"`
	Process struct {
		PID  int      `json:"pid"`
		Args []string `json:"args"`
	} `json:"process"`
	Audit struct {
		Serial uint64 `json:"serial"`
	} `json:"audit"`
}

// replayForTest replays o through the default policy (or policy, if not
// empty), returning the alerts, the summary, the logged warnings and the
// error.
func replayForTest(t *testing.T, policy string, o ReplayOptions) ([]hostAlert, ReplaySummary, string, error) {
	t.Helper()
	var cfg *config.Config
	var err error
	if policy == "" {
		cfg, err = config.Load("../../config.hcl", config.LoadOptions{})
	} else {
		cfg, err = config.Parse("policy.hcl", []byte(policy))
	}
	if err != nil {
		t.Fatal(err)
	}
	var out, logs bytes.Buffer
	log := logrus.New()
	log.SetOutput(&logs)
	log.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true})
	o.Out = &out
	sum, rerr := ReplayLogs(context.Background(), cfg, logrus.NewEntry(log), o)
	var alerts []hostAlert
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if line == "" {
			continue
		}
		var a hostAlert
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatalf("alert line is not JSON: %v: %q", err, line)
		}
		alerts = append(alerts, a)
	}
	return alerts, sum, logs.String(), rerr
}

// roundOf returns N of the round-N.b64 an alert's command line names, or -1.
func roundOf(a hostAlert) int {
	for _, arg := range a.Process.Args {
		var n int
		if _, err := fmt.Sscanf(filepath.Base(arg), "round-%d.b64", &n); err == nil {
			return n
		}
	}
	return -1
}

// TestReplayRotatedDirectory replays a directory of rotated logs captured
// from the real kernel (plain, .gz, .zst, .xz): every round's alert, oldest
// file first, and nothing malformed.
func TestReplayRotatedDirectory(t *testing.T) {
	alerts, sum, logs, err := replayForTest(t, "", ReplayOptions{Inputs: []string{rotatedDir}})
	if err != nil {
		t.Fatalf("ReplayLogs: %v", err)
	}
	var rounds []int
	for _, a := range alerts {
		if r := roundOf(a); r >= 0 && a.Signature.Name == "data_encoder_exec" {
			rounds = append(rounds, r)
		}
	}
	if want := []int{3, 2, 1, 0}; !slices.Equal(rounds, want) {
		t.Errorf("base64 alerts by round = %v, want %v (rotation order: audit.log.3.xz first)", rounds, want)
	}
	var names []string
	for _, in := range sum.Inputs {
		names = append(names, filepath.Base(in.Name))
		if in.Records == 0 || in.Malformed != 0 {
			t.Errorf("input %s: %+v, want records and no malformed line", in.Name, in.LogStats)
		}
	}
	if want := []string{"audit.log.3.xz", "audit.log.2.zst", "audit.log.1.gz", "audit.log"}; !slices.Equal(names, want) {
		t.Errorf("inputs read = %v, want %v", names, want)
	}
	if sum.Alerts != uint64(len(alerts)) || sum.Alerts < 7 {
		t.Errorf("summary alerts = %d, alert lines %d, want equal and at least 7", sum.Alerts, len(alerts))
	}
	if strings.Contains(logs, "level=warning") {
		t.Errorf("warnings logged:\n%s", logs)
	}
}

// TestReplayGlobAndSinceUntil reads the rotated logs through a glob, keeping
// only the time of the newest file.
func TestReplayGlobAndSinceUntil(t *testing.T) {
	all, sum, _, err := replayForTest(t, "", ReplayOptions{Inputs: []string{rotatedDir + "/audit.log*"}})
	if err != nil {
		t.Fatalf("ReplayLogs: %v", err)
	}
	newest := sum.Inputs[len(sum.Inputs)-1]
	since := newest.First
	got, _, _, err := replayForTest(t, "", ReplayOptions{Inputs: []string{rotatedDir}, Since: since, Until: newest.Last.Add(time.Millisecond)})
	if err != nil {
		t.Fatalf("ReplayLogs --since: %v", err)
	}
	if len(got) == 0 || len(got) >= len(all) {
		t.Fatalf("--since %v gave %d alerts of %d, want some but fewer", since, len(got), len(all))
	}
	for _, a := range got {
		if r := roundOf(a); r > 0 {
			t.Errorf("--since %v kept an alert of round %d, want round 0 only", since, r)
		}
	}
	none, _, _, err := replayForTest(t, "", ReplayOptions{Inputs: []string{rotatedDir}, Until: sum.First})
	if err != nil || len(none) != 0 {
		t.Errorf("--until the first record: %d alerts, %v, want none", len(none), err)
	}
}

// twoHostLog writes a log aggregated from three hosts (node= prefixes):
// web-1 and web-2 use the same serials, their records interleaved, and
// db-1's serials lie millions away. Every event is a base64 run.
func twoHostLog(t *testing.T, n int) string {
	t.Helper()
	captured, err := os.ReadFile("../../testdata/replay-audit.log")
	if err != nil {
		t.Fatal(err)
	}
	var event []string // the records of serial 6: /usr/bin/base64 --decode /etc/hostname
	for _, l := range strings.Split(string(captured), "\n") {
		if strings.Contains(l, ":6): ") {
			event = append(event, l)
		}
	}
	rec := func(node string, serial, i int) string {
		l := strings.Replace(event[i], ":6): ", fmt.Sprintf(":%d): ", serial), 1)
		return "node=" + node + " " + l + "\n"
	}
	var b strings.Builder
	for i := range n {
		for r := range event {
			b.WriteString(rec("web-1", 1000+i, r))
			b.WriteString(rec("web-2", 1000+i, r))
		}
		for r := range event {
			b.WriteString(rec("db-1", 7_000_000+i, r))
		}
	}
	path := filepath.Join(t.TempDir(), "central.log")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestReplayMultiHostCollidingSerials replays a central auditd's log: the
// same serials from two hosts stay two events each, a host with far-away
// serials loses nothing, and every alert names its record's host.
func TestReplayMultiHostCollidingSerials(t *testing.T) {
	const n = 500
	alerts, sum, _, err := replayForTest(t, encoderPolicy, ReplayOptions{Inputs: []string{twoHostLog(t, n)}})
	if err != nil {
		t.Fatalf("ReplayLogs: %v", err)
	}
	type key struct {
		host   string
		serial uint64
	}
	seen := map[key]int{}
	byHost := map[string]int{}
	for _, a := range alerts {
		seen[key{a.Host, a.Audit.Serial}]++
		byHost[a.Host]++
	}
	for host, base := range map[string]uint64{"web-1": 1000, "web-2": 1000, "db-1": 7_000_000} {
		if byHost[host] != n {
			t.Errorf("alerts of %s = %d, want %d", host, byHost[host], n)
		}
		for i := range uint64(n) {
			if seen[key{host, base + i}] != 1 {
				t.Errorf("host %s serial %d: %d alerts, want 1", host, base+i, seen[key{host, base + i}])
				break
			}
		}
	}
	if len(sum.ByHost) != 3 || sum.Events != 3*n {
		t.Errorf("summary by host %v, events %d, want 3 hosts and %d events", sum.ByHost, sum.Events, 3*n)
	}
}

// TestReplayJournalExport reads a journal export file (journalctl -o
// export), and the same through --journal with a stand-in journalctl.
func TestReplayJournalExport(t *testing.T) {
	const export = "../../testdata/journal-audit.export"
	fromFile, sum, logs, err := replayForTest(t, "", ReplayOptions{Inputs: []string{export}})
	if err != nil {
		t.Fatalf("ReplayLogs: %v", err)
	}
	rotated, _, _, err := replayForTest(t, "", ReplayOptions{Inputs: []string{rotatedDir + "/audit.log"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(fromFile) == 0 || len(fromFile) != len(rotated) {
		t.Errorf("journal export gave %d alerts, the same records as a log %d, want equal and some", len(fromFile), len(rotated))
	}
	for i := range min(len(fromFile), len(rotated)) {
		if fromFile[i].Audit.Serial != rotated[i].Audit.Serial || fromFile[i].Host != "vm" {
			t.Errorf("journal alert %d = %+v, want serial %d on host vm", i, fromFile[i], rotated[i].Audit.Serial)
		}
	}
	if in := sum.Inputs[0]; in.Malformed != 0 || strings.Contains(logs, "level=warning") {
		t.Errorf("journal export: %+v, warnings %q, want none malformed", in.LogStats, logs)
	}

	dir := t.TempDir()
	argsFile := filepath.Join(dir, "args")
	abs, _ := filepath.Abs(export)
	script := "#!/bin/sh\necho \"$@\" > " + argsFile + "\nexec cat " + abs + "\n"
	fake := filepath.Join(dir, "journalctl")
	if err := os.WriteFile(fake, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	since := time.Unix(1795946963, 0)
	viaCmd, _, _, err := replayForTest(t, "", ReplayOptions{Inputs: []string{JournalInput}, Journalctl: fake, Since: since})
	if err != nil {
		t.Fatalf("ReplayLogs --journal: %v", err)
	}
	if len(viaCmd) != len(fromFile) {
		t.Errorf("--journal gave %d alerts, want %d", len(viaCmd), len(fromFile))
	}
	args, _ := os.ReadFile(argsFile)
	if want := "--no-pager -o export _TRANSPORT=audit --since=@1795946963\n"; string(args) != want {
		t.Errorf("journalctl args = %q, want %q", args, want)
	}
}

// TestReplayGarbageFile replays a file of random bytes and text: ten
// warnings with file and line, one count, and an error.
func TestReplayGarbageFile(t *testing.T) {
	var b bytes.Buffer
	for i := range 2000 {
		fmt.Fprintf(&b, "\x00\x01garbage %d \xff\xfe type\n", i)
	}
	path := filepath.Join(t.TempDir(), "garbage.bin")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	_, sum, logs, err := replayForTest(t, "", ReplayOptions{Inputs: []string{path, rotatedDir + "/audit.log"}})
	if err == nil || !strings.Contains(err.Error(), path+": not an audit log") {
		t.Errorf("ReplayLogs error = %v, want %s: not an audit log", err, path)
	}
	const shown = 10 // malformed lines named; the rest are counted
	if got := strings.Count(logs, `msg="skipping malformed audit record"`); got != shown {
		t.Errorf("malformed-line warnings = %d, want %d:\n%s", got, shown, logs)
	}
	if !strings.Contains(logs, "file="+path) || !strings.Contains(logs, "line=10\n") {
		t.Errorf("warnings do not name the file and line:\n%s", logs)
	}
	if !strings.Contains(logs, "malformed=2000") || strings.Count(logs, "\n") > shown+3 {
		t.Errorf("want ten warnings, then one count of 2000 for the file:\n%s", logs)
	}
	if sum.Malformed() != 2000 || len(sum.Inputs) != 2 || sum.Inputs[1].Records == 0 {
		t.Errorf("summary = %+v, want 2000 malformed and the next input still read", sum)
	}
}

// TestReplayMissingInput fails clearly on a path that does not exist, after
// reading the inputs that do.
func TestReplayMissingInput(t *testing.T) {
	alerts, _, _, err := replayForTest(t, "", ReplayOptions{Inputs: []string{"/nonexistent/audit.log", rotatedDir}})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/audit.log") {
		t.Errorf("ReplayLogs error = %v, want one naming the path", err)
	}
	if len(alerts) == 0 {
		t.Errorf("ReplayLogs gave no alert, want the other input still read")
	}
	_, _, _, err = replayForTest(t, "", ReplayOptions{Inputs: []string{"/nonexistent/*.log"}})
	if err == nil || !strings.Contains(err.Error(), "no file matches") {
		t.Errorf("ReplayLogs glob error = %v, want no file matches", err)
	}
}

// TestReplayProgressReports checks the progress callback: bytes read of
// the total, ending with Done.
func TestReplayProgressReports(t *testing.T) {
	var got []ReplayProgress
	_, _, _, err := replayForTest(t, "", ReplayOptions{Inputs: []string{rotatedDir}, Progress: func(p ReplayProgress) { got = append(got, p) }})
	if err != nil {
		t.Fatal(err)
	}
	last := got[len(got)-1]
	if !last.Done || last.BytesRead != last.BytesTotal || last.BytesTotal == 0 || last.Records == 0 || last.Alert == 0 {
		t.Errorf("last progress = %+v, want done with every byte of the total read", last)
	}
}
