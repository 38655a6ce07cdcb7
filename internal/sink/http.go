package sink

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/detect"
)

// HTTPOptions configure an HTTP sink.
type HTTPOptions struct {
	URL string
	// Kind is "webhook" (default), "splunk_hec" or "elasticsearch".
	Kind string
	// Payload encodes each alert (default AppendJSON). splunk_hec and
	// elasticsearch need a JSON format (json, ecs, ocsf); a webhook takes
	// any, and a non-JSON one forces Body "ndjson" (one alert a line).
	Payload Format
	// JSONPayload says Payload writes JSON objects.
	JSONPayload bool
	// Body is the webhook's batch shape: "array" (default: a JSON array)
	// or "ndjson" (one alert a line).
	Body string
	// Index is the Elasticsearch index or data stream (default
	// "encwatch-alerts"), or the Splunk index (default: the token's).
	Index string
	// SourceType is Splunk's sourcetype (default "encwatch:alert").
	SourceType string
	Headers    map[string]string
	// Token is the secret for the Authorization header, read from a file or
	// the environment by Build; it is never logged nor put in an error.
	Token string
	// AuthScheme prefixes Token: "Splunk" for splunk_hec, else "Bearer"
	// by default ("ApiKey" suits an Elasticsearch API key).
	AuthScheme string
	TLS        TLSOptions
	Timeout    time.Duration // one request, default 10s
	// SplunkAck turns on HEC indexer acknowledgement: a batch counts as
	// delivered only once Splunk says it is indexed, polled every AckPoll
	// (default 1s) for up to AckTimeout (default 60s); otherwise it is sent
	// again.
	SplunkAck           bool
	AckPoll, AckTimeout time.Duration
}

// HTTP posts batches of alerts to a webhook, Splunk HEC or Elasticsearch.
//
// Retryable failures (a network error, 408, 429, 5xx, an Elasticsearch
// item refused for one of those, an unacknowledged Splunk batch) return a
// plain error for the router to retry with backoff; other 4xx return an
// error wrapping ErrPermanent, counted as rejected. Elasticsearch documents
// are created with the alert id as _id, so a resent alert is refused as a
// version conflict (409), which counts as delivered: no duplicates.
//
// Concurrency: Send and Close are called from one goroutine (the sink's
// delivery worker), Close after the last Send.
type HTTP struct {
	name    string
	log     *logrus.Entry
	opts    HTTPOptions
	client  *http.Client
	target  string // the URL posted to
	ackURL  string
	auth    string
	channel string // Splunk request channel
	buf     bytes.Buffer
	scratch []byte
}

var _ Sink = (*HTTP)(nil)

// NewHTTP returns an HTTP sink named name. It connects nothing.
func NewHTTP(log *logrus.Entry, name string, opts HTTPOptions) (*HTTP, error) {
	s := &HTTP{name: name, log: log, opts: opts}
	if s.opts.Kind == "" {
		s.opts.Kind = "webhook"
	}
	if s.opts.Payload == nil {
		s.opts.Payload, s.opts.JSONPayload = AppendJSON, true
	}
	if s.opts.Timeout <= 0 {
		s.opts.Timeout = 10 * time.Second
	}
	if s.opts.AckPoll <= 0 {
		s.opts.AckPoll = time.Second
	}
	if s.opts.AckTimeout <= 0 {
		s.opts.AckTimeout = time.Minute
	}
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("sink %q: url: want http:// or https://HOST[:PORT]/PATH", name)
	}
	switch s.opts.Kind {
	case "webhook":
		if s.opts.Body == "" {
			s.opts.Body = "array"
		}
		if !s.opts.JSONPayload {
			s.opts.Body = "ndjson"
		}
		if s.opts.Body != "array" && s.opts.Body != "ndjson" {
			return nil, fmt.Errorf("sink %q: body %q: want \"array\" or \"ndjson\"", name, s.opts.Body)
		}
		s.target = u.String()
	case "splunk_hec":
		if s.opts.AuthScheme == "" {
			s.opts.AuthScheme = "Splunk"
		}
		if s.opts.SourceType == "" {
			s.opts.SourceType = "encwatch:alert"
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = "/services/collector/event"
		}
		s.target = u.String()
		u.Path, u.RawQuery = "/services/collector/ack", ""
		s.ackURL = u.String()
		var id [16]byte
		_, _ = rand.Read(id[:])
		// A UUID-shaped channel id, as HEC requires one.
		h := hex.EncodeToString(id[:])
		s.channel = h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
	case "elasticsearch":
		if !s.opts.JSONPayload {
			return nil, fmt.Errorf("sink %q: elasticsearch needs a JSON payload (json, ecs, ocsf)", name)
		}
		if s.opts.Index == "" {
			s.opts.Index = "encwatch-alerts"
		}
		u.Path = strings.TrimSuffix(u.Path, "/")
		if !strings.HasSuffix(u.Path, "/_bulk") {
			u.Path += "/_bulk"
		}
		s.target = u.String()
	default:
		return nil, fmt.Errorf("sink %q: kind %q: want \"webhook\", \"splunk_hec\" or \"elasticsearch\"", name, s.opts.Kind)
	}
	if s.opts.AuthScheme == "" {
		s.opts.AuthScheme = "Bearer"
	}
	if s.opts.Token != "" {
		s.auth = s.opts.AuthScheme + " " + s.opts.Token
	}
	tc, err := s.opts.TLS.config("")
	if err != nil {
		return nil, fmt.Errorf("sink %q: %w", name, err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // alerts go where configured, not through an environment proxy
	tr.TLSClientConfig = tc
	s.client = &http.Client{Transport: tr, Timeout: s.opts.Timeout}
	return s, nil
}

// Name returns the sink's configured name.
func (s *HTTP) Name() string { return s.name }

// Close closes idle connections.
func (s *HTTP) Close() error {
	s.client.CloseIdleConnections()
	return nil
}

// Send posts alerts as one request.
func (s *HTTP) Send(ctx context.Context, alerts []detect.Alert) error {
	var err error
	switch s.opts.Kind {
	case "splunk_hec":
		err = s.sendSplunk(ctx, alerts)
	case "elasticsearch":
		err = s.sendElastic(ctx, alerts)
	default:
		err = s.sendWebhook(ctx, alerts)
	}
	if err != nil {
		return fmt.Errorf("sink %q: %w", s.name, err)
	}
	return nil
}

func (s *HTTP) sendWebhook(ctx context.Context, alerts []detect.Alert) error {
	s.buf.Reset()
	ct := "application/json"
	if s.opts.Body == "array" {
		s.buf.WriteByte('[')
		for i := range alerts {
			if i > 0 {
				s.buf.WriteByte(',')
			}
			s.scratch = s.opts.Payload(s.scratch[:0], &alerts[i])
			s.buf.Write(s.scratch)
		}
		s.buf.WriteByte(']')
	} else {
		ct = "application/x-ndjson"
		if !s.opts.JSONPayload {
			ct = "text/plain; charset=utf-8"
		}
		for i := range alerts {
			s.scratch = s.opts.Payload(s.scratch[:0], &alerts[i])
			s.buf.Write(s.scratch)
			s.buf.WriteByte('\n')
		}
	}
	_, err := s.post(ctx, s.target, ct, s.buf.Bytes(), nil)
	return err
}

// sendSplunk posts concatenated HEC event objects (no separator needed).
func (s *HTTP) sendSplunk(ctx context.Context, alerts []detect.Alert) error {
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
		if s.opts.JSONPayload {
			b = s.opts.Payload(b, a)
		} else {
			b = appendString(b, string(s.opts.Payload(nil, a)))
		}
		s.scratch = append(b, '}')
		s.buf.Write(s.scratch)
	}
	var hdr map[string]string
	if s.opts.SplunkAck {
		hdr = map[string]string{"X-Splunk-Request-Channel": s.channel}
	}
	body, err := s.post(ctx, s.target, "application/json", s.buf.Bytes(), hdr)
	if err != nil || !s.opts.SplunkAck {
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
func (s *HTTP) waitAck(ctx context.Context, id int64) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.AckTimeout)
	defer cancel()
	req := []byte(`{"acks":[` + strconv.FormatInt(id, 10) + `]}`)
	hdr := map[string]string{"X-Splunk-Request-Channel": s.channel}
	t := time.NewTicker(s.opts.AckPoll)
	defer t.Stop()
	for {
		body, err := s.post(ctx, s.ackURL, "application/json", req, hdr)
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

// sendElastic posts a _bulk request of create actions with the alert id as
// _id, and sorts the per-item results.
func (s *HTTP) sendElastic(ctx context.Context, alerts []detect.Alert) error {
	s.buf.Reset()
	for i := range alerts {
		a := &alerts[i]
		b := append(s.scratch[:0], `{"create":{"_index":`...)
		b = appendString(b, s.opts.Index)
		b = append(b, `,"_id":`...)
		b = appendString(b, a.ID)
		b = append(b, "}}\n"...)
		b = s.opts.Payload(b, a)
		s.scratch = append(b, '\n')
		s.buf.Write(s.scratch)
	}
	body, err := s.post(ctx, s.target, "application/x-ndjson", s.buf.Bytes(), nil)
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
		return fmt.Errorf("elasticsearch: %d items to retry (%s)", retry, firstRetry)
	}
	if rejected > 0 {
		return &RejectedError{Count: rejected, Err: fmt.Errorf("elasticsearch: %s", firstReject)}
	}
	return nil
}

func retryable(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500
}

// post sends one request and returns the body of a 2xx response (at most
// 4 MiB). Errors never carry the token: the Authorization header is not in
// them, and net/http redacts a password in the URL.
func (s *HTTP) post(ctx context.Context, target, ctype string, body []byte, hdr map[string]string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("request: %w", err)
	}
	for k, v := range s.opts.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("User-Agent", "encwatch/"+Version)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if s.auth != "" {
		req.Header.Set("Authorization", s.auth)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return out, nil
	}
	msg := snippet(out)
	if s.opts.Token != "" {
		msg = strings.ReplaceAll(msg, s.opts.Token, "[redacted]") // an echoing proxy
	}
	err = fmt.Errorf("http %d: %s", resp.StatusCode, msg)
	if retryable(resp.StatusCode) {
		return nil, err
	}
	return nil, Permanent(err)
}

// snippet is the start of a response body for an error message, on one line.
func snippet(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return string(appendSafe(nil, string(b), func(dst []byte, c byte) ([]byte, bool) { return dst, false }))
}

// readToken reads a secret from a file (trimmed) or an environment variable.
func readToken(file, env string) (string, error) {
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("token file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	case env != "":
		v, ok := os.LookupEnv(env)
		if !ok || v == "" {
			return "", fmt.Errorf("token: environment variable %s is not set", env)
		}
		return strings.TrimSpace(v), nil
	}
	return "", nil
}
