package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/encwatch/encwatch/internal/audittest"
	"github.com/encwatch/encwatch/internal/natstest"
)

// The operator files of the packages (packaging/), which a real Prometheus
// loads here.
const (
	shippedRules     = "../../packaging/prometheus/encwatch.rules.yml"
	shippedDashboard = "../../packaging/grafana/encwatch-dashboard.json"
)

// promServer is a Prometheus server a test runs on loopback.
type promServer struct {
	addr string
	proc daemonProc
}

// startPrometheus runs Debian's prometheus with its own configuration and
// storage in a temporary directory: scraping targets every second and
// evaluating rules every second, with the shipped rules whose `for:`
// durations are cut to 3 s (a test cannot wait minutes; the expressions are
// the shipped ones).
func startPrometheus(t *testing.T, jobs map[string][]string) *promServer {
	t.Helper()
	// (policy-rc.d keeps the package's service from starting.)
	bin := audittest.Program(t, "prometheus", "prometheus")
	dir := t.TempDir()
	rules, err := os.ReadFile(shippedRules)
	if err != nil {
		t.Fatal(err)
	}
	fast := regexp.MustCompile(`(?m)^(\s+for: )\S+$`).ReplaceAll(rules, []byte("${1}3s"))
	if err := os.WriteFile(filepath.Join(dir, "rules.yml"), fast, 0o644); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
`, filepath.Join(dir, "rules.yml"))
	for job, targets := range jobs {
		conf += fmt.Sprintf("  - job_name: %s\n    static_configs:\n      - targets: [%s]\n", job, quoteList(targets))
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &promServer{addr: freeAddr(t)}
	p.proc.args = []string{
		"--config.file=" + filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + p.addr,
		"--log.level=warn",
	}
	p.proc.start(t, bin)
	t.Cleanup(p.proc.stop)
	return p
}

// promResult is the data of an /api/v1 answer.
type promResult struct {
	Status    string
	ErrorType string
	Error     string
	Data      json.RawMessage
}

// get asks Prometheus' HTTP API; a failure to connect is returned, an
// answer with status "error" too.
func (p *promServer) get(path string, q url.Values) (json.RawMessage, error) {
	resp, err := http.Get("http://" + p.addr + path + "?" + q.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var r promResult
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %v: %s", path, err, b)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s: %s: %s", path, r.ErrorType, r.Error)
	}
	return r.Data, nil
}

// vector evaluates an instant query and returns its samples' labels and
// values.
func (p *promServer) vector(query string) ([]promSample, error) {
	data, err := p.get("/api/v1/query", url.Values{"query": {query}})
	if err != nil {
		return nil, err
	}
	var v struct {
		ResultType string
		Result     json.RawMessage
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	switch v.ResultType {
	case "vector":
		var s []promSample
		err := json.Unmarshal(v.Result, &s)
		return s, err
	case "scalar":
		return []promSample{{}}, nil
	}
	return nil, fmt.Errorf("query %q: result type %s", query, v.ResultType)
}

type promSample struct {
	Metric map[string]string
	Value  [2]any
}

// waitFor polls Prometheus every 200 ms until ok says yes, for up to
// within; what, and the last error, name the failure.
func (p *promServer) waitFor(t *testing.T, what string, within time.Duration, ok func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(within)
	var last error
	for {
		done, err := ok()
		if done {
			return
		}
		last = err
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus did not see %s within %s (last error: %v); prometheus logs:\n%s", what, within, last, p.proc.logs.String())
		}
		select {
		case <-p.proc.done:
			t.Fatalf("prometheus exited (%v) while waiting for %s:\n%s", p.proc.err, what, p.proc.logs.String())
		case <-time.After(200 * time.Millisecond): // polling Prometheus
		}
	}
}

// firing returns a check that the alert named is firing on a series whose
// label has value.
func (p *promServer) firing(alert, label, value string) func() (bool, error) {
	return func() (bool, error) {
		data, err := p.get("/api/v1/alerts", nil)
		if err != nil {
			return false, err
		}
		var a struct {
			Alerts []struct {
				Labels map[string]string
				State  string
			}
		}
		if err := json.Unmarshal(data, &a); err != nil {
			return false, err
		}
		for _, al := range a.Alerts {
			if al.Labels["alertname"] == alert && al.Labels[label] == value && al.State == "firing" {
				return true, nil
			}
		}
		return false, fmt.Errorf("alerts: %+v", a.Alerts)
	}
}

// dashboardQueries returns every query of the shipped dashboard, its
// Grafana variables replaced as Grafana would with "All" selected.
func dashboardQueries(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(shippedDashboard)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ RefID, Expr string }
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	vars := strings.NewReplacer("$__rate_interval", "30s", "$__range", "5m", "$job", ".*", "$instance", ".*", "$collect_job", ".*")
	qs := map[string]string{}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			qs[p.Title+" "+tg.RefID] = vars.Replace(tg.Expr)
		}
	}
	return qs
}

// metricsIn names the metrics a query reads (Prometheus' ALERTS and up, and
// the exporters' names).
var metricsIn = regexp.MustCompile(`\b(encwatch_[a-z_]+|process_[a-z_]+|up|ALERTS)\b`)

// TestPrometheusAlertsOnLiveDaemonAsRoot runs a real Prometheus (Debian's,
// on loopback, its own storage) with the shipped rules, scraping the built
// daemon in audisp mode (records on stdin, no kernel; root because the
// daemon loads only a root-owned policy) whose webhook sink delivers
// alerts, and a fleet: a second agent beating to NATS JetStream (Debian's
// nats-server) and a collector. The receiver is then killed: Prometheus
// must see the sink's failing alert (EncwatchSinkFailing) firing, through
// its own API; the fleet agent is killed with SIGKILL: EncwatchAgentSilent
// must fire. Every query of the shipped dashboard is then evaluated by the
// same Prometheus: each must parse, and return data when the daemons export
// every metric it reads.
func TestPrometheusAlertsOnLiveDaemonAsRoot(t *testing.T) {
	rootOnly(t)
	bin := buildEncwatch(t)
	recv := &hookReceiver{seen: map[string]int{}}
	recv.up.Store(true)
	srv := httptest.NewServer(recv)
	defer srv.Close()

	dir, metrics, policy := spooledWebhookPolicy(t, srv.URL)
	agent := &daemonProc{args: []string{"run", "--config", policy}}
	agent.start(t, bin)
	defer agent.stop()

	// The fleet: an agent publishing heartbeats to NATS JetStream (Debian's
	// nats-server) and a collector following them.
	cl := natstest.Start(t, 1, []string{"web1.example.com"})
	urls := cl.URLs()
	cl.CreateStream(1)
	collectMetrics, fleetMetrics := freeAddr(t), freeAddr(t)
	cpolicy := filepath.Join(dir, "collect.hcl")
	writePolicy(t, cpolicy, collectorPolicy(urls, cl.Seed(natstest.Collect), filepath.Join(dir, "siem.jsonl"), collectMetrics, "3s"))
	col := &daemonProc{args: []string{"collect", "--config", cpolicy}}
	col.start(t, bin)
	defer col.stop()
	apolicy := filepath.Join(dir, "web1.hcl")
	writePolicy(t, apolicy, strings.Replace(agentPolicy("web1.example.com", urls, cl.Seed("web1.example.com"), filepath.Join(dir, "web1.jsonl"), "1s"),
		`address = ""`, fmt.Sprintf("address = %q", fleetMetrics), 1))
	web1 := &daemonProc{args: []string{"run", "--config", apolicy}}
	web1.start(t, bin)
	defer web1.kill()

	prom := startPrometheus(t, map[string][]string{"encwatch": {metrics, fleetMetrics}, "encwatch-collect": {collectMetrics}})
	prom.waitFor(t, "the collector following web1.example.com", 30*time.Second, func() (bool, error) {
		s, err := prom.vector(`encwatch_collect_hosts{job="encwatch-collect",state="alive"} >= 1`)
		return err == nil && len(s) == 1, err
	})

	// Delivered while the receiver is up: Prometheus sees the sends.
	if _, err := io.WriteString(agent.stdin, b64Events(t, 2000, 10)); err != nil {
		t.Fatal(err)
	}
	prom.waitFor(t, "10 alerts sent by sink hook", 30*time.Second, func() (bool, error) {
		s, err := prom.vector(`encwatch_sink_sent_total{job="encwatch",sink="hook"} >= 10`)
		return err == nil && len(s) == 1, err
	})
	if got, _ := recv.distinct(); got != 10 {
		t.Fatalf("receiver has %d alerts, want 10", got)
	}
	firing := prom.firing("EncwatchSinkFailing", "sink", "hook")
	if ok, _ := firing(); ok {
		t.Fatal("EncwatchSinkFailing fires while the receiver is up")
	}

	// The receiver dies; alerts go on coming and wait in the spool.
	srv.CloseClientConnections()
	srv.Close()
	if _, err := io.WriteString(agent.stdin, b64Events(t, 3000, 10)); err != nil {
		t.Fatal(err)
	}
	prom.waitFor(t, "EncwatchSinkFailing firing for sink hook", 90*time.Second, firing)

	// web1 is killed: no heartbeat, no clean stop.
	if ok, _ := prom.firing("EncwatchAgentSilent", "job", "encwatch-collect")(); ok {
		t.Fatal("EncwatchAgentSilent fires while web1 beats")
	}
	web1.kill()
	prom.waitFor(t, "EncwatchAgentSilent firing", 60*time.Second, prom.firing("EncwatchAgentSilent", "job", "encwatch-collect"))

	// Every dashboard query, against the same Prometheus and data.
	present := map[string]bool{}
	for _, q := range dashboardQueries(t) {
		for _, m := range metricsIn.FindAllString(q, -1) {
			if _, seen := present[m]; !seen {
				s, err := prom.vector("count(" + m + ")")
				present[m] = err == nil && len(s) > 0
			}
		}
	}
	withData, noData := 0, []string{}
	for where, q := range dashboardQueries(t) {
		s, err := prom.vector(q)
		if err != nil {
			t.Errorf("dashboard %s: %q: %v", where, q, err)
			continue
		}
		all := true
		for _, m := range metricsIn.FindAllString(q, -1) {
			all = all && present[m]
		}
		if all && len(s) == 0 {
			t.Errorf("dashboard %s: %q returned no data, though the daemon exports all it reads", where, q)
		}
		if len(s) > 0 {
			withData++
		} else {
			noData = append(noData, where)
		}
	}
	t.Logf("%d dashboard queries evaluated, %d returned data; none (their metrics not exported yet) for %q", len(dashboardQueries(t)), withData, noData)
}
