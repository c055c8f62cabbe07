package delta

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestVariantColumn: a variant column takes any JSON value (encoded in the
// Parquet variant encoding), reads back as the same bytes, and refuses a Go
// value that is not a Variant naming the column.
func TestVariantColumn(t *testing.T) {
	ctx := context.Background()
	sc, err := ParseSchemaString(`{"type":"struct","fields":[{"name":"id","type":"long","nullable":false,"metadata":{}},{"name":"v","type":"variant","nullable":true,"metadata":{}},{"name":"z","type":"string","nullable":true,"metadata":{}}]}`)
	must(t, err)
	eq(t, "schema", sc.String(), "id long not null, v variant, z string")
	var obj map[string]any
	d := json.NewDecoder(strings.NewReader(`{"id": 1, "v": {"b": [1, -300, 70000, 5000000000, 2.5, "s", null, true], "a": {"b": false}}, "z": "a"}`))
	d.UseNumber()
	must(t, d.Decode(&obj))
	r1, err := sc.RowFromJSON(obj)
	must(t, err)
	if _, ok := r1[1].(Variant); !ok {
		t.Fatalf("variant value %T, want Variant", r1[1])
	}
	st := newLocal(t)
	tbl := mustCreate(t, st, sc, nil, nil, OpenOptions{})
	rows := []Row{r1, {int64(2), nil, nil}}
	_, err = tbl.Append(ctx, AppendRequest{Rows: rows})
	must(t, err)
	var ce *ConversionError
	if _, err := tbl.Append(ctx, AppendRequest{Rows: []Row{{int64(3), "x", nil}}}); !errors.As(err, &ce) || ce.Column != "v" {
		t.Fatalf("appending a string as a variant: %v, want a ConversionError on v", err)
	}
	snap := tbl.Snapshot()
	got, err := snap.ReadFile(ctx, st, snap.Files()[0])
	must(t, err)
	if !reflect.DeepEqual(got, rows) {
		t.Fatalf("read %#v, want %#v", got, rows)
	}
	eq(t, "stats", snap.Files()[0].Stats, `{"numRecords":2,"minValues":{"id":1,"z":"a"},"maxValues":{"id":2,"z":"a"},"nullCount":{"id":0,"z":1}}`)
}

// TestEncodeVariant checks the bytes of the Parquet variant encoding.
func TestEncodeVariant(t *testing.T) {
	for _, tc := range []struct {
		in        any
		md, value []byte
	}{
		{nil, []byte{0xD1, 0, 0, 0, 0, 0, 0, 0, 0}, []byte{0x00}},
		{true, []byte{0xD1, 0, 0, 0, 0, 0, 0, 0, 0}, []byte{0x04}},
		{json.Number("-2"), []byte{0xD1, 0, 0, 0, 0, 0, 0, 0, 0}, []byte{0x0C, 0xFE}},
		{json.Number("300"), []byte{0xD1, 0, 0, 0, 0, 0, 0, 0, 0}, []byte{0x10, 0x2C, 0x01}},
		{"hi", []byte{0xD1, 0, 0, 0, 0, 0, 0, 0, 0}, []byte{0x09, 'h', 'i'}},
		{map[string]any{"a": json.Number("1")},
			[]byte{0xD1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 'a'},
			[]byte{0x7E, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0x0C, 1}},
		{[]any{false}, []byte{0xD1, 0, 0, 0, 0, 0, 0, 0, 0}, []byte{0x1F, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x08}},
	} {
		v, err := EncodeVariant(tc.in)
		must(t, err)
		if !bytes.Equal(v.Metadata, tc.md) || !bytes.Equal(v.Value, tc.value) {
			t.Errorf("EncodeVariant(%v) = % x / % x, want % x / % x", tc.in, v.Metadata, v.Value, tc.md, tc.value)
		}
	}
	if _, err := EncodeVariant(map[string]any{"x": struct{}{}}); err == nil {
		t.Error("a Go struct encoded as a variant")
	}
}
