package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/fleet"
	"github.com/encwatch/encwatch/internal/input"
	"github.com/encwatch/encwatch/internal/sink"
)

// The fleet's records an agent sends (internal/fleet defines them).
const (
	SigHeartbeat      = fleet.SigHeartbeat
	SigStopped        = fleet.SigStopped
	heartbeatInterval = fleet.HeartbeatInterval
	heartbeatUptime   = fleet.HeartbeatUptime
)

// heartbeats sends an agent_heartbeat record at start and then every
// interval of the policy's heartbeat block, until ctx ends. Heartbeats go
// straight to the router's sinks (all, or those the block names): they are
// not detections, so they are not counted as alerts. It reads the policy at
// each beat, so a reload that changes the interval or the sinks applies
// at the next one; a policy without the block sends none.
func (d *daemon) heartbeats(ctx context.Context) error {
	started := time.Now()
	next := time.Duration(0)
	timer := time.NewTimer(next)
	defer timer.Stop()
	var checked *config.Config
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		cfg := d.cfg.Load()
		if cfg != checked {
			d.checkHeartbeatSinks(cfg)
			checked = cfg
		}
		next = time.Minute // look again for a block a reload may add
		if hb := fleet.HeartbeatOf(cfg); hb != nil {
			d.sendRecord(cfg, d.heartbeatAlert(cfg, SigHeartbeat, started))
			next = hb.Interval
		}
		timer.Reset(next)
	}
}

// checkHeartbeatSinks warns of a sink the heartbeat block names and the
// policy lacks: its heartbeats would go nowhere.
func (d *daemon) checkHeartbeatSinks(cfg *config.Config) {
	hb := fleet.HeartbeatOf(cfg)
	if hb == nil {
		return
	}
	for _, name := range hb.Sinks {
		if !slices.ContainsFunc(cfg.Sinks, func(s sink.Config) bool { return s.Name == name }) {
			d.log.WithField("sink", name).Warn("the heartbeat block names a sink the policy does not have")
		}
	}
}

// stopStream wraps the input's stream: when the stream reports its end
// (Err) or fails (Read), and before detection closes the router, it sends
// agent_stopped, once. A kill -9 sends nothing, which is the point: the
// collector tells a stopped agent from a silent one.
func (d *daemon) stopStream(st input.Stream) input.Stream {
	started := time.Now()
	s := &stoppingStream{Stream: st}
	s.stop = func() {
		if cfg := d.cfg.Load(); fleet.HeartbeatOf(cfg) != nil {
			d.sendRecord(cfg, d.heartbeatAlert(cfg, SigStopped, started))
		}
	}
	return s
}

// stoppingStream runs stop once when the stream it wraps ends.
type stoppingStream struct {
	input.Stream
	stop func()
	once sync.Once
}

func (s *stoppingStream) Read(emit func(*audit.Event)) (bool, error) {
	more, err := s.Stream.Read(emit)
	if err != nil {
		s.once.Do(s.stop)
	}
	return more, err
}

func (s *stoppingStream) Err() error {
	err := s.Stream.Err()
	s.once.Do(s.stop)
	return err
}

// sendRecord delivers a fleet record to the heartbeat block's sinks.
func (d *daemon) sendRecord(cfg *config.Config, a detect.Alert) {
	d.p.router.Load().DeliverTo(a, fleet.HeartbeatOf(cfg).Sinks)
}

// heartbeatAlert is an agent_heartbeat or agent_stopped record: who the
// agent is and the counters that show its health, as match fields.
func (d *daemon) heartbeatAlert(cfg *config.Config, name string, started time.Time) detect.Alert {
	now := time.Now()
	host := cfg.Settings.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	p := d.p
	pipelineDrops := p.DroppedEvents.Load()
	if rs, ok := d.in.(input.Stats); ok {
		pipelineDrops += rs.Stats().DroppedRecords
	}
	var sinkDrops uint64
	for _, s := range p.router.Load().Stats() {
		sinkDrops += s.Dropped.Total()
	}
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	desc, reason := "encwatch is running on this host", "the agent is alive"
	if name == SigStopped {
		desc, reason = "encwatch stopped cleanly on this host", "the agent was stopped"
	}
	version := d.opts.Version
	if version == "" {
		version = "dev"
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
			{Field: "heartbeat.version", Value: version, Reason: reason},
			{Field: "heartbeat.policy_hash", Value: policyHash(cfg), Reason: "sha256 of the policy files"},
			{Field: "heartbeat.mode", Value: d.mode, Reason: "the audit input"},
			{Field: heartbeatUptime, Value: strconv.FormatInt(int64(now.Sub(started).Seconds()), 10), Reason: "seconds since start"},
			{Field: heartbeatInterval, Value: strconv.FormatFloat(fleet.HeartbeatOf(cfg).Interval.Seconds(), 'f', -1, 64), Reason: "the next heartbeat is due within this"},
			{Field: "heartbeat.events", Value: u(p.Events.Load()), Reason: "events assembled since start"},
			{Field: "heartbeat.alerts", Value: u(p.alerts.Load()), Reason: "alerts raised since start"},
			{Field: "heartbeat.kernel_lost", Value: u(d.m.kernelLost.Load()), Reason: "records the kernel lost since start"},
			{Field: "heartbeat.pipeline_drops", Value: u(pipelineDrops), Reason: "records and events the pipeline dropped"},
			{Field: "heartbeat.sink_drops", Value: u(sinkDrops), Reason: "alerts the sinks dropped since the last (re)load"},
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
