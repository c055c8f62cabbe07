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
	"strings"
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
		// The connection is named by the lookups, not run: as a processor
		// it fails the message (runResource checks the error).
		"claimx": nil,
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
			if check == nil {
				m := runResourceMsg(t, string(resources), "resource: "+r.Label, input)
				if err := m.GetError(); err == nil || !strings.Contains(err.Error(), "is a connection, not a processor: name it in claimx_lookup.connection") {
					t.Fatalf("resource %s used as a processor: error %v", r.Label, err)
				}
				return
			}
			check(t, runResource(t, string(resources), r.Label, input))
		})
	}
}

// runResource sends one message through `resource: label` and returns it,
// failing the test if the resource failed it.
func runResource(t *testing.T, resources, label string, in map[string]any) map[string]any {
	t.Helper()
	m := runResourceMsg(t, resources, "resource: "+label, in)
	if err := m.GetError(); err != nil {
		t.Fatalf("resource %s failed the message: %v", label, err)
	}
	v, err := m.AsStructured()
	if err != nil {
		t.Fatal(err)
	}
	return v.(map[string]any)
}

// runResourceMsg sends one message through the processor proc, with the
// resources, and returns it.
func runResourceMsg(t *testing.T, resources, proc string, in map[string]any) *service.Message {
	t.Helper()
	p := startStream(t, resources, proc)
	return p.send(t, in, nil)
}

// stream is a running stream of one processor over the resources.
type stream struct {
	send func(t *testing.T, in map[string]any, meta map[string]string) *service.Message
}

func startStream(t *testing.T, resources, proc string) *stream {
	t.Helper()
	b := service.NewStreamBuilder()
	if err := b.SetLoggerYAML("level: none"); err != nil {
		t.Fatal(err)
	}
	if err := b.AddResourcesYAML(resources); err != nil {
		t.Fatalf("adding claimx.yaml: %v", err)
	}
	if err := b.AddProcessorYAML(proc); err != nil {
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
	st, err := b.Build()
	if err != nil {
		t.Fatalf("building a stream on %s: %v", proc, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return &stream{send: func(t *testing.T, in map[string]any, meta map[string]string) *service.Message {
		t.Helper()
		msg := service.NewMessage(nil)
		msg.SetStructured(in)
		for k, v := range meta {
			msg.MetaSetMut(k, v)
		}
		if err := send(ctx, msg); err != nil {
			t.Fatalf("%s: %v", proc, err)
		}
		select {
		case m := <-out:
			return m
		case <-ctx.Done():
			t.Fatalf("%s: no message out", proc)
		}
		return nil
	}}
}

// startSim starts a simulator and points the resources at it.
func startSim(t *testing.T, cfg claimxsim.Config) *claimxsim.Server {
	t.Helper()
	cfg.Token = token
	sim, err := claimxsim.New(cfg)
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
	return sim
}

func readResources(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "pipelines", "resources", "claimx.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestClaimXLookupsShareOneConnection runs the three lookups of claimx.yaml
// in one stream: they share one client. The cache of one answers the other;
// failures met by one lookup open the circuit for all three.
func TestClaimXLookupsShareOneConnection(t *testing.T) {
	sim := startSim(t, claimxsim.Config{Seed: 5, Assignments: 20})
	t.Setenv("CLAIMX_ON_UNAVAILABLE", "error")
	t.Setenv("CLAIMX_API_MAX_ATTEMPTS", "1")
	t.Setenv("CLAIMX_BREAKER_OPEN_TIMEOUT", "1m")
	s := startStream(t, readResources(t), `
switch:
  - check: '@lookup == "claimx_assignment"'
    processors: [ { resource: claimx_assignment } ]
  - check: '@lookup == "claimx_assignment_json"'
    processors: [ { resource: claimx_assignment_json } ]
  - check: '@lookup == "claimx_project"'
    processors: [ { resource: claimx_project } ]
`)
	as := sim.Assignments()
	in := func(i int) map[string]any {
		return map[string]any{"assignment_id": as[i].AssignmentID, "project_id": strconv.FormatInt(as[i].ProjectID, 10)}
	}
	lookup := func(label string, i int) *service.Message {
		t.Helper()
		return s.send(t, in(i), map[string]string{"lookup": label})
	}

	// One cache: the worker's lookup of an assignment the trigger's lookup
	// fetched costs no request.
	if m := lookup("claimx_assignment", 0); m.GetError() != nil {
		t.Fatal(m.GetError())
	}
	if m := lookup("claimx_assignment_json", 0); m.GetError() != nil || meta(m, "claimx_lookup_cached") != "true" {
		t.Fatalf("claimx_assignment_json after claimx_assignment: %v, cached %q", m.GetError(), meta(m, "claimx_lookup_cached"))
	}
	if n := sim.Stats().Total; n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}

	// One breaker: five failures of claimx_assignment (failure_threshold: 5)
	// open the circuit for the other two.
	if err := sim.SetFaults(claimxsim.Faults{Outage: true}); err != nil {
		t.Fatal(err)
	}
	sim.ResetStats()
	for i := 1; i <= 5; i++ {
		if m := lookup("claimx_assignment", i); meta(m, "claimx_lookup_error") != "transient" {
			t.Fatalf("lookup %d during the outage: %v", i, m.GetError())
		}
	}
	for _, label := range []string{"claimx_assignment_json", "claimx_project"} {
		if m := lookup(label, 6); meta(m, "claimx_lookup_error") != "circuit_open" {
			t.Fatalf("%s after the circuit opened: %v", label, m.GetError())
		}
	}
	if n := sim.Stats().Total; n != 5 {
		t.Fatalf("%d requests reached the API, want 5: the open circuit refuses the other lookups", n)
	}
}

// TestClaimXLookupNamingAMissingConnection: a lookup naming a connection that
// does not exist does not build, and says which.
func TestClaimXLookupNamingAMissingConnection(t *testing.T) {
	startSim(t, claimxsim.Config{Assignments: 5})
	resources := strings.Replace(readResources(t), "connection: claimx\n", "connection: claimx_typo\n", 1)
	b := service.NewStreamBuilder()
	if err := b.SetLoggerYAML("level: none"); err != nil {
		t.Fatal(err)
	}
	if err := b.AddResourcesYAML(resources); err != nil {
		t.Fatal(err)
	}
	// The lookup resource is built when the stream starts, through a
	// claimx_lookup that refers to it; built inline, the lookup fails the
	// start of the stream.
	if err := b.AddProcessorYAML("claimx_lookup: { connection: claimx_typo, path: /a }"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddProducerFunc(); err != nil {
		t.Fatal(err)
	}
	if err := b.AddConsumerFunc(func(context.Context, *service.Message) error { return nil }); err != nil {
		t.Fatal(err)
	}
	st, err := b.Build()
	if err == nil {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		err = st.Run(ctx)
	}
	want := `claimx_lookup: connection "claimx_typo" is not a claimx_connection processor resource`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("starting a stream with a lookup naming claimx_typo: %v, want %q", err, want)
	}

	// As a resource, the lookup is built at its first use (benthos builds
	// resources lazily): the batch is refused with the same words, never
	// acknowledged.
	b = service.NewStreamBuilder()
	if err := b.SetLoggerYAML("level: none"); err != nil {
		t.Fatal(err)
	}
	if err := b.AddResourcesYAML(resources); err != nil {
		t.Fatal(err)
	}
	if err := b.AddProcessorYAML("resource: claimx_assignment"); err != nil {
		t.Fatal(err)
	}
	send, err := b.AddProducerFunc()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.AddConsumerFunc(func(context.Context, *service.Message) error {
		t.Error("a message left the lookup naming a missing connection")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if st, err = b.Build(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
	defer scancel()
	msg := service.NewMessage([]byte(`{"assignment_id": 1}`))
	if err := send(sctx, msg); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("a message through claimx_assignment naming claimx_typo: %v, want %q", err, want)
	}
}

func meta(m *service.Message, key string) string {
	v, _ := m.MetaGet(key)
	return v
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
