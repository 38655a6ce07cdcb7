package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hookReceiver is a webhook receiver that refuses everything (503) until
// up is set, and records the alert ids it accepted.
type hookReceiver struct {
	up   atomic.Bool
	mu   sync.Mutex
	seen map[string]int
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.up.Load() {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	var alerts []struct{ ID string }
	if err := json.NewDecoder(r.Body).Decode(&alerts); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	for _, a := range alerts {
		h.seen[a.ID]++
	}
	h.mu.Unlock()
}

func (h *hookReceiver) distinct() (n, dup int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.seen {
		if c > 1 {
			dup++
		}
	}
	return len(h.seen), dup
}

// TestSpooledAlertsSurviveKill9AsRoot runs the real binary as an audisp
// plugin (records on stdin, so no kernel is needed; root because the daemon
// only loads a root-owned policy) with an HTTP sink whose receiver is down:
// the alerts wait in the sink's disk spool, the daemon is killed with
// SIGKILL, and a restarted daemon delivers every one of them.
func TestSpooledAlertsSurviveKill9AsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("needs root: the daemon loads only a root-owned policy")
		}
		t.Skip("!!! SKIPPED: needs root (the daemon loads only a root-owned policy)")
	}
	bin := buildEncwatch(t)
	recv := &hookReceiver{seen: map[string]int{}}
	srv := httptest.NewServer(recv)
	defer srv.Close()

	dir := t.TempDir()
	metrics := freeAddr(t)
	policy := filepath.Join(dir, "config.hcl")
	src := fmt.Sprintf(`
signature "enc" {
  importance  = "high"
  executables = ["base64"]
}
audit {
  mode = "audisp"
}
metrics {
  address = %q
}
sink "http" "hook" {
  url  = %q
  kind = "webhook"
  spool {
    dir = %q
  }
}
`, metrics, srv.URL, filepath.Join(dir, "spool"))
	if err := os.WriteFile(policy, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}

	const n = 40
	records := base64Events(t, n)

	// First life: every alert goes to the spool, the receiver refuses them.
	first := exec.Command(bin, "run", "--config", policy)
	stdin, err := first.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	first.Stderr = io.Discard
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer first.Process.Kill()
	if _, err := io.WriteString(stdin, records); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, metrics, `encwatch_sink_queue_depth{sink="hook"}`, n)
	if err := first.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	first.Wait()
	if got, _ := recv.distinct(); got != 0 {
		t.Fatalf("receiver accepted %d alerts while down", got)
	}

	// Second life: the receiver is up; the spool is replayed.
	recv.up.Store(true)
	second := exec.Command(bin, "run", "--config", policy)
	stdin2, err := second.StdinPipe() // kept open: audisp mode ends when stdin does
	if err != nil {
		t.Fatal(err)
	}
	defer stdin2.Close()
	var logs2 syncBuf
	second.Stderr = &logs2
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		second.Process.Signal(os.Interrupt)
		second.Wait()
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got, dup := recv.distinct()
		if got == n {
			if dup != 0 {
				t.Errorf("%d alerts delivered more than once after the restart", dup)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after kill -9 and restart the receiver has %d of %d alerts; daemon logs:\n%s", got, n, logs2.String())
		}
		time.Sleep(20 * time.Millisecond) // polling the receiver
	}
}

// base64Events returns n copies, with their own serials, of the captured
// records of one /usr/bin/base64 exec (serial 6 of the replay log).
func base64Events(t *testing.T, n int) string {
	t.Helper()
	b, err := os.ReadFile("../../testdata/replay-audit.log")
	if err != nil {
		t.Fatal(err)
	}
	var event []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, ":6): ") {
			event = append(event, l)
		}
	}
	var out strings.Builder
	for i := range n {
		for _, l := range event {
			out.WriteString(strings.Replace(l, ":6): ", fmt.Sprintf(":%d): ", 1000+i), 1) + "\n")
		}
	}
	return out.String()
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitMetric polls /metrics until the sample named by series reaches want.
func waitMetric(t *testing.T, addr, series string, want float64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
					last = v
					if f, err := strconv.ParseFloat(v, 64); err == nil && f >= want {
						resp.Body.Close()
						return
					}
				}
			}
			resp.Body.Close()
		}
		time.Sleep(20 * time.Millisecond) // polling the endpoint
	}
	t.Fatalf("%s did not reach %v (last %q)", series, want, last)
}

// syncBuf is a buffer a child's stderr copier and the test can share.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
