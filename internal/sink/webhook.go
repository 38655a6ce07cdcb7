package sink

import (
	"cmp"
	"context"
	"fmt"

	"github.com/encwatch/encwatch/detect"
)

// WebhookOptions configure a Webhook sink.
type WebhookOptions struct {
	HTTP HTTPOptions
	// Format encodes each alert (default AppendJSON); JSONFormat says it
	// writes JSON objects. A non-JSON format forces Body "ndjson", and its
	// lines are sent as ContentType (default text/plain).
	Format      Format
	JSONFormat  bool
	ContentType string
	// Body is the batch shape: "array" (default: a JSON array) or "ndjson"
	// (one alert a line).
	Body string
}

// Webhook posts each batch of alerts to a URL as one request.
//
// Retryable failures (a network error, 408, 429, 5xx) return a plain error
// for the router to retry with backoff; other 4xx return an error wrapping
// ErrPermanent, counted as rejected.
//
// Concurrency: Send and Close are called from one goroutine (the sink's
// delivery worker), Close after the last Send.
type Webhook struct {
	name   string
	opts   WebhookOptions
	t      *httpTransport
	target string
	buf    []byte
}

var _ Sink = (*Webhook)(nil)

// NewWebhook returns a webhook sink named name. It connects nothing.
func NewWebhook(name string, opts WebhookOptions) (*Webhook, error) {
	if opts.Format == nil {
		opts.Format, opts.JSONFormat = AppendJSON, true
	}
	if opts.Body == "" {
		opts.Body = "array"
	}
	if !opts.JSONFormat {
		opts.Body = "ndjson"
	}
	if opts.Body != "array" && opts.Body != "ndjson" {
		return nil, fmt.Errorf("sink %q: body %q: want \"array\" or \"ndjson\"", name, opts.Body)
	}
	t, u, err := newHTTPTransport(opts.HTTP, "Bearer")
	if err != nil {
		return nil, fmt.Errorf("sink %q: %w", name, err)
	}
	return &Webhook{name: name, opts: opts, t: t, target: u.String()}, nil
}

// Name returns the sink's configured name.
func (s *Webhook) Name() string { return s.name }

// Close closes idle connections.
func (s *Webhook) Close() error {
	s.t.close()
	return nil
}

// Send posts alerts as one request.
func (s *Webhook) Send(ctx context.Context, alerts []detect.Alert) error {
	ct := "application/json"
	b := s.buf[:0]
	if s.opts.Body == "array" {
		b = append(b, '[')
		for i := range alerts {
			if i > 0 {
				b = append(b, ',')
			}
			b = s.opts.Format(b, &alerts[i])
		}
		b = append(b, ']')
	} else {
		ct = "application/x-ndjson"
		if !s.opts.JSONFormat {
			ct = cmp.Or(s.opts.ContentType, "text/plain; charset=utf-8")
		}
		b = appendLines(b, s.opts.Format, alerts)
	}
	s.buf = b
	if _, err := s.t.post(ctx, s.target, ct, b, nil); err != nil {
		return fmt.Errorf("sink %q: %w", s.name, err)
	}
	return nil
}
