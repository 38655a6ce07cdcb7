package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/detect"
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

// NATSOptions configure a NATS sink.
type NATSOptions struct {
	Settings NATSSettings
	TLS      TLSOptions
}

// NATS publishes alerts to a JetStream stream. A publish counts as
// delivered only once the stream acknowledged it; the alert id is the
// Nats-Msg-Id, so a batch retried after a lost acknowledgement is stored
// once (within the stream's duplicate window).
//
// Concurrency: Send and Close are called from one goroutine (the sink's
// delivery worker), Close after the last Send.
type NATS struct {
	name    string
	log     *logrus.Entry
	s       NATSSettings
	tls     TLSOptions
	format  Format
	subject subjectTemplate

	nc    *nats.Conn
	js    jetstream.JetStream
	ready bool // the stream is known to exist
}

var _ Sink = (*NATS)(nil)

// NewNATS makes a NATS sink from env (name, log, format) and opts. It
// checks the secret files and connects nothing: the first Send does.
func NewNATS(env Env, opts NATSOptions) (*NATS, error) {
	s := opts.Settings
	if s.Subject == "" {
		s.Subject = DefaultNATSSubject
	}
	if s.Stream == "" {
		s.Stream = DefaultNATSStream
	}
	if s.Timeout <= 0 {
		s.Timeout = 5 * time.Second
	}
	if s.StreamReplicas <= 0 {
		s.StreamReplicas = 1
	}
	if len(s.URLs) == 0 {
		return nil, fmt.Errorf("sink %q: no url", env.Name)
	}
	for _, f := range []string{s.CredsFile, s.NKeyFile, s.TokenFile} {
		if f == "" {
			continue
		}
		if _, err := ReadSecretFile(f); err != nil {
			return nil, fmt.Errorf("sink %q: %w", env.Name, err)
		}
	}
	format := env.Format
	if format == nil {
		format = AppendJSON
	}
	log := env.Log
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = logrus.NewEntry(l)
	}
	if s.Insecure {
		log.Warn(NATSInsecureWarning("sink " + strconv.Quote(env.Name)))
	}
	return &NATS{name: env.Name, log: log, s: s, tls: opts.TLS, format: format, subject: parseSubject(s.Subject)}, nil
}

// Name returns the sink's configured name.
func (n *NATS) Name() string { return n.name }

// Send publishes the batch and waits for the stream to acknowledge every
// alert; any failure fails the whole batch, for the router to retry (the
// message ids make the retry harmless).
func (n *NATS) Send(ctx context.Context, alerts []detect.Alert) error {
	if err := n.connect(ctx); err != nil {
		return err
	}
	futures := make([]jetstream.PubAckFuture, 0, len(alerts))
	for i := range alerts {
		msg, err := NATSMessage(n.subject.render(&alerts[i]), &alerts[i], n.format)
		if err != nil {
			return Permanent(err)
		}
		f, err := n.js.PublishMsgAsync(msg, jetstream.WithMsgID(alerts[i].ID), jetstream.WithExpectStream(n.s.Stream))
		if err != nil {
			return fmt.Errorf("nats: publish: %w", err)
		}
		futures = append(futures, f)
	}
	timer := time.NewTimer(n.s.Timeout)
	defer timer.Stop()
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("nats: publish: %w", err)
		case <-timer.C:
			return fmt.Errorf("nats: no acknowledgement from stream %s within %s", n.s.Stream, n.s.Timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// NATSMessage renders a into a NATS message on subject: the body in
// format f, the versioned record in RecordHeader and the signature in
// SignatureHeader.
func NATSMessage(subject string, a *detect.Alert, f Format) (*nats.Msg, error) {
	rec, err := EncodeRecord(a)
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	msg := nats.NewMsg(subject)
	msg.Data = f(nil, a)
	msg.Header.Set(RecordHeader, string(rec))
	msg.Header.Set(SignatureHeader, a.Signature.Name)
	return msg, nil
}

// connect dials the servers once; nats.go reconnects by itself afterwards.
// It creates the stream when asked to and it is missing.
func (n *NATS) connect(ctx context.Context) error {
	if n.nc == nil {
		nc, err := DialNATS(n.s.URLs, n.tls, NATSAuth{CredsFile: n.s.CredsFile, NKeyFile: n.s.NKeyFile, TokenFile: n.s.TokenFile}, "encwatch sink "+n.name, n.log)
		if err != nil {
			return err
		}
		js, err := jetstream.New(nc)
		if err != nil {
			nc.Close()
			return fmt.Errorf("nats: jetstream: %w", err)
		}
		n.nc, n.js = nc, js
	}
	if n.ready {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, n.s.Timeout)
	defer cancel()
	_, err := n.js.Stream(cctx, n.s.Stream)
	switch {
	case err == nil:
	case errors.Is(err, jetstream.ErrStreamNotFound) && n.s.CreateStream:
		_, err = n.js.CreateStream(cctx, jetstream.StreamConfig{
			Name:       n.s.Stream,
			Subjects:   []string{natsStreamSubject(n.s.Subject)},
			Storage:    jetstream.FileStorage,
			Replicas:   n.s.StreamReplicas,
			Retention:  jetstream.LimitsPolicy,
			Discard:    jetstream.DiscardOld,
			MaxAge:     n.s.StreamMaxAge,
			MaxBytes:   streamMaxBytes(n.s.StreamMaxBytes),
			Duplicates: 2 * time.Minute,
		})
		if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return fmt.Errorf("nats: create stream %s: %w", n.s.Stream, err)
		}
		n.log.WithField("stream", n.s.Stream).Info("created stream")
	default:
		return fmt.Errorf("nats: stream %s: %w", n.s.Stream, err)
	}
	n.ready = true
	return nil
}

func streamMaxBytes(maxBytes int64) int64 {
	if maxBytes <= 0 {
		return -1 // no limit
	}
	return maxBytes
}

// Close closes the connection; every publish Send returned nil for was
// already acknowledged by the stream.
func (n *NATS) Close() error {
	if n.nc == nil {
		return nil
	}
	n.nc.Close()
	return nil
}

// NATSAuth names the secret a NATS client authenticates with: at most one
// of the files is set.
type NATSAuth struct {
	CredsFile, NKeyFile, TokenFile string
}

// DialNATS connects to the first reachable of urls (nats.go keeps trying
// the others, and reconnects for ever), with TLS when tlsOpts says so or a
// URL is tls://. Each secret file is checked by ReadSecretFile first.
// extra options come last, to add handlers of the caller's.
func DialNATS(urls []string, tlsOpts TLSOptions, auth NATSAuth, clientName string, log *logrus.Entry, extra ...nats.Option) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(clientName),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.WithError(err).Warn("nats disconnected")
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.WithField("server", c.ConnectedUrlRedacted()).Info("nats reconnected") }),
		// Asynchronous errors (a permissions violation, a slow consumer)
		// go to the log, not to standard error.
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { log.WithError(err).Warn("nats error") }),
	}
	if tlsOpts != (TLSOptions{}) || strings.Contains(strings.Join(urls, ","), "tls://") {
		c, err := tlsOpts.Config("")
		if err != nil {
			return nil, fmt.Errorf("nats: %w", err)
		}
		opts = append(opts, nats.Secure(c))
	}
	switch {
	case auth.CredsFile != "":
		if _, err := ReadSecretFile(auth.CredsFile); err != nil {
			return nil, fmt.Errorf("nats: %w", err)
		}
		opts = append(opts, nats.UserCredentials(auth.CredsFile))
	case auth.NKeyFile != "":
		if _, err := ReadSecretFile(auth.NKeyFile); err != nil {
			return nil, fmt.Errorf("nats: %w", err)
		}
		o, err := nats.NkeyOptionFromSeed(auth.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats: nkey_file: %w", err)
		}
		opts = append(opts, o)
	case auth.TokenFile != "":
		tok, err := ReadSecretFile(auth.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("nats: %w", err)
		}
		opts = append(opts, nats.Token(strings.TrimSpace(string(tok))))
	}
	nc, err := nats.Connect(strings.Join(urls, ","), append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("nats: connect: %w", err)
	}
	return nc, nil
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

// natsStreamSubject is the subject filter that covers every subject the
// template renders: each field becomes "*".
func natsStreamSubject(t string) string {
	p := parseSubject(t)
	for i := 1; i < len(p); i += 2 {
		p[i] = "*"
	}
	return strings.Join(p, "")
}
