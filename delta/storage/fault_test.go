package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/claimx/claimx-connect/delta/storage"
)

// faultProxy forwards requests to an emulator and injects faults into the
// first conditional-create requests: "drop" forwards the request (so the
// object IS created) and then closes the connection without an answer, as a
// network failure after the write would; "transient" answers with a
// retryable error without forwarding.
type faultProxy struct {
	target   *url.URL
	isCond   func(*http.Request) bool
	fault    string
	faults   int // how many conditional requests get the fault
	answer   func(http.ResponseWriter)
	mu       sync.Mutex
	condSeen int
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	inject := false
	if p.isCond(r) {
		p.mu.Lock()
		p.condSeen++
		inject = p.condSeen <= p.faults
		p.mu.Unlock()
	}
	if inject && p.fault == "transient" {
		io.Copy(io.Discard, r.Body)
		p.answer(w)
		return
	}
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme = p.target.Scheme
	out.URL.Host = p.target.Host
	body, _ := io.ReadAll(r.Body)
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	respBody, _ := io.ReadAll(resp.Body)
	if inject && p.fault == "drop" {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(respBody)
}

func (p *faultProxy) seen() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.condSeen
}

// runFaultTests checks PutIfAbsent through lost answers and retryable
// refusals. open gets the proxy's endpoint URL (with the path of the
// emulator endpoint) and a fresh table root name.
func runFaultTests(t *testing.T, emulatorEndpoint string, isCond func(*http.Request) bool, answer func(http.ResponseWriter), open func(t *testing.T, endpoint string) storage.Store) {
	target, err := url.Parse(emulatorEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		fault  string
		faults int
	}{{"drop", 1}, {"drop", 2}, {"transient", 2}} {
		t.Run(fmt.Sprintf("%s-%d", tc.fault, tc.faults), func(t *testing.T) {
			p := &faultProxy{target: target, isCond: isCond, fault: tc.fault, faults: tc.faults, answer: answer}
			srv := httptest.NewServer(p)
			defer srv.Close()
			s := open(t, srv.URL+target.Path)
			const key = "_delta_log/00000000000000000000.json"
			ours := []byte("{\"commitInfo\":{\"writer\":\"ours\"}}\n")
			if err := s.PutIfAbsent(ctx, key, ours); err != nil {
				t.Fatalf("PutIfAbsent through %d %s faults: %v", tc.faults, tc.fault, err)
			}
			if got := p.seen(); got != tc.faults+1 {
				t.Fatalf("proxy saw %d conditional requests, want %d", got, tc.faults+1)
			}
			got, err := s.Get(ctx, key)
			if err != nil || !bytes.Equal(got, ours) {
				t.Fatalf("stored %q, %v; want ours", got, err)
			}
			// A real conflict afterwards is still a conflict.
			err = s.PutIfAbsent(ctx, key, []byte("theirs"))
			if !errors.Is(err, storage.ErrExists) {
				t.Fatalf("PutIfAbsent on the existing object: %v, want ErrExists", err)
			}
			// And a lost answer for someone else's write is not mistaken for
			// ours: the object exists with other bytes, so ErrExists.
			p.mu.Lock()
			p.fault, p.faults, p.condSeen = "drop", 1, 0
			p.mu.Unlock()
			const key2 = "_delta_log/00000000000000000001.json"
			if err := s.Put(ctx, key2, []byte("winner")); err != nil {
				t.Fatal(err)
			}
			if err := s.PutIfAbsent(ctx, key2, []byte("loser")); !errors.Is(err, storage.ErrExists) {
				t.Fatalf("PutIfAbsent after a dropped conflict answer: %v, want ErrExists", err)
			}
		})
	}
}

func TestS3Faults(t *testing.T) {
	ep := emulator(t, envS3Endpoint, "S3")
	setS3TestEnv(t)
	createS3Bucket(t, ep)
	runFaultTests(t, ep,
		func(r *http.Request) bool { return r.Method == http.MethodPut && r.Header.Get("If-None-Match") == "*" },
		func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusConflict)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>ConditionalRequestConflict</Code><Message>A conflicting conditional operation is currently in progress against this resource.</Message></Error>`)
		},
		func(t *testing.T, endpoint string) storage.Store {
			s, err := storage.Open(context.Background(), "s3://"+testBucket+"/faults/"+runID(), storage.Options{Endpoint: endpoint})
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
}

func TestAzureFaults(t *testing.T) {
	ep := emulator(t, envAzurite, "Azurite")
	setAzuriteEnv(t)
	createAzuriteContainer(t, ep, testBucket)
	runFaultTests(t, ep,
		func(r *http.Request) bool { return r.Method == http.MethodPut && r.Header.Get("If-None-Match") == "*" },
		func(w http.ResponseWriter) {
			w.Header().Set("x-ms-error-code", "ServerBusy")
			w.WriteHeader(http.StatusServiceUnavailable)
		},
		func(t *testing.T, endpoint string) storage.Store {
			s, err := storage.Open(context.Background(), "abfss://"+testBucket+"@"+azuriteAccount+".dfs.core.windows.net/faults/"+runID(), storage.Options{Endpoint: endpoint})
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
}

func TestGCSFaults(t *testing.T) {
	ep := emulator(t, envGCSEndpoint, "GCS")
	t.Setenv("STORAGE_EMULATOR_HOST", "")
	createGCSBucket(t, ep)
	runFaultTests(t, ep,
		func(r *http.Request) bool {
			return r.Method == http.MethodPost && r.URL.Query().Get("ifGenerationMatch") == "0"
		},
		func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"error":{"code":429,"message":"rate limit"}}`)
		},
		func(t *testing.T, endpoint string) storage.Store {
			s, err := storage.Open(context.Background(), "gs://"+testBucket+"/faults/"+runID(), storage.Options{Endpoint: endpoint, Extra: map[string]string{storage.GCSAnonymous: "true"}})
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
}
