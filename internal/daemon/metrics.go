package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/endpoint"
	"github.com/encwatch/encwatch/internal/input"
	"github.com/encwatch/encwatch/internal/sink"
)

// metrics is the daemon's Prometheus registry. Most values are read at
// scrape time from the counters the stages keep anyway (atomics), so the
// per-event path pays nothing for them; the few kept here are updated off
// that path.
type metrics struct {
	reg     *prometheus.Registry
	latency prometheus.Histogram
	reloads *prometheus.CounterVec
	// tamper counts audit_tamper detections; kernelLost the kernel's lost
	// counter's rise since start.
	tamper     prometheus.Counter
	kernelLost atomic.Uint64
	backlog    prometheus.Gauge
	enabled    prometheus.Gauge
	canaryOK   prometheus.Gauge
	// backlog0 is the kernel backlog at the last status check, with the
	// reader's record count then (the reader's stage probe).
	backlog0      atomic.Pointer[backlogSample]
	readerRecords func() uint64
	// collectors are what reg holds.
	collectors []prometheus.Collector
}

// backlogSample is a kernel backlog and the records read when it was seen.
type backlogSample struct{ backlog, records uint64 }

func newMetrics(d *daemon) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "encwatch_alert_latency_seconds",
			Help:    "Time from an event's kernel timestamp to its alert being handed to the sink router.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "encwatch_reloads_total",
			Help: "Policy reloads, by result (ok, failed).",
		}, []string{"result"}),
		tamper: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "encwatch_audit_tamper_total",
			Help: "Checks that found the kernel audit configuration changed (rules deleted, audit disabled, pid taken).",
		}),
		backlog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "encwatch_kernel_backlog",
			Help: "Records queued in the kernel for the audit daemon, at the last check.",
		}),
		enabled: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "encwatch_kernel_audit_enabled",
			Help: "The kernel's audit enabled flag at the last check (0, 1, 2 locked).",
		}),
		canaryOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "encwatch_canary_seen",
			Help: "1 if the start-up canary exec came through the pipeline.",
		}),
	}
	m.readerRecords = func() uint64 {
		if rs, ok := d.in.(input.Stats); ok {
			return rs.Stats().Records
		}
		return 0
	}
	m.reloads.WithLabelValues("ok")
	m.reloads.WithLabelValues("failed")
	m.collectors = []prometheus.Collector{m.latency, m.reloads, m.tamper, m.backlog, m.enabled, m.canaryOK,
		&collector{d: d}, sink.NewSpoolCollector(func() *sink.Router { return d.p.router.Load() }),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})}
	m.reg.MustRegister(m.collectors...)
	return m
}

func (m *metrics) observeStatus(st input.Status) {
	m.backlog.Set(float64(st.Backlog))
	m.backlog0.Store(&backlogSample{backlog: uint64(st.Backlog), records: m.readerRecords()})
	m.enabled.Set(float64(st.Enabled))
}

// collector reads the stages' counters at scrape time.
type collector struct{ d *daemon }

var (
	descRecords  = prometheus.NewDesc("encwatch_records_total", "Audit records received by the pipeline.", nil, nil)
	descEvents   = prometheus.NewDesc("encwatch_events_total", "Events assembled.", nil, nil)
	descAlerts   = prometheus.NewDesc("encwatch_alerts_total", "Alerts handed to the sink router, by signature and importance.", []string{"signature", "importance"}, nil)
	descLosses   = prometheus.NewDesc("encwatch_losses_total", "Audit data lost, by cause: kernel (records, the status lost counter's rise), socket (ENOBUFS overflows, count of records unknown), pipeline_records, pipeline_events, serial_gap (serials never seen).", []string{"cause"}, nil)
	descSupp     = prometheus.NewDesc("encwatch_suppressed_total", "Alerts suppressed by an allow block, by its reason.", []string{"reason"}, nil)
	descThrot    = prometheus.NewDesc("encwatch_throttled_total", "Alerts held back by a throttle, by signature.", []string{"signature"}, nil)
	descQueue    = prometheus.NewDesc("encwatch_sink_queue_depth", "Alerts waiting in a sink's queue or spool.", []string{"sink"}, nil)
	descSpool    = prometheus.NewDesc("encwatch_sink_spool_bytes", "Bytes of a sink's disk spool.", []string{"sink"}, nil)
	descSpoolMax = prometheus.NewDesc("encwatch_sink_spool_max_bytes", "The bound on a sink's disk spool (its max_bytes); absent without a spool.", []string{"sink"}, nil)
	descSent     = prometheus.NewDesc("encwatch_sink_sent_total", "Alerts a sink accepted.", []string{"sink"}, nil)
	descSendErr  = prometheus.NewDesc("encwatch_sink_send_errors_total", "Failed send attempts, by sink.", []string{"sink"}, nil)
	descRejected = prometheus.NewDesc("encwatch_sink_rejected_total", "Alerts a sink's receiver refused for good.", []string{"sink"}, nil)
	descDropped  = prometheus.NewDesc("encwatch_sink_dropped_total", "Alerts a sink never delivered, by cause.", []string{"sink", "cause"}, nil)
	descUp       = prometheus.NewDesc("encwatch_healthy", "1 when the pipeline runs and the kernel side is healthy.", nil, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRecords, descEvents, descAlerts, descLosses, descSupp, descThrot, descQueue, descSpool, descSpoolMax, descSent, descSendErr, descRejected, descDropped, descUp} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	d := c.d
	p := d.p
	counter := counterTo(ch)
	counter(descRecords, p.Records.Load())
	counter(descEvents, p.Events.Load())
	p.bySignature.Range(func(k, v any) bool {
		key := k.(alertKey)
		counter(descAlerts, v.(interface{ Load() uint64 }).Load(), key.signature, key.importance)
		return true
	})
	var ks input.ReaderStats
	if rs, ok := d.in.(input.Stats); ok {
		ks = rs.Stats()
	}
	counter(descLosses, d.m.kernelLost.Load(), "kernel")
	counter(descLosses, ks.ENOBUFS, "socket")
	counter(descLosses, ks.DroppedRecords, "pipeline_records")
	counter(descLosses, p.DroppedEvents.Load(), "pipeline_events")
	counter(descLosses, p.SerialLost.Load(), "serial_gap")
	es := p.engine.Stats()
	for r, v := range es.Suppressed {
		counter(descSupp, v, r)
	}
	for s, v := range es.Throttled {
		counter(descThrot, v, s)
	}
	if r := p.router.Load(); r != nil {
		collectSinkStats(ch, r.Stats())
	}
	up := 0.0
	if d.health() == "" {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up)
}

// counterTo returns a function that sends one counter sample to ch.
func counterTo(ch chan<- prometheus.Metric) func(desc *prometheus.Desc, v uint64, labels ...string) {
	return func(desc *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}
}

// collectSinkStats reports a router's sinks, for the agent and the
// collector alike: queue, spool, sent, failed, rejected and dropped.
func collectSinkStats(ch chan<- prometheus.Metric, stats []sink.Stats) {
	counter := counterTo(ch)
	for _, s := range stats {
		ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(s.Pending), s.Sink)
		ch <- prometheus.MustNewConstMetric(descSpool, prometheus.GaugeValue, float64(s.SpoolBytes), s.Sink)
		if s.SpoolMaxBytes > 0 {
			ch <- prometheus.MustNewConstMetric(descSpoolMax, prometheus.GaugeValue, float64(s.SpoolMaxBytes), s.Sink)
		}
		counter(descSent, s.Sent, s.Sink)
		counter(descSendErr, s.Failed, s.Sink)
		counter(descRejected, s.Rejected, s.Sink)
		for cause, v := range droppedCauses(s.Dropped) {
			counter(descDropped, v, s.Sink, cause)
		}
	}
}

func droppedCauses(x sink.Dropped) map[string]uint64 {
	return map[string]uint64{
		"queue_full": x.QueueFull, "closed": x.Closed, "shutdown": x.Shutdown,
		"spool_full": x.SpoolFull, "spool_error": x.SpoolError,
	}
}

// watchdogOK reports whether every stage turns, for the watchdog pings.
// The kernel side's health is not part of it: a restart would not mend
// tampering.
func (d *daemon) watchdogOK() bool { return d.stagesHealth() == "" }

// health is why the daemon is unhealthy, or "".
func (d *daemon) health() string {
	if !d.running.Load() {
		return "pipeline not running"
	}
	if r := d.stagesHealth(); r != "" {
		return r
	}
	if r := d.kernelHealth.Load(); r != nil && *r != "" {
		return *r
	}
	return ""
}

// stagesHealth is why a stage has stopped turning, or "": detection missed
// its beats, or the stage monitor found another stage stuck in its work.
// The watchdog pings depend on it (watchdogOK).
func (d *daemon) stagesHealth() string {
	if !d.p.alive() {
		return "detection stage stuck: no beat for over " + (3 * beatEvery).String()
	}
	if d.stages != nil {
		return d.stages.stuck()
	}
	return ""
}

// listenMetrics binds the metrics endpoint: the policy's address (or the
// test hook's listener) and its probe socket. A taken port fails start-up,
// naming the address and who holds it. A probe socket another live daemon
// answers on is a warning: this one serves without it (two daemons on one
// host would more often have refused on the port already).
func (d *daemon) listenMetrics(m config.Metrics) (*endpoint.Endpoint, error) {
	cfg := endpoint.Config{Name: "metrics", Address: m.Address, ProbeSocket: m.ProbeSocket}
	if d.opts.metricsListener != nil {
		cfg.Listener, cfg.Address, cfg.ProbeSocket = d.opts.metricsListener, "", d.opts.probeSocket
	}
	ep, err := endpoint.Listen(cfg)
	if errors.Is(err, endpoint.ErrProbeInUse) {
		d.log.WithError(err).Warn("probe socket held by another daemon; serving the metrics endpoint without it")
		cfg.ProbeSocket = ""
		ep, err = endpoint.Listen(cfg)
	}
	return ep, err
}

// serveMetrics serves /metrics and /healthz on the endpoint bound at start
// until ctx ends. It never returns an error: the endpoint failing is logged
// and must not stop detection, reloads or the watchdog, which share its
// errgroup.
func (d *daemon) serveMetrics(ctx context.Context) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(d.m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", d.serveHealthz)
	return d.metricsEP.Serve(ctx, mux, d.log)
}

// serveHealthz answers ok, or 503 with the reason the daemon is unhealthy.
func (d *daemon) serveHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if reason := d.health(); reason != "" {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "unhealthy: %s\n", reason)
		return
	}
	fmt.Fprintln(w, "ok")
}
