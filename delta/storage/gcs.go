package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2/google"
)

func init() {
	Register("gs", openGCS)
}

const (
	// envGCSEmulator is the emulator address the Google Cloud client
	// libraries honour (host:port or a URL); requests to it are anonymous.
	envGCSEmulator = "STORAGE_EMULATOR_HOST"
	// GCSAnonymous (Options.Extra) sends requests without credentials, for
	// public buckets or an emulator named through Options.Endpoint.
	GCSAnonymous = "gcs.anonymous"

	gcsDefaultEndpoint = "https://storage.googleapis.com"
	gcsScope           = "https://www.googleapis.com/auth/devstorage.read_write"
)

// GCS is a Store in a Google Cloud Storage bucket under a prefix, spoken to
// through the Cloud Storage JSON API. PutIfAbsent is a media upload with
// ifGenerationMatch=0: the service creates the object only if no live
// generation exists, atomically, and answers 412 Precondition Failed to every
// other writer.
//
// Credentials come from Application Default Credentials
// (GOOGLE_APPLICATION_CREDENTIALS, the gcloud ADC file, workload identity
// federation, or the metadata server).
type GCS struct {
	http     *http.Client
	endpoint string // scheme://host[:port], no trailing slash
	bucket   string
	root     string
	uri      string
	retry    condRetryPolicy
}

type gcsLocation struct {
	Bucket string
	Prefix string
}

func parseGCSURI(u *url.URL) (gcsLocation, error) {
	if u.Host == "" {
		return gcsLocation{}, fmt.Errorf("gs URI %q: missing bucket (want gs://bucket/prefix)", u.Redacted())
	}
	if u.User != nil || u.Port() != "" {
		return gcsLocation{}, fmt.Errorf("gs URI %q: the host is the bucket name (no user or port); set the endpoint instead", u.Redacted())
	}
	return gcsLocation{Bucket: u.Host, Prefix: rootPrefix(u.Path)}, nil
}

// gcsEndpoint returns the JSON API base URL and whether requests go without
// credentials: Options.Endpoint, else STORAGE_EMULATOR_HOST (anonymous), else
// the public endpoint.
func gcsEndpoint(opts Options) (string, bool, error) {
	anon, _, err := parseBoolSetting(GCSAnonymous, opts.Extra[GCSAnonymous])
	if err != nil {
		return "", false, err
	}
	ep := strings.TrimSpace(opts.Endpoint)
	if ep == "" {
		if emu := strings.TrimSpace(os.Getenv(envGCSEmulator)); emu != "" {
			ep, anon = emu, true
		}
	}
	if ep == "" {
		return gcsDefaultEndpoint, anon, nil
	}
	if !strings.Contains(ep, "://") {
		ep = "http://" + ep
	}
	u, err := url.Parse(ep)
	if err != nil || u.Host == "" {
		return "", false, fmt.Errorf("GCS endpoint %q is not host:port or a URL", ep)
	}
	// The JSON API paths are fixed; drop a trailing /storage/v1/ if given.
	return u.Scheme + "://" + u.Host, anon, nil
}

func openGCS(ctx context.Context, u *url.URL, opts Options) (Store, error) {
	loc, err := parseGCSURI(u)
	if err != nil {
		return nil, err
	}
	uri := "gs://" + loc.Bucket + "/" + loc.Prefix
	ep, anon, err := gcsEndpoint(opts)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", uri, err)
	}
	hc := &http.Client{}
	if !anon {
		// The token source refreshes itself; the client is not tied to ctx.
		hc, err = google.DefaultClient(context.WithoutCancel(ctx), gcsScope)
		if err != nil {
			return nil, fmt.Errorf("opening %s: no Google Cloud credentials (Application Default Credentials): %w", uri, err)
		}
	}
	return &GCS{http: hc, endpoint: ep, bucket: loc.Bucket, root: loc.Prefix, uri: uri, retry: defaultCondRetry}, nil
}

// URI returns the table root.
func (g *GCS) URI() string { return g.uri }

func (g *GCS) key(p string) string { return joinKey(g.root, p) }

func (g *GCS) objectURL(name string, query url.Values) string {
	s := g.endpoint + "/storage/v1/b/" + url.PathEscape(g.bucket) + "/o/" + url.PathEscape(name)
	if len(query) > 0 {
		s += "?" + query.Encode()
	}
	return s
}

// gcsError is a non-2xx answer of the JSON API.
type gcsError struct {
	Status  int
	Message string
}

func (e *gcsError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("GCS answered HTTP %d", e.Status)
	}
	return fmt.Sprintf("GCS answered HTTP %d: %s", e.Status, e.Message)
}

func gcsStatus(err error) int {
	var ge *gcsError
	if errors.As(err, &ge) {
		return ge.Status
	}
	return 0
}

func newGCSError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var parsed struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	msg := ""
	if json.Unmarshal(body, &parsed) == nil {
		msg = parsed.Error.Message
	} else {
		msg = strings.TrimSpace(string(body))
	}
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	return &gcsError{Status: resp.StatusCode, Message: msg}
}

// once sends one request and returns the body of a 2xx answer.
func (g *GCS) once(ctx context.Context, method, rawURL string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
		req.ContentLength = int64(len(body))
	}
	resp, err := g.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, newGCSError(resp)
	}
	return io.ReadAll(resp.Body)
}

// gcsTransient reports answers worth another try (Google's retry guidance:
// 408, 429, 5xx, and connection failures).
func gcsTransient(err error) bool {
	if st := gcsStatus(err); st != 0 {
		return st == 408 || st == 429 || st >= 500
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF)
}

// do sends an idempotent request with retries. retried tells whether an
// earlier attempt failed in a way that may have taken effect.
func (g *GCS) do(ctx context.Context, method, rawURL string, body []byte) (out []byte, retried bool, err error) {
	for n := 1; ; n++ {
		out, err = g.once(ctx, method, rawURL, body)
		if err == nil || ctx.Err() != nil || !gcsTransient(err) || n >= g.retry.attempts {
			return out, retried, err
		}
		if gcsStatus(err) != 429 {
			retried = true // 408, 5xx or a lost connection: may have happened
		}
		if serr := sleepCtx(ctx, g.retry.backoff(n)); serr != nil {
			return nil, retried, err
		}
	}
}

// gcsObject is the part of the JSON API object resource used here.
type gcsObject struct {
	Name    string    `json:"name"`
	Size    string    `json:"size"`
	Updated time.Time `json:"updated"`
}

func (o gcsObject) info(p string) (ObjectInfo, error) {
	size, err := strconv.ParseInt(o.Size, 10, 64)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("object %s has size %q: %w", p, o.Size, err)
	}
	return ObjectInfo{Path: p, Size: size, ModTime: o.Updated}, nil
}

// Get reads the whole object.
func (g *GCS) Get(ctx context.Context, p string) ([]byte, error) {
	b, _, err := g.do(ctx, http.MethodGet, g.objectURL(g.key(p), url.Values{"alt": {"media"}}), nil)
	if err != nil {
		if gcsStatus(err) == 404 {
			return nil, fmt.Errorf("reading %s: %w", p, ErrNotFound)
		}
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	return b, nil
}

func (g *GCS) uploadURL(name string, ifAbsent bool) string {
	q := url.Values{"uploadType": {"media"}, "name": {name}}
	if ifAbsent {
		q.Set("ifGenerationMatch", "0")
	}
	return g.endpoint + "/upload/storage/v1/b/" + url.PathEscape(g.bucket) + "/o?" + q.Encode()
}

// Put writes the object (one media upload), replacing any existing one.
func (g *GCS) Put(ctx context.Context, p string, data []byte) error {
	if data == nil {
		data = []byte{}
	}
	if _, _, err := g.do(ctx, http.MethodPost, g.uploadURL(g.key(p), false), data); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return nil
}

// PutIfAbsent creates the object with ifGenerationMatch=0.
func (g *GCS) PutIfAbsent(ctx context.Context, p string, data []byte) error {
	if data == nil {
		data = []byte{}
	}
	u := g.uploadURL(g.key(p), true)
	attempt := func(ctx context.Context) error {
		_, err := g.once(ctx, http.MethodPost, u, data)
		return err
	}
	return conditionalCreate(ctx, g.retry, p, data, attempt, classifyGCSConditional, func(ctx context.Context) ([]byte, error) {
		return g.Get(ctx, p)
	})
}

func classifyGCSConditional(err error) condOutcome {
	switch st := gcsStatus(err); {
	case st == 412:
		return condExists
	case st == 429:
		return condRetry
	case st == 408 || st >= 500:
		return condUnknown
	case st != 0:
		return condDone
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) {
		return condUnknown
	}
	return condDone
}

// List returns the objects under prefix, sorted by path, following the
// listing's pages.
func (g *GCS) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	q := url.Values{"prefix": {listPrefix(g.root, prefix)}, "maxResults": {"1000"}}
	var out []ObjectInfo
	for {
		b, _, err := g.do(ctx, http.MethodGet, g.endpoint+"/storage/v1/b/"+url.PathEscape(g.bucket)+"/o?"+q.Encode(), nil)
		if err != nil {
			return nil, fmt.Errorf("listing %q: %w", prefix, err)
		}
		var page struct {
			Items         []gcsObject `json:"items"`
			NextPageToken string      `json:"nextPageToken"`
		}
		if err := json.Unmarshal(b, &page); err != nil {
			return nil, fmt.Errorf("listing %q: decoding the answer: %w", prefix, err)
		}
		for _, o := range page.Items {
			rel, ok := relKey(g.root, o.Name)
			if !ok || strings.HasSuffix(rel, "/") {
				continue // outside the root, or a "folder" placeholder
			}
			info, err := o.info(rel)
			if err != nil {
				return nil, fmt.Errorf("listing %q: %w", prefix, err)
			}
			out = append(out, info)
		}
		if page.NextPageToken == "" {
			break
		}
		q.Set("pageToken", page.NextPageToken)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// Stat returns the object's size and modification time.
func (g *GCS) Stat(ctx context.Context, p string) (ObjectInfo, error) {
	b, _, err := g.do(ctx, http.MethodGet, g.objectURL(g.key(p), nil), nil)
	if err != nil {
		if gcsStatus(err) == 404 {
			return ObjectInfo{}, fmt.Errorf("stat %s: %w", p, ErrNotFound)
		}
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", p, err)
	}
	var o gcsObject
	if err := json.Unmarshal(b, &o); err != nil {
		return ObjectInfo{}, fmt.Errorf("stat %s: decoding the answer: %w", p, err)
	}
	info, err := o.info(p)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", p, err)
	}
	return info, nil
}

// Delete removes the object; the service answers 404 for a missing one. A
// 404 after a retried attempt whose outcome was unknown counts as deleted.
func (g *GCS) Delete(ctx context.Context, p string) error {
	_, retried, err := g.do(ctx, http.MethodDelete, g.objectURL(g.key(p), nil), nil)
	if err != nil {
		if gcsStatus(err) == 404 {
			if retried {
				return nil
			}
			return fmt.Errorf("deleting %s: %w", p, ErrNotFound)
		}
		return fmt.Errorf("deleting %s: %w", p, err)
	}
	return nil
}
