package deltasink

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/claimx/claimx-connect/delta"
	"github.com/claimx/claimx-connect/delta/storage"
)

func openRO(t testing.TB, dir string) *delta.Table {
	t.Helper()
	st, err := storage.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := delta.Open(context.Background(), st, delta.OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

// TestAutoCompactionInBackground: commits wake the compactor, which
// rewrites the partition's small files off the write path; the
// de-duplication index carries over to the compacted files without reading
// them, and duplicates are still caught.
func TestAutoCompactionInBackground(t *testing.T) {
	dir := t.TempDir()
	w := newTestWriter(t, fmt.Sprintf(dedupeConf, dir)+"maintenance: { auto_compact: on, compact_min_files: 3 }\n")
	ctx := t.Context()
	for i := 0; i < 9; i++ {
		rs, err := w.Write(ctx, service.MessageBatch{kmsg(fmt.Sprintf(`{"event_id":"e%d","day":1}`, i), 0, i)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if statuses(rs) != "w" {
			t.Fatalf("write %d: %s", i, statuses(rs))
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		files := openRO(t, dir).Snapshot().NumFiles()
		if files < 9 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no compaction after 20 s: %d files", files)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Let the compactor finish whatever run it is in.
	w.mu.Lock()
	m := w.maint
	w.mu.Unlock()
	waitIdle(t, m)

	rs, err := w.Write(ctx, service.MessageBatch{
		kmsg(`{"event_id":"e0","day":1}`, 0, 9),
		kmsg(`{"event_id":"e100","day":1}`, 0, 10),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(rs); got != "dw" {
		t.Fatalf("after compaction: statuses %q, want dw", got)
	}
	waitIdle(t, m)
	// The index names the live files, not the compacted-away ones.
	live := map[string]bool{}
	for _, f := range openRO(t, dir).Snapshot().Files() {
		live[f.Path] = true
	}
	w.mu.Lock()
	p := w.dedupe.parts["day=1/"]
	if p == nil {
		t.Fatalf("no dedupe keys for day=1: %v", w.dedupe.parts)
	}
	for f := range p.files {
		if !live[f] {
			t.Errorf("dedupe index still lists %s, which compaction removed", f)
		}
	}
	w.mu.Unlock()
	snap := openRO(t, dir).Snapshot()
	var rows int
	for _, f := range snap.Files() {
		r, err := snap.ReadFile(ctx, openRO(t, dir).Store(), f)
		if err != nil {
			t.Fatal(err)
		}
		rows += len(r)
	}
	if rows != 10 {
		t.Fatalf("%d rows, want 10", rows)
	}
}

// waitIdle waits until the compactor has nothing pending and is not in a
// run (its kick channel drained and a no-op run completes).
func waitIdle(t testing.TB, m *maintainer) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	idle := 0
	for time.Now().Before(deadline) {
		m.mu.Lock()
		n := len(m.pending)
		m.mu.Unlock()
		if n == 0 && len(m.kick) == 0 && m.running.Load() == 0 {
			// Idle three checks in a row: not between a wake-up and
			// its run.
			if idle++; idle == 3 {
				return
			}
		} else {
			idle = 0
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("compactor still busy after 20 s")
}

// TestAutoCompactSetting: `table` follows delta.autoOptimize.autoCompact,
// `on` and `off` override it, `off` with no schedule starts nothing.
func TestAutoCompactSetting(t *testing.T) {
	for _, tc := range []struct {
		setting, property string
		want, running     bool
	}{
		{"table", "true", true, true},
		{"table", "auto", true, true},
		{"table", "false", false, true},
		{"table", "", false, true},
		{"on", "false", true, true},
		{"off", "true", false, false},
	} {
		t.Run(tc.setting+"/"+tc.property, func(t *testing.T) {
			props := ""
			if tc.property != "" {
				props = fmt.Sprintf("table_properties: { delta.autoOptimize.autoCompact: %q }\n", tc.property)
			}
			w := newTestWriter(t, fmt.Sprintf(dedupeConf, t.TempDir())+props+"maintenance: { auto_compact: "+tc.setting+" }\n")
			if (w.maint != nil) != tc.running {
				t.Fatalf("maintainer running %v, want %v", w.maint != nil, tc.running)
			}
			if w.maint != nil && w.maint.autoCompactOn() != tc.want {
				t.Fatalf("auto compaction %v, want %v", w.maint.autoCompactOn(), tc.want)
			}
		})
	}
}

// TestUpkeepRun: one scheduled run compacts every partition, checkpoints
// the current version and vacuums nothing younger than the retention.
func TestUpkeepRun(t *testing.T) {
	dir := t.TempDir()
	w := newTestWriter(t, fmt.Sprintf(dedupeConf, dir)+"maintenance: { auto_compact: off, schedule: '@every 1h' }\n")
	ctx := t.Context()
	for i := 0; i < 6; i++ {
		if _, err := w.Write(ctx, service.MessageBatch{kmsg(fmt.Sprintf(`{"event_id":"e%d","day":%d}`, i, i%2), 0, i)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	before, err := storage.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	objsBefore, _ := before.List(ctx, "day=")
	w.maint.Upkeep(ctx)
	tbl := openRO(t, dir)
	if n := tbl.Snapshot().NumFiles(); n != 2 {
		t.Errorf("%d live files after the upkeep, want one per partition (2)", n)
	}
	if cp := tbl.Snapshot().CheckpointVersion(); cp != tbl.Version() {
		t.Errorf("checkpoint at %d, table at %d", cp, tbl.Version())
	}
	objsAfter, _ := before.List(ctx, "day=")
	if len(objsAfter) != len(objsBefore)+2 {
		t.Errorf("%d data files before, %d after: vacuum must keep removed files younger than the retention", len(objsBefore), len(objsAfter))
	}
}

func TestMaintenanceConfigErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"maintenance: { schedule: 'not a cron' }", "maintenance.schedule"},
		{"maintenance: { compact_min_files: 1 }", "maintenance.compact_min_files"},
		{"maintenance: { schedule: '@daily', retention: 'forever', retention_column: ts }", "maintenance.retention"},
		{"maintenance: { schedule: '@daily', retention: 7y }", "maintenance.retention_column"},
		{"maintenance: { retention: 7y, retention_column: ts }", "maintenance.schedule"},
	} {
		spec := service.NewConfigSpec().Fields(Fields()...)
		conf, err := spec.ParseYAML("table_uri: /tmp/x\n"+tc.yaml, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseConfig(conf); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one naming %s", tc.yaml, err, tc.want)
		}
	}
}

// TestUpkeepRetention: the scheduled run expires the files whose rows are
// all older than the retention (here by the statistics of a timestamp
// column) and keeps the rest; vacuum deletes nothing yet.
func TestUpkeepRetention(t *testing.T) {
	dir := t.TempDir()
	w := newTestWriter(t, fmt.Sprintf(`
table_uri: %s
create_if_missing: true
schema:
  - { name: event_id, type: string, nullable: false }
  - { name: ts, type: timestamp }
maintenance: { auto_compact: off, optimize: false, schedule: '@daily', retention: 90d, retention_column: ts }
`, dir))
	ctx := t.Context()
	old := time.Now().AddDate(-1, 0, 0).UTC().Format(time.RFC3339)
	recent := time.Now().UTC().Format(time.RFC3339)
	for i, ts := range []string{old, recent, old} {
		if _, err := w.Write(ctx, service.MessageBatch{service.NewMessage([]byte(fmt.Sprintf(`{"event_id":"e%d","ts":%q}`, i, ts)))}, nil); err != nil {
			t.Fatal(err)
		}
	}
	w.maint.Upkeep(ctx)
	tbl := openRO(t, dir)
	snap := tbl.Snapshot()
	var ids []string
	for _, f := range snap.Files() {
		rows, err := snap.ReadFile(ctx, tbl.Store(), f)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			ids = append(ids, r[0].(string))
		}
	}
	if len(ids) != 1 || ids[0] != "e1" {
		t.Fatalf("after retention the table holds %v, want [e1]", ids)
	}
	hist, err := tbl.History(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]int{}
	for _, h := range hist {
		ops[h.Operation]++
	}
	if ops["DELETE"] != 1 {
		t.Errorf("history %v: want one DELETE commit", ops)
	}
	st, _ := storage.NewLocal(dir)
	objs, _ := st.List(ctx, "part-")
	if len(objs) != 3 {
		t.Errorf("%d data files on disk, want all 3 (vacuum waits for the retention duration)", len(objs))
	}
}

// TestAutoCompactionWaitsForLull: while commits keep coming (compact_idle
// not reached) small files wait, until a partition reaches
// 4 × compact_min_files files, which is compacted at once.
func TestAutoCompactionWaitsForLull(t *testing.T) {
	dir := t.TempDir()
	w := newTestWriter(t, fmt.Sprintf(dedupeConf, dir)+"maintenance: { auto_compact: on, compact_min_files: 3, compact_idle: 1h }\n")
	ctx := t.Context()
	write := func(i int) {
		if _, err := w.Write(ctx, service.MessageBatch{kmsg(fmt.Sprintf(`{"event_id":"e%d","day":1}`, i), 0, i)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 5; i++ {
		write(i)
	}
	time.Sleep(300 * time.Millisecond)
	if n := openRO(t, dir).Snapshot().NumFiles(); n != 5 {
		t.Fatalf("%d files: compaction ran without a lull and under the cap", n)
	}
	for i := 5; i < 4*3; i++ {
		write(i)
	}
	deadline := time.Now().Add(20 * time.Second)
	for openRO(t, dir).Snapshot().NumFiles() >= 12 {
		if time.Now().After(deadline) {
			t.Fatal("a partition at the cap (12 files) was not compacted within 20 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
