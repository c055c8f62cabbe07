package processors

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/claimx/claimx-connect/claimxsim"
)

const itelTestToken = "itel-tok-7c9e11aa52"

// itelYAML renders an itel_submission config and the claimx_connection
// resource (label itel) it names: defaults suited to the tests, overridden
// (or removed, with "") by over.
func itelYAML(baseURL string, over map[string]string) (proc, resources string) {
	f := map[string]string{
		isFieldConnection:       "itel",
		isFieldIdempotencyKey:   `"${! this.assignmentId }-${! this.formResponseId }"`,
		"base_url":              baseURL,
		"auth":                  "{ type: bearer, token: " + itelTestToken + " }",
		"retries":               "{ max_attempts: 3, initial_interval: 10ms, max_interval: 200ms }",
		"circuit_breaker":       "{ failure_threshold: 5, open_timeout: 500ms }",
		"on_unavailable":        "hold",
		"hold_initial_interval": "50ms",
		"hold_max_interval":     "1s",
	}
	for k, v := range over {
		if v == "" {
			delete(f, k)
		} else {
			f[k] = v
		}
	}
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	own := map[string]bool{isFieldConnection: true, isFieldPath: true, isFieldIdempotencyKey: true, isFieldMaxInFlight: true, isFieldPayloadSchema: true}
	var pb, cb strings.Builder
	pb.WriteString("itel_submission:\n")
	cb.WriteString("processor_resources:\n  - label: itel\n    claimx_connection:\n")
	for _, k := range keys {
		if own[k] {
			fmt.Fprintf(&pb, "  %s: %s\n", k, f[k])
		} else {
			fmt.Fprintf(&cb, "      %s: %s\n", k, f[k])
		}
	}
	return pb.String(), cb.String()
}

func startITel(t *testing.T, baseURL string, over map[string]string) *pipe {
	t.Helper()
	proc, res := itelYAML(baseURL, over)
	return startPipe(t, proc, res)
}

func newITelSim(t *testing.T) (*claimxsim.Server, *httptest.Server) {
	t.Helper()
	return newSim(t, claimxsim.Config{ITelToken: itelTestToken})
}

// itelPayload is a v1 submission payload of one form response.
func itelPayload(assignment int, formResponse, note string) string {
	return fmt.Sprintf(`{"schemaVersion":"1","assignmentId":%d,"formResponseId":%q,"projectId":"4895140","taskId":32513,`+
		`"completedAt":"2026-01-10T22:30:06.243Z","answers":{"damage_description":%q},"otherAnswers":{},"photos":[],"source":"claimx-connect"}`,
		assignment, formResponse, note)
}

// itelOut is a result object as the processor writes it.
type itelOut struct {
	Status         string  `json:"status"`
	HTTPStatus     int     `json:"http_status"`
	Reference      *string `json:"reference"`
	Attempts       int     `json:"attempts"`
	IdempotencyKey string  `json:"idempotency_key"`
	SubmittedAt    string  `json:"submitted_at"`
	Error          *string `json:"error"`
}

// readITelOut decodes a result, checking it has exactly the documented keys.
func readITelOut(t *testing.T, m *service.Message) itelOut {
	t.Helper()
	b, err := m.AsBytes()
	must(t, err)
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(b, &keys); err != nil {
		t.Fatalf("result %s is not a JSON object: %v", b, err)
	}
	want := []string{"attempts", "error", "http_status", "idempotency_key", "reference", "status", "submitted_at"}
	var got []string
	for k := range keys {
		got = append(got, k)
	}
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("result keys %v, want %v", got, want)
	}
	var o itelOut
	must(t, json.Unmarshal(b, &o))
	if _, err := time.Parse(itelTimeLayout, o.SubmittedAt); err != nil {
		t.Errorf("submitted_at %q is not RFC 3339 UTC with microseconds: %v", o.SubmittedAt, err)
	}
	return o
}

// itelWant is what one message should come out as.
type itelWant struct {
	status  string // accepted, replayed, rejected; "" for a message error
	http    int
	key     string
	errHas  []string // substrings of the result's error, or of the message error
	hasRef  bool
	content string // for a message error: the content, unchanged
}

func checkITelOut(t *testing.T, i int, m *service.Message, w itelWant) {
	t.Helper()
	if w.status == "" {
		err := m.GetError()
		if err == nil {
			t.Fatalf("message %d: no message error", i)
		}
		for _, s := range w.errHas {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("message %d: error %q does not contain %q", i, err, s)
			}
		}
		if b, _ := m.AsBytes(); string(b) != w.content {
			t.Errorf("message %d: content %s, want it unchanged %s", i, b, w.content)
		}
		if got := meta(m, ITelSubmissionMetaStatus); got != ITelStatusError {
			t.Errorf("message %d: metadata %s=%q, want error", i, ITelSubmissionMetaStatus, got)
		}
		return
	}
	if err := m.GetError(); err != nil {
		t.Fatalf("message %d: unexpected message error %v", i, err)
	}
	o := readITelOut(t, m)
	if o.Status != w.status || o.HTTPStatus != w.http || o.IdempotencyKey != w.key {
		t.Errorf("message %d: got %s/%d key %q, want %s/%d key %q", i, o.Status, o.HTTPStatus, o.IdempotencyKey, w.status, w.http, w.key)
	}
	if got := meta(m, ITelSubmissionMetaStatus); got != w.status {
		t.Errorf("message %d: metadata %s=%q, want %q", i, ITelSubmissionMetaStatus, got, w.status)
	}
	if (o.Reference != nil) != w.hasRef {
		t.Errorf("message %d: reference %v, want one: %v", i, o.Reference, w.hasRef)
	}
	// A payload refused before sending (http 0) made no attempt.
	if (o.Attempts < 1) != (w.http == 0) {
		t.Errorf("message %d: attempts %d", i, o.Attempts)
	}
	if len(w.errHas) == 0 && o.Error != nil {
		t.Errorf("message %d: error %q, want null", i, *o.Error)
	}
	for _, s := range w.errHas {
		if o.Error == nil || !strings.Contains(*o.Error, s) {
			t.Errorf("message %d: error %v does not contain %q", i, o.Error, s)
		}
	}
}

func TestITelSubmission(t *testing.T) {
	a := itelPayload(5423723, "f-1", "water")
	aOther := itelPayload(5423723, "f-1", "fire") // same key, another body
	noForm := `{"schemaVersion":"1","assignmentId":5423724}`
	tests := []struct {
		name     string
		over     map[string]string
		batches  [][]string
		want     []itelWant // every message out, in order
		accepted int
		replays  int
		requests int // POSTs iTel received
	}{
		{
			name: "accepted", batches: [][]string{{a}},
			want:     []itelWant{{status: "accepted", http: 201, key: "5423723-f-1", hasRef: true}},
			accepted: 1, requests: 1,
		},
		{
			name: "the same message twice: accepted, then replayed", batches: [][]string{{a}, {a}},
			want: []itelWant{
				{status: "accepted", http: 201, key: "5423723-f-1", hasRef: true},
				{status: "replayed", http: 200, key: "5423723-f-1", hasRef: true},
			},
			accepted: 1, replays: 1, requests: 2,
		},
		{
			name: "the same message twice in one batch: one after the other", batches: [][]string{{a, a}},
			want: []itelWant{
				{status: "accepted", http: 201, key: "5423723-f-1", hasRef: true},
				{status: "replayed", http: 200, key: "5423723-f-1", hasRef: true},
			},
			accepted: 1, replays: 1, requests: 2,
		},
		{
			name: "the same key with another body: rejected (409)", batches: [][]string{{a}, {aOther}},
			want: []itelWant{
				{status: "accepted", http: 201, key: "5423723-f-1", hasRef: true},
				{status: "rejected", http: 409, key: "5423723-f-1", errHas: []string{"5423723-f-1", "409", "different body"}},
			},
			accepted: 1, requests: 2,
		},
		{
			name: "missing form response id: rejected (422)", batches: [][]string{{noForm}},
			over: map[string]string{isFieldIdempotencyKey: `"${! this.assignmentId }-x"`},
			want: []itelWant{
				{status: "rejected", http: 422, key: "5423724-x", errHas: []string{"5423724-x", "422", "formResponseId"}},
			},
			requests: 1,
		},
		{
			name: "a payload outside payload_schema: rejected before sending, every violation named", batches: [][]string{{noForm}},
			over: map[string]string{isFieldIdempotencyKey: `"${! this.assignmentId }-x"`, isFieldPayloadSchema: "../schemas/itel_submission.v1.json"},
			want: []itelWant{
				{status: "rejected", http: 0, key: "5423724-x", errHas: []string{"5423724-x", "does not satisfy ../schemas/itel_submission.v1.json", `missing required "formResponseId"`, `missing required "photos"`}},
			},
			requests: 0,
		},
		{
			name: "not JSON, a JSON array, an empty key: message errors, nothing sent",
			over: map[string]string{isFieldIdempotencyKey: `"${! this.k | \"\" }"`},
			batches: [][]string{{`not json`, `[1,2]`, `{"assignmentId":1,"formResponseId":"f","k":""}`,
				`{"assignmentId":1,"formResponseId":"f","k":"K1"}`}},
			want: []itelWant{
				{errHas: []string{"message 0 of the batch", "not JSON"}, content: `not json`},
				{errHas: []string{"message 1 of the batch", "JSON array, not an object"}, content: `[1,2]`},
				{errHas: []string{"message 2 of the batch", "idempotency_key is empty"}, content: `{"assignmentId":1,"formResponseId":"f","k":""}`},
				{status: "accepted", http: 201, key: "K1", hasRef: true},
			},
			accepted: 1, requests: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, hs := newITelSim(t)
			p := startITel(t, hs.URL, tt.over)
			var out []*service.Message
			for _, b := range tt.batches {
				out = append(out, p.process(b...)...)
			}
			if len(out) != len(tt.want) {
				t.Fatalf("%d messages out, want %d", len(out), len(tt.want))
			}
			for i, w := range tt.want {
				checkITelOut(t, i, out[i], w)
			}
			c := sim.ITelCounts()
			if c.Accepted != tt.accepted || c.Replays != tt.replays || c.DuplicateForms != 0 {
				t.Errorf("iTel counts %+v, want %d accepted, %d replays, no duplicate forms", c, tt.accepted, tt.replays)
			}
			posts := 0
			for _, r := range sim.Requests() {
				if r.Endpoint == "itel" && r.Method == http.MethodPost {
					posts++
				}
			}
			if posts != tt.requests {
				t.Errorf("iTel received %d POSTs, want %d", posts, tt.requests)
			}
			for _, status := range []string{ITelStatusAccepted, ITelStatusReplayed, ITelStatusRejected, ITelStatusError} {
				n := 0
				for _, w := range tt.want {
					if w.status == status || (w.status == "" && status == ITelStatusError) {
						n++
					}
				}
				if got := p.metrics.counter("itel_submissions_total{status=" + status + "}"); got != int64(n) {
					t.Errorf("itel_submissions_total{status=%s} = %d, want %d", status, got, n)
				}
			}
			if got := p.metrics.timing("itel_submission_latency_ns{}"); got != tt.requests {
				t.Errorf("itel_submission_latency_ns timed %d submissions, want %d", got, tt.requests)
			}
		})
	}
}

// TestITelSubmissionHoldsThroughAnOutage: iTel answers 503 with a
// Retry-After for a few seconds; the batch waits, then every form is
// accepted exactly once.
func TestITelSubmissionHoldsThroughAnOutage(t *testing.T) {
	const n, outage = 6, 3 * time.Second
	sim, hs := newITelSim(t)
	p := startITel(t, hs.URL, nil)
	var docs []string
	for i := range n {
		docs = append(docs, itelPayload(7000+i, fmt.Sprintf("f-%d", i), "water"))
	}
	must(t, sim.SetFaults(claimxsim.Faults{ITelOutageFor: claimxsim.Duration(outage)}))
	start := time.Now()
	out := p.process(docs...)
	held := time.Since(start)
	if held < outage-500*time.Millisecond {
		t.Errorf("the batch left after %v, during the %v outage", held, outage)
	}
	if len(out) != n {
		t.Fatalf("%d messages out, want %d", len(out), n)
	}
	for i, m := range out {
		checkITelOut(t, i, m, itelWant{status: "accepted", http: 201, key: fmt.Sprintf("%d-f-%d", 7000+i, i), hasRef: true})
	}
	c := sim.ITelCounts()
	if c.Accepted != n || c.DuplicateForms != 0 || c.Replays != 0 {
		t.Errorf("iTel counts %+v, want %d accepted, no replays, no duplicate forms", c, n)
	}
	if c.Unavailable == 0 {
		t.Error("iTel never answered 503: the outage did not happen")
	}
	if got := p.metrics.counter("itel_api_holds_total{reason=503}"); got != 1 {
		t.Errorf("holds entered for 503: %d, want 1", got)
	}
	if got := p.metrics.counter("itel_submissions_total{status=rejected}"); got != 0 {
		t.Errorf("%d submissions rejected during an outage", got)
	}
	if logs := p.logs.String(); !strings.Contains(logs, "dependency available again: resuming") {
		t.Error("no resume in the logs")
	}
}

// TestITelSubmissionLostAnswer: iTel takes the submission but the answer is
// lost (a proxy's 502); the retry, with the same key, is answered with the
// replay, and the form is stored once.
func TestITelSubmissionLostAnswer(t *testing.T) {
	sim, _ := newITelSim(t)
	var lost atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && lost.Add(1) == 1 {
			sim.ServeHTTP(httptest.NewRecorder(), r) // iTel acts; its answer never arrives
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(api.Close)
	p := startITel(t, api.URL, nil)
	out := p.process(itelPayload(42, "f-42", "water"))
	checkITelOut(t, 0, out[0], itelWant{status: "replayed", http: 200, key: "42-f-42", hasRef: true})
	if o := readITelOut(t, out[0]); o.Attempts != 2 {
		t.Errorf("attempts %d, want 2", o.Attempts)
	}
	if c := sim.ITelCounts(); c.Accepted != 1 || c.Replays != 1 || c.DuplicateForms != 0 {
		t.Errorf("iTel counts %+v, want the form once and one replay", c)
	}
}

// TestITelSubmissionRefusedToken: a 401 is the credentials' failure, never
// the record's: held until iTel takes them (hold), or a message error
// (error), never "rejected".
func TestITelSubmissionRefusedToken(t *testing.T) {
	tests := []struct {
		name string
		mode string
	}{
		{name: "hold", mode: "hold"},
		{name: "error", mode: "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, _ := newITelSim(t)
			// The credentials are fixed on iTel's side after a while: until
			// then the connection's token is refused.
			var fixed atomic.Bool
			api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if fixed.Load() {
					r.Header.Set("Authorization", "Bearer "+itelTestToken)
				}
				sim.ServeHTTP(w, r)
			}))
			t.Cleanup(api.Close)
			p := startITel(t, api.URL, map[string]string{
				"auth":           "{ type: bearer, token: wrong-token-0000 }",
				"on_unavailable": tt.mode,
			})
			doc := itelPayload(43, "f-43", "water")
			type result struct{ out []*service.Message }
			done := make(chan result, 1)
			go func() { done <- result{p.process(doc)} }()
			if tt.mode == "error" {
				out := (<-done).out
				checkITelOut(t, 0, out[0], itelWant{errHas: []string{"43-f-43", "status 401"}, content: doc})
				if c := sim.ITelCounts(); c.Accepted != 0 {
					t.Errorf("iTel counts %+v, want nothing accepted", c)
				}
				return
			}
			waitFor(t, "the hold", func() bool { return p.metrics.counter("itel_api_holds_total{reason=401}") == 1 })
			select {
			case r := <-done:
				t.Fatalf("the batch left while the token was refused: %v", r.out[0].GetError())
			case <-time.After(300 * time.Millisecond):
			}
			fixed.Store(true)
			var out []*service.Message
			select {
			case r := <-done:
				out = r.out
			case <-time.After(10 * time.Second):
				t.Fatal("the batch is still held after the token was fixed")
			}
			checkITelOut(t, 0, out[0], itelWant{status: "accepted", http: 201, key: "43-f-43", hasRef: true})
			if c := sim.ITelCounts(); c.Accepted != 1 || c.Rejected == 0 {
				t.Errorf("iTel counts %+v, want 401s then one accepted", c)
			}
		})
	}
}

// TestITelSubmissionHeldBatchSurvivesAStop: a stream stopped during a hold
// hands its batch back unacknowledged; the next process submits it, and
// iTel stores each form once.
func TestITelSubmissionHeldBatchSurvivesAStop(t *testing.T) {
	sim, hs := newITelSim(t)
	must(t, sim.SetFaults(claimxsim.Faults{ITelOutage: true}))
	docs := []string{itelPayload(1, "f-1", "a"), itelPayload(2, "f-2", "b")}

	p := startITel(t, hs.URL, nil)
	p.stopTimeout = 200 * time.Millisecond
	batch := service.MessageBatch{service.NewMessage([]byte(docs[0])), service.NewMessage([]byte(docs[1]))}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	sent := make(chan error, 1)
	go func() { sent <- p.send(ctx, batch) }()
	waitFor(t, "the hold", func() bool { return p.metrics.counter("itel_api_holds_total{reason=503}") == 1 })
	p.stop()
	select {
	case err := <-sent:
		if err == nil {
			t.Fatal("the held batch was acknowledged")
		}
	case <-time.After(time.Second):
		// Never acknowledged: the producer waits for an ack that the stopped
		// stream will not give.
		cancel()
		<-sent
	}
	p.mu.Lock()
	if len(p.out) != 0 {
		t.Errorf("%d messages left the stopped stream", len(p.out))
	}
	p.mu.Unlock()

	must(t, sim.SetFaults(claimxsim.Faults{}))
	p2 := startITel(t, hs.URL, nil)
	out := p2.process(docs...)
	for i, m := range out {
		checkITelOut(t, i, m, itelWant{status: "accepted", http: 201, key: fmt.Sprintf("%d-f-%d", i+1, i+1), hasRef: true})
	}
	if c := sim.ITelCounts(); c.Accepted != 2 || c.DuplicateForms != 0 {
		t.Errorf("iTel counts %+v, want 2 accepted, no duplicate forms", c)
	}
}

func TestITelSubmissionConfig(t *testing.T) {
	tests := []struct {
		name string
		over map[string]string
		want string
	}{
		{name: "no such connection", over: map[string]string{isFieldConnection: "nope"}, want: `connection "nope"`},
		{name: "max_in_flight 0", over: map[string]string{isFieldMaxInFlight: "0"}, want: "max_in_flight must be at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proc, res := itelYAML("http://127.0.0.1:1", tt.over)
			b := service.NewStreamBuilder()
			must(t, b.AddResourcesYAML(res))
			must(t, b.AddProcessorYAML(proc))
			_, err := b.AddBatchProducerFunc()
			must(t, err)
			must(t, b.AddBatchConsumerFunc(func(context.Context, service.MessageBatch) error { return nil }))
			stream, err := b.Build()
			if err == nil {
				ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
				defer cancel()
				err = stream.Run(ctx)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	found := false
	service.GlobalEnvironment().WalkProcessors(func(n string, _ *service.ConfigView) { found = found || n == "itel_submission" })
	if !found {
		t.Error("itel_submission is not registered")
	}
}
