package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/redpanda-data/benthos/v4/public/service"

	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
)

// startCluster starts an in-process single broker cluster with the given
// topics and returns its address.
func startCluster(t *testing.T, partitions int32, topics ...string) string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics...))
	if err != nil {
		t.Fatalf("starting kfake cluster: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

// produceRecords writes records synchronously with a plain franz-go client.
func produceRecords(t *testing.T, addr string, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("producing %d records: %v", len(recs), err)
	}
}

// numberedRecords makes n records for one partition whose values are their
// sequence numbers.
func numberedRecords(topic string, partition int32, n int) []*kgo.Record {
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Partition: partition, Value: []byte(strconv.Itoa(i))}
	}
	return recs
}

// committedOffset returns the committed offset of a group's partition, or -1.
func committedOffset(t *testing.T, addr, group, topic string, partition int32) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	offsets, err := adm.FetchOffsets(t.Context(), group)
	if err != nil {
		t.Fatalf("fetching offsets of group %s: %v", group, err)
	}
	o, ok := offsets.Lookup(topic, partition)
	if !ok {
		return -1
	}
	return o.At
}

// received is a message seen by a test consumer.
type received struct {
	topic     string
	partition int64
	offset    int64
	key       string
	value     string
	meta      map[string]any
}

// collector records what a stream delivers, keyed by topic/partition/offset.
type collector struct {
	mu   sync.Mutex
	msgs []received
	seen map[string]int
}

func newCollector() *collector {
	return &collector{seen: map[string]int{}}
}

func recordID(topic string, partition, offset int64) string {
	return fmt.Sprintf("%s/%d/%d", topic, partition, offset)
}

func (c *collector) add(t *testing.T, batch service.MessageBatch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range batch {
		r := received{meta: map[string]any{}}
		_ = m.MetaWalkMut(func(k string, v any) error {
			r.meta[k] = v
			return nil
		})
		r.topic, _ = r.meta["kafka_topic"].(string)
		r.partition, _ = r.meta["kafka_partition"].(int64)
		r.offset, _ = r.meta["kafka_offset"].(int64)
		r.key, _ = r.meta["kafka_key"].(string)
		b, err := m.AsBytes()
		if err != nil {
			t.Errorf("reading message: %v", err)
		}
		r.value = string(b)
		c.msgs = append(c.msgs, r)
		c.seen[recordID(r.topic, r.partition, r.offset)]++
	}
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

func (c *collector) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

func (c *collector) snapshot() []received {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]received(nil), c.msgs...)
}

// runningStream is a stream run in the background by a test.
type runningStream struct {
	stream *service.Stream
	done   chan error
}

// startStream builds a stream from an input config and a consumer function
// and runs it until stopped (or the test ends).
func startStream(t *testing.T, inputYAML string, fn service.MessageBatchHandlerFunc) *runningStream {
	t.Helper()
	b := service.NewStreamBuilder()
	if err := b.SetLoggerYAML("level: warn"); err != nil {
		t.Fatal(err)
	}
	if err := b.AddInputYAML(inputYAML); err != nil {
		t.Fatalf("adding input: %v", err)
	}
	if err := b.AddBatchConsumerFunc(fn); err != nil {
		t.Fatal(err)
	}
	s, err := b.Build()
	if err != nil {
		t.Fatalf("building stream: %v", err)
	}
	rs := &runningStream{stream: s, done: make(chan error, 1)}
	go func() { rs.done <- s.Run(context.Background()) }()
	t.Cleanup(func() { rs.stop(t, 5*time.Second) })
	return rs
}

// stop stops the stream within timeout; a stream already stopped is fine.
func (rs *runningStream) stop(t *testing.T, timeout time.Duration) {
	t.Helper()
	if rs.stream == nil {
		return
	}
	err := rs.stream.StopWithin(timeout)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Logf("stopping stream: %v", err)
	}
	select {
	case <-rs.done:
	case <-time.After(timeout + 5*time.Second):
		t.Errorf("stream did not stop")
	}
	rs.stream = nil
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
