package storage_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/delta/storage"
)

func streamer(t *testing.T, s storage.Store) storage.StreamPutter {
	t.Helper()
	sp, ok := s.(storage.StreamPutter)
	if !ok {
		t.Fatalf("%T does not implement StreamPutter", s)
	}
	return sp
}

func pseudoRandom(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed)})
	_, _ = r.Read(b)
	return b
}

func hexSHA(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// tempFiles lists the files under dir whose names mark a write in progress.
func tempFiles(t *testing.T, dir string) []string {
	var out []string
	for _, p := range storage.FilesUnder(t, dir) {
		if strings.HasSuffix(p, ".tmp") {
			out = append(out, p)
		}
	}
	return out
}

func TestLocalPutStream(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := storage.Open(ctx, dir, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sp := streamer(t, s)
	cases := []struct {
		name string
		path string
		data []byte
		// skip bytes of the reader before the call: the object starts at
		// the reader's offset.
		skip int
	}{
		{name: "empty", path: "a/empty.bin", data: []byte{}},
		{name: "small", path: "a/small.jpg", data: []byte("hello")},
		{name: "several MiB", path: "p/1/2/big.jpg", data: pseudoRandom(3<<20+17, 1)},
		{name: "from an offset", path: "off.bin", data: pseudoRandom(1000, 2), skip: 100},
		{name: "overwrite", path: "a/small.jpg", data: []byte("replaced, longer")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := bytes.NewReader(tc.data)
			if _, err := r.Seek(int64(tc.skip), io.SeekStart); err != nil {
				t.Fatal(err)
			}
			want := tc.data[tc.skip:]
			if err := sp.PutStream(ctx, tc.path, r, int64(len(want)), "image/jpeg"); err != nil {
				t.Fatal(err)
			}
			got, err := s.Get(ctx, tc.path)
			if err != nil {
				t.Fatal(err)
			}
			if hexSHA(got) != hexSHA(want) || len(got) != len(want) {
				t.Fatalf("stored %d bytes (sha %s), want %d (sha %s)", len(got), hexSHA(got), len(want), hexSHA(want))
			}
			info, err := s.Stat(ctx, tc.path)
			if err != nil || info.Size != int64(len(want)) {
				t.Fatalf("Stat = %+v, %v; want size %d", info, err, len(want))
			}
			if tmp := tempFiles(t, dir); len(tmp) != 0 {
				t.Fatalf("temporary files left behind: %v", tmp)
			}
		})
	}
}

// TestLocalPutStreamSizeMismatch: a reader shorter or longer than the
// declared size fails the write and leaves neither object nor temp file.
func TestLocalPutStreamSizeMismatch(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := storage.Open(ctx, dir, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sp := streamer(t, s)
	for _, tc := range []struct {
		name string
		data int
		size int64
	}{
		{"short", 10, 11},
		{"long", 12, 11},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := sp.PutStream(ctx, "x/"+tc.name, bytes.NewReader(make([]byte, tc.data)), tc.size, "")
			if err == nil {
				t.Fatal("PutStream succeeded")
			}
			if !strings.Contains(err.Error(), "x/"+tc.name) {
				t.Fatalf("error does not name the path: %v", err)
			}
			if _, err := s.Stat(ctx, "x/"+tc.name); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("object exists after a failed write: %v", err)
			}
			if tmp := tempFiles(t, dir); len(tmp) != 0 {
				t.Fatalf("temporary files left behind: %v", tmp)
			}
		})
	}
}

// gateReader yields half its bytes, then blocks until released.
type gateReader struct {
	*bytes.Reader
	half    int
	read    int
	reached chan struct{}
	release chan struct{}
	once    sync.Once
}

func (g *gateReader) Read(p []byte) (int, error) {
	if g.read >= g.half {
		g.once.Do(func() { close(g.reached) })
		<-g.release
	} else if len(p) > g.half-g.read {
		p = p[:g.half-g.read]
	}
	n, err := g.Reader.Read(p)
	g.read += n
	return n, err
}

// TestLocalPutStreamAtomic: while a write is half done the object is
// neither visible nor listed; the old version stays readable.
func TestLocalPutStreamAtomic(t *testing.T) {
	ctx := context.Background()
	s, err := storage.Open(ctx, t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sp := streamer(t, s)
	old := []byte("old version")
	if err := s.Put(ctx, "photo.jpg", old); err != nil {
		t.Fatal(err)
	}
	data := pseudoRandom(1<<20, 3)
	g := &gateReader{Reader: bytes.NewReader(data), half: len(data) / 2, reached: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- sp.PutStream(ctx, "photo.jpg", g, int64(len(data)), "") }()
	select {
	case <-g.reached:
	case <-time.After(10 * time.Second):
		t.Fatal("the write never reached half way")
	}
	got, err := s.Get(ctx, "photo.jpg")
	if err != nil || !bytes.Equal(got, old) {
		t.Fatalf("during the write the object reads %d bytes (%v), want the old version", len(got), err)
	}
	list, err := s.List(ctx, "")
	if err != nil || len(list) != 1 || list[0].Path != "photo.jpg" {
		t.Fatalf("during the write List = %+v, %v; want only photo.jpg", list, err)
	}
	close(g.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got, err = s.Get(ctx, "photo.jpg")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after the write the object has %d bytes (%v), want %d", len(got), err, len(data))
	}
}

// recordedPut is one upload a fake object server received.
type recordedPut struct {
	method, path, contentType string
	sha256                    string
	size                      int
}

// fakeObjectServer accepts PUT (S3, Azure) and POST (GCS media upload)
// and records what it was sent.
type fakeObjectServer struct {
	mu   sync.Mutex
	puts []recordedPut
	// failFirst answers that many uploads with 503 first.
	failFirst int
}

func (f *fakeObjectServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if r.Method != http.MethodPut && r.Method != http.MethodPost {
		http.Error(w, "unexpected "+r.Method, http.StatusMethodNotAllowed)
		return
	}
	f.mu.Lock()
	if f.failFirst > 0 {
		f.failFirst--
		f.mu.Unlock()
		http.Error(w, `{"error":{"message":"try again"}}`, http.StatusServiceUnavailable)
		return
	}
	path := r.URL.Path
	if n := r.URL.Query().Get("name"); n != "" {
		path += "?name=" + n
	}
	// Azure keeps the blob's type in its own header; the request's
	// Content-Type is the transfer's.
	ct := r.Header.Get("x-ms-blob-content-type")
	if ct == "" {
		ct = r.Header.Get("Content-Type")
	}
	f.puts = append(f.puts, recordedPut{method: r.Method, path: path, contentType: ct, sha256: hexSHA(body), size: len(body)})
	f.mu.Unlock()
	w.Header().Set("ETag", `"0x1"`)
	w.Header().Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
	if r.Method == http.MethodPost {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"name":"x","size":"1"}`)
		return
	}
	w.WriteHeader(http.StatusCreated)
}

// TestCloudPutStreamRequests checks what the cloud backends send for a
// streamed write, against a fake server: the bytes, the key and the
// Content-Type.
func TestCloudPutStreamRequests(t *testing.T) {
	setS3TestEnv(t)
	setAzuriteEnv(t)
	t.Setenv("STORAGE_EMULATOR_HOST", "")
	data := pseudoRandom(256<<10+3, 4)
	cases := []struct {
		name      string
		uri       func(ep string) string
		opts      func(ep string) storage.Options
		failFirst int
		wantPath  string
	}{
		{
			name: "s3",
			uri:  func(string) string { return "s3://bucket/media" },
			opts: func(ep string) storage.Options {
				return storage.Options{Endpoint: ep, Extra: map[string]string{storage.S3ForcePathStyle: "true"}}
			},
			wantPath: "/bucket/media/p/1.jpg",
		},
		{
			name:     "azure",
			uri:      func(string) string { return "az://container/media" },
			opts:     func(ep string) storage.Options { return storage.Options{Endpoint: ep + "/" + azuriteAccount} },
			wantPath: "/" + azuriteAccount + "/container/media/p/1.jpg",
		},
		{
			name: "gcs retried after a 503",
			uri:  func(string) string { return "gs://bucket/media" },
			opts: func(ep string) storage.Options {
				return storage.Options{Endpoint: ep, Extra: map[string]string{storage.GCSAnonymous: "true"}}
			},
			failFirst: 1,
			wantPath:  "/upload/storage/v1/b/bucket/o?name=media/p/1.jpg",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := &fakeObjectServer{failFirst: tc.failFirst}
			hs := httptest.NewServer(fake)
			defer hs.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := storage.Open(ctx, tc.uri(hs.URL), tc.opts(hs.URL))
			if err != nil {
				t.Fatal(err)
			}
			if err := streamer(t, s).PutStream(ctx, "p/1.jpg", bytes.NewReader(data), int64(len(data)), "image/jpeg"); err != nil {
				t.Fatal(err)
			}
			fake.mu.Lock()
			defer fake.mu.Unlock()
			if len(fake.puts) != 1 {
				t.Fatalf("server saw %d uploads, want 1: %+v", len(fake.puts), fake.puts)
			}
			p := fake.puts[0]
			if p.path != tc.wantPath || p.contentType != "image/jpeg" {
				t.Fatalf("upload %s %s (Content-Type %q), want %s with image/jpeg", p.method, p.path, p.contentType, tc.wantPath)
			}
			if p.size != len(data) || p.sha256 != hexSHA(data) {
				t.Fatalf("upload carried %d bytes (sha %s), want %d (sha %s)", p.size, p.sha256, len(data), hexSHA(data))
			}
		})
	}
}

// TestEmulatorPutStream round-trips a streamed write through whichever
// emulators are configured (scripts/start-emulators.sh).
func TestEmulatorPutStream(t *testing.T) {
	data := pseudoRandom(1<<20+5, 5)
	cases := []struct {
		name string
		open func(t *testing.T) storage.Store
	}{
		{"s3", func(t *testing.T) storage.Store {
			ep := emulator(t, envS3Endpoint, "S3")
			setS3TestEnv(t)
			createS3Bucket(t, ep)
			s, err := storage.Open(context.Background(), "s3://"+testBucket+"/stream/"+runID(), storage.Options{Endpoint: ep})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"azure", func(t *testing.T) storage.Store {
			ep := emulator(t, envAzurite, "Azurite")
			setAzuriteEnv(t)
			createAzuriteContainer(t, ep, testBucket)
			s, err := storage.Open(context.Background(), "az://"+testBucket+"/stream/"+runID(), storage.Options{Endpoint: ep})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"gcs", func(t *testing.T) storage.Store {
			ep := emulator(t, envGCSEndpoint, "GCS")
			t.Setenv("STORAGE_EMULATOR_HOST", ep)
			createGCSBucket(t, ep)
			s, err := storage.Open(context.Background(), "gs://"+testBucket+"/stream/"+runID(), storage.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.open(t)
			ctx := context.Background()
			if err := streamer(t, s).PutStream(ctx, "p/1.jpg", bytes.NewReader(data), int64(len(data)), "image/jpeg"); err != nil {
				t.Fatal(err)
			}
			got, err := s.Get(ctx, "p/1.jpg")
			if err != nil || hexSHA(got) != hexSHA(data) {
				t.Fatalf("read back %d bytes (%v), want %d with equal SHA-256", len(got), err, len(data))
			}
		})
	}
}
