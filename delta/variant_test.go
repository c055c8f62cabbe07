package delta

import (
	"context"
	"errors"
	"reflect"
	"testing"
)

// TestVariantColumn: a table with a variant column is accepted, the other
// columns are writable, the variant column is written as null, and a
// variant value is refused naming the column.
func TestVariantColumn(t *testing.T) {
	ctx := context.Background()
	sc, err := ParseSchemaString(`{"type":"struct","fields":[{"name":"id","type":"long","nullable":false,"metadata":{}},{"name":"v","type":"variant","nullable":true,"metadata":{}},{"name":"z","type":"string","nullable":true,"metadata":{}}]}`)
	must(t, err)
	eq(t, "schema", sc.String(), "id long not null, v variant, z string")
	_, err = sc.RowFromJSON(map[string]any{"id": 1, "v": map[string]any{"a": 1}})
	var ce *ConversionError
	if !errors.As(err, &ce) || ce.Column != "v" {
		t.Fatalf("error %v, want a ConversionError on v", err)
	}
	st := newLocal(t)
	tbl := mustCreate(t, st, sc, nil, nil, OpenOptions{})
	rows := []Row{{int64(1), nil, "a"}, {int64(2), nil, nil}}
	_, err = tbl.Append(ctx, AppendRequest{Rows: rows})
	must(t, err)
	if _, err := tbl.Append(ctx, AppendRequest{Rows: []Row{{int64(3), "x", nil}}}); !errors.As(err, &ce) || ce.Column != "v" {
		t.Fatalf("appending a variant value: %v, want a ConversionError on v", err)
	}
	snap := tbl.Snapshot()
	got, err := snap.ReadFile(ctx, st, snap.Files()[0])
	must(t, err)
	if !reflect.DeepEqual(got, rows) {
		t.Fatalf("read %#v, want %#v", got, rows)
	}
	eq(t, "stats", snap.Files()[0].Stats, `{"numRecords":2,"minValues":{"id":1,"z":"a"},"maxValues":{"id":2,"z":"a"},"nullCount":{"id":0,"z":1}}`)
}
