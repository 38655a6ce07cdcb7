package sink

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/encwatch/encwatch/detect"
)

// SplunkOptions configure a Splunk sink (HTTP Event Collector).
type SplunkOptions struct {
	// HTTP.URL is the HEC base (https://splunk:8088) or the full
	// /services/collector/event URL; the auth scheme defaults to "Splunk".
	HTTP HTTPOptions
	// Format encodes each alert as the HEC event (default AppendJSON); a
	// format that is not JSON (JSONFormat false) is sent as a JSON string.
	Format     Format
	JSONFormat bool
	// Index is the Splunk index (default: the token's).
	Index string
	// SourceType is Splunk's sourcetype (default "encwatch:alert").
	SourceType string
	// Ack turns on HEC indexer acknowledgement: a batch counts as
	// delivered only once Splunk says it is indexed, polled every AckPoll
	// (default 1s) for up to AckTimeout (default 60s); otherwise it is sent
	// again.
	Ack                 bool
	AckPoll, AckTimeout time.Duration
}

// Splunk posts batches of alerts to a Splunk HTTP Event Collector, as
// concatenated HEC event objects.
//
// Retryable failures (a network error, 408, 429, 5xx, an unacknowledged
// batch) return a plain error for the router to retry with backoff; other
// 4xx return an error wrapping ErrPermanent, counted as rejected.
//
// Concurrency: Send and Close are called from one goroutine (the sink's
// delivery worker), Close after the last Send.
type Splunk struct {
	name    string
	opts    SplunkOptions
	t       *httpTransport
	target  string // the URL posted to
	ackURL  string
	channel string // the request channel, for acknowledgement
	buf     bytes.Buffer
	scratch []byte
}

var _ Sink = (*Splunk)(nil)

// NewSplunk returns a Splunk HEC sink named name. It connects nothing.
func NewSplunk(name string, opts SplunkOptions) (*Splunk, error) {
	if opts.Format == nil {
		opts.Format, opts.JSONFormat = AppendJSON, true
	}
	if opts.SourceType == "" {
		opts.SourceType = "encwatch:alert"
	}
	if opts.AckPoll <= 0 {
		opts.AckPoll = time.Second
	}
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = time.Minute
	}
	t, u, err := newHTTPTransport(opts.HTTP, "Splunk")
	if err != nil {
		return nil, fmt.Errorf("sink %q: %w", name, err)
	}
	s := &Splunk{name: name, opts: opts, t: t}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/services/collector/event"
	}
	s.target = u.String()
	ack := *u
	ack.Path, ack.RawQuery = "/services/collector/ack", ""
	s.ackURL = (&ack).String()
	s.channel = newChannel()
	return s, nil
}

// newChannel returns a random UUID-shaped request channel id, as HEC
// requires one.
func newChannel() string {
	var id [16]byte
	_, _ = rand.Read(id[:])
	h := hex.EncodeToString(id[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// Name returns the sink's configured name.
func (s *Splunk) Name() string { return s.name }

// Close closes idle connections.
func (s *Splunk) Close() error {
	s.t.close()
	return nil
}

// Send posts alerts as one request, and with Ack waits until Splunk has
// indexed them.
func (s *Splunk) Send(ctx context.Context, alerts []detect.Alert) error {
	if err := s.send(ctx, alerts); err != nil {
		return fmt.Errorf("sink %q: %w", s.name, err)
	}
	return nil
}

// sendSplunk posts concatenated HEC event objects (no separator needed).
func (s *Splunk) send(ctx context.Context, alerts []detect.Alert) error {
	s.buf.Reset()
	for i := range alerts {
		a := &alerts[i]
		b := append(s.scratch[:0], `{"time":`...)
		b = strconv.AppendFloat(b, float64(a.Time.UnixMilli())/1000, 'f', 3, 64)
		b = append(b, `,"host":`...)
		b = appendString(b, a.Host)
		b = append(b, `,"source":"encwatch","sourcetype":`...)
		b = appendString(b, s.opts.SourceType)
		if s.opts.Index != "" {
			b = append(b, `,"index":`...)
			b = appendString(b, s.opts.Index)
		}
		b = append(b, `,"event":`...)
		if s.opts.JSONFormat {
			b = s.opts.Format(b, a)
		} else {
			b = appendString(b, string(s.opts.Format(nil, a)))
		}
		s.scratch = append(b, '}')
		s.buf.Write(s.scratch)
	}
	var hdr map[string]string
	if s.opts.Ack {
		hdr = map[string]string{"X-Splunk-Request-Channel": s.channel}
	}
	body, err := s.t.post(ctx, s.target, "application/json", s.buf.Bytes(), hdr)
	if err != nil || !s.opts.Ack {
		return err
	}
	var resp struct {
		AckID *int64 `json:"ackId"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || resp.AckID == nil {
		return errors.New("splunk: no ackId in the response: is indexer acknowledgement on for this token?")
	}
	return s.waitAck(ctx, *resp.AckID)
}

// waitAck polls the HEC ack endpoint until id is acknowledged. Past
// AckTimeout the batch is reported failed, so it is sent again: Splunk may
// then index it twice, which the alert id lets a search dedupe.
func (s *Splunk) waitAck(ctx context.Context, id int64) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.AckTimeout)
	defer cancel()
	req := []byte(`{"acks":[` + strconv.FormatInt(id, 10) + `]}`)
	hdr := map[string]string{"X-Splunk-Request-Channel": s.channel}
	t := time.NewTicker(s.opts.AckPoll)
	defer t.Stop()
	for {
		body, err := s.t.post(ctx, s.ackURL, "application/json", req, hdr)
		if err == nil {
			var resp struct {
				Acks map[string]bool `json:"acks"`
			}
			if json.Unmarshal(body, &resp) == nil && resp.Acks[strconv.FormatInt(id, 10)] {
				return nil
			}
		} else if errors.Is(err, ErrPermanent) {
			return fmt.Errorf("splunk ack: %w", err)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("splunk: ack %d not confirmed within %v", id, s.opts.AckTimeout)
		}
	}
}
