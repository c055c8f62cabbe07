package forms

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// AnswerError is an answer that does not fit its column: it names the
// question, its group, its control id, the column and the value.
type AnswerError struct {
	Group, Question, ControlID string
	Column, Type               string
	Value                      string // the answer as received, shortened
	Reason                     string
}

// Error names everything needed to find the answer in the form.
func (e *AnswerError) Error() string {
	return fmt.Sprintf("question %q (group %q, control %q) → column %s (%s): cannot use %s: %s",
		e.Question, e.Group, e.ControlID, e.Column, e.Type, e.Value, e.Reason)
}

// Apply turns one completed assignment, as decoded from the ClaimX API's JSON
// (with or without UseNumber), into a row keyed by the names of Columns. Every
// column is present; nil is NULL. Go types by column type:
//
//	string              string
//	boolean             bool (option Yes → true, No → false)
//	long                int64
//	integer             int32
//	double              float64
//	timestamp           time.Time (UTC)
//	array<long>         []any of int64 (JSON-shaped, as structured messages hold)
//	map<string,string>  map[string]any of string
//
// An empty answer (no option, blank text, no number, no media) is NULL. A
// missing group leaves its columns NULL. An assignment whose response is null
// (not completed) is an error, as is an answer that does not parse for its
// column (*AnswerError) or a question answered twice for one column.
func (m *Mapping) Apply(assignment map[string]any) (map[string]any, error) {
	aid := describe(assignment["assignmentId"])
	row := make(map[string]any, len(m.columns))
	for _, c := range m.columns {
		row[c.Name] = nil
	}
	// A form of another template would land in other_answers whole: refuse
	// it before anything else.
	if err := m.coversTemplate(assignment["taskId"]); err != nil {
		return nil, fmt.Errorf("assignment %s: %w", aid, err)
	}
	resp, ok := assignment["response"].(map[string]any)
	if !ok {
		if r := assignment["response"]; r != nil {
			return nil, fmt.Errorf("assignment %s: response is %s, not an object", aid, describe(r))
		}
		return nil, fmt.Errorf("assignment %s is not completed: its response is null (status %s)", aid, describe(assignment["status"]))
	}
	if err := m.fixed(assignment, row); err != nil {
		return nil, fmt.Errorf("assignment %s: %w", aid, err)
	}
	other := map[string]any{}
	row[ColOtherAnswers] = other
	answeredBy := map[string]string{} // column → "group / question" that filled it
	groups, ok := resp["groups"].([]any)
	if !ok && resp["groups"] != nil {
		return nil, fmt.Errorf("assignment %s: response.groups is %s, not a list", aid, describe(resp["groups"]))
	}
	for gi, gv := range groups {
		g, ok := gv.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("assignment %s: response.groups[%d] is %s, not an object", aid, gi, describe(gv))
		}
		group, _ := g["name"].(string)
		qas, ok := g["questionAndAnswers"].([]any)
		if !ok && g["questionAndAnswers"] != nil {
			return nil, fmt.Errorf("assignment %s: group %q: questionAndAnswers is %s, not a list", aid, group, describe(g["questionAndAnswers"]))
		}
		for qi, qv := range qas {
			qa, ok := qv.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("assignment %s: group %q question %d is %s, not an object", aid, group, qi, describe(qv))
			}
			question, _ := qa["questionText"].(string)
			var controlID string
			if fc, ok := qa["formControl"].(map[string]any); ok {
				controlID = str(fc["id"])
			}
			ans, _ := qa["responseAnswerExport"].(map[string]any)
			where := group + " / " + question

			i, ok := m.match(controlID, group, question)
			if !ok {
				key := where
				for n := 2; other[key] != nil; n++ {
					key = fmt.Sprintf("%s (%d)", where, n)
				}
				other[key] = answerText(ans)
				continue
			}
			e := m.Questions[i]
			if prev, dup := answeredBy[e.Column]; dup {
				return nil, fmt.Errorf("assignment %s: column %s is answered twice: by %q and by %q (control %q)", aid, e.Column, prev, where, controlID)
			}
			answeredBy[e.Column] = where
			v, reason := convert(e, ans)
			if reason != "" {
				return nil, fmt.Errorf("assignment %s: %w", aid, &AnswerError{
					Group: group, Question: question, ControlID: controlID,
					Column: e.Column, Type: e.Type, Value: describe(ans), Reason: reason,
				})
			}
			row[e.Column] = v
		}
	}
	return row, nil
}

// coversTemplate checks the assignment's taskId against the mapping's
// task_ids, when it has any.
func (m *Mapping) coversTemplate(taskID any) error {
	if len(m.TaskIDs) == 0 {
		return nil
	}
	tid, ok := wholeNumber(taskID)
	for _, t := range m.TaskIDs {
		if ok && t == tid {
			return nil
		}
	}
	return fmt.Errorf("task template %s is not one form mapping %q covers (%v)", describe(taskID), m.Form, m.TaskIDs)
}

// fixed fills the columns taken from the assignment itself.
func (m *Mapping) fixed(a map[string]any, row map[string]any) error {
	id, ok := wholeNumber(a["assignmentId"])
	if !ok {
		return fmt.Errorf("assignmentId is %s, not a whole number", describe(a["assignmentId"]))
	}
	row[ColAssignmentID] = id
	if row[ColProjectID] = str(a["projectId"]); row[ColProjectID] == "" {
		return fmt.Errorf("projectId is %s, not an id", describe(a["projectId"]))
	}
	if v := a["taskId"]; v != nil {
		t, ok := wholeNumber(v)
		if !ok || t < math.MinInt32 || t > math.MaxInt32 {
			return fmt.Errorf("taskId is %s, not an integer", describe(v))
		}
		row[ColTaskID] = int32(t)
	}
	row[ColFormID] = nullIfEmpty(str(a["formId"]))
	// With assignment_id it keys the row: every completion is kept.
	if row[ColFormResponseID] = nullIfEmpty(str(a["formResponseId"])); row[ColFormResponseID] == nil {
		return fmt.Errorf("formResponseId is %s: a completed form must have one", describe(a["formResponseId"]))
	}
	if v := a["dateCompleted"]; v != nil {
		s, _ := v.(string)
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fmt.Errorf("dateCompleted is %s, not an RFC 3339 time", describe(v))
		}
		row[ColDateCompleted] = t.UTC()
	}
	ext, _ := a["externalLinkData"].(map[string]any)
	for col, key := range map[string]string{
		ColCustomerFirstName: "firstName", ColCustomerLastName: "lastName",
		ColCustomerEmail: "email", ColCustomerPhone: "phone", ColExternalLinkURL: "url",
	} {
		row[col] = nullIfEmpty(str(ext[key]))
	}
	return nil
}

// convert reads one answer for entry e; a non-empty reason says why it
// cannot. A nil value with no reason is an empty answer (NULL).
func convert(e Entry, ans map[string]any) (any, string) {
	if ans == nil {
		return nil, ""
	}
	kind, _ := ans["type"].(string)
	switch e.Type {
	case TypeString:
		if kind == "image" {
			return nil, "an image answer is not text"
		}
		s := strings.TrimSpace(scalarText(ans))
		if s == "" {
			return nil, ""
		}
		if len(e.Values) == 0 {
			return s, ""
		}
		for _, v := range e.Values {
			if normalize(v) == normalize(s) {
				return v, ""
			}
		}
		return nil, fmt.Sprintf("%q is not one of %s", s, strings.Join(e.Values, ", "))
	case TypeBoolean:
		if kind == "image" || kind == "number" {
			return nil, "a " + kind + " answer is not Yes or No"
		}
		switch s := normalize(scalarText(ans)); s {
		case "":
			return nil, ""
		case "yes":
			return true, ""
		case "no":
			return false, ""
		default:
			return nil, fmt.Sprintf("%q is not Yes or No", scalarText(ans))
		}
	case TypeLong, TypeDouble:
		if kind == "image" {
			return nil, "an image answer is not a number"
		}
		var raw any
		if na, ok := ans["numberAnswer"].(map[string]any); ok && na["value"] != nil {
			raw = na["value"]
		} else if s := strings.TrimSpace(scalarText(ans)); s != "" {
			raw = s
		} else {
			return nil, ""
		}
		f, ok := number(raw)
		if !ok {
			return nil, fmt.Sprintf("%s is not a number", describe(raw))
		}
		if e.Type == TypeDouble {
			return f, ""
		}
		i, ok := wholeNumber(raw)
		if !ok {
			return nil, fmt.Sprintf("%s is not a whole number", describe(raw))
		}
		return i, ""
	case TypeLongArray:
		if kind != "image" && kind != "" {
			return nil, "a " + kind + " answer holds no media ids"
		}
		ids, ok := ans["claimMediaIds"].([]any)
		if !ok && ans["claimMediaIds"] != nil {
			return nil, "claimMediaIds is not a list"
		}
		if len(ids) == 0 {
			return nil, ""
		}
		out := make([]any, len(ids))
		for i, v := range ids {
			n, ok := wholeNumber(v)
			if !ok {
				return nil, fmt.Sprintf("media id %s is not a whole number", describe(v))
			}
			out[i] = n
		}
		return out, ""
	}
	return nil, "unknown column type " + e.Type // validate rules this out
}

// scalarText is the text of an option, text or number answer.
func scalarText(ans map[string]any) string {
	if o, ok := ans["optionAnswer"].(map[string]any); ok {
		if s := str(o["name"]); s != "" {
			return s
		}
	}
	if s := str(ans["text"]); s != "" {
		return s
	}
	if na, ok := ans["numberAnswer"].(map[string]any); ok {
		return str(na["value"])
	}
	return ""
}

// answerText renders any answer for other_answers: the option, text or
// number, media ids joined by commas, else the answer's JSON.
func answerText(ans map[string]any) string {
	if ans == nil {
		return ""
	}
	if ids, ok := ans["claimMediaIds"].([]any); ok {
		parts := make([]string, len(ids))
		for i, v := range ids {
			parts[i] = str(v)
		}
		return strings.Join(parts, ",")
	}
	if s := scalarText(ans); s != "" {
		return s
	}
	b, err := json.Marshal(ans)
	if err != nil {
		return fmt.Sprint(ans)
	}
	return string(b)
}

// str renders a JSON scalar as text: strings as is, numbers in their
// shortest decimal form; anything else is "".
func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case int32:
		return strconv.FormatInt(int64(x), 10)
	}
	return ""
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// number reads a JSON number or a numeric string.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, !math.IsNaN(x) && !math.IsInf(x, 0)
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case json.Number, string:
		f, err := strconv.ParseFloat(strings.TrimSpace(str(x)), 64)
		return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
	}
	return 0, false
}

// wholeNumber reads an integer exactly (beyond 2^53 from json.Number or
// strings), refusing fractions.
func wholeNumber(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int64:
		return x, true
	case int32:
		return int64(x), true
	case float64:
		if x != math.Trunc(x) || math.Abs(x) >= 1<<63 {
			return 0, false
		}
		return int64(x), true
	case json.Number, string:
		s := strings.TrimSpace(str(x))
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i, true
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f != math.Trunc(f) || math.Abs(f) >= 1<<53 {
			return 0, false
		}
		return int64(f), true
	}
	return 0, false
}

// describe renders a value for an error: JSON, shortened.
func describe(v any) string {
	b, err := json.Marshal(v)
	s := string(b)
	if err != nil {
		s = fmt.Sprint(v)
	}
	const maxLen = 120
	if r := []rune(s); len(r) > maxLen {
		s = string(r[:maxLen]) + "…"
	}
	return s
}
