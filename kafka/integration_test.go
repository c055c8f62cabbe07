package kafka

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/claimx/claimx-connect/kafka/kafkatest"
)

// TestKafkaFranzRoundtrip writes through the output and reads back through
// the input: keys, headers from metadata, metadata of the input, and the order
// of each key.
func TestKafkaFranzRoundtrip(t *testing.T) {
	addr := startCluster(t, 3, "rt")
	const n = 200

	kafkatest.RunProducer(t, fmt.Sprintf(`
generate:
  count: %d
  interval: ""
  mapping: |
    let n = counter()
    root.n = $n
    meta key = "k%%d".format($n %% 7)
    meta x_trace = "trace-%%d".format($n)
    meta other = "not a header"
`, n), fmt.Sprintf(`
kafka_franz:
  seed_brokers: [ %s ]
  topic: rt
  key: ${! meta("key") }
  max_in_flight: 1
  batching:
    count: 20
  metadata:
    include_prefixes: [ "x_" ]
`, addr), 30*time.Second)

	col := kafkatest.NewCollector()
	kafkatest.StartStream(t, fmt.Sprintf(`
kafka_franz:
  seed_brokers: [ %s ]
  topics: [ rt ]
  consumer_group: rt
`, addr), func(_ context.Context, batch service.MessageBatch) error {
		col.Add(t, batch)
		return nil
	})
	kafkatest.WaitFor(t, 20*time.Second, "all messages", func() bool { return col.Distinct() == n })

	lastN := map[string]int{}
	partitionOfKey := map[string]int64{}
	for _, r := range col.Snapshot() {
		var body struct{ N int }
		if _, err := fmt.Sscanf(r.Value, `{"n":%d}`, &body.N); err != nil {
			t.Fatalf("message %q: %v", r.Value, err)
		}
		if want := fmt.Sprintf("k%d", body.N%7); r.Key != want {
			t.Errorf("message %d: kafka_key %q, want %q", body.N, r.Key, want)
		}
		if got, want := r.Meta["x_trace"], fmt.Sprintf("trace-%d", body.N); got != want {
			t.Errorf("message %d: header x_trace %v, want %s", body.N, got, want)
		}
		for _, absent := range []string{"other", "key"} {
			if _, ok := r.Meta[absent]; ok {
				t.Errorf("message %d: metadata %q leaked into headers", body.N, absent)
			}
		}
		if r.Topic != "rt" {
			t.Errorf("message %d: kafka_topic %q", body.N, r.Topic)
		}
		if p, ok := partitionOfKey[r.Key]; ok && p != r.Partition {
			t.Errorf("key %s in partitions %d and %d", r.Key, p, r.Partition)
		}
		partitionOfKey[r.Key] = r.Partition
		ms, _ := r.Meta["kafka_timestamp_ms"].(int64)
		unix, _ := r.Meta["kafka_timestamp_unix"].(int64)
		if ms <= 0 || unix != ms/1000 {
			t.Errorf("message %d: timestamps ms=%v unix=%v", body.N, r.Meta["kafka_timestamp_ms"], r.Meta["kafka_timestamp_unix"])
		}
		if tomb, ok := r.Meta["kafka_tombstone_message"].(bool); !ok || tomb {
			t.Errorf("message %d: kafka_tombstone_message %v", body.N, r.Meta["kafka_tombstone_message"])
		}
		if lag, ok := r.Meta["kafka_lag"].(int64); !ok || lag < 0 {
			t.Errorf("message %d: kafka_lag %v", body.N, r.Meta["kafka_lag"])
		}
		if prev, ok := lastN[r.Key]; ok && body.N <= prev {
			t.Errorf("key %s: message %d after %d, order lost", r.Key, body.N, prev)
		}
		lastN[r.Key] = body.N
	}
}

// TestKafkaFranzInputMetadata checks the metadata of records with repeated
// headers and tombstones, with and without multi_header.
func TestKafkaFranzInputMetadata(t *testing.T) {
	addr := startCluster(t, 1, "meta")
	ts := time.UnixMilli(1_700_000_000_123)
	produceRecords(t, addr,
		&kgo.Record{Topic: "meta", Key: []byte("k1"), Value: []byte("v1"), Timestamp: ts, Headers: []kgo.RecordHeader{
			{Key: "h", Value: []byte("a")}, {Key: "h", Value: []byte("b")}, {Key: "single", Value: []byte("s")},
		}},
		&kgo.Record{Topic: "meta", Key: []byte("k2"), Value: nil, Timestamp: ts},
	)
	tests := []struct {
		multiHeader bool
		wantH       any
		wantSingle  any
	}{
		{multiHeader: false, wantH: "b", wantSingle: "s"},
		{multiHeader: true, wantH: []any{"a", "b"}, wantSingle: []any{"s"}},
	}
	for _, test := range tests {
		t.Run(fmt.Sprintf("multi_header=%v", test.multiHeader), func(t *testing.T) {
			rdr := newTestReader(t, fmt.Sprintf("seed_brokers: [ %s ]\ntopics: [ meta ]\nmulti_header: %v\nfetch_max_wait: 100ms\n", addr, test.multiHeader))
			col := kafkatest.NewCollector()
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			for col.Count() < 2 {
				batch, ack, err := rdr.ReadBatch(ctx)
				if err != nil {
					t.Fatalf("reading: %v", err)
				}
				col.Add(t, batch)
				_ = ack(ctx, nil)
			}
			msgs := col.Snapshot()
			first, second := msgs[0], msgs[1]
			checks := []struct {
				name      string
				got, want any
			}{
				{"key", first.Meta["kafka_key"], "k1"},
				{"partition", first.Meta["kafka_partition"], int64(0)},
				{"offset", first.Meta["kafka_offset"], int64(0)},
				{"timestamp_ms", first.Meta["kafka_timestamp_ms"], ts.UnixMilli()},
				{"timestamp_unix", first.Meta["kafka_timestamp_unix"], ts.Unix()},
				{"lag", first.Meta["kafka_lag"], int64(1)},
				{"tombstone", first.Meta["kafka_tombstone_message"], false},
				{"header h", first.Meta["h"], test.wantH},
				{"header single", first.Meta["single"], test.wantSingle},
				{"second offset", second.Meta["kafka_offset"], int64(1)},
				{"second lag", second.Meta["kafka_lag"], int64(0)},
				{"second tombstone", second.Meta["kafka_tombstone_message"], true},
			}
			for _, c := range checks {
				if fmt.Sprintf("%#v", c.got) != fmt.Sprintf("%#v", c.want) {
					t.Errorf("%s: got %#v, want %#v", c.name, c.got, c.want)
				}
			}
		})
	}
}

// TestKafkaFranzRebalance runs a second member of a group while the first
// consumes, then stops the first: every record is consumed at least once.
func TestKafkaFranzRebalance(t *testing.T) {
	addr := startCluster(t, 4, "rb")

	// Records keep arriving while members join and leave, until stopProducing.
	stopProducing := make(chan struct{})
	var produced atomic.Int64
	produceDone := make(chan struct{})
	go func() {
		defer close(produceDone)
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
		if err != nil {
			t.Error(err)
			return
		}
		defer cl.Close()
		for i := 0; ; i += 100 {
			select {
			case <-stopProducing:
				return
			default:
			}
			var recs []*kgo.Record
			for j := i; j < i+100; j++ {
				recs = append(recs, &kgo.Record{Topic: "rb", Key: []byte(strconv.Itoa(j % 13)), Value: []byte(strconv.Itoa(j))})
			}
			if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
				t.Errorf("producing: %v", err)
				return
			}
			produced.Add(100)
			time.Sleep(10 * time.Millisecond)
		}
	}()

	col := kafkatest.NewCollector()
	var members [2]atomic.Int64
	consumer := func(member int) service.MessageBatchHandlerFunc {
		return func(_ context.Context, batch service.MessageBatch) error {
			col.Add(t, batch)
			members[member].Add(int64(len(batch)))
			time.Sleep(2 * time.Millisecond) // let the rebalance land mid-stream
			return nil
		}
	}
	conf := fmt.Sprintf(`
kafka_franz:
  seed_brokers: [ %s ]
  topics: [ rb ]
  consumer_group: rbg
  commit_period: 100ms
  heartbeat_interval: 100ms
  session_timeout: 10s
  rebalance_timeout: 5s
  batching:
    count: 20
    period: 50ms
`, addr)
	first := kafkatest.StartStream(t, conf, consumer(0))
	kafkatest.WaitFor(t, 20*time.Second, "first member to consume", func() bool { return col.Distinct() > 500 })
	kafkatest.StartStream(t, conf, consumer(1))
	kafkatest.WaitFor(t, 20*time.Second, "second member to get partitions", func() bool { return members[1].Load() > 0 })
	firstBefore := members[0].Load()
	kafkatest.WaitFor(t, 20*time.Second, "first member to keep consuming after the rebalance", func() bool { return members[0].Load() > firstBefore+100 })
	first.Stop(t, 10*time.Second)
	secondBefore := members[1].Load()
	kafkatest.WaitFor(t, 20*time.Second, "second member to take over", func() bool { return members[1].Load() > secondBefore+500 })
	close(stopProducing)
	<-produceDone
	total := int(produced.Load())
	kafkatest.WaitFor(t, 30*time.Second, "every record", func() bool { return col.Distinct() == total })

	seen := map[string]bool{}
	for _, r := range col.Snapshot() {
		seen[r.Value] = true
	}
	for i := range total {
		if !seen[strconv.Itoa(i)] {
			t.Errorf("record %d never consumed", i)
		}
	}
	t.Logf("consumed %d messages for %d records (%d duplicates); members consumed %d and %d",
		col.Count(), total, col.Count()-total, members[0].Load(), members[1].Load())
}

// TestKafkaFranzRedeliverUnacked stops a member while it holds unacknowledged
// messages: the next member of the group gets exactly those again.
func TestKafkaFranzRedeliverUnacked(t *testing.T) {
	addr := startCluster(t, 1, "unacked")
	produceRecords(t, addr, numberedRecords("unacked", 0, 100)...)
	conf := fmt.Sprintf(`
kafka_franz:
  seed_brokers: [ %s ]
  topics: [ unacked ]
  consumer_group: ug
  commit_period: 50ms
  batching:
    count: 10
`, addr)

	var acked atomic.Int64
	blocked := make(chan struct{}, 10)
	first := kafkatest.StartStream(t, conf, func(ctx context.Context, batch service.MessageBatch) error {
		if off, _ := batch[0].MetaGetMut("kafka_offset"); off.(int64) < 50 {
			acked.Add(int64(len(batch)))
			return nil
		}
		// Hold the batch until the stream is killed: never acknowledged.
		blocked <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	})
	kafkatest.WaitFor(t, 10*time.Second, "50 acks and a blocked batch", func() bool { return acked.Load() == 50 && len(blocked) > 0 })
	first.Stop(t, time.Second)

	if got := committedOffset(t, addr, "ug", "unacked", 0); got != 50 {
		t.Fatalf("committed offset %d after acking offsets 0-49, want 50", got)
	}

	col := kafkatest.NewCollector()
	kafkatest.StartStream(t, conf, func(_ context.Context, batch service.MessageBatch) error {
		col.Add(t, batch)
		return nil
	})
	kafkatest.WaitFor(t, 10*time.Second, "the unacked messages", func() bool { return col.Distinct() == 50 })
	time.Sleep(200 * time.Millisecond) // anything below offset 50 would have come first
	for _, r := range col.Snapshot() {
		if r.Offset < 50 {
			t.Errorf("acknowledged offset %d delivered again", r.Offset)
		}
	}
}

// TestKafkaFranzOutOfOrderAcks acknowledges batches in random order and
// checks after each commit that the committed offset never passes a batch
// that is not acknowledged.
func TestKafkaFranzOutOfOrderAcks(t *testing.T) {
	addr := startCluster(t, 1, "ooo")
	const n = 40
	produceRecords(t, addr, numberedRecords("ooo", 0, n)...)
	rdr := newTestReader(t, fmt.Sprintf(`
seed_brokers: [ %s ]
topics: [ ooo ]
consumer_group: ooo
commit_period: 1h
batching:
  count: 1
`, addr))

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	acks := make([]service.AckFunc, n)
	for read := 0; read < n; read++ {
		batch, ack, err := rdr.ReadBatch(ctx)
		if err != nil {
			t.Fatalf("reading: %v", err)
		}
		off, _ := batch[0].MetaGetMut("kafka_offset")
		acks[off.(int64)] = ack
	}

	order := rand.New(rand.NewPCG(7, 7)).Perm(n)
	acked := make([]bool, n)
	for _, i := range order {
		if err := acks[i](ctx, nil); err != nil {
			t.Fatal(err)
		}
		acked[i] = true
		if err := rdr.commit(ctx, rdr.client); err != nil {
			t.Fatalf("committing: %v", err)
		}
		firstUnacked := slices.Index(acked, false)
		if firstUnacked < 0 {
			firstUnacked = n
		}
		want := int64(firstUnacked)
		if firstUnacked == 0 {
			want = -1 // nothing committable yet
		}
		if got := committedOffset(t, addr, "ooo", "ooo", 0); got != want {
			t.Fatalf("after acking offset %d: committed %d, want %d (first unacked)", i, got, want)
		}
	}
}

// readUntilQuiet reads batches without acknowledging them until none comes
// for 500ms, and returns their messages and acknowledgement functions.
func readUntilQuiet(t *testing.T, rdr *franzReader) ([]*service.Message, []service.AckFunc) {
	t.Helper()
	var msgs []*service.Message
	var acks []service.AckFunc
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		batch, ack, err := rdr.ReadBatch(ctx)
		cancel()
		if err != nil {
			return msgs, acks
		}
		msgs = append(msgs, batch...)
		acks = append(acks, ack)
	}
}

// TestKafkaFranzCheckpointLimitPauses checks that a partition stops being
// fetched when checkpoint_limit messages are unacknowledged, and resumes.
func TestKafkaFranzCheckpointLimitPauses(t *testing.T) {
	addr := startCluster(t, 1, "pause")
	for _, r := range numberedRecords("pause", 0, 100) {
		produceRecords(t, addr, r) // one record batch each, so fetches can be small
	}
	rdr := newTestReader(t, fmt.Sprintf(`
seed_brokers: [ %s ]
topics: [ pause ]
checkpoint_limit: 5
fetch_max_partition_bytes: 1B
fetch_max_wait: 50ms
batching:
  count: 1
`, addr))

	_, acks := readUntilQuiet(t, rdr)
	// A fetch already in flight when the pause lands may add a little.
	if len(acks) < 5 || len(acks) > 10 {
		t.Fatalf("read %d messages without acking, want the checkpoint limit of 5 (plus at most one fetch)", len(acks))
	}
	for _, ack := range acks {
		_ = ack(t.Context(), nil)
	}
	if _, more := readUntilQuiet(t, rdr); len(more) == 0 {
		t.Fatalf("partition not resumed after acknowledging")
	}
}

// TestKafkaFranzCheckpointLimitBoundsPolls checks that a fetch of many
// records never puts more than checkpoint_limit messages of a partition in
// flight, that every partition reaches the limit, and that acknowledging
// lets the next ones through.
func TestKafkaFranzCheckpointLimitBoundsPolls(t *testing.T) {
	const limit, perPartition = 100, 1000
	for _, tc := range []struct {
		name       string
		partitions int32
		batching   string
	}{
		{"one partition, a batch per fetch", 1, ""},
		{"three partitions, a batch per fetch", 3, ""},
		{"three partitions, batches of 10", 3, "batching:\n  count: 10\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := startCluster(t, tc.partitions, "bound")
			for p := range tc.partitions {
				produceRecords(t, addr, numberedRecords("bound", p, perPartition)...)
			}
			rdr := newTestReader(t, fmt.Sprintf("seed_brokers: [ %s ]\ntopics: [ bound ]\ncheckpoint_limit: %d\n%s", addr, limit, tc.batching))

			for round := 1; round <= 2; round++ {
				msgs, acks := readUntilQuiet(t, rdr)
				perPart := map[int64]int{}
				for _, m := range msgs {
					p, _ := m.MetaGetMut("kafka_partition")
					perPart[p.(int64)]++
				}
				for p := range int64(tc.partitions) {
					if perPart[p] != limit {
						t.Fatalf("round %d: partition %d has %d messages in flight, want checkpoint_limit %d (all: %v)", round, p, perPart[p], limit, perPart)
					}
				}
				for _, ack := range acks {
					if err := ack(t.Context(), nil); err != nil {
						t.Fatal(err)
					}
				}
			}
		})
	}
}

// TestKafkaFranzNackRedelivered rejects a message once: with auto replay it is
// delivered again and nothing is skipped.
func TestKafkaFranzNackRedelivered(t *testing.T) {
	addr := startCluster(t, 1, "nack")
	const n = 20
	produceRecords(t, addr, numberedRecords("nack", 0, n)...)
	col := kafkatest.NewCollector()
	var nacked atomic.Bool
	kafkatest.StartStream(t, fmt.Sprintf(`
kafka_franz:
  seed_brokers: [ %s ]
  topics: [ nack ]
  consumer_group: nack
  batching:
    count: 1
`, addr), func(_ context.Context, batch service.MessageBatch) error {
		if off, _ := batch[0].MetaGetMut("kafka_offset"); off.(int64) == 5 && nacked.CompareAndSwap(false, true) {
			return fmt.Errorf("deliberate failure")
		}
		col.Add(t, batch)
		return nil
	})
	kafkatest.WaitFor(t, 10*time.Second, "every message", func() bool { return col.Distinct() == n })
	if !nacked.Load() {
		t.Fatal("message 5 was never rejected")
	}
	if col.Snapshot()[0].Offset != 0 {
		t.Errorf("first delivered offset %d", col.Snapshot()[0].Offset)
	}
}

// TestKafkaFranzNackWithoutReplayHoldsCommit rejects a message with
// auto_replay_nacks false: the commit stops before it, so the next reader of
// the group gets it again.
func TestKafkaFranzNackWithoutReplayHoldsCommit(t *testing.T) {
	addr := startCluster(t, 1, "hold")
	const n = 10
	produceRecords(t, addr, numberedRecords("hold", 0, n)...)
	conf := fmt.Sprintf(`
seed_brokers: [ %s ]
topics: [ hold ]
consumer_group: hold
auto_replay_nacks: false
commit_period: 1h
batching:
  count: 1
`, addr)
	rdr := newTestReader(t, conf)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for range n {
		batch, ack, err := rdr.ReadBatch(ctx)
		if err != nil {
			t.Fatalf("reading: %v", err)
		}
		var ackErr error
		if off, _ := batch[0].MetaGetMut("kafka_offset"); off.(int64) == 3 {
			ackErr = fmt.Errorf("deliberate failure")
		}
		_ = ack(ctx, ackErr)
	}
	if err := rdr.Close(ctx); err != nil {
		t.Fatalf("closing: %v", err)
	}
	if got := committedOffset(t, addr, "hold", "hold", 0); got != 3 {
		t.Fatalf("committed offset %d, want 3 (the rejected message)", got)
	}
	next := newTestReader(t, conf)
	batch, _, err := next.ReadBatch(ctx)
	if err != nil {
		t.Fatalf("reading again: %v", err)
	}
	if off, _ := batch[0].MetaGetMut("kafka_offset"); off.(int64) != 3 {
		t.Fatalf("next reader starts at offset %v, want 3", off)
	}
}

// TestKafkaFranzBatching checks that batches never mix partitions and that a
// partial batch is flushed by its period.
func TestKafkaFranzBatching(t *testing.T) {
	addr := startCluster(t, 3, "batch")
	for p := int32(0); p < 3; p++ {
		produceRecords(t, addr, numberedRecords("batch", p, 10)...)
	}
	rdr := newTestReader(t, fmt.Sprintf(`
seed_brokers: [ %s ]
topics: [ batch ]
consumer_group: batch
batching:
  count: 4
  period: 200ms
`, addr))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	sizes := map[int64][]int{}
	total := 0
	for total < 30 {
		batch, ack, err := rdr.ReadBatch(ctx)
		if err != nil {
			t.Fatalf("reading after %d messages: %v", total, err)
		}
		p, _ := batch[0].MetaGetMut("kafka_partition")
		for _, m := range batch {
			if mp, _ := m.MetaGetMut("kafka_partition"); mp != p {
				t.Fatalf("batch mixes partitions %v and %v", p, mp)
			}
		}
		sizes[p.(int64)] = append(sizes[p.(int64)], len(batch))
		total += len(batch)
		_ = ack(ctx, nil)
	}
	for p, s := range sizes {
		// 10 records per partition: two full batches and a remainder of 2
		// that only the period can flush.
		if !slices.Equal(s, []int{4, 4, 2}) {
			t.Errorf("partition %d batch sizes %v, want [4 4 2]", p, s)
		}
	}
}

// TestKafkaFranzStaleAcksAfterRevoke holds messages of two partitions, of
// which the first three of each are acknowledged, and lets a second member
// take one partition: the revoke waits revoke_ack_timeout for the rest, then
// commits the acknowledged prefix (commits are otherwise hourly), and
// acknowledging the rest afterwards commits only the partition still owned.
func TestKafkaFranzStaleAcksAfterRevoke(t *testing.T) {
	addr := startCluster(t, 2, "stale")
	for p := int32(0); p < 2; p++ {
		produceRecords(t, addr, numberedRecords("stale", p, 10)...)
	}
	conf := fmt.Sprintf(`
seed_brokers: [ %s ]
topics: [ stale ]
consumer_group: stale
commit_period: 1h
heartbeat_interval: 100ms
revoke_ack_timeout: 300ms
batching:
  count: 1
`, addr)
	first := newTestReader(t, conf)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var held []service.AckFunc
	for range 20 {
		batch, ack, err := first.ReadBatch(ctx)
		if err != nil {
			t.Fatalf("reading: %v", err)
		}
		if off, _ := batch[0].MetaGetMut("kafka_offset"); off.(int64) < 3 {
			_ = ack(ctx, nil)
			continue
		}
		held = append(held, ack)
	}

	start := time.Now()
	second := newTestReader(t, conf)
	batch, _, err := second.ReadBatch(ctx)
	if err != nil {
		t.Fatalf("second member reading: %v", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("the second member read after %v: the revoke did not wait revoke_ack_timeout", d)
	}
	moved, _ := batch[0].MetaGetMut("kafka_partition")
	movedP := int32(moved.(int64))
	keptP := 1 - movedP
	if off, _ := batch[0].MetaGetMut("kafka_offset"); off.(int64) != 3 {
		t.Errorf("second member starts partition %d at offset %v, want 3 (committed on revoke)", movedP, off)
	}
	if got := committedOffset(t, addr, "stale", "stale", movedP); got != 3 {
		t.Errorf("partition %d revoked: committed %d, want the acknowledged prefix 3", movedP, got)
	}

	for _, ack := range held {
		_ = ack(ctx, nil)
	}
	if err := first.commit(ctx, first.client); err != nil {
		t.Fatalf("committing: %v", err)
	}
	if got := committedOffset(t, addr, "stale", "stale", movedP); got != 3 {
		t.Errorf("partition %d moved to another member, yet stale acks moved its commit to %d", movedP, got)
	}
	if got := committedOffset(t, addr, "stale", "stale", keptP); got != 10 {
		t.Errorf("partition %d still owned: committed %d, want 10", keptP, got)
	}
}

// TestKafkaFranzRegexpTopics consumes the topics matching a pattern, with and
// without a consumer group.
func TestKafkaFranzRegexpTopics(t *testing.T) {
	addr := startCluster(t, 1, "claimx.a", "claimx.b", "other")
	for _, topic := range []string{"claimx.a", "claimx.b", "other"} {
		produceRecords(t, addr, numberedRecords(topic, 0, 3)...)
	}
	for _, group := range []string{"", "consumer_group: re"} {
		t.Run(fmt.Sprintf("group=%q", group), func(t *testing.T) {
			rdr := newTestReader(t, fmt.Sprintf("seed_brokers: [ %s ]\ntopics: [ '^claimx\\..*' ]\nregexp_topics: true\nfetch_max_wait: 100ms\n%s\n", addr, group))
			col := kafkatest.NewCollector()
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			for col.Count() < 6 {
				batch, ack, err := rdr.ReadBatch(ctx)
				if err != nil {
					t.Fatalf("reading after %d messages: %v", col.Count(), err)
				}
				col.Add(t, batch)
				_ = ack(ctx, nil)
			}
			quiet, cancelQuiet := context.WithTimeout(t.Context(), 300*time.Millisecond)
			defer cancelQuiet()
			if batch, _, err := rdr.ReadBatch(quiet); err == nil {
				col.Add(t, batch)
			}
			topics := map[string]int{}
			for _, r := range col.Snapshot() {
				topics[r.Topic]++
			}
			if topics["claimx.a"] != 3 || topics["claimx.b"] != 3 || len(topics) != 2 {
				t.Errorf("messages per topic %v, want 3 of each claimx topic only", topics)
			}
		})
	}
}
