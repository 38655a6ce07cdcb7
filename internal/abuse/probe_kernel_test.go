package abuse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/encwatch/encwatch/internal/audittest"
	"github.com/encwatch/encwatch/internal/endpoint"
)

// TestKernelHealthUnderHalfOpen needs root and the kernel audit: nobody
// holds 300 half-open connections to the metrics port (a request line and
// no end of headers, each reopened as soon as the daemon closes it), and
// every /healthz probe still answers, on the probe socket and on the TCP
// port, and so does `encwatch status` (they used to answer 0 of 30: the
// 64-connection cap was nobody's). nobody cannot connect to the probe
// socket at all.
func TestKernelHealthUnderHalfOpen(t *testing.T) {
	const conns, probes, statusRuns = 300, 30, 5
	f := setup(t)
	addr := freeAddr(t)
	// The probe socket's directory is one nobody may search, so that only
	// the socket's own mode keeps nobody out.
	probeDir, err := os.MkdirTemp("/run", "encwatch-probe-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(probeDir) })
	if err := os.Chmod(probeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	probe := filepath.Join(probeDir, "probe.sock")
	var confPath string
	d := startDaemonText(t, f, func(alerts string) []byte {
		confPath = filepath.Join(filepath.Dir(alerts), "config.hcl")
		conf := fmt.Appendf(nil, policy, audittest.Key(), addr, alerts)
		return bytes.Replace(conf, []byte("metrics {\n"), fmt.Appendf(nil, "metrics {\n  probe_socket = %q\n", probe), 1)
	})
	if fi, err := os.Lstat(probe); err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("probe socket: %v, %v; want a socket 0600 owned by root", fi, err)
	}

	t.Logf("attacker: %s", startHelper(t, f, "holding", "halfopen", addr, strconv.Itoa(conns), "60"))

	tcp := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	unix := endpoint.ProbeClient(probe, 5*time.Second)
	var lat = map[string][]time.Duration{}
	for i := range probes {
		for _, p := range []struct {
			name string
			c    *http.Client
			url  string
		}{{"tcp", tcp, "http://" + addr + "/healthz"}, {"unix", unix, "http://probe/healthz"}} {
			start := time.Now()
			resp, err := p.c.Get(p.url)
			if err != nil {
				t.Errorf("/healthz probe %d on %s with nobody's %d half-open connections: %v", i, p.name, conns, err)
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			lat[p.name] = append(lat[p.name], time.Since(start))
			if resp.StatusCode != http.StatusOK || string(body) != "ok\n" {
				t.Errorf("/healthz probe %d on %s = %d %q, want 200 ok", i, p.name, resp.StatusCode, body)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	for range statusRuns {
		start := time.Now()
		cmd := exec.Command(f.daemonBin, "status", "--config", confPath, "--key", audittest.Key())
		b, _ := cmd.CombinedOutput()
		lat["status"] = append(lat["status"], time.Since(start))
		if !strings.Contains(string(b), "daemon health (unix:"+probe+"): ok") {
			t.Errorf("encwatch status under attack:\n%s\nwant daemon health (unix:%s): ok", b, probe)
		}
	}
	for _, k := range []string{"tcp", "unix", "status"} {
		if len(lat[k]) == 0 {
			continue
		}
		slices.Sort(lat[k])
		t.Logf("%s: %d answered; median %v, max %v", k, len(lat[k]), lat[k][len(lat[k])/2].Round(time.Microsecond), lat[k][len(lat[k])-1].Round(time.Microsecond))
	}
	if n := len(lat["tcp"]) + len(lat["unix"]); n != 2*probes {
		t.Errorf("%d of %d probes answered", n, 2*probes)
	}

	// nobody cannot reach the probe socket.
	if b, err := helper(f, "dialunix", probe).CombinedOutput(); err == nil || !strings.Contains(string(b), "permission denied") {
		t.Errorf("nobody dialing the probe socket: %v %q, want permission denied", err, b)
	}
	checkPlainDecode(t, d, "halfopen-"+t.Name())
}

// halfOpen holds args[1] connections to addr (args[0]) for args[2]
// seconds, each with a request line and one header but never the end of
// the headers; a connection the server closes is opened again after
// 20 ms. It prints "holding N" once the first round is open.
func halfOpen(args []string) error {
	n, _ := strconv.Atoi(args[1])
	secs, _ := strconv.Atoi(args[2])
	deadline := time.Now().Add(time.Duration(secs) * time.Second)
	var wg sync.WaitGroup
	var mu sync.Mutex
	opened := 0
	first := make(chan struct{}, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			once := false
			for time.Now().Before(deadline) {
				c, err := net.DialTimeout("tcp", args[0], time.Second)
				if err == nil {
					fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: %s\r\n", args[0])
					mu.Lock()
					opened++
					mu.Unlock()
					if !once {
						once = true
						first <- struct{}{}
					}
					c.SetReadDeadline(deadline)
					io.Copy(io.Discard, c) // until the server closes it
					c.Close()
				} else if !once {
					once = true
					first <- struct{}{}
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	for range n {
		<-first
	}
	mu.Lock()
	fmt.Printf("holding %d connections (opened so far: %d)\n", n, opened)
	mu.Unlock()
	wg.Wait()
	return nil
}

// dialUnix connects to the unix socket args[0] and reports the error.
func dialUnix(args []string) error {
	c, err := net.Dial("unix", args[0])
	if err != nil {
		if errors.Is(err, syscall.EACCES) {
			return fmt.Errorf("permission denied: %w", err)
		}
		return err
	}
	c.Close()
	return nil
}
