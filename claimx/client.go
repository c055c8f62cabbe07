// Package claimx is a client of the ClaimX (Verisk ClaimXperience) REST API
// (DOMAIN.md §5), and of other REST APIs reached the same way (the iTel
// Cabinet API): GET requests, and POST requests with a JSON body, with
// bearer, basic or OAuth 2.0
// client-credentials auth (one token per client, refreshed before it
// expires and once after a 401), a rate limit, retries with exponential
// backoff and jitter honouring Retry-After, and a circuit breaker. Every
// failure is an *Error whose class says what went wrong and whose
// Unavailable method says whether it is the record's or the API's
// (docs/FAILURES.md). Credentials never appear in an error.
//
// The package knows nothing of benthos: the claimx_connection processor
// holds one Client per connection, shared by every claimx_lookup naming it,
// and turns what an Observer is told into metrics and logs.
package claimx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"
)

// Client calls the API. It is safe for concurrent use; share one per API
// connection so that its rate limit, circuit breaker and token are shared.
type Client struct {
	cfg     Config
	base    *url.URL
	header  http.Header // default headers of every request
	http    *http.Client
	oauth   *oauthSource
	limiter *rate.Limiter // nil: no rate limit
	obs     Observer

	breaker *gobreaker.TwoStepCircuitBreaker[struct{}]
	// openedAt is when the circuit last opened (unix nanoseconds): a held
	// stream probes when it half-opens.
	openedAt atomic.Int64
	// lastTrip is the hold reason of the last failure the breaker counted
	// (a "503"): an open circuit is reported with its cause.
	lastTrip atomic.Value

	// secrets holds every credential value, scrubbed from errors.
	secretsMu sync.RWMutex
	secrets   []string
}

// Option configures a Client.
type Option func(*Client)

// WithObserver sets the observer of the client: it is told of circuit
// breaker changes, and of the requests made without a request observer.
func WithObserver(o Observer) Option {
	return func(c *Client) {
		if o != nil {
			c.obs = o
		}
	}
}

// Outcomes reported to the circuit breaker.
var (
	errBreakerFailure  = errors.New("transient failure")
	errBreakerExcluded = errors.New("not a verdict on the API")
)

// New returns a client for cfg, which must be valid (Config.Validate).
func New(cfg Config, opts ...Option) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	base, _ := parseBaseURL(cfg.BaseURL)
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       cfg.TLS,
		TLSHandshakeTimeout:   min(10*time.Second, cfg.Timeout),
		ResponseHeaderTimeout: cfg.Timeout,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   cfg.MaxIdleConnsPerHost,
		ForceAttemptHTTP2:     true,
	}
	c := &Client{
		cfg:  cfg,
		base: base,
		http: &http.Client{
			Transport: transport,
			Timeout:   cfg.Timeout,
			// A redirect is reported as an unexpected status rather than
			// followed: the API does not redirect, and following one could
			// send credentials elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		obs:    NopObserver{},
		header: http.Header{},
	}
	for _, o := range opts {
		o(c)
	}
	for k, v := range cfg.Headers {
		c.header.Set(k, v)
		if sensitiveHeader(k) {
			c.addSecret(v)
		}
	}
	if c.header.Get("Accept") == "" {
		c.header.Set("Accept", "application/json")
	}
	for _, s := range []string{cfg.Auth.Token, cfg.Auth.Password, cfg.Auth.ClientSecret} {
		c.addSecret(s)
	}
	if cfg.Auth.Type == AuthOAuth2 {
		c.oauth = &oauthSource{client: c.http, auth: cfg.Auth, timeout: cfg.Timeout, onToken: c.addSecret}
	}
	if cfg.RateLimitPerSecond > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(cfg.RateLimitPerSecond), 1)
	}
	c.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "claimx " + base.Host,
		MaxRequests: uint32(cfg.Breaker.HalfOpenMaxRequests),
		Timeout:     cfg.Breaker.OpenTimeout,
		ReadyToTrip: func(counts gobreaker.Counts) bool {
			return counts.ConsecutiveFailures >= uint32(cfg.Breaker.FailureThreshold)
		},
		IsSuccessful: func(err error) bool { return !errors.Is(err, errBreakerFailure) },
		IsExcluded:   func(err error) bool { return errors.Is(err, errBreakerExcluded) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				c.openedAt.Store(time.Now().UnixNano())
			}
			c.obs.BreakerChanged(from.String(), to.String())
		},
	})
	return c, nil
}

// BaseURL is the API's base URL, without a trailing slash.
func (c *Client) BaseURL() string { return c.base.String() }

// Config is the client's configuration.
func (c *Client) Config() Config { return c.cfg }

// BreakerState is the circuit breaker's state: "closed", "open" or
// "half-open".
func (c *Client) BreakerState() string { return c.breaker.State().String() }

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Request is one GET (NewRequest) or POST (NewPostRequest).
type Request struct {
	// Method is http.MethodGet or http.MethodPost.
	Method string
	// URL is the full URL: base URL, path and query (keys sorted).
	URL *url.URL
	// Header holds the default headers and the request's own.
	Header http.Header
	// Body is a POST's body, sent whole on every attempt; nil for a GET.
	Body []byte
	key  string
}

// Key identifies the answer: the method and the full URL (never a
// credential), for caching and for sharing identical requests in flight.
// A POST's key does not identify its answer (the body is not in it): a
// POST is neither cached nor shared.
func (r *Request) Key() string { return r.key }

// method is the request's method; a Request built by hand without one is
// a GET.
func (r *Request) method() string {
	if r.Method == "" {
		return http.MethodGet
	}
	return r.Method
}

// retriesAllowed reports whether a failed attempt of the request may be
// repeated: a GET always; a POST only with an Idempotency-Key header, which
// makes the server answer a repeat with the first answer instead of acting
// twice.
func (r *Request) retriesAllowed() bool {
	return r.method() == http.MethodGet || strings.TrimSpace(r.Header.Get(IdempotencyKeyHeader)) != ""
}

// IdempotencyKeyHeader is the header that makes a POST safe to retry.
const IdempotencyKeyHeader = "Idempotency-Key"

// NewRequest prepares a GET of path (already escaped, appended to the base
// URL) with query; header adds to and overrides the default headers, and
// the values of its credential-like headers are scrubbed from errors.
func (c *Client) NewRequest(path string, query url.Values, header http.Header) (*Request, error) {
	return c.newRequest(http.MethodGet, path, query, nil, header)
}

// NewPostRequest prepares a POST of body (JSON) to path (already escaped,
// appended to the base URL); header adds to and overrides the default
// headers (Content-Type is application/json unless header sets it), and the
// values of its credential-like headers are scrubbed from errors (not an
// Idempotency-Key: it names the record). Do retries the POST only when header carries an
// Idempotency-Key; without one it gets a single attempt.
func (c *Client) NewPostRequest(path string, body []byte, header http.Header) (*Request, error) {
	if body == nil {
		body = []byte{}
	}
	return c.newRequest(http.MethodPost, path, nil, body, header)
}

func (c *Client) newRequest(method, path string, query url.Values, body []byte, header http.Header) (*Request, error) {
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	raw := c.base.String() + path
	if len(query) > 0 {
		// Encode sorts the keys, so one request always has one key.
		raw += "?" + query.Encode()
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("building the URL for path %s: %s", path, urlErr(err))
	}
	h := c.header.Clone()
	if method == http.MethodPost {
		h.Set("Content-Type", "application/json")
	}
	for k, vs := range header {
		h[http.CanonicalHeaderKey(k)] = vs
		if sensitiveHeader(k) {
			for _, v := range vs {
				c.addSecretOnce(v)
			}
		}
	}
	return &Request{Method: method, URL: u, Header: h, Body: body, key: method + " " + raw}, nil
}

// Response is a successful answer: status 200 (a GET), or 200, 201 or 202
// (a POST), with a JSON body.
type Response struct {
	Status int
	Body   []byte
	// Header is the answer's headers (Location, Idempotent-Replayed…).
	Header http.Header
	// Attempts counts the HTTP attempts made, the first included.
	Attempts int
}

// CallOption tunes one call.
type CallOption func(*callOpts)

type callOpts struct {
	attempts int
	obs      Observer
}

// WithAttempts makes at most n HTTP attempts instead of
// Config.Retries.MaxAttempts (a held stream's probe makes one).
func WithAttempts(n int) CallOption {
	return func(o *callOpts) {
		if n > 0 {
			o.attempts = n
		}
	}
}

// WithRequestObserver tells o, instead of the client's observer, what this
// call does (not the breaker's changes).
func WithRequestObserver(o Observer) CallOption {
	return func(co *callOpts) {
		if o != nil {
			co.obs = o
		}
	}
}

// Get calls GET path?query; see Do.
func (c *Client) Get(ctx context.Context, path string, query url.Values, opts ...CallOption) (*Response, error) {
	req, err := c.NewRequest(path, query, nil)
	if err != nil {
		return nil, &Error{Class: ClassClient, Path: path, Reason: c.redact(err.Error())}
	}
	return c.Do(ctx, req, opts...)
}

// Do calls the API, up to Retries.MaxAttempts times for timeouts,
// connection errors, 429 and 5xx, through the rate limit and the circuit
// breaker. Only status 200 (a GET) or 200, 201 or 202 (a POST) with a JSON
// body succeeds; every failure is an *Error.
//
// A POST is retried only when the request has an Idempotency-Key header:
// the server then answers a repeat of a request it already took with its
// first answer, so a timeout whose request did arrive cannot submit twice.
// Otherwise a POST gets one attempt (an OAuth token refused with a 401 is
// still renewed and the POST sent once more: the server refused it unread).
func (c *Client) Do(ctx context.Context, req *Request, opts ...CallOption) (*Response, error) {
	co := callOpts{attempts: c.cfg.Retries.MaxAttempts, obs: c.obs}
	for _, o := range opts {
		o(&co)
	}
	if !req.retriesAllowed() {
		co.attempts = 1
	}
	path := req.URL.EscapedPath()
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(c.cfg.Retries.InitialInterval),
		backoff.WithMaxInterval(c.cfg.Retries.MaxInterval),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0.5),
		backoff.WithMaxElapsedTime(0),
	)
	tokenRefreshed := false
	attempts := 0
	for {
		attempts++
		out, retryAfter, retryable := c.attempt(ctx, req, co.obs)
		if out.err == nil {
			return &Response{Status: out.status, Body: out.body, Header: out.header, Attempts: attempts}, nil
		}
		e := out.err
		e.Attempts, e.Path = attempts, path
		if req.method() != http.MethodGet {
			e.Method = req.method()
		}

		// An OAuth token can be revoked before it expires: fetch a new one
		// once, without counting it as a retry.
		if e.Class == ClassAuth && e.Status == http.StatusUnauthorized && c.oauth != nil && !tokenRefreshed {
			tokenRefreshed = true
			c.oauth.invalidate()
			attempts--
			continue
		}
		e.RetryAfter = max(e.RetryAfter, retryAfter)
		if !retryable || attempts >= co.attempts {
			return nil, e
		}
		wait := bo.NextBackOff()
		if retryAfter > 0 {
			if retryAfter > c.cfg.Retries.MaxInterval {
				e.Reason += fmt.Sprintf(" (the server asked to retry after %v, longer than retries.max_interval)", retryAfter)
				return nil, e
			}
			wait = max(wait, retryAfter)
		}
		co.obs.Retrying(attempts, wait, e)
		if err := sleep(ctx, wait); err != nil {
			e.Reason += "; retry interrupted: " + err.Error()
			return nil, e
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// outcome is one attempt's result: an answer or a failure.
type outcome struct {
	status int
	body   []byte
	header http.Header
	err    *Error
}

// attempt makes one HTTP attempt through the circuit breaker and the rate
// limit. It returns the outcome, the Retry-After asked for and whether the
// failure is worth retrying.
func (c *Client) attempt(ctx context.Context, req *Request, obs Observer) (outcome, time.Duration, bool) {
	done, err := c.breaker.Allow()
	if err != nil {
		obs.Failed(ClassCircuitOpen, 0)
		// A held stream probes again when the circuit half-opens.
		wait := time.Second
		if c.breaker.State() == gobreaker.StateOpen {
			wait = max(wait, c.cfg.Breaker.OpenTimeout-time.Since(time.Unix(0, c.openedAt.Load())))
		}
		cause, _ := c.lastTrip.Load().(string)
		return outcome{err: &Error{Class: ClassCircuitOpen, RetryAfter: wait, Cause: cause,
			Reason: fmt.Sprintf("circuit breaker is %s after repeated failures; not calling the API", c.breaker.State())}}, 0, false
	}
	out, retryAfter, retryable, verdict := c.call(ctx, req, obs)
	done(verdict)
	if errors.Is(verdict, errBreakerFailure) {
		if u := out.err.Unavailable(); u != nil {
			c.lastTrip.Store(u.Reason)
		}
	} else if out.err == nil || out.err.Unavailable() == nil {
		// The API answered: streams held on it probe now.
		obs.Answered()
	}
	if out.err != nil {
		out.err.Reason = c.redact(out.err.Reason)
	}
	return out, retryAfter, retryable
}

// call performs the HTTP request and classifies its outcome; verdict is what
// the circuit breaker is told.
func (c *Client) call(ctx context.Context, req *Request, obs Observer) (out outcome, retryAfter time.Duration, retryable bool, verdict error) {
	fail := func(class Class, status int, reason string) outcome {
		return outcome{status: status, err: &Error{Class: class, Status: status, Reason: reason}}
	}
	if c.limiter != nil {
		if err := c.limiter.Wait(ctx); err != nil {
			return fail(ClassTransient, 0, "waiting for the rate limit: "+err.Error()), 0, false, errBreakerExcluded
		}
	}

	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var reqBody io.Reader
	if req.Body != nil {
		// A fresh reader per attempt: every retry sends the whole body.
		reqBody = bytes.NewReader(req.Body)
	}
	hreq, err := http.NewRequestWithContext(actx, req.method(), req.URL.String(), reqBody)
	if err != nil {
		return fail(ClassClient, 0, "building request: "+urlErr(err)), 0, false, errBreakerExcluded
	}
	for k, vs := range req.Header {
		hreq.Header[k] = vs
	}
	if err := c.authorize(actx, hreq); err != nil {
		var e *Error
		if errors.As(err, &e) {
			return fail(e.Class, 0, e.Reason), 0, e.Class == ClassTransient, errBreakerExcluded
		}
		return fail(ClassAuth, 0, err.Error()), 0, false, errBreakerExcluded
	}

	start := time.Now()
	resp, err := c.http.Do(hreq)
	if err != nil {
		obs.Attempted(time.Since(start))
		if ctx.Err() != nil {
			// The caller is shutting down: not the API's fault.
			return fail(ClassTransient, 0, "interrupted: "+ctx.Err().Error()), 0, false, errBreakerExcluded
		}
		obs.Failed(ClassTransient, 0)
		reason := "request failed: " + urlErr(err)
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			reason = fmt.Sprintf("timed out after %v", c.cfg.Timeout)
		}
		return fail(ClassTransient, 0, reason), 0, true, errBreakerFailure
	}
	defer resp.Body.Close()
	maxBody := c.cfg.MaxResponseBytes
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	obs.Attempted(time.Since(start))
	status := resp.StatusCode
	failed := func(class Class, reason string) outcome {
		obs.Failed(class, status)
		return fail(class, status, reason)
	}

	success := status == http.StatusOK
	if req.method() == http.MethodPost {
		success = success || status == http.StatusCreated || status == http.StatusAccepted
	}
	switch {
	case success:
		if readErr != nil {
			return failed(ClassTransient, "reading the body: "+urlErr(readErr)), 0, true, errBreakerFailure
		}
		if int64(len(body)) > maxBody {
			return failed(ClassInvalidResponse, fmt.Sprintf("%s (%d)", tooBigReason, maxBody)), 0, false, nil
		}
		ct := resp.Header.Get("Content-Type")
		if mt, _, err := mime.ParseMediaType(ct); err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return failed(ClassInvalidResponse, fmt.Sprintf("Content-Type %q is not JSON", ct)), 0, false, nil
		}
		if err := validJSON(body); err != nil {
			return failed(ClassInvalidResponse, "body is not valid JSON: "+err.Error()), 0, false, nil
		}
		return outcome{status: status, body: body, header: resp.Header}, 0, false, nil
	case status == http.StatusNotFound:
		return failed(ClassNotFound, "not found"+snippet(body)), 0, false, nil
	case status == http.StatusUnauthorized:
		return failed(ClassAuth, "credentials refused"+snippet(body)), 0, false, nil
	case status == http.StatusTooManyRequests:
		// A rate-limiting API is up: waiting for its Retry-After is the
		// remedy, so 429 never opens the circuit (nor closes it).
		ra := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		return failed(ClassTransient, http.StatusText(status)+snippet(body)), ra, true, errBreakerExcluded
	case status >= 500:
		ra := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		return failed(ClassTransient, http.StatusText(status)+snippet(body)), ra, true, errBreakerFailure
	case status >= 400:
		return failed(ClassClient, http.StatusText(status)+snippet(body)), 0, false, nil
	default:
		return failed(ClassInvalidResponse, "unexpected status "+strconv.Itoa(status)), 0, false, nil
	}
}

// validJSON checks that body is one JSON value; the error says where it is
// not.
func validJSON(body []byte) error {
	if json.Valid(body) {
		return nil
	}
	var raw json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return err
	}
	return errors.New("not one JSON value")
}

// isTimeout reports a network timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// urlErr drops the URL that *url.Error puts in its text: the query may hold
// credentials.
func urlErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// snippet quotes the start of an error body, which usually says why.
func snippet(body []byte) string {
	s := strings.TrimSpace(string(body))
	if s == "" {
		return ""
	}
	const maxLen = 200
	if len(s) > maxLen {
		s = s[:maxLen] + "…"
	}
	return ": " + s
}

// parseRetryAfter reads a Retry-After value: delta-seconds or an HTTP-date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(math.MaxInt64/int64(time.Second)))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

func (c *Client) addSecret(s string) {
	if len(s) < 4 {
		// Scrubbing very short strings would mangle ordinary text; such
		// values are not credentials worth the name.
		return
	}
	c.secretsMu.Lock()
	defer c.secretsMu.Unlock()
	c.secrets = append(c.secrets, s)
}

// addSecretOnce records a credential given per request; the list is bounded
// so that per-request values cannot grow it without end.
func (c *Client) addSecretOnce(s string) {
	c.secretsMu.RLock()
	if len(c.secrets) >= 256 {
		c.secretsMu.RUnlock()
		return
	}
	for _, x := range c.secrets {
		if x == s {
			c.secretsMu.RUnlock()
			return
		}
	}
	c.secretsMu.RUnlock()
	c.addSecret(s)
}

// redact replaces every known credential in s.
func (c *Client) redact(s string) string {
	c.secretsMu.RLock()
	defer c.secretsMu.RUnlock()
	for _, sec := range c.secrets {
		s = strings.ReplaceAll(s, sec, "[redacted]")
	}
	return s
}

func sensitiveHeader(name string) bool {
	n := strings.ToLower(name)
	if n == "idempotency-key" {
		// Names the record, not a credential: scrubbing it would hide which
		// record failed, and each one would grow the list of secrets.
		return false
	}
	return n == "authorization" || n == "cookie" || n == "proxy-authorization" ||
		strings.Contains(n, "key") || strings.Contains(n, "token") || strings.Contains(n, "secret")
}
