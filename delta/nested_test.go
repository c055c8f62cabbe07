package delta

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

const nestedSchemaJSON = `{"type":"struct","fields":[` +
	`{"name":"id","type":"long","nullable":false,"metadata":{"delta.columnMapping.id":1}},` +
	`{"name":"info","type":{"type":"struct","fields":[` +
	`{"name":"a","type":"long","nullable":true,"metadata":{"comment":"inner"}},` +
	`{"name":"tags","type":{"type":"array","elementType":"string","containsNull":false},"nullable":true,"metadata":{}}]},"nullable":true,"metadata":{}},` +
	`{"name":"attrs","type":{"type":"map","keyType":"string","valueType":"integer","valueContainsNull":true},"nullable":true,"metadata":{}},` +
	`{"name":"ts","type":"timestamp_ntz","nullable":true,"metadata":{}}]}`

func TestNestedSchemaStringRoundTrip(t *testing.T) {
	sc, err := ParseSchemaString(nestedSchemaJSON)
	must(t, err)
	eq(t, "ddl", sc.String(), "id long not null, info struct<a:long,tags:array<string>>, attrs map<string,integer>, ts timestamp_ntz")
	// Byte-exact round trip: key order, nested nullability and metadata at
	// every level are preserved.
	eq(t, "schemaString", sc.SchemaString(), nestedSchemaJSON)
	// Rebuilding from Fields() loses nothing either.
	again, err := NewSchema(sc.Fields())
	must(t, err)
	eq(t, "rebuilt", again.SchemaString(), nestedSchemaJSON)
	info := sc.Type(1)
	if info.Fields[1].Type.ContainsNull {
		t.Error("containsNull=false was lost")
	}
	if got := info.Fields[0].Metadata["comment"]; got != "inner" {
		t.Errorf("nested metadata = %v", got)
	}
}

func TestDataTypeEqual(t *testing.T) {
	a, _ := ParseType("struct<a:long,b:array<string>>")
	b, _ := ParseType("STRUCT< a : bigint , b : array<string> >")
	c, _ := ParseType("struct<a:long,b:array<int>>")
	d, _ := ParseType("map<string,decimal(10,2)>")
	e, _ := ParseType("map<string,decimal(10,3)>")
	tests := []struct {
		name string
		x, y DataType
		want bool
	}{
		{"same struct different spelling", a, b, true},
		{"element type differs", a, c, false},
		{"decimal scale differs", d, e, false},
		{"containsNull differs", ArrayOf(DataType{Kind: KindLong}, true), ArrayOf(DataType{Kind: KindLong}, false), false},
		{"ntz vs timestamp", DataType{Kind: KindTimestampNTZ}, DataType{Kind: KindTimestamp}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.x.Equal(tt.y); got != tt.want {
				t.Errorf("%s.Equal(%s) = %v, want %v", tt.x, tt.y, got, tt.want)
			}
		})
	}
}

func TestNestedRowFromJSON(t *testing.T) {
	sc, err := ParseSchemaString(nestedSchemaJSON)
	must(t, err)
	wall := time.Date(2024, 3, 1, 12, 30, 0, 0, time.UTC)
	tests := []struct {
		name    string
		in      string
		want    Row
		wantCol string
		wantMsg string
	}{
		{name: "full", in: `{"id":1,"info":{"A":5,"tags":["x","y"],"extra":1},"attrs":{"k2":2,"k1":null},"ts":"2024-03-01T12:30:00"}`,
			want: Row{int64(1), []any{int64(5), []any{"x", "y"}}, []MapEntry{{Key: "k1"}, {Key: "k2", Value: int32(2)}}, wall}},
		{name: "nulls", in: `{"id":2,"info":{"tags":[]},"attrs":null}`,
			want: Row{int64(2), []any{nil, []any{}}, nil, nil}},
		{name: "null array element", in: `{"id":3,"info":{"tags":["a",null,"c"]}}`, wantCol: "info.tags[1]", wantMsg: "containsNull=false"},
		{name: "bad nested field", in: `{"id":3,"info":{"a":"x","tags":["a","b"]}}`, wantCol: "info.a", wantMsg: "not a number"},
		{name: "bad map value", in: `{"id":3,"attrs":{"k":"nope"}}`, wantCol: `attrs["k"]`, wantMsg: "not a number"},
		{name: "struct given a string", in: `{"id":3,"info":"x"}`, wantCol: "info", wantMsg: "want an object"},
		{name: "ntz with offset", in: `{"id":3,"ts":"2024-03-01T12:30:00Z"}`, wantCol: "ts", wantMsg: "offset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m map[string]any
			dec := json.NewDecoder(strings.NewReader(tt.in))
			dec.UseNumber()
			must(t, dec.Decode(&m))
			row, err := sc.RowFromJSON(m)
			if tt.wantCol != "" {
				var ce *ConversionError
				if !errors.As(err, &ce) {
					t.Fatalf("error %v, want a *ConversionError", err)
				}
				if ce.Column != tt.wantCol || !strings.Contains(ce.Reason, tt.wantMsg) {
					t.Fatalf("error column %q reason %q, want %q containing %q", ce.Column, ce.Reason, tt.wantCol, tt.wantMsg)
				}
				return
			}
			must(t, err)
			if !reflect.DeepEqual(row, tt.want) {
				t.Errorf("row = %#v\nwant %#v", row, tt.want)
			}
		})
	}
}

func TestNestedSchemaEvolution(t *testing.T) {
	sc, err := ParseSchemaString(nestedSchemaJSON)
	must(t, err)
	m := map[string]any{"id": 1, "info": map[string]any{"a": 1, "extra": map[string]any{"z": 1}, "flag": true}, "newtop": []any{1}}
	eq(t, "unknown", strings.Join(sc.UnknownColumns(m), ","), "info.extra,info.flag,newtop")
	wide, err := sc.WithJSONColumns(m)
	must(t, err)
	// New nested keys become nullable nested fields (objects inferred as
	// string, like top-level columns); the new top-level column too.
	eq(t, "widened", wide.String(), "id long not null, info struct<a:long,tags:array<string>,extra:string,flag:boolean>, attrs map<string,integer>, ts timestamp_ntz, newtop string")
	if wide.Type(1).Fields[0].Metadata["comment"] != "inner" {
		t.Error("existing nested metadata lost while widening")
	}
	merged, added, err := mergeSchemas(sc, wide)
	must(t, err)
	if !added || !merged.Equal(wide) {
		t.Fatalf("merge = %s (added %v), want %s", merged, added, wide)
	}
	bad := MustSchema(Field{Name: "info", Type: "struct<a:string>", Nullable: true})
	if _, _, err := mergeSchemas(sc, bad); err == nil || !strings.Contains(err.Error(), `"info.a"`) {
		t.Fatalf("nested type change error = %v, want one naming info.a", err)
	}
	// A row of the narrower schema is reshaped into the widened one.
	got := reshapeValue(sc.Type(1), wide.Type(1), []any{int64(1), []any{"t"}})
	if !reflect.DeepEqual(got, []any{int64(1), []any{"t"}, nil, nil}) {
		t.Errorf("reshape = %#v", got)
	}
}
