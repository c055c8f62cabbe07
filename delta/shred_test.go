package delta

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

// TestShredLevels checks the repetition/definition levels of nested values
// against the Dremel encoding worked out by hand.
func TestShredLevels(t *testing.T) {
	type lv struct{ r, d int }
	tests := []struct {
		name string
		typ  string
		v    any
		want [][]lv // per leaf
	}{
		// optional list (1) of optional elements: repeated adds 1, element 1.
		{"null list", "array<long>", nil, [][]lv{{{0, 0}}}},
		{"empty list", "array<long>", []any{}, [][]lv{{{0, 1}}}},
		{"list with null", "array<long>", []any{int64(1), nil, int64(3)}, [][]lv{{{0, 3}, {1, 2}, {1, 3}}}},
		{"nested lists", "array<array<long>>", []any{[]any{int64(1), int64(2)}, []any{}, nil, []any{int64(3)}},
			[][]lv{{{0, 5}, {2, 5}, {1, 3}, {1, 2}, {1, 5}}}},
		{"struct leaves", "struct<a:long,b:string>", []any{int64(1), nil}, [][]lv{{{0, 2}}, {{0, 1}}}},
		{"null struct", "struct<a:long,b:string>", nil, [][]lv{{{0, 0}}, {{0, 0}}}},
		// map: key required (def 2 when an entry exists), value optional (3).
		{"map", "map<string,long>", []MapEntry{{Key: "a", Value: int64(1)}, {Key: "b"}}, [][]lv{{{0, 2}, {1, 2}}, {{0, 3}, {1, 2}}}},
		{"empty map", "map<string,long>", []MapEntry{}, [][]lv{{{0, 1}}, {{0, 1}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typ, err := ParseType(tt.typ)
			must(t, err)
			sc := parquet.NewSchema("s", parquet.Group{"c": nestedParquetNode(typ, true)})
			nd, err := nestedLayout(sc, "c", typ)
			must(t, err)
			s := shredder{cols: make([][]parquet.Value, len(sc.Columns()))}
			must(t, s.shred(nd, tt.v, 0, 0, "c"))
			got := make([][]lv, len(s.cols))
			for l, vals := range s.cols {
				for _, v := range vals {
					got[l] = append(got[l], lv{v.RepetitionLevel(), v.DefinitionLevel()})
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("levels = %v, want %v", got, tt.want)
			}
			// Assembly gives the value back.
			a := assembler{vals: s.cols, pos: make([]int, len(s.cols))}
			back, err := a.assemble(nd)
			must(t, err)
			if !reflect.DeepEqual(back, tt.v) && !(tt.v == nil && back == nil) {
				t.Fatalf("assembled %#v, want %#v", back, tt.v)
			}
		})
	}
}

func TestShredErrors(t *testing.T) {
	typ, _ := ParseSchemaString(`{"type":"struct","fields":[{"name":"c","type":{"type":"struct","fields":[{"name":"tags","type":{"type":"array","elementType":"long","containsNull":false},"nullable":false,"metadata":{}}]},"nullable":true,"metadata":{}}]}`)
	ct := typ.Type(0)
	sc := parquet.NewSchema("s", parquet.Group{"c": nestedParquetNode(ct, true)})
	nd, err := nestedLayout(sc, "c", ct)
	must(t, err)
	tests := []struct {
		name, col string
		v         any
	}{
		{"null required field", "c.tags", []any{nil}},
		{"null element", "c.tags[1]", []any{[]any{int64(1), nil}}},
		{"wrong element type", "c.tags[0]", []any{[]any{"x"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := shredder{cols: make([][]parquet.Value, len(sc.Columns()))}
			err := s.shred(nd, tt.v, 0, 0, "c")
			ce, ok := err.(*ConversionError)
			if !ok || ce.Column != tt.col {
				t.Fatalf("error %v, want a ConversionError on %s", err, tt.col)
			}
		})
	}
}

const roundTripNested = `{"type":"struct","fields":[` +
	`{"name":"id","type":"long","nullable":false,"metadata":{}},` +
	`{"name":"info","type":{"type":"struct","fields":[` +
	`{"name":"z","type":"string","nullable":true,"metadata":{}},` +
	`{"name":"a","type":"long","nullable":true,"metadata":{}},` +
	`{"name":"tags","type":{"type":"array","elementType":"string","containsNull":true},"nullable":true,"metadata":{}}]},"nullable":true,"metadata":{}},` +
	`{"name":"attrs","type":{"type":"map","keyType":"string","valueType":{"type":"array","elementType":"integer","containsNull":true},"valueContainsNull":true},"nullable":true,"metadata":{}},` +
	`{"name":"ts","type":"timestamp_ntz","nullable":true,"metadata":{}}]}`

var roundTripRecords = []string{
	`{"id":1,"info":{"z":"zz","a":5,"tags":["x",null,"y"]},"attrs":{"k":[1,2],"n":null,"e":[]},"ts":"2024-03-01T12:30:00.123456"}`,
	`{"id":2,"info":null,"attrs":{}}`,
	`{"id":3,"info":{"tags":[]}}`,
	`{"id":4,"info":{"a":-1}}`,
}

func TestNestedTableRoundTrip(t *testing.T) {
	ctx := context.Background()
	sc, err := ParseSchemaString(roundTripNested)
	must(t, err)
	st := newLocal(t)
	tbl := mustCreate(t, st, sc, nil, nil, OpenOptions{})
	var rows []Row
	for _, rec := range roundTripRecords {
		var m map[string]any
		dec := json.NewDecoder(strings.NewReader(rec))
		dec.UseNumber()
		must(t, dec.Decode(&m))
		r, err := sc.RowFromJSON(m)
		must(t, err)
		rows = append(rows, r)
	}
	_, err = tbl.Append(ctx, AppendRequest{Rows: rows})
	must(t, err)
	snap := tbl.Snapshot()
	var got []Row
	for _, f := range snap.Files() {
		rs, err := snap.ReadFile(ctx, st, f)
		must(t, err)
		got = append(got, rs...)
	}
	if !reflect.DeepEqual(got, rows) {
		t.Fatalf("read back:\n%#v\nwant\n%#v", got, rows)
	}
	// Struct leaves get nested stats; lists and maps a nullCount only.
	eq(t, "stats", snap.Files()[0].Stats, `{"numRecords":4,"minValues":{"id":1,"info":{"z":"zz","a":-1},"ts":"2024-03-01T12:30:00.123"},`+
		`"maxValues":{"id":4,"info":{"z":"zz","a":5},"ts":"2024-03-01T12:30:00.124"},`+
		`"nullCount":{"id":0,"info":{"z":3,"a":2,"tags":2},"attrs":2,"ts":3}}`)
	checkWithPyArrow(t, st.Root(), snap.Files()[0].Path)

	// delta-rs needs the timestampNtz table feature for ts, which table
	// creation does not declare here: check the nested columns without it.
	noTS, err := ParseSchemaString(strings.Replace(roundTripNested, `,{"name":"ts","type":"timestamp_ntz","nullable":true,"metadata":{}}`, "", 1))
	must(t, err)
	st2 := newLocal(t)
	tbl2 := mustCreate(t, st2, noTS, nil, nil, OpenOptions{})
	var rows2 []Row
	for _, r := range rows {
		rows2 = append(rows2, r[:3])
	}
	_, err = tbl2.Append(ctx, AppendRequest{Rows: rows2})
	must(t, err)
	checkWithDeltaRS(t, st2.Root())
}

// checkWithDeltaRS reads the whole table with delta-rs (log, schema and
// nested data) and compares the rows.
func checkWithDeltaRS(t *testing.T, root string) {
	py := deltaRSPython(t)
	script := `import sys, json
from deltalake import DeltaTable
dt = DeltaTable(sys.argv[1])
t = dt.to_pyarrow_table()
print(json.dumps(json.loads(dt.schema().to_json())["fields"][1]["type"], sort_keys=True))
def conv(v):
    if isinstance(v, list): return [conv(x) for x in v]
    if isinstance(v, dict): return {k: conv(x) for k, x in v.items()}
    if isinstance(v, tuple): return [conv(x) for x in v]
    return v if v is None or isinstance(v, (int, str, float)) else str(v)
print(json.dumps(sorted([conv(r) for r in t.to_pylist()], key=lambda r: r["id"]), sort_keys=True))
sys.stdout.flush()
import os; os._exit(0)  # delta-rs can abort in interpreter teardown
`
	out, err := exec.Command(py, "-c", script, root).CombinedOutput()
	if err != nil {
		t.Fatalf("delta-rs: %v\n%s", err, out)
	}
	lines := strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)
	eq(t, "delta-rs info type", lines[0], `{"fields": [{"metadata": {}, "name": "z", "nullable": true, "type": "string"}, {"metadata": {}, "name": "a", "nullable": true, "type": "long"}, {"metadata": {}, "name": "tags", "nullable": true, "type": {"containsNull": true, "elementType": "string", "type": "array"}}], "type": "struct"}`)
	want := `[{"attrs": [["e", []], ["k", [1, 2]], ["n", null]], "id": 1, "info": {"a": 5, "tags": ["x", null, "y"], "z": "zz"}}, ` +
		`{"attrs": [], "id": 2, "info": null}, ` +
		`{"attrs": null, "id": 3, "info": {"a": null, "tags": [], "z": null}}, ` +
		`{"attrs": null, "id": 4, "info": {"a": -1, "tags": null, "z": null}}]`
	eq(t, "delta-rs rows", lines[1], want)
}

func TestNestedStatsIndexedLeaves(t *testing.T) {
	sc := MustSchema(
		Field{Name: "s", Type: "struct<a:long,b:long,c:long>", Nullable: true},
		Field{Name: "x", Type: "long", Nullable: true},
	)
	tests := []struct {
		n    string
		want string
	}{
		{"2", `{"numRecords":1,"minValues":{"s":{"a":1,"b":2}},"maxValues":{"s":{"a":1,"b":2}},"nullCount":{"s":{"a":0,"b":0}}}`},
		{"4", `{"numRecords":1,"minValues":{"s":{"a":1,"b":2,"c":3},"x":4},"maxValues":{"s":{"a":1,"b":2,"c":3},"x":4},"nullCount":{"s":{"a":0,"b":0,"c":0},"x":0}}`},
		{"0", `{"numRecords":1,"minValues":{},"maxValues":{},"nullCount":{}}`},
		{"cols:x,s.b", `{"numRecords":1,"minValues":{"s":{"b":2},"x":4},"maxValues":{"s":{"b":2},"x":4},"nullCount":{"s":{"b":0},"x":0}}`},
		{"cols:`S`", `{"numRecords":1,"minValues":{"s":{"a":1,"b":2,"c":3}},"maxValues":{"s":{"a":1,"b":2,"c":3}},"nullCount":{"s":{"a":0,"b":0,"c":0}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.n, func(t *testing.T) {
			conf := map[string]string{"delta.dataSkippingNumIndexedCols": tt.n}
			if c, ok := strings.CutPrefix(tt.n, "cols:"); ok {
				// The stats columns property overrides the count.
				conf = map[string]string{"delta.dataSkippingStatsColumns": c, "delta.dataSkippingNumIndexedCols": "0"}
			}
			l, err := newDataLayout(sc, nil, conf)
			must(t, err)
			files, err := writeDataFiles(context.Background(), newLocal(t), l, []Row{{[]any{int64(1), int64(2), int64(3)}, int64(4)}}, WriterOptions{}.withDefaults(), time.Now)
			must(t, err)
			eq(t, "stats", files[0].add.Stats, tt.want)
		})
	}
}

// checkWithPyArrow reads the data file with pyarrow (an independent Parquet
// reader) and compares its JSON rendering with what was written.
func checkWithPyArrow(t *testing.T, root, path string) {
	py := deltaRSPython(t) // with pyarrow, an independent Parquet reader
	script := `import sys, json, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
print(t.schema.field("info").type, "|", t.schema.field("attrs").type, "|", t.schema.field("ts").type)
def conv(v):
    if isinstance(v, list): return [conv(x) for x in v]
    if isinstance(v, dict): return {k: conv(x) for k, x in v.items()}
    if isinstance(v, tuple): return [conv(x) for x in v]
    return v if v is None or isinstance(v, (int, str, float)) else str(v)
print(json.dumps([conv(r) for r in t.to_pylist()], sort_keys=True))
`
	out, err := exec.Command(py, "-c", script, filepath.Join(root, path)).CombinedOutput()
	if err != nil {
		t.Fatalf("pyarrow: %v\n%s", err, out)
	}
	lines := strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)
	eq(t, "arrow types", lines[0], "struct<a: int64, tags: list<element: string>, z: string> | map<string, list<element: int32> ('attrs')> | timestamp[us]")
	want := `[{"attrs": [["e", []], ["k", [1, 2]], ["n", null]], "id": 1, "info": {"a": 5, "tags": ["x", null, "y"], "z": "zz"}, "ts": "2024-03-01 12:30:00.123456"}, ` +
		`{"attrs": [], "id": 2, "info": null, "ts": null}, ` +
		`{"attrs": null, "id": 3, "info": {"a": null, "tags": [], "z": null}, "ts": null}, ` +
		`{"attrs": null, "id": 4, "info": {"a": -1, "tags": null, "z": null}, "ts": null}]`
	eq(t, "arrow rows", lines[1], want)
}
