package packaging

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The operator files the packages install under /usr/share/encwatch.
const (
	rulesFile     = "prometheus/encwatch.rules.yml"
	rulesTestFile = "prometheus/encwatch.rules.test.yml"
	dashboardFile = "grafana/encwatch-dashboard.json"
)

// TestPrometheusRules runs Debian's promtool over the shipped rules: `check
// rules` (syntax, PromQL, templates) and `test rules` (each alert fires on
// the series that should raise it, with its rendered annotations, and not
// on its near misses).
func TestPrometheusRules(t *testing.T) {
	need(t, "promtool (Debian's prometheus package)", have("promtool"))
	for _, args := range [][]string{
		{"check", "rules", rulesFile},
		{"test", "rules", rulesTestFile},
	} {
		out, err := exec.Command("promtool", args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		if !strings.Contains(string(out), "SUCCESS") {
			t.Errorf("promtool %s says no SUCCESS:\n%s", strings.Join(args, " "), out)
		}
	}
}

// TestRulesHaveRunbooks checks each alert says what it is and what to do.
func TestRulesHaveRunbooks(t *testing.T) {
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	// One alert per "- alert:" line; its annotations follow it.
	alerts := strings.Split(string(b), "- alert: ")[1:]
	if len(alerts) < 15 {
		t.Fatalf("%s has %d alerts, want at least 15", rulesFile, len(alerts))
	}
	for _, a := range alerts {
		name, _, _ := strings.Cut(a, "\n")
		for _, key := range []string{"severity:", "summary:", "description:", "runbook:"} {
			if !strings.Contains(a, key) {
				t.Errorf("alert %s has no %s", name, strings.TrimSuffix(key, ":"))
			}
		}
	}
}

// TestGrafanaDashboard checks the dashboard can be provisioned: JSON with a
// fixed uid, every panel on the data source variable with a query, panel
// ids unique.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string
		Title  string
		Panels []struct {
			ID         int
			Type       string
			Title      string
			Datasource struct{ UID string }
			Targets    []struct{ Expr string }
		}
		Templating struct{ List []struct{ Name, Type string } }
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.UID != "encwatch" || d.Title == "" {
		t.Errorf("uid %q title %q, want uid encwatch and a title", d.UID, d.Title)
	}
	hasDS := false
	for _, v := range d.Templating.List {
		hasDS = hasDS || v.Name == "datasource" && v.Type == "datasource"
	}
	if !hasDS {
		t.Error("no datasource variable: a provisioned dashboard would be bound to one data source uid")
	}
	ids := map[int]bool{}
	queries := 0
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: data source %q, want ${datasource}", p.Title, p.Datasource.UID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q has an empty query", p.Title)
			}
			queries++
		}
	}
	if queries < 30 {
		t.Errorf("%d queries, want at least 30", queries)
	}
}
