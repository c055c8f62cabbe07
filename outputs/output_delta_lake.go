// Package outputs holds the project's benthos outputs: thin adapters from
// benthos batches to the engines that do the work.
package outputs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/claimx/claimx-connect/delta"
	"github.com/claimx/claimx-connect/delta/storage"
	"github.com/claimx/claimx-connect/internal/bytesize"
)

const (
	dlFieldTableURI           = "table_uri"
	dlFieldSchema             = "schema"
	dlFieldSchemaName         = "name"
	dlFieldSchemaType         = "type"
	dlFieldSchemaNullable     = "nullable"
	dlFieldPartitionBy        = "partition_by"
	dlFieldCreateIfMissing    = "create_if_missing"
	dlFieldTableProperties    = "table_properties"
	dlFieldSchemaEvolution    = "schema_evolution"
	dlFieldBatching           = "batching"
	dlFieldTargetFileSize     = "target_file_size"
	dlFieldCompression        = "compression"
	dlFieldCheckpointInterval = "checkpoint_interval"
	dlFieldMaxInFlight        = "max_in_flight"
	dlFieldIdempotency        = "idempotency"
	dlFieldAppID              = "app_id"
	dlFieldMaxCommitAttempts  = "max_commit_attempts"
	dlFieldStorage            = "storage"
	dlFieldEndpoint           = "endpoint"
	dlFieldRegion             = "region"
	dlFieldForcePathStyle     = "force_path_style"
)

// Metadata the idempotency mechanism reads, as the kafka_franz input sets it.
const (
	metaTopic     = "kafka_topic"
	metaPartition = "kafka_partition"
	metaOffset    = "kafka_offset"
)

func deltaLakeOutputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Services").
		Summary("Appends JSON messages as rows of a Delta Lake table, one commit per batch.").
		Description(`Each message is a JSON object whose keys name columns. Values are coerced to the column types: RFC 3339 strings (any offset; no zone means UTC) to `+"`timestamp`"+`, numbers and numeric strings to the integer and floating types (never rounded or truncated), objects and arrays to their JSON text for `+"`string`"+` columns, base64 to `+"`binary`"+`. A message that cannot be converted fails alone, with the column and the value in its error, and the rest of the batch is written.

Data files are Parquet (timestamps INT64 MICROS UTC, data page V1, snappy or zstd) with statistics in the log, so Spark, Databricks, Fabric, delta-rs and DuckDB read the table and prune on it. Commits are created with an atomic put-if-absent on every backend (local paths and `+"`file://`"+`, `+"`s3://`"+`, `+"`abfss://`"+`/`+"`az://`"+`, `+"`gs://`"+`); a commit that loses a race to another writer is renumbered and retried.

### Exactly-once rows

With `+"`idempotency.app_id`"+` set, each commit also records, per Kafka topic-partition, the last offset it wrote (a Delta `+"`txn`"+` action with appId `+"`<app_id>-<topic>-<partition>`"+`, read from the `+"`kafka_topic`"+`, `+"`kafka_partition`"+` and `+"`kafka_offset`"+` metadata). Messages at or below that offset are acknowledged without being written again, so the replay that follows a crash or a rebalance adds no row. Give every pipeline writing one table from one consumer group the same app_id.

A message that fails conversion is rejected (nacked). Route such failures to an error topic with a `+"`fallback`"+` or `+"`switch`"+` output so they are not retried forever; after a restart, a rejected message whose offset is below a written one counts as handled.`).
		Fields(
			service.NewStringField(dlFieldTableURI).
				Description("Where the table lives: a local path, `file://`, `s3://bucket/prefix`, `abfss://container@account.dfs.core.windows.net/path`, `az://container/path` or `gs://bucket/prefix`. Credentials come from the environment.").
				Example("./data/itel_cabinet_task_tracking").
				Example("s3://lake/itel_cabinet_task_tracking"),
			service.NewObjectListField(dlFieldSchema,
				service.NewStringField(dlFieldSchemaName).Description("The column name."),
				service.NewStringField(dlFieldSchemaType).Description("A Delta primitive type: `string`, `long`, `integer`, `short`, `byte`, `float`, `double`, `boolean`, `binary`, `date`, `timestamp`, `decimal(p,s)`."),
				service.NewBoolField(dlFieldSchemaNullable).Description("Whether the column may be null.").Default(true),
			).Description("The columns written, in order. Used to create the table when it is missing; with `schema_evolution: merge`, columns the table lacks are added. Absent: the table's own schema.").
				Optional(),
			service.NewStringListField(dlFieldPartitionBy).
				Description("Partition columns, for a table this output creates.").
				Default([]any{}),
			service.NewBoolField(dlFieldCreateIfMissing).
				Description("Create the table (with `schema`, `partition_by` and `table_properties`) when the location holds none.").
				Default(false),
			service.NewStringMapField(dlFieldTableProperties).
				Description("Table properties for a table this output creates, such as `delta.enableChangeDataFeed`.").
				Default(map[string]any{}),
			service.NewStringEnumField(dlFieldSchemaEvolution, "none", "merge").
				Description("`none`: a batch whose columns the table lacks fails. `merge`: such columns are added to the table as nullable columns at the end, including keys of messages that no declared column names (their type is inferred). Type changes are always refused.").
				Default("none"),
			service.NewBatchPolicyField(dlFieldBatching),
			bytesize.NewField(dlFieldTargetFileSize).
				Description("Split a batch into data files of about this size.").
				Advanced().Default("128MiB"),
			service.NewStringEnumField(dlFieldCompression, "snappy", "zstd", "uncompressed").
				Description("Parquet compression.").
				Default("snappy"),
			service.NewIntField(dlFieldCheckpointInterval).
				Description("Write a checkpoint every this many commits (0: the table's `delta.checkpointInterval`, or 10).").
				Advanced().Default(10),
			service.NewOutputMaxInFlightField().Default(1),
			service.NewObjectField(dlFieldIdempotency,
				service.NewStringField(dlFieldAppID).
					Description("The application id of the `txn` actions; empty disables offset tracking.").
					Default(""),
			).Description("Exactly-once rows for Kafka input: skip messages whose offset a commit already recorded.").
				Optional(),
			service.NewIntField(dlFieldMaxCommitAttempts).
				Description("How many times a commit that loses the race for its version is retried before the batch fails.").
				Advanced().Default(20),
			service.NewObjectField(dlFieldStorage,
				service.NewStringField(dlFieldEndpoint).Description("Service endpoint override (S3-compatible stores, emulators).").Default(""),
				service.NewStringField(dlFieldRegion).Description("S3 region, when the environment names none.").Default(""),
				service.NewBoolField(dlFieldForcePathStyle).Description("S3 path-style addressing.").Default(false),
			).Description("Object storage settings. Credentials always come from the environment.").
				Advanced().Optional(),
		).
		Example("Tracking table with exactly-once rows", "Appends the worker's rows, partitioned by day, skipping replayed Kafka offsets.", `
output:
  delta_lake:
    table_uri: ${DELTA_TABLE_URI:./data/itel_cabinet_task_tracking}
    create_if_missing: true
    schema:
      - { name: event_id, type: string, nullable: false }
      - { name: event_timestamp, type: timestamp, nullable: false }
      - { name: task_id, type: integer, nullable: false }
      - { name: year, type: integer }
      - { name: month, type: integer }
      - { name: day, type: integer }
    partition_by: [ year, month, day ]
    idempotency: { app_id: itel_cabinet_tracking_worker }
    batching: { count: 500, period: 5s }
`)
}

func init() {
	service.MustRegisterBatchOutput("delta_lake", deltaLakeOutputSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchOutput, service.BatchPolicy, int, error) {
			var pol service.BatchPolicy
			maxInFlight, err := conf.FieldMaxInFlight()
			if err != nil {
				return nil, pol, 0, err
			}
			if pol, err = conf.FieldBatchPolicy(dlFieldBatching); err != nil {
				return nil, pol, 0, err
			}
			w, err := newDeltaLakeOutput(conf, mgr)
			if err != nil {
				return nil, pol, 0, err
			}
			return w, pol, maxInFlight, nil
		})
}

// deltaLakeConfig is the parsed configuration.
type deltaLakeConfig struct {
	tableURI        string
	schema          *delta.Schema // nil: the table's
	partitionBy     []string
	createIfMissing bool
	properties      map[string]string
	mode            delta.SchemaMode
	appID           string
	storage         storage.Options
	open            delta.OpenOptions
}

func parseDeltaLakeConfig(conf *service.ParsedConfig) (deltaLakeConfig, error) {
	var c deltaLakeConfig
	var err error
	if c.tableURI, err = conf.FieldString(dlFieldTableURI); err != nil {
		return c, err
	}
	if c.schema, err = schemaFromConfig(conf); err != nil {
		return c, err
	}
	if c.partitionBy, err = conf.FieldStringList(dlFieldPartitionBy); err != nil {
		return c, err
	}
	if c.createIfMissing, err = conf.FieldBool(dlFieldCreateIfMissing); err != nil {
		return c, err
	}
	if c.createIfMissing && c.schema == nil {
		return c, fmt.Errorf("field %s: a schema is needed to create a missing table", dlFieldCreateIfMissing)
	}
	if c.properties, err = conf.FieldStringMap(dlFieldTableProperties); err != nil {
		return c, err
	}
	mode, err := conf.FieldString(dlFieldSchemaEvolution)
	if err != nil {
		return c, err
	}
	if c.mode, err = delta.ParseSchemaMode(mode); err != nil {
		return c, err
	}
	if c.open.Writer.TargetFileSize, err = bytesize.FromConfig(conf, dlFieldTargetFileSize); err != nil {
		return c, err
	}
	if c.open.Writer.Compression, err = conf.FieldString(dlFieldCompression); err != nil {
		return c, err
	}
	if c.open.CheckpointInterval, err = conf.FieldInt(dlFieldCheckpointInterval); err != nil {
		return c, err
	}
	if c.open.MaxCommitAttempts, err = conf.FieldInt(dlFieldMaxCommitAttempts); err != nil {
		return c, err
	}
	if conf.Contains(dlFieldIdempotency) {
		if c.appID, err = conf.FieldString(dlFieldIdempotency, dlFieldAppID); err != nil {
			return c, err
		}
	}
	if conf.Contains(dlFieldStorage) {
		sc := conf.Namespace(dlFieldStorage)
		if c.storage.Endpoint, err = sc.FieldString(dlFieldEndpoint); err != nil {
			return c, err
		}
		if c.storage.Region, err = sc.FieldString(dlFieldRegion); err != nil {
			return c, err
		}
		if ps, err := sc.FieldBool(dlFieldForcePathStyle); err != nil {
			return c, err
		} else if ps {
			c.storage.Extra = map[string]string{"s3.force_path_style": "true"}
		}
	}
	return c, nil
}

// deltaLakeOutput adapts benthos batches to delta.Table appends.
type deltaLakeOutput struct {
	conf deltaLakeConfig
	log  *service.Logger

	mRows     *service.MetricCounter
	mCommits  *service.MetricCounter
	mSkipped  *service.MetricCounter
	mRejected *service.MetricCounter
	mVersion  *service.MetricGauge
	mLatency  *service.MetricTimer

	mu    sync.Mutex
	table *delta.Table
	// rejected remembers offsets this process failed to convert, so that
	// their replay is converted (and rejected) again rather than skipped as
	// "already written" because a later offset of the partition was written.
	rejected map[string]map[int64]bool
}

func newDeltaLakeOutput(conf *service.ParsedConfig, mgr *service.Resources) (*deltaLakeOutput, error) {
	c, err := parseDeltaLakeConfig(conf)
	if err != nil {
		return nil, err
	}
	m := mgr.Metrics()
	return &deltaLakeOutput{
		conf:      c,
		log:       mgr.Logger(),
		mRows:     m.NewCounter("delta_rows_written_total"),
		mCommits:  m.NewCounter("delta_commits_total"),
		mSkipped:  m.NewCounter("delta_rows_skipped_replayed_total"),
		mRejected: m.NewCounter("delta_rows_rejected_total"),
		mVersion:  m.NewGauge("delta_table_version"),
		mLatency:  m.NewTimer("delta_commit_latency_ns"),
		rejected:  map[string]map[int64]bool{},
	}, nil
}

// Connect opens the table, creating it when asked to. Two writers creating
// one table at once is safe: version 0 is put-if-absent, the loser opens.
func (d *deltaLakeOutput) Connect(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.table != nil {
		return nil
	}
	store, err := storage.Open(ctx, d.conf.tableURI, d.conf.storage)
	if err != nil {
		return err
	}
	tbl, err := delta.Open(ctx, store, d.conf.open)
	if errors.Is(err, delta.ErrNotATable) && d.conf.createIfMissing {
		tbl, err = delta.Create(ctx, store, delta.CreateOptions{
			Schema:           d.conf.schema,
			PartitionColumns: d.conf.partitionBy,
			Properties:       d.conf.properties,
			Open:             d.conf.open,
		})
		if errors.Is(err, delta.ErrTableExists) || errors.Is(err, storage.ErrExists) {
			tbl, err = delta.Open(ctx, store, d.conf.open)
		} else if err == nil {
			d.log.With("table", store.URI()).Info("created Delta table")
		}
	}
	if err != nil {
		return fmt.Errorf("opening Delta table %s: %w", d.conf.tableURI, err)
	}
	if d.conf.schema != nil && d.conf.mode == delta.SchemaNone {
		if missing := missingColumns(tbl.Schema(), d.conf.schema); len(missing) > 0 {
			return fmt.Errorf("opening Delta table %s: the configured schema has columns the table lacks %v (set schema_evolution: merge to add them)", d.conf.tableURI, missing)
		}
	}
	d.table = tbl
	d.mVersion.Set(tbl.Version())
	d.log.With("table", store.URI(), "version", tbl.Version()).Info("Delta table open")
	return nil
}

// schemaFromConfig reads the declared columns; nil when none are declared.
func schemaFromConfig(conf *service.ParsedConfig) (*delta.Schema, error) {
	if !conf.Contains(dlFieldSchema) {
		return nil, nil
	}
	objs, err := conf.FieldObjectList(dlFieldSchema)
	if err != nil || len(objs) == 0 {
		return nil, err
	}
	fields := make([]delta.Field, len(objs))
	for i, o := range objs {
		if fields[i].Name, err = o.FieldString(dlFieldSchemaName); err != nil {
			return nil, err
		}
		if fields[i].Type, err = o.FieldString(dlFieldSchemaType); err != nil {
			return nil, err
		}
		if fields[i].Nullable, err = o.FieldBool(dlFieldSchemaNullable); err != nil {
			return nil, err
		}
	}
	s, err := delta.NewSchema(fields)
	if err != nil {
		return nil, fmt.Errorf("field %s: %w", dlFieldSchema, err)
	}
	return s, nil
}

func missingColumns(table, declared *delta.Schema) []string {
	var out []string
	for _, f := range declared.Fields() {
		if table.Index(f.Name) < 0 {
			out = append(out, f.Name)
		}
	}
	return out
}

// kafkaPosition is where a message came from, for idempotency.
type kafkaPosition struct {
	appID  string
	offset int64
}

func (d *deltaLakeOutput) position(msg *service.Message) (kafkaPosition, error) {
	topic, ok := msg.MetaGet(metaTopic)
	if !ok {
		return kafkaPosition{}, fmt.Errorf("idempotency needs the %s metadata of the kafka_franz input, and the message has none", metaTopic)
	}
	part, ok := msg.MetaGet(metaPartition)
	if !ok {
		return kafkaPosition{}, fmt.Errorf("idempotency needs the %s metadata, and the message has none", metaPartition)
	}
	offStr, ok := msg.MetaGet(metaOffset)
	if !ok {
		return kafkaPosition{}, fmt.Errorf("idempotency needs the %s metadata, and the message has none", metaOffset)
	}
	off, err := strconv.ParseInt(offStr, 10, 64)
	if err != nil {
		return kafkaPosition{}, fmt.Errorf("metadata %s=%q is not an offset: %w", metaOffset, offStr, err)
	}
	return kafkaPosition{appID: d.conf.appID + "-" + topic + "-" + part, offset: off}, nil
}

// decodeObject parses a JSON object keeping numbers exact.
func decodeObject(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("message is not a JSON object: %w", err)
	}
	if m == nil {
		return nil, errors.New("message is not a JSON object: null")
	}
	if dec.More() {
		return nil, errors.New("message is not a JSON object: trailing data after the object")
	}
	return m, nil
}

// WriteBatch converts the batch, skips replayed offsets, and appends the rest
// in one commit together with the new per-partition offsets.
func (d *deltaLakeOutput) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	d.mu.Lock()
	tbl := d.table
	d.mu.Unlock()
	if tbl == nil {
		return service.ErrNotConnected
	}

	schema := d.conf.schema
	if schema == nil {
		schema = tbl.Schema()
	}
	type failure struct {
		i   int
		err error
	}
	var failures []failure
	fail := func(i int, err error) {
		failures = append(failures, failure{i, err})
		d.mRejected.Incr(1)
		d.log.With("table", d.conf.tableURI, "message", i, "error", err.Error()).Error("message rejected by the Delta table output")
	}

	type candidate struct {
		i   int
		pos kafkaPosition
		obj map[string]any
	}
	cands := make([]candidate, 0, len(batch))
	var rejectedNow []kafkaPosition
	reject := func(i int, pos kafkaPosition, err error) {
		fail(i, fmt.Errorf("message %d%s: %w", i, posLabel(pos), err))
		if pos.appID != "" {
			rejectedNow = append(rejectedNow, pos)
		}
	}
	for i, msg := range batch {
		var pos kafkaPosition
		if d.conf.appID != "" {
			p, err := d.position(msg)
			if err != nil {
				fail(i, fmt.Errorf("message %d: %w", i, err))
				continue
			}
			pos = p
			if tbl.TxnApplied(pos.appID, pos.offset) && !d.wasRejected(pos) {
				d.mSkipped.Incr(1)
				continue
			}
		}
		b, err := msg.AsBytes()
		if err != nil {
			reject(i, pos, fmt.Errorf("reading message: %w", err))
			continue
		}
		m, err := decodeObject(b)
		if err != nil {
			reject(i, pos, err)
			continue
		}
		cands = append(cands, candidate{i: i, pos: pos, obj: m})
	}

	// Under merge, keys no declared column names widen the batch schema.
	if d.conf.mode == delta.SchemaMerge {
		for _, c := range cands {
			wider, err := schema.WithJSONColumns(c.obj)
			if err != nil {
				return fmt.Errorf("inferring new columns for %s: %w", d.conf.tableURI, err)
			}
			schema = wider
		}
	}

	// Only converted messages advance their partition's recorded offset.
	rows := make([]delta.Row, 0, len(cands))
	txns := map[string]int64{}
	for _, c := range cands {
		row, err := schema.RowFromJSON(c.obj)
		if err != nil {
			reject(c.i, c.pos, err)
			continue
		}
		rows = append(rows, row)
		if c.pos.appID != "" {
			if cur, ok := txns[c.pos.appID]; !ok || c.pos.offset > cur {
				txns[c.pos.appID] = c.pos.offset
			}
		}
	}
	d.rememberRejected(rejectedNow)

	if len(rows) > 0 || len(txns) > 0 {
		req := delta.AppendRequest{
			Rows:                rows,
			Schema:              schema,
			Mode:                d.conf.mode,
			Operation:           delta.OperationStreamingUpdate,
			OperationParameters: map[string]string{"outputMode": "Append"},
		}
		if d.conf.appID != "" {
			req.OperationParameters["appId"] = d.conf.appID
		}
		for app, v := range txns {
			req.Txns = append(req.Txns, delta.Txn{AppID: app, Version: v})
		}
		start := time.Now()
		res, err := tbl.Append(ctx, req)
		if err != nil {
			// Every message of this commit is nacked and replayed; the txn
			// check then skips whatever a concurrent writer already wrote.
			return fmt.Errorf("appending %d rows to Delta table %s: %w", len(rows), d.conf.tableURI, err)
		}
		d.mLatency.Timing(time.Since(start).Nanoseconds())
		if !res.NoOp {
			d.mCommits.Incr(1)
			d.mRows.Incr(res.Rows)
			d.mVersion.Set(res.Version)
		}
		if res.CheckpointErr != nil {
			d.log.With("table", d.conf.tableURI, "version", res.Version, "error", res.CheckpointErr.Error()).Warn("checkpoint failed after a successful commit; the next open makes it up")
		}
		if res.SchemaChanged {
			d.log.With("table", d.conf.tableURI, "version", res.Version, "schema", schema.String()).Info("table schema evolved")
		}
		d.log.With("table", d.conf.tableURI, "version", res.Version, "rows", res.Rows, "files", len(res.Files), "attempts", res.Attempts).Debug("committed to Delta table")
	}
	if len(failures) == 0 {
		return nil
	}
	// The headline is what benthos logs and what a producer sees: it names
	// every rejected message and its reason.
	reasons := make([]string, 0, len(failures))
	for _, f := range failures {
		reasons = append(reasons, f.err.Error())
	}
	headline := fmt.Sprintf("%d of %d messages not written to Delta table %s: %s", len(failures), len(batch), d.conf.tableURI, truncateText(strings.Join(reasons, "; "), 2000))
	batchErr := service.NewBatchError(batch, errors.New(headline))
	for _, f := range failures {
		batchErr.Failed(f.i, f.err)
	}
	return batchErr
}

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func posLabel(p kafkaPosition) string {
	if p.appID == "" {
		return ""
	}
	return fmt.Sprintf(" (%s offset %d)", p.appID, p.offset)
}

func (d *deltaLakeOutput) wasRejected(p kafkaPosition) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.rejected[p.appID][p.offset]
}

func (d *deltaLakeOutput) rememberRejected(ps []kafkaPosition) {
	if len(ps) == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range ps {
		if d.rejected[p.appID] == nil {
			d.rejected[p.appID] = map[int64]bool{}
		}
		d.rejected[p.appID][p.offset] = true
	}
}

// Close releases the table handle; every commit is already durable.
func (d *deltaLakeOutput) Close(context.Context) error {
	d.mu.Lock()
	d.table = nil
	d.mu.Unlock()
	return nil
}
