package media_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/claimxsim"
	"github.com/claimx/claimx-connect/delta/storage"
	"github.com/claimx/claimx-connect/internal/hold"
	"github.com/claimx/claimx-connect/media"
)

const token = "media-test-token"

// env is a simulator behind an optional fault-injecting wrapper.
type env struct {
	sim  *claimxsim.Server
	hs   *httptest.Server
	wrap func(w http.ResponseWriter, r *http.Request) bool // true: answered
	// downloads counts the GET /media/ requests that reached the wrapper.
	downloads atomic.Int64
}

func newEnv(t *testing.T, cfg claimxsim.Config) *env {
	t.Helper()
	cfg.Token = token
	s, err := claimxsim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{sim: s}
	e.hs = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/media/") {
			e.downloads.Add(1)
			if e.wrap != nil && e.wrap(w, r) {
				return
			}
		}
		s.ServeHTTP(w, r)
	}))
	t.Cleanup(e.hs.Close)
	return e
}

// photos returns a project and the media ids of one of its assignments.
func (e *env) photos(t *testing.T) (int64, []int64) {
	t.Helper()
	for _, a := range e.sim.Assignments() {
		if ids := e.sim.MediaIDs(a.AssignmentID); len(ids) >= 2 {
			return a.ProjectID, ids
		}
	}
	t.Fatal("no assignment with two photos in the seeded data")
	return 0, nil
}

// list asks the simulator's media list for ids of project.
func (e *env) list(ctx context.Context, project int64, ids ...int64) (map[int64]media.Entry, error) {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprint(id)
	}
	u := fmt.Sprintf("%s/service/cxedirest/export/project/%d/media?mediaIds=%s", e.hs.URL, project, strings.Join(parts, ","))
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, hold.Unavailable("connection", 0, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, hold.Unavailable(fmt.Sprint(resp.StatusCode), 0, fmt.Errorf("media list: HTTP %d", resp.StatusCode))
	}
	var entries []media.Entry
	if err := json.NewDecoder(resp.Body).Decode(&entries); err != nil {
		return nil, err
	}
	out := map[int64]media.Entry{}
	for _, en := range entries {
		out[en.MediaID] = en
	}
	return out, nil
}

func (e *env) entry(t *testing.T, project, id int64) media.Entry {
	t.Helper()
	m, err := e.list(context.Background(), project, id)
	if err != nil {
		t.Fatal(err)
	}
	en, ok := m[id]
	if !ok {
		t.Fatalf("media %d not listed for project %d", id, project)
	}
	return en
}

// refresher asks the list again, counting the calls.
func (e *env) refresher(project int64, calls *atomic.Int64) media.Refresher {
	return func(ctx context.Context, id int64) (media.Entry, error) {
		calls.Add(1)
		m, err := e.list(ctx, project, id)
		if err != nil {
			return media.Entry{}, err
		}
		en, ok := m[id]
		if !ok {
			return media.Entry{}, media.Reject(id, "not in project %d's media list", project)
		}
		return en, nil
	}
}

func fileSHA(t *testing.T, b []byte) string {
	t.Helper()
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func fastConfig() media.Config {
	return media.Config{MaxAttempts: 3, InitialInterval: 5 * time.Millisecond, MaxInterval: 20 * time.Millisecond, Timeout: 5 * time.Second}
}

// failingStore fails every write (an object store that is down).
type failingStore struct{ storage.Store }

func (failingStore) Stat(context.Context, string) (storage.ObjectInfo, error) {
	return storage.ObjectInfo{}, errors.New("connection refused")
}

func (failingStore) PutStream(context.Context, string, io.ReadSeeker, int64, string) error {
	return errors.New("connection refused")
}

func TestProcess(t *testing.T) {
	type check struct {
		status     string
		reason     string // substring of the reason
		unavail    string // hold reason of a dependency failure
		refreshes  int
		maxDownReq int64 // most download requests expected (0: no check)
	}
	cases := []struct {
		name   string
		sim    func(c *claimxsim.Config)
		faults func(id int64) claimxsim.Faults
		cfg    func(c *media.Config)
		// entry adjusts the list entry before the call.
		entry func(e *env, en *media.Entry)
		wrap  func(e *env) func(w http.ResponseWriter, r *http.Request) bool
		store func(t *testing.T, st storage.Store, key string) storage.Store
		want  check
	}{
		{name: "stored", want: check{status: media.StatusStored}},
		{
			name:   "empty",
			faults: func(id int64) claimxsim.Faults { return claimxsim.Faults{MediaEmpty: []int64{id}} },
			want:   check{status: media.StatusRejected, reason: ": 0 bytes"},
		},
		{
			name:   "oversize",
			sim:    func(c *claimxsim.Config) { c.MediaOversizeBytes = 3 << 20 },
			faults: func(id int64) claimxsim.Faults { return claimxsim.Faults{MediaOversize: []int64{id}} },
			cfg:    func(c *media.Config) { c.MaxSize = 1 << 20 },
			want:   check{status: media.StatusRejected, reason: "3145728 bytes exceeds max_size 1MiB"},
		},
		{
			name: "oversize without a Content-Length",
			cfg:  func(c *media.Config) { c.MaxSize = 1000 },
			wrap: func(e *env) func(w http.ResponseWriter, r *http.Request) bool {
				return func(w http.ResponseWriter, r *http.Request) bool {
					// Chunked: the size is known only while reading.
					w.Header().Set("Content-Type", "image/jpeg")
					w.WriteHeader(200)
					for range 100 {
						_, _ = w.Write(bytes.Repeat([]byte{0xFF}, 100))
						w.(http.Flusher).Flush()
					}
					return true
				}
			},
			want: check{status: media.StatusRejected, reason: "exceeds max_size 1000 bytes"},
		},
		{
			name: "type not allowed",
			cfg:  func(c *media.Config) { c.AllowedTypes = []string{"image/gif"} },
			want: check{status: media.StatusRejected, reason: "not allowed"},
		},
		{
			name: "html served as a photo",
			wrap: func(e *env) func(w http.ResponseWriter, r *http.Request) bool {
				return func(w http.ResponseWriter, r *http.Request) bool {
					w.Header().Set("Content-Type", "image/jpeg")
					_, _ = io.WriteString(w, "<!DOCTYPE html><html><body>login</body></html>")
					return true
				}
			},
			want: check{status: media.StatusRejected, reason: "content type text/html not allowed"},
		},
		{
			name: "not found on the media server",
			entry: func(e *env, en *media.Entry) {
				en.FullDownloadLink = e.sim.MediaLink(e.hs.URL, 987654321, time.Now().Add(time.Hour))
			},
			want: check{status: media.StatusRejected, reason: "not found on the media server (404)"},
		},
		{
			name: "signature invalid after a refresh",
			wrap: func(e *env) func(w http.ResponseWriter, r *http.Request) bool {
				return func(w http.ResponseWriter, r *http.Request) bool {
					w.WriteHeader(http.StatusForbidden)
					_, _ = io.WriteString(w, `{"error":"access denied: the link signature is invalid"}`)
					return true
				}
			},
			want: check{status: media.StatusRejected, reason: "signature is invalid", refreshes: 1, maxDownReq: 2},
		},
		{
			name: "expired link refreshed after a 403",
			entry: func(e *env, en *media.Entry) {
				// expiresAt says valid; the server knows better.
				en.FullDownloadLink = e.sim.MediaLink(e.hs.URL, en.MediaID, time.Now().Add(-time.Minute))
			},
			want: check{status: media.StatusStored, refreshes: 1},
		},
		{
			name: "expired link refreshed before use",
			entry: func(e *env, en *media.Entry) {
				en.FullDownloadLink = e.sim.MediaLink(e.hs.URL, en.MediaID, time.Now().Add(-time.Minute))
				en.ExpiresAt = time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
			},
			want: check{status: media.StatusStored, refreshes: 1, maxDownReq: 1},
		},
		{
			name:   "links keep expiring",
			faults: func(int64) claimxsim.Faults { return claimxsim.Faults{MediaLinksExpired: true} },
			want:   check{unavail: "link_expired"},
		},
		{
			name:   "media server down",
			faults: func(int64) claimxsim.Faults { return claimxsim.Faults{MediaErrorRate: 1} },
			want:   check{maxDownReq: 3},
		},
		{
			name: "media server fails twice then answers",
			wrap: func(e *env) func(w http.ResponseWriter, r *http.Request) bool {
				return func(w http.ResponseWriter, r *http.Request) bool {
					if e.downloads.Load() <= 2 {
						w.WriteHeader(http.StatusServiceUnavailable)
						return true
					}
					return false
				}
			},
			want: check{status: media.StatusStored, maxDownReq: 3},
		},
		{
			name: "timeout",
			cfg:  func(c *media.Config) { c.Timeout = 50 * time.Millisecond; c.MaxAttempts = 2 },
			wrap: func(e *env) func(w http.ResponseWriter, r *http.Request) bool {
				return func(w http.ResponseWriter, r *http.Request) bool {
					select {
					case <-time.After(time.Second):
					case <-r.Context().Done():
					}
					return true
				}
			},
			want: check{unavail: "timeout", maxDownReq: 2},
		},
		{
			name: "object exists with another size",
			store: func(t *testing.T, st storage.Store, key string) storage.Store {
				if err := st.Put(context.Background(), key, []byte("short")); err != nil {
					t.Fatal(err)
				}
				return st
			},
			want: check{status: media.StatusRejected, reason: "exists with another size"},
		},
		{
			name: "object storage down",
			store: func(t *testing.T, st storage.Store, key string) storage.Store {
				return failingStore{st}
			},
			want: check{unavail: "storage"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			simCfg := claimxsim.Config{Seed: 7, Assignments: 40}
			if tc.sim != nil {
				tc.sim(&simCfg)
			}
			e := newEnv(t, simCfg)
			project, ids := e.photos(t)
			id := ids[0]
			if tc.faults != nil {
				if err := e.sim.SetFaults(tc.faults(id)); err != nil {
					t.Fatal(err)
				}
			}
			en := e.entry(t, project, id)
			if tc.entry != nil {
				tc.entry(e, &en)
			}
			if tc.wrap != nil {
				e.wrap = tc.wrap(e)
			}
			cfg := fastConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			d := media.NewDownloader(cfg)
			local, err := storage.Open(context.Background(), t.TempDir(), storage.Options{})
			if err != nil {
				t.Fatal(err)
			}
			var st storage.Store = local
			exp, err := e.sim.ExpectedMedia(id)
			if err != nil {
				t.Fatal(err)
			}
			key := media.ObjectKey("p/a", id, exp.ContentType)
			if tc.store != nil {
				st = tc.store(t, local, key)
			}
			var calls atomic.Int64
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := d.Process(ctx, st, "p/a", en, e.refresher(project, &calls))
			if tc.want.maxDownReq > 0 && e.downloads.Load() > tc.want.maxDownReq {
				t.Errorf("%d download requests, want at most %d", e.downloads.Load(), tc.want.maxDownReq)
			}
			if tc.want.status == "" {
				u, ok := hold.AsUnavailable(err)
				if !ok {
					t.Fatalf("Process = %+v, %v; want a dependency failure", res, err)
				}
				if tc.want.unavail != "" && u.Reason != tc.want.unavail {
					t.Fatalf("hold reason %q, want %q (%v)", u.Reason, tc.want.unavail, err)
				}
				if !strings.Contains(err.Error(), fmt.Sprint(id)) {
					t.Errorf("error does not name media %d: %v", id, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Process: %v", err)
			}
			if res.Status != tc.want.status || !strings.Contains(res.Reason, tc.want.reason) {
				t.Fatalf("result %+v, want status %s with reason containing %q", res, tc.want.status, tc.want.reason)
			}
			if res.LinkRefreshes != tc.want.refreshes || int(calls.Load()) != tc.want.refreshes {
				t.Errorf("link_refreshes %d (refresher called %d times), want %d", res.LinkRefreshes, calls.Load(), tc.want.refreshes)
			}
			if res.Status == media.StatusRejected {
				if !strings.HasPrefix(res.Reason, fmt.Sprintf("media %d: ", id)) {
					t.Errorf("reason %q does not start with the media id", res.Reason)
				}
				if objs, _ := local.List(context.Background(), "p/a/"); len(objs) > 0 && tc.store == nil {
					t.Errorf("a rejected media left objects: %+v", objs)
				}
				return
			}
			got, err := local.Get(context.Background(), res.ObjectKey)
			if err != nil {
				t.Fatal(err)
			}
			if res.ObjectKey != key || fileSHA(t, got) != exp.SHA256 || res.SHA256 != exp.SHA256 || res.SizeBytes != exp.Size || res.ContentType != exp.ContentType {
				t.Fatalf("result %+v, stored sha %s; want key %s sha %s size %d type %s", res, fileSHA(t, got), key, exp.SHA256, exp.Size, exp.ContentType)
			}
			if res.ObjectURI != local.URI()+"/"+key {
				t.Errorf("object_uri %s, want %s", res.ObjectURI, local.URI()+"/"+key)
			}
			// The same media again: nothing new is written.
			before, _ := local.Stat(context.Background(), key)
			again, err := d.Process(ctx, st, "p/a", e.entry(t, project, id), e.refresher(project, &calls))
			if err != nil || again.Status != media.StatusAlreadyStored {
				t.Fatalf("second Process = %+v, %v; want already_stored", again, err)
			}
			after, _ := local.Stat(context.Background(), key)
			if !after.ModTime.Equal(before.ModTime) {
				t.Errorf("the object was written again")
			}
		})
	}
}

// TestFetchBoundedMemory downloads a photo much larger than the bytes a
// buffering implementation could hide, and checks it went to a temporary
// file with little heap allocated.
func TestFetchBoundedMemory(t *testing.T) {
	const size = 12 << 20
	e := newEnv(t, claimxsim.Config{Seed: 3, Assignments: 20, MediaMinSize: size, MediaMaxSize: size})
	project, ids := e.photos(t)
	exp, err := e.sim.ExpectedMedia(ids[0])
	if err != nil {
		t.Fatal(err)
	}
	en := e.entry(t, project, ids[0])
	cfg := fastConfig()
	cfg.MaxSize = 32 << 20
	cfg.TempDir = t.TempDir()
	d := media.NewDownloader(cfg)

	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	f, err := d.Fetch(context.Background(), en, nil)
	runtime.ReadMemStats(&m1)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Remove()
	t.Logf("%d bytes allocated while downloading %d", m1.TotalAlloc-m0.TotalAlloc, size)
	// Everything allocated meanwhile, the simulator's serving included.
	if alloc := m1.TotalAlloc - m0.TotalAlloc; alloc > size/4 {
		t.Fatalf("%d bytes allocated while downloading %d bytes: the download is buffered in memory", alloc, size)
	}
	if filepath.Dir(f.Path) != cfg.TempDir {
		t.Fatalf("spooled to %s, want a file in %s", f.Path, cfg.TempDir)
	}
	info, err := os.Stat(f.Path)
	if err != nil || info.Size() != size || f.Size != size || f.SHA256 != exp.SHA256 {
		t.Fatalf("spool file %v (%v), File %+v; want %d bytes with sha %s", info, err, f, size, exp.SHA256)
	}
	f.Remove()
	if _, err := os.Stat(f.Path); !os.IsNotExist(err) {
		t.Fatalf("Remove left the spool file: %v", err)
	}
}

// TestSpoolRemovedOnRejection: a rejected download leaves no temp file.
func TestSpoolRemovedOnRejection(t *testing.T) {
	e := newEnv(t, claimxsim.Config{Seed: 3, Assignments: 20})
	project, ids := e.photos(t)
	cfg := fastConfig()
	cfg.TempDir = t.TempDir()
	cfg.AllowedTypes = []string{"image/gif"}
	cfg.MaxSize = 20 << 10
	d := media.NewDownloader(cfg)
	for _, id := range ids {
		_, err := d.Fetch(context.Background(), e.entry(t, project, id), nil)
		if _, ok := media.AsRejection(err); !ok {
			t.Fatalf("media %d: %v, want a rejection", id, err)
		}
	}
	left, _ := os.ReadDir(cfg.TempDir)
	if len(left) != 0 {
		t.Fatalf("spool files left: %d", len(left))
	}
}

func TestObjectKey(t *testing.T) {
	for _, tc := range []struct {
		prefix, ct, want string
	}{
		{"12/34", "image/jpeg", "12/34/9001.jpg"},
		{"/12/34/", "image/png", "12/34/9001.png"},
		{"", "image/heic", "9001.heic"},
		{"x", "application/x-unknown-thing", "x/9001"},
	} {
		if got := media.ObjectKey(tc.prefix, 9001, tc.ct); got != tc.want {
			t.Errorf("ObjectKey(%q, %q) = %q, want %q", tc.prefix, tc.ct, got, tc.want)
		}
	}
}
