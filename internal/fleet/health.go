package fleet

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/detect"
)

// collectHealth is what the collector knows of its own state: when a fetch
// last succeeded, whether its consumer exists, and the junk it terminated.
type collectHealth struct {
	lastFetch atomic.Int64                       // unix nanoseconds
	cons      atomic.Pointer[jetstream.Consumer] // set once the consumer is open
	reason    atomic.Pointer[string]             // "" healthy
	stalls    atomic.Uint64                      // times it became unhealthy
	recreated atomic.Uint64                      // consumers recreated
	// pending and ackPending are the consumer's backlog at the last
	// check: messages not yet delivered to any collector, and delivered
	// but not acknowledged (the server's counts, from consumer info).
	pending, ackPending atomic.Uint64

	mu          sync.Mutex
	junkCount   uint64 // since the last summary
	junkSubject string // the last one's subject
}

// junk counts a message the collector terminated, for the next summary:
// a flood of junk is one log line every junkEvery, not one a message.
func (h *collectHealth) junk(subject string) {
	h.mu.Lock()
	h.junkCount++
	h.junkSubject = subject
	h.mu.Unlock()
}

// junkEvery is how often terminated junk is summarised in the log, by
// default.
const junkEvery = 10 * time.Second

// unhealthy says why the collector is unhealthy, or "".
func (h *collectHealth) unhealthy() string {
	if r := h.reason.Load(); r != nil {
		return *r
	}
	return ""
}

// checkHealth checks every interval that the consumer exists and a fetch
// succeeded within stall_after, until ctx ends. Becoming unhealthy is
// logged at error, counted and raised as a critical collector_stalled
// straight to the sinks (the stream may be what is gone); a deleted
// consumer is recreated when the collector manages it, after its last
// known acknowledgement floor.
func (col *fleetCollector) checkHealth(ctx context.Context, every, junkEvery time.Duration) {
	t := time.NewTicker(min(every, junkEvery))
	defer t.Stop()
	var floor uint64
	lastJunk := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		reason := ""
		if p := col.health.cons.Load(); p != nil {
			ictx, cancel := context.WithTimeout(ctx, every)
			info, err := (*p).Info(ictx)
			cancel()
			switch {
			case err == nil:
				floor = info.AckFloor.Stream
				col.health.pending.Store(info.NumPending)
				col.health.ackPending.Store(uint64(max(info.NumAckPending, 0)))
			case errors.Is(err, jetstream.ErrConsumerNotFound):
				reason = "consumer " + col.c.Consumer + " of stream " + col.c.Stream + " does not exist"
				col.recreate(ctx, floor)
			case errors.Is(err, jetstream.ErrStreamNotFound):
				reason = "stream " + col.c.Stream + " does not exist"
			}
		}
		if since := now.Sub(time.Unix(0, col.health.lastFetch.Load())); reason == "" && since > col.c.StallAfter {
			reason = fmt.Sprintf("no fetch from consumer %s succeeded for %s", col.c.Consumer, since.Truncate(time.Second))
		}
		col.setHealth(reason, now)
		if now.Sub(lastJunk) >= junkEvery {
			lastJunk = now
			col.health.mu.Lock()
			n, subj := col.health.junkCount, col.health.junkSubject
			col.health.junkCount = 0
			col.health.mu.Unlock()
			if n > 0 {
				col.log.WithFields(logrus.Fields{"messages": n, "last_subject": subj, "total": col.undecodable.Load()}).Warn("messages without an encwatch record, or on a subject no agent publishes: terminated")
			}
		}
	}
}

// setHealth records reason ("" healthy) and tells of a change.
func (col *fleetCollector) setHealth(reason string, now time.Time) {
	was := col.health.unhealthy()
	col.health.reason.Store(&reason)
	switch {
	case reason != "" && was == "":
		col.health.stalls.Add(1)
		col.log.WithField("reason", reason).Error("collector stalled")
		a := fleetAlert(SigStalled, "", now, "collector_stalled-"+strconv.FormatInt(now.UnixNano(), 10), detect.Critical,
			"encwatch collect gets no alerts from its consumer: until it recovers, the fleet's alerts wait in the stream and no host's silence is certain",
			[]detect.Match{{Field: "collector.reason", Value: reason, Reason: "why it is stalled"}})
		a.Actions = []string{"check the stream and the consumer: nats stream info " + col.c.Stream + "; nats consumer info " + col.c.Stream + " " + col.c.Consumer}
		col.deliverLater(a)
	case reason == "" && was != "":
		col.log.WithField("was", was).Warn("collector healthy again")
	}
}

// recreate creates the durable consumer again when the policy lets the
// collector manage it, starting after floor so that what was acknowledged
// is not offered again (the claims bucket catches what was acknowledged
// beyond the floor).
func (col *fleetCollector) recreate(ctx context.Context, floor uint64) {
	if !col.c.ManageConsumer {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := col.js.Stream(cctx, col.c.Stream)
	if err == nil {
		_, err = st.CreateOrUpdateConsumer(cctx, col.consumerConfig(floor+1))
	}
	if err != nil {
		col.log.WithError(err).Warn("recreate the consumer")
		return
	}
	col.health.recreated.Add(1)
	col.log.WithFields(logrus.Fields{"consumer": col.c.Consumer, "start_sequence": floor + 1}).Warn("consumer was deleted: recreated")
}

// collectMetrics reports the collector's sinks under the agent's metric
// names, and its own counters.
type collectMetrics struct{ col *fleetCollector }

var (
	descCollected     = prometheus.NewDesc("encwatch_collect_messages_total", "Messages pulled from the stream, by result: delivered (handed to the sinks), duplicate (already in flight), delivered_elsewhere (another collector delivered it), claimed_elsewhere (another is delivering it; left for redelivery), unclaimed (delivered without a claim, the claims bucket not answering), forged (its host not its subject's), undecodable (terminated).", []string{"result"}, nil)
	descHosts         = prometheus.NewDesc("encwatch_collect_hosts", "Hosts whose heartbeats the collector follows, by state.", []string{"state"}, nil)
	descHostsRefused  = prometheus.NewDesc("encwatch_collect_hosts_refused_total", "Heartbeats of new hosts refused because the collector follows max_hosts already.", nil, nil)
	descCollectHealth = prometheus.NewDesc("encwatch_collect_healthy", "1 when the consumer exists and a fetch succeeded within stall_after, else 0.", nil, nil)
	descStalls        = prometheus.NewDesc("encwatch_collect_stalls_total", "Times the collector became stalled (consumer or stream gone, no fetch succeeding).", nil, nil)
	descRecreated     = prometheus.NewDesc("encwatch_collect_consumer_recreated_total", "Times the collector recreated its deleted durable consumer.", nil, nil)
	descPending       = prometheus.NewDesc("encwatch_collect_pending_messages", "The durable consumer's backlog at the last health check, by state: waiting (in the stream, not yet delivered to a collector) and unacknowledged (delivered, not yet acknowledged). The collector's lag behind the agents.", []string{"state"}, nil)
)

// Descs are the descriptions of the collector's own metrics (beside the
// sinks', Options.SinkDescs).
func Descs() []*prometheus.Desc {
	return []*prometheus.Desc{descCollected, descHosts, descHostsRefused, descCollectHealth, descStalls, descRecreated, descPending}
}

func (m collectMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range append(Descs(), m.col.opts.SinkDescs...) {
		ch <- d
	}
}

// counterTo sends counters to ch.
func counterTo(ch chan<- prometheus.Metric) func(desc *prometheus.Desc, v uint64, labels ...string) {
	return func(desc *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}
}

func (m collectMetrics) Collect(ch chan<- prometheus.Metric) {
	col := m.col
	counter := counterTo(ch)
	counter(descCollected, col.received.Load(), "delivered")
	counter(descCollected, col.duplicates.Load(), "duplicate")
	counter(descCollected, col.undecodable.Load(), "undecodable")
	counter(descCollected, col.elsewhere.Load(), "delivered_elsewhere")
	counter(descCollected, col.claimedElsewhere.Load(), "claimed_elsewhere")
	counter(descCollected, col.unclaimed.Load(), "unclaimed")
	counter(descCollected, col.forged.Load(), "forged")
	states, refused := col.live.counts()
	for state, n := range states {
		ch <- prometheus.MustNewConstMetric(descHosts, prometheus.GaugeValue, float64(n), state)
	}
	counter(descHostsRefused, refused)
	healthy := 1.0
	if col.health.unhealthy() != "" {
		healthy = 0
	}
	ch <- prometheus.MustNewConstMetric(descCollectHealth, prometheus.GaugeValue, healthy)
	counter(descStalls, col.health.stalls.Load())
	counter(descRecreated, col.health.recreated.Load())
	ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(col.health.pending.Load()), "waiting")
	ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(col.health.ackPending.Load()), "unacknowledged")
	if col.opts.SinkStats != nil {
		col.opts.SinkStats(ch, col.router.Stats())
	}
}

// serveMetrics serves /metrics and /healthz on the endpoint bound at start
// until ctx ends. The endpoint failing is logged and does not stop
// delivery.
func (col *fleetCollector) serveMetrics(ctx context.Context) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectMetrics{col})
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if reason := col.health.unhealthy(); reason != "" {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "unhealthy: %s\n", reason)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	if err := col.ep.Serve(ctx, mux, col.log); err != nil {
		col.log.WithError(err).Error("metrics endpoint stopped; collection goes on")
	}
	return nil
}
