package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
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
	rootOnly(t)
	bin := buildEncwatch(t)
	recv := &hookReceiver{seen: map[string]int{}}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	_, metrics, policy := spooledWebhookPolicy(t, srv.URL)

	const n = 40
	records := b64Events(t, 1000, n)

	// First life: every alert goes to the spool, the receiver refuses them.
	first := &daemonProc{args: []string{"run", "--config", policy}}
	first.start(t, bin)
	defer first.kill()
	if _, err := io.WriteString(first.stdin, records); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, metrics, `encwatch_sink_queue_depth{sink="hook"}`, n)
	first.kill()
	if got, _ := recv.distinct(); got != 0 {
		t.Fatalf("receiver accepted %d alerts while down", got)
	}

	// Second life: the receiver is up; the spool is replayed.
	recv.up.Store(true)
	second := &daemonProc{args: []string{"run", "--config", policy}}
	second.start(t, bin)
	defer second.stop()
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
			t.Fatalf("after kill -9 and restart the receiver has %d of %d alerts; daemon logs:\n%s", got, n, second.logs.String())
		}
		time.Sleep(20 * time.Millisecond) // polling the receiver
	}
}

// spooledWebhookPolicy writes an audisp policy with a webhook sink to url,
// spooled on disk, serving metrics on a free loopback port; it returns the
// policy's directory, the metrics address and the policy's path.
func spooledWebhookPolicy(t *testing.T, url string) (dir, metrics, policy string) {
	t.Helper()
	dir = t.TempDir()
	metrics = freeAddr(t)
	policy = filepath.Join(dir, "config.hcl")
	writePolicy(t, policy, audispPolicy(metrics, fmt.Sprintf(`
sink "http" "hook" {
  url  = %q
  kind = "webhook"
  spool {
    dir = %q
  }
}
`, url, filepath.Join(dir, "spool"))))
	return dir, metrics, policy
}
