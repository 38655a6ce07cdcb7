package fleet

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
	"github.com/encwatch/encwatch/internal/sink"
)

// NATSOptions configure a NATS sink.
type NATSOptions struct {
	Settings NATSSettings
	TLS      sink.TLSOptions
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
	tls     sink.TLSOptions
	format  sink.Format
	subject subjectTemplate

	nc    *nats.Conn
	js    jetstream.JetStream
	ready bool // the stream is known to exist
}

var _ sink.Sink = (*NATS)(nil)

// NewNATS makes a NATS sink from env (name, log, format) and opts. It
// checks the secret files and connects nothing: the first Send does.
func NewNATS(env sink.Env, opts NATSOptions) (*NATS, error) {
	s := opts.Settings
	if s.Subject == "" {
		s.Subject = DefaultSubject
	}
	if s.Stream == "" {
		s.Stream = DefaultStream
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
	for _, f := range s.files() {
		if f == "" {
			continue
		}
		if _, err := sink.ReadSecretFile(f); err != nil {
			return nil, fmt.Errorf("sink %q: %w", env.Name, err)
		}
	}
	format := env.Format
	if format == nil {
		format = sink.AppendJSON
	}
	log := env.Log
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = logrus.NewEntry(l)
	}
	if s.Insecure {
		log.Warn(insecureWarning("sink " + strconv.Quote(env.Name)))
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
			return sink.Permanent(err)
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

// connect dials the servers once; nats.go reconnects by itself afterwards.
// It creates the stream when asked to and it is missing.
func (n *NATS) connect(ctx context.Context) error {
	if n.nc == nil {
		nc, err := DialNATS(n.s.URLs, n.tls, n.s.NATSAuth, "encwatch sink "+n.name, n.log)
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
			Subjects:   []string{streamSubject(n.s.Subject)},
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
	CredsFile string // a .creds file (user JWT and nkey seed)
	NKeyFile  string // an nkey seed
	TokenFile string // a token
}

// files returns the three secret files, set or not.
func (a NATSAuth) files() []string { return []string{a.CredsFile, a.NKeyFile, a.TokenFile} }

// DialNATS connects to the first reachable of urls (nats.go keeps trying
// the others, and reconnects for ever), with TLS when tlsOpts says so or a
// URL is tls://. Each secret file is checked by sink.ReadSecretFile first.
// extra options come last, to add handlers of the caller's.
func DialNATS(urls []string, tlsOpts sink.TLSOptions, auth NATSAuth, clientName string, log *logrus.Entry, extra ...nats.Option) (*nats.Conn, error) {
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
	if tlsOpts != (sink.TLSOptions{}) || strings.Contains(strings.Join(urls, ","), "tls://") {
		c, err := tlsOpts.Config("")
		if err != nil {
			return nil, fmt.Errorf("nats: %w", err)
		}
		opts = append(opts, nats.Secure(c))
	}
	switch {
	case auth.CredsFile != "":
		if _, err := sink.ReadSecretFile(auth.CredsFile); err != nil {
			return nil, fmt.Errorf("nats: %w", err)
		}
		opts = append(opts, nats.UserCredentials(auth.CredsFile))
	case auth.NKeyFile != "":
		if _, err := sink.ReadSecretFile(auth.NKeyFile); err != nil {
			return nil, fmt.Errorf("nats: %w", err)
		}
		o, err := nats.NkeyOptionFromSeed(auth.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats: nkey_file: %w", err)
		}
		opts = append(opts, o)
	case auth.TokenFile != "":
		tok, err := sink.ReadSecretFile(auth.TokenFile)
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
