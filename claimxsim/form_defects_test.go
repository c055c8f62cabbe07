package claimxsim

import (
	"encoding/json"
	"strings"
	"testing"
)

// Each defect changes the served form as documented, and only that form.
func TestDamageForm(t *testing.T) {
	s, err := New(Config{Seed: 3, Assignments: 120})
	if err != nil {
		t.Fatal(err)
	}
	var completed []int64
	for _, a := range s.Assignments() {
		if a.Status == StatusCompleted && a.TaskID == ITelTemplateID {
			completed = append(completed, a.AssignmentID)
		}
	}
	if len(completed) < 4 {
		t.Fatalf("only %d completed iTel forms in the seed", len(completed))
	}
	text := func(id int64) string {
		b, _ := json.Marshal(s.data.assignmentBody[id])
		return string(b)
	}
	untouched := text(completed[3])
	cases := []struct {
		defect FormDefect
		check  func(before, after string) bool
	}{
		{DefectMissingGroup, func(b, a string) bool {
			return strings.Count(a, `"name":"`) < strings.Count(b, `"name":"`)
		}},
		{DefectUnknownQuestion, func(_, a string) bool { return strings.Contains(a, UnknownQuestionText) }},
		{DefectWrongType, func(_, a string) bool { return strings.Contains(a, "about ten") }},
	}
	for i, c := range cases {
		before := text(completed[i])
		if err := s.DamageForm(completed[i], c.defect); err != nil {
			t.Fatalf("%s: %v", c.defect, err)
		}
		if after := text(completed[i]); after == before || !c.check(before, after) {
			t.Errorf("%s did not change the form as documented", c.defect)
		}
	}
	if text(completed[3]) != untouched {
		t.Error("another assignment's form changed")
	}
	if err := s.DamageForm(completed[0], "nonsense"); err == nil {
		t.Error("an unknown defect was accepted")
	}
}
