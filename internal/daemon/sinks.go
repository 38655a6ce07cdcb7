package daemon

import (
	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/sink"
)

// sinkSpecs returns the policy's sink blocks as the sink package describes
// them.
func sinkSpecs(cfg *config.Config) []sink.Spec {
	specs := make([]sink.Spec, 0, len(cfg.Sinks))
	for _, s := range cfg.Sinks {
		specs = append(specs, s.Spec)
	}
	return specs
}

func buildSinks(cfg *config.Config, log *logrus.Entry) ([]sink.Sink, error) {
	return sink.Build(sinkSpecs(cfg), log)
}
