package claimxsim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

func itelPost(t *testing.T, rawURL, token, key, body string) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, rawURL, strings.NewReader(body))
	must(t, err)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out, resp.Header
}

func TestITelSubmissions(t *testing.T) {
	const token = "itel-secret"
	s, hs := newTestServer(t, Config{Token: "claimx-secret", ITelToken: token})
	u := hs.URL + DefaultITelPath
	form1 := `{"schemaVersion":"1","assignmentId":5423001,"formResponseId":"abc","answers":{"lowerDamaged":true}}`
	// The same JSON value, spaced and ordered differently.
	form1Again := `{ "formResponseId": "abc", "answers": {"lowerDamaged": true}, "assignmentId": 5423001, "schemaVersion": "1" }`
	form1Changed := `{"schemaVersion":"1","assignmentId":5423001,"formResponseId":"abc","answers":{"lowerDamaged":false}}`
	form2 := `{"assignmentId":"5423004","formResponseId":"def"}`

	steps := []struct {
		name, token, key, body string
		want                   int
		wantRef                string
	}{
		{"first submission", token, "5423001:abc", form1, 201, "ITL-1"},
		{"replay of the same key and body", token, "5423001:abc", form1Again, 200, "ITL-1"},
		{"same key, different body", token, "5423001:abc", form1Changed, 409, "ITL-1"},
		{"second form", token, "5423004:def", form2, 201, "ITL-2"},
		{"no idempotency key", token, "", form2, 400, ""},
		{"missing formResponseId", token, "k-bad", `{"assignmentId":1}`, 422, ""},
		{"empty assignmentId", token, "k-bad2", `{"assignmentId":"","formResponseId":"x"}`, 422, ""},
		{"not JSON", token, "k-bad3", `assignmentId=1`, 400, ""},
		{"no token", "", "k-new", form2, 401, ""},
		{"ClaimX token is not iTel's", "claimx-secret", "k-new", form2, 401, ""},
		{"same form under another key", token, "other-key", form1, 201, "ITL-3"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			code, out, hdr := itelPost(t, u, st.token, st.key, st.body)
			if code != st.want {
				t.Fatalf("status %d, want %d: %v", code, st.want, out)
			}
			if ref, _ := out["reference"].(string); ref != st.wantRef {
				t.Fatalf("reference %q, want %q", ref, st.wantRef)
			}
			if code == 201 || code == 200 {
				if out["status"] != "accepted" {
					t.Fatalf("status field %v", out["status"])
				}
				if replayed := hdr.Get("Idempotent-Replayed") == "true"; replayed != (code == 200) {
					t.Fatalf("Idempotent-Replayed header %q on a %d", hdr.Get("Idempotent-Replayed"), code)
				}
			}
		})
	}

	want := ITelCounts{Accepted: 3, Replays: 1, Conflicts: 1, DuplicateForms: 1, Rejected: 6}
	if got := s.ITelCounts(); got != want {
		t.Fatalf("counts %+v, want %+v", got, want)
	}
	subs := s.ITelSubmissions()
	if len(subs) != 3 || subs[0].AssignmentID != "5423001" || subs[0].FormResponseID != "abc" || subs[0].Replays != 1 ||
		subs[1].AssignmentID != "5423004" || subs[2].IdempotencyKey != "other-key" {
		t.Fatalf("submissions %+v", subs)
	}

	for _, tc := range []struct {
		name, ref, token string
		want             int
	}{
		{"existing reference", "ITL-2", token, 200},
		{"unknown reference", "ITL-99", token, 404},
		{"no token", "ITL-2", "", 401},
	} {
		t.Run("GET "+tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.token != "" {
				hdr["Authorization"] = "Bearer " + tc.token
			}
			resp, body := get(t, u+"/"+tc.ref, hdr)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, body)
			}
			var sub ITelSubmission
			if tc.want == 200 && (json.Unmarshal(body, &sub) != nil || sub.Reference != tc.ref || sub.FormResponseID != "def") {
				t.Fatalf("submission %s", body)
			}
		})
	}

	resp, body := get(t, hs.URL+"/_sim/itel", nil)
	var rep itelReport
	if resp.StatusCode != 200 || json.Unmarshal(body, &rep) != nil || rep.Counts.Accepted != 3 || len(rep.Submissions) != 3 {
		t.Fatalf("/_sim/itel: %d %s", resp.StatusCode, body)
	}
	if st := s.Stats(); st.ByEndpoint["itel"] != int64(len(steps)+3) {
		t.Fatalf("itel requests counted %d, want %d", st.ByEndpoint["itel"], len(steps)+3)
	}
	s.ResetITel()
	if s.ITelCounts() != (ITelCounts{}) || len(s.ITelSubmissions()) != 0 {
		t.Fatal("ResetITel kept submissions")
	}
}

func TestITelOutage(t *testing.T) {
	s, hs := newTestServer(t, Config{ITelPath: "/api/itel/submit/"})
	u := hs.URL + "/api/itel/submit"
	body := `{"assignmentId":1,"formResponseId":"r"}`
	post := func(f string) {
		resp, err := http.Post(hs.URL+"/_sim/faults", "application/json", strings.NewReader(f))
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("POST faults %s: %d", f, resp.StatusCode)
		}
	}
	claimx := func() int {
		resp, _ := get(t, hs.URL+"/export/project/"+strconv.FormatInt(s.Assignments()[0].ProjectID, 10), nil)
		return resp.StatusCode
	}

	for _, tc := range []struct {
		name       string
		faults     string
		wait       time.Duration
		want       int
		wantClaimX int
	}{
		{"outage on the iTel endpoint alone", `{"itel_outage": true}`, 0, 503, 200},
		{"ClaimX outage leaves iTel up", `{"outage": true}`, 0, 201, 503},
		{"timed outage", `{"itel_outage_for": "150ms"}`, 0, 503, 200},
		{"after the timed outage", "", 200 * time.Millisecond, 200, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.faults != "" {
				post(tc.faults)
			}
			time.Sleep(tc.wait)
			code, out, hdr := itelPost(t, u, "", "key-1", body)
			if code != tc.want {
				t.Fatalf("iTel status %d, want %d: %v", code, tc.want, out)
			}
			if timed := tc.name == "timed outage"; timed != (hdr.Get("Retry-After") == "1") {
				t.Fatalf("Retry-After %q on %s", hdr.Get("Retry-After"), tc.name)
			}
			if code := claimx(); code != tc.wantClaimX {
				t.Fatalf("ClaimX status %d, want %d", code, tc.wantClaimX)
			}
		})
	}
	if c := s.ITelCounts(); c.Unavailable != 2 || c.Accepted != 1 || c.Replays != 1 {
		t.Fatalf("counts %+v", c)
	}
	if f := s.CurrentFaults(); f.ITelOutage {
		t.Fatal("timed iTel outage still reported")
	}
	must(t, s.SetFaults(Faults{ITelOutageFor: Duration(time.Minute)}))
	if f := s.CurrentFaults(); !f.ITelOutage || f.ITelOutageFor <= 0 {
		t.Fatalf("CurrentFaults during a timed iTel outage: %+v", f)
	}
}

// syncBuffer is a bytes.Buffer safe for the command's goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestCommandStartupLineHidesSecrets starts `claimx-sim` with an iTel token
// and a link TTL: the startup line names the settings, never the token.
func TestCommandStartupLineHidesSecrets(t *testing.T) {
	const secret = "itel-very-secret"
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"with iTel token", []string{"--itel-token", secret, "--media-link-ttl", "90s"}, []string{"media links valid 1m30s", "iTel at /itel/v1/submissions, auth bearer"}},
		{"defaults", nil, []string{"media links valid 5m0s", "auth none"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var errOut syncBuffer
			app := &cli.App{Writer: io.Discard, ErrWriter: &errOut, Commands: []*cli.Command{Command()}}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() {
				done <- app.RunContext(ctx, append([]string{"x", "claimx-sim", "--addr", "127.0.0.1:0", "--assignments", "5"}, tc.args...))
			}()
			deadline := time.Now().Add(5 * time.Second)
			for !strings.Contains(errOut.String(), "listening") && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			line := errOut.String()
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("startup line %q lacks %q", line, w)
				}
			}
			if strings.Contains(line, secret) {
				t.Errorf("startup line %q shows the iTel token", line)
			}
		})
	}
}
