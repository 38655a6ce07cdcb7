package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name string
		line string
		want time.Duration
	}{
		{"plain", "42 (encwatch) S 1 42 42 0 -1 4194560 900 0 0 0 250 130 0 0 20 0 9 0 100 1000 500", 3800 * time.Millisecond},
		{"comm with spaces and parens", "7 (a b) (c)) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 1 1 1", 30 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat([]byte(tt.line))
			if err != nil {
				t.Fatalf("parseStat(%q): %v", tt.line, err)
			}
			if got != tt.want {
				t.Errorf("parseStat(%q) = %v, want %v", tt.line, got, tt.want)
			}
		})
	}
	if _, err := parseStat([]byte("1 (x) S 1")); err == nil {
		t.Error("parseStat of a short line: no error, want one")
	}
}

func TestParseStatusKiB(t *testing.T) {
	status := "Name:\tencwatch\nVmPeak:\t  900000 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   19000 kB\n"
	for _, tt := range []struct {
		field string
		want  uint64
	}{{"VmHWM", 20480}, {"VmRSS", 19000}} {
		got, err := parseStatusKiB([]byte(status), tt.field)
		if err != nil || got != tt.want {
			t.Errorf("parseStatusKiB(%s) = %d, %v, want %d", tt.field, got, err, tt.want)
		}
	}
	if _, err := parseStatusKiB([]byte(status), "VmSwap"); err == nil {
		t.Error("parseStatusKiB(VmSwap): no error, want one")
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	tests := []struct {
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{d, 50, 50 * time.Millisecond},
		{d, 99, 99 * time.Millisecond},
		{d, 100, 100 * time.Millisecond},
		{d[:1], 99, time.Millisecond},
		{nil, 99, 0},
	}
	for _, tt := range tests {
		if got := percentile(tt.in, tt.p); got != tt.want {
			t.Errorf("percentile(%d values, %v) = %v, want %v", len(tt.in), tt.p, got, tt.want)
		}
	}
}

func TestFindMarker(t *testing.T) {
	tests := []struct {
		line string
		want string
	}{
		{`{"process":{"args":["base64","--decode","/tmp/d/ewm12001x350"]}}`, "ewm12001x350"},
		{`{"process":{"args":["base64","--decode","/tmp/d/ewm99001x350"]}}`, ""}, // another run
		{`{"args":["ewm12001x"]}`, ""},
		{`no marker`, ""},
	}
	for _, tt := range tests {
		if got := findMarker([]byte(tt.line), "12001"); got != tt.want {
			t.Errorf("findMarker(%q) = %q, want %q", tt.line, got, tt.want)
		}
	}
	if got, want := marker("12001", 350), "ewm12001x350"; got != want {
		t.Errorf("marker = %q, want %q", got, want)
	}
}

func TestBenchPolicy(t *testing.T) {
	src, err := os.ReadFile("../../config.hcl")
	if err != nil {
		t.Fatal(err)
	}
	zero, limit := uint32(0), uint32(64)
	got, err := benchPolicy(string(src), policyEdits{
		key:             "bench-key",
		sinks:           `sink "file" "bench" { path = "/x" }`,
		backlogLimit:    &limit,
		backlogWaitTime: &zero,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`rule_key = "bench-key"`, `sink "file" "bench"`, "backlog_wait_time = 0\n", "backlog_limit = 64\n", `signature "data_encoder_exec"`} {
		if !strings.Contains(got, want) {
			t.Errorf("benchPolicy: no %q in the result", want)
		}
	}
	for _, gone := range []string{`sink "stdout"`, "throttle {", `rule_key = "encwatch"`} {
		if strings.Contains(got, gone) {
			t.Errorf("benchPolicy: %q still in the result", gone)
		}
	}
	if _, err := benchPolicy("settings {}\n", policyEdits{key: "k"}); err == nil {
		t.Error("benchPolicy of a policy without rule_key: no error, want one")
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP go_goroutines Number of goroutines.
# TYPE go_goroutines gauge
go_goroutines 21
encwatch_sink_dropped_total{cause="queue_full",sink="soak"} 3
encwatch_sink_dropped_total{cause="shutdown",sink="soak"} 2
encwatch_sink_dropped_total{cause="shutdown",sink="other"} 7
`
	m, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m["go_goroutines"], 21.0; got != want {
		t.Errorf("go_goroutines = %v, want %v", got, want)
	}
	if got, want := m["encwatch_sink_dropped_total"], 12.0; got != want {
		t.Errorf("encwatch_sink_dropped_total = %v, want %v", got, want)
	}
	var soak float64
	for _, v := range m.matching("encwatch_sink_dropped_total", `sink="soak"`) {
		soak += v
	}
	if got, want := soak, 5.0; got != want {
		t.Errorf("dropped for sink soak = %v, want %v", got, want)
	}
}

func TestTrend(t *testing.T) {
	var s []sample
	for i := range 30 {
		rss := uint64(40 << 10)
		if i < 10 {
			rss = uint64(20+2*i) << 10 // warm-up
		}
		s = append(s, sample{rssKiB: rss, goroutines: 21, heapMiB: 18})
	}
	got := trend(s)
	for _, want := range []string{"RSS 25.0 → 40.0 MiB", "After warm-up", "RSS 40.0 → 40.0 MiB (+0.0%)", "goroutines 21 → 21"} {
		if !strings.Contains(got, want) {
			t.Errorf("trend = %q, want it to contain %q", got, want)
		}
	}
}

// TestParsePerfStat reads perf stat's CSV output (-x,) as linux-perf 6
// writes it on SIGINT, with a count and with an event that never fired.
func TestParsePerfStat(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		want     kernelCounts
		err      bool
	}{
		{"counted", "65541,,raw_syscalls:sys_enter,97147415,100.00,,\n50,,sched:sched_switch,97147415,100.00,,\n", kernelCounts{65541, 50}, false},
		{"one not counted", "<not counted>,,raw_syscalls:sys_enter,0,100.00,,\n7,,sched:sched_switch,5326270,100.00,,\n", kernelCounts{0, 7}, false},
		{"nothing", "<not counted>,,raw_syscalls:sys_enter,0,100.00,,\n<not counted>,,sched:sched_switch,0,100.00,,\n", kernelCounts{}, true},
		{"not perf", "perf: command failed\n", kernelCounts{}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePerfStat(tt.in)
			if (err != nil) != tt.err || got != tt.want {
				t.Errorf("parsePerfStat(%q) = %+v, %v, want %+v, error %v", tt.in, got, err, tt.want, tt.err)
			}
		})
	}
}

func TestRateVerdict(t *testing.T) {
	for _, c := range []struct {
		reached, withoutAudit float64
		want                  string
	}{
		{980, 1900, "met"},
		{540, 1900, "**missed**"},
		{540, 600, "not reachable on this machine"},
		{990, 600, "met"},
	} {
		if got := rateVerdict(c.reached, c.withoutAudit); got != c.want {
			t.Errorf("rateVerdict(%v, %v) = %q, want %q", c.reached, c.withoutAudit, got, c.want)
		}
	}
}
