package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/sink"
)

// CollectOptions are how Collect is started, beyond the policy.
type CollectOptions struct {
	// Version is the product version the sinks report; "" is "dev".
	Version string
	// Check is how often hosts are checked for silence; 0 is 250ms.
	Check time.Duration
}

// fleetCollector is one `encwatch collect`: a durable JetStream pull
// consumer feeding the policy's sinks, and the watch on the agents'
// heartbeats. Its fields are set before its goroutines start.
type fleetCollector struct {
	log    *logrus.Entry
	cfg    *config.Config
	c      *config.Collect
	router *sink.Router
	acks   *ackTracker
	live   *liveness
	nc     *nats.Conn
	js     jetstream.JetStream
	// peers is the connection to the other collectors (collect_peers.go).
	peers *nats.Conn

	received, duplicates, undecodable atomic.Uint64
	// redelivered counts messages the stream had delivered before (to this
	// collector or another): each is an acknowledgement that did not arrive.
	redelivered atomic.Uint64
	// peerDuplicates counts messages another collector had delivered or
	// was delivering: not delivered here.
	peerDuplicates atomic.Uint64
}

// Collect runs the fleet side until ctx ends: it pulls alerts from the
// collect block's durable consumer (several collectors on one consumer
// share the load), delivers each into the policy's sinks, and acknowledges
// a message only once every sink has taken it or spooled it; what is not
// acknowledged is redelivered, so delivery is at least once and the alert
// id lets a receiver drop a duplicate. It raises agent_silent when a host's
// heartbeat is overdue and agent_back when it returns.
func Collect(ctx context.Context, cfg *config.Config, log *logrus.Entry, opts CollectOptions) error {
	c := cfg.Collect
	if c == nil {
		return fmt.Errorf("collect: the policy %s has no collect block", cfg.Path)
	}
	sinks, err := buildSinks(cfg, log, opts.Version)
	if err != nil {
		return err
	}
	if opts.Check <= 0 {
		opts.Check = 250 * time.Millisecond
	}
	col := &fleetCollector{log: log, cfg: cfg, c: c, acks: newAckTracker(len(sinks))}
	col.live = newLiveness(c.SilentAfter)
	col.router = sink.NewRouter(log.WithField("stage", "sink"), sinks, sink.RouterOptions{
		// The stream holds what the sinks cannot take yet: wait for room
		// rather than drop.
		Block: true, DrainTimeout: 10 * time.Second, Accepted: col.acks.accepted,
	})
	col.nc, err = sink.DialNATS(c.URLs, c.TLS, c.Auth, "encwatch collect", log,
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.WithError(err).Warn("nats disconnected")
			col.live.pause()
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.WithField("server", nc.ConnectedUrlRedacted()).Info("nats reconnected")
			col.live.resume(time.Now())
		}))
	if err != nil {
		closeSinks(sinks, log)
		return fmt.Errorf("collect: %w", err)
	}
	if col.js, err = jetstream.New(col.nc); err != nil {
		col.nc.Close()
		closeSinks(sinks, log)
		return fmt.Errorf("collect: jetstream: %w", err)
	}
	if err := col.dialPeers(); err != nil {
		col.nc.Close()
		closeSinks(sinks, log)
		return fmt.Errorf("collect: peers: %w", err)
	}
	return col.run(ctx, opts)
}

// run owns the collector's goroutines and returns once all have stopped,
// the sinks have drained and what they did not take is handed back to the
// stream.
func (col *fleetCollector) run(ctx context.Context, opts CollectOptions) error {
	routerDone := make(chan error, 1)
	// The router drains within its deadline once ctx ends.
	go func() { routerDone <- col.router.Run(ctx) }()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return col.pull(gctx) })
	g.Go(func() error { return col.watch(gctx, opts.Check) })
	g.Go(func() error { return col.serveMetrics(gctx) })
	col.log.WithFields(logrus.Fields{
		"stream": col.c.Stream, "consumer": col.c.Consumer, "sinks": len(col.cfg.Sinks),
	}).Info("encwatch collect running")
	err := g.Wait()
	col.router.Close()
	err = errors.Join(err, <-routerDone)
	// Whatever no sink took goes back to the stream at once, for another
	// collector, rather than after the ack wait.
	col.acks.nakAll()
	if ferr := col.nc.FlushTimeout(2 * time.Second); ferr != nil {
		col.log.WithError(ferr).Warn("flush acknowledgements")
	}
	col.nc.Close()
	col.peers.Close()
	col.log.WithFields(logrus.Fields{
		"received": col.received.Load(), "duplicates": col.duplicates.Load(), "undecodable": col.undecodable.Load(),
		"redelivered": col.redelivered.Load(), "delivered_elsewhere": col.peerDuplicates.Load(),
	}).Info("encwatch collect stopping")
	return err
}

// pull fetches batches from the durable consumer until ctx ends, waiting
// for the stream to exist first (agents create it on their first publish).
func (col *fleetCollector) pull(ctx context.Context) error {
	cons, err := col.consumer(ctx)
	if err != nil || cons == nil {
		return err
	}
	reacked := make(chan struct{})
	go func() {
		defer close(reacked)
		col.reacknowledge(ctx, cons)
	}()
	defer func() { <-reacked }()
	for ctx.Err() == nil {
		batch, err := cons.Fetch(col.c.Batch, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			col.log.WithError(err).Warn("fetch failed")
			sleepCtx(ctx, 250*time.Millisecond)
			continue
		}
		// Messages are sifted (collect_peers.go) in chunks: the first that
		// arrives and every other already there.
		var chunk []jetstream.Msg
		ch := batch.Messages()
		for msg := range ch {
			chunk = append(chunk[:0], msg)
		more:
			for {
				select {
				case m, ok := <-ch:
					if !ok {
						break more
					}
					chunk = append(chunk, m)
				default:
					break more
				}
			}
			col.sift(ctx, chunk)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			col.log.WithError(err).Debug("fetch ended early")
		}
	}
	return nil
}

// consumer creates (or finds) the durable consumer and subscribes to the
// stream's subjects for the heartbeat watch, retrying until the stream
// exists or ctx ends (nil, nil).
func (col *fleetCollector) consumer(ctx context.Context) (jetstream.Consumer, error) {
	for warned := false; ; warned = true {
		cons, subjects, err := col.openConsumer(ctx)
		if err == nil {
			if err := col.subscribe(subjects); err != nil {
				return nil, err
			}
			return cons, nil
		}
		if !warned {
			col.log.WithError(err).Warn("consumer not ready; retrying")
		}
		if !sleepCtx(ctx, time.Second) {
			return nil, nil
		}
	}
}

func (col *fleetCollector) openConsumer(ctx context.Context) (jetstream.Consumer, []string, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := col.js.Stream(cctx, col.c.Stream)
	if err != nil {
		return nil, nil, fmt.Errorf("stream %s: %w", col.c.Stream, err)
	}
	cons, err := st.CreateOrUpdateConsumer(cctx, jetstream.ConsumerConfig{
		Durable:       col.c.Consumer,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       col.c.AckWait,
		MaxAckPending: col.c.MaxAckPending,
		FilterSubject: col.c.Subject,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("consumer %s: %w", col.c.Consumer, err)
	}
	subjects := st.CachedInfo().Config.Subjects
	if col.c.Subject != "" {
		subjects = []string{col.c.Subject}
	}
	return cons, subjects, nil
}

// subscribe watches every publish on subjects for heartbeats: every
// collector sees all of them, whichever collector the consumer hands the
// message to, so that each knows every host.
func (col *fleetCollector) subscribe(subjects []string) error {
	for _, s := range subjects {
		sub, err := col.nc.Subscribe(s, col.heartbeatSeen)
		if err != nil {
			return fmt.Errorf("collect: subscribe %s: %w", s, err)
		}
		// Alerts pass here too; only heartbeats are decoded. Losing one
		// under load would only delay a host's next sign of life.
		_ = sub.SetPendingLimits(1<<20, 1<<30)
	}
	return nil
}

// heartbeatSeen reads a heartbeat or a clean stop off the watch
// subscription.
func (col *fleetCollector) heartbeatSeen(m *nats.Msg) {
	sig := m.Header.Get(sink.SignatureHeader)
	if sig != SigHeartbeat && sig != SigStopped {
		return
	}
	a, err := sink.DecodeRecord([]byte(m.Header.Get(sink.RecordHeader)))
	if err != nil {
		return
	}
	if back := col.live.seen(&a, m.Subject, time.Now()); back != nil {
		col.raise(*back, m.Subject)
	}
}

// decode reads the alert a pulled message carries; a message without one
// is terminated (the stream never offers it again).
func (col *fleetCollector) decode(msg jetstream.Msg) (detect.Alert, bool) {
	rec := msg.Headers().Get(sink.RecordHeader)
	a, err := sink.DecodeRecord([]byte(rec))
	if rec == "" || err != nil {
		col.undecodable.Add(1)
		col.log.WithError(err).WithField("subject", msg.Subject()).Warn("message without an encwatch record; terminated")
		_ = msg.Term()
		return detect.Alert{}, false
	}
	return a, true
}

// handle delivers the alert of one pulled message into the sinks; its
// acknowledgement waits for them (ackTracker).
func (col *fleetCollector) handle(msg jetstream.Msg, a detect.Alert) {
	if md, err := msg.Metadata(); err == nil && md.NumDelivered > 1 {
		col.redelivered.Add(1)
		col.log.WithFields(logrus.Fields{"alert": a.ID, "deliveries": md.NumDelivered}).Debug("redelivered message")
	}
	if !col.acks.add(a.ID, msg) {
		// The same alert is already on its way to the sinks (a redelivery
		// after the ack wait): it is acknowledged with it.
		col.duplicates.Add(1)
		return
	}
	col.received.Add(1)
	col.router.Deliver(a)
}

// watch raises agent_silent for every host whose heartbeat is overdue,
// every check, until ctx ends.
func (col *fleetCollector) watch(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			for _, s := range col.live.overdue(now) {
				col.raise(s.alert, s.subject)
			}
		}
	}
}

// raise publishes a collector's alert (agent_silent, agent_back) to the
// stream, on the host's own subject: its id is the same in every collector
// that sees the silence, so the stream stores it once and one collector
// delivers it. If the stream cannot take it, it goes to the sinks directly.
func (col *fleetCollector) raise(a detect.Alert, subject string) {
	col.log.WithFields(logrus.Fields{"signature": a.Signature.Name, "host": a.Host}).Warn("raising fleet alert")
	msg, err := sink.NATSMessage(subject, &a, sink.AppendJSON)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = col.js.PublishMsg(ctx, msg, jetstream.WithMsgID(a.ID), jetstream.WithExpectStream(col.c.Stream))
		cancel()
	}
	if err != nil {
		col.log.WithError(err).Warn("publish fleet alert failed; delivering it here")
		col.router.Deliver(a)
	}
}

// sleepCtx waits d or until ctx ends; it reports whether ctx is still
// alive.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// ackTracker holds each pulled alert until every sink is done with it, then
// acknowledges its message (and any redelivery of it that came meanwhile).
// It remembers the acknowledgements of the last ack wait, to send them again
// after a cluster change (reacknowledge).
type ackTracker struct {
	sinks   int
	mu      sync.Mutex
	pending map[string]*pendingAck // by alert id
	recent  []sentAck              // a ring of the last acknowledgements
	next    int                    // where the next one goes in recent
	// done holds the alert ids of the acknowledgements in recent: a
	// redelivery of one (its acknowledgement was lost with a cluster node)
	// is acknowledged again, not delivered twice.
	done map[string]int
}

// sentAck is one acknowledgement sent: the message's reply subject and the
// alert id it acknowledged.
type sentAck struct {
	reply, id string
	at        time.Time
}

// maxRecentAcks bounds the acknowledgements remembered for a resend: the
// ack wait's worth at 10,000 alerts per second and 30s.
const maxRecentAcks = 300_000

type pendingAck struct {
	remaining int
	msgs      []jetstream.Msg
}

func newAckTracker(sinks int) *ackTracker {
	return &ackTracker{sinks: sinks, pending: make(map[string]*pendingAck), done: make(map[string]int)}
}

// add records msg as carrying alert id; it reports false when the alert is
// already pending, and then only keeps msg to acknowledge with it, or was
// delivered and acknowledged lately, and then acknowledges msg at once.
func (t *ackTracker) add(id string, msg jetstream.Msg) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.done[id]; ok {
		_ = msg.Ack()
		t.remember(sentAck{reply: msg.Reply(), id: id, at: time.Now()})
		return false
	}
	if p, ok := t.pending[id]; ok {
		p.msgs = append(p.msgs, msg)
		return false
	}
	t.pending[id] = &pendingAck{remaining: t.sinks, msgs: []jetstream.Msg{msg}}
	return true
}

// has reports whether alert id is on its way to the sinks or was delivered
// and acknowledged lately.
func (t *ackTracker) has(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, pending := t.pending[id]
	_, done := t.done[id]
	return pending || done
}

// known answers another collector (askPeers): a line "d ID" for each of ids
// delivered and acknowledged lately, "p ID" for each on its way to the
// sinks.
func (t *ackTracker) known(ids []string) []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	var b []byte
	for _, id := range ids {
		mark := byte(0)
		if _, ok := t.done[id]; ok {
			mark = peerDone
		} else if _, ok := t.pending[id]; ok {
			mark = peerPending
		}
		if mark != 0 {
			b = append(append(append(b, mark, ' '), id...), '\n')
		}
	}
	return b
}

// accepted is the router's RouterOptions.Accepted: one sink is done with a.
// The last one acknowledges the messages.
func (t *ackTracker) accepted(_ int, a *detect.Alert) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.pending[a.ID]
	if !ok {
		return
	}
	if p.remaining--; p.remaining > 0 {
		return
	}
	delete(t.pending, a.ID)
	now := time.Now()
	for _, m := range p.msgs {
		// A publish into the connection's buffer: it does not wait.
		_ = m.Ack()
		t.remember(sentAck{reply: m.Reply(), id: a.ID, at: now})
	}
}

// remember keeps an acknowledgement in the ring; under mu.
func (t *ackTracker) remember(a sentAck) {
	t.done[a.id]++
	if len(t.recent) < maxRecentAcks {
		t.recent = append(t.recent, a)
		return
	}
	old := t.recent[t.next]
	if t.done[old.id]--; t.done[old.id] <= 0 {
		delete(t.done, old.id)
	}
	t.recent[t.next] = a
	t.next = (t.next + 1) % maxRecentAcks
}

// since returns the reply subjects of the acknowledgements sent after from.
func (t *ackTracker) since(from time.Time) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for _, a := range t.recent {
		if a.at.After(from) {
			out = append(out, a.reply)
		}
	}
	return out
}

// nakAll hands every message still pending back to the stream.
func (t *ackTracker) nakAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, p := range t.pending {
		for _, m := range p.msgs {
			_ = m.Nak()
		}
		delete(t.pending, id)
	}
}

// reacknowledge sends the acknowledgements of the last ack wait again after
// the consumer's leader changed or the connection was re-established, three
// times a second apart once the consumer answers with a leader, until ctx
// ends. An acknowledgement is
// a fire-and-forget publish: one in flight through a cluster node that dies,
// or taken by a consumer leader that dies before replicating it, is lost,
// and its message would be redelivered after the ack wait (a duplicate in
// the SIEM). Acknowledging an acknowledged message again is harmless.
func (col *fleetCollector) reacknowledge(ctx context.Context, cons jetstream.Consumer) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	leader, reconnects, rounds := "", col.nc.Stats().Reconnects, 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ictx, cancel := context.WithTimeout(ctx, time.Second)
		info, err := cons.Info(ictx)
		cancel()
		if err == nil && info.Cluster != nil && info.Cluster.Leader != leader {
			if leader != "" {
				rounds = 3
			}
			leader = info.Cluster.Leader
		}
		if r := col.nc.Stats().Reconnects; r != reconnects {
			reconnects, rounds = r, 3
		}
		// A consumer without a leader (an election under way, or one that
		// does not answer in time) drops acknowledgements: a round counts
		// only once the consumer has answered with a leader, so that at
		// least one reaches the new one.
		led := err == nil && (info.Cluster == nil || info.Cluster.Leader != "")
		if rounds == 0 || !led {
			continue
		}
		rounds--
		replies := col.acks.since(time.Now().Add(-col.c.AckWait))
		for _, reply := range replies {
			_ = col.nc.Publish(reply, []byte("+ACK"))
		}
		col.log.WithFields(logrus.Fields{"acks": len(replies), "leader": leader}).Info("cluster changed: acknowledgements sent again")
	}
}

// collectMetrics reports the collector's sinks under the agent's metric
// names, and its own counters.
type collectMetrics struct{ col *fleetCollector }

var (
	descCollected = prometheus.NewDesc("encwatch_collect_messages_total", "Messages pulled from the stream, by result: delivered (handed to the sinks), duplicate (already in flight), delivered_elsewhere (another collector delivered it or is delivering it), undecodable (terminated).", []string{"result"}, nil)
	descHosts     = prometheus.NewDesc("encwatch_collect_hosts", "Hosts whose heartbeats the collector follows, by state.", []string{"state"}, nil)
)

func (m collectMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCollected, descHosts, descQueue, descSpool, descSpoolMax, descSent, descSendErr, descRejected, descDropped} {
		ch <- d
	}
}

func (m collectMetrics) Collect(ch chan<- prometheus.Metric) {
	col := m.col
	counter := counterTo(ch)
	counter(descCollected, col.received.Load(), "delivered")
	counter(descCollected, col.duplicates.Load(), "duplicate")
	counter(descCollected, col.undecodable.Load(), "undecodable")
	counter(descCollected, col.peerDuplicates.Load(), "delivered_elsewhere")
	for state, n := range col.live.counts() {
		ch <- prometheus.MustNewConstMetric(descHosts, prometheus.GaugeValue, float64(n), state)
	}
	collectSinkStats(ch, col.router.Stats())
}

// serveMetrics serves /metrics on the policy's metrics address until ctx
// ends. No address, no endpoint.
func (col *fleetCollector) serveMetrics(ctx context.Context) error {
	addr := col.cfg.Metrics.Address
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectMetrics{col})
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	defer stop()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// hostState is what the collector knows of one agent.
type hostState struct {
	last     time.Time     // when its last heartbeat was seen
	interval time.Duration // the interval it announced
	beatID   string        // its last heartbeat's id
	subject  string        // where it publishes
	silent   bool          // agent_silent raised, agent_back not yet
	stopped  bool          // it said agent_stopped
}

// liveness follows every host's heartbeats.
type liveness struct {
	silentAfter time.Duration // 0: three of the host's intervals
	mu          sync.Mutex
	hosts       map[string]*hostState
	paused      bool // disconnected from NATS: silence proves nothing
}

func newLiveness(silentAfter time.Duration) *liveness {
	return &liveness{silentAfter: silentAfter, hosts: make(map[string]*hostState)}
}

// seen records a heartbeat (or clean stop) a, seen at now on subject. It
// returns agent_back when the host was silent.
func (l *liveness) seen(a *detect.Alert, subject string, now time.Time) *detect.Alert {
	l.mu.Lock()
	defer l.mu.Unlock()
	h, ok := l.hosts[a.Host]
	if !ok {
		h = &hostState{}
		l.hosts[a.Host] = h
	}
	h.interval = time.Minute
	for _, m := range a.Matches {
		if m.Field == heartbeatInterval {
			if s, err := strconv.ParseFloat(m.Value, 64); err == nil && s > 0 {
				h.interval = time.Duration(s * float64(time.Second))
			}
		}
	}
	// A heartbeat from a backlog counts from when it was sent.
	seenAt := now
	if a.Time.Before(now.Add(-l.after(h))) {
		seenAt = a.Time
	}
	if seenAt.After(h.last) {
		h.last = seenAt
	}
	h.beatID, h.subject = a.ID, subject
	h.stopped = a.Signature.Name == SigStopped
	if !h.silent || h.stopped || seenAt != now {
		return nil
	}
	h.silent = false
	back := fleetAlert(SigBack, a.Host, now, "agent_back-"+a.ID, detect.Low,
		"encwatch on this host is sending heartbeats again after being silent",
		[]detect.Match{{Field: "agent.last_heartbeat", Value: a.Time.UTC().Format(time.RFC3339Nano), Reason: "the heartbeat that ended the silence"}})
	return &back
}

// after is how long h may stay silent.
func (l *liveness) after(h *hostState) time.Duration {
	if l.silentAfter > 0 {
		return l.silentAfter
	}
	return 3 * h.interval
}

// silence is an agent_silent alert and the subject to publish it on.
type silence struct {
	alert   detect.Alert
	subject string
}

// overdue returns agent_silent for each host newly silent at now.
func (l *liveness) overdue(now time.Time) []silence {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.paused {
		return nil
	}
	var out []silence
	for host, h := range l.hosts {
		if h.silent || h.stopped || now.Sub(h.last) <= l.after(h) {
			continue
		}
		h.silent = true
		a := fleetAlert(SigSilent, host, now, "agent_silent-"+h.beatID, detect.Critical,
			"no heartbeat from encwatch on this host: the agent was killed, the host is down or cut off",
			[]detect.Match{
				{Field: "agent.last_heartbeat_seen", Value: h.last.UTC().Format(time.RFC3339Nano), Reason: "the last sign of life"},
				{Field: "agent.silent_seconds", Value: strconv.FormatInt(int64(now.Sub(h.last).Seconds()), 10), Reason: "more than silent_after (" + l.after(h).String() + ")"},
			})
		out = append(out, silence{alert: a, subject: h.subject})
	}
	return out
}

// pause stops silence checks while the collector is cut off from NATS;
// resume restarts the clocks at now, so that hosts are not blamed for the
// collector's own outage.
func (l *liveness) pause() {
	l.mu.Lock()
	l.paused = true
	l.mu.Unlock()
}

func (l *liveness) resume(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.paused = false
	for _, h := range l.hosts {
		if h.last.Before(now) {
			h.last = now
		}
	}
}

// counts returns how many hosts are alive, silent and stopped.
func (l *liveness) counts() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := map[string]int{"alive": 0, "silent": 0, "stopped": 0}
	for _, h := range l.hosts {
		switch {
		case h.stopped:
			c["stopped"]++
		case h.silent:
			c["silent"]++
		default:
			c["alive"]++
		}
	}
	return c
}

// fleetAlert is an alert the collector raises about a host.
func fleetAlert(name, host string, now time.Time, id string, imp detect.Importance, desc string, matches []detect.Match) detect.Alert {
	return detect.Alert{
		ID:   id,
		Time: now,
		Host: host,
		Signature: detect.SignatureInfo{
			Name: name, Description: desc, Category: "Agent Health", Method: "Heartbeat",
			Importance: imp, MITRE: []string{"T1562.001"},
		},
		Matches: matches,
		Actions: []string{"check the agent on the host: systemctl status encwatch; journalctl -u encwatch"},
	}
}
