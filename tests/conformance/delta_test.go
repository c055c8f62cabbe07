//go:build conformance

package conformance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/delta"
	"github.com/claimx/claimx-connect/delta/storage"
)

// The readers and the names they give the Delta types of the tracking table.
var readerTypes = map[string]map[string]string{
	"spark":   {"string": "string", "timestamp": "timestamp", "integer": "int", "long": "bigint"},
	"deltars": {"string": "string", "timestamp": "timestamp", "integer": "integer", "long": "long"},
	"duckdb":  {"string": "VARCHAR", "timestamp": "TIMESTAMP WITH TIME ZONE", "integer": "INTEGER", "long": "BIGINT"},
}

// wroteTable is what a test wrote: the rows (by column name) and what the
// readers must report about them.
type wroteTable struct {
	name      string
	dir       string
	schema    *delta.Schema
	rows      []map[string]any // column -> Go value (string, int32, int64, time.Time, nil)
	partition map[string]int32 // the partition the pruning check filters on
	partFiles int              // live files in that partition
	allFiles  int
	lookups   [][2]any
	history   []delta.HistoryEntry
}

func (w *wroteTable) spec() map[string]any {
	lk := make([][2]any, len(w.lookups))
	copy(lk, w.lookups)
	return map[string]any{"name": w.name, "path": w.dir, "partition": w.partition, "lookups": lk, "order_by": "event_id"}
}

// finish records the files, history and expected lookups of tbl.
func (w *wroteTable) finish(t *testing.T, tbl *delta.Table) {
	t.Helper()
	snap := tbl.Snapshot()
	w.schema = snap.Schema()
	w.allFiles, w.partFiles = 0, 0
	for _, f := range snap.Files() {
		w.allFiles++
		match := true
		for k, v := range w.partition {
			pv := f.PartitionValues[k]
			if pv == nil || *pv != fmt.Sprint(v) {
				match = false
			}
		}
		if match {
			w.partFiles++
		}
	}
	h, err := tbl.History(t.Context(), 0)
	if err != nil {
		t.Fatalf("history of %s: %v", w.name, err)
	}
	w.history = h
}

func (w *wroteTable) sortedRows() []map[string]any {
	rows := append([]map[string]any(nil), w.rows...)
	sort.Slice(rows, func(i, j int) bool { return rows[i]["event_id"].(string) < rows[j]["event_id"].(string) })
	return rows
}

// ---------------------------------------------------------------- data ---

func mustTime(s string) time.Time {
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return ts.UTC()
}

// Event times around the edges that matter: midnight UTC at a year end,
// a leap day, one microsecond either side of midnight, the epoch.
var eventTimes = []time.Time{
	mustTime("2024-12-31T23:59:59.999999Z"),
	mustTime("2025-01-01T00:00:00Z"),
	mustTime("2025-01-01T00:00:00.000001Z"),
	mustTime("2024-12-31T23:59:59.999Z"),
	mustTime("2024-12-31T00:00:00.000500Z"),
	mustTime("2024-02-29T23:59:59.123456Z"),
	mustTime("2025-03-30T01:30:00.5Z"),
	mustTime("1970-01-01T00:00:00Z"),
	mustTime("1969-12-31T23:59:59.999999Z"),
	mustTime("2025-06-15T12:00:00.000001Z"),
}

// Strings that stress the 32-character stats prefix, UTF-8 and escaping.
var prefix32 = strings.Repeat("P", 31)

var awkwardStrings = []string{
	"",
	"plain",
	"Kabinett prüfen – größe ÄÖÜ ß",
	"日本語のタスク名 🚀 emoji 👩‍🔧 zwj",
	"quote \" backslash \\ newline \n tab \t end",
	prefix32 + "🚀 emoji astride the 32-character stats cut",
	prefix32 + "é accent astride the cut",
	strings.Repeat("Z", 40),          // above every other max prefix
	strings.Repeat("\U0010FFFF", 40), // the highest code point, past the cut
	"combining e\u0301 and RTL \u05e9\u05dc\u05d5\u05dd",
}

func longJSON(i int) string {
	var b strings.Builder
	b.WriteString(`{"taskId":32513,"label":"Cabinet ✓","steps":[`)
	for j := 0; j < 60+i%40; j++ {
		if j > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"n":%d,"text":"step %d — prüfen 🚀 \"quoted\" \\ back","ok":%v}`, j, j, j%2 == 0)
	}
	b.WriteString(`]}`)
	return b.String()
}

var assignmentIDs = []any{nil, int64(1), int64(5423723), int64(math.MaxInt64), int64(9007199254740993), int64(-1), int64(0)}

// trackingRow builds row i of the tracking table, by column name.
func trackingRow(prefix string, i int) map[string]any {
	ev := eventTimes[i%len(eventTimes)].Add(time.Duration(i/len(eventTimes)) * time.Microsecond)
	r := map[string]any{
		"event_id":            fmt.Sprintf("%s-%04d", prefix, i),
		"event_type":          []string{"CUSTOM_TASK_ASSIGNED", "CUSTOM_TASK_COMPLETED", "CUSTOM_TASK_UPDATED"}[i%3],
		"event_timestamp":     ev,
		"processed_timestamp": ev.Add(time.Duration(1+i) * 1234567 * time.Nanosecond).Truncate(time.Microsecond),
		"task_id":             int32(32513),
		"assignment_id":       assignmentIDs[i%len(assignmentIDs)],
		"project_id":          awkwardStrings[(i+3)%len(awkwardStrings)] + fmt.Sprintf("#%d", i%4),
		"task_status":         []string{"ASSIGNED", "IN_PROGRESS", "COMPLETED", "CANCELLED"}[i%4],
		"task_name":           nil,
		"assigned_to_user_id": int64(1000 + i),
		"assigned_by_user_id": nil,
		"task_created_at":     nil,
		"task_completed_at":   nil,
		"claimx_task_full":    longJSON(i),
		"original_event":      fmt.Sprintf(`{"task":{"id":%d,"name":%q}}`, i, awkwardStrings[i%len(awkwardStrings)]),
		"project_data":        nil,
		"tracking_version":    "1.0",
		"source":              "claimx_itel_plugin",
		"year":                int32(ev.Year()),
		"month":               int32(ev.Month()),
		"day":                 int32(ev.Day()),
	}
	if i%2 == 0 {
		r["task_name"] = awkwardStrings[i%len(awkwardStrings)]
		r["assigned_by_user_id"] = int64(-(i + 1))
		r["task_created_at"] = ev.Add(-26 * time.Hour)
		r["project_data"] = fmt.Sprintf(`{"project":{"id":"P%d","address":"Straße 1, 日本"}}`, i)
	}
	if i%3 == 1 {
		r["task_completed_at"] = ev.Add(90 * time.Minute)
	}
	return r
}

func toRow(t *testing.T, sc *delta.Schema, m map[string]any) delta.Row {
	t.Helper()
	row := make(delta.Row, sc.Len())
	for i, f := range sc.Fields() {
		row[i] = m[f.Name]
	}
	return row
}

func trackingSchema(t *testing.T) *delta.Schema {
	t.Helper()
	// The schema file the worker's delta_lake processor reads.
	var b []byte
	var err error
	for _, p := range []string{"schemas/itel_cabinet_task_tracking.yaml", "pipelines/schema/itel_cabinet_task_tracking.yaml"} {
		if b, err = os.ReadFile(filepath.Join(repoRoot(t), p)); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	sc, err := delta.ParseSchemaFile(b)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

var trackingProps = map[string]string{
	"delta.enableChangeDataFeed":       "true",
	"delta.autoOptimize.optimizeWrite": "true",
	"delta.autoOptimize.autoCompact":   "true",
	"delta.checkpointInterval":         "10",
}

func openLocal(t *testing.T, dir string) storage.Store {
	t.Helper()
	st, err := storage.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func appendRows(t *testing.T, tbl *delta.Table, sc *delta.Schema, mode delta.SchemaMode, rows []map[string]any) delta.CommitResult {
	t.Helper()
	req := delta.AppendRequest{Schema: sc, Mode: mode}
	for _, r := range rows {
		req.Rows = append(req.Rows, toRow(t, sc, r))
	}
	res, err := tbl.Append(t.Context(), req)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	if res.CheckpointErr != nil {
		t.Fatalf("checkpoint after append: %v", res.CheckpointErr)
	}
	return res
}

// lookupsFor picks equality filters whose answers depend on correct string
// stats (data skipping): values past the 32-character cut, unicode, empty.
func lookupsFor(rows []map[string]any) [][2]any {
	var lk [][2]any
	seen := map[string]bool{}
	for _, r := range rows {
		for _, c := range []string{"project_id", "task_name"} {
			v, ok := r[c].(string)
			if !ok || seen[c+v] {
				continue
			}
			seen[c+v] = true
			lk = append(lk, [2]any{c, v})
		}
	}
	lk = append(lk, [2]any{"event_id", rows[len(rows)-1]["event_id"]}, [2]any{"project_id", prefix32 + "🚀 no such value"})
	return lk
}

func countMatches(rows []map[string]any, col string, v any) int {
	n := 0
	for _, r := range rows {
		if r[col] == v {
			n++
		}
	}
	return n
}

// ------------------------------------------------------------ the tables ---

// buildTrackingTable: the tracking table of DOMAIN.md §6, five appends
// spread over partitions (several files per partition).
func buildTrackingTable(t *testing.T, dir string) *wroteTable {
	ctx := t.Context()
	sc := trackingSchema(t)
	tbl, err := delta.Create(ctx, openLocal(t, dir), delta.CreateOptions{
		Schema: sc, PartitionColumns: []string{"year", "month", "day"}, Properties: trackingProps,
		Name: "itel_cabinet_task_tracking", Description: "conformance",
	})
	if err != nil {
		t.Fatal(err)
	}
	w := &wroteTable{name: "tracking", dir: dir, partition: map[string]int32{"year": 2024, "month": 12, "day": 31}}
	for batch := 0; batch < 5; batch++ {
		var rows []map[string]any
		for i := batch * 16; i < (batch+1)*16; i++ {
			rows = append(rows, trackingRow("trk", i))
		}
		op := delta.OperationWrite
		if batch%2 == 1 {
			op = delta.OperationStreamingUpdate
		}
		req := delta.AppendRequest{Operation: op, Txns: []delta.Txn{{AppID: "conformance-0", Version: int64(batch)}}}
		for _, r := range rows {
			req.Rows = append(req.Rows, toRow(t, sc, r))
		}
		if _, err := tbl.Append(ctx, req); err != nil {
			t.Fatal(err)
		}
		w.rows = append(w.rows, rows...)
	}
	w.lookups = lookupsFor(w.rows)
	w.finish(t, tbl)
	return w
}

// buildEvolvedTable: 10+ commits with checkpoints, a merge append adding
// two columns, OPTIMIZE, VACUUM with a zero-ish retention (forced), then
// more appends and an explicit checkpoint.
func buildEvolvedTable(t *testing.T, dir string) *wroteTable {
	ctx := t.Context()
	sc := trackingSchema(t)
	now := time.Now()
	clock := func() time.Time { return now }
	tbl, err := delta.Create(ctx, openLocal(t, dir), delta.CreateOptions{
		Schema: sc, PartitionColumns: []string{"year", "month", "day"}, Properties: trackingProps,
		Open: delta.OpenOptions{Now: func() time.Time { return clock() }},
	})
	if err != nil {
		t.Fatal(err)
	}
	w := &wroteTable{name: "evolved", dir: dir, partition: map[string]int32{"year": 2025, "month": 1, "day": 1}}
	n := 0
	next := func(k int) []map[string]any {
		var rows []map[string]any
		for j := 0; j < k; j++ {
			rows = append(rows, trackingRow("evo", n))
			n++
		}
		return rows
	}
	// Versions 1-8: small appends (one or two files per partition each).
	for v := 1; v <= 8; v++ {
		rows := next(6)
		appendRows(t, tbl, sc, delta.SchemaNone, rows)
		w.rows = append(w.rows, rows...)
	}
	// Version 9: schema evolution, two new nullable columns at the end.
	fields := append(sc.Fields(), delta.Field{Name: "review_note", Type: "string", Nullable: true},
		delta.Field{Name: "review_score", Type: "long", Nullable: true})
	wide, err := delta.NewSchema(fields)
	if err != nil {
		t.Fatal(err)
	}
	rows := next(6)
	for i, r := range rows {
		r["review_note"] = fmt.Sprintf("note %d — ✓", i)
		if i%2 == 0 {
			r["review_score"] = int64(i * 1000)
		}
	}
	res := appendRows(t, tbl, wide, delta.SchemaMerge, rows)
	if !res.SchemaChanged {
		t.Fatalf("merge append did not change the schema")
	}
	w.rows = append(w.rows, rows...)
	// Versions 10-12: appends in the wide schema (10 is checkpointed).
	for v := 10; v <= 12; v++ {
		rows := next(5)
		for i, r := range rows {
			if i%2 == 1 {
				r["review_note"] = awkwardStrings[(v+i)%len(awkwardStrings)]
				r["review_score"] = int64(-v)
			}
		}
		appendRows(t, tbl, wide, delta.SchemaNone, rows)
		w.rows = append(w.rows, rows...)
	}
	before := tbl.Snapshot().NumFiles()
	opt, err := tbl.Optimize(ctx, delta.OptimizeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if opt.NoOp || opt.FilesRemoved == 0 {
		t.Fatalf("optimize compacted nothing (%d files): %+v", before, opt)
	}
	// Vacuum "now + 1 h" with a one-second retention: every file the
	// OPTIMIZE removed is deleted; every live file must stay readable.
	clock = func() time.Time { return now.Add(time.Hour) }
	vac, err := tbl.Vacuum(ctx, delta.VacuumOptions{Retention: time.Second, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(vac.Deleted) < opt.FilesRemoved {
		t.Fatalf("vacuum deleted %d files, optimize removed %d", len(vac.Deleted), opt.FilesRemoved)
	}
	for v := 0; v < 3; v++ {
		rows := next(4)
		appendRows(t, tbl, wide, delta.SchemaNone, rows)
		w.rows = append(w.rows, rows...)
	}
	if err := tbl.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if tbl.Version() < 15 || tbl.Snapshot().CheckpointVersion() != tbl.Version() {
		t.Fatalf("version %d, checkpoint %d", tbl.Version(), tbl.Snapshot().CheckpointVersion())
	}
	for _, r := range w.rows {
		for _, c := range []string{"review_note", "review_score"} {
			if _, ok := r[c]; !ok {
				r[c] = nil
			}
		}
	}
	t.Logf("evolved: version %d, optimize %d->%d files, vacuum deleted %d", tbl.Version(), opt.FilesRemoved, opt.FilesAdded, len(vac.Deleted))
	w.lookups = lookupsFor(w.rows)
	w.finish(t, tbl)
	return w
}

// buildDeltaRSTable: delta-rs creates a partitioned table (write_deltalake),
// our engine opens it and appends.
func buildDeltaRSTable(t *testing.T, dir, work string) *wroteTable {
	ctx := t.Context()
	sc := trackingSchema(t)
	w := &wroteTable{name: "from_deltars", dir: dir, partition: map[string]int32{"year": 2024, "month": 12, "day": 31}}
	var first []map[string]any
	for i := 0; i < 20; i++ {
		first = append(first, trackingRow("drs", i))
	}
	jsonRows := make([]map[string]any, len(first))
	for i, r := range first {
		m := map[string]any{}
		for k, v := range r {
			if ts, ok := v.(time.Time); ok {
				v = isoMicros(ts)
			}
			m[k] = v
		}
		jsonRows[i] = m
	}
	in := writeJSON(t, work, "deltars_rows.json", map[string]any{
		"schema": sc.Fields(), "partition_by": []string{"year", "month", "day"}, "rows": jsonRows,
	})
	runPython(t, 2*time.Minute, nil, "read_table.py", "--create-deltars", dir, in)
	w.rows = append(w.rows, first...)

	tbl, err := delta.Open(ctx, openLocal(t, dir), delta.OpenOptions{})
	if err != nil {
		t.Fatalf("opening the delta-rs table: %v", err)
	}
	got := tbl.Schema()
	if got.Len() != sc.Len() {
		t.Fatalf("delta-rs table schema %s, want %s", got, sc)
	}
	for i := 0; i < sc.Len(); i++ {
		if got.Field(i).Name != sc.Field(i).Name || !got.Type(i).Equal(sc.Type(i)) || got.Field(i).Nullable != sc.Field(i).Nullable {
			t.Errorf("delta-rs column %d: %+v (%s), we wrote %+v (%s)", i, got.Field(i), got.Type(i), sc.Field(i), sc.Type(i))
		}
	}
	var second []map[string]any
	for i := 20; i < 40; i++ {
		second = append(second, trackingRow("drs", i))
	}
	appendRows(t, tbl, tbl.Schema(), delta.SchemaNone, second[:10])
	appendRows(t, tbl, tbl.Schema(), delta.SchemaNone, second[10:])
	w.rows = append(w.rows, second...)
	w.lookups = lookupsFor(w.rows)
	w.finish(t, tbl)
	return w
}

// -------------------------------------------------------------- readers ---

type readerOut struct {
	Reader   string                     `json:"reader"`
	Versions map[string]any             `json:"versions"`
	Startup  float64                    `json:"startup_seconds"`
	Tables   map[string]json.RawMessage `json:"tables"`
}

type tableOut struct {
	Error     string `json:"error"`
	Traceback string `json:"traceback"`
	Schema    []struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		Nullable bool   `json:"nullable"`
	} `json:"schema"`
	Count   json.Number                `json:"count"`
	Rows    []map[string]any           `json:"rows"`
	Agg     map[string]any             `json:"agg"`
	AggScan map[string]any             `json:"agg_scan"`
	AggPlan map[string]json.RawMessage `json:"agg_plan"`
	Pruning *struct {
		Files      *int     `json:"files"`
		Rows       int      `json:"rows"`
		TotalFiles int      `json:"total_files"`
		FileNames  []string `json:"file_names"`
		Fragments  *int     `json:"dataset_fragments"`
		DataRows   *int     `json:"dataset_rows"`
		InPlan     *bool    `json:"partition_filters_in_plan"`
		Detail     []string `json:"detail"`
	} `json:"pruning"`
	Lookups []int `json:"lookups"`
	History []struct {
		Version   json.Number `json:"version"`
		Operation string      `json:"operation"`
	} `json:"history"`
	Seconds float64 `json:"seconds"`
}

func runReader(t *testing.T, reader string, specFile string) (*readerOut, time.Duration) {
	t.Helper()
	env := []string{"CLAIMX_SPARK_JARS=" + sparkJars(t), "TMPDIR=" + t.TempDir()}
	start := time.Now()
	out := runPython(t, 10*time.Minute, env, "read_table.py", "--reader", reader, specFile)
	var ro readerOut
	d := json.NewDecoder(bytes.NewReader(out))
	d.UseNumber()
	if err := d.Decode(&ro); err != nil {
		t.Fatalf("%s output: %v\n%s", reader, err, tail(string(out), 2000))
	}
	return &ro, time.Since(start)
}

// TestDeltaReaders writes three tables with our engine (the tracking table;
// one after schema evolution, optimize, vacuum and checkpoints; one created
// by delta-rs and appended to by us) and checks that Spark (delta-spark),
// delta-rs and DuckDB (delta extension) each read exactly what was written.
func TestDeltaReaders(t *testing.T) {
	py := conformancePython(t)
	if out, err := exec.Command(py, "-c", "import deltalake, duckdb, duckdb_extension_delta, pyspark, delta").CombinedOutput(); err != nil {
		requireIntegration(t, "conformance venv incomplete: "+string(out))
	}
	work := t.TempDir()
	if keep := os.Getenv("CLAIMX_CONFORMANCE_KEEP"); keep != "" {
		// Keep the tables for a look after the test (must not exist yet).
		work = keep
		if err := os.Mkdir(work, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tables := []*wroteTable{
		buildTrackingTable(t, filepath.Join(work, "tracking")),
		buildEvolvedTable(t, filepath.Join(work, "evolved")),
		buildDeltaRSTable(t, filepath.Join(work, "from_deltars"), work),
	}
	var spec []map[string]any
	for _, w := range tables {
		spec = append(spec, w.spec())
	}
	specFile := writeJSON(t, work, "spec.json", spec)

	readers := []string{"deltars", "duckdb", "spark"}
	if _, err := exec.LookPath("java"); err != nil {
		requireIntegration(t, "java not found: Spark cannot run")
		readers = readers[:2]
	}
	for _, reader := range readers {
		t.Run(reader, func(t *testing.T) {
			ro, took := runReader(t, reader, specFile)
			t.Logf("%s %v: started in %.1fs, whole run %s", reader, ro.Versions, ro.Startup, took.Round(time.Second))
			for _, w := range tables {
				t.Run(w.name, func(t *testing.T) {
					raw, ok := ro.Tables[w.name]
					if !ok {
						t.Fatalf("no result for %s", w.name)
					}
					var to tableOut
					d := json.NewDecoder(bytes.NewReader(raw))
					d.UseNumber()
					if err := d.Decode(&to); err != nil {
						t.Fatal(err)
					}
					if to.Error != "" {
						t.Fatalf("%s could not read %s: %s\n%s", reader, w.name, to.Error, to.Traceback)
					}
					checkTable(t, reader, w, &to)
				})
			}
		})
	}
}

func checkTable(t *testing.T, reader string, w *wroteTable, to *tableOut) {
	// Schema and types.
	types := readerTypes[reader]
	if len(to.Schema) != w.schema.Len() {
		t.Errorf("schema: %d columns, wrote %d: %+v", len(to.Schema), w.schema.Len(), to.Schema)
	} else {
		for i, f := range w.schema.Fields() {
			got := to.Schema[i]
			if got.Name != f.Name || got.Type != types[f.Type] {
				t.Errorf("column %d: %s %s, wrote %s %s (%s)", i, got.Name, got.Type, f.Name, f.Type, types[f.Type])
			}
			// DuckDB's DESCRIBE calls every column of a scan nullable.
			if reader != "duckdb" && got.Nullable != f.Nullable {
				t.Errorf("column %s: nullable=%v, wrote %v", f.Name, got.Nullable, f.Nullable)
			}
		}
	}

	// Row count and every value, column by column.
	want := w.sortedRows()
	if to.Count.String() != fmt.Sprint(len(want)) {
		t.Errorf("COUNT(*) = %s, wrote %d rows", to.Count, len(want))
	}
	if len(to.Rows) != len(want) {
		t.Errorf("%d rows read, wrote %d", len(to.Rows), len(want))
	}
	bad := 0
	for i := 0; i < len(want) && i < len(to.Rows); i++ {
		got := to.Rows[i]
		for _, f := range w.schema.Fields() {
			g, wv := canon(got[f.Name]), canon(want[i][f.Name])
			if g != wv {
				bad++
				if bad <= 20 {
					t.Errorf("row %v column %s: read %s, wrote %s", want[i]["event_id"], f.Name, short(g), short(wv))
				}
			}
		}
		if len(got) != w.schema.Len() {
			t.Errorf("row %v has %d columns", want[i]["event_id"], len(got))
		}
	}
	if bad > 20 {
		t.Errorf("… %d differing values in all", bad)
	}

	// Aggregates: the reader's answer, and a full scan, equal what was written.
	wantAgg := aggOf(want)
	for _, a := range []struct {
		name string
		m    map[string]any
	}{{"aggregate query", to.Agg}, {"full scan", to.AggScan}} {
		for k, wv := range wantAgg {
			if g := canon(a.m[k]); g != canon(wv) {
				t.Errorf("%s %s: %s, wrote %s", a.name, k, g, canon(wv))
			}
		}
	}
	switch reader {
	case "spark":
		var fromStats bool
		var longAgg map[string]any
		_ = json.Unmarshal(to.AggPlan["count_min_max_long_from_stats"], &fromStats)
		d := json.NewDecoder(bytes.NewReader(to.AggPlan["count_min_max_long"]))
		d.UseNumber()
		_ = d.Decode(&longAgg)
		for _, k := range []string{"count", "min_assignment_id", "max_assignment_id"} {
			if g := canon(longAgg[k]); g != canon(wantAgg[k]) {
				t.Errorf("COUNT/MIN/MAX(assignment_id) %s: %s (from stats: %v), wrote %s", k, g, fromStats, canon(wantAgg[k]))
			}
		}
		var withTS bool
		_ = json.Unmarshal(to.AggPlan["with_timestamps_from_stats"], &withTS)
		t.Logf("spark answered from the Delta stats without reading files: COUNT(*)/MIN/MAX(assignment_id) %v; with MIN/MAX(event_timestamp) too %v", fromStats, withTS)
	case "deltars":
		var st map[string]any
		d := json.NewDecoder(bytes.NewReader(to.AggPlan["from_stats"]))
		d.UseNumber()
		_ = d.Decode(&st)
		// Stats keep timestamps at millisecond precision: min rounded
		// down, max rounded up.
		wantStats := map[string]any{
			"count":               wantAgg["count"],
			"min_assignment_id":   wantAgg["min_assignment_id"],
			"max_assignment_id":   wantAgg["max_assignment_id"],
			"min_event_timestamp": wantAgg["min_event_timestamp"].(time.Time).Truncate(time.Millisecond),
			"max_event_timestamp": ceilMilli(wantAgg["max_event_timestamp"].(time.Time)),
		}
		for k, wv := range wantStats {
			if g := canon(st[k]); g != canon(wv) {
				t.Errorf("from the add actions' stats %s: %s, want %s", k, g, canon(wv))
			}
		}
	}

	// Partition pruning.
	if p := to.Pruning; p == nil {
		t.Errorf("no pruning result")
	} else {
		wantRows := 0
		for _, r := range want {
			match := true
			for k, v := range w.partition {
				if r[k] != v {
					match = false
				}
			}
			if match {
				wantRows++
			}
		}
		if p.Rows != wantRows {
			t.Errorf("rows of partition %v: %d, wrote %d", w.partition, p.Rows, wantRows)
		}
		if p.Files == nil {
			t.Errorf("%s did not report the files it scanned for partition %v: %v", reader, w.partition, p.Detail)
		} else if *p.Files != w.partFiles {
			t.Errorf("files scanned for partition %v: %d, the partition has %d (table %d); detail: %v", w.partition, *p.Files, w.partFiles, w.allFiles, p.Detail)
		}
		if p.TotalFiles != w.allFiles {
			t.Errorf("files of a full scan: %d, the table has %d", p.TotalFiles, w.allFiles)
		}
		if p.Fragments != nil && *p.Fragments != w.partFiles {
			t.Errorf("pyarrow dataset fragments for partition %v: %d, want %d", w.partition, *p.Fragments, w.partFiles)
		}
		if p.DataRows != nil && *p.DataRows != wantRows {
			t.Errorf("pyarrow dataset rows for partition %v: %d, want %d", w.partition, *p.DataRows, wantRows)
		}
		if p.InPlan != nil && !*p.InPlan {
			t.Errorf("spark plan has no PartitionFilters: %v", p.Detail)
		}
		t.Logf("pruning %v: %d of %d files scanned, %d rows", w.partition, deref(p.Files), w.allFiles, p.Rows)
	}

	// Equality lookups (data skipping on string stats must not drop rows).
	if len(to.Lookups) != len(w.lookups) {
		t.Errorf("%d lookup answers for %d lookups", len(to.Lookups), len(w.lookups))
	} else {
		for i, lk := range w.lookups {
			if wn := countMatches(w.rows, lk[0].(string), lk[1]); to.Lookups[i] != wn {
				t.Errorf("WHERE %s = %q: %d rows, wrote %d", lk[0], lk[1], to.Lookups[i], wn)
			}
		}
	}

	// DESCRIBE HISTORY.
	if reader != "duckdb" {
		var got, wantH []string
		for _, h := range to.History {
			got = append(got, h.Version.String()+" "+h.Operation)
		}
		for _, h := range w.history {
			wantH = append(wantH, fmt.Sprintf("%d %s", h.Version, h.Operation))
		}
		if strings.Join(got, "|") != strings.Join(wantH, "|") {
			t.Errorf("history:\n read  %q\n wrote %q", got, wantH)
		}
	}
}

func deref(p *int) int {
	if p == nil {
		return -1
	}
	return *p
}

func ceilMilli(ts time.Time) time.Time {
	tr := ts.Truncate(time.Millisecond)
	if tr.Equal(ts) {
		return ts
	}
	return tr.Add(time.Millisecond)
}

func aggOf(rows []map[string]any) map[string]any {
	out := map[string]any{"count": len(rows)}
	var minTS, maxTS time.Time
	var minA, maxA *int64
	for i, r := range rows {
		ts := r["event_timestamp"].(time.Time)
		if i == 0 || ts.Before(minTS) {
			minTS = ts
		}
		if i == 0 || ts.After(maxTS) {
			maxTS = ts
		}
		if a, ok := r["assignment_id"].(int64); ok {
			if minA == nil || a < *minA {
				minA = &a
			}
			if maxA == nil || a > *maxA {
				maxA = &a
			}
		}
	}
	out["min_event_timestamp"], out["max_event_timestamp"] = minTS, maxTS
	out["min_assignment_id"], out["max_assignment_id"] = any(nil), any(nil)
	if minA != nil {
		out["min_assignment_id"], out["max_assignment_id"] = *minA, *maxA
	}
	return out
}
