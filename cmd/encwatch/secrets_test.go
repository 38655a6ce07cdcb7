package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/encwatch/encwatch/internal/natstest"
)

// secretWord is a random word of n letters and digits, a secret no other
// text holds.
func secretWord(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "s3" + hex.EncodeToString(b)[:n-2]
}

// TestFailingSinksLogNoSecret needs root (the daemon loads only a
// root-owned policy) and Debian's nats-server: every sink fails and
// answers with what it was sent, and no secret, nor any 8-byte piece of
// one, appears in any log line of the daemon, its /metrics or `encwatch
// status`. The sinks: a webhook whose URL (in url_file) carries secrets
// in its path and query, to a receiver that echoes the request line, the
// Authorization header and the URL back in a 500; Splunk HEC with a token,
// to a receiver that echoes the Authorization header in a 403 whose body
// puts the token across the 200-byte cut of the logged snippet; NATS with
// a creds file (JWT and nkey seed) to a nats-server that knows another
// user. A policy naming such a URL in url is refused by validate.
func TestFailingSinksLogNoSecret(t *testing.T) {
	rootOnly(t)
	natsBin := natstest.Bin(t)
	bin := buildEncwatch(t)
	dir := t.TempDir()

	pathKey, pathKey2, query, hecToken := secretWord(t, 24), secretWord(t, 20), secretWord(t, 18), secretWord(t, 32)
	echo := func(status int, pad int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			fmt.Fprintf(w, "%s%s %s Authorization: %s; url %s", strings.Repeat("x", pad), r.Method, r.URL.RequestURI(), r.Header.Get("Authorization"), r.URL.String())
		}
	}
	hook := httptest.NewServer(echo(http.StatusInternalServerError, 0))
	defer hook.Close()
	// "Authorization: Splunk " starts 190 bytes in: the token crosses the
	// snippet's 200-byte cut.
	hec := httptest.NewServer(echo(http.StatusForbidden, 190-len("POST /services/collector/event Authorization: Splunk ")))
	defer hec.Close()

	hookURL := fmt.Sprintf("%s/services/T01/%s/%s?token=%s&x=1", hook.URL, pathKey2, pathKey, query)
	writePolicy(t, filepath.Join(dir, "hook.url"), hookURL+"\n")
	writePolicy(t, filepath.Join(dir, "hec.token"), hecToken+"\n")

	// NATS: a server that knows one nkey user; the sink's creds are
	// another's.
	known, _ := nkeys.CreateUser()
	knownPub, _ := known.PublicKey()
	user, _ := nkeys.CreateUser()
	seed, _ := user.Seed()
	jwt := "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ." + base64.RawURLEncoding.EncodeToString([]byte(secretWord(t, 40))) + "." + secretWord(t, 30)
	creds := fmt.Sprintf("-----BEGIN NATS USER JWT-----\n%s\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n%s\n------END USER NKEY SEED------\n", jwt, seed)
	writePolicy(t, filepath.Join(dir, "user.creds"), creds)
	natsAddr := freeAddr(t)
	natsConf := filepath.Join(dir, "nats.conf")
	writePolicy(t, natsConf, fmt.Sprintf("listen: %q\nauthorization { users = [ { nkey: %q } ] }\n", natsAddr, knownPub))
	ns := exec.Command(natsBin, "-c", natsConf)
	var nsLogs syncBuf
	ns.Stdout, ns.Stderr = &nsLogs, &nsLogs
	if err := ns.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { ns.Process.Kill(); ns.Wait() }()

	addr := freeAddr(t)
	probe := filepath.Join(dir, "run", "probe.sock")
	sinks := fmt.Sprintf(`
sink "webhook" "hook" {
  url_file = %q
}
sink "splunk" "hec" {
  url        = %q
  token_file = %q
}
sink "nats" "bus" {
  url        = "nats://%s"
  subject    = "encwatch.alerts"
  creds_file = %q
}
`, filepath.Join(dir, "hook.url"), hec.URL, filepath.Join(dir, "hec.token"), natsAddr, filepath.Join(dir, "user.creds"))
	conf := filepath.Join(dir, "config.hcl")
	writePolicy(t, conf, strings.Replace(audispPolicy(addr, sinks), "metrics {\n", fmt.Sprintf("metrics {\n  probe_socket = %q\n", probe), 1))

	secrets := map[string]string{
		"webhook path key": pathKey, "webhook path id": pathKey2, "webhook query": query,
		"HEC token": hecToken, "NATS JWT": jwt, "NATS seed": string(seed),
	}
	var outputs []string
	for _, format := range []string{"text", "json"} {
		p := &daemonProc{args: []string{"run", "--config", conf, "--log-format", format, "--log-level", "debug"}}
		p.start(t, bin)
		p.waitLog(t, "encwatch running", 20*time.Second)
		if _, err := io.WriteString(p.stdin, b64Events(t, 100, 3)); err != nil {
			t.Fatal(err)
		}
		waitMetric(t, addr, `encwatch_sink_send_errors_total{sink="hook"}`, 2)
		waitMetric(t, addr, `encwatch_sink_rejected_total{sink="hec"}`, 1)
		waitMetric(t, addr, `encwatch_sink_send_errors_total{sink="bus"}`, 1)
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		status, _ := exec.Command(bin, "status", "--config", conf).CombinedOutput()
		if !strings.Contains(string(status), "daemon health (unix:"+probe+")") {
			t.Errorf("encwatch status did not ask the probe socket:\n%s", status)
		}
		p.stop()
		logs := p.logs.String()
		for _, want := range []string{"http 500 from " + hook.URL, "http 403 from " + hec.URL, "[redacted]"} {
			if !strings.Contains(logs, want) {
				t.Errorf("%s logs lack %q (the failures must still be reported); logs:\n%s", format, want, lastLines(logs, 30))
			}
		}
		outputs = append(outputs, "logs ("+format+")", logs, "metrics", string(metrics), "status", string(status))
	}
	for i := 0; i < len(outputs); i += 2 {
		where, text := outputs[i], outputs[i+1]
		for name, s := range secrets {
			if frag := secretFragment(text, s, 8); frag != "" {
				t.Errorf("%s holds %q of the %s; around it:\n%s", where, frag, name, around(text, frag))
			}
		}
	}
	t.Logf("%d lines of logs, metrics and status output checked for %d secrets", strings.Count(strings.Join(outputs, "\n"), "\n"), len(secrets))

	// validate refuses the same URL written into the policy.
	lit := filepath.Join(dir, "literal.hcl")
	writePolicy(t, lit, encSignature+fmt.Sprintf("sink \"webhook\" \"hook\" {\n  url = %q\n}\n", strings.Replace(hookURL, "?token="+query+"&x=1", "", 1)))
	out, err := exec.Command(bin, "validate", "--config", lit).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "url_file") {
		t.Errorf("validate of a webhook URL with a key in its path: %v\n%s\nwant refused, pointing to url_file", err, out)
	}
}

// secretFragment is the first piece of s of n bytes or more found in
// text, or "".
func secretFragment(text, s string, n int) string {
	for i := 0; i+n <= len(s); i++ {
		if strings.Contains(text, s[i:i+n]) {
			return s[i : i+n]
		}
	}
	return ""
}

// around is the line of text holding frag.
func around(text, frag string) string {
	i := strings.Index(text, frag)
	start := strings.LastIndexByte(text[:i], '\n') + 1
	end := strings.IndexByte(text[i:], '\n')
	if end < 0 {
		return text[start:]
	}
	return text[start : i+end]
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
