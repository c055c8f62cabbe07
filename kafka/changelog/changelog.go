// Package changelog is a key → value table kept in a compacted Kafka topic:
// the latest record of a key is its value. Every replica reads the whole
// topic, so state written by one replica is seen by the others once they
// catch up, and it survives restarts. It knows nothing of benthos.
//
// Catching up reads every partition up to the end offsets listed at the
// start of CatchUp. The last record of a partition is always in its active
// segment, which the log cleaner never compacts, so the end offset minus one
// is always a record a consumer will see.
package changelog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Table is the in-memory view of a compacted topic, refreshed by CatchUp and
// written through by Put. Its methods are safe for concurrent use.
type Table struct {
	cl    *kgo.Client
	adm   *kadm.Client
	topic string

	mu   sync.Mutex // guards rows and next, and serialises polling
	rows map[string][]byte
	next map[int32]int64 // per partition, the offset after the last record read
}

// Open connects a client (opts: brokers, TLS, SASL…) that reads topic from
// its start, without a consumer group, and writes to it. Nothing is read
// until CatchUp.
func Open(topic string, opts ...kgo.Opt) (*Table, error) {
	all := append([]kgo.Opt{
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	}, opts...)
	cl, err := kgo.NewClient(all...)
	if err != nil {
		return nil, fmt.Errorf("opening the changelog client for %s: %w", topic, err)
	}
	return &Table{cl: cl, adm: kadm.NewClient(cl), topic: topic, rows: map[string][]byte{}, next: map[int32]int64{}}, nil
}

// Close closes the client.
func (t *Table) Close() { t.cl.Close() }

// Len is the number of keys held.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.rows)
}

// Get returns the latest value of key as of the last CatchUp or Put.
func (t *Table) Get(key string) ([]byte, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, ok := t.rows[key]
	return v, ok
}

// CatchUp reads every record written before it was called, by this or any
// other process. An error is the cluster's (unreachable, topic missing).
func (t *Table) CatchUp(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	ends, err := t.adm.ListEndOffsets(ctx, t.topic)
	if err != nil {
		return fmt.Errorf("listing the end offsets of %s: %w", t.topic, err)
	}
	if err := ends.Error(); err != nil {
		return fmt.Errorf("listing the end offsets of %s: %w", t.topic, err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Topic == t.topic && o.Offset > t.next[o.Partition] {
			want[o.Partition] = o.Offset
		}
	})
	if len(ends) == 0 || len(ends[t.topic]) == 0 {
		return fmt.Errorf("changelog topic %s does not exist", t.topic)
	}
	for len(want) > 0 {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("catching up on %s (%d partitions behind): %w", t.topic, len(want), err)
		}
		fetches := t.cl.PollFetches(ctx)
		var ferr error
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				ferr = fmt.Errorf("reading %s partition %d: %w", topic, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		fetches.EachRecord(func(r *kgo.Record) {
			t.apply(r)
			if w, ok := want[r.Partition]; ok && r.Offset+1 >= w {
				delete(want, r.Partition)
			}
		})
	}
	return nil
}

// apply records r as its key's latest value; a nil value (tombstone)
// removes the key.
func (t *Table) apply(r *kgo.Record) {
	if r.Offset+1 > t.next[r.Partition] {
		t.next[r.Partition] = r.Offset + 1
	}
	if r.Value == nil {
		delete(t.rows, string(r.Key))
		return
	}
	t.rows[string(r.Key)] = r.Value
}

// Put writes value as key's latest and returns once the brokers hold it
// (all in-sync replicas); only then does Get return it.
func (t *Table) Put(ctx context.Context, key string, value []byte) error {
	rec := &kgo.Record{Topic: t.topic, Key: []byte(key), Value: value}
	if err := t.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("writing key %s to %s: %w", key, t.topic, err)
	}
	t.mu.Lock()
	t.rows[key] = value
	t.mu.Unlock()
	return nil
}

// Range calls f with every key's latest value, under the table's lock: f
// must not call the table.
func (t *Table) Range(f func(key string, value []byte)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, v := range t.rows {
		f(k, v)
	}
}

// Partitions returns how many partitions topic has (any topic of the
// cluster, not only the table's).
func (t *Table) Partitions(ctx context.Context, topic string) (int, error) {
	md, err := t.adm.Metadata(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("reading the metadata of %s: %w", topic, err)
	}
	td, ok := md.Topics[topic]
	if !ok {
		return 0, fmt.Errorf("topic %s is not in the metadata", topic)
	}
	if td.Err != nil {
		return 0, fmt.Errorf("topic %s: %w", topic, td.Err)
	}
	return len(td.Partitions), nil
}
