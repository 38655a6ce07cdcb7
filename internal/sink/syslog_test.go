package sink

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/leodido/go-syslog/v4/rfc5424"

	"github.com/encwatch/encwatch/detect"
)

func parse5424(t *testing.T, msg []byte) *rfc5424.SyslogMessage {
	t.Helper()
	m, err := rfc5424.NewParser().Parse(msg)
	if err != nil {
		t.Fatalf("RFC 5424 parse of %q: %v", msg, err)
	}
	return m.(*rfc5424.SyslogMessage)
}

func TestSyslogTruncation(t *testing.T) {
	a := hostileAlert()
	a.Event.Argv = append(a.Event.Argv, strings.Repeat("é", 2000)) // 4000 bytes
	for _, max := range []int{480, 1000, 1001, 2048} {
		s, err := NewSyslog(discardLog(), "s", SyslogOptions{Address: "udp://127.0.0.1:1", MaxMessage: max})
		if err != nil {
			t.Fatal(err)
		}
		msg := s.AppendMessage(nil, &a)
		if len(msg) > max || len(msg) < max-3 {
			t.Errorf("max %d: message of %d bytes, want at most %d and no more than 3 under", max, len(msg), max)
		}
		if !utf8.Valid(msg) {
			t.Errorf("max %d: truncated message is not UTF-8", max)
		}
		m := parse5424(t, msg)
		full := len(AppendJSON(nil, &a))
		if got, want := (*m.StructuredData)[sdID]["truncated"], strconv.Itoa(full); got != want {
			t.Errorf("max %d: truncated=%q, want %q", max, got, want)
		}
		if (*m.StructuredData)[sdID]["id"] != a.ID {
			t.Errorf("max %d: the header lost the id", max)
		}
	}
	s, _ := NewSyslog(discardLog(), "s", SyslogOptions{Address: "udp://127.0.0.1:1", Format: "rfc3164", MaxMessage: 600})
	msg := s.AppendMessage(nil, &a)
	if len(msg) > 600 || !bytes.HasSuffix(msg, []byte(" [truncated]")) || !bytes.HasPrefix(msg, []byte("<107>")) {
		t.Errorf("rfc3164 truncated message (%d bytes) = %q", len(msg), msg)
	}
}

func TestSDParamEscaping(t *testing.T) {
	tests := []struct{ in, want string }{
		{`a"b\c]d`, ` k="a\"b\\c\]d"`},
		{"nl\nbad\xff", ` k="nl` + "\uFFFD" + `bad` + "\uFFFD" + `"`},
	}
	for _, tt := range tests {
		if got := string(appendSDParam(nil, "k", tt.in)); got != tt.want {
			t.Errorf("appendSDParam(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// readOctetCounted reads RFC 6587 octet-counted frames.
func readOctetCounted(r *bufio.Reader) ([]byte, error) {
	n, err := r.ReadString(' ')
	if err != nil {
		return nil, err
	}
	size, err := strconv.Atoi(strings.TrimSuffix(n, " "))
	if err != nil || size <= 0 {
		return nil, fmt.Errorf("bad frame length %q", n)
	}
	msg := make([]byte, size)
	_, err = io.ReadFull(r, msg)
	return msg, err
}

// TestSyslogTCPReconnect checks octet-counted framing and that the sink
// dials once, then again only after the receiver dropped the connection.
func TestSyslogTCPReconnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conns := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
		}
	}()
	s, err := NewSyslog(discardLog(), "s", SyslogOptions{Address: "tcp://" + ln.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 3 {
		if err := s.Send(t.Context(), []detect.Alert{alertN(2 * i), alertN(2*i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	c := <-conns
	r := bufio.NewReader(c)
	for i := range 6 {
		msg, err := readOctetCounted(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := (*parse5424(t, msg).StructuredData)[sdID]["id"]; got != strconv.Itoa(i) {
			t.Errorf("message %d has id %q", i, got)
		}
	}
	if len(conns) != 0 {
		t.Errorf("%d more connections for 3 batches, want one connection", len(conns))
	}
	c.Close()                         // the receiver restarts
	time.Sleep(50 * time.Millisecond) // let the FIN arrive; not a timeout wait
	if err := s.Send(t.Context(), []detect.Alert{alertN(6)}); err != nil {
		t.Fatalf("Send after the peer closed = %v, want a reconnect", err)
	}
	c = <-conns
	msg, err := readOctetCounted(bufio.NewReader(c))
	if err != nil {
		t.Fatal(err)
	}
	if got := (*parse5424(t, msg).StructuredData)[sdID]["id"]; got != "6" {
		t.Errorf("after reconnect got id %q, want 6", got)
	}
}

// FuzzSyslogFraming checks that any alert id, signature and argv give one
// RFC 5424 message that parses back, and one octet-counted frame.
func FuzzSyslogFraming(f *testing.F) {
	f.Add("id", "sig", "arg", 2048)
	f.Add(`"]\`, "x]y", "\n<13>1 2026-01-01T00:00:00Z host app - - - forged", 480)
	f.Add("\xff", "\x00", strings.Repeat("\xe2\x82\xac", 400), 600)
	f.Fuzz(func(t *testing.T, id, sig, arg string, max int) {
		max = 480 + (max&0xffff)%8000
		s, err := NewSyslog(discardLog(), "s", SyslogOptions{Address: "tcp://127.0.0.1:1", MaxMessage: max})
		if err != nil {
			t.Fatal(err)
		}
		a := testAlert()
		a.ID, a.Signature.Name = id, sig
		a.Event.Argv = []string{arg}
		msg := s.AppendMessage(nil, &a)
		if len(msg) > max && len(msg) > 480 {
			// Only a header longer than max may exceed it.
			m := parse5424(t, msg)
			if m.Message != nil && *m.Message != "" {
				t.Fatalf("message of %d bytes over max %d with a payload", len(msg), max)
			}
		}
		m := parse5424(t, msg)
		if !utf8.ValidString((*m.StructuredData)[sdID]["id"]) {
			t.Fatal("SD id not UTF-8")
		}
		if bytes.ContainsAny(msg, "\n\r\x00") {
			t.Fatalf("message holds a line break or NUL: %q", msg)
		}
		frame := appendOctetCounted(nil, msg)
		got, err := readOctetCounted(bufio.NewReader(bytes.NewReader(frame)))
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("frame round trip = %q, %v", got, err)
		}
	})
}

// testCerts writes a CA and a server certificate for 127.0.0.1 and
// localhost into dir.
func testCerts(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "encwatch test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(srvKey)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("cert.pem", "CERTIFICATE", srvDER), write("key.pem", "EC PRIVATE KEY", keyDER)
}

func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestSyslogRealRsyslog needs Debian's rsyslogd and rsyslog-gnutls: it
// starts one on loopback ports (UDP, plain TCP, TLS), sends hostile alerts
// through the syslog sink over each and checks rsyslog wrote every one
// exactly once, intact.
func TestSyslogRealRsyslog(t *testing.T) {
	rsyslogd, err := exec.LookPath("rsyslogd")
	if err != nil {
		rsyslogd = "/usr/sbin/rsyslogd"
	}
	if _, err := os.Stat(rsyslogd); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("rsyslogd not installed (needs packages rsyslog rsyslog-gnutls): %v", err)
		}
		t.Skip("!!! SKIPPED: rsyslogd not installed (apt-get install rsyslog rsyslog-gnutls); the real-syslog test did not run")
	}
	dir := t.TempDir()
	ca, cert, key := testCerts(t, dir)
	udpPort, tcpPort, tlsPort := freePort(t, "udp"), freePort(t, "tcp"), freePort(t, "tcp")
	out := filepath.Join(dir, "out.log")
	unixSock := filepath.Join(dir, "log.sock") // a /dev/log of the test's own
	conf := fmt.Sprintf(`
global(workDirectory=%q maxMessageSize="64k"
       DefaultNetstreamDriver="gtls"
       DefaultNetstreamDriverCAFile=%q DefaultNetstreamDriverCertFile=%q DefaultNetstreamDriverKeyFile=%q)
module(load="imuxsock" SysSock.Use="off")
module(load="imudp")
module(load="imptcp")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
template(name="raw" type="string" string="%%rawmsg%%\n")
ruleset(name="out") { action(type="omfile" file=%q template="raw") }
input(type="imuxsock" Socket=%q Ruleset="out")
input(type="imudp" address="127.0.0.1" port="%d" ruleset="out")
input(type="imptcp" address="127.0.0.1" port="%d" ruleset="out")
input(type="imtcp" address="127.0.0.1" port="%d" ruleset="out")
`, dir, ca, cert, key, out, unixSock, udpPort, tcpPort, tlsPort)
	confPath := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(rsyslogd, "-n", "-f", confPath, "-i", filepath.Join(dir, "rsyslogd.pid"))
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start rsyslogd: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	for _, port := range []int{tcpPort, tlsPort} {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("rsyslogd does not listen on %s: %v\n%s", addr, err, stderr.String())
			}
			time.Sleep(20 * time.Millisecond) // polling for start-up
		}
	}

	// countLines polls rsyslog's output until it holds want lines, so that a
	// burst never overruns the UDP socket's receive buffer: UDP itself
	// loses what the receiver cannot take, which is not what this tests.
	countLines := func(want int) int {
		deadline := time.Now().Add(10 * time.Second)
		for {
			b, _ := os.ReadFile(out)
			got := bytes.Count(b, []byte("\n"))
			if got >= want || time.Now().After(deadline) {
				return got
			}
			time.Sleep(5 * time.Millisecond) // polling rsyslog's output
		}
	}
	sent := 0
	const n = 50
	transports := []struct {
		name string
		opts SyslogOptions
	}{
		{"unix", SyslogOptions{Address: "unix://" + unixSock, Format: "rfc5424", MaxMessage: 16384}},
		{"udp", SyslogOptions{Address: fmt.Sprintf("udp://127.0.0.1:%d", udpPort), MaxMessage: 16384}},
		{"tcp", SyslogOptions{Address: fmt.Sprintf("tcp://127.0.0.1:%d", tcpPort)}},
		{"tls", SyslogOptions{Address: fmt.Sprintf("tls://127.0.0.1:%d", tlsPort), TLS: TLSOptions{CAFile: ca}}},
		{"tls-cef", SyslogOptions{Address: fmt.Sprintf("tls://localhost:%d", tlsPort), TLS: TLSOptions{CAFile: ca}, Payload: allFormats["cef"]}},
	}
	want := map[string]string{} // id -> payload format
	for _, tr := range transports {
		s, err := NewSyslog(discardLog(), tr.name, tr.opts)
		if err != nil {
			t.Fatal(err)
		}
		var batch []detect.Alert
		for i := range n {
			a := hostileAlert()
			a.ID = fmt.Sprintf("%s-%d", tr.name, i)
			want[a.ID] = tr.name
			batch = append(batch, a)
			if len(batch) == 10 {
				if err := s.Send(t.Context(), batch); err != nil {
					t.Fatalf("%s: Send = %v\n%s", tr.name, err, stderr.String())
				}
				sent += len(batch)
				batch = batch[:0]
				countLines(sent)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// A truncated message arrives whole and marked.
	s, _ := NewSyslog(discardLog(), "trunc", SyslogOptions{Address: fmt.Sprintf("tcp://127.0.0.1:%d", tcpPort), MaxMessage: 700})
	big := hostileAlert()
	big.ID = "trunc"
	if err := s.Send(t.Context(), []detect.Alert{big}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	var lines [][]byte
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(out)
		lines = bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
		if len(lines) >= len(want)+1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling rsyslog's output
	}
	seen := map[string]int{}
	for _, line := range lines {
		m := parse5424(t, line)
		id := (*m.StructuredData)[sdID]["id"]
		seen[id]++
		if id == "trunc" {
			if (*m.StructuredData)[sdID]["truncated"] == "" || len(line) > 700 {
				t.Errorf("truncated message = %q", line)
			}
			continue
		}
		name := "json"
		if want[id] == "tls-cef" {
			name = "cef"
		}
		if m.Message == nil {
			t.Fatalf("%s: no MSG", id)
		}
		if got := recoverArgv(t, name, []byte(*m.Message)); !slices.Equal(got, hostileArgv) {
			t.Errorf("%s: argv = %q, want %q", id, got, hostileArgv)
		}
		if name == "json" {
			var doc struct{ ID string }
			_ = json.Unmarshal([]byte(*m.Message), &doc)
			if doc.ID != id {
				t.Errorf("payload id %q in the message with SD id %q", doc.ID, id)
			}
		}
	}
	want["trunc"] = "tcp"
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("alert %s arrived %d times, want once", id, seen[id])
		}
	}
	if len(seen) != len(want) {
		t.Errorf("rsyslog wrote %d distinct alerts, want %d", len(seen), len(want))
	}
	t.Logf("rsyslog received %d messages over a unix socket, udp, tcp and tls", len(lines))
}
