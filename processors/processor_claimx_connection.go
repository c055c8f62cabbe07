package processors

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"golang.org/x/sync/singleflight"

	"github.com/claimx/claimx-connect/claimx"
	"github.com/claimx/claimx-connect/internal/hold"
)

const (
	ccFieldBaseURL          = "base_url"
	ccFieldHeaders          = "headers"
	ccFieldAuth             = "auth"
	ccFieldAuthType         = "type"
	ccFieldAuthToken        = "token"
	ccFieldAuthUsername     = "username"
	ccFieldAuthPassword     = "password"
	ccFieldAuthTokenURL     = "token_url"
	ccFieldAuthClientID     = "client_id"
	ccFieldAuthClientSecret = "client_secret"
	ccFieldAuthScopes       = "scopes"
	ccFieldTimeout          = "timeout"
	ccFieldDialTimeout      = "dial_timeout"
	ccFieldTLS              = "tls"
	ccFieldRetries          = "retries"
	ccFieldMaxAttempts      = "max_attempts"
	ccFieldInitialInterval  = "initial_interval"
	ccFieldMaxInterval      = "max_interval"
	ccFieldBreaker          = "circuit_breaker"
	ccFieldFailureThreshold = "failure_threshold"
	ccFieldOpenTimeout      = "open_timeout"
	ccFieldHalfOpenMax      = "half_open_max_requests"
	ccFieldRateLimit        = "rate_limit_per_second"
	ccFieldMaxConcurrency   = "max_concurrency"
	ccFieldCache            = "cache"
	ccFieldCacheTTL         = "cache_ttl"
	ccFieldMaxResponseBytes = "max_response_bytes"
	ccFieldMetricsPrefix    = "metrics_prefix"
)

func claimxConnectionConfigSpec() *service.ConfigSpec {
	def := claimx.DefaultConfig("")
	return service.NewConfigSpec().
		Beta().
		Categories("Integration").
		Version("0.1.0").
		Summary("The connection to the ClaimX (Verisk ClaimXperience) REST API, declared once as a processor resource and named by every `claimx_lookup` that uses it.").
		Description(`
A `+"`claimx_connection`"+` holds what every lookup of one API shares: the base URL, the
credentials (one OAuth token), the rate limit, the circuit breaker, the retries, the cache
and what a failure of the API does to the stream. Declare it once under
`+"`processor_resources`"+` with a label, and name that label in `+"`claimx_lookup.connection`"+`. Every
lookup naming it, in every stream of the process, uses the same client: one rate limit, one
breaker (opened by the failures of any lookup, it refuses them all), one token, one
`+"`max_concurrency`"+`, and identical requests in flight at once share one call.

It is a processor resource named by its label, the way `+"`cache:`"+` and `+"`rate_limit:`"+` name
theirs, rather than a config template: a template is expanded into each lookup, so it would
still build one client per lookup, and neither templates nor `+"`lint`"+` (which checks each file on
its own) can share or check a definition across files. `+"`claimx-connect lint`"+` adds the check
that every `+"`claimx_lookup.connection`"+` names a `+"`claimx_connection`"+` of the linted files.

Used as a processor itself (`+"`resource: <label>`"+`) it fails every message: it is a connection,
to be named in `+"`claimx_lookup.connection`"+`.

### Failures

Only status 200 with a JSON body is a success. Every failure is either the record's or the
API's (see `+"`claimx_lookup`"+` for what the record's do):

- **The record's**: 404 (the lookup's `+"`on_not_found`"+`), a 400, 409, 410, 413, 414 or 422 (the
  request built from the record is wrong), a path parameter the record cannot fill, an answer
  larger than `+"`max_response_bytes`"+`.
- **The API's**: 5xx, 408, timeouts, refused or reset connections, DNS and TLS failures, 401
  and 403 (the credentials are wrong, not the event), 429 after its retries, a body that is
  not JSON (a proxy's HTML page), any other status, the circuit being open. With
  `+"`on_unavailable: hold`"+` (the default) the message never fails for these: the whole batch waits
  in its lookup, unacknowledged, so its Kafka offsets do not advance. The lookup probes the
  API with one request after `+"`hold_initial_interval`"+`, doubling the wait up to
  `+"`hold_max_interval`"+` (±20 % jitter; a `+"`Retry-After`"+` or the open circuit may ask for longer
  and is honoured), and when the probe is answered looks up the rest of the batch and lets it
  go on. Every other hold on the same API in the process probes at once when any request is
  answered. When the stream stops (SIGTERM) during a hold, the batch is handed back
  unacknowledged and nothing is failed. `+"`hold_timeout`"+` ends a hold that lasts too long by
  stopping the process (exit code 3). With `+"`on_unavailable: error`"+` these failures fail the
  message instead.

Before either, timeouts, connection errors, 429 and 5xx are retried `+"`retries.max_attempts`"+`
times with exponential backoff and jitter; a `+"`Retry-After`"+` header (seconds or HTTP-date) is
honoured: the next attempt never starts earlier, and when the server asks for longer than
`+"`retries.max_interval`"+` the attempts end there. The error names the status, the URL path (never
the host, the query or a credential) and the reason.

### Circuit breaker

Every HTTP attempt counts: timeouts, connection errors and 5xx are failures; any other answer
(200, 404, other 4xx, an invalid body) proves the API is up and counts as a success, except
429, which counts neither way: a rate-limiting API is up, and its Retry-After is honoured
instead. After `+"`circuit_breaker.failure_threshold`"+` consecutive failures the circuit opens for
`+"`circuit_breaker.open_timeout`"+`: lookups then fail at once with `+"`circuit_open`"+` without calling the
API. It then lets up to `+"`circuit_breaker.half_open_max_requests`"+` probes through; they close it
again or reopen it.

### Rate limit, cache, concurrency

`+"`rate_limit_per_second`"+` limits every HTTP attempt (retries too) of every lookup of the
connection; the requests are spaced evenly, 1/rate apart, without bursts, so an API that
limits with a token bucket or a one-second window never sees more than it allows. It is a
field of the connection rather than a `+"`rate_limit`"+` resource: the limit is the API's, and one
connection is one client. With `+"`cache`"+`, successful answers are stored in that cache resource
under `+"`GET <full URL>`"+` (credentials are never part of the key) for `+"`cache_ttl`"+`: lookups of the
same URL (the assignment decoded and as JSON text) share them. At most `+"`max_concurrency`"+`
lookups of the connection are in flight at once, all lookups and pipeline threads together.

### Metrics

Per HTTP attempt, on the lookup that made it: `+"`<metrics_prefix>claimx_api_calls_total`"+`,
`+"`<metrics_prefix>claimx_api_latency_seconds`"+` (a timer), `+"`<metrics_prefix>claimx_api_retries_total`"+`
and, for a failed attempt or a lookup refused by the open circuit,
`+"`<metrics_prefix>claimx_api_errors_total`"+` with label `+"`reason`"+` (the error class). Cache hits count
in `+"`<metrics_prefix>claimx_api_cache_hits_total`"+`. The hold gauges and counters are the lookup's
(see `+"`claimx_lookup`"+`). The connection itself exports `+"`<metrics_prefix>claimx_api_circuit_state`"+`
(0 closed, 1 half-open, 2 open) and logs every change of the circuit.

### Secrets

`+"`auth.token`"+`, `+"`auth.password`"+` and `+"`auth.client_secret`"+` are secrets: set them from environment
variables. They, the OAuth access token and the values of credential-like headers
(Authorization, *key*, *token*, *secret*, Cookie) are scrubbed from every error and log line.`).
		Fields(
			service.NewStringField(ccFieldBaseURL).
				Description("Base URL of the ClaimX API; the lookups' paths are appended to it.").
				Example("${CLAIMX_API_BASE_URL}").
				Example("https://www.claimxperience.com/service/cxedirest"),
			service.NewStringMapField(ccFieldHeaders).
				Description("Headers sent with every request. `Accept: application/json` is sent unless set here.").
				Default(map[string]any{}),
			service.NewObjectField(ccFieldAuth,
				service.NewStringAnnotatedEnumField(ccFieldAuthType, map[string]string{
					string(claimx.AuthBearer): "`Authorization: Bearer <token>`.",
					string(claimx.AuthBasic):  "HTTP Basic with `username` and `password`.",
					string(claimx.AuthOAuth2): "OAuth 2.0 client credentials: one token for the connection, fetched from `token_url`, cached and refreshed before it expires (and once after a 401).",
					string(claimx.AuthNone):   "No credentials.",
				}).Description("Authentication scheme.").Default(string(claimx.AuthBearer)),
				service.NewStringField(ccFieldAuthToken).Description("Bearer token.").Example("${CLAIMX_API_TOKEN}").Default("").Secret(),
				service.NewStringField(ccFieldAuthUsername).Description("Basic auth user name.").Default(""),
				service.NewStringField(ccFieldAuthPassword).Description("Basic auth password.").Default("").Secret(),
				service.NewStringField(ccFieldAuthTokenURL).Description("OAuth 2.0 token endpoint.").Default(""),
				service.NewStringField(ccFieldAuthClientID).Description("OAuth 2.0 client id.").Default(""),
				service.NewStringField(ccFieldAuthClientSecret).Description("OAuth 2.0 client secret.").Default("").Secret(),
				service.NewStringListField(ccFieldAuthScopes).Description("OAuth 2.0 scopes.").Default([]any{}),
			).Description("Credentials for the API."),
			service.NewDurationField(ccFieldTimeout).Description("Time limit of one HTTP attempt, body included.").Default(def.Timeout.String()),
			service.NewDurationField(ccFieldDialTimeout).Description("Time limit to open a TCP connection.").Default(def.DialTimeout.String()).Advanced(),
			service.NewTLSToggledField(ccFieldTLS),
			service.NewObjectField(ccFieldRetries,
				service.NewIntField(ccFieldMaxAttempts).Description("HTTP attempts per lookup, the first included.").Default(def.Retries.MaxAttempts),
				service.NewDurationField(ccFieldInitialInterval).Description("Wait before the second attempt; doubles each time, with ±50 % jitter.").Default(def.Retries.InitialInterval.String()),
				service.NewDurationField(ccFieldMaxInterval).Description("Longest wait between attempts, and the longest Retry-After honoured.").Default(def.Retries.MaxInterval.String()),
			).Description("Retries of timeouts, connection errors, 429 and 5xx."),
			service.NewObjectField(ccFieldBreaker,
				service.NewIntField(ccFieldFailureThreshold).Description("Consecutive failed attempts that open the circuit.").Default(def.Breaker.FailureThreshold),
				service.NewDurationField(ccFieldOpenTimeout).Description("How long the circuit stays open before probing. With `on_unavailable: hold` it may not exceed `hold_max_interval`: the breaker decides when a held stream probes.").Default(def.Breaker.OpenTimeout.String()),
				service.NewIntField(ccFieldHalfOpenMax).Description("Probes let through while half-open; that many successes close it.").Default(def.Breaker.HalfOpenMaxRequests),
			).Description("Circuit breaker over the HTTP attempts of every lookup of the connection.").Advanced(),
			service.NewFloatField(ccFieldRateLimit).
				Description("Most HTTP attempts per second, for the whole connection (every lookup, every pipeline thread, every stream of the process), spaced evenly. `0`: no limit.").
				Example(50).
				Default(0),
			service.NewIntField(ccFieldMaxConcurrency).Description("Most lookups in flight at once, for the whole connection.").Default(def.MaxIdleConnsPerHost),
			service.NewStringField(ccFieldCache).Description("Name of a cache resource for successful answers, shared by the lookups of the connection. Empty: no cache.").Default(""),
			service.NewDurationField(ccFieldCacheTTL).Description("How long cached answers are served.").Default("60s"),
			service.NewIntField(ccFieldMaxResponseBytes).Description("Largest response body accepted; a larger one fails the lookup as `invalid_response` (the record's failure).").Default(int(def.MaxResponseBytes)).Advanced(),
			service.NewStringField(ccFieldMetricsPrefix).Description("Prefix of the metric names of the connection and its lookups, e.g. `itel_worker_`.").Default(""),
		).
		Fields(holdFields("the ClaimX API")...).
		Example("One connection, two lookups", `
The connection is declared once; each lookup says only what it asks for.
`, `
cache_resources:
  - label: claimx_cache
    memory: { default_ttl: 60s }

processor_resources:
  - label: claimx
    claimx_connection:
      base_url: ${CLAIMX_API_BASE_URL}
      auth: { type: bearer, token: ${CLAIMX_API_TOKEN} }
      cache: claimx_cache
      rate_limit_per_second: 50
      max_concurrency: 20
      retries: { max_attempts: 3, initial_interval: 2s, max_interval: 60s }
      circuit_breaker: { open_timeout: 10s }
      metrics_prefix: itel_worker_

  - label: claimx_assignment
    claimx_lookup:
      connection: claimx
      path: /customTasks/assignment/{assignment_id}
      path_params: { assignment_id: this.assignment_id }
      query: { full: "true" }
      result_field: claimx_task_full
      result_as_string: true

  - label: claimx_project
    claimx_lookup:
      connection: claimx
      path: /export/project/{project_id}
      path_params: { project_id: this.project_id }
      on_not_found: drop
`)
}

func init() {
	service.MustRegisterProcessor("claimx_connection", claimxConnectionConfigSpec(),
		func(conf *service.ParsedConfig, res *service.Resources) (service.Processor, error) {
			return newClaimxConnectionFromConfig(conf, res)
		})
}

// claimxConnectionConfig is the parsed configuration.
type claimxConnectionConfig struct {
	client         claimx.Config
	maxConcurrency int
	cache          string
	cacheTTL       time.Duration
	metricsPrefix  string
	hold           holdSettings
}

func newClaimxConnectionFromConfig(conf *service.ParsedConfig, res *service.Resources) (*claimxConnection, error) {
	c, err := parseClaimxConnectionConfig(conf)
	if err != nil {
		return nil, err
	}
	if c.cache != "" && !res.HasCache(c.cache) {
		return nil, fmt.Errorf("cache resource %q not found", c.cache)
	}
	return newClaimxConnection(c, res)
}

func parseClaimxConnectionConfig(conf *service.ParsedConfig) (c claimxConnectionConfig, err error) {
	cc := &c.client
	if cc.BaseURL, err = conf.FieldString(ccFieldBaseURL); err != nil {
		return c, err
	}
	if cc.Headers, err = conf.FieldStringMap(ccFieldHeaders); err != nil {
		return c, err
	}
	if cc.Auth, err = parseClaimxAuth(conf.Namespace(ccFieldAuth)); err != nil {
		return c, err
	}
	if cc.Timeout, err = conf.FieldDuration(ccFieldTimeout); err != nil {
		return c, err
	}
	if cc.DialTimeout, err = conf.FieldDuration(ccFieldDialTimeout); err != nil {
		return c, err
	}
	tlsConf, tlsOn, err := conf.FieldTLSToggled(ccFieldTLS)
	if err != nil {
		return c, err
	}
	if tlsOn {
		cc.TLS = tlsConf
	}
	rc := conf.Namespace(ccFieldRetries)
	if cc.Retries.MaxAttempts, err = rc.FieldInt(ccFieldMaxAttempts); err != nil {
		return c, err
	}
	if cc.Retries.InitialInterval, err = rc.FieldDuration(ccFieldInitialInterval); err != nil {
		return c, err
	}
	if cc.Retries.MaxInterval, err = rc.FieldDuration(ccFieldMaxInterval); err != nil {
		return c, err
	}
	bc := conf.Namespace(ccFieldBreaker)
	if cc.Breaker.FailureThreshold, err = bc.FieldInt(ccFieldFailureThreshold); err != nil {
		return c, err
	}
	if cc.Breaker.OpenTimeout, err = bc.FieldDuration(ccFieldOpenTimeout); err != nil {
		return c, err
	}
	if cc.Breaker.HalfOpenMaxRequests, err = bc.FieldInt(ccFieldHalfOpenMax); err != nil {
		return c, err
	}
	if cc.RateLimitPerSecond, err = conf.FieldFloat(ccFieldRateLimit); err != nil {
		return c, err
	}
	maxBody, err := conf.FieldInt(ccFieldMaxResponseBytes)
	if err != nil {
		return c, err
	}
	cc.MaxResponseBytes = int64(maxBody)
	if c.maxConcurrency, err = conf.FieldInt(ccFieldMaxConcurrency); err != nil {
		return c, err
	}
	if c.maxConcurrency < 1 {
		return c, fmt.Errorf("max_concurrency must be at least 1, got %d", c.maxConcurrency)
	}
	cc.MaxIdleConnsPerHost = c.maxConcurrency
	if c.cache, err = conf.FieldString(ccFieldCache); err != nil {
		return c, err
	}
	if c.cacheTTL, err = conf.FieldDuration(ccFieldCacheTTL); err != nil {
		return c, err
	}
	if c.metricsPrefix, err = conf.FieldString(ccFieldMetricsPrefix); err != nil {
		return c, err
	}
	if err := cc.Validate(); err != nil {
		return c, err
	}
	if c.hold, err = parseHoldSettings(conf); err != nil {
		return c, err
	}
	if c.hold.mode == hold.ModeHold && cc.Breaker.OpenTimeout > c.hold.cfg.MaxInterval {
		return c, fmt.Errorf("circuit_breaker.open_timeout (%v) must not exceed %s (%v) with %s: %s: a held stream probes when the breaker lets it",
			cc.Breaker.OpenTimeout, holdFieldMaxInterval, c.hold.cfg.MaxInterval, holdFieldOnUnavailable, hold.ModeHold)
	}
	return c, nil
}

func parseClaimxAuth(conf *service.ParsedConfig) (a claimx.Auth, err error) {
	kind, err := conf.FieldString(ccFieldAuthType)
	if err != nil {
		return a, err
	}
	a.Type = claimx.AuthType(kind)
	fields := []struct {
		name string
		dst  *string
	}{
		{ccFieldAuthToken, &a.Token}, {ccFieldAuthUsername, &a.Username}, {ccFieldAuthPassword, &a.Password},
		{ccFieldAuthTokenURL, &a.TokenURL}, {ccFieldAuthClientID, &a.ClientID}, {ccFieldAuthClientSecret, &a.ClientSecret},
	}
	for _, f := range fields {
		if *f.dst, err = conf.FieldString(f.name); err != nil {
			return a, err
		}
	}
	if a.Scopes, err = conf.FieldStringList(ccFieldAuthScopes); err != nil {
		return a, err
	}
	return a, nil
}

// claimxConnection is one connection to the API: the client (rate limit,
// breaker, token), the cache, the concurrency limit and the hold settings,
// shared by every claimx_lookup naming it.
type claimxConnection struct {
	label    string
	client   *claimx.Client
	res      *service.Resources
	log      *service.Logger
	cache    string
	cacheTTL time.Duration
	prefix   string
	// hold is the hold settings of the lookups, Dependency set: the gates of
	// one API wake each other.
	hold holdSettings

	sem      chan struct{}
	flight   singleflight.Group
	warmOnce sync.Once
}

// clConnKey is the key under which a connection registers itself in the
// resources (GetOrSetGeneric), for the lookups naming its label.
type clConnKey struct{ label string }

func newClaimxConnection(c claimxConnectionConfig, res *service.Resources) (*claimxConnection, error) {
	conn := &claimxConnection{
		label:    res.Label(),
		res:      res,
		log:      res.Logger(),
		cache:    c.cache,
		cacheTTL: c.cacheTTL,
		prefix:   c.metricsPrefix,
		hold:     c.hold,
		sem:      make(chan struct{}, c.maxConcurrency),
	}
	obs := &ccObserver{
		name:  "claimx_connection " + conn.label,
		log:   conn.log,
		state: res.Metrics().NewGauge(c.metricsPrefix + "claimx_api_circuit_state"),
	}
	obs.state.Set(0)
	client, err := claimx.New(c.client, claimx.WithObserver(obs))
	if err != nil {
		return nil, err
	}
	conn.client = client
	conn.hold.cfg.Dependency = "claimx " + client.BaseURL()
	if conn.label != "" {
		// The first instance of a label wins: should benthos build a
		// resource twice, every lookup still shares one client.
		res.GetOrSetGeneric(clConnKey{conn.label}, conn)
	}
	return conn, nil
}

// errClConnectionUsedAsProcessor is what a connection does to a message.
var errClConnectionUsedAsProcessor = errors.New("is a connection, not a processor: name it in claimx_lookup.connection")

// Process fails the message: a connection is named by lookups, not run.
func (c *claimxConnection) Process(context.Context, *service.Message) (service.MessageBatch, error) {
	return nil, fmt.Errorf("claimx_connection %q %w", c.label, errClConnectionUsedAsProcessor)
}

// Close releases idle connections.
func (c *claimxConnection) Close(context.Context) error {
	c.client.Close()
	return nil
}

// clWarmMu serialises, process-wide, the first accesses of the lookups to
// the resources they share (their connection, its cache). benthos builds a
// resource lazily on its first access under a read lock, so two first
// accesses at once may each build an instance (two clients; a cache twice)
// or crash.
var clWarmMu sync.Mutex

// warm makes the first access to the cache resource from a single
// goroutine; the closure does nothing.
func (c *claimxConnection) warm(ctx context.Context) {
	c.warmOnce.Do(func() {
		if c.cache == "" {
			return
		}
		clWarmMu.Lock()
		defer clWarmMu.Unlock()
		if err := c.res.AccessCache(ctx, c.cache, func(service.Cache) {}); err != nil {
			c.log.Warnf("claimx_connection %s: opening cache %s: %v", c.label, c.cache, err)
		}
	})
}

// cached returns the cached answer of req, if any.
func (c *claimxConnection) cached(ctx context.Context, req *claimx.Request) ([]byte, bool) {
	c.warm(ctx)
	if c.cache == "" {
		return nil, false
	}
	var body []byte
	var getErr error
	err := c.res.AccessCache(ctx, c.cache, func(ca service.Cache) { body, getErr = ca.Get(ctx, req.Key()) })
	switch {
	case err != nil:
		c.log.Warnf("claimx lookup GET %s: reading cache %s: %v", req.URL.EscapedPath(), c.cache, err)
	case getErr == nil:
		return body, true
	case !errors.Is(getErr, service.ErrKeyNotFound):
		c.log.Warnf("claimx lookup GET %s: reading cache %s: %v", req.URL.EscapedPath(), c.cache, getErr)
	}
	return nil, false
}

// fetch calls the API for req, with up to attempts HTTP attempts, telling
// obs what happens; identical requests in flight at once (from any lookup
// of the connection) share one call. A success is cached.
func (c *claimxConnection) fetch(ctx context.Context, req *claimx.Request, attempts int, obs claimx.Observer) (*claimx.Response, *claimx.Error) {
	type result struct {
		resp *claimx.Response
		err  *claimx.Error
	}
	v, _, _ := c.flight.Do(req.Key(), func() (any, error) {
		resp, err := c.client.Do(ctx, req, claimx.WithAttempts(attempts), claimx.WithRequestObserver(obs))
		if err != nil {
			var e *claimx.Error
			if !errors.As(err, &e) {
				e = &claimx.Error{Class: claimx.ClassTransient, Path: req.URL.EscapedPath(), Reason: err.Error()}
			}
			return result{err: e}, nil
		}
		if c.cache != "" {
			ttl := c.cacheTTL
			var setErr error
			err := c.res.AccessCache(ctx, c.cache, func(ca service.Cache) { setErr = ca.Set(ctx, req.Key(), resp.Body, &ttl) })
			if err == nil {
				err = setErr
			}
			if err != nil {
				c.log.Warnf("claimx lookup GET %s: writing cache %s: %v", req.URL.EscapedPath(), c.cache, err)
			}
		}
		return result{resp: resp}, nil
	})
	r := v.(result)
	return r.resp, r.err
}

// ccObserver logs the circuit breaker's changes and exports its state.
type ccObserver struct {
	claimx.NopObserver
	name  string
	log   *service.Logger
	state *service.MetricGauge
}

func (o *ccObserver) BreakerChanged(from, to string) {
	switch to {
	case "closed":
		o.state.Set(0)
	case "half-open":
		o.state.Set(1)
	case "open":
		o.state.Set(2)
	}
	o.log.Warnf("%s: circuit breaker %s -> %s", o.name, from, to)
}
