package delta

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/delta/storage"
)

// recoveryView is what tests/deltafeatures/recovery_check.py reports of one
// table.
type recoveryView struct {
	Keys              []string          `json:"keys"`
	Columns           []string          `json:"columns"`
	History           map[string]string `json:"history"`
	SQL               []int             `json:"sql"`
	AsOfKeys          []string          `json:"as_of_keys"`
	SparkError        string            `json:"spark_error"`
	DeltaRSKeys       []string          `json:"deltars_keys"`
	DeltaRSError      string            `json:"deltars_error"`
	AfterKeys         []string          `json:"after_keys"`
	AfterSQL          []int             `json:"after_sql"`
	SparkWriteError   string            `json:"spark_write_error"`
	DeltaRSAfterKeys  []string          `json:"deltars_after_keys"`
	DeltaRSAfterError string            `json:"deltars_after_error"`
}

// recoveryPlan is one table of the plan sent to the checker.
type recoveryPlan struct {
	Key    string  `json:"key"`
	SQL    [][]any `json:"sql,omitempty"`
	AsOf   string  `json:"as_of,omitempty"`
	Append string  `json:"append,omitempty"`
	Delete string  `json:"delete,omitempty"`
	// Not sent: what the test expects.
	keys, asOfKeys, afterKeys []string
	columns                   []string
	historyOp                 map[string]string
}

// idKeys returns the sorted "id" values of rows of sc.
func idKeys(t *testing.T, sc *Schema, rows []Row) []string {
	t.Helper()
	i := sc.Index("id")
	if i < 0 {
		t.Fatalf("no id column in %s", sc)
	}
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		out = append(out, fmt.Sprint(r[i]))
	}
	sort.Strings(out)
	return out
}

func sortedIDs(ids ...int) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = strconv.Itoa(id)
	}
	sort.Strings(out)
	return out
}

// TestSparkRecovery: our engine writes a table over several versions
// (deletion vectors, a schema change, row tracking, column mapping),
// restores it, deep-clones it and deep-clones a table Spark made with
// deletion vectors and column mapping; then Spark (one JVM for the whole
// test) and delta-rs read exactly the expected keys, Spark's DESCRIBE
// HISTORY shows RESTORE and CLONE, Spark's TIMESTAMP AS OF picks the
// version our VersionAsOf picks, and Spark appends to and deletes from
// both clones, which our engine then reads.
func TestSparkRecovery(t *testing.T) {
	py := sparkPython(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	root := t.TempDir()

	// The JVM starts while our engine writes.
	cmd := exec.CommandContext(ctx, py, "../tests/deltafeatures/recovery_check.py", root)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	must(t, err)
	stdout, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := bufio.NewReaderSize(stdout, 1<<20)
	readLine := func(what string, v any) {
		t.Helper()
		b, err := lines.ReadBytes('\n')
		if err != nil {
			t.Fatalf("recovery_check.py %s: %v\n%s", what, err, tail(stderr.String(), 6000))
		}
		must(t, json.Unmarshal(b, v))
	}

	store := func(name string) *storage.Local {
		st, err := storage.NewLocal(filepath.Join(root, name))
		must(t, err)
		return st
	}
	ours := store("ours")
	sc := MustSchema(Field{Name: "id", Type: "long"}, Field{Name: "name", Type: "string", Nullable: true}, Field{Name: "region", Type: "string"})
	tbl := mustCreate(t, ours, sc, []string{"region"}, map[string]string{"delta.columnMapping.mode": "name",
		"delta.enableDeletionVectors": "true", "delta.enableRowTracking": "true"}, OpenOptions{CheckpointInterval: 4})
	rowsOf := func(lo, hi int) []Row {
		var rows []Row
		for i := lo; i <= hi; i++ {
			rows = append(rows, Row{int64(i), fmt.Sprintf("ours-%d", i), []string{"west", "east"}[i%2]})
		}
		return rows
	}
	step := func(rows []Row) {
		time.Sleep(30 * time.Millisecond) // distinct commit times for TIMESTAMP AS OF
		_, err := tbl.Append(ctx, AppendRequest{Rows: rows})
		must(t, err)
	}
	step(rowsOf(1, 4)) // 1
	step(rowsOf(5, 8)) // 2
	// 3: delete id 2 with a deletion vector.
	time.Sleep(30 * time.Millisecond)
	for _, f := range tbl.Snapshot().Files() {
		rows, err := tbl.Snapshot().ReadFile(ctx, ours, f)
		must(t, err)
		for i, r := range rows {
			if r[0] == int64(2) {
				deleteRows(t, ours, tbl, f, uint64(i))
			}
		}
	}
	eq(t, "version after delete", tbl.Version(), int64(3))
	step(rowsOf(9, 10)) // 4
	wide := MustSchema(append(sc.Fields(), Field{Name: "extra", Type: "string", Nullable: true})...)
	time.Sleep(30 * time.Millisecond)
	_, err = tbl.Append(ctx, AppendRequest{Schema: wide, Mode: SchemaMerge, Rows: []Row{{int64(11), "ours-11", "east", "x"}}}) // 5
	must(t, err)
	rr, err := tbl.Restore(ctx, RestoreOptions{Version: ptr(int64(3))}) // 6
	must(t, err)
	eq(t, "restore metadata", rr.MetadataRestored, true)
	restoredKeys := sortedIDs(1, 3, 4, 5, 6, 7, 8)
	snap, rows := readAll(t, ours)
	eq(t, "our keys after restore", fmt.Sprint(idKeys(t, snap.Schema(), rows)), fmt.Sprint(restoredKeys))

	// TIMESTAMP AS OF between versions 1 and 2.
	times, err := CommitTimes(ctx, ours)
	must(t, err)
	asOf := times[1].Time.Add(times[2].Time.Sub(times[1].Time) / 2).UTC().Truncate(time.Millisecond)
	asOfVersion, err := VersionAsOf(ctx, ours, asOf)
	must(t, err)
	asOfSnap, asOfRows := rowsAt(t, ours, asOfVersion)
	asOfKeys := idKeys(t, asOfSnap.Schema(), asOfRows)

	cres, err := Clone(ctx, ours, store("ours_clone"), CloneOptions{Properties: map[string]string{"owner": "ops"}})
	must(t, err)
	eq(t, "cloned version", cres.SourceVersion, int64(6))

	// Spark's table, made while we wrote ours.
	var created struct {
		Keys     []string       `json:"keys"`
		Protocol map[string]any `json:"protocol"`
	}
	readLine("create", &created)
	t.Logf("Spark table ready after %s, protocol %v", time.Since(start).Round(time.Second), created.Protocol)
	sres, err := Clone(ctx, store("spark_src"), store("spark_clone"), CloneOptions{})
	must(t, err)
	if sres.NumCopiedFiles <= sres.NumFiles {
		t.Errorf("clone of Spark's table copied %d objects for %d files: its deletion vector files are missing", sres.NumCopiedFiles, sres.NumFiles)
	}
	ssnap, srows := readAll(t, store("spark_clone"))
	eq(t, "our read of the Spark clone", fmt.Sprint(idKeys(t, ssnap.Schema(), srows)), fmt.Sprint(created.Keys))

	rowIDChecks := [][]any{{"SELECT _metadata.row_id FROM {t} GROUP BY _metadata.row_id HAVING count(*) > 1", 0},
		{"SELECT * FROM {t} WHERE _metadata.row_id IS NULL", 0}}
	plans := map[string]*recoveryPlan{
		"ours": {Key: "id", SQL: rowIDChecks, AsOf: asOf.Format("2006-01-02 15:04:05.000"),
			keys: restoredKeys, asOfKeys: asOfKeys, columns: []string{"id", "name", "region"},
			historyOp: map[string]string{"6": OperationRestore, "5": OperationWrite}},
		"ours_clone": {Key: "id", SQL: rowIDChecks, Append: "VALUES (100, 'spark-100', 'east')", Delete: "id = 1",
			keys: restoredKeys, afterKeys: sortedIDs(3, 4, 5, 6, 7, 8, 100), columns: []string{"id", "name", "region"},
			historyOp: map[string]string{"0": OperationClone}},
		"spark_clone": {Key: "id", Append: "VALUES (100, 'spark-100', 'east')", Delete: "id = 3",
			keys: created.Keys, afterKeys: sortedIDs(1, 4, 5, 6, 100), columns: []string{"id", "title", "region"},
			historyOp: map[string]string{"0": OperationClone}},
	}
	planJSON, err := json.Marshal(map[string]any{"tables": plans})
	must(t, err)
	_, err = stdin.Write(append(planJSON, '\n'))
	must(t, err)
	must(t, stdin.Close())
	var views map[string]recoveryView
	readLine("check", &views)
	t.Logf("Spark and delta-rs checks done after %s", time.Since(start).Round(time.Second))

	for name, p := range plans {
		v := views[name]
		if v.SparkError != "" {
			t.Errorf("%s: Spark: %s", name, v.SparkError)
			continue
		}
		sameKeys(t, name+": Spark keys", v.Keys, p.keys)
		sameKeys(t, name+": delta-rs keys", v.DeltaRSKeys, p.keys)
		if v.DeltaRSError != "" {
			t.Errorf("%s: delta-rs: %s", name, v.DeltaRSError)
		}
		if !reflect.DeepEqual(v.Columns, p.columns) {
			t.Errorf("%s: Spark columns %v, want %v", name, v.Columns, p.columns)
		}
		for ver, op := range p.historyOp {
			if v.History[ver] != op {
				t.Errorf("%s: Spark's history has %q at version %s, want %q (history %v)", name, v.History[ver], ver, op, v.History)
			}
		}
		for i, q := range p.SQL {
			if i >= len(v.SQL) || v.SQL[i] != q[1].(int) {
				t.Errorf("%s: Spark query %q returned %v, want %d", name, q[0], v.SQL, q[1])
			}
		}
		if p.AsOf != "" {
			sameKeys(t, fmt.Sprintf("%s: Spark TIMESTAMP AS OF %s (our version %d)", name, p.AsOf, asOfVersion), v.AsOfKeys, p.asOfKeys)
		}
		if p.Append == "" && p.Delete == "" {
			continue
		}
		if v.SparkWriteError != "" {
			t.Errorf("%s: Spark's append/delete: %s", name, v.SparkWriteError)
			continue
		}
		sameKeys(t, name+": Spark keys after its writes", v.AfterKeys, p.afterKeys)
		sameKeys(t, name+": delta-rs keys after Spark's writes", v.DeltaRSAfterKeys, p.afterKeys)
		if v.DeltaRSAfterError != "" {
			t.Errorf("%s: delta-rs after Spark's writes: %s", name, v.DeltaRSAfterError)
		}
		for i, q := range p.SQL {
			if i >= len(v.AfterSQL) || v.AfterSQL[i] != q[1].(int) {
				t.Errorf("%s: after Spark's writes, query %q returned %v, want %d", name, q[0], v.AfterSQL, q[1])
			}
		}
		// Our engine reads Spark's commits on the clone.
		snap, rows := readAll(t, store(name))
		sameKeys(t, name+": our keys after Spark's writes", idKeys(t, snap.Schema(), rows), p.afterKeys)
	}
	must(t, cmd.Wait())
	t.Logf("TestSparkRecovery: %s", time.Since(start).Round(time.Second))
}

func sameKeys(t *testing.T, what string, got, want []string) {
	t.Helper()
	if got == nil {
		got = []string{}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: %v, want %v", what, got, want)
	}
}
