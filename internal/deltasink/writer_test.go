package deltasink

import (
	"fmt"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
)

func newTestWriter(t testing.TB, yaml string) *Writer {
	t.Helper()
	spec := service.NewConfigSpec().Fields(Fields()...)
	conf, err := spec.ParseYAML(yaml, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(c, service.MockResources())
	if err := w.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w
}

const dedupeConf = `
table_uri: %s
create_if_missing: true
schema:
  - { name: event_id, type: string, nullable: false }
  - { name: day, type: integer }
partition_by: [ day ]
idempotency: { app_id: w, dedupe_column: event_id }
`

func kmsg(body string, partition, offset int) *service.Message {
	m := service.NewMessage([]byte(body))
	m.MetaSetMut(MetaTopic, "t")
	m.MetaSetMut(MetaPartition, fmt.Sprint(partition))
	m.MetaSetMut(MetaOffset, fmt.Sprint(offset))
	return m
}

// statuses spells a batch's outcome: w written, p replayed, d duplicate,
// r rejected, u untouched.
func statuses(rs []Result) string {
	letters := map[Status]string{Written: "w", Replayed: "p", Duplicate: "d", Rejected: "r", Untouched: "u"}
	s := ""
	for _, r := range rs {
		s += letters[r.Status]
	}
	return s
}

func TestDedupeByKey(t *testing.T) {
	dir := t.TempDir()
	w := newTestWriter(t, fmt.Sprintf(dedupeConf, dir))
	ctx := t.Context()

	// e1 twice in one batch (an upstream duplicate), e2 once.
	rs, err := w.Write(ctx, service.MessageBatch{
		kmsg(`{"event_id":"e1","day":1}`, 0, 0),
		kmsg(`{"event_id":"e1","day":1}`, 0, 1),
		kmsg(`{"event_id":"e2","day":2}`, 0, 2),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(rs); got != "wdw" {
		t.Fatalf("first batch statuses %q, want wdw", got)
	}

	// A later duplicate of e1 at a new offset, and a new e3 in day 1.
	rs, err = w.Write(ctx, service.MessageBatch{
		kmsg(`{"event_id":"e1","day":1}`, 0, 3),
		kmsg(`{"event_id":"e3","day":1}`, 0, 4),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(rs); got != "dw" {
		t.Fatalf("second batch statuses %q, want dw", got)
	}

	// A new writer (a restart, or another replica) reads the keys back from
	// the files: the whole replay is recognised.
	w2 := newTestWriter(t, fmt.Sprintf(dedupeConf, dir))
	rs, err = w2.Write(ctx, service.MessageBatch{
		kmsg(`{"event_id":"e1","day":1}`, 0, 0),
		kmsg(`{"event_id":"e2","day":2}`, 0, 2),
		kmsg(`{"event_id":"e3","day":1}`, 0, 4),
		kmsg(`{"event_id":"e4","day":2}`, 0, 5),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(rs); got != "dddw" {
		t.Fatalf("replay statuses %q, want dddw", got)
	}

	// The first writer sees what the second committed.
	rs, err = w.Write(ctx, service.MessageBatch{kmsg(`{"event_id":"e4","day":2}`, 1, 0)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(rs); got != "d" {
		t.Fatalf("cross-writer statuses %q, want d", got)
	}
}

func TestSkipAndReject(t *testing.T) {
	dir := t.TempDir()
	w := newTestWriter(t, fmt.Sprintf(dedupeConf, dir))
	rs, err := w.Write(t.Context(), service.MessageBatch{
		kmsg(`{"event_id":"e1","day":1}`, 0, 0),
		kmsg(`{"event_id":"e2","day":"monday"}`, 0, 1),
		kmsg(`{"event_id":"e3","day":1}`, 0, 2),
	}, func(i int) bool { return i == 2 })
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(rs); got != "wru" {
		t.Fatalf("statuses %q, want wru", got)
	}
	if n, s := Summary(rs); n != 1 || s == "" {
		t.Fatalf("summary %d %q", n, s)
	}
}

func TestSchemaFile(t *testing.T) {
	dir := t.TempDir()
	w := newTestWriter(t, fmt.Sprintf(`
table_uri: %s
create_if_missing: true
schema_file: ../../schemas/itel_cabinet_task_tracking.yaml
partition_by: [ year, month, day ]
`, dir))
	if got := len(w.table.Schema().Fields()); got != 21 {
		t.Fatalf("want the 21 columns of the tracking table, got %d", got)
	}
	spec := service.NewConfigSpec().Fields(Fields()...)
	conf, err := spec.ParseYAML(fmt.Sprintf("table_uri: %s\nschema_file: ../../schemas/itel_cabinet_task_tracking.yaml\nschema: [ { name: a, type: string } ]\n", dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseConfig(conf); err == nil {
		t.Fatal("schema and schema_file together must be refused")
	}
}

// A replay after a rebalance carries offsets below the recorded one; with a
// dedupe column those messages are checked by key, and the recorded offset
// must stay where it is rather than fail the commit.
func TestReplayBelowRecordedOffsetWithDedupe(t *testing.T) {
	dir := t.TempDir()
	w := newTestWriter(t, fmt.Sprintf(dedupeConf, dir))
	ctx := t.Context()
	if _, err := w.Write(ctx, service.MessageBatch{kmsg(`{"event_id":"e1","day":1}`, 0, 40), kmsg(`{"event_id":"e2","day":1}`, 0, 45)}, nil); err != nil {
		t.Fatal(err)
	}
	rs, err := w.Write(ctx, service.MessageBatch{kmsg(`{"event_id":"e1","day":1}`, 0, 40), kmsg(`{"event_id":"e0","day":1}`, 0, 15)}, nil)
	if err != nil {
		t.Fatalf("a replay below the recorded offset failed the commit: %v", err)
	}
	if got := statuses(rs); got != "dw" {
		t.Fatalf("statuses %q, want dw", got)
	}
	if v, _ := w.table.TxnVersion("w-t-0"); v != 45 {
		t.Fatalf("recorded offset moved to %d, want it kept at 45", v)
	}
}

const offsetConf = `
table_uri: %s
create_if_missing: true
schema:
  - { name: event_id, type: string, nullable: false }
  - { name: day, type: integer }
idempotency: { app_id: w }
`

// Pipeline threads can hand a partition's batches to the writer out of
// order: the earlier offsets must still be written, not taken for a replay,
// and a rejected message's replay must be converted (and rejected) again.
func TestOffsetsOutOfOrderAndRejectedReplays(t *testing.T) {
	dir := t.TempDir()
	w := newTestWriter(t, fmt.Sprintf(offsetConf, dir))
	ctx := t.Context()
	write := func(want string, msgs ...*service.Message) {
		t.Helper()
		rs, err := w.Write(ctx, service.MessageBatch(msgs), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := statuses(rs); got != want {
			t.Fatalf("statuses %q, want %q", got, want)
		}
	}
	write("ww", kmsg(`{"event_id":"e2","day":1}`, 0, 2), kmsg(`{"event_id":"e3","day":1}`, 0, 3))
	write("wr", kmsg(`{"event_id":"e0","day":1}`, 0, 0), kmsg(`{"event_id":"e1","day":"x"}`, 0, 1))
	// The replay of all four: three written, one still rejected.
	write("prpp", kmsg(`{"event_id":"e0","day":1}`, 0, 0), kmsg(`{"event_id":"e1","day":"x"}`, 0, 1), kmsg(`{"event_id":"e2","day":1}`, 0, 2), kmsg(`{"event_id":"e3","day":1}`, 0, 3))
}
