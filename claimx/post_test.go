package claimx

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/claimxsim"
)

const itelPath = claimxsim.DefaultITelPath

func keyHeader(key string) http.Header {
	h := http.Header{}
	if key != "" {
		h.Set(IdempotencyKeyHeader, key)
	}
	return h
}

func TestNewPostRequest(t *testing.T) {
	c := newClient(t, testConfig("https://itel.example/api"))
	post, err := c.NewPostRequest(itelPath, []byte(`{"a":1}`), keyHeader("k-1"))
	if err != nil {
		t.Fatal(err)
	}
	get, err := c.NewRequest(itelPath, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, got, want string
	}{
		{"method", post.Method, http.MethodPost},
		{"get method", get.Method, http.MethodGet},
		{"url", post.URL.String(), "https://itel.example/api" + itelPath},
		{"key names the method", post.Key(), "POST https://itel.example/api" + itelPath},
		{"get key unchanged", get.Key(), "GET https://itel.example/api" + itelPath},
		{"content type", post.Header.Get("Content-Type"), "application/json"},
		{"accept", post.Header.Get("Accept"), "application/json"},
		{"idempotency key", post.Header.Get(IdempotencyKeyHeader), "k-1"},
		{"body", string(post.Body), `{"a":1}`},
		{"get has no content type", get.Header.Get("Content-Type"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

// TestPostToITel submits to the simulated iTel endpoint: the first request
// with a key is accepted, a repeat is replayed, the key with another body
// and bodies iTel refuses are the record's failures, a refused token and an
// outage are the API's.
func TestPostToITel(t *testing.T) {
	const body = `{"assignmentId":"5423723","formResponseId":"f-1","answers":{}}`
	tests := []struct {
		name       string
		itelToken  string
		outage     bool
		key        string
		body       string
		first      string // body of a submission made before, with the same key
		wantStatus int
		wantClass  Class // "" for a success
		wantHold   bool
		wantHeader string // Idempotent-Replayed
		wantCalls  int
	}{
		{name: "accepted", key: "k-1", body: body, wantStatus: 201, wantCalls: 1},
		{name: "replayed", key: "k-1", body: body, first: body, wantStatus: 200, wantHeader: "true", wantCalls: 2},
		{name: "same key other body", key: "k-1", body: `{"assignmentId":"5423723","formResponseId":"f-2"}`, first: body,
			wantStatus: 409, wantClass: ClassClient, wantCalls: 2},
		{name: "missing ids", key: "k-2", body: `{"assignmentId":"5423723"}`, wantStatus: 422, wantClass: ClassClient, wantCalls: 1},
		{name: "not json", key: "k-3", body: `not json`, wantStatus: 400, wantClass: ClassClient, wantCalls: 1},
		{name: "no key: one attempt", body: body, wantStatus: 400, wantClass: ClassClient, wantCalls: 1},
		{name: "token refused", itelToken: "another-token-1234", key: "k-4", body: body, wantStatus: 401, wantClass: ClassAuth, wantHold: true, wantCalls: 1},
		{name: "outage: retried", outage: true, key: "k-5", body: body, wantStatus: 503, wantClass: ClassTransient, wantHold: true, wantCalls: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, hs := newSim(t, claimxsim.Config{ITelToken: tt.itelToken})
			c := newClient(t, testConfig(hs.URL))
			if tt.first != "" {
				req, err := c.NewPostRequest(itelPath, []byte(tt.first), keyHeader(tt.key))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := c.Do(t.Context(), req); err != nil {
					t.Fatalf("first submission: %v", err)
				}
			}
			if tt.outage {
				if err := sim.SetFaults(claimxsim.Faults{ITelOutage: true}); err != nil {
					t.Fatal(err)
				}
			}
			req, err := c.NewPostRequest(itelPath, []byte(tt.body), keyHeader(tt.key))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.Do(t.Context(), req)
			calls := 0
			for _, r := range sim.Requests() {
				if r.Endpoint == "itel" && r.Method == http.MethodPost {
					calls++
				}
			}
			if calls != tt.wantCalls {
				t.Errorf("iTel got %d requests, want %d", calls, tt.wantCalls)
			}
			if tt.wantClass == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if resp.Status != tt.wantStatus {
					t.Errorf("status %d, want %d", resp.Status, tt.wantStatus)
				}
				if got := resp.Header.Get("Idempotent-Replayed"); got != tt.wantHeader {
					t.Errorf("Idempotent-Replayed %q, want %q", got, tt.wantHeader)
				}
				var ack map[string]any
				if err := json.Unmarshal(resp.Body, &ack); err != nil || ack["reference"] == nil {
					t.Errorf("answer %s has no reference (%v)", resp.Body, err)
				}
				if tt.wantStatus == 201 && resp.Header.Get("Location") == "" {
					t.Error("201 without Location")
				}
				return
			}
			e := asError(t, err)
			if e.Class != tt.wantClass || e.Status != tt.wantStatus {
				t.Errorf("got %s/%d, want %s/%d: %v", e.Class, e.Status, tt.wantClass, tt.wantStatus, e)
			}
			if got := e.Unavailable() != nil; got != tt.wantHold {
				t.Errorf("Unavailable() != nil is %v, want %v: %v", got, tt.wantHold, e)
			}
			if !strings.HasPrefix(e.Error(), "claimx client POST "+itelPath+" failed") {
				t.Errorf("error text %q does not name the POST and its path", e.Error())
			}
		})
	}
}

// TestPostRetries checks that a POST is retried only with an
// Idempotency-Key, and that every attempt sends the whole body.
func TestPostRetries(t *testing.T) {
	tests := []struct {
		name      string
		key       string
		failures  int // 503s before a 201
		status    int // the failures' status, or 0 for a hang past the timeout
		wantCalls int
		wantOK    bool
	}{
		{name: "503 then 201 with a key", key: "k-1", failures: 2, status: 503, wantCalls: 3, wantOK: true},
		{name: "503 without a key: one attempt", failures: 2, status: 503, wantCalls: 1},
		{name: "timeout then 201 with a key", key: "k-1", failures: 1, status: 0, wantCalls: 2, wantOK: true},
		{name: "timeout without a key: one attempt", failures: 1, status: 0, wantCalls: 1},
		{name: "429 then 201 with a key", key: "k-1", failures: 1, status: 429, wantCalls: 2, wantOK: true},
	}
	const body = `{"assignmentId":"1","formResponseId":"f","answers":{"x":"é"}}`
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var bodies []string
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				bodies = append(bodies, string(b))
				n := len(bodies)
				mu.Unlock()
				if n <= tt.failures {
					if tt.status == 0 {
						select {
						case <-r.Context().Done():
						case <-time.After(2 * time.Second):
						}
						return
					}
					w.WriteHeader(tt.status)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusCreated)
				_, _ = w.Write([]byte(`{"reference":"R-1"}`))
			}))
			t.Cleanup(hs.Close)
			cfg := testConfig(hs.URL)
			cfg.Timeout = 300 * time.Millisecond
			c := newClient(t, cfg)
			req, err := c.NewPostRequest(itelPath, []byte(body), keyHeader(tt.key))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			resp, err := c.Do(ctx, req)
			mu.Lock()
			defer mu.Unlock()
			if len(bodies) != tt.wantCalls {
				t.Errorf("%d attempts, want %d", len(bodies), tt.wantCalls)
			}
			for i, b := range bodies {
				if b != body {
					t.Errorf("attempt %d sent %q, want %q", i+1, b, body)
				}
			}
			if tt.wantOK {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if resp.Status != http.StatusCreated || resp.Attempts != tt.wantCalls {
					t.Errorf("status %d after %d attempts, want 201 after %d", resp.Status, resp.Attempts, tt.wantCalls)
				}
				return
			}
			e := asError(t, err)
			if e.Unavailable() == nil {
				t.Errorf("%v should be the API's failure", e)
			}
		})
	}
}

// TestPostStatusesAreNotGetSuccesses checks that 201 and 202 succeed for a
// POST only: a GET answered 201 is still an unexpected status.
func TestPostStatusesAreNotGetSuccesses(t *testing.T) {
	for _, status := range []int{http.StatusCreated, http.StatusAccepted} {
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(`{}`))
		}))
		c := newClient(t, testConfig(hs.URL))
		if _, err := c.Get(t.Context(), "/x", nil); err == nil || asError(t, err).Class != ClassInvalidResponse {
			t.Errorf("GET answered %d: got %v, want invalid_response", status, err)
		}
		req, _ := c.NewPostRequest("/x", []byte(`{}`), nil)
		if resp, err := c.Do(t.Context(), req); err != nil || resp.Status != status {
			t.Errorf("POST answered %d: got %v, %v", status, resp, err)
		}
		hs.Close()
	}
}

// TestRecordFailuresOfAPost pins the classification the itel_submission
// processor relies on: 400, 409, 413 and 422 are the record's; 401, 403,
// 429 and 5xx the API's.
func TestRecordFailuresOfAPost(t *testing.T) {
	tests := []struct {
		status     int
		wantRecord bool
	}{
		{400, true}, {409, true}, {413, true}, {422, true},
		{401, false}, {403, false}, {429, false}, {500, false}, {503, false},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(`{"error":"why"}`))
			}))
			t.Cleanup(hs.Close)
			cfg := testConfig(hs.URL)
			cfg.Retries.MaxAttempts = 1
			c := newClient(t, cfg)
			req, _ := c.NewPostRequest(itelPath, []byte(`{}`), keyHeader("k"))
			_, err := c.Do(t.Context(), req)
			e := asError(t, err)
			if got := e.Unavailable() == nil; got != tt.wantRecord {
				t.Errorf("status %d: record's failure %v, want %v (%v)", tt.status, got, tt.wantRecord, e)
			}
			if !strings.Contains(e.Reason, "why") {
				t.Errorf("reason %q does not quote the body", e.Reason)
			}
		})
	}
}
