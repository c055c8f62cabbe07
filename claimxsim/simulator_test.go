package claimxsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

func newTestServer(t *testing.T, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return s, hs
}

func get(t *testing.T, rawURL string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestDataIsDeterministicAndCoversStates(t *testing.T) {
	a, _ := New(Config{Seed: 42, Assignments: 300})
	b, _ := New(Config{Seed: 42, Assignments: 300})
	c, _ := New(Config{Seed: 43, Assignments: 300})
	ja, _ := json.Marshal(a.data.assignmentBody)
	jb, _ := json.Marshal(b.data.assignmentBody)
	jc, _ := json.Marshal(c.data.assignmentBody)
	if !bytes.Equal(ja, jb) {
		t.Fatal("same seed gave different data")
	}
	if bytes.Equal(ja, jc) {
		t.Fatal("different seeds gave the same data")
	}

	statuses := map[string]int{}
	templatesSeen := map[int]int{}
	ids := map[int64]bool{}
	for _, as := range a.Assignments() {
		statuses[as.Status]++
		templatesSeen[as.TaskID]++
		if ids[as.AssignmentID] {
			t.Fatalf("duplicate assignment id %d", as.AssignmentID)
		}
		ids[as.AssignmentID] = true
		body := a.data.assignmentBody[as.AssignmentID]
		switch {
		case as.Status == StatusCancelled && body["cancelledDate"] == nil:
			t.Errorf("cancelled assignment %d has no cancelledDate", as.AssignmentID)
		case as.Status != StatusCancelled && body["cancelledDate"] != nil:
			t.Errorf("assignment %d (%s) has a cancelledDate", as.AssignmentID, as.Status)
		case as.Status == StatusCompleted && body["response"] == nil:
			t.Errorf("completed assignment %d has no response", as.AssignmentID)
		case as.Status != StatusCompleted && body["response"] != nil:
			t.Errorf("assignment %d (%s) has a response before completion", as.AssignmentID, as.Status)
		}
		if as.Status == StatusCompleted && as.TaskID == ITelTemplateID {
			groups := body["response"].(map[string]any)["groups"].([]any)
			if len(groups) != 7 {
				t.Errorf("cabinet form of %d has %d groups, want 7", as.AssignmentID, len(groups))
			}
		}
	}
	for _, st := range []string{StatusAssigned, StatusInProgress, StatusCompleted, StatusCancelled} {
		if statuses[st] == 0 {
			t.Errorf("no %s assignment among 300", st)
		}
	}
	if templatesSeen[ITelTemplateID] == 0 || len(templatesSeen) < 3 {
		t.Errorf("templates seen %v: want 32513 and others", templatesSeen)
	}
}

func TestEndpoints(t *testing.T) {
	s, hs := newTestServer(t, Config{Seed: 7, Assignments: 50})
	var completed Assignment
	for _, a := range s.Assignments() {
		if a.Status == StatusCompleted && a.TaskID == ITelTemplateID {
			completed = a
			break
		}
	}
	if completed.AssignmentID == 0 {
		t.Fatal("no completed iTel assignment in 50")
	}
	id := strconv.FormatInt(completed.AssignmentID, 10)

	resp, body := get(t, hs.URL+"/customTasks/assignment/"+id+"?full=true", nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("assignment: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var full map[string]any
	if err := json.Unmarshal(body, &full); err != nil {
		t.Fatal(err)
	}
	if full["response"] == nil || full["taskId"].(float64) != ITelTemplateID || full["assignmentId"].(float64) != float64(completed.AssignmentID) {
		t.Fatalf("unexpected body %s", body)
	}
	_, body = get(t, hs.URL+basePrefix+"/customTasks/assignment/"+id, nil)
	var short map[string]any
	_ = json.Unmarshal(body, &short)
	if _, has := short["response"]; has || short["assignmentId"] == nil {
		t.Fatalf("without full=true the response must be left out: %s", body)
	}

	pid := strconv.FormatInt(completed.ProjectID, 10)
	resp, body = get(t, hs.URL+"/export/project/"+pid, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"projectId":`+pid) {
		t.Fatalf("project: %d %s", resp.StatusCode, body)
	}
	resp, body = get(t, hs.URL+"/export/project/"+pid+"/media", nil)
	var media []map[string]any
	if err := json.Unmarshal(body, &media); err != nil || resp.StatusCode != 200 || len(media) == 0 {
		t.Fatalf("media: %d %s", resp.StatusCode, body)
	}
	first := strconv.FormatFloat(media[0]["mediaID"].(float64), 'f', -1, 64)
	_, body = get(t, hs.URL+"/export/project/"+pid+"/media?mediaIds="+first+",1", nil)
	media = nil
	_ = json.Unmarshal(body, &media)
	if len(media) != 1 {
		t.Fatalf("mediaIds filter: got %d items", len(media))
	}

	for _, p := range []string{"/customTasks/assignment/1", "/customTasks/assignment/..%2Fadmin", "/export/project/1", "/nope"} {
		if resp, _ := get(t, hs.URL+p, nil); resp.StatusCode != 404 {
			t.Errorf("%s: status %d, want 404", p, resp.StatusCode)
		}
	}
	recs := s.Requests()
	if last := recs[len(recs)-3]; last.Endpoint != "assignment" || last.RequestURI != "/customTasks/assignment/..%2Fadmin" {
		t.Errorf("escaped segment not kept: %+v", last)
	}
	if got := s.Stats().StatusCount(404); got != 4 {
		t.Errorf("404 count %d, want 4", got)
	}
}

func TestAuth(t *testing.T) {
	s, hs := newTestServer(t, Config{Token: "tok", BasicUser: "u", BasicPassword: "p", ClientID: "cid", ClientSecret: "cs", TokenTTL: time.Minute})
	id := strconv.FormatInt(s.Assignments()[0].AssignmentID, 10)
	u := hs.URL + "/customTasks/assignment/" + id
	cases := []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"none", nil, 401},
		{"bearer", map[string]string{"Authorization": "Bearer tok"}, 200},
		{"wrong bearer", map[string]string{"Authorization": "Bearer nope"}, 401},
		{"basic", map[string]string{"Authorization": "Basic dTpw"}, 200},
		{"wrong basic", map[string]string{"Authorization": "Basic dTp4"}, 401},
	}
	for _, c := range cases {
		if resp, _ := get(t, u, c.hdr); resp.StatusCode != c.want {
			t.Errorf("%s: status %d, want %d", c.name, resp.StatusCode, c.want)
		}
	}

	tokenReq := func(id, secret string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, hs.URL+"/oauth/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(id, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	if code, _ := tokenReq("cid", "bad"); code != 401 {
		t.Errorf("bad client secret: %d", code)
	}
	code, tok := tokenReq("cid", "cs")
	if code != 200 || tok["expires_in"].(float64) != 60 {
		t.Fatalf("token: %d %v", code, tok)
	}
	bearer := map[string]string{"Authorization": "Bearer " + tok["access_token"].(string)}
	if resp, _ := get(t, u, bearer); resp.StatusCode != 200 {
		t.Errorf("issued token refused: %d", resp.StatusCode)
	}
	s.RevokeTokens()
	if resp, _ := get(t, u, bearer); resp.StatusCode != 401 {
		t.Errorf("revoked token accepted: %d", resp.StatusCode)
	}
}

func TestRateLimitAnswers429WithRetryAfter(t *testing.T) {
	for _, httpDate := range []bool{false, true} {
		t.Run(fmt.Sprint("http_date=", httpDate), func(t *testing.T) {
			s, hs := newTestServer(t, Config{RateLimit: 2, RetryAfterHTTPDate: httpDate})
			u := hs.URL + "/customTasks/assignment/" + strconv.FormatInt(s.Assignments()[0].AssignmentID, 10)
			var codes []int
			var retryAfter string
			for range 3 {
				resp, _ := get(t, u, nil)
				codes = append(codes, resp.StatusCode)
				if resp.StatusCode == 429 {
					retryAfter = resp.Header.Get("Retry-After")
				}
			}
			if fmt.Sprint(codes) != "[200 200 429]" {
				t.Fatalf("codes %v, want [200 200 429]", codes)
			}
			if httpDate {
				if at, err := http.ParseTime(retryAfter); err != nil || !at.After(time.Now()) {
					t.Fatalf("Retry-After %q is not a future HTTP-date", retryAfter)
				}
			} else if retryAfter != "1" {
				t.Fatalf("Retry-After %q, want 1", retryAfter)
			}
			if st := s.Stats(); st.StatusCount(429) != 1 || st.MaxPerSecond != 3 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestFaultsAdminAndStats(t *testing.T) {
	s, hs := newTestServer(t, Config{})
	u := hs.URL + "/customTasks/assignment/" + strconv.FormatInt(s.Assignments()[0].AssignmentID, 10)
	post := func(body string) int {
		resp, err := http.Post(hs.URL+"/_sim/faults", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(`{"outage": true}`); code != 200 {
		t.Fatalf("POST faults: %d", code)
	}
	if resp, _ := get(t, u, nil); resp.StatusCode != 503 {
		t.Fatalf("outage: %d", resp.StatusCode)
	}
	post(`{"outage": false, "error_rate": 1}`)
	if resp, _ := get(t, u, nil); resp.StatusCode != 500 && resp.StatusCode != 503 {
		t.Fatalf("error_rate 1: %d", resp.StatusCode)
	}
	post(`{"outage_for": "150ms"}`)
	if resp, _ := get(t, u, nil); resp.StatusCode != 503 {
		t.Fatalf("timed outage: %d", resp.StatusCode)
	}
	time.Sleep(200 * time.Millisecond)
	if resp, _ := get(t, u, nil); resp.StatusCode != 200 {
		t.Fatalf("after timed outage: %d", resp.StatusCode)
	}
	if code := post(`{"error_rate": 2}`); code != 400 {
		t.Fatalf("invalid faults accepted: %d", code)
	}
	if code := post(`{"latency": "30ms"}`); code != 200 {
		t.Fatal("latency not accepted")
	}
	start := time.Now()
	get(t, u, nil)
	if time.Since(start) < 30*time.Millisecond {
		t.Fatal("latency not applied")
	}

	resp, body := get(t, hs.URL+"/_sim/stats", nil)
	var st Stats
	if err := json.Unmarshal(body, &st); err != nil || resp.StatusCode != 200 {
		t.Fatalf("stats: %d %s", resp.StatusCode, body)
	}
	if st.ByEndpoint["assignment"] != 5 || st.StatusCount(503) < 2 || st.StatusCount(200) != 2 {
		t.Fatalf("stats %+v", st)
	}
	http.Post(hs.URL+"/_sim/reset", "application/json", nil)
	if s.Stats().Total != 0 {
		t.Fatal("reset did not clear the counters")
	}
}

func TestTimeoutFaultHangsUntilClientLeaves(t *testing.T) {
	s, hs := newTestServer(t, Config{Faults: Faults{TimeoutRate: 1}})
	client := &http.Client{Timeout: 100 * time.Millisecond}
	_, err := client.Get(hs.URL + "/customTasks/assignment/" + strconv.FormatInt(s.Assignments()[0].AssignmentID, 10))
	if err == nil {
		t.Fatal("request did not time out")
	}
	deadline := time.Now().Add(2 * time.Second)
	for s.Stats().ByStatus["timeout"] != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("timeout not counted: %+v", s.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestGenerateEvents(t *testing.T) {
	s, _ := New(Config{Seed: 3, Assignments: 100})
	opts := DefaultEventOptions(9, 2000, s.Assignments())
	evs := GenerateEvents(opts)
	again := GenerateEvents(opts)
	if len(evs) != 2000 {
		t.Fatalf("%d events", len(evs))
	}
	types, malformed := map[string]int{}, map[string]int{}
	var camel, snake, offsets, unknown, itel, other int
	for i, ev := range evs {
		if !bytes.Equal(ev.Body, again[i].Body) {
			t.Fatalf("event %d differs between runs with one seed", i)
		}
		if ev.Malformed != "" {
			malformed[ev.Malformed]++
		}
		var m map[string]any
		err := json.Unmarshal(ev.Body, &m)
		if (ev.Malformed == malformedNotJSON) != (err != nil) {
			t.Fatalf("event %d (%s): json error %v", i, ev.Malformed, err)
		}
		if err != nil {
			continue
		}
		types[ev.EventType]++
		_, hasSnakeID := m["event_id"]
		_, hasCamelID := m["eventId"]
		if ev.Malformed == malformedMissingEventID && (hasSnakeID || hasCamelID) {
			t.Fatalf("event %d should have no event id: %s", i, ev.Body)
		}
		if _, ok := m["eventType"]; ok {
			camel++
		} else {
			snake++
		}
		ts, _ := m["ingested_at"].(string)
		for _, k := range []string{"ingestedAt", "IngestionTime"} {
			if v, ok := m[k].(string); ok {
				ts = v
			}
		}
		if ev.Malformed == "" {
			parsed, err := time.Parse(time.RFC3339Nano, ts)
			if err != nil || !parsed.Equal(ev.IngestedAt) {
				t.Fatalf("event %d: time %q does not parse to %v", i, ts, ev.IngestedAt)
			}
			if !strings.HasSuffix(ts, "Z") {
				offsets++
			}
		}
		if ev.Malformed == malformedBadTimestamp {
			if _, err := time.Parse(time.RFC3339Nano, ts); err == nil {
				t.Fatalf("event %d: bad timestamp %q parses", i, ts)
			}
		}
		isTask := strings.HasPrefix(ev.EventType, "CUSTOM_TASK_")
		_, hasAID := m["task_assignment_id"]
		_, hasCamelAID := m["taskAssignmentId"]
		if isTask && ev.Malformed != malformedMissingAssignmentID && !hasAID && !hasCamelAID {
			t.Fatalf("task event %d without assignment id: %s", i, ev.Body)
		}
		if ev.Malformed == malformedMissingAssignmentID && (hasAID || hasCamelAID || !isTask) {
			t.Fatalf("event %d should be a task event without assignment id: %s", i, ev.Body)
		}
		switch {
		case ev.UnknownAssignment:
			unknown++
		case isTask && ev.TemplateID == ITelTemplateID:
			itel++
		case isTask:
			other++
		}
	}
	for _, typ := range append([]string{EventCustomTaskAssigned, EventCustomTaskCompleted}, otherEventTypes...) {
		if types[typ] == 0 {
			t.Errorf("no %s event", typ)
		}
	}
	for _, k := range MalformedKinds {
		if malformed[k] == 0 {
			t.Errorf("no %s event", k)
		}
	}
	if camel == 0 || snake == 0 || offsets == 0 || unknown == 0 || itel == 0 || other == 0 {
		t.Errorf("mix: camel %d snake %d offsets %d unknown %d itel %d other %d", camel, snake, offsets, unknown, itel, other)
	}
}

func TestEventsCommand(t *testing.T) {
	var out bytes.Buffer
	app := &cli.App{Writer: &out, ErrWriter: io.Discard, Commands: []*cli.Command{Command()}}
	if err := app.Run([]string{"x", "claimx-sim", "events", "--count", "25", "--malformed-fraction", "0"}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 25 {
		t.Fatalf("%d lines", len(lines))
	}
	for _, l := range lines {
		if !json.Valid([]byte(l)) {
			t.Fatalf("not JSON: %s", l)
		}
	}
}

// TestUnauthorizedFault rejects valid credentials with 401 while the fault is
// active (a token rotation the client has not caught up with), through the
// admin endpoint and in process, and accepts them again after.
func TestUnauthorizedFault(t *testing.T) {
	s, hs := newTestServer(t, Config{Token: "tok"})
	u := hs.URL + "/customTasks/assignment/" + strconv.FormatInt(s.Assignments()[0].AssignmentID, 10)
	auth := map[string]string{"Authorization": "Bearer tok"}
	if resp, _ := get(t, u, auth); resp.StatusCode != 200 {
		t.Fatalf("before the fault: %d", resp.StatusCode)
	}
	resp, err := http.Post(hs.URL+"/_sim/faults", "application/json", strings.NewReader(`{"unauthorized_for": "200ms"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST unauthorized_for: %d", resp.StatusCode)
	}
	if f := s.CurrentFaults(); !f.Unauthorized || f.UnauthorizedFor <= 0 {
		t.Fatalf("current faults %+v: want unauthorized with time left", f)
	}
	resp, body := get(t, u, auth)
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("during the fault: %d %s", resp.StatusCode, body)
	}
	// The admin endpoints stay open.
	if resp, _ := get(t, hs.URL+"/_sim/stats", nil); resp.StatusCode != 200 {
		t.Fatalf("stats during the fault: %d", resp.StatusCode)
	}
	time.Sleep(250 * time.Millisecond)
	if resp, _ := get(t, u, auth); resp.StatusCode != 200 {
		t.Fatalf("after the fault: %d", resp.StatusCode)
	}
	if f := s.CurrentFaults(); f.Unauthorized {
		t.Fatalf("current faults %+v after the fault", f)
	}

	// Until cleared, in process.
	if err := s.SetFaults(Faults{Unauthorized: true}); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, u, auth); resp.StatusCode != 401 {
		t.Fatalf("unauthorized: %d", resp.StatusCode)
	}
	if err := s.SetFaults(Faults{}); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, u, auth); resp.StatusCode != 200 {
		t.Fatalf("cleared: %d", resp.StatusCode)
	}
	if st := s.Stats(); st.StatusCount(401) != 2 || st.StatusCount(200) != 3 {
		t.Fatalf("stats %+v", st)
	}
}

// refused says whether a GET to url fails to connect.
func refused(t *testing.T, url string) bool {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return strings.Contains(err.Error(), "refused")
	}
	resp.Body.Close()
	return false
}

// TestReservePauseResume: a reserved address refuses connections until
// Resume; Pause refuses them again (cutting open connections) and keeps the
// address; Close ends it for good.
func TestReservePauseResume(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Reserve("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	addr := s.Addr()
	u := s.URL() + "/customTasks/assignment/" + strconv.FormatInt(s.Assignments()[0].AssignmentID, 10)
	if s.Listening() || !refused(t, u) {
		t.Fatal("a reserved address accepted a connection before Resume")
	}
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	if !s.Listening() || s.Addr() != addr {
		t.Fatalf("after Resume: listening %v on %s, want %s", s.Listening(), s.Addr(), addr)
	}
	if resp, _ := get(t, u, nil); resp.StatusCode != 200 {
		t.Fatalf("after Resume: %d", resp.StatusCode)
	}

	// A request in flight when Pause comes is cut, and new ones are refused.
	if err := s.SetFaults(Faults{Latency: Duration(5 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	cut := make(chan error, 1)
	go func() {
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(u)
		if err == nil {
			resp.Body.Close()
		}
		cut <- err
	}()
	time.Sleep(200 * time.Millisecond)
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-cut:
		if err == nil {
			t.Fatal("the request in flight was answered after Pause")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the request in flight was not cut by Pause")
	}
	if s.Listening() || !refused(t, u) {
		t.Fatal("a paused simulator accepted a connection")
	}
	if err := s.SetFaults(Faults{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, u, nil); resp.StatusCode != 200 || s.Addr() != addr {
		t.Fatalf("after the second Resume: %d on %s", resp.StatusCode, s.Addr())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Resume(); err == nil {
		t.Fatal("Resume after Close succeeded")
	}
	if !refused(t, u) {
		t.Fatal("a closed simulator accepted a connection")
	}
}
