package jsonschema

import (
	"strings"
	"testing"
)

const testSchema = `{
  "type": "object",
  "required": ["id", "when"],
  "additionalProperties": false,
  "properties": {
    "id": {"type": "integer", "minimum": 1},
    "when": {"type": "string", "format": "date-time"},
    "kind": {"enum": ["a", "b", null]},
    "tags": {"type": "array", "items": {"type": "string", "minLength": 1, "pattern": "^[a-z]+$"}},
    "url": {"type": ["string", "null"], "format": "uri"}
  }
}`

func TestValidate(t *testing.T) {
	s, err := Compile([]byte(testSchema))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		doc  string
		want string // in the violations; "" for valid
	}{
		{`{"id": 3, "when": "2026-01-10T22:30:06.243Z", "kind": null, "tags": ["x"], "url": "s3://b/k"}`, ""},
		{`{"when": "2026-01-10T22:30:06Z"}`, `/: missing required "id"`},
		{`{"id": 1.5, "when": "2026-01-10T22:30:06Z"}`, "/id: is number, want integer"},
		{`{"id": 0, "when": "2026-01-10T22:30:06Z"}`, "/id: 0 is below the minimum 1"},
		{`{"id": 1, "when": "yesterday"}`, "is not an RFC 3339 date-time"},
		{`{"id": 1, "when": "2026-01-10T22:30:06Z", "kind": "c"}`, "/kind: c is not one of"},
		{`{"id": 1, "when": "2026-01-10T22:30:06Z", "tags": ["X"]}`, `/tags/0: "X" does not match`},
		{`{"id": 1, "when": "2026-01-10T22:30:06Z", "url": "data/photo.jpg"}`, "is not an absolute URI"},
		{`{"id": 1, "when": "2026-01-10T22:30:06Z", "extra": true}`, `unknown property "extra"`},
	}
	for _, c := range cases {
		x, err := Decode([]byte(c.doc))
		if err != nil {
			t.Fatal(err)
		}
		errs := strings.Join(s.Validate(x), "\n")
		if (c.want == "") != (errs == "") || !strings.Contains(errs, c.want) {
			t.Errorf("%s: violations %q, want %q", c.doc, errs, c.want)
		}
	}
}

func TestCompileRefusesUncheckedKeywords(t *testing.T) {
	_, err := Compile([]byte(`{"type": "object", "properties": {"a": {"type": "string", "maxLength": 3}}}`))
	if err == nil || !strings.Contains(err.Error(), `"maxLength"`) {
		t.Fatalf("error %v, want one naming maxLength", err)
	}
	if _, err := Compile([]byte(`[1]`)); err == nil {
		t.Fatal("an array was accepted as a schema")
	}
}
