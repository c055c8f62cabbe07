package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// franzPollHoldMax bounds how long the poll loop waits for downstream to
// catch up before polling anyway (see waitForRoom).
const franzPollHoldMax = 100 * time.Millisecond

// franzFlushSlack is how close to its period a partition's batch is flushed,
// and the shortest poll made while waiting for one.
const franzFlushSlack = time.Millisecond

// franzReaderCloseTimeout bounds Close, for which the framework gives no
// deadline: the final commit, leaving the group and closing connections.
const franzReaderCloseTimeout = 20 * time.Second

type topicPartition struct {
	topic     string
	partition int32
}

// partitionState is what the reader knows of one partition it consumes. A new
// state is made each time the partition is assigned, so acknowledgements that
// still refer to a revoked state are recognisably stale.
type partitionState struct {
	tp        topicPartition
	cp        checkpointer
	committed int64 // last committed offset, -1 if none by this reader
	paused    bool
	revoked   bool
	// releasing marks a partition being revoked: no longer consumed, but
	// acknowledgements of the batches already delivered still count until
	// the revoke's wait ends (revoke_ack_timeout) and revoked is set.
	releasing bool
	// delivered counts the batches handed downstream (ReadBatch) whose
	// acknowledgement has not come yet.
	delivered int

	// Batching state, used only by the poll loop while it blocks rebalances
	// (or by the revoke callback, which cannot run at the same time).
	batcher      *service.Batcher
	pendingCount int
	pendingNext  int64
	pendingEpoch int32
}

type readyBatch struct {
	ps    *partitionState
	cp    *checkpoint
	batch service.MessageBatch
	// hold marks offsets whose messages were lost before delivery (a
	// failed batch flush): tracked but never resolved, they stop the
	// partition's commits before them.
	hold bool
}

// franzReader is the kafka_franz batch input.
type franzReader struct {
	conf franzReaderConfig
	res  *service.Resources
	log  *service.Logger
	lag  *service.MetricGauge

	// commitMu serialises commits so that a periodic commit built before a
	// revoke cannot land after it.
	commitMu sync.Mutex

	mu       sync.Mutex
	client   *kgo.Client
	stop     context.CancelFunc
	loopDone chan struct{} // closed when the poll loop exits
	bgWG     sync.WaitGroup
	parts    map[topicPartition]*partitionState
	ready    []readyBatch
	readySig chan struct{} // a batch was queued
	// pollCancel cuts the poll in progress short; nil between polls.
	pollCancel context.CancelFunc
	roomSig    chan struct{} // a batch was taken or acknowledged
	// releaseSig: a batch of a partition being revoked was acknowledged.
	releaseSig chan struct{}
	// closing is closed when Close starts: a revoke stops waiting for
	// acknowledgements (benthos has awaited them before closing).
	closing   chan struct{}
	closeOnce sync.Once
}

func newFranzReader(conf franzReaderConfig, res *service.Resources) *franzReader {
	return &franzReader{
		conf:       conf,
		res:        res,
		log:        res.Logger(),
		lag:        res.Metrics().NewGauge("kafka_lag", "consumer_group", "topic", "partition"),
		parts:      map[topicPartition]*partitionState{},
		readySig:   make(chan struct{}, 1),
		roomSig:    make(chan struct{}, 1),
		releaseSig: make(chan struct{}, 1),
		closing:    make(chan struct{}),
	}
}

// Connect creates the client, checks that a broker answers and starts the
// poll, commit and lag loops.
func (r *franzReader) Connect(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.client != nil {
		select {
		case <-r.loopDone:
			// The poll loop died with the client: start afresh.
			r.teardownLocked()
		default:
			return nil
		}
	}

	opts := append([]kgo.Opt{}, r.conf.clientOpts...)
	if r.conf.group != "" {
		opts = append(opts,
			kgo.OnPartitionsAssigned(r.onAssigned),
			kgo.OnPartitionsRevoked(r.onRevoked),
			kgo.OnPartitionsLost(r.onLost),
		)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("creating kafka client: %w", err)
	}
	if err := cl.Ping(ctx); err != nil {
		cl.Close()
		return fmt.Errorf("connecting to seed brokers: %w", err)
	}

	loopCtx, stop := context.WithCancel(context.Background())
	r.client, r.stop, r.loopDone = cl, stop, make(chan struct{})
	go r.pollLoop(loopCtx, cl, r.loopDone)
	if r.conf.group != "" {
		r.bgWG.Add(1)
		go func() {
			defer r.bgWG.Done()
			r.commitLoop(loopCtx, cl)
		}()
		if r.conf.lagRefresh > 0 {
			r.bgWG.Add(1)
			go func() {
				defer r.bgWG.Done()
				r.lagLoop(loopCtx, cl)
			}()
		}
	}
	return nil
}

// teardownLocked forgets a client whose poll loop has exited. Its partition
// states are marked revoked so late acknowledgements cannot commit.
func (r *franzReader) teardownLocked() {
	groupOwners.release(r.conf.group, r, nil)
	r.stop()
	cl := r.client
	go cl.Close()
	for tp, ps := range r.parts {
		ps.revoked = true
		delete(r.parts, tp)
	}
	r.ready = nil
	r.client = nil
}

// ReadBatch returns the next batch of one partition.
func (r *franzReader) ReadBatch(ctx context.Context) (service.MessageBatch, service.AckFunc, error) {
	for {
		r.mu.Lock()
		if len(r.ready) > 0 {
			rb := r.ready[0]
			r.ready[0] = readyBatch{}
			r.ready = r.ready[1:]
			rb.ps.delivered++
			r.mu.Unlock()
			r.signalRoom()
			return rb.batch, r.ackFunc(rb.ps, rb.cp), nil
		}
		if r.client == nil {
			r.mu.Unlock()
			return nil, nil, service.ErrNotConnected
		}
		loopDone := r.loopDone
		r.mu.Unlock()

		select {
		case <-r.readySig:
		case <-loopDone:
			return nil, nil, service.ErrNotConnected
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
}

func (r *franzReader) ackFunc(ps *partitionState, cp *checkpoint) service.AckFunc {
	return func(_ context.Context, err error) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		if ps.revoked {
			// Another member owns the partition now and will consume these
			// messages again from the last commit.
			return nil
		}
		ps.delivered--
		if ps.releasing {
			select {
			case r.releaseSig <- struct{}{}:
			default:
			}
		}
		if err != nil {
			// Leaving the checkpoint unresolved holds the commit of this
			// partition before the batch, so it is consumed again after a
			// restart or rebalance instead of being skipped.
			r.log.Errorf("Batch of %d messages from topic %s partition %d ending at offset %d was rejected, offsets of this partition are no longer committed until it is consumed again: %v",
				cp.size, ps.tp.topic, ps.tp.partition, cp.next-1, err)
			return nil
		}
		ps.cp.resolve(cp)
		r.signalRoom()
		if ps.paused && r.resumable(ps) && r.pollCancel != nil {
			// The poll loop resumes it, sizing its next poll with it.
			r.pollCancel()
		}
		return nil
	}
}

// pollLoop fetches records and turns them into ready batches. With a group,
// each poll blocks rebalances until AllowRebalance, so that records of a poll
// are always attributed to a partition this member still owns.
func (r *franzReader) pollLoop(ctx context.Context, cl *kgo.Client, done chan struct{}) {
	defer close(done)
	for {
		room, ok := r.waitForRoom(ctx, cl)
		if !ok {
			return
		}
		var pollCtx context.Context
		var cancel context.CancelFunc
		if d, ok := r.untilNextFlush(); ok {
			pollCtx, cancel = context.WithTimeout(ctx, d)
		} else {
			pollCtx, cancel = context.WithCancel(ctx)
		}
		// An acknowledgement that lets a paused partition resume cuts the
		// poll short, so that the next one is sized with it.
		r.mu.Lock()
		r.pollCancel = cancel
		resumable := r.resumableLocked()
		r.mu.Unlock()
		if resumable {
			cancel()
		}
		// Only as many records as fit under checkpoint_limit: PollFetches
		// would hand over everything buffered (a whole fetch, megabytes
		// decompressed), all of it in flight at once.
		fetches := cl.PollRecords(pollCtx, room)
		r.mu.Lock()
		r.pollCancel = nil
		r.mu.Unlock()
		cancel()
		if ctx.Err() != nil {
			cl.AllowRebalance()
			return
		}
		closed := false
		fetches.EachError(func(topic string, partition int32, err error) {
			switch {
			case errors.Is(err, kgo.ErrClientClosed):
				closed = true
			case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
				// A poll cut short for a timed batch flush.
			default:
				r.log.Warnf("Fetching from topic %s partition %d: %v", topic, partition, err)
			}
		})
		if closed {
			cl.AllowRebalance()
			return
		}

		var newReady []readyBatch
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			tp := topicPartition{topic: p.Topic, partition: p.Partition}
			r.mu.Lock()
			ps := r.parts[tp]
			if ps == nil {
				ps = &partitionState{tp: tp, committed: -1}
				r.parts[tp] = ps
			}
			r.mu.Unlock()
			newReady = r.addRecords(ctx, ps, p.FetchPartition, newReady)
		})
		newReady = r.flushDue(ctx, newReady)

		if len(newReady) > 0 {
			r.mu.Lock()
			for _, rb := range newReady {
				if rb.ps.revoked || rb.ps.releasing {
					continue
				}
				rb.cp = rb.ps.cp.track(rb.cp.next, rb.cp.epoch, rb.cp.size)
				if rb.hold {
					continue
				}
				if len(rb.batch) == 0 {
					// Batch processors dropped every message: nothing to
					// deliver, the offsets are done with.
					rb.ps.cp.resolve(rb.cp)
					continue
				}
				r.ready = append(r.ready, rb)
			}
			r.mu.Unlock()
			select {
			case r.readySig <- struct{}{}:
			default:
			}
		}
		cl.AllowRebalance()
	}
}

func (r *franzReader) signalRoom() {
	select {
	case r.roomSig <- struct{}{}:
	default:
	}
}

// waitForRoom holds the next poll while it could take fewer than half of
// checkpoint_limit records (at least one) without a partition going over the
// limit, and returns how many it may take. Polls are sized so that no
// partition goes over, because pausing a partition drops the client's
// buffered records of it, fetched again only once the fetch in flight
// returns: fetch_max_wait when the other partitions are idle. The client
// keeps one fetch buffered meanwhile, so a pipeline that keeps up loses
// nothing. After franzPollHoldMax the poll takes what room there is, and a
// partition at the limit is paused until acknowledgements free half of it,
// so that one stuck partition does not hold the others. It returns false
// when ctx is done.
func (r *franzReader) waitForRoom(ctx context.Context, cl *kgo.Client) (int, bool) {
	deadline := time.NewTimer(franzPollHoldMax)
	defer deadline.Stop()
	held := false
	for {
		r.mu.Lock()
		room := r.roomLocked(cl, held)
		r.mu.Unlock()
		if room >= r.halfLimit() || (held && room > 0) {
			return room, ctx.Err() == nil
		}
		select {
		case <-r.roomSig:
		case <-deadline.C:
			held = true
		case <-ctx.Done():
			return 0, false
		}
	}
}

// roomLocked resumes the paused partitions with half of checkpoint_limit
// free, pauses those at the limit when pause is set, and returns how many
// records a poll may take without a partition that is not paused going over
// the limit.
func (r *franzReader) roomLocked(cl *kgo.Client, pause bool) int {
	var toPause, toResume map[string][]int32
	add := func(m map[string][]int32, tp topicPartition) map[string][]int32 {
		if m == nil {
			m = map[string][]int32{}
		}
		m[tp.topic] = append(m[tp.topic], tp.partition)
		return m
	}
	fullest := 0
	for _, ps := range r.parts {
		switch {
		case ps.paused && r.resumable(ps):
			ps.paused = false
			toResume = add(toResume, ps.tp)
		case ps.paused:
			continue
		case pause && ps.cp.inFlight >= r.conf.checkpointLimit:
			ps.paused = true
			toPause = add(toPause, ps.tp)
			continue
		}
		fullest = max(fullest, ps.cp.inFlight)
	}
	if toPause != nil {
		cl.PauseFetchPartitions(toPause)
	}
	if toResume != nil {
		cl.ResumeFetchPartitions(toResume)
	}
	return max(r.conf.checkpointLimit-fullest, 0)
}

// resumable reports whether a paused partition has half of its
// checkpoint_limit free again.
func (r *franzReader) resumable(ps *partitionState) bool {
	return r.conf.checkpointLimit-ps.cp.inFlight >= r.halfLimit()
}

// resumableLocked reports whether any paused partition is resumable.
func (r *franzReader) resumableLocked() bool {
	for _, ps := range r.parts {
		if ps.paused && r.resumable(ps) {
			return true
		}
	}
	return false
}

// halfLimit is the room a poll waits for: half of checkpoint_limit, at
// least one record.
func (r *franzReader) halfLimit() int { return max(r.conf.checkpointLimit/2, 1) }

// addRecords converts the records of one partition fetch into batches: one
// batch per fetch without a batching policy, else as the policy flushes.
func (r *franzReader) addRecords(ctx context.Context, ps *partitionState, p kgo.FetchPartition, out []readyBatch) []readyBatch {
	boxes := newMetaBoxes(p, ps.tp.topic)
	if r.conf.fetchBatches {
		return append(out, r.fetchAsBatch(ps, p, boxes))
	}
	if ps.batcher == nil {
		b, err := r.conf.batchPolicy.NewBatcher(r.res)
		if err != nil {
			// The policy was checked when the config was parsed, so this
			// cannot happen short of a bug; without a batcher the
			// records are delivered one fetch per batch instead.
			r.log.Errorf("Creating batcher for topic %s partition %d: %v", ps.tp.topic, ps.tp.partition, err)
			return append(out, r.fetchAsBatch(ps, p, boxes))
		}
		ps.batcher = b
	}
	for _, rec := range p.Records {
		ps.pendingCount++
		ps.pendingNext, ps.pendingEpoch = rec.Offset+1, rec.LeaderEpoch
		if ps.batcher.Add(r.recordToMessage(rec, p.HighWatermark, boxes)) {
			out = r.flushPartition(ctx, ps, out)
		}
	}
	return out
}

func (r *franzReader) fetchAsBatch(ps *partitionState, p kgo.FetchPartition, boxes *metaBoxes) readyBatch {
	batch := make(service.MessageBatch, len(p.Records))
	for i, rec := range p.Records {
		batch[i] = r.recordToMessage(rec, p.HighWatermark, boxes)
	}
	last := p.Records[len(p.Records)-1]
	return readyBatch{ps: ps, cp: &checkpoint{next: last.Offset + 1, epoch: last.LeaderEpoch, size: len(batch)}, batch: batch}
}

func (r *franzReader) flushPartition(ctx context.Context, ps *partitionState, out []readyBatch) []readyBatch {
	if ps.pendingCount == 0 {
		return out
	}
	batch, err := ps.batcher.Flush(ctx)
	if err != nil {
		// Flush errors come from batch processors; the messages are lost to
		// the batcher, so hold the commit rather than skip them.
		r.log.Errorf("Flushing batch of topic %s partition %d ending at offset %d: %v", ps.tp.topic, ps.tp.partition, ps.pendingNext-1, err)
		batch = nil
	}
	cp := &checkpoint{next: ps.pendingNext, epoch: ps.pendingEpoch, size: ps.pendingCount}
	ps.pendingCount = 0
	return append(out, readyBatch{ps: ps, cp: cp, batch: batch, hold: err != nil})
}

// flushDue flushes the partitions whose batching period has elapsed.
func (r *franzReader) flushDue(ctx context.Context, out []readyBatch) []readyBatch {
	if r.conf.fetchBatches {
		return out
	}
	r.mu.Lock()
	var due []*partitionState
	for _, ps := range r.parts {
		if ps.batcher == nil || ps.pendingCount == 0 {
			continue
		}
		// An elapsed period reads as a tiny positive duration.
		if d, ok := ps.batcher.UntilNext(); ok && d <= franzFlushSlack {
			due = append(due, ps)
		}
	}
	r.mu.Unlock()
	for _, ps := range due {
		out = r.flushPartition(ctx, ps, out)
	}
	return out
}

// untilNextFlush reports how long until the earliest timed batch flush.
func (r *franzReader) untilNextFlush() (time.Duration, bool) {
	if r.conf.fetchBatches {
		return 0, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var minD time.Duration
	found := false
	for _, ps := range r.parts {
		if ps.batcher == nil || ps.pendingCount == 0 {
			continue
		}
		if d, ok := ps.batcher.UntilNext(); ok && (!found || d < minD) {
			minD, found = d, true
		}
	}
	// A poll with a context that is already done returns without records,
	// so never poll with less than the slack: due batches are flushed after
	// the poll instead.
	if found && minD < franzFlushSlack {
		minD = franzFlushSlack
	}
	return minD, found
}

// metaBoxes caches metadata values shared by the records of one partition
// fetch, so that each is converted to an interface (an allocation) once per
// fetch rather than once per record.
type metaBoxes struct {
	topic, partition any
	tsMs             int64
	tsUnix, tsMsAny  any
}

func newMetaBoxes(p kgo.FetchPartition, topic string) *metaBoxes {
	return &metaBoxes{topic: topic, partition: int64(p.Partition), tsMs: -1}
}

func (r *franzReader) recordToMessage(rec *kgo.Record, highWatermark int64, boxes *metaBoxes) *service.Message {
	// A copy: rec.Value is a slice of the fetch's decompressed batch (up to
	// megabytes), which one message still in flight would otherwise keep.
	msg := service.NewMessage(bytes.Clone(rec.Value)) // nil stays nil: a tombstone
	if ms := rec.Timestamp.UnixMilli(); ms != boxes.tsMs {
		boxes.tsMs, boxes.tsMsAny, boxes.tsUnix = ms, ms, rec.Timestamp.Unix()
	}
	msg.MetaSetMut("kafka_key", string(rec.Key))
	msg.MetaSetMut("kafka_topic", boxes.topic)
	msg.MetaSetMut("kafka_partition", boxes.partition)
	msg.MetaSetMut("kafka_offset", rec.Offset)
	msg.MetaSetMut("kafka_lag", max(highWatermark-rec.Offset-1, 0))
	msg.MetaSetMut("kafka_timestamp_unix", boxes.tsUnix)
	msg.MetaSetMut("kafka_timestamp_ms", boxes.tsMsAny)
	msg.MetaSetMut("kafka_tombstone_message", rec.Value == nil)
	if len(rec.Headers) == 0 {
		return msg
	}
	if r.conf.multiHeader {
		values := map[string][]any{}
		for _, h := range rec.Headers {
			values[h.Key] = append(values[h.Key], string(h.Value))
		}
		for k, v := range values {
			msg.MetaSetMut(k, v)
		}
	} else {
		for _, h := range rec.Headers {
			msg.MetaSetMut(h.Key, string(h.Value))
		}
	}
	return msg
}

// onAssigned records the partitions as this replica's (partitionOwners).
func (r *franzReader) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	groupOwners.assign(r.conf.group, r, assigned)
}

// onRevoked runs in the group's goroutine before the revoke completes. It
// stops delivering the revoked partitions (batches not yet read are dropped),
// waits up to revoke_ack_timeout for the acknowledgements of the batches
// already delivered, commits what was acknowledged, and only then forgets
// them, so that late acknowledgements cannot commit and the next owner
// re-reads as little as possible. The client polls nothing meanwhile
// (BlockRebalanceOnPoll).
func (r *franzReader) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	// First, so that no timer of this replica acts on the partitions while
	// their acknowledgements are awaited.
	groupOwners.release(r.conf.group, r, revoked)
	states := r.forget(ctx, cl, revoked, true)
	if len(states) == 0 {
		return
	}
	start := time.Now()
	inFlight, left := r.awaitAcks(ctx, states)
	r.mu.Lock()
	for _, ps := range states {
		ps.revoked = true
	}
	r.mu.Unlock()
	closing := false
	select {
	case <-r.closing:
		closing = true
	default:
	}
	switch {
	case closing:
		// Close committed before closing the client; benthos awaited the
		// acknowledgements before that.
	case left > 0 && r.conf.revokeAckTimeout > 0:
		r.log.Warnf("Revoking %d partitions of consumer group %s: %d of %d delivered batches still unacknowledged after %v (%s); their records will be consumed again by the next owner",
			len(states), r.conf.group, left, inFlight, time.Since(start).Round(time.Millisecond), kfiFieldRevokeAckTimeout)
	case left > 0:
		r.log.Infof("Revoking %d partitions of consumer group %s: %d delivered batches unacknowledged (%s 0s); their records will be consumed again by the next owner",
			len(states), r.conf.group, left, kfiFieldRevokeAckTimeout)
	case inFlight > 0:
		r.log.Infof("Revoking %d partitions of consumer group %s: waited %v for the acknowledgements of %d delivered batches",
			len(states), r.conf.group, time.Since(start).Round(time.Millisecond), inFlight)
	}
	r.commitMu.Lock()
	defer r.commitMu.Unlock()
	commitCtx, cancel := context.WithTimeout(ctx, franzReaderCloseTimeout)
	defer cancel()
	if err := r.commitStates(commitCtx, cl, states); err != nil {
		r.log.Errorf("Committing offsets of revoked partitions: %v", err)
	}
}

// awaitAcks waits until every batch delivered from states is acknowledged (or
// nacked), for at most revoke_ack_timeout, and returns how many batches were
// in flight when it began and how many still are.
func (r *franzReader) awaitAcks(ctx context.Context, states []*partitionState) (inFlight, left int) {
	count := func() int {
		r.mu.Lock()
		defer r.mu.Unlock()
		n := 0
		for _, ps := range states {
			n += ps.delivered
		}
		return n
	}
	inFlight = count()
	if inFlight == 0 || r.conf.revokeAckTimeout <= 0 {
		return inFlight, inFlight
	}
	timer := time.NewTimer(r.conf.revokeAckTimeout)
	defer timer.Stop()
	for left = inFlight; left > 0; left = count() {
		select {
		case <-r.releaseSig:
		case <-timer.C:
			return inFlight, count()
		case <-ctx.Done():
			return inFlight, count()
		case <-r.closing:
			return inFlight, count()
		}
	}
	return inFlight, 0
}

// onLost forgets partitions that were lost without a chance to commit: the
// member is out of the group, so its commits would be refused and waiting
// for acknowledgements gains nothing.
func (r *franzReader) onLost(ctx context.Context, cl *kgo.Client, lost map[string][]int32) {
	groupOwners.release(r.conf.group, r, lost)
	_ = r.forget(ctx, cl, lost, false)
}

// forget stops consuming the given partitions: it drops their state from the
// owned partitions and their batches not yet delivered, and returns the
// states. With release, acknowledgements of delivered batches still count
// until the caller marks the states revoked; otherwise they are revoked now.
func (r *franzReader) forget(ctx context.Context, cl *kgo.Client, tps map[string][]int32, release bool) []*partitionState {
	r.mu.Lock()
	defer r.mu.Unlock()
	var states []*partitionState
	toResume := map[string][]int32{}
	for topic, partitions := range tps {
		for _, p := range partitions {
			tp := topicPartition{topic: topic, partition: p}
			ps := r.parts[tp]
			if ps == nil {
				continue
			}
			delete(r.parts, tp)
			ps.releasing = release
			ps.revoked = !release
			if ps.batcher != nil {
				_ = ps.batcher.Close(ctx)
				ps.batcher = nil
			}
			if ps.paused {
				// Pauses outlive assignments in the client: undo it so
				// that a later reassignment fetches again.
				toResume[topic] = append(toResume[topic], p)
			}
			states = append(states, ps)
		}
	}
	if len(toResume) > 0 {
		cl.ResumeFetchPartitions(toResume)
	}
	if len(states) > 0 {
		kept := r.ready[:0]
		for _, rb := range r.ready {
			if !rb.ps.revoked && !rb.ps.releasing {
				kept = append(kept, rb)
			}
		}
		clear(r.ready[len(kept):])
		r.ready = kept
		r.signalRoom()
	}
	return states
}

func (r *franzReader) commitLoop(ctx context.Context, cl *kgo.Client) {
	t := time.NewTicker(r.conf.commitPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := r.commit(ctx, cl); err != nil && ctx.Err() == nil {
			r.log.Warnf("Committing offsets: %v", err)
		}
	}
}

// commit commits the committable offsets of every owned partition.
func (r *franzReader) commit(ctx context.Context, cl *kgo.Client) error {
	r.commitMu.Lock()
	defer r.commitMu.Unlock()
	r.mu.Lock()
	states := make([]*partitionState, 0, len(r.parts))
	for _, ps := range r.parts {
		states = append(states, ps)
	}
	r.mu.Unlock()
	return r.commitStates(ctx, cl, states)
}

// commitStates commits the committable offsets of states, if any advanced
// since their last commit. The caller holds commitMu.
func (r *franzReader) commitStates(ctx context.Context, cl *kgo.Client, states []*partitionState) error {
	offsets := map[string]map[int32]kgo.EpochOffset{}
	r.mu.Lock()
	for _, ps := range states {
		if !ps.cp.hasCommittable || ps.cp.committable <= ps.committed {
			continue
		}
		if offsets[ps.tp.topic] == nil {
			offsets[ps.tp.topic] = map[int32]kgo.EpochOffset{}
		}
		offsets[ps.tp.topic][ps.tp.partition] = kgo.EpochOffset{Epoch: ps.cp.committableEpoch, Offset: ps.cp.committable}
	}
	r.mu.Unlock()
	if len(offsets) == 0 {
		return nil
	}

	var errs []error
	cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			errs = append(errs, err)
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if perr := kerr.ErrorForCode(p.ErrorCode); perr != nil {
					errs = append(errs, fmt.Errorf("topic %s partition %d: %w", t.Topic, p.Partition, perr))
					continue
				}
				for _, ps := range states {
					if ps.tp.topic == t.Topic && ps.tp.partition == p.Partition {
						ps.committed = max(ps.committed, offsets[t.Topic][p.Partition].Offset)
					}
				}
			}
		}
	})
	return errors.Join(errs...)
}

// lagLoop exposes the lag of the consumer group as the kafka_lag gauge
// (labels consumer_group, topic, partition), for every partition of the
// group, not only those of this member.
func (r *franzReader) lagLoop(ctx context.Context, cl *kgo.Client) {
	adm := kadm.NewClient(cl)
	t := time.NewTicker(r.conf.lagRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		lags, err := adm.Lag(ctx, r.conf.group)
		if err != nil {
			r.log.Debugf("Fetching lag of consumer group %s: %v", r.conf.group, err)
			continue
		}
		for _, gl := range lags {
			for _, ml := range gl.Lag.Sorted() {
				if ml.Err == nil {
					r.lag.Set(ml.Lag, r.conf.group, ml.Topic, strconv.Itoa(int(ml.Partition)))
				}
			}
		}
	}
}

// Close stops consuming, commits what was acknowledged and leaves the group,
// within franzReaderCloseTimeout.
func (r *franzReader) Close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, franzReaderCloseTimeout)
	defer cancel()
	r.closeOnce.Do(func() { close(r.closing) })
	groupOwners.release(r.conf.group, r, nil)

	r.mu.Lock()
	cl, stop, loopDone := r.client, r.stop, r.loopDone
	r.client = nil
	r.mu.Unlock()
	if cl == nil {
		return nil
	}

	stop()
	bgDone := make(chan struct{})
	go func() {
		<-loopDone
		r.bgWG.Wait()
		close(bgDone)
	}()
	select {
	case <-bgDone:
	case <-ctx.Done():
		go cl.Close() // out of time to commit, but do not leak the client
		return fmt.Errorf("stopping kafka consumer loops: %w", ctx.Err())
	}

	var errs []error
	if r.conf.group != "" {
		if err := r.commit(ctx, cl); err != nil {
			errs = append(errs, fmt.Errorf("committing offsets on close: %w", err))
		}
	}

	closed := make(chan struct{})
	go func() {
		// Leaving the group revokes every partition; onRevoked finds
		// nothing new to commit after the commit above, and does not
		// wait: benthos awaits the pending acknowledgements before it
		// closes an input.
		cl.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("closing kafka client: %w", ctx.Err()))
	}

	r.mu.Lock()
	for tp, ps := range r.parts {
		ps.revoked = true
		if ps.batcher != nil {
			_ = ps.batcher.Close(ctx)
		}
		delete(r.parts, tp)
	}
	r.ready = nil
	r.mu.Unlock()
	return errors.Join(errs...)
}
