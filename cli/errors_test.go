package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/urfave/cli/v2"
)

// errorsCluster is an embedded broker for the replay tests.
type errorsCluster struct {
	t    *testing.T
	addr string
	adm  *kadm.Client
	cl   *kgo.Client
}

func newErrorsCluster(t *testing.T) *errorsCluster {
	t.Helper()
	t.Setenv(envSASLMechanism, "")
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("starting kfake cluster: %v", err)
	}
	t.Cleanup(c.Close)
	addr := c.ListenAddrs()[0]
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &errorsCluster{t: t, addr: addr, adm: kadm.NewClient(cl), cl: cl}
}

// topic creates a topic with partitions and optional configs.
func (ec *errorsCluster) topic(name string, partitions int32, configs map[string]*string) {
	ec.t.Helper()
	resp, err := ec.adm.CreateTopic(ec.t.Context(), partitions, 1, configs, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		ec.t.Fatalf("creating topic %s: %v", name, err)
	}
}

// produce writes records to the partitions they name.
func (ec *errorsCluster) produce(recs ...*kgo.Record) {
	ec.t.Helper()
	ctx, cancel := context.WithTimeout(ec.t.Context(), 30*time.Second)
	defer cancel()
	if err := ec.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		ec.t.Fatalf("producing %d records: %v", len(recs), err)
	}
}

// errorRecords writes error record values to partition 0 of topic, stamped
// with now.
func (ec *errorsCluster) errorRecords(topic string, values ...string) {
	ec.t.Helper()
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Topic: topic, Value: []byte(v)}
	}
	ec.produce(recs...)
}

// read returns every record of a topic, by partition then offset.
func (ec *errorsCluster) read(topic string) []*kgo.Record {
	ec.t.Helper()
	ends, err := ec.adm.ListEndOffsets(ec.t.Context(), topic)
	if err != nil || ends.Error() != nil {
		ec.t.Fatalf("listing end offsets of %s: %v %v", topic, err, ends.Error())
	}
	remaining := map[int32]int64{}
	parts := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			remaining[o.Partition] = o.Offset
			parts[o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	if len(parts) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(ec.addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}))
	if err != nil {
		ec.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ec.t.Context(), 10*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(remaining) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			ec.t.Fatalf("reading %s: %v", topic, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, r)
			if r.Offset >= remaining[r.Partition]-1 {
				delete(remaining, r.Partition)
			}
		})
	}
	slices.SortFunc(out, func(a, b *kgo.Record) int {
		if a.Partition != b.Partition {
			return int(a.Partition - b.Partition)
		}
		return int(a.Offset - b.Offset)
	})
	return out
}

// replay runs `errors replay` against the cluster with --json and returns
// its summary, its output and its error.
func (ec *errorsCluster) replay(args ...string) (*replaySummary, string, error) {
	ec.t.Helper()
	out, err := ec.replayText(append(args, "--json")...)
	var s replaySummary
	if jerr := json.Unmarshal([]byte(out), &s); jerr != nil {
		ec.t.Fatalf("errors replay %v: output is not a JSON summary (%v); error %v\n%s", args, jerr, err, out)
	}
	return &s, out, err
}

func (ec *errorsCluster) replayText(args ...string) (string, error) {
	ec.t.Helper()
	var out, errOut bytes.Buffer
	app := &cli.App{
		Name:           "claimx-connect",
		Commands:       []*cli.Command{ErrorsCommand()},
		Writer:         &out,
		ErrWriter:      &errOut,
		ExitErrHandler: func(*cli.Context, error) {},
	}
	err := app.Run(append([]string{"claimx-connect", "errors", "replay", "--brokers", ec.addr, "--timeout", "30s"}, args...))
	return out.String(), err
}

// errRec builds an error record value from fields; source is added when
// given. Fields set to nil are left out.
func errRec(fields map[string]any) string {
	m := map[string]any{}
	for k, v := range fields {
		if v != nil {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func src(topic string, partition, offset any, key any) map[string]any {
	return map[string]any{erSourceTopic: topic, erSourcePartition: partition, erSourceOffset: offset, erSourceKey: key}
}

func values(recs []*kgo.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	slices.Sort(out)
	return out
}

func TestErrorsReplaySelection(t *testing.T) {
	ec := newErrorsCluster(t)
	ec.topic("errs", 2, nil)
	ec.topic("src", 1, nil)
	rec := func(stage, reason, failedAt string, key any, text string) map[string]any {
		m := map[string]any{erStage: stage, erError: reason, erOriginalText: text, erSource: src("src", 0, 0, key)}
		if failedAt != "" {
			m[erFailedAt] = failedAt
		}
		return m
	}
	recs := []*kgo.Record{
		{Partition: 0, Value: []byte(errRec(rec("trigger", "event evt_1: assignment 101 is not known to the ClaimX API (404)", "2026-12-05T08:00:00.000Z", "a1", "v1")))},
		{Partition: 1, Value: []byte(errRec(rec("lookup", "claimx lookup failed: circuit_open", "2026-12-05T09:00:00.000Z", "a2", "v2")))},
		{Partition: 0, Value: []byte(errRec(rec("validate", "event_id is missing or blank", "2026-12-06T08:00:00.000Z", "a1", "v3")))},
		// No failed_at: the record timestamp decides.
		{Partition: 1, Value: []byte(errRec(rec("delta", "writing 3 messages to Delta table failed after 5 attempts", "", nil, "v4"))),
			Timestamp: time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)},
	}
	for _, r := range recs {
		r.Topic = "errs"
	}
	ec.produce(recs...)

	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"everything", nil, []string{"v1", "v2", "v3", "v4"}},
		{"one stage", []string{"--stage", "lookup"}, []string{"v2"}},
		{"stage list", []string{"--stage", "trigger,validate"}, []string{"v1", "v3"}},
		{"repeated stage", []string{"--stage", "trigger", "--stage", "delta"}, []string{"v1", "v4"}},
		{"reason substring", []string{"--reason", "(404)"}, []string{"v1"}},
		{"reason regex", []string{"--reason-regex", `assignment [0-9]+ is not known`}, []string{"v1"}},
		{"reason regex anchored", []string{"--reason-regex", `^event`}, []string{"v1", "v3"}},
		{"reason and stage", []string{"--reason", "event", "--stage", "validate"}, []string{"v3"}},
		{"since is inclusive", []string{"--since", "2026-12-05T09:00:00Z"}, []string{"v2", "v3", "v4"}},
		{"until is exclusive", []string{"--until", "2026-12-05T09:00:00Z"}, []string{"v1"}},
		{"window with record timestamp", []string{"--since", "2026-12-06T12:00:00+01:00", "--until", "2026-12-08T00:00:00Z"}, []string{"v4"}},
		{"key", []string{"--key", "a1"}, []string{"v1", "v3"}},
		{"nothing matches", []string{"--stage", "parse"}, nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := "sel-" + string(rune('a'+i))
			ec.topic(dest, 1, nil)
			s, out, err := ec.replay(append(tt.args, "--topic", "errs", "--to-topic", dest)...)
			if err != nil {
				t.Fatalf("replay: %v\n%s", err, out)
			}
			if got := values(ec.read(dest)); !slices.Equal(got, tt.want) {
				t.Errorf("replayed %q, want %q", got, tt.want)
			}
			if s.Read != 4 || s.Selected != len(tt.want) || s.Replayed != len(tt.want) || s.Inexact != 0 || s.Skipped != 0 {
				t.Errorf("summary: %+v", s)
			}
		})
	}

	for _, args := range [][]string{
		{"--reason-regex", "("},
		{"--since", "yesterday"},
		{"--until", "2026-12-05"},
		{"extra-argument"},
	} {
		if _, err := ec.replayText(append(args, "--topic", "errs")...); err == nil {
			t.Errorf("%v: want a usage error", args)
		}
	}
}

func TestErrorsReplayExact(t *testing.T) {
	ec := newErrorsCluster(t)
	ec.topic("errs", 1, nil)
	ec.topic("orders", 3, nil)
	text := "{ \"b\" : 1,\t\"a\":[1, 2 ] }\n"
	binary := []byte{0xff, 0xfe, 'h', 'i', 0x80, 0x00}
	// Written by hand to keep the header order, which is not sorted.
	withHeaders := `{"original_message":{"a":[1,2],"b":1},"original_text":` + mustJSON(text) + `,"error":"bad","stage":"validate",` +
		`"failed_at":"2026-12-05T08:00:00.000Z","source":{"topic":"orders","partition":2,"offset":7,"key":"k-1",` +
		`"headers":{"trace":"t1","content-type":"application/json","empty":"","multi":["m1","m2"]}}}`
	withBase64 := errRec(map[string]any{
		erOriginalMessage: "\ufffd\ufffdhi\ufffd\u0000", erOriginalBase64: base64.StdEncoding.EncodeToString(binary),
		erError: "not JSON", erStage: "trigger", erSource: src("orders", 1, 3, nil),
	})
	ec.produce(
		&kgo.Record{Topic: "errs", Value: []byte(withHeaders), Key: []byte("k-1"),
			Headers: []kgo.RecordHeader{{Key: "kafka_key", Value: []byte("k-1")}, {Key: "x-error", Value: []byte("1")}}},
		&kgo.Record{Topic: "errs", Value: []byte(withBase64), Headers: []kgo.RecordHeader{{Key: "x-error", Value: []byte("1")}}},
	)

	s, out, err := ec.replay("--topic", "errs")
	if err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	if s.Replayed != 2 || s.Inexact != 0 || s.Skipped != 0 || s.ByDestination["orders"] != 2 {
		t.Fatalf("summary: %s", out)
	}
	got := ec.read("orders")
	if len(got) != 2 {
		t.Fatalf("want 2 records on orders, got %d", len(got))
	}
	tests := []struct {
		name      string
		rec       *kgo.Record
		partition int32
		key       []byte
		value     []byte
		headers   []kgo.RecordHeader
	}{
		{"original_base64 with invalid UTF-8, no key, no headers", got[0], 1, nil, binary, nil},
		{"original_text with its spacing and key order, key and headers", got[1], 2, []byte("k-1"), []byte(text), []kgo.RecordHeader{
			{Key: "trace", Value: []byte("t1")}, {Key: "content-type", Value: []byte("application/json")}, {Key: "empty", Value: []byte{}},
			{Key: "multi", Value: []byte("m1")}, {Key: "multi", Value: []byte("m2")},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.rec
			if r.Partition != tt.partition {
				t.Errorf("partition %d, want the source partition %d", r.Partition, tt.partition)
			}
			if !bytes.Equal(r.Value, tt.value) {
				t.Errorf("value %q, want %q", r.Value, tt.value)
			}
			if !bytes.Equal(r.Key, tt.key) || (tt.key == nil) != (r.Key == nil) {
				t.Errorf("key %q, want %q", r.Key, tt.key)
			}
			if len(r.Headers) != len(tt.headers) {
				t.Fatalf("headers %v, want %v (never the error record's own)", r.Headers, tt.headers)
			}
			for i, h := range r.Headers {
				if h.Key != tt.headers[i].Key || !bytes.Equal(h.Value, tt.headers[i].Value) {
					t.Errorf("header %d is %s=%q, want %s=%q", i, h.Key, h.Value, tt.headers[i].Key, tt.headers[i].Value)
				}
			}
		})
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestErrorsReplaySourceFetch(t *testing.T) {
	ec := newErrorsCluster(t)
	ec.topic("errs", 1, nil)
	ec.topic("events", 1, nil)
	ec.topic("out", 1, nil)
	exact := `{"event_id": "e1",  "n": 1.50}`
	big := bytes.Repeat([]byte("0123456789abcdef"), 300000/16)
	ec.produce(
		&kgo.Record{Topic: "events", Value: []byte("filler")},
		&kgo.Record{Topic: "events", Key: []byte("k1"), Value: []byte(exact), Headers: []kgo.RecordHeader{{Key: "h1", Value: []byte("v1")}}},
		&kgo.Record{Topic: "events", Value: []byte("filler")},
		&kgo.Record{Topic: "events", Key: []byte("kb"), Value: big},
	)
	ec.errorRecords("errs",
		// An error record of an older build: no original_text, no headers.
		errRec(map[string]any{erOriginalMessage: map[string]any{"event_id": "e1", "n": 1.5}, erError: "lookup failed", erStage: "lookup",
			erSource: src("events", 0, 1, "k1")}),
		// A truncated original.
		errRec(map[string]any{erOriginalMessage: string(big[:65536]) + "…[truncated: the original has 300000 bytes; its first 65536 are kept]",
			erOriginalTruncated: true, erOriginalSize: len(big), erError: "too big", erStage: "parse", erSource: src("events", 0, 3, "kb")}),
	)

	s, out, err := ec.replay("--topic", "errs", "--to-topic", "out")
	if err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	if s.Replayed != 2 || s.Inexact != 0 || s.Skipped != 0 {
		t.Fatalf("summary: %s", out)
	}
	got := ec.read("out")
	if len(got) != 2 {
		t.Fatalf("want 2 records, got %d", len(got))
	}
	if string(got[0].Value) != exact || string(got[0].Key) != "k1" || len(got[0].Headers) != 1 || got[0].Headers[0].Key != "h1" || string(got[0].Headers[0].Value) != "v1" {
		t.Errorf("old-format record: got %q key %q headers %v, want the source record", got[0].Value, got[0].Key, got[0].Headers)
	}
	if !bytes.Equal(got[1].Value, big) || string(got[1].Key) != "kb" {
		t.Errorf("truncated record: got %d bytes key %q, want the %d source bytes", len(got[1].Value), got[1].Key, len(big))
	}
}

func TestErrorsReplayInexact(t *testing.T) {
	ec := newErrorsCluster(t)
	ec.topic("errs", 1, nil)
	ec.topic("gone", 1, nil)
	ec.topic("reused", 1, nil)
	ec.topic("out", 1, nil)
	ec.produce(
		&kgo.Record{Topic: "gone", Value: []byte("old-0")},
		&kgo.Record{Topic: "gone", Value: []byte("old-1")},
		&kgo.Record{Topic: "reused", Value: []byte(`{"event_id":"someone else"}`)},
	)
	del, err := ec.adm.DeleteRecords(t.Context(), kadm.Offsets{"gone": {0: {Topic: "gone", Partition: 0, At: 2}}})
	if err != nil || del.Error() != nil {
		t.Fatalf("deleting records: %v %v", err, del.Error())
	}
	ec.errorRecords("errs",
		`{"original_message": {"b": 2, "a": [1, 2]}, "error": "x", "stage": "validate", "source": {"topic": "gone", "partition": 0, "offset": 0, "key": "kg", "headers": {"h": "v"}}}`,
		errRec(map[string]any{erOriginalMessage: "plain text, not JSON", erError: "x", erStage: "trigger", erSource: src("gone", 0, 1, nil)}),
		errRec(map[string]any{erOriginalMessage: 42, erError: "x", erStage: "trigger", erSource: src("never-existed", 0, 0, nil)}),
		errRec(map[string]any{erOriginalMessage: map[string]any{"event_id": "mine"}, erError: "x", erStage: "lookup", erSource: src("reused", 0, 0, nil)}),
		errRec(map[string]any{erOriginalMessage: "no position", erError: "x", erStage: "trigger", erSource: map[string]any{erSourceTopic: "gone"}}),
	)

	s, out, err := ec.replay("--topic", "errs", "--to-topic", "out")
	if err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	wantInexact := []reasonCount{
		{Reason: inexactGone, Count: 3, Records: []string{"0/0", "0/1", "0/2"}},
		{Reason: inexactNoPosition, Count: 1, Records: []string{"0/4"}},
		{Reason: inexactDiffers, Count: 1, Records: []string{"0/3"}},
	}
	if s.Replayed != 5 || s.Inexact != 5 || !reflect.DeepEqual(s.InexactByReason, wantInexact) {
		t.Fatalf("summary: %s", out)
	}
	got := ec.read("out")
	want := []string{`{"b":2,"a":[1,2]}`, "plain text, not JSON", "42", `{"event_id":"mine"}`, "no position"}
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i, r := range got {
		if string(r.Value) != want[i] {
			t.Errorf("record %d: %q, want %q", i, r.Value, want[i])
		}
	}
	if string(got[0].Key) != "kg" || len(got[0].Headers) != 1 || got[0].Headers[0].Key != "h" || string(got[0].Headers[0].Value) != "v" {
		t.Errorf("fallback key and headers: %q %v, want source.key and source.headers", got[0].Key, got[0].Headers)
	}
}

func TestErrorsReplaySkipped(t *testing.T) {
	ec := newErrorsCluster(t)
	ec.topic("errs", 1, nil)
	ec.topic("events", 1, nil)
	ec.errorRecords("errs",
		"not JSON at all {",
		errRec(map[string]any{erOriginalText: "x", erError: "x", erStage: "trigger", erSource: nil}),
		errRec(map[string]any{erOriginalMessage: "cut…", erOriginalTruncated: true, erOriginalSize: 300000, erError: "x", erStage: "parse",
			erSource: src("events", 0, 99, nil)}),
		errRec(map[string]any{erOriginalBase64: "***", erError: "x", erStage: "trigger", erSource: src("events", 0, 0, nil)}),
		errRec(map[string]any{erOriginalText: "x", erError: "x", erStage: "trigger",
			erSource: map[string]any{erSourceTopic: "events", erSourceHeaders: map[string]any{"n": 1}}}),
		errRec(map[string]any{erOriginalText: "good", erError: "x", erStage: "trigger", erSource: src("events", 0, 0, nil)}),
	)
	s, out, err := ec.replay("--topic", "errs")
	if err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	want := map[string][]string{
		skipNotJSON:       {"0/0"},
		skipNoSourceTopic: {"0/1"},
		skipTruncatedGone: {"0/2"},
		skipBadBase64:     {"0/3"},
		`source.headers: header "n" is not a string or an array of strings`: {"0/4"},
	}
	got := map[string][]string{}
	for _, c := range s.SkippedByReason {
		got[c.Reason] = c.Records
	}
	if !reflect.DeepEqual(got, want) || s.Skipped != 5 || s.Replayed != 1 || s.Selected != 6 {
		t.Fatalf("skipped %v, want %v\n%s", got, want, out)
	}
	if v := values(ec.read("events")); !slices.Equal(v, []string{"good"}) {
		t.Errorf("published %q, want only the good record", v)
	}
	if s.ByStage["(unreadable)"] != 1 {
		t.Errorf("the record that is not JSON counts under stage (unreadable): %v", s.ByStage)
	}

	// A stage filter leaves out the records without a stage.
	s, out, err = ec.replay("--topic", "errs", "--stage", "parse", "--dry-run")
	if err != nil || s.Selected != 1 || s.Skipped != 1 {
		t.Fatalf("--stage parse: %v\n%s", err, out)
	}
}

func TestErrorsReplayDryRun(t *testing.T) {
	ec := newErrorsCluster(t)
	ec.topic("errs", 2, nil)
	ec.topic("events", 2, nil)
	ec.produce(&kgo.Record{Topic: "events", Partition: 1, Key: []byte("k"), Value: []byte(`{"a": 1}`)})
	var recs []*kgo.Record
	for i, v := range []string{
		errRec(map[string]any{erOriginalText: "t1", erError: "assignment 1 is not known", erStage: "trigger", erSource: src("events", 0, 5, "k")}),
		errRec(map[string]any{erOriginalText: "t2", erError: "assignment 2 is not known", erStage: "trigger", erSource: src("events", 1, 6, "k")}),
		errRec(map[string]any{erOriginalMessage: map[string]any{"a": 1}, erError: "lookup failed", erStage: "lookup", erSource: src("events", 1, 0, "k")}),
		errRec(map[string]any{erOriginalMessage: map[string]any{"a": 2}, erError: "lookup failed", erStage: "lookup", erSource: src("events", 1, 9, "k")}),
		errRec(map[string]any{erOriginalMessage: "cut", erOriginalTruncated: true, erError: "too big", erStage: "parse", erSource: src("events", 0, 9, nil)}),
		"garbage",
	} {
		recs = append(recs, &kgo.Record{Topic: "errs", Partition: int32(i % 2), Value: []byte(v)})
	}
	ec.produce(recs...)

	dry, out, err := ec.replay("--topic", "errs", "--dry-run")
	if err != nil {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if got := ec.read("events"); len(got) != 1 {
		t.Fatalf("the dry run published %d records", len(got)-1)
	}
	text, err := ec.replayText("--topic", "errs", "--dry-run")
	if err != nil || !strings.Contains(text, "(dry run)") || !strings.Contains(text, "would replay") {
		t.Fatalf("dry run text: %v\n%s", err, text)
	}
	real, out, err := ec.replay("--topic", "errs")
	if err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	if !dry.DryRun || real.DryRun || dry.Replayed != 0 || real.Replayed != real.Replayable || real.Replayable != 4 {
		t.Fatalf("dry run %+v, real run %+v", dry, real)
	}
	dry.DryRun, dry.Replayed = false, real.Replayed
	if !reflect.DeepEqual(dry, real) {
		t.Errorf("the dry run's counts differ from the real run's:\ndry  %+v\nreal %+v", dry, real)
	}
	if real.ByStage["trigger"] != 2 || real.ByStage["lookup"] != 2 || real.ByDestination["events"] != 4 || real.Inexact != 1 || real.Skipped != 2 {
		t.Errorf("counts: %+v", real)
	}
	if got := ec.read("events"); len(got) != 5 {
		t.Errorf("events holds %d records, want 1 + 4 replayed", len(got))
	}
}

func TestErrorsReplayFailures(t *testing.T) {
	ec := newErrorsCluster(t)
	ec.topic("errs", 1, nil)
	ec.topic("events", 1, nil)
	small := "300"
	ec.topic("tiny", 1, map[string]*string{"max.message.bytes": &small})
	noise := make([]byte, 1500) // incompressible, so that the batch stays above 300 bytes
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	ec.errorRecords("errs",
		errRec(map[string]any{erOriginalText: base64.StdEncoding.EncodeToString(noise), erError: "x", erStage: "trigger", erSource: src("events", 0, 0, nil)}),
	)

	_, out, err := ec.replay("--topic", "errs", "--to-topic", "no-such-topic")
	if err == nil || !strings.Contains(err.Error(), "no-such-topic") {
		t.Fatalf("a missing destination must fail: %v\n%s", err, out)
	}
	_, out, err = ec.replay("--topic", "errs", "--to-topic", "tiny")
	if err == nil || !strings.Contains(err.Error(), "errors topic partition 0 offset 0") {
		t.Fatalf("a record the broker refuses must fail naming it: %v\n%s", err, out)
	}
	if len(ec.read("tiny")) != 0 {
		t.Error("tiny holds records")
	}
	if _, err := ec.replayText("--topic", "no-errors-topic"); err == nil {
		t.Error("a missing errors topic must fail")
	}
}
