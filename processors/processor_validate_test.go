package processors

import (
	"context"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
)

func newValidate(t *testing.T, rulesYAML string) (*validateProc, error) {
	t.Helper()
	conf, err := validateConfigSpec().ParseYAML("rules:\n"+rulesYAML, service.NewEnvironment())
	if err != nil {
		return nil, err
	}
	return newValidateFromConfig(conf)
}

// runValidate returns the error text of one message ("" when valid) and its
// validation_errors metadata.
func runValidate(t *testing.T, p *validateProc, doc string) (string, string) {
	t.Helper()
	out, err := p.Process(context.Background(), service.NewMessage([]byte(doc)))
	if err != nil || len(out) != 1 {
		t.Fatalf("Process returned %v, %d messages", err, len(out))
	}
	if b, _ := out[0].AsBytes(); string(b) != doc {
		t.Fatalf("the message was changed: %s", b)
	}
	m, _ := out[0].MetaGet(ValidateMetaErrors)
	if e := out[0].GetError(); e != nil {
		return e.Error(), m
	}
	return "", m
}

func TestValidateRules(t *testing.T) {
	cases := []struct {
		name, rule, doc, want string
	}{
		{"required present", "{ field: event_id, required: true }", `{"event_id":"e1"}`, ""},
		{"required missing", "{ field: event_id, required: true }", `{}`, "event_id: required: missing"},
		{"required null", "{ field: event_id, required: true }", `{"event_id":null}`, "event_id: required: got null"},
		{"required empty string is present", "{ field: event_id, required: true }", `{"event_id":""}`, ""},

		{"equals number", "{ field: task_id, equals: 32513 }", `{"task_id":32513}`, ""},
		{"equals number as float", "{ field: task_id, equals: 32513 }", `{"task_id":32513.0}`, ""},
		{"equals number as exact string", "{ field: task_id, equals: 32513 }", `{"task_id":"32513"}`, ""},
		{"equals number, padded string", "{ field: task_id, equals: 32513 }", `{"task_id":" 32513"}`, `task_id: equals 32513: got " 32513"`},
		{"equals number, leading zero", "{ field: task_id, equals: 32513 }", `{"task_id":"032513"}`, `task_id: equals 32513: got "032513"`},
		{"equals number, decimal string", "{ field: task_id, equals: 32513 }", `{"task_id":"32513.0"}`, `task_id: equals 32513: got "32513.0"`},
		{"equals number, other number", "{ field: task_id, equals: 32513 }", `{"task_id":99}`, "task_id: equals 32513: got 99"},
		{"equals string config, number value", `{ field: task_id, equals: "32513" }`, `{"task_id":32513}`, ""},
		{"equals big integers exactly", "{ field: id, equals: 9007199254740993 }", `{"id":9007199254740992}`, "id: equals 9007199254740993: got 9007199254740992"},
		{"equals string", "{ field: source, equals: claimx_itel_plugin }", `{"source":"claimx_itel_plugin"}`, ""},
		{"equals string, wrong case", "{ field: source, equals: claimx_itel_plugin }", `{"source":"CLAIMX_ITEL_PLUGIN"}`, `source: equals "claimx_itel_plugin": got "CLAIMX_ITEL_PLUGIN"`},
		{"equals bool", "{ field: ok, equals: true }", `{"ok":true}`, ""},
		{"equals bool, string value", "{ field: ok, equals: true }", `{"ok":"true"}`, `ok: equals true: got "true"`},
		{"equals object", "{ field: o, equals: { a: 1 } }", `{"o":{"a":1}}`, ""},
		{"equals skips missing", "{ field: task_id, equals: 32513 }", `{}`, ""},

		{"one_of hit", "{ field: s, one_of: [ASSIGNED, COMPLETED] }", `{"s":"COMPLETED"}`, ""},
		{"one_of miss", "{ field: s, one_of: [ASSIGNED, COMPLETED] }", `{"s":"DONE"}`, `s: one_of ["ASSIGNED","COMPLETED"]: got "DONE"`},
		{"one_of numbers", "{ field: n, one_of: [1, 2] }", `{"n":"2"}`, ""},

		{"timestamp Z", "{ field: ts, timestamp: true }", `{"ts":"2026-01-10T22:30:07.120Z"}`, ""},
		{"timestamp offset", "{ field: ts, timestamp: true }", `{"ts":"2026-01-10T17:30:07-05:00"}`, ""},
		{"timestamp without zone", "{ field: ts, timestamp: true }", `{"ts":"2026-01-10T22:30:07"}`, `ts: timestamp: got "2026-01-10T22:30:07" (not RFC 3339)`},
		{"timestamp garbage", "{ field: ts, timestamp: true }", `{"ts":"yesterday"}`, `ts: timestamp: got "yesterday" (not RFC 3339)`},
		{"timestamp number", "{ field: ts, timestamp: true }", `{"ts":1736548207}`, "ts: timestamp: got 1736548207 (not a string)"},

		{"type string", "{ field: v, type: string }", `{"v":"x"}`, ""},
		{"type string, got number", "{ field: v, type: string }", `{"v":1}`, "v: type string: got 1 (integer)"},
		{"type integer", "{ field: v, type: integer }", `{"v":5423723}`, ""},
		{"type integer, integral float", "{ field: v, type: integer }", `{"v":5.0}`, ""},
		{"type integer, fraction", "{ field: v, type: integer }", `{"v":5.5}`, "v: type integer: got 5.5 (number)"},
		{"type integer, digit string", "{ field: v, type: integer }", `{"v":"5"}`, `v: type integer: got "5" (string)`},
		{"type number accepts integers", "{ field: v, type: number }", `{"v":5}`, ""},
		{"type boolean", "{ field: v, type: boolean }", `{"v":false}`, ""},
		{"type object", "{ field: v, type: object }", `{"v":[]}`, "v: type object: got [] (array)"},
		{"type array", "{ field: v, type: array }", `{"v":[1]}`, ""},

		{"min ok", "{ field: v, min: 1 }", `{"v":1}`, ""},
		{"min below", "{ field: v, min: 1 }", `{"v":0}`, "v: min 1: got 0"},
		{"min numeric string", "{ field: v, min: 1 }", `{"v":"0"}`, `v: min 1: got "0"`},
		{"min not a number", "{ field: v, min: 1 }", `{"v":"abc"}`, `v: min 1: got "abc" (not a number)`},
		{"max above", "{ field: v, max: 10.5 }", `{"v":11}`, "v: max 10.5: got 11"},
		{"max ok", "{ field: v, max: 10.5 }", `{"v":10.5}`, ""},

		{"min_length ok", "{ field: v, min_length: 2 }", `{"v":"ab"}`, ""},
		{"min_length short", "{ field: v, min_length: 2 }", `{"v":"a"}`, `v: min_length 2: got "a" (length 1)`},
		{"min_length counts characters", "{ field: v, min_length: 2 }", `{"v":"é"}`, `v: min_length 2: got "é" (length 1)`},
		{"max_length long", "{ field: v, max_length: 2 }", `{"v":"abc"}`, `v: max_length 2: got "abc" (length 3)`},
		{"max_length array", "{ field: v, max_length: 2 }", `{"v":[1,2,3]}`, "v: max_length 2: got [1,2,3] (length 3)"},
		{"max_length number", "{ field: v, max_length: 2 }", `{"v":123}`, "v: max_length 2: got 123 (not a string or array)"},

		{"pattern ok", "{ field: project_id, pattern: '^[0-9]+$' }", `{"project_id":"4895140"}`, ""},
		{"pattern miss", "{ field: project_id, pattern: '^[0-9]+$' }", `{"project_id":"48-95"}`, `project_id: pattern ^[0-9]+$: got "48-95"`},
		{"pattern number", "{ field: project_id, pattern: '^[0-9]+$' }", `{"project_id":4895140}`, ""},
		{"pattern bool", "{ field: project_id, pattern: '^[0-9]+$' }", `{"project_id":true}`, "project_id: pattern ^[0-9]+$: got true (not a string)"},

		{"not_blank ok", "{ field: v, not_blank: true }", `{"v":"x"}`, ""},
		{"not_blank empty", "{ field: v, not_blank: true }", `{"v":""}`, `v: not_blank: got ""`},
		{"not_blank spaces", "{ field: v, not_blank: true }", `{"v":" \t"}`, `v: not_blank: got " \t"`},

		{"dotted path", "{ field: task.assignee_id, type: integer }", `{"task":{"assignee_id":"x"}}`, `task.assignee_id: type integer: got "x" (string)`},
		{"array index", "{ field: items.1.id, required: true }", `{"items":[{"id":1},{}]}`, "items.1.id: required: missing"},
		{"path through a scalar", "{ field: a.b, required: true }", `{"a":5}`, "a.b: required: missing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := newValidate(t, "  - "+c.rule+"\n")
			if err != nil {
				t.Fatalf("config: %v", err)
			}
			got, metaErrs := runValidate(t, p, c.doc)
			want := ""
			if c.want != "" {
				want = "validation failed: " + c.want
			}
			if got != want {
				t.Fatalf("error\n got %q\nwant %q", got, want)
			}
			if metaErrs != c.want {
				t.Fatalf("metadata %q, want %q", metaErrs, c.want)
			}
		})
	}
}

func TestValidateReportsEveryViolation(t *testing.T) {
	p, err := newValidate(t, `
  - { field: event_id, required: true }
  - { field: task_id, equals: 32513 }
  - { field: task_status, one_of: [ASSIGNED, IN_PROGRESS, COMPLETED, CANCELLED] }
  - { field: event_timestamp, required: true, timestamp: true }
  - { field: assignment_id, type: integer, min: 1 }
  - { field: project_id, pattern: '^[0-9]+$' }
`)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := runValidate(t, p, `{"event_id":"e1","task_id":99,"task_status":"DONE","event_timestamp":"2026-01-10T22:30:07Z","assignment_id":0,"project_id":"4895140"}`)
	want := `validation failed: task_id: equals 32513: got 99; task_status: one_of ["ASSIGNED","IN_PROGRESS","COMPLETED","CANCELLED"]: got "DONE"; assignment_id: min 1: got 0`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	got, _ = runValidate(t, p, `{"event_id":"e1","task_id":"32513","task_status":"COMPLETED","event_timestamp":"2026-01-10T22:30:07Z","assignment_id":5423723,"project_id":"4895140"}`)
	if got != "" {
		t.Fatalf("valid message failed: %s", got)
	}
	// One rule may break several checks at once.
	p, _ = newValidate(t, "  - { field: v, type: string, min_length: 3, pattern: '^a' }\n")
	got, _ = runValidate(t, p, `{"v":"b"}`)
	if got != `validation failed: v: min_length 3: got "b" (length 1); v: pattern ^a: got "b"` {
		t.Fatalf("got %s", got)
	}
}

func TestValidateNonJSON(t *testing.T) {
	p, err := newValidate(t, "  - { field: event_id, required: true }\n")
	if err != nil {
		t.Fatal(err)
	}
	got, metaErrs := runValidate(t, p, `{"event_id": "e1"`)
	if !strings.HasPrefix(got, "validation failed: message is not JSON") || !strings.HasPrefix(metaErrs, "message is not JSON") {
		t.Fatalf("got %q / %q", got, metaErrs)
	}
}

func TestValidateClearsStaleMetadata(t *testing.T) {
	p, err := newValidate(t, "  - { field: a, required: true }\n")
	if err != nil {
		t.Fatal(err)
	}
	msg := service.NewMessage([]byte(`{"a":1}`))
	msg.MetaSetMut(ValidateMetaErrors, "from an earlier validate")
	out, _ := p.Process(context.Background(), msg)
	if _, ok := out[0].MetaGet(ValidateMetaErrors); ok || out[0].GetError() != nil {
		t.Fatal("a valid message kept stale validation metadata")
	}
}

func TestValidateConfigErrors(t *testing.T) {
	cases := []struct{ name, rules, want string }{
		{"no check", "  - { field: a }\n", `rule for field "a" has no check`},
		{"empty field", "  - { field: '', required: true }\n", "field must not be empty"},
		{"bad pattern", "  - { field: a, pattern: '[' }\n", "compiling pattern"},
		{"min above max", "  - { field: a, min: 5, max: 1 }\n", "min 5 is greater than max 1"},
		{"negative length", "  - { field: a, min_length: -1 }\n", "min_length must not be negative"},
		{"empty one_of is no check", "  - { field: a, one_of: [] }\n", `rule for field "a" has no check`},
		{"null equals", "  - { field: a, equals: null }\n", "equals: null is not a value"},
		{"unknown type", "  - { field: a, type: date }\n", "date"},
		{"which rule", "  - { field: a, required: true }\n  - { field: b }\n", "rules[1]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := newValidate(t, c.rules)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

// TestProcessorsAreRegistered checks what `claimx-connect list processors`
// lists: the plugins registered by this package's init.
func TestProcessorsAreRegistered(t *testing.T) {
	for _, name := range []string{"claimx_connection", "claimx_lookup", "claimx_form", "claimx_media", "itel_submission", "validate"} {
		found := false
		service.GlobalEnvironment().WalkProcessors(func(n string, _ *service.ConfigView) {
			found = found || n == name
		})
		if !found {
			t.Errorf("processor %s is not registered", name)
		}
	}
}

// TestValidateInAStream runs the worker's rules through a real stream, which
// also lints the YAML against the spec.
func TestValidateInAStream(t *testing.T) {
	p := startPipe(t, `
validate:
  rules:
    - { field: event_id, required: true, not_blank: true }
    - { field: task_id, required: true, equals: 32513 }
    - { field: task_status, required: true, one_of: [ASSIGNED, IN_PROGRESS, COMPLETED, CANCELLED] }
    - { field: event_timestamp, required: true, timestamp: true }
`, "")
	out := p.process(
		`{"event_id":"e1","task_id":32513,"task_status":"COMPLETED","event_timestamp":"2026-01-10T22:30:07.120Z"}`,
		`{"event_id":" ","task_id":32514,"task_status":"COMPLETED"}`,
	)
	if len(out) != 2 || out[0].GetError() != nil {
		t.Fatalf("valid message failed: %v", out[0].GetError())
	}
	want := `validation failed: event_id: not_blank: got " "; task_id: equals 32513: got 32514; event_timestamp: required: missing`
	if err := out[1].GetError(); err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}
