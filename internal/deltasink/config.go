// Package deltasink adapts benthos message batches to the delta engine: the
// configuration fields shared by the delta_lake output and processor, JSON to
// row conversion, replay skipping through txn offsets, and de-duplication by
// a key column. The delta package below it knows nothing of benthos.
package deltasink

import (
	"fmt"
	"os"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/claimx/claimx-connect/delta"
	"github.com/claimx/claimx-connect/delta/storage"
	"github.com/claimx/claimx-connect/internal/bytesize"
)

// Field names shared by the delta_lake output and processor.
const (
	FieldTableURI           = "table_uri"
	FieldSchema             = "schema"
	FieldSchemaFile         = "schema_file"
	FieldSchemaName         = "name"
	FieldSchemaType         = "type"
	FieldSchemaNullable     = "nullable"
	FieldPartitionBy        = "partition_by"
	FieldCreateIfMissing    = "create_if_missing"
	FieldTableProperties    = "table_properties"
	FieldSchemaEvolution    = "schema_evolution"
	FieldTargetFileSize     = "target_file_size"
	FieldCompression        = "compression"
	FieldCheckpointInterval = "checkpoint_interval"
	FieldIdempotency        = "idempotency"
	FieldAppID              = "app_id"
	FieldDedupeColumn       = "dedupe_column"
	FieldMaxCommitAttempts  = "max_commit_attempts"
	FieldStorage            = "storage"
	FieldEndpoint           = "endpoint"
	FieldRegion             = "region"
	FieldForcePathStyle     = "force_path_style"
	FieldRows               = "rows"
)

// Metadata the idempotency mechanism reads, as the kafka_franz input sets it.
const (
	MetaTopic     = "kafka_topic"
	MetaPartition = "kafka_partition"
	MetaOffset    = "kafka_offset"
)

// ConversionDoc describes how messages become rows, for component docs.
const ConversionDoc = `Each message is a JSON object whose keys name columns. Values are coerced to the column types: RFC 3339 strings (any offset; no zone means UTC) to ` + "`timestamp`" + `, numbers and numeric strings to the integer and floating types (never rounded or truncated), objects and arrays to their JSON text for ` + "`string`" + ` columns, base64 to ` + "`binary`" + `. A message that cannot be converted fails alone, with the column and the value in its error, and the rest of the batch is written.

Data files are Parquet (timestamps INT64 MICROS UTC, data page V1, snappy or zstd) with statistics in the log, so Spark, Databricks, Fabric, delta-rs and DuckDB read the table and prune on it. Commits are created with an atomic put-if-absent on every backend (local paths and ` + "`file://`" + `, ` + "`s3://`" + `, ` + "`abfss://`" + `/` + "`az://`" + `, ` + "`gs://`" + `); a commit that loses a race to another writer is renumbered and retried.

### Exactly-once rows

With ` + "`idempotency.app_id`" + ` set, each commit also records, per Kafka topic-partition, the last offset it wrote (a Delta ` + "`txn`" + ` action with appId ` + "`<app_id>-<topic>-<partition>`" + `, read from the ` + "`kafka_topic`" + `, ` + "`kafka_partition`" + ` and ` + "`kafka_offset`" + ` metadata). Messages at or below that offset are not written again, so the replay that follows a crash or a rebalance adds no row. Give every pipeline writing one table from one consumer group the same app_id. Within a process, the writer also remembers which offsets it wrote, so a batch that reaches it after a later batch of the same partition (with ` + "`pipeline.threads`" + ` above 1) is still written. One case offsets alone cannot cover: a crash after such a later batch committed and before the earlier one did; use ` + "`pipeline.threads: 1`" + ` (and ` + "`max_in_flight: 1`" + ` on the output), or a dedupe column.

With ` + "`idempotency.dedupe_column`" + ` set (for example ` + "`event_id`" + `), a message is written only if no row of its partition already holds its key, whatever its offset: the same event arriving twice from upstream, or replayed after a failure, yields one row. The keys of a partition are read from its files the first time a message of that partition arrives and kept (hashed) for the most recently used partitions.`

// Fields are the configuration fields of the table writer.
func Fields() []*service.ConfigField {
	return []*service.ConfigField{
		service.NewStringField(FieldTableURI).
			Description("Where the table lives: a local path, `file://`, `s3://bucket/prefix`, `abfss://container@account.dfs.core.windows.net/path`, `az://container/path` or `gs://bucket/prefix`. Credentials come from the environment.").
			Example("./data/itel_cabinet_task_tracking").
			Example("s3://lake/itel_cabinet_task_tracking"),
		service.NewObjectListField(FieldSchema,
			service.NewStringField(FieldSchemaName).Description("The column name."),
			service.NewStringField(FieldSchemaType).Description("A Delta primitive type: `string`, `long`, `integer`, `short`, `byte`, `float`, `double`, `boolean`, `binary`, `date`, `timestamp`, `decimal(p,s)`."),
			service.NewBoolField(FieldSchemaNullable).Description("Whether the column may be null.").Default(true),
		).Description("The columns written, in order. Used to create the table when it is missing; with `schema_evolution: merge`, columns the table lacks are added. Absent: the table's own schema.").
			Optional(),
		service.NewStringField(FieldSchemaFile).
			Description("A file holding the columns instead of `schema`: the YAML (or JSON) list of `{name, type, nullable}` that `claimx-connect delta create --schema` reads.").
			Example("./schemas/itel_cabinet_task_tracking.yaml").
			Optional(),
		service.NewBloblangField(FieldRows).
			Description("A mapping from a message to its rows, for a message that carries several rows or a row built from part of it: an object is one row, an array zero or more (each an object), `deleted()` or null none. Absent: the message is one row. A message whose rows fail conversion is rejected whole, with the row's index in the error; with `" + FieldDedupeColumn + "` each row is checked on its own, and a message is a duplicate only when every row is. A message with no rows still advances its Kafka offset in the commit.").
			Example(`root = this.attachments.map_each(a -> a.merge({"form_key": this.form_key}))`).
			Optional(),
		service.NewStringListField(FieldPartitionBy).
			Description("Partition columns, for a table this component creates.").
			Default([]any{}),
		service.NewBoolField(FieldCreateIfMissing).
			Description("Create the table (with `schema`, `partition_by` and `table_properties`) when the location holds none.").
			Default(false),
		service.NewStringMapField(FieldTableProperties).
			Description("Table properties for a table this component creates, such as `delta.enableChangeDataFeed`.").
			Default(map[string]any{}),
		service.NewStringEnumField(FieldSchemaEvolution, "none", "merge").
			Description("`none`: a message with a column the table lacks fails. `merge`: such columns are added to the table as nullable columns at the end, including keys of messages that no declared column names (their type is inferred). Type changes are always refused.").
			Default("none"),
		bytesize.NewField(FieldTargetFileSize).
			Description("Split a batch into data files of about this size.").
			Advanced().Default("128MiB"),
		service.NewStringEnumField(FieldCompression, "snappy", "zstd", "uncompressed").
			Description("Parquet compression.").
			Default("snappy"),
		service.NewIntField(FieldCheckpointInterval).
			Description("Write a checkpoint every this many commits (0: the table's `delta.checkpointInterval`, or 10).").
			Advanced().Default(10),
		service.NewObjectField(FieldIdempotency,
			service.NewStringField(FieldAppID).
				Description("The application id of the `txn` actions recording Kafka offsets; empty disables offset tracking.").
				Default(""),
			service.NewStringField(FieldDedupeColumn).
				Description("A column whose value identifies a row (for example `event_id`): a message whose key a row of its partition already holds is not written again.").
				Default(""),
		).Description("Exactly-once rows: skip replayed Kafka offsets and duplicate keys.").
			Optional(),
		service.NewIntField(FieldMaxCommitAttempts).
			Description("How many times a commit that loses the race for its version is retried before the batch fails.").
			Advanced().Default(20),
		service.NewObjectField(FieldStorage,
			service.NewStringField(FieldEndpoint).Description("Service endpoint override (S3-compatible stores, emulators).").Default(""),
			service.NewStringField(FieldRegion).Description("S3 region, when the environment names none.").Default(""),
			service.NewBoolField(FieldForcePathStyle).Description("S3 path-style addressing.").Default(false),
		).Description("Object storage settings. Credentials always come from the environment.").
			Advanced().Optional(),
		maintenanceField(),
	}
}

// Config is the parsed configuration of a table writer.
type Config struct {
	TableURI        string
	Schema          *delta.Schema // nil: the table's
	PartitionBy     []string
	CreateIfMissing bool
	Properties      map[string]string
	Mode            delta.SchemaMode
	AppID           string
	DedupeColumn    string
	Storage         storage.Options
	Open            delta.OpenOptions
	Maintenance     MaintenanceConfig
	// Rows maps a message to its rows; nil: the message is one row.
	Rows *bloblang.Executor
}

// ParseConfig reads the fields of Fields.
func ParseConfig(conf *service.ParsedConfig) (Config, error) {
	var c Config
	var err error
	if c.TableURI, err = conf.FieldString(FieldTableURI); err != nil {
		return c, err
	}
	if c.Schema, err = schemaFromConfig(conf); err != nil {
		return c, err
	}
	if conf.Contains(FieldRows) {
		if c.Rows, err = conf.FieldBloblang(FieldRows); err != nil {
			return c, err
		}
	}
	if c.PartitionBy, err = conf.FieldStringList(FieldPartitionBy); err != nil {
		return c, err
	}
	if c.CreateIfMissing, err = conf.FieldBool(FieldCreateIfMissing); err != nil {
		return c, err
	}
	if c.CreateIfMissing && c.Schema == nil {
		return c, fmt.Errorf("field %s: a schema is needed to create a missing table", FieldCreateIfMissing)
	}
	if c.Properties, err = conf.FieldStringMap(FieldTableProperties); err != nil {
		return c, err
	}
	mode, err := conf.FieldString(FieldSchemaEvolution)
	if err != nil {
		return c, err
	}
	if c.Mode, err = delta.ParseSchemaMode(mode); err != nil {
		return c, err
	}
	if c.Open.Writer.TargetFileSize, err = bytesize.FromConfig(conf, FieldTargetFileSize); err != nil {
		return c, err
	}
	if c.Open.Writer.Compression, err = conf.FieldString(FieldCompression); err != nil {
		return c, err
	}
	if c.Open.CheckpointInterval, err = conf.FieldInt(FieldCheckpointInterval); err != nil {
		return c, err
	}
	if c.Open.MaxCommitAttempts, err = conf.FieldInt(FieldMaxCommitAttempts); err != nil {
		return c, err
	}
	if conf.Contains(FieldIdempotency) {
		if c.AppID, err = conf.FieldString(FieldIdempotency, FieldAppID); err != nil {
			return c, err
		}
		if c.DedupeColumn, err = conf.FieldString(FieldIdempotency, FieldDedupeColumn); err != nil {
			return c, err
		}
		if c.DedupeColumn != "" && c.Schema != nil && c.Schema.Index(c.DedupeColumn) < 0 {
			return c, fmt.Errorf("field %s.%s: column %q is not in the schema", FieldIdempotency, FieldDedupeColumn, c.DedupeColumn)
		}
	}
	if c.Maintenance, err = parseMaintenance(conf); err != nil {
		return c, err
	}
	if conf.Contains(FieldStorage) {
		sc := conf.Namespace(FieldStorage)
		if c.Storage.Endpoint, err = sc.FieldString(FieldEndpoint); err != nil {
			return c, err
		}
		if c.Storage.Region, err = sc.FieldString(FieldRegion); err != nil {
			return c, err
		}
		ps, err := sc.FieldBool(FieldForcePathStyle)
		if err != nil {
			return c, err
		}
		if ps {
			c.Storage.Extra = map[string]string{"s3.force_path_style": "true"}
		}
	}
	return c, nil
}

// schemaFromConfig reads the declared columns; nil when none are declared.
func schemaFromConfig(conf *service.ParsedConfig) (*delta.Schema, error) {
	if conf.Contains(FieldSchemaFile) {
		path, err := conf.FieldString(FieldSchemaFile)
		if err != nil {
			return nil, err
		}
		if path != "" {
			if conf.Contains(FieldSchema) {
				if objs, _ := conf.FieldObjectList(FieldSchema); len(objs) > 0 {
					return nil, fmt.Errorf("fields %s and %s: give the columns one way, not both", FieldSchema, FieldSchemaFile)
				}
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", FieldSchemaFile, err)
			}
			s, err := delta.ParseSchemaFile(raw)
			if err != nil {
				return nil, fmt.Errorf("field %s: %s: %w", FieldSchemaFile, path, err)
			}
			return s, nil
		}
	}
	if !conf.Contains(FieldSchema) {
		return nil, nil
	}
	objs, err := conf.FieldObjectList(FieldSchema)
	if err != nil || len(objs) == 0 {
		return nil, err
	}
	fields := make([]delta.Field, len(objs))
	for i, o := range objs {
		if fields[i].Name, err = o.FieldString(FieldSchemaName); err != nil {
			return nil, err
		}
		if fields[i].Type, err = o.FieldString(FieldSchemaType); err != nil {
			return nil, err
		}
		if fields[i].Nullable, err = o.FieldBool(FieldSchemaNullable); err != nil {
			return nil, err
		}
	}
	s, err := delta.NewSchema(fields)
	if err != nil {
		return nil, fmt.Errorf("field %s: %w", FieldSchema, err)
	}
	return s, nil
}
