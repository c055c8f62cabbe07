package forms

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// wantGoType is the Go type Apply documents for each column type.
var wantGoType = map[string]reflect.Type{
	TypeString:    reflect.TypeOf(""),
	TypeBoolean:   reflect.TypeOf(true),
	TypeLong:      reflect.TypeOf(int64(0)),
	TypeInteger:   reflect.TypeOf(int32(0)),
	TypeDouble:    reflect.TypeOf(float64(0)),
	TypeTimestamp: reflect.TypeOf(time.Time{}),
	TypeLongArray: reflect.TypeOf([]any{}),
	TypeStringMap: reflect.TypeOf(map[string]any{}),
}

// expectedAnswer reads a simulator answer independently of Apply: what the
// column must hold for it.
func expectedAnswer(t *testing.T, typ string, ans map[string]any) any {
	t.Helper()
	num := func(v any) float64 {
		switch x := v.(type) {
		case float64:
			return x
		case json.Number:
			f, err := x.Float64()
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
		t.Fatalf("number answer %v (%T)", v, v)
		return 0
	}
	switch ans["type"] {
	case "option":
		name := ans["optionAnswer"].(map[string]any)["name"].(string)
		if typ == TypeBoolean {
			return name == "Yes"
		}
		return name
	case "number":
		v := num(ans["numberAnswer"].(map[string]any)["value"])
		if typ == TypeLong {
			return int64(v)
		}
		return v
	case "text":
		if s := ans["text"].(string); s != "" {
			return s
		}
		return nil
	case "image":
		var ids []any
		for _, v := range ans["claimMediaIds"].([]any) {
			ids = append(ids, int64(num(v)))
		}
		return ids
	}
	t.Fatalf("answer type %v", ans["type"])
	return nil
}

// Every question of the simulator's completed iTel forms lands in its typed
// column with the documented Go type; nothing lands in other_answers.
func TestApplySimulatorForms(t *testing.T) {
	m := loadITel(t)
	colType := map[string]string{}
	for _, c := range m.Columns() {
		colType[c.Name] = c.Type
	}
	for _, seed := range []int64{1, 7, 42} {
		for _, useNumber := range []bool{false, true} {
			t.Run(fmt.Sprintf("seed %d UseNumber %v", seed, useNumber), func(t *testing.T) {
				completed, notCompleted, otherTemplate := 0, 0, 0
				for _, a := range simAssignments(t, seed, 80, useNumber) {
					row, err := m.Apply(a)
					isITel := str(a["taskId"]) == "32513"
					switch {
					case !isITel:
						otherTemplate++
						if err == nil || !strings.Contains(err.Error(), "task template") {
							t.Errorf("assignment %v of template %v: want a task template error, got %v", a["assignmentId"], a["taskId"], err)
						}
						continue
					case a["response"] == nil:
						notCompleted++
						if err == nil || !strings.Contains(err.Error(), "is not completed") {
							t.Errorf("assignment %v without response: want a not completed error, got %v", a["assignmentId"], err)
						}
						continue
					case err != nil:
						t.Errorf("assignment %v: %v", a["assignmentId"], err)
						continue
					}
					completed++
					checkSimRow(t, m, colType, a, row)
				}
				if completed < 5 || notCompleted == 0 || otherTemplate == 0 {
					t.Fatalf("the seed gives too few cases: %d completed, %d not completed, %d other templates", completed, notCompleted, otherTemplate)
				}
			})
		}
	}
}

func checkSimRow(t *testing.T, m *Mapping, colType map[string]string, a, row map[string]any) {
	t.Helper()
	id := a["assignmentId"]
	if len(row) != len(colType) {
		t.Errorf("assignment %v: row has %d keys, the mapping %d columns", id, len(row), len(colType))
	}
	for k, v := range row {
		typ, ok := colType[k]
		if !ok {
			t.Errorf("assignment %v: row key %s is no column", id, k)
			continue
		}
		if v != nil && reflect.TypeOf(v) != wantGoType[typ] {
			t.Errorf("assignment %v: column %s (%s) holds %T", id, k, typ, v)
		}
	}
	if other := row[ColOtherAnswers].(map[string]any); len(other) != 0 {
		t.Errorf("assignment %v: unexpected other_answers %v", id, other)
	}
	ext := a["externalLinkData"].(map[string]any)
	wantFixed := map[string]any{
		ColAssignmentID:      row[ColAssignmentID], // checked below against the text
		ColProjectID:         str(a["projectId"]),
		ColTaskID:            int32(32513),
		ColFormID:            a["formId"],
		ColFormResponseID:    a["formResponseId"],
		ColCustomerFirstName: ext["firstName"],
		ColCustomerLastName:  ext["lastName"],
		ColCustomerEmail:     ext["email"],
		ColCustomerPhone:     ext["phone"],
		ColExternalLinkURL:   ext["url"],
	}
	for col, want := range wantFixed {
		if !reflect.DeepEqual(row[col], want) {
			t.Errorf("assignment %v: %s = %#v, want %#v", id, col, row[col], want)
		}
	}
	if got := str(row[ColAssignmentID]); got != str(id) {
		t.Errorf("assignment %v: assignment_id %s", id, got)
	}
	if got := row[ColDateCompleted].(time.Time).Format("2006-01-02T15:04:05.000Z"); got != a["dateCompleted"] {
		t.Errorf("assignment %v: date_completed %s, want %v", id, got, a["dateCompleted"])
	}

	filled := map[string]bool{}
	for _, gv := range a["response"].(map[string]any)["groups"].([]any) {
		g := gv.(map[string]any)
		for _, qv := range g["questionAndAnswers"].([]any) {
			qa := qv.(map[string]any)
			i, ok := m.match(qa["formControl"].(map[string]any)["id"].(string), g["name"].(string), qa["questionText"].(string))
			if !ok {
				t.Errorf("assignment %v: question %q of group %q has no column", id, qa["questionText"], g["name"])
				continue
			}
			col := m.Questions[i].Column
			filled[col] = true
			want := expectedAnswer(t, colType[col], qa["responseAnswerExport"].(map[string]any))
			if !reflect.DeepEqual(row[col], want) {
				t.Errorf("assignment %v: %s = %#v, want %#v", id, col, row[col], want)
			}
		}
	}
	// Every entry of the mapping is a question the simulator asks.
	for _, e := range m.Questions {
		if !filled[e.Column] {
			t.Errorf("assignment %v: no question filled %s", id, e.Column)
		}
	}
}

// assignmentWith wraps groups in a completed assignment.
func assignmentWith(groups string) string {
	return `{"assignmentId":5423001,"taskId":32513,"projectId":4895003,"formId":"f1","formResponseId":"r1",
		"status":"COMPLETED","dateCompleted":"2026-01-05T10:11:12.345Z",
		"externalLinkData":{"url":"https://x.example/1","firstName":"Ann","lastName":"Lee","email":"a@x.example","phone":"555"},
		"response":{"groups":` + groups + `}}`
}

func qa(question, control, answer string) string {
	return fmt.Sprintf(`{"questionText":%q,"component":"x","formControl":{"id":%q},"responseAnswerExport":%s}`, question, control, answer)
}

func group(name string, qas ...string) string {
	return fmt.Sprintf(`{"name":%q,"groupId":"g","questionAndAnswers":[%s]}`, name, strings.Join(qas, ","))
}

const testMapping = `
form: test
questions:
  - { group: Lower Cabinets, question: "Lower cabinets damaged?", column: damaged, type: boolean }
  - { group: Lower Cabinets, question: "Lower cabinets linear feet", column: feet, type: double, unit: ft }
  - { control_id: ctl_boxes, column: boxes, type: long }
  - { question: "Doors available?", column: doors, type: string, values: ["Yes", "No", "Disposed Of"] }
  - { question: "Notes", column: notes, type: string }
  - { question: "Photos", column: photos, type: "array<long>" }
`

func ansOption(name string) string {
	return fmt.Sprintf(`{"type":"option","text":%q,"optionAnswer":{"name":%q}}`, name, name)
}

func ansNumber(v string) string {
	return fmt.Sprintf(`{"type":"number","text":%q,"numberAnswer":{"value":%s}}`, v, v)
}

func ansText(s string) string { return fmt.Sprintf(`{"type":"text","text":%q}`, s) }

func TestApplyAnswers(t *testing.T) {
	m, err := ParseMapping([]byte(testMapping))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		groups string
		column string
		want   any
		other  map[string]any // other_answers, when checked
	}{
		{"yes is true", "[" + group("Lower Cabinets", qa("Lower cabinets damaged?", "c1", ansOption("Yes"))) + "]", "damaged", true, map[string]any{}},
		{"no is false, case ignored", "[" + group("lower  cabinets", qa("LOWER cabinets damaged?", "c1", ansOption("no"))) + "]", "damaged", false, nil},
		{"empty option is null", "[" + group("Lower Cabinets", qa("Lower cabinets damaged?", "c1", `{"type":"option","optionAnswer":{"name":""}}`)) + "]", "damaged", nil, nil},
		{"number", "[" + group("Lower Cabinets", qa("Lower cabinets linear feet", "c2", ansNumber("12.5"))) + "]", "feet", 12.5, nil},
		{"numeric text in a number field", "[" + group("Lower Cabinets", qa("Lower cabinets linear feet", "c2", ansText(" 7 "))) + "]", "feet", 7.0, nil},
		{"blank number is null", "[" + group("Lower Cabinets", qa("Lower cabinets linear feet", "c2", `{"type":"number","text":""}`)) + "]", "feet", nil, nil},
		{"long by control id, any group", "[" + group("Elsewhere", qa("Renamed question", "ctl_boxes", ansNumber("3"))) + "]", "boxes", int64(3), map[string]any{}},
		{"long from 3.0", "[" + group("G", qa("q", "ctl_boxes", ansNumber("3.0"))) + "]", "boxes", int64(3), nil},
		{"option value in canonical spelling", "[" + group("G", qa("Doors available?", "c3", ansOption("disposed of"))) + "]", "doors", "Disposed Of", nil},
		{"text", "[" + group("G", qa("Notes", "c4", ansText("Swollen base."))) + "]", "notes", "Swollen base.", nil},
		{"blank text is null", "[" + group("G", qa("Notes", "c4", ansText("  "))) + "]", "notes", nil, nil},
		{"no answer is null", "[" + group("G", qa("Notes", "c4", "null")) + "]", "notes", nil, nil},
		{"image ids", "[" + group("G", qa("Photos", "c5", `{"type":"image","claimMediaIds":[91000001,"91000002"]}`)) + "]", "photos", []any{int64(91000001), int64(91000002)}, nil},
		{"no images is null", "[" + group("G", qa("Photos", "c5", `{"type":"image","claimMediaIds":[]}`)) + "]", "photos", nil, nil},
		{"missing groups leave columns null", "[]", "feet", nil, map[string]any{}},
		{"question of another group is unknown", "[" + group("Upper Cabinets", qa("Lower cabinets damaged?", "c1", ansOption("Yes"))) + "]", "damaged", nil,
			map[string]any{"Upper Cabinets / Lower cabinets damaged?": "Yes"}},
		{"unknown questions kept", "[" + group("Extras",
			qa("Mold present?", "x1", ansOption("No")),
			qa("Mold present?", "x2", ansOption("Yes")),
			qa("Rooms", "x3", ansNumber("2")),
			qa("Room photos", "x4", `{"type":"image","claimMediaIds":[5,6]}`),
			qa("Signature", "x5", `{"type":"signature","signatureId":"s9"}`)) + "]", "notes", nil,
			map[string]any{
				"Extras / Mold present?":     "No",
				"Extras / Mold present? (2)": "Yes",
				"Extras / Rooms":             "2",
				"Extras / Room photos":       "5,6",
				"Extras / Signature":         `{"signatureId":"s9","type":"signature"}`,
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			row, err := m.Apply(decode(t, assignmentWith(c.groups)))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(row[c.column], c.want) {
				t.Errorf("%s = %#v, want %#v", c.column, row[c.column], c.want)
			}
			if c.other != nil && !reflect.DeepEqual(row[ColOtherAnswers], c.other) {
				t.Errorf("other_answers = %#v, want %#v", row[ColOtherAnswers], c.other)
			}
		})
	}
}

func TestApplyAnswerErrors(t *testing.T) {
	m, err := ParseMapping([]byte(testMapping))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, group, question, control, answer string
		want                                   []string
	}{
		{"text in a number field", "Lower Cabinets", "Lower cabinets linear feet", "c2", ansText("about ten"),
			[]string{`question "Lower cabinets linear feet"`, `group "Lower Cabinets"`, `control "c2"`, "column feet (double)", `"about ten" is not a number`}},
		{"fraction in a long", "G", "Boxes", "ctl_boxes", ansNumber("2.5"),
			[]string{`question "Boxes"`, `control "ctl_boxes"`, "column boxes (long)", "2.5 is not a whole number"}},
		{"option not in values", "G", "Doors available?", "c3", ansOption("Maybe"),
			[]string{`question "Doors available?"`, `group "G"`, `"Maybe" is not one of Yes, No, Disposed Of`}},
		{"not yes or no", "Lower Cabinets", "Lower cabinets damaged?", "c1", ansOption("Partly"),
			[]string{`question "Lower cabinets damaged?"`, `"Partly" is not Yes or No`}},
		{"number for a boolean", "Lower Cabinets", "Lower cabinets damaged?", "c1", ansNumber("1"),
			[]string{"column damaged (boolean)", "a number answer is not Yes or No"}},
		{"image for text", "G", "Notes", "c4", `{"type":"image","claimMediaIds":[1]}`,
			[]string{`question "Notes"`, "an image answer is not text", `"claimMediaIds":[1]`}},
		{"text for images", "G", "Photos", "c5", ansText("see email"),
			[]string{`question "Photos"`, "a text answer holds no media ids"}},
		{"bad media id", "G", "Photos", "c5", `{"type":"image","claimMediaIds":["IMG_1.jpg"]}`,
			[]string{`question "Photos"`, `media id "IMG_1.jpg" is not a whole number`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := m.Apply(decode(t, assignmentWith("["+group(c.group, qa(c.question, c.control, c.answer))+"]")))
			if err == nil {
				t.Fatal("want an error, got none")
			}
			var ae *AnswerError
			if !errors.As(err, &ae) {
				t.Errorf("error is not an *AnswerError: %v", err)
			}
			for _, w := range append(c.want, "assignment 5423001") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestApplyAssignmentErrors(t *testing.T) {
	m, err := ParseMapping([]byte("form: test\ntask_ids: [32513]\n" + strings.TrimPrefix(testMapping, "\nform: test\n")))
	if err != nil {
		t.Fatal(err)
	}
	ok := assignmentWith("[]")
	cases := []struct {
		name, doc string
		want      string // "" when Apply must succeed
	}{
		{"completed, no groups", ok, ""},
		{"response without groups", strings.Replace(ok, `"response":{"groups":[]}`, `"response":{}`, 1), ""},
		{"not completed", strings.Replace(ok, `"response":{"groups":[]}`, `"response":null`, 1), `assignment 5423001 is not completed: its response is null (status "COMPLETED")`},
		{"response missing", strings.Replace(ok, `"response":{"groups":[]}`, `"notes":"no response key"`, 1), "is not completed"},
		{"response not an object", strings.Replace(ok, `"response":{"groups":[]}`, `"response":"done"`, 1), `response is "done", not an object`},
		{"other template", strings.Replace(ok, `"taskId":32513`, `"taskId":24871`, 1), `task template 24871 is not one form mapping "test" covers ([32513])`},
		{"no assignment id", strings.Replace(ok, `"assignmentId":5423001`, `"assignmentId":null`, 1), "assignmentId is null, not a whole number"},
		{"no project id", strings.Replace(ok, `"projectId":4895003`, `"projectId":""`, 1), `projectId is "", not an id`},
		{"no form response id", strings.Replace(ok, `"formResponseId":"r1"`, `"formResponseId":null`, 1), "formResponseId is null: a completed form must have one"},
		{"bad completion time", strings.Replace(ok, `"2026-01-05T10:11:12.345Z"`, `"yesterday"`, 1), `dateCompleted is "yesterday", not an RFC 3339 time`},
		{"bad group", assignmentWith(`["x"]`), `response.groups[0] is "x", not an object`},
		{"groups not a list", assignmentWith(`{"a":1}`), `response.groups is {"a":1}, not a list`},
		{"answers not a list", assignmentWith(`[{"name":"G","questionAndAnswers":"none"}]`), `group "G": questionAndAnswers is "none", not a list`},
		{"group without answers", assignmentWith(`[{"name":"G"}]`), ""},
		{"answered twice", assignmentWith("[" + group("G", qa("Notes", "a", ansText("one")), qa("notes", "b", ansText("two"))) + "]"),
			`column notes is answered twice: by "G / Notes" and by "G / notes" (control "b")`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			row, err := m.Apply(decode(t, c.doc))
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				for _, col := range []string{"damaged", "feet", "boxes", "doors", "notes", "photos"} {
					if v, present := row[col]; !present || v != nil {
						t.Errorf("%s = %#v (present %v), want null", col, v, present)
					}
				}
				if row[ColAssignmentID] != int64(5423001) || row[ColProjectID] != "4895003" || row[ColFormResponseID] != "r1" {
					t.Errorf("fixed columns: %v", row)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want an error with %q, got %v", c.want, err)
			}
		})
	}
}
