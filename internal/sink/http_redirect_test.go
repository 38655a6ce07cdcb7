package sink

import (
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/encwatch/encwatch/detect"
)

// recorder is an HTTP receiver that records what reaches it.
type recorder struct {
	mu    sync.Mutex
	seen  []string // "METHOD Authorization"
	reply int
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.seen = append(r.seen, req.Method+" "+req.Header.Get("Authorization"))
	r.mu.Unlock()
	if r.reply != 0 {
		w.WriteHeader(r.reply)
	}
}

func (r *recorder) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

// TestHTTPRedirectNotFollowed: a 307 from https to http must not re-send
// the token in clear text, and a 302 (which net/http turns into a GET)
// must not count as delivered. Each 3xx is a failed send, retried.
func TestHTTPRedirectNotFollowed(t *testing.T) {
	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			plain := &recorder{}
			target := httptest.NewServer(plain)
			defer target.Close()
			redirector := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target.URL+"/stolen", status)
			}))
			defer redirector.Close()

			dir := t.TempDir()
			ca := filepath.Join(dir, "ca.pem")
			if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: redirector.Certificate().Raw}), 0o644); err != nil {
				t.Fatal(err)
			}
			tokenFile := filepath.Join(dir, "token")
			if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			sinks, err := Build(decodeSinks(t, fmt.Sprintf(`
sink "webhook" "hook" {
  url        = %q
  token_file = %q
  tls { ca_file = %q }
}`, redirector.URL+"/hook", tokenFile, ca)), BuildOptions{Log: discardLog()})
			if err != nil {
				t.Fatal(err)
			}
			r := NewRouter(discardLog(), sinks, RouterOptions{RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond, DrainTimeout: 200 * time.Millisecond})
			done := start(r, t.Context())
			r.Deliver(alertN(1))
			deadline := time.Now().Add(5 * time.Second)
			for r.Stats()[0].Failed < 3 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond) // polling for attempts, not waiting out a timeout
			}
			r.Close()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			st := r.Stats()[0]
			if st.Failed < 3 || st.Sent != 0 || st.Rejected != 0 {
				t.Errorf("after a %d: stats %+v, want repeated failed sends, none sent or rejected", status, st)
			}
			if got := plain.requests(); len(got) != 0 {
				t.Errorf("redirect target got %q, want no request", got)
			}
			err = sinks[0].Send(t.Context(), []detect.Alert{alertN(2)})
			if err == nil || errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "not followed") || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("Send = %v, want a retryable redirect-not-followed error without the token", err)
			}
		})
	}
}
