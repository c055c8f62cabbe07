// Package kafkatest holds helpers for tests that run benthos streams with the
// kafka_franz input and output: a Collector of the messages a stream
// consumed, streams run in the background until stopped, a stream run to the
// end of its input, and a polling WaitFor.
//
// It is shared by the kafka package's own tests (against the embedded kfake
// broker) and by tests/conformance (against real Kafka). It registers no
// component: a caller imports github.com/claimx/claimx-connect/kafka (the
// kafka package's tests are inside it) and the benthos components its
// configs use, such as components/pure for generate.
package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// Received is one message a test stream consumed, with the metadata the
// kafka_franz input gave it.
type Received struct {
	Topic     string         // kafka_topic
	Partition int64          // kafka_partition
	Offset    int64          // kafka_offset
	Key       string         // kafka_key
	Value     string         // the message's bytes
	Meta      map[string]any // every metadata field, headers included
}

// Collector records what a stream delivers; Distinct counts records by
// topic, partition and offset, so that redeliveries count once. It is safe
// for concurrent use.
type Collector struct {
	mu   sync.Mutex
	msgs []Received
	seen map[string]int
}

// NewCollector returns an empty Collector.
func NewCollector() *Collector {
	return &Collector{seen: map[string]int{}}
}

// Add records the messages of a batch; a message whose bytes cannot be read
// fails the test (without stopping it).
func (c *Collector) Add(t testing.TB, batch service.MessageBatch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range batch {
		r := Received{Meta: map[string]any{}}
		_ = m.MetaWalkMut(func(k string, v any) error {
			r.Meta[k] = v
			return nil
		})
		r.Topic, _ = r.Meta["kafka_topic"].(string)
		r.Partition, _ = r.Meta["kafka_partition"].(int64)
		r.Offset, _ = r.Meta["kafka_offset"].(int64)
		r.Key, _ = r.Meta["kafka_key"].(string)
		b, err := m.AsBytes()
		if err != nil {
			t.Errorf("reading message: %v", err)
		}
		r.Value = string(b)
		c.msgs = append(c.msgs, r)
		c.seen[fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset)]++
	}
}

// Count is the number of messages received, redeliveries included.
func (c *Collector) Count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

// Distinct is the number of distinct records received (topic, partition,
// offset).
func (c *Collector) Distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// Snapshot returns a copy of the messages received so far, in the order
// received.
func (c *Collector) Snapshot() []Received {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Received(nil), c.msgs...)
}

// Stream is a stream run in the background by a test.
type Stream struct {
	stream *service.Stream
	done   chan error
}

// Start runs a built stream in the background until it is stopped; when the
// test ends, a stream still running is stopped within 5 s.
func Start(t testing.TB, s *service.Stream) *Stream {
	t.Helper()
	rs := &Stream{stream: s, done: make(chan error, 1)}
	go func() { rs.done <- s.Run(context.Background()) }()
	t.Cleanup(func() { rs.Stop(t, 5*time.Second) })
	return rs
}

// StartStream builds a stream from an input config (YAML of one input, such
// as kafka_franz) into a consumer function, logging at level warn, and
// Starts it.
func StartStream(t testing.TB, inputYAML string, fn service.MessageBatchHandlerFunc) *Stream {
	t.Helper()
	b := newBuilder(t, inputYAML)
	if err := b.AddBatchConsumerFunc(fn); err != nil {
		t.Fatal(err)
	}
	s, err := b.Build()
	if err != nil {
		t.Fatalf("building stream: %v", err)
	}
	return Start(t, s)
}

// newBuilder returns a stream builder logging at level warn with the input
// of inputYAML.
func newBuilder(t testing.TB, inputYAML string) *service.StreamBuilder {
	t.Helper()
	b := service.NewStreamBuilder()
	if err := b.SetLoggerYAML("level: warn"); err != nil {
		t.Fatal(err)
	}
	if err := b.AddInputYAML(inputYAML); err != nil {
		t.Fatalf("adding input: %v", err)
	}
	return b
}

// Stop stops the stream within timeout (messages in flight are not
// acknowledged) and waits for it to end; a stream already stopped is fine.
// A stream that has not ended timeout+5s later fails the test.
func (rs *Stream) Stop(t testing.TB, timeout time.Duration) {
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

// RunProducer builds a stream from an input config into an output config
// (typically generate into kafka_franz), logging at level warn, and runs it
// until its input ends. It fails the test if the stream fails or has not
// ended within timeout.
func RunProducer(t testing.TB, inputYAML, outputYAML string, timeout time.Duration) {
	t.Helper()
	b := newBuilder(t, inputYAML)
	if err := b.AddOutputYAML(outputYAML); err != nil {
		t.Fatal(err)
	}
	s, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatalf("running producer stream: %v", err)
	}
}

// WaitFor polls cond every 10 ms until it holds; if it does not within
// timeout, the test fails and stops, naming what it waited for.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
