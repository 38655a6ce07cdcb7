package sink

import (
	"errors"
	"net/url"
	"slices"
	"strings"
)

// Secrets are redacted by construction: an HTTP sink never puts its URL
// in an error or a log line, only displayURL (scheme, host and port), and
// every receiver answer or transport error it reports goes through its
// redactor first, which knows the sink's configured secrets.

// redacted replaces a secret.
const redacted = "[redacted]"

// minSecret is the shortest configured value taken for a secret: shorter
// ones (a "v1" path, a "1" query value) would redact ordinary words.
const minSecret = 6

// minFragment is the shortest piece of a secret removed when it is seen
// alone (a receiver echoing a cut Authorization header).
const minFragment = 8

// displayURL is u as logs may show it: scheme, host and port; no user
// information, path or query.
func displayURL(u *url.URL) string {
	return u.Scheme + "://" + u.Host
}

// redactor removes a sink's secrets from text.
type redactor struct {
	// secrets, longest first, each with its escaped spellings.
	secrets []string
}

// newRedactor knows the token, the configured URL's user information,
// query values and path segments, and the configured header values.
func newRedactor(u *url.URL, token string, headers map[string]string) *redactor {
	var raw []string
	add := func(s string) {
		if len(s) >= minSecret {
			raw = append(raw, s)
		}
	}
	add(token)
	if u != nil {
		if u.User != nil {
			add(u.User.String())
			p, _ := u.User.Password()
			add(p)
		}
		add(u.RawQuery)
		for _, vs := range u.Query() {
			for _, v := range vs {
				add(v)
			}
		}
		if len(u.EscapedPath()) > 1 {
			add(u.EscapedPath())
			add(u.Path)
		}
		for seg := range strings.SplitSeq(u.Path, "/") {
			add(seg)
		}
	}
	for _, v := range headers {
		add(v)
	}
	r := &redactor{}
	for _, s := range raw {
		r.secrets = append(r.secrets, s, url.QueryEscape(s), url.PathEscape(s), strings.ReplaceAll(s, "/", `\/`))
	}
	slices.SortFunc(r.secrets, func(a, b string) int { return len(b) - len(a) })
	r.secrets = slices.Compact(r.secrets)
	return r
}

// String is s with every secret, and every piece of minFragment bytes or
// more of a secret, replaced.
func (r *redactor) String(s string) string {
	if r == nil || len(r.secrets) == 0 {
		return s
	}
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, redacted)
	}
	return r.fragments(s)
}

// fragments replaces any run of s of minFragment bytes or more that is
// also in a secret: a receiver may echo a cut or wrapped piece.
func (r *redactor) fragments(s string) string {
	var b strings.Builder
	last := 0
	for i := 0; i+minFragment <= len(s); {
		n := 0
		for _, sec := range r.secrets {
			if len(sec) < minFragment || !strings.Contains(sec, s[i:i+minFragment]) {
				continue
			}
			l := minFragment
			for i+l < len(s) && strings.Contains(sec, s[i:i+l+1]) {
				l++
			}
			n = max(n, l)
		}
		if n == 0 {
			i++
			continue
		}
		b.WriteString(s[last:i])
		b.WriteString(redacted)
		i += n
		last = i
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// redactedError is an error whose text is redacted; errors.Is and As still
// see what it wraps (timeouts, ErrPermanent), and nothing prints that.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redactErr is err with its text redacted, and a *url.Error's URL shown
// as display.
func (r *redactor) redactErr(err error, display string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) {
		msg = ue.Op + " " + display + ": " + ue.Err.Error()
	}
	return &redactedError{msg: r.String(msg), err: err}
}
