package sink

import (
	"context"
	"net"
	"net/url"
	"strings"
	"testing"
)

// TestRedactor: every secret the sink was configured with, its escaped
// spellings and any 8-byte piece of it leave the text; the rest stays.
func TestRedactor(t *testing.T) {
	u, _ := url.Parse("https://hooks.example:8443/services/T01/B0123456789/XyZ0123456789abcdef?token=q9s8d7f6g5&x=1")
	r := newRedactor(u, "tok-4f3e2d1c0b9a", map[string]string{"X-Api-Key": "hdr-secret-77"})
	for _, tc := range []struct{ name, in, want string }{
		{"token", "bad token tok-4f3e2d1c0b9a here", "bad token [redacted] here"},
		{"cut token", "Authorization: Bearer tok-4f3e2d1", "Authorization: Bearer [redacted]"},
		{"path key", "POST /services/T01/B0123456789/XyZ0123456789abcdef", "POST [redacted]"},
		{"path key alone", "key XyZ0123456789abcdef", "key [redacted]"},
		{"query value", "got q9s8d7f6g5", "got [redacted]"},
		{"json-escaped path", `{"u":"\/services\/T01\/B0123456789\/XyZ0123456789abcdef"}`, `{"u":"[redacted]"}`},
		{"header value", "key=hdr-secret-77", "key=[redacted]"},
		{"plain", "service unavailable", "service unavailable"},
		{"short words stay", "x=1 T01", "x=1 T01"},
	} {
		if got := r.String(tc.in); got != tc.want {
			t.Errorf("%s: String(%q) = %q, want %q", tc.name, tc.in, got, tc.want)
		}
	}
}

// TestPostErrorsShowNoURLSecret: a transport error names the receiver by
// scheme, host and port only.
func TestPostErrorsShowNoURLSecret(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // connection refused
	tr, _, err := newHTTPTransport(HTTPOptions{URL: "http://" + addr + "/hook/AbC0123456789xyzW?sig=zz9988776655"}, "Bearer")
	if err != nil {
		t.Fatal(err)
	}
	_, err = tr.post(context.Background(), "http://"+addr+"/hook/AbC0123456789xyzW?sig=zz9988776655", "application/json", []byte("[]"), nil)
	if err == nil {
		t.Fatal("post to a closed port succeeded")
	}
	msg := err.Error()
	if !strings.Contains(msg, "http://"+addr) || strings.Contains(msg, "AbC0123") || strings.Contains(msg, "zz9988") || strings.Contains(msg, "/hook") {
		t.Errorf("error = %q, want the receiver as http://%s and no path or query", msg, addr)
	}
}

// TestCheckHTTPURL: a URL in the policy carrying a secret is refused and
// pointed to url_file; url_file may hold it.
func TestCheckHTTPURL(t *testing.T) {
	for _, tc := range []struct {
		url      string
		fromFile bool
		want     string // "" accepted, else a word of the refusal
	}{
		{"https://es.example:9200", false, ""},
		{"http://127.0.0.1:8088/services/collector/event", false, ""},
		{"https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX", false, ""}, // letters only: not key-like
		{"https://hooks.slack.com/services/T00000000/B00000000/a1B2c3D4e5F6g7H8i9J0k1L2", false, "url_file"},
		{"https://discord.com/api/webhooks/123456789012345678/AbCdEf0123456789-_xyz", false, "url_file"},
		{"https://receiver.example/hook?token=abc", false, "url_file"},
		{"https://user:pw@receiver.example/", false, "credentials"},
		{"https://receiver.example/hook?token=abc", true, ""},
		{"https://hooks.slack.com/services/T00000000/B00000000/a1B2c3D4e5F6g7H8i9J0k1L2", true, ""},
		{"https://user:pw@receiver.example/", true, "credentials"},
		{"ftp://receiver.example/", true, "http"},
	} {
		got := CheckHTTPURL(tc.url, tc.fromFile)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("CheckHTTPURL(%q, %v) = %q, want %q", tc.url, tc.fromFile, got, tc.want)
		}
		if got != "" && strings.Contains(got, "a1B2c3") {
			t.Errorf("CheckHTTPURL(%q) = %q shows the key", tc.url, got)
		}
	}
}
