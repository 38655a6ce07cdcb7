// Package natstest starts Debian's nats-server for tests on loopback, with
// JetStream and the fleet's documented users and permissions
// (packaging/nats-encwatch.conf): an administrator, a collector and one
// user per host, each with its own nkey, whose seed files it writes
// root-owned, mode 0600, as the sinks require.
package natstest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/encwatch/encwatch/internal/audittest"
	"github.com/encwatch/encwatch/packaging"
)

// Users of the documented configuration that are not hosts.
const (
	Admin   = "admin"
	Collect = "collect"
)

// Token makes a host name its subject token, as the nats sink does.
func Token(host string) string { return strings.ReplaceAll(host, ".", "_") }

// webEntry finds web1's entry in the configuration: the template of a host's.
var webEntry = regexp.MustCompile(`(?s)\n    # One entry per host.*?\n  \]`)

// Conf is packaging/nats-encwatch.conf as shipped when hosts is nil;
// otherwise its host entries are made for hosts instead of web1 and web2,
// each a copy of web1's with the host's subject and nkey variable.
func Conf(hosts []string) string {
	if hosts == nil {
		return packaging.NATSConf
	}
	one := webEntryText()
	var b strings.Builder
	for _, h := range hosts {
		tok := Token(h)
		e := strings.ReplaceAll(one, "web1_example_com", tok)
		e = strings.ReplaceAll(e, "$ENCWATCH_WEB1_NKEY", "$"+envName(tok))
		b.WriteString(e)
	}
	return webEntry.ReplaceAllLiteralString(packaging.NATSConf, "\n"+b.String()+"  ]")
}

// webEntryText is web1's entry, from its nkey line to its closing brace.
func webEntryText() string {
	c := packaging.NATSConf
	i := strings.Index(c, "    { nkey: $ENCWATCH_WEB1_NKEY")
	j := strings.Index(c[i:], "\n    } }\n")
	return c[i : i+j+len("\n    } }\n")]
}

// envName is the variable holding user's public nkey.
func envName(user string) string {
	if user == "web1_example_com" || user == "web2_example_com" {
		user = strings.TrimSuffix(user, "_example_com")
	}
	return "ENCWATCH_" + strings.ToUpper(user) + "_NKEY"
}

// Cluster is n nodes of nats-server sharing the documented users.
type Cluster struct {
	tb    testing.TB
	bin   string
	dir   string
	env   []string
	seeds map[string]string // user (Admin, Collect, or a host's token) → seed file
	Nodes []*Node
}

// Node is one nats-server.
type Node struct {
	Name, conf, URL string
	cmd             *exec.Cmd
	env             []string
	mu              sync.Mutex
	logs            strings.Builder
}

// Bin returns Debian's nats-server, failing the test under CI and skipping
// it elsewhere when it is missing.
func Bin(tb testing.TB) string {
	tb.Helper()
	p := audittest.Program(tb, "nats-server", "nats-server")
	if os.Geteuid() != 0 {
		tb.Skip("!!! SKIPPED: needs root (the nkey seed files must be root-owned)")
	}
	return p
}

// Start starts n JetStream nodes (clustered when n > 1) on loopback with
// the documented configuration for hosts (nil: web1 and web2 as shipped),
// and waits until JetStream answers. The nodes are killed at the end of the
// test.
func Start(tb testing.TB, n int, hosts []string) *Cluster {
	tb.Helper()
	c := &Cluster{tb: tb, bin: Bin(tb), dir: tb.TempDir(), seeds: map[string]string{}}
	users := []string{Admin, Collect}
	if hosts == nil {
		users = append(users, "web1_example_com", "web2_example_com")
	}
	for _, h := range hosts {
		users = append(users, Token(h))
	}
	for _, u := range users {
		kp, err := nkeys.CreateUser()
		if err != nil {
			tb.Fatal(err)
		}
		seed, _ := kp.Seed()
		pub, _ := kp.PublicKey()
		f := filepath.Join(c.dir, u+".nk")
		if err := os.WriteFile(f, seed, 0o600); err != nil {
			tb.Fatal(err)
		}
		c.seeds[u] = f
		c.env = append(c.env, envName(u)+"="+pub)
	}
	auth := Conf(hosts)
	clients, routes := make([]string, n), make([]string, n)
	for i := range n {
		clients[i], routes[i] = FreeAddr(tb), FreeAddr(tb)
	}
	for i := range n {
		var cluster string
		if n > 1 {
			var rs []string
			for j := range n {
				if j != i {
					rs = append(rs, "nats://"+routes[j])
				}
			}
			cluster = fmt.Sprintf("cluster { name: encwatch-test, listen: %q, routes: [%s] }", routes[i], strings.Join(rs, ", "))
		}
		name := fmt.Sprintf("n%d", i+1)
		conf := filepath.Join(c.dir, name+".conf")
		src := fmt.Sprintf("server_name: %s\nlisten: %q\njetstream { store_dir: %q }\n%s\n%s", name, clients[i], filepath.Join(c.dir, name), cluster, auth)
		if err := os.WriteFile(conf, []byte(src), 0o600); err != nil {
			tb.Fatal(err)
		}
		nd := &Node{Name: name, conf: conf, URL: "nats://" + clients[i], env: c.env}
		c.Nodes = append(c.Nodes, nd)
		c.StartNode(nd)
	}
	tb.Cleanup(func() {
		for _, nd := range c.Nodes {
			nd.Kill()
		}
	})
	c.waitJetStream(n)
	return c
}

// FreeAddr returns a free loopback TCP address.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Metrics scrapes http://addr/metrics (an agent's or a collector's) and
// returns its lines that start with prefix ("" keeps them all).
func Metrics(tb testing.TB, addr, prefix string) string {
	tb.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for line := range strings.SplitSeq(string(body), "\n") {
		if strings.HasPrefix(line, prefix) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// StartNode starts (or restarts) one node.
func (c *Cluster) StartNode(nd *Node) {
	c.tb.Helper()
	nd.cmd = exec.Command(c.bin, "-c", nd.conf)
	nd.cmd.Env = append(os.Environ(), nd.env...)
	nd.cmd.Stdout, nd.cmd.Stderr = nd, nd
	if err := nd.cmd.Start(); err != nil {
		c.tb.Fatalf("start nats-server %s: %v", nd.Name, err)
	}
}

// Write keeps the node's output, for failure messages.
func (nd *Node) Write(p []byte) (int, error) {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.logs.Write(p)
}

// Logs returns the node's output so far.
func (nd *Node) Logs() string {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.logs.String()
}

// Kill is kill -9.
func (nd *Node) Kill() {
	if nd.cmd != nil && nd.cmd.Process != nil {
		_ = nd.cmd.Process.Kill()
		_ = nd.cmd.Wait()
	}
}

// URLs are the nodes' client URLs.
func (c *Cluster) URLs() []string {
	var out []string
	for _, nd := range c.Nodes {
		out = append(out, nd.URL)
	}
	return out
}

// Seed is the seed file of user: Admin, Collect, or a host's name.
func (c *Cluster) Seed(user string) string {
	if s, ok := c.seeds[user]; ok {
		return s
	}
	if s, ok := c.seeds[Token(user)]; ok {
		return s
	}
	c.tb.Fatalf("natstest: no user %q", user)
	return ""
}

// Connect connects as user (Admin, Collect, a host's name) with extra
// options.
func (c *Cluster) Connect(user string, opts ...nats.Option) (*nats.Conn, error) {
	o, err := nats.NkeyOptionFromSeed(c.Seed(user))
	if err != nil {
		return nil, err
	}
	return nats.Connect(strings.Join(c.URLs(), ","), append([]nats.Option{o, nats.Timeout(2 * time.Second)}, opts...)...)
}

// Admin is a JetStream context of the administrator, closed at the end of
// the test.
func (c *Cluster) Admin() jetstream.JetStream {
	c.tb.Helper()
	nc, err := c.Connect(Admin)
	if err != nil {
		c.tb.Fatal(err)
	}
	c.tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		c.tb.Fatal(err)
	}
	return js
}

// CreateStream creates the ENCWATCH stream (encwatch.alerts.*) with
// replicas, as docs/fleet.md does.
func (c *Cluster) CreateStream(replicas int) {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.Admin().CreateStream(ctx, jetstream.StreamConfig{
		Name: "ENCWATCH", Subjects: []string{"encwatch.alerts.*"}, Replicas: replicas,
		Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute,
	}); err != nil {
		c.tb.Fatalf("create stream: %v", err)
	}
}

// waitJetStream waits until JetStream answers with a meta leader (a
// cluster needs one to create a replicated stream).
func (c *Cluster) waitJetStream(replicas int) {
	c.tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		nc, err := c.Connect(Admin)
		if err == nil {
			js, _ := jetstream.New(nc)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err = js.AccountInfo(ctx)
			if err == nil && replicas > 1 {
				// A throwaway replicated stream proves the cluster can place one.
				_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "PROBE", Subjects: []string{"probe"}, Replicas: replicas, Storage: jetstream.MemoryStorage})
				if err == nil {
					err = js.DeleteStream(ctx, "PROBE")
				}
			}
			cancel()
			nc.Close()
			if err == nil {
				return
			}
		}
		last = err
		time.Sleep(200 * time.Millisecond) // polling the servers
	}
	logs := ""
	for _, nd := range c.Nodes {
		logs += nd.Logs()
	}
	c.tb.Fatalf("nats-server JetStream not ready: %v\n%s", last, logs)
}
