package processors

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/claimx/claimx-connect/claimx"
	"github.com/claimx/claimx-connect/claimxsim"
)

// holdOver is the config of a lookup in hold mode with waits short enough
// for tests, overridden by over.
func holdOver(over map[string]string) map[string]string {
	o := map[string]string{
		"on_unavailable":        "hold",
		"hold_initial_interval": "20ms",
		"hold_max_interval":     "100ms",
		"retries":               "{ max_attempts: 1, initial_interval: 10ms, max_interval: 100ms }",
		"circuit_breaker":       "{ failure_threshold: 3, open_timeout: 100ms }",
		"on_not_found":          "error",
	}
	for k, v := range over {
		o[k] = v
	}
	return o
}

// startHold runs a lookup in hold mode (holdOver) in a pipe.
func startHold(t *testing.T, baseURL string, over map[string]string, resourcesYAML string) *pipe {
	t.Helper()
	return startLookup(t, baseURL, holdOver(over), resourcesYAML)
}

func TestLookupHoldsThroughAnOutage(t *testing.T) {
	sim, hs := newSim(t, claimxsim.Config{Seed: 7})
	must(t, sim.SetFaults(claimxsim.Faults{OutageFor: claimxsim.Duration(600 * time.Millisecond)}))
	p := startHold(t, hs.URL, nil, "")
	var docs []string
	for _, a := range sim.Assignments()[:5] {
		docs = append(docs, eventFor(a.AssignmentID))
	}
	docs = append(docs, eventFor(999_999_999)) // unknown: the record's own failure
	start := time.Now()
	out := p.process(docs...)
	held := time.Since(start)
	if held < 500*time.Millisecond {
		t.Fatalf("the batch left after %v, during the outage", held)
	}
	if len(out) != 6 {
		t.Fatalf("%d messages out, want 6", len(out))
	}
	for i, m := range out[:5] {
		if m.GetError() != nil {
			t.Errorf("message %d failed for the outage: %v", i, m.GetError())
		}
	}
	if meta(out[5], ClaimXLookupMetaError) != string(claimx.ClassNotFound) {
		t.Errorf("the unknown assignment: %v, want its 404", out[5].GetError())
	}
	st := sim.Stats()
	// The first try sends the 6 lookups; each probe after it one request
	// (a batch retried whole would be 6 a probe); the breaker, open after 3
	// failures, lets a probe through only when it half-opens.
	if n := st.ByStatus["503"]; n > 6+10 {
		t.Errorf("%d requests answered 503 during a %v hold: more than one request a probe", n, held)
	}
	// Reported with the API's 503, whether the batch met it or the circuit
	// it opened.
	if got := p.metrics.counter("claimx_api_holds_total{reason=503}"); got != 1 {
		t.Errorf("holds entered for 503: %d, want 1", got)
	}
	logs := p.logs.String()
	for _, want := range []string{"dependency unavailable: holding the stream", "dependency available again: resuming", "records=6"} {
		if !strings.Contains(logs, want) {
			t.Errorf("no %q in the logs", want)
		}
	}
}

func TestLookupHoldsThroughRejectedCredentials(t *testing.T) {
	sim, _ := newSim(t, claimxsim.Config{})
	var rejecting atomic.Bool
	rejecting.Store(true)
	// A token rotation: the API refuses the credentials for a while.
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rejecting.Load() {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(api.Close)
	time.AfterFunc(300*time.Millisecond, func() { rejecting.Store(false) })
	a := firstWith(t, sim, anyAssignment)
	p := startHold(t, api.URL, nil, "")
	out := p.process(eventFor(a.AssignmentID))
	if out[0].GetError() != nil {
		t.Fatalf("a 401 failed the record: %v", out[0].GetError())
	}
	if got := p.metrics.counter("claimx_api_holds_total{reason=401}"); got != 1 {
		t.Errorf("holds for 401: %d, want 1", got)
	}
}

func TestLookupHoldsOnAProxyPage(t *testing.T) {
	sim, _ := newSim(t, claimxsim.Config{})
	var proxied atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if proxied.Add(1) <= 3 {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<html><body>502 Bad Gateway (maintenance)</body></html>"))
			return
		}
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(api.Close)
	a := firstWith(t, sim, anyAssignment)
	p := startHold(t, api.URL, nil, "")
	out := p.process(eventFor(a.AssignmentID))
	if out[0].GetError() != nil {
		t.Fatalf("an HTML page from a proxy failed the record: %v", out[0].GetError())
	}
	if got := p.metrics.counter("claimx_api_holds_total{reason=invalid_response}"); got != 1 {
		t.Errorf("holds for invalid_response: %d, want 1", got)
	}
}

func TestLookupHoldEndsWithTheStreamUnacknowledged(t *testing.T) {
	sim, hs := newSim(t, claimxsim.Config{Faults: claimxsim.Faults{Outage: true}})
	a := firstWith(t, sim, anyAssignment)
	p := startHold(t, hs.URL, nil, "")
	p.stopTimeout = 300 * time.Millisecond
	sent := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		sent <- p.send(ctx, service.MessageBatch{service.NewMessage([]byte(eventFor(a.AssignmentID)))})
	}()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	p.stop()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stopping took %v with a batch held", d)
	}
	// The batch is refused (or, with this test's producer input, left for
	// redelivery): never acknowledged.
	select {
	case err := <-sent:
		if err == nil {
			t.Fatal("the held batch was acknowledged at shutdown")
		}
	case <-time.After(time.Second):
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.out) != 0 {
		t.Fatalf("%d messages left the processor at shutdown, want none (first error %v)", len(p.out), p.out[0].GetError())
	}
}

func TestLookupHoldTimeoutIsFatal(t *testing.T) {
	fatal := make(chan error, 1)
	old := holdFatal
	holdFatal = func(err error) { fatal <- err }
	t.Cleanup(func() { holdFatal = old })

	sim, hs := newSim(t, claimxsim.Config{Faults: claimxsim.Faults{Outage: true}})
	a := firstWith(t, sim, anyAssignment)
	p := startHold(t, hs.URL, map[string]string{"hold_timeout": "200ms"}, "")
	p.stopTimeout = 200 * time.Millisecond
	go func() {
		_ = p.send(context.Background(), service.MessageBatch{service.NewMessage([]byte(eventFor(a.AssignmentID)))})
	}()
	select {
	case err := <-fatal:
		if !strings.Contains(err.Error(), "longer than hold_timeout 200ms") || !strings.Contains(err.Error(), "/customTasks/assignment/") {
			t.Fatalf("fatal error %q does not say what happened", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no fatal error after hold_timeout")
	}
	p.stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.out) != 0 {
		t.Fatal("the held record left the processor after hold_timeout")
	}
	if !strings.Contains(p.logs.String(), "dependency unavailable longer than hold_timeout: stopping") {
		t.Error("no error log for the hold timeout")
	}
}

func TestLookupHoldConfig(t *testing.T) {
	conf, err := claimxConnectionConfigSpec().ParseYAML(connectionYAML("http://127.0.0.1:1", holdOver(map[string]string{
		"circuit_breaker": "{ open_timeout: 60s }", "hold_max_interval": "30s",
	})), nil)
	must(t, err)
	_, err = newClaimxConnectionFromConfig(conf, service.MockResources())
	if err == nil || !strings.Contains(err.Error(), "open_timeout (1m0s) must not exceed hold_max_interval (30s)") {
		t.Fatalf("want a config error naming open_timeout and hold_max_interval, got %v", err)
	}
}
