// Package forms turns completed ClaimX form assignments (DOMAIN.md §5) into
// typed rows, following a declarative question→column mapping read from YAML.
// It imports neither benthos nor Kafka: the claimx_form processor wraps it.
package forms

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Column types a question can map to. Each names the Delta type of its
// column and the Go type Apply stores (see Apply).
const (
	TypeString    = "string"
	TypeBoolean   = "boolean"
	TypeLong      = "long"
	TypeDouble    = "double"
	TypeLongArray = "array<long>"
	// The fixed columns also use these.
	TypeInteger   = "integer"
	TypeTimestamp = "timestamp"
	TypeStringMap = "map<string,string>"
)

// questionTypes are the types a mapping entry may name.
var questionTypes = []string{TypeString, TypeBoolean, TypeLong, TypeDouble, TypeLongArray}

// Fixed column names: taken from the assignment itself, whatever the form.
const (
	ColAssignmentID      = "assignment_id"
	ColProjectID         = "project_id"
	ColTaskID            = "task_id"
	ColFormID            = "form_id"
	ColFormResponseID    = "form_response_id"
	ColDateCompleted     = "date_completed"
	ColCustomerFirstName = "customer_first_name"
	ColCustomerLastName  = "customer_last_name"
	ColCustomerEmail     = "customer_email"
	ColCustomerPhone     = "customer_phone"
	ColExternalLinkURL   = "external_link_url"
	// ColOtherAnswers holds every answer no entry maps, keyed
	// "group / question text": an unknown question is kept, never dropped.
	ColOtherAnswers = "other_answers"
)

// Column is one column of the rows a Mapping produces.
type Column struct {
	Name     string
	Type     string // Delta DDL type, e.g. "long", "array<long>"
	Nullable bool
	Unit     string // for numbers: the unit of the answer, e.g. "ft"
}

// fixedColumns come first in every row, in this order.
var fixedColumns = []Column{
	{Name: ColAssignmentID, Type: TypeLong},
	{Name: ColProjectID, Type: TypeString},
	{Name: ColTaskID, Type: TypeInteger, Nullable: true},
	{Name: ColFormID, Type: TypeString, Nullable: true},
	{Name: ColFormResponseID, Type: TypeString},
	{Name: ColDateCompleted, Type: TypeTimestamp, Nullable: true},
	{Name: ColCustomerFirstName, Type: TypeString, Nullable: true},
	{Name: ColCustomerLastName, Type: TypeString, Nullable: true},
	{Name: ColCustomerEmail, Type: TypeString, Nullable: true},
	{Name: ColCustomerPhone, Type: TypeString, Nullable: true},
	{Name: ColExternalLinkURL, Type: TypeString, Nullable: true},
}

var otherAnswersColumn = Column{Name: ColOtherAnswers, Type: TypeStringMap}

// Entry maps one question of the form to a column. It matches a question by
// ControlID (formControl.id), or by Question text, compared ignoring case and
// runs of white space, optionally only within the group named Group.
type Entry struct {
	ControlID string `yaml:"control_id"`
	Question  string `yaml:"question"`
	Group     string `yaml:"group"`
	Column    string `yaml:"column"`
	Type      string `yaml:"type"`
	Unit      string `yaml:"unit"`
	// Values are the option names a string column accepts (compared
	// ignoring case; the row holds the spelling given here). Empty: any.
	Values []string `yaml:"values"`
}

// describe names an entry in errors: its index and how it matches.
func (e Entry) describe(i int) string {
	var parts []string
	if e.ControlID != "" {
		parts = append(parts, fmt.Sprintf("control_id %q", e.ControlID))
	}
	if e.Question != "" {
		parts = append(parts, fmt.Sprintf("question %q", e.Question))
	}
	if e.Group != "" {
		parts = append(parts, fmt.Sprintf("group %q", e.Group))
	}
	if e.Column != "" {
		parts = append(parts, fmt.Sprintf("column %q", e.Column))
	}
	return fmt.Sprintf("questions[%d] (%s)", i, strings.Join(parts, ", "))
}

// Mapping is a validated question→column mapping for one ClaimX form.
type Mapping struct {
	// Form names the form, for errors and documentation.
	Form string `yaml:"form"`
	// TaskIDs, when set, are the task templates the mapping covers: an
	// assignment of another template is an error, not a row of
	// other_answers.
	TaskIDs   []int64 `yaml:"task_ids"`
	Questions []Entry `yaml:"questions"`

	byControl  map[string]int
	byGroupQ   map[[2]string]int // {group, question}, both normalised
	byQuestion map[string]int    // entries without a group
	columns    []Column
}

// LoadMapping reads and validates the mapping file at path.
func LoadMapping(path string) (*Mapping, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading form mapping: %w", err)
	}
	m, err := ParseMapping(b)
	if err != nil {
		return nil, fmt.Errorf("form mapping %s: %w", path, err)
	}
	return m, nil
}

// ParseMapping parses and validates a mapping document. Unknown keys, entries
// that match nothing, duplicate columns or matchers, unknown types, and
// options on types that cannot hold them are errors naming the entry.
func ParseMapping(data []byte) (*Mapping, error) {
	var m Mapping
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("parsing form mapping: %w", err)
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

var columnName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

func (m *Mapping) validate() error {
	if len(m.Questions) == 0 {
		return errors.New("questions must hold at least one entry")
	}
	m.byControl = map[string]int{}
	m.byGroupQ = map[[2]string]int{}
	m.byQuestion = map[string]int{}
	colAt := map[string]string{}
	for _, c := range fixedColumns {
		colAt[c.Name] = "a fixed column"
	}
	colAt[ColOtherAnswers] = "a fixed column"
	m.columns = append([]Column(nil), fixedColumns...)

	var errs []error
	for i, e := range m.Questions {
		fail := func(format string, a ...any) {
			errs = append(errs, fmt.Errorf("%s: %s", e.describe(i), fmt.Sprintf(format, a...)))
		}
		if e.Column == "" {
			fail("column is missing")
			continue
		}
		if !columnName.MatchString(e.Column) {
			fail("column %q is not a lower-case name of letters, digits and _", e.Column)
		}
		if prev, dup := colAt[e.Column]; dup {
			fail("column %q is already %s", e.Column, prev)
		} else {
			colAt[e.Column] = e.describe(i)
		}
		if !knownQuestionType(e.Type) {
			fail("type %q is not one of %s", e.Type, strings.Join(questionTypes, ", "))
		}
		if len(e.Values) > 0 && e.Type != TypeString {
			fail("values are allowed only for type %s (got type %q)", TypeString, e.Type)
		}
		seenValue := map[string]bool{}
		for _, v := range e.Values {
			k := normalize(v)
			if k == "" || seenValue[k] {
				fail("values hold an empty or repeated option %q", v)
			}
			seenValue[k] = true
		}
		if e.Unit != "" && e.Type != TypeLong && e.Type != TypeDouble {
			fail("unit is allowed only for numbers (got type %q)", e.Type)
		}
		ctl := strings.TrimSpace(e.ControlID)
		q, g := normalize(e.Question), normalize(e.Group)
		switch {
		case ctl == "" && q == "":
			fail("needs control_id or question")
		case ctl != "":
			if j, dup := m.byControl[ctl]; dup {
				fail("control_id %q is already matched by %s", ctl, m.Questions[j].describe(j))
			}
			m.byControl[ctl] = i
		}
		if q != "" {
			if g != "" {
				if j, dup := m.byGroupQ[[2]string{g, q}]; dup {
					fail("question is already matched in this group by %s", m.Questions[j].describe(j))
				}
				m.byGroupQ[[2]string{g, q}] = i
			} else {
				if j, dup := m.byQuestion[q]; dup {
					fail("question is already matched by %s", m.Questions[j].describe(j))
				}
				m.byQuestion[q] = i
			}
		} else if g != "" {
			fail("group needs question: a control_id is unique in the form")
		}
		m.columns = append(m.columns, Column{Name: e.Column, Type: e.Type, Nullable: true, Unit: e.Unit})
	}
	m.columns = append(m.columns, otherAnswersColumn)
	if len(errs) > 0 {
		return fmt.Errorf("invalid form mapping %q: %w", m.Form, errors.Join(errs...))
	}
	return nil
}

func knownQuestionType(t string) bool {
	for _, k := range questionTypes {
		if t == k {
			return true
		}
	}
	return false
}

// normalize folds case and runs of white space, for matching question,
// group and option texts.
func normalize(s string) string {
	return strings.ToLower(strings.Join(strings.Fields(s), " "))
}

// Columns lists the columns of the rows Apply produces, fixed columns first,
// then the mapped ones in mapping order, then other_answers.
func (m *Mapping) Columns() []Column { return append([]Column(nil), m.columns...) }

// match finds the entry for a question: by control id first, then by text
// within its group, then by text alone.
func (m *Mapping) match(controlID, group, question string) (int, bool) {
	if i, ok := m.byControl[strings.TrimSpace(controlID)]; ok && controlID != "" {
		return i, true
	}
	q := normalize(question)
	if q == "" {
		return 0, false
	}
	if i, ok := m.byGroupQ[[2]string{normalize(group), q}]; ok {
		return i, true
	}
	i, ok := m.byQuestion[q]
	return i, ok
}
