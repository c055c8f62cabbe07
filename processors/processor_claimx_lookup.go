// Package processors holds the claimx-connect processors, among them
// claimx_lookup (a resilient ClaimX REST API lookup) and validate (declarative
// field rules). Import it for its registrations.
package processors

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/redpanda-data/benthos/v4/public/bloblang"
	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/sony/gobreaker/v2"
	"golang.org/x/sync/singleflight"

	"github.com/claimx/claimx-connect/internal/hold"
)

const (
	clFieldBaseURL          = "base_url"
	clFieldPath             = "path"
	clFieldPathParams       = "path_params"
	clFieldQuery            = "query"
	clFieldHeaders          = "headers"
	clFieldResultField      = "result_field"
	clFieldResultAsString   = "result_as_string"
	clFieldAuth             = "auth"
	clFieldAuthType         = "type"
	clFieldAuthToken        = "token"
	clFieldAuthUsername     = "username"
	clFieldAuthPassword     = "password"
	clFieldAuthTokenURL     = "token_url"
	clFieldAuthClientID     = "client_id"
	clFieldAuthClientSecret = "client_secret"
	clFieldAuthScopes       = "scopes"
	clFieldOnNotFound       = "on_not_found"
	clFieldCache            = "cache"
	clFieldCacheTTL         = "cache_ttl"
	clFieldRateLimit        = "rate_limit"
	clFieldMaxConcurrency   = "max_concurrency"
	clFieldTimeout          = "timeout"
	clFieldDialTimeout      = "dial_timeout"
	clFieldRetries          = "retries"
	clFieldMaxAttempts      = "max_attempts"
	clFieldInitialInterval  = "initial_interval"
	clFieldMaxInterval      = "max_interval"
	clFieldBreaker          = "circuit_breaker"
	clFieldFailureThreshold = "failure_threshold"
	clFieldOpenTimeout      = "open_timeout"
	clFieldHalfOpenMax      = "half_open_max_requests"
	clFieldMaxResponseBytes = "max_response_bytes"
	clFieldMetricsPrefix    = "metrics_prefix"
	clFieldTLS              = "tls"
)

// Metadata keys the processor sets on each message it looks up.
const (
	ClaimXLookupMetaStatus   = "claimx_lookup_status"
	ClaimXLookupMetaError    = "claimx_lookup_error"
	ClaimXLookupMetaAttempts = "claimx_lookup_attempts"
	ClaimXLookupMetaCached   = "claimx_lookup_cached"
)

// Error classes, the value of the claimx_lookup_error metadata and the reason
// label of the errors counter.
const (
	clErrAuth            = "auth"
	clErrNotFound        = "not_found"
	clErrClient          = "client"
	clErrTransient       = "transient"
	clErrCircuitOpen     = "circuit_open"
	clErrInvalidResponse = "invalid_response"
)

const (
	clAuthBearer = "bearer"
	clAuthBasic  = "basic"
	clAuthOAuth2 = "oauth2"
	clAuthNone   = "none"

	clNotFoundNull  = "null"
	clNotFoundError = "error"
	clNotFoundDrop  = "drop"
)

func claimxLookupConfigSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Integration").
		Version("0.1.0").
		Summary("Looks a record up in the ClaimX (Verisk ClaimXperience) REST API, with auth, cache, rate limit, retries and a circuit breaker.").
		Description(`
For each message the path template is filled from `+"`path_params`"+` (Bloblang queries
evaluated against the message), each value escaped as exactly one path segment, and
`+"`GET base_url + path ? query`"+` is called. The JSON answer is stored at `+"`result_field`"+`
(a dotted path into the message) or, without `+"`result_field`"+`, replaces the message.

### Failures

Only status 200 with a JSON body is a success. Every failure is either the record's or the
API's, and the two go different ways:

- **The record's**: the API says the assignment does not exist (404, which follows
  `+"`on_not_found`"+`: `+"`null`"+` stores null, or makes the message `+"`null`"+`; `+"`error`"+` fails the message;
  `+"`drop`"+` removes it), a 400, 409, 410, 413, 414 or 422 (the request built from the record is
  wrong), a path parameter the record cannot fill, an answer larger than
  `+"`max_response_bytes`"+`. The message leaves with its error set (route it with `+"`switch`"+` on
  `+"`errored()`"+`, e.g. to an errors topic).
- **The API's**: 5xx, 408, timeouts, refused or reset connections, DNS and TLS failures, 401
  and 403 (the credentials are wrong, not the event), 429 after its retries, a body that is
  not JSON (a proxy's HTML page), any other status, the circuit being open. With
  `+"`on_unavailable: hold`"+` (the default) the message never fails for these: the whole batch waits
  in the processor, unacknowledged, so its Kafka offsets do not advance. The processor probes
  the API with one request after `+"`hold_initial_interval`"+`, doubling the wait up to
  `+"`hold_max_interval`"+` (±20 % jitter; a `+"`Retry-After`"+` or the open circuit may ask for longer
  and is honoured), and when the probe is answered looks up the rest of the batch and lets it
  go on. Other pipeline threads holding on the same processor probe at once. When the stream
  stops (SIGTERM) during a hold, the batch is handed back unacknowledged and nothing is
  failed: the next process looks it up. `+"`hold_timeout`"+` ends a hold that lasts too long by stopping
  the process (exit code 3). With `+"`on_unavailable: error`"+` these failures fail the message instead.

Before either, timeouts, connection errors, 429 and 5xx are retried `+"`retries.max_attempts`"+`
times with exponential backoff and jitter; a `+"`Retry-After`"+` header (seconds or HTTP-date) is
honoured: the next attempt never starts earlier, and when the server asks for longer than
`+"`retries.max_interval`"+` the attempts end there. The error names the status, the URL path (never
the host, the query or a credential) and the reason. A failed message also gets the metadata
`+"`"+ClaimXLookupMetaError+"`"+` (`+"`auth`, `not_found`, `client`, `transient`, `circuit_open`, `invalid_response`"+`)
and, when the API answered, `+"`"+ClaimXLookupMetaStatus+"`"+` (the HTTP status).
`+"`"+ClaimXLookupMetaAttempts+"`"+` counts the HTTP attempts and `+"`"+ClaimXLookupMetaCached+"`"+` is `+"`true`"+`
when the cache answered.

### Circuit breaker

Every HTTP attempt counts: timeouts, connection errors and 5xx are failures;
any other answer (200, 404, other 4xx, an invalid body) proves the API is up and
counts as a success, except 429, which counts neither way: a rate-limiting API is
up, and its Retry-After is honoured instead. After `+"`circuit_breaker.failure_threshold`"+` consecutive failures the
circuit opens for `+"`circuit_breaker.open_timeout`"+`: lookups then fail at once with
`+"`circuit_open`"+` without calling the API. It then lets up to
`+"`circuit_breaker.half_open_max_requests`"+` probes through; they close it again or reopen it.

### Cache, rate limit, concurrency

With `+"`cache`"+`, successful answers are stored in that cache resource under
`+"`GET <full URL>`"+` (credentials are never part of the key) for `+"`cache_ttl`"+`. Identical
lookups in flight at the same time share one request. With `+"`rate_limit`"+`, every HTTP
attempt (retries too) first waits for the rate-limit resource. Lookups of a batch run
concurrently, at most `+"`max_concurrency`"+` at a time for the whole processor (all pipeline threads
together).

### Metrics

Per HTTP attempt: `+"`<metrics_prefix>claimx_api_calls_total`"+`, `+"`<metrics_prefix>claimx_api_latency_seconds`"+`
(a timer) and, for a failed attempt or a lookup refused by the open circuit,
`+"`<metrics_prefix>claimx_api_errors_total`"+` with label `+"`reason`"+` (the error class). Cache hits count
in `+"`<metrics_prefix>claimx_api_cache_hits_total`"+`. While holding: the gauge
`+"`<metrics_prefix>claimx_api_available`"+` is 0 (1 otherwise), `+"`<metrics_prefix>claimx_api_records_held`"+`
counts the records waiting, `+"`<metrics_prefix>claimx_api_hold_seconds_total`"+` the seconds held and
`+"`<metrics_prefix>claimx_api_holds_total`"+` (label `+"`reason`"+`: the status, `+"`timeout`"+`, `+"`connection`"+`,
`+"`auth`"+`, `+"`invalid_response`"+`; an open circuit is reported with the failures that opened it) the holds entered. A hold logs a warning when it
begins (the reason, never a credential or the query) and an info line when it ends, with
its length and the records that waited. With `+"`metrics_prefix: itel_worker_`"+` the names
are those of the original iTel worker.

### Secrets

`+"`auth.token`"+`, `+"`auth.password`"+` and `+"`auth.client_secret`"+` are secrets: set them from environment
variables. They, the OAuth access token and the values of credential-like headers
(Authorization, *key*, *token*, *secret*, Cookie) are scrubbed from every error and
log line the processor writes.`).
		Fields(
			service.NewStringField(clFieldBaseURL).
				Description("Base URL of the ClaimX API, without a trailing path template.").
				Example("${CLAIMX_API_BASE_URL}").
				Example("https://www.claimxperience.com/service/cxedirest"),
			service.NewStringField(clFieldPath).
				Description("Path template appended to `base_url`; `{name}` placeholders are filled from `path_params`.").
				Example("/customTasks/assignment/{assignment_id}"),
			service.NewStringMapField(clFieldPathParams).
				Description("Bloblang query per path placeholder, evaluated against the message. Each value must be a non-empty string, number or boolean; it is escaped as one path segment, so `../admin` or `1?x=y` cannot leave it.").
				Example(map[string]any{"assignment_id": "this.task_assignment_id"}).
				Default(map[string]any{}),
			service.NewInterpolatedStringMapField(clFieldQuery).
				Description("Query parameters; values support interpolation functions.").
				Example(map[string]any{"full": "true"}).
				Default(map[string]any{}),
			service.NewInterpolatedStringMapField(clFieldHeaders).
				Description("Extra request headers; values support interpolation functions. `Accept: application/json` is sent unless set here.").
				Default(map[string]any{}),
			service.NewStringField(clFieldResultField).
				Description("Dotted path in the message (a JSON object) where the answer is stored. Empty: the answer replaces the message.").
				Example("claimx_task_full").
				Default(""),
			service.NewBoolField(clFieldResultAsString).
				Description("Store the answer at `result_field` as a JSON-encoded string rather than as an object.").
				Default(false),
			service.NewObjectField(clFieldAuth,
				service.NewStringAnnotatedEnumField(clFieldAuthType, map[string]string{
					clAuthBearer: "`Authorization: Bearer <token>`.",
					clAuthBasic:  "HTTP Basic with `username` and `password`.",
					clAuthOAuth2: "OAuth 2.0 client credentials: a token is fetched from `token_url`, cached and refreshed before it expires (and once after a 401).",
					clAuthNone:   "No credentials.",
				}).Description("Authentication scheme.").Default(clAuthBearer),
				service.NewStringField(clFieldAuthToken).Description("Bearer token.").Example("${CLAIMX_API_TOKEN}").Default("").Secret(),
				service.NewStringField(clFieldAuthUsername).Description("Basic auth user name.").Default(""),
				service.NewStringField(clFieldAuthPassword).Description("Basic auth password.").Default("").Secret(),
				service.NewStringField(clFieldAuthTokenURL).Description("OAuth 2.0 token endpoint.").Default(""),
				service.NewStringField(clFieldAuthClientID).Description("OAuth 2.0 client id.").Default(""),
				service.NewStringField(clFieldAuthClientSecret).Description("OAuth 2.0 client secret.").Default("").Secret(),
				service.NewStringListField(clFieldAuthScopes).Description("OAuth 2.0 scopes.").Default([]any{}),
			).Description("Credentials for the API."),
			service.NewStringAnnotatedEnumField(clFieldOnNotFound, map[string]string{
				clNotFoundNull:  "Store null at `result_field` (or make the message `null`) and go on.",
				clNotFoundError: "Fail the message.",
				clNotFoundDrop:  "Remove the message from the batch.",
			}).Description("What a 404 does.").Default(clNotFoundNull),
			service.NewStringField(clFieldCache).Description("Name of a cache resource for successful answers. Empty: no cache.").Default(""),
			service.NewDurationField(clFieldCacheTTL).Description("How long cached answers are served.").Default("60s"),
			service.NewStringField(clFieldRateLimit).Description("Name of a rate_limit resource every HTTP attempt waits for. Empty: no rate limit.").Default(""),
			service.NewIntField(clFieldMaxConcurrency).Description("Most lookups in flight at once, for the whole processor (benthos shares one processor instance between all pipeline threads).").Default(20),
			service.NewDurationField(clFieldTimeout).Description("Time limit of one HTTP attempt, body included.").Default("30s"),
			service.NewDurationField(clFieldDialTimeout).Description("Time limit to open a TCP connection.").Default("10s").Advanced(),
			service.NewObjectField(clFieldRetries,
				service.NewIntField(clFieldMaxAttempts).Description("HTTP attempts per lookup, the first included.").Default(3),
				service.NewDurationField(clFieldInitialInterval).Description("Wait before the second attempt; doubles each time, with ±50 % jitter.").Default("2s"),
				service.NewDurationField(clFieldMaxInterval).Description("Longest wait between attempts, and the longest Retry-After honoured.").Default("60s"),
			).Description("Retries of timeouts, connection errors, 429 and 5xx."),
			service.NewObjectField(clFieldBreaker,
				service.NewIntField(clFieldFailureThreshold).Description("Consecutive failed attempts that open the circuit.").Default(5),
				service.NewDurationField(clFieldOpenTimeout).Description("How long the circuit stays open before probing. With `on_unavailable: hold` it may not exceed `hold_max_interval`: the breaker decides when a held stream probes.").Default("30s"),
				service.NewIntField(clFieldHalfOpenMax).Description("Probes let through while half-open; that many successes close it.").Default(1),
			).Description("Circuit breaker over the HTTP attempts.").Advanced(),
			service.NewIntField(clFieldMaxResponseBytes).Description("Largest response body accepted; a larger one fails the lookup as `invalid_response`.").Default(10<<20).Advanced(),
			service.NewStringField(clFieldMetricsPrefix).Description("Prefix of the metric names, e.g. `itel_worker_`.").Default(""),
			service.NewTLSToggledField(clFieldTLS),
		).
		Fields(holdFields("the ClaimX API")...).
		Example("Assignment with its form answers (the iTel worker)", `
Stores the assignment at `+"`claimx_task_full`"+` as a JSON string; a 404 stores null.
`, `
pipeline:
  processors:
    - claimx_lookup:
        base_url: ${CLAIMX_API_BASE_URL}
        path: /customTasks/assignment/{assignment_id}
        path_params: { assignment_id: this.assignment_id }
        query: { full: "true" }
        result_field: claimx_task_full
        result_as_string: true
        auth: { type: bearer, token: ${CLAIMX_API_TOKEN} }
        on_not_found: "null"
        cache: claimx_cache
        cache_ttl: 60s
        rate_limit: claimx_rate
        max_concurrency: 20
        timeout: 30s
        retries: { max_attempts: 3, initial_interval: 2s, max_interval: 60s }
        metrics_prefix: itel_worker_

cache_resources:
  - label: claimx_cache
    memory: { default_ttl: 60s }

rate_limit_resources:
  - label: claimx_rate
    local: { count: 100, interval: 1s }
`).
		Example("Project export with OAuth 2.0", `
Replaces the message with the project export; unknown projects are dropped.
`, `
pipeline:
  processors:
    - claimx_lookup:
        base_url: ${CLAIMX_API_BASE_URL}
        path: /export/project/{project_id}
        path_params: { project_id: this.project_id }
        on_not_found: drop
        auth:
          type: oauth2
          token_url: ${CLAIMX_TOKEN_URL}
          client_id: ${CLAIMX_CLIENT_ID}
          client_secret: ${CLAIMX_CLIENT_SECRET}
`)
}

func init() {
	service.MustRegisterBatchProcessor("claimx_lookup", claimxLookupConfigSpec(),
		func(conf *service.ParsedConfig, res *service.Resources) (service.BatchProcessor, error) {
			return newClaimxLookupFromConfig(conf, res)
		})
}

// claimxLookupConfig is the parsed configuration, free of benthos types except
// the per-message expressions.
type claimxLookupConfig struct {
	baseURL        *url.URL
	pathTemplate   string
	pathParams     map[string]*bloblang.Executor
	query          map[string]*service.InterpolatedString
	headers        map[string]*service.InterpolatedString
	resultField    []string
	resultAsString bool
	auth           clAuthConfig
	onNotFound     string
	cache          string
	cacheTTL       time.Duration
	rateLimit      string
	maxConcurrency int
	timeout        time.Duration
	dialTimeout    time.Duration
	maxAttempts    int
	initialIntvl   time.Duration
	maxIntvl       time.Duration
	failThreshold  int
	openTimeout    time.Duration
	halfOpenMax    int
	maxBody        int64
	metricsPrefix  string
	tlsConf        *tls.Config
	hold           holdSettings
}

type clAuthConfig struct {
	kind                             string
	token, username, password        string
	tokenURL, clientID, clientSecret string
	scopes                           []string
}

var clPlaceholderRe = regexp.MustCompile(`\{([A-Za-z0-9_]+)\}`)

func newClaimxLookupFromConfig(conf *service.ParsedConfig, res *service.Resources) (*claimxLookup, error) {
	var c claimxLookupConfig
	var err error

	rawBase, err := conf.FieldString(clFieldBaseURL)
	if err != nil {
		return nil, err
	}
	if c.baseURL, err = url.Parse(strings.TrimRight(rawBase, "/")); err != nil {
		// url.Parse echoes the input, which may hold credentials: keep it out.
		return nil, errors.New("parsing base_url: not a valid URL")
	}
	if (c.baseURL.Scheme != "http" && c.baseURL.Scheme != "https") || c.baseURL.Host == "" {
		return nil, errors.New("base_url must be an absolute http or https URL")
	}
	if c.baseURL.RawQuery != "" || c.baseURL.Fragment != "" {
		return nil, errors.New("base_url must not have a query or fragment: use the query field")
	}

	if c.pathTemplate, err = conf.FieldString(clFieldPath); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(c.pathTemplate, "/") {
		c.pathTemplate = "/" + c.pathTemplate
	}
	rawParams, err := conf.FieldStringMap(clFieldPathParams)
	if err != nil {
		return nil, err
	}
	c.pathParams = map[string]*bloblang.Executor{}
	for name := range rawParams {
		if c.pathParams[name], err = conf.FieldBloblang(clFieldPathParams, name); err != nil {
			return nil, fmt.Errorf("parsing path_params.%s: %w", name, err)
		}
	}
	placeholders := map[string]bool{}
	for _, m := range clPlaceholderRe.FindAllStringSubmatch(c.pathTemplate, -1) {
		placeholders[m[1]] = true
		if _, ok := c.pathParams[m[1]]; !ok {
			return nil, fmt.Errorf("path placeholder {%s} has no entry in path_params", m[1])
		}
	}
	for name := range c.pathParams {
		if !placeholders[name] {
			return nil, fmt.Errorf("path_params.%s has no {%s} placeholder in path %q", name, name, c.pathTemplate)
		}
	}

	if c.query, err = conf.FieldInterpolatedStringMap(clFieldQuery); err != nil {
		return nil, err
	}
	if c.headers, err = conf.FieldInterpolatedStringMap(clFieldHeaders); err != nil {
		return nil, err
	}
	rf, err := conf.FieldString(clFieldResultField)
	if err != nil {
		return nil, err
	}
	if rf != "" {
		c.resultField = strings.Split(rf, ".")
		for _, p := range c.resultField {
			if p == "" {
				return nil, fmt.Errorf("result_field %q has an empty path segment", rf)
			}
		}
	}
	if c.resultAsString, err = conf.FieldBool(clFieldResultAsString); err != nil {
		return nil, err
	}

	if c.auth, err = parseClAuth(conf.Namespace(clFieldAuth)); err != nil {
		return nil, err
	}

	if c.onNotFound, err = conf.FieldString(clFieldOnNotFound); err != nil {
		return nil, err
	}
	if c.cache, err = conf.FieldString(clFieldCache); err != nil {
		return nil, err
	}
	if c.cache != "" && !res.HasCache(c.cache) {
		return nil, fmt.Errorf("cache resource %q not found", c.cache)
	}
	if c.cacheTTL, err = conf.FieldDuration(clFieldCacheTTL); err != nil {
		return nil, err
	}
	if c.rateLimit, err = conf.FieldString(clFieldRateLimit); err != nil {
		return nil, err
	}
	if c.rateLimit != "" && !res.HasRateLimit(c.rateLimit) {
		return nil, fmt.Errorf("rate_limit resource %q not found", c.rateLimit)
	}
	if c.maxConcurrency, err = conf.FieldInt(clFieldMaxConcurrency); err != nil {
		return nil, err
	}
	if c.maxConcurrency < 1 {
		return nil, fmt.Errorf("max_concurrency must be at least 1, got %d", c.maxConcurrency)
	}
	if c.timeout, err = conf.FieldDuration(clFieldTimeout); err != nil {
		return nil, err
	}
	if c.dialTimeout, err = conf.FieldDuration(clFieldDialTimeout); err != nil {
		return nil, err
	}
	if c.timeout <= 0 || c.dialTimeout <= 0 {
		return nil, errors.New("timeout and dial_timeout must be positive")
	}

	rc := conf.Namespace(clFieldRetries)
	if c.maxAttempts, err = rc.FieldInt(clFieldMaxAttempts); err != nil {
		return nil, err
	}
	if c.initialIntvl, err = rc.FieldDuration(clFieldInitialInterval); err != nil {
		return nil, err
	}
	if c.maxIntvl, err = rc.FieldDuration(clFieldMaxInterval); err != nil {
		return nil, err
	}
	if c.maxAttempts < 1 || c.initialIntvl <= 0 || c.maxIntvl < c.initialIntvl {
		return nil, fmt.Errorf("retries: max_attempts must be at least 1 and 0 < initial_interval <= max_interval, got %d, %v, %v",
			c.maxAttempts, c.initialIntvl, c.maxIntvl)
	}

	bc := conf.Namespace(clFieldBreaker)
	if c.failThreshold, err = bc.FieldInt(clFieldFailureThreshold); err != nil {
		return nil, err
	}
	if c.openTimeout, err = bc.FieldDuration(clFieldOpenTimeout); err != nil {
		return nil, err
	}
	if c.halfOpenMax, err = bc.FieldInt(clFieldHalfOpenMax); err != nil {
		return nil, err
	}
	if c.failThreshold < 1 || c.openTimeout <= 0 || c.halfOpenMax < 1 {
		return nil, errors.New("circuit_breaker: failure_threshold and half_open_max_requests must be at least 1 and open_timeout positive")
	}

	maxBody, err := conf.FieldInt(clFieldMaxResponseBytes)
	if err != nil {
		return nil, err
	}
	if maxBody < 1 {
		return nil, fmt.Errorf("max_response_bytes must be positive, got %d", maxBody)
	}
	c.maxBody = int64(maxBody)
	if c.metricsPrefix, err = conf.FieldString(clFieldMetricsPrefix); err != nil {
		return nil, err
	}
	tlsConf, tlsOn, err := conf.FieldTLSToggled(clFieldTLS)
	if err != nil {
		return nil, err
	}
	if tlsOn {
		c.tlsConf = tlsConf
	}
	if c.hold, err = parseHoldSettings(conf); err != nil {
		return nil, err
	}
	if c.hold.mode == hold.ModeHold && c.openTimeout > c.hold.cfg.MaxInterval {
		return nil, fmt.Errorf("circuit_breaker.open_timeout (%v) must not exceed %s (%v) with %s: %s: a held stream probes when the breaker lets it",
			c.openTimeout, holdFieldMaxInterval, c.hold.cfg.MaxInterval, holdFieldOnUnavailable, hold.ModeHold)
	}
	return newClaimxLookup(c, res), nil
}

func parseClAuth(conf *service.ParsedConfig) (a clAuthConfig, err error) {
	if a.kind, err = conf.FieldString(clFieldAuthType); err != nil {
		return a, err
	}
	fields := []struct {
		name string
		dst  *string
	}{
		{clFieldAuthToken, &a.token}, {clFieldAuthUsername, &a.username}, {clFieldAuthPassword, &a.password},
		{clFieldAuthTokenURL, &a.tokenURL}, {clFieldAuthClientID, &a.clientID}, {clFieldAuthClientSecret, &a.clientSecret},
	}
	for _, f := range fields {
		if *f.dst, err = conf.FieldString(f.name); err != nil {
			return a, err
		}
	}
	if a.scopes, err = conf.FieldStringList(clFieldAuthScopes); err != nil {
		return a, err
	}
	switch a.kind {
	case clAuthBearer:
		if a.token == "" {
			return a, errors.New("auth.token is required for bearer auth (is CLAIMX_API_TOKEN set?)")
		}
	case clAuthBasic:
		if a.username == "" || a.password == "" {
			return a, errors.New("auth.username and auth.password are required for basic auth")
		}
	case clAuthOAuth2:
		if a.tokenURL == "" || a.clientID == "" || a.clientSecret == "" {
			return a, errors.New("auth.token_url, auth.client_id and auth.client_secret are required for oauth2 auth")
		}
		u, perr := url.Parse(a.tokenURL)
		if perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return a, errors.New("auth.token_url must be an absolute http or https URL")
		}
	case clAuthNone:
	default:
		return a, fmt.Errorf("auth.type %q is not one of bearer, basic, oauth2, none", a.kind)
	}
	return a, nil
}

// claimxLookup is the processor.
type claimxLookup struct {
	conf   claimxLookupConfig
	res    *service.Resources
	log    *service.Logger
	client *http.Client
	oauth  *clOAuthSource

	sem      chan struct{}
	flight   singleflight.Group
	warmOnce sync.Once
	breaker  *gobreaker.TwoStepCircuitBreaker[struct{}]
	// openedAt is when the circuit last opened (unix nanoseconds): a held
	// stream probes when it half-opens.
	openedAt atomic.Int64
	// lastTrip is the hold reason of the last failure the breaker counted
	// (a "503"): an open circuit is reported with its cause.
	lastTrip atomic.Value
	gate     *hold.Gate

	mCalls     *service.MetricCounter
	mErrors    *service.MetricCounter
	mCacheHits *service.MetricCounter
	mLatency   *service.MetricTimer

	// secrets holds every credential value, scrubbed from errors and logs.
	secretsMu sync.RWMutex
	secrets   []string
}

func newClaimxLookup(c claimxLookupConfig, res *service.Resources) *claimxLookup {
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: c.dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       c.tlsConf,
		TLSHandshakeTimeout:   min(10*time.Second, c.timeout),
		ResponseHeaderTimeout: c.timeout,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   c.maxConcurrency,
		ForceAttemptHTTP2:     true,
	}
	client := &http.Client{
		Transport: transport,
		Timeout:   c.timeout,
		// A redirect is reported as an unexpected status rather than
		// followed: the API does not redirect, and following one could send
		// credentials elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	p := &claimxLookup{
		conf:       c,
		res:        res,
		log:        res.Logger(),
		client:     client,
		sem:        make(chan struct{}, c.maxConcurrency),
		mCalls:     res.Metrics().NewCounter(c.metricsPrefix + "claimx_api_calls_total"),
		mErrors:    res.Metrics().NewCounter(c.metricsPrefix+"claimx_api_errors_total", "reason"),
		mCacheHits: res.Metrics().NewCounter(c.metricsPrefix + "claimx_api_cache_hits_total"),
		mLatency:   res.Metrics().NewTimer(c.metricsPrefix + "claimx_api_latency_seconds"),
	}
	for _, s := range []string{c.auth.token, c.auth.password, c.auth.clientSecret} {
		p.addSecret(s)
	}
	for k, is := range c.headers {
		if v, static := is.Static(); static && clSensitiveHeader(k) {
			p.addSecret(v)
		}
	}
	if c.auth.kind == clAuthOAuth2 {
		p.oauth = &clOAuthSource{client: client, conf: c.auth, timeout: c.timeout, onToken: p.addSecret}
	}
	p.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "claimx_lookup " + c.baseURL.Host,
		MaxRequests: uint32(c.halfOpenMax),
		Timeout:     c.openTimeout,
		ReadyToTrip: func(counts gobreaker.Counts) bool {
			return counts.ConsecutiveFailures >= uint32(c.failThreshold)
		},
		IsSuccessful: func(err error) bool { return !errors.Is(err, errClBreakerFailure) },
		IsExcluded:   func(err error) bool { return errors.Is(err, errClBreakerExcluded) },
		OnStateChange: func(name string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				p.openedAt.Store(time.Now().UnixNano())
			}
			p.log.Warnf("%s: circuit breaker %s -> %s", name, from, to)
		},
	})
	c.hold.cfg.Dependency = "claimx " + c.baseURL.String()
	p.gate = newHoldGate(res, c.hold, "ClaimX API", c.metricsPrefix+"claimx_api")
	return p
}

// clWarmMu serialises the first access of every lookup to its resources.
var clWarmMu sync.Mutex

// Outcomes reported to the circuit breaker.
var (
	errClBreakerFailure  = errors.New("transient failure")
	errClBreakerExcluded = errors.New("not a verdict on the API")
)

func (p *claimxLookup) addSecret(s string) {
	if len(s) < 4 {
		// Scrubbing very short strings would mangle ordinary text; such
		// values are not credentials worth the name.
		return
	}
	p.secretsMu.Lock()
	defer p.secretsMu.Unlock()
	p.secrets = append(p.secrets, s)
}

// redact replaces every known credential in s.
func (p *claimxLookup) redact(s string) string {
	p.secretsMu.RLock()
	defer p.secretsMu.RUnlock()
	for _, sec := range p.secrets {
		s = strings.ReplaceAll(s, sec, "[redacted]")
	}
	return s
}

func clSensitiveHeader(name string) bool {
	n := strings.ToLower(name)
	return n == "authorization" || n == "cookie" || n == "proxy-authorization" ||
		strings.Contains(n, "key") || strings.Contains(n, "token") || strings.Contains(n, "secret")
}

// clLookupError is a failed lookup; its class goes to claimx_lookup_error.
type clLookupError struct {
	class      string
	status     int // 0 when the API did not answer
	path       string
	attempts   int
	reason     string
	retryAfter time.Duration // asked for by the API, or until the circuit half-opens
	cause      string        // circuit_open: the hold reason of the failures that opened it
}

// unavailable classifies a failed lookup (the spec's "Failures"): nil when
// the failure belongs to the record (it would fail again however long we
// waited: a 404, a 400 or 422 naming the request built from it, an answer too
// big to hold), else the dependency failure that a held stream waits out.
func (e *clLookupError) unavailable() *hold.UnavailableError {
	reason := ""
	switch e.class {
	case clErrNotFound:
		return nil
	case clErrClient:
		switch e.status {
		case 0, http.StatusBadRequest, http.StatusNotFound, http.StatusConflict, http.StatusGone,
			http.StatusRequestEntityTooLarge, http.StatusRequestURITooLong, http.StatusUnprocessableEntity:
			return nil
		}
		reason = strconv.Itoa(e.status)
	case clErrInvalidResponse:
		if e.tooBig() {
			return nil
		}
		reason = clErrInvalidResponse
	case clErrCircuitOpen:
		reason = clErrCircuitOpen
		if e.cause != "" {
			reason = e.cause
		}
	case clErrAuth, clErrTransient:
		switch {
		case e.status != 0:
			reason = strconv.Itoa(e.status)
		case e.class == clErrAuth:
			reason = clErrAuth
		case strings.HasPrefix(e.reason, "timed out"):
			reason = "timeout"
		default:
			reason = "connection"
		}
	default:
		reason = e.class
	}
	u := &hold.UnavailableError{Reason: reason, Err: e}
	if e.class == clErrCircuitOpen {
		u.ReopensIn = e.retryAfter
	} else {
		u.RetryAfter = e.retryAfter
	}
	return u
}

// tooBig reports an answer over max_response_bytes: the record's answer,
// which no wait makes smaller.
func (e *clLookupError) tooBig() bool {
	return e.class == clErrInvalidResponse && strings.HasPrefix(e.reason, "body larger than")
}

func (e *clLookupError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "claimx lookup GET %s", e.path)
	if e.attempts > 1 {
		fmt.Fprintf(&b, " failed after %d attempts", e.attempts)
	} else {
		b.WriteString(" failed")
	}
	fmt.Fprintf(&b, ": %s", e.class)
	if e.status != 0 {
		fmt.Fprintf(&b, ": status %d", e.status)
	}
	if e.reason != "" {
		fmt.Fprintf(&b, ": %s", e.reason)
	}
	return b.String()
}

// clRequest is one resolved lookup.
type clRequest struct {
	url     *url.URL
	key     string // cache and in-flight key: method and full URL
	headers http.Header
}

// clResult is the outcome of a lookup.
type clResult struct {
	body     []byte
	parsed   any    // the body decoded, when the answer is stored as a value
	text     string // the body compacted, when it is stored as a string (result_as_string)
	status   int
	attempts int
	cached   bool
	err      *clLookupError
}

// ProcessBatch looks every message up concurrently and applies the outcomes.
// With on_unavailable: hold, a failure of the API holds the whole batch here
// until the API answers (see hold.Gate); the batch leaves only with answers
// and record errors.
func (p *claimxLookup) ProcessBatch(ctx context.Context, batch service.MessageBatch) ([]service.MessageBatch, error) {
	results := make([]*clResult, len(batch))
	reqs := make([]*clRequest, len(batch))
	var todo []int // one message per distinct URL
	drop := make([]bool, len(batch))
	// Messages of a batch asking for the same URL share one lookup: one
	// cache read and one decoding instead of one per message.
	firstOf := map[string]int{}
	sameAs := make([]int, len(batch))
	ex := p.executors(batch)
	for i, msg := range batch {
		sameAs[i] = -1
		req, err := p.resolve(ex, i)
		if err != nil {
			msg.SetError(err)
			msg.MetaSetMut(ClaimXLookupMetaError, clErrClient)
			msg.MetaDelete(ClaimXLookupMetaStatus)
			continue
		}
		if p.conf.resultField != nil {
			// Checked before calling the API: a message that cannot hold the
			// answer should not cost a request.
			if _, err := clObject(msg); err != nil {
				msg.SetError(fmt.Errorf("claimx lookup GET %s: cannot store the answer at %s: %w",
					req.url.EscapedPath(), strings.Join(p.conf.resultField, "."), err))
				msg.MetaSetMut(ClaimXLookupMetaError, clErrClient)
				continue
			}
		}
		if j, ok := firstOf[req.key]; ok {
			sameAs[i] = j
			continue
		}
		firstOf[req.key] = i
		reqs[i] = req
		todo = append(todo, i)
	}
	if p.conf.hold.mode == hold.ModeHold {
		err := p.gate.Do(ctx, len(batch), func(ctx context.Context, probe bool) error {
			return p.lookupHeld(ctx, todo, reqs, results, probe)
		})
		if err != nil {
			// Only the end of the stream interrupts a hold: the batch is
			// dropped with its context, unacknowledged, for the next process.
			return nil, err
		}
	} else {
		p.lookupAll(ctx, todo, reqs, results, p.conf.maxAttempts)
	}
	for i, j := range sameAs {
		if j >= 0 {
			results[i] = results[j]
		}
	}

	for i, msg := range batch {
		r := results[i]
		if r == nil {
			continue
		}
		drop[i] = p.apply(msg, r)
	}
	out := make(service.MessageBatch, 0, len(batch))
	for i, msg := range batch {
		if !drop[i] {
			out = append(out, msg)
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return []service.MessageBatch{out}, nil
}

// lookupHeld runs the lookups that have no answer yet or failed for want of
// the API, and returns the API's failure if one remains. A probe sends one
// request before the rest: a recovering API sees one request, not a batch.
func (p *claimxLookup) lookupHeld(ctx context.Context, todo []int, reqs []*clRequest, results []*clResult, probe bool) error {
	var pending []int
	for _, i := range todo {
		if results[i] == nil || results[i].unavailable() != nil {
			pending = append(pending, i)
		}
	}
	if probe && len(pending) > 0 {
		p.lookupAll(ctx, pending[:1], reqs, results, 1)
		if u := results[pending[0]].unavailable(); u != nil {
			return u
		}
		pending = pending[1:]
	}
	p.lookupAll(ctx, pending, reqs, results, p.conf.maxAttempts)
	// The hold is reported with the API's own failure (a 503) rather than
	// the open circuit that the first failures caused.
	var first *hold.UnavailableError
	for _, i := range pending {
		if u := results[i].unavailable(); u != nil {
			if u.Reason != clErrCircuitOpen {
				return u
			}
			if first == nil {
				first = u
			}
		}
	}
	if first != nil {
		return first
	}
	return nil
}

// lookupAll looks up reqs[i] for each i of idx concurrently, at most
// max_concurrency at a time across the processor, each with up to attempts
// HTTP attempts.
func (p *claimxLookup) lookupAll(ctx context.Context, idx []int, reqs []*clRequest, results []*clResult, attempts int) {
	var wg sync.WaitGroup
	for _, i := range idx {
		req := reqs[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case p.sem <- struct{}{}:
			case <-ctx.Done():
				results[i] = &clResult{err: &clLookupError{class: clErrTransient, path: req.url.EscapedPath(), reason: "interrupted: " + ctx.Err().Error()}}
				return
			}
			defer func() { <-p.sem }()
			results[i] = p.lookup(ctx, req, attempts)
		}()
	}
	wg.Wait()
}

// unavailable is the dependency failure of a result, or nil.
func (r *clResult) unavailable() *hold.UnavailableError {
	if r == nil || r.err == nil {
		return nil
	}
	return r.err.unavailable()
}

// apply writes a lookup outcome into the message; it reports whether the
// message is to be dropped.
func (p *claimxLookup) apply(msg *service.Message, r *clResult) bool {
	msg.MetaSetMut(ClaimXLookupMetaAttempts, int64(r.attempts))
	msg.MetaSetMut(ClaimXLookupMetaCached, r.cached)
	if r.status != 0 {
		msg.MetaSetMut(ClaimXLookupMetaStatus, int64(r.status))
	} else {
		msg.MetaDelete(ClaimXLookupMetaStatus)
	}
	if r.err != nil && r.err.class == clErrNotFound {
		switch p.conf.onNotFound {
		case clNotFoundDrop:
			return true
		case clNotFoundNull:
			msg.MetaDelete(ClaimXLookupMetaError)
			if p.conf.resultField == nil {
				msg.SetStructured(nil)
				return false
			}
			if err := p.store(msg, nil); err != nil {
				msg.SetError(err)
				msg.MetaSetMut(ClaimXLookupMetaError, clErrClient)
			}
			return false
		}
	}
	if r.err != nil {
		msg.SetError(r.err)
		msg.MetaSetMut(ClaimXLookupMetaError, r.err.class)
		return false
	}
	msg.MetaDelete(ClaimXLookupMetaError)
	if p.conf.resultField == nil {
		msg.SetBytes(bytes.Clone(r.body))
		return false
	}
	var v any = r.parsed
	if p.conf.resultAsString {
		v = r.text // immutable: shared by the messages with the same answer
	} else {
		// The parsed value may be shared with other messages of the batch
		// (cache and in-flight sharing), so each message gets its own copy.
		v = clDeepCopy(v)
	}
	if err := p.store(msg, v); err != nil {
		msg.SetError(err)
		msg.MetaSetMut(ClaimXLookupMetaError, clErrClient)
	}
	return false
}

func (p *claimxLookup) store(msg *service.Message, v any) error {
	root, err := clObject(msg)
	if err != nil {
		return fmt.Errorf("storing the claimx answer at %s: %w", strings.Join(p.conf.resultField, "."), err)
	}
	obj := root
	for _, seg := range p.conf.resultField[:len(p.conf.resultField)-1] {
		next, ok := obj[seg].(map[string]any)
		if !ok {
			next = map[string]any{}
			obj[seg] = next
		}
		obj = next
	}
	obj[p.conf.resultField[len(p.conf.resultField)-1]] = v
	msg.SetStructuredMut(root)
	return nil
}

func clObject(msg *service.Message) (map[string]any, error) {
	v, err := msg.AsStructuredMut()
	if err != nil {
		return nil, fmt.Errorf("message is not JSON: %w", err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("message is a JSON %T, not an object", v)
	}
	return obj, nil
}

func clDeepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = clDeepCopy(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = clDeepCopy(x)
		}
		return out
	default:
		return v
	}
}

// clExecutors holds the expressions of one batch. benthos copies the whole
// batch each time an executor is made, so making them per message would cost
// time quadratic in the batch size.
type clExecutors struct {
	params  map[string]*service.MessageBatchBloblangExecutor
	query   map[string]*service.MessageBatchInterpolationExecutor
	headers map[string]*service.MessageBatchInterpolationExecutor
}

func (p *claimxLookup) executors(batch service.MessageBatch) *clExecutors {
	ex := &clExecutors{
		params:  make(map[string]*service.MessageBatchBloblangExecutor, len(p.conf.pathParams)),
		query:   make(map[string]*service.MessageBatchInterpolationExecutor, len(p.conf.query)),
		headers: make(map[string]*service.MessageBatchInterpolationExecutor, len(p.conf.headers)),
	}
	for k, e := range p.conf.pathParams {
		ex.params[k] = batch.BloblangExecutor(e)
	}
	for k, is := range p.conf.query {
		ex.query[k] = batch.InterpolationExecutor(is)
	}
	for k, is := range p.conf.headers {
		ex.headers[k] = batch.InterpolationExecutor(is)
	}
	return ex
}

// resolve builds the request of message i.
func (p *claimxLookup) resolve(ex *clExecutors, i int) (*clRequest, error) {
	var resolveErr error
	path := clPlaceholderRe.ReplaceAllStringFunc(p.conf.pathTemplate, func(ph string) string {
		name := ph[1 : len(ph)-1]
		v, err := clQuery(ex.params[name], i)
		if err != nil {
			if resolveErr == nil {
				resolveErr = fmt.Errorf("claimx lookup: evaluating path_params.%s: %w", name, err)
			}
			return ""
		}
		s, err := clSegment(v)
		if err != nil {
			if resolveErr == nil {
				resolveErr = fmt.Errorf("claimx lookup: path_params.%s: %w", name, err)
			}
			return ""
		}
		return clEscapeSegment(s)
	})
	if resolveErr != nil {
		return nil, resolveErr
	}

	q := url.Values{}
	for k := range p.conf.query {
		v, err := ex.query[k].TryString(i)
		if err != nil {
			return nil, fmt.Errorf("claimx lookup: interpolating query parameter %s: %w", k, err)
		}
		q.Set(k, v)
	}
	h := http.Header{}
	for k, is := range p.conf.headers {
		v, err := ex.headers[k].TryString(i)
		if err != nil {
			return nil, fmt.Errorf("claimx lookup: interpolating header %s: %w", k, err)
		}
		h.Set(k, v)
		if _, static := is.Static(); !static && clSensitiveHeader(k) {
			p.addSecretOnce(v)
		}
	}
	if h.Get("Accept") == "" {
		h.Set("Accept", "application/json")
	}

	raw := p.conf.baseURL.String() + path
	if len(q) > 0 {
		// Encode sorts the keys, so one request always has one cache key.
		raw += "?" + q.Encode()
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("claimx lookup: building the URL for path %s: %w", path, err)
	}
	return &clRequest{url: u, key: http.MethodGet + " " + raw, headers: h}, nil
}

// addSecretOnce records a credential computed per message; the list is
// bounded so that per-message values cannot grow it without end.
func (p *claimxLookup) addSecretOnce(s string) {
	p.secretsMu.RLock()
	if len(p.secrets) >= 256 {
		p.secretsMu.RUnlock()
		return
	}
	for _, x := range p.secrets {
		if x == s {
			p.secretsMu.RUnlock()
			return
		}
	}
	p.secretsMu.RUnlock()
	p.addSecret(s)
}

// clQuery evaluates a path parameter against message i, with its content as
// `this` and its metadata available.
func clQuery(exec *service.MessageBatchBloblangExecutor, i int) (any, error) {
	res, err := exec.Query(i)
	if err != nil {
		return nil, err
	}
	if res == nil {
		return nil, errors.New("the query deleted the value")
	}
	if res.HasStructured() {
		return res.AsStructured()
	}
	// A string result is stored as raw bytes, not as JSON. A null result is
	// stored as the bytes "null" too, so the text "null" reads as null: no
	// ClaimX id is spelt that way.
	b, err := res.AsBytes()
	if err != nil {
		return nil, err
	}
	if string(b) == "null" {
		return nil, nil
	}
	return string(b), nil
}

// clSegment turns a path parameter value into its text.
func clSegment(v any) (string, error) {
	var s string
	switch t := v.(type) {
	case string:
		s = t
	case []byte:
		s = string(t)
	case json.Number:
		s = t.String()
	case int64:
		s = strconv.FormatInt(t, 10)
	case int:
		s = strconv.Itoa(t)
	case uint64:
		s = strconv.FormatUint(t, 10)
	case float64:
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return "", fmt.Errorf("value %v is not a usable number", t)
		}
		s = strconv.FormatFloat(t, 'f', -1, 64)
	case bool:
		s = strconv.FormatBool(t)
	case nil:
		return "", errors.New("value is null or missing")
	default:
		return "", fmt.Errorf("value is a %T, not a string, number or boolean", v)
	}
	if s == "" {
		return "", errors.New("value is empty")
	}
	return s, nil
}

// clEscapeSegment escapes s as exactly one path segment. url.PathEscape
// leaves "." alone, so the dot segments "." and ".." are escaped by hand:
// servers and proxies would otherwise resolve them.
func clEscapeSegment(s string) string {
	if s == "." || s == ".." {
		return strings.Repeat("%2E", len(s))
	}
	return url.PathEscape(s)
}

// warmResources makes the first access to the cache and rate-limit resources
// from a single goroutine. benthos creates a resource lazily on its first
// access, and two first accesses at once race (each may build its own
// instance, so a rate limit could admit more than its count). The closures do
// nothing, so no rate-limit token is spent.
func (p *claimxLookup) warmResources(ctx context.Context) {
	p.warmOnce.Do(func() {
		// benthos initialises a resource on its first access under a read
		// lock, so two processors sharing one (claimx_rate in streams
		// mode) could initialise it at once and crash: first accesses take
		// turns, process-wide.
		clWarmMu.Lock()
		defer clWarmMu.Unlock()
		if p.conf.cache != "" {
			if err := p.res.AccessCache(ctx, p.conf.cache, func(service.Cache) {}); err != nil {
				p.log.Warnf("claimx lookup: opening cache %s: %v", p.conf.cache, err)
			}
		}
		if p.conf.rateLimit != "" {
			if err := p.res.AccessRateLimit(ctx, p.conf.rateLimit, func(service.RateLimit) {}); err != nil {
				p.log.Warnf("claimx lookup: opening rate_limit %s: %v", p.conf.rateLimit, err)
			}
		}
	})
}

// lookup answers one request from the cache or the API.
func (p *claimxLookup) lookup(ctx context.Context, req *clRequest, attempts int) *clResult {
	p.warmResources(ctx)
	if p.conf.cache != "" {
		var body []byte
		var getErr error
		err := p.res.AccessCache(ctx, p.conf.cache, func(c service.Cache) { body, getErr = c.Get(ctx, req.key) })
		switch {
		case err != nil:
			p.log.Warnf("claimx lookup GET %s: reading cache %s: %v", req.url.EscapedPath(), p.conf.cache, err)
		case getErr == nil:
			if r, jerr := p.decode(body); jerr == nil {
				p.mCacheHits.Incr(1)
				r.status, r.cached = http.StatusOK, true
				return r
			}
		case !errors.Is(getErr, service.ErrKeyNotFound):
			p.log.Warnf("claimx lookup GET %s: reading cache %s: %v", req.url.EscapedPath(), p.conf.cache, getErr)
		}
	}

	v, _, _ := p.flight.Do(req.key, func() (any, error) {
		r := p.fetch(ctx, req, attempts)
		if r.err == nil && p.conf.cache != "" {
			ttl := p.conf.cacheTTL
			var setErr error
			err := p.res.AccessCache(ctx, p.conf.cache, func(c service.Cache) { setErr = c.Set(ctx, req.key, r.body, &ttl) })
			if err == nil {
				err = setErr
			}
			if err != nil {
				p.log.Warnf("claimx lookup GET %s: writing cache %s: %v", req.url.EscapedPath(), p.conf.cache, err)
			}
		}
		return r, nil
	})
	return v.(*clResult)
}

// fetch calls the API, up to maxAttempts times for transient failures.
func (p *claimxLookup) fetch(ctx context.Context, req *clRequest, maxAttempts int) *clResult {
	path := req.url.EscapedPath()
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(p.conf.initialIntvl),
		backoff.WithMaxInterval(p.conf.maxIntvl),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0.5),
		backoff.WithMaxElapsedTime(0),
	)
	tokenRefreshed := false
	attempts := 0
	for {
		attempts++
		r, retryAfter, retryable := p.attempt(ctx, req)
		r.attempts = attempts
		if r.err == nil {
			return r
		}
		r.err.attempts, r.err.path = attempts, path

		// An OAuth token can be revoked before it expires: fetch a new one
		// once, without counting it as a retry.
		if r.err.class == clErrAuth && r.status == http.StatusUnauthorized && p.oauth != nil && !tokenRefreshed {
			tokenRefreshed = true
			p.oauth.invalidate()
			attempts--
			continue
		}
		r.err.retryAfter = max(r.err.retryAfter, retryAfter)
		if !retryable || attempts >= maxAttempts {
			return r
		}
		wait := bo.NextBackOff()
		if retryAfter > 0 {
			if retryAfter > p.conf.maxIntvl {
				r.err.reason += fmt.Sprintf(" (the server asked to retry after %v, longer than retries.max_interval)", retryAfter)
				return r
			}
			wait = max(wait, retryAfter)
		}
		p.log.Debugf("claimx lookup GET %s: attempt %d failed (%s), retrying in %v", path, attempts, r.err.reason, wait)
		if err := clSleep(ctx, wait); err != nil {
			r.err.reason += "; retry interrupted: " + err.Error()
			return r
		}
	}
}

func clSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// attempt makes one HTTP attempt through the circuit breaker and the rate
// limit. It returns the result, the Retry-After asked for and whether the
// failure is worth retrying.
func (p *claimxLookup) attempt(ctx context.Context, req *clRequest) (*clResult, time.Duration, bool) {
	done, err := p.breaker.Allow()
	if err != nil {
		p.mErrors.Incr(1, clErrCircuitOpen)
		// A held stream probes again when the circuit half-opens.
		wait := time.Second
		if p.breaker.State() == gobreaker.StateOpen {
			wait = max(wait, p.conf.openTimeout-time.Since(time.Unix(0, p.openedAt.Load())))
		}
		cause, _ := p.lastTrip.Load().(string)
		return &clResult{err: &clLookupError{class: clErrCircuitOpen, retryAfter: wait, cause: cause,
			reason: fmt.Sprintf("circuit breaker is %s after repeated failures; not calling the API", p.breaker.State())}}, 0, false
	}
	r, retryAfter, retryable, verdict := p.call(ctx, req)
	done(verdict)
	if errors.Is(verdict, errClBreakerFailure) {
		if u := r.err.unavailable(); u != nil {
			p.lastTrip.Store(u.Reason)
		}
	} else if r.unavailable() == nil {
		// The API answered: streams held on it probe now.
		p.gate.Answered()
	}
	if r.err != nil {
		r.err.reason = p.redact(r.err.reason)
	}
	return r, retryAfter, retryable
}

// call performs the HTTP request and classifies its outcome; verdict is what
// the circuit breaker is told.
func (p *claimxLookup) call(ctx context.Context, req *clRequest) (r *clResult, retryAfter time.Duration, retryable bool, verdict error) {
	fail := func(class string, status int, reason string) *clResult {
		return &clResult{status: status, err: &clLookupError{class: class, status: status, reason: reason}}
	}
	if p.conf.rateLimit != "" {
		if err := p.waitRateLimit(ctx); err != nil {
			return fail(clErrTransient, 0, err.Error()), 0, false, errClBreakerExcluded
		}
	}

	actx, cancel := context.WithTimeout(ctx, p.conf.timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(actx, http.MethodGet, req.url.String(), nil)
	if err != nil {
		return fail(clErrClient, 0, "building request: "+clURLErr(err)), 0, false, errClBreakerExcluded
	}
	for k, vs := range req.headers {
		hreq.Header[k] = vs
	}
	if err := p.authorize(actx, hreq); err != nil {
		var le *clLookupError
		if errors.As(err, &le) {
			if le.class == clErrTransient {
				return fail(le.class, 0, le.reason), 0, true, errClBreakerExcluded
			}
			return fail(le.class, 0, le.reason), 0, false, errClBreakerExcluded
		}
		return fail(clErrAuth, 0, err.Error()), 0, false, errClBreakerExcluded
	}

	start := time.Now()
	resp, err := p.client.Do(hreq)
	p.mCalls.Incr(1)
	if err != nil {
		p.mLatency.Timing(time.Since(start).Nanoseconds())
		if ctx.Err() != nil {
			// The pipeline is shutting down: not the API's fault.
			return fail(clErrTransient, 0, "interrupted: "+ctx.Err().Error()), 0, false, errClBreakerExcluded
		}
		p.mErrors.Incr(1, clErrTransient)
		reason := "request failed: " + clURLErr(err)
		if errors.Is(err, context.DeadlineExceeded) || clIsTimeout(err) {
			reason = fmt.Sprintf("timed out after %v", p.conf.timeout)
		}
		return fail(clErrTransient, 0, reason), 0, true, errClBreakerFailure
	}
	defer resp.Body.Close()
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, p.conf.maxBody+1))
	p.mLatency.Timing(time.Since(start).Nanoseconds())
	status := resp.StatusCode

	switch {
	case status == http.StatusOK:
		if readErr != nil {
			p.mErrors.Incr(1, clErrTransient)
			return fail(clErrTransient, status, "reading the body: "+clURLErr(readErr)), 0, true, errClBreakerFailure
		}
		if int64(len(body)) > p.conf.maxBody {
			p.mErrors.Incr(1, clErrInvalidResponse)
			return fail(clErrInvalidResponse, status, fmt.Sprintf("body larger than max_response_bytes (%d)", p.conf.maxBody)), 0, false, nil
		}
		ct := resp.Header.Get("Content-Type")
		if mt, _, err := mime.ParseMediaType(ct); err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			p.mErrors.Incr(1, clErrInvalidResponse)
			return fail(clErrInvalidResponse, status, fmt.Sprintf("Content-Type %q is not JSON", ct)), 0, false, nil
		}
		r, err := p.decode(body)
		if err != nil {
			p.mErrors.Incr(1, clErrInvalidResponse)
			return fail(clErrInvalidResponse, status, "body is not valid JSON: "+err.Error()), 0, false, nil
		}
		r.status = status
		return r, 0, false, nil
	case status == http.StatusNotFound:
		p.mErrors.Incr(1, clErrNotFound)
		return fail(clErrNotFound, status, "not found"+clSnippet(body)), 0, false, nil
	case status == http.StatusUnauthorized:
		p.mErrors.Incr(1, clErrAuth)
		return fail(clErrAuth, status, "credentials refused"+clSnippet(body)), 0, false, nil
	case status == http.StatusTooManyRequests:
		// A rate-limiting API is up: waiting for its Retry-After is the
		// remedy, so 429 never opens the circuit (nor closes it).
		p.mErrors.Incr(1, clErrTransient)
		ra := clRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		return fail(clErrTransient, status, http.StatusText(status)+clSnippet(body)), ra, true, errClBreakerExcluded
	case status >= 500:
		p.mErrors.Incr(1, clErrTransient)
		ra := clRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		return fail(clErrTransient, status, http.StatusText(status)+clSnippet(body)), ra, true, errClBreakerFailure
	case status >= 400:
		p.mErrors.Incr(1, clErrClient)
		return fail(clErrClient, status, http.StatusText(status)+clSnippet(body)), 0, false, nil
	default:
		p.mErrors.Incr(1, clErrInvalidResponse)
		return fail(clErrInvalidResponse, status, "unexpected status "+strconv.Itoa(status)), 0, false, nil
	}
}

// clIsTimeout reports a network timeout.
func clIsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// clURLErr drops the URL that *url.Error puts in its text: the query may hold
// credentials.
func clURLErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// clSnippet quotes the start of an error body, which usually says why.
func clSnippet(body []byte) string {
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

// decode checks that an answer is JSON and prepares it in the one form the
// message will take: compacted text for result_as_string (no decoding: the
// worker stores the answer as a JSON string column), a decoded value otherwise.
func (p *claimxLookup) decode(body []byte) (*clResult, error) {
	if p.conf.resultAsString {
		var buf bytes.Buffer
		buf.Grow(len(body))
		if err := json.Compact(&buf, body); err != nil {
			return nil, err
		}
		return &clResult{body: body, text: buf.String()}, nil
	}
	parsed, err := clParseJSON(body)
	if err != nil {
		return nil, err
	}
	return &clResult{body: body, parsed: parsed}, nil
}

// clParseJSON parses a body the way benthos parses messages: numbers stay
// json.Number, so ids beyond 2^53 keep every digit.
func clParseJSON(body []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after the JSON value")
	}
	return v, nil
}

// clRetryAfter reads a Retry-After value: delta-seconds or an HTTP-date.
func clRetryAfter(v string, now time.Time) time.Duration {
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

func (p *claimxLookup) waitRateLimit(ctx context.Context) error {
	for {
		var wait time.Duration
		var accessErr error
		err := p.res.AccessRateLimit(ctx, p.conf.rateLimit, func(rl service.RateLimit) {
			wait, accessErr = rl.Access(ctx)
		})
		if err == nil {
			err = accessErr
		}
		if err != nil {
			return fmt.Errorf("waiting for rate_limit %s: %w", p.conf.rateLimit, err)
		}
		if wait <= 0 {
			return nil
		}
		if err := clSleep(ctx, wait); err != nil {
			return fmt.Errorf("waiting for rate_limit %s: %w", p.conf.rateLimit, err)
		}
	}
}

func (p *claimxLookup) authorize(ctx context.Context, req *http.Request) error {
	switch p.conf.auth.kind {
	case clAuthBearer:
		req.Header.Set("Authorization", "Bearer "+p.conf.auth.token)
	case clAuthBasic:
		req.SetBasicAuth(p.conf.auth.username, p.conf.auth.password)
	case clAuthOAuth2:
		tok, err := p.oauth.token(ctx)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return nil
}

// clOAuthSource fetches, caches and refreshes an OAuth 2.0 client-credentials
// token.
type clOAuthSource struct {
	client  *http.Client
	conf    clAuthConfig
	timeout time.Duration
	onToken func(string)

	mu     sync.Mutex
	tok    string
	expiry time.Time // zero: no known expiry
}

func (o *clOAuthSource) invalidate() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.tok = ""
}

// token returns a valid token, fetching one when there is none or the cached
// one is about to expire. Callers wait for one fetch rather than each
// starting their own.
func (o *clOAuthSource) token(ctx context.Context) (string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.tok != "" && (o.expiry.IsZero() || time.Now().Before(o.expiry)) {
		return o.tok, nil
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	if len(o.conf.scopes) > 0 {
		form.Set("scope", strings.Join(o.conf.scopes, " "))
	}
	tctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(tctx, http.MethodPost, o.conf.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", &clLookupError{class: clErrAuth, reason: "building the oauth2 token request: " + clURLErr(err)}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 §2.3.1: client credentials go in the Basic header.
	req.SetBasicAuth(url.QueryEscape(o.conf.clientID), url.QueryEscape(o.conf.clientSecret))
	resp, err := o.client.Do(req)
	if err != nil {
		return "", &clLookupError{class: clErrTransient, reason: "fetching the oauth2 token: " + clURLErr(err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", &clLookupError{class: clErrTransient, reason: "reading the oauth2 token: " + clURLErr(err)}
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		return "", &clLookupError{class: clErrTransient, status: resp.StatusCode, reason: fmt.Sprintf("oauth2 token endpoint answered %d", resp.StatusCode)}
	}
	var tr struct {
		AccessToken string      `json:"access_token"`
		ExpiresIn   json.Number `json:"expires_in"`
		Error       string      `json:"error"`
	}
	if resp.StatusCode != http.StatusOK {
		_ = json.Unmarshal(body, &tr)
		return "", &clLookupError{class: clErrAuth, status: resp.StatusCode,
			reason: fmt.Sprintf("oauth2 token endpoint refused the client credentials (status %d, error %q)", resp.StatusCode, tr.Error)}
	}
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		return "", &clLookupError{class: clErrAuth, reason: "oauth2 token endpoint answered without an access_token"}
	}
	o.onToken(tr.AccessToken)
	o.tok, o.expiry = tr.AccessToken, time.Time{}
	if secs, err := tr.ExpiresIn.Float64(); err == nil && secs > 0 {
		life := time.Duration(secs * float64(time.Second))
		// Refresh ahead of expiry so no request carries a token that dies in
		// flight: a tenth of the lifetime, at most a minute.
		o.expiry = time.Now().Add(life - min(life/10, time.Minute))
	}
	return o.tok, nil
}

// Close releases idle connections.
func (p *claimxLookup) Close(context.Context) error {
	p.client.CloseIdleConnections()
	return nil
}
