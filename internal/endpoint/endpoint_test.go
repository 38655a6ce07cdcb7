package endpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

func testLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

// ok answers every request "ok".
var ok = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })

// serve starts e serving ok until the test ends.
func serve(t *testing.T, e *Endpoint) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Serve(ctx, ok, testLog()); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// TestLimitListener: connections past the total cap are closed at once,
// and a closed one frees its slot.
func TestLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := newLimitListener(inner, 2, 100, nil)
	defer ln.Close()
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := dial(), dial()
	first := <-accepted
	<-accepted
	extra := dial()
	extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := extra.Read(make([]byte, 1)); err == nil {
		t.Errorf("read on the connection past the cap = %d, nil; want it closed", n)
	}
	if open, _, _ := ln.counts(""); open != 2 {
		t.Errorf("open = %d, want 2", open)
	}
	first.Close()
	first.Close() // a second Close gives nothing back
	c := dial()
	select {
	case <-accepted:
	case <-time.After(5 * time.Second):
		t.Errorf("no connection accepted after one closed")
	}
	if open, _, _ := ln.counts(""); open != 2 {
		t.Errorf("open after close and accept = %d, want 2", open)
	}
	for _, x := range []net.Conn{a, b, extra, c} {
		x.Close()
	}
}

// TestPerClientCap: one client past its own cap is refused while another
// client still gets in under the total.
func TestPerClientCap(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The key is the connection's source port parity: two clients.
	key := func(c net.Conn) string {
		return strconv.Itoa(c.RemoteAddr().(*net.TCPAddr).Port % 2)
	}
	ln := newLimitListener(inner, 10, 2, key)
	defer ln.Close()
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	var conns []net.Conn
	for range 12 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		open, _, refused := ln.counts("")
		if open+int(refused) == 12 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("accepted %d and refused %d of 12 within 5 s", open, refused)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, k := range []string{"0", "1"} {
		if _, n, _ := ln.counts(k); n > 2 {
			t.Errorf("client %s holds %d connections, want at most 2", k, n)
		}
	}
	if open, _, _ := ln.counts(""); open > 4 {
		t.Errorf("open = %d, want at most 4 (2 clients × 2)", open)
	}
	for _, c := range conns {
		c.Close()
	}
	mu.Lock()
	for _, c := range held {
		c.Close()
	}
	mu.Unlock()
}

// TestClientKeyLoopbackUID: a loopback client is keyed by the uid that
// owns its socket (sock_diag), so that users sharing 127.0.0.1 are capped
// apart; a unix client by SO_PEERCRED.
func TestClientKeyLoopbackUID(t *testing.T) {
	want := "uid:" + strconv.Itoa(os.Geteuid())
	for _, network := range []string{"tcp4", "tcp6", "unix"} {
		addr := "127.0.0.1:0"
		switch network {
		case "tcp6":
			addr = "[::1]:0"
		case "unix":
			addr = filepath.Join(t.TempDir(), "s")
		}
		ln, err := net.Listen(network, addr)
		if err != nil {
			if network == "tcp6" {
				t.Logf("no IPv6 loopback: %v", err)
				continue
			}
			t.Fatal(err)
		}
		c, err := net.Dial(network, ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if got := clientKey(s); got != want {
			t.Errorf("%s: clientKey = %q, want %q", network, got, want)
		}
		c.Close()
		s.Close()
		ln.Close()
	}
}

// TestParseDiagReply: a reply too short or of another type is no uid.
func TestParseDiagReply(t *testing.T) {
	if _, ok := parseDiagReply(make([]byte, 8)); ok {
		t.Errorf("a short reply gave a uid")
	}
	b := make([]byte, 100)
	b[0] = 100
	b[4] = 2 // NLMSG_ERROR
	if _, ok := parseDiagReply(b); ok {
		t.Errorf("an error reply gave a uid")
	}
}

// TestListenTaken: a taken port fails with the address, and the holder
// when /proc tells.
func TestListenTaken(t *testing.T) {
	holder, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	e, err := Listen(Config{Name: "metrics", Address: holder.Addr().String()})
	if err == nil {
		e.Close()
		t.Fatalf("Listen(%s) = nil error, want in use", holder.Addr())
	}
	for _, want := range []string{holder.Addr().String(), "already in use", "held by pid " + strconv.Itoa(os.Getpid())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error = %q, want %q in it", err, want)
		}
	}
}

// TestProbeSocket: the probe socket is 0600, answers, names its holder to
// a second daemon, is removed on close, and replaces a stale socket but no
// other file; a directory others can write is refused.
func TestProbeSocket(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	path := filepath.Join(dir, "probe.sock")
	e, err := Listen(Config{Name: "metrics", ProbeSocket: path})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("probe socket mode = %v, want a socket 0600", fi.Mode())
	}
	if di, _ := os.Stat(dir); di.Mode().Perm() != 0o755 {
		t.Errorf("probe directory mode = %v, want 0755", di.Mode().Perm())
	}
	if e.Addr() != nil {
		t.Errorf("Addr() = %v, want nil (no TCP address)", e.Addr())
	}
	serve(t, e)
	resp, err := ProbeClient(path, 5*time.Second).Get("http://probe/healthz")
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok\n" {
		t.Errorf("probe answered %q, want ok", body)
	}

	_, err = Listen(Config{Name: "metrics", ProbeSocket: path})
	if !errors.Is(err, ErrProbeInUse) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Errorf("second Listen = %v, want ErrProbeInUse naming pid %d", err, os.Getpid())
	}

	e.Close()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("probe socket still there after Close: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("probe directory holds %d entries after Close, want none", len(ents))
	}

	// A stale socket (its listener gone without removing it) is replaced.
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	e2, err := Listen(Config{ProbeSocket: path})
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	e2.Close()

	// A regular file is not replaced.
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(Config{ProbeSocket: path}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen over a regular file = %v, want refused", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "x" {
		t.Errorf("the regular file was changed to %q", b)
	}
	os.Remove(path)

	// A directory others can write is refused.
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(Config{ProbeSocket: path}); err == nil || !strings.Contains(err.Error(), "writable") {
		t.Errorf("Listen in a 0777 directory = %v, want refused", err)
	}
	// A symlinked directory is refused.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	if _, err := Listen(Config{ProbeSocket: filepath.Join(link, "probe.sock")}); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Listen in a symlinked directory = %v, want refused", err)
	}
}

// TestIdleClientsDoNotStarveProbe: a client holding idle connections up
// to every cap of the TCP listener leaves the probe socket answering, and
// the idle ones are cut after the header timeout.
func TestIdleClientsDoNotStarveProbe(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "probe.sock")
	e, err := Listen(Config{Name: "metrics", Address: "127.0.0.1:0", ProbeSocket: path, MaxConns: 4, MaxPerClient: 4})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, e)
	var idle []net.Conn
	for range 50 {
		c, err := net.Dial("tcp", e.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	client := ProbeClient(path, 5*time.Second)
	for i := range 10 {
		resp, err := client.Get("http://probe/healthz")
		if err != nil {
			t.Fatalf("probe %d with the TCP listener full: %v", i, err)
		}
		resp.Body.Close()
	}
	// Every idle connection is closed by now or within the header timeout.
	for i, c := range idle {
		c.SetReadDeadline(time.Now().Add(readHeaderTimeout + 5*time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("idle connection %d: read = %v, want closed by the server", i, err)
		}
	}
}

// TestServeLogsProbePath: the log names the probe socket by the path a
// client uses, not the private name it was bound under before the rename.
func TestServeLogsProbePath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "probe.sock")
	e, err := Listen(Config{Name: "metrics", ProbeSocket: path})
	if err != nil {
		t.Fatal(err)
	}
	lg, hook := logtest.NewNullLogger()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Serve logs what it serves, then shuts down at once
	e.Serve(ctx, ok, logrus.NewEntry(lg))
	var got []string
	for _, en := range hook.AllEntries() {
		if p, found := en.Data["probe_socket"]; found {
			got = append(got, fmt.Sprint(p))
		}
	}
	if len(got) != 1 || got[0] != path {
		t.Errorf("logged probe_socket %q, want [%q]", got, path)
	}
}
