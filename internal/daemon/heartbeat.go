package daemon

import (
	"sync"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/fleet"
	"github.com/encwatch/encwatch/internal/input"
)

// newHeartbeater makes the agent's fleet.Heartbeater: it reads the running
// policy and the daemon's counters when it sends, and delivers through the
// router of the moment.
func (d *daemon) newHeartbeater() *fleet.Heartbeater {
	return fleet.NewHeartbeater(fleet.HeartbeatOptions{
		Policy:  d.cfg.Load,
		Deliver: func(a detect.Alert, sinks []string) { d.p.router.Load().DeliverTo(a, sinks) },
		Stats:   d.agentStats,
		Log:     d.log,
		Version: d.opts.Version,
		Mode:    d.mode,
	})
}

// agentStats are the counters a heartbeat reports.
func (d *daemon) agentStats() fleet.AgentStats {
	p := d.p
	st := fleet.AgentStats{
		Events:        p.Events.Load(),
		Alerts:        p.alerts.Load(),
		KernelLost:    d.m.kernelLost.Load(),
		PipelineDrops: p.DroppedEvents.Load(),
	}
	if rs, ok := d.in.(input.Stats); ok {
		st.PipelineDrops += rs.Stats().DroppedRecords
	}
	for _, s := range p.router.Load().Stats() {
		st.SinkDrops += s.Dropped.Total()
	}
	return st
}

// stopStream wraps the input's stream: when the stream reports its end
// (Err) or fails (Read), and before detection closes the router, it sends
// agent_stopped, once (fleet.Heartbeater.Stopped).
func (d *daemon) stopStream(st input.Stream) input.Stream {
	return &stoppingStream{Stream: st, stop: d.hb.Stopped}
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
