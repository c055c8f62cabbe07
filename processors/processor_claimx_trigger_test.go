package processors

import (
	"context"
	"encoding/json"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// ctpTestConfig: the shipped template, a second one routed by event type and
// a third without task data or log.
const ctpTestConfig = `
triggers:
  - task_id: 32513
    name: iTel Cabinet Repair Form Task
    on_any:
      publish_to_topic: itel.cabinet.task.tracking
      log:
        level: info
        message: "iTel Cabinet task event tracked | event_id={event_id} | task_id={task_id} | assignment_id={assignment_id} | status={task_status}"
  - task_id: 40001
    name: Water Mitigation Checklist
    on_assigned:
      publish_to_topic: water.assigned
      log: { level: DEBUG, message: "{trigger_name}: {task_name} {event_type} at {timestamp} in {project_id}" }
    on_completed:
      publish_to_topic: water.completed
      log: { level: Error, message: "done {assignment_id}, unknown-looking braces { stay } and {}" }
  - task_id: 50001
    name: Bare
    include_task_data: false
    include_project_data: true
    on_completed: { publish_to_topic: bare.completed }
`

// ctpLogRecorder is a slog handler that keeps what was logged.
type ctpLogRecorder struct {
	mu    sync.Mutex
	lines []string // "LEVEL message"
}

func (r *ctpLogRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *ctpLogRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *ctpLogRecorder) WithGroup(string) slog.Handler            { return r }
func (r *ctpLogRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, rec.Level.String()+" "+rec.Message)
	return nil
}

func (r *ctpLogRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.lines
	r.lines = nil
	return l
}

func newCTP(t *testing.T, yaml string) (*claimxTriggerProc, *ctpLogRecorder, error) {
	t.Helper()
	conf, err := claimxTriggerConfigSpec().ParseYAML(yaml, service.NewEnvironment())
	if err != nil {
		return nil, nil, err
	}
	rec := &ctpLogRecorder{}
	p, err := newClaimxTriggerFromConfig(conf, service.NewLoggerFromSlog(slog.New(rec)))
	return p, rec, err
}

// ctpEvent is an event as read_event leaves it, with the assignment (raw
// JSON, "" for none) under claimx_assignment.
func ctpEvent(eventID, eventType, projectID string, assignment string) string {
	e := `{"event_id":"` + eventID + `","event_type":"` + eventType + `","project_id":"` + projectID +
		`","assignment_id":5423723,"event_time":"2026-01-10T22:30:07.120Z"`
	if assignment != "" {
		e += `,"claimx_assignment":` + assignment
	}
	return e + "}"
}

const ctpAssignment = `{"assignmentId":5423723,"taskId":32513,"taskName":"iTel Cabinet Repair Form","projectId":4895140,
"status":"COMPLETED","assigneeId":88121,"assignorId":10234,"assignor":"adjuster@carrier.example",
"dateAssigned":"2026-01-10T22:15:51.580Z","dateCompleted":"2026-01-10T22:30:06.243Z","cancelledDate":null,
"formId":"69417fcfa5e6b152c25253d0","formResponseId":"6962d069f8c664c2706b0bd0","response":{"groups":[]}}`

func TestClaimxTrigger(t *testing.T) {
	p, rec, err := newCTP(t, ctpTestConfig)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		in      string
		dropped bool
		err     string            // the message's error, exactly
		want    string            // JSON the output must equal (published_at aside); "" to skip
		fields  map[string]any    // fields the output must hold (JSON-decoded values)
		meta    map[string]string // metadata the output must hold
		logged  []string          // "LEVEL line", in order
	}{
		{
			name: "the shipped template: the message of DOMAIN.md §3, its topic and its line",
			in:   ctpEvent("evt_7f3a9c21b4d2", "CUSTOM_TASK_COMPLETED", "4895140", ctpAssignment),
			want: `{"trigger_name":"iTel Cabinet Repair Form Task","event_id":"evt_7f3a9c21b4d2","event_type":"CUSTOM_TASK_COMPLETED",
"project_id":"4895140","task_id":32513,"assignment_id":5423723,"task_name":"iTel Cabinet Repair Form","task_status":"COMPLETED",
"timestamp":"2026-01-10T22:30:07.120Z",
"task":{"assignment_id":5423723,"task_id":32513,"status":"COMPLETED","assignee_id":88121,"assignor_id":10234,
"assignor_email":"adjuster@carrier.example","date_assigned":"2026-01-10T22:15:51.580Z","date_completed":"2026-01-10T22:30:06.243Z",
"cancelled_date":null,"form_id":"69417fcfa5e6b152c25253d0","form_response_id":"6962d069f8c664c2706b0bd0"},"project":null}`,
			meta: map[string]string{
				TriggerMetaPublishTopic:   "itel.cabinet.task.tracking",
				TriggerMetaIncludeProject: "false",
				TriggerMetaLogMessage:     "iTel Cabinet task event tracked | event_id=evt_7f3a9c21b4d2 | task_id=32513 | assignment_id=5423723 | status=COMPLETED",
			},
			logged: []string{"INFO iTel Cabinet task event tracked | event_id=evt_7f3a9c21b4d2 | task_id=32513 | assignment_id=5423723 | status=COMPLETED"},
		},
		{
			name:   "on_any fires for any task event type",
			in:     ctpEvent("e1", "CUSTOM_TASK_SOMETHING", "1", `{"taskId":32513,"status":"assigned"}`),
			fields: map[string]any{"event_type": "CUSTOM_TASK_SOMETHING", "task_status": "ASSIGNED", "task_name": nil},
			meta:   map[string]string{TriggerMetaPublishTopic: "itel.cabinet.task.tracking"},
			logged: []string{"INFO iTel Cabinet task event tracked | event_id=e1 | task_id=32513 | assignment_id=5423723 | status=ASSIGNED"},
		},
		{
			name:   "template and name from customTask; taskId as a decimal string",
			in:     ctpEvent("e2", "CUSTOM_TASK_ASSIGNED", "1", `{"customTask":{"taskId":"32513","name":"From the template"}}`),
			fields: map[string]any{"task_id": 32513.0, "task_name": "From the template", "task_status": ""},
			logged: []string{"INFO iTel Cabinet task event tracked | event_id=e2 | task_id=32513 | assignment_id=5423723 | status="},
		},
		{
			name:    "taskId wins over customTask.taskId",
			in:      ctpEvent("e3", "CUSTOM_TASK_ASSIGNED", "1", `{"taskId":11111,"customTask":{"taskId":32513}}`),
			dropped: true,
		},
		{
			name:    "a taskId with a fraction is no template",
			in:      ctpEvent("e4", "CUSTOM_TASK_ASSIGNED", "1", `{"taskId":32513.5}`),
			dropped: true,
		},
		{
			name:    "a template no trigger names is dropped",
			in:      ctpEvent("e5", "CUSTOM_TASK_COMPLETED", "1", `{"taskId":11111}`),
			dropped: true,
		},
		{
			name:    "an assignment that is not an object has no template",
			in:      ctpEvent("e6", "CUSTOM_TASK_COMPLETED", "1", `"surprise"`),
			dropped: true,
		},
		{
			name: "a null assignment is the API's 404",
			in:   ctpEvent("e404", "CUSTOM_TASK_COMPLETED", "1", `null`),
			err:  "event e404: assignment 5423723 is not known to the ClaimX API (404)",
		},
		{
			name: "a missing assignment is treated as null",
			in:   ctpEvent("e404b", "CUSTOM_TASK_COMPLETED", "1", ""),
			err:  "event e404b: assignment 5423723 is not known to the ClaimX API (404)",
		},
		{
			name:   "status: spaces and dashes become underscores, upper case",
			in:     ctpEvent("s1", "CUSTOM_TASK_ASSIGNED", "1", `{"taskId":32513,"status":" in progress "}`),
			fields: map[string]any{"task_status": "IN_PROGRESS", "task": map[string]any{"status": "IN_PROGRESS"}},
		},
		{
			name:   "status: a dash",
			in:     ctpEvent("s2", "CUSTOM_TASK_ASSIGNED", "1", `{"taskId":32513,"status":"In-Progress"}`),
			fields: map[string]any{"task_status": "IN_PROGRESS"},
		},
		{
			name:   "status: a cancelled assignment is CANCELLED",
			in:     ctpEvent("s3", "CUSTOM_TASK_ASSIGNED", "1", `{"taskId":32513,"status":"ASSIGNED","cancelledDate":"2026-01-10T23:00:00Z"}`),
			fields: map[string]any{"task_status": "CANCELLED", "task": map[string]any{"status": "CANCELLED", "cancelled_date": "2026-01-10T23:00:00Z"}},
		},
		{
			name:   "an event without a project id takes the assignment's",
			in:     ctpEvent("p1", "CUSTOM_TASK_ASSIGNED", "", `{"taskId":32513,"projectId":4895140}`),
			fields: map[string]any{"project_id": "4895140"},
		},
		{
			name:   "task.assignment_id falls back to the event's",
			in:     ctpEvent("p2", "CUSTOM_TASK_ASSIGNED", "1", `{"taskId":32513}`),
			fields: map[string]any{"task": map[string]any{"assignment_id": 5423723.0, "assignee_id": nil}},
		},
		{
			name:   "on_assigned: its topic, every placeholder kind, DEBUG",
			in:     ctpEvent("w1", "CUSTOM_TASK_ASSIGNED", "", `{"taskId":40001,"taskName":"Checklist","projectId":77}`),
			fields: map[string]any{"trigger_name": "Water Mitigation Checklist", "task_id": 40001.0, "project_id": "77"},
			meta:   map[string]string{TriggerMetaPublishTopic: "water.assigned", TriggerMetaIncludeProject: "false"},
			logged: []string{"DEBUG Water Mitigation Checklist: Checklist CUSTOM_TASK_ASSIGNED at 2026-01-10T22:30:07.120Z in 77"},
		},
		{
			name:   "on_completed: the other topic, ERROR; text that is no placeholder stays",
			in:     ctpEvent("w2", "CUSTOM_TASK_COMPLETED", "1", `{"taskId":40001}`),
			meta:   map[string]string{TriggerMetaPublishTopic: "water.completed"},
			logged: []string{"ERROR done 5423723, unknown-looking braces { stay } and {}"},
		},
		{
			name:    "no on_any: another event type does not fire",
			in:      ctpEvent("w3", "CUSTOM_TASK_UPDATED", "1", `{"taskId":40001}`),
			dropped: true,
		},
		{
			name:   "include_task_data false, include_project_data true, no log",
			in:     ctpEvent("b1", "CUSTOM_TASK_COMPLETED", "1", `{"taskId":50001}`),
			fields: map[string]any{"task": nil, "project": nil, "trigger_name": "Bare"},
			meta:   map[string]string{TriggerMetaPublishTopic: "bare.completed", TriggerMetaIncludeProject: "true", TriggerMetaLogMessage: ""},
		},
		{
			name:    "the block chosen is the event's: none for ASSIGNED",
			in:      ctpEvent("b2", "CUSTOM_TASK_ASSIGNED", "1", `{"taskId":50001}`),
			dropped: true,
		},
		{
			name: "a message that is not JSON fails, it does not stop the stream",
			in:   `not json {`,
			err:  "claimx_trigger: the message is not JSON",
		},
		{
			name: "a message that is not an object fails",
			in:   `[1]`,
			err:  "claimx_trigger: the message is not a JSON object",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec.take()
			before := time.Now().UTC().Truncate(time.Millisecond)
			out, err := p.Process(t.Context(), service.NewMessage([]byte(c.in)))
			if err != nil {
				t.Fatalf("Process returned an error (it must fail the message instead): %v", err)
			}
			logged := rec.take()
			if c.dropped {
				if len(out) != 0 {
					b, _ := out[0].AsBytes()
					t.Fatalf("want dropped, got %s", b)
				}
				if len(logged) != 0 {
					t.Errorf("a dropped event logged %q", logged)
				}
				return
			}
			if len(out) != 1 {
				t.Fatalf("got %d messages, want 1", len(out))
			}
			m := out[0]
			if c.err != "" {
				if m.GetError() == nil || !strings.HasPrefix(m.GetError().Error(), c.err) {
					t.Fatalf("error %v, want %q", m.GetError(), c.err)
				}
				if b, _ := m.AsBytes(); string(b) != c.in {
					t.Errorf("a failed message was changed: %s", b)
				}
				if _, ok := m.MetaGet(TriggerMetaPublishTopic); ok {
					t.Error("a failed message has a publish_topic")
				}
				return
			}
			if m.GetError() != nil {
				t.Fatalf("unexpected error: %v", m.GetError())
			}
			b, err := m.AsBytes()
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("output is not JSON: %v: %s", err, b)
			}
			pub, err := time.Parse("2006-01-02T15:04:05.000Z", got["published_at"].(string))
			if err != nil || pub.Before(before) || pub.After(time.Now().Add(time.Second)) {
				t.Errorf("published_at %v is not now (%v)", got["published_at"], err)
			}
			delete(got, "published_at")
			if c.want != "" {
				var want map[string]any
				if err := json.Unmarshal([]byte(c.want), &want); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("output\n got %s\nwant %s", b, c.want)
				}
			}
			for k, want := range c.fields {
				if wm, ok := want.(map[string]any); ok {
					gm, _ := got[k].(map[string]any)
					for kk, wv := range wm {
						if gv, present := gm[kk]; !present || !reflect.DeepEqual(gv, wv) {
							t.Errorf("%s.%s = %#v, want %#v", k, kk, gv, wv)
						}
					}
					continue
				}
				if gv, present := got[k]; !present || !reflect.DeepEqual(gv, want) {
					t.Errorf("%s = %#v, want %#v", k, gv, want)
				}
			}
			for k, want := range c.meta {
				if gv, _ := m.MetaGet(k); gv != want {
					t.Errorf("metadata %s = %q, want %q", k, gv, want)
				}
			}
			if c.logged != nil && !reflect.DeepEqual(logged, c.logged) {
				t.Errorf("logged %q, want %q", logged, c.logged)
			}
		})
	}
}

// ctpBadConfigs are configs lint and the constructor both refuse, with the
// words both use.
var ctpBadConfigs = []struct {
	name, yaml, want string
}{
	{"no triggers", `triggers: []`, "triggers is empty: name at least one task template"},
	{"a bad level", `
triggers:
  - { task_id: 1, name: a, on_any: { publish_to_topic: t, log: { level: loud, message: hi } } }`,
		`triggers[0] (task_id 1) on_any: log level "loud" is not one of debug, info, warn, error`},
	{"an unknown placeholder", `
triggers:
  - { task_id: 1, name: a, on_completed: { publish_to_topic: t, log: { message: "id={event_id} st={status}" } } }`,
		"triggers[0] (task_id 1) on_completed: log message placeholder {status} names no field of the tracking message (use {event_id}, {event_type}, {task_id}, {assignment_id}, {project_id}, {task_status}, {task_name}, {trigger_name}, {timestamp})"},
	{"a duplicate task_id", `
triggers:
  - { task_id: 32513, name: a, on_any: { publish_to_topic: t } }
  - { task_id: 7, name: b, on_any: { publish_to_topic: t } }
  - { task_id: 32513, name: c, on_assigned: { publish_to_topic: u } }`,
		"triggers[2] (task_id 32513): task_id 32513 is already configured by triggers[0]"},
	{"a template without a block", `
triggers:
  - { task_id: 1, name: a }`,
		"triggers[0] (task_id 1): no on_any, on_assigned or on_completed block, so it never fires"},
	{"an empty topic", `
triggers:
  - { task_id: 1, name: a, on_assigned: { publish_to_topic: " " } }`,
		"triggers[0] (task_id 1) on_assigned: publish_to_topic is missing or empty"},
}

func TestClaimxTriggerConstructorRefuses(t *testing.T) {
	for _, c := range ctpBadConfigs {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := newCTP(t, c.yaml)
			if err == nil || err.Error() != c.want {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
	t.Run("a block without publish_to_topic", func(t *testing.T) {
		_, _, err := newCTP(t, "triggers:\n  - { task_id: 1, name: a, on_any: { log: { message: hi } } }")
		if err == nil || !strings.Contains(err.Error(), "publish_to_topic") {
			t.Fatalf("error %v, want one naming publish_to_topic", err)
		}
	})
}

func TestClaimxTriggerLint(t *testing.T) {
	linter := service.GlobalEnvironment().NewComponentConfigLinter()
	for _, c := range ctpBadConfigs {
		t.Run(c.name, func(t *testing.T) {
			conf := "claimx_trigger:\n" + ctpIndent(c.yaml)

			// The stream builder lints what it is given.
			err := service.NewStreamBuilder().AddProcessorYAML(conf)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("stream builder: %v, want a lint error %q", err, c.want)
			}

			// So does the environment's linter (what `claimx-connect lint` runs).
			lints, err := linter.LintProcessorYAML([]byte(conf))
			if err != nil {
				t.Fatal(err)
			}
			var found []string
			for _, l := range lints {
				found = append(found, l.What)
			}
			if len(found) != 1 || found[0] != c.want {
				t.Errorf("lints %q, want exactly %q", found, c.want)
			}
		})
	}
	t.Run("a block without publish_to_topic", func(t *testing.T) {
		lints, err := linter.LintProcessorYAML([]byte("claimx_trigger:\n  triggers:\n    - { task_id: 1, name: a, on_any: { log: { message: hi } } }\n"))
		if err != nil {
			t.Fatal(err)
		}
		var whats []string
		for _, l := range lints {
			whats = append(whats, l.What)
		}
		if !reflect.DeepEqual(whats, []string{"triggers[0] (task_id 1) on_any: publish_to_topic is missing or empty", "field publish_to_topic is required"}) {
			t.Errorf("lints %q", whats)
		}
	})
	t.Run("the test config is clean", func(t *testing.T) {
		lints, err := linter.LintProcessorYAML([]byte("claimx_trigger:\n" + ctpIndent(ctpTestConfig)))
		if err != nil || len(lints) != 0 {
			t.Fatalf("lints %v, %v", lints, err)
		}
		if err := service.NewStreamBuilder().AddProcessorYAML("claimx_trigger:\n" + ctpIndent(ctpTestConfig)); err != nil {
			t.Fatal(err)
		}
	})
}

func ctpIndent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.Trim(s, "\n"), "\n") {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}
