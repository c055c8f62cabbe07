package delta

import (
	"context"
	"math/big"
	"reflect"
	"testing"
	"time"
)

// TestTypeWideningRead writes files with the narrow type and reads them
// with the table's wider type, as after a Delta type change.
func TestTypeWideningRead(t *testing.T) {
	ctx := context.Background()
	day := time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		from, to string
		in, want any
	}{
		{"byte", "long", int8(-5), int64(-5)},
		{"short", "integer", int16(-300), int32(-300)},
		{"byte", "short", int8(7), int16(7)},
		{"integer", "long", int32(-70000), int64(-70000)},
		{"float", "double", float32(1.5), float64(1.5)},
		{"integer", "double", int32(-3), float64(-3)},
		{"date", "timestamp_ntz", day, day},
		{"decimal(5,2)", "decimal(10,4)", Decimal{Unscaled: big.NewInt(-12345), Scale: 2}, Decimal{Unscaled: big.NewInt(-1234500), Scale: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.from+"->"+tt.to, func(t *testing.T) {
			narrow := MustSchema(Field{Name: "c", Type: tt.from, Nullable: true})
			l, err := newDataLayout(narrow, nil, nil)
			must(t, err)
			st := newLocal(t)
			files, err := writeDataFiles(ctx, st, l, []Row{{tt.in}, {nil}}, WriterOptions{}.withDefaults(), time.Now)
			must(t, err)
			data, err := st.Get(ctx, files[0].storePath)
			must(t, err)
			wide := MustSchema(Field{Name: "c", Type: tt.to, Nullable: true, Metadata: map[string]any{
				"delta.typeChanges": []any{map[string]any{"fromType": tt.from, "toType": tt.to}}}})
			rows, err := decodeDataFile(data, wide, nil, nil)
			must(t, err)
			if !reflect.DeepEqual(rows, []Row{{tt.want}, {nil}}) {
				t.Fatalf("read %#v, want %#v", rows, tt.want)
			}
			if _, ok := wide.Field(0).Metadata["delta.typeChanges"]; !ok {
				t.Fatal("delta.typeChanges metadata dropped")
			}
		})
	}
}
