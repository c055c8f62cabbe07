package schemas_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/forms"
)

const (
	schemaFile  = "itel_submission.v1.json"
	mappingFile = "../pipelines/forms/itel_cabinet_form.yaml"
	docFile     = "../docs/ITEL_SUBMISSION.md"
)

// validator checks a JSON value against the subset of JSON Schema draft
// 2020-12 that the submission schema uses (knownKeywords); the schema test
// fails on any other keyword, so none is silently ignored.
type validator struct{ errs []string }

var knownKeywords = map[string]bool{
	"$schema": true, "$id": true, "title": true, "description": true,
	"type": true, "const": true, "enum": true, "required": true, "properties": true,
	"additionalProperties": true, "items": true, "minimum": true, "minLength": true,
	"pattern": true, "format": true,
}

func (v *validator) fail(path, format string, args ...any) {
	if path == "" {
		path = "/"
	}
	v.errs = append(v.errs, path+": "+fmt.Sprintf(format, args...))
}

func jsonType(x any) string {
	switch t := x.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	case json.Number:
		if _, ok := new(big.Int).SetString(t.String(), 10); ok {
			return "integer"
		}
		return "number"
	}
	return fmt.Sprintf("%T", x)
}

func typeMatches(want, got string) bool {
	return want == got || (want == "number" && got == "integer")
}

// equalJSON compares decoded JSON values (numbers by value).
func equalJSON(a, b any) bool {
	ab, _ := json.Marshal(a)
	bb, _ := json.Marshal(b)
	return bytes.Equal(ab, bb)
}

func (v *validator) check(path string, schema map[string]any, x any) {
	if t, ok := schema["type"]; ok {
		var types []string
		switch tt := t.(type) {
		case string:
			types = []string{tt}
		case []any:
			for _, s := range tt {
				types = append(types, s.(string))
			}
		}
		got := jsonType(x)
		if !slices.ContainsFunc(types, func(w string) bool { return typeMatches(w, got) }) {
			v.fail(path, "is %s, want %s", got, strings.Join(types, " or "))
			return
		}
	}
	if c, ok := schema["const"]; ok && !equalJSON(c, x) {
		v.fail(path, "is %v, want %v", x, c)
	}
	if e, ok := schema["enum"].([]any); ok && !slices.ContainsFunc(e, func(w any) bool { return equalJSON(w, x) }) {
		v.fail(path, "%v is not one of %v", x, e)
	}
	switch t := x.(type) {
	case map[string]any:
		for _, r := range asList(schema["required"]) {
			if _, ok := t[r.(string)]; !ok {
				v.fail(path, "missing required %q", r)
			}
		}
		props, _ := schema["properties"].(map[string]any)
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if ps, ok := props[k].(map[string]any); ok {
				v.check(path+"/"+k, ps, t[k])
				continue
			}
			switch ap := schema["additionalProperties"].(type) {
			case bool:
				if !ap {
					v.fail(path, "unknown property %q", k)
				}
			case map[string]any:
				v.check(path+"/"+k, ap, t[k])
			}
		}
	case []any:
		if items, ok := schema["items"].(map[string]any); ok {
			for i, it := range t {
				v.check(fmt.Sprintf("%s/%d", path, i), items, it)
			}
		}
	case json.Number:
		if m, ok := schema["minimum"].(json.Number); ok {
			mf, _ := m.Float64()
			if f, _ := t.Float64(); f < mf {
				v.fail(path, "%v is below the minimum %v", t, m)
			}
		}
	case string:
		if m, ok := schema["minLength"].(json.Number); ok {
			if n, _ := m.Int64(); int64(len([]rune(t))) < n {
				v.fail(path, "%q is shorter than %d", t, n)
			}
		}
		if p, ok := schema["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(t) {
			v.fail(path, "%q does not match %s", t, p)
		}
		switch schema["format"] {
		case "date-time":
			if _, err := time.Parse(time.RFC3339Nano, t); err != nil {
				v.fail(path, "%q is not an RFC 3339 date-time", t)
			}
		case "uri":
			if u, err := url.Parse(t); err != nil || !u.IsAbs() {
				v.fail(path, "%q is not an absolute URI", t)
			}
		}
	}
}

func asList(x any) []any {
	l, _ := x.([]any)
	return l
}

func decode(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return x
}

func loadSchema(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, b).(map[string]any)
}

func validate(schema map[string]any, x any) []string {
	v := &validator{}
	v.check("", schema, x)
	return v.errs
}

// walkSchemas calls f for every subschema of s (s included) with its path.
func walkSchemas(path string, s map[string]any, f func(string, map[string]any)) {
	f(path, s)
	if props, ok := s["properties"].(map[string]any); ok {
		for k, p := range props {
			walkSchemas(path+"/properties/"+k, p.(map[string]any), f)
		}
	}
	for _, k := range []string{"items", "additionalProperties"} {
		if sub, ok := s[k].(map[string]any); ok {
			walkSchemas(path+"/"+k, sub, f)
		}
	}
}

func TestSchemaUsesOnlyCheckedKeywords(t *testing.T) {
	walkSchemas("", loadSchema(t), func(path string, s map[string]any) {
		for k := range s {
			if !knownKeywords[k] {
				t.Errorf("%s: keyword %q is not checked by this test's validator", path, k)
			}
		}
		if p, ok := s["pattern"].(string); ok {
			if _, err := regexp.Compile(p); err != nil {
				t.Errorf("%s: pattern %q: %v", path, p, err)
			}
		}
		if s["$schema"] != nil && s["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s: $schema %v, want draft 2020-12", path, s["$schema"])
		}
	})
}

// docSample is the example payload of docs/ITEL_SUBMISSION.md: the first
// ```json block after the "## Example" heading.
func docSample(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(docFile)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "## Example")
	if !ok {
		t.Fatalf("%s has no ## Example", docFile)
	}
	_, rest, ok = strings.Cut(rest, "```json\n")
	if !ok {
		t.Fatalf("%s: no json block after ## Example", docFile)
	}
	sample, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatalf("%s: unterminated json block", docFile)
	}
	return []byte(sample)
}

func TestSubmissionSchema(t *testing.T) {
	schema := loadSchema(t)
	valid := decode(t, docSample(t)).(map[string]any)
	if errs := validate(schema, valid); len(errs) > 0 {
		t.Fatalf("the documented example is not valid:\n%s", strings.Join(errs, "\n"))
	}
	tests := []struct {
		name   string
		change func(p map[string]any)
		want   string // in one of the errors; "" for valid
	}{
		{name: "as documented", change: func(map[string]any) {}},
		{name: "unanswered questions are null", change: func(p map[string]any) {
			a := p["answers"].(map[string]any)
			a["lower_cabinets_damaged"], a["lower_counter_type"], a["countertop_linear_feet"] = nil, nil, nil
		}},
		{name: "no assignmentId", change: func(p map[string]any) { delete(p, "assignmentId") }, want: `missing required "assignmentId"`},
		{name: "assignmentId as a string", change: func(p map[string]any) { p["assignmentId"] = "5423723" }, want: "/assignmentId: is string, want integer"},
		{name: "another schemaVersion", change: func(p map[string]any) { p["schemaVersion"] = "2" }, want: "/schemaVersion: is 2, want 1"},
		{name: "an unknown top-level field", change: func(p map[string]any) { p["extra"] = true }, want: `unknown property "extra"`},
		{name: "an unknown answer", change: func(p map[string]any) { p["answers"].(map[string]any)["mystery"] = "x" }, want: `/answers: unknown property "mystery"`},
		{name: "a boolean answer as text", change: func(p map[string]any) { p["answers"].(map[string]any)["lower_cabinets_damaged"] = "Yes" },
			want: "/answers/lower_cabinets_damaged: is string, want boolean or null"},
		{name: "a count with a fraction", change: func(p map[string]any) { p["answers"].(map[string]any)["lower_damaged_boxes"] = json.Number("2.5") },
			want: "/answers/lower_damaged_boxes: is number, want integer or null"},
		{name: "an option iTel does not know", change: func(p map[string]any) { p["answers"].(map[string]any)["lower_counter_type"] = "Formica" },
			want: "/answers/lower_counter_type: Formica is not one of"},
		{name: "completedAt with an offset", change: func(p map[string]any) { p["completedAt"] = "2026-01-10T17:30:06-05:00" }, want: "/completedAt:"},
		{name: "completedAt not a time", change: func(p map[string]any) { p["completedAt"] = "yesterdayZ" }, want: "not an RFC 3339 date-time"},
		{name: "a photo without a url", change: func(p map[string]any) { delete(p["photos"].([]any)[0].(map[string]any), "url") }, want: `/photos/0: missing required "url"`},
		{name: "a photo with a bad sha256", change: func(p map[string]any) { p["photos"].([]any)[0].(map[string]any)["sha256"] = "ABC" }, want: "/photos/0/sha256:"},
		{name: "other answers not text", change: func(p map[string]any) { p["otherAnswers"] = map[string]any{"g / q": json.Number("1")} }, want: "/otherAnswers/g / q: is integer, want string"},
		{name: "no customer email key", change: func(p map[string]any) { delete(p["customer"].(map[string]any), "email") }, want: `/customer: missing required "email"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := decode(t, docSample(t)).(map[string]any)
			tt.change(p)
			errs := validate(schema, p)
			if tt.want == "" {
				if len(errs) > 0 {
					t.Fatalf("want valid, got:\n%s", strings.Join(errs, "\n"))
				}
				return
			}
			if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, tt.want) }) {
				t.Errorf("want an error containing %q, got %q", tt.want, errs)
			}
		})
	}
}

// TestAnswersAreTheFormColumns keeps the schema's answers in step with the
// form mapping: the same columns, each with the JSON type of its column
// type, and the options of the mapping as its enum.
func TestAnswersAreTheFormColumns(t *testing.T) {
	m, err := forms.LoadMapping(mappingFile)
	if err != nil {
		t.Fatal(err)
	}
	answers := loadSchema(t)["properties"].(map[string]any)["answers"].(map[string]any)
	props := answers["properties"].(map[string]any)
	jsonTypes := map[string]string{
		forms.TypeString: `["string","null"]`, forms.TypeBoolean: `["boolean","null"]`,
		forms.TypeLong: `["integer","null"]`, forms.TypeDouble: `["number","null"]`, forms.TypeLongArray: `"array"`,
	}
	seen := map[string]bool{}
	for _, q := range m.Questions {
		seen[q.Column] = true
		p, ok := props[q.Column].(map[string]any)
		if !ok {
			t.Errorf("column %s of the mapping is not in the schema's answers", q.Column)
			continue
		}
		if got, _ := json.Marshal(p["type"]); string(got) != jsonTypes[q.Type] {
			t.Errorf("answers.%s: type %s, want %s (column type %s)", q.Column, got, jsonTypes[q.Type], q.Type)
		}
		if len(q.Values) > 0 {
			var want []any
			for _, v := range q.Values {
				want = append(want, v)
			}
			want = append(want, nil)
			if !equalJSON(p["enum"], want) {
				t.Errorf("answers.%s: enum %v, want the mapping's values %v and null", q.Column, p["enum"], want)
			}
		}
	}
	for k := range props {
		if !seen[k] {
			t.Errorf("answers.%s is not a column of the mapping", k)
		}
	}
	var req []string
	for _, r := range asList(answers["required"]) {
		req = append(req, r.(string))
	}
	sort.Strings(req)
	var cols []string
	for k := range seen {
		cols = append(cols, k)
	}
	sort.Strings(cols)
	if !slices.Equal(req, cols) {
		t.Errorf("answers.required %v, want every column %v", req, cols)
	}
}
