package processors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redpanda-data/benthos/v4/public/service"
)

const (
	vpFieldRules     = "rules"
	vpFieldField     = "field"
	vpFieldRequired  = "required"
	vpFieldEquals    = "equals"
	vpFieldOneOf     = "one_of"
	vpFieldTimestamp = "timestamp"
	vpFieldType      = "type"
	vpFieldMin       = "min"
	vpFieldMax       = "max"
	vpFieldMinLength = "min_length"
	vpFieldMaxLength = "max_length"
	vpFieldPattern   = "pattern"
	vpFieldNotBlank  = "not_blank"
)

// ValidateMetaErrors is the metadata key holding the violations of a message
// that failed validation, joined with "; ".
const ValidateMetaErrors = "validation_errors"

var vpTypes = []string{"string", "integer", "number", "boolean", "object", "array"}

func validateConfigSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Utility").
		Version("0.1.0").
		Summary("Checks JSON messages against a list of rules on dotted field paths and reports every violation at once.").
		Description(`
A valid message passes unchanged. An invalid one keeps flowing with its error set
(route it with `+"`catch`"+` or `+"`switch`"+` on `+"`errored()`"+`) and the metadata
`+"`"+ValidateMetaErrors+"`"+`; the error lists every violation, naming the field, the rule and the
value, for example:

`+"```"+`
validation failed: task_id: equals 32513: got 99; task_status: one_of ["ASSIGNED","IN_PROGRESS","COMPLETED","CANCELLED"]: got "DONE"
`+"```"+`

A message that is not JSON fails with `+"`validation failed: message is not JSON`"+`.

`+"`field`"+` is a dotted path (`+"`task.assignee_id`"+`); a numeric segment indexes an array.
Only `+"`required`"+` looks at missing or null fields: every other rule skips them, so combine
it with `+"`required: true`"+` when the field must be there.

### Comparing numbers and strings

`+"`equals`"+` and `+"`one_of`"+` compare numbers by value (`+"`32513`"+` equals `+"`32513.0`"+`), and a
number equals a string whose text is exactly the number's shortest decimal form:
`+"`equals: 32513`"+` accepts `+"`32513`"+` and `+"`\"32513\"`"+` but not `+"`\" 32513\"`"+`, `+"`\"32513.0\"`"+` or
`+"`\"032513\"`"+`; `+"`equals: \"32513\"`"+` accepts the same two. Booleans equal only booleans;
objects and arrays compare as JSON. `+"`min`"+` and `+"`max`"+` accept numbers and strings holding
a decimal number. `+"`pattern`"+` matches strings, and numbers by their decimal text; it is
not anchored unless you write `+"`^…$`"+`. `+"`min_length`"+`/`+"`max_length`"+` count the characters of
a string or the items of an array. `+"`timestamp`"+` wants an RFC 3339 string with a zone
(`+"`2026-01-10T22:30:07.120Z`"+`, `+"`2026-01-10T17:30:07-05:00`"+`). `+"`not_blank`"+` fails strings
that are empty or only white space. `+"`type: integer`"+` accepts numbers without a fractional
part.`).
		Fields(
			service.NewObjectListField(vpFieldRules,
				service.NewStringField(vpFieldField).Description("Dotted path of the field."),
				service.NewBoolField(vpFieldRequired).Description("The field must be present and not null.").Default(false),
				service.NewAnyField(vpFieldEquals).Description("The value must equal this.").Optional(),
				service.NewAnyListField(vpFieldOneOf).Description("The value must equal one of these.").Optional(),
				service.NewBoolField(vpFieldTimestamp).Description("The value must be an RFC 3339 timestamp.").Default(false),
				service.NewStringEnumField(vpFieldType, vpTypes...).Description("The JSON type of the value.").Optional(),
				service.NewFloatField(vpFieldMin).Description("Smallest numeric value.").Optional(),
				service.NewFloatField(vpFieldMax).Description("Largest numeric value.").Optional(),
				service.NewIntField(vpFieldMinLength).Description("Fewest characters (string) or items (array).").Optional(),
				service.NewIntField(vpFieldMaxLength).Description("Most characters (string) or items (array).").Optional(),
				service.NewStringField(vpFieldPattern).Description("Regular expression (RE2) the value must match.").Optional(),
				service.NewBoolField(vpFieldNotBlank).Description("A string value must hold more than white space.").Default(false),
			).Description("The rules; each names a field and one or more checks."),
		).
		Example("The iTel worker's checks", "Required fields, the template id, the status enum and the timestamps.", `
pipeline:
  processors:
    - validate:
        rules:
          - { field: event_id, required: true, not_blank: true }
          - { field: event_type, required: true }
          - { field: task_id, required: true, equals: 32513 }
          - { field: task_status, required: true, one_of: [ASSIGNED, IN_PROGRESS, COMPLETED, CANCELLED] }
          - { field: project_id, required: true, pattern: '^[0-9]+$' }
          - { field: event_timestamp, required: true, timestamp: true }
          - { field: task_created_at, timestamp: true }
          - { field: task_completed_at, timestamp: true }
          - { field: assignment_id, type: integer, min: 1 }
`)
}

func init() {
	service.MustRegisterProcessor("validate", validateConfigSpec(),
		func(conf *service.ParsedConfig, _ *service.Resources) (service.Processor, error) {
			return newValidateFromConfig(conf)
		})
}

// vpRule is one parsed rule: a field and its checks.
type vpRule struct {
	field  string
	path   []string
	checks []vpCheck
	// required is checked apart: the other checks skip missing values.
	required bool
}

// vpCheck is one check of a present, non-null value. It returns a description
// of what is wrong with v, or "" when v passes.
type vpCheck struct {
	name string // the rule as the error shows it, e.g. "equals 32513"
	fn   func(v any) string
}

func newValidateFromConfig(conf *service.ParsedConfig) (*validateProc, error) {
	rcs, err := conf.FieldObjectList(vpFieldRules)
	if err != nil {
		return nil, err
	}
	if len(rcs) == 0 {
		return nil, errors.New("rules must hold at least one rule")
	}
	p := &validateProc{}
	for i, rc := range rcs {
		r, err := parseVPRule(rc)
		if err != nil {
			return nil, fmt.Errorf("rules[%d]: %w", i, err)
		}
		p.rules = append(p.rules, r)
	}
	return p, nil
}

func parseVPRule(rc *service.ParsedConfig) (vpRule, error) {
	var r vpRule
	var err error
	if r.field, err = rc.FieldString(vpFieldField); err != nil {
		return r, err
	}
	if strings.TrimSpace(r.field) == "" {
		return r, errors.New("field must not be empty")
	}
	r.path = strings.Split(r.field, ".")
	for _, s := range r.path {
		if s == "" {
			return r, fmt.Errorf("field %q has an empty path segment", r.field)
		}
	}
	if r.required, err = rc.FieldBool(vpFieldRequired); err != nil {
		return r, err
	}

	if rc.Contains(vpFieldEquals) {
		want, err := rc.FieldAny(vpFieldEquals)
		if err != nil {
			return r, err
		}
		if want == nil {
			return r, fmt.Errorf("%s: null is not a value to compare with; use required", vpFieldEquals)
		}
		r.checks = append(r.checks, vpCheck{
			name: vpFieldEquals + " " + vpShow(want),
			fn: func(v any) string {
				if vpEqual(want, v) {
					return ""
				}
				return "got " + vpShow(v)
			},
		})
	}
	if rc.Contains(vpFieldOneOf) {
		oneOf, err := rc.FieldAny(vpFieldOneOf)
		if err != nil {
			return r, err
		}
		options, ok := oneOf.([]any)
		if !ok {
			return r, fmt.Errorf("%s must be a list", vpFieldOneOf)
		}
		// benthos fills an absent list field with [], so an empty list
		// means the check is not asked for.
		if len(options) > 0 {
			r.checks = append(r.checks, vpCheck{
				name: vpFieldOneOf + " " + vpShow(options),
				fn: func(v any) string {
					for _, o := range options {
						if vpEqual(o, v) {
							return ""
						}
					}
					return "got " + vpShow(v)
				},
			})
		}
	}
	ts, err := rc.FieldBool(vpFieldTimestamp)
	if err != nil {
		return r, err
	}
	if ts {
		r.checks = append(r.checks, vpCheck{name: vpFieldTimestamp, fn: func(v any) string {
			s, ok := v.(string)
			if !ok {
				return "got " + vpShow(v) + " (not a string)"
			}
			if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
				return "got " + vpShow(v) + " (not RFC 3339)"
			}
			return ""
		}})
	}
	if rc.Contains(vpFieldType) {
		typ, err := rc.FieldString(vpFieldType)
		if err != nil {
			return r, err
		}
		if !vpKnownType(typ) {
			return r, fmt.Errorf("type %q is not one of %s", typ, strings.Join(vpTypes, ", "))
		}
		r.checks = append(r.checks, vpCheck{name: vpFieldType + " " + typ, fn: func(v any) string {
			if got := vpTypeOf(v); got != typ && (typ != "number" || got != "integer") {
				return "got " + vpShow(v) + " (" + got + ")"
			}
			return ""
		}})
	}

	var minV, maxV *float64
	for _, b := range []struct {
		name string
		dst  **float64
		cmp  func(x, lim float64) bool
	}{
		{vpFieldMin, &minV, func(x, lim float64) bool { return x >= lim }},
		{vpFieldMax, &maxV, func(x, lim float64) bool { return x <= lim }},
	} {
		if !rc.Contains(b.name) {
			continue
		}
		lim, err := rc.FieldFloat(b.name)
		if err != nil {
			return r, err
		}
		*b.dst = &lim
		r.checks = append(r.checks, vpCheck{name: b.name + " " + vpShow(lim), fn: func(v any) string {
			n, ok := vpNumber(v)
			if !ok {
				if s, isStr := v.(string); isStr {
					n, ok = vpParseNumber(s)
				}
			}
			if !ok {
				return "got " + vpShow(v) + " (not a number)"
			}
			if !b.cmp(n.f, lim) {
				return "got " + vpShow(v)
			}
			return ""
		}})
	}
	if minV != nil && maxV != nil && *minV > *maxV {
		return r, fmt.Errorf("min %v is greater than max %v", *minV, *maxV)
	}

	var minL, maxL *int
	for _, b := range []struct {
		name string
		dst  **int
		cmp  func(n, lim int) bool
	}{
		{vpFieldMinLength, &minL, func(n, lim int) bool { return n >= lim }},
		{vpFieldMaxLength, &maxL, func(n, lim int) bool { return n <= lim }},
	} {
		if !rc.Contains(b.name) {
			continue
		}
		lim, err := rc.FieldInt(b.name)
		if err != nil {
			return r, err
		}
		if lim < 0 {
			return r, fmt.Errorf("%s must not be negative, got %d", b.name, lim)
		}
		*b.dst = &lim
		r.checks = append(r.checks, vpCheck{name: b.name + " " + strconv.Itoa(lim), fn: func(v any) string {
			var n int
			switch t := v.(type) {
			case string:
				n = utf8.RuneCountInString(t)
			case []any:
				n = len(t)
			default:
				return "got " + vpShow(v) + " (not a string or array)"
			}
			if !b.cmp(n, lim) {
				return fmt.Sprintf("got %s (length %d)", vpShow(v), n)
			}
			return ""
		}})
	}
	if minL != nil && maxL != nil && *minL > *maxL {
		return r, fmt.Errorf("min_length %d is greater than max_length %d", *minL, *maxL)
	}

	if rc.Contains(vpFieldPattern) {
		pat, err := rc.FieldString(vpFieldPattern)
		if err != nil {
			return r, err
		}
		re, err := regexp.Compile(pat)
		if err != nil {
			return r, fmt.Errorf("compiling pattern %q: %w", pat, err)
		}
		r.checks = append(r.checks, vpCheck{name: vpFieldPattern + " " + pat, fn: func(v any) string {
			s, ok := v.(string)
			if !ok {
				n, isNum := vpNumber(v)
				if !isNum {
					return "got " + vpShow(v) + " (not a string)"
				}
				s = n.text
			}
			if !re.MatchString(s) {
				return "got " + vpShow(v)
			}
			return ""
		}})
	}
	notBlank, err := rc.FieldBool(vpFieldNotBlank)
	if err != nil {
		return r, err
	}
	if notBlank {
		r.checks = append(r.checks, vpCheck{name: vpFieldNotBlank, fn: func(v any) string {
			if s, ok := v.(string); ok && strings.TrimSpace(s) == "" {
				return "got " + vpShow(v)
			}
			return ""
		}})
	}

	if !r.required && len(r.checks) == 0 {
		return r, fmt.Errorf("rule for field %q has no check", r.field)
	}
	return r, nil
}

// validateProc is the processor.
type validateProc struct {
	rules []vpRule
}

// Process checks one message against every rule.
func (p *validateProc) Process(_ context.Context, msg *service.Message) (service.MessageBatch, error) {
	violations := p.check(msg)
	if len(violations) == 0 {
		msg.MetaDelete(ValidateMetaErrors)
		return service.MessageBatch{msg}, nil
	}
	joined := strings.Join(violations, "; ")
	msg.MetaSetMut(ValidateMetaErrors, joined)
	msg.SetError(errors.New("validation failed: " + joined))
	return service.MessageBatch{msg}, nil
}

// check returns every violation of msg, in rule order.
func (p *validateProc) check(msg *service.Message) []string {
	doc, err := msg.AsStructured()
	if err != nil {
		return []string{"message is not JSON: " + err.Error()}
	}
	var out []string
	for _, r := range p.rules {
		v, found := vpLookup(doc, r.path)
		if !found || v == nil {
			if r.required {
				what := "missing"
				if found {
					what = "got null"
				}
				out = append(out, r.field+": "+vpFieldRequired+": "+what)
			}
			continue
		}
		for _, c := range r.checks {
			if problem := c.fn(v); problem != "" {
				out = append(out, r.field+": "+c.name+": "+problem)
			}
		}
	}
	return out
}

// vpLookup follows a dotted path; numeric segments index arrays.
func vpLookup(doc any, path []string) (any, bool) {
	cur := doc
	for _, seg := range path {
		switch t := cur.(type) {
		case map[string]any:
			v, ok := t[seg]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(t) {
				return nil, false
			}
			cur = t[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// vpNum is a JSON number: its value, whether it is integral (and then exact
// in i), and its shortest decimal text.
type vpNum struct {
	f     float64
	i     int64
	isInt bool
	text  string
}

// vpNumber reads the number types a structured message or a config can hold.
func vpNumber(v any) (vpNum, bool) {
	switch t := v.(type) {
	case json.Number:
		return vpParseNumber(t.String())
	case int:
		return vpNumFromInt(int64(t)), true
	case int64:
		return vpNumFromInt(t), true
	case int32:
		return vpNumFromInt(int64(t)), true
	case uint64:
		if t > math.MaxInt64 {
			f := float64(t)
			return vpNum{f: f, text: strconv.FormatUint(t, 10)}, true
		}
		return vpNumFromInt(int64(t)), true
	case float64:
		return vpNumFromFloat(t), true
	case float32:
		return vpNumFromFloat(float64(t)), true
	}
	return vpNum{}, false
}

func vpNumFromInt(i int64) vpNum {
	return vpNum{f: float64(i), i: i, isInt: true, text: strconv.FormatInt(i, 10)}
}

func vpNumFromFloat(f float64) vpNum {
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return vpNumFromInt(int64(f))
	}
	return vpNum{f: f, text: strconv.FormatFloat(f, 'f', -1, 64)}
}

// vpParseNumber reads a decimal number; exact for integers beyond 2^53.
func vpParseNumber(s string) (vpNum, bool) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return vpNumFromInt(i), true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return vpNum{}, false
	}
	return vpNumFromFloat(f), true
}

func (a vpNum) equal(b vpNum) bool {
	if a.isInt && b.isInt {
		return a.i == b.i
	}
	return a.f == b.f
}

// vpEqual compares a configured value with a message value (see the spec
// description for the rules).
func vpEqual(want, got any) bool {
	wn, wIsNum := vpNumber(want)
	gn, gIsNum := vpNumber(got)
	switch {
	case wIsNum && gIsNum:
		return wn.equal(gn)
	case wIsNum:
		s, ok := got.(string)
		return ok && s == wn.text
	case gIsNum:
		s, ok := want.(string)
		return ok && s == gn.text
	}
	switch w := want.(type) {
	case string:
		g, ok := got.(string)
		return ok && g == w
	case bool:
		g, ok := got.(bool)
		return ok && g == w
	}
	wb, err1 := json.Marshal(want)
	gb, err2 := json.Marshal(got)
	return err1 == nil && err2 == nil && string(wb) == string(gb)
}

func vpKnownType(t string) bool {
	for _, k := range vpTypes {
		if k == t {
			return true
		}
	}
	return false
}

func vpTypeOf(v any) string {
	if n, ok := vpNumber(v); ok {
		if n.isInt {
			return "integer"
		}
		return "number"
	}
	switch v.(type) {
	case string:
		return "string"
	case bool:
		return "boolean"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// vpShow renders a value for an error message: JSON, shortened.
func vpShow(v any) string {
	b, err := json.Marshal(v)
	s := string(b)
	if err != nil {
		s = fmt.Sprint(v)
	}
	const maxLen = 100
	if utf8.RuneCountInString(s) > maxLen {
		s = string([]rune(s)[:maxLen]) + "…"
	}
	return s
}

// Close releases nothing: the processor holds no resources.
func (p *validateProc) Close(context.Context) error { return nil }
