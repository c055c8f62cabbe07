package claimx

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/claimxsim"
)

const testToken = "tok-S3CRET-4b1d9e77c0ffee"

// newSim starts a simulator accepting testToken (unless cfg names another).
func newSim(t testing.TB, cfg claimxsim.Config) (*claimxsim.Server, *httptest.Server) {
	t.Helper()
	if cfg.Token == "" && cfg.ClientID == "" && cfg.BasicUser == "" {
		cfg.Token = testToken
	}
	s, err := claimxsim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return s, hs
}

// testConfig is a config for baseURL with waits short enough for tests.
func testConfig(baseURL string) Config {
	c := DefaultConfig(baseURL)
	c.Auth = Auth{Type: AuthBearer, Token: testToken}
	c.Retries = Retries{MaxAttempts: 3, InitialInterval: 10 * time.Millisecond, MaxInterval: 200 * time.Millisecond}
	return c
}

func newClient(t testing.TB, cfg Config, opts ...Option) *Client {
	t.Helper()
	c, err := New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func assignmentPath(id int64) string { return fmt.Sprintf("/customTasks/assignment/%d", id) }

var full = url.Values{"full": {"true"}}

// asError returns err as an *Error, failing the test when it is not one.
func asError(t *testing.T, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *claimx.Error", err, err)
	}
	return e
}

// recorder is an Observer that counts what it is told.
type recorder struct {
	mu       sync.Mutex
	attempts int
	failed   map[Class]int
	retries  []string
	answered int
	changes  []string
}

func newRecorder() *recorder { return &recorder{failed: map[Class]int{}} }

func (r *recorder) Attempted(time.Duration) { r.mu.Lock(); r.attempts++; r.mu.Unlock() }
func (r *recorder) Failed(c Class, _ int)   { r.mu.Lock(); r.failed[c]++; r.mu.Unlock() }
func (r *recorder) Answered()               { r.mu.Lock(); r.answered++; r.mu.Unlock() }
func (r *recorder) Retrying(n int, wait time.Duration, err *Error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.retries = append(r.retries, fmt.Sprintf("attempt %d failed (%s), retrying in %v", n, err.Reason, wait))
}
func (r *recorder) BreakerChanged(from, to string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changes = append(r.changes, from+" -> "+to)
}

func TestGetAnswers(t *testing.T) {
	sim, hs := newSim(t, claimxsim.Config{Seed: 5})
	a := sim.Assignments()[0]
	obs := newRecorder()
	c := newClient(t, testConfig(hs.URL+"/service/cxedirest/"), WithObserver(obs))
	resp, err := c.Get(t.Context(), assignmentPath(a.AssignmentID), full)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 || resp.Attempts != 1 || !strings.Contains(string(resp.Body), fmt.Sprintf(`"assignmentId":%d`, a.AssignmentID)) {
		t.Fatalf("status %d, attempts %d, body %.200s", resp.Status, resp.Attempts, resp.Body)
	}
	recs := sim.Requests()
	if len(recs) != 1 || recs[0].RequestURI != fmt.Sprintf("/service/cxedirest/customTasks/assignment/%d?full=true", a.AssignmentID) {
		t.Fatalf("simulator saw %+v", recs)
	}
	if obs.attempts != 1 || obs.answered != 1 || len(obs.failed) != 0 {
		t.Fatalf("observer: %+v", obs)
	}
}

func TestNewRequest(t *testing.T) {
	c := newClient(t, testConfig("https://claimx.example/service/"))
	cases := []struct {
		name    string
		path    string
		query   url.Values
		header  http.Header
		wantKey string
		accept  string
	}{
		{"path and sorted query", "/export/project/7", url.Values{"b": {"2"}, "a": {"1"}}, nil,
			"GET https://claimx.example/service/export/project/7?a=1&b=2", "application/json"},
		{"no leading slash, no query", "customTasks/assignment/%2E%2E", nil, nil,
			"GET https://claimx.example/service/customTasks/assignment/%2E%2E", "application/json"},
		{"header overrides a default", "/a", nil, http.Header{"accept": {"application/vnd.claimx+json"}},
			"GET https://claimx.example/service/a", "application/vnd.claimx+json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := c.NewRequest(tc.path, tc.query, tc.header)
			if err != nil {
				t.Fatal(err)
			}
			if req.Key() != tc.wantKey || req.Header.Get("Accept") != tc.accept {
				t.Fatalf("key %q accept %q", req.Key(), req.Header.Get("Accept"))
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"default with a token", func(*Config) {}, ""},
		{"relative base URL", func(c *Config) { c.BaseURL = "/service" }, "base_url must be an absolute http or https URL"},
		{"base URL with a query", func(c *Config) { c.BaseURL = "http://x/?token=abc" }, "base_url must not have a query or fragment"},
		{"bearer without token", func(c *Config) { c.Auth.Token = "" }, "auth.token is required for bearer auth"},
		{"basic without password", func(c *Config) { c.Auth = Auth{Type: AuthBasic, Username: "u"} }, "auth.username and auth.password are required"},
		{"oauth2 without token_url", func(c *Config) { c.Auth = Auth{Type: AuthOAuth2, ClientID: "a", ClientSecret: "b"} }, "auth.token_url"},
		{"oauth2 with a relative token_url", func(c *Config) { c.Auth = Auth{Type: AuthOAuth2, TokenURL: "/t", ClientID: "a", ClientSecret: "b"} }, "auth.token_url must be an absolute"},
		{"unknown auth", func(c *Config) { c.Auth.Type = "kerberos" }, `auth.type "kerberos" is not one of`},
		{"no auth", func(c *Config) { c.Auth = Auth{Type: AuthNone} }, ""},
		{"zero timeout", func(c *Config) { c.Timeout = 0 }, "timeout and dial_timeout must be positive"},
		{"backwards intervals", func(c *Config) { c.Retries.MaxInterval = time.Millisecond }, "retries:"},
		{"no attempts", func(c *Config) { c.Retries.MaxAttempts = 0 }, "retries:"},
		{"zero threshold", func(c *Config) { c.Breaker.FailureThreshold = 0 }, "circuit_breaker:"},
		{"negative rate", func(c *Config) { c.RateLimitPerSecond = -1 }, "rate_limit_per_second must not be negative"},
		{"zero body", func(c *Config) { c.MaxResponseBytes = 0 }, "max_response_bytes must be positive"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig("http://claimx.example")
			tc.edit(&cfg)
			_, err := New(cfg)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "abc") {
				t.Fatalf("the error echoes the base URL: %v", err)
			}
		})
	}
}

func TestRetries(t *testing.T) {
	t.Run("gives up after max_attempts", func(t *testing.T) {
		sim, hs := newSim(t, claimxsim.Config{Faults: claimxsim.Faults{ErrorRate: 1}})
		obs := newRecorder()
		c := newClient(t, testConfig(hs.URL))
		_, err := c.Get(t.Context(), assignmentPath(sim.Assignments()[0].AssignmentID), full, WithRequestObserver(obs))
		e := asError(t, err)
		if e.Class != ClassTransient || e.Attempts != 3 || (e.Status != 500 && e.Status != 503) ||
			!strings.Contains(e.Error(), "failed after 3 attempts: transient: status 50") {
			t.Fatalf("error %+v: %v", e, e)
		}
		if n := sim.Stats().ByEndpoint["assignment"]; n != 3 {
			t.Fatalf("simulator saw %d requests, want 3", n)
		}
		if obs.attempts != 3 || obs.failed[ClassTransient] != 3 || len(obs.retries) != 2 || obs.answered != 0 {
			t.Fatalf("observer %+v", obs)
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
		c := newClient(t, testConfig(flaky.URL))
		resp, err := c.Get(t.Context(), assignmentPath(sim.Assignments()[0].AssignmentID), full)
		if err != nil || resp.Attempts != 3 || calls.Load() != 3 {
			t.Fatalf("error %v, response %+v, calls %d", err, resp, calls.Load())
		}
	})
	t.Run("timeouts are retried", func(t *testing.T) {
		sim, hs := newSim(t, claimxsim.Config{Faults: claimxsim.Faults{TimeoutRate: 1}})
		cfg := testConfig(hs.URL)
		cfg.Timeout = 100 * time.Millisecond
		cfg.Retries = Retries{MaxAttempts: 2, InitialInterval: 10 * time.Millisecond, MaxInterval: 100 * time.Millisecond}
		c := newClient(t, cfg)
		start := time.Now()
		_, err := c.Get(t.Context(), assignmentPath(sim.Assignments()[0].AssignmentID), full)
		e := asError(t, err)
		if e.Status != 0 || !strings.Contains(e.Error(), "failed after 2 attempts: transient: timed out after 100ms") {
			t.Fatalf("error %v", e)
		}
		if time.Since(start) < 200*time.Millisecond {
			t.Fatal("two 100ms attempts took less than 200ms")
		}
		if u := e.Unavailable(); u == nil || u.Reason != "timeout" {
			t.Fatalf("unavailable %+v", u)
		}
	})
	t.Run("WithAttempts overrides max_attempts", func(t *testing.T) {
		sim, hs := newSim(t, claimxsim.Config{Faults: claimxsim.Faults{Outage: true}})
		c := newClient(t, testConfig(hs.URL))
		_, err := c.Get(t.Context(), assignmentPath(1), nil, WithAttempts(1))
		if e := asError(t, err); e.Attempts != 1 || sim.Stats().Total != 1 {
			t.Fatalf("error %v after %d requests", e, sim.Stats().Total)
		}
	})
}

func TestRetryAfter(t *testing.T) {
	for _, httpDate := range []bool{false, true} {
		t.Run(fmt.Sprint("http_date=", httpDate), func(t *testing.T) {
			// One request per second: the second request gets 429 with
			// Retry-After. Retrying after initial_interval (10ms) would hit
			// 429 again until the attempts run out.
			sim, hs := newSim(t, claimxsim.Config{RateLimit: 1, RetryAfterHTTPDate: httpDate})
			as := sim.Assignments()
			cfg := testConfig(hs.URL)
			cfg.Retries.MaxInterval = 5 * time.Second
			c := newClient(t, cfg)
			start := time.Now()
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for i := range errs {
				wg.Go(func() { _, errs[i] = c.Get(t.Context(), assignmentPath(as[i].AssignmentID), full) })
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
			}
			if st := sim.Stats(); st.StatusCount(429) != 1 || st.StatusCount(200) != 2 {
				t.Fatalf("want one 429 then success, got %v", st.ByStatus)
			}
			if elapsed := time.Since(start); elapsed < 900*time.Millisecond {
				t.Fatalf("retried after %v, before the Retry-After second", elapsed)
			}
		})
	}
	t.Run("longer than max_interval ends the attempts", func(t *testing.T) {
		sim, hs := newSim(t, claimxsim.Config{RateLimit: 1})
		cfg := testConfig(hs.URL)
		cfg.Retries.MaxInterval = 500 * time.Millisecond
		c := newClient(t, cfg)
		if _, err := c.Get(t.Context(), assignmentPath(sim.Assignments()[0].AssignmentID), nil); err != nil {
			t.Fatal(err)
		}
		_, err := c.Get(t.Context(), assignmentPath(sim.Assignments()[1].AssignmentID), nil)
		e := asError(t, err)
		if e.Status != 429 || !strings.Contains(e.Error(), "longer than retries.max_interval") || e.RetryAfter < 500*time.Millisecond {
			t.Fatalf("error %v (retry after %v)", e, e.RetryAfter)
		}
		if u := e.Unavailable(); u == nil || u.Reason != "429" || u.RetryAfter != e.RetryAfter || u.ReopensIn != 0 {
			t.Fatalf("unavailable %+v", u)
		}
		if n := sim.Stats().StatusCount(429); n != 1 {
			t.Fatalf("%d 429s, want 1 (no retry)", n)
		}
	})
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 10, 22, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"3", 3 * time.Second}, {"0", 0}, {"-1", 0}, {"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, c := range cases {
		if got := parseRetryAfter(c.in, now); got != c.want {
			t.Errorf("Retry-After %q: %v, want %v", c.in, got, c.want)
		}
	}
}

// TestAnswersThatAreNotRetried: the API's answers that no retry changes
// take one request each.
func TestAnswersThatAreNotRetried(t *testing.T) {
	cases := []struct {
		name    string
		handler http.HandlerFunc
		cfg     func(*Config)
		class   Class
		status  int
		want    string
	}{
		{"401", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(401) }, nil, ClassAuth, 401, "failed: auth: status 401: credentials refused"},
		{"403", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(403) }, nil, ClassClient, 403, "status 403: Forbidden"},
		{"400", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(400) }, nil, ClassClient, 400, "status 400: Bad Request"},
		{"404", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(404)
			fmt.Fprint(w, `{"error":"assignment not found"}`)
		}, nil, ClassNotFound, 404, `failed: not_found: status 404: not found: {"error":"assignment not found"}`},
		{"HTML", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<html>maintenance</html>")
		}, nil, ClassInvalidResponse, 200, `Content-Type "text/html" is not JSON`},
		{"broken JSON", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"assignmentId": `)
		}, nil, ClassInvalidResponse, 200, "body is not valid JSON"},
		{"two JSON values", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{} {}`)
		}, nil, ClassInvalidResponse, 200, "body is not valid JSON"},
		{"too large", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"pad": %q}`, strings.Repeat("x", 200))
		}, func(c *Config) { c.MaxResponseBytes = 100 }, ClassInvalidResponse, 200, "body larger than max_response_bytes (100)"},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://elsewhere.example/", http.StatusFound)
		}, nil, ClassInvalidResponse, 302, "unexpected status 302"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				tc.handler(w, r)
			}))
			t.Cleanup(hs.Close)
			cfg := testConfig(hs.URL)
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			c := newClient(t, cfg)
			_, err := c.Get(t.Context(), "/customTasks/assignment/7", nil)
			e := asError(t, err)
			if e.Class != tc.class || e.Status != tc.status || !strings.Contains(e.Error(), tc.want) || calls.Load() != 1 {
				t.Fatalf("error %v (class %s, status %d) after %d calls", e, e.Class, e.Status, calls.Load())
			}
		})
	}
}

// TestErrorUnavailable: which failures are the record's (nil) and which the
// API's, with their hold reason.
func TestErrorUnavailable(t *testing.T) {
	cases := []struct {
		err        Error
		wantReason string // "" for the record's own failure
	}{
		{Error{Class: ClassNotFound, Status: 404}, ""},
		{Error{Class: ClassClient, Status: 400}, ""},
		{Error{Class: ClassClient, Status: 422}, ""},
		{Error{Class: ClassClient, Status: 410}, ""},
		{Error{Class: ClassClient, Status: 0, Reason: "path parameter assignment_id is empty"}, ""},
		{Error{Class: ClassInvalidResponse, Status: 200, Reason: "body larger than max_response_bytes (10)"}, ""},
		{Error{Class: ClassClient, Status: 408}, "408"},
		{Error{Class: ClassClient, Status: 405}, "405"},
		{Error{Class: ClassAuth, Status: 401}, "401"},
		{Error{Class: ClassAuth, Status: 403}, "403"},
		{Error{Class: ClassAuth, Reason: "fetching an OAuth token: connection refused"}, "auth"},
		{Error{Class: ClassTransient, Status: 429}, "429"},
		{Error{Class: ClassTransient, Status: 503}, "503"},
		{Error{Class: ClassTransient, Reason: "timed out after 30s"}, "timeout"},
		{Error{Class: ClassTransient, Reason: "request failed: dial tcp: connection refused"}, "connection"},
		{Error{Class: ClassCircuitOpen}, "circuit_open"},
		{Error{Class: ClassCircuitOpen, Cause: "503"}, "503"},
		{Error{Class: ClassInvalidResponse, Status: 200, Reason: `Content-Type "text/html" is not JSON`}, "invalid_response"},
		{Error{Class: ClassInvalidResponse, Status: 302, Reason: "unexpected status 302"}, "invalid_response"},
	}
	for _, c := range cases {
		u := c.err.Unavailable()
		got := ""
		if u != nil {
			got = u.Reason
			if u.Err != &c.err {
				t.Errorf("%s: the hold error does not wrap the failure", c.err.Class)
			}
		}
		if got != c.wantReason {
			t.Errorf("%s %d %q: reason %q, want %q", c.err.Class, c.err.Status, c.err.Reason, got, c.wantReason)
		}
	}
	// The open circuit's wait may be cut short by an answer; a Retry-After
	// may not.
	open := (&Error{Class: ClassCircuitOpen, RetryAfter: time.Second}).Unavailable()
	busy := (&Error{Class: ClassTransient, Status: 503, RetryAfter: time.Second}).Unavailable()
	if open.ReopensIn != time.Second || open.RetryAfter != 0 || busy.RetryAfter != time.Second || busy.ReopensIn != 0 {
		t.Fatalf("open circuit %+v, Retry-After %+v", open, busy)
	}
}

func TestCircuitBreaker(t *testing.T) {
	t.Run("opens on failures and closes after a good probe", func(t *testing.T) {
		sim, hs := newSim(t, claimxsim.Config{Faults: claimxsim.Faults{Outage: true}})
		a := sim.Assignments()[0]
		cfg := testConfig(hs.URL)
		cfg.Retries.MaxAttempts = 1
		cfg.Breaker = Breaker{FailureThreshold: 3, OpenTimeout: 300 * time.Millisecond, HalfOpenMaxRequests: 1}
		obs := newRecorder()
		c := newClient(t, cfg, WithObserver(obs))
		for i := range 3 {
			if _, err := c.Get(t.Context(), assignmentPath(a.AssignmentID), nil); asError(t, err).Class != ClassTransient {
				t.Fatalf("request %d: %v", i, err)
			}
		}
		_, err := c.Get(t.Context(), assignmentPath(a.AssignmentID), nil)
		e := asError(t, err)
		if e.Class != ClassCircuitOpen || e.Cause != "503" || e.RetryAfter < 200*time.Millisecond || c.BreakerState() != "open" {
			t.Fatalf("after 3 failures: %v (cause %q, reopens in %v)", e, e.Cause, e.RetryAfter)
		}
		if u := e.Unavailable(); u.Reason != "503" || u.ReopensIn != e.RetryAfter {
			t.Fatalf("hold reason of the open circuit %+v", u)
		}
		if n := sim.Stats().Total; n != 3 {
			t.Fatalf("the open circuit let a request through: %d requests", n)
		}
		if err := sim.SetFaults(claimxsim.Faults{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(350 * time.Millisecond)
		for i := range 2 {
			if _, err := c.Get(t.Context(), assignmentPath(a.AssignmentID), nil); err != nil {
				t.Fatalf("after recovery, request %d: %v", i, err)
			}
		}
		if n := sim.Stats().Total; n != 5 {
			t.Fatalf("%d requests, want 5", n)
		}
		want := []string{"closed -> open", "open -> half-open", "half-open -> closed"}
		if fmt.Sprint(obs.changes) != fmt.Sprint(want) || obs.failed[ClassCircuitOpen] != 1 {
			t.Fatalf("breaker changes %v, circuit_open failures %d", obs.changes, obs.failed[ClassCircuitOpen])
		}
	})
	t.Run("404 does not trip it", func(t *testing.T) {
		sim, hs := newSim(t, claimxsim.Config{})
		cfg := testConfig(hs.URL)
		cfg.Breaker = Breaker{FailureThreshold: 2, OpenTimeout: time.Minute, HalfOpenMaxRequests: 1}
		c := newClient(t, cfg)
		for i := range 5 {
			if _, err := c.Get(t.Context(), assignmentPath(int64(100+i)), nil); asError(t, err).Class != ClassNotFound {
				t.Fatalf("request %d: %v", i, err)
			}
		}
		if n := sim.Stats().Total; n != 5 {
			t.Fatalf("%d requests, want 5", n)
		}
	})
	// A rate-limiting API is up: a burst of 429s is waited out through
	// Retry-After and never opens the circuit (found by the conformance
	// fault test, where a minute of events went to the errors topic as
	// circuit_open).
	t.Run("429 does not open it", func(t *testing.T) {
		sim, hs := newSim(t, claimxsim.Config{Assignments: 20, RateLimit: 2})
		cfg := testConfig(hs.URL)
		cfg.Retries = Retries{MaxAttempts: 10, InitialInterval: 10 * time.Millisecond, MaxInterval: 3 * time.Second}
		cfg.Breaker = Breaker{FailureThreshold: 2, OpenTimeout: time.Minute, HalfOpenMaxRequests: 1}
		c := newClient(t, cfg)
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i, a := range sim.Assignments()[:8] {
			wg.Go(func() { _, errs[i] = c.Get(t.Context(), assignmentPath(a.AssignmentID), full) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("request %d: %v", i, err)
			}
		}
		if st := sim.Stats(); st.ByStatus["429"] == 0 {
			t.Fatalf("the simulator answered no 429 (stats %+v): the test did not exercise rate limiting", st)
		}
	})
}

// TestRateLimitIsNeverExceeded: the simulator limits with a token bucket of
// the same rate; the client's evenly spaced requests never meet a 429.
func TestRateLimitIsNeverExceeded(t *testing.T) {
	sim, hs := newSim(t, claimxsim.Config{Assignments: 30, RateLimit: 20, Faults: claimxsim.Faults{Latency: claimxsim.Duration(50 * time.Millisecond)}})
	cfg := testConfig(hs.URL)
	cfg.RateLimitPerSecond = 20
	c := newClient(t, cfg)
	ids := make(chan int64, 30)
	for _, a := range sim.Assignments() {
		ids <- a.AssignmentID
	}
	close(ids)
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range 4 {
		wg.Go(func() {
			for id := range ids {
				if _, err := c.Get(t.Context(), assignmentPath(id), full); err != nil {
					t.Errorf("assignment %d: %v", id, err)
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	st := sim.Stats()
	if st.StatusCount(429) != 0 || st.StatusCount(200) != 30 {
		t.Fatalf("statuses %v, want 30 × 200 and no 429", st.ByStatus)
	}
	// 30 requests 50ms apart: 1.45s; four at a time at 50ms would take 0.4s.
	if elapsed < 1400*time.Millisecond {
		t.Fatalf("30 requests at 20/s took only %v", elapsed)
	}
}

func TestOAuth2(t *testing.T) {
	const secret = "cs-9f8e7d6c5b4a"
	oauth := func(hs *httptest.Server, secret string) Config {
		cfg := testConfig(hs.URL)
		cfg.Auth = Auth{Type: AuthOAuth2, TokenURL: hs.URL + "/oauth/token", ClientID: "claimx-client", ClientSecret: secret, Scopes: []string{"claimx.read"}}
		return cfg
	}
	t.Run("one token, fetched again once after a revocation", func(t *testing.T) {
		sim, hs := newSim(t, claimxsim.Config{ClientID: "claimx-client", ClientSecret: secret})
		as := sim.Assignments()
		c := newClient(t, oauth(hs, secret))
		var wg sync.WaitGroup
		for _, a := range as[:3] {
			wg.Go(func() {
				if _, err := c.Get(t.Context(), assignmentPath(a.AssignmentID), nil); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if n := sim.Stats().ByEndpoint["token"]; n != 1 {
			t.Fatalf("%d token requests, want 1", n)
		}
		sim.RevokeTokens()
		resp, err := c.Get(t.Context(), assignmentPath(as[3].AssignmentID), nil)
		if err != nil || resp.Attempts != 1 {
			t.Fatalf("after revocation: %v (%+v)", err, resp)
		}
		if st := sim.Stats(); st.ByEndpoint["token"] != 2 || st.StatusCount(401) != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("refreshed before expiry", func(t *testing.T) {
		sim, hs := newSim(t, claimxsim.Config{ClientID: "claimx-client", ClientSecret: secret, TokenTTL: time.Second})
		a := sim.Assignments()[0]
		c := newClient(t, oauth(hs, secret))
		if _, err := c.Get(t.Context(), assignmentPath(a.AssignmentID), nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(950 * time.Millisecond)
		_, err := c.Get(t.Context(), assignmentPath(a.AssignmentID), nil)
		if st := sim.Stats(); err != nil || st.ByEndpoint["token"] != 2 || st.StatusCount(401) != 0 {
			t.Fatalf("error %v, stats %+v", err, st)
		}
	})
	t.Run("refused client credentials", func(t *testing.T) {
		sim, hs := newSim(t, claimxsim.Config{ClientID: "claimx-client", ClientSecret: "other"})
		c := newClient(t, oauth(hs, secret))
		_, err := c.Get(t.Context(), assignmentPath(sim.Assignments()[0].AssignmentID), nil)
		e := asError(t, err)
		if e.Class != ClassAuth || !strings.Contains(e.Error(), `refused the client credentials (status 401, error "invalid_client")`) || strings.Contains(e.Error(), secret) {
			t.Fatalf("error %v", e)
		}
		if u := e.Unavailable(); u == nil || u.Reason != "auth" {
			t.Fatalf("unavailable %+v", u)
		}
		if sim.Stats().ByEndpoint["assignment"] != 0 {
			t.Fatal("called the API without a token")
		}
	})
}

func TestBasicAuth(t *testing.T) {
	sim, hs := newSim(t, claimxsim.Config{BasicUser: "api-user", BasicPassword: "generated-key-123"})
	a := sim.Assignments()[0]
	for _, tc := range []struct {
		password string
		wantErr  bool
	}{{"generated-key-123", false}, {"wrong-key-456", true}} {
		cfg := testConfig(hs.URL)
		cfg.Auth = Auth{Type: AuthBasic, Username: "api-user", Password: tc.password}
		c := newClient(t, cfg)
		_, err := c.Get(t.Context(), assignmentPath(a.AssignmentID), nil)
		if (err != nil) != tc.wantErr {
			t.Fatalf("password %s: error %v", tc.password, err)
		}
		if err != nil && strings.Contains(err.Error(), tc.password) {
			t.Fatalf("the password leaked: %v", err)
		}
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	// A misbehaving server that echoes the credentials in its error body.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, "upstream rejected Authorization=%q key=%q session=%q", r.Header.Get("Authorization"), r.Header.Get("X-Api-Key"), r.Header.Get("X-Session-Token"))
	}))
	t.Cleanup(echo.Close)
	_, refusing := newSim(t, claimxsim.Config{Token: "not-the-configured-one"})
	const apiKey, session = "key-77a1d0c4e2b8", "sess-0c4e2b877a1d"
	cases := []struct{ name, base string }{
		{"echoed in a 5xx body", echo.URL},
		{"refused with 401", refusing.URL},
		{"connection refused", "http://127.0.0.1:1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(tc.base)
			cfg.Headers = map[string]string{"X-Api-Key": apiKey}
			cfg.Retries.MaxAttempts = 2
			obs := newRecorder()
			c := newClient(t, cfg)
			req, err := c.NewRequest("/customTasks/assignment/42", url.Values{"full": {"true"}}, http.Header{"X-Session-Token": {session}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Do(t.Context(), req, WithRequestObserver(obs))
			if err == nil {
				t.Fatal("the request did not fail")
			}
			texts := append([]string{err.Error()}, obs.retries...)
			for _, text := range texts {
				for _, secret := range []string{testToken, apiKey, session} {
					if strings.Contains(text, secret) {
						t.Fatalf("a secret leaked: %s", text)
					}
				}
				if strings.Contains(text, "full=true") {
					t.Fatalf("the query leaked: %s", text)
				}
			}
			if tc.base == echo.URL && !strings.Contains(err.Error(), "[redacted]") {
				t.Fatalf("echoed secret not redacted: %v", err)
			}
		})
	}
}

// TestConcurrentRequestsShareOneClient: requests from many goroutines share
// the breaker (one count of failures) and the rate limit.
func TestConcurrentRequestsShareOneClient(t *testing.T) {
	sim, hs := newSim(t, claimxsim.Config{Faults: claimxsim.Faults{Outage: true}})
	cfg := testConfig(hs.URL)
	cfg.Retries.MaxAttempts = 1
	cfg.Breaker = Breaker{FailureThreshold: 4, OpenTimeout: time.Minute, HalfOpenMaxRequests: 1}
	c := newClient(t, cfg)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() { _, _ = c.Get(context.Background(), assignmentPath(int64(i+1)), nil) })
	}
	wg.Wait()
	_, err := c.Get(t.Context(), assignmentPath(9), nil)
	if e := asError(t, err); e.Class != ClassCircuitOpen || sim.Stats().Total != 4 {
		t.Fatalf("after 4 failures from 4 goroutines: %v, %d requests", e, sim.Stats().Total)
	}
}
