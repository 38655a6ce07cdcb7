package config

import (
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/encwatch/encwatch/internal/sink"
)

// Heartbeat is the heartbeat block: the agent says it is alive, and how
// healthy, to its sinks every Interval.
type Heartbeat struct {
	Interval time.Duration
	// Sinks names the sinks that get the heartbeats; nil is every sink.
	Sinks []string
	Range hcl.Range
}

// Collect is the collect block of `encwatch collect`: the durable
// JetStream pull consumer it reads alerts from, and when a host counts as
// silent. The alerts go to the policy's sinks.
type Collect struct {
	URLs     []string
	Stream   string // default sink.DefaultNATSStream
	Consumer string // the durable consumer's name, shared by every collector
	// Subject filters the stream's subjects; "" takes them all.
	Subject string
	// SilentAfter is how long a host's heartbeat may be overdue before
	// agent_silent; 0 is three of the host's own intervals.
	SilentAfter time.Duration
	// Batch is how many messages one pull asks for; AckWait how long the
	// stream waits for an acknowledgement before it redelivers;
	// MaxAckPending how many may be unacknowledged at once.
	Batch         int
	AckWait       time.Duration
	MaxAckPending int
	Auth          sink.NATSAuth
	TLS           sink.TLSOptions
	// Insecure allows a server without credentials, and one off loopback
	// without TLS (sink.CheckNATSSecurity).
	Insecure bool
	// HostSubject is the subject template the agents publish with
	// (sink.DefaultNATSSubject): its {host} token, which the server's
	// permissions bind to each agent's credentials, is who sent a record.
	HostSubject string
	// MinInterval and MaxInterval bound the heartbeat interval a host may
	// announce; MaxHosts the hosts followed; ForgetAfter how long a
	// stopped or silent host is remembered.
	MinInterval, MaxInterval time.Duration
	MaxHosts                 int
	ForgetAfter              time.Duration
	// StallAfter is how long without a successful fetch makes the
	// collector unhealthy; ManageConsumer lets it create the durable
	// consumer and recreate it when it is deleted.
	StallAfter     time.Duration
	ManageConsumer bool
	Range          hcl.Range
}

// Defaults of the collect block.
const (
	DefaultCollectConsumer = "encwatch-collect"
	DefaultCollectBatch    = 256
	DefaultAckWait         = 30 * time.Second
	DefaultMaxAckPending   = 8192
	DefaultMinInterval     = time.Second
	DefaultMaxInterval     = time.Hour
	DefaultMaxHosts        = 100_000
	DefaultForgetAfter     = 7 * 24 * time.Hour
	DefaultStallAfter      = 5 * time.Second
)

// fleet decodes the top-level blocks of the fleet: heartbeat (the agent)
// and collect (the collector).
func (st *state) fleet(blk *hclsyntax.Block) {
	switch blk.Type {
	case "heartbeat":
		if st.cfg.Heartbeat != nil {
			st.d.errorf(blk.TypeRange, "duplicate heartbeat block; first defined at %s", at(st.cfg.Heartbeat.Range))
			return
		}
		if st.d.labels(blk) {
			st.heartbeat(blk)
		}
	case "collect":
		if st.cfg.Collect != nil {
			st.d.errorf(blk.TypeRange, "duplicate collect block; first defined at %s", at(st.cfg.Collect.Range))
			return
		}
		if st.d.labels(blk) {
			st.collect(blk)
		}
	}
}

func (st *state) heartbeat(blk *hclsyntax.Block) {
	b := st.d.body(blk, "heartbeat block")
	h := &Heartbeat{Interval: 60 * time.Second, Range: blk.TypeRange}
	b.Duration("interval", &h.Interval, 100*time.Millisecond, 24*time.Hour)
	if ranges, ok := b.Strings("sinks", &h.Sinks); ok {
		for i, rng := range ranges {
			if h.Sinks[i] == "" {
				st.d.errorf(rng, "sinks: empty sink name")
			}
		}
		if h.Sinks == nil {
			h.Sinks = []string{} // an empty list: heartbeats go nowhere
		}
	}
	b.Done()
	st.cfg.Heartbeat = h
}

func (st *state) collect(blk *hclsyntax.Block) {
	b := st.d.body(blk, "collect block")
	c := &Collect{
		Stream: sink.DefaultNATSStream, Consumer: DefaultCollectConsumer,
		Batch: DefaultCollectBatch, AckWait: DefaultAckWait, MaxAckPending: DefaultMaxAckPending,
		HostSubject: sink.DefaultNATSSubject,
		MinInterval: DefaultMinInterval, MaxInterval: DefaultMaxInterval,
		MaxHosts: DefaultMaxHosts, ForgetAfter: DefaultForgetAfter,
		StallAfter: DefaultStallAfter, ManageConsumer: true,
		Range: blk.TypeRange,
	}
	var one string
	if rng, ok := b.String("url", &one); ok {
		c.URLs = append(c.URLs, one)
		st.natsURL(rng, one)
	}
	var many []string
	if ranges, ok := b.Strings("urls", &many); ok {
		for i, rng := range ranges {
			st.natsURL(rng, many[i])
		}
		c.URLs = append(c.URLs, many...)
	}
	if len(c.URLs) == 0 {
		b.Require("url")
	}
	if rng, ok := b.String("stream", &c.Stream); ok && !sink.ValidJetStreamName(c.Stream) {
		st.d.errorf(rng, "stream %q must be letters, digits, \"-\" or \"_\"", c.Stream)
	}
	if rng, ok := b.String("consumer", &c.Consumer); ok && !sink.ValidJetStreamName(c.Consumer) {
		st.d.errorf(rng, "consumer %q must be letters, digits, \"-\" or \"_\"", c.Consumer)
	}
	if rng, ok := b.String("subject", &c.Subject); ok && strings.ContainsAny(c.Subject, " \t\r\n") {
		st.d.errorf(rng, "subject %q must not contain white space", c.Subject)
	}
	b.Duration("silent_after", &c.SilentAfter, 100*time.Millisecond, 7*24*time.Hour)
	if n, ok := b.Int("batch", 1, 10000); ok {
		c.Batch = int(n)
	}
	b.Duration("ack_wait", &c.AckWait, time.Second, time.Hour)
	if n, ok := b.Int("max_ack_pending", 1, 1<<20); ok {
		c.MaxAckPending = int(n)
	}
	if rng, ok := b.String("host_subject", &c.HostSubject); ok {
		if msg := sink.CheckHostSubject(c.HostSubject); msg != "" {
			st.d.errorf(rng, "host_subject %q: %s", c.HostSubject, msg)
		}
	}
	b.Duration("min_interval", &c.MinInterval, 100*time.Millisecond, 24*time.Hour)
	b.Duration("max_interval", &c.MaxInterval, 100*time.Millisecond, 7*24*time.Hour)
	if c.MaxInterval < c.MinInterval {
		st.d.errorf(blk.TypeRange, "collect block: max_interval %s is below min_interval %s", c.MaxInterval, c.MinInterval)
	}
	if n, ok := b.Int("max_hosts", 1, 10_000_000); ok {
		c.MaxHosts = int(n)
	}
	b.Duration("forget_after", &c.ForgetAfter, time.Minute, 365*24*time.Hour)
	b.Duration("stall_after", &c.StallAfter, time.Second, time.Hour)
	b.Bool("manage_consumer", &c.ManageConsumer)
	b.Bool("insecure", &c.Insecure)
	b.AbsPath("creds_file", &c.Auth.CredsFile)
	b.AbsPath("nkey_file", &c.Auth.NKeyFile)
	b.AbsPath("token_file", &c.Auth.TokenFile)
	nauth := 0
	for _, f := range []string{c.Auth.CredsFile, c.Auth.NKeyFile, c.Auth.TokenFile} {
		if f != "" {
			nauth++
		}
	}
	if nauth > 1 {
		st.d.errorf(blk.TypeRange, "collect block: set only one of creds_file, nkey_file and token_file")
	}
	if msg := sink.CheckNATSSecurity(c.URLs, nauth > 0, sink.HasTLSBlock(b.Body), c.Insecure); msg != "" && nauth <= 1 {
		st.d.errorf(blk.TypeRange, "collect block: %s", msg)
	}
	for _, blk := range blk.Body.Blocks {
		if blk.Type == "tls" && st.d.labels(blk) {
			st.collectTLS(blk, &c.TLS)
		}
	}
	b.Done("tls")
	st.cfg.Collect = c
}

func (st *state) collectTLS(blk *hclsyntax.Block, t *sink.TLSOptions) {
	sink.DecodeTLS(st.d.body(blk, "tls block").Body, t)
}

func (st *state) natsURL(rng hcl.Range, v string) {
	if msg := sink.CheckNATSURL(v); msg != "" {
		st.d.errorf(rng, "%s", msg)
	}
}
