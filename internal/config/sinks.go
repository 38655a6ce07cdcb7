package config

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/sink"
)

// SinkSpec is one sink block, decoded into the sink package's description,
// with where it was declared.
type SinkSpec struct {
	sink.Spec
	Range hcl.Range // the block header, for messages about this sink
}

// The words sink attributes take. The sink package implements each.
var (
	sinkTypes       = []string{"stdout", "file", "syslog", "http"}
	sinkPayloads    = []string{"json", "ecs", "ocsf", "cef", "leef"}
	syslogFormats   = []string{"rfc5424", "rfc3164"}
	syslogSchemes   = []string{"unix", "udp", "tcp", "tls"}
	httpKinds       = []string{"webhook", "splunk_hec", "elasticsearch"}
	webhookBodies   = []string{"array", "ndjson"}
	spoolWhenFull   = []string{"block", "drop_newest"}
	sinkNestedBlock = map[string][]string{"stdout": {"spool"}, "file": {"spool"}, "syslog": {"tls", "spool"}, "http": {"tls", "spool"}}
)

// Bounds of sink settings.
const (
	maxSinkTimeout = 10 * time.Minute
	maxMessage     = 1 << 20 // bytes of one syslog message
	maxSpoolBytes  = 1 << 40
)

func (st *state) sink(blk *hclsyntax.Block) {
	if !st.d.labels(blk, "type", "name") {
		return
	}
	typ, name := blk.Labels[0], blk.Labels[1]
	if !contains(sinkTypes, typ) {
		st.d.errorf(blk.LabelRanges[0], "unknown sink type %q%s", typ, didYouMean(typ, sinkTypes, "use "+strings.Join(sinkTypes, ", ")))
		return
	}
	if !isWord(name, 128, true) {
		st.d.errorf(blk.LabelRanges[1], "sink name %q must be letters, digits, \"-\", \"_\" or \".\"", name)
	}
	if first, dup := st.sinkAt[name]; dup {
		st.d.errorf(blk.LabelRanges[1], "duplicate sink %q; first defined at %s", name, at(first))
		return
	}
	st.sinkAt[name] = blk.LabelRanges[1]

	b := st.d.body(blk, fmt.Sprintf("sink %q", name))
	s := SinkSpec{Spec: sink.Spec{Type: typ, Name: name}, Range: hcl.RangeBetween(blk.TypeRange, blk.LabelRanges[1])}
	switch typ {
	case "stdout":
		b.word("format", &s.Format, sinkPayloads)
	case "file":
		b.require("path")
		b.absPath("path", &s.Path)
		b.word("format", &s.Format, sinkPayloads)
		b.fileMode("mode", &s.Mode)
		b.boolean("sync", &s.Sync)
	case "syslog":
		b.require("address")
		b.address("address", &s.Address)
		b.word("format", &s.Format, syslogFormats)
		b.word("payload", &s.Payload, sinkPayloads)
		if n, ok := b.integer("facility", 0, 23); ok { // RFC 5424 §6.2.1: facilities 0-23
			s.Facility = int(n)
		}
		b.str("app_name", &s.AppName)
		b.str("hostname", &s.Hostname)
		if n, ok := b.integer("max_message", 480, maxMessage); ok { // RFC 5424 §6.1: receivers take at least 480 octets
			s.MaxMessage = int(n)
		}
		b.duration("timeout", &s.Timeout, time.Millisecond, maxSinkTimeout)
	case "http":
		b.require("url")
		b.httpURL("url", &s.URL)
		b.word("kind", &s.Kind, httpKinds)
		b.word("body", &s.Body, webhookBodies)
		b.str("index", &s.Index)
		b.str("source_type", &s.SourceType)
		b.stringMap("headers", &s.Headers)
		b.absPath("token_file", &s.TokenFile)
		b.str("token_env", &s.TokenEnv)
		b.str("auth_scheme", &s.AuthScheme)
		b.boolean("splunk_ack", &s.SplunkAck)
		b.duration("ack_timeout", &s.AckTimeout, time.Millisecond, maxSinkTimeout)
		b.duration("timeout", &s.Timeout, time.Millisecond, maxSinkTimeout)
		b.word("payload", &s.Payload, sinkPayloads)
	}
	var imp string
	if rng, ok := b.str("min_importance", &imp); ok {
		if v, known := detect.ParseImportance(imp); known {
			s.MinImportance = v
		} else {
			st.d.errorf(rng, "unknown importance %q%s", imp, didYouMean(imp, importances(), "use "+strings.Join(importances(), ", ")))
		}
	}
	nested := sinkNestedBlock[typ]
	seen := map[string]bool{}
	for _, nb := range blk.Body.Blocks {
		if !contains(nested, nb.Type) {
			continue // done reports it
		}
		if seen[nb.Type] {
			st.d.errorf(nb.TypeRange, "more than one %s block in sink %q", nb.Type, name)
			continue
		}
		seen[nb.Type] = true
		if !st.d.labels(nb) {
			continue
		}
		inner := st.d.body(nb, fmt.Sprintf("%s block of sink %q", nb.Type, name))
		switch nb.Type {
		case "tls":
			t := &s.TLS
			inner.absPath("ca_file", &t.CAFile)
			inner.absPath("cert_file", &t.CertFile)
			inner.absPath("key_file", &t.KeyFile)
			inner.str("server_name", &t.ServerName)
			inner.boolean("insecure_skip_verify", &t.InsecureSkipVerify)
			if (t.CertFile == "") != (t.KeyFile == "") {
				st.d.errorf(nb.TypeRange, "tls block of sink %q needs both cert_file and key_file, or neither", name)
			}
		case "spool":
			sp := &sink.SpoolSpec{}
			inner.require("dir")
			inner.absPath("dir", &sp.Dir)
			if n, ok := inner.integer("max_bytes", 1<<20, maxSpoolBytes); ok {
				sp.MaxBytes = n
			}
			inner.duration("fsync_interval", &sp.FsyncInterval, -time.Minute, time.Minute) // negative: fsync every alert
			inner.word("when_full", &sp.WhenFull, spoolWhenFull)
			inner.duration("block_timeout", &sp.BlockTimeout, time.Millisecond, time.Minute)
			s.Spool = sp
		}
		inner.done()
	}
	b.done(nested...)
	st.cfg.Sinks = append(st.cfg.Sinks, s)
}

// word decodes a string attribute that must be one of words.
func (b *body) word(name string, dst *string, words []string) {
	var v string
	rng, ok := b.str(name, &v)
	if !ok {
		return
	}
	if !contains(words, v) {
		b.d.errorf(rng, "unknown %s %q%s", name, v, didYouMean(v, words, "use "+strings.Join(words, ", ")))
		return
	}
	*dst = v
}

// absPath decodes an absolute file path.
func (b *body) absPath(name string, dst *string) {
	var v string
	rng, ok := b.str(name, &v)
	if !ok {
		return
	}
	if msg := checkAbsPath(v); msg != "" {
		b.d.errorf(rng, "%s: %s", name, msg)
		return
	}
	*dst = v
}

// fileMode decodes octal permission bits that do not let others write.
func (b *body) fileMode(name string, dst *os.FileMode) {
	var v string
	rng, ok := b.str(name, &v)
	if !ok {
		return
	}
	m, err := strconv.ParseUint(v, 8, 32)
	switch {
	case err != nil || m > 0o777:
		b.d.errorf(rng, "%s %q must be octal permission bits, e.g. \"0600\"", name, v)
	case m&0o002 != 0:
		// Anyone could rewrite the alert record.
		b.d.errorf(rng, "%s %q must not let others write the alerts file", name, v)
	default:
		*dst = os.FileMode(m)
	}
}

// address decodes a syslog address: unix:///path, udp://H:P, tcp://H:P or
// tls://H:P.
func (b *body) address(name string, dst *string) {
	var v string
	rng, ok := b.str(name, &v)
	if !ok {
		return
	}
	u, err := url.Parse(v)
	switch {
	case err != nil || !contains(syslogSchemes, u.Scheme):
		b.d.errorf(rng, "%s %q must be unix:///PATH, udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT", name, v)
	case u.Scheme == "unix" && !filepath.IsAbs(u.Path):
		b.d.errorf(rng, "%s %q: a unix socket needs an absolute path, e.g. unix:///dev/log", name, v)
	case u.Scheme != "unix" && u.Port() == "":
		b.d.errorf(rng, "%s %q needs a port", name, v)
	default:
		*dst = v
	}
}

// httpURL decodes an http or https URL.
func (b *body) httpURL(name string, dst *string) {
	var v string
	rng, ok := b.str(name, &v)
	if !ok {
		return
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		b.d.errorf(rng, "%s %q must be an http:// or https:// URL", name, v)
		return
	}
	if u.User != nil {
		// A password in the policy would end up in logs and validate output.
		b.d.errorf(rng, "%s must not carry credentials; use token_file or token_env", name)
		return
	}
	*dst = v
}

// stringMap decodes an object of string values, such as HTTP headers.
func (b *body) stringMap(name string, dst *map[string]string) {
	a, v, ok := b.value(name)
	if !ok {
		return
	}
	t := v.Type()
	if !t.IsObjectType() && !t.IsMapType() {
		b.d.errorf(a.Expr.Range(), "%s must be an object of strings, e.g. { \"X-Env\" = \"prod\" }", name)
		return
	}
	out := make(map[string]string)
	for it := v.ElementIterator(); it.Next(); {
		k, ev := it.Element()
		if ev.IsNull() || ev.Type() != cty.String {
			b.d.errorf(a.Expr.Range(), "%s[%q] must be a string", name, k.AsString())
			return
		}
		out[k.AsString()] = ev.AsString()
	}
	*dst = out
}

// checkAbsPath returns a message when s is not an absolute path, else "".
func checkAbsPath(s string) string {
	if !filepath.IsAbs(s) || strings.ContainsRune(s, 0) {
		return fmt.Sprintf("path %q must be absolute", s)
	}
	return ""
}
