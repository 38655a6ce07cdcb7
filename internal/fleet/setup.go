package fleet

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/hclbody"
	"github.com/encwatch/encwatch/internal/sink"
)

// NATSSettings are what a `sink "nats" "NAME" { … }` block says: where the
// JetStream servers are, which subject and stream the alerts go to, and how
// the sink authenticates. A tls block applies to every server.
type NATSSettings struct {
	URLs    []string // url, or urls: nats:// or tls:// servers of one cluster
	Subject string   // a template with {host}, {signature}, {importance}
	Stream  string   // the stream that must store every publish
	// CreateStream makes the sink create Stream, with StreamReplicas
	// replicas and the limits below, when it does not exist.
	CreateStream   bool
	StreamReplicas int
	StreamMaxAge   time.Duration
	StreamMaxBytes int64
	// NATSAuth is the one way to authenticate, each a root-owned file only
	// root can read.
	NATSAuth
	Timeout time.Duration // per publish acknowledgement (default 5s)
	// Insecure allows a server without credentials, and one off loopback
	// without TLS; without it the policy is refused (CheckNATSSecurity).
	Insecure bool
}

func init() {
	sink.Register(sink.Kind[NATSSettings]{
		Name: "nats", FormatAttr: "format", TLS: true,
		Decode: decodeNATS,
		New: func(s *NATSSettings, env sink.Env) (sink.Sink, error) {
			return NewNATS(env, NATSOptions{Settings: *s, TLS: env.Common.TLS})
		},
	})
}

func decodeNATS(b *sink.Body, s *NATSSettings) {
	var one string
	if rng, ok := b.String("url", &one); ok {
		s.URLs = append(s.URLs, one)
		checkURL(b.Body, rng, one)
	}
	if ranges, ok := listOfStrings(b.Body, "urls", &s.URLs); ok {
		for i, rng := range ranges {
			checkURL(b.Body, rng, s.URLs[i])
		}
	}
	if _, urls := b.Syntax().Attributes["urls"]; !urls {
		b.Require("url")
	}
	if rng, ok := b.String("subject", &s.Subject); ok {
		if err := checkSubjectTemplate(s.Subject); err != "" {
			b.Errorf(rng, "subject %q: %s", s.Subject, err)
		}
	}
	if rng, ok := b.String("stream", &s.Stream); ok && !ValidJetStreamName(s.Stream) {
		b.Errorf(rng, "stream %q must be letters, digits, \"-\" or \"_\"", s.Stream)
	}
	b.Bool("create_stream", &s.CreateStream)
	if n, ok := b.Int("stream_replicas", 1, 5); ok {
		s.StreamReplicas = int(n)
	}
	b.Duration("stream_max_age", &s.StreamMaxAge, time.Minute, 10*365*24*time.Hour)
	if n, ok := b.Int("stream_max_bytes", 1<<20, 1<<50); ok {
		s.StreamMaxBytes = n
	}
	nauth := decodeAuth(b.Body, &s.NATSAuth)
	b.Duration("timeout", &s.Timeout, time.Millisecond, sink.MaxTimeout)
	b.Bool("insecure", &s.Insecure)
	checkSecurity(b.Body, s.URLs, nauth, s.Insecure)
}

// decodeAuth decodes the secret files of a NATS client (a nats sink, the
// collect block) into a and returns how many are set: more than one is
// reported.
func decodeAuth(b *hclbody.Body, a *NATSAuth) int {
	b.AbsPath("creds_file", &a.CredsFile)
	b.AbsPath("nkey_file", &a.NKeyFile)
	b.AbsPath("token_file", &a.TokenFile)
	n := 0
	for _, f := range a.files() {
		if f != "" {
			n++
		}
	}
	if n > 1 {
		b.Errorf(b.DefRange(), "%s: set only one of creds_file, nkey_file and token_file", b.What())
	}
	return n
}

// checkSecurity reports a NATS client of urls that CheckNATSSecurity
// refuses; nauth is how many secret files it has (more than one was
// reported already).
func checkSecurity(b *hclbody.Body, urls []string, nauth int, insecure bool) {
	if msg := CheckNATSSecurity(urls, nauth > 0, hasTLSBlock(b), insecure); msg != "" && nauth <= 1 {
		b.Errorf(b.DefRange(), "%s: %s", b.What(), msg)
	}
}

// urlsValid reports whether there are URLs and each passes CheckNATSURL:
// the security check speaks only of URLs that are otherwise right.
func urlsValid(urls []string) bool {
	for _, u := range urls {
		if CheckNATSURL(u) != "" {
			return false
		}
	}
	return len(urls) > 0
}

// hasTLSBlock reports whether the body holds a tls block.
func hasTLSBlock(b *hclbody.Body) bool {
	for _, blk := range b.Syntax().Blocks {
		if blk.Type == "tls" {
			return true
		}
	}
	return false
}

// CheckNATSSecurity says why a NATS client of urls is refused, or returns
// "": without credentials (auth), or with a server off loopback reached
// without TLS (neither a tls:// URL nor a tls block), unless insecure says
// so in so many words. An agent's credentials are what tie its subject to
// its host; a server anyone can use lets anyone forge, read or delete the
// fleet's alerts.
func CheckNATSSecurity(urls []string, auth, tlsBlock, insecure bool) string {
	if insecure || !urlsValid(urls) {
		return ""
	}
	if !auth {
		return "no credentials (creds_file, nkey_file or token_file): anyone reaching the server could forge, read or delete the fleet's alerts; set insecure = true to connect without"
	}
	for _, v := range urls {
		for _, one := range strings.Split(v, ",") {
			u, err := url.Parse(strings.TrimSpace(one))
			if err != nil || u.Scheme == "tls" || tlsBlock {
				continue
			}
			if !loopbackHost(u.Hostname()) {
				return fmt.Sprintf("url %q reaches a server off loopback without TLS (use tls:// or a tls block); set insecure = true to connect without", one)
			}
		}
	}
	return ""
}

// insecureWarning is the warning validate and the log give for a NATS
// client the policy lets run without credentials or TLS; what names it.
func insecureWarning(what string) string {
	return what + ": insecure = true: the NATS connection may run without credentials or TLS; anyone reaching the server can forge, read or delete the fleet's alerts"
}

// Warnings says that insecure = true lets the sink's connection run without
// credentials or TLS.
func (s *NATSSettings) Warnings(what string) []string {
	if !s.Insecure {
		return nil
	}
	return []string{insecureWarning(what)}
}

var _ config.Warner = (*NATSSettings)(nil)

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func checkURL(b *hclbody.Body, rng hcl.Range, v string) {
	if msg := CheckNATSURL(v); msg != "" {
		b.Errorf(rng, "%s", msg)
	}
}

// CheckNATSURL says what is wrong with v, a NATS server URL or a
// comma-separated list of them, or returns "".
func CheckNATSURL(v string) string {
	for _, one := range strings.Split(v, ",") {
		u, err := url.Parse(strings.TrimSpace(one))
		switch {
		case err != nil || (u.Scheme != "nats" && u.Scheme != "tls") || u.Host == "":
			return fmt.Sprintf("url %q must be a nats:// or tls:// URL", one)
		case u.User != nil:
			// A password in the policy would end up in logs and validate output.
			return "url must not carry credentials; use creds_file, nkey_file or token_file"
		}
	}
	return ""
}

// ValidJetStreamName reports whether s can name a JetStream stream or
// consumer: 1 to 255 letters, digits, '-' and '_'.
func ValidJetStreamName(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// listOfStrings decodes a list of strings; it returns each element's range
// (all the list's own) and whether the attribute was set.
func listOfStrings(b *hclbody.Body, name string, dst *[]string) ([]hcl.Range, bool) {
	a, v, ok := b.Value(name)
	if !ok {
		return nil, false
	}
	if !v.Type().IsListType() && !v.Type().IsTupleType() {
		b.Errorf(a.Expr.Range(), "%s must be a list of strings", name)
		return nil, false
	}
	var ranges []hcl.Range
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.IsNull() || e.Type() != cty.String {
			b.Errorf(a.Expr.Range(), "%s must be a list of strings", name)
			return nil, false
		}
		*dst = append(*dst, e.AsString())
		ranges = append(ranges, a.Expr.Range())
	}
	return ranges, true
}
