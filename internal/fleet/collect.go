package fleet

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/endpoint"
	"github.com/encwatch/encwatch/internal/sink"
)

// Options are how Collect is started, beyond the policy.
type Options struct {
	// Version is the product version the sinks report; "" is "dev".
	Version string
	// Check is how often hosts are checked for silence; 0 is 250ms.
	Check time.Duration
	// JunkEvery is how often terminated junk is summarised in the log; 0
	// is 10s.
	JunkEvery time.Duration
	// SinkStats, when set, reports the sinks' statistics under /metrics
	// (the agent's encwatch_sink_* metrics, whose descriptions are
	// SinkDescs).
	SinkStats func(ch chan<- prometheus.Metric, stats []sink.Stats)
	SinkDescs []*prometheus.Desc
}

// fleetCollector is one `encwatch collect`: a durable JetStream pull
// consumer feeding the policy's sinks, and the watch on the agents'
// heartbeats. Its fields are set before its goroutines start.
type fleetCollector struct {
	log    *logrus.Entry
	cfg    *config.Config
	c      *CollectSettings
	router *sink.Router
	acks   *ackTracker
	live   *liveness
	nc     *nats.Conn
	js     jetstream.JetStream
	hosts  HostSubject
	// claims is the bucket in which collectors claim alerts
	// (claims.go); set by pull before the first fetch.
	claims atomic.Pointer[claims]
	// ep is the metrics endpoint, bound at start.
	ep      *endpoint.Endpoint
	forgery *forgeryLimiter
	health  collectHealth
	// marks are alert ids whose claims are to be marked delivered.
	marks chan string
	opts  Options

	received, duplicates, undecodable atomic.Uint64
	// redelivered counts messages the stream had delivered before (to this
	// collector or another): each is an acknowledgement that did not arrive.
	redelivered atomic.Uint64
	// elsewhere counts messages another collector had delivered (and this
	// one acknowledged); claimedElsewhere those another was delivering (left
	// for the stream to offer again); unclaimed those delivered without a
	// claim, the bucket not answering over three deliveries.
	elsewhere, claimedElsewhere, unclaimed atomic.Uint64
	// forged counts records whose host disagreed with their subject's.
	forged atomic.Uint64
}

// collectInboxPrefix is the collector's inbox prefix: the replies of its
// pulls carry every host's alerts, so the server's permissions let only
// collectors subscribe to it (agents get _INBOX.>).
const collectInboxPrefix = "_ENCWATCH_COLLECT_INBOX"

// Collect runs the fleet side until ctx ends: it pulls alerts from the
// collect block's durable consumer (several collectors on one consumer
// share the load), delivers each into the policy's sinks, and acknowledges
// a message only once every sink has taken it or spooled it; what is not
// acknowledged is redelivered, so delivery is at least once and the alert
// id lets a receiver drop a duplicate. Who sent a record is the host token
// of its subject, never the record's own host field. It raises agent_silent
// when a host's heartbeat is overdue and agent_back when it returns.
func Collect(ctx context.Context, cfg *config.Config, log *logrus.Entry, opts Options) error {
	c := CollectOf(cfg)
	if c == nil {
		return fmt.Errorf("collect: the policy %s has no collect block", cfg.Path)
	}
	for _, w := range config.Warnings(cfg) {
		log.Warn(w)
	}
	if opts.Check <= 0 {
		opts.Check = 250 * time.Millisecond
	}
	if opts.JunkEvery <= 0 {
		opts.JunkEvery = junkEvery
	}
	hostSubject := c.HostSubject
	if hostSubject == "" {
		hostSubject = DefaultSubject
	}
	col := &fleetCollector{log: log, cfg: cfg, c: c, hosts: ParseHostSubject(hostSubject), opts: opts}
	ep, err := listenCollectEndpoint(cfg.Metrics, log)
	if err != nil {
		return fmt.Errorf("collect: %w", err)
	}
	col.ep = ep
	sinks, err := sink.Build(cfg.Sinks, sink.BuildOptions{Log: log, Version: opts.Version})
	if err != nil {
		ep.Close()
		return err
	}
	col.acks = newAckTracker(len(sinks))
	col.marks = make(chan string, 1<<16)
	col.acks.onDone = col.claimDelivered
	col.live = newLiveness(c)
	col.forgery = newForgeryLimiter(c.MaxHosts)
	col.router = sink.NewRouter(log.WithField("stage", "sink"), sinks, sink.RouterOptions{
		// The stream holds what the sinks cannot take yet: wait for room
		// rather than drop.
		Block: true, DrainTimeout: 10 * time.Second, Accepted: col.acks.accepted,
	})
	col.nc, err = DialNATS(c.URLs, c.TLS, c.Auth, "encwatch collect", log,
		nats.CustomInboxPrefix(collectInboxPrefix),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.WithError(err).Warn("nats disconnected")
			col.live.pause()
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.WithField("server", nc.ConnectedUrlRedacted()).Info("nats reconnected")
			col.live.resume(time.Now())
		}))
	if err != nil {
		ep.Close()
		closeSinks(sinks, log)
		return fmt.Errorf("collect: %w", err)
	}
	// Claims and their marks are asynchronous publishes: one whose answer
	// died with a cluster node must not stay pending for ever.
	if col.js, err = jetstream.New(col.nc, jetstream.WithPublishAsyncTimeout(5*time.Second), jetstream.WithPublishAsyncMaxPending(1<<14)); err != nil {
		col.nc.Close()
		ep.Close()
		closeSinks(sinks, log)
		return fmt.Errorf("collect: jetstream: %w", err)
	}
	return col.run(ctx, opts)
}

// listenCollectEndpoint binds the collector's metrics endpoint (the
// agent's hardening: internal/endpoint). A probe socket another live
// collector answers on is a warning: this one serves without it.
func listenCollectEndpoint(m config.Metrics, log *logrus.Entry) (*endpoint.Endpoint, error) {
	cfg := endpoint.Config{Name: "metrics", Address: m.Address, ProbeSocket: m.ProbeSocket}
	ep, err := endpoint.Listen(cfg)
	if errors.Is(err, endpoint.ErrProbeInUse) {
		log.WithError(err).Warn("probe socket held by another collector; serving the metrics endpoint without it")
		cfg.ProbeSocket = ""
		ep, err = endpoint.Listen(cfg)
	}
	return ep, err
}

// run owns the collector's goroutines and returns once all have stopped,
// the sinks have drained and what they did not take is handed back to the
// stream.
func (col *fleetCollector) run(ctx context.Context, opts Options) error {
	routerDone := make(chan error, 1)
	// The router drains within its deadline once ctx ends.
	go func() { routerDone <- col.router.Run(ctx) }()
	col.health.lastFetch.Store(time.Now().UnixNano())
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return col.pull(gctx) })
	g.Go(func() error { return col.watch(gctx, opts.Check) })
	g.Go(func() error { return col.serveMetrics(gctx) })
	g.Go(func() error { col.checkHealth(gctx, time.Second, opts.JunkEvery); return nil })
	g.Go(func() error { col.markClaims(gctx); return nil })
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
	col.log.WithFields(logrus.Fields{
		"received": col.received.Load(), "duplicates": col.duplicates.Load(), "undecodable": col.undecodable.Load(),
		"redelivered": col.redelivered.Load(), "delivered_elsewhere": col.elsewhere.Load(),
		"claimed_elsewhere": col.claimedElsewhere.Load(), "unclaimed": col.unclaimed.Load(), "forged": col.forged.Load(),
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
	col.health.cons.Store(&cons)
	reacked := make(chan struct{})
	go func() {
		defer close(reacked)
		col.reacknowledge(ctx, cons)
	}()
	defer func() { <-reacked }()
	failing := false
	for ctx.Err() == nil {
		batch, err := cons.Fetch(col.c.Batch, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			if !failing {
				col.log.WithError(err).Warn("fetch failed")
			}
			failing = true
			sleepCtx(ctx, 250*time.Millisecond)
			continue
		}
		// Messages are claimed (claims.go) in chunks: the first that
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
			if !failing {
				col.log.WithError(err).Warn("fetch failed")
			}
			failing = true
			sleepCtx(ctx, 250*time.Millisecond)
			continue
		}
		if failing {
			col.log.Info("fetching again")
		}
		failing = false
		col.health.lastFetch.Store(time.Now().UnixNano())
	}
	return nil
}

// consumer creates (or finds) the durable consumer and the claims bucket
// and subscribes to the stream's subjects for the heartbeat watch, retrying
// until the stream exists or ctx ends (nil, nil).
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

// consumerConfig is the durable consumer; start > 0 starts it there (a
// consumer recreated after it was deleted starts after its ack floor).
func (col *fleetCollector) consumerConfig(start uint64) jetstream.ConsumerConfig {
	cc := jetstream.ConsumerConfig{
		Durable:       col.c.Consumer,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       col.c.AckWait,
		MaxAckPending: col.c.MaxAckPending,
		FilterSubject: col.c.Subject,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if start > 0 {
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, start
	}
	return cc
}

func (col *fleetCollector) openConsumer(ctx context.Context) (jetstream.Consumer, []string, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := col.js.Stream(cctx, col.c.Stream)
	if err != nil {
		return nil, nil, fmt.Errorf("stream %s: %w", col.c.Stream, err)
	}
	var cons jetstream.Consumer
	if col.c.ManageConsumer {
		cons, err = st.CreateOrUpdateConsumer(cctx, col.consumerConfig(0))
	} else {
		cons, err = st.Consumer(cctx, col.c.Consumer)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("consumer %s: %w", col.c.Consumer, err)
	}
	cl, err := openClaims(cctx, col.js, col.c, st.CachedInfo().Config.Replicas)
	if err != nil {
		return nil, nil, err
	}
	col.claims.Store(cl)
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
		// under a flood only delays a host's next sign of life; the bound
		// keeps a flood from holding the collector's memory.
		_ = sub.SetPendingLimits(1<<16, 64<<20)
	}
	return nil
}

// heartbeatSeen reads a heartbeat or a clean stop off the watch
// subscription. One whose host is not its subject's is not believed (the
// pulled copy raises fleet_forgery).
func (col *fleetCollector) heartbeatSeen(m *nats.Msg) {
	sig := m.Header.Get(SignatureHeader)
	if sig != SigHeartbeat && sig != SigStopped {
		return
	}
	token, ok := col.hosts.Host(m.Subject)
	if !ok {
		return
	}
	a, err := sink.DecodeRecord([]byte(m.Header.Get(RecordHeader)))
	if err != nil || SubjectToken(a.Host) != token || a.Signature.Name != sig {
		return
	}
	if back := col.live.seen(&a, token, m.Subject, time.Now()); back != nil {
		col.raise(*back)
	}
}

// admit reads the alert a pulled message carries and sets who sent it from
// its subject. A message without a record, or on a subject no agent
// publishes, is terminated (the stream never offers it again) and counted;
// a forged record raises fleet_forgery and is delivered under its
// subject's host, or, when it is one of the fleet's own records, dropped.
func (col *fleetCollector) admit(msg jetstream.Msg) (detect.Alert, bool) {
	token, ok := col.hosts.Host(msg.Subject())
	rec := msg.Headers().Get(RecordHeader)
	var a detect.Alert
	var err error
	if ok && rec != "" {
		a, err = sink.DecodeRecord([]byte(rec))
	}
	if !ok || rec == "" || err != nil {
		col.undecodable.Add(1)
		col.health.junk(msg.Subject())
		_ = msg.Term()
		return detect.Alert{}, false
	}
	a.Subject = msg.Subject()
	if SubjectToken(a.Host) == token {
		return a, true
	}
	col.forged.Add(1)
	claimed := a.Host
	a.ClaimedHost, a.Host = claimed, col.live.hostOf(token)
	var seq uint64
	if md, err := msg.Metadata(); err == nil {
		seq = md.Sequence.Stream
	}
	if f := col.forgery.raise(token, a, seq, time.Now()); f != nil {
		col.log.WithFields(logrus.Fields{"subject": a.Subject, "claimed_host": claimed, "signature": a.Signature.Name}).Error("forged record: its host is not its subject's")
		col.router.Deliver(*f)
	}
	if fleetSignature(a.Signature.Name) {
		// A heartbeat, stop or silence for another host is a lie with no
		// evidence in it: acknowledged, counted, not delivered.
		_ = msg.Ack()
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

// sift delivers a chunk of pulled messages, each once this collector holds
// its claim; what another collector delivered is acknowledged without a
// second delivery, what another is delivering is left for the stream to
// offer again after the ack wait, when the other has finished (and this one
// acknowledges it) or failed (and its claim expired).
func (col *fleetCollector) sift(ctx context.Context, msgs []jetstream.Msg) {
	type pulled struct {
		msg   jetstream.Msg
		alert detect.Alert
	}
	var direct, ask []pulled
	for _, msg := range msgs {
		a, ok := col.admit(msg)
		if !ok {
			continue
		}
		if col.acks.has(a.ID) {
			direct = append(direct, pulled{msg, a})
		} else {
			ask = append(ask, pulled{msg, a})
		}
	}
	for _, d := range direct {
		col.handle(d.msg, d.alert)
	}
	if len(ask) == 0 {
		return
	}
	ids := make([]string, len(ask))
	for i, d := range ask {
		ids[i] = d.alert.ID
	}
	results := col.claims.Load().claim(ctx, ids)
	for i, d := range ask {
		switch results[i] {
		case claimMine:
			col.handle(d.msg, d.alert)
		case claimDone:
			_ = d.msg.Ack()
			col.elsewhere.Add(1)
		case claimPending:
			col.claimedElsewhere.Add(1)
		default:
			// The bucket did not answer (a cluster node died): ask again
			// soon; after three deliveries, deliver unclaimed (at least
			// once: possibly twice, never lost).
			md, err := d.msg.Metadata()
			if err == nil && md.NumDelivered >= unclaimedAfter {
				col.unclaimed.Add(1)
				col.handle(d.msg, d.alert)
				continue
			}
			delay := time.Second
			if err == nil {
				delay *= time.Duration(md.NumDelivered)
			}
			_ = d.msg.NakWithDelay(delay)
		}
	}
}

// unclaimedAfter is the delivery from which a message whose claim the
// bucket never answered is delivered unclaimed: after 1+2+3+4 s of asking.
const unclaimedAfter = 5

// claimDelivered is the ackTracker's onDone: every sink took alert id. It
// runs on the sink's worker, so the mark is handed to markClaims rather
// than published here; a full hand-over drops it (the claim then expires:
// at worst a duplicate, never a loss).
func (col *fleetCollector) claimDelivered(id string) {
	select {
	case col.marks <- id:
	default:
	}
}

// markClaims marks the claims of delivered alerts done until ctx ends.
func (col *fleetCollector) markClaims(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-col.marks:
			if cl := col.claims.Load(); cl != nil {
				cl.delivered(id)
			}
		}
	}
}

// watch raises agent_silent for every host whose heartbeat is overdue,
// every check, until ctx ends. Many hosts silent at once are one summary.
func (col *fleetCollector) watch(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			silent := col.live.overdue(now)
			if len(silent) > massSilence {
				col.raise(massSilenceAlert(silent, now))
				continue
			}
			for _, s := range silent {
				col.raise(s)
			}
		}
	}
}

// raise delivers a collector's alert (agent_silent, agent_back,
// agents_silent) straight to the sinks, once over every collector: its id
// is the same in every collector that sees the silence, and only the one
// whose claim of it succeeds delivers it (a claims bucket that does not
// answer: every collector does, the id lets the SIEM drop the copies). It
// does not go through the stream, where a flood on one agent's subject
// would hold it back, and it does not wait: one slow claim never delays
// another host's alert.
func (col *fleetCollector) raise(a detect.Alert) {
	col.log.WithFields(logrus.Fields{"signature": a.Signature.Name, "host": a.Host}).Warn("raising fleet alert")
	go func() {
		key := "raise " + a.ID
		cl := col.claims.Load()
		if cl != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			res := cl.claim(ctx, []string{key})
			cancel()
			if res[0] == claimDone || res[0] == claimPending {
				return // another collector raised it
			}
		}
		col.router.Deliver(a)
		if cl != nil {
			cl.delivered(key)
		}
	}()
}

// deliverLater hands a to the sinks without holding the caller while they
// are full.
func (col *fleetCollector) deliverLater(a detect.Alert) {
	go col.router.Deliver(a)
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
	// onDone, when set, is told of each alert every sink took (outside mu).
	onDone func(id string)
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

// accepted is the router's RouterOptions.Accepted: one sink is done with a.
// The last one acknowledges the messages.
func (t *ackTracker) accepted(_ int, a *detect.Alert) {
	if t.take(a.ID) && t.onDone != nil {
		t.onDone(a.ID)
	}
}

// take counts one sink done with alert id and, after the last, acknowledges
// its messages; it reports whether it did.
func (t *ackTracker) take(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.pending[id]
	if !ok {
		return false
	}
	if p.remaining--; p.remaining > 0 {
		return false
	}
	delete(t.pending, id)
	now := time.Now()
	for _, m := range p.msgs {
		// A publish into the connection's buffer: it does not wait.
		_ = m.Ack()
		t.remember(sentAck{reply: m.Reply(), id: id, at: now})
	}
	return true
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

// since returns the reply subjects of the acknowledgements sent after
// from, and their alert ids (each once).
func (t *ackTracker) since(from time.Time) (replies, ids []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	seen := make(map[string]bool)
	for _, a := range t.recent {
		if a.at.After(from) {
			replies = append(replies, a.reply)
			if !seen[a.id] {
				seen[a.id] = true
				ids = append(ids, a.id)
			}
		}
	}
	return replies, ids
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
		replies, ids := col.acks.since(time.Now().Add(-col.c.AckWait))
		for _, reply := range replies {
			_ = col.nc.Publish(reply, []byte("+ACK"))
		}
		// The marks of the claims too: one lost with the node would make
		// another collector, offered the alert again, wait for the claim
		// to expire and then deliver it a second time.
		if cl := col.claims.Load(); cl != nil {
			for _, id := range ids {
				cl.delivered(id)
			}
		}
		col.log.WithFields(logrus.Fields{"acks": len(replies), "leader": leader}).Info("cluster changed: acknowledgements sent again")
	}
}

// closeSinks closes each sink, logging a failure.
func closeSinks(sinks []sink.Sink, log *logrus.Entry) {
	for _, s := range sinks {
		if err := s.Close(); err != nil {
			log.WithField("sink", s.Name()).WithError(err).Warn("close sink")
		}
	}
}
