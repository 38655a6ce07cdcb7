package daemon

import (
	"fmt"
	"os"
	"strconv"

	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/sink"
)

// sinkSpecs converts the policy's sink blocks, already checked by the config
// package, into the sink package's neutral descriptions.
func sinkSpecs(cfg *config.Config) ([]sink.Spec, error) {
	specs := make([]sink.Spec, 0, len(cfg.Sinks))
	for _, s := range cfg.Sinks {
		spec := sink.Spec{Type: s.Type, Name: s.Name, Format: s.String("format"), Path: s.String("path")}
		if m := s.String("mode"); m != "" {
			mode, err := strconv.ParseUint(m, 8, 32)
			if err != nil {
				return nil, fmt.Errorf("%s: sink %q: mode %q: %w", s.Range, s.Name, m, err)
			}
			spec.Mode = os.FileMode(mode)
		}
		specs = append(specs, spec)
	}
	return specs, nil
}

func buildSinks(cfg *config.Config, log *logrus.Entry) ([]sink.Sink, error) {
	specs, err := sinkSpecs(cfg)
	if err != nil {
		return nil, err
	}
	return sink.Build(specs, log)
}
