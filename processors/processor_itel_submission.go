package processors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/claimx/claimx-connect/claimx"
	"github.com/claimx/claimx-connect/internal/hold"
	"github.com/claimx/claimx-connect/internal/jsonschema"
)

const (
	isFieldConnection     = "connection"
	isFieldPath           = "path"
	isFieldIdempotencyKey = "idempotency_key"
	isFieldMaxInFlight    = "max_in_flight"
	isFieldPayloadSchema  = "payload_schema"
)

// ITelSubmissionMetaStatus is the metadata key the processor sets on every
// message it handles: accepted, replayed, rejected, or error (the message
// failed: not a JSON object, no idempotency key, or, with on_unavailable:
// error, the API unavailable).
const ITelSubmissionMetaStatus = "itel_submission_status"

// Outcomes of a submission: the "status" of the result object, the
// ITelSubmissionMetaStatus metadata and the status label of
// itel_submissions_total.
const (
	ITelStatusAccepted = "accepted"
	ITelStatusReplayed = "replayed"
	ITelStatusRejected = "rejected"
	ITelStatusError    = "error"
)

// itelRejectStatuses are iTel's answers that belong to the record: the
// payload or its key is wrong, and would be however long we waited.
var itelRejectStatuses = map[int]bool{
	http.StatusBadRequest:            true,
	http.StatusConflict:              true,
	http.StatusRequestEntityTooLarge: true,
	http.StatusUnprocessableEntity:   true,
}

// itelTimeLayout is submitted_at: RFC 3339, UTC, microseconds.
const itelTimeLayout = "2006-01-02T15:04:05.000000Z"

func itelSubmissionConfigSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Integration").
		Version("0.1.0").
		Summary("Submits each message (a JSON object: the iTel Cabinet submission payload) to the iTel Cabinet API through a `claimx_connection`, exactly once per idempotency key.").
		Description(`
For each message, `+"`POST <connection base_url> + path`"+` is called with the message as the JSON
body and the header `+"`Idempotency-Key: <idempotency_key>`"+`, through the connection named by
`+"`connection`"+`: a `+"`claimx_connection`"+` processor resource (base URL, credentials, timeouts,
retries, circuit breaker, rate limit and what an unavailable API does: `+"`on_unavailable`"+`,
`+"`hold_*`"+`). Declare one for the iTel API beside the ClaimX one, e.g. with
`+"`base_url: ${ITEL_API_BASE_URL}`"+`.

The idempotency key is what makes a submission happen once: iTel stores the first request
with a key (201) and answers every later request with the same key and body with the first
answer (200, `+"`Idempotent-Replayed: true`"+`). The client retries a POST (timeouts, connection
errors, 429, 5xx) only because it carries the key, and a batch redelivered after a crash, a
rebalance or a hold sends the same keys again. Derive the key from the form response, never
from the processing (no `+"`now()`"+`, no `+"`uuid_v4()`"+`), and build the payload deterministically:
the same key with another body is a 409.

The message is replaced by the result object:

`+"```json"+`
{"status": "accepted", "http_status": 201, "reference": "ITL-1", "attempts": 1,
 "idempotency_key": "5423723-6962d069f8c664c2706b0bd0",
 "submitted_at": "2026-01-10T22:30:08.123456Z", "error": null}
`+"```"+`

- `+"`status`"+`: `+"`accepted`"+` (201 or 202), `+"`replayed`"+` (200: iTel had the submission already, from
  an earlier attempt or an earlier process) or `+"`rejected`"+` (400, 409, 413 or 422: iTel refused the
  record; `+"`error`"+` names the idempotency key and quotes iTel's reason). A rejection is not a
  message error: the pipeline keeps the form and routes the rejection itself (on
  `+"`this.status`"+` or the metadata).
- `+"`http_status`"+`: iTel's status; `+"`reference`"+`: iTel's reference of the submission (null when
  rejected); `+"`attempts`"+`: the HTTP attempts this message took in this process, holds included;
  `+"`submitted_at`"+`: when the answer came (UTC, microseconds).

The metadata `+"`"+ITelSubmissionMetaStatus+"`"+` carries the status (or `+"`error`"+`).

### Failures

- **The message's** (a message error, content unchanged, `+"`"+ITelSubmissionMetaStatus+": error`"+`): a
  message that is not one JSON object, an idempotency key that is empty or cannot be
  interpolated. Nothing is sent.
- **The API's** (5xx and 429 after the retries, timeouts, refused connections, 401 and 403, the
  circuit open, and any answer that is neither a success nor a rejection, such as a 404 from a
  wrong `+"`path`"+`): with the connection's `+"`on_unavailable: hold`"+` the whole batch waits here,
  unacknowledged, probing iTel with one request at a time until it answers, then submits the
  rest (the keys make the repeats harmless); with `+"`error`"+` the message fails with the error.

### Metrics

With the connection's `+"`metrics_prefix`"+`: `+"`itel_submissions_total{status}`"+` (accepted, replayed,
rejected, error), `+"`itel_submission_latency_ns`"+` (one submission: its HTTP attempts and their
backoff, not a hold), `+"`itel_api_calls_total`"+`, `+"`itel_api_retries_total`"+`,
`+"`itel_api_errors_total{reason}`"+`, and the hold's `+"`itel_api_available`"+`,
`+"`itel_api_records_held`"+`, `+"`itel_api_hold_seconds_total`"+` and `+"`itel_api_holds_total{reason}`"+`.`).
		Fields(
			service.NewStringField(isFieldConnection).
				Description("Label of the `claimx_connection` processor resource of the iTel API.").
				Example("itel"),
			service.NewStringField(isFieldPath).
				Description("Path of the submissions endpoint, appended to the connection's `base_url`.").
				Default(claimxITelPath),
			service.NewInterpolatedStringField(isFieldIdempotencyKey).
				Description("The submission's idempotency key, sent as the `Idempotency-Key` header: one per form response, the same on every delivery of the message.").
				Example("${! this.assignmentId }-${! this.formResponseId }"),
			service.NewIntField(isFieldMaxInFlight).
				Description("Most submissions of one batch in flight at once (the connection's `max_concurrency` bounds the whole process). Messages of a batch with the same key are sent one after the other.").
				Default(4),
			service.NewStringField(isFieldPayloadSchema).
				Description("A JSON Schema file (draft 2020-12, the keywords of `internal/jsonschema`) the payload must satisfy, such as `schemas/itel_submission.v1.json`. A payload that does not is `rejected` without a request, its `error` naming every violation, and `http_status` 0. Empty: no check.").
				Default("").
				Example("./schemas/itel_submission.v1.json"),
		).
		Example("Submit the forms (the forms stream)", `
The payload is built by the pipeline; the result replaces it.
`, `
pipeline:
  processors:
    - itel_submission:
        connection: itel
        idempotency_key: ${! this.assignmentId }-${! this.formResponseId }

processor_resources:
  - label: itel
    claimx_connection:
      base_url: ${ITEL_API_BASE_URL}
      auth: { type: bearer, token: ${ITEL_API_TOKEN} }
      retries: { max_attempts: 3, initial_interval: 2s, max_interval: 60s }
      circuit_breaker: { open_timeout: 10s }
`)
}

// claimxITelPath is the default submissions path.
const claimxITelPath = "/itel/v1/submissions"

func init() {
	service.MustRegisterBatchProcessor("itel_submission", itelSubmissionConfigSpec(),
		func(conf *service.ParsedConfig, res *service.Resources) (service.BatchProcessor, error) {
			return newITelSubmissionFromConfig(conf, res)
		})
}

// itelSubmissionConfig is the parsed configuration.
type itelSubmissionConfig struct {
	connection  string
	path        string
	key         *service.InterpolatedString
	maxInFlight int
	schemaFile  string
	schema      *jsonschema.Schema
}

func newITelSubmissionFromConfig(conf *service.ParsedConfig, res *service.Resources) (*itelSubmission, error) {
	c, err := parseITelSubmissionConfig(conf)
	if err != nil {
		return nil, err
	}
	conn, err := claimxConnectionOf(res, c.connection)
	if err != nil {
		return nil, fmt.Errorf("itel_submission: %w", err)
	}
	return newITelSubmission(c, conn, res), nil
}

func parseITelSubmissionConfig(conf *service.ParsedConfig) (c itelSubmissionConfig, err error) {
	if c.connection, err = connectionField(conf, isFieldConnection); err != nil {
		return c, err
	}
	if c.path, err = conf.FieldString(isFieldPath); err != nil {
		return c, err
	}
	if !strings.HasPrefix(c.path, "/") {
		c.path = "/" + c.path
	}
	if c.key, err = conf.FieldInterpolatedString(isFieldIdempotencyKey); err != nil {
		return c, err
	}
	if c.maxInFlight, err = conf.FieldInt(isFieldMaxInFlight); err != nil {
		return c, err
	}
	if c.maxInFlight < 1 {
		return c, fmt.Errorf("%s must be at least 1, got %d", isFieldMaxInFlight, c.maxInFlight)
	}
	if c.schemaFile, err = conf.FieldString(isFieldPayloadSchema); err != nil {
		return c, err
	}
	if c.schemaFile != "" {
		raw, err := os.ReadFile(c.schemaFile)
		if err != nil {
			return c, fmt.Errorf("%s: %w", isFieldPayloadSchema, err)
		}
		if c.schema, err = jsonschema.Compile(raw); err != nil {
			return c, fmt.Errorf("%s %s: %w", isFieldPayloadSchema, c.schemaFile, err)
		}
	}
	return c, nil
}

// itelSubmission is the processor.
type itelSubmission struct {
	conf itelSubmissionConfig
	conn *claimxConnection
	log  *service.Logger
	gate *hold.Gate
	obs  *apiObserver

	mSubmissions *service.MetricCounter
	mLatency     *service.MetricTimer
	now          func() time.Time
}

func newITelSubmission(c itelSubmissionConfig, conn *claimxConnection, res *service.Resources) *itelSubmission {
	m := res.Metrics()
	prefix := conn.prefix
	p := &itelSubmission{
		conf:         c,
		conn:         conn,
		log:          res.Logger(),
		mSubmissions: m.NewCounter(prefix+"itel_submissions_total", "status"),
		mLatency:     m.NewTimer(prefix + "itel_submission_latency_ns"),
		now:          time.Now,
	}
	p.gate = newHoldGate(res, conn.hold, "iTel API", prefix+"itel_api")
	p.obs = &apiObserver{
		what:    "itel submission",
		log:     p.log,
		gate:    p.gate,
		calls:   m.NewCounter(prefix + "itel_api_calls_total"),
		errors:  m.NewCounter(prefix+"itel_api_errors_total", "reason"),
		retries: m.NewCounter(prefix + "itel_api_retries_total"),
	}
	return p
}

// isResult is the outcome of one submission so far.
type isResult struct {
	resp *claimx.Response
	err  *claimx.Error
	// attempts adds up the HTTP attempts of every call for the message.
	attempts int
	at       time.Time
}

// unavailable is the dependency failure of a result, or nil: every failure
// that is not a rejection of the record holds, including the answers the
// client leaves to the record for a GET (a 404 from a wrong path is the
// configuration's, not the form's).
func (r *isResult) unavailable() *hold.UnavailableError {
	if r == nil || r.err == nil || itelRejected(r.err) {
		return nil
	}
	if u := r.err.Unavailable(); u != nil {
		return u
	}
	reason := string(r.err.Class)
	if r.err.Status != 0 {
		reason = strconv.Itoa(r.err.Status)
	}
	return &hold.UnavailableError{Reason: reason, Err: r.err}
}

// itelRejected reports iTel refusing the record itself.
func itelRejected(e *claimx.Error) bool {
	return e.Class == claimx.ClassClient && itelRejectStatuses[e.Status]
}

// isItem is one message to submit.
type isItem struct {
	idx int
	key string
	req *claimx.Request
}

// Close does nothing: the client belongs to the connection.
func (p *itelSubmission) Close(context.Context) error { return nil }

// ProcessBatch submits every message of the batch and replaces each with
// its result. With on_unavailable: hold, a failure of the API holds the
// whole batch here until iTel answers (see hold.Gate); the batch leaves only
// with answers and message errors.
func (p *itelSubmission) ProcessBatch(ctx context.Context, batch service.MessageBatch) ([]service.MessageBatch, error) {
	keys := batch.InterpolationExecutor(p.conf.key)
	var items []*isItem
	for i, msg := range batch {
		item, err := p.prepare(keys, i, msg)
		var invalid *isInvalidPayload
		switch {
		case errors.As(err, &invalid):
			p.rejectInvalid(msg, invalid)
			continue
		case err != nil:
			p.fail(msg, err)
			continue
		}
		items = append(items, item)
	}
	results := make([]*isResult, len(batch))
	if p.conn.hold.mode == hold.ModeHold {
		err := p.gate.Do(ctx, len(batch), func(ctx context.Context, probe bool) error {
			return p.submitHeld(ctx, items, results, probe)
		})
		if err != nil {
			// Only the end of the stream interrupts a hold: the batch is
			// dropped with its context, unacknowledged, for the next process.
			return nil, err
		}
	} else {
		p.submitAll(ctx, items, results, 0)
	}
	for _, it := range items {
		p.apply(batch[it.idx], it.key, results[it.idx])
	}
	return []service.MessageBatch{batch}, nil
}

// prepare checks message i and builds its request; an error is the
// message's.
func (p *itelSubmission) prepare(keys *service.MessageBatchInterpolationExecutor, i int, msg *service.Message) (*isItem, error) {
	key, keyErr := keys.TryString(i)
	key = strings.TrimSpace(key)
	record := fmt.Sprintf("itel submission of message %d of the batch", i)
	if keyErr == nil && key != "" {
		record = "itel submission " + key
	}
	body, err := msg.AsBytes()
	if err != nil {
		return nil, fmt.Errorf("%s: reading the message: %w", record, err)
	}
	v, err := clParseJSON(body)
	if err != nil {
		return nil, fmt.Errorf("%s: the message is not JSON: %w", record, err)
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, fmt.Errorf("%s: the message is a JSON %s, not an object", record, jsonKind(v))
	}
	if keyErr != nil {
		return nil, fmt.Errorf("%s: interpolating %s: %w", record, isFieldIdempotencyKey, keyErr)
	}
	if key == "" {
		return nil, fmt.Errorf("%s: %s is empty", record, isFieldIdempotencyKey)
	}
	if p.conf.schema != nil {
		doc, err := jsonschema.Decode(body)
		if err != nil {
			return nil, fmt.Errorf("%s: the message is not JSON: %w", record, err)
		}
		if violations := p.conf.schema.Validate(doc); len(violations) > 0 {
			return nil, &isInvalidPayload{key: key, schema: p.conf.schemaFile, violations: violations}
		}
	}
	h := http.Header{}
	h.Set(claimx.IdempotencyKeyHeader, key)
	req, err := p.conn.client.NewPostRequest(p.conf.path, body, h)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", record, err)
	}
	return &isItem{idx: i, key: key, req: req}, nil
}

// jsonKind names the JSON type of a decoded value.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "array"
	case string:
		return "string"
	case bool:
		return "boolean"
	case json.Number, float64:
		return "number"
	}
	return fmt.Sprintf("%T", v)
}

// submitHeld submits the messages that have no answer yet or failed for
// want of the API, and returns the API's failure if one remains. A probe
// sends one request before the rest: a recovering API sees one request.
func (p *itelSubmission) submitHeld(ctx context.Context, items []*isItem, results []*isResult, probe bool) error {
	var pending []*isItem
	for _, it := range items {
		if r := results[it.idx]; r == nil || r.unavailable() != nil {
			pending = append(pending, it)
		}
	}
	if probe && len(pending) > 0 {
		p.submitAll(ctx, pending[:1], results, 1)
		if u := results[pending[0].idx].unavailable(); u != nil {
			return u
		}
		pending = pending[1:]
	}
	p.submitAll(ctx, pending, results, 0)
	// The hold is reported with iTel's own failure (a 503) rather than the
	// open circuit that the first failures caused.
	var first *hold.UnavailableError
	for _, it := range pending {
		if u := results[it.idx].unavailable(); u != nil {
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

// submitAll submits items concurrently, at most max_in_flight at a time
// (and the connection's max_concurrency across the process), each with up
// to attempts HTTP attempts (0: the connection's retries.max_attempts).
// Items with the same key go one after the other, in batch order: iTel
// then answers the second with a replay rather than racing two requests
// with one key.
func (p *itelSubmission) submitAll(ctx context.Context, items []*isItem, results []*isResult, attempts int) {
	groups := map[string][]*isItem{}
	var order []string
	for _, it := range items {
		if _, ok := groups[it.key]; !ok {
			order = append(order, it.key)
		}
		groups[it.key] = append(groups[it.key], it)
	}
	inFlight := make(chan struct{}, p.conf.maxInFlight)
	var wg sync.WaitGroup
	for _, key := range order {
		group := groups[key]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, it := range group {
				prev := results[it.idx]
				r := p.submitOne(ctx, it.req, attempts, inFlight)
				if prev != nil {
					r.attempts += prev.attempts
				}
				results[it.idx] = r
			}
		}()
	}
	wg.Wait()
}

// submitOne makes one call of the client for req, once it has a turn.
func (p *itelSubmission) submitOne(ctx context.Context, req *claimx.Request, attempts int, inFlight chan struct{}) *isResult {
	interrupted := func() *isResult {
		return &isResult{err: &claimx.Error{Class: claimx.ClassTransient, Method: http.MethodPost,
			Path: req.URL.EscapedPath(), Reason: "interrupted: " + ctx.Err().Error()}}
	}
	select {
	case inFlight <- struct{}{}:
	case <-ctx.Done():
		return interrupted()
	}
	defer func() { <-inFlight }()
	select {
	case p.conn.sem <- struct{}{}:
	case <-ctx.Done():
		return interrupted()
	}
	defer func() { <-p.conn.sem }()

	start := p.now()
	resp, err := p.conn.client.Do(ctx, req, claimx.WithAttempts(attempts), claimx.WithRequestObserver(p.obs))
	p.mLatency.Timing(p.now().Sub(start).Nanoseconds())
	r := &isResult{at: p.now()}
	if err != nil {
		var e *claimx.Error
		if !errors.As(err, &e) {
			e = &claimx.Error{Class: claimx.ClassTransient, Method: http.MethodPost, Path: req.URL.EscapedPath(), Reason: err.Error()}
		}
		r.err, r.attempts = e, e.Attempts
		return r
	}
	r.resp, r.attempts = resp, resp.Attempts
	return r
}

// isOutcome is the result object that replaces a submitted message.
type isOutcome struct {
	Status         string  `json:"status"`
	HTTPStatus     int     `json:"http_status"`
	Reference      *string `json:"reference"`
	Attempts       int     `json:"attempts"`
	IdempotencyKey string  `json:"idempotency_key"`
	SubmittedAt    string  `json:"submitted_at"`
	Error          *string `json:"error"`
}

// apply replaces the message with its result, or fails it when iTel could
// not be reached (on_unavailable: error) or did not answer as a success or
// a rejection.
func (p *itelSubmission) apply(msg *service.Message, key string, r *isResult) {
	if r.err != nil && !itelRejected(r.err) {
		p.fail(msg, fmt.Errorf("itel submission %s: %w", key, r.err))
		return
	}
	out := isOutcome{
		Attempts:       r.attempts,
		IdempotencyKey: key,
		SubmittedAt:    r.at.UTC().Format(itelTimeLayout),
	}
	if r.err != nil {
		out.Status, out.HTTPStatus = ITelStatusRejected, r.err.Status
		reason := fmt.Sprintf("itel submission %s rejected by iTel with status %d: %s", key, r.err.Status, r.err.Reason)
		out.Error = &reason
	} else {
		out.HTTPStatus = r.resp.Status
		out.Status = ITelStatusAccepted
		if r.resp.Status == http.StatusOK {
			// 200 is iTel's answer to a key it already has (Idempotent-Replayed:
			// true): the form was submitted before.
			out.Status = ITelStatusReplayed
		}
		var ack struct {
			Reference *string `json:"reference"`
		}
		if err := json.Unmarshal(r.resp.Body, &ack); err == nil && ack.Reference != nil && *ack.Reference != "" {
			out.Reference = ack.Reference
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		p.fail(msg, fmt.Errorf("itel submission %s: encoding the result: %w", key, err))
		return
	}
	msg.SetBytes(b)
	msg.MetaSetMut(ITelSubmissionMetaStatus, out.Status)
	p.mSubmissions.Incr(1, out.Status)
	if out.Status == ITelStatusRejected {
		p.log.With("idempotency_key", key, "http_status", out.HTTPStatus).Warn("itel submission rejected: " + *out.Error)
	}
}

// isInvalidPayload is a payload that does not satisfy payload_schema: the
// record's fault, rejected without asking iTel.
type isInvalidPayload struct {
	key, schema string
	violations  []string
}

func (e *isInvalidPayload) Error() string {
	return fmt.Sprintf("itel submission %s: the payload does not satisfy %s: %s", e.key, e.schema, strings.Join(e.violations, "; "))
}

// rejectInvalid replaces the message with a rejected result naming the
// payload's violations.
func (p *itelSubmission) rejectInvalid(msg *service.Message, inv *isInvalidPayload) {
	reason := inv.Error()
	out := isOutcome{Status: ITelStatusRejected, IdempotencyKey: inv.key, SubmittedAt: p.now().UTC().Format(itelTimeLayout), Error: &reason}
	b, err := json.Marshal(out)
	if err != nil {
		p.fail(msg, fmt.Errorf("itel submission %s: encoding the result: %w", inv.key, err))
		return
	}
	msg.SetBytes(b)
	msg.MetaSetMut(ITelSubmissionMetaStatus, out.Status)
	p.mSubmissions.Incr(1, out.Status)
	p.log.With("idempotency_key", inv.key).Warn("itel submission rejected before sending: " + reason)
}

// fail makes the message an error, its content unchanged.
func (p *itelSubmission) fail(msg *service.Message, err error) {
	msg.SetError(err)
	msg.MetaSetMut(ITelSubmissionMetaStatus, ITelStatusError)
	p.mSubmissions.Incr(1, ITelStatusError)
}
