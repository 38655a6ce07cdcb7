package config

import (
	"strconv"

	"github.com/encwatch/encwatch/internal/sink"
)

// Warnings are what a policy allows that it should not without a reason:
// today a NATS connection the policy lets run without credentials or TLS
// (insecure = true). validate prints them; the daemon logs them.
func Warnings(cfg *Config) []string {
	var out []string
	for _, s := range cfg.Sinks {
		if ns, ok := s.Settings.(*sink.NATSSettings); ok && ns.Insecure {
			out = append(out, at(s.Range)+": "+sink.NATSInsecureWarning("sink "+strconv.Quote(s.Name)))
		}
	}
	if c := cfg.Collect; c != nil && c.Insecure {
		out = append(out, at(c.Range)+": "+sink.NATSInsecureWarning("collect block"))
	}
	return out
}
