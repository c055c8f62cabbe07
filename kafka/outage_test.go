package kafka

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/claimx/claimx-connect/kafka/kafkatest"
)

// TestKafkaFranzBrokerOutage stops the broker mid-stream and starts it again
// on the same address and data: the stream stalls, then resumes, and every
// record is consumed.
func TestKafkaFranzBrokerOutage(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()

	start := func() *kfake.Cluster {
		t.Helper()
		var c *kfake.Cluster
		var err error
		// The port may take a moment to be released by the previous run.
		for range 50 {
			if c, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(dir), kfake.SeedTopics(2, "outage")); err == nil {
				return c
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("starting kfake on port %d: %v", port, err)
		return nil
	}
	cluster := start()
	addr := cluster.ListenAddrs()[0]
	produceRecords(t, addr, numberedRecords("outage", 0, 50)...)

	col := kafkatest.NewCollector()
	kafkatest.StartStream(t, fmt.Sprintf(`
kafka_franz:
  seed_brokers: [ %s ]
  topics: [ outage ]
  consumer_group: outage
  commit_period: 100ms
`, addr), func(_ context.Context, batch service.MessageBatch) error {
		col.Add(t, batch)
		return nil
	})
	kafkatest.WaitFor(t, 10*time.Second, "the first records", func() bool { return col.Distinct() == 50 })
	time.Sleep(300 * time.Millisecond) // let a commit land before the outage

	cluster.Close()
	time.Sleep(time.Second) // the stream stalls against a dead broker

	cluster = start()
	defer cluster.Close()
	recs := numberedRecords("outage", 1, 50)
	for i, r := range recs {
		r.Value = []byte(strconv.Itoa(50 + i))
	}
	produceRecords(t, addr, recs...)
	kafkatest.WaitFor(t, 30*time.Second, "the records produced after the outage", func() bool { return col.Distinct() == 100 })
}

// TestKafkaFranzCloseBounded closes a reader and a writer whose broker is
// gone: Close returns by the caller's deadline instead of hanging.
func TestKafkaFranzCloseBounded(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "gone"))
	if err != nil {
		t.Fatal(err)
	}
	addr := cluster.ListenAddrs()[0]
	produceRecords(t, addr, numberedRecords("gone", 0, 5)...)
	rdr := newTestReader(t, fmt.Sprintf("seed_brokers: [ %s ]\ntopics: [ gone ]\nconsumer_group: gone\n", addr))
	w := newTestWriter(t, fmt.Sprintf("seed_brokers: [ %s ]\ntopic: gone\n", addr))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, ack, err := rdr.ReadBatch(ctx)
	if err != nil {
		t.Fatalf("reading: %v", err)
	}
	_ = ack(ctx, nil)
	cluster.Close()

	for name, closer := range map[string]interface{ Close(context.Context) error }{"reader": rdr, "writer": w} {
		closeCtx, cancel := context.WithTimeout(t.Context(), time.Second)
		start := time.Now()
		_ = closer.Close(closeCtx)
		cancel()
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s Close took %v with a 1s deadline", name, d)
		}
	}
}
