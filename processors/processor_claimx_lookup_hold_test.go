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

	"github.com/claimx/claimx-connect/claimxsim"
)

// holdYAML is a lookup in hold mode with waits short enough for tests.
func holdYAML(baseURL string, over map[string]string) string {
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
	return lookupYAML(baseURL, o)
}

func TestLookupHoldClassifiesFailures(t *testing.T) {
	cases := []struct {
		err        clLookupError
		wantReason string // "" for the record's own failure
	}{
		{clLookupError{class: clErrNotFound, status: 404}, ""},
		{clLookupError{class: clErrClient, status: 400}, ""},
		{clLookupError{class: clErrClient, status: 422}, ""},
		{clLookupError{class: clErrClient, status: 410}, ""},
		{clLookupError{class: clErrClient, status: 0, reason: "path parameter assignment_id is empty"}, ""},
		{clLookupError{class: clErrInvalidResponse, status: 200, reason: "body larger than max_response_bytes (10)"}, ""},
		{clLookupError{class: clErrClient, status: 408}, "408"},
		{clLookupError{class: clErrClient, status: 405}, "405"},
		{clLookupError{class: clErrAuth, status: 401}, "401"},
		{clLookupError{class: clErrAuth, status: 403}, "403"},
		{clLookupError{class: clErrAuth, reason: "fetching an OAuth token: connection refused"}, "auth"},
		{clLookupError{class: clErrTransient, status: 429}, "429"},
		{clLookupError{class: clErrTransient, status: 503}, "503"},
		{clLookupError{class: clErrTransient, reason: "timed out after 30s"}, "timeout"},
		{clLookupError{class: clErrTransient, reason: "request failed: dial tcp: connection refused"}, "connection"},
		{clLookupError{class: clErrCircuitOpen}, "circuit_open"},
		{clLookupError{class: clErrCircuitOpen, cause: "503"}, "503"},
		{clLookupError{class: clErrInvalidResponse, status: 200, reason: `Content-Type "text/html" is not JSON`}, "invalid_response"},
		{clLookupError{class: clErrInvalidResponse, status: 302, reason: "unexpected status 302"}, "invalid_response"},
	}
	for _, c := range cases {
		u := c.err.unavailable()
		got := ""
		if u != nil {
			got = u.Reason
		}
		if got != c.wantReason {
			t.Errorf("%s %d %q: reason %q, want %q", c.err.class, c.err.status, c.err.reason, got, c.wantReason)
		}
	}
}

func TestLookupHoldsThroughAnOutage(t *testing.T) {
	sim, hs := newSim(t, claimxsim.Config{Seed: 7})
	must(t, sim.SetFaults(claimxsim.Faults{OutageFor: claimxsim.Duration(600 * time.Millisecond)}))
	p := startPipe(t, holdYAML(hs.URL, nil), "")
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
	if meta(out[5], ClaimXLookupMetaError) != clErrNotFound {
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
	p := startPipe(t, holdYAML(api.URL, nil), "")
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
	p := startPipe(t, holdYAML(api.URL, nil), "")
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
	p := startPipe(t, holdYAML(hs.URL, nil), "")
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
	p := startPipe(t, holdYAML(hs.URL, map[string]string{"hold_timeout": "200ms"}), "")
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
	conf, err := claimxLookupConfigSpec().ParseYAML(holdYAML("http://127.0.0.1:1", map[string]string{
		"circuit_breaker": "{ open_timeout: 60s }", "hold_max_interval": "30s",
	})[len("claimx_lookup:\n"):], nil)
	must(t, err)
	_, err = newClaimxLookupFromConfig(conf, service.MockResources())
	if err == nil || !strings.Contains(err.Error(), "open_timeout (1m0s) must not exceed hold_max_interval (30s)") {
		t.Fatalf("want a config error naming open_timeout and hold_max_interval, got %v", err)
	}
}
