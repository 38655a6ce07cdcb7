package sink

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/detect"
)

// fakeElastic behaves like Elasticsearch's _bulk endpoint: create actions,
// 409 for an _id it already has, per-item failures on request.
type fakeElastic struct {
	mu       sync.Mutex
	docs     map[string]json.RawMessage
	creates  int            // create actions seen, duplicates included
	status   int            // when not 0, answer every request with it
	itemFail map[string]int // _id -> status to answer for it (once if retryable)
}

func newFakeElastic() *fakeElastic {
	return &fakeElastic{docs: map[string]json.RawMessage{}, itemFail: map[string]int{}}
}

func (f *fakeElastic) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.status != 0 {
		http.Error(w, `{"error":"unavailable"}`, f.status)
		return
	}
	if r.URL.Path != "/_bulk" || r.Header.Get("Content-Type") != "application/x-ndjson" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(nil, 1<<20)
	type result struct {
		Index  string `json:"_index"`
		ID     string `json:"_id"`
		Status int    `json:"status"`
		Error  *struct {
			Type   string `json:"type"`
			Reason string `json:"reason"`
		} `json:"error,omitempty"`
	}
	var items []map[string]result
	errs := false
	for sc.Scan() {
		var action struct {
			Create struct {
				Index string `json:"_index"`
				ID    string `json:"_id"`
			} `json:"create"`
		}
		if err := json.Unmarshal(sc.Bytes(), &action); err != nil || action.Create.ID == "" {
			http.Error(w, "bad action", http.StatusBadRequest)
			return
		}
		if !sc.Scan() {
			http.Error(w, "no document", http.StatusBadRequest)
			return
		}
		doc := json.RawMessage(slices.Clone(sc.Bytes()))
		if !json.Valid(doc) {
			http.Error(w, "bad document", http.StatusBadRequest)
			return
		}
		f.creates++
		id := action.Create.ID
		res := result{Index: action.Create.Index, ID: id, Status: http.StatusCreated}
		if st, ok := f.itemFail[id]; ok {
			res.Status = st
			res.Error = &struct {
				Type   string `json:"type"`
				Reason string `json:"reason"`
			}{"failure", "as configured"}
			if retryable(st) {
				delete(f.itemFail, id)
			}
		} else if _, dup := f.docs[id]; dup {
			res.Status = http.StatusConflict
			res.Error = &struct {
				Type   string `json:"type"`
				Reason string `json:"reason"`
			}{"version_conflict_engine_exception", "document already exists"}
		} else {
			f.docs[id] = doc
		}
		errs = errs || res.Error != nil
		items = append(items, map[string]result{"create": res})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"took": 1, "errors": errs, "items": items})
}

func (f *fakeElastic) ids() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for id := range f.docs {
		out = append(out, id)
	}
	slices.SortFunc(out, func(a, b string) int { x, _ := strconv.Atoi(a); y, _ := strconv.Atoi(b); return x - y })
	return out
}

func TestElasticBulk(t *testing.T) {
	es := newFakeElastic()
	srv := httptest.NewServer(es)
	defer srv.Close()
	s, err := NewElasticsearch("es", ElasticsearchOptions{HTTP: HTTPOptions{URL: srv.URL}, Format: mustFormat(t, "ecs"), JSONFormat: true})
	if err != nil {
		t.Fatal(err)
	}
	batch := []detect.Alert{alertN(0), alertN(1), alertN(2), alertN(3)}
	es.itemFail["1"] = http.StatusTooManyRequests    // once
	es.itemFail["2"] = http.StatusServiceUnavailable // once
	err = s.Send(t.Context(), batch)
	if err == nil || errors.Is(err, ErrPermanent) {
		t.Fatalf("Send with retryable item failures = %v, want a retryable error", err)
	}
	if err := s.Send(t.Context(), batch); err != nil {
		t.Fatalf("resend = %v, want nil (409s for what was created)", err)
	}
	if got, want := es.ids(), ids(4); !slices.Equal(got, want) {
		t.Errorf("index holds %v, want %v", got, want)
	}

	es.itemFail["5"] = http.StatusBadRequest // mapping error: for good
	err = s.Send(t.Context(), []detect.Alert{alertN(4), alertN(5), alertN(6)})
	var rej *RejectedError
	if !errors.As(err, &rej) || rej.Count != 1 {
		t.Fatalf("Send with a 400 item = %v, want RejectedError{Count: 1}", err)
	}

	es.status = http.StatusBadRequest
	if err := s.Send(t.Context(), batch); !errors.Is(err, ErrPermanent) {
		t.Errorf("Send answered 400 = %v, want ErrPermanent", err)
	}
	es.status = http.StatusServiceUnavailable
	if err := s.Send(t.Context(), batch); err == nil || errors.Is(err, ErrPermanent) {
		t.Errorf("Send answered 503 = %v, want a retryable error", err)
	}
}

// fakeSplunk behaves like Splunk HEC: token check, concatenated events,
// indexer acknowledgement acked on the second poll.
type fakeSplunk struct {
	token string
	ack   bool

	mu     sync.Mutex
	events []map[string]any
	polls  map[int]int
	nextID int
}

func (f *fakeSplunk) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Splunk "+f.token {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"text":"Invalid token","code":4}`)
		return
	}
	channel := r.Header.Get("X-Splunk-Request-Channel")
	if f.ack && channel == "" {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"text":"Data channel is missing","code":10}`)
		return
	}
	switch r.URL.Path {
	case "/services/collector/event":
		dec := json.NewDecoder(r.Body)
		var batch []map[string]any
		for dec.More() {
			var ev map[string]any
			if err := dec.Decode(&ev); err != nil {
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprint(w, `{"text":"Invalid data format","code":6}`)
				return
			}
			if _, ok := ev["event"].(map[string]any); !ok {
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprint(w, `{"text":"Event field is required","code":12}`)
				return
			}
			batch = append(batch, ev)
		}
		f.events = append(f.events, batch...)
		if f.ack {
			fmt.Fprintf(w, `{"text":"Success","code":0,"ackId":%d}`, f.nextID)
			f.nextID++
			return
		}
		fmt.Fprint(w, `{"text":"Success","code":0}`)
	case "/services/collector/ack":
		var req struct{ Acks []int }
		_ = json.NewDecoder(r.Body).Decode(&req)
		acks := map[string]bool{}
		for _, id := range req.Acks {
			f.polls[id]++
			acks[strconv.Itoa(id)] = f.polls[id] >= 2
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"acks": acks})
	default:
		http.NotFound(w, r)
	}
}

func TestSplunkHEC(t *testing.T) {
	const token = "s3cret-hec-token-0123"
	for _, ack := range []bool{false, true} {
		t.Run(fmt.Sprint("ack=", ack), func(t *testing.T) {
			hec := &fakeSplunk{token: token, ack: ack, polls: map[int]int{}}
			srv := httptest.NewServer(hec)
			defer srv.Close()
			tokenFile := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			l := logrus.New()
			l.SetOutput(&logs)
			l.SetLevel(logrus.DebugLevel)
			sinks, err := Build(decodeSinks(t, fmt.Sprintf(`
sink "http" "splunk" {
  url        = %q
  kind       = "splunk_hec"
  payload    = "ecs"
  token_file = %q
  splunk_ack = %v
}`, srv.URL, tokenFile, ack)), BuildOptions{Log: logrus.NewEntry(l)})
			if err != nil {
				t.Fatal(err)
			}
			s := sinks[0].(*Splunk)
			s.opts.AckPoll = 5 * time.Millisecond
			if err := s.Send(t.Context(), []detect.Alert{alertN(0), alertN(1), alertN(2)}); err != nil {
				t.Fatalf("Send = %v", err)
			}
			if got := len(hec.events); got != 3 {
				t.Errorf("HEC got %d events, want 3", got)
			}
			ev := hec.events[1]
			if ev["sourcetype"] != "encwatch:alert" || ev["event"].(map[string]any)["event"].(map[string]any)["id"] != "1" {
				t.Errorf("event 1 = %v", ev)
			}

			// A wrong token is refused for good, and never shows.
			s.t.auth = "Splunk wrong-" + token
			err = s.Send(t.Context(), []detect.Alert{alertN(3)})
			if !errors.Is(err, ErrPermanent) {
				t.Errorf("Send with a bad token = %v, want ErrPermanent", err)
			}
			if strings.Contains(err.Error(), token) || strings.Contains(logs.String(), token) {
				t.Errorf("the token appears in an error or the log: %v\n%s", err, logs.String())
			}
		})
	}
}

func TestWebhook(t *testing.T) {
	var got []string
	var hdr http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr = r.Header.Clone()
		var batch []struct{ ID string }
		if err := json.NewDecoder(r.Body).Decode(&batch); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, a := range batch {
			got = append(got, a.ID)
		}
	}))
	defer srv.Close()
	t.Setenv("ENCWATCH_TEST_TOKEN", "tok")
	sinks, err := Build(decodeSinks(t, fmt.Sprintf(`
sink "http" "hook" {
  url       = %q
  token_env = "ENCWATCH_TEST_TOKEN"
  headers   = { "X-Team" = "sec" }
}`, srv.URL+"/hook")), BuildOptions{Log: discardLog(), Version: "1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	a := hostileAlert()
	a.ID = "h"
	if err := sinks[0].Send(t.Context(), []detect.Alert{alertN(0), a}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"0", "h"}; !slices.Equal(got, want) {
		t.Errorf("webhook got %v, want %v", got, want)
	}
	if hdr.Get("Authorization") != "Bearer tok" || hdr.Get("X-Team") != "sec" || hdr.Get("User-Agent") != "encwatch/1.2.3" {
		t.Errorf("headers = %v", hdr)
	}
}

// outage is how long the receiver is unavailable in TestHTTPOutage: the
// issue's 20 s, or 3 s under -short.
func outage() time.Duration {
	if testing.Short() {
		return 3 * time.Second
	}
	return 20 * time.Second
}

// TestHTTPOutage runs real time: alerts flow to an Elasticsearch receiver
// that answers 503 for half the outage, then is down (its listener closed),
// then recovers. Every alert must arrive, none twice in the index.
func TestHTTPOutage(t *testing.T) {
	d := outage()
	es := newFakeElastic()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	srv := &http.Server{Handler: es}
	go srv.Serve(ln)

	sinks, err := Build(decodeSinks(t, fmt.Sprintf(`
sink "elasticsearch" "es" {
  url     = "http://%s"
  timeout = "1s"
  spool { dir = %q }
}`, addr, t.TempDir())), BuildOptions{Log: discardLog()})
	if err != nil {
		t.Fatal(err)
	}
	r := NewRouter(discardLog(), sinks, RouterOptions{BatchSize: 16, RetryMin: 50 * time.Millisecond, RetryMax: 400 * time.Millisecond})
	done := start(r, t.Context())

	n := 0
	flow := func(dur time.Duration) {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for end := time.Now().Add(dur); time.Now().Before(end); <-tick.C {
			r.Deliver(alertN(n))
			n++
		}
	}
	flow(200 * time.Millisecond)
	es.mu.Lock()
	es.status = http.StatusServiceUnavailable
	es.mu.Unlock()
	flow(d / 2)
	srv.Close() // down entirely: connections refused
	flow(d / 2)
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("relisten on %s: %v", addr, err)
	}
	es.mu.Lock()
	es.status = 0
	es.mu.Unlock()
	srv = &http.Server{Handler: es}
	go srv.Serve(ln)
	defer srv.Close()
	flow(200 * time.Millisecond)

	deadline := time.Now().Add(10 * time.Second)
	for len(es.ids()) < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // polling for delivery, not waiting out a timeout
	}
	r.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, want := es.ids(), ids(n); !slices.Equal(got, want) {
		t.Fatalf("index holds %d alerts, want all %d", len(got), len(want))
	}
	st := r.Stats()[0]
	t.Logf("outage %v: %d alerts, %d create actions at the receiver, %d failed sends, stats %+v", d, n, es.creates, st.Failed, st)
	if st.Failed == 0 || st.Sent != uint64(n) || st.Dropped.Total() != 0 {
		t.Errorf("stats = %+v, want failures during the outage, %d sent, none dropped", st, n)
	}
}
