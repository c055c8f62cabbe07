package kafka

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/claimx/claimx-connect/kafka/kafkatest"
)

// gaugeCapture is a metrics exporter remembering the last value of gauges.
type gaugeCapture struct {
	mu     sync.Mutex
	gauges map[string]int64 // name{k=v,...} -> value
}

type captureGauge struct {
	c   *gaugeCapture
	key string
}

func (g captureGauge) Set(v int64) {
	g.c.mu.Lock()
	defer g.c.mu.Unlock()
	g.c.gauges[g.key] = v
}

type noopCounter struct{}

func (noopCounter) Incr(int64) {}

type noopTimer struct{}

func (noopTimer) Timing(int64) {}

func (c *gaugeCapture) NewCounterCtor(string, ...string) service.MetricsExporterCounterCtor {
	return func(...string) service.MetricsExporterCounter { return noopCounter{} }
}

func (c *gaugeCapture) NewTimerCtor(string, ...string) service.MetricsExporterTimerCtor {
	return func(...string) service.MetricsExporterTimer { return noopTimer{} }
}

func (c *gaugeCapture) NewGaugeCtor(name string, keys ...string) service.MetricsExporterGaugeCtor {
	return func(values ...string) service.MetricsExporterGauge {
		var labels []string
		for i, k := range keys {
			labels = append(labels, k+"="+values[i])
		}
		return captureGauge{c: c, key: name + "{" + strings.Join(labels, ",") + "}"}
	}
}

func (c *gaugeCapture) Close(context.Context) error { return nil }

func (c *gaugeCapture) find(name string, labels ...string) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, v := range c.gauges {
		if !strings.HasPrefix(k, name+"{") {
			continue
		}
		all := true
		for _, l := range labels {
			all = all && strings.Contains(k, l)
		}
		if all {
			return v, true
		}
	}
	return 0, false
}

// TestKafkaFranzLagGauge checks the kafka_lag gauge: records produced minus
// the offset committed by the group, labelled with the group.
func TestKafkaFranzLagGauge(t *testing.T) {
	addr := startCluster(t, 1, "lag")
	produceRecords(t, addr, numberedRecords("lag", 0, 10)...)

	capture := &gaugeCapture{gauges: map[string]int64{}}
	env := service.NewEnvironment()
	if err := env.RegisterMetricsExporter("capture", service.NewConfigSpec(),
		func(*service.ParsedConfig, *service.Logger) (service.MetricsExporter, error) { return capture, nil }); err != nil {
		t.Fatal(err)
	}
	b := env.NewStreamBuilder()
	if err := b.SetMetricsYAML("capture: {}"); err != nil {
		t.Fatal(err)
	}
	if err := b.SetLoggerYAML("level: warn"); err != nil {
		t.Fatal(err)
	}
	if err := b.AddInputYAML(fmt.Sprintf(`
kafka_franz:
  seed_brokers: [ %s ]
  topics: [ lag ]
  consumer_group: lag
  commit_period: 50ms
  topic_lag_refresh_period: 50ms
  batching:
    count: 1
`, addr)); err != nil {
		t.Fatal(err)
	}
	// Acknowledge the first four messages only.
	if err := b.AddBatchConsumerFunc(func(ctx context.Context, batch service.MessageBatch) error {
		if off, _ := batch[0].MetaGetMut("kafka_offset"); off.(int64) < 4 {
			return nil
		}
		<-ctx.Done()
		return ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
	s, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	rs := kafkatest.Start(t, s)
	defer rs.Stop(t, time.Second)

	kafkatest.WaitFor(t, 10*time.Second, "kafka_lag of 6", func() bool {
		v, ok := capture.find("kafka_lag", "consumer_group=lag", "topic=lag", "partition=0")
		return ok && v == 6
	})
}
