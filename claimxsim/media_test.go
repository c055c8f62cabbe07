package claimxsim

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// completedITelMedia finds a completed iTel assignment and the media ids its
// form's image answers reference, read from the API body.
func completedITelMedia(t *testing.T, s *Server, hsURL string, hdr map[string]string) (Assignment, []int64) {
	t.Helper()
	for _, a := range s.Assignments() {
		if a.Status != StatusCompleted || a.TaskID != ITelTemplateID {
			continue
		}
		resp, body := get(t, fmt.Sprintf("%s/customTasks/assignment/%d?full=true", hsURL, a.AssignmentID), hdr)
		if resp.StatusCode != 200 {
			t.Fatalf("assignment %d: %d %s", a.AssignmentID, resp.StatusCode, body)
		}
		var doc struct {
			Response struct {
				Groups []struct {
					QuestionAndAnswers []struct {
						ResponseAnswerExport struct {
							ClaimMediaIDs []int64 `json:"claimMediaIds"`
						} `json:"responseAnswerExport"`
					} `json:"questionAndAnswers"`
				} `json:"groups"`
			} `json:"response"`
		}
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatalf("decoding assignment %d: %v", a.AssignmentID, err)
		}
		var ids []int64
		for _, g := range doc.Response.Groups {
			for _, q := range g.QuestionAndAnswers {
				ids = append(ids, q.ResponseAnswerExport.ClaimMediaIDs...)
			}
		}
		if len(ids) > 0 {
			return a, ids
		}
	}
	t.Fatal("no completed iTel assignment with photos in the seeded data")
	return Assignment{}, nil
}

type mediaEntry struct {
	MediaID          int64  `json:"mediaID"`
	TaskAssignmentID int64  `json:"taskAssignmentId"`
	MediaType        string `json:"mediaType"`
	MediaName        string `json:"mediaName"`
	TakenDate        string `json:"takenDate"`
	FullDownloadLink string `json:"fullDownloadLink"`
	ExpiresAt        string `json:"expiresAt"`
}

func mediaList(t *testing.T, hsURL string, project int64, ids []int64, hdr map[string]string) (int, []mediaEntry) {
	t.Helper()
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatInt(id, 10)
	}
	resp, body := get(t, fmt.Sprintf("%s/service/cxedirest/export/project/%d/media?mediaIds=%s", hsURL, project, strings.Join(parts, ",")), hdr)
	var out []mediaEntry
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("decoding media list: %v: %s", err, body)
		}
	}
	return resp.StatusCode, out
}

func TestMediaListForCompletedITelAssignment(t *testing.T) {
	const token = "claimx-secret"
	auth := map[string]string{"Authorization": "Bearer " + token}
	s, hs := newTestServer(t, Config{Seed: 11, Token: token, MediaLinkTTL: 90 * time.Second})
	a, ids := completedITelMedia(t, s, hs.URL, auth)
	if got := s.MediaIDs(a.AssignmentID); fmt.Sprint(got) != fmt.Sprint(slices.Sorted(slices.Values(ids))) {
		t.Fatalf("MediaIDs(%d) = %v, the form references %v", a.AssignmentID, got, ids)
	}
	before := time.Now()
	const unknown = 1
	code, list := mediaList(t, hs.URL, a.ProjectID, append(append([]int64(nil), ids...), unknown), auth)
	if code != 200 || len(list) != len(ids) {
		t.Fatalf("media list: status %d, %d entries for %d ids (+1 unknown)", code, len(list), len(ids))
	}
	want := map[int64]bool{}
	for _, id := range ids {
		want[id] = true
	}
	for _, m := range list {
		if !want[m.MediaID] || m.TaskAssignmentID != a.AssignmentID {
			t.Errorf("entry %+v: not one of the form's ids %v of assignment %d", m, ids, a.AssignmentID)
		}
		ext := map[string]string{"image/jpeg": "jpg", "image/png": "png"}[m.MediaType]
		if ext == "" || m.MediaName != fmt.Sprintf("IMG_%d.%s", m.MediaID, ext) {
			t.Errorf("media %d: type %q name %q", m.MediaID, m.MediaType, m.MediaName)
		}
		if _, err := time.Parse(apiTimeLayout, m.TakenDate); err != nil {
			t.Errorf("media %d: takenDate %q: %v", m.MediaID, m.TakenDate, err)
		}
		exp, err := time.Parse(apiTimeLayout, m.ExpiresAt)
		if err != nil || exp.Before(before.Add(88*time.Second)) || exp.After(time.Now().Add(91*time.Second)) {
			t.Errorf("media %d: expiresAt %q not 90s ahead (%v)", m.MediaID, m.ExpiresAt, err)
		}
		u, err := url.Parse(m.FullDownloadLink)
		if err != nil || "http://"+u.Host != hs.URL || u.Path != fmt.Sprintf("/media/%d", m.MediaID) {
			t.Errorf("media %d: link %q is not served by the simulator", m.MediaID, m.FullDownloadLink)
		}
	}

	for _, tc := range []struct {
		name    string
		project int64
		hdr     map[string]string
		faults  Faults
		want    int
	}{
		{"unknown project", 1, auth, Faults{}, 404},
		{"no token", a.ProjectID, nil, Faults{}, 401},
		{"outage", a.ProjectID, auth, Faults{Outage: true}, 503},
		{"only unknown ids", a.ProjectID, auth, Faults{}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			must(t, s.SetFaults(tc.faults))
			q := ids
			if tc.name == "only unknown ids" {
				q = []int64{unknown}
			}
			code, list := mediaList(t, hs.URL, tc.project, q, tc.hdr)
			if code != tc.want || (code == 200 && len(list) != 0) {
				t.Fatalf("status %d with %d entries, want %d", code, len(list), tc.want)
			}
		})
	}
	must(t, s.SetFaults(Faults{}))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestMediaDownload(t *testing.T) {
	const oversize = 3 << 20
	s, hs := newTestServer(t, Config{Seed: 4, Token: "t", MediaOversizeBytes: oversize})
	auth := map[string]string{"Authorization": "Bearer t"}
	a, ids := completedITelMedia(t, s, hs.URL, auth)
	_, list := mediaList(t, hs.URL, a.ProjectID, ids, auth)
	if len(list) < 1 {
		t.Fatal("empty media list")
	}
	id := list[0].MediaID
	exp, err := s.ExpectedMedia(id)
	must(t, err)
	link := list[0].FullDownloadLink
	other := s.MediaLink(hs.URL, ids[len(ids)-1], time.Now().Add(time.Minute))

	for _, tc := range []struct {
		name     string
		link     string
		faults   Faults
		want     int
		wantSize int64 // -1: the expected file's size and hash
		wantBody string
	}{
		{"valid link, no bearer token needed", link, Faults{}, 200, -1, ""},
		{"expired link", s.MediaLink(hs.URL, id, time.Now().Add(-time.Second)), Faults{}, 403, 0, "expired"},
		{"bad signature", strings.Replace(link, "sig=", "sig=00", 1), Faults{}, 403, 0, "signature"},
		{"signature of another id", strings.Replace(other, fmt.Sprintf("/media/%d?", ids[len(ids)-1]), fmt.Sprintf("/media/%d?", id+1), 1), Faults{}, 403, 0, "signature"},
		{"missing exp", strings.Split(link, "?")[0], Faults{}, 403, 0, "signature"},
		{"0-byte fault", link, Faults{MediaEmpty: []int64{id}}, 200, 0, ""},
		{"oversize fault", link, Faults{MediaOversize: []int64{id}}, 200, oversize, ""},
		{"fault on another id", link, Faults{MediaEmpty: []int64{id + 1}}, 200, -1, ""},
		{"5xx fault", link, Faults{MediaErrorRate: 1}, 0, 0, "simulated"},
		{"claimx outage does not touch downloads", link, Faults{Outage: true}, 200, -1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			must(t, s.SetFaults(tc.faults))
			t.Cleanup(func() { _ = s.SetFaults(Faults{}) })
			resp, body := get(t, tc.link, nil)
			if tc.want == 0 {
				if resp.StatusCode != 500 && resp.StatusCode != 503 {
					t.Fatalf("status %d, want 500 or 503", resp.StatusCode)
				}
			} else if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %.200s", resp.StatusCode, tc.want, body)
			}
			if tc.wantBody != "" && !strings.Contains(string(body), tc.wantBody) {
				t.Fatalf("body %q does not say %q", body, tc.wantBody)
			}
			if resp.StatusCode != 200 {
				return
			}
			size := tc.wantSize
			if size < 0 {
				size = exp.Size
				sum := sha256.Sum256(body)
				if hex.EncodeToString(sum[:]) != exp.SHA256 {
					t.Fatal("downloaded bytes differ from ExpectedMedia's SHA-256")
				}
			}
			if int64(len(body)) != size || resp.ContentLength != size {
				t.Fatalf("got %d bytes, Content-Length %d, want %d", len(body), resp.ContentLength, size)
			}
			if ct := resp.Header.Get("Content-Type"); ct != exp.ContentType {
				t.Fatalf("Content-Type %q, want %q", ct, exp.ContentType)
			}
			if size > 0 && !hasImageMagic(body, exp.ContentType) {
				t.Fatalf("bytes do not start with a %s header: % x", exp.ContentType, body[:8])
			}
		})
	}
	st := s.Stats()
	if st.ByEndpoint["media_download"] != 10 {
		t.Fatalf("media_download requests counted: %d, want 10", st.ByEndpoint["media_download"])
	}
}

func hasImageMagic(b []byte, contentType string) bool {
	if contentType == "image/png" {
		return bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n"))
	}
	return bytes.HasPrefix(b, []byte{0xFF, 0xD8, 0xFF}) && bytes.HasSuffix(b, []byte{0xFF, 0xD9})
}

func TestMediaLinksExpiredFault(t *testing.T) {
	s, hs := newTestServer(t, Config{Seed: 2})
	a, ids := completedITelMedia(t, s, hs.URL, nil)
	for _, tc := range []struct {
		name    string
		faults  Faults
		want    int
		expired bool
	}{
		{"links expire immediately", Faults{MediaLinksExpired: true}, 403, true},
		{"fault lifted: fresh links work", Faults{}, 200, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			must(t, s.SetFaults(tc.faults))
			_, list := mediaList(t, hs.URL, a.ProjectID, ids[:1], nil)
			if len(list) != 1 {
				t.Fatalf("media list: %d entries", len(list))
			}
			exp, err := time.Parse(apiTimeLayout, list[0].ExpiresAt)
			if err != nil || exp.Before(time.Now()) != tc.expired {
				t.Fatalf("expiresAt %s: expired=%v, want %v (%v)", list[0].ExpiresAt, !tc.expired, tc.expired, err)
			}
			if resp, body := get(t, list[0].FullDownloadLink, nil); resp.StatusCode != tc.want {
				t.Fatalf("download: %d %s, want %d", resp.StatusCode, body, tc.want)
			}
		})
	}
}

// TestMediaLargeFileReadSlowly reads a multi-MiB file in small pieces with
// pauses, as a client streaming to slow storage would.
func TestMediaLargeFileReadSlowly(t *testing.T) {
	s, hs := newTestServer(t, Config{Seed: 9, MediaMinSize: 4 << 20, MediaMaxSize: 6 << 20})
	var id int64
	for _, a := range s.Assignments() {
		if ids := s.MediaIDs(a.AssignmentID); len(ids) > 0 {
			id = ids[0]
			break
		}
	}
	exp, err := s.ExpectedMedia(id)
	must(t, err)
	if exp.Size < 4<<20 || exp.Size > 6<<20 {
		t.Fatalf("size %d outside the configured range", exp.Size)
	}
	resp, err := http.Get(s.MediaLink(hs.URL, id, time.Now().Add(time.Minute)))
	must(t, err)
	defer resp.Body.Close()
	h := sha256.New()
	buf := make([]byte, 256<<10)
	var n int64
	for {
		k, err := resp.Body.Read(buf)
		h.Write(buf[:k])
		n += int64(k)
		if err == io.EOF {
			break
		}
		must(t, err)
		time.Sleep(2 * time.Millisecond)
	}
	if n != exp.Size || hex.EncodeToString(h.Sum(nil)) != exp.SHA256 {
		t.Fatalf("read %d bytes (want %d), hash match %v", n, exp.Size, hex.EncodeToString(h.Sum(nil)) == exp.SHA256)
	}
}

func TestExpectedMediaIsDeterministicPerSeed(t *testing.T) {
	files := map[string]MediaFile{}
	for _, tc := range []struct {
		name string
		seed int64
	}{{"seed 3", 3}, {"seed 3 again", 3}, {"seed 4", 4}} {
		s, err := New(Config{Seed: tc.seed, Assignments: 30, MediaLinkSecret: "x"})
		must(t, err)
		var id int64
		for _, a := range s.Assignments() {
			if ids := s.MediaIDs(a.AssignmentID); len(ids) > 0 {
				id = ids[0]
				break
			}
		}
		f, err := s.ExpectedMedia(id)
		must(t, err)
		if f.Size < defaultMediaMinSize || f.Size > defaultMediaMaxSize {
			t.Fatalf("%s: size %d outside the default range", tc.name, f.Size)
		}
		files[tc.name] = f
	}
	if files["seed 3"] != files["seed 3 again"] {
		t.Fatalf("same seed, different media: %+v vs %+v", files["seed 3"], files["seed 3 again"])
	}
	if files["seed 3"].SHA256 == files["seed 4"].SHA256 {
		t.Fatal("different seeds gave the same bytes")
	}
	s, err := New(Config{Assignments: 5})
	must(t, err)
	if _, err := s.ExpectedMedia(1); err == nil {
		t.Fatal("ExpectedMedia of an id that is not seeded did not fail")
	}
}

func TestMediaTypesJPEGAndPNG(t *testing.T) {
	s, hs := newTestServer(t, Config{Seed: 1, Assignments: 60})
	seen := map[string]int64{}
	for _, a := range s.Assignments() {
		for _, id := range s.MediaIDs(a.AssignmentID) {
			f, err := s.ExpectedMedia(id)
			must(t, err)
			seen[f.ContentType] = id
		}
	}
	for _, ct := range []string{"image/jpeg", "image/png"} {
		t.Run(ct, func(t *testing.T) {
			id, ok := seen[ct]
			if !ok {
				t.Fatalf("no %s among the seeded media (%v)", ct, seen)
			}
			resp, body := get(t, s.MediaLink(hs.URL, id, time.Now().Add(time.Minute)), nil)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ct || !hasImageMagic(body, ct) {
				t.Fatalf("media %d: %d %q, magic ok %v", id, resp.StatusCode, resp.Header.Get("Content-Type"), hasImageMagic(body, ct))
			}
		})
	}
}
