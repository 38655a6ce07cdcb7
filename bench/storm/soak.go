package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
)

// Soak timing: the webhook is down for flapDown of every flapPeriod,
// alternately answering 503 and refusing connections.
const (
	flapPeriod     = 30 * time.Second
	flapDown       = 10 * time.Second
	reloadInterval = time.Second
	sampleInterval = 10 * time.Second
	soakRate       = 1000
)

// receiver is the soak's flapping webhook.
type receiver struct {
	addr string
	srv  *http.Server

	mu       sync.Mutex
	state    string // "up", "503" or "refused"
	ln       net.Listener
	alerts   int            // alerts in accepted batches
	unique   map[string]int // serial:marker → times received
	batches  int
	refusals int // batches answered 503
}

func newReceiver() (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{addr: ln.Addr().String(), state: "up", ln: ln, unique: map[string]int{}}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go r.srv.Serve(ln)
	return r, nil
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state != "up" {
		r.refusals++
		http.Error(w, "flapping", http.StatusServiceUnavailable)
		return
	}
	var batch []struct {
		Audit struct {
			Serial json.Number `json:"serial"`
		} `json:"audit"`
		Process struct {
			Args []string `json:"args"`
		} `json:"process"`
		Signature struct {
			Name string `json:"name"`
		} `json:"signature"`
	}
	if err != nil || json.Unmarshal(body, &batch) != nil {
		http.Error(w, "bad batch", http.StatusBadRequest)
		return
	}
	r.batches++
	for _, a := range batch {
		r.alerts++
		r.unique[fmt.Sprintf("%s:%s:%s", a.Audit.Serial, a.Signature.Name, strings.Join(a.Process.Args, " "))]++
	}
	w.WriteHeader(http.StatusOK)
}

// set moves the receiver to state: "refused" closes the listener, leaving
// it reopens it on the same port.
func (r *receiver) set(state string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if state == r.state {
		return nil
	}
	if state == "refused" {
		r.ln.Close()
	} else if r.state == "refused" {
		ln, err := net.Listen("tcp", r.addr)
		if err != nil {
			return err
		}
		r.ln = ln
		go r.srv.Serve(ln)
	}
	r.state = state
	return nil
}

func (r *receiver) counts() (alerts, unique, dups int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.unique {
		if n > 1 {
			dups += n - 1
		}
	}
	return r.alerts, len(r.unique), dups
}

// flap runs the receiver's outages until ctx ends.
func (r *receiver) flap(ctx context.Context, log *logrus.Entry) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	start := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		el := time.Since(start)
		cycle := int(el / flapPeriod)
		state := "up"
		if cycle > 0 && el%flapPeriod < flapDown {
			state = "503"
			if cycle%2 == 0 {
				state = "refused"
			}
		}
		if err := r.set(state); err != nil {
			log.WithError(err).Warn("receiver flap")
		}
	}
}

// metrics is one scrape of the daemon's /metrics, summed by name and, for
// labelled series, by name{labels}.
type metrics map[string]float64

func scrape(addr string) (metrics, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: %s", resp.Status)
	}
	return parseMetrics(resp.Body)
}

// parseMetrics reads the Prometheus text format: each sample is kept under
// its full series name and added to its bare metric name.
func parseMetrics(r io.Reader) (metrics, error) {
	m := metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		series := line[:i]
		m[series] += v
		if j := strings.IndexByte(series, '{'); j >= 0 {
			m[series[:j]] += v
		}
	}
	return m, sc.Err()
}

// matching returns the series of name whose labels contain every label.
func (m metrics) matching(name string, labels ...string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if !strings.HasPrefix(k, name+"{") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(k, l)
		}
		if ok {
			out[k] = v
		}
	}
	return out
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// sample is one 10 s observation of the daemon.
type sample struct {
	at         time.Duration
	rssKiB     uint64
	goroutines float64 // -1 without /metrics
	heapMiB    float64 // go_memstats_heap_inuse_bytes in MiB
	raised     float64
	received   int
}

// soakRun is the state of one soak: the daemon, its policy and what was
// sampled. Only soak's own goroutines touch it; samples and reloads are
// read after they have stopped.
type soakRun struct {
	o          options
	log        *logrus.Entry
	dir, cfg   string
	src        []byte
	edits      policyEdits
	recv       *receiver
	maddr      string
	d          *daemon
	hasMetrics bool
	fileSink   string // set when the daemon had no HTTP sink
	start      time.Time
	reloads    int
	smu        sync.Mutex
	samples    []sample
}

// soakOutcome is what the storm and the daemon did over the soak.
type soakOutcome struct {
	gen              stormResult
	cpu              time.Duration
	hwmKiB           uint64
	kernelLost       uint32
	raised           uint64
	received, unique int
	dups             int
	last             metrics // the last /metrics scrape before stop; nil without
}

func soak(ctx context.Context, o options, log *logrus.Entry) error {
	release, err := takeKernel(log)
	if err != nil {
		return err
	}
	defer func() {
		if rerr := release(); rerr != nil {
			log.WithError(rerr).Warn("kernel audit state repaired after the soak")
		}
	}()
	s := &soakRun{o: o, log: log, hasMetrics: true}
	if s.dir, err = os.MkdirTemp("", "encwatch-soak-"); err != nil {
		return err
	}
	defer os.RemoveAll(s.dir)
	if s.recv, err = newReceiver(); err != nil {
		return err
	}
	defer s.recv.srv.Close()
	if s.maddr, err = freePort(); err != nil {
		return err
	}
	if s.src, err = os.ReadFile(o.config); err != nil {
		return err
	}
	s.edits = policyEdits{
		key:   benchKey,
		sinks: fmt.Sprintf("sink \"http\" \"soak\" {\n  url  = \"http://%s/\"\n  kind = \"webhook\"\n}\n", s.recv.addr),
		extra: fmt.Sprintf("metrics {\n  address = %q\n}\n", s.maddr),
	}
	s.cfg = filepath.Join(s.dir, "config.hcl")
	if err := s.startDaemon(); err != nil {
		return err
	}
	defer func() {
		select {
		case <-s.d.done:
		default:
			s.d.stop()
		}
	}()
	log.WithFields(logrus.Fields{"webhook": s.recv.addr, "metrics": s.hasMetrics, "duration": o.duration.Seconds()}).Info("soak running")
	out, err := s.storm(ctx)
	if err != nil {
		return err
	}
	stopErr := s.settle(&out)
	if err := s.count(&out); err != nil {
		return err
	}
	report := s.report(out)
	fmt.Print(report)
	if stopErr != nil {
		return fmt.Errorf("encwatch stop: %w", stopErr)
	}
	if o.out != "" {
		return replaceSection(o.out, "soak", report)
	}
	return nil
}

// writePolicy writes the soak's policy, marked with reload n, and renames
// it into place.
func (s *soakRun) writePolicy(n int) error {
	p, err := benchPolicy(string(s.src), s.edits)
	if err != nil {
		return err
	}
	tmp := s.cfg + ".new"
	if err := os.WriteFile(tmp, fmt.Appendf([]byte(p), "# soak reload %d\n", n), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, s.cfg)
}

// startDaemon starts encwatch, falling back to no /metrics and to a file
// sink when an older build refuses either.
func (s *soakRun) startDaemon() error {
	if err := s.writePolicy(0); err != nil {
		return err
	}
	d, err := startEncwatch(s.o.bin, s.cfg, s.log)
	for range 2 {
		if err == nil {
			break
		}
		switch msg := err.Error(); {
		case strings.Contains(msg, `"metrics"`) && s.hasMetrics:
			s.log.Warn("this encwatch has no metrics block; soaking without /metrics")
			s.edits.extra, s.hasMetrics = "", false
		case strings.Contains(msg, `sink type "http"`) && s.fileSink == "":
			s.fileSink = filepath.Join(s.dir, "alerts.jsonl")
			s.log.Warn("this encwatch has no HTTP sink; soaking with a file sink, which does not flap")
			s.edits.sinks = fmt.Sprintf("sink \"file\" \"soak\" {\n  path = %q\n}\n", s.fileSink)
		default:
			return err
		}
		if err = s.writePolicy(0); err == nil {
			d, err = startEncwatch(s.o.bin, s.cfg, s.log)
		}
	}
	if err != nil {
		return err
	}
	if s.fileSink != "" {
		s.recv.srv.Close()
	}
	s.d = d
	return nil
}

// storm runs the storm while the webhook flaps, the policy reloads and the
// daemon is sampled; it returns once all of them have stopped.
func (s *soakRun) storm(ctx context.Context) (soakOutcome, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); s.recv.flap(sctx, s.log) }()
	go func() { defer wg.Done(); s.every(sctx, reloadInterval, s.reload) }()
	go func() { defer wg.Done(); s.every(sctx, sampleInterval, s.take) }()
	s.start = time.Now()
	st := newStorm(point{label: "soak", rate: soakRate, duration: s.o.duration}, s.o, s.dir)
	cpu0, _ := cpuTime(s.d.pid())
	st0, _ := kernelStatus()
	gen, serr := st.run(sctx)
	cancel()
	wg.Wait()
	cpu1, _ := cpuTime(s.d.pid())
	st1, _ := kernelStatus()
	out := soakOutcome{gen: gen, cpu: cpu1 - cpu0, kernelLost: st1.Lost - st0.Lost}
	out.hwmKiB, _ = statusKiB(s.d.pid(), "VmHWM")
	if serr != nil {
		return out, serr
	}
	select {
	case <-s.d.done:
		return out, fmt.Errorf("encwatch exited during the soak (%v): %s", s.d.err, strings.Join(s.d.tail, "\n"))
	default:
	}
	return out, nil
}

// every calls f every interval until ctx ends.
func (s *soakRun) every(ctx context.Context, interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// reload reloads the policy as -reload says: a rewritten file, a SIGHUP or
// both.
func (s *soakRun) reload() {
	if s.o.reload == "none" {
		return
	}
	s.reloads++
	if s.o.reload != "sighup" {
		if err := s.writePolicy(s.reloads); err != nil {
			s.log.WithError(err).Warn("rewrite policy")
		}
	}
	if s.o.reload != "rename" {
		s.d.cmd.Process.Signal(syscall.SIGHUP)
	}
}

// take samples the daemon's memory, goroutines and alerts.
func (s *soakRun) take() {
	sm := sample{at: time.Since(s.start).Round(time.Second), goroutines: -1}
	sm.rssKiB, _ = statusKiB(s.d.pid(), "VmRSS")
	if s.hasMetrics {
		if m, err := scrape(s.maddr); err == nil {
			sm.goroutines = m["go_goroutines"]
			sm.heapMiB = m["go_memstats_heap_inuse_bytes"] / (1 << 20)
			sm.raised = m["encwatch_alerts_total"]
		}
	}
	_, sm.received, _ = s.recv.counts()
	s.smu.Lock()
	s.samples = append(s.samples, sm)
	s.smu.Unlock()
	s.log.WithFields(logrus.Fields{"t": sm.at.Seconds(), "rss_kib": sm.rssKiB, "goroutines": sm.goroutines,
		"raised": sm.raised, "received": sm.received}).Info("soak sample")
}

// settle lets every queued alert out: the receiver stays up until the
// daemon's queue is empty, then the daemon stops and drains. It returns the
// daemon's stop error.
func (s *soakRun) settle(out *soakOutcome) error {
	if err := s.recv.set("up"); err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(time.Second)
		if !s.hasMetrics {
			if time.Since(s.start) > s.o.duration+drain+5*time.Second {
				break
			}
			continue
		}
		m, err := scrape(s.maddr)
		if err != nil {
			continue
		}
		out.last = m
		if m["encwatch_sink_queue_depth"] == 0 && time.Now().After(deadline.Add(-55*time.Second)) {
			break
		}
	}
	return s.d.stop()
}

// count reads what was raised and received once the daemon has stopped.
func (s *soakRun) count(out *soakOutcome) error {
	out.received, out.unique, out.dups = s.recv.counts()
	if s.fileSink != "" {
		var err error
		if out.received, out.unique, out.dups, err = countFile(s.fileSink); err != nil {
			return err
		}
	}
	out.raised = s.d.counter("alerts")
	return nil
}

// report is the soak's section of docs/performance.md.
func (s *soakRun) report(out soakOutcome) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Soak measured %s by `make soak` (`bench/storm soak`): %s of storm at a target of %d execs/s (achieved %.0f), every %dth exec a marked `base64 --decode` run, the policy reloaded every second (%s, %d reloads), an HTTP webhook sink whose receiver is down 10 s of every 30 s (alternately 503 and connection refused).\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), s.o.duration, soakRate, out.gen.rate(), s.o.every, s.o.reload, s.reloads)
	b.WriteString(machine())
	d := s.d
	fmt.Fprintf(&b, "\nencwatch over the soak: %.1f µs CPU per exec, peak RSS %.1f MiB, kernel lost %d, pipeline lost %d.\n\n",
		float64(out.cpu.Microseconds())/float64(max(out.gen.execs, 1)), float64(out.hwmKiB)/1024, out.kernelLost,
		d.counter("kernel_enobufs")+d.counter("dropped_records")+d.counter("dropped_events")+d.counter("serial_gaps_lost"))
	b.WriteString("Alert accounting:\n\n")
	fmt.Fprintf(&b, "- raised (final `alerts` counter): %d\n", out.raised)
	if s.fileSink != "" {
		b.WriteString("- **this encwatch had no HTTP sink: alerts went to a file sink, which never flaps**\n")
	}
	fmt.Fprintf(&b, "- received by the webhook: %d (%d distinct, %d duplicate deliveries)\n", out.received, out.unique, out.dups)
	dropped := droppedLines(&b, out.last)
	gap := float64(out.raised) - float64(out.unique) - dropped
	verdict := "every alert accounted for"
	if gap != 0 {
		verdict = fmt.Sprintf("**%.0f alerts unaccounted for**", gap)
	}
	fmt.Fprintf(&b, "- raised − delivered − dropped = %.0f: %s\n\n", gap, verdict)
	b.WriteString("| t | RSS MiB | Go heap in use MiB | goroutines | alerts raised | alerts received |\n|--:|--:|--:|--:|--:|--:|\n")
	for _, sm := range s.samples {
		g := "n/a"
		if sm.goroutines >= 0 {
			g = fmt.Sprintf("%.0f", sm.goroutines)
		}
		fmt.Fprintf(&b, "| %s | %.1f | %.1f | %s | %.0f | %d |\n", sm.at, float64(sm.rssKiB)/1024, sm.heapMiB, g, sm.raised, sm.received)
	}
	b.WriteString("\n" + trend(s.samples))
	return b.String()
}

// droppedLines writes the sink's drops and rejections by cause from the last
// scrape and returns their sum.
func droppedLines(b *strings.Builder, last metrics) float64 {
	if last == nil {
		b.WriteString("- dropped by cause: unknown (the daemon had no /metrics)\n")
		return 0
	}
	var dropped float64
	causes := last.matching("encwatch_sink_dropped_total", `sink="soak"`)
	keys := make([]string, 0, len(causes))
	for k := range causes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		dropped += causes[k]
		if causes[k] > 0 {
			fmt.Fprintf(b, "- dropped: %s = %.0f\n", k, causes[k])
		}
	}
	for k, v := range last.matching("encwatch_sink_rejected_total", `sink="soak"`) {
		dropped += v
		if v > 0 {
			fmt.Fprintf(b, "- rejected: %s = %.0f\n", k, v)
		}
	}
	fmt.Fprintf(b, "- dropped or rejected in all (last /metrics scrape, before stop): %.0f; send errors: %.0f; reloads: %v\n",
		dropped, last["encwatch_sink_send_errors_total"], fmtSeries(last.matching("encwatch_reloads_total")))
	return dropped
}

func fmtSeries(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, fmt.Sprintf("%s=%.0f", k, m[k]))
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

// trend compares the first and last minute of samples.
func trend(s []sample) string {
	if len(s) < 2 {
		return "Trend: too few samples.\n"
	}
	n := min(6, len(s)/2) // six samples a minute
	avg := func(part []sample, f func(sample) float64) float64 {
		var t float64
		for _, x := range part {
			t += f(x)
		}
		return t / float64(len(part))
	}
	first, last := s[:n], s[len(s)-n:]
	rss := func(x sample) float64 { return float64(x.rssKiB) / 1024 }
	gor := func(x sample) float64 { return x.goroutines }
	heap := func(x sample) float64 { return x.heapMiB }
	out := fmt.Sprintf("Trend (mean of the first vs last %d samples): RSS %.1f → %.1f MiB (%+.1f%%)",
		n, avg(first, rss), avg(last, rss), 100*(avg(last, rss)/avg(first, rss)-1))
	if s[0].goroutines >= 0 {
		out += fmt.Sprintf(", Go heap in use %.1f → %.1f MiB, goroutines %.0f → %.0f", avg(first, heap), avg(last, heap), avg(first, gor), avg(last, gor))
	}
	out += ".\n"
	if len(s) >= 4*n {
		// The first minutes fill the caches and the heap: the half-way
		// minute against the last says whether anything still grows.
		mid := s[len(s)/2 : len(s)/2+n]
		out += fmt.Sprintf("After warm-up (mean of the %d samples from half-way vs the last %d): RSS %.1f → %.1f MiB (%+.1f%%)",
			n, n, avg(mid, rss), avg(last, rss), 100*(avg(last, rss)/avg(mid, rss)-1))
		if s[0].goroutines >= 0 {
			out += fmt.Sprintf(", Go heap in use %.1f → %.1f MiB, goroutines %.0f → %.0f", avg(mid, heap), avg(last, heap), avg(mid, gor), avg(last, gor))
		}
		out += ".\n"
	}
	return out
}

// countFile counts the alert lines of a file sink, as the receiver would.
func countFile(path string) (alerts, unique, dups int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, 0, err
	}
	defer f.Close()
	seen := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		alerts++
		seen[sc.Text()]++
	}
	for _, n := range seen {
		dups += n - 1
	}
	return alerts, len(seen), dups, sc.Err()
}
