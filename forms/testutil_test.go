package forms

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/claimx/claimx-connect/claimxsim"
)

// repoFile is a path from the repository root.
func repoFile(t *testing.T, rel string) string {
	t.Helper()
	_, here, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test file")
	}
	return filepath.Join(filepath.Dir(here), "..", rel)
}

const mappingPath = "pipelines/forms/itel_cabinet_form.yaml"

func loadITel(t *testing.T) *Mapping {
	t.Helper()
	m, err := LoadMapping(repoFile(t, mappingPath))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// simAssignments fetches every seeded assignment body of a simulator as the
// API serves it (full=true), decoded with or without UseNumber.
func simAssignments(t *testing.T, seed int64, n int, useNumber bool) []map[string]any {
	t.Helper()
	sim, err := claimxsim.New(claimxsim.Config{Seed: seed, Assignments: n})
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, a := range sim.Assignments() {
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, fmt.Sprintf("/customTasks/assignment/%d?full=true", a.AssignmentID), nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("assignment %d: status %d: %s", a.AssignmentID, rec.Code, rec.Body)
		}
		dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
		if useNumber {
			dec.UseNumber()
		}
		var body map[string]any
		if err := dec.Decode(&body); err != nil {
			t.Fatalf("assignment %d: %v", a.AssignmentID, err)
		}
		out = append(out, body)
	}
	return out
}

// decode parses a JSON document for a test case.
func decode(t *testing.T, doc string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatalf("test document: %v\n%s", err, doc)
	}
	return m
}
