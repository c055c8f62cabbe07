package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/redpanda-data/benthos/v4/public/service"
)

func newTestWriter(t *testing.T, yaml string) *franzWriter {
	t.Helper()
	pConf, err := franzKafkaOutputSpec().ParseYAML(yaml, nil)
	if err != nil {
		t.Fatalf("parsing config: %v", err)
	}
	w, err := newFranzWriterFromConfig(pConf, service.MockResources())
	if err != nil {
		t.Fatalf("creating writer: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := w.Connect(ctx); err != nil {
		t.Fatalf("connecting: %v", err)
	}
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	return w
}

// TestKafkaFranzOutputPartialFailure writes a batch in which some messages
// cannot be produced: only those are failed, each with its own reason, and
// the others are written.
func TestKafkaFranzOutputPartialFailure(t *testing.T) {
	addr := startCluster(t, 2, "partial")
	w := newTestWriter(t, fmt.Sprintf(`
seed_brokers: [ %s ]
topic: partial
partitioner: manual
partition: ${! meta("p") }
timeout: 2s
`, addr))

	batch := service.MessageBatch{}
	for i, p := range []string{"0", "not-a-number", "1", "9", "0"} {
		m := service.NewMessage(fmt.Appendf(nil, "m%d", i))
		m.MetaSetMut("p", p)
		batch = append(batch, m)
	}
	idx := batch.Index()
	err := w.WriteBatch(t.Context(), batch)
	var bErr *service.BatchError
	if !errors.As(err, &bErr) {
		t.Fatalf("expected a batch error, got %v", err)
	}
	failed := map[int]string{}
	bErr.WalkMessagesIndexedBy(idx, func(i int, _ *service.Message, err error) bool {
		if err != nil {
			failed[i] = err.Error()
		}
		return true
	})
	if len(failed) != 2 || bErr.IndexedErrors() != 2 {
		t.Fatalf("failed messages %v, want indexes 1 and 3", failed)
	}
	if !strings.Contains(failed[1], "not a partition number") {
		t.Errorf("message 1 error %q does not give the reason", failed[1])
	}
	if !strings.Contains(failed[3], "topic partial partition 9") {
		t.Errorf("message 3 error %q does not name topic and partition", failed[3])
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("partial"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := map[string]int32{}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for len(got) < 3 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got[string(r.Value)] = r.Partition })
	}
	want := map[string]int32{"m0": 0, "m2": 1, "m4": 0}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("written records %v, want %v", got, want)
	}
}

// TestKafkaFranzOutputRecordFields checks timestamp, key, partitioners and
// header values of structured metadata.
func TestKafkaFranzOutputRecordFields(t *testing.T) {
	addr := startCluster(t, 4, "fields")
	tests := []struct {
		name        string
		partitioner string
	}{
		{name: "default murmur2"},
		{name: "murmur2 explicit", partitioner: "partitioner: murmur2_hash"},
		{name: "round robin", partitioner: "partitioner: round_robin"},
		{name: "least backup", partitioner: "partitioner: least_backup"},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			w := newTestWriter(t, fmt.Sprintf(`
seed_brokers: [ %s ]
topic: fields
key: ${! meta("k") }
timestamp_ms: "1700000000123"
compression: zstd
metadata:
  include_patterns: [ "^h" ]
%s
`, addr, test.partitioner))
			m := service.NewMessage([]byte("v"))
			m.MetaSetMut("k", "the-key")
			m.MetaSetMut("h_list", []any{"a", "b"})
			m.MetaSetMut("h_num", int64(7))
			m.MetaSetMut("other", "x")
			if err := w.WriteBatch(t.Context(), service.MessageBatch{m}); err != nil {
				t.Fatalf("writing: %v", err)
			}
		})
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("fields"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for len(recs) < len(tests) && ctx.Err() == nil {
		recs = append(recs, cl.PollFetches(ctx).Records()...)
	}
	if len(recs) != len(tests) {
		t.Fatalf("read %d records, want %d", len(recs), len(tests))
	}
	// The partition of "the-key" over 4 partitions by kgo's Kafka-compatible
	// murmur2 hasher; both murmur2 writes must land there.
	const keyPartition = 0
	murmurCount := 0
	for _, r := range recs {
		if string(r.Key) != "the-key" || r.Timestamp.UnixMilli() != 1700000000123 {
			t.Errorf("record key %q timestamp %d", r.Key, r.Timestamp.UnixMilli())
		}
		var hdrs []string
		for _, h := range r.Headers {
			hdrs = append(hdrs, h.Key+"="+string(h.Value))
		}
		if s := strings.Join(hdrs, ","); s != "h_list=a,h_list=b,h_num=7" && s != "h_num=7,h_list=a,h_list=b" {
			t.Errorf("headers %q", s)
		}
		if r.Partition == keyPartition {
			murmurCount++
		}
	}
	if murmurCount < 2 {
		t.Errorf("murmur2 records not in partition %d: %d of the records are", keyPartition, murmurCount)
	}
}

// TestMessageValueMatchesBenthos checks that a structured message is
// published as the bytes benthos itself would give it, and that raw bytes
// are published as they are.
func TestMessageValueMatchesBenthos(t *testing.T) {
	for name, v := range map[string]any{
		"object":  map[string]any{"b": "<&>", "a": []any{1.5, 1e21, nil, true}, "é": map[string]any{"x": "\u2028\xff"}},
		"array":   []any{"x", 0.000001, -0.0000001, map[string]any{}},
		"string":  "a\"b\\c\n",
		"number":  42.0,
		"null":    nil,
		"integer": int64(-7),
	} {
		t.Run(name, func(t *testing.T) {
			msg := service.NewMessage(nil)
			msg.SetStructured(v)
			got, err := messageValue(msg)
			if err != nil {
				t.Fatal(err)
			}
			ref := service.NewMessage(nil)
			ref.SetStructured(v)
			want, _ := ref.AsBytes()
			if string(got) != string(want) {
				t.Fatalf("got %s, benthos writes %s", got, want)
			}
		})
	}
	raw := service.NewMessage([]byte(`{"kept": "as is" }`))
	if got, _ := messageValue(raw); string(got) != `{"kept": "as is" }` {
		t.Fatalf("raw message changed: %s", got)
	}
}
