package delta

import (
	"context"
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/delta/storage"
)

// constraintTable writes version 0 of a table as Spark does (protocol 7
// with the features named, metaData with the given schemaString fields)
// and opens it.
func constraintTable(t *testing.T, fields string, conf map[string]string, parts []string, features ...string) (*Table, storage.Store) {
	t.Helper()
	st := newLocal(t)
	if conf == nil {
		conf = map[string]string{}
	}
	if parts == nil {
		parts = []string{}
	}
	md := Metadata{ID: "00000000-0000-0000-0000-000000000001", Format: Format{Provider: "parquet", Options: map[string]string{}},
		SchemaString: `{"type":"struct","fields":[` + fields + `]}`, PartitionColumns: parts, Configuration: conf, CreatedTime: ptr(int64(1))}
	proto := Protocol{MinReaderVersion: 1, MinWriterVersion: 7, WriterFeatures: append([]string{"appendOnly", "invariants"}, features...)}
	data, err := EncodeCommit([]Action{{CommitInfo: map[string]any{"timestamp": 1, "operation": "CREATE TABLE"}}, {Protocol: &proto}, {MetaData: &md}})
	must(t, err)
	must(t, st.PutIfAbsent(context.Background(), commitPath(0), data))
	tbl, err := Open(context.Background(), st, OpenOptions{})
	must(t, err)
	return tbl, st
}

// needAppend fails a test whose table the feature checks refuse: every
// feature these tests use must be writable.
func needAppend(t *testing.T, tbl *Table) {
	t.Helper()
	s := tbl.Snapshot()
	if err := checkWritable(s.protocol, s.metadata, s.schema); err != nil {
		t.Fatalf("the feature checks refuse the table: %v", err)
	}
}

const amountFields = `{"name":"id","type":"string","nullable":true,"metadata":{}},` +
	`{"name":"amount","type":"long","nullable":true,"metadata":{"delta.invariants":"{\"expression\":{\"expression\":\"amount < 1000\"}}"}},` +
	`{"name":"ts","type":"timestamp","nullable":true,"metadata":{}},` +
	`{"name":"day","type":"date","nullable":true,"metadata":{"delta.generationExpression":"CAST(ts AS DATE)"}}`

func TestCheckRow(t *testing.T) {
	tbl, _ := constraintTable(t, amountFields, map[string]string{"delta.constraints.positive_amount": "amount > 0"}, nil, "checkConstraints", "generatedColumns")
	sc := tbl.Schema()
	ts := time.Date(2024, 5, 6, 23, 59, 0, 0, time.UTC)
	day := time.Date(2024, 5, 6, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		row  Row
		want string // "" = passes
	}{
		{"ok", Row{"a", int64(5), ts, nil}, ""},
		{"check fails", Row{"a", int64(-3), ts, nil}, "row violates CHECK constraint positive_amount (amount > 0): amount = -3"},
		{"invariant fails", Row{"a", int64(5000), ts, nil}, "row violates the invariant of column amount (amount < 1000): amount = 5000"},
		// NULL passes a CHECK constraint but fails an invariant.
		{"null amount", Row{"a", nil, ts, nil}, "row violates the invariant of column amount (amount < 1000): amount = NULL"},
		{"generated given equal", Row{"a", int64(5), ts, day}, ""},
		{"generated given different", Row{"a", int64(5), ts, day.AddDate(0, 0, 1)}, "column day is generated as (CAST(ts AS DATE)): the record gives 2024-05-07 but the expression gives 2024-05-06 (ts = 2024-05-06 23:59:00)"},
		{"generated from null", Row{"a", int64(5), nil, nil}, ""},
	}
	for _, c := range cases {
		r := append(Row(nil), c.row...)
		err := tbl.CheckRow(sc, r)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "":
			var ce *ConstraintError
			if !errors.As(err, &ce) || err.Error() != c.want {
				t.Errorf("%s: got %v, want %s", c.name, err, c.want)
			}
		}
		if c.name == "ok" && !sameValue(r[3], day) {
			t.Errorf("generated day = %v, want %v", r[3], day)
		}
	}

	// A batch schema in another order and without the generated column.
	batch := MustSchema(Field{Name: "ts", Type: "timestamp", Nullable: true}, Field{Name: "amount", Type: "long", Nullable: true})
	if err := tbl.CheckRow(batch, Row{ts, int64(-1)}); err == nil || !strings.Contains(err.Error(), "amount = -1") {
		t.Errorf("batch schema: got %v", err)
	}
	wider := MustSchema(Field{Name: "day", Type: "date", Nullable: true}, Field{Name: "extra", Type: "string", Nullable: true},
		Field{Name: "amount", Type: "long", Nullable: true}, Field{Name: "ts", Type: "timestamp", Nullable: true})
	r := Row{nil, "x", int64(1), ts}
	must(t, tbl.CheckRow(wider, r))
	if !sameValue(r[0], day) {
		t.Errorf("generated day in a wider batch = %v", r[0])
	}
}

func TestUnsupportedExpressionRefused(t *testing.T) {
	fields := `{"name":"a","type":"long","nullable":true,"metadata":{}},` +
		`{"name":"g","type":"string","nullable":true,"metadata":{"delta.generationExpression":"sha2(cast(a as string), 256)"}}`
	tbl, _ := constraintTable(t, fields, nil, nil, "generatedColumns")
	err := tbl.CheckRow(tbl.Schema(), Row{int64(1), nil})
	if !errors.Is(err, ErrUnsupportedFeature) || !strings.Contains(err.Error(), "generated column g") || !strings.Contains(err.Error(), "sha2") {
		t.Fatalf("got %v", err)
	}
	_, err = tbl.Append(context.Background(), AppendRequest{Rows: []Row{{int64(1), nil}}})
	if !errors.Is(err, ErrUnsupportedFeature) {
		t.Fatalf("append: got %v", err)
	}
}

func TestAppendGeneratedPartitionColumn(t *testing.T) {
	tbl, st := constraintTable(t, amountFields, map[string]string{"delta.constraints.positive_amount": "amount > 0"}, []string{"day"}, "checkConstraints", "generatedColumns")
	needAppend(t, tbl)
	ctx := context.Background()
	ts1 := time.Date(2024, 5, 6, 10, 0, 0, 0, time.UTC)
	ts2 := time.Date(2024, 5, 7, 10, 0, 0, 0, time.UTC)
	res, err := tbl.Append(ctx, AppendRequest{Rows: []Row{{"a", int64(1), ts1, nil}, {"b", int64(2), ts2, nil}, {"c", int64(3), ts1, nil}}})
	must(t, err)
	var days []string
	for _, f := range res.Files {
		days = append(days, *f.PartitionValues["day"])
	}
	sort.Strings(days)
	if strings.Join(days, ",") != "2024-05-06,2024-05-07" {
		t.Fatalf("partitions %v", days)
	}
	// A violating row fails the whole append and commits nothing.
	v := tbl.Version()
	_, err = tbl.Append(ctx, AppendRequest{Rows: []Row{{"d", int64(1), ts1, nil}, {"e", int64(-3), ts1, nil}}})
	var ce *ConstraintError
	if !errors.As(err, &ce) || ce.Name != "positive_amount" {
		t.Fatalf("got %v", err)
	}
	eq(t, "version", tbl.Version(), v)
	_ = st
}

func identityFields(start, step int, explicit bool, hwm string) string {
	md := `"delta.identity.start":` + fmtInt(start) + `,"delta.identity.step":` + fmtInt(step) + `,"delta.identity.allowExplicitInsert":` + map[bool]string{true: "true", false: "false"}[explicit]
	if hwm != "" {
		md += `,"delta.identity.highWaterMark":` + hwm
	}
	return `{"name":"id","type":"long","nullable":true,"metadata":{` + md + `}},{"name":"v","type":"string","nullable":true,"metadata":{}}`
}

func fmtInt(n int) string {
	if n < 0 {
		return "-" + fmtInt(-n)
	}
	if n < 10 {
		return string(rune('0' + n))
	}
	return fmtInt(n/10) + string(rune('0'+n%10))
}

func readIDs(t *testing.T, tbl *Table) []int64 {
	t.Helper()
	snap := tbl.Snapshot()
	var ids []int64
	for _, f := range snap.Files() {
		rows, err := snap.ReadFile(context.Background(), tbl.Store(), f)
		must(t, err)
		for _, r := range rows {
			if r[0] != nil {
				ids = append(ids, r[0].(int64))
			}
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

func TestIdentityAllocation(t *testing.T) {
	ctx := context.Background()
	tbl, st := constraintTable(t, identityFields(10, 5, false, ""), nil, nil, "identityColumns")
	needAppend(t, tbl)
	// Explicit values are refused for GENERATED ALWAYS.
	if _, err := tbl.Append(ctx, AppendRequest{Rows: []Row{{int64(3), "x"}}}); err == nil || !strings.Contains(err.Error(), "identity column") {
		t.Fatalf("explicit value: %v", err)
	}
	in := []Row{{nil, "a"}, {nil, "b"}, {nil, "c"}}
	res, err := tbl.Append(ctx, AppendRequest{Rows: in})
	must(t, err)
	if in[0][0] != nil {
		t.Fatal("Append filled the caller's rows")
	}
	if res.SchemaChanged {
		t.Error("a high-water mark update is not a schema change")
	}
	eq(t, "hwm after first append", hwmOf(t, tbl), "20")
	tbl2, err := Open(ctx, st, OpenOptions{})
	must(t, err)
	_, err = tbl2.Append(ctx, AppendRequest{Rows: []Row{{nil, "d"}, {nil, "e"}}})
	must(t, err)
	eq(t, "hwm after reopen and append", hwmOf(t, tbl2), "30")
	got := readIDs(t, tbl2)
	want := []int64{10, 15, 20, 25, 30}
	if len(got) != len(want) {
		t.Fatalf("ids %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("ids %v, want %v", got, want)
		}
	}
	// The stale handle loses the race to a metaData change: a conflict.
	if _, err := tbl.Append(ctx, AppendRequest{Rows: []Row{{nil, "f"}}}); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale handle: %v", err)
	}
}

func TestIdentityExplicitInsert(t *testing.T) {
	ctx := context.Background()
	tbl, _ := constraintTable(t, identityFields(1, 1, true, "3"), nil, nil, "identityColumns")
	needAppend(t, tbl)
	_, err := tbl.Append(ctx, AppendRequest{Rows: []Row{{int64(100), "x"}, {nil, "y"}}})
	must(t, err)
	// Only generated values move the mark (as Spark): 4, not 100.
	eq(t, "hwm", hwmOf(t, tbl), "4")
	_, err = tbl.Append(ctx, AppendRequest{Rows: []Row{{int64(7), "z"}}})
	must(t, err)
	eq(t, "hwm unchanged by explicit values", hwmOf(t, tbl), "4")
}

func hwmOf(t *testing.T, tbl *Table) string {
	t.Helper()
	tree, err := parseSchemaTree(tbl.Snapshot().Metadata().SchemaString)
	must(t, err)
	s, _ := metaString(tree.top[0].metadata, "delta.identity.highWaterMark")
	return s
}

// Nested struct fields resolve as a.b on rows whose struct values are []any
// in field order, and invariants on nested fields are found.
func TestNestedReferences(t *testing.T) {
	md := Metadata{SchemaString: `{"type":"struct","fields":[{"name":"id","type":"long","nullable":true,"metadata":{}},` +
		`{"name":"addr","type":{"type":"struct","fields":[{"name":"zip","type":"string","nullable":true,"metadata":{"delta.invariants":"{\"expression\":{\"expression\":\"addr.zip LIKE '9%'\"}}"}},` +
		`{"name":"geo","type":{"type":"struct","fields":[{"name":"lat","type":"double","nullable":true,"metadata":{}}]},"nullable":true,"metadata":{}}]},"nullable":true,"metadata":{}}]}`,
		Configuration: map[string]string{"delta.constraints.lat_ok": "addr.geo.lat BETWEEN -90 AND 90"}}
	c := compileConstraints(md, nil)
	must(t, c.err)
	cases := []struct {
		row  Row
		want string
	}{
		{Row{int64(1), []any{"90210", []any{45.0}}}, ""},
		{Row{int64(1), []any{"10001", []any{45.0}}}, "row violates the invariant of column addr.zip (addr.zip LIKE '9%'): addr.zip = '10001'"},
		{Row{int64(1), []any{"90210", []any{95.0}}}, "row violates CHECK constraint lat_ok (addr.geo.lat BETWEEN -90 AND 90): addr.geo.lat = 95.0"},
		// A null struct makes the field NULL: the invariant fails, the CHECK passes.
		{Row{int64(1), nil}, "row violates the invariant of column addr.zip (addr.zip LIKE '9%'): addr.zip = NULL"},
	}
	for _, tc := range cases {
		err := c.checkTableRow(tc.row)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("%v: got %q, want %q", tc.row, got, tc.want)
		}
	}
	tree, err := parseSchemaTree(md.SchemaString)
	must(t, err)
	if _, err := compileExpr("addr = 1", tree.resolver()); err == nil || !strings.Contains(err.Error(), "nested type") {
		t.Errorf("struct comparison: %v", err)
	}
	if _, err := compileExpr("addr.nope IS NULL", tree.resolver()); err == nil || !strings.Contains(err.Error(), "unknown column addr.nope") {
		t.Errorf("unknown nested field: %v", err)
	}
}
