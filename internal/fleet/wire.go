// Package fleet is encwatch's fleet in one place: the wire format of a
// record on NATS (its subject, headers and versioned record, wire.go); the
// nats sink that publishes an agent's alerts to JetStream (nats.go, its
// block in setup.go); the heartbeat and collect blocks of the policy
// (policy.go); the fleet's own records (an agent's heartbeat and clean
// stop, sent by the Heartbeater that internal/daemon drives; a host's
// silence and return, a forgery, a stalled collector); and `encwatch
// collect`: the durable JetStream consumer feeding the SIEM sinks, who
// sent a record (its subject, never its payload), the claims that let
// several collectors share a consumer, the liveness of every host, and the
// collector's health and metrics endpoint. The sink type and the blocks
// register themselves (sink.Register, config.RegisterBlock), so that a
// program decodes them once it imports this package. docs/fleet.md
// describes it.
package fleet

import (
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/sink"
)

// Defaults of where the nats sink publishes and the collector reads.
const (
	DefaultSubject = "encwatch.alerts.{host}"
	DefaultStream  = "ENCWATCH"
)

// Signatures of the fleet's records: an agent's heartbeat and clean stop
// (sent by the Heartbeater), a host gone silent and back (raised by the
// collector).
const (
	SigHeartbeat = "agent_heartbeat"
	SigStopped   = "agent_stopped"
	SigSilent    = "agent_silent"
	SigBack      = "agent_back"
)

// Match fields of a heartbeat record. The collector reads
// HeartbeatInterval to know when a host is overdue.
const (
	HeartbeatInterval = "heartbeat.interval_seconds"
	HeartbeatUptime   = "heartbeat.uptime_seconds"
)

// RecordHeader is the NATS header that carries an alert's versioned record
// (the spool's, see docs/sinks.md "The spool on disk") beside the body in
// the sink's format, so that a collector gets the whole alert back whatever
// format the body is in.
const RecordHeader = "Encwatch-Record"

// SignatureHeader names the alert's signature, so that a subscriber that
// wants only some records (the collector's heartbeat watch) need not
// decode the others.
const SignatureHeader = "Encwatch-Signature"

// NATSMessage renders a into a NATS message on subject: the body in
// format f, the versioned record in RecordHeader and the signature in
// SignatureHeader.
func NATSMessage(subject string, a *detect.Alert, f sink.Format) (*nats.Msg, error) {
	rec, err := sink.EncodeRecord(a)
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	msg := nats.NewMsg(subject)
	msg.Data = f(nil, a)
	msg.Header.Set(RecordHeader, string(rec))
	msg.Header.Set(SignatureHeader, a.Signature.Name)
	return msg, nil
}

// subjectTemplate is a subject with {host}, {signature} and {importance}
// fields, split once.
type subjectTemplate []string // literal, field, literal, field, …

func parseSubject(t string) subjectTemplate {
	var parts subjectTemplate
	for {
		i := strings.IndexByte(t, '{')
		j := strings.IndexByte(t, '}')
		if i < 0 || j < i {
			return append(parts, t)
		}
		parts = append(parts, t[:i], t[i:j+1])
		t = t[j+1:]
	}
}

// render fills the fields from a, each made a single subject token.
func (s subjectTemplate) render(a *detect.Alert) string {
	var b strings.Builder
	for i, p := range s {
		if i%2 == 0 {
			b.WriteString(p)
			continue
		}
		switch p {
		case "{host}":
			b.WriteString(SubjectToken(a.Host))
		case "{signature}":
			b.WriteString(SubjectToken(a.Signature.Name))
		case "{importance}":
			b.WriteString(a.Signature.Importance.String())
		}
	}
	return b.String()
}

// SubjectToken makes s one NATS subject token: the characters a subject
// gives meaning to (".", "*", ">", white space) become "_", so that
// web1.example.com publishes to encwatch.alerts.web1_example_com; an empty
// s is "_".
func SubjectToken(s string) string {
	if s == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		if r == '.' || r == '*' || r == '>' || r <= ' ' || r == 0x7f {
			return '_'
		}
		return r
	}, s)
}

// streamSubject is the subject filter that covers every subject the
// template renders: each field becomes "*".
func streamSubject(t string) string {
	p := parseSubject(t)
	for i := 1; i < len(p); i += 2 {
		p[i] = "*"
	}
	return strings.Join(p, "")
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
	for _, tok := range strings.Split(streamSubject(t), ".") {
		if tok == "" || strings.ContainsAny(tok, " \t\r\n>") || (strings.Contains(tok, "*") && tok != "*") {
			return "must be dot-separated tokens without spaces, \">\" or \"*\""
		}
	}
	return ""
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
