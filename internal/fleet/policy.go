package fleet

import (
	"strings"
	"time"

	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/hclbody"
	"github.com/encwatch/encwatch/internal/sink"
)

// HeartbeatSettings are what the top-level `heartbeat { … }` block says: the
// agent says it is alive, and how healthy, to its sinks every Interval.
type HeartbeatSettings struct {
	Interval time.Duration
	// Sinks names the sinks that get the heartbeats; nil is every sink.
	Sinks []string
}

// CollectSettings are what the top-level `collect { … }` block of
// `encwatch collect` says: the durable JetStream pull consumer it reads
// alerts from, and when a host counts as silent. The alerts go to the
// policy's sinks.
type CollectSettings struct {
	URLs     []string
	Stream   string // default DefaultStream
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
	Auth          NATSAuth
	TLS           sink.TLSOptions
	// Insecure allows a server without credentials, and one off loopback
	// without TLS (CheckNATSSecurity).
	Insecure bool
	// HostSubject is the subject template the agents publish with
	// (DefaultSubject): its {host} token, which the server's permissions
	// bind to each agent's credentials, is who sent a record.
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
}

// Defaults of the collect block.
const (
	DefaultConsumer      = "encwatch-collect"
	DefaultBatch         = 256
	DefaultAckWait       = 30 * time.Second
	DefaultMaxAckPending = 8192
	DefaultMinInterval   = time.Second
	DefaultMaxInterval   = time.Hour
	DefaultMaxHosts      = 100_000
	DefaultForgetAfter   = 7 * 24 * time.Hour
	DefaultStallAfter    = 5 * time.Second
	// DefaultMetricsAddress is the collector's metrics endpoint: the port
	// after the agent's (config.DefaultMetricsAddress), so that a collector
	// and an agent on one host both start with their defaults.
	DefaultMetricsAddress = "127.0.0.1:9465"
	// DefaultProbeSocket is the collector's probe socket, in its unit's
	// RuntimeDirectory, not the agent's (one unit's stop removes its
	// directory).
	DefaultProbeSocket = "/run/encwatch-collect/probe.sock"
)

func init() {
	config.RegisterBlock(config.Block{Type: "heartbeat", Decode: decodeHeartbeat})
	config.RegisterBlock(config.Block{
		Type: "collect", Decode: decodeCollect,
		MetricsAddress: DefaultMetricsAddress, ProbeSocket: DefaultProbeSocket,
		Forwards: true,
	})
}

// HeartbeatOf returns the policy's heartbeat block, nil when it has none.
func HeartbeatOf(cfg *config.Config) *HeartbeatSettings {
	h, _ := cfg.Blocks["heartbeat"].(*HeartbeatSettings)
	return h
}

// CollectOf returns the policy's collect block, nil when it has none.
func CollectOf(cfg *config.Config) *CollectSettings {
	c, _ := cfg.Blocks["collect"].(*CollectSettings)
	return c
}

func decodeHeartbeat(b *hclbody.Body) any {
	h := &HeartbeatSettings{Interval: 60 * time.Second}
	b.Duration("interval", &h.Interval, 100*time.Millisecond, 24*time.Hour)
	if ranges, ok := b.Strings("sinks", &h.Sinks); ok {
		for i, rng := range ranges {
			if h.Sinks[i] == "" {
				b.Errorf(rng, "sinks: empty sink name")
			}
		}
		if h.Sinks == nil {
			h.Sinks = []string{} // an empty list: heartbeats go nowhere
		}
	}
	b.Done()
	return h
}

func decodeCollect(b *hclbody.Body) any {
	c := &CollectSettings{
		Stream: DefaultStream, Consumer: DefaultConsumer,
		Batch: DefaultBatch, AckWait: DefaultAckWait, MaxAckPending: DefaultMaxAckPending,
		HostSubject: DefaultSubject,
		MinInterval: DefaultMinInterval, MaxInterval: DefaultMaxInterval,
		MaxHosts: DefaultMaxHosts, ForgetAfter: DefaultForgetAfter,
		StallAfter: DefaultStallAfter, ManageConsumer: true,
	}
	var one string
	if rng, ok := b.String("url", &one); ok {
		c.URLs = append(c.URLs, one)
		checkURL(b, rng, one)
	}
	var many []string
	if ranges, ok := b.Strings("urls", &many); ok {
		for i, rng := range ranges {
			checkURL(b, rng, many[i])
		}
		c.URLs = append(c.URLs, many...)
	}
	if len(c.URLs) == 0 {
		b.Require("url")
	}
	if rng, ok := b.String("stream", &c.Stream); ok && !ValidJetStreamName(c.Stream) {
		b.Errorf(rng, "stream %q must be letters, digits, \"-\" or \"_\"", c.Stream)
	}
	if rng, ok := b.String("consumer", &c.Consumer); ok && !ValidJetStreamName(c.Consumer) {
		b.Errorf(rng, "consumer %q must be letters, digits, \"-\" or \"_\"", c.Consumer)
	}
	if rng, ok := b.String("subject", &c.Subject); ok && strings.ContainsAny(c.Subject, " \t\r\n") {
		b.Errorf(rng, "subject %q must not contain white space", c.Subject)
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
		if msg := CheckHostSubject(c.HostSubject); msg != "" {
			b.Errorf(rng, "host_subject %q: %s", c.HostSubject, msg)
		}
	}
	b.Duration("min_interval", &c.MinInterval, 100*time.Millisecond, 24*time.Hour)
	b.Duration("max_interval", &c.MaxInterval, 100*time.Millisecond, 7*24*time.Hour)
	if c.MaxInterval < c.MinInterval {
		b.Errorf(b.DefRange(), "collect block: max_interval %s is below min_interval %s", c.MaxInterval, c.MinInterval)
	}
	if n, ok := b.Int("max_hosts", 1, 10_000_000); ok {
		c.MaxHosts = int(n)
	}
	b.Duration("forget_after", &c.ForgetAfter, time.Minute, 365*24*time.Hour)
	b.Duration("stall_after", &c.StallAfter, time.Second, time.Hour)
	b.Bool("manage_consumer", &c.ManageConsumer)
	b.Bool("insecure", &c.Insecure)
	nauth := decodeAuth(b, &c.Auth)
	if msg := CheckNATSSecurity(c.URLs, nauth > 0, hasTLSBlock(b), c.Insecure); msg != "" && nauth <= 1 {
		b.Errorf(b.DefRange(), "collect block: %s", msg)
	}
	// Each tls block is decoded into the one TLS, as it always was.
	for _, blk := range b.Syntax().Blocks {
		if blk.Type != "tls" {
			continue
		}
		if len(blk.Labels) > 0 {
			b.Errorf(blk.LabelRanges[0], "tls block takes no labels")
			continue
		}
		sink.DecodeTLS(b.Nested(blk, "tls block"), &c.TLS)
	}
	b.Done("tls")
	return c
}

// Warnings says that insecure = true lets the collector's connection run
// without credentials or TLS.
func (c *CollectSettings) Warnings(what string) []string {
	if !c.Insecure {
		return nil
	}
	return []string{insecureWarning(what)}
}

var _ config.Warner = (*CollectSettings)(nil)
