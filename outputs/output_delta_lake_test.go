package outputs

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/claimx/claimx-connect/delta"
	"github.com/claimx/claimx-connect/delta/storage"
	"github.com/claimx/claimx-connect/internal/deltasink"
)

// runOutput builds a stream of a batch producer into the delta_lake output
// configured by yaml and returns the producer; the stream stops with the test.
func runOutput(t *testing.T, outputYAML string) service.MessageBatchHandlerFunc {
	t.Helper()
	b := service.NewStreamBuilder()
	produce, err := b.AddBatchProducerFunc()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.AddOutputYAML(outputYAML); err != nil {
		t.Fatal(err)
	}
	if err := b.SetLoggerYAML("level: warn"); err != nil {
		t.Fatal(err)
	}
	s, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		stopCtx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		_ = s.Stop(stopCtx)
		cancel()
		<-done
	})
	return produce
}

const trackingOutput = `
delta_lake:
  table_uri: %s
  create_if_missing: true
  schema:
    - { name: event_id, type: string, nullable: false }
    - { name: event_timestamp, type: timestamp, nullable: false }
    - { name: task_id, type: integer, nullable: false }
    - { name: assignment_id, type: long }
    - { name: original_event, type: string }
    - { name: year, type: integer }
    - { name: month, type: integer }
    - { name: day, type: integer }
  partition_by: [ year, month, day ]
  table_properties: { delta.enableChangeDataFeed: "true" }
  idempotency: { app_id: worker }
  %s
`

func msg(body string, topic string, partition, offset int) *service.Message {
	m := service.NewMessage([]byte(body))
	m.MetaSetMut("kafka_topic", topic)
	m.MetaSetMut("kafka_partition", fmt.Sprint(partition))
	m.MetaSetMut("kafka_offset", fmt.Sprint(offset))
	return m
}

func event(n int) string {
	return fmt.Sprintf(`{"event_id":"e%d","event_timestamp":"2026-01-10T23:30:0%d.120-01:00","task_id":32513,"assignment_id":%d,"original_event":{"status":"COMPLETED","n":%d},"year":2026,"month":1,"day":11}`, n, n%10, 5423700+n, n)
}

// readTable returns every row of the table as column-name maps, sorted by event_id.
func readTable(t *testing.T, dir string) (*delta.Snapshot, []map[string]any) {
	t.Helper()
	ctx := context.Background()
	st, err := storage.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := delta.Open(ctx, st, delta.OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	snap := tbl.Snapshot()
	names := snap.Schema().Names()
	var out []map[string]any
	for _, f := range snap.Files() {
		rows, err := snap.ReadFile(ctx, st, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			m := map[string]any{}
			for i, n := range names {
				m[n] = r[i]
			}
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return fmt.Sprint(out[i]["event_id"]) < fmt.Sprint(out[j]["event_id"]) })
	return snap, out
}

// newWriter builds the output directly, to see per-message errors.
func newWriter(t *testing.T, yaml string) *deltaLakeOutput {
	t.Helper()
	conf, err := deltaLakeOutputSpec().ParseYAML(yaml, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := deltasink.ParseConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	w := &deltaLakeOutput{w: deltasink.NewWriter(c, service.MockResources()), log: service.MockResources().Logger(), uri: c.TableURI}
	if err := w.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	return w
}

func TestDeltaLakeOutputWritesAndConverts(t *testing.T) {
	dir := t.TempDir()
	conf := strings.TrimPrefix(strings.TrimSpace(fmt.Sprintf(trackingOutput, dir, "")), "delta_lake:")
	conf = strings.ReplaceAll(conf, "\n  ", "\n")
	w := newWriter(t, conf)
	ctx := t.Context()

	batch := service.MessageBatch{
		msg(event(1), "tracking", 0, 0),
		msg(`{"event_id":"bad","event_timestamp":"yesterday","task_id":32513,"year":2026,"month":1,"day":11}`, "tracking", 0, 1),
		msg(`not json`, "tracking", 0, 2),
		msg(event(2), "tracking", 0, 3),
	}
	indexer := batch.Index()
	err := w.WriteBatch(ctx, batch)
	var berr *service.BatchError
	if !errors.As(err, &berr) {
		t.Fatalf("want a batch error naming the two bad messages, got %v", err)
	}
	var failed []string
	berr.WalkMessagesIndexedBy(indexer, func(i int, _ *service.Message, err error) bool {
		if err != nil {
			failed = append(failed, fmt.Sprintf("%d: %v", i, err))
		}
		return true
	})
	if len(failed) != 2 ||
		!strings.Contains(failed[0], "event_timestamp") || !strings.Contains(failed[0], "yesterday") ||
		!strings.Contains(failed[1], "not a JSON object") {
		t.Fatalf("unexpected failures: %q", failed)
	}
	if !strings.Contains(err.Error(), "2 of 4 messages not written") || !strings.Contains(err.Error(), "yesterday") {
		t.Fatalf("headline does not name the failures: %v", err)
	}

	snap, rows := readTable(t, dir)
	if len(rows) != 2 {
		t.Fatalf("want the 2 good rows written, got %d", len(rows))
	}
	if got := snap.Protocol().MinWriterVersion; got != 4 {
		t.Errorf("change data feed needs writer version 4, got %d", got)
	}
	r := rows[0]
	if ts, ok := r["event_timestamp"].(time.Time); !ok || !ts.Equal(time.Date(2026, 1, 11, 0, 30, 1, 120e6, time.UTC)) {
		t.Errorf("timestamp not converted to UTC: %#v", r["event_timestamp"])
	}
	if r["original_event"] != `{"n":1,"status":"COMPLETED"}` && r["original_event"] != `{"status":"COMPLETED","n":1}` {
		t.Errorf("object not stored as JSON text: %#v", r["original_event"])
	}
	if r["task_id"] != int32(32513) || r["assignment_id"] != int64(5423701) || r["day"] != int32(11) {
		t.Errorf("numbers not converted: %#v", r)
	}
	if v, ok := snap.TxnVersion("worker-tracking-0"); !ok || v != 3 {
		t.Errorf("txn for partition 0: got %d, %v; want 3", v, ok)
	}
}

func TestDeltaLakeOutputSkipsReplayedOffsets(t *testing.T) {
	dir := t.TempDir()
	produce := runOutput(t, fmt.Sprintf(trackingOutput, dir, "batching: { count: 1 }"))
	ctx := t.Context()

	first := service.MessageBatch{}
	for i := 0; i < 10; i++ {
		first = append(first, msg(event(i), "tracking", i%2, i/2))
	}
	if err := produce(ctx, first); err != nil {
		t.Fatal(err)
	}
	// A replay after a crash: the same offsets again, and five new ones.
	replay := service.MessageBatch{}
	for i := 0; i < 15; i++ {
		replay = append(replay, msg(event(i), "tracking", i%2, i/2))
	}
	if err := produce(ctx, replay); err != nil {
		t.Fatal(err)
	}
	// Replaying the replay adds nothing either.
	if err := produce(ctx, replay); err != nil {
		t.Fatal(err)
	}
	_, rows := readTable(t, dir)
	if len(rows) != 15 {
		t.Fatalf("want every event exactly once (15 rows), got %d", len(rows))
	}
	seen := map[any]bool{}
	for _, r := range rows {
		if seen[r["event_id"]] {
			t.Fatalf("duplicate row %v", r["event_id"])
		}
		seen[r["event_id"]] = true
	}
}

func TestDeltaLakeOutputRejectedOffsetIsNotSkippedOnReplay(t *testing.T) {
	dir := t.TempDir()
	produce := runOutput(t, fmt.Sprintf(trackingOutput, dir, ""))
	ctx := t.Context()
	bad := msg(`{"event_id":"bad","event_timestamp":"nope","task_id":1,"year":2026,"month":1,"day":1}`, "tracking", 0, 0)
	batch := service.MessageBatch{bad, msg(event(1), "tracking", 0, 1)}
	if err := produce(ctx, batch); err == nil {
		t.Fatal("want the bad message rejected")
	}
	// Offset 0 is below the recorded offset 1, but it was never written: a
	// replay must reject it again, not acknowledge it as written.
	if err := produce(ctx, service.MessageBatch{bad.Copy()}); err == nil {
		t.Fatal("a replayed rejected message was acknowledged as written")
	}
}

func TestDeltaLakeOutputNeedsKafkaMetadataForIdempotency(t *testing.T) {
	dir := t.TempDir()
	produce := runOutput(t, fmt.Sprintf(trackingOutput, dir, ""))
	err := produce(t.Context(), service.MessageBatch{service.NewMessage([]byte(event(1)))})
	if err == nil || !strings.Contains(err.Error(), "kafka_topic") {
		t.Fatalf("want an error naming the missing metadata, got %v", err)
	}
}

func TestDeltaLakeOutputSchemaEvolution(t *testing.T) {
	dir := t.TempDir()
	produce := runOutput(t, fmt.Sprintf(`
delta_lake:
  table_uri: %s
  create_if_missing: true
  schema_evolution: merge
  schema:
    - { name: id, type: long, nullable: false }
`, dir))
	ctx := t.Context()
	if err := produce(ctx, service.MessageBatch{service.NewMessage([]byte(`{"id":1}`))}); err != nil {
		t.Fatal(err)
	}
	if err := produce(ctx, service.MessageBatch{service.NewMessage([]byte(`{"id":2,"note":"new column","score":1.5}`))}); err != nil {
		t.Fatal(err)
	}
	snap, rows := readTable(t, dir)
	if got := strings.Join(snap.Schema().Names(), ","); got != "id,note,score" {
		t.Fatalf("schema after merge: %s", got)
	}
	if len(rows) != 2 {
		t.Fatalf("want 2 rows, got %d", len(rows))
	}
}

func TestDeltaLakeOutputRefusesMissingTable(t *testing.T) {
	b := service.NewStreamBuilder()
	if _, err := b.AddBatchProducerFunc(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := b.AddOutputYAML(fmt.Sprintf("delta_lake: { table_uri: %s }", dir)); err != nil {
		t.Fatal(err)
	}
	s, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	o := &deltaLakeOutput{w: deltasink.NewWriter(deltasink.Config{TableURI: dir}, service.MockResources())}
	if err := o.Connect(t.Context()); err == nil || !errors.Is(err, delta.ErrNotATable) {
		t.Fatalf("want not-a-table error, got %v", err)
	}
	_ = s
}

func TestDeltaLakeConfig(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr string
	}{
		{name: "minimal", yaml: `{ table_uri: /tmp/x }`},
		{name: "create needs schema", yaml: `{ table_uri: /tmp/x, create_if_missing: true }`, wantErr: "schema is needed"},
		{name: "bad type", yaml: `{ table_uri: /tmp/x, schema: [ { name: a, type: varchar } ] }`, wantErr: "varchar"},
		{name: "bad column name", yaml: `{ table_uri: /tmp/x, schema: [ { name: "a b", type: string } ] }`, wantErr: "a b"},
		{name: "bad mode", yaml: `{ table_uri: /tmp/x, schema_evolution: overwrite }`, wantErr: "overwrite"},
		{name: "bad size", yaml: `{ table_uri: /tmp/x, target_file_size: 5 parsecs }`, wantErr: "parsecs"},
		{name: "unknown field", yaml: `{ table_uri: /tmp/x, table_url: /tmp/y }`, wantErr: "table_url"},
	}
	env := service.NewEnvironment()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := env.NewStreamBuilder().AddOutputYAML("delta_lake: " + tt.yaml)
			if err == nil {
				var conf *service.ParsedConfig
				conf, err = deltaLakeOutputSpec().ParseYAML(tt.yaml, env)
				if err == nil {
					_, err = deltasink.ParseConfig(conf)
				}
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("want error containing %q, got %v", tt.wantErr, err)
			}
		})
	}
}
