package audit

// chunkSize is the size of the chunks a LogReader copies records' Data
// into: one allocation serves a few hundred lines.
const chunkSize = 64 << 10

// maxFreeChunks bounds the chunks (16 MiB) and batches a LogReader keeps
// for reuse: about what a receiver that queues 256 batches, as encwatch's
// replay does, holds when the reader is that far ahead. Fewer, and the
// chunks handed back when the queue drains are dropped, only to be made
// again when it fills.
const maxFreeChunks = 256

// maxSentBatches bounds the sent batches a LogReader tracks until they are
// handed back on Done. A receiver that keeps batches (or a stage between
// that drops some) leaves later batches untracked: their chunks are never
// reused, only collected, which is always safe.
const maxSentBatches = 4096

// chunk is memory records' Data are carved from.
type chunk struct {
	buf []byte
	// refs counts the chunk's holders: the batch being gathered, and
	// each sent batch not yet handed back. At zero no record refers to
	// the chunk any more and it may be written again.
	refs int
}

// sentBatch is what a LogReader remembers of a batch it sent: the whole
// slice, to reuse, and the chunks its records may refer to.
type sentBatch struct {
	recs   []Record
	chunks []*chunk
}

// chunks hands out the memory of one Read's records. Without recycling
// (LogReader.Done unset) every chunk is made fresh and left to the
// collector. With it, a chunk is written again only once every batch
// whose records may refer to it has been handed back: each record is
// carved from the current chunk, the current chunk is always among the
// pending ones (those the batch being gathered holds), and a batch sent
// takes the pending chunks with it. A record that outgrows its chunk (a
// line longer than chunkSize, or an append that moved the arena) lives
// in memory made for it, which is never reused.
type chunks struct {
	recycle bool
	arena   []byte // the current chunk's free part, or memory made for a long line
	cur     *chunk // nil when arena is not a chunk's
	pending []*chunk
	sent    map[*Record]sentBatch
	free    []*chunk
	batches [][]Record // sent batches handed back, to gather the next in
	lists   [][]*chunk // chunk lists of batches handed back
}

// room makes sure the arena has n bytes free.
func (c *chunks) room(n int) {
	if cap(c.arena)-len(c.arena) >= n {
		return
	}
	if !c.recycle || n > chunkSize {
		c.arena, c.cur = make([]byte, 0, max(chunkSize, n)), nil
		return
	}
	var k *chunk
	if i := len(c.free) - 1; i >= 0 {
		k, c.free = c.free[i], c.free[:i]
	} else {
		k = &chunk{buf: make([]byte, 0, chunkSize)}
	}
	k.refs = 1 // the batch being gathered's
	c.pending = append(c.pending, k)
	c.arena, c.cur = k.buf[:0], k
}

// send records that batch, sent whole up to n, takes the pending chunks
// with it; records from n on are held back into the next batch, which is
// returned. The next batch holds the chunks the held records may refer
// to (all the pending ones, to be safe) and the current chunk.
func (c *chunks) send(batch []Record, n int) []Record {
	size := max(n, len(batch))
	if !c.recycle {
		return append(make([]Record, 0, size), batch[n:]...)
	}
	taken := c.pending
	c.pending = c.list()
	switch {
	case n < len(batch):
		c.pending = append(c.pending, taken...)
	case c.cur != nil:
		c.pending = append(c.pending, c.cur)
	}
	for _, k := range c.pending {
		k.refs++
	}
	if c.sent == nil {
		c.sent = make(map[*Record]sentBatch)
	}
	if len(c.sent) < maxSentBatches {
		c.sent[&batch[0]] = sentBatch{recs: batch, chunks: taken}
	}
	next := c.batch(size)
	return append(next, batch[n:]...)
}

// handBack takes back a batch its receiver is done with: the chunks no
// other batch holds are free to reuse. A batch not sent by this Read, or
// not tracked, is ignored.
func (c *chunks) handBack(b []Record) {
	if len(b) == 0 {
		return
	}
	s, ok := c.sent[&b[0]]
	if !ok {
		return
	}
	delete(c.sent, &b[0])
	for _, k := range s.chunks {
		k.refs--
		if k.refs == 0 && len(c.free) < maxFreeChunks {
			c.free = append(c.free, k)
		}
	}
	clear(s.chunks)
	if len(c.lists) < maxFreeChunks {
		c.lists = append(c.lists, s.chunks[:0])
	}
	if cap(s.recs) <= 2*logBatch && len(c.batches) < maxFreeChunks {
		// The records' Data are cleared so that a kept slice does not
		// keep chunks from the collector.
		clear(s.recs[:cap(s.recs)])
		c.batches = append(c.batches, s.recs[:0])
	}
}

// batch returns an empty batch of at least size records' room.
func (c *chunks) batch(size int) []Record {
	if i := len(c.batches) - 1; i >= 0 && cap(c.batches[i]) >= size {
		b := c.batches[i]
		c.batches = c.batches[:i]
		return b
	}
	return make([]Record, 0, size)
}

// list returns an empty chunk list.
func (c *chunks) list() []*chunk {
	if i := len(c.lists) - 1; i >= 0 {
		l := c.lists[i]
		c.lists = c.lists[:i]
		return l
	}
	return nil
}
