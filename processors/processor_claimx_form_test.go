package processors

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/claimx/claimx-connect/claimxsim"
)

const itelFormMapping = "../pipelines/forms/itel_cabinet_form.yaml"

func newClaimxForm(t *testing.T, conf string) (*claimxFormProc, error) {
	t.Helper()
	pc, err := claimxFormConfigSpec().ParseYAML(conf, service.NewEnvironment())
	if err != nil {
		return nil, err
	}
	return newClaimxFormFromConfig(pc)
}

// simAssignmentJSON returns the body the simulator serves for the first
// seeded assignment with the given template and status.
func simAssignmentJSON(t *testing.T, sim *claimxsim.Server, taskID int, status string) string {
	t.Helper()
	for _, a := range sim.Assignments() {
		if a.TaskID != taskID || a.Status != status {
			continue
		}
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, fmt.Sprintf("/customTasks/assignment/%d?full=true", a.AssignmentID), nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("assignment %d: %d %s", a.AssignmentID, rec.Code, rec.Body)
		}
		return rec.Body.String()
	}
	t.Fatalf("the simulator has no assignment of template %d with status %s", taskID, status)
	return ""
}

func TestClaimxFormProcessorBatch(t *testing.T) {
	sim, err := claimxsim.New(claimxsim.Config{Seed: 3, Assignments: 60})
	if err != nil {
		t.Fatal(err)
	}
	completed := simAssignmentJSON(t, sim, claimxsim.ITelTemplateID, claimxsim.StatusCompleted)
	assigned := simAssignmentJSON(t, sim, claimxsim.ITelTemplateID, claimxsim.StatusAssigned)
	// The same form with text in a number field.
	var doc map[string]any
	if err := json.Unmarshal([]byte(completed), &doc); err != nil {
		t.Fatal(err)
	}
	q := doc["response"].(map[string]any)["groups"].([]any)[0].(map[string]any)["questionAndAnswers"].([]any)[1].(map[string]any)
	q["responseAnswerExport"] = map[string]any{"type": "text", "text": "about ten"}
	badAnswer, _ := json.Marshal(doc)
	wrapped, _ := json.Marshal(map[string]any{"event_id": "e1", "claimx_task_full": completed})

	cases := []struct {
		name, source, doc string
		wantErr           []string // "" parts: the message must pass
	}{
		{"completed form", "", completed, nil},
		{"completed form as JSON text under a path", "claimx_task_full", string(wrapped), nil},
		{"not completed", "", assigned, []string{"claimx_form: assignment", "is not completed: its response is null"}},
		{"text in a number field", "", string(badAnswer), []string{`question "Lower cabinets linear feet"`, `group "Lower Cabinets"`, `"about ten" is not a number`}},
		{"not JSON", "", "not json", []string{"message is not JSON"}},
		{"nothing at the source", "claimx_task_full", `{"event_id":"e2"}`, []string{`source "claimx_task_full": no assignment there`}},
		{"source is not an object", "", `[1,2]`, []string{"the assignment is [1,2], not an object"}},
	}
	procs := map[string]*claimxFormProc{}
	for _, src := range []string{"", "claimx_task_full"} {
		p, err := newClaimxForm(t, fmt.Sprintf("mapping_file: %s\nsource: %q\n", itelFormMapping, src))
		if err != nil {
			t.Fatal(err)
		}
		procs[src] = p
	}
	// One batch through each processor: a failing message must leave the
	// others of its batch unaffected.
	for _, src := range []string{"", "claimx_task_full"} {
		var batch service.MessageBatch
		var idx []int
		for i, c := range cases {
			if c.source == src {
				batch = append(batch, service.NewMessage([]byte(c.doc)))
				idx = append(idx, i)
			}
		}
		for bi, msg := range batch {
			c := cases[idx[bi]]
			t.Run(c.name, func(t *testing.T) {
				out, err := procs[src].Process(context.Background(), msg)
				if err != nil || len(out) != 1 {
					t.Fatalf("Process returned %v, %d messages", err, len(out))
				}
				got := out[0]
				if c.wantErr != nil {
					if got.GetError() == nil {
						t.Fatal("want the message flagged, it is not")
					}
					for _, w := range c.wantErr {
						if !strings.Contains(got.GetError().Error(), w) {
							t.Errorf("error lacks %q: %v", w, got.GetError())
						}
					}
					if b, _ := got.AsBytes(); string(b) != c.doc {
						t.Errorf("a flagged message must keep its content, got %s", b)
					}
					return
				}
				if got.GetError() != nil {
					t.Fatal(got.GetError())
				}
				v, err := got.AsStructured()
				if err != nil {
					t.Fatal(err)
				}
				row := v.(map[string]any)
				for _, col := range procs[src].mapping.Columns() {
					if _, ok := row[col.Name]; !ok {
						t.Errorf("row lacks column %s", col.Name)
					}
				}
				if len(row) != len(procs[src].mapping.Columns()) {
					t.Errorf("row has %d keys, the table %d columns", len(row), len(procs[src].mapping.Columns()))
				}
				if other := row["other_answers"].(map[string]any); len(other) != 0 {
					t.Errorf("other_answers: %v", other)
				}
				if _, ok := row["lower_cabinets_linear_feet"].(float64); !ok {
					t.Errorf("lower_cabinets_linear_feet = %#v", row["lower_cabinets_linear_feet"])
				}
				// The row serialises as the JSON the delta_lake processor reads.
				b, err := got.AsBytes()
				if err != nil || !json.Valid(b) {
					t.Errorf("row bytes: %v %s", err, b)
				}
			})
		}
	}
}

func TestClaimxFormConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("form: f\nquestions:\n  - { question: a, column: a, type: text }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, conf, want string }{
		{"missing file", "mapping_file: " + filepath.Join(dir, "none.yaml"), "none.yaml"},
		{"invalid mapping", "mapping_file: " + bad, `questions[0] (question "a", column "a"): type "text" is not one of`},
		{"empty path segment", "mapping_file: " + itelFormMapping + "\nsource: a..b", `source "a..b" has an empty path segment`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := newClaimxForm(t, c.conf)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want an error with %q, got %v", c.want, err)
			}
		})
	}
}

// Through benthos, as a pipeline runs it: one batch, one bad message in the
// middle, and only that one is flagged.
func TestClaimxFormProcessorOwnedBatch(t *testing.T) {
	sim, err := claimxsim.New(claimxsim.Config{Seed: 5, Assignments: 60})
	if err != nil {
		t.Fatal(err)
	}
	completed := simAssignmentJSON(t, sim, claimxsim.ITelTemplateID, claimxsim.StatusCompleted)
	spec := service.NewConfigSpec().Field(service.NewProcessorField("p"))
	pc, err := spec.ParseYAML("p:\n  claimx_form:\n    mapping_file: "+itelFormMapping+"\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	proc, err := pc.FieldProcessor("p")
	if err != nil {
		t.Fatal(err)
	}
	defer proc.Close(context.Background())
	in := service.MessageBatch{
		service.NewMessage([]byte(completed)),
		service.NewMessage([]byte(`{"assignmentId":1,"taskId":32513,"status":"ASSIGNED","response":null}`)),
		service.NewMessage([]byte(completed)),
	}
	outs, err := proc.ProcessBatch(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 1 || len(outs[0]) != 3 {
		t.Fatalf("want one batch of 3, got %d batches", len(outs))
	}
	for i, msg := range outs[0] {
		flagged := msg.GetError() != nil
		if flagged != (i == 1) {
			t.Errorf("message %d: flagged %v (%v)", i, flagged, msg.GetError())
		}
		if i != 1 {
			v, err := msg.AsStructured()
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := v.(map[string]any)["assignment_id"].(int64); !ok {
				t.Errorf("message %d: assignment_id %#v", i, v.(map[string]any)["assignment_id"])
			}
		}
	}
	if !strings.Contains(outs[0][1].GetError().Error(), "assignment 1 is not completed") {
		t.Errorf("error: %v", outs[0][1].GetError())
	}
}

// In a real stream (which also lints the YAML against the spec), with
// the example's source: the worker's tracking row holding the assignment
// as JSON text.
func TestClaimxFormInAStream(t *testing.T) {
	sim, err := claimxsim.New(claimxsim.Config{Seed: 9, Assignments: 60})
	if err != nil {
		t.Fatal(err)
	}
	completed := simAssignmentJSON(t, sim, claimxsim.ITelTemplateID, claimxsim.StatusCompleted)
	good, _ := json.Marshal(map[string]any{"event_id": "e1", "claimx_task_full": completed})
	p := startPipe(t, "claimx_form:\n  mapping_file: "+itelFormMapping+"\n  source: claimx_task_full\n", "")
	out := p.process(string(good), `{"event_id":"e2","claimx_task_full":null}`)
	if len(out) != 2 {
		t.Fatalf("want 2 messages, got %d", len(out))
	}
	if err := out[0].GetError(); err != nil {
		t.Fatalf("good message failed: %v", err)
	}
	b, _ := out[0].AsBytes()
	var row map[string]any
	if err := json.Unmarshal(b, &row); err != nil {
		t.Fatal(err)
	}
	if row["form_response_id"] == nil || row["date_completed"] == nil {
		t.Errorf("row lacks its keys: %s", b)
	}
	if err := out[1].GetError(); err == nil || !strings.Contains(err.Error(), `source "claimx_task_full": no assignment there`) {
		t.Errorf("second message: %v", err)
	}
}
