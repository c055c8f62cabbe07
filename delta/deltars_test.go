package delta

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/delta/storage"
)

// requireIntegration skips (or, with CLAIMX_REQUIRE_INTEGRATION=1, fails)
// a test whose external tool is missing.
func requireIntegration(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CLAIMX_REQUIRE_INTEGRATION") == "1" {
		t.Fatalf("integration tool missing: %s", why)
	}
	t.Skipf("skipping: %s (set CLAIMX_REQUIRE_INTEGRATION=1 to fail instead)", why)
}

// deltaRSPython returns a python with the deltalake package, from
// CLAIMX_PYTHON or the repository's .venv.
func deltaRSPython(t *testing.T) string {
	t.Helper()
	py := os.Getenv("CLAIMX_PYTHON")
	if py == "" {
		py, _ = filepath.Abs("../.venv/bin/python")
	}
	if _, err := os.Stat(py); err != nil {
		requireIntegration(t, "no python at "+py)
	}
	if out, err := exec.Command(py, "-c", "import deltalake, pyarrow").CombinedOutput(); err != nil {
		requireIntegration(t, "python "+py+" lacks deltalake/pyarrow: "+string(out))
	}
	return py
}

type deltaRSView struct {
	Version  int64             `json:"version"`
	Protocol map[string]int    `json:"protocol"`
	Parts    []string          `json:"partition_columns"`
	Config   map[string]string `json:"configuration"`
	Schema   []struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		Nullable bool   `json:"nullable"`
	} `json:"schema"`
	NumRows int64 `json:"num_rows"`
	Files   []struct {
		Path       string         `json:"path"`
		Size       int64          `json:"size"`
		NumRecords int64          `json:"num_records"`
		PartValues map[string]any `json:"partition_values"`
		Min        map[string]any `json:"min"`
		Max        map[string]any `json:"max"`
		NullCount  map[string]any `json:"null_count"`
	} `json:"files"`
	Txn  map[string]*int64 `json:"txn"`
	Rows []map[string]any  `json:"rows"`
}

func runDeltaRS(t *testing.T, py, dir string, appIDs ...string) deltaRSView {
	t.Helper()
	args := []string{"../tests/deltars/check_table.py", dir, "--rows"}
	for _, a := range appIDs {
		args = append(args, "--app-id", a)
	}
	cmd := exec.Command(py, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("delta-rs checker failed: %v\n%s", err, stderr.String())
	}
	var v deltaRSView
	d := json.NewDecoder(bytes.NewReader(out))
	d.UseNumber()
	must(t, d.Decode(&v))
	return v
}

// fromPy converts a value printed by check_table.py to the Go type of t.
func fromPy(t *testing.T, dt DataType, v any) any {
	t.Helper()
	if v == nil {
		return nil
	}
	switch dt.Kind {
	case KindString:
		return v.(string)
	case KindLong, KindInteger, KindShort, KindByte:
		n, err := v.(json.Number).Int64()
		must(t, err)
		switch dt.Kind {
		case KindInteger:
			return int32(n)
		case KindShort:
			return int16(n)
		case KindByte:
			return int8(n)
		}
		return n
	case KindFloat:
		f, err := v.(json.Number).Float64()
		must(t, err)
		return float32(f)
	case KindDouble:
		f, err := v.(json.Number).Float64()
		must(t, err)
		return f
	case KindBoolean:
		return v.(bool)
	case KindBinary:
		b, err := hex.DecodeString(v.(string))
		must(t, err)
		return b
	case KindDate:
		d, err := ParseDate(v.(string))
		must(t, err)
		return d
	case KindTimestamp:
		ts, err := ParseTimestamp(v.(string))
		must(t, err)
		return ts
	case KindDecimal:
		d, err := ParseDecimal(v.(string), dt.Precision, dt.Scale)
		must(t, err)
		return d
	}
	t.Fatalf("fromPy: %s", dt)
	return nil
}

// TestDeltaRSReadsOurTables writes tables and checks that delta-rs sees the
// same schema, rows, partition values, stats and txn versions, through
// JSON commits and through checkpoints alone.
func TestDeltaRSReadsOurTables(t *testing.T) {
	py := deltaRSPython(t)
	tests := []struct {
		name        string
		schema      func() *Schema
		parts       []string
		row         func(r *rand.Rand, i int) Row
		props       map[string]string
		interval    int
		batches     int
		rows        int
		dropCommits bool // delete the commits a checkpoint covers
	}{
		{name: "wide partitioned by escaped string with nulls", schema: wideSchema, parts: []string{"region"}, row: wideRow, interval: 10, batches: 2, rows: 400},
		{name: "wide checkpoint only", schema: wideSchema, parts: []string{"region"}, row: wideRow, interval: 2, batches: 3, rows: 200, dropCommits: true},
		{name: "tracking table year month day with CDF", schema: func() *Schema { return trackingSchema(t) }, parts: trackingPartitions,
			row: func(_ *rand.Rand, i int) Row { return trackingRow(i * 13) }, props: map[string]string{"delta.enableChangeDataFeed": "true"}, interval: 2, batches: 2, rows: 1500, dropCommits: true},
		{name: "unpartitioned", schema: wideSchema, row: wideRow, interval: 10, batches: 1, rows: 300},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			st := newLocal(t)
			sc := tc.schema()
			tbl := mustCreate(t, st, sc, tc.parts, tc.props, OpenOptions{CheckpointInterval: tc.interval})
			r := newRand(11)
			var all []Row
			for b := 0; b < tc.batches; b++ {
				rows := make([]Row, tc.rows)
				for i := range rows {
					rows[i] = tc.row(r, len(all)+i)
				}
				all = append(all, rows...)
				_, err := tbl.Append(ctx, AppendRequest{Rows: rows, Txns: []Txn{{AppID: "app-7", Version: int64(b * 1000)}}})
				must(t, err)
			}
			if tc.dropCommits {
				cp := tbl.Snapshot().CheckpointVersion()
				if cp <= 0 {
					t.Fatalf("expected a checkpoint, got %d", cp)
				}
				for v := int64(0); v <= cp; v++ {
					must(t, st.Delete(ctx, commitPath(v)))
				}
			}
			view := runDeltaRS(t, py, st.Root(), "app-7", "nobody")
			eq(t, "version", view.Version, int64(tc.batches))
			eq(t, "rows", view.NumRows, int64(len(all)))
			if got := view.Txn["app-7"]; got == nil || *got != int64((tc.batches-1)*1000) {
				t.Errorf("txn app-7 = %v, want %d", got, (tc.batches-1)*1000)
			}
			if view.Txn["nobody"] != nil {
				t.Errorf("txn nobody = %v, want none", *view.Txn["nobody"])
			}
			eq(t, "partition columns", strings.Join(view.Parts, ","), strings.Join(tc.parts, ","))
			if len(view.Schema) != sc.Len() {
				t.Fatalf("delta-rs schema has %d fields, want %d", len(view.Schema), sc.Len())
			}
			for i, f := range view.Schema {
				want := sc.Field(i)
				if f.Name != want.Name || f.Type != sc.Type(i).String() || f.Nullable != want.Nullable {
					t.Errorf("field %d: delta-rs %+v, want %s %s nullable=%v", i, f, want.Name, sc.Type(i), want.Nullable)
				}
			}
			// Rows.
			got := make([]Row, len(view.Rows))
			for k, m := range view.Rows {
				row := make(Row, sc.Len())
				for i := 0; i < sc.Len(); i++ {
					row[i] = fromPy(t, sc.Type(i), m[sc.Field(i).Name])
				}
				got[k] = row
			}
			sameRows(t, got, all)
			// Files: partition values and stats as delta-rs parsed them.
			ours := map[string]AddFile{}
			for _, f := range tbl.Snapshot().Files() {
				ours[pathKey(f.Path)] = f
			}
			eq(t, "files", len(view.Files), len(ours))
			for _, vf := range view.Files {
				f, ok := ours[pathKey(vf.Path)]
				if !ok {
					// delta-rs may print the decoded or the encoded path.
					f, ok = ours[vf.Path]
				}
				if !ok {
					t.Errorf("delta-rs lists %s, which we did not write", vf.Path)
					continue
				}
				stats := parseStats(t, f.Stats)
				n, _ := stats["numRecords"].(json.Number).Int64()
				eq(t, vf.Path+" num_records", vf.NumRecords, n)
				for _, p := range tc.parts {
					i := sc.Index(p)
					want, err := ParsePartitionValue(sc.Type(i), f.PartitionValues[p])
					must(t, err)
					if norm(fromPy(t, sc.Type(i), vf.PartValues[p])) != norm(want) {
						t.Errorf("%s: partition %s = %v, want %v", vf.Path, p, vf.PartValues[p], norm(want))
					}
				}
				nulls := stats["nullCount"].(map[string]any)
				for col, nc := range nulls {
					if vf.NullCount[col] == nil || vf.NullCount[col].(json.Number).String() != nc.(json.Number).String() {
						t.Errorf("%s: null_count.%s delta-rs %v, ours %v", vf.Path, col, vf.NullCount[col], nc)
					}
				}
				for _, which := range []string{"minValues", "maxValues"} {
					ourBounds, _ := stats[which].(map[string]any)
					theirs := vf.Min
					if which == "maxValues" {
						theirs = vf.Max
					}
					for col, ov := range ourBounds {
						i := sc.Index(col)
						switch sc.Type(i).Kind {
						case KindString, KindLong, KindInteger, KindDate, KindTimestamp:
						default:
							continue
						}
						var ourV any
						if s, ok := ov.(string); ok && sc.Type(i).Kind != KindString {
							ourV = fromPy(t, sc.Type(i), strings.Replace(s, ".000Z", "Z", 1))
						} else {
							ourV = fromPy(t, sc.Type(i), ov)
						}
						if norm(fromPy(t, sc.Type(i), theirs[col])) != norm(ourV) {
							t.Errorf("%s: %s.%s delta-rs %v, ours %v", vf.Path, which, col, theirs[col], ov)
						}
					}
				}
			}
		})
	}
}

// TestReadDeltaRSCheckpoint opens a table delta-rs wrote and checkpointed
// (with the commits before the checkpoint removed, so only the checkpoint
// can tell the state), appends to it, and has delta-rs read the result.
func TestReadDeltaRSCheckpoint(t *testing.T) {
	py := deltaRSPython(t)
	dir := t.TempDir()
	script := `
import sys, datetime, deltalake, pyarrow as pa
t = pa.table({"id": pa.array(["a", "b", "c"]), "n": pa.array([1, None, 3], pa.int64()),
              "ts": pa.array([datetime.datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=datetime.timezone.utc)] * 3, pa.timestamp("us", tz="UTC")),
              "p": pa.array(["x", "y", None])})
for i in range(3):
    deltalake.write_deltalake(sys.argv[1], t, mode="append", partition_by=["p"])
deltalake.DeltaTable(sys.argv[1]).create_checkpoint()
`
	if out, err := exec.Command(py, "-c", script, dir).CombinedOutput(); err != nil {
		t.Fatalf("delta-rs writing the table: %v\n%s", err, out)
	}
	ctx := context.Background()
	st, err := storage.NewLocal(dir)
	must(t, err)
	for v := int64(0); v <= 2; v++ {
		must(t, st.Delete(ctx, commitPath(v)))
	}
	snap, rows := readAll(t, st)
	eq(t, "version", snap.Version(), int64(2))
	eq(t, "checkpoint", snap.CheckpointVersion(), int64(2))
	eq(t, "rows", len(rows), 9)
	eq(t, "files", snap.NumFiles(), 9)
	tbl, err := Open(ctx, st, OpenOptions{})
	must(t, err)
	sc := tbl.Schema()
	row := make(Row, sc.Len())
	row[sc.Index("id")] = "ours"
	row[sc.Index("n")] = int64(42)
	row[sc.Index("p")] = "x"
	row[sc.Index("ts")] = time.Date(2026, 2, 3, 4, 5, 6, 7000, time.UTC)
	_, err = tbl.Append(ctx, AppendRequest{Rows: []Row{row}, Txns: []Txn{{AppID: "go", Version: 1}}})
	must(t, err)
	view := runDeltaRS(t, py, dir, "go")
	eq(t, "delta-rs version", view.Version, int64(3))
	eq(t, "delta-rs rows", view.NumRows, int64(10))
	if v := view.Txn["go"]; v == nil || *v != 1 {
		t.Errorf("delta-rs txn go = %v", v)
	}
}
