package sink

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// HTTPOptions configure the HTTP transport that the webhook, splunk and
// elasticsearch sinks share.
type HTTPOptions struct {
	URL     string
	Headers map[string]string
	// Token is the secret for the Authorization header, read from a file or
	// the environment when the sink is built; it is never logged nor put
	// in an error.
	Token string
	// AuthScheme prefixes Token (default: the sink's, "Bearer" for a
	// webhook and Elasticsearch, "Splunk" for Splunk HEC; "ApiKey" suits an
	// Elasticsearch API key).
	AuthScheme string
	TLS        TLSOptions
	Timeout    time.Duration // one request, default 10s
	Version    string        // the product version, for the User-Agent
}

// httpTransport delivers bytes: it POSTs a body and sorts the answer into
// delivered, retryable or permanent (ErrPermanent). It knows nothing of
// alerts; the sinks that render them share it.
//
// Concurrency: used from one goroutine, the sink's delivery worker.
type httpTransport struct {
	client    *http.Client
	headers   map[string]string
	auth      string // the Authorization header, "" without a token
	userAgent string
	// display is the URL as errors show it (scheme, host, port); red
	// removes every configured secret from what errors carry.
	display string
	red     *redactor
}

// newHTTPTransport checks opts and returns the transport and the parsed
// URL, for the sink to derive its endpoints from. defaultScheme is the
// sink's authorization scheme when opts names none.
func newHTTPTransport(opts HTTPOptions, defaultScheme string) (*httpTransport, *url.URL, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, nil, fmt.Errorf("url: want http:// or https://HOST[:PORT]/PATH")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.AuthScheme == "" {
		opts.AuthScheme = defaultScheme
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	t := &httpTransport{
		headers: opts.Headers, userAgent: "encwatch/" + opts.Version,
		display: displayURL(u), red: newRedactor(u, opts.Token, opts.Headers),
	}
	if opts.Token != "" {
		t.auth = opts.AuthScheme + " " + opts.Token
	}
	tc, err := opts.TLS.Config("")
	if err != nil {
		return nil, nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // alerts go where configured, not through an environment proxy
	tr.TLSClientConfig = tc
	t.client = &http.Client{Transport: tr, Timeout: opts.Timeout, CheckRedirect: noRedirect}
	return t, u, nil
}

// noRedirect makes the client hand a 3xx back instead of following it:
// following would re-send the token and the alerts wherever the peer says
// (a 307 from https to http sends both in clear text), and a 301/302/303
// turns the POST into a GET whose 200 would count as delivered.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// close closes idle connections.
func (t *httpTransport) close() { t.client.CloseIdleConnections() }

// retryable says whether an answer with status is worth sending again. A
// redirect is: it is never followed (see noRedirect), but it is often a
// receiver being moved or a proxy misconfigured for a while, so the batch
// waits with backoff, counted as a failed send, rather than being lost.
func retryable(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests ||
		(status >= 300 && status < 400) || status >= 500
}

// post sends one request and returns the body of a 2xx response (at most
// 4 MiB). Errors never carry a secret: the URL is shown as t.display, and
// the receiver's answer and the transport's error pass t.red first (an
// echoing proxy, a receiver quoting the request line).
func (t *httpTransport) post(ctx context.Context, target, ctype string, body []byte, hdr map[string]string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, t.red.redactErr(fmt.Errorf("request to %s: %w", t.display, err), t.display)
	}
	for k, v := range t.headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("User-Agent", t.userAgent)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if t.auth != "" {
		req.Header.Set("Authorization", t.auth)
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return nil, t.red.redactErr(err, t.display)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, t.red.redactErr(fmt.Errorf("read response from %s: %w", t.display, err), t.display)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return out, nil
	}
	// Redacted whole, then cut: a cut first could keep part of a secret.
	msg := snippet([]byte(t.red.String(string(out))))
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		msg = "redirect to " + snippet([]byte(t.red.String(resp.Header.Get("Location")))) + " not followed"
	}
	err = fmt.Errorf("http %d from %s: %s", resp.StatusCode, t.display, t.red.String(msg))
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
// The file must be a regular file owned by root, readable by no one else,
// and small (see readTrustedFile): whoever can write it can redirect the
// receiver's trust, whoever can read it can forge alerts.
func readToken(file, env string) (string, error) {
	switch {
	case file != "":
		b, err := readTrustedFile(file, "token file", true)
		if err != nil {
			return "", err
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
