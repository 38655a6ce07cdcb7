package sink

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/encwatch/encwatch/internal/hclbody"
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
	// One way to authenticate, each a root-owned file only root can read.
	CredsFile string        // a .creds file (user JWT and nkey seed)
	NKeyFile  string        // an nkey seed
	TokenFile string        // a token
	Timeout   time.Duration // per publish acknowledgement (default 5s)
	// Insecure allows a server without credentials, and one off loopback
	// without TLS; without it the policy is refused (CheckNATSSecurity).
	Insecure bool
}

// Defaults of a nats sink.
const (
	DefaultNATSSubject = "encwatch.alerts.{host}"
	DefaultNATSStream  = "ENCWATCH"
)

func init() {
	Register(Kind[NATSSettings]{
		Name: "nats", FormatAttr: "format", TLS: true,
		Decode: decodeNATS,
		New: func(s *NATSSettings, env Env) (Sink, error) {
			return NewNATS(env, NATSOptions{Settings: *s, TLS: env.Common.TLS})
		},
	})
}

func decodeNATS(b *Body, s *NATSSettings) {
	var one string
	if rng, ok := b.String("url", &one); ok {
		s.URLs = append(s.URLs, one)
		checkNATSURL(b, rng, one)
	}
	if ranges, ok := b.strings("urls", &s.URLs); ok {
		for i, rng := range ranges {
			checkNATSURL(b, rng, s.URLs[i])
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
	b.AbsPath("creds_file", &s.CredsFile)
	b.AbsPath("nkey_file", &s.NKeyFile)
	b.AbsPath("token_file", &s.TokenFile)
	n := 0
	for _, f := range []string{s.CredsFile, s.NKeyFile, s.TokenFile} {
		if f != "" {
			n++
		}
	}
	if n > 1 {
		b.Errorf(b.DefRange(), "%s: set only one of creds_file, nkey_file and token_file", b.What())
	}
	b.Duration("timeout", &s.Timeout, time.Millisecond, MaxTimeout)
	b.Bool("insecure", &s.Insecure)
	if msg := CheckNATSSecurity(s.URLs, n > 0, HasTLSBlock(b.Body), s.Insecure); msg != "" && n <= 1 {
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

// HasTLSBlock reports whether the body holds a tls block.
func HasTLSBlock(b *hclbody.Body) bool {
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

// NATSInsecureWarning is the warning validate and the log give for a NATS
// client the policy lets run without credentials or TLS.
func NATSInsecureWarning(what string) string {
	return what + ": insecure = true: the NATS connection may run without credentials or TLS; anyone reaching the server can forge, read or delete the fleet's alerts"
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func checkNATSURL(b *Body, rng hcl.Range, v string) {
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

// checkSubjectTemplate says what is wrong with a subject template, or "".
func checkSubjectTemplate(t string) string {
	if t == "" {
		return "must not be empty"
	}
	rest := t
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			break
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return "unclosed {"
		}
		switch rest[i : i+j+1] {
		case "{host}", "{signature}", "{importance}":
		default:
			return "unknown field " + rest[i:i+j+1] + "; want {host}, {signature} or {importance}"
		}
		rest = rest[i+j+1:]
	}
	for _, tok := range strings.Split(natsStreamSubject(t), ".") {
		if tok == "" || strings.ContainsAny(tok, " \t\r\n>") || (strings.Contains(tok, "*") && tok != "*") {
			return "must be dot-separated tokens without spaces, \">\" or \"*\""
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

// strings decodes a list of strings; it returns each element's range (all
// the list's own) and whether the attribute was set.
func (b *Body) strings(name string, dst *[]string) ([]hcl.Range, bool) {
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

// CheckHostSubject says what is wrong with a collector's host_subject, the
// template the agents publish with, or returns "": it must be a valid
// template with {host} as one whole token, once.
func CheckHostSubject(t string) string {
	if msg := checkSubjectTemplate(t); msg != "" {
		return msg
	}
	n := 0
	for _, tok := range strings.Split(t, ".") {
		if strings.Contains(tok, "{host}") {
			if tok != "{host}" {
				return "{host} must be a whole token"
			}
			n++
		}
	}
	if n != 1 {
		return "must hold {host} once"
	}
	return ""
}

// HostSubject finds who published on a subject of a template that passed
// CheckHostSubject: the {host} token (the host's name with "." made "_",
// SubjectToken), which the server's permissions bind to the publisher's
// credentials. ok is false for a subject the template does not render.
type HostSubject struct {
	tokens []string // literal tokens, "*" for another field
	host   int      // the index of {host}
}

// ParseHostSubject parses a template that passed CheckHostSubject.
func ParseHostSubject(t string) HostSubject {
	var h HostSubject
	for i, tok := range strings.Split(t, ".") {
		switch {
		case tok == "{host}":
			h.host = i
			tok = "*"
		case strings.Contains(tok, "{"):
			tok = "*"
		}
		h.tokens = append(h.tokens, tok)
	}
	return h
}

// Host returns the host token of subject.
func (h HostSubject) Host(subject string) (string, bool) {
	toks := strings.Split(subject, ".")
	if len(toks) != len(h.tokens) {
		return "", false
	}
	for i, tok := range toks {
		if tok == "" || (h.tokens[i] != "*" && tok != h.tokens[i]) {
			return "", false
		}
	}
	return toks[h.host], true
}
