package sink

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// HTTPSettings are the attributes every HTTP sink type shares: where to
// post and how to authenticate. A tls block applies to https:// URLs.
type HTTPSettings struct {
	URL        string
	URLFile    string // or the URL, read from this file when it holds a secret; never logged
	Headers    map[string]string
	TokenFile  string // the Authorization token, read from this file,
	TokenEnv   string // or this environment variable; never logged
	AuthScheme string // default "Splunk" for Splunk HEC, else "Bearer"
	Timeout    time.Duration
}

// WebhookSettings are a webhook sink's settings.
type WebhookSettings struct {
	HTTPSettings
	Body string // "array" (default) or "ndjson"
}

// SplunkSettings are a Splunk HEC sink's settings.
type SplunkSettings struct {
	HTTPSettings
	Index      string
	SourceType string // default "encwatch:alert"
	Ack        bool   // HCL splunk_ack: wait for indexer acknowledgement
	AckTimeout time.Duration
}

// ElasticsearchSettings are an Elasticsearch sink's settings.
type ElasticsearchSettings struct {
	HTTPSettings
	Index string // default "encwatch-alerts"
}

// HTTPAliasSettings are the settings of the `sink "http"` spelling of
// earlier releases: one block type for the three receivers, picked by
// `kind`. It decodes the union of their attributes and builds the sink of
// its kind; attributes that mean nothing for that kind are accepted and
// ignored, as they always were.
type HTTPAliasSettings struct {
	Kind    string // "webhook" (default), "splunk_hec", "elasticsearch"
	Webhook WebhookSettings
	Splunk  SplunkSettings
}

func init() {
	Register(Kind[WebhookSettings]{
		Name: "webhook", FormatAttr: "payload", TLS: true,
		Decode: func(b *Body, s *WebhookSettings) {
			decodeHTTP(b, &s.HTTPSettings)
			decodeWebhook(b, s)
		},
		New: newWebhook,
	})
	Register(Kind[SplunkSettings]{
		Name: "splunk", FormatAttr: "payload", TLS: true,
		Decode: func(b *Body, s *SplunkSettings) {
			decodeHTTP(b, &s.HTTPSettings)
			decodeSplunk(b, s)
		},
		New: newSplunk,
	})
	Register(Kind[ElasticsearchSettings]{
		Name: "elasticsearch", FormatAttr: "payload", TLS: true,
		Decode: func(b *Body, s *ElasticsearchSettings) {
			decodeHTTP(b, &s.HTTPSettings)
			b.String("index", &s.Index)
		},
		New: newElasticsearch,
	})
	Register(Kind[HTTPAliasSettings]{
		Name: "http", FormatAttr: "payload", TLS: true,
		Decode: func(b *Body, s *HTTPAliasSettings) {
			b.Word("kind", &s.Kind, "webhook", "splunk_hec", "elasticsearch")
			decodeHTTP(b, &s.Webhook.HTTPSettings)
			decodeWebhook(b, &s.Webhook)
			decodeSplunk(b, &s.Splunk) // index is Elasticsearch's too
			s.Splunk.HTTPSettings = s.Webhook.HTTPSettings
		},
		New: func(s *HTTPAliasSettings, env Env) (Sink, error) {
			switch s.Kind {
			case "", "webhook":
				return newWebhook(&s.Webhook, env)
			case "splunk_hec":
				return newSplunk(&s.Splunk, env)
			case "elasticsearch":
				return newElasticsearch(&ElasticsearchSettings{HTTPSettings: s.Splunk.HTTPSettings, Index: s.Splunk.Index}, env)
			}
			return nil, fmt.Errorf("sink %q: kind %q: want \"webhook\", \"splunk_hec\" or \"elasticsearch\"", env.Name, s.Kind)
		},
	})
}

// decodeHTTP decodes the attributes every HTTP sink type shares.
func decodeHTTP(b *Body, s *HTTPSettings) {
	attrs := b.Syntax().Attributes
	if _, file := attrs["url_file"]; !file {
		b.Require("url")
	} else if _, lit := attrs["url"]; lit {
		b.Errorf(b.DefRange(), "%s: set url or url_file, not both", b.What())
	}
	var v string
	if rng, ok := b.String("url", &v); ok {
		if msg := CheckHTTPURL(v, false); msg != "" {
			b.Errorf(rng, "%s", msg)
		} else {
			s.URL = v
		}
	}
	b.AbsPath("url_file", &s.URLFile)
	b.StringMap("headers", &s.Headers)
	b.AbsPath("token_file", &s.TokenFile)
	b.String("token_env", &s.TokenEnv)
	b.String("auth_scheme", &s.AuthScheme)
	b.Duration("timeout", &s.Timeout, time.Millisecond, MaxTimeout)
}

func decodeWebhook(b *Body, s *WebhookSettings) {
	b.Word("body", &s.Body, "array", "ndjson")
}

func decodeSplunk(b *Body, s *SplunkSettings) {
	b.String("index", &s.Index)
	b.String("source_type", &s.SourceType)
	b.Bool("splunk_ack", &s.Ack)
	b.Duration("ack_timeout", &s.AckTimeout, time.Millisecond, MaxTimeout)
}

// CheckHTTPURL says what is wrong with v, an HTTP sink's URL, or returns
// "". A URL in the policy must carry no secret: user information, query
// values and path segments that look like keys (Slack, Teams and Discord
// webhooks carry theirs in the path) would reach validate's output and
// anyone who reads the policy; such a URL goes in url_file. fromFile
// allows the secrets (the file is root's and never shown).
func CheckHTTPURL(v string, fromFile bool) string {
	u, err := url.Parse(v)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		if fromFile {
			return "url_file must hold an http:// or https:// URL"
		}
		return fmt.Sprintf("url %q must be an http:// or https:// URL", v)
	case u.User != nil && !fromFile:
		// A password in the policy would end up in logs and validate output.
		return "url must not carry credentials; use token_file or token_env"
	case u.User != nil:
		return "url_file: the URL must not carry credentials; use token_file or token_env"
	case fromFile:
		return ""
	case u.RawQuery != "":
		return "url must not carry a query (a ?token= is a secret in the policy); put the URL in url_file"
	}
	for seg := range strings.SplitSeq(u.Path, "/") {
		if secretLike(seg) {
			return "url: a path segment looks like a key (webhook URLs carry theirs in the path); put the URL in url_file"
		}
	}
	return ""
}

// secretLike says whether a path segment looks like a key: 16 bytes or
// more of letters, digits, '-' and '_', with both letters and digits.
func secretLike(seg string) bool {
	if len(seg) < 16 {
		return false
	}
	var letter, digit bool
	for _, c := range []byte(seg) {
		switch {
		case c >= '0' && c <= '9':
			digit = true
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			letter = true
		case c == '-' || c == '_':
		default:
			return false
		}
	}
	return letter && digit
}

// httpOptions reads the token (and the URL from url_file) and returns the
// transport's options.
func httpOptions(s *HTTPSettings, env Env) (HTTPOptions, error) {
	token, err := readToken(s.TokenFile, s.TokenEnv)
	if err != nil {
		return HTTPOptions{}, fmt.Errorf("sink %q: %w", env.Name, err)
	}
	if s.URLFile != "" {
		b, err := readTrustedFile(s.URLFile, "url_file", true)
		if err != nil {
			return HTTPOptions{}, fmt.Errorf("sink %q: %w", env.Name, err)
		}
		s.URL = strings.TrimSpace(string(b))
		if msg := CheckHTTPURL(s.URL, true); msg != "" {
			return HTTPOptions{}, fmt.Errorf("sink %q: %s", env.Name, msg)
		}
	}
	return HTTPOptions{
		URL: s.URL, Headers: s.Headers, Token: token, AuthScheme: s.AuthScheme,
		TLS: env.Common.TLS, Timeout: s.Timeout, Version: env.Version,
	}, nil
}

func newWebhook(s *WebhookSettings, env Env) (Sink, error) {
	h, err := httpOptions(&s.HTTPSettings, env)
	if err != nil {
		return nil, err
	}
	return NewWebhook(env.Name, WebhookOptions{HTTP: h, Format: env.Format, JSONFormat: env.JSONFormat, ContentType: env.ContentType, Body: s.Body})
}

func newSplunk(s *SplunkSettings, env Env) (Sink, error) {
	h, err := httpOptions(&s.HTTPSettings, env)
	if err != nil {
		return nil, err
	}
	return NewSplunk(env.Name, SplunkOptions{
		HTTP: h, Format: env.Format, JSONFormat: env.JSONFormat,
		Index: s.Index, SourceType: s.SourceType, Ack: s.Ack, AckTimeout: s.AckTimeout,
	})
}

func newElasticsearch(s *ElasticsearchSettings, env Env) (Sink, error) {
	h, err := httpOptions(&s.HTTPSettings, env)
	if err != nil {
		return nil, err
	}
	return NewElasticsearch(env.Name, ElasticsearchOptions{HTTP: h, Format: env.Format, JSONFormat: env.JSONFormat, Index: s.Index})
}
