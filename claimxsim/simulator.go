// Package claimxsim simulates the ClaimX (Verisk ClaimXperience) REST API for
// tests, benchmarks and local runs: seeded assignments, projects and media
// (DOMAIN.md §5), bearer/basic/OAuth 2.0 client-credentials auth, a rate limit
// answering 429 with Retry-After, injectable faults and request counters.
//
// API (with or without the /service/cxedirest prefix):
//
//	GET  /customTasks/assignment/{id}?full=true   the assignment; form answers only with full=true
//	GET  /export/project/{id}                     the project export
//	GET  /export/project/{id}/media?mediaIds=1,2  the project's media, optionally filtered
//	POST /oauth/token                             client_credentials (Basic header or form body)
//
// Served beside it, with their own credentials (media.go, itel.go):
//
//	GET  /media/{id}?exp=…&sig=…        media bytes; the signed link of the media list is the credential
//	POST /itel/v1/submissions           the iTel Cabinet API: Idempotency-Key required, ITelToken auth
//	GET  /itel/v1/submissions/{ref}     one accepted submission
//
// Admin, never rate limited nor faulted:
//
//	GET  /_sim/stats        Stats: counts by status and endpoint, max per second, max in flight
//	POST /_sim/reset        clear the counters and the request log
//	GET  /_sim/faults       the active Faults
//	POST /_sim/faults       replace them, e.g. {"outage": true}, {"outage_for": "60s"},
//	                        {"unauthorized_for": "30s"} (401 to every API request) or
//	                        {"latency": "50ms", "error_rate": 0.1}
//	GET  /_sim/assignments  the seeded assignments (Assignments)
//	GET  /_sim/requests     the request log (Requests)
//	GET  /_sim/itel         the iTel submissions and counts (ITelSubmissions, ITelCounts)
//
// In process: New(Config), then Start(addr) or use the Server as an
// http.Handler (httptest.NewServer). Reserve(addr) picks the address without
// listening yet, Pause stops listening (and cuts every open connection) and
// Resume listens again on the same address: clients meet refused connections
// in between, as when the API is not running. GenerateEvents produces ClaimX events that
// match the seeded assignments; Command is the `claimx-sim` CLI command.
package claimxsim

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Config sets up a simulator. The zero value serves 100 assignments from seed
// 0 without auth, rate limit or faults.
type Config struct {
	// Seed makes the data deterministic: the same seed gives the same data.
	Seed int64
	// Assignments is how many assignments to seed (default 100).
	Assignments int

	// Token is the accepted bearer token. When Token, BasicUser and
	// ClientID are all empty, requests are not authenticated.
	Token string
	// BasicUser and BasicPassword are accepted HTTP Basic credentials.
	BasicUser, BasicPassword string
	// ClientID and ClientSecret are accepted by POST /oauth/token
	// (client_credentials); the tokens it issues are accepted as bearer tokens.
	ClientID, ClientSecret string
	// TokenTTL is the lifetime of issued OAuth tokens (default 1h).
	TokenTTL time.Duration

	// RateLimit is the allowed API requests per second (0 = unlimited);
	// RateBurst the bucket size (default: RateLimit rounded up, at least 1).
	RateLimit float64
	RateBurst int
	// RetryAfterHTTPDate makes 429 answers carry Retry-After as an HTTP-date
	// instead of delta-seconds.
	RetryAfterHTTPDate bool

	// Faults are the faults active from the start.
	Faults Faults

	// MediaLinkTTL is how long a fullDownloadLink stays valid (default 5m).
	MediaLinkTTL time.Duration
	// MediaLinkSecret signs download links (default: random per server).
	MediaLinkSecret string
	// MediaBaseURL is the base of download links (default: the scheme and
	// Host the media list request came with).
	MediaBaseURL string
	// MediaMinSize and MediaMaxSize bound the deterministic size of each
	// media file in bytes (default 16 KiB and 256 KiB; at least 64).
	MediaMinSize, MediaMaxSize int64
	// MediaOversizeBytes is the size served for MediaOversize ids (default
	// 50 MiB).
	MediaOversizeBytes int64

	// ITelPath is the iTel submissions path (default /itel/v1/submissions).
	ITelPath string
	// ITelToken is the bearer token the iTel endpoint accepts; empty means
	// no auth.
	ITelToken string
}

// Faults are injected into API requests (not into /_sim/ or /oauth/token).
type Faults struct {
	// Latency is added to every API request.
	Latency Duration `json:"latency"`
	// ErrorRate is the fraction (0–1) of requests answered 500 or 503.
	ErrorRate float64 `json:"error_rate"`
	// TimeoutRate is the fraction (0–1) of requests that hang until the
	// client gives up.
	TimeoutRate float64 `json:"timeout_rate"`
	// Outage makes every API request fail with 503 while set.
	Outage bool `json:"outage"`
	// OutageFor, when positive, starts an outage that ends by itself after
	// this long (Outage reads true meanwhile).
	OutageFor Duration `json:"outage_for,omitzero"`
	// RateLimit replaces the configured rate limit (requests/s) when
	// non-nil; 0 removes the limit.
	RateLimit *float64 `json:"rate_limit,omitempty"`
	// Unauthorized makes every API request fail with 401 while set, whatever
	// its credentials: the API no longer accepts the client's token (a
	// rotation the client has not caught up with yet).
	Unauthorized bool `json:"unauthorized"`
	// UnauthorizedFor, when positive, rejects the credentials of every API
	// request for this long, then accepts them again (Unauthorized reads true
	// meanwhile).
	UnauthorizedFor Duration `json:"unauthorized_for,omitzero"`

	// MediaEmpty are media ids whose download has 0 bytes.
	MediaEmpty []int64 `json:"media_empty,omitempty"`
	// MediaOversize are media ids served with Config.MediaOversizeBytes.
	MediaOversize []int64 `json:"media_oversize,omitempty"`
	// MediaErrorRate is the fraction (0–1) of downloads answered 500 or 503.
	MediaErrorRate float64 `json:"media_error_rate,omitzero"`
	// MediaLinksExpired makes every link issued meanwhile already expired.
	MediaLinksExpired bool `json:"media_links_expired,omitzero"`
	// ITelOutage makes the iTel endpoint alone answer 503 while set;
	// ITelOutageFor starts one that ends by itself after this long.
	ITelOutage    bool     `json:"itel_outage,omitzero"`
	ITelOutageFor Duration `json:"itel_outage_for,omitzero"`
}

// Duration is a time.Duration that reads and writes JSON as "50ms" (or a
// number of nanoseconds).
type Duration time.Duration

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "50ms" or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("parsing duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration must be a string such as \"50ms\" or nanoseconds: %w", err)
	}
	*d = Duration(n)
	return nil
}

// Stats counts the requests the simulator answered.
type Stats struct {
	Total int64 `json:"total"`
	// ByStatus counts answers by HTTP status ("200", "429", …). A request
	// that hung until the client left is counted under "timeout".
	ByStatus map[string]int64 `json:"by_status"`
	// ByEndpoint counts requests by endpoint: assignment, project, media,
	// token, other, media_download (GET /media/{id}) and itel.
	ByEndpoint map[string]int64 `json:"by_endpoint"`
	// MaxPerSecond is the highest number of API requests that arrived
	// within any one-second sliding window while a rate limit was set.
	MaxPerSecond int `json:"max_per_second"`
	// MaxInFlight is the highest number of API requests handled at once.
	MaxInFlight int64 `json:"max_in_flight"`
}

// RequestRecord is one answered request, as the simulator saw it.
type RequestRecord struct {
	Time time.Time `json:"time"`
	// Method and RequestURI are as received, before any unescaping, so tests
	// can check how a client encoded its path.
	Method     string `json:"method"`
	RequestURI string `json:"request_uri"`
	Endpoint   string `json:"endpoint"`
	Status     string `json:"status"`
}

const maxRecords = 100_000

// Server is the simulated ClaimX API. It is an http.Handler; Start serves it
// on an address.
type Server struct {
	cfg  Config
	data *dataset

	mu                sync.Mutex
	faults            Faults
	outageUntil       time.Time
	unauthorizedUntil time.Time
	limiter           *rate.Limiter
	tokens            map[string]time.Time
	rng               *mrand.Rand
	stats             Stats
	records           []RequestRecord
	// arrivals are the arrival times of rate-limited API requests, for
	// MaxPerSecond.
	arrivals []time.Time
	inFlight int64

	media *mediaState
	itel  *itelState

	httpSrv *http.Server
	addr    string
	// listening is false between Pause (or Reserve) and Resume: the
	// address is kept, connections to it are refused.
	listening bool
	closed    bool
}

// New builds a simulator with its seeded data.
func New(cfg Config) (*Server, error) {
	if cfg.Assignments == 0 {
		cfg.Assignments = 100
	}
	if cfg.Assignments < 0 {
		return nil, fmt.Errorf("assignments must not be negative, got %d", cfg.Assignments)
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = time.Hour
	}
	if cfg.RateLimit < 0 {
		return nil, fmt.Errorf("rate limit must not be negative, got %v", cfg.RateLimit)
	}
	s := &Server{
		cfg:    cfg,
		data:   newDataset(cfg.Seed, cfg.Assignments),
		tokens: map[string]time.Time{},
		rng:    mrand.New(mrand.NewPCG(uint64(cfg.Seed), 1)),
		itel:   newITelState(),
	}
	if err := s.initMedia(); err != nil {
		return nil, err
	}
	s.resetStatsLocked()
	if err := s.SetFaults(cfg.Faults); err != nil {
		return nil, err
	}
	if cfg.Faults.RateLimit == nil {
		s.setRateLimitLocked(cfg.RateLimit)
	}
	return s, nil
}

// Assignments lists the seeded assignments in id order.
func (s *Server) Assignments() []Assignment {
	return append([]Assignment(nil), s.data.assignments...)
}

// Start serves the simulator on addr (":0" picks a free port) until Close. It
// returns once the listener is open; Addr and URL then tell where.
func (s *Server) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s for the claimx simulator: %w", addr, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.serveLocked(ln)
	return nil
}

// serveLocked serves on ln with a new http.Server (one that was closed cannot
// serve again).
func (s *Server) serveLocked(ln net.Listener) {
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.httpSrv = srv
	s.addr = ln.Addr().String()
	s.listening = true
	go func() { _ = srv.Serve(ln) }()
}

// Reserve picks the address the simulator will serve on (":0" picks a free
// port) without serving yet: Addr and URL tell where, and connections to it
// are refused until Resume, as when a client starts before its API does.
func (s *Server) Reserve(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("reserving %s for the claimx simulator: %w", addr, err)
	}
	a := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addr = a
	s.listening = false
	return nil
}

// Pause stops listening: the listener and every open connection are closed
// at once (requests in flight are cut), so that clients meet refused
// connections until Resume. The address is kept.
func (s *Server) Pause() error {
	s.mu.Lock()
	srv := s.httpSrv
	s.httpSrv = nil
	s.listening = false
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Close()
}

// Resume listens again on the address of Start or Reserve. Another program
// may have taken a port in between: Resume then fails.
func (s *Server) Resume() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listening {
		return nil
	}
	if s.closed {
		return fmt.Errorf("claimx simulator: Resume after Close")
	}
	if s.addr == "" {
		return fmt.Errorf("claimx simulator: Resume before Start or Reserve")
	}
	var ln net.Listener
	var err error
	// The port of a listener just closed can stay busy for a moment.
	for deadline := time.Now().Add(2 * time.Second); ; {
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("listening on %s again for the claimx simulator: %w", s.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.serveLocked(ln)
	return nil
}

// Listening reports whether the simulator accepts connections now.
func (s *Server) Listening() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listening
}

// Addr is the address Start listens on.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// URL is the base URL of the started server.
func (s *Server) URL() string { return "http://" + s.Addr() }

// Close stops a started server; hanging requests are released. It cannot
// be resumed.
func (s *Server) Close() error {
	s.mu.Lock()
	srv := s.httpSrv
	s.httpSrv, s.listening, s.closed = nil, false, true
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		return srv.Close()
	}
	return nil
}

// SetFaults replaces the active faults.
func (s *Server) SetFaults(f Faults) error {
	if f.ErrorRate < 0 || f.ErrorRate > 1 || f.TimeoutRate < 0 || f.TimeoutRate > 1 {
		return fmt.Errorf("error_rate and timeout_rate must be within 0..1, got %v and %v", f.ErrorRate, f.TimeoutRate)
	}
	if f.RateLimit != nil && *f.RateLimit < 0 {
		return fmt.Errorf("rate_limit must not be negative, got %v", *f.RateLimit)
	}
	if err := validateMediaFaults(f); err != nil {
		return err
	}
	f.MediaEmpty, f.MediaOversize = slices.Clone(f.MediaEmpty), slices.Clone(f.MediaOversize)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applyITelFaultsLocked(&f, time.Now())
	s.outageUntil = time.Time{}
	if f.OutageFor > 0 {
		s.outageUntil = time.Now().Add(time.Duration(f.OutageFor))
		f.Outage = false
	}
	s.unauthorizedUntil = time.Time{}
	if f.UnauthorizedFor > 0 {
		s.unauthorizedUntil = time.Now().Add(time.Duration(f.UnauthorizedFor))
		f.Unauthorized = false
	}
	if f.RateLimit != nil {
		s.setRateLimitLocked(*f.RateLimit)
		f.RateLimit = nil
	}
	s.faults = f
	return nil
}

// CurrentFaults returns the active faults (Outage reads true during a timed
// outage; RateLimit holds the active limit).
func (s *Server) CurrentFaults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults
	f.Outage = s.outageLocked(time.Now())
	f.OutageFor = 0
	if !s.outageUntil.IsZero() && f.Outage {
		f.OutageFor = Duration(time.Until(s.outageUntil))
	}
	f.Unauthorized = s.unauthorizedLocked(time.Now())
	f.UnauthorizedFor = 0
	if !s.unauthorizedUntil.IsZero() && f.Unauthorized {
		f.UnauthorizedFor = Duration(time.Until(s.unauthorizedUntil))
	}
	limit := 0.0
	if s.limiter != nil {
		limit = float64(s.limiter.Limit())
	}
	f.RateLimit = &limit
	s.currentITelFaultsLocked(&f, time.Now())
	return f
}

func (s *Server) outageLocked(now time.Time) bool {
	return s.faults.Outage || now.Before(s.outageUntil)
}

func (s *Server) unauthorizedLocked(now time.Time) bool {
	return s.faults.Unauthorized || now.Before(s.unauthorizedUntil)
}

func (s *Server) setRateLimitLocked(perSecond float64) {
	if perSecond == 0 {
		s.limiter = nil
		return
	}
	burst := s.cfg.RateBurst
	if burst <= 0 {
		burst = max(1, int(math.Ceil(perSecond)))
	}
	s.limiter = rate.NewLimiter(rate.Limit(perSecond), burst)
}

// RevokeTokens invalidates every OAuth token issued so far, as a server-side
// revocation would.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// Stats returns a snapshot of the request counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.ByStatus = copyMap(s.stats.ByStatus)
	st.ByEndpoint = copyMap(s.stats.ByEndpoint)
	st.MaxPerSecond = maxInWindow(s.arrivals, time.Second)
	return st
}

// Requests returns the most recent requests (up to 100 000), oldest first.
func (s *Server) Requests() []RequestRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]RequestRecord(nil), s.records...)
}

// ResetStats clears the counters and the request log.
func (s *Server) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetStatsLocked()
}

func (s *Server) resetStatsLocked() {
	s.stats = Stats{ByStatus: map[string]int64{}, ByEndpoint: map[string]int64{}}
	s.records = nil
	s.arrivals = nil
}

func copyMap(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// maxInWindow is the largest number of sorted times within any window.
func maxInWindow(ts []time.Time, window time.Duration) int {
	best, lo := 0, 0
	for hi := range ts {
		for ts[hi].Sub(ts[lo]) >= window {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

func (s *Server) record(r *http.Request, endpoint, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Total++
	s.stats.ByStatus[status]++
	s.stats.ByEndpoint[endpoint]++
	if len(s.records) >= maxRecords {
		s.records = s.records[1:]
	}
	s.records = append(s.records, RequestRecord{
		Time: time.Now(), Method: r.Method, RequestURI: r.RequestURI, Endpoint: endpoint, Status: status,
	})
}

// statusWriter remembers the status written, for the counters.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// basePrefix is the path prefix of the real API; requests may carry it or not.
const basePrefix = "/service/cxedirest"

// ServeHTTP routes a request. Routing works on the escaped path, segment by
// segment, so an encoded "/" inside a segment stays inside it.
func (s *Server) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	escaped := strings.TrimPrefix(r.URL.EscapedPath(), basePrefix)
	segs := strings.Split(strings.Trim(escaped, "/"), "/")
	for i, seg := range segs {
		if u, err := url.PathUnescape(seg); err == nil {
			segs[i] = u
		}
	}

	switch {
	case len(segs) >= 1 && segs[0] == "_sim":
		s.serveAdmin(rw, r, segs[1:])
		return
	case len(segs) == 2 && segs[0] == "media":
		s.serveMediaDownload(rw, r, segs[1])
		return
	case s.itelMatch(r):
		rest, _ := s.itelRoute(r.URL.Path)
		s.serveITel(rw, r, rest)
		return
	case len(segs) == 2 && segs[0] == "oauth" && segs[1] == "token":
		w := &statusWriter{ResponseWriter: rw}
		s.serveToken(w, r)
		s.record(r, "token", strconv.Itoa(w.status))
		return
	}

	s.mu.Lock()
	s.inFlight++
	s.stats.MaxInFlight = max(s.stats.MaxInFlight, s.inFlight)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()

	endpoint := "other"
	switch {
	case len(segs) == 3 && segs[0] == "customTasks" && segs[1] == "assignment":
		endpoint = "assignment"
	case len(segs) == 3 && segs[0] == "export" && segs[1] == "project":
		endpoint = "project"
	case len(segs) == 4 && segs[0] == "export" && segs[1] == "project" && segs[3] == "media":
		endpoint = "media"
	}
	w := &statusWriter{ResponseWriter: rw}
	status := s.serveAPI(w, r, endpoint, segs)
	s.record(r, endpoint, status)
}

// serveAPI answers an API request and returns the status to count.
func (s *Server) serveAPI(w *statusWriter, r *http.Request, endpoint string, segs []string) string {
	now := time.Now()
	s.mu.Lock()
	limiter := s.limiter
	if limiter != nil {
		s.arrivals = append(s.arrivals, now)
		if len(s.arrivals) > maxRecords {
			s.arrivals = s.arrivals[1:]
		}
	}
	f := s.faults
	outage := s.outageLocked(now)
	unauthorized := s.unauthorizedLocked(now)
	roll, rollTimeout := s.rng.Float64(), s.rng.Float64()
	s.mu.Unlock()

	// The rate limit is checked before anything else, like a gateway would.
	if limiter != nil {
		if res := limiter.ReserveN(now, 1); res.DelayFrom(now) > 0 {
			wait := res.DelayFrom(now)
			res.CancelAt(now)
			secs := max(1, int(math.Ceil(wait.Seconds())))
			if s.cfg.RetryAfterHTTPDate {
				// An HTTP-date has whole seconds: round up past the wait.
				w.Header().Set("Retry-After", now.Add(time.Duration(secs+1)*time.Second).UTC().Format(http.TimeFormat))
			} else {
				w.Header().Set("Retry-After", strconv.Itoa(secs))
			}
			writeJSON(w, http.StatusTooManyRequests, apiError("rate limit exceeded"))
			return "429"
		}
	}
	if unauthorized || !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="claimx"`)
		writeJSON(w, http.StatusUnauthorized, apiError("unauthorized"))
		return "401"
	}
	if f.Latency > 0 {
		select {
		case <-time.After(time.Duration(f.Latency)):
		case <-r.Context().Done():
			return "timeout"
		}
	}
	if outage {
		writeJSON(w, http.StatusServiceUnavailable, apiError("service unavailable (simulated outage)"))
		return "503"
	}
	if rollTimeout < f.TimeoutRate {
		// Hang until the client gives up; bounded so a client without a
		// timeout does not leak the handler forever.
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Minute):
		}
		return "timeout"
	}
	if roll < f.ErrorRate {
		code := http.StatusInternalServerError
		if roll < f.ErrorRate/2 {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, apiError("simulated server error"))
		return strconv.Itoa(code)
	}
	if r.Method != http.MethodGet {
		writeJSON(w, http.StatusMethodNotAllowed, apiError("method not allowed"))
		return "405"
	}

	switch endpoint {
	case "assignment":
		id, err := strconv.ParseInt(segs[2], 10, 64)
		body, ok := s.data.assignmentBody[id]
		if err != nil || !ok {
			writeJSON(w, http.StatusNotFound, apiError("assignment not found"))
			return "404"
		}
		if r.URL.Query().Get("full") != "true" {
			// Without full=true the API leaves out the form answers.
			trimmed := make(map[string]any, len(body))
			for k, v := range body {
				if k != "response" {
					trimmed[k] = v
				}
			}
			body = trimmed
		}
		writeJSON(w, http.StatusOK, body)
	case "project":
		id, err := strconv.ParseInt(segs[2], 10, 64)
		body, ok := s.data.projectBody[id]
		if err != nil || !ok {
			writeJSON(w, http.StatusNotFound, apiError("project not found"))
			return "404"
		}
		writeJSON(w, http.StatusOK, body)
	case "media":
		return s.serveMediaList(w, r, segs[2])
	default:
		writeJSON(w, http.StatusNotFound, apiError("no such endpoint"))
		return "404"
	}
	return "200"
}

func apiError(msg string) map[string]any { return map[string]any{"error": msg} }

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func secureEq(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func (s *Server) authRequired() bool {
	return s.cfg.Token != "" || s.cfg.BasicUser != "" || s.cfg.ClientID != ""
}

func (s *Server) authorized(r *http.Request) bool {
	if !s.authRequired() {
		return true
	}
	h := r.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
		if s.cfg.Token != "" && secureEq(tok, s.cfg.Token) {
			return true
		}
		s.mu.Lock()
		exp, ok := s.tokens[tok]
		s.mu.Unlock()
		return ok && time.Now().Before(exp)
	}
	if u, p, ok := r.BasicAuth(); ok && s.cfg.BasicUser != "" {
		return secureEq(u, s.cfg.BasicUser) && secureEq(p, s.cfg.BasicPassword)
	}
	return false
}

// serveToken is the OAuth 2.0 client-credentials token endpoint. Client
// credentials are accepted in the Basic header or in the form body.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"error": "invalid_request"})
		return
	}
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request"})
		return
	}
	if r.PostForm.Get("grant_type") != "client_credentials" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "unsupported_grant_type"})
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if s.cfg.ClientID == "" || !secureEq(id, s.cfg.ClientID) || !secureEq(secret, s.cfg.ClientSecret) {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_client"})
		return
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	tok := "sim_" + hex.EncodeToString(b)
	s.mu.Lock()
	s.tokens[tok] = time.Now().Add(s.cfg.TokenTTL)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok,
		"token_type":   "Bearer",
		"expires_in":   int(s.cfg.TokenTTL.Seconds()),
		"scope":        r.PostForm.Get("scope"),
	})
}

// serveAdmin answers the /_sim/ endpoints: GET stats, POST reset, GET and
// POST faults, GET assignments, GET requests.
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request, segs []string) {
	if len(segs) != 1 {
		writeJSON(w, http.StatusNotFound, apiError("unknown simulator endpoint"))
		return
	}
	switch segs[0] + " " + r.Method {
	case "stats GET":
		writeJSON(w, http.StatusOK, s.Stats())
	case "reset POST":
		s.ResetStats()
		writeJSON(w, http.StatusOK, s.Stats())
	case "faults GET":
		writeJSON(w, http.StatusOK, s.CurrentFaults())
	case "faults POST":
		var f Faults
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			writeJSON(w, http.StatusBadRequest, apiError("decoding faults: "+err.Error()))
			return
		}
		if err := s.SetFaults(f); err != nil {
			writeJSON(w, http.StatusBadRequest, apiError(err.Error()))
			return
		}
		writeJSON(w, http.StatusOK, s.CurrentFaults())
	case "assignments GET":
		writeJSON(w, http.StatusOK, s.Assignments())
	case "requests GET":
		writeJSON(w, http.StatusOK, s.Requests())
	case "itel GET":
		writeJSON(w, http.StatusOK, s.itelReport())
	default:
		writeJSON(w, http.StatusNotFound, apiError("unknown simulator endpoint"))
	}
}

// StatusCount is a convenience for tests: the count of answers with status.
func (st Stats) StatusCount(status int) int64 { return st.ByStatus[strconv.Itoa(status)] }

// SortedStatuses lists the statuses seen, for printing.
func (st Stats) SortedStatuses() []string {
	keys := make([]string, 0, len(st.ByStatus))
	for k := range st.ByStatus {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
