package delta

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

func TestAssignColumnMapping(t *testing.T) {
	sc, err := ParseSchemaString(`{"type":"struct","fields":[` +
		`{"name":"a","type":"long","nullable":true,"metadata":{"delta.columnMapping.id":3,"delta.columnMapping.physicalName":"col-a"}},` +
		`{"name":"s","type":{"type":"struct","fields":[{"name":"x","type":"string","nullable":true,"metadata":{}}]},"nullable":true,"metadata":{}}]}`)
	must(t, err)
	tests := []struct {
		name      string
		conf      map[string]string
		wantMax   int64
		wantAdded bool
	}{
		{"no mapping", map[string]string{}, 0, false},
		{"ids after the largest in the schema", map[string]string{ColumnMappingModeKey: "name"}, 5, true},
		{"ids after maxColumnId", map[string]string{ColumnMappingModeKey: "id", ColumnMappingMaxIDKey: "10"}, 12, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, maxID, changed, err := AssignColumnMapping(sc, tt.conf)
			must(t, err)
			if changed != tt.wantAdded || (changed && maxID != tt.wantMax) {
				t.Fatalf("changed %v max %d, want %v %d", changed, maxID, tt.wantAdded, tt.wantMax)
			}
			if !changed {
				return
			}
			eq(t, "kept physical", PhysicalName("a", out.Field(0).Metadata), "col-a")
			sid, _ := ColumnMappingID(out.Field(1).Metadata)
			xid, _ := ColumnMappingID(out.Type(1).Fields[0].Metadata)
			if sid != tt.wantMax-1 || xid != tt.wantMax {
				t.Errorf("ids s=%d x=%d, want %d %d", sid, xid, tt.wantMax-1, tt.wantMax)
			}
			if p := PhysicalName("x", out.Type(1).Fields[0].Metadata); !strings.HasPrefix(p, "col-") {
				t.Errorf("nested physical name %q", p)
			}
			// Survives the schemaString round trip.
			back, err := ParseSchemaString(out.SchemaString())
			must(t, err)
			eq(t, "round trip", back.SchemaString(), out.SchemaString())
		})
	}
}

// TestColumnMappingDataFiles writes a column-mapping table's files and
// checks physical names in Parquet (with field_id), stats and
// partitionValues, then reads them back by name and, after the physical
// names are changed, by field id.
func TestColumnMappingDataFiles(t *testing.T) {
	ctx := context.Background()
	base := MustSchema(
		Field{Name: "id", Type: "long", Nullable: false},
		Field{Name: "info", Type: "struct<a:long,tags:array<string>>", Nullable: true},
		Field{Name: "day", Type: "date", Nullable: true},
		Field{Name: "hidden", Type: "string", Nullable: true},
	)
	conf := map[string]string{ColumnMappingModeKey: "name"}
	sc, maxID, _, err := AssignColumnMapping(base, conf)
	must(t, err)
	eq(t, "maxColumnId", maxID, int64(6))
	// A field without mapping metadata keeps its own name.
	fields := sc.Fields()
	fields[3].Metadata = nil
	sc, err = NewSchema(fields)
	must(t, err)
	phys := func(i int) string { return PhysicalName(sc.Field(i).Name, sc.Field(i).Metadata) }

	l, err := newDataLayout(sc, []string{"day"}, conf)
	must(t, err)
	day := time.Date(2024, 5, 6, 0, 0, 0, 0, time.UTC)
	rows := []Row{
		{int64(1), []any{int64(7), []any{"a"}}, day, "h"},
		{int64(2), nil, day, nil},
	}
	st := newLocal(t)
	files, err := writeDataFiles(ctx, st, l, rows, WriterOptions{}.withDefaults(), time.Now)
	must(t, err)
	if len(files) != 1 {
		t.Fatalf("%d files", len(files))
	}
	add := files[0].add
	if _, ok := add.PartitionValues[phys(2)]; !ok {
		t.Fatalf("partitionValues %v lack the physical key %s", add.PartitionValues, phys(2))
	}
	if v, ok := sc.PartitionValue(add.PartitionValues, "day"); !ok || *v != "2024-05-06" {
		t.Fatalf("PartitionValue(day) = %v %v", v, ok)
	}
	stats := parseStats(t, add.Stats)
	nulls := stats["nullCount"].(map[string]any)
	if _, ok := nulls[phys(0)]; !ok {
		t.Errorf("stats %s lack physical key %s", add.Stats, phys(0))
	}
	if _, ok := nulls["hidden"]; !ok {
		t.Errorf("stats %s lack the unmapped column under its name", add.Stats)
	}
	data, err := st.Get(ctx, files[0].storePath)
	must(t, err)
	pf, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	must(t, err)
	var names []string
	for _, f := range pf.Schema().Fields() {
		names = append(names, f.Name())
		if f.Name() == phys(0) && f.ID() != 1 {
			t.Errorf("field_id of id = %d, want 1", f.ID())
		}
	}
	wantNames := []string{phys(0), phys(1), "hidden"}
	for _, w := range wantNames {
		if !strings.Contains(strings.Join(names, ","), w) {
			t.Errorf("parquet columns %v lack %s", names, w)
		}
	}
	got, err := decodeDataFile(data, sc, []string{"day"}, add.PartitionValues)
	must(t, err)
	if !reflect.DeepEqual(got, rows) {
		t.Fatalf("read by name: %#v, want %#v", got, rows)
	}
	// id mode: physical names differ from the file, ids resolve.
	fields = sc.Fields()
	for i := range fields {
		if fields[i].Metadata != nil && i != 2 {
			fields[i].Metadata[ColumnMappingPhysicalKey] = "renamed-" + fields[i].Name
		}
	}
	fields[1].DataType.Fields[0].Metadata[ColumnMappingPhysicalKey] = "renamed-a"
	byID, err := NewSchema(fields)
	must(t, err)
	got, err = decodeDataFile(data, byID, []string{"day"}, add.PartitionValues)
	must(t, err)
	if !reflect.DeepEqual(got, rows) {
		t.Fatalf("read by id: %#v, want %#v", got, rows)
	}
}
