package inputs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/claimx/claimx-connect/delta"
	"github.com/claimx/claimx-connect/delta/storage"
	"github.com/claimx/claimx-connect/kafka/kafkatest"
	_ "github.com/claimx/claimx-connect/outputs"
	"github.com/claimx/claimx-connect/quality"
)

// writeExpectations writes an events table with a duplicate id and an
// expectations file over it.
func writeExpectations(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := storage.Open(ctx, filepath.Join(dir, "events"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sc := delta.MustSchema(delta.Field{Name: "event_id", Type: "string"}, delta.Field{Name: "event_timestamp", Type: "timestamp"})
	tbl, err := delta.Create(ctx, st, delta.CreateOptions{Schema: sc})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if _, err := tbl.Append(ctx, delta.AppendRequest{Rows: []delta.Row{{"a", now}, {"b", now}, {"a", now}}}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "expectations.yaml")
	doc := fmt.Sprintf(`
tables:
  events: { uri: %q, time_column: event_timestamp }
expectations:
  - { name: ids_unique, table: events, kind: unique, column: event_id }
  - { name: fresh, table: events, kind: freshness, max_age: 24h, severity: warning }
`, filepath.Join(dir, "events"))
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Replicas sharing a claims store run each tick once between them: two
// inputs (two replicas, or the stream in two streams-mode processes) on one
// schedule run every scheduled tick once, none missed, and share the run at
// start; without claims both run every tick.
func TestQualityCheckInputClaimsRunEachTickOnce(t *testing.T) {
	path := writeExpectations(t)
	cfg, err := quality.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	exps, err := cfg.Select(nil)
	if err != nil {
		t.Fatal(err)
	}
	scheduledSuffix := "-" + selectionHash(exps)
	for _, tc := range []struct {
		name   string
		claims bool
	}{{"claims", true}, {"no claims", false}} {
		t.Run(tc.name, func(t *testing.T) {
			field := ""
			if tc.claims {
				field = fmt.Sprintf("claims_uri: %q", t.TempDir())
			}
			var mu sync.Mutex
			ticks := map[string][]int{} // scheduled run id → replicas that ran it
			starts := 0
			var streams []*kafkatest.Stream
			for replica := range 2 {
				streams = append(streams, kafkatest.StartStream(t, fmt.Sprintf(`
quality_check:
  expectations: %q
  schedule: "@every 1s"
  %s
`, path, field), func(_ context.Context, b service.MessageBatch) error {
					id, _ := b[0].MetaGet(QualityMetaRunID)
					mu.Lock()
					defer mu.Unlock()
					if strings.HasSuffix(id, scheduledSuffix) {
						ticks[id] = append(ticks[id], replica)
					} else {
						starts++
					}
					return nil
				}))
			}
			kafkatest.WaitFor(t, 20*time.Second, "five scheduled ticks", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(ticks) >= 5
			})
			for _, s := range streams {
				s.Stop(t, 5*time.Second)
			}
			mu.Lock()
			defer mu.Unlock()
			var at []time.Time
			both := 0
			for id, replicas := range ticks {
				tick, err := time.Parse("20060102T150405Z", strings.TrimSuffix(id, scheduledSuffix))
				if err != nil {
					t.Fatalf("run id %q: %v", id, err)
				}
				at = append(at, tick)
				if len(replicas) == 2 {
					both++
				}
				if tc.claims && len(replicas) != 1 {
					t.Errorf("tick %s ran in replicas %v, want one", id, replicas)
				}
			}
			slices.SortFunc(at, time.Time.Compare)
			for i := 1; i < len(at); i++ {
				if at[i].Sub(at[i-1]) != time.Second {
					t.Errorf("ticks %v: one missed after %s", at, at[i-1])
				}
			}
			if tc.claims {
				// The replicas started within a second of each other: one
				// run at start, two if they straddled a tick.
				if starts < 1 || starts > 2 {
					t.Errorf("%d runs at start between the two replicas", starts)
				}
			} else if starts != 2 || both < len(ticks)-2 {
				t.Errorf("without claims: %d runs at start, %d of %d ticks run by both replicas", starts, both, len(ticks))
			}
		})
	}
}

// The schedule fires: a run at start, then one per tick, each a batch of
// one message per result. A batch the output rejects is logged, not
// evaluated again: the next batch is a new run.
func TestQualityCheckInputSchedule(t *testing.T) {
	path := writeExpectations(t)
	var mu sync.Mutex
	var batches []service.MessageBatch
	kafkatest.StartStream(t, fmt.Sprintf(`
quality_check:
  expectations: %q
  schedule: "@every 1s"
`, path), func(_ context.Context, b service.MessageBatch) error {
		mu.Lock()
		defer mu.Unlock()
		batches = append(batches, b.Copy())
		if len(batches) == 1 {
			return errors.New("output unavailable")
		}
		return nil
	})
	kafkatest.WaitFor(t, 15*time.Second, "three runs", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(batches) >= 3
	})
	mu.Lock()
	defer mu.Unlock()
	runIDs := map[string]bool{}
	for i, b := range batches[:3] {
		if len(b) != 2 {
			t.Fatalf("batch %d: %d messages, want one per expectation", i, len(b))
		}
		var run string
		for _, m := range b {
			raw, err := m.AsBytes()
			if err != nil {
				t.Fatal(err)
			}
			var r quality.Result
			if err := json.Unmarshal(raw, &r); err != nil {
				t.Fatalf("batch %d: %v: %s", i, err, raw)
			}
			meta := func(k string) string { v, _ := m.MetaGet(k); return v }
			if meta(QualityMetaExpectation) != r.Expectation || meta(QualityMetaStatus) != string(r.Status) ||
				meta(QualityMetaSeverity) != r.Severity || meta(QualityMetaTable) != "events" ||
				meta(QualityMetaKind) != r.Kind || meta(QualityMetaRunID) != r.RunID {
				t.Errorf("batch %d: metadata does not match %+v", i, r)
			}
			switch r.Expectation {
			case "ids_unique":
				if r.Status != quality.StatusFail || !strings.Contains(r.Message, `1 duplicate row(s) of event_id`) || r.FilesScanned != 1 {
					t.Errorf("batch %d ids_unique: %+v", i, r)
				}
			case "fresh":
				if r.Status != quality.StatusPass || r.FilesScanned != 0 {
					t.Errorf("batch %d fresh: %+v", i, r)
				}
			default:
				t.Errorf("batch %d: unexpected expectation %q", i, r.Expectation)
			}
			run = r.RunID
		}
		if runIDs[run] {
			t.Errorf("batch %d repeats run %s: a rejected batch must not be delivered again", i, run)
		}
		runIDs[run] = true
	}
}

func TestQualityCheckInputConfig(t *testing.T) {
	path := writeExpectations(t)
	cases := []struct {
		name, yaml, want string
	}{
		{"bad schedule", fmt.Sprintf("quality_check: { expectations: %q, schedule: sometimes }", path), `schedule "sometimes"`},
		{"missing file", `quality_check: { expectations: ./no/such/file.yaml }`, "reading expectations file"},
		{"unknown only", fmt.Sprintf("quality_check: { expectations: %q, only: [nope] }", path), "only: no expectation named nope"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := service.NewStreamBuilder()
			if err := b.AddInputYAML(tc.yaml); err != nil {
				if !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %q lacks %q", err, tc.want)
				}
				return
			}
			if err := b.AddOutputYAML("drop: {}"); err != nil {
				t.Fatal(err)
			}
			s, err := b.Build()
			if err == nil {
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				defer cancel()
				err = s.Run(ctx)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v lacks %q", err, tc.want)
			}
		})
	}
}

// The spec's example is a valid config (linted by the builder).
func TestQualityCheckInputExample(t *testing.T) {
	b := service.NewStreamBuilder()
	if err := b.SetYAML(strings.ReplaceAll(qciExample, "./pipelines/quality/expectations.yaml", writeExpectations(t))); err != nil {
		t.Fatalf("example: %v", err)
	}
	if _, err := b.Build(); err != nil {
		t.Fatalf("example: %v", err)
	}
}

// The messages are rows of the results table as they are: the delta_lake
// output appends them with the schema file, no mapping between.
func TestQualityCheckInputIntoResultsTable(t *testing.T) {
	path := writeExpectations(t)
	results := filepath.Join(t.TempDir(), "_quality_results")
	b := service.NewStreamBuilder()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.SetLoggerYAML("level: warn"))
	must(b.AddInputYAML(fmt.Sprintf(`
quality_check:
  expectations: %q
  schedule: "@every 1h"
`, path)))
	must(b.AddOutputYAML(fmt.Sprintf(`
delta_lake:
  table_uri: %q
  create_if_missing: true
  schema_file: ../schemas/quality_results.yaml
  idempotency: { dedupe_column: result_id }
`, results)))
	s, err := b.Build()
	must(err)
	kafkatest.Start(t, s)

	var rows []delta.Row
	var sc *delta.Schema
	kafkatest.WaitFor(t, 15*time.Second, "the run's rows in the results table", func() bool {
		st, err := storage.Open(context.Background(), results, storage.Options{})
		if err != nil {
			return false
		}
		tbl, err := delta.Open(context.Background(), st, delta.OpenOptions{ReadOnly: true})
		if err != nil {
			return false
		}
		snap := tbl.Snapshot()
		sc = snap.Schema()
		rows = rows[:0]
		for _, f := range snap.Files() {
			rs, err := snap.ReadFile(context.Background(), st, f)
			if err != nil {
				return false
			}
			rows = append(rows, rs...)
		}
		return len(rows) == 2
	})
	if !sc.Equal(quality.ResultsSchema()) {
		t.Fatalf("schema %s", sc)
	}
	got := map[string]string{}
	for _, r := range rows {
		rec := map[string]any{}
		for i, n := range sc.Names() {
			rec[n] = r[i]
		}
		got[rec["expectation"].(string)] = fmt.Sprintf("%v %v %v scanned=%v", rec["status"], rec["severity"], rec["observed"], rec["files_scanned"])
		if _, ok := rec["evaluated_at"].(time.Time); !ok || rec["result_id"] != rec["run_id"].(string)+"/"+rec["expectation"].(string) {
			t.Errorf("row %v", rec)
		}
	}
	if got["ids_unique"] != "fail critical 1 scanned=1" || !strings.HasPrefix(got["fresh"], "pass warning ") {
		t.Errorf("rows: %v", got)
	}
}
