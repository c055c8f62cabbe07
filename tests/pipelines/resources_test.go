// Package pipelines tests the shared resources of pipelines/resources as the
// streams use them at run time. Lint and the config unit tests do not build a
// resource that a test mocks, so a resource that lints but cannot start (for
// example one written with a YAML merge key, which benthos does not resolve)
// would only fail in production, at its first message.
package pipelines

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"gopkg.in/yaml.v3"

	"github.com/claimx/claimx-connect/claimxsim"

	_ "github.com/claimx/claimx-connect/processors"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
)

const token = "resources-test-token"

// TestClaimXResourcesLookUpTheSimulator runs every processor resource of
// pipelines/resources/claimx.yaml on a message against the simulator and
// checks where and in which form the answer lands.
func TestClaimXResourcesLookUpTheSimulator(t *testing.T) {
	sim, err := claimxsim.New(claimxsim.Config{Seed: 5, Assignments: 20, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	t.Setenv("CLAIMX_API_BASE_URL", sim.URL())
	t.Setenv("CLAIMX_API_TOKEN", token)
	t.Setenv("CLAIMX_API_AUTH_TYPE", "bearer")

	resources, err := os.ReadFile(filepath.Join("..", "..", "pipelines", "resources", "claimx.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Processors []struct {
			Label string `yaml:"label"`
		} `yaml:"processor_resources"`
	}
	if err := yaml.Unmarshal(resources, &doc); err != nil {
		t.Fatal(err)
	}
	a := sim.Assignments()[0]
	input := map[string]any{"assignment_id": a.AssignmentID, "project_id": strconv.FormatInt(a.ProjectID, 10)}

	// What each resource must give; a resource added to the file without a
	// line here fails the test, so that it is checked too.
	want := map[string]func(t *testing.T, out map[string]any){
		"claimx_assignment": func(t *testing.T, out map[string]any) {
			v, ok := out["claimx_assignment"].(map[string]any)
			if !ok || jsonID(v["assignmentId"]) != a.AssignmentID {
				t.Fatalf("claimx_assignment = %.200v, want the assignment %d as an object", out["claimx_assignment"], a.AssignmentID)
			}
		},
		"claimx_assignment_json": func(t *testing.T, out map[string]any) {
			s, ok := out["claimx_task_full"].(string)
			var v map[string]any
			if !ok || json.Unmarshal([]byte(s), &v) != nil || jsonID(v["assignmentId"]) != a.AssignmentID {
				t.Fatalf("claimx_task_full = %.200v, want the assignment %d as JSON text", out["claimx_task_full"], a.AssignmentID)
			}
		},
		"claimx_project": func(t *testing.T, out map[string]any) {
			if _, ok := out["claimx_project"].(map[string]any); !ok {
				t.Fatalf("claimx_project = %.200v, want the project %d as an object", out["claimx_project"], a.ProjectID)
			}
		},
	}
	if len(doc.Processors) == 0 {
		t.Fatal("no processor_resources in claimx.yaml")
	}
	for _, r := range doc.Processors {
		t.Run(r.Label, func(t *testing.T) {
			check, ok := want[r.Label]
			if !ok {
				t.Fatalf("resource %s has no expectation in this test", r.Label)
			}
			check(t, runResource(t, string(resources), r.Label, input))
		})
	}
}

// runResource sends one message through `resource: label` and returns it.
func runResource(t *testing.T, resources, label string, in map[string]any) map[string]any {
	t.Helper()
	b := service.NewStreamBuilder()
	if err := b.SetLoggerYAML("level: warn"); err != nil {
		t.Fatal(err)
	}
	if err := b.AddResourcesYAML(resources); err != nil {
		t.Fatalf("adding claimx.yaml: %v", err)
	}
	if err := b.AddProcessorYAML("resource: " + label); err != nil {
		t.Fatal(err)
	}
	send, err := b.AddProducerFunc()
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan *service.Message, 1)
	if err := b.AddConsumerFunc(func(_ context.Context, m *service.Message) error {
		out <- m.Copy()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	stream, err := b.Build()
	if err != nil {
		t.Fatalf("building a stream on resource %s: %v", label, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- stream.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	msg := service.NewMessage(nil)
	msg.SetStructured(in)
	if err := send(ctx, msg); err != nil {
		t.Fatalf("resource %s: %v", label, err)
	}
	select {
	case m := <-out:
		if err := m.GetError(); err != nil {
			t.Fatalf("resource %s failed the message: %v", label, err)
		}
		v, err := m.AsStructured()
		if err != nil {
			t.Fatal(err)
		}
		return v.(map[string]any)
	case <-ctx.Done():
		t.Fatalf("resource %s: no message out", label)
	}
	return nil
}

func jsonID(v any) int64 {
	switch x := v.(type) {
	case json.Number:
		n, _ := x.Int64()
		return n
	case float64:
		return int64(x)
	case int64:
		return x
	}
	return -1
}
