package kafka

// checkpoint is one batch of a partition handed downstream: the offset to
// commit once it and every earlier batch are acknowledged, and how many
// messages it holds.
type checkpoint struct {
	next  int64 // offset of the batch's last record + 1
	epoch int32 // leader epoch of the batch's last record
	size  int
	done  bool
}

// checkpointer tracks the in-flight batches of one partition in offset order
// and yields the highest offset that may be committed: the end of the longest
// prefix of acknowledged batches. Acknowledgements may arrive in any order;
// an offset past an unacknowledged batch is never released. It is not safe
// for concurrent use: the reader guards it with its mutex.
type checkpointer struct {
	queue    []*checkpoint // in offset order; queue[head:] are pending
	head     int
	inFlight int // messages of pending batches

	committable      int64 // next offset to commit, valid if hasCommittable
	committableEpoch int32
	hasCommittable   bool
}

// track registers a batch handed downstream, ending at offset next-1.
func (c *checkpointer) track(next int64, epoch int32, size int) *checkpoint {
	cp := &checkpoint{next: next, epoch: epoch, size: size}
	c.queue = append(c.queue, cp)
	c.inFlight += size
	return cp
}

// resolve marks a batch acknowledged and reports whether the committable
// offset advanced. Resolving a batch twice has no further effect.
func (c *checkpointer) resolve(cp *checkpoint) bool {
	if cp.done {
		return false
	}
	cp.done = true
	advanced := false
	for c.head < len(c.queue) && c.queue[c.head].done {
		h := c.queue[c.head]
		c.queue[c.head] = nil
		c.head++
		c.inFlight -= h.size
		c.committable, c.committableEpoch, c.hasCommittable = h.next, h.epoch, true
		advanced = true
	}
	// Compact once the consumed prefix dominates, keeping appends amortised
	// O(1) without letting the backing array grow forever.
	if c.head > 64 && c.head*2 > len(c.queue) {
		n := copy(c.queue, c.queue[c.head:])
		clear(c.queue[n:])
		c.queue = c.queue[:n]
		c.head = 0
	}
	return advanced
}

// pending returns the number of batches not yet acknowledged.
func (c *checkpointer) pending() int {
	return len(c.queue) - c.head
}
