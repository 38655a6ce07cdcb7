package sink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/detect"
)

// TLSOptions configure a TLS client (syslog over TLS, HTTPS).
type TLSOptions struct {
	CAFile     string // PEM CA bundle; "" means the system roots
	CertFile   string // PEM client certificate, for mutual TLS
	KeyFile    string // its PEM private key
	ServerName string // the name to verify; "" means the address's host
	// InsecureSkipVerify turns off the verification of the server's
	// certificate. It must be set explicitly; never the default.
	InsecureSkipVerify bool
}

// Config builds the tls.Config: TLS 1.2 at least, peers verified unless
// InsecureSkipVerify; defaultServerName is verified when ServerName is "".
// The files are read by the rules of readTrustedFile.
func (o TLSOptions) Config(defaultServerName string) (*tls.Config, error) {
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         o.ServerName,
		InsecureSkipVerify: o.InsecureSkipVerify,
	}
	if c.ServerName == "" {
		c.ServerName = defaultServerName
	}
	if o.CAFile != "" {
		pem, err := readTrustedFile(o.CAFile, "tls: ca file", false)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: ca file %s: no PEM certificate", o.CAFile)
		}
		c.RootCAs = pool
	}
	if o.CertFile != "" || o.KeyFile != "" {
		certPEM, err := readTrustedFile(o.CertFile, "tls: cert file", false)
		if err != nil {
			return nil, err
		}
		keyPEM, err := readTrustedFile(o.KeyFile, "tls: key file", true)
		if err != nil {
			return nil, err
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			// The error names the files; crypto/tls's never quote their content.
			return nil, fmt.Errorf("tls: client certificate %s, key %s: %w", o.CertFile, o.KeyFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// SyslogOptions configure a Syslog sink.
type SyslogOptions struct {
	// Address is unix:///dev/log, udp://HOST:PORT, tcp://HOST:PORT or
	// tls://HOST:PORT.
	Address string
	// Format is "rfc5424" (the default, except on unix://) or "rfc3164"
	// (the default on unix://, which is what local syslog daemons and
	// journald parse best).
	Format string
	// Payload encodes each alert into the message (default AppendJSON).
	Payload Format
	// Facility is the syslog facility number (RFC 5424 section 6.2.1;
	// default 13, "log audit"); Severity follows the alert's importance.
	Facility int
	AppName  string // APP-NAME (default "encwatch")
	Hostname string // HOSTNAME (default the alert's Host, else os.Hostname)
	// MaxMessage bounds one message, header included, in bytes (default
	// 2048 for udp and unix, 8192 for tcp and tls). A longer message has
	// its payload cut (at a UTF-8 boundary) and is marked truncated: it is
	// never split in two.
	MaxMessage int
	TLS        TLSOptions
	Timeout    time.Duration // dial and write timeout (default 10s)
}

// Syslog sends alerts to a syslog receiver, one message each.
//
// It connects on the first Send and keeps the connection; after a failure
// it drops the connection and the next Send (the router's retry, after its
// backoff) dials again: never a dial per alert. Over TCP and TLS messages
// are framed by octet counting (RFC 6587 section 3.4.1, RFC 5425 section
// 4.3); over UDP and unix datagram sockets each is one datagram; over a
// unix stream socket (the fallback when /dev/log is not a datagram socket)
// each ends with LF, which no message contains.
//
// Concurrency: Send and Close are called from one goroutine (the sink's
// delivery worker), Close after the last Send.
type Syslog struct {
	name    string
	log     *logrus.Entry
	opts    SyslogOptions
	network string // "unix", "udp", "tcp", "tls"
	addr    string
	tls     *tls.Config
	now     func() time.Time
	pid     string

	conn   net.Conn
	stream bool // conn is a byte stream: framing applies
	buf    []byte
	msg    []byte
	pay    []byte
}

var _ Sink = (*Syslog)(nil)

// Facility and severity numbers, RFC 5424 section 6.2.1.
const (
	facilityLogAudit = 13
	sevCritical      = 2
	sevError         = 3
	sevWarning       = 4
	sevNotice        = 5
	sevInfo          = 6
)

// NewSyslog returns a syslog sink named name. It checks the options and
// loads TLS files but does not connect.
func NewSyslog(log *logrus.Entry, name string, opts SyslogOptions) (*Syslog, error) {
	u, err := url.Parse(opts.Address)
	if err != nil {
		return nil, fmt.Errorf("sink %q: address: %w", name, err)
	}
	s := &Syslog{name: name, log: log, opts: opts, network: u.Scheme, now: time.Now, pid: strconv.Itoa(os.Getpid())}
	switch u.Scheme {
	case "unix", "unixgram":
		s.network, s.addr = "unix", u.Path
		if s.addr == "" {
			s.addr = "/dev/log"
		}
	case "udp", "tcp", "tls":
		if _, _, err := net.SplitHostPort(u.Host); err != nil {
			return nil, fmt.Errorf("sink %q: address %q: want %s://HOST:PORT", name, opts.Address, u.Scheme)
		}
		s.addr = u.Host
	default:
		return nil, fmt.Errorf("sink %q: address %q: want unix://, udp://, tcp:// or tls://", name, opts.Address)
	}
	if s.opts.Format == "" {
		s.opts.Format = "rfc5424"
		if s.network == "unix" {
			s.opts.Format = "rfc3164"
		}
	}
	if s.opts.Format != "rfc5424" && s.opts.Format != "rfc3164" {
		return nil, fmt.Errorf("sink %q: format %q: want \"rfc5424\" or \"rfc3164\"", name, s.opts.Format)
	}
	if s.opts.Payload == nil {
		s.opts.Payload = AppendJSON
	}
	if s.opts.Facility == 0 {
		s.opts.Facility = facilityLogAudit
	}
	if s.opts.Facility < 0 || s.opts.Facility > 23 {
		return nil, fmt.Errorf("sink %q: facility %d: want 0 to 23", name, s.opts.Facility)
	}
	if s.opts.AppName == "" {
		s.opts.AppName = "encwatch"
	}
	if s.opts.MaxMessage <= 0 {
		s.opts.MaxMessage = 8192
		if s.network == "udp" || s.network == "unix" {
			// RFC 5426 section 3.2: receivers must take 480 bytes, should
			// take 2048; larger datagrams fragment or are refused.
			s.opts.MaxMessage = 2048
		}
	}
	if s.opts.MaxMessage < 480 {
		return nil, fmt.Errorf("sink %q: max_message %d: want at least 480 (RFC 5424 section 6.1)", name, s.opts.MaxMessage)
	}
	if s.opts.Timeout <= 0 {
		s.opts.Timeout = 10 * time.Second
	}
	if s.network == "tls" {
		host, _, _ := net.SplitHostPort(s.addr)
		if s.tls, err = opts.TLS.Config(host); err != nil {
			return nil, fmt.Errorf("sink %q: %w", name, err)
		}
	}
	return s, nil
}

// Name returns the sink's configured name.
func (s *Syslog) Name() string { return s.name }

// Send writes one message per alert. On a write error it closes the
// connection and returns the error: the router retries the whole batch, so
// a receiver may see an alert twice (at least once), never half of one.
func (s *Syslog) Send(ctx context.Context, alerts []detect.Alert) error {
	if err := s.connect(ctx); err != nil {
		return fmt.Errorf("sink %q: %w", s.name, err)
	}
	deadline := s.now().Add(s.opts.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = s.conn.SetWriteDeadline(deadline)
	s.buf = s.buf[:0]
	for i := range alerts {
		s.msg = s.AppendMessage(s.msg[:0], &alerts[i])
		if !s.stream {
			if _, err := s.conn.Write(s.msg); err != nil {
				s.drop()
				return fmt.Errorf("sink %q: write: %w", s.name, err)
			}
			continue
		}
		if s.network == "unix" {
			s.buf = append(append(s.buf, s.msg...), '\n')
		} else {
			s.buf = appendOctetCounted(s.buf, s.msg)
		}
	}
	if s.stream {
		if _, err := s.conn.Write(s.buf); err != nil {
			s.drop()
			return fmt.Errorf("sink %q: write: %w", s.name, err)
		}
	}
	return nil
}

// appendOctetCounted frames msg as RFC 6587 section 3.4.1 (and RFC 5425
// section 4.3) say: MSG-LEN SP SYSLOG-MSG.
func appendOctetCounted(dst, msg []byte) []byte {
	dst = strconv.AppendInt(dst, int64(len(msg)), 10)
	dst = append(dst, ' ')
	return append(dst, msg...)
}

// connect dials if there is no connection, and for a stream connection
// first checks that the peer has not closed it: a syslog receiver never
// writes, so a readable EOF or error means it is gone, and writing would
// only fill the kernel's buffer.
func (s *Syslog) connect(ctx context.Context) error {
	if s.conn != nil && s.stream && peerClosed(s.conn) {
		s.log.Info("syslog peer closed the connection; reconnecting")
		s.drop()
	}
	if s.conn != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	var d net.Dialer
	var err error
	switch s.network {
	case "unix":
		s.conn, err = d.DialContext(ctx, "unixgram", s.addr)
		s.stream = false
		if errors.Is(err, syscall.EPROTOTYPE) {
			s.conn, err = d.DialContext(ctx, "unix", s.addr)
			s.stream = true
		}
	case "udp":
		s.conn, err = d.DialContext(ctx, "udp", s.addr)
		s.stream = false
	case "tcp":
		s.conn, err = d.DialContext(ctx, "tcp", s.addr)
		s.stream = true
	case "tls":
		td := tls.Dialer{NetDialer: &d, Config: s.tls}
		s.conn, err = td.DialContext(ctx, "tcp", s.addr)
		s.stream = true
	}
	if err != nil {
		s.conn = nil
		return fmt.Errorf("connect: %w", err)
	}
	s.log.WithField("address", s.opts.Address).Info("syslog connected")
	return nil
}

// peerClosed peeks at a stream connection without blocking: a receiver
// never writes, so EOF or an error means it is gone. (TLS records such as
// session tickets are data: the peer is alive.)
func peerClosed(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	closed := false
	err = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		closed = n == 0 && err == nil || err != nil && err != syscall.EAGAIN && err != syscall.EINTR
		return true // never wait
	})
	return closed || err != nil
}

func (s *Syslog) drop() {
	if s.conn != nil {
		_ = s.conn.Close()
		s.conn = nil
	}
}

// Close closes the connection, if any.
func (s *Syslog) Close() error {
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	if err != nil {
		return fmt.Errorf("sink %q: close: %w", s.name, err)
	}
	return nil
}

// syslogSeverity maps an importance to a syslog severity.
func syslogSeverity(i detect.Importance) int {
	switch {
	case i >= detect.Critical:
		return sevCritical
	case i >= detect.High:
		return sevError
	case i >= detect.Medium:
		return sevWarning
	case i >= detect.Low:
		return sevNotice
	}
	return sevInfo
}

// AppendMessage appends the syslog message for a (without framing) to dst,
// in the sink's format, at most MaxMessage bytes long.
func (s *Syslog) AppendMessage(dst []byte, a *detect.Alert) []byte {
	s.pay = s.opts.Payload(s.pay[:0], a)
	host := s.opts.Hostname
	if host == "" {
		host = a.Host
	}
	if host == "" {
		host, _ = os.Hostname()
	}
	pri := s.opts.Facility*8 + syslogSeverity(a.Signature.Importance)
	if s.opts.Format == "rfc3164" {
		return appendRFC3164(dst, pri, a.Time, host, s.opts.AppName, s.pid, s.pay, s.opts.MaxMessage)
	}
	return appendRFC5424(dst, pri, a, host, s.opts.AppName, s.pid, s.pay, s.opts.MaxMessage)
}

// sdID is the structured data element's SD-ID: a private one under
// enterprise number 32473, which RFC 5612 reserves for documentation and
// examples (encwatch has no number of its own).
const sdID = "encwatch@32473"

// appendRFC5424 writes an RFC 5424 message:
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [encwatch@32473 id="…" sig="…" importance="…" mitre="…"] MSG
//
// MSGID is "alert". When the message would exceed max bytes, MSG is cut
// and the element gains truncated="N" (N the payload's full length), so the
// header and structured data stay whole and the record stays well formed.
func appendRFC5424(dst []byte, pri int, a *detect.Alert, host, app, procid string, payload []byte, max int) []byte {
	start := len(dst)
	dst = append(dst, '<')
	dst = strconv.AppendInt(dst, int64(pri), 10)
	dst = append(dst, ">1 "...)
	if a.Time.IsZero() {
		dst = append(dst, '-')
	} else {
		// RFC 5424 section 6.2.3: at most 6 fractional digits.
		dst = a.Time.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000000Z07:00")
	}
	dst = append(dst, ' ')
	dst = appendHeaderField(dst, host, 255)
	dst = append(dst, ' ')
	dst = appendHeaderField(dst, app, 48)
	dst = append(dst, ' ')
	dst = appendHeaderField(dst, procid, 128)
	dst = append(dst, " alert ["...)
	dst = append(dst, sdID...)
	dst = appendSDParam(dst, "id", a.ID)
	dst = appendSDParam(dst, "sig", a.Signature.Name)
	dst = appendSDParam(dst, "importance", a.Signature.Importance.String())
	if len(a.Signature.MITRE) > 0 {
		dst = appendSDParam(dst, "mitre", joinComma(a.Signature.MITRE))
	}
	if len(dst)-start+2+len(payload) <= max {
		dst = append(dst, "] "...)
		return append(dst, payload...)
	}
	dst = append(dst, ` truncated="`...)
	dst = strconv.AppendInt(dst, int64(len(payload)), 10)
	dst = append(dst, `"] `...)
	room := max - (len(dst) - start)
	if room < 0 {
		// Only a header longer than max: keep it whole and send no payload.
		return dst[:len(dst)-1]
	}
	return append(dst, cutUTF8(payload, room)...)
}

// appendRFC3164 writes a BSD syslog message (RFC 3164 section 4.1):
//
//	<PRI>Mmm dd hh:mm:ss HOSTNAME TAG[PID]: MSG
//
// in local time, as BSD syslog has no zone. An oversize MSG is cut and ends
// with " [truncated]".
func appendRFC3164(dst []byte, pri int, t time.Time, host, app, pid string, payload []byte, max int) []byte {
	start := len(dst)
	dst = append(dst, '<')
	dst = strconv.AppendInt(dst, int64(pri), 10)
	dst = append(dst, '>')
	if t.IsZero() {
		t = time.Now()
	}
	dst = t.Local().AppendFormat(dst, time.Stamp)
	dst = append(dst, ' ')
	dst = appendHeaderField(dst, host, 255)
	dst = append(dst, ' ')
	dst = appendHeaderField(dst, app, 32)
	dst = append(dst, '[')
	dst = append(dst, pid...)
	dst = append(dst, "]: "...)
	if len(dst)-start+len(payload) <= max {
		return append(dst, payload...)
	}
	const mark = " [truncated]"
	room := max - (len(dst) - start) - len(mark)
	if room < 0 {
		return dst
	}
	dst = append(dst, cutUTF8(payload, room)...)
	return append(dst, mark...)
}

// appendHeaderField writes a header field: PRINTUSASCII (33-126) only (RFC
// 5424 section 6), others replaced by '_', at most max bytes, "-" if empty.
func appendHeaderField(dst []byte, s string, max int) []byte {
	if s == "" {
		return append(dst, '-')
	}
	for i := 0; i < len(s) && i < max; i++ {
		c := s[i]
		if c < 33 || c > 126 {
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}

// appendSDParam writes ` name="value"`, escaping '"', '\' and ']' with a
// backslash (RFC 5424 section 6.3.3). PARAM-VALUE must be UTF-8, so a byte
// that is not becomes U+FFFD, as do control characters, which a line-based
// receiver could split on.
func appendSDParam(dst []byte, name, value string) []byte {
	dst = append(dst, ' ')
	dst = append(dst, name...)
	dst = append(dst, '=', '"')
	dst = appendSafe(dst, value, func(dst []byte, c byte) ([]byte, bool) {
		switch c {
		case '"', '\\', ']':
			return append(dst, '\\', c), true
		}
		return dst, false
	})
	return append(dst, '"')
}

// cutUTF8 returns the longest prefix of b of at most n bytes that does not
// end inside a UTF-8 sequence.
func cutUTF8(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	b = b[:n]
	// Step back over at most 3 continuation bytes to a rune start.
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			break
		}
	}
	return b
}

func joinComma(ss []string) string {
	n := 0
	for _, s := range ss {
		n += len(s) + 1
	}
	b := make([]byte, 0, n)
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, s...)
	}
	return string(b)
}
