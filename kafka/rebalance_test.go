package kafka

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/claimx/claimx-connect/kafka/kafkatest"
)

// TestKafkaFranzGroupOptions checks that instance_id makes the member static
// (kgo.InstanceID), that an empty one (as `${KAFKA_INSTANCE_ID:}` gives when
// the variable is unset) leaves it dynamic, and how revoke_ack_timeout parses.
func TestKafkaFranzGroupOptions(t *testing.T) {
	const base = "seed_brokers: [127.0.0.1:1]\ntopics: [foo]\nconsumer_group: g\n"
	tests := []struct {
		name       string
		yaml       string
		wantID     string // "" for a dynamic member
		wantRevoke time.Duration
		errContain string
	}{
		{name: "defaults: dynamic, revoke waits 5s", yaml: base, wantRevoke: 5 * time.Second},
		{name: "instance id", yaml: base + "instance_id: claimx-worker-1\n", wantID: "claimx-worker-1", wantRevoke: 5 * time.Second},
		{name: "empty instance id is dynamic", yaml: base + "instance_id: \"\"\n", wantRevoke: 5 * time.Second},
		{name: "no revoke wait", yaml: base + "revoke_ack_timeout: 0s\n"},
		{name: "revoke wait below rebalance timeout", yaml: base + "revoke_ack_timeout: 10s\nrebalance_timeout: 11s\n", wantRevoke: 10 * time.Second},
		{name: "revoke wait not below rebalance timeout is halved", yaml: base + "revoke_ack_timeout: 45s\n", wantRevoke: 22500 * time.Millisecond},
		{name: "default revoke wait with a short rebalance timeout", yaml: base + "rebalance_timeout: 5s\n", wantRevoke: 2500 * time.Millisecond},
		{name: "negative revoke wait", yaml: base + "revoke_ack_timeout: -1s\n", errContain: "negative"},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			pConf, err := franzKafkaInputSpec().ParseYAML(test.yaml, nil)
			if err != nil {
				t.Fatalf("parsing yaml: %v", err)
			}
			c, err := franzReaderConfigFromParsed(pConf)
			if test.errContain != "" {
				if err == nil || !strings.Contains(err.Error(), test.errContain) {
					t.Fatalf("expected error containing %q, got %v", test.errContain, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.revokeAckTimeout != test.wantRevoke {
				t.Errorf("revoke_ack_timeout %v, want %v", c.revokeAckTimeout, test.wantRevoke)
			}
			// The client is not started by NewClient: only its options are read.
			cl, err := kgo.NewClient(c.clientOpts...)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			got := cl.OptValues(kgo.InstanceID) // [id, set]
			if id, set := got[0].(string), got[1].(bool); id != test.wantID || set != (test.wantID != "") {
				t.Errorf("kgo.InstanceID = %q (set %v), want %q", id, set, test.wantID)
			}
		})
	}
}

// TestKafkaFranzStaticMemberRestart closes a static member and starts it
// again with the same instance_id: while it is away its partition is not
// given to the other member (it did not leave), and once back it gets the
// same partition and resumes from its commit at once. kfake rebalances on
// that rejoin (it compares the join metadata, which the cooperative-sticky
// balancer fills with the partitions owned; Kafka compares only the
// protocol), so "no rebalance" is measured on real Kafka by
// TestRestartIdleTime.
func TestKafkaFranzStaticMemberRestart(t *testing.T) {
	addr := startCluster(t, 2, "static")
	for p := int32(0); p < 2; p++ {
		produceRecords(t, addr, numberedRecords("static", p, 5)...)
	}
	conf := func(id string) string {
		return fmt.Sprintf(`
seed_brokers: [ %s ]
topics: [ static ]
consumer_group: static
instance_id: %s
commit_period: 50ms
heartbeat_interval: 100ms
session_timeout: 30s
batching:
  count: 1
`, addr, id)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	a := newTestReader(t, conf("member-a"))
	b := newTestReader(t, conf("member-b"))
	partitionsOf := func(r *franzReader) []int32 {
		r.mu.Lock()
		defer r.mu.Unlock()
		var ps []int32
		for tp := range r.parts {
			ps = append(ps, tp.partition)
		}
		return ps
	}
	// Each member reads and acknowledges its partition.
	var aPartition int32 = -1
	for read := 0; read < 10; {
		for _, r := range []*franzReader{a, b} {
			rctx, rcancel := context.WithTimeout(ctx, 200*time.Millisecond)
			batch, ack, err := r.ReadBatch(rctx)
			rcancel()
			if err != nil {
				continue
			}
			if r == a {
				p, _ := batch[0].MetaGetMut("kafka_partition")
				aPartition = int32(p.(int64))
			}
			_ = ack(ctx, nil)
			read++
		}
	}
	kafkatest.WaitFor(t, 10*time.Second, "each member to own one partition", func() bool {
		return len(partitionsOf(a)) == 1 && len(partitionsOf(b)) == 1
	})
	kafkatest.WaitFor(t, 10*time.Second, "the commits", func() bool {
		return committedOffset(t, addr, "static", "static", 0) == 5 && committedOffset(t, addr, "static", "static", 1) == 5
	})
	bParts := partitionsOf(b)

	if err := a.Close(ctx); err != nil {
		t.Fatalf("closing member a: %v", err)
	}
	// A static member does not leave: nothing is rebalanced while it is away.
	time.Sleep(500 * time.Millisecond)
	if got := partitionsOf(b); len(got) != 1 || got[0] != bParts[0] {
		t.Fatalf("member b owns %v while a is away, want %v", got, bParts)
	}

	produceRecords(t, addr, &kgo.Record{Topic: "static", Partition: aPartition, Value: []byte("after restart")})
	start := time.Now()
	a2 := newTestReader(t, conf("member-a"))
	batch, ack, err := a2.ReadBatch(ctx)
	if err != nil {
		t.Fatalf("restarted member reading: %v", err)
	}
	_ = ack(ctx, nil)
	p, _ := batch[0].MetaGetMut("kafka_partition")
	off, _ := batch[0].MetaGetMut("kafka_offset")
	if int32(p.(int64)) != aPartition || off.(int64) != 5 {
		t.Errorf("restarted member read partition %v offset %v, want partition %d offset 5", p, off, aPartition)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the restarted static member read its first record after %v (session_timeout 30s)", d)
	}
	if got := partitionsOf(b); len(got) != 1 || got[0] != bParts[0] {
		t.Errorf("member b owns %v after the restart, want %v", got, bParts)
	}
}

// TestKafkaFranzRevokeAwaitsAcks holds delivered messages of two partitions
// (the first three of each acknowledged) and lets a second member join, which
// takes one partition. The messages held are acknowledged while the revoke
// runs: with revoke_ack_timeout the revoke waits for them and commits all
// ten, so the new owner starts after them; without (0s) it commits the
// acknowledged prefix at once and the new owner reads the rest again.
func TestKafkaFranzRevokeAwaitsAcks(t *testing.T) {
	tests := []struct {
		name          string
		timeout       string
		wantCommitted int64
	}{
		{name: "acknowledgements awaited", timeout: "10s", wantCommitted: 10},
		{name: "no wait", timeout: "0s", wantCommitted: 3},
	}
	for i, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			topic := fmt.Sprintf("await%d", i)
			addr := startCluster(t, 2, topic)
			for p := int32(0); p < 2; p++ {
				produceRecords(t, addr, numberedRecords(topic, p, 10)...)
			}
			conf := fmt.Sprintf(`
seed_brokers: [ %s ]
topics: [ %s ]
consumer_group: g
commit_period: 1h
heartbeat_interval: 100ms
revoke_ack_timeout: %s
batching:
  count: 1
`, addr, topic, test.timeout)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			first := newTestReader(t, conf)
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

			second := newTestReader(t, conf)
			// The revoke has begun once the first member stopped consuming a
			// partition; the pipeline acknowledges its batches shortly after.
			var moved int32 = -1
			kafkatest.WaitFor(t, 20*time.Second, "the first member to give up a partition", func() bool {
				first.mu.Lock()
				defer first.mu.Unlock()
				if len(first.parts) != 1 {
					return false
				}
				for tp := range first.parts {
					moved = 1 - tp.partition
				}
				return true
			})
			revokeStart := time.Now()
			time.Sleep(300 * time.Millisecond)
			for _, ack := range held {
				_ = ack(ctx, nil)
			}
			kafkatest.WaitFor(t, 15*time.Second, "the revoke's commit", func() bool {
				return committedOffset(t, addr, "g", topic, moved) == test.wantCommitted
			})
			if d := time.Since(revokeStart); d > 5*time.Second {
				t.Errorf("the revoke took %v: it should end when the acknowledgements arrive", d)
			}

			produceRecords(t, addr, &kgo.Record{Topic: topic, Partition: moved, Value: []byte("new")})
			batch, _, err := second.ReadBatch(ctx)
			if err != nil {
				t.Fatalf("second member reading: %v", err)
			}
			p, _ := batch[0].MetaGetMut("kafka_partition")
			off, _ := batch[0].MetaGetMut("kafka_offset")
			if int32(p.(int64)) != moved || off.(int64) != test.wantCommitted {
				t.Errorf("second member starts at partition %v offset %v, want partition %d offset %d", p, off, moved, test.wantCommitted)
			}
		})
	}
}
