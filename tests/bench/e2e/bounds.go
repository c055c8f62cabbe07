package main

// The lower bounds: what the two outputs DOMAIN.md §4 requires of every
// record cost by themselves, with no transformation, validation or lookup,
// over the topic the worker read.

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync/atomic"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kgo"

	_ "github.com/claimx/claimx-connect/processors" // delta_lake
	"github.com/claimx/claimx-connect/tests/internal/benchfloor"
)

// boundInput is the worker's input settings (pipelines/worker.yaml) but for
// the batching period: with a backlog, batches fill by count (250, one Delta
// commit each, as in the worker); the period only flushes the last partial
// batch, and the worker's 2s would add up to 2 s of idleness to a run of a
// few seconds.
const boundInput = `fetch_max_wait: 500ms
checkpoint_limit: 512
batching:
  count: 250
  period: 100ms`

// boundRun is one measure of a bound.
type boundRun struct {
	name    string
	elapsed time.Duration
	cpu     time.Duration
	records int
}

func (b boundRun) rate() float64 { return float64(b.records) / b.elapsed.Seconds() }

// boundMessages is what the bounds write for a record: per assignment (the
// Kafka key, of the tracking record as of the success message), the first
// success message of the worker's run and the row in its enriched_data,
// parsed by benthos as the bytes of a Kafka message would be. Assignments
// differ much in size (only a completed one carries its form's answers), so
// the bounds write what the worker wrote for each record, not one message.
type boundMessages struct {
	success map[string][]byte
	rows    map[string]map[string]any
	// Sizes of the worker's success messages: mean, min and max.
	mean     float64
	min, max int
}

func newBoundMessages(msgs []*kgo.Record) (*boundMessages, error) {
	b := &boundMessages{success: map[string][]byte{}, rows: map[string]map[string]any{}}
	var sum int
	for i, m := range msgs {
		sum += len(m.Value)
		if i == 0 || len(m.Value) < b.min {
			b.min = len(m.Value)
		}
		b.max = max(b.max, len(m.Value))
		k := string(m.Key)
		if _, ok := b.success[k]; ok {
			continue
		}
		var s struct {
			Data json.RawMessage `json:"enriched_data"`
		}
		if err := json.Unmarshal(m.Value, &s); err != nil {
			return nil, fmt.Errorf("success message: %w", err)
		}
		v, err := service.NewMessage(s.Data).AsStructured()
		if err != nil {
			return nil, fmt.Errorf("enriched_data: %w", err)
		}
		row, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("enriched_data is not an object: %T", v)
		}
		b.success[k], b.rows[k] = m.Value, row
	}
	if len(msgs) > 0 {
		b.mean = float64(sum) / float64(len(msgs))
	}
	return b, nil
}

// eachMessage is a batch processor that runs a function on every message.
type eachMessage func(*service.Message) error

func (f eachMessage) ProcessBatch(_ context.Context, b service.MessageBatch) ([]service.MessageBatch, error) {
	for _, m := range b {
		if err := f(m); err != nil {
			return nil, err
		}
	}
	return []service.MessageBatch{b}, nil
}

func (eachMessage) Close(context.Context) error { return nil }

// boundsEnv is the environment of the bounds: every component, plus
// bench_success (each message's bytes become the success message of its
// key), bench_row (each message's structured content becomes a shallow copy
// of the row of its key, with an event_id of its own from its Kafka
// partition and offset, so that the table's dedupe_column keeps every row;
// delta_lake only reads it) and bench_written, which counts the messages
// delta_lake wrote into *written and keeps the first error.
func boundsEnv(bm *boundMessages, written *atomic.Int64, firstErr *atomic.Pointer[error]) (*service.Environment, error) {
	env := service.NewEnvironment()
	noKey := func(m *service.Message) error {
		k, _ := m.MetaGet("kafka_key")
		return fmt.Errorf("no success message of the worker's run has the key %q", k)
	}
	for name, fn := range map[string]eachMessage{
		"bench_success": func(m *service.Message) error {
			k, _ := m.MetaGet("kafka_key")
			v, ok := bm.success[k]
			if !ok {
				return noKey(m)
			}
			m.SetBytes(v)
			return nil
		},
		"bench_row": func(m *service.Message) error {
			k, _ := m.MetaGet("kafka_key")
			row, ok := bm.rows[k]
			if !ok {
				return noKey(m)
			}
			p, _ := m.MetaGet("kafka_partition")
			o, _ := m.MetaGet("kafka_offset")
			r := maps.Clone(row)
			r["event_id"] = "bound_" + p + "_" + o
			m.SetStructuredMut(r)
			return nil
		},
		"bench_written": func(m *service.Message) error {
			if err := m.GetError(); err != nil {
				firstErr.CompareAndSwap(nil, &err)
			} else if st, _ := m.MetaGet("delta_write_status"); st == "written" {
				written.Add(1)
			}
			return nil
		},
	} {
		err := env.RegisterBatchProcessor(name, service.NewConfigSpec(),
			func(*service.ParsedConfig, *service.Resources) (service.BatchProcessor, error) { return fn, nil })
		if err != nil {
			return nil, err
		}
	}
	return env, nil
}

// deltaBoundProfile, when set (-delta-bound-cpuprofile), is where a CPU
// profile of this process during the delta bound goes.
var deltaBoundProfile string

// runBounds measures the publish bound and the delta bound over topic
// (records records) with the messages of bm.
func runBounds(brokers, topic, boundTopic, suffix, dir, root string, records int, bm *boundMessages) ([]boundRun, error) {
	var written atomic.Int64
	var firstErr atomic.Pointer[error]
	env, err := boundsEnv(bm, &written, &firstErr)
	if err != nil {
		return nil, err
	}
	conf := func(group string) benchfloor.Config {
		return benchfloor.Config{
			Brokers: brokers, Topic: topic, Group: group, Records: records,
			InputExtra: boundInput, LogLevel: "warn", Timeout: 10 * time.Minute,
		}
	}
	var out []boundRun

	// Publish: the worker's success output (pipelines/worker.yaml).
	res, err := benchfloor.InputThrough(conf("bench-e2e-bound-publish-"+suffix), env,
		"processors:\n  - bench_success: {}",
		fmt.Sprintf(`kafka_franz:
  seed_brokers: [ %s ]
  topic: %s
  key: ${! @kafka_key }
  client_id: claimx-connect-bench-bound
  max_in_flight: 10`, brokers, boundTopic))
	if err != nil {
		return nil, fmt.Errorf("publish bound: %w", err)
	}
	out = append(out, boundRun{name: "publish", elapsed: res.Elapsed, cpu: res.CPU, records: records})

	// Delta: the worker's delta_append, on a table of its own.
	if deltaBoundProfile != "" {
		f, err := os.Create(deltaBoundProfile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer func() {
			pprof.StopCPUProfile()
			fmt.Printf("cpu profile of the delta bound: %s\n", deltaBoundProfile)
		}()
	}
	res, err = benchfloor.InputThrough(conf("bench-e2e-bound-delta-"+suffix), env,
		fmt.Sprintf(`processors:
  - bench_row: {}
  - delta_lake:
      table_uri: %s
      create_if_missing: true
      schema_file: %s
      partition_by: [ year, month, day ]
      table_properties:
        delta.enableChangeDataFeed: "true"
        delta.autoOptimize.optimizeWrite: "true"
        delta.autoOptimize.autoCompact: "true"
      idempotency:
        app_id: bench_e2e_delta_bound
        dedupe_column: event_id
      compression: snappy
      checkpoint_interval: 10
      # As the worker's: DELTA_AUTO_COMPACT=off|on overrides the table property.
      maintenance: { auto_compact: %s }
  - bench_written: {}`,
			filepath.Join(dir, "delta_bound_table"), filepath.Join(root, "schemas/itel_cabinet_task_tracking.yaml"), cmp.Or(os.Getenv("DELTA_AUTO_COMPACT"), "table")),
		"drop: {}")
	if err != nil {
		return nil, fmt.Errorf("delta bound: %w", err)
	}
	if p := firstErr.Load(); p != nil {
		return nil, fmt.Errorf("delta bound: a message failed: %w", *p)
	}
	if n := written.Load(); n != int64(records) {
		return nil, fmt.Errorf("delta bound: %d of %d rows written", n, records)
	}
	out = append(out, boundRun{name: "delta", elapsed: res.Elapsed, cpu: res.CPU, records: records})
	return out, nil
}
