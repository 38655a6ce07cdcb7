package daemon

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/sink"
)

// sinkSpecs returns the policy's sink blocks without where they were
// declared, so that a reload compares what they say, not where.
func sinkSpecs(cfg *config.Config) []sink.Config {
	specs := make([]sink.Config, 0, len(cfg.Sinks))
	for _, s := range cfg.Sinks {
		s.Range = hcl.Range{}
		specs = append(specs, s)
	}
	return specs
}

// buildSinks makes the policy's sinks; version is the product version the
// formats and the HTTP User-Agent report.
func buildSinks(cfg *config.Config, log *logrus.Entry, version string) ([]sink.Sink, error) {
	return sink.Build(cfg.Sinks, sink.BuildOptions{Log: log, Version: version})
}
