package daemon

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/internal/audittest"
	"github.com/encwatch/encwatch/internal/config"
)

var update = flag.Bool("update", false, "rewrite testdata/replay-formats.golden from testdata/replay-audit.log")

// formatsGolden holds the alerts of testdata/replay-audit.log, without the
// fields that name the host (host, audit.node, and id, which hashes the
// host): what every
// other framing of that log must replay to.
const formatsGolden = "../../testdata/replay-formats.golden"

// replayedAlert is one alert line of a replay: its host, and the line
// without host, id and audit.node.
type replayedAlert struct {
	host string
	rest string
}

// replayShipped replays path with the shipped policy and returns its alert
// lines and summary; it fails the test on any error.
func replayShipped(t *testing.T, path string) ([]string, ReplaySummary) {
	t.Helper()
	cfg, err := config.Load("../../config.hcl", config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	var out bytes.Buffer
	s, err := ReplayLogs(context.Background(), cfg, logrus.NewEntry(log), ReplayOptions{Inputs: []string{path}, Out: &out})
	if err != nil {
		t.Fatalf("ReplayLogs(%s) = %v", path, err)
	}
	return strings.Split(strings.TrimSpace(out.String()), "\n"), s
}

// replayFile replays path with the shipped policy and returns its alerts
// and summary; it fails the test on any error.
func replayFile(t *testing.T, path string) ([]replayedAlert, ReplaySummary) {
	t.Helper()
	lines, s := replayShipped(t, path)
	var alerts []replayedAlert
	for _, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("alert line is not JSON: %v: %q", err, line)
		}
		host, _ := m["host"].(string)
		delete(m, "host")
		delete(m, "id")
		if au, ok := m["audit"].(map[string]any); ok {
			// The record's node, which a syslog HOSTNAME supplies: it
			// must be the alert's host.
			if node, ok := au["node"].(string); ok && node != host {
				t.Errorf("alert of %s: audit.node %q, host %q", path, node, host)
			}
			delete(au, "node")
		}
		b, err := json.Marshal(m) // keys sorted: a stable form
		if err != nil {
			t.Fatal(err)
		}
		alerts = append(alerts, replayedAlert{host, string(b)})
	}
	return alerts, s
}

func rests(alerts []replayedAlert) string {
	var b strings.Builder
	for _, a := range alerts {
		b.WriteString(a.rest)
		b.WriteByte('\n')
	}
	return b.String()
}

// TestReplayFormats replays each framing of the captured log (ausearch's
// output, rsyslog's files, the kernel's printk form) and wants the plain
// log's alerts, with no malformed line, and the syslog HOSTNAME as the host
// where there is one. The files and how each was made: testdata/README.md.
func TestReplayFormats(t *testing.T) {
	plain, _ := replayFile(t, "../../testdata/replay-audit.log")
	if *update {
		if err := os.WriteFile(formatsGolden, []byte(rests(plain)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(formatsGolden)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rests(plain), string(golden); got != want {
		t.Fatalf("plain log alerts differ from %s (run with -update if the change is intended):\ngot\n%s\nwant\n%s", formatsGolden, got, want)
	}
	tests := []struct {
		name     string
		file     string
		wantHost string // "": the plain log's (this machine's)
	}{
		{"ausearch", "ausearch/replay-audit.ausearch", ""},
		{"ausearch -i, UTC", "ausearch/replay-audit.ausearch-i", ""},
		{"laurel JSON", "evidence/replay-audit.laurel.json", ""},
		{"rfc3164", "syslog/replay-audit.rfc3164.log", "vm"},
		{"rfc3164 with rfc3339 time", "syslog/replay-audit.rfc3339.log", "vm"},
		{"rfc5424", "syslog/replay-audit.rfc5424.log", "vm"},
		{"enriched", "enriched/replay-audit-enriched.log", ""},
		{"rfc3164 enriched, 0x1d escaped by rsyslog", "syslog/replay-audit-enriched.rfc3164.log", "vm"},
		{"kernel printk", "kmsg/replay-audit.kmsg", ""},
		{"journalctl short kernel", "kmsg/replay-audit.journal-short", "vm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, s := replayFile(t, "../../testdata/"+tt.file)
			if n := s.Malformed(); n != 0 {
				t.Errorf("replay %s: %d malformed lines, want 0", tt.file, n)
			}
			if g, w := rests(got), string(golden); g != w {
				t.Errorf("replay %s alerts:\n%s\nwant\n%s", tt.file, g, w)
			}
			for i, a := range got {
				want := tt.wantHost
				if want == "" && i < len(plain) {
					want = plain[i].host
				}
				if a.host != want {
					t.Errorf("replay %s alert %d host = %q, want %q", tt.file, i, a.host, want)
				}
			}
		})
	}
}

// TestReplayMixedFile replays a file whose lines alternate between a plain
// log (this machine's records) and another host's log forwarded through
// rsyslog: each host's alerts are those of its own log replayed alone.
func TestReplayMixedFile(t *testing.T) {
	got, s := replayFile(t, "../../testdata/mixed/plain-and-rfc3164.log")
	if n := s.Malformed(); n != 0 {
		t.Errorf("mixed replay: %d malformed lines, want 0", n)
	}
	var local, web1 []replayedAlert
	for _, a := range got {
		if a.host == "web1" {
			web1 = append(web1, a)
		} else {
			local = append(local, a)
		}
	}
	plain, _ := replayFile(t, "../../testdata/replay-audit.log")
	other, _ := replayFile(t, "../../testdata/replay-rotated/audit.log")
	if g, w := rests(local), rests(plain); g != w {
		t.Errorf("mixed replay, plain lines' alerts:\n%s\nwant\n%s", g, w)
	}
	if g, w := rests(web1), rests(other); g != w {
		t.Errorf("mixed replay, web1's alerts:\n%s\nwant\n%s", g, w)
	}
}

// TestReplayProctitleArgs replays the captured base64 exec (serial 6) with
// its EXECVE record removed, as a forwarder that drops it would leave it,
// in three framings: plain, ausearch's (records last first, which once
// split the event so that its SYSCALL half had no proctitle and alerted
// with "args": []) and behind a bare-tag syslog header. argv comes from
// PROCTITLE, and the alert says so.
func TestReplayProctitleArgs(t *testing.T) {
	src, err := os.ReadFile("../../testdata/replay-audit.log")
	if err != nil {
		t.Fatal(err)
	}
	var event []string
	for _, l := range strings.Split(string(src), "\n") {
		if strings.Contains(l, "msg=audit(1795759259.157:6)") && !strings.HasPrefix(l, "type=EXECVE") {
			event = append(event, l)
		}
	}
	reversed := slices.Clone(event)
	slices.Reverse(reversed)
	var syslog []string
	for _, l := range event {
		syslog = append(syslog, "Mar  5 17:38:33 web1 tag_audit "+l)
	}
	tests := []struct {
		name     string
		lines    []string
		wantHost string
	}{
		{"plain", event, ""},
		{"ausearch", append([]string{"----", "time->Fri Nov 27 06:00:59 2026"}, reversed...), ""},
		{"syslog", syslog, "web1"},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name+".log")
			if err := os.WriteFile(path, []byte(strings.Join(tt.lines, "\n")+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			alerts, s := replayFile(t, path)
			if len(alerts) != 1 || s.Malformed() != 0 {
				t.Fatalf("replay %s: %d alerts, %d malformed lines, want 1 and 0", tt.name, len(alerts), s.Malformed())
			}
			var a struct {
				Process struct {
					Args       []string `json:"args"`
					ArgsSource string   `json:"args_source"`
				} `json:"process"`
				Audit struct {
					Records    int  `json:"records"`
					Incomplete bool `json:"incomplete"`
				} `json:"audit"`
			}
			if err := json.Unmarshal([]byte(alerts[0].rest), &a); err != nil {
				t.Fatal(err)
			}
			got := strings.Join(a.Process.Args, " ") + " from " + a.Process.ArgsSource
			if want := "/usr/bin/base64 --decode /etc/hostname from proctitle"; got != want {
				t.Errorf("replay %s: args %s, want %s", tt.name, got, want)
			}
			if a.Audit.Records != len(event) || a.Audit.Incomplete {
				t.Errorf("replay %s: event of %d records, incomplete %v; want %d, complete", tt.name, a.Audit.Records, a.Audit.Incomplete, len(event))
			}
			if tt.wantHost != "" && alerts[0].host != tt.wantHost {
				t.Errorf("replay %s: host %q, want %q", tt.name, alerts[0].host, tt.wantHost)
			}
		})
	}
}

// TestReplaySyslogWithOtherPrograms replays the rsyslog capture with other
// programs' lines between its records, as a host's forwarded syslog holds
// them, and one damaged audit line: the others are skipped and counted
// apart, the damaged one is malformed, and the alerts are the plain log's.
func TestReplaySyslogWithOtherPrograms(t *testing.T) {
	src, err := os.ReadFile("../../testdata/syslog/replay-audit.rfc3164.log")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i, l := range strings.SplitAfter(string(src), "\n") {
		if i%10 == 0 {
			b.WriteString("Dec  7 12:42:22 vm sshd[812]: Accepted publickey for root from 192.0.2.7 port 50522 ssh2\n")
			b.WriteString("<30>1 2026-12-07T12:42:22Z vm cron 901 - - (root) CMD (run-parts /etc/cron.hourly)\n")
		}
		b.WriteString(l)
	}
	b.WriteString("Dec  7 12:42:22 vm audispd: type=SYSCALL msg=audit(garbage\n")
	path := filepath.Join(t.TempDir(), "syslog")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	got, s := replayFile(t, path)
	golden, err := os.ReadFile(formatsGolden)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := rests(got), string(golden); g != w {
		t.Errorf("alerts:\n%s\nwant\n%s", g, w)
	}
	in := s.Inputs[0]
	if in.Foreign != 16 || in.Malformed != 1 {
		t.Errorf("replay: %d foreign and %d malformed lines, want 16 and 1", in.Foreign, in.Malformed)
	}
}

// TestReplayForwardedOpenssl is the case: a web host's records,
// forwarded through rsyslog with a bare tag (imfile's "tag_audit"), of an
// openssl run encrypting to base64. Derived from the captured base64 exec
// (serial 6) with openssl's executable and argv: it alerts, with the
// syslog HOSTNAME as host.
func TestReplayForwardedOpenssl(t *testing.T) {
	src, err := os.ReadFile("../../testdata/replay-audit.log")
	if err != nil {
		t.Fatal(err)
	}
	argv := []string{"openssl", "enc", "-aes-256-cbc", "-a", "-pbkdf2", "-in", "/var/www/db.sql"}
	r := strings.NewReplacer(
		`comm="base64" exe="/usr/bin/base64"`, `comm="openssl" exe="/usr/bin/openssl"`,
		`argc=3 a0="/usr/bin/base64" a1="--decode" a2="/etc/hostname"`, `argc=7 a0="openssl" a1="enc" a2="-aes-256-cbc" a3="-a" a4="-pbkdf2" a5="-in" a6="/var/www/db.sql"`,
		`name="/usr/bin/base64" inode=246996`, `name="/usr/bin/openssl" inode=251203`,
		"proctitle=2F7573722F62696E2F626173653634002D2D6465636F6465002F6574632F686F73746E616D65", "proctitle="+strings.ToUpper(hex.EncodeToString([]byte(strings.Join(argv, "\x00")))),
	)
	var b strings.Builder
	for _, l := range strings.Split(string(src), "\n") {
		if strings.Contains(l, "msg=audit(1795759259.157:6)") {
			b.WriteString("Mar  5 17:38:33 www-3 tag_audit " + r.Replace(l) + "\n")
		}
	}
	path := filepath.Join(t.TempDir(), "messages")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	alerts, s := replayFile(t, path)
	if len(alerts) != 1 || s.Malformed() != 0 {
		for _, a := range alerts {
			t.Log(a.rest)
		}
		t.Fatalf("replay: %d alerts, %d malformed lines, want 1 and 0", len(alerts), s.Malformed())
	}
	var a struct {
		Signature struct{ Name string } `json:"signature"`
		Process   struct {
			Args []string `json:"args"`
			Mode string   `json:"mode"`
		} `json:"process"`
	}
	if err := json.Unmarshal([]byte(alerts[0].rest), &a); err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%s on %s: %s (%s)", a.Signature.Name, alerts[0].host, strings.Join(a.Process.Args, " "), a.Process.Mode)
	if want := "data_encoder_exec on www-3: " + strings.Join(argv, " ") + " (encode)"; got != want {
		t.Errorf("alert = %s, want %s", got, want)
	}
}

// TestReplayRealRsyslog needs Debian's rsyslogd and util-linux's logger: it
// forwards testdata/replay-audit.log through a private rsyslogd now
// (testdata/syslog/capture.sh, the script that made the kept captures) and
// replays what rsyslog wrote, in each of its file formats.
func TestReplayRealRsyslog(t *testing.T) {
	audittest.Program(t, "/usr/sbin/rsyslogd", "rsyslog")
	audittest.Program(t, "logger", "bsdutils")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	dir := t.TempDir()
	cmd := exec.Command("../../testdata/syslog/capture.sh", "../../testdata/replay-audit.log", dir)
	cmd.Env = append(os.Environ(), "PORT="+port, "AS_HOST=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("capture.sh: %v\n%s", err, out)
	}
	golden, err := os.ReadFile(formatsGolden)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"rfc3164", "rfc3339", "rfc5424"} {
		got, s := replayFile(t, filepath.Join(dir, "replay-audit."+f+".log"))
		if n := s.Malformed(); n != 0 {
			t.Errorf("replay of rsyslog's %s file: %d malformed lines, want 0", f, n)
		}
		if g, w := rests(got), string(golden); g != w {
			t.Errorf("replay of rsyslog's %s file:\n%s\nwant\n%s", f, g, w)
		}
	}
}
