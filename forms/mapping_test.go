package forms

import (
	"os"
	"strings"
	"testing"

	"github.com/claimx/claimx-connect/delta"
)

func TestParseMappingErrors(t *testing.T) {
	cases := []struct {
		name, doc string
		want      []string // every one must appear in the error
	}{
		{"no questions", "form: f\nquestions: []", []string{"at least one entry"}},
		{"unknown key", "form: f\nquestions:\n  - { question: a, column: a, type: string, colour: red }", []string{"colour"}},
		{"duplicate column", "form: f\nquestions:\n  - { question: a, column: c, type: string }\n  - { question: b, column: c, type: long }",
			[]string{`questions[1] (question "b", column "c")`, `column "c" is already questions[0]`}},
		{"fixed column reused", "form: f\nquestions:\n  - { question: a, column: assignment_id, type: long }",
			[]string{`questions[0]`, `column "assignment_id" is already a fixed column`}},
		{"other_answers reused", "form: f\nquestions:\n  - { question: a, column: other_answers, type: string }",
			[]string{`column "other_answers" is already a fixed column`}},
		{"unknown type", "form: f\nquestions:\n  - { question: a, column: a, type: decimal }",
			[]string{`questions[0] (question "a", column "a")`, `type "decimal" is not one of string, boolean, long, double, array<long>`}},
		{"missing type", "form: f\nquestions:\n  - { question: a, column: a }", []string{`type "" is not one of`}},
		{"missing column", "form: f\nquestions:\n  - { question: a, type: long }", []string{`questions[0] (question "a")`, "column is missing"}},
		{"bad column name", "form: f\nquestions:\n  - { question: a, column: Lower Feet, type: long }", []string{`column "Lower Feet" is not a lower-case name`}},
		{"no matcher", "form: f\nquestions:\n  - { column: a, type: long }", []string{"needs control_id or question"}},
		{"group without question", "form: f\nquestions:\n  - { control_id: x, group: G, column: a, type: long }", []string{"group needs question"}},
		{"duplicate control id", "form: f\nquestions:\n  - { control_id: x, column: a, type: long }\n  - { control_id: x, column: b, type: long }",
			[]string{`questions[1]`, `control_id "x" is already matched by questions[0]`}},
		{"duplicate question in group, differently spelt", "form: f\nquestions:\n  - { group: G, question: 'Linear  feet', column: a, type: long }\n  - { group: g, question: linear feet, column: b, type: long }",
			[]string{`questions[1]`, "already matched in this group by questions[0]"}},
		{"duplicate question without group", "form: f\nquestions:\n  - { question: a, column: a, type: long }\n  - { question: A, column: b, type: long }",
			[]string{"question is already matched by questions[0]"}},
		{"values on a number", "form: f\nquestions:\n  - { question: a, column: a, type: long, values: [1, 2] }", []string{"values are allowed only for type string"}},
		{"repeated value", "form: f\nquestions:\n  - { question: a, column: a, type: string, values: [Yes, yes] }", []string{`repeated option "yes"`}},
		{"unit on a boolean", "form: f\nquestions:\n  - { question: a, column: a, type: boolean, unit: ft }", []string{"unit is allowed only for numbers"}},
		{"every error at once", "form: f\nquestions:\n  - { question: a, column: a, type: x }\n  - { question: b, column: a, type: long }",
			[]string{`questions[0]`, `type "x"`, `questions[1]`, `column "a" is already`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseMapping([]byte(c.doc))
			if err == nil {
				t.Fatal("want an error, got none")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestParseMappingAccepts(t *testing.T) {
	m, err := ParseMapping([]byte(`
form: f
questions:
  - { control_id: ctl_1, column: by_control, type: long, unit: ft }
  - { group: "Lower  Cabinets", question: "Damaged?", column: lower_damaged, type: boolean }
  - { group: "Upper Cabinets", question: "damaged?", column: upper_damaged, type: boolean }
  - { question: "Damaged?", column: any_damaged, type: boolean }
  - { question: "Kind", column: kind, type: string, values: ["Yes", "No", "Disposed Of"] }
  - { question: "Photos", column: photos, type: "array<long>" }
  - { question: "Ratio", column: ratio, type: double }
`))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ control, group, question, want string }{
		{"ctl_1", "Anything", "Anything", "by_control"},
		{" ctl_1 ", "", "", "by_control"},
		{"ctl_other", "lower cabinets", "DAMAGED?", "lower_damaged"},
		{"", "Upper\tCabinets", " damaged? ", "upper_damaged"},
		{"", "Island Cabinets", "Damaged?", "any_damaged"},
		{"", "", "Damaged?", "any_damaged"},
		{"", "", "kind", "kind"},
		{"", "", "Unknown", ""},
		{"", "", "", ""},
	}
	for _, c := range cases {
		i, ok := m.match(c.control, c.group, c.question)
		got := ""
		if ok {
			got = m.Questions[i].Column
		}
		if got != c.want {
			t.Errorf("match(%q, %q, %q) = %q, want %q", c.control, c.group, c.question, got, c.want)
		}
	}
}

func TestLoadMappingMissingFile(t *testing.T) {
	_, err := LoadMapping("/nonexistent/forms.yaml")
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/forms.yaml") {
		t.Fatalf("want an error naming the file, got %v", err)
	}
}

// The schema file is the table of the mapping's rows: same columns, same
// types, same nullability, units as metadata.
func TestSchemaFileMatchesMapping(t *testing.T) {
	m := loadITel(t)
	data, err := os.ReadFile(repoFile(t, "schemas/itel_cabinet_forms.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := delta.ParseSchemaFile(data)
	if err != nil {
		t.Fatal(err)
	}
	cols := m.Columns()
	inMapping := map[string]bool{}
	for _, c := range cols {
		inMapping[c.Name] = true
		i := s.Index(c.Name)
		if i < 0 {
			t.Errorf("column %s (%s) of the mapping is not in the schema file", c.Name, c.Type)
			continue
		}
		f := s.Field(i)
		want, err := delta.ParseType(c.Type)
		if err != nil {
			t.Fatalf("column %s: %v", c.Name, err)
		}
		if got := s.Type(i).String(); got != want.String() {
			t.Errorf("column %s: schema type %s, mapping type %s", c.Name, got, want.String())
		}
		if f.Nullable != c.Nullable {
			t.Errorf("column %s: schema nullable %v, mapping nullable %v", c.Name, f.Nullable, c.Nullable)
		}
		if unit, _ := f.Metadata["unit"].(string); unit != c.Unit {
			t.Errorf("column %s: schema unit %q, mapping unit %q", c.Name, unit, c.Unit)
		}
	}
	for i, name := range s.Names() {
		if src, _ := s.Field(i).Metadata["source"].(string); src == "stream" {
			if inMapping[name] {
				t.Errorf("schema column %s is marked source: stream but the mapping produces it", name)
			}
			continue
		}
		if !inMapping[name] {
			t.Errorf("schema column %s is produced by no mapping entry nor fixed column", name)
		}
	}
}

// The rows of simulator forms are rows of the table: the Delta writer
// converts every one and finds no column it lacks.
func TestRowsFitTheTable(t *testing.T) {
	m := loadITel(t)
	data, err := os.ReadFile(repoFile(t, "schemas/itel_cabinet_forms.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := delta.ParseSchemaFile(data)
	if err != nil {
		t.Fatal(err)
	}
	rows := 0
	for _, a := range simAssignments(t, 11, 60, true) {
		if a["response"] == nil || str(a["taskId"]) != "32513" {
			continue
		}
		row, err := m.Apply(a)
		if err != nil {
			t.Fatal(err)
		}
		if unknown := s.UnknownColumns(row); len(unknown) > 0 {
			t.Errorf("assignment %v: columns the table lacks: %v", a["assignmentId"], unknown)
		}
		// The stream's own columns, as pipelines/forms.yaml fills them.
		row["form_key"], row["event_id"] = "5423001:1", "evt-1"
		row["photo_count"], row["processed_timestamp"] = 0, "2026-12-06T00:00:00Z"
		if _, err := s.RowFromJSON(row); err != nil {
			t.Errorf("assignment %v: %v", a["assignmentId"], err)
		}
		rows++
	}
	if rows == 0 {
		t.Fatal("the seed gives no completed iTel form")
	}
}
