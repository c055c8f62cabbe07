package processors

import (
	"reflect"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
)

func TestParseJSONStrictMethod(t *testing.T) {
	strict, err := bloblang.Parse(`root = this.parse_json_strict()`)
	if err != nil {
		t.Fatal(err)
	}
	loose, err := bloblang.Parse(`root = this.parse_json()`)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		in      any
		wantErr string // empty: same value as parse_json
	}{
		{"object", []byte(`{"a":[1,2.5,"x",true,null],"b":{"c":"é\u00e9"}}`), ""},
		{"string input", `[1, {"k": -0.5e3}]`, ""},
		{"repeated key keeps the last", []byte(`{"a":1,"a":2}`), ""},
		{"whitespace around", []byte(" \n{}\t"), ""},
		{"data after the document", []byte(`{"a":1} {"b":2}`), "unexpected '{' after the JSON value at offset 8"},
		{"invalid UTF-8 in a string", []byte("{\"a\":\"t\xe2che\"}"), "invalid UTF-8 byte 0xE2 inside a string at offset 7"},
		{"not JSON", []byte(`event_id=1`), "unexpected 'e' looking for a value at offset 0"},
		{"empty", []byte{}, "unexpected end of input at offset 0"},
		{"number", int64(3), "expected string or bytes value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := strict.Query(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want, err := loose.Query(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("parse_json_strict %#v, parse_json %#v", got, want)
			}
		})
	}
}

func TestJSONErrorMethod(t *testing.T) {
	exe, err := bloblang.Parse(`root = this.json_error()`)
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]any{
		`{"a":[1,"x"]}`:    nil,
		` "text" `:         nil,
		`{"event_id": "br`: "unexpected end of input in a string at offset 16",
		`{"a":1}{"b":2}`:   "unexpected '{' after the JSON value at offset 7",
		"task 32513 done":  "invalid literal, expected true at offset 0",
		"{\"a\":\"\xe9\"}": "invalid UTF-8 byte 0xE9 inside a string at offset 6",
		"":                 "unexpected end of input at offset 0",
		`{"a":1,}`:         "unexpected '}' looking for an object key at offset 7",
		`[1e999]`:          "number 1e999 out of range of a 64-bit float at offset 1",
	} {
		got, err := exe.Query([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("json_error of %q = %v, want %v", in, got, want)
		}
	}
}
