package processors

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/claimx/claimx-connect/claimxsim"
)

// firstWith returns a seeded assignment matching pred.
func firstWith(t *testing.T, s *claimxsim.Server, pred func(claimxsim.Assignment) bool) claimxsim.Assignment {
	t.Helper()
	for _, a := range s.Assignments() {
		if pred(a) {
			return a
		}
	}
	t.Fatal("no seeded assignment matches")
	return claimxsim.Assignment{}
}

// decodeNum decodes a JSON object keeping numbers exact, as benthos does.
func decodeNum(t *testing.T, b []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decoding %.200s: %v", b, err)
	}
	return m
}

func anyAssignment(claimxsim.Assignment) bool { return true }

func TestLookupStoresTheAnswer(t *testing.T) {
	sim, hs := newSim(t, claimxsim.Config{Seed: 5})
	a := firstWith(t, sim, func(a claimxsim.Assignment) bool {
		return a.Status == claimxsim.StatusCompleted && a.TaskID == claimxsim.ITelTemplateID
	})
	cases := []struct {
		name  string
		over  map[string]string
		check func(t *testing.T, m *service.Message)
	}{
		{"object at result_field", nil, func(t *testing.T, m *service.Message) {
			v, _ := m.AsStructured()
			full := v.(map[string]any)["claimx_task_full"].(map[string]any)
			if fmt.Sprint(full["assignmentId"]) != strconv.FormatInt(a.AssignmentID, 10) || full["response"] == nil {
				t.Fatalf("unexpected answer %.200v", full)
			}
			if v.(map[string]any)["event_id"] == nil {
				t.Fatal("the rest of the message was lost")
			}
		}},
		{"nested result_field", map[string]string{"result_field": "enrich.claimx.task"}, func(t *testing.T, m *service.Message) {
			v, _ := m.AsStructured()
			task := v.(map[string]any)["enrich"].(map[string]any)["claimx"].(map[string]any)["task"].(map[string]any)
			if fmt.Sprint(task["taskId"]) != "32513" {
				t.Fatalf("unexpected answer %v", task)
			}
		}},
		{"JSON string at result_field", map[string]string{"result_as_string": "true"}, func(t *testing.T, m *service.Message) {
			v, _ := m.AsStructured()
			s, ok := v.(map[string]any)["claimx_task_full"].(string)
			if full := decodeNum(t, []byte(s)); !ok || fmt.Sprint(full["assignmentId"]) != strconv.FormatInt(a.AssignmentID, 10) {
				t.Fatalf("want a JSON string of the assignment, got %.200s", s)
			}
		}},
		{"answer replaces the message", map[string]string{"result_field": ""}, func(t *testing.T, m *service.Message) {
			b, _ := m.AsBytes()
			if full := decodeNum(t, b); fmt.Sprint(full["assignmentId"]) != strconv.FormatInt(a.AssignmentID, 10) || full["event_id"] != nil {
				t.Fatalf("message was not replaced: %.200s", b)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := startLookup(t, hs.URL, c.over, "")
			out := p.process(eventFor(a.AssignmentID))
			if len(out) != 1 || out[0].GetError() != nil {
				t.Fatalf("want one good message, got %d (%v)", len(out), out[0].GetError())
			}
			if meta(out[0], ClaimXLookupMetaStatus) != "200" || meta(out[0], ClaimXLookupMetaAttempts) != "1" {
				t.Fatalf("metadata status %q attempts %q", meta(out[0], ClaimXLookupMetaStatus), meta(out[0], ClaimXLookupMetaAttempts))
			}
			c.check(t, out[0])
		})
	}
}

func TestLookupRetriesTransientFailures(t *testing.T) {
	t.Run("gives up after max_attempts", func(t *testing.T) {
		sim, hs := newSim(t, claimxsim.Config{Faults: claimxsim.Faults{ErrorRate: 1}})
		a := firstWith(t, sim, anyAssignment)
		p := startLookup(t, hs.URL, nil, "")
		out := p.process(eventFor(a.AssignmentID))
		err := out[0].GetError()
		if err == nil || !strings.Contains(err.Error(), "failed after 3 attempts: transient: status 50") {
			t.Fatalf("error %v", err)
		}
		if meta(out[0], ClaimXLookupMetaError) != "transient" || meta(out[0], ClaimXLookupMetaAttempts) != "3" {
			t.Fatalf("metadata error %q attempts %q", meta(out[0], ClaimXLookupMetaError), meta(out[0], ClaimXLookupMetaAttempts))
		}
		if st := meta(out[0], ClaimXLookupMetaStatus); st != "500" && st != "503" {
			t.Fatalf("status metadata %q", st)
		}
		if n := sim.Stats().ByEndpoint["assignment"]; n != 3 {
			t.Fatalf("simulator saw %d requests, want 3", n)
		}
	})
	t.Run("succeeds on the third attempt", func(t *testing.T) {
		sim, _ := newSim(t, claimxsim.Config{})
		var calls atomic.Int32
		flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) <= 2 {
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			sim.ServeHTTP(w, r)
		}))
		t.Cleanup(flaky.Close)
		a := firstWith(t, sim, anyAssignment)
		p := startLookup(t, flaky.URL, nil, "")
		out := p.process(eventFor(a.AssignmentID))
		if out[0].GetError() != nil || meta(out[0], ClaimXLookupMetaAttempts) != "3" || calls.Load() != 3 {
			t.Fatalf("error %v, attempts %q, calls %d", out[0].GetError(), meta(out[0], ClaimXLookupMetaAttempts), calls.Load())
		}
	})
	t.Run("timeouts are retried", func(t *testing.T) {
		sim, hs := newSim(t, claimxsim.Config{Faults: claimxsim.Faults{TimeoutRate: 1}})
		a := firstWith(t, sim, anyAssignment)
		p := startLookup(t, hs.URL, map[string]string{
			"timeout": "100ms", "retries": "{ max_attempts: 2, initial_interval: 10ms, max_interval: 100ms }",
		}, "")
		start := time.Now()
		out := p.process(eventFor(a.AssignmentID))
		err := out[0].GetError()
		if err == nil || !strings.Contains(err.Error(), "failed after 2 attempts: transient: timed out after 100ms") {
			t.Fatalf("error %v", err)
		}
		if time.Since(start) < 200*time.Millisecond {
			t.Fatal("two 100ms attempts took less than 200ms")
		}
		if _, ok := out[0].MetaGet(ClaimXLookupMetaStatus); ok {
			t.Fatal("no status was received, yet status metadata is set")
		}
		waitFor(t, "two timeouts counted", func() bool { return sim.Stats().ByStatus["timeout"] == 2 })
	})
}

func TestLookupNotFound(t *testing.T) {
	sim, hs := newSim(t, claimxsim.Config{})
	known := firstWith(t, sim, anyAssignment).AssignmentID
	const unknown = 1234567
	cases := []struct {
		name   string
		over   map[string]string
		want   int
		checks func(t *testing.T, m *service.Message)
	}{
		{"null sets result_field to null", map[string]string{"on_not_found": `"null"`}, 2, func(t *testing.T, m *service.Message) {
			v, _ := m.AsStructured()
			obj := v.(map[string]any)
			if val, ok := obj["claimx_task_full"]; !ok || val != nil || m.GetError() != nil || obj["event_id"] == nil {
				t.Fatalf("got %v, error %v", obj, m.GetError())
			}
			if meta(m, ClaimXLookupMetaStatus) != "404" {
				t.Fatal("status metadata missing")
			}
		}},
		{"null without result_field makes the message null", map[string]string{"on_not_found": `"null"`, "result_field": ""}, 2, func(t *testing.T, m *service.Message) {
			if b, _ := m.AsBytes(); string(b) != "null" || m.GetError() != nil {
				t.Fatalf("got %s, error %v", b, m.GetError())
			}
		}},
		{"error fails the message", map[string]string{"on_not_found": "error"}, 2, func(t *testing.T, m *service.Message) {
			err := m.GetError()
			if err == nil || err.Error() != "claimx lookup GET /customTasks/assignment/1234567 failed: not_found: status 404: not found: {\"error\":\"assignment not found\"}" {
				t.Fatalf("error %v", err)
			}
			if meta(m, ClaimXLookupMetaError) != "not_found" {
				t.Fatal("class metadata missing")
			}
		}},
		{"drop removes the message", map[string]string{"on_not_found": "drop"}, 1, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sim.ResetStats()
			p := startLookup(t, hs.URL, c.over, "")
			out := p.process(eventFor(unknown), eventFor(known))
			if len(out) != c.want {
				t.Fatalf("%d messages out, want %d", len(out), c.want)
			}
			if got := meta(out[len(out)-1], ClaimXLookupMetaStatus); got != "200" {
				t.Fatalf("the known assignment has status %q", got)
			}
			if c.checks != nil {
				c.checks(t, out[0])
			}
			if n := sim.Stats().StatusCount(404); n != 1 {
				t.Fatalf("%d 404s, want 1 (no retry)", n)
			}
		})
	}
}

func TestLookupCache(t *testing.T) {
	// Latency keeps the first request in flight while its duplicate starts.
	sim, hs := newSim(t, claimxsim.Config{Faults: claimxsim.Faults{Latency: claimxsim.Duration(30 * time.Millisecond)}})
	as := sim.Assignments()
	p := startLookup(t, hs.URL, map[string]string{"cache": "lookups", "cache_ttl": "300ms"}, `
cache_resources:
  - label: lookups
    memory: { default_ttl: 5m }
`)
	requests := func() int64 { return sim.Stats().ByEndpoint["assignment"] }

	out := p.process(eventFor(as[0].AssignmentID), eventFor(as[0].AssignmentID), eventFor(as[1].AssignmentID))
	for i, m := range out {
		if m.GetError() != nil {
			t.Fatalf("message %d: %v", i, m.GetError())
		}
	}
	if n := requests(); n != 2 {
		t.Fatalf("first batch made %d requests, want 2 (duplicates share one)", n)
	}
	out = p.process(eventFor(as[0].AssignmentID))
	if n := requests(); n != 2 || meta(out[0], ClaimXLookupMetaCached) != "true" {
		t.Fatalf("repeat within the TTL made %d requests (cached=%q), want 2", n, meta(out[0], ClaimXLookupMetaCached))
	}
	v, _ := out[0].AsStructured()
	if fmt.Sprint(v.(map[string]any)["claimx_task_full"].(map[string]any)["assignmentId"]) != strconv.FormatInt(as[0].AssignmentID, 10) {
		t.Fatal("cached answer is not the assignment")
	}
	time.Sleep(350 * time.Millisecond)
	p.process(eventFor(as[0].AssignmentID))
	if n := requests(); n != 3 {
		t.Fatalf("after the TTL %d requests, want 3", n)
	}
	if got := p.metrics.counter("claimx_api_cache_hits_total{}"); got != 1 {
		t.Fatalf("cache hits counter %d, want 1", got)
	}
}

func TestLookupConcurrency(t *testing.T) {
	sim, hs := newSim(t, claimxsim.Config{Faults: claimxsim.Faults{Latency: claimxsim.Duration(100 * time.Millisecond)}})
	p := startLookup(t, hs.URL, map[string]string{"max_concurrency": "4"}, "")
	var docs []string
	for _, a := range sim.Assignments()[:12] {
		docs = append(docs, eventFor(a.AssignmentID))
	}
	start := time.Now()
	out := p.process(docs...)
	elapsed := time.Since(start)
	if len(out) != 12 {
		t.Fatalf("%d messages", len(out))
	}
	if st := sim.Stats(); st.MaxInFlight != 4 {
		t.Fatalf("max in flight %d, want 4", st.MaxInFlight)
	}
	if elapsed < 300*time.Millisecond || elapsed > 1100*time.Millisecond {
		t.Fatalf("12 lookups of 100ms, 4 at a time, took %v", elapsed)
	}
}

// TestLookupConcurrencyIsSharedByPipelineThreads checks that max_concurrency
// bounds all pipeline threads together, not each batch.
func TestLookupConcurrencyIsSharedByPipelineThreads(t *testing.T) {
	sim, hs := newSim(t, claimxsim.Config{Faults: claimxsim.Faults{Latency: claimxsim.Duration(100 * time.Millisecond)}})
	p := startLookup(t, hs.URL, map[string]string{"max_concurrency": "2"}, "",
		func(b *service.StreamBuilder) { b.SetThreads(4) })
	as := sim.Assignments()
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.process(eventFor(as[2*i].AssignmentID), eventFor(as[2*i+1].AssignmentID))
		}()
	}
	wg.Wait()
	if st := sim.Stats(); st.MaxInFlight != 2 || st.StatusCount(200) != 8 {
		t.Fatalf("4 threads × 2 lookups with max_concurrency 2: %d in flight, %v", st.MaxInFlight, st.ByStatus)
	}
	// 8 lookups of 100ms, 2 at a time: 400ms at least.
	if elapsed := time.Since(start); elapsed < 400*time.Millisecond {
		t.Fatalf("took %v", elapsed)
	}
}

func TestLookupCircuitBreaker(t *testing.T) {
	t.Run("opens on failures and closes after a good probe", func(t *testing.T) {
		sim, hs := newSim(t, claimxsim.Config{Faults: claimxsim.Faults{Outage: true}})
		a := firstWith(t, sim, anyAssignment)
		p := startLookup(t, hs.URL, map[string]string{
			"retries":         "{ max_attempts: 1, initial_interval: 10ms, max_interval: 100ms }",
			"circuit_breaker": "{ failure_threshold: 3, open_timeout: 300ms }",
		}, "")
		for i := range 3 {
			out := p.process(eventFor(a.AssignmentID))
			if meta(out[0], ClaimXLookupMetaError) != "transient" {
				t.Fatalf("lookup %d: %v", i, out[0].GetError())
			}
		}
		out := p.process(eventFor(a.AssignmentID))
		if err := out[0].GetError(); meta(out[0], ClaimXLookupMetaError) != "circuit_open" || !strings.Contains(err.Error(), "circuit_open") {
			t.Fatalf("after 3 failures: %v", err)
		}
		if n := sim.Stats().Total; n != 3 {
			t.Fatalf("the open circuit let a request through: %d requests", n)
		}

		must(t, sim.SetFaults(claimxsim.Faults{}))
		time.Sleep(350 * time.Millisecond)
		for i := range 2 {
			out = p.process(eventFor(a.AssignmentID))
			if out[0].GetError() != nil {
				t.Fatalf("after recovery, lookup %d: %v", i, out[0].GetError())
			}
		}
		if n := sim.Stats().Total; n != 5 {
			t.Fatalf("%d requests, want 5", n)
		}
		logs := p.logs.String()
		for _, want := range []string{"closed -> open", "open -> half-open", "half-open -> closed"} {
			if !strings.Contains(logs, want) {
				t.Errorf("no %q transition in the logs", want)
			}
		}
		if got := p.metrics.counter("claimx_api_errors_total{reason=circuit_open}"); got != 1 {
			t.Errorf("circuit_open errors counter %d, want 1", got)
		}
	})
	t.Run("404 and other client errors do not trip it", func(t *testing.T) {
		sim, hs := newSim(t, claimxsim.Config{})
		p := startLookup(t, hs.URL, map[string]string{
			"on_not_found":    "error",
			"circuit_breaker": "{ failure_threshold: 2, open_timeout: 1m }",
		}, "")
		for i := range 5 {
			out := p.process(eventFor(int64(100 + i)))
			if meta(out[0], ClaimXLookupMetaError) != "not_found" {
				t.Fatalf("lookup %d: %v", i, out[0].GetError())
			}
		}
		if n := sim.Stats().Total; n != 5 {
			t.Fatalf("%d requests, want 5", n)
		}
	})
}

func TestLookupNeverLeaksSecrets(t *testing.T) {
	// A misbehaving server that echoes the credentials in its error body.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, "upstream rejected Authorization=%q and key=%q", r.Header.Get("Authorization"), r.Header.Get("X-Api-Key"))
	}))
	t.Cleanup(echo.Close)
	sim, hs := newSim(t, claimxsim.Config{Token: "not-the-configured-one"})
	_ = sim

	const apiKey = "key-77a1d0c4e2b8"
	cases := []struct {
		name, base string
		over       map[string]string
	}{
		{"echoed in a 5xx body", echo.URL, map[string]string{"headers": "{ X-Api-Key: " + apiKey + " }"}},
		{"refused with 401", hs.URL, nil},
		{"connection refused", "http://127.0.0.1:1", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := startLookup(t, c.base, c.over, "")
			out := p.process(eventFor(42))
			err := out[0].GetError()
			if err == nil {
				t.Fatal("lookup did not fail")
			}
			p.stop()
			for _, text := range []string{err.Error(), p.logs.String()} {
				if strings.Contains(text, testToken) || strings.Contains(text, apiKey) {
					t.Fatalf("a secret leaked: %s", text)
				}
			}
			if c.base == echo.URL && !strings.Contains(err.Error(), "[redacted]") {
				t.Fatalf("echoed secret not redacted: %v", err)
			}
			if !strings.Contains(p.logs.String(), "attempt 1 failed") && c.base != hs.URL {
				t.Fatal("debug logs were not captured, so the check above proves nothing")
			}
		})
	}
}

func TestLookupPathParamsStayInTheirSegment(t *testing.T) {
	sim, hs := newSim(t, claimxsim.Config{})
	p := startLookup(t, hs.URL, map[string]string{"on_not_found": "error"}, "")
	cases := []struct{ value, wantURI string }{
		{"../admin", "/customTasks/assignment/..%2Fadmin?full=true"},
		{"1?x=y", "/customTasks/assignment/1%3Fx=y?full=true"},
		{"..", "/customTasks/assignment/%2E%2E?full=true"},
		{".", "/customTasks/assignment/%2E?full=true"},
		{"a b/c#d", "/customTasks/assignment/a%20b%2Fc%23d?full=true"},
		{"%2F", "/customTasks/assignment/%252F?full=true"},
	}
	for _, c := range cases {
		t.Run(c.value, func(t *testing.T) {
			sim.ResetStats()
			doc, _ := json.Marshal(map[string]any{"task_assignment_id": c.value})
			out := p.process(string(doc))
			if meta(out[0], ClaimXLookupMetaError) != "not_found" {
				t.Fatalf("error %v", out[0].GetError())
			}
			recs := sim.Requests()
			if len(recs) != 1 || recs[0].RequestURI != c.wantURI || recs[0].Endpoint != "assignment" {
				t.Fatalf("simulator saw %+v, want %s on the assignment endpoint", recs, c.wantURI)
			}
		})
	}
}

func TestLookupUnusableMessages(t *testing.T) {
	sim, hs := newSim(t, claimxsim.Config{})
	p := startLookup(t, hs.URL, nil, "")
	cases := []struct{ doc, wantErr string }{
		{`{"event_id":"e1"}`, "claimx lookup: path_params.assignment_id: value is null or missing"},
		{`{"task_assignment_id":""}`, "claimx lookup: path_params.assignment_id: value is empty"},
		{`{"task_assignment_id":{"a":1}}`, "claimx lookup: path_params.assignment_id: value is a map[string]interface {}, not a string, number or boolean"},
		{`[1,2]`, "claimx lookup: path_params.assignment_id: value is null or missing"},
	}
	for _, c := range cases {
		out := p.process(c.doc)
		if err := out[0].GetError(); err == nil || !strings.Contains(err.Error(), c.wantErr) || meta(out[0], ClaimXLookupMetaError) != "client" {
			t.Errorf("%s: error %v, want %q", c.doc, err, c.wantErr)
		}
	}
	a := firstWith(t, sim, anyAssignment)
	num := p.process(fmt.Sprintf(`{"task_assignment_id": %d}`, a.AssignmentID))
	if num[0].GetError() != nil {
		t.Fatalf("numeric id: %v", num[0].GetError())
	}
	if n := sim.Stats().Total; n != 1 {
		t.Fatalf("%d requests; unusable messages must not reach the API", n)
	}
}

func TestLookupMetricNames(t *testing.T) {
	sim, hs := newSim(t, claimxsim.Config{})
	a := firstWith(t, sim, anyAssignment)
	p := startLookup(t, hs.URL, map[string]string{"metrics_prefix": "itel_worker_"}, "")
	p.process(eventFor(a.AssignmentID), eventFor(99))
	if got := p.metrics.counter("itel_worker_claimx_api_calls_total{}"); got != 2 {
		t.Errorf("calls %d, want 2", got)
	}
	if got := p.metrics.counter("itel_worker_claimx_api_errors_total{reason=not_found}"); got != 1 {
		t.Errorf("not_found errors %d, want 1", got)
	}
	if got := p.metrics.timing("itel_worker_claimx_api_latency_seconds{}"); got != 2 {
		t.Errorf("latency observations %d, want 2", got)
	}
}

func TestLookupConfigErrors(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"placeholder without param", "connection: claimx\npath: /a/{id}", "path placeholder {id} has no entry in path_params"},
		{"param without placeholder", "connection: claimx\npath: /a\npath_params: { id: this.id }", "path_params.id has no {id} placeholder"},
		{"bad bloblang", "connection: claimx\npath: /a/{id}\npath_params: { id: 'this.'}", "parsing path_params.id"},
		{"no connection", "path: /a", "connection"},
		{"empty result_field segment", "connection: claimx\npath: /a\nresult_field: a..b", "empty path segment"},
		{"valid", "connection: claimx\npath: /a/{id}\npath_params: { id: this.id }", ""},
	}
	env := service.NewEnvironment()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conf, err := claimxLookupConfigSpec().ParseYAML(c.yaml, env)
			if err == nil {
				_, err = parseClaimxLookupConfig(conf)
			}
			if c.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

func TestConnectionConfigErrors(t *testing.T) {
	base := "base_url: http://localhost:1\n"
	cases := []struct{ name, yaml, want string }{
		{"bearer without token", base, "auth.token is required for bearer auth"},
		{"basic without password", base + "auth: { type: basic, username: u }", "auth.username and auth.password are required"},
		{"oauth2 without token_url", base + "auth: { type: oauth2, client_id: a, client_secret: b }", "auth.token_url, auth.client_id and auth.client_secret are required"},
		{"relative base_url", "base_url: /service\nauth: { token: t }", "base_url must be an absolute http or https URL"},
		{"base_url with a query", "base_url: http://x/?a=b\nauth: { token: t }", "base_url must not have a query"},
		{"missing cache", base + "auth: { token: t }\ncache: nope", `cache resource "nope" not found`},
		{"zero concurrency", base + "auth: { token: t }\nmax_concurrency: 0", "max_concurrency must be at least 1"},
		{"negative rate limit", base + "auth: { token: t }\nrate_limit_per_second: -1", "rate_limit_per_second must not be negative"},
		{"zero timeout", base + "auth: { token: t }\ntimeout: 0s", "timeout and dial_timeout must be positive"},
		{"backwards intervals", base + "auth: { token: t }\nretries: { initial_interval: 2s, max_interval: 1s }", "retries:"},
		{"zero breaker threshold", base + "auth: { token: t }\ncircuit_breaker: { failure_threshold: 0 }", "circuit_breaker:"},
		{"zero max_response_bytes", base + "auth: { token: t }\nmax_response_bytes: 0", "max_response_bytes must be positive"},
		{"open circuit longer than a hold's wait", base + "auth: { token: t }\ncircuit_breaker: { open_timeout: 1m }", "must not exceed hold_max_interval"},
		{"valid", base + "auth: { token: t }", ""},
		{"valid in error mode", base + "auth: { token: t }\ncircuit_breaker: { open_timeout: 1m }\non_unavailable: error", ""},
	}
	env := service.NewEnvironment()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conf, err := claimxConnectionConfigSpec().ParseYAML(c.yaml, env)
			if err == nil {
				_, err = newClaimxConnectionFromConfig(conf, service.MockResources())
			}
			if c.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

// TestLookupNamesItsConnection: a lookup naming a connection that does not
// exist, or a processor that is not a connection, does not build; a
// connection run as a processor fails its messages.
func TestLookupNamesItsConnection(t *testing.T) {
	_, conn := lookupYAML("http://127.0.0.1:1", nil)
	other := "\n  - label: not_a_connection\n    mapping: root = this\n"
	cases := []struct{ name, proc, want string }{
		{"missing", "claimx_lookup: { connection: nope, path: /a }", `claimx_lookup: connection "nope" is not a claimx_connection processor resource`},
		{"another processor", "claimx_lookup: { connection: not_a_connection, path: /a }", `claimx_lookup: connection "not_a_connection" is not a claimx_connection processor resource (it is another kind of processor)`},
		{"a connection that does not build", "claimx_lookup: { connection: broken, path: /a }", `claimx_lookup: connection "broken"`},
	}
	broken := "\n  - label: broken\n    claimx_connection: { base_url: http://x }\n"
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := service.NewStreamBuilder()
			must(t, b.SetLoggerYAML("level: none"))
			must(t, b.AddResourcesYAML(conn+other+broken))
			must(t, b.AddProcessorYAML(c.proc))
			_, err := b.AddProducerFunc()
			must(t, err)
			must(t, b.AddConsumerFunc(func(context.Context, *service.Message) error { return nil }))
			stream, err := b.Build()
			if err == nil {
				// benthos builds the processors when the stream starts.
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				defer cancel()
				err = stream.Run(ctx)
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("starting: %v, want %q", err, c.want)
			}
		})
	}
	t.Run("connection used as a processor", func(t *testing.T) {
		p := startPipe(t, "resource: claimx", conn)
		out := p.process(eventFor(1))
		err := out[0].GetError()
		if err == nil || !strings.Contains(err.Error(), `claimx_connection "claimx" is a connection, not a processor: name it in claimx_lookup.connection`) {
			t.Fatalf("error %v", err)
		}
	})
}

// TestLookupsShareTheirConnection runs two lookups of one connection in one
// stream: the answers one caches serve the other, the failures of one open
// the circuit for both, and max_concurrency bounds them together.
func TestLookupsShareTheirConnection(t *testing.T) {
	sim, hs := newSim(t, claimxsim.Config{Faults: claimxsim.Faults{Latency: claimxsim.Duration(20 * time.Millisecond)}})
	as := sim.Assignments()
	_, conn := lookupYAML(hs.URL, map[string]string{
		"cache":           "claimx_cache",
		"retries":         "{ max_attempts: 1, initial_interval: 10ms, max_interval: 100ms }",
		"circuit_breaker": "{ failure_threshold: 3, open_timeout: 1m }",
	})
	resources := conn + `
  - label: as_object
    claimx_lookup:
      connection: claimx
      path: /customTasks/assignment/{id}
      path_params: { id: this.task_assignment_id }
      query: { full: "true" }
      result_field: object
      on_not_found: error
  - label: as_text
    claimx_lookup:
      connection: claimx
      path: /customTasks/assignment/{id}
      path_params: { id: this.task_assignment_id }
      query: { full: "true" }
      result_field: text
      result_as_string: true
      on_not_found: error
cache_resources:
  - label: claimx_cache
    memory: { default_ttl: 5m }
`
	p := startPipe(t, `
switch:
  - check: '@lookup == "object"'
    processors: [ { resource: as_object } ]
  - check: '@lookup == "text"'
    processors: [ { resource: as_text } ]
`, resources)
	send := func(lookup string, id int64) *service.Message {
		t.Helper()
		m := service.NewMessage([]byte(eventFor(id)))
		m.MetaSetMut("lookup", lookup)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p.mu.Lock()
		before := len(p.out)
		p.mu.Unlock()
		must(t, p.send(ctx, service.MessageBatch{m}))
		p.mu.Lock()
		defer p.mu.Unlock()
		if len(p.out) != before+1 {
			t.Fatalf("%d messages out, want 1", len(p.out)-before)
		}
		return p.out[before]
	}

	// One cache: the text lookup is answered by the object lookup's request.
	if m := send("object", as[0].AssignmentID); m.GetError() != nil {
		t.Fatal(m.GetError())
	}
	if m := send("text", as[0].AssignmentID); m.GetError() != nil || meta(m, ClaimXLookupMetaCached) != "true" {
		t.Fatalf("the other lookup of the connection: %v, cached %q", m.GetError(), meta(m, ClaimXLookupMetaCached))
	}
	if n := sim.Stats().ByEndpoint["assignment"]; n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}

	// One breaker: three failures of the object lookup open it for the text
	// lookup too.
	must(t, sim.SetFaults(claimxsim.Faults{Outage: true}))
	sim.ResetStats()
	for i := range 3 {
		if m := send("object", as[1+i].AssignmentID); meta(m, ClaimXLookupMetaError) != "transient" {
			t.Fatalf("lookup %d during the outage: %v", i, m.GetError())
		}
	}
	m := send("text", as[5].AssignmentID)
	if meta(m, ClaimXLookupMetaError) != "circuit_open" {
		t.Fatalf("the other lookup after the circuit opened: %v", m.GetError())
	}
	if n := sim.Stats().Total; n != 3 {
		t.Fatalf("%d requests reached the API, want 3 (the open circuit refuses the fourth)", n)
	}
	if !strings.Contains(p.logs.String(), `claimx_connection claimx: circuit breaker closed -> open`) {
		t.Error("the connection did not log the open circuit")
	}
}

// TestLookupSecretsScrubbedFromEcho checks that the secret fields are marked
// so: `echo` (and the streams API) print them scrubbed.
func TestLookupSecretsScrubbedFromEcho(t *testing.T) {
	conf := map[string]any{
		"processor_resources": []any{
			map[string]any{"label": "claimx", "claimx_connection": map[string]any{
				"base_url": "http://claimx.example",
				"auth":     map[string]any{"type": "bearer", "token": testToken, "password": "pw-0123456789", "client_secret": "cs-0123456789"},
			}},
		},
		"pipeline": map[string]any{"processors": []any{
			map[string]any{"claimx_lookup": map[string]any{"connection": "claimx", "path": "/a"}},
		}},
	}
	out, err := service.GlobalEnvironment().FullConfigSchema("", "").NewStreamConfigMarshaller().
		SetScrubSecrets(true).AnyToYAML(conf)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{testToken, "pw-0123456789", "cs-0123456789"} {
		if strings.Contains(out, secret) {
			t.Errorf("echo shows %s:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "claimx.example") {
		t.Fatalf("the config was not printed:\n%s", out)
	}
}

// Messages of one batch asking for the same assignment share one lookup: one
// cache read (and one compaction of the answer), each message getting it.
func TestLookupBatchSharesOneCacheRead(t *testing.T) {
	sim, hs := newSim(t, claimxsim.Config{})
	as := sim.Assignments()
	p := startLookup(t, hs.URL, map[string]string{"cache": "lookups", "result_as_string": "true"}, `
cache_resources:
  - label: lookups
    memory: { default_ttl: 5m }
`)
	p.process(eventFor(as[0].AssignmentID))
	out := p.process(eventFor(as[0].AssignmentID), eventFor(as[1].AssignmentID), eventFor(as[0].AssignmentID), eventFor(as[0].AssignmentID))
	if n := sim.Stats().ByEndpoint["assignment"]; n != 2 {
		t.Fatalf("%d API requests, want 2 (one per assignment)", n)
	}
	if got := p.metrics.counter("claimx_api_cache_hits_total{}"); got != 1 {
		t.Fatalf("cache hits %d, want 1 (one read for the three messages of assignment %d)", got, as[0].AssignmentID)
	}
	for i, want := range []int64{as[0].AssignmentID, as[1].AssignmentID, as[0].AssignmentID, as[0].AssignmentID} {
		if out[i].GetError() != nil {
			t.Fatalf("message %d: %v", i, out[i].GetError())
		}
		v, _ := out[i].AsStructured()
		s, _ := v.(map[string]any)["claimx_task_full"].(string)
		if full := decodeNum(t, []byte(s)); fmt.Sprint(full["assignmentId"]) != strconv.FormatInt(want, 10) {
			t.Fatalf("message %d holds %.100s, want assignment %d", i, s, want)
		}
		if meta(out[i], ClaimXLookupMetaCached) != strconv.FormatBool(want == as[0].AssignmentID) {
			t.Fatalf("message %d cached=%q", i, meta(out[i], ClaimXLookupMetaCached))
		}
	}
}
