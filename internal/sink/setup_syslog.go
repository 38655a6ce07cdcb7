package sink

import (
	"net/url"
	"path/filepath"
	"slices"
	"time"
)

// SyslogSettings are a syslog sink's own settings; the alert encoding is
// the common `payload`, and a tls block applies to tls:// addresses.
type SyslogSettings struct {
	Address    string // unix:///dev/log, udp://H:P, tcp://H:P, tls://H:P
	Format     string // "rfc5424" or "rfc3164"; "" picks by address
	Facility   int    // 0 means 13 (log audit)
	AppName    string // default "encwatch"
	Hostname   string // default the alert's host
	MaxMessage int    // bytes; 0: 2048 for udp and unix, 8192 for tcp and tls
	Timeout    time.Duration
}

// maxMessage bounds max_message: 1 MiB is beyond any receiver's limit.
const maxMessage = 1 << 20

func init() {
	Register(Kind[SyslogSettings]{
		Name:       "syslog",
		FormatAttr: "payload",
		TLS:        true,
		Decode:     decodeSyslog,
		New: func(s *SyslogSettings, env Env) (Sink, error) {
			return NewSyslog(env.Log, env.Name, SyslogOptions{
				Address: s.Address, Format: s.Format, Payload: env.Format, Facility: s.Facility,
				AppName: s.AppName, Hostname: s.Hostname, MaxMessage: s.MaxMessage,
				TLS: env.Common.TLS, Timeout: s.Timeout,
			})
		},
	})
}

func decodeSyslog(b *Body, s *SyslogSettings) {
	b.Require("address")
	var addr string
	if rng, ok := b.String("address", &addr); ok {
		u, err := url.Parse(addr)
		switch {
		case err != nil || !slices.Contains([]string{"unix", "udp", "tcp", "tls"}, u.Scheme):
			b.Errorf(rng, "address %q must be unix:///PATH, udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT", addr)
		case u.Scheme == "unix" && !filepath.IsAbs(u.Path):
			b.Errorf(rng, "address %q: a unix socket needs an absolute path, e.g. unix:///dev/log", addr)
		case u.Scheme != "unix" && u.Port() == "":
			b.Errorf(rng, "address %q needs a port", addr)
		default:
			s.Address = addr
		}
	}
	b.Word("format", &s.Format, "rfc5424", "rfc3164")
	if n, ok := b.Int("facility", 0, 23); ok { // RFC 5424 §6.2.1: facilities 0-23
		s.Facility = int(n)
	}
	b.String("app_name", &s.AppName)
	b.String("hostname", &s.Hostname)
	if n, ok := b.Int("max_message", 480, maxMessage); ok { // RFC 5424 §6.1: receivers take at least 480 octets
		s.MaxMessage = int(n)
	}
	b.Duration("timeout", &s.Timeout, time.Millisecond, MaxTimeout)
}
