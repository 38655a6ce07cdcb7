package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsNode is one Debian nats-server with JetStream, started by a test on
// loopback, with its own store directory.
type natsNode struct {
	name, conf, url string
	cmd             *exec.Cmd
	logs            syncBuf
}

// needNATSServer returns the path of Debian's nats-server, or fails the
// test (skips it outside CI) when it is missing.
func needNATSServer(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("nats-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("needs Debian's nats-server (make test-deps installs it)")
		}
		t.Skip("!!! SKIPPED: needs Debian's nats-server (apt-get install nats-server)")
	}
	return p
}

// startNATSCluster starts n JetStream nodes, clustered on loopback when
// n > 1, and waits until JetStream answers. The nodes are killed at the
// end of the test.
func startNATSCluster(t *testing.T, n int) []*natsNode {
	t.Helper()
	bin := needNATSServer(t)
	dir := t.TempDir()
	clients, routes := make([]string, n), make([]string, n)
	for i := range n {
		clients[i], routes[i] = freeAddr(t), freeAddr(t)
	}
	nodes := make([]*natsNode, n)
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
		conf := filepath.Join(dir, name+".conf")
		src := fmt.Sprintf("server_name: %s\nlisten: %q\njetstream { store_dir: %q }\n%s\n", name, clients[i], filepath.Join(dir, name), cluster)
		if err := os.WriteFile(conf, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		nodes[i] = &natsNode{name: name, conf: conf, url: "nats://" + clients[i]}
		nodes[i].start(t, bin)
	}
	t.Cleanup(func() {
		for _, nd := range nodes {
			nd.kill()
		}
	})
	waitJetStream(t, natsURLs(nodes), n)
	return nodes
}

func (nd *natsNode) start(t *testing.T, bin string) {
	t.Helper()
	nd.cmd = exec.Command(bin, "-c", nd.conf)
	nd.cmd.Stdout, nd.cmd.Stderr = &nd.logs, &nd.logs
	if err := nd.cmd.Start(); err != nil {
		t.Fatalf("start nats-server %s: %v", nd.name, err)
	}
}

// kill is kill -9.
func (nd *natsNode) kill() {
	if nd.cmd != nil && nd.cmd.Process != nil {
		_ = nd.cmd.Process.Kill()
		_ = nd.cmd.Wait()
	}
}

func natsURLs(nodes []*natsNode) []string {
	var out []string
	for _, nd := range nodes {
		out = append(out, nd.url)
	}
	return out
}

// waitJetStream waits until JetStream answers with a meta leader (a cluster
// needs one to create a replicated stream).
func waitJetStream(t *testing.T, urls []string, replicas int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		nc, err := nats.Connect(strings.Join(urls, ","), nats.Timeout(time.Second))
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
	t.Fatalf("nats-server JetStream not ready: %v", last)
}

// createStream creates the alerts stream with replicas.
func createStream(t *testing.T, urls []string, replicas int) {
	t.Helper()
	nc, err := nats.Connect(strings.Join(urls, ","))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "ENCWATCH", Subjects: []string{"encwatch.alerts.*"}, Replicas: replicas,
		Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute,
	}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
}

// streamState says how many messages the stream holds and where the
// collectors' consumer is, for failure messages.
func streamState(urls []string) string {
	nc, err := nats.Connect(strings.Join(urls, ","))
	if err != nil {
		return err.Error()
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "ENCWATCH")
	if err != nil {
		return err.Error()
	}
	si := st.CachedInfo()
	out := fmt.Sprintf("stream: %d messages", si.State.Msgs)
	if c, err := st.Consumer(ctx, "siem"); err == nil {
		ci := c.CachedInfo()
		out += fmt.Sprintf("; consumer: pending %d, ack pending %d, redelivered %d, delivered %d, ack floor %d",
			ci.NumPending, ci.NumAckPending, ci.NumRedelivered, ci.Delivered.Stream, ci.AckFloor.Stream)
	}
	return out
}

// streamDuplicates counts the messages of the stream whose Nats-Msg-Id an
// earlier message already had: duplicates stored by the stream itself, as
// opposed to ones delivered twice by the consumer.
func streamDuplicates(t *testing.T, urls []string) int {
	t.Helper()
	nc, err := nats.Connect(strings.Join(urls, ","))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "ENCWATCH")
	if err != nil {
		t.Fatal(err)
	}
	total := st.CachedInfo().State.Msgs
	c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{HeadersOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	dups := 0
	for n := uint64(0); n < total; {
		batch, err := c.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			n++
			id := m.Headers().Get(jetstream.MsgIDHeader)
			if ids[id] {
				dups++
			}
			ids[id] = true
		}
		if ctx.Err() != nil {
			t.Fatal(ctx.Err())
		}
	}
	return dups
}
