package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/sink"
)

// AgentStats are the counters an agent's heartbeat reports.
type AgentStats struct {
	Events, Alerts uint64 // events assembled and alerts raised since start
	KernelLost     uint64 // records the kernel lost since start
	PipelineDrops  uint64 // records and events the pipeline dropped
	SinkDrops      uint64 // alerts the sinks dropped since the last (re)load
}

// HeartbeatOptions are what a Heartbeater reads from the agent that drives
// it, each when a record is sent.
type HeartbeatOptions struct {
	// Policy returns the running policy: a reload that changes the
	// heartbeat block applies at the next beat.
	Policy func() *config.Config
	// Deliver hands a record to the named sinks (nil: every sink),
	// straight to the router: records are not detections, so they are
	// not counted as alerts.
	Deliver func(a detect.Alert, sinks []string)
	// Stats returns the counters the record reports.
	Stats func() AgentStats
	Log   *logrus.Entry
	// Version is the product version; "" is "dev". Mode is the audit
	// input's.
	Version, Mode string
}

// Heartbeater sends an agent's fleet records to the sinks the policy's
// heartbeat block names: agent_heartbeat at start and every interval, and
// agent_stopped when the agent stops cleanly. A policy without the block
// sends none.
type Heartbeater struct {
	o       HeartbeatOptions
	started time.Time
}

// NewHeartbeater makes a Heartbeater; its uptime counts from now.
func NewHeartbeater(o HeartbeatOptions) *Heartbeater {
	if o.Version == "" {
		o.Version = "dev"
	}
	return &Heartbeater{o: o, started: time.Now()}
}

// Run sends agent_heartbeat at once and then every interval of the heartbeat
// block, until ctx ends. It reads the policy at each beat, and looks again
// within a minute for a block a reload may add.
func (h *Heartbeater) Run(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	var checked *config.Config
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		cfg := h.o.Policy()
		if cfg != checked {
			h.checkSinks(cfg)
			checked = cfg
		}
		next := time.Minute
		if hb := HeartbeatOf(cfg); hb != nil {
			h.send(cfg, hb, SigHeartbeat)
			next = hb.Interval
		}
		timer.Reset(next)
	}
}

// Stopped sends agent_stopped, when the policy has a heartbeat block. The
// agent calls it once, when its input ends cleanly: a kill -9 sends
// nothing, which is the point: the collector tells a stopped agent from a
// silent one.
func (h *Heartbeater) Stopped() {
	cfg := h.o.Policy()
	if hb := HeartbeatOf(cfg); hb != nil {
		h.send(cfg, hb, SigStopped)
	}
}

// checkSinks warns of a sink the heartbeat block names and the policy
// lacks: its heartbeats would go nowhere.
func (h *Heartbeater) checkSinks(cfg *config.Config) {
	hb := HeartbeatOf(cfg)
	if hb == nil {
		return
	}
	for _, name := range hb.Sinks {
		if !slices.ContainsFunc(cfg.Sinks, func(s sink.Config) bool { return s.Name == name }) {
			h.o.Log.WithField("sink", name).Warn("the heartbeat block names a sink the policy does not have")
		}
	}
}

func (h *Heartbeater) send(cfg *config.Config, hb *HeartbeatSettings, name string) {
	h.o.Deliver(h.record(cfg, hb, name, time.Now()), hb.Sinks)
}

// record is an agent_heartbeat or agent_stopped record: who the agent is
// and the counters that show its health, as match fields.
func (h *Heartbeater) record(cfg *config.Config, hb *HeartbeatSettings, name string, now time.Time) detect.Alert {
	host := cfg.Settings.Host()
	st := h.o.Stats()
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	desc, reason := "encwatch is running on this host", "the agent is alive"
	if name == SigStopped {
		desc, reason = "encwatch stopped cleanly on this host", "the agent was stopped"
	}
	return detect.Alert{
		ID:          fmt.Sprintf("%s-%s-%d", name, host, now.UnixNano()),
		Time:        now,
		Host:        host,
		Environment: cfg.Settings.Environment,
		Signature: detect.SignatureInfo{
			Name: name, Description: desc, Category: "Agent Health", Method: "Heartbeat",
			Importance: detect.Info,
		},
		Matches: []detect.Match{
			{Field: "heartbeat.version", Value: h.o.Version, Reason: reason},
			{Field: "heartbeat.policy_hash", Value: policyHash(cfg), Reason: "sha256 of the policy files"},
			{Field: "heartbeat.mode", Value: h.o.Mode, Reason: "the audit input"},
			{Field: HeartbeatUptime, Value: strconv.FormatInt(int64(now.Sub(h.started).Seconds()), 10), Reason: "seconds since start"},
			{Field: HeartbeatInterval, Value: strconv.FormatFloat(hb.Interval.Seconds(), 'f', -1, 64), Reason: "the next heartbeat is due within this"},
			{Field: "heartbeat.events", Value: u(st.Events), Reason: "events assembled since start"},
			{Field: "heartbeat.alerts", Value: u(st.Alerts), Reason: "alerts raised since start"},
			{Field: "heartbeat.kernel_lost", Value: u(st.KernelLost), Reason: "records the kernel lost since start"},
			{Field: "heartbeat.pipeline_drops", Value: u(st.PipelineDrops), Reason: "records and events the pipeline dropped"},
			{Field: "heartbeat.sink_drops", Value: u(st.SinkDrops), Reason: "alerts the sinks dropped since the last (re)load"},
		},
	}
}

// policyHash is the sha256 of the policy's files (the main file, then
// conf.d/*.hcl in order), the same on every host that runs the same
// policy; "" when one cannot be read.
func policyHash(cfg *config.Config) string {
	if cfg.Path == "" {
		return ""
	}
	files := []string{cfg.Path}
	confd, _ := filepath.Glob(filepath.Join(filepath.Dir(cfg.Path), "conf.d", "*.hcl"))
	slices.Sort(confd)
	h := sha256.New()
	for _, f := range append(files, confd...) {
		b, err := os.ReadFile(f)
		if err != nil {
			return ""
		}
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
