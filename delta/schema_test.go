package delta

import (
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestParseSchemaFile(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string // Schema.String()
		wantErr string
	}{
		{name: "yaml defaults nullable", in: "- {name: a, type: string}\n- {name: b, type: long, nullable: false}\n", want: "a string, b long not null"},
		{name: "json list", in: `[{"name":"a","type":"decimal(10,2)"},{"name":"t","type":"timestamp","nullable":true}]`, want: "a decimal(10,2), t timestamp"},
		{name: "spark schema", in: `{"type":"struct","fields":[{"name":"x","type":"integer","nullable":false,"metadata":{}}]}`, want: "x integer not null"},
		{name: "aliases", in: "- {name: a, type: int}\n- {name: b, type: bigint}\n- {name: c, type: bool}", want: "a integer, b long, c boolean"},
		{name: "bad type", in: "- {name: a, type: varchar}", wantErr: "unsupported Delta type"},
		{name: "bad decimal", in: "- {name: a, type: \"decimal(40,2)\"}", wantErr: "precision"},
		{name: "duplicate ignoring case", in: "- {name: a, type: string}\n- {name: A, type: long}", wantErr: "unique ignoring case"},
		{name: "forbidden char", in: "- {name: 'a b', type: string}", wantErr: "not allow"},
		{name: "equals sign", in: "- {name: 'a=b', type: string}", wantErr: "not allow"},
		{name: "unknown key", in: "- {name: a, type: string, nulable: false}", wantErr: "nulable"},
		{name: "empty", in: "[]", wantErr: "no columns"},
		{name: "nested spark type", in: `{"type":"struct","fields":[{"name":"x","type":{"type":"array","elementType":"string","containsNull":true},"nullable":true,"metadata":{}}]}`, want: "x array<string>"},
		{name: "ddl nested", in: "- {name: m, type: 'map<string, long>'}\n- {name: s, type: 'struct<a:long,b:array<string>>', nullable: false}", want: "m map<string,long>, s struct<a:long,b:array<string>> not null"},
		{name: "ddl bad nesting", in: "- {name: m, type: 'array<string'}", wantErr: "expected '>'"},
		{name: "ddl duplicate nested field", in: "- {name: s, type: 'struct<a:long,A:string>'}", wantErr: "duplicates"},
		{name: "timestamp_ntz", in: "- {name: t, type: timestamp_ntz}", want: "t timestamp_ntz"},
		{name: "nested yaml form", in: "- name: s\n  type: struct\n  fields:\n    - {name: a, type: long, nullable: false}\n    - name: tags\n      type: array\n      elementType: string\n      containsNull: false\n- name: m\n  type: map\n  keyType: string\n  valueType: {type: array, elementType: 'decimal(5,1)'}", want: "s struct<a:long,tags:array<string>>, m map<string,array<decimal(5,1)>>"},
		{name: "nested yaml array without element", in: "- {name: x, type: array}", wantErr: "elementType"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sc, err := ParseSchemaFile([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			must(t, err)
			eq(t, "schema", sc.String(), tc.want)
			// Spark JSON round trip.
			back, err := ParseSchemaString(sc.SchemaString())
			must(t, err)
			if !back.Equal(sc) {
				t.Errorf("schemaString round trip: %s != %s", back, sc)
			}
		})
	}
}

func TestSchemaStringFormat(t *testing.T) {
	sc := MustSchema(Field{Name: "a", Type: "string", Nullable: true}, Field{Name: "d", Type: "decimal(38,6)"})
	eq(t, "schemaString", sc.SchemaString(), `{"type":"struct","fields":[{"name":"a","type":"string","nullable":true,"metadata":{}},{"name":"d","type":"decimal(38,6)","nullable":false,"metadata":{}}]}`)
}

func TestRowFromJSON(t *testing.T) {
	sc := MustSchema(
		Field{Name: "s", Type: "string", Nullable: true},
		Field{Name: "l", Type: "long", Nullable: true},
		Field{Name: "i", Type: "integer", Nullable: true},
		Field{Name: "sh", Type: "short", Nullable: true},
		Field{Name: "b", Type: "byte", Nullable: true},
		Field{Name: "f", Type: "float", Nullable: true},
		Field{Name: "d", Type: "double", Nullable: true},
		Field{Name: "bo", Type: "boolean", Nullable: true},
		Field{Name: "bin", Type: "binary", Nullable: true},
		Field{Name: "dt", Type: "date", Nullable: true},
		Field{Name: "ts", Type: "timestamp", Nullable: true},
		Field{Name: "dec", Type: "decimal(10,2)", Nullable: true},
		Field{Name: "req", Type: "string", Nullable: false},
	)
	tests := []struct {
		name    string
		json    string
		col     string
		want    any
		wantErr string
	}{
		{name: "string", json: `{"s":"x"}`, col: "s", want: "x"},
		{name: "object to string", json: `{"s":{"b":1,"a":[1,2]}}`, col: "s", want: `{"a":[1,2],"b":1}`},
		{name: "number to string", json: `{"s":12.50}`, col: "s", want: "12.50"},
		{name: "long beyond float64", json: `{"l":9007199254740993}`, col: "l", want: int64(9007199254740993)},
		{name: "long from string", json: `{"l":" 42 "}`, col: "l", want: int64(42)},
		{name: "long exponent whole", json: `{"l":1e3}`, col: "l", want: int64(1000)},
		{name: "integer no truncation", json: `{"i":1.5}`, col: "i", wantErr: "not a whole number"},
		{name: "integer range", json: `{"i":2147483648}`, col: "i", wantErr: "out of range"},
		{name: "integer min", json: `{"i":-2147483648}`, col: "i", want: int32(-2147483648)},
		{name: "short range", json: `{"sh":40000}`, col: "sh", wantErr: "out of range"},
		{name: "byte", json: `{"b":-128}`, col: "b", want: int8(-128)},
		{name: "byte range", json: `{"b":128}`, col: "b", wantErr: "out of range"},
		{name: "long overflow", json: `{"l":9223372036854775808}`, col: "l", wantErr: "out of range"},
		{name: "long not a number", json: `{"l":"abc"}`, col: "l", wantErr: "not a number"},
		{name: "long from bool", json: `{"l":true}`, col: "l", wantErr: "not a number"},
		{name: "float", json: `{"f":1.25}`, col: "f", want: float32(1.25)},
		{name: "float range", json: `{"f":1e39}`, col: "f", wantErr: "out of range"},
		{name: "double string", json: `{"d":"2.5"}`, col: "d", want: 2.5},
		{name: "bool", json: `{"bo":true}`, col: "bo", want: true},
		{name: "bool string", json: `{"bo":"FALSE"}`, col: "bo", want: false},
		{name: "bool bad", json: `{"bo":"yes"}`, col: "bo", wantErr: "not true or false"},
		{name: "binary base64", json: `{"bin":"AAEC"}`, col: "bin", want: "\x00\x01\x02"},
		{name: "binary bad", json: `{"bin":"!!"}`, col: "bin", wantErr: "base64"},
		{name: "date", json: `{"dt":"2026-01-10"}`, col: "dt", want: time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)},
		{name: "date bad", json: `{"dt":"10/01/2026"}`, col: "dt", wantErr: "YYYY-MM-DD"},
		{name: "timestamp offset to UTC", json: `{"ts":"2026-01-10T10:00:00.123456+02:00"}`, col: "ts", want: time.Date(2026, 1, 10, 8, 0, 0, 123456000, time.UTC)},
		{name: "timestamp Z", json: `{"ts":"2026-01-10T10:00:00Z"}`, col: "ts", want: time.Date(2026, 1, 10, 10, 0, 0, 0, time.UTC)},
		{name: "timestamp no zone is UTC", json: `{"ts":"2026-01-10T10:00:00.5"}`, col: "ts", want: time.Date(2026, 1, 10, 10, 0, 0, 500000000, time.UTC)},
		{name: "timestamp space", json: `{"ts":"2026-01-10 10:00:00"}`, col: "ts", want: time.Date(2026, 1, 10, 10, 0, 0, 0, time.UTC)},
		{name: "timestamp date only", json: `{"ts":"2026-01-10"}`, col: "ts", want: time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)},
		{name: "timestamp bad", json: `{"ts":"yesterday"}`, col: "ts", wantErr: "RFC 3339"},
		{name: "timestamp number", json: `{"ts":1700000000}`, col: "ts", wantErr: "cannot be converted"},
		{name: "decimal", json: `{"dec":12.5}`, col: "dec", want: "12.50"},
		{name: "decimal string", json: `{"dec":"-0.01"}`, col: "dec", want: "-0.01"},
		{name: "decimal too many fraction digits", json: `{"dec":1.234}`, col: "dec", wantErr: "digits after the decimal point"},
		{name: "decimal too many digits", json: `{"dec":123456789.1}`, col: "dec", wantErr: "more than 10 digits"},
		{name: "missing nullable is null", json: `{}`, col: "s", want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, useNumber := range []bool{true, false} {
				m := map[string]any{}
				d := json.NewDecoder(strings.NewReader(tc.json))
				if useNumber {
					d.UseNumber()
				}
				must(t, d.Decode(&m))
				if _, ok := m["req"]; !ok {
					m["req"] = "r"
				}
				row, err := sc.RowFromJSON(m)
				if tc.wantErr != "" {
					var ce *ConversionError
					if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.As(err, &ce) || ce.Column != tc.col {
						// Decoding with float64 loses 2^63 range info etc.; the
						// float64 path must still refuse, possibly for another
						// reason, but always naming the column.
						if err == nil || !errors.As(err, &ce) || ce.Column != tc.col || useNumber {
							t.Fatalf("useNumber=%v: error %v, want one naming %q containing %q", useNumber, err, tc.col, tc.wantErr)
						}
					}
					continue
				}
				must(t, err)
				got := row[sc.Index(tc.col)]
				switch g := got.(type) {
				case Decimal:
					got = g.String()
				case []byte:
					got = string(g)
				case time.Time:
					if !g.Equal(tc.want.(time.Time)) || g.Location() != time.UTC {
						t.Fatalf("got %v, want %v (UTC)", g, tc.want)
					}
					continue
				}
				// float64 decoding cannot keep 2^53+1 or "12.50"'s zero.
				if useNumber || (tc.name != "number to string" && tc.name != "long beyond float64") {
					if got != tc.want {
						t.Fatalf("useNumber=%v: got %#v, want %#v", useNumber, got, tc.want)
					}
				}
			}
		})
	}
}

func TestRowFromJSONErrors(t *testing.T) {
	sc := MustSchema(Field{Name: "id", Type: "string"}, Field{Name: "n", Type: "integer", Nullable: true})
	_, err := sc.RowFromJSON(map[string]any{"n": json.Number("1")})
	if err == nil || !strings.Contains(err.Error(), `"id"`) || !strings.Contains(err.Error(), "not nullable") {
		t.Fatalf("missing non-nullable: %v", err)
	}
	_, err = sc.RowFromJSON(map[string]any{"id": nil})
	if err == nil || !strings.Contains(err.Error(), "not nullable") {
		t.Fatalf("null non-nullable: %v", err)
	}
	long := strings.Repeat("x", 10000)
	_, err = sc.RowFromJSON(map[string]any{"id": "a", "n": long})
	if err == nil || len(err.Error()) > 300 || !strings.Contains(err.Error(), `"n"`) {
		t.Fatalf("long value must be truncated in the message: %d bytes: %.200v", len(err.Error()), err)
	}
	eq(t, "unknown", strings.Join(sc.UnknownColumns(map[string]any{"id": 1, "zz": 2, "aa": 3}), ","), "aa,zz")
}

func TestWithJSONColumns(t *testing.T) {
	sc := MustSchema(Field{Name: "id", Type: "string"})
	m := map[string]any{"id": "x", "n": json.Number("3"), "f": 1.5, "o": map[string]any{}, "b": true, "z": nil}
	w, err := sc.WithJSONColumns(m)
	must(t, err)
	eq(t, "widened", w.String(), "id string not null, b boolean, f double, n long, o string")
}

func TestMergeSchemas(t *testing.T) {
	table := MustSchema(Field{Name: "a", Type: "string"}, Field{Name: "b", Type: "long", Nullable: true})
	tests := []struct {
		name, in, want, wantErr string
		added                   bool
	}{
		{name: "same", in: "- {name: a, type: string}\n- {name: b, type: long}", want: table.String()},
		{name: "subset", in: "- {name: b, type: long}", want: table.String()},
		{name: "new column at the end nullable", in: "- {name: c, type: date, nullable: false}\n- {name: a, type: string}", want: "a string not null, b long, c date", added: true},
		{name: "type change", in: "- {name: b, type: integer}", wantErr: "type changes"},
		{name: "case only", in: "- {name: B, type: long}", wantErr: "case"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in, err := ParseSchemaFile([]byte(tc.in))
			must(t, err)
			m, added, err := mergeSchemas(table, in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			must(t, err)
			eq(t, "merged", m.String(), tc.want)
			eq(t, "added", added, tc.added)
		})
	}
}

func TestParseDecimalAndString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"0", "0.00"}, {"-1.5", "-1.50"}, {"1e2", "100.00"}, {"0.05", "0.05"}, {"-0.05", "-0.05"},
	}
	for _, tc := range tests {
		d, err := ParseDecimal(tc.in, 10, 2)
		must(t, err)
		eq(t, tc.in, d.String(), tc.want)
	}
	d := Decimal{Unscaled: big.NewInt(-5), Scale: 3}
	eq(t, "small negative", d.String(), "-0.005")
}

// A structured message (a benthos mapping's result) holds Go values such as
// int64 and time.Time: each must convert exactly as its JSON text would.
func TestRowFromGoValuesMatchesJSON(t *testing.T) {
	sc := MustSchema(
		Field{Name: "s", Type: "string", Nullable: true},
		Field{Name: "l", Type: "long", Nullable: true},
		Field{Name: "i", Type: "integer", Nullable: true},
		Field{Name: "f", Type: "float", Nullable: true},
		Field{Name: "d", Type: "double", Nullable: true},
		Field{Name: "ts", Type: "timestamp", Nullable: true},
		Field{Name: "bin", Type: "binary", Nullable: true},
	)
	ts := time.Date(2026, 1, 10, 22, 30, 7, 120000000, time.FixedZone("x", 3600))
	tests := []struct {
		name string
		col  string
		v    any
	}{
		{"int64 to long", "l", int64(9007199254740993)},
		{"int to integer", "i", int(-5)},
		{"uint64 to long", "l", uint64(42)},
		{"int64 to string", "s", int64(5423723)},
		{"int64 to double", "d", int64(3)},
		{"float32 to float", "f", float32(0.1)},
		{"float32 to string", "s", float32(0.1)},
		{"time to timestamp", "ts", ts},
		{"time to string", "s", ts},
		{"bytes to binary", "bin", []byte{0, 1, 254}},
		{"nested Go values to string", "s", map[string]any{"n": int64(7), "t": ts, "a": []any{uint8(1)}}},
		{"out of range int64 to integer", "i", int64(1) << 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(map[string]any{tt.col: tt.v})
			if err != nil {
				t.Fatal(err)
			}
			var fromText map[string]any
			dec := json.NewDecoder(strings.NewReader(string(b)))
			dec.UseNumber()
			if err := dec.Decode(&fromText); err != nil {
				t.Fatal(err)
			}
			want, wantErr := sc.RowFromJSON(fromText)
			got, gotErr := sc.RowFromJSON(map[string]any{tt.col: tt.v})
			if (wantErr == nil) != (gotErr == nil) || (wantErr != nil && wantErr.Error() != gotErr.Error()) {
				t.Fatalf("error: from Go %v, from JSON %v", gotErr, wantErr)
			}
			if wantErr == nil && !rowsEqual(got, want) {
				t.Fatalf("from Go %#v, from JSON text %s %#v", got, b, want)
			}
		})
	}
	if got, _ := InferType(int64(1)); got.Kind != KindLong {
		t.Fatalf("InferType(int64) = %v, want long", got)
	}
}

func rowsEqual(a, b Row) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, xok := a[i].(time.Time)
		y, yok := b[i].(time.Time)
		if xok && yok {
			if !x.Equal(y) {
				return false
			}
			continue
		}
		if xb, ok := a[i].([]byte); ok {
			if yb, ok := b[i].([]byte); !ok || string(xb) != string(yb) {
				return false
			}
			continue
		}
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
