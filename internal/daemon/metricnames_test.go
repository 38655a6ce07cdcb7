package daemon

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/encwatch/encwatch/internal/fleet"
)

// Files that name metrics for operators: the alerting and recording rules
// and the Grafana dashboard the packages install.
const (
	rulesFile     = "../../packaging/prometheus/encwatch.rules.yml"
	dashboardFile = "../../packaging/grafana/encwatch-dashboard.json"
)

// promMetrics are series Prometheus makes itself, not an exporter: a
// target's up and the firing alerts.
var promMetrics = []string{"up", "ALERTS"}

// descsOnly describes a collector's metrics and collects nothing.
type descsOnly []*prometheus.Desc

func (d descsOnly) Describe(ch chan<- *prometheus.Desc) {
	for _, x := range d {
		ch <- x
	}
}

func (descsOnly) Collect(chan<- prometheus.Metric) {}

// exportedNames returns every metric name the agent's and the collector's
// registries describe; a histogram's name stands for its _bucket, _sum
// and _count series.
func exportedNames(t *testing.T) map[string]bool {
	t.Helper()
	var cs []prometheus.Collector
	cs = append(cs, newMetrics(&daemon{}).collectors...)
	cs = append(cs, descsOnly(append(fleet.Descs(), sinkDescs...)))
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	names := map[string]bool{}
	for _, c := range cs {
		ch := make(chan *prometheus.Desc, 256)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			m := fqName.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("no name in %s", d)
			}
			names[m[1]] = true
		}
	}
	return names
}

// metricRef finds identifiers in PromQL; recording rules' names hold a
// colon, label names and functions are told apart below.
var metricRef = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)

// referencedMetrics returns the metric names expr uses (encwatch_*, go_*,
// process_* and Prometheus' own), not functions, labels or keywords.
func referencedMetrics(expr string) []string {
	// Drop label matchers' values and label lists, which may look like names.
	expr = regexp.MustCompile(`"[^"]*"`).ReplaceAllString(expr, `""`)
	expr = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`).ReplaceAllString(expr, "")
	expr = regexp.MustCompile(`\{[^}]*\}`).ReplaceAllString(expr, "")
	var out []string
	for _, id := range metricRef.FindAllString(expr, -1) {
		if strings.HasPrefix(id, "encwatch_") || strings.HasPrefix(id, "go_") || strings.HasPrefix(id, "process_") || slices.Contains(promMetrics, id) {
			out = append(out, id)
		}
	}
	return out
}

// operatorExprs returns every PromQL expression of the rules file and the
// dashboard, each with where it is.
func operatorExprs(t *testing.T) map[string]string {
	t.Helper()
	exprs := map[string]string{}
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string
			Rules []struct{ Alert, Record, Expr string }
		}
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			exprs[rulesFile+": "+r.Alert+r.Record] = r.Expr
		}
	}
	b, err = os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
		Templating struct {
			List []struct {
				Name       string
				Definition string
			}
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	for _, p := range dash.Panels {
		for i, tg := range p.Targets {
			exprs[dashboardFile+": panel "+p.Title+" query "+string(rune('A'+i))] = tg.Expr
		}
	}
	for _, v := range dash.Templating.List {
		if v.Definition != "" {
			exprs[dashboardFile+": variable "+v.Name] = v.Definition
		}
	}
	return exprs
}

// TestOperatorMetricsExist checks that every metric the shipped rules and
// dashboard query is one the agent or the collector exports: a renamed
// metric must not leave an alert that can never fire.
func TestOperatorMetricsExist(t *testing.T) {
	names := exportedNames(t)
	for _, want := range []string{"encwatch_records_total", "encwatch_collect_hosts", "encwatch_spool_corrupt_records_total", "process_cpu_seconds_total"} {
		if !names[want] {
			t.Fatalf("the registries do not describe %s: the test's view of them is broken", want)
		}
	}
	exprs := operatorExprs(t)
	if len(exprs) < 30 {
		t.Fatalf("found %d expressions in the rules and dashboard, want at least 30", len(exprs))
	}
	used := map[string]bool{}
	for where, expr := range exprs {
		refs := referencedMetrics(expr)
		for _, id := range metricRef.FindAllString(expr, -1) {
			if strings.Contains(id, ":") && !strings.Contains(id, "::") {
				if _, ok := exprs[rulesFile+": "+id]; !ok {
					t.Errorf("%s: %s is no recording rule of %s", where, id, rulesFile)
				}
				refs = append(refs, id)
			}
		}
		if len(refs) == 0 {
			t.Errorf("%s: %q names no metric", where, expr)
		}
		for _, m := range refs {
			used[m] = true
			base := m
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(m, suffix); ok && names[b] {
					base = b
				}
			}
			if !names[base] && !slices.Contains(promMetrics, m) && !strings.Contains(m, ":") {
				t.Errorf("%s: metric %s is not exported by the agent or the collector", where, m)
			}
		}
	}
	// Every encwatch metric is on the dashboard or in a rule.
	for n := range names {
		if strings.HasPrefix(n, "encwatch_") && !used[n] && !used[n+"_bucket"] {
			t.Errorf("metric %s is in neither the rules nor the dashboard", n)
		}
	}
}

func TestReferencedMetrics(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`sum by (job, instance) (rate(encwatch_records_total[5m]))`, []string{"encwatch_records_total"}},
		{`encwatch_sink_spool_bytes / on (job, instance, sink) encwatch_sink_spool_max_bytes > 0.8`, []string{"encwatch_sink_spool_bytes", "encwatch_sink_spool_max_bytes"}},
		{`instance:encwatch_alert_latency_seconds:p99_5m > 2.5`, nil},
		{`up{job=~"encwatch.*"} == 0`, []string{"up"}},
		{`label_values(encwatch_records_total{job=~"$job"}, instance)`, []string{"encwatch_records_total"}},
		{`histogram_quantile(0.99, sum by (le) (rate(encwatch_alert_latency_seconds_bucket{cause="encwatch_fake"}[5m])))`, []string{"encwatch_alert_latency_seconds_bucket"}},
	} {
		if got := referencedMetrics(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("referencedMetrics(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
}
