package processors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/claimx/claimx-connect/claimx"
	"github.com/claimx/claimx-connect/delta/storage"
	"github.com/claimx/claimx-connect/internal/bytesize"
	"github.com/claimx/claimx-connect/internal/hold"
	"github.com/claimx/claimx-connect/media"
)

const (
	cmFieldConnection      = "connection"
	cmFieldProjectID       = "project_id"
	cmFieldMediaIDs        = "media_ids"
	cmFieldStoreURI        = "store_uri"
	cmFieldStorage         = "storage"
	cmFieldEndpoint        = "endpoint"
	cmFieldRegion          = "region"
	cmFieldForcePathStyle  = "force_path_style"
	cmFieldKeyPrefix       = "key_prefix"
	cmFieldMaxSize         = "max_size"
	cmFieldAllowedTypes    = "allowed_types"
	cmFieldDownloadTimeout = "download_timeout"
	cmFieldMaxConcurrency  = "max_concurrency"
	cmFieldResultField     = "result_field"
	cmFieldRetries         = "download_retries"
	cmFieldMaxAttempts     = "max_attempts"
	cmFieldInitialInterval = "initial_interval"
	cmFieldMaxInterval     = "max_interval"
)

// cmMetricPrefix starts the names of the processor's metrics (written out
// where they are made, so that the deployment checks find each name).
const cmMetricPrefix = "itel_media_"

func claimxMediaConfigSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Integration").
		Version("0.1.0").
		Summary("Downloads the ClaimX photos a record names into object storage and lists them, one attachment per media id, in the record.").
		Description(`
For each message, `+"`"+cmFieldMediaIDs+"`"+` (a Bloblang mapping) gives the ClaimX media ids of the record (a
form's photo answers). The processor asks the ClaimX API, through the `+"`claimx_connection`"+` named
by `+"`"+cmFieldConnection+"`"+`, for the media list of the project
(`+"`GET /export/project/{"+cmFieldProjectID+"}/media?mediaIds=…`"+`), downloads each file from its signed link,
and writes it to `+"`<"+cmFieldStoreURI+">/<"+cmFieldKeyPrefix+">/<media_id><ext>`"+` (the extension from the content
type). Downloads are spooled to a temporary file while their size and SHA-256 are computed,
so memory stays bounded whatever the size, and a download stops as soon as it passes
`+"`"+cmFieldMaxSize+"`"+`. The key is deterministic: a replayed record finds its photos stored
(`+"`already_stored`"+`, checked by size) and writes nothing.

The field `+"`"+cmFieldResultField+"`"+` of the message is set to an array with one object per entry of
`+"`"+cmFieldMediaIDs+"`"+`, in that order:

| key | meaning |
|---|---|
| `+"`media_id`"+` | the ClaimX media id |
| `+"`file_name`"+` | the name ClaimX gives it |
| `+"`content_type`"+` | the type, sniffed from the bytes (the header's when the bytes say nothing specific) |
| `+"`size_bytes`"+` | the size |
| `+"`sha256`"+` | lower-case hex SHA-256 of the bytes |
| `+"`object_key`"+` | the key under `+"`"+cmFieldStoreURI+"`"+` |
| `+"`object_uri`"+` | `+"`"+cmFieldStoreURI+"`"+` and the key |
| `+"`status`"+` | `+"`stored`, `already_stored` or `rejected`"+` |
| `+"`reason`"+` | why it was rejected, naming the media id (empty otherwise) |
| `+"`link_refreshes`"+` | fresh links asked for because the link had expired |
| `+"`download_ms`"+` | download time in milliseconds |

### Failures

- **A photo's own** (the attachment's `+"`status`"+` is `+"`rejected`"+`, the message flows on without
  error): 0 bytes, larger than `+"`"+cmFieldMaxSize+"`"+`, a content type outside `+"`"+cmFieldAllowedTypes+"`"+`,
  a media id missing from the project's list, a 404 from the media server, a link whose
  signature is refused even after a fresh link, an object already stored under the key with
  another size (never overwritten), a media list the API refuses for the record (a 404
  project). For example `+"`media 9001: 0 bytes`"+`, `+"`media 9002: 52428800 bytes exceeds max_size 25MiB`"+`,
  `+"`media 9003: content type text/html not allowed`"+`.
- **The message's** (the message fails, `+"`errored()`"+`): not a JSON object, no usable
  `+"`"+cmFieldProjectID+"`"+`, a `+"`"+cmFieldMediaIDs+"`"+` or `+"`"+cmFieldKeyPrefix+"`"+` that does not evaluate to what it must.
- **A dependency's**: the media server answering 5xx, 408 or 429 or timing out after
  `+"`"+cmFieldRetries+"`"+`, links that keep coming back expired, object storage failing. With
  `+"`on_unavailable: hold`"+` (the default) the whole batch waits here, unacknowledged, probing
  with one download after `+"`hold_initial_interval`"+` (doubling up to `+"`hold_max_interval`"+`), and goes
  on once it succeeds: an outage never makes a rejected attachment or a failed message. The
  media list calls hold the same way under the connection's hold settings. With
  `+"`on_unavailable: error`"+` the messages fail instead.

An expired link (its `+"`expiresAt`"+` passed, or a 403 saying so) is replaced by a fresh one from
the media list and the download retried; `+"`link_refreshes`"+` counts them.

### Metrics

`+"`"+cmMetricPrefix+"downloads_total{status}`"+` (one per attachment), `+"`"+cmMetricPrefix+"bytes_stored_total`"+`
(bytes written), `+"`"+cmMetricPrefix+"link_refreshes_total`"+`, `+"`"+cmMetricPrefix+"download_latency_ns`"+` (a timer,
download and store of one media), and the holds': `+"`"+cmMetricPrefix+"available`"+`,
`+"`"+cmMetricPrefix+"records_held`"+`, `+"`"+cmMetricPrefix+"hold_seconds_total`"+`, `+"`"+cmMetricPrefix+"holds_total{reason}`"+` for
the media server and storage, and the same with `+"`"+cmMetricPrefix+"claimx_api_`"+` for the media list.`).
		Fields(
			service.NewStringField(cmFieldConnection).
				Description("Label of the `claimx_connection` processor resource the media list is asked through.").
				Example("claimx"),
			service.NewInterpolatedStringField(cmFieldProjectID).
				Description("The ClaimX project id of the record.").
				Example("${! this.project_id }"),
			service.NewBloblangField(cmFieldMediaIDs).
				Description("Mapping giving the media ids of the record: an array of integers; null or an empty array means no photos (the result is an empty array).").
				Example(`root = [this.photos_before, this.photos_after].flatten().filter(v -> v != null)`),
			service.NewStringField(cmFieldStoreURI).
				Description("Where the photos go: a local path or `file://`, `s3://bucket/prefix`, `abfss://container@account.dfs.core.windows.net/prefix`, `az://container/prefix`, `gs://bucket/prefix`. Credentials come from the environment.").
				Example("s3://claims-media/itel"),
			service.NewObjectField(cmFieldStorage,
				service.NewStringField(cmFieldEndpoint).Description("Service endpoint override (S3-compatible stores, emulators).").Default(""),
				service.NewStringField(cmFieldRegion).Description("S3 region, when the environment names none.").Default(""),
				service.NewBoolField(cmFieldForcePathStyle).Description("S3 path-style addressing.").Default(false),
			).Description("Object storage settings. Credentials always come from the environment.").
				Advanced().Optional(),
			service.NewInterpolatedStringField(cmFieldKeyPrefix).
				Description("Key prefix of the record's photos under `"+cmFieldStoreURI+"`; the key is `<prefix>/<media_id><ext>`.").
				Example("${! this.project_id }/${! this.assignment_id }").
				Default(""),
			bytesize.NewField(cmFieldMaxSize).
				Description("Largest photo accepted (a number of bytes or a size such as `25MiB`); a larger one is rejected, its download stopped there.").
				Default("25MiB"),
			service.NewStringListField(cmFieldAllowedTypes).
				Description("Content types accepted; others are rejected.").
				Default(anySlice(media.DefaultAllowedTypes)),
			service.NewDurationField(cmFieldDownloadTimeout).
				Description("Time limit of one download attempt, body included.").
				Default("60s"),
			service.NewIntField(cmFieldMaxConcurrency).
				Description("Downloads in flight at once for this processor (every pipeline thread together).").
				Default(4),
			service.NewStringField(cmFieldResultField).
				Description("Field of the message set to the array of attachments.").
				Default("attachments"),
			service.NewObjectField(cmFieldRetries,
				service.NewIntField(cmFieldMaxAttempts).Description("Download attempts per link, the first included, before the media server counts as unavailable.").Default(3),
				service.NewDurationField(cmFieldInitialInterval).Description("Wait before the second attempt; it doubles, with jitter.").Default("500ms"),
				service.NewDurationField(cmFieldMaxInterval).Description("Longest wait between attempts.").Default("10s"),
			).Description("Retries of 5xx, 408, 429, timeouts and broken connections of the media server.").Advanced(),
		).
		Fields(holdFields("the media server or object storage")...).
		Example("iTel cabinet form photos", `
Stores each photo of a completed form under its project and assignment.
`, `
pipeline:
  processors:
    - claimx_media:
        connection: claimx
        project_id: ${! this.project_id }
        media_ids: root = this.photo_media_ids
        store_uri: ${MEDIA_STORE_URI}
        key_prefix: ${! this.project_id }/${! this.assignment_id }
        max_size: 25MiB
`)
}

func anySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func init() {
	service.MustRegisterBatchProcessor("claimx_media", claimxMediaConfigSpec(),
		func(conf *service.ParsedConfig, res *service.Resources) (service.BatchProcessor, error) {
			return newClaimxMediaFromConfig(conf, res)
		})
}

// claimxMediaConfig is the parsed configuration.
type claimxMediaConfig struct {
	connection  string
	projectID   *service.InterpolatedString
	mediaIDs    *bloblang.Executor
	storeURI    string
	storeOpts   storage.Options
	keyPrefix   *service.InterpolatedString
	download    media.Config
	concurrency int
	resultField string
	hold        holdSettings
}

func parseClaimxMediaConfig(conf *service.ParsedConfig) (c claimxMediaConfig, err error) {
	if c.connection, err = connectionField(conf, cmFieldConnection); err != nil {
		return c, err
	}
	if c.projectID, err = conf.FieldInterpolatedString(cmFieldProjectID); err != nil {
		return c, err
	}
	if c.mediaIDs, err = conf.FieldBloblang(cmFieldMediaIDs); err != nil {
		return c, err
	}
	if c.storeURI, err = conf.FieldString(cmFieldStoreURI); err != nil {
		return c, err
	}
	if conf.Contains(cmFieldStorage) {
		sc := conf.Namespace(cmFieldStorage)
		if c.storeOpts.Endpoint, err = sc.FieldString(cmFieldEndpoint); err != nil {
			return c, err
		}
		if c.storeOpts.Region, err = sc.FieldString(cmFieldRegion); err != nil {
			return c, err
		}
		ps, err := sc.FieldBool(cmFieldForcePathStyle)
		if err != nil {
			return c, err
		}
		if ps {
			c.storeOpts.Extra = map[string]string{storage.S3ForcePathStyle: "true"}
		}
	}
	if c.keyPrefix, err = conf.FieldInterpolatedString(cmFieldKeyPrefix); err != nil {
		return c, err
	}
	d := &c.download
	if d.MaxSize, err = bytesize.FromConfig(conf, cmFieldMaxSize); err != nil {
		return c, err
	}
	if d.MaxSize <= 0 {
		return c, fmt.Errorf("%s must be positive", cmFieldMaxSize)
	}
	if d.AllowedTypes, err = conf.FieldStringList(cmFieldAllowedTypes); err != nil {
		return c, err
	}
	for i, t := range d.AllowedTypes {
		d.AllowedTypes[i] = strings.ToLower(strings.TrimSpace(t))
	}
	if len(d.AllowedTypes) == 0 {
		return c, fmt.Errorf("%s must name at least one content type", cmFieldAllowedTypes)
	}
	if d.Timeout, err = conf.FieldDuration(cmFieldDownloadTimeout); err != nil {
		return c, err
	}
	if c.concurrency, err = conf.FieldInt(cmFieldMaxConcurrency); err != nil {
		return c, err
	}
	if c.concurrency < 1 {
		return c, fmt.Errorf("%s must be at least 1, got %d", cmFieldMaxConcurrency, c.concurrency)
	}
	if c.resultField, err = conf.FieldString(cmFieldResultField); err != nil {
		return c, err
	}
	if c.resultField == "" {
		return c, fmt.Errorf("%s must not be empty", cmFieldResultField)
	}
	rc := conf.Namespace(cmFieldRetries)
	if d.MaxAttempts, err = rc.FieldInt(cmFieldMaxAttempts); err != nil {
		return c, err
	}
	if d.InitialInterval, err = rc.FieldDuration(cmFieldInitialInterval); err != nil {
		return c, err
	}
	if d.MaxInterval, err = rc.FieldDuration(cmFieldMaxInterval); err != nil {
		return c, err
	}
	if d.MaxAttempts < 1 {
		return c, fmt.Errorf("%s.%s must be at least 1", cmFieldRetries, cmFieldMaxAttempts)
	}
	if c.hold, err = parseHoldSettings(conf); err != nil {
		return c, err
	}
	return c, nil
}

func newClaimxMediaFromConfig(conf *service.ParsedConfig, res *service.Resources) (*claimxMedia, error) {
	c, err := parseClaimxMediaConfig(conf)
	if err != nil {
		return nil, err
	}
	conn, err := claimxConnectionOf(res, c.connection)
	if err != nil {
		return nil, fmt.Errorf("claimx_media: %w", err)
	}
	st, err := storage.Open(context.Background(), c.storeURI, c.storeOpts)
	if err != nil {
		return nil, fmt.Errorf("claimx_media: %w", err)
	}
	if _, ok := st.(storage.StreamPutter); !ok {
		return nil, fmt.Errorf("claimx_media: the store %s cannot stream writes", st.URI())
	}
	return newClaimxMedia(c, conn, st, res), nil
}

// claimxMedia is the processor.
type claimxMedia struct {
	conf  claimxMediaConfig
	conn  *claimxConnection
	store storage.Store
	dl    *media.Downloader
	log   *service.Logger
	sem   chan struct{}
	// gate holds for the media server and storage; listGate for the API.
	gate     *hold.Gate
	listGate *hold.Gate
	listObs  claimx.Observer

	mDownloads *service.MetricCounter
	mBytes     *service.MetricCounter
	mRefreshes *service.MetricCounter
	mLatency   *service.MetricTimer
}

func newClaimxMedia(c claimxMediaConfig, conn *claimxConnection, st storage.Store, res *service.Resources) *claimxMedia {
	m := res.Metrics()
	p := &claimxMedia{
		conf:       c,
		conn:       conn,
		store:      st,
		dl:         media.NewDownloader(c.download),
		log:        res.Logger(),
		sem:        make(chan struct{}, c.concurrency),
		mDownloads: m.NewCounter("itel_media_downloads_total", "status"),
		mBytes:     m.NewCounter("itel_media_bytes_stored_total"),
		mRefreshes: m.NewCounter("itel_media_link_refreshes_total"),
		mLatency:   m.NewTimer("itel_media_download_latency_ns"),
	}
	mediaHold := c.hold
	mediaHold.cfg.Dependency = "claimx media " + st.URI()
	// newHoldGate adds "_available" and so on to the prefix.
	p.gate = newHoldGate(res, mediaHold, "ClaimX media server and object storage", "itel_media")
	p.listGate = newHoldGate(res, conn.hold, "ClaimX API", "itel_media_claimx_api")
	p.listObs = &cmListObserver{gate: p.listGate}
	return p
}

// cmListObserver wakes the holds on the API when it answers.
type cmListObserver struct {
	claimx.NopObserver
	gate *hold.Gate
}

func (o *cmListObserver) Answered() { o.gate.Answered() }

// Close does nothing: the client belongs to the connection.
func (p *claimxMedia) Close(context.Context) error { return nil }

// cmRecord is the work of one message.
type cmRecord struct {
	obj     map[string]any
	project int64
	prefix  string
	ids     []int64 // in media_ids order, duplicates kept
	// entries is the media list, once asked; listErr a record-level
	// failure of the list (every media rejected with it).
	entries map[int64]media.Entry
	listed  bool
	listErr string
	// results per distinct id; unavail is the last dependency failure.
	// mu guards both: the downloads of one record run concurrently.
	mu      sync.Mutex
	results map[int64]*media.Result
	unavail error
}

func (r *cmRecord) setResult(id int64, res *media.Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.results[id] = res
}

func (r *cmRecord) setUnavailable(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unavail = err
}

// pending lists the distinct ids without a result.
func (r *cmRecord) pending() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int64
	seen := map[int64]bool{}
	for _, id := range r.ids {
		if !seen[id] && r.results[id] == nil {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// ProcessBatch stores the photos of every message. A dependency failure
// holds the whole batch (see hold.Gate) until every photo has a result.
func (p *claimxMedia) ProcessBatch(ctx context.Context, batch service.MessageBatch) ([]service.MessageBatch, error) {
	recs := make([]*cmRecord, len(batch))
	projectEx := batch.InterpolationExecutor(p.conf.projectID)
	prefixEx := batch.InterpolationExecutor(p.conf.keyPrefix)
	idsEx := batch.BloblangExecutor(p.conf.mediaIDs)
	for i, msg := range batch {
		r, err := p.parse(msg, i, projectEx, prefixEx, idsEx)
		if err != nil {
			msg.SetError(err)
			continue
		}
		recs[i] = r
	}

	// The media lists, under the API's hold.
	listErr := p.run(ctx, p.listGate, p.conn.hold.mode, len(batch), func(ctx context.Context, probe bool) error {
		return p.listAll(ctx, recs, probe)
	})
	if errors.Is(listErr, hold.ErrInterrupted) {
		return nil, listErr
	}
	// The downloads, under the media server's and storage's hold. With
	// on_unavailable: error the records whose list failed are left out.
	dlErr := p.run(ctx, p.gate, p.conf.hold.mode, len(batch), func(ctx context.Context, probe bool) error {
		return p.downloadAll(ctx, recs, probe)
	})
	if errors.Is(dlErr, hold.ErrInterrupted) {
		return nil, dlErr
	}

	for i, msg := range batch {
		r := recs[i]
		if r == nil {
			continue
		}
		if len(r.pending()) > 0 {
			// on_unavailable: error, and this record still waits on a
			// dependency.
			err := r.unavail
			if err == nil {
				err = errors.Join(listErr, dlErr)
			}
			msg.SetError(fmt.Errorf("claimx_media: %s: %w", recordName(r.obj), err))
			continue
		}
		out := make([]any, len(r.ids))
		for j, id := range r.ids {
			out[j] = resultMap(r.results[id])
		}
		r.obj[p.conf.resultField] = out
		msg.SetStructuredMut(r.obj)
	}
	return []service.MessageBatch{batch}, nil
}

// run calls try under gate when mode is hold, once otherwise.
func (p *claimxMedia) run(ctx context.Context, gate *hold.Gate, mode hold.Mode, records int, try func(ctx context.Context, probe bool) error) error {
	if mode == hold.ModeHold {
		return gate.Do(ctx, records, try)
	}
	return try(ctx, false)
}

// parse reads what message i asks for.
func (p *claimxMedia) parse(msg *service.Message, i int, projectEx, prefixEx *service.MessageBatchInterpolationExecutor, idsEx *service.MessageBatchBloblangExecutor) (*cmRecord, error) {
	v, err := msg.AsStructuredMut()
	if err != nil {
		return nil, fmt.Errorf("claimx_media: message is not JSON: %w", err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("claimx_media: message is a JSON %T, not an object", v)
	}
	r := &cmRecord{obj: obj, results: map[int64]*media.Result{}}
	name := recordName(obj)
	ps, err := projectEx.TryString(i)
	if err != nil {
		return nil, fmt.Errorf("claimx_media: %s: interpolating %s: %w", name, cmFieldProjectID, err)
	}
	ps = strings.TrimSpace(ps)
	if r.project, err = strconv.ParseInt(ps, 10, 64); err != nil || r.project <= 0 {
		return nil, fmt.Errorf("claimx_media: %s: %s %q is not a ClaimX project id", name, cmFieldProjectID, ps)
	}
	if r.prefix, err = prefixEx.TryString(i); err != nil {
		return nil, fmt.Errorf("claimx_media: %s: interpolating %s: %w", name, cmFieldKeyPrefix, err)
	}
	if r.ids, err = mediaIDsOf(idsEx, i); err != nil {
		return nil, fmt.Errorf("claimx_media: %s: %s: %w", name, cmFieldMediaIDs, err)
	}
	return r, nil
}

// recordName names a record in errors by the ids it carries.
func recordName(obj map[string]any) string {
	var parts []string
	for _, k := range []string{"assignment_id", "task_assignment_id", "project_id", "event_id"} {
		if v, ok := obj[k]; ok && v != nil {
			parts = append(parts, fmt.Sprintf("%s %v", k, v))
		}
	}
	if len(parts) == 0 {
		return "record"
	}
	return "record " + strings.Join(parts, ", ")
}

// mediaIDsOf evaluates media_ids for message i: an array of integers, or
// null (deleted, nothing) for none.
func mediaIDsOf(ex *service.MessageBatchBloblangExecutor, i int) ([]int64, error) {
	res, err := ex.Query(i)
	if err != nil {
		return nil, err
	}
	if res == nil {
		return nil, nil
	}
	v, err := res.AsStructured()
	if err != nil {
		b, _ := res.AsBytes()
		if strings.TrimSpace(string(b)) == "null" || len(b) == 0 {
			return nil, nil
		}
		return nil, fmt.Errorf("not an array of integers: %w", err)
	}
	if v == nil {
		return nil, nil
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("gives a %T, not an array of integers", v)
	}
	ids := make([]int64, 0, len(arr))
	for j, x := range arr {
		id, err := mediaID(x)
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", j, err)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func mediaID(x any) (int64, error) {
	var id int64
	switch t := x.(type) {
	case json.Number:
		n, err := t.Int64()
		if err != nil {
			return 0, fmt.Errorf("%s is not an integer", t)
		}
		id = n
	case int64:
		id = t
	case int:
		id = int64(t)
	case uint64:
		if t > math.MaxInt64 {
			return 0, fmt.Errorf("%d is too large", t)
		}
		id = int64(t)
	case float64:
		if t != math.Trunc(t) || math.Abs(t) > 1<<53 {
			return 0, fmt.Errorf("%v is not an integer", t)
		}
		id = int64(t)
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not an integer", t)
		}
		id = n
	default:
		return 0, fmt.Errorf("%v (%T) is not an integer", x, x)
	}
	if id <= 0 {
		return 0, fmt.Errorf("%d is not a media id", id)
	}
	return id, nil
}

// listAll asks the media list of every record that has photos and no list
// yet; a probe asks one first.
func (p *claimxMedia) listAll(ctx context.Context, recs []*cmRecord, probe bool) error {
	var todo []*cmRecord
	for _, r := range recs {
		if r != nil && !r.listed && len(r.ids) > 0 {
			todo = append(todo, r)
		}
	}
	if probe && len(todo) > 0 {
		if err := p.list(ctx, todo[0]); err != nil {
			return err
		}
		todo = todo[1:]
	}
	errs := p.bounded(ctx, len(todo), func(k int) error { return p.list(ctx, todo[k]) })
	for k, err := range errs {
		if err != nil {
			todo[k].unavail = err
			return err
		}
	}
	return nil
}

// list asks the media list of one record: nil once it has an answer (or a
// record-level failure), the API's failure otherwise.
func (p *claimxMedia) list(ctx context.Context, r *cmRecord) error {
	entries, err := p.fetchList(ctx, r.project, r.pending())
	if err != nil {
		if _, ok := hold.AsUnavailable(err); ok {
			r.unavail = err
			return err
		}
		r.listed, r.listErr, r.unavail = true, err.Error(), nil
		return nil
	}
	r.entries, r.listed, r.unavail = entries, true, nil
	return nil
}

// fetchList calls GET /export/project/{project}/media?mediaIds=… through
// the connection's client (its rate limit, breaker and retries; not its
// cache: the links expire). A record-level failure is a plain error, the
// API's a hold.UnavailableError.
func (p *claimxMedia) fetchList(ctx context.Context, project int64, ids []int64) (map[int64]media.Entry, error) {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatInt(id, 10)
	}
	req, err := p.conn.client.NewRequest(fmt.Sprintf("/export/project/%d/media", project), url.Values{"mediaIds": {strings.Join(parts, ",")}}, nil)
	if err != nil {
		return nil, fmt.Errorf("project %d media list: %w", project, err)
	}
	resp, err := p.conn.client.Do(ctx, req, claimx.WithRequestObserver(p.listObs))
	if err != nil {
		var e *claimx.Error
		if errors.As(err, &e) {
			if u := e.Unavailable(); u != nil {
				return nil, u
			}
			return nil, fmt.Errorf("project %d media list: %w", project, e)
		}
		return nil, hold.Unavailable("connection", 0, fmt.Errorf("project %d media list: %w", project, err))
	}
	var list []media.Entry
	if err := json.Unmarshal(resp.Body, &list); err != nil {
		// Not the API's array: a proxy's page, a changed API. Not the record's.
		return nil, hold.Unavailable(string(claimx.ClassInvalidResponse), 0,
			fmt.Errorf("project %d media list: the answer is not an array of media: %w", project, err))
	}
	out := make(map[int64]media.Entry, len(list))
	for _, e := range list {
		out[e.MediaID] = e
	}
	return out, nil
}

// cmItem is one download: record and media id.
type cmItem struct {
	r  *cmRecord
	id int64
}

// downloadAll downloads every photo without a result; it returns a
// dependency failure if one remains. A probe downloads one first.
func (p *claimxMedia) downloadAll(ctx context.Context, recs []*cmRecord, probe bool) error {
	var items []cmItem
	for _, r := range recs {
		if r == nil || !r.listed {
			continue
		}
		for _, id := range r.pending() {
			switch _, ok := r.entries[id]; {
			case r.listErr != "":
				res := media.Rejected(id, "media list: "+r.listErr)
				p.account(&res, 0)
				r.results[id] = &res
			case !ok:
				res := media.Rejected(id, fmt.Sprintf("not in project %d's media list", r.project))
				p.account(&res, 0)
				r.results[id] = &res
			default:
				items = append(items, cmItem{r: r, id: id})
			}
		}
	}
	if probe && len(items) > 0 {
		if err := p.download(ctx, items[0]); err != nil {
			return err
		}
		items = items[1:]
	}
	errs := p.bounded(ctx, len(items), func(k int) error { return p.download(ctx, items[k]) })
	// Report the media server's or storage's own failure rather than an
	// interruption.
	var first error
	for k, err := range errs {
		if err == nil {
			continue
		}
		items[k].r.setUnavailable(err)
		if first == nil {
			first = err
		}
	}
	return first
}

// download stores one photo; nil once it has a result.
func (p *claimxMedia) download(ctx context.Context, it cmItem) error {
	r := it.r
	refresh := func(ctx context.Context, id int64) (media.Entry, error) {
		m, err := p.fetchList(ctx, r.project, []int64{id})
		if err != nil {
			if _, ok := hold.AsUnavailable(err); ok {
				return media.Entry{}, err
			}
			return media.Entry{}, media.Reject(id, "refreshing the link: %v", err)
		}
		en, ok := m[id]
		if !ok {
			return media.Entry{}, media.Reject(id, "no longer in project %d's media list", r.project)
		}
		return en, nil
	}
	start := time.Now()
	res, err := p.dl.Process(ctx, p.store, r.prefix, r.entries[it.id], refresh)
	if err != nil {
		if _, ok := hold.AsUnavailable(err); ok {
			return err
		}
		// Neither the photo's nor a dependency's (not expected): hold
		// rather than lose the photo silently.
		return hold.Unavailable("internal", 0, err)
	}
	p.account(&res, time.Since(start))
	r.setResult(it.id, &res)
	return nil
}

// account counts a result in the metrics.
func (p *claimxMedia) account(res *media.Result, took time.Duration) {
	p.mDownloads.Incr(1, res.Status)
	if res.Status == media.StatusStored {
		p.mBytes.Incr(res.SizeBytes)
	}
	if res.LinkRefreshes > 0 {
		p.mRefreshes.Incr(int64(res.LinkRefreshes))
	}
	if took > 0 {
		p.mLatency.Timing(took.Nanoseconds())
	}
	if res.Status == media.StatusRejected {
		p.log.Warnf("claimx_media: %s", res.Reason)
	}
}

// resultMap is the attachment object of a result.
func resultMap(r *media.Result) map[string]any {
	return map[string]any{
		"media_id":       r.MediaID,
		"file_name":      r.FileName,
		"content_type":   r.ContentType,
		"size_bytes":     r.SizeBytes,
		"sha256":         r.SHA256,
		"object_key":     r.ObjectKey,
		"object_uri":     r.ObjectURI,
		"status":         r.Status,
		"reason":         r.Reason,
		"link_refreshes": int64(r.LinkRefreshes),
		"download_ms":    r.DownloadMs,
	}
}

// bounded runs do(0..n-1) at once, at most max_concurrency at a time, and
// returns their errors by index; a task that cannot start before ctx ends
// is an interruption.
func (p *claimxMedia) bounded(ctx context.Context, n int, do func(k int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for k := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case p.sem <- struct{}{}:
			case <-ctx.Done():
				errs[k] = hold.Unavailable("interrupted", 0, ctx.Err())
				return
			}
			defer func() { <-p.sem }()
			errs[k] = do(k)
		}()
	}
	wg.Wait()
	return errs
}
