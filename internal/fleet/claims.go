package fleet

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Several collectors on one durable consumer share its messages, and the
// stream delivers each at least once. After a cluster node dies, the
// consumer's new leader may hand out again messages another collector has
// delivered and acknowledged: what the old leader had handed out, or the
// acknowledgements it had taken, had not all reached the new one. (The
// fleet test saw 129 and 166 such duplicates in two of a dozen runs; the
// consumer counted none of them as redelivered.)
//
// So before delivering an alert a collector claims its id in a key-value
// bucket of the stream's replicas, with JetStream's own compare-and-set: a
// publish that expects the key to have no value yet (what KeyValue.Create
// does), stored by the bucket's replicated leader or refused. The claim says
// "p COLLECTOR" while the alert is on its way to the sinks and "d COLLECTOR"
// once they took it. Another collector offered the same alert acknowledges
// it without delivering it ("d"), or leaves it for the stream to offer again
// after the ack wait ("p"). Claims expire after claimTTL, which covers the
// redelivery window: a collector killed between its claim and its delivery
// holds the alert back for that long, never for ever (at least once).
// Only collectors may write the bucket (docs/fleet.md, the server
// configuration); no message from any other client can make a collector
// drop an alert.

// claimResult is what a claim found.
type claimResult byte

const (
	claimMine    claimResult = iota // claimed here: deliver it
	claimDone                       // another collector delivered it: acknowledge it
	claimPending                    // another is delivering it: leave it
	claimFailed                     // the bucket did not answer: try again later
)

// claims is a collector's side of the claims bucket.
type claims struct {
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	bucket string
	self   string // this collector's id, random per start
	wait   time.Duration
}

// claimBucket names the bucket of one durable consumer.
func claimBucket(c *CollectSettings) string { return c.Stream + "_" + c.Consumer }

// claimTTL is how long a claim lives: three ack waits, at least 30 s.
func claimTTL(c *CollectSettings) time.Duration { return max(3*c.AckWait, 30*time.Second) }

// openClaims opens the consumer's claims bucket, creating it with the
// stream's replicas when the collector manages its consumer.
func openClaims(ctx context.Context, js jetstream.JetStream, c *CollectSettings, replicas int) (*claims, error) {
	var kv jetstream.KeyValue
	var err error
	if c.ManageConsumer {
		kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: claimBucket(c), Description: "encwatch collect: which collector delivers which alert",
			TTL: claimTTL(c), History: 1, Storage: jetstream.FileStorage, Replicas: max(replicas, 1),
		})
	} else {
		kv, err = js.KeyValue(ctx, claimBucket(c))
	}
	if err != nil {
		return nil, fmt.Errorf("claims bucket %s: %w", claimBucket(c), err)
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	return &claims{js: js, kv: kv, bucket: claimBucket(c), self: hex.EncodeToString(id[:]), wait: 5 * time.Second}, nil
}

// key is an alert id's key: a digest, since an id may hold any byte.
func claimKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16])
}

func (c *claims) subject(id string) string { return "$KV." + c.bucket + "." + claimKey(id) }

// claim claims each of ids at once (the publishes are pipelined) and says
// what each found.
func (c *claims) claim(ctx context.Context, ids []string) []claimResult {
	out := make([]claimResult, len(ids))
	futures := make([]jetstream.PubAckFuture, len(ids))
	for i, id := range ids {
		msg := nats.NewMsg(c.subject(id))
		msg.Data = []byte("p " + c.self)
		f, err := c.js.PublishMsgAsync(msg, jetstream.WithExpectLastSequencePerSubject(0))
		if err != nil {
			out[i] = claimFailed
			continue
		}
		futures[i] = f
	}
	timer := time.NewTimer(c.wait)
	defer timer.Stop()
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case <-f.Ok():
			out[i] = claimMine
		case err := <-f.Err():
			out[i] = c.held(ctx, ids[i], err)
		case <-timer.C:
			out[i] = claimFailed
		case <-ctx.Done():
			out[i] = claimFailed
		}
	}
	return out
}

// held reads a claim that refused this one: whose it is.
func (c *claims) held(ctx context.Context, id string, err error) claimResult {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || (apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence && apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return claimFailed
	}
	gctx, cancel := context.WithTimeout(ctx, c.wait)
	defer cancel()
	e, err := c.kv.Get(gctx, claimKey(id))
	if err != nil {
		return claimFailed // expired since, or no answer: next time
	}
	mark, who, _ := strings.Cut(string(e.Value()), " ")
	switch {
	case who == c.self:
		return claimMine // this collector's own claim, its answer lost
	case mark == "d":
		return claimDone
	default:
		return claimPending
	}
}

// delivered marks id's claim done: another collector offered it acknowledges
// it. A publish into the connection's buffer: it does not wait (a lost one
// costs at most a duplicate once the claim expires).
func (c *claims) delivered(id string) {
	msg := nats.NewMsg(c.subject(id))
	msg.Data = []byte("d " + c.self)
	_, _ = c.js.PublishMsgAsync(msg)
}
