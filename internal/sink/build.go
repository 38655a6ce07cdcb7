package sink

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/detect"
)

// Spec describes one sink to build, in terms neutral to where it was
// configured: internal/config converts its HCL sink blocks
// (`sink "TYPE" "NAME" { … }`, attributes in snake_case of these field
// names; see docs/sinks.md) into Specs, so this package knows nothing of HCL.
type Spec struct {
	Type string // "stdout", "file", "syslog" or "http"
	Name string // unique among sinks; "" means Type

	// Format is the encoding for stdout and file ("json", "ecs", "ocsf",
	// "cef", "leef"; default "json"). For syslog it is the message format,
	// "rfc5424" or "rfc3164"; the encoding is then Payload.
	Format  string
	Payload string // syslog, http: the encoding of each alert (default "json")

	// file
	Path string      // the file to append to
	Mode os.FileMode // permission of a created file; 0 means 0600
	Sync bool        // fsync after every batch

	// syslog
	Address    string // unix:///dev/log, udp://H:P, tcp://H:P, tls://H:P
	Facility   int    // 0 means 13 (log audit)
	AppName    string // default "encwatch"
	Hostname   string // default the alert's host
	MaxMessage int    // bytes; 0: 2048 for udp and unix, 8192 for tcp and tls

	// http
	URL        string
	Kind       string // "webhook" (default), "splunk_hec", "elasticsearch"
	Body       string // webhook: "array" (default) or "ndjson"
	Index      string // elasticsearch index (default "encwatch-alerts") or Splunk index
	SourceType string // splunk_hec (default "encwatch:alert")
	Headers    map[string]string
	TokenFile  string // the Authorization token, read from this file,
	TokenEnv   string // or this environment variable; never logged
	AuthScheme string // default "Splunk" for splunk_hec, else "Bearer"
	SplunkAck  bool   // splunk_hec: wait for indexer acknowledgement
	AckTimeout time.Duration

	// syslog over tls, http over https
	TLS     TLSOptions
	Timeout time.Duration // dial/write or request timeout; 0 means 10s

	// any sink
	MinImportance detect.Importance // alerts below are not sent here (counted as filtered)
	Spool         *SpoolSpec        // nil: an in-memory queue only
}

// SpoolSpec is a sink's disk spool; see SpoolOptions.
type SpoolSpec struct {
	Dir           string
	MaxBytes      int64
	FsyncInterval time.Duration
	WhenFull      string // "drop_newest" (default) or "block"
	BlockTimeout  time.Duration
}

// formats maps each format name a Spec may use to its encoder.
var formats = map[string]Format{
	"json": AppendJSON,
	"ecs":  AppendECS,
	"ocsf": AppendOCSF,
	"cef":  AppendCEF,
	"leef": AppendLEEF,
}

// jsonFormats are the formats whose output is a JSON object.
var jsonFormats = map[string]bool{"json": true, "ecs": true, "ocsf": true}

func format(name string) (Format, string, error) {
	if name == "" {
		name = "json"
	}
	f, ok := formats[name]
	if !ok {
		return nil, name, fmt.Errorf("unknown format %q: want json, ecs, ocsf, cef or leef", name)
	}
	return f, name, nil
}

// Build makes the sinks specs describe, in order. A sink with a minimum
// importance or a spool comes wrapped (WithDelivery) for NewRouter. On error
// it closes the sinks it already made and returns none.
func Build(specs []Spec, log *logrus.Entry) ([]Sink, error) {
	var sinks []Sink
	fail := func(err error) ([]Sink, error) {
		for _, s := range sinks {
			if cerr := s.Close(); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
		return nil, err
	}
	seen := make(map[string]bool, len(specs))
	for _, sp := range specs {
		name := sp.Name
		if name == "" {
			name = sp.Type
		}
		if seen[name] {
			return fail(fmt.Errorf("sink %q: duplicate name", name))
		}
		seen[name] = true
		s, err := build(sp, name, log.WithField("sink", name))
		if err != nil {
			return fail(err)
		}
		if sp.MinImportance != 0 || sp.Spool != nil {
			d := Delivery{MinImportance: sp.MinImportance}
			if sp.Spool != nil {
				d.Spool, err = OpenSpool(SpoolOptions{
					Dir: sp.Spool.Dir, MaxBytes: sp.Spool.MaxBytes, FsyncInterval: sp.Spool.FsyncInterval,
					WhenFull: sp.Spool.WhenFull, BlockTimeout: sp.Spool.BlockTimeout,
				})
				if err != nil {
					_ = s.Close()
					return fail(fmt.Errorf("sink %q: %w", name, err))
				}
			}
			s = WithDelivery(s, d)
		}
		sinks = append(sinks, s)
	}
	return sinks, nil
}

func build(sp Spec, name string, log *logrus.Entry) (Sink, error) {
	switch sp.Type {
	case "stdout", "file":
		f, _, err := format(sp.Format)
		if err != nil {
			return nil, fmt.Errorf("sink %q: %w", name, err)
		}
		if sp.Type == "stdout" {
			return NewStdout(name, nil, f), nil
		}
		return NewFile(log, name, sp.Path, FileOptions{Mode: sp.Mode, Sync: sp.Sync, Format: f})
	case "syslog":
		f, _, err := format(sp.Payload)
		if err != nil {
			return nil, fmt.Errorf("sink %q: payload: %w", name, err)
		}
		return NewSyslog(log, name, SyslogOptions{
			Address: sp.Address, Format: sp.Format, Payload: f, Facility: sp.Facility,
			AppName: sp.AppName, Hostname: sp.Hostname, MaxMessage: sp.MaxMessage,
			TLS: sp.TLS, Timeout: sp.Timeout,
		})
	case "http":
		f, fname, err := format(sp.Payload)
		if err != nil {
			return nil, fmt.Errorf("sink %q: payload: %w", name, err)
		}
		token, err := readToken(sp.TokenFile, sp.TokenEnv)
		if err != nil {
			return nil, fmt.Errorf("sink %q: %w", name, err)
		}
		return NewHTTP(log, name, HTTPOptions{
			URL: sp.URL, Kind: sp.Kind, Payload: f, JSONPayload: jsonFormats[fname], Body: sp.Body,
			Index: sp.Index, SourceType: sp.SourceType, Headers: sp.Headers, Token: token,
			AuthScheme: sp.AuthScheme, TLS: sp.TLS, Timeout: sp.Timeout,
			SplunkAck: sp.SplunkAck, AckTimeout: sp.AckTimeout,
		})
	}
	return nil, fmt.Errorf("sink %q: unknown type %q: want stdout, file, syslog or http", name, sp.Type)
}
