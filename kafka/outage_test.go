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

	col := newCollector()
	startStream(t, fmt.Sprintf(`
kafka_franz:
  seed_brokers: [ %s ]
  topics: [ outage ]
  consumer_group: outage
  commit_period: 100ms
`, addr), func(_ context.Context, batch service.MessageBatch) error {
		col.add(t, batch)
		return nil
	})
	waitFor(t, 10*time.Second, "the first records", func() bool { return col.distinct() == 50 })
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
	waitFor(t, 30*time.Second, "the records produced after the outage", func() bool { return col.distinct() == 100 })
}
