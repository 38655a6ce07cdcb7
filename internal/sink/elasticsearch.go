package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/encwatch/encwatch/detect"
)

// ElasticsearchOptions configure an Elasticsearch (or OpenSearch) sink.
type ElasticsearchOptions struct {
	// HTTP.URL is the cluster; /_bulk is added.
	HTTP HTTPOptions
	// Format encodes each alert as its document: a JSON format (json, ecs,
	// ocsf; default AppendJSON), which JSONFormat must confirm.
	Format     Format
	JSONFormat bool
	// Index is the index or data stream (default "encwatch-alerts").
	Index string
}

// Elasticsearch posts batches of alerts to the _bulk API.
//
// Documents are created with the alert id as _id, so a resent alert is
// refused as a version conflict (409), which counts as delivered: no
// duplicates. Retryable failures (a network error, 408, 429, 5xx, an item
// refused for one of those) return a plain error for the router to retry
// the batch; other 4xx return an error wrapping ErrPermanent, and items
// refused for good a RejectedError.
//
// Concurrency: Send and Close are called from one goroutine (the sink's
// delivery worker), Close after the last Send.
type Elasticsearch struct {
	name    string
	opts    ElasticsearchOptions
	t       *httpTransport
	target  string
	buf     bytes.Buffer
	scratch []byte
}

var _ Sink = (*Elasticsearch)(nil)

// NewElasticsearch returns an Elasticsearch sink named name. It connects
// nothing.
func NewElasticsearch(name string, opts ElasticsearchOptions) (*Elasticsearch, error) {
	if opts.Format == nil {
		opts.Format, opts.JSONFormat = AppendJSON, true
	}
	if !opts.JSONFormat {
		return nil, fmt.Errorf("sink %q: elasticsearch needs a JSON payload (json, ecs, ocsf)", name)
	}
	if opts.Index == "" {
		opts.Index = "encwatch-alerts"
	}
	t, u, err := newHTTPTransport(opts.HTTP, "Bearer")
	if err != nil {
		return nil, fmt.Errorf("sink %q: %w", name, err)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	if !strings.HasSuffix(u.Path, "/_bulk") {
		u.Path += "/_bulk"
	}
	return &Elasticsearch{name: name, opts: opts, t: t, target: u.String()}, nil
}

// Name returns the sink's configured name.
func (s *Elasticsearch) Name() string { return s.name }

// Close closes idle connections.
func (s *Elasticsearch) Close() error {
	s.t.close()
	return nil
}

// Send posts alerts as one _bulk request.
func (s *Elasticsearch) Send(ctx context.Context, alerts []detect.Alert) error {
	if err := s.send(ctx, alerts); err != nil {
		return fmt.Errorf("sink %q: %w", s.name, err)
	}
	return nil
}

// sendElastic posts a _bulk request of create actions with the alert id as
// _id, and sorts the per-item results.
func (s *Elasticsearch) send(ctx context.Context, alerts []detect.Alert) error {
	s.buf.Reset()
	for i := range alerts {
		a := &alerts[i]
		b := append(s.scratch[:0], `{"create":{"_index":`...)
		b = appendString(b, s.opts.Index)
		b = append(b, `,"_id":`...)
		b = appendString(b, a.ID)
		b = append(b, "}}\n"...)
		b = s.opts.Format(b, a)
		s.scratch = append(b, '\n')
		s.buf.Write(s.scratch)
	}
	body, err := s.t.post(ctx, s.target, "application/x-ndjson", s.buf.Bytes(), nil)
	if err != nil {
		return err
	}
	var resp struct {
		Errors bool `json:"errors"`
		Items  []map[string]struct {
			Status int `json:"status"`
			Error  struct {
				Type   string `json:"type"`
				Reason string `json:"reason"`
			} `json:"error"`
		} `json:"items"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return fmt.Errorf("elasticsearch: bulk response: %w", err)
	}
	if !resp.Errors {
		return nil
	}
	if len(resp.Items) != len(alerts) {
		return fmt.Errorf("elasticsearch: bulk response has %d items for %d alerts", len(resp.Items), len(alerts))
	}
	retry, rejected := 0, 0
	var firstRetry, firstReject string
	for _, item := range resp.Items {
		for _, r := range item {
			switch {
			case r.Status < 300, r.Status == http.StatusConflict:
				// Created, or created by an earlier attempt.
			case retryable(r.Status):
				retry++
				if firstRetry == "" {
					firstRetry = strconv.Itoa(r.Status) + " " + r.Error.Type
				}
			default:
				rejected++
				if firstReject == "" {
					firstReject = strconv.Itoa(r.Status) + " " + r.Error.Type + ": " + r.Error.Reason
				}
			}
		}
	}
	if retry > 0 {
		// Resend the whole batch: what was created comes back 409.
		return fmt.Errorf("elasticsearch: %d items to retry (%s)", retry, snippet([]byte(s.t.red.String(firstRetry))))
	}
	if rejected > 0 {
		return &RejectedError{Count: rejected, Err: fmt.Errorf("elasticsearch: %s", snippet([]byte(s.t.red.String(firstReject))))}
	}
	return nil
}
