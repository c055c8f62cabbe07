package claimxsim

import (
	"fmt"
	"strings"
)

// FormDefect is a way a completed form can be wrong, for the bad-forms
// corpus of the forms stream's tests.
type FormDefect string

// Form defects DamageForm applies.
const (
	// DefectMissingGroup removes the form's first group of cabinets: its
	// questions are unanswered (their columns NULL), not an error.
	DefectMissingGroup FormDefect = "missing_group"
	// DefectUnknownQuestion adds a question no mapping names: it must land
	// in other_answers, never be dropped.
	DefectUnknownQuestion FormDefect = "unknown_question"
	// DefectWrongType makes the first number answer text ("about ten"): a
	// record error naming the question.
	DefectWrongType FormDefect = "wrong_type"
)

// UnknownQuestionText is the question DefectUnknownQuestion adds, in the
// group UnknownQuestionGroup, answered UnknownQuestionAnswer.
const (
	UnknownQuestionGroup  = "Site Conditions"
	UnknownQuestionText   = "Is the water shut off?"
	UnknownQuestionAnswer = "Yes, at the main"
)

// DamageForm changes the completed form of an assignment as defect says.
// Call it before the simulator serves requests (it is not synchronised
// with them).
func (s *Server) DamageForm(assignmentID int64, defect FormDefect) error {
	body, ok := s.data.assignmentBody[assignmentID]
	if !ok {
		return fmt.Errorf("assignment %d is not seeded", assignmentID)
	}
	resp, _ := body["response"].(map[string]any)
	if resp == nil {
		return fmt.Errorf("assignment %d has no completed form", assignmentID)
	}
	groups, _ := resp["groups"].([]any)
	switch defect {
	case DefectMissingGroup:
		for i, g := range groups {
			if name, _ := g.(map[string]any)["name"].(string); strings.Contains(name, "Cabinets") {
				resp["groups"] = append(groups[:i:i], groups[i+1:]...)
				return nil
			}
		}
		return fmt.Errorf("assignment %d: no cabinets group to remove", assignmentID)
	case DefectUnknownQuestion:
		resp["groups"] = append(groups, map[string]any{
			"name": UnknownQuestionGroup,
			"questionAndAnswers": []any{map[string]any{
				"questionText": UnknownQuestionText, "component": "textarea",
				"formControl":          map[string]any{"id": fmt.Sprintf("ctl_unknown_%d", assignmentID)},
				"responseAnswerExport": map[string]any{"type": "text", "text": UnknownQuestionAnswer},
			}},
		})
		return nil
	case DefectWrongType:
		for _, g := range groups {
			qas, _ := g.(map[string]any)["questionAndAnswers"].([]any)
			for _, q := range qas {
				ans, _ := q.(map[string]any)["responseAnswerExport"].(map[string]any)
				if ans["type"] == "number" {
					q.(map[string]any)["responseAnswerExport"] = map[string]any{"type": "text", "text": "about ten"}
					return nil
				}
			}
		}
		return fmt.Errorf("assignment %d: no number answer to spoil", assignmentID)
	}
	return fmt.Errorf("unknown form defect %q", defect)
}
