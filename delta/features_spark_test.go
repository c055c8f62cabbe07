package delta

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/delta/storage"
)

// featureCase is one Spark-made table of tests/deltafeatures/spark_features.py
// and what our engine does to it.
type featureCase struct {
	name string
	key  string
	// spark are the key values Spark's own writes leave in the table.
	spark []string
	// ours are the rows we append (JSON, as the worker receives them) before
	// Spark's check; more are appended after it.
	ours, more []string
	// sparkDelete is a DELETE predicate Spark runs on the table after our
	// first writes (on a deletion-vector table it writes DVs into our files);
	// deleted are the key values it removes.
	sparkDelete string
	deleted     []string
	// sql are queries (with {t} for the table) and the row count each must
	// return after our writes: the feature's own invariant seen by Spark.
	sql [][2]any
	// create, when set, makes the table with our engine instead of Spark.
	create func(ctx context.Context, store storage.Store) (*Table, error)
	// readers that cannot read this table, with the reason (checked: the
	// reader must really fail, so the list stays true).
	deltarsFails, duckdbFails string
}

func keys(prefix string, ids ...int) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = fmt.Sprintf("%s%d", prefix, id)
	}
	return out
}

func baseRows(ids ...int) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = fmt.Sprintf(`{"id":%d,"name":"ours-%d","amount":%d.25,"ts":"2024-06-%02dT08:30:00.000Z"}`, id, id, id, 1+id%28)
	}
	return out
}

var featureCases = []featureCase{
	{name: "deletion_vectors", key: "id", spark: keys("", 1, 3, 4, 5, 6, 8, 9, 10),
		ours: baseRows(1001, 1002, 1003), more: baseRows(1004),
		sparkDelete: "id IN (1002, 4)", deleted: keys("", 1002, 4)},
	{name: "column_mapping_name", key: "id", spark: keys("", 1, 2, 3),
		ours: []string{`{"id":1001,"title":"ours-1001","info":{"a":7,"b":"y"},"tags":["r","s"],"extra":"x1"}`,
			`{"id":1002,"title":"ours-1002","tags":[],"extra":"x2"}`},
		more: []string{`{"id":1003,"title":"ours-1003","info":{"a":8,"b":"z"}}`},
		sql:  [][2]any{{"SELECT * FROM {t} WHERE info.a = 7 AND title = 'ours-1001'", 1}}},
	{name: "column_mapping_id", key: "id", spark: keys("", 1, 3),
		ours: []string{`{"id":1001,"title":"ours-1001","info":{"a":7,"b":"y"},"tags":["r"],"extra":"x1"}`},
		sql:  [][2]any{{"SELECT * FROM {t} WHERE extra = 'x1'", 1}}},
	{name: "timestamp_ntz", key: "id", spark: keys("", 1, 2),
		ours: []string{`{"id":1001,"local":"2024-06-01T08:30:00.123"}`},
		sql:  [][2]any{{"SELECT * FROM {t} WHERE local = TIMESTAMP_NTZ '2024-06-01 08:30:00.123'", 1}}},
	{name: "v2_checkpoint", key: "id", spark: keys("", 1, 2, 3, 4, 5, 6), ours: baseRows(1001, 1002), more: baseRows(1003)},
	{name: "clustering", key: "id", spark: keys("", 1, 2),
		ours: []string{`{"id":1001,"name":"ours-1001","region":"north"}`}},
	{name: "row_tracking", key: "id", spark: keys("", 1, 2, 3, 4, 5, 6), ours: baseRows(1001, 1002), more: baseRows(1003),
		// Row ids stay unique across Spark's files, ours and Optimize's.
		sql: [][2]any{{"SELECT _metadata.row_id FROM {t} GROUP BY _metadata.row_id HAVING count(*) > 1", 0},
			{"SELECT * FROM {t} WHERE _metadata.row_id IS NULL", 0}}},
	{name: "in_commit_timestamps", key: "id", spark: keys("", 1, 2, 3), ours: baseRows(1001)},
	{name: "vacuum_protocol_check", key: "id", spark: keys("", 1, 2), ours: baseRows(1001),
		deltarsFails: "delta-rs 1.6 does not read vacuumProtocolCheck tables"},
	{name: "type_widening", key: "id", spark: keys("", 1, 2, 3),
		ours:         []string{`{"id":1001,"n":6000000000}`},
		sql:          [][2]any{{"SELECT * FROM {t} WHERE n = 6000000000", 1}},
		deltarsFails: "delta-rs 1.6 does not read typeWidening tables"},
	{name: "variant", key: "id", spark: keys("", 1),
		ours: []string{`{"id":1001,"v":{"k":2,"l":[3,"x",null],"big":5000000000,"f":2.5}}`, `{"id":1002}`},
		sql: [][2]any{{"SELECT * FROM {t} WHERE variant_get(v, '$.k', 'int') = 2 AND variant_get(v, '$.l[1]', 'string') = 'x' " +
			"AND variant_get(v, '$.big', 'bigint') = 5000000000 AND variant_get(v, '$.f', 'double') = 2.5", 1},
			// Spark's own variant survives our Optimize.
			{"SELECT * FROM {t} WHERE try_variant_get(v, '$.l[1]', 'int') = 2", 1}}},
	{name: "check_constraints", key: "id", spark: keys("", 1),
		ours: []string{`{"id":1001,"amount":2.5,"status":"b"}`},
		sql:  [][2]any{{"SELECT * FROM {t} WHERE NOT (amount > 0 AND status IN ('a', 'b'))", 0}}},
	{name: "generated_columns", key: "id", spark: keys("", 1),
		ours: []string{`{"id":1001,"ts":"2024-06-01T23:30:00.000Z"}`},
		sql: [][2]any{{"SELECT * FROM {t} WHERE day IS NULL OR day <> CAST(ts AS DATE) OR yr <> year(ts)", 0},
			{"SELECT * FROM {t} WHERE day = DATE '2024-06-01'", 1}}},
	{name: "identity_columns", key: "name", spark: []string{"spark-1", "spark-2"},
		ours: []string{`{"name":"ours-1"}`, `{"name":"ours-2"}`}, more: []string{`{"name":"ours-3"}`},
		sql: [][2]any{{"SELECT id FROM {t} GROUP BY id HAVING count(*) > 1", 0},
			{"SELECT * FROM {t} WHERE id IS NULL OR id < 10 OR (id - 10) % 5 <> 0", 0}}},
	{name: "nested", key: "id", spark: keys("", 1, 2),
		ours: []string{`{"id":1001,"s":{"a":5,"b":{"c":"ours","d":[4,null,6]}},"arr":[{"x":9,"y":"nine"}],"m":{"p":1,"q":null},"aa":[[1,2],[],null]}`,
			`{"id":1002}`},
		sql: [][2]any{{"SELECT * FROM {t} WHERE s.b.d[2] = 6 AND m['p'] = 1 AND arr[0].y = 'nine' AND size(aa) = 3", 1}}},
	// Our own Create: column mapping, deletion vectors, row tracking,
	// nested and timestamp_ntz columns; Spark's DELETE then writes deletion
	// vectors into the table we made and wrote.
	{name: "ours_created", key: "id",
		create: func(ctx context.Context, store storage.Store) (*Table, error) {
			sc, err := ParseSchemaFile([]byte(`[{"name": "id", "type": "long"}, {"name": "info", "type": "struct<a: int, tags: array<string>>"},
				{"name": "m", "type": "map<string, long>"}, {"name": "local", "type": "timestamp_ntz"}, {"name": "region", "type": "string"}]`))
			if err != nil {
				return nil, err
			}
			return Create(ctx, store, CreateOptions{Schema: sc, PartitionColumns: []string{"region"}, Properties: map[string]string{
				"delta.columnMapping.mode": "name", "delta.enableDeletionVectors": "true", "delta.enableRowTracking": "true"}})
		},
		ours: []string{`{"id":2001,"info":{"a":1,"tags":["x"]},"m":{"k":1},"local":"2024-06-01T08:30:00.000","region":"east"}`,
			`{"id":2002,"info":{"a":2,"tags":[]},"region":"east"}`, `{"id":2003,"region":"west"}`},
		more:        []string{`{"id":2004,"info":{"a":4},"region":"east"}`},
		sparkDelete: "id = 2002", deleted: keys("", 2002),
		sql: [][2]any{{"SELECT * FROM {t} WHERE info.a = 1 AND info.tags[0] = 'x' AND m['k'] = 1 AND local = TIMESTAMP_NTZ '2024-06-01 08:30:00'", 1},
			{"SELECT _metadata.row_id FROM {t} GROUP BY _metadata.row_id HAVING count(*) > 1", 0}}},
	{name: "databricks_like", key: "id", spark: keys("", 1, 2, 4, 5), ours: baseRows(1001, 1002), more: baseRows(1003),
		sparkDelete: "id = 1001", deleted: keys("", 1001)},
}

type sparkFeatureView struct {
	Rows         []string         `json:"rows"`
	Protocol     json.RawMessage  `json:"protocol"`
	SQL          []int            `json:"sql"`
	RowIDs       map[string]int64 `json:"row_ids"`
	SparkError   string           `json:"spark_error"`
	DeltaRSKeys  []string         `json:"deltars_keys"`
	DeltaRSError string           `json:"deltars_error"`
	DuckDBKeys   []string         `json:"duckdb_keys"`
	DuckDBError  string           `json:"duckdb_error"`
}

func runFeatureScript(t *testing.T, py string, args ...string) []byte {
	t.Helper()
	start := time.Now()
	cmd := exec.Command(py, append([]string{"../tests/deltafeatures/spark_features.py"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("spark_features.py %s: %v\n%s", args[0], err, tail(stderr.String(), 6000))
	}
	t.Logf("spark_features.py %s: %s", args[0], time.Since(start).Round(time.Second))
	return out
}

// TestSparkTableFeatures has Spark 4.0 (delta-spark 4.0.1) create one table
// per table feature, then our engine appends (records from JSON, checked
// against the table's constraints), optimizes and checkpoints each; Spark
// deletes rows from tables we wrote (writing deletion vectors into our
// files), we append and optimize again, and Spark, delta-rs and DuckDB read
// back exactly the rows expected with the protocol Spark created unchanged.
func TestSparkTableFeatures(t *testing.T) {
	py := sparkPython(t)
	ctx := context.Background()
	root := t.TempDir()
	var created map[string]struct {
		Protocol json.RawMessage  `json:"protocol"`
		RowIDs   map[string]int64 `json:"row_ids"`
	}
	must(t, json.Unmarshal(runFeatureScript(t, py, "create", root), &created))

	type state struct {
		tbl  *Table
		sent map[string]map[string]any // key -> the JSON object we appended
		err  string
	}
	states := map[string]*state{}
	appendRows := func(st *state, fc featureCase, rows []string) error {
		sc := st.tbl.Schema()
		var batch []Row
		for _, js := range rows {
			var m map[string]any
			d := json.NewDecoder(strings.NewReader(js))
			d.UseNumber()
			if err := d.Decode(&m); err != nil {
				return err
			}
			row, err := sc.RowFromJSON(m)
			if err != nil {
				return fmt.Errorf("record %s: %w", js, err)
			}
			if err := st.tbl.CheckRow(sc, row); err != nil {
				return fmt.Errorf("record %s: %w", js, err)
			}
			batch = append(batch, row)
			st.sent[fmt.Sprint(m[fc.key])] = m
		}
		if _, err := st.tbl.Append(ctx, AppendRequest{Rows: batch}); err != nil {
			return fmt.Errorf("append: %w", err)
		}
		if _, err := st.tbl.Optimize(ctx, OptimizeOptions{}); err != nil {
			return fmt.Errorf("optimize: %w", err)
		}
		if err := st.tbl.Checkpoint(ctx); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
		return nil
	}
	for _, fc := range featureCases {
		st := &state{sent: map[string]map[string]any{}}
		states[fc.name] = st
		store, err := storage.NewLocal(filepath.Join(root, fc.name))
		must(t, err)
		if fc.create != nil {
			st.tbl, err = fc.create(ctx, store)
		} else {
			st.tbl, err = Open(ctx, store, OpenOptions{})
		}
		if err == nil {
			err = appendRows(st, fc, fc.ours)
		}
		if err != nil {
			st.err = err.Error()
			t.Errorf("%s: %v", fc.name, err)
		}
	}
	// A record that breaks the CHECK constraint is a record error.
	if st := states["check_constraints"]; st.err == "" {
		sc := st.tbl.Schema()
		row, err := sc.RowFromJSON(map[string]any{"id": json.Number("9"), "amount": json.Number("-1"), "status": "a"})
		must(t, err)
		var ce *ConstraintError
		if err := st.tbl.CheckRow(sc, row); !errors.As(err, &ce) {
			t.Errorf("check_constraints: a record with amount -1 gave %v, want a ConstraintError", err)
		}
	}

	plan := func(withDeletes bool) string {
		tables := map[string]any{}
		for _, fc := range featureCases {
			p := map[string]any{"key": fc.key, "sql": fc.sql}
			if withDeletes && fc.sparkDelete != "" {
				p["delete"] = fc.sparkDelete
			}
			tables[fc.name] = p
		}
		b, err := json.Marshal(map[string]any{"root": root, "tables": tables})
		must(t, err)
		f := filepath.Join(t.TempDir(), "plan.json")
		must(t, os.WriteFile(f, b, 0o644))
		return f
	}
	firstIDs := map[string]map[string]int64{}
	check := func(final bool, views map[string]sparkFeatureView) {
		for _, fc := range featureCases {
			st, v := states[fc.name], views[fc.name]
			if st.err != "" {
				continue
			}
			want := map[string]bool{}
			for _, k := range fc.spark {
				want[k] = true
			}
			for k := range st.sent {
				want[k] = true
			}
			for _, k := range fc.deleted {
				delete(want, k)
			}
			wantKeys := make([]string, 0, len(want))
			for k := range want {
				wantKeys = append(wantKeys, k)
			}
			sort.Strings(wantKeys)
			if v.SparkError != "" {
				t.Errorf("%s: Spark: %s", fc.name, v.SparkError)
				continue
			}
			got := map[string]map[string]any{}
			var gotKeys []string
			for _, js := range v.Rows {
				var m map[string]any
				d := json.NewDecoder(strings.NewReader(js))
				d.UseNumber()
				must(t, d.Decode(&m))
				k := fmt.Sprint(m[fc.key])
				got[k] = m
				gotKeys = append(gotKeys, k)
			}
			sort.Strings(gotKeys)
			if !reflect.DeepEqual(gotKeys, wantKeys) {
				t.Errorf("%s: Spark reads keys %v, want %v", fc.name, gotKeys, wantKeys)
			}
			for k, sent := range st.sent {
				if want[k] && !jsonSubset(sent, got[k]) {
					t.Errorf("%s: Spark reads row %s as %v, we wrote %v", fc.name, k, got[k], sent)
				}
			}
			for i, q := range fc.sql {
				if i < len(v.SQL) && v.SQL[i] != q[1].(int) {
					t.Errorf("%s: Spark query %q returned %d rows, want %d", fc.name, q[0], v.SQL[i], q[1])
				}
			}
			if _, ok := created[fc.name]; !ok {
				// Our own table: Spark's first look is the baseline.
				created[fc.name] = struct {
					Protocol json.RawMessage  `json:"protocol"`
					RowIDs   map[string]int64 `json:"row_ids"`
				}{Protocol: v.Protocol}
			}
			if string(v.Protocol) != string(created[fc.name].Protocol) {
				t.Errorf("%s: protocol now %s, Spark created %s", fc.name, v.Protocol, created[fc.name].Protocol)
			}
			// Row tracking: a row keeps its id through our appends and
			// Optimize (Spark's rows since creation, ours since the first
			// check).
			if strings.Contains(string(v.Protocol), `"rowTracking"`) && (len(v.RowIDs) == 0 || (len(fc.spark) > 0 && len(created[fc.name].RowIDs) == 0)) {
				t.Errorf("%s: a row-tracking table without row ids from Spark", fc.name)
			}
			for k, id := range created[fc.name].RowIDs {
				if got, ok := v.RowIDs[k]; want[k] && (!ok || got != id) {
					t.Errorf("%s: row %s has row id %d, %d when Spark created it", fc.name, k, got, id)
				}
			}
			if !final {
				firstIDs[fc.name] = v.RowIDs
				continue
			}
			for k, id := range firstIDs[fc.name] {
				if got, ok := v.RowIDs[k]; want[k] && (!ok || got != id) {
					t.Errorf("%s: row %s has row id %d, %d before our second append and Optimize", fc.name, k, got, id)
				}
			}
			checkReader(t, fc.name, "delta-rs", v.DeltaRSKeys, v.DeltaRSError, wantKeys, fc.deltarsFails)
			checkReader(t, fc.name, "DuckDB", v.DuckDBKeys, v.DuckDBError, wantKeys, fc.duckdbFails)
			t.Logf("%-22s protocol %s: append+optimize+checkpoint ok, Spark %d rows, delta-rs %s, DuckDB %s",
				fc.name, v.Protocol, len(v.Rows), readerStatus(v.DeltaRSKeys, v.DeltaRSError), readerStatus(v.DuckDBKeys, v.DuckDBError))
		}
	}

	var views map[string]sparkFeatureView
	must(t, json.Unmarshal(runFeatureScript(t, py, "check", plan(true)), &views))
	// The deletes ran before the reads: the views already lack those rows.
	check(false, views)
	for _, fc := range featureCases {
		st := states[fc.name]
		if st.err != "" {
			continue
		}
		// Refresh: Spark's DELETE committed after our handle's version.
		if err := st.tbl.Refresh(ctx); err != nil {
			t.Errorf("%s: refresh: %v", fc.name, err)
			continue
		}
		if fc.sparkDelete != "" {
			// Spark's DELETE left deletion vectors (in our files too): the
			// next Optimize must honour them.
			dvs := 0
			for _, f := range st.tbl.Snapshot().Files() {
				if f.DeletionVector != nil {
					dvs++
				}
			}
			if dvs == 0 {
				t.Errorf("%s: Spark's DELETE left no deletion vector", fc.name)
			}
		}
		if len(fc.more) > 0 {
			if err := appendRows(st, fc, fc.more); err != nil {
				st.err = err.Error()
				t.Errorf("%s (after Spark's writes): %v", fc.name, err)
			}
		}
	}
	must(t, json.Unmarshal(runFeatureScript(t, py, "check", plan(false)), &views))
	check(true, views)
}

// jsonSubset reports whether every value of want is in got (a JSON object
// from Spark's to_json, which leaves out null struct fields and columns).
func jsonSubset(want, got any) bool {
	switch w := want.(type) {
	case nil:
		return got == nil
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range w {
			if !jsonSubset(v, g[k]) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !jsonSubset(w[i], g[i]) {
				return false
			}
		}
		return true
	case json.Number:
		g, ok := got.(json.Number)
		if !ok {
			return false
		}
		a, err1 := w.Float64()
		b, err2 := g.Float64()
		return err1 == nil && err2 == nil && a == b
	default:
		return reflect.DeepEqual(want, got)
	}
}

// checkReader checks an independent reader's keys, or that it fails as the
// case records (so a reader that learns the feature is noticed).
func checkReader(t *testing.T, table, reader string, got []string, readErr string, want []string, knownFailure string) {
	t.Helper()
	switch {
	case knownFailure != "":
		if readErr == "" {
			t.Errorf("%s: %s now reads the table (%d keys); drop its known failure %q", table, reader, len(got), knownFailure)
		}
	case readErr != "":
		t.Errorf("%s: %s: %s", table, reader, readErr)
	default:
		if got == nil {
			got = []string{}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %s reads keys %v, want %v", table, reader, got, want)
		}
	}
}

func readerStatus(keys []string, err string) string {
	if err != "" {
		return "cannot read (" + tail(err, 80) + ")"
	}
	return fmt.Sprintf("%d rows", len(keys))
}
