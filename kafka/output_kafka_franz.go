package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/claimx/claimx-connect/internal/bytesize"
	"github.com/claimx/claimx-connect/internal/jsontext"
)

const (
	kfoFieldTopic                  = "topic"
	kfoFieldKey                    = "key"
	kfoFieldPartition              = "partition"
	kfoFieldPartitioner            = "partitioner"
	kfoFieldMetadata               = "metadata"
	kfoFieldTimestampMs            = "timestamp_ms"
	kfoFieldMaxInFlight            = "max_in_flight"
	kfoFieldBatching               = "batching"
	kfoFieldIdempotentWrite        = "idempotent_write"
	kfoFieldCompression            = "compression"
	kfoFieldAllowAutoTopicCreation = "allow_auto_topic_creation"
	kfoFieldTimeout                = "timeout"
	kfoFieldMaxMessageBytes        = "max_message_bytes"
	kfoFieldBrokerWriteMaxBytes    = "broker_write_max_bytes"

	kfoPartitionerMurmur2     = "murmur2_hash"
	kfoPartitionerRoundRobin  = "round_robin"
	kfoPartitionerLeastBackup = "least_backup"
	kfoPartitionerManual      = "manual"
)

// franzWriterCloseTimeout bounds Close, for which the framework gives no
// deadline.
const franzWriterCloseTimeout = 20 * time.Second

func franzKafkaOutputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Stable().
		Categories("Services").
		Summary("Writes a batch of messages to Kafka with the franz-go client and waits for the broker to acknowledge them.").
		Description(`
This output is compatible with the `+"`kafka_franz`"+` output of Redpanda Connect: existing configurations run unchanged.

All messages of a batch are produced concurrently and the batch completes when every message is acknowledged by the broker. When some messages fail only those are rejected, each with an error naming the topic, the partition and the reason, so an input replays just them.

Metadata matching the `+"`metadata`"+` filter is written as record headers; list values (such as those of the input's `+"`multi_header`"+`) become one header per element.
`).
		Fields(franzKafkaOutputFields()...).
		LintRule(`
root = [
  if this.partitioner.or("") == "manual" && this.partition.or("") == "" { "a partition must be given when the partitioner is manual" },
  if this.partitioner.or("") != "manual" && this.partition.or("") != "" { "partition is only used with partitioner: manual" },
]
`).
		Example("Key by assignment", "Publish tracking messages keyed by their assignment so that the events of one assignment stay in order.", `
output:
  kafka_franz:
    seed_brokers: [ localhost:9092 ]
    topic: itel.cabinet.task.tracking
    key: ${! json("assignment_id") }
    metadata:
      include_prefixes: [ "event_" ]
`)
}

func franzKafkaOutputFields() []*service.ConfigField {
	fields := []*service.ConfigField{
		service.NewInterpolatedStringField(kfoFieldTopic).
			Description("The topic to write each message to."),
		service.NewInterpolatedStringField(kfoFieldKey).
			Description("A key for each message; messages with the same key go to the same partition with the murmur2_hash partitioner.").
			Optional(),
		service.NewInterpolatedStringField(kfoFieldPartition).
			Description("The partition to write each message to, used with `partitioner: manual` only.").
			Example(`${! meta("partition") }`).
			Optional(),
		service.NewStringAnnotatedEnumField(kfoFieldPartitioner, map[string]string{
			kfoPartitionerMurmur2:     "Kafka's default hash algorithm: the murmur2 hash of the key picks the partition, as Kafka's Java client does.",
			kfoPartitionerRoundRobin:  "Round-robin's messages through all available partitions, ignoring keys.",
			kfoPartitionerLeastBackup: "Chooses the least backed up partition (the one with the fewest records buffered), ignoring keys.",
			kfoPartitionerManual:      "Writes each message to the partition given by `partition`.",
		}).
			Description("How the partition of each message is chosen. Defaults to `murmur2_hash`.").
			Optional().
			Advanced(),
		service.NewMetadataFilterField(kfoFieldMetadata).
			Description("Which metadata of a message to write as record headers.").
			Optional(),
		service.NewInterpolatedStringField(kfoFieldTimestampMs).
			Description("The timestamp of each record in milliseconds since the epoch. Defaults to the time of production.").
			Example(`${! timestamp_unix_milli() }`).
			Example(`${! metadata("kafka_timestamp_ms") }`).
			Optional().
			Advanced(),
		service.NewIntField(kfoFieldMaxInFlight).
			Description("The maximum number of batches written at the same time.").
			Default(10),
		service.NewBatchPolicyField(kfoFieldBatching),
		service.NewBoolField(kfoFieldIdempotentWrite).
			Description("Enable the idempotent producer, which avoids duplicates from internal retries. Needs the IDEMPOTENT_WRITE permission on the cluster.").
			Default(true).
			Advanced(),
		service.NewStringEnumField(kfoFieldCompression, "lz4", "snappy", "gzip", "none", "zstd").
			Description("The compression codec of record batches. Defaults to the client's choice (snappy).").
			Optional().
			Advanced(),
		service.NewBoolField(kfoFieldAllowAutoTopicCreation).
			Description("Let the broker create a topic that does not exist when it is first written to (if the broker allows it).").
			Default(true).
			Advanced(),
		service.NewDurationField(kfoFieldTimeout).
			Description("The maximum time to wait for a batch to be acknowledged before its unacknowledged messages fail.").
			Default("10s").
			Advanced(),
		bytesize.NewField(kfoFieldMaxMessageBytes).
			Description("The maximum size of a record batch sent to a partition, as a number of bytes or a size such as `1MiB`; should not exceed the broker's `max.message.bytes`.").
			Default("1MiB").
			Advanced(),
		bytesize.NewField(kfoFieldBrokerWriteMaxBytes).
			Description("The maximum size of one write to a broker, as a number of bytes or a size such as `100MiB`; should not exceed the broker's `socket.request.max.bytes`.").
			Default("100MiB").
			Advanced(),
	}
	return append(fields, franzConnectionFields()...)
}

func init() {
	service.MustRegisterBatchOutput("kafka_franz", franzKafkaOutputSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (out service.BatchOutput, policy service.BatchPolicy, maxInFlight int, err error) {
			if maxInFlight, err = conf.FieldInt(kfoFieldMaxInFlight); err != nil {
				return
			}
			if policy, err = conf.FieldBatchPolicy(kfoFieldBatching); err != nil {
				return
			}
			out, err = newFranzWriterFromConfig(conf, mgr)
			return
		})
}

// franzWriter is the kafka_franz batch output.
type franzWriter struct {
	clientOpts []kgo.Opt
	topic      *service.InterpolatedString
	key        *service.InterpolatedString // nil: no key
	partition  *service.InterpolatedString // nil unless partitioner manual
	timestamp  *service.InterpolatedString // nil: time of production
	metaFilter *service.MetadataFilter     // nil: no headers
	timeout    time.Duration
	log        *service.Logger

	mu     sync.RWMutex
	client *kgo.Client
}

func newFranzWriterFromConfig(conf *service.ParsedConfig, res *service.Resources) (*franzWriter, error) {
	w := &franzWriter{log: res.Logger()}
	var err error

	if w.clientOpts, err = franzConnectionOptsFromConfig(conf); err != nil {
		return nil, err
	}
	if w.topic, err = conf.FieldInterpolatedString(kfoFieldTopic); err != nil {
		return nil, err
	}
	optionalInterp := func(field string) (*service.InterpolatedString, error) {
		if !conf.Contains(field) {
			return nil, nil
		}
		return conf.FieldInterpolatedString(field)
	}
	if w.key, err = optionalInterp(kfoFieldKey); err != nil {
		return nil, err
	}
	if w.partition, err = optionalInterp(kfoFieldPartition); err != nil {
		return nil, err
	}
	if w.timestamp, err = optionalInterp(kfoFieldTimestampMs); err != nil {
		return nil, err
	}
	if conf.Contains(kfoFieldMetadata) {
		if w.metaFilter, err = conf.FieldMetadataFilter(kfoFieldMetadata); err != nil {
			return nil, err
		}
	}

	partitioner := kfoPartitionerMurmur2
	if conf.Contains(kfoFieldPartitioner) {
		if partitioner, err = conf.FieldString(kfoFieldPartitioner); err != nil {
			return nil, err
		}
	}
	switch partitioner {
	case kfoPartitionerMurmur2:
		// A nil hasher hashes keys exactly as Kafka's Java client does.
		w.clientOpts = append(w.clientOpts, kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	case kfoPartitionerRoundRobin:
		w.clientOpts = append(w.clientOpts, kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	case kfoPartitionerLeastBackup:
		w.clientOpts = append(w.clientOpts, kgo.RecordPartitioner(kgo.LeastBackupPartitioner()))
	case kfoPartitionerManual:
		w.clientOpts = append(w.clientOpts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	default:
		return nil, fmt.Errorf("field %s: unknown partitioner %q", kfoFieldPartitioner, partitioner)
	}
	if (partitioner == kfoPartitionerManual) != (w.partition != nil) {
		return nil, fmt.Errorf("field %s: a partition is given if and only if the partitioner is %s", kfoFieldPartition, kfoPartitionerManual)
	}

	idempotent, err := conf.FieldBool(kfoFieldIdempotentWrite)
	if err != nil {
		return nil, err
	}
	if !idempotent {
		w.clientOpts = append(w.clientOpts, kgo.DisableIdempotentWrite())
	}

	if conf.Contains(kfoFieldCompression) {
		name, err := conf.FieldString(kfoFieldCompression)
		if err != nil {
			return nil, err
		}
		var codec kgo.CompressionCodec
		switch name {
		case "lz4":
			codec = kgo.Lz4Compression()
		case "snappy":
			codec = kgo.SnappyCompression()
		case "gzip":
			codec = kgo.GzipCompression()
		case "zstd":
			codec = kgo.ZstdCompression()
		case "none":
			codec = kgo.NoCompression()
		default:
			return nil, fmt.Errorf("field %s: unknown codec %q", kfoFieldCompression, name)
		}
		w.clientOpts = append(w.clientOpts, kgo.ProducerBatchCompression(codec))
	}

	autoCreate, err := conf.FieldBool(kfoFieldAllowAutoTopicCreation)
	if err != nil {
		return nil, err
	}
	if autoCreate {
		w.clientOpts = append(w.clientOpts, kgo.AllowAutoTopicCreation())
	}

	if w.timeout, err = conf.FieldDuration(kfoFieldTimeout); err != nil {
		return nil, err
	}
	if w.timeout <= 0 {
		return nil, fmt.Errorf("field %s: must be positive, got %v", kfoFieldTimeout, w.timeout)
	}
	w.clientOpts = append(w.clientOpts, kgo.ProduceRequestTimeout(w.timeout))

	for _, b := range []struct {
		field string
		opt   func(int32) kgo.Opt
	}{
		{kfoFieldMaxMessageBytes, func(n int32) kgo.Opt { return kgo.ProducerBatchMaxBytes(n) }},
		{kfoFieldBrokerWriteMaxBytes, kgo.BrokerMaxWriteBytes},
	} {
		n, err := bytesize.FromConfig(conf, b.field)
		if err != nil {
			return nil, err
		}
		n32, err := int32Size(b.field, n)
		if err != nil {
			return nil, err
		}
		w.clientOpts = append(w.clientOpts, b.opt(n32))
	}
	return w, nil
}

// Connect creates the client and checks that a broker answers.
func (w *franzWriter) Connect(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.client != nil {
		return nil
	}
	cl, err := kgo.NewClient(w.clientOpts...)
	if err != nil {
		return fmt.Errorf("creating kafka client: %w", err)
	}
	if err := cl.Ping(ctx); err != nil {
		cl.Close()
		return fmt.Errorf("connecting to seed brokers: %w", err)
	}
	w.client = cl
	return nil
}

// WriteBatch produces every message of the batch at once and waits for all
// of them. Only messages that failed are rejected.
func (w *franzWriter) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	w.mu.RLock()
	cl := w.client
	w.mu.RUnlock()
	if cl == nil {
		return service.ErrNotConnected
	}

	errs := make([]error, len(batch))
	records := make([]*kgo.Record, len(batch))
	ex := w.executors(batch)
	for i := range batch {
		rec, err := w.toRecord(batch, ex, i)
		if err != nil {
			errs[i] = fmt.Errorf("preparing message %d of batch: %w", i, err)
			continue
		}
		records[i] = rec
	}

	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	var wg sync.WaitGroup
	for i, rec := range records {
		if rec == nil {
			continue
		}
		wg.Add(1)
		cl.Produce(ctx, rec, func(r *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				// Each callback writes its own index only.
				errs[i] = fmt.Errorf("producing message %d of batch to topic %s partition %d: %w", i, r.Topic, r.Partition, err)
			}
		})
	}
	wg.Wait()

	var batchErr *service.BatchError
	for i, err := range errs {
		if err == nil {
			continue
		}
		if batchErr == nil {
			batchErr = service.NewBatchError(batch, err)
		}
		batchErr.Failed(i, err)
	}
	if batchErr != nil {
		return batchErr
	}
	return nil
}

// recordExecutors holds the interpolations of one batch. benthos copies the
// whole batch each time an executor is made, so making one per message would
// cost time quadratic in the batch size.
type recordExecutors struct {
	topic, key, partition, timestamp *service.MessageBatchInterpolationExecutor
}

func (w *franzWriter) executors(batch service.MessageBatch) recordExecutors {
	var ex recordExecutors
	ex.topic = batch.InterpolationExecutor(w.topic)
	if w.key != nil {
		ex.key = batch.InterpolationExecutor(w.key)
	}
	if w.partition != nil {
		ex.partition = batch.InterpolationExecutor(w.partition)
	}
	if w.timestamp != nil {
		ex.timestamp = batch.InterpolationExecutor(w.timestamp)
	}
	return ex
}

// messageValue is the content of msg as bytes. A structured message (a
// mapping's result) is encoded by jsontext, to the same bytes benthos
// writes (no HTML escaping) without reflection: encoding the worker's ~5 KB
// success messages was a sixth of its CPU.
func messageValue(msg *service.Message) ([]byte, error) {
	if !msg.HasBytes() && msg.HasStructured() {
		v, err := msg.AsStructured()
		if err != nil {
			return nil, err
		}
		if b, err := jsontext.Encode(v, false); err == nil {
			return b, nil
		}
		// What encoding/json refuses (NaN, say) is benthos's to handle.
	}
	return msg.AsBytes()
}

func (w *franzWriter) toRecord(batch service.MessageBatch, ex recordExecutors, i int) (*kgo.Record, error) {
	msg := batch[i]
	value, err := messageValue(msg)
	if err != nil {
		return nil, fmt.Errorf("reading content: %w", err)
	}
	rec := &kgo.Record{Value: value}
	if rec.Topic, err = ex.topic.TryString(i); err != nil {
		return nil, fmt.Errorf("interpolating %s: %w", kfoFieldTopic, err)
	}
	if rec.Topic == "" {
		return nil, fmt.Errorf("interpolating %s: empty topic", kfoFieldTopic)
	}
	if w.key != nil {
		if rec.Key, err = ex.key.TryBytes(i); err != nil {
			return nil, fmt.Errorf("interpolating %s: %w", kfoFieldKey, err)
		}
	}
	if w.partition != nil {
		s, err := ex.partition.TryString(i)
		if err != nil {
			return nil, fmt.Errorf("interpolating %s: %w", kfoFieldPartition, err)
		}
		p, err := strconv.ParseInt(s, 10, 32)
		if err != nil || p < 0 {
			return nil, fmt.Errorf("interpolating %s: %q is not a partition number", kfoFieldPartition, s)
		}
		rec.Partition = int32(p)
	}
	if w.timestamp != nil {
		s, err := ex.timestamp.TryString(i)
		if err != nil {
			return nil, fmt.Errorf("interpolating %s: %w", kfoFieldTimestampMs, err)
		}
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("interpolating %s: %q is not a number of milliseconds", kfoFieldTimestampMs, s)
		}
		rec.Timestamp = time.UnixMilli(ms)
	}
	if w.metaFilter != nil {
		_ = msg.MetaWalkMut(func(k string, v any) error {
			if !w.metaFilter.Match(k) {
				return nil
			}
			if list, ok := v.([]any); ok {
				for _, e := range list {
					rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: k, Value: []byte(metaString(e))})
				}
				return nil
			}
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: k, Value: []byte(metaString(v))})
			return nil
		})
	}
	return rec, nil
}

// metaString renders a structured metadata value as a header value.
func metaString(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case []byte:
		return string(t)
	default:
		return fmt.Sprint(t)
	}
}

// Close waits for buffered records and closes the client, within
// franzWriterCloseTimeout.
func (w *franzWriter) Close(ctx context.Context) error {
	w.mu.Lock()
	cl := w.client
	w.client = nil
	w.mu.Unlock()
	if cl == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, franzWriterCloseTimeout)
	defer cancel()
	var errs []error
	if err := cl.Flush(ctx); err != nil {
		errs = append(errs, fmt.Errorf("flushing kafka producer: %w", err))
	}
	closed := make(chan struct{})
	go func() {
		cl.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("closing kafka client: %w", ctx.Err()))
	}
	return errors.Join(errs...)
}
