// Package benchfloor measures the floor of the Kafka benchmarks: our
// kafka_franz input (a new consumer group) into `drop`, in this process,
// timed from the start of the stream until drop has sent every record. It is
// shared by tests/bench/kafkainput (beside kcat) and tests/bench/e2e (beside
// the worker, on the same topic). InputThrough is the same measure with a
// pipeline and another output, for the lower bounds of tests/bench/e2e.
//
// Records are counted with the stream's own output_sent metric, so that no
// processor adds its per-message cost to the measure. Importing the package
// registers the kafka_franz input and the pure components (drop).
package benchfloor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	_ "github.com/claimx/claimx-connect/kafka"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
)

// Config is one floor measurement.
type Config struct {
	Brokers string // seed_brokers of the input
	Topic   string
	Group   string // consumer group; a new one reads the topic from its start
	Records int    // records to wait for: every record of the topic

	// InputExtra is extra YAML fields for the kafka_franz input, one a line,
	// e.g. "fetch_max_partition_bytes: 4MiB".
	InputExtra string
	// LogLevel is the stream's logger.level; empty leaves benthos's
	// default (info).
	LogLevel string
	// Timeout is how long to wait for every record.
	Timeout time.Duration
}

// Result is what a measurement took.
type Result struct {
	// Elapsed is the wall time from the start of the stream until drop
	// had sent Records records.
	Elapsed time.Duration
	// CPU is this process's CPU time over Elapsed (an in-process broker's
	// included).
	CPU time.Duration
	// StopErr is the error of stopping the stream afterwards (within 30 s),
	// other than context.Canceled; the measure stands either way.
	StopErr error
}

// InputToDrop runs kafka_franz -> drop over c.Topic and returns the time it
// took to send c.Records records.
func InputToDrop(c Config) (Result, error) {
	return InputThrough(c, nil, "", "drop: {}")
}

// InputThrough runs kafka_franz -> pipeline -> output over c.Topic and
// returns the time it took the output to send c.Records records. env holds
// the components the pipeline and the output name (nil: the global
// environment); it is cloned, not changed. pipelineYAML is the body of the
// stream's `pipeline:` field (empty: none), outputYAML that of its `output:`
// field, e.g. "drop: {}".
func InputThrough(c Config, env *service.Environment, pipelineYAML, outputYAML string) (Result, error) {
	if env == nil {
		env = service.NewEnvironment()
	} else {
		env = env.Clone()
	}
	sent := &sentCounter{target: int64(c.Records), done: make(chan struct{})}
	err := env.RegisterMetricsExporter("bench_sent", service.NewConfigSpec(),
		func(*service.ParsedConfig, *service.Logger) (service.MetricsExporter, error) { return sent, nil })
	if err != nil {
		return Result{}, fmt.Errorf("registering counter: %w", err)
	}
	b := env.NewStreamBuilder()
	if err := b.SetLoggerYAML("level: warn"); err != nil {
		return Result{}, err
	}
	conf := fmt.Sprintf(`
input:
  kafka_franz:
    seed_brokers: [ %s ]
    topics: [ %s ]
    consumer_group: %s%s
output:%s
metrics:
  bench_sent: {}
`, c.Brokers, c.Topic, c.Group, indent(c.InputExtra, "    "), indent(outputYAML, "  "))
	if pipelineYAML != "" {
		conf += "pipeline:" + indent(pipelineYAML, "  ") + "\n"
	}
	if c.LogLevel != "" {
		conf += fmt.Sprintf("logger:\n  level: %s\n", c.LogLevel)
	}
	if err := b.SetYAML(conf); err != nil {
		return Result{}, fmt.Errorf("building stream config: %w", err)
	}
	stream, err := b.Build()
	if err != nil {
		return Result{}, fmt.Errorf("building stream: %w", err)
	}
	runErr := make(chan error, 1)
	cpu0 := SelfCPU()
	start := time.Now()
	go func() { runErr <- stream.Run(context.Background()) }()
	select {
	case <-sent.done:
	case err := <-runErr:
		return Result{}, fmt.Errorf("stream ended after %d records: %v", sent.n.Load(), err)
	case <-time.After(c.Timeout):
		_ = stream.StopWithin(10 * time.Second)
		return Result{}, fmt.Errorf("timed out after %d of %d records", sent.n.Load(), c.Records)
	}
	res := Result{Elapsed: time.Since(start), CPU: SelfCPU() - cpu0}
	if err := stream.StopWithin(30 * time.Second); err != nil && !errors.Is(err, context.Canceled) {
		res.StopErr = err
	}
	return res, nil
}

// indent returns the lines of yaml, each on a new line after prefix; empty
// yaml gives an empty string.
func indent(yaml, prefix string) string {
	yaml = strings.TrimRight(yaml, "\n")
	if yaml == "" {
		return ""
	}
	return "\n" + prefix + strings.ReplaceAll(yaml, "\n", "\n"+prefix)
}

// SelfCPU returns the user and system CPU time of this process so far. On
// a shared machine CPU time varies less than wall time.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sentCounter is a metrics exporter that only counts output_sent and closes
// done when target messages have been sent.
type sentCounter struct {
	n      atomic.Int64
	target int64
	done   chan struct{}
}

type counterFunc func(int64)

func (f counterFunc) Incr(n int64) { f(n) }

type nopTimer struct{}

func (nopTimer) Timing(int64) {}

type nopGauge struct{}

func (nopGauge) Set(int64) {}

func (s *sentCounter) NewCounterCtor(name string, _ ...string) service.MetricsExporterCounterCtor {
	return func(...string) service.MetricsExporterCounter {
		if name != "output_sent" {
			return counterFunc(func(int64) {})
		}
		return counterFunc(func(n int64) {
			if before := s.n.Add(n) - n; before < s.target && before+n >= s.target {
				close(s.done)
			}
		})
	}
}

func (s *sentCounter) NewTimerCtor(string, ...string) service.MetricsExporterTimerCtor {
	return func(...string) service.MetricsExporterTimer { return nopTimer{} }
}

func (s *sentCounter) NewGaugeCtor(string, ...string) service.MetricsExporterGaugeCtor {
	return func(...string) service.MetricsExporterGauge { return nopGauge{} }
}

func (s *sentCounter) Close(context.Context) error { return nil }
