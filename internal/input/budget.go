package input

import (
	"context"

	"github.com/encwatch/encwatch/audit"
)

// maxQueuedRecordBytes bounds the bytes of record batches waiting for the
// assembler. The channel bounds batches, and a batch holds up to 4096
// records of up to 8,970 bytes (MAX_AUDIT_MESSAGE_LENGTH): a user who
// execs with megabytes of arguments (each EXECVE record carries 7,500
// bytes of them in hex) could otherwise queue gigabytes (1.1 GiB of peak
// RSS after 300 execs of 1.9 MB, measured by internal/abuse). 32 MiB is
// about eight such execs and kept that peak at 150-165 MiB (48 MiB: 190-215
// MiB, too near the suite's 256 MiB budget). Past it a batch is dropped
// and counted, and the assembler counts the serials it never saw as lost,
// as when the kernel's backlog overflows: under such a flood the kernel
// and the daemon lose records (audit_loss alerts say so) rather than the
// daemon's memory grow.
const maxQueuedRecordBytes = 32 << 20

// recordGate is the byte budget in front of the assembler's channel.
type recordGate struct {
	max int64
	// sent are the sizes of the batches last sent, newest last: those
	// still in the channel are the last len(channel) of them (FIFO).
	sent []int64
	// c counts the batches and bytes refused by the budget.
	c *Counters
}

// gate wraps src so that the batches it queues for the assembler hold at
// most g.max bytes. Only a lossy stream is gated: a replay or audisp source
// waits rather than drop.
func (g *recordGate) gate(src RunFunc) RunFunc {
	return func(ctx context.Context, out chan<- []audit.Record) error {
		in := make(chan []audit.Record, cap(out))
		errc := make(chan error, 1)
		go func() {
			defer close(in)
			errc <- src(ctx, in)
		}()
		for b := range in {
			n := batchBytes(b)
			if g.queued(len(out))+n > g.max {
				g.c.DroppedBatches.Add(1)
				g.c.DroppedBytes.Add(uint64(n))
				continue
			}
			select {
			case out <- b:
				g.sent = append(g.sent, n)
				if len(g.sent) > 2*cap(out) {
					g.sent = append(g.sent[:0], g.sent[len(g.sent)-cap(out):]...)
				}
			default:
				g.c.DroppedBatches.Add(1)
				g.c.DroppedBytes.Add(uint64(n))
			}
		}
		return <-errc
	}
}

// queued is the bytes of the waiting batches, the last n sent.
func (g *recordGate) queued(n int) int64 {
	var sum int64
	for _, s := range g.sent[max(0, len(g.sent)-n):] {
		sum += s
	}
	return sum
}

// batchBytes is what a batch of records holds in memory.
func batchBytes(b []audit.Record) int64 {
	n := int64(cap(b)) * 32
	for _, r := range b {
		n += int64(cap(r.Data))
	}
	return n
}
