package schemas_test

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/claimx/claimx-connect/forms"
	"github.com/claimx/claimx-connect/internal/jsonschema"
)

const (
	schemaFile  = "itel_submission.v1.json"
	mappingFile = "../pipelines/forms/itel_cabinet_form.yaml"
	docFile     = "../docs/ITEL_SUBMISSION.md"
)

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
	raw, err := json.Marshal(schema)
	if err != nil {
		return []string{err.Error()}
	}
	c, err := jsonschema.Compile(raw)
	if err != nil {
		return []string{err.Error()}
	}
	return c.Validate(x)
}

func TestSchemaUsesOnlyCheckedKeywords(t *testing.T) {
	raw, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jsonschema.Compile(raw); err != nil {
		t.Fatal(err)
	}
	var walk func(path string, s map[string]any)
	walk = func(path string, s map[string]any) {
		if p, ok := s["pattern"].(string); ok {
			if _, err := regexp.Compile(p); err != nil {
				t.Errorf("%s: pattern %q: %v", path, p, err)
			}
		}
		if s["$schema"] != nil && s["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s: $schema %v, want draft 2020-12", path, s["$schema"])
		}
		if props, ok := s["properties"].(map[string]any); ok {
			for k, p := range props {
				walk(path+"/properties/"+k, p.(map[string]any))
			}
		}
		for _, k := range []string{"items", "additionalProperties"} {
			if sub, ok := s[k].(map[string]any); ok {
				walk(path+"/"+k, sub)
			}
		}
	}
	walk("", loadSchema(t))
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

// equalJSON compares decoded JSON values (numbers by value).
func equalJSON(a, b any) bool {
	ab, _ := json.Marshal(a)
	bb, _ := json.Marshal(b)
	return bytes.Equal(ab, bb)
}

func asList(x any) []any {
	l, _ := x.([]any)
	return l
}
