// Package processors holds the claimx-connect processors, among them
// claimx_connection and claimx_lookup (the ClaimX REST API, declared once and
// looked up per record) and validate (declarative field rules). Import it for
// its registrations.
package processors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/claimx/claimx-connect/claimx"
	"github.com/claimx/claimx-connect/internal/hold"
)

const (
	clFieldConnection     = "connection"
	clFieldPath           = "path"
	clFieldPathParams     = "path_params"
	clFieldQuery          = "query"
	clFieldResultField    = "result_field"
	clFieldResultAsString = "result_as_string"
	clFieldOnNotFound     = "on_not_found"
)

// Metadata keys the processor sets on each message it looks up.
const (
	ClaimXLookupMetaStatus   = "claimx_lookup_status"
	ClaimXLookupMetaError    = "claimx_lookup_error"
	ClaimXLookupMetaAttempts = "claimx_lookup_attempts"
	ClaimXLookupMetaCached   = "claimx_lookup_cached"
)

const (
	clNotFoundNull  = "null"
	clNotFoundError = "error"
	clNotFoundDrop  = "drop"
)

func claimxLookupConfigSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Integration").
		Version("0.1.0").
		Summary("Looks a record up in the ClaimX (Verisk ClaimXperience) REST API through a `claimx_connection`.").
		Description(`
For each message the path template is filled from `+"`path_params`"+` (Bloblang queries
evaluated against the message), each value escaped as exactly one path segment, and
`+"`GET <connection base_url> + path ? query`"+` is called through the connection named by
`+"`connection`"+`: a `+"`claimx_connection`"+` processor resource, which holds the URL, the credentials,
the rate limit, the retries, the circuit breaker, the cache and what an unavailable API does
(`+"`on_unavailable`"+`, `+"`hold_*`"+`). Every lookup naming one connection shares its client. The JSON
answer is stored at `+"`result_field`"+` (a dotted path into the message) or, without
`+"`result_field`"+`, replaces the message.

### Failures

Only status 200 with a JSON body is a success. A failure is either the record's or the API's
(`+"`claimx_connection`"+` lists them):

- **The record's**: a 404 follows `+"`on_not_found`"+` (`+"`null`"+` stores null, or makes the message
  `+"`null`"+`; `+"`error`"+` fails the message; `+"`drop`"+` removes it); a 400, 409, 410, 413, 414 or 422, a path
  parameter the record cannot fill and an answer larger than the connection's
  `+"`max_response_bytes`"+` fail the message (route it with `+"`switch`"+` on `+"`errored()`"+`, e.g. to an
  errors topic).
- **The API's** (5xx, timeouts, 401/403, 429 after the retries, the circuit open…): with the
  connection's `+"`on_unavailable: hold`"+` the whole batch waits here, unacknowledged, and this
  lookup probes the API with one request at a time until it answers; with `+"`error`"+` they fail
  the message.

A failed message gets the metadata `+"`"+ClaimXLookupMetaError+"`"+` (`+"`auth`, `not_found`, `client`, `transient`, `circuit_open`, `invalid_response`"+`)
and, when the API answered, `+"`"+ClaimXLookupMetaStatus+"`"+` (the HTTP status).
`+"`"+ClaimXLookupMetaAttempts+"`"+` counts the HTTP attempts and `+"`"+ClaimXLookupMetaCached+"`"+` is `+"`true`"+`
when the cache answered.

A lookup naming a connection that does not exist fails to build, with the name in the error;
`+"`claimx-connect lint`"+` reports it before anything runs.

### Metrics

With the connection's `+"`metrics_prefix`"+`, per lookup (label): `+"`claimx_api_calls_total`"+`,
`+"`claimx_api_latency_seconds`"+`, `+"`claimx_api_retries_total`"+`, `+"`claimx_api_errors_total{reason}`"+`,
`+"`claimx_api_cache_hits_total`"+` (see `+"`claimx_connection`"+`) and the hold's: the gauge
`+"`claimx_api_available`"+` is 0 while holding (1 otherwise), `+"`claimx_api_records_held`"+` counts the
records waiting, `+"`claimx_api_hold_seconds_total`"+` the seconds held and `+"`claimx_api_holds_total`"+`
(label `+"`reason`"+`: the status, `+"`timeout`"+`, `+"`connection`"+`, `+"`auth`"+`, `+"`invalid_response`"+`; an open
circuit is reported with the failures that opened it) the holds entered. A hold logs a warning
when it begins (the reason, never a credential or the query) and an info line when it ends,
with its length and the records that waited.`).
		Fields(
			service.NewStringField(clFieldConnection).
				Description("Label of the `claimx_connection` processor resource to call the API through.").
				Example("claimx"),
			service.NewStringField(clFieldPath).
				Description("Path template appended to the connection's `base_url`; `{name}` placeholders are filled from `path_params`.").
				Example("/customTasks/assignment/{assignment_id}"),
			service.NewStringMapField(clFieldPathParams).
				Description("Bloblang query per path placeholder, evaluated against the message. Each value must be a non-empty string, number or boolean; it is escaped as one path segment, so `../admin` or `1?x=y` cannot leave it.").
				Example(map[string]any{"assignment_id": "this.task_assignment_id"}).
				Default(map[string]any{}),
			service.NewInterpolatedStringMapField(clFieldQuery).
				Description("Query parameters; values support interpolation functions.").
				Example(map[string]any{"full": "true"}).
				Default(map[string]any{}),
			service.NewStringField(clFieldResultField).
				Description("Dotted path in the message (a JSON object) where the answer is stored. Empty: the answer replaces the message.").
				Example("claimx_task_full").
				Default(""),
			service.NewBoolField(clFieldResultAsString).
				Description("Store the answer at `result_field` as a JSON-encoded string rather than as an object.").
				Default(false),
			service.NewStringAnnotatedEnumField(clFieldOnNotFound, map[string]string{
				clNotFoundNull:  "Store null at `result_field` (or make the message `null`) and go on.",
				clNotFoundError: "Fail the message.",
				clNotFoundDrop:  "Remove the message from the batch.",
			}).Description("What a 404 does.").Default(clNotFoundNull),
		).
		Example("Assignment with its form answers (the iTel worker)", `
Stores the assignment at `+"`claimx_task_full`"+` as a JSON string; a 404 stores null.
`, `
pipeline:
  processors:
    - claimx_lookup:
        connection: claimx
        path: /customTasks/assignment/{assignment_id}
        path_params: { assignment_id: this.assignment_id }
        query: { full: "true" }
        result_field: claimx_task_full
        result_as_string: true
        on_not_found: "null"

processor_resources:
  - label: claimx
    claimx_connection:
      base_url: ${CLAIMX_API_BASE_URL}
      auth: { type: bearer, token: ${CLAIMX_API_TOKEN} }
      cache: claimx_cache
      rate_limit_per_second: 50
      metrics_prefix: itel_worker_

cache_resources:
  - label: claimx_cache
    memory: { default_ttl: 60s }
`).
		Example("Project export", `
Replaces the message with the project export; unknown projects are dropped.
`, `
pipeline:
  processors:
    - claimx_lookup:
        connection: claimx
        path: /export/project/{project_id}
        path_params: { project_id: this.project_id }
        on_not_found: drop
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
	connection     string
	pathTemplate   string
	pathParams     map[string]*bloblang.Executor
	query          map[string]*service.InterpolatedString
	resultField    []string
	resultAsString bool
	onNotFound     string
}

var clPlaceholderRe = regexp.MustCompile(`\{([A-Za-z0-9_]+)\}`)

func newClaimxLookupFromConfig(conf *service.ParsedConfig, res *service.Resources) (*claimxLookup, error) {
	c, err := parseClaimxLookupConfig(conf)
	if err != nil {
		return nil, err
	}
	conn, err := claimxConnectionOf(res, c.connection)
	if err != nil {
		return nil, err
	}
	return newClaimxLookup(c, conn, res), nil
}

// connectionField reads the label of the claimx_connection a component
// names; it may not be empty.
func connectionField(conf *service.ParsedConfig, field string) (string, error) {
	name, err := conf.FieldString(field)
	if err == nil && name == "" {
		err = fmt.Errorf("%s must name a claimx_connection processor resource", field)
	}
	return name, err
}

func parseClaimxLookupConfig(conf *service.ParsedConfig) (c claimxLookupConfig, err error) {
	if c.connection, err = connectionField(conf, clFieldConnection); err != nil {
		return c, err
	}
	if c.pathTemplate, err = conf.FieldString(clFieldPath); err != nil {
		return c, err
	}
	if !strings.HasPrefix(c.pathTemplate, "/") {
		c.pathTemplate = "/" + c.pathTemplate
	}
	rawParams, err := conf.FieldStringMap(clFieldPathParams)
	if err != nil {
		return c, err
	}
	c.pathParams = map[string]*bloblang.Executor{}
	for name := range rawParams {
		if c.pathParams[name], err = conf.FieldBloblang(clFieldPathParams, name); err != nil {
			return c, fmt.Errorf("parsing path_params.%s: %w", name, err)
		}
	}
	placeholders := map[string]bool{}
	for _, m := range clPlaceholderRe.FindAllStringSubmatch(c.pathTemplate, -1) {
		placeholders[m[1]] = true
		if _, ok := c.pathParams[m[1]]; !ok {
			return c, fmt.Errorf("path placeholder {%s} has no entry in path_params", m[1])
		}
	}
	for name := range c.pathParams {
		if !placeholders[name] {
			return c, fmt.Errorf("path_params.%s has no {%s} placeholder in path %q", name, name, c.pathTemplate)
		}
	}
	if c.query, err = conf.FieldInterpolatedStringMap(clFieldQuery); err != nil {
		return c, err
	}
	rf, err := conf.FieldString(clFieldResultField)
	if err != nil {
		return c, err
	}
	if rf != "" {
		c.resultField = strings.Split(rf, ".")
		for _, p := range c.resultField {
			if p == "" {
				return c, fmt.Errorf("result_field %q has an empty path segment", rf)
			}
		}
	}
	if c.resultAsString, err = conf.FieldBool(clFieldResultAsString); err != nil {
		return c, err
	}
	if c.onNotFound, err = conf.FieldString(clFieldOnNotFound); err != nil {
		return c, err
	}
	return c, nil
}

// claimxConnectionOf returns the claimx_connection processor resource
// labelled name, building it if nobody has yet.
func claimxConnectionOf(res *service.Resources, name string) (*claimxConnection, error) {
	notConn := fmt.Errorf("claimx_lookup: connection %q is not a claimx_connection processor resource", name)
	if !res.HasProcessor(name) {
		return nil, notConn
	}
	if v, ok := res.GetGeneric(clConnKey{name}); ok {
		return v.(*claimxConnection), nil
	}
	// benthos builds a processor resource on its first access; first
	// accesses take turns (see clWarmMu). The closure does nothing.
	clWarmMu.Lock()
	err := res.AccessProcessor(context.Background(), name, func(*service.ResourceProcessor) {})
	clWarmMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("claimx_lookup: connection %q: %w", name, err)
	}
	v, ok := res.GetGeneric(clConnKey{name})
	if !ok {
		return nil, fmt.Errorf("%w (it is another kind of processor)", notConn)
	}
	return v.(*claimxConnection), nil
}

// claimxLookup is the processor.
type claimxLookup struct {
	conf claimxLookupConfig
	conn *claimxConnection
	log  *service.Logger
	gate *hold.Gate
	obs  *apiObserver

	mCacheHits *service.MetricCounter
}

func newClaimxLookup(c claimxLookupConfig, conn *claimxConnection, res *service.Resources) *claimxLookup {
	m := res.Metrics()
	prefix := conn.prefix
	p := &claimxLookup{
		conf:       c,
		conn:       conn,
		log:        res.Logger(),
		mCacheHits: m.NewCounter(prefix + "claimx_api_cache_hits_total"),
	}
	p.gate = newHoldGate(res, conn.hold, "ClaimX API", prefix+"claimx_api")
	p.obs = &apiObserver{
		what:    "claimx lookup",
		log:     p.log,
		gate:    p.gate,
		calls:   m.NewCounter(prefix + "claimx_api_calls_total"),
		errors:  m.NewCounter(prefix+"claimx_api_errors_total", "reason"),
		retries: m.NewCounter(prefix + "claimx_api_retries_total"),
		latency: m.NewTimer(prefix + "claimx_api_latency_seconds"),
	}
	return p
}

// apiObserver turns what the client does for one component (a lookup, the
// submissions) into its metrics (<base>_calls_total, _errors_total{reason},
// _retries_total, optionally _latency_seconds), debug logs and hold wake-ups.
type apiObserver struct {
	claimx.NopObserver
	what    string // "claimx lookup", "itel submission": for the logs
	log     *service.Logger
	gate    *hold.Gate
	calls   *service.MetricCounter
	errors  *service.MetricCounter
	retries *service.MetricCounter
	latency *service.MetricTimer // nil: not measured
}

func (o *apiObserver) Attempted(d time.Duration) {
	o.calls.Incr(1)
	if o.latency != nil {
		o.latency.Timing(d.Nanoseconds())
	}
}

func (o *apiObserver) Failed(class claimx.Class, _ int) { o.errors.Incr(1, string(class)) }

func (o *apiObserver) Retrying(attempt int, wait time.Duration, err *claimx.Error) {
	o.retries.Incr(1)
	method := err.Method
	if method == "" {
		method = "GET"
	}
	o.log.Debugf("%s %s %s: attempt %d failed (%s), retrying in %v", o.what, method, err.Path, attempt, err.Reason, wait)
}

// Answered: the API answered, so streams held on it probe now.
func (o *apiObserver) Answered() { o.gate.Answered() }

// clResult is the outcome of a lookup.
type clResult struct {
	body     []byte
	parsed   any    // the body decoded, when the answer is stored as a value
	text     string // the body compacted, when it is stored as a string (result_as_string)
	status   int
	attempts int
	cached   bool
	err      *claimx.Error
}

// Close does nothing: the client belongs to the connection.
func (p *claimxLookup) Close(context.Context) error { return nil }

// ProcessBatch looks every message up concurrently and applies the outcomes.
// With on_unavailable: hold, a failure of the API holds the whole batch here
// until the API answers (see hold.Gate); the batch leaves only with answers
// and record errors.
func (p *claimxLookup) ProcessBatch(ctx context.Context, batch service.MessageBatch) ([]service.MessageBatch, error) {
	results := make([]*clResult, len(batch))
	reqs := make([]*claimx.Request, len(batch))
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
			msg.MetaSetMut(ClaimXLookupMetaError, string(claimx.ClassClient))
			msg.MetaDelete(ClaimXLookupMetaStatus)
			continue
		}
		if p.conf.resultField != nil {
			// Checked before calling the API: a message that cannot hold the
			// answer should not cost a request.
			if _, err := clObject(msg); err != nil {
				msg.SetError(fmt.Errorf("claimx lookup GET %s: cannot store the answer at %s: %w",
					req.URL.EscapedPath(), strings.Join(p.conf.resultField, "."), err))
				msg.MetaSetMut(ClaimXLookupMetaError, string(claimx.ClassClient))
				continue
			}
		}
		if j, ok := firstOf[req.Key()]; ok {
			sameAs[i] = j
			continue
		}
		firstOf[req.Key()] = i
		reqs[i] = req
		todo = append(todo, i)
	}
	if p.conn.hold.mode == hold.ModeHold {
		err := p.gate.Do(ctx, len(batch), func(ctx context.Context, probe bool) error {
			return p.lookupHeld(ctx, todo, reqs, results, probe)
		})
		if err != nil {
			// Only the end of the stream interrupts a hold: the batch is
			// dropped with its context, unacknowledged, for the next process.
			return nil, err
		}
	} else {
		p.lookupAll(ctx, todo, reqs, results, 0)
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
func (p *claimxLookup) lookupHeld(ctx context.Context, todo []int, reqs []*claimx.Request, results []*clResult, probe bool) error {
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
	p.lookupAll(ctx, pending, reqs, results, 0)
	// The hold is reported with the API's own failure (a 503) rather than
	// the open circuit that the first failures caused.
	var first *hold.UnavailableError
	for _, i := range pending {
		if u := results[i].unavailable(); u != nil {
			if u.Reason != string(claimx.ClassCircuitOpen) {
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
func (p *claimxLookup) lookupAll(ctx context.Context, idx []int, reqs []*claimx.Request, results []*clResult, attempts int) {
	var wg sync.WaitGroup
	for _, i := range idx {
		req := reqs[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case p.conn.sem <- struct{}{}:
			case <-ctx.Done():
				results[i] = &clResult{err: &claimx.Error{Class: claimx.ClassTransient, Path: req.URL.EscapedPath(), Reason: "interrupted: " + ctx.Err().Error()}}
				return
			}
			defer func() { <-p.conn.sem }()
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
	return r.err.Unavailable()
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
	if r.err != nil && r.err.Class == claimx.ClassNotFound {
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
				msg.MetaSetMut(ClaimXLookupMetaError, string(claimx.ClassClient))
			}
			return false
		}
	}
	if r.err != nil {
		msg.SetError(r.err)
		msg.MetaSetMut(ClaimXLookupMetaError, string(r.err.Class))
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
		v = jsonDeepCopy(v)
	}
	if err := p.store(msg, v); err != nil {
		msg.SetError(err)
		msg.MetaSetMut(ClaimXLookupMetaError, string(claimx.ClassClient))
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

// jsonDeepCopy copies the objects and arrays of a decoded JSON value, so that
// a result shares nothing mutable with the cache or the message it came from.
func jsonDeepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = jsonDeepCopy(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = jsonDeepCopy(x)
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
	params map[string]*service.MessageBatchBloblangExecutor
	query  map[string]*service.MessageBatchInterpolationExecutor
}

func (p *claimxLookup) executors(batch service.MessageBatch) *clExecutors {
	ex := &clExecutors{
		params: make(map[string]*service.MessageBatchBloblangExecutor, len(p.conf.pathParams)),
		query:  make(map[string]*service.MessageBatchInterpolationExecutor, len(p.conf.query)),
	}
	for k, e := range p.conf.pathParams {
		ex.params[k] = batch.BloblangExecutor(e)
	}
	for k, is := range p.conf.query {
		ex.query[k] = batch.InterpolationExecutor(is)
	}
	return ex
}

// resolve builds the request of message i.
func (p *claimxLookup) resolve(ex *clExecutors, i int) (*claimx.Request, error) {
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

	var q url.Values
	for k := range p.conf.query {
		v, err := ex.query[k].TryString(i)
		if err != nil {
			return nil, fmt.Errorf("claimx lookup: interpolating query parameter %s: %w", k, err)
		}
		if q == nil {
			q = url.Values{}
		}
		q.Set(k, v)
	}
	req, err := p.conn.client.NewRequest(path, q, nil)
	if err != nil {
		return nil, fmt.Errorf("claimx lookup: %w", err)
	}
	return req, nil
}

// lookup answers one request from the cache or the API, with up to attempts
// HTTP attempts (0: the connection's retries.max_attempts).
func (p *claimxLookup) lookup(ctx context.Context, req *claimx.Request, attempts int) *clResult {
	if body, ok := p.conn.cached(ctx, req); ok {
		if r, err := p.decode(body); err == nil {
			p.mCacheHits.Incr(1)
			r.status, r.cached = http.StatusOK, true
			return r
		}
	}
	resp, e := p.conn.fetch(ctx, req, attempts, p.obs)
	if e != nil {
		return &clResult{status: e.Status, attempts: e.Attempts, err: e}
	}
	r, err := p.decode(resp.Body)
	if err != nil {
		// The client checked the body is JSON: not expected.
		return &clResult{status: resp.Status, attempts: resp.Attempts, err: &claimx.Error{
			Class: claimx.ClassInvalidResponse, Status: resp.Status, Path: req.URL.EscapedPath(),
			Attempts: resp.Attempts, Reason: "body is not valid JSON: " + err.Error()}}
	}
	r.status, r.attempts = resp.Status, resp.Attempts
	return r
}

// decode prepares an answer in the one form the message will take:
// compacted text for result_as_string (no decoding: the worker stores the
// answer as a JSON string column), a decoded value otherwise.
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
