package daemon

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	libaudit "github.com/elastic/go-libaudit/v2"
	"github.com/elastic/go-libaudit/v2/aucoalesce"
	"github.com/elastic/go-libaudit/v2/auparse"
	"github.com/klauspost/compress/gzip"
	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/internal/config"
)

// benchLogBytes is the size of the log BenchmarkReplayLog generates.
const benchLogBytes = 50 << 20

// alertEvery is how rarely (in rounds of the capture) the bench log keeps
// the capture's alerting events.
const alertEvery = 100

// stampRE finds a record's audit(SECONDS.MILLIS:SERIAL) stamp.
var stampRE = regexp.MustCompile(`audit\((\d+)\.(\d+):(\d+)\)`)

// writeBenchLog writes a ~50 MB auditd log to dir: the rotated capture's
// newest log (execs of benign commands, base64 decodes, a decode piped to
// sh) repeated with fresh serials and times, its alerting events in one
// round of alertEvery, as auditd would have written a busy day.
func writeBenchLog(b *testing.B, dir string) (string, int64) {
	b.Helper()
	src, err := os.ReadFile(filepath.Join(rotatedDir, "audit.log"))
	if err != nil {
		b.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSpace(string(src)), "\n")
	// The serials of the alerting events (base64, the sh pipeline): kept
	// in one round of alertEvery, so that alerts are rare, as in a real log.
	alerting := map[string]bool{}
	for _, l := range lines {
		if strings.Contains(l, "base64") || strings.Contains(l, "6261736536") {
			alerting[stampRE.FindStringSubmatch(l)[3]] = true
		}
	}
	path := filepath.Join(dir, "audit.log")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var n int64
	for round := 0; n < benchLogBytes; round++ {
		for _, l := range lines {
			if alerting[stampRE.FindStringSubmatch(l)[3]] && round%alertEvery != 0 {
				continue
			}
			l = stampRE.ReplaceAllStringFunc(l, func(m string) string {
				p := stampRE.FindStringSubmatch(m)
				sec, _ := strconv.Atoi(p[1])
				serial, _ := strconv.Atoi(p[3])
				return fmt.Sprintf("audit(%d.%s:%d)", sec+round, p[2], serial+round*100)
			})
			if !strings.HasSuffix(l, "\n") {
				l += "\n"
			}
			k, _ := w.WriteString(l)
			n += int64(k)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	return path, n
}

// BenchmarkReplayLog replays a generated ~50 MB auditd log through the
// whole replay pipeline (read, assemble, detect with the default policy,
// JSON out), plain and gzip'd, side by side with ausearch -m EXECVE and
// with go-libaudit doing the read
// and assemble part alone on the same bytes (auparse.ParseLogLine,
// Reassembler, aucoalesce). MB/s is of the plain log in each case.
func BenchmarkReplayLog(b *testing.B) {
	dir := b.TempDir()
	plain, size := writeBenchLog(b, dir)
	gz := plain + ".gz"
	if err := gzipFile(plain, gz); err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Load("../../config.hcl", config.LoadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	replay := func(b *testing.B, name string) {
		b.SetBytes(size)
		for b.Loop() {
			s, err := ReplayLogs(context.Background(), cfg, logrus.NewEntry(quiet), ReplayOptions{Inputs: []string{name}, Out: io.Discard})
			if err != nil || s.Alerts == 0 {
				b.Fatalf("replay %s: %v, %d alerts", name, err, s.Alerts)
			}
		}
	}
	b.Run("encwatch-plain", func(b *testing.B) { replay(b, plain) })
	b.Run("encwatch-gzip", func(b *testing.B) { replay(b, gz) })
	b.Run("ausearch-plain", func(b *testing.B) {
		// ausearch -m EXECVE: a filter that decides nothing, the yardstick
		// replay is held to (docs/performance.md), in the same run.
		bin, err := exec.LookPath("ausearch")
		if err != nil {
			b.Skip("ausearch is not installed (Debian package auditd)")
		}
		// Its output goes to /dev/null, as encwatch's goes to io.Discard;
		// ausearch exits 1 when nothing matched.
		null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		defer null.Close()
		b.SetBytes(size)
		for b.Loop() {
			cmd := exec.Command(bin, "-m", "EXECVE", "-if", plain)
			var stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = null, &stderr
			if err := cmd.Run(); err != nil {
				b.Fatalf("ausearch: %v: %s", err, stderr.Bytes())
			}
		}
	})
	b.Run("go-libaudit-plain", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			if n := libauditEvents(b, plain); n == 0 {
				b.Fatal("go-libaudit assembled no event")
			}
		}
	})
}

// libauditEvents reads path with go-libaudit and counts its coalesced
// events.
func libauditEvents(b *testing.B, path string) int {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	st := &libauditCollector{}
	ra, err := libaudit.NewReassembler(4096, 2*time.Second, st)
	if err != nil {
		b.Fatal(err)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		msg, err := auparse.ParseLogLine(sc.Text())
		if err != nil {
			continue
		}
		ra.PushMessage(msg)
	}
	ra.Close()
	return st.events
}

// libauditCollector coalesces each reassembled event, as encwatch turns
// records into an Event.
type libauditCollector struct{ events int }

func (c *libauditCollector) ReassemblyComplete(msgs []*auparse.AuditMessage) {
	if _, err := aucoalesce.CoalesceMessages(msgs); err == nil {
		c.events++
	}
}

func (c *libauditCollector) EventsLost(int) {}

// gzipFile writes src gzip'd (default level) to dst.
func gzipFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	z := gzip.NewWriter(&buf)
	if _, err := z.Write(data); err != nil {
		return err
	}
	if err := z.Close(); err != nil {
		return err
	}
	return os.WriteFile(dst, buf.Bytes(), 0o600)
}
