package processors

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/claimx/claimx-connect/claimxsim"
)

// mediaYAML renders a claimx_media config over a claimx_connection
// (label claimx) on the simulator at baseURL, storing under dir; over
// overrides (or removes, with "") processor fields.
func mediaYAML(baseURL, dir string, over map[string]string) (proc, resources string) {
	f := map[string]string{
		cmFieldConnection:        "claimx",
		cmFieldProjectID:         `"${! this.project_id }"`,
		cmFieldMediaIDs:          `root = this.photo_ids`,
		cmFieldStoreURI:          dir,
		cmFieldKeyPrefix:         `"${! this.project_id }/${! this.assignment_id }"`,
		cmFieldRetries:           "{ max_attempts: 2, initial_interval: 5ms, max_interval: 20ms }",
		holdFieldOnUnavailable:   "hold",
		holdFieldInitialInterval: "50ms",
		holdFieldMaxInterval:     "200ms",
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
	var b strings.Builder
	b.WriteString("claimx_media:\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s: %s\n", k, f[k])
	}
	conn := "processor_resources:\n  - label: claimx\n    claimx_connection:\n" +
		"      base_url: " + baseURL + "/service/cxedirest\n" +
		"      auth: { type: bearer, token: " + testToken + " }\n" +
		"      retries: { max_attempts: 2, initial_interval: 5ms, max_interval: 20ms }\n" +
		"      circuit_breaker: { open_timeout: 100ms }\n      hold_initial_interval: 50ms\n      hold_max_interval: 200ms\n"
	return b.String(), conn
}

// mediaForm is a record with photos: the first completed assignment with
// at least min photos.
type mediaForm struct {
	project, assignment int64
	ids                 []int64
}

func (f mediaForm) doc(extraIDs ...int64) string {
	ids := append(append([]int64(nil), f.ids...), extraIDs...)
	b, _ := json.Marshal(map[string]any{"project_id": f.project, "assignment_id": f.assignment, "photo_ids": ids})
	return string(b)
}

func findMediaForm(t *testing.T, s *claimxsim.Server, min int) mediaForm {
	t.Helper()
	for _, a := range s.Assignments() {
		if ids := s.MediaIDs(a.AssignmentID); len(ids) >= min {
			return mediaForm{project: a.ProjectID, assignment: a.AssignmentID, ids: ids}
		}
	}
	t.Fatalf("no assignment with %d photos", min)
	return mediaForm{}
}

// attachments decodes the result field of m.
func attachments(t *testing.T, m *service.Message) []map[string]any {
	t.Helper()
	if err := m.GetError(); err != nil {
		t.Fatalf("message failed: %v", err)
	}
	b, err := m.AsBytes()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Attachments []map[string]any `json:"attachments"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return doc.Attachments
}

var attachmentKeys = []string{"media_id", "file_name", "content_type", "size_bytes", "sha256", "object_key", "object_uri", "status", "reason", "link_refreshes", "download_ms"}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func TestClaimxMediaStoresAndSkipsStored(t *testing.T) {
	sim, hs := newSim(t, claimxsim.Config{Seed: 11, Assignments: 40})
	form := findMediaForm(t, sim, 2)
	dir := t.TempDir()
	proc, res := mediaYAML(hs.URL, dir, nil)
	p := startPipe(t, proc, res)

	out := p.process(form.doc())
	if len(out) != 1 {
		t.Fatalf("%d messages out, want 1", len(out))
	}
	atts := attachments(t, out[0])
	if len(atts) != len(form.ids) {
		t.Fatalf("%d attachments, want %d", len(atts), len(form.ids))
	}
	var total int64
	for i, a := range atts {
		for _, k := range attachmentKeys {
			if _, ok := a[k]; !ok {
				t.Errorf("attachment %d has no key %s: %v", i, k, a)
			}
		}
		id := form.ids[i]
		exp, err := sim.ExpectedMedia(id)
		must(t, err)
		wantKey := fmt.Sprintf("%d/%d/%d%s", form.project, form.assignment, id, map[string]string{"image/jpeg": ".jpg", "image/png": ".png"}[exp.ContentType])
		if a["status"] != "stored" || a["media_id"] != float64(id) || a["sha256"] != exp.SHA256 || a["size_bytes"] != float64(exp.Size) || a["object_key"] != wantKey || a["content_type"] != exp.ContentType || a["file_name"] != exp.Name {
			t.Fatalf("attachment %d = %v, want media %d stored at %s with %+v", i, a, id, wantKey, exp)
		}
		if got := fileSHA256(t, filepath.Join(dir, wantKey)); got != exp.SHA256 {
			t.Fatalf("stored file of media %d has sha %s, want %s", id, got, exp.SHA256)
		}
		if !strings.HasSuffix(a["object_uri"].(string), "/"+wantKey) || !strings.HasPrefix(a["object_uri"].(string), "file://") {
			t.Errorf("object_uri %v", a["object_uri"])
		}
		total += exp.Size
	}
	if n := p.metrics.counter("itel_media_downloads_total{status=stored}"); n != int64(len(form.ids)) {
		t.Errorf("downloads_total{stored} = %d, want %d", n, len(form.ids))
	}
	if n := p.metrics.counter("itel_media_bytes_stored_total{}"); n != total {
		t.Errorf("bytes_stored_total = %d, want %d", n, total)
	}
	if n := p.metrics.timing("itel_media_download_latency_ns{}"); n != len(form.ids) {
		t.Errorf("download_latency_ns timed %d downloads, want %d", n, len(form.ids))
	}

	// The same record again: every photo is found, nothing is written.
	mtimes := map[string]time.Time{}
	for _, a := range atts {
		info, err := os.Stat(filepath.Join(dir, a["object_key"].(string)))
		must(t, err)
		mtimes[a["object_key"].(string)] = info.ModTime()
	}
	again := attachments(t, p.process(form.doc())[0])
	for i, a := range again {
		if a["status"] != "already_stored" || a["sha256"] != atts[i]["sha256"] {
			t.Fatalf("replayed attachment %d = %v, want already_stored", i, a)
		}
		info, err := os.Stat(filepath.Join(dir, a["object_key"].(string)))
		must(t, err)
		if !info.ModTime().Equal(mtimes[a["object_key"].(string)]) {
			t.Errorf("%s was written again", a["object_key"])
		}
	}
	if n := p.metrics.counter("itel_media_downloads_total{status=already_stored}"); n != int64(len(form.ids)) {
		t.Errorf("downloads_total{already_stored} = %d, want %d", n, len(form.ids))
	}
	if n := p.metrics.counter("itel_media_bytes_stored_total{}"); n != total {
		t.Errorf("bytes_stored_total after the replay = %d, want still %d", n, total)
	}
}

// TestClaimxMediaRejections: a photo's own failure rejects that attachment
// only; the message flows on without error.
func TestClaimxMediaRejections(t *testing.T) {
	const missing = 999_999_999
	cases := []struct {
		name   string
		sim    func(c *claimxsim.Config)
		faults func(f mediaForm) claimxsim.Faults
		over   map[string]string
		extra  []int64
		// project replaces the record's project id when not zero.
		project int64
		// want maps an index of photo_ids to a substring of its reason;
		// other photos are stored.
		want func(f mediaForm) map[int]string
	}{
		{
			name:   "empty",
			faults: func(f mediaForm) claimxsim.Faults { return claimxsim.Faults{MediaEmpty: f.ids[:1]} },
			want:   func(f mediaForm) map[int]string { return map[int]string{0: fmt.Sprintf("media %d: 0 bytes", f.ids[0])} },
		},
		{
			name:   "oversize",
			sim:    func(c *claimxsim.Config) { c.MediaOversizeBytes = 2 << 20 },
			faults: func(f mediaForm) claimxsim.Faults { return claimxsim.Faults{MediaOversize: f.ids[1:2]} },
			over:   map[string]string{cmFieldMaxSize: "1MiB"},
			want: func(f mediaForm) map[int]string {
				return map[int]string{1: fmt.Sprintf("media %d: 2097152 bytes exceeds max_size 1MiB", f.ids[1])}
			},
		},
		{
			name: "type not allowed",
			over: map[string]string{cmFieldAllowedTypes: "[ image/gif ]"},
			want: func(f mediaForm) map[int]string {
				m := map[int]string{}
				for i, id := range f.ids {
					m[i] = fmt.Sprintf("media %d: content type image/", id)
				}
				return m
			},
		},
		{
			name:    "project unknown to ClaimX",
			project: 777_777_777,
			want: func(f mediaForm) map[int]string {
				m := map[int]string{}
				for i, id := range f.ids {
					m[i] = fmt.Sprintf("media %d: media list: ", id)
				}
				return m
			},
		},
		{
			name:  "not in the project's list",
			extra: []int64{missing},
			want: func(f mediaForm) map[int]string {
				return map[int]string{len(f.ids): fmt.Sprintf("media %d: not in project %d's media list", missing, f.project)}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := claimxsim.Config{Seed: 11, Assignments: 40}
			if tc.sim != nil {
				tc.sim(&cfg)
			}
			sim, hs := newSim(t, cfg)
			form := findMediaForm(t, sim, 2)
			if tc.faults != nil {
				must(t, sim.SetFaults(tc.faults(form)))
			}
			proc, res := mediaYAML(hs.URL, t.TempDir(), tc.over)
			p := startPipe(t, proc, res)
			if tc.project != 0 {
				form.project = tc.project
			}
			atts := attachments(t, p.process(form.doc(tc.extra...))[0])
			want := tc.want(form)
			if len(atts) != len(form.ids)+len(tc.extra) {
				t.Fatalf("%d attachments, want %d", len(atts), len(form.ids)+len(tc.extra))
			}
			rejected := 0
			for i, a := range atts {
				reason, isRejected := want[i]
				switch {
				case isRejected:
					rejected++
					if a["status"] != "rejected" || !strings.Contains(a["reason"].(string), reason) {
						t.Errorf("attachment %d = %v, want rejected with %q", i, a, reason)
					}
				case a["status"] != "stored":
					t.Errorf("attachment %d = %v, want stored", i, a)
				}
			}
			if n := p.metrics.counter("itel_media_downloads_total{status=rejected}"); n != int64(rejected) {
				t.Errorf("downloads_total{rejected} = %d, want %d", n, rejected)
			}
		})
	}
}

// TestClaimxMediaMessageErrors: only a message that cannot say what to
// download fails.
func TestClaimxMediaMessageErrors(t *testing.T) {
	sim, hs := newSim(t, claimxsim.Config{Seed: 11, Assignments: 40})
	form := findMediaForm(t, sim, 1)
	proc, res := mediaYAML(hs.URL, t.TempDir(), nil)
	p := startPipe(t, proc, res)
	cases := []struct {
		doc  string
		want string // substring of the error; "" = no error, no attachments
	}{
		{doc: `not json`, want: "not JSON"},
		{doc: `[1,2]`, want: "not an object"},
		{doc: `{"assignment_id": 5, "photo_ids": [1]}`, want: "assignment_id 5"},
		{doc: fmt.Sprintf(`{"assignment_id": 6, "project_id": %d, "photo_ids": "12"}`, form.project), want: "media_ids"},
		{doc: fmt.Sprintf(`{"assignment_id": 7, "project_id": %d, "photo_ids": [1.5]}`, form.project), want: "not an integer"},
		{doc: fmt.Sprintf(`{"assignment_id": 8, "project_id": %d, "photo_ids": null}`, form.project)},
		{doc: fmt.Sprintf(`{"assignment_id": 9, "project_id": %d, "photo_ids": []}`, form.project)},
	}
	docs := make([]string, len(cases))
	for i, c := range cases {
		docs[i] = c.doc
	}
	out := p.process(docs...)
	if len(out) != len(cases) {
		t.Fatalf("%d messages out, want %d", len(out), len(cases))
	}
	for i, c := range cases {
		err := out[i].GetError()
		if c.want == "" {
			if atts := attachments(t, out[i]); len(atts) != 0 {
				t.Errorf("%s: attachments %v, want none", c.doc, atts)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.doc, err, c.want)
		}
	}
}

// TestClaimxMediaOutageHolds: while the media server fails every download
// the batch waits; when it recovers, every photo is stored and none is
// rejected. The links (1s TTL) expire during the outage, so each is
// refreshed before its download.
func TestClaimxMediaOutageHolds(t *testing.T) {
	sim, hs := newSim(t, claimxsim.Config{Seed: 11, Assignments: 40, MediaLinkTTL: time.Second})
	form := findMediaForm(t, sim, 2)
	proc, res := mediaYAML(hs.URL, t.TempDir(), nil)
	p := startPipe(t, proc, res)
	must(t, sim.SetFaults(claimxsim.Faults{MediaErrorRate: 1}))

	done := make(chan []*service.Message, 1)
	go func() { done <- p.process(form.doc()) }()
	// Held: failed downloads accumulate, nothing comes out.
	waitFor(t, "failed downloads", func() bool {
		st := sim.Stats()
		return st.ByStatus["500"]+st.ByStatus["503"] >= 4
	})
	select {
	case out := <-done:
		t.Fatalf("the batch came out during the outage: %v", out)
	case <-time.After(1500 * time.Millisecond):
	}
	must(t, sim.SetFaults(claimxsim.Faults{}))
	var out []*service.Message
	select {
	case out = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the batch did not resume after the outage")
	}
	atts := attachments(t, out[0])
	var refreshes int64
	for i, a := range atts {
		if a["status"] != "stored" {
			t.Errorf("attachment %d = %v, want stored after the outage", i, a)
		}
		if a["link_refreshes"].(float64) < 1 {
			t.Errorf("attachment %d = %v, want its expired link refreshed", i, a)
		}
		refreshes += int64(a["link_refreshes"].(float64))
	}
	if n := p.metrics.counter("itel_media_link_refreshes_total{}"); n != refreshes {
		t.Errorf("link_refreshes_total = %d, want %d", n, refreshes)
	}
	if n := p.metrics.counter("itel_media_downloads_total{status=rejected}"); n != 0 {
		t.Errorf("%d rejected during an outage", n)
	}
	holds := p.metrics.counter("itel_media_holds_total{reason=500}") + p.metrics.counter("itel_media_holds_total{reason=503}")
	if holds < 1 {
		t.Errorf("itel_media_holds_total{reason=500|503} = %d, want at least 1", holds)
	}
	if !strings.Contains(p.logs.String(), "dependency available again: resuming") {
		t.Errorf("no resume log line")
	}
}

// TestClaimxMediaOutageAsError: with on_unavailable: error an outage fails
// the message (for a dead-letter route) instead of rejecting photos.
func TestClaimxMediaOutageAsError(t *testing.T) {
	sim, hs := newSim(t, claimxsim.Config{Seed: 11, Assignments: 40})
	form := findMediaForm(t, sim, 1)
	proc, res := mediaYAML(hs.URL, t.TempDir(), map[string]string{holdFieldOnUnavailable: "error"})
	p := startPipe(t, proc, res)
	must(t, sim.SetFaults(claimxsim.Faults{MediaLinksExpired: true}))
	out := p.process(form.doc())
	err := out[0].GetError()
	if err == nil || !strings.Contains(err.Error(), "expired") || !strings.Contains(err.Error(), fmt.Sprint(form.assignment)) {
		t.Fatalf("error %v, want one naming the expired links and the record", err)
	}
}

// TestClaimxMediaStorageOutageHolds: object storage failing (here the
// store's directory replaced by a file) holds the batch; once it is back
// every photo is stored.
func TestClaimxMediaStorageOutageHolds(t *testing.T) {
	sim, hs := newSim(t, claimxsim.Config{Seed: 11, Assignments: 40})
	form := findMediaForm(t, sim, 2)
	dir := filepath.Join(t.TempDir(), "store")
	proc, res := mediaYAML(hs.URL, dir, nil)
	p := startPipe(t, proc, res)
	// A record without photos: the processor is built (and its store
	// opened) before the directory goes.
	p.process(`{"project_id": 1, "photo_ids": []}`)
	must(t, os.RemoveAll(dir))
	must(t, os.WriteFile(dir, []byte("not a directory"), 0o644))

	done := make(chan []*service.Message, 1)
	go func() { done <- p.process(form.doc()) }()
	defer func() {
		if t.Failed() {
			t.Log(p.logs.String())
		}
	}()
	waitFor(t, "a storage hold", func() bool { return p.metrics.counter("itel_media_holds_total{reason=storage}") >= 1 })
	select {
	case out := <-done:
		t.Fatalf("the batch came out while storage failed: %v", out)
	case <-time.After(300 * time.Millisecond):
	}
	must(t, os.Remove(dir))
	must(t, os.MkdirAll(dir, 0o755))
	var out []*service.Message
	select {
	case out = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the batch did not resume after storage came back")
	}
	for i, a := range attachments(t, out[0]) {
		exp, err := sim.ExpectedMedia(form.ids[i])
		must(t, err)
		if a["status"] != "stored" || fileSHA256(t, filepath.Join(dir, a["object_key"].(string))) != exp.SHA256 {
			t.Errorf("attachment %d = %v, want stored with sha %s", i, a, exp.SHA256)
		}
	}
}

// TestClaimxMediaAPIOutageHolds: the media list failing (ClaimX API down)
// holds the batch under the connection's hold settings; it then completes.
func TestClaimxMediaAPIOutageHolds(t *testing.T) {
	sim, hs := newSim(t, claimxsim.Config{Seed: 11, Assignments: 40})
	form := findMediaForm(t, sim, 2)
	proc, res := mediaYAML(hs.URL, t.TempDir(), nil)
	p := startPipe(t, proc, res)
	must(t, sim.SetFaults(claimxsim.Faults{Outage: true}))

	done := make(chan []*service.Message, 1)
	go func() { done <- p.process(form.doc()) }()
	waitFor(t, "an API hold", func() bool { return p.metrics.counter("itel_media_claimx_api_holds_total{reason=503}") >= 1 })
	select {
	case out := <-done:
		t.Fatalf("the batch came out during the API outage: %v", out)
	case <-time.After(300 * time.Millisecond):
	}
	must(t, sim.SetFaults(claimxsim.Faults{}))
	var out []*service.Message
	select {
	case out = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the batch did not resume after the API outage")
	}
	for i, a := range attachments(t, out[0]) {
		if a["status"] != "stored" {
			t.Errorf("attachment %d = %v, want stored after the API outage", i, a)
		}
	}
}
