package kafka

import (
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/claimx/claimx-connect/internal/bytesize"
)

const (
	kfiFieldTopics                 = "topics"
	kfiFieldRegexpTopics           = "regexp_topics"
	kfiFieldConsumerGroup          = "consumer_group"
	kfiFieldCheckpointLimit        = "checkpoint_limit"
	kfiFieldCommitPeriod           = "commit_period"
	kfiFieldStartFromOldest        = "start_from_oldest"
	kfiFieldStartOffset            = "start_offset"
	kfiFieldFetchMaxBytes          = "fetch_max_bytes"
	kfiFieldFetchMaxWait           = "fetch_max_wait"
	kfiFieldFetchMinBytes          = "fetch_min_bytes"
	kfiFieldFetchMaxPartitionBytes = "fetch_max_partition_bytes"
	kfiFieldRebalanceTimeout       = "rebalance_timeout"
	kfiFieldSessionTimeout         = "session_timeout"
	kfiFieldHeartbeatInterval      = "heartbeat_interval"
	kfiFieldInstanceID             = "instance_id"
	kfiFieldRackID                 = "rack_id"
	kfiFieldMultiHeader            = "multi_header"
	kfiFieldBatching               = "batching"
	kfiFieldTopicLagRefreshPeriod  = "topic_lag_refresh_period"
	kfiFieldRevokeAckTimeout       = "revoke_ack_timeout"

	kfiStartOffsetEarliest  = "earliest"
	kfiStartOffsetLatest    = "latest"
	kfiStartOffsetCommitted = "committed"
)

func franzKafkaInputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Stable().
		Categories("Services").
		Summary("Consumes one or more topics from Kafka with the franz-go client, committing offsets only for messages delivered downstream.").
		Description(`
This input is compatible with the `+"`kafka_franz`"+` input of Redpanda Connect: existing configurations run unchanged.

### Delivery guarantees

Offsets are committed at least once: the offset of a message is committed only when it and every earlier message of its partition have been acknowledged by the output, whatever order the acknowledgements arrive in. When `+"`checkpoint_limit`"+` messages of a partition are in flight, fetching that partition pauses until some are acknowledged. Committable offsets are committed every `+"`commit_period`"+`, synchronously when a partition is revoked by a rebalance, and when the input closes. When a rebalance revokes a partition, its messages not yet handed to the pipeline are dropped and the revoke waits up to `+"`revoke_ack_timeout`"+` for the acknowledgements of those already handed over, commits what was acknowledged, and only then lets the partition go, so that its next owner consumes again as little as possible. Acknowledgements arriving later, or for a partition lost without a revoke (the member dropped out of the group), never commit; those messages are consumed again by the new owner.

### Static membership

With `+"`instance_id`"+` set, the member is static (KIP-345): closing does not leave the group, and a member that comes back with the same `+"`instance_id`"+` within `+"`session_timeout`"+` gets its partitions back without a rebalance of the group, so a restart costs the other members nothing and the restarted member consumes again within seconds. A static member that does not come back holds its partitions, unconsumed, until `+"`session_timeout`"+` expires. Each member of a group needs its own `+"`instance_id`"+`, stable across its restarts (a StatefulSet pod name, a host name); two live members with one `+"`instance_id`"+` fence each other out.

A message rejected downstream (nacked) is never skipped. With `+"`auto_replay_nacks: true`"+` (the default) it is delivered again until it succeeds. With `+"`auto_replay_nacks: false`"+` the commit of its partition stops before it, so it is consumed again after a restart or rebalance; the partition keeps flowing until `+"`checkpoint_limit`"+` is reached.

### Consumption modes

With `+"`consumer_group`"+` set, partitions of the topics (or of the topics matching `+"`regexp_topics`"+`) are shared among the members of the group and offsets are committed to it. Without a consumer group, or with explicit partitions (`+"`foo:0`, `foo:0-5`, `foo:3:1234`"+`), partitions are consumed directly from `+"`start_offset`"+` (or the explicit offset) and nothing is committed.

### Batching

Messages of one batch always come from a single partition. Without a batching policy each fetch of a partition becomes one batch; with one, each partition is batched separately by the policy (`+"`count: 1`"+` gives one message per batch).

### Metadata

This input adds the following metadata fields to each message:

`+"```text"+`
- kafka_key (string)
- kafka_topic (string)
- kafka_partition (int)
- kafka_offset (int)
- kafka_lag (int: high watermark of the fetch - offset - 1)
- kafka_timestamp_unix (int, seconds)
- kafka_timestamp_ms (int, milliseconds)
- kafka_tombstone_message (bool)
- All record headers (a list of strings per key with multi_header, else the last value as a string)
`+"```"+`
`).
		Fields(franzKafkaInputFields()...).
		LintRule(`
let explicit = this.topics.or([]).any(t -> t.contains(":"))
root = [
  if $explicit && this.regexp_topics.or(false) { "explicit topic partitions cannot be combined with regexp_topics" },
  if $explicit && this.consumer_group.or("") != "" { "explicit topic partitions are consumed without a consumer group: remove consumer_group or the partitions" },
  if this.start_offset.or("") == "committed" && (this.consumer_group.or("") == "" || $explicit) { "start_offset committed needs a consumer_group" },
]
`).
		Example("Consumer group", "Share the partitions of two topics among the members of a group, committing offsets as messages are delivered.", `
input:
  kafka_franz:
    seed_brokers: [ localhost:9092 ]
    topics: [ claimx.events.raw ]
    consumer_group: itel_cabinet_trigger
    batching:
      count: 100
      period: 1s
`).
		Example("Explicit partitions", "Replay partition 0 of a topic from offset 1234, without a group.", `
input:
  kafka_franz:
    seed_brokers: [ localhost:9092 ]
    topics: [ "claimx.events.raw:0:1234" ]
`)
}

func franzKafkaInputFields() []*service.ConfigField {
	fields := []*service.ConfigField{
		service.NewStringListField(kfiFieldTopics).
			Description("A list of topics to consume from. Multiple comma separated topics can be listed in a single element. Partitions are consumed explicitly, without a consumer group, with `topic:partition`, a range `topic:0-5`, or a partition and starting offset `topic:partition:offset`.").
			Example([]string{"foo", "bar"}).
			Example([]string{"things.*"}).
			Example([]string{"foo,bar"}).
			Example([]string{"foo:0", "bar:1", "bar:3"}).
			Example([]string{"foo:0,bar:1,bar:3"}).
			Example([]string{"foo:0-5"}).
			Example([]string{"foo:0:1234"}),
		service.NewBoolField(kfiFieldRegexpTopics).
			Description("Whether listed topics are regular expressions matched against the topics of the cluster. Cannot be combined with explicit partitions.").
			Default(false),
		service.NewStringField(kfiFieldConsumerGroup).
			Description("A consumer group to consume as. Partitions are distributed among the members of the group and offsets are committed and resumed under this name. Not used with explicit partitions.").
			Optional(),
		service.NewIntField(kfiFieldCheckpointLimit).
			Description("The maximum number of messages of one partition that may be in flight (delivered but not acknowledged). Each poll takes only as many fetched records as fit under the limit; a partition that stays at its limit is paused until half of it is free. With batching, keep it at least twice the batch count, so that one batch can be read while another is processed. The committed offset is never past an unacknowledged message, so a lower limit means fewer duplicates after a crash, and less memory.").
			Default(1024).
			Advanced(),
		service.NewDurationField(kfiFieldCommitPeriod).
			Description("The period of time between each commit of acknowledged offsets.").
			Default("5s").
			Advanced(),
		service.NewBoolField(kfiFieldStartFromOldest).
			Description("Deprecated: use `start_offset`. When false, partitions without a committed offset start from the newest message (as `start_offset: latest`).").
			Default(true).
			Deprecated(),
		service.NewStringAnnotatedEnumField(kfiFieldStartOffset, map[string]string{
			kfiStartOffsetEarliest:  "Start from the earliest offset. Corresponds to Kafka's `auto.offset.reset=earliest`.",
			kfiStartOffsetLatest:    "Start from the latest offset. Corresponds to Kafka's `auto.offset.reset=latest`.",
			kfiStartOffsetCommitted: "Refuse to consume a partition of the consumer group that has no committed offset. Corresponds to Kafka's `auto.offset.reset=none`; needs a consumer group.",
		}).
			Description("Where to start a partition that has no committed offset (or every partition when consuming without a group).").
			Default(kfiStartOffsetEarliest).
			Advanced(),
		bytesize.NewField(kfiFieldFetchMaxBytes).
			Description("The maximum number of bytes a broker returns for one fetch request, as a number of bytes or a size such as `50MiB`.").
			Default("50MiB").
			Advanced(),
		service.NewDurationField(kfiFieldFetchMaxWait).
			Description("How long a broker may wait for `fetch_min_bytes` to accumulate before answering a fetch. A partition paused at `checkpoint_limit` is fetched again only after the fetch in flight returns, so with a backlog on some partitions and none on the others consumption stalls for up to this long; lower it when the pipeline often reaches `checkpoint_limit`.").
			Default("5s").
			Advanced(),
		bytesize.NewField(kfiFieldFetchMinBytes).
			Description("The minimum number of bytes a broker tries to return for one fetch request.").
			Default("1B").
			Advanced(),
		bytesize.NewField(kfiFieldFetchMaxPartitionBytes).
			Description("The maximum number of bytes a broker returns for one partition in a fetch request.").
			Default("1MiB").
			Advanced(),
		service.NewDurationField(kfiFieldRebalanceTimeout).
			Description("How long group members may take to rejoin during a rebalance.").
			Default("45s").
			Advanced(),
		service.NewDurationField(kfiFieldSessionTimeout).
			Description("How long the group coordinator waits for a heartbeat before removing a member.").
			Default("1m").
			Advanced(),
		service.NewDurationField(kfiFieldHeartbeatInterval).
			Description("How often a group member heartbeats to the coordinator.").
			Default("3s").
			Advanced(),
		service.NewStringField(kfiFieldInstanceID).
			Description("A static group member ID (KIP-345), unique in the group and stable across restarts: the member does not leave the group when it closes, and when it restarts within `session_timeout` it gets its partitions back without a rebalance. A member that does not come back holds its partitions until `session_timeout`. Empty: a dynamic member, which leaves the group on close.").
			Optional().
			Advanced(),
		service.NewStringField(kfiFieldRackID).
			Description("A rack identifier, letting the client fetch from the closest replica when the cluster supports it.").
			Default("").
			Advanced(),
		service.NewBoolField(kfiFieldMultiHeader).
			Description("Keep every value of a header that appears several times in a record, as a list of strings. Otherwise the last value is kept as a string.").
			Default(false).
			Advanced(),
		service.NewBatchPolicyField(kfiFieldBatching).
			Description("A batching policy applied to each partition separately, so that a batch never mixes partitions and the order of each partition is kept.").
			Advanced(),
		service.NewAutoRetryNacksToggleField(),
		service.NewDurationField(kfiFieldTopicLagRefreshPeriod).
			Description("How often the lag of the consumer group is fetched and exposed as the `kafka_lag` gauge (labels consumer_group, topic, partition; every member reports every partition of its group). Only used with a consumer group.").
			Default("5s").
			Advanced(),
		service.NewDurationField(kfiFieldRevokeAckTimeout).
			Description("How long a rebalance that revokes partitions from this member waits for the acknowledgements of the messages of those partitions already handed to the pipeline, before committing what was acknowledged and letting the partitions go. Messages still unacknowledged then are consumed again by the next owner. The member polls nothing while it waits, and the group's rebalance waits for it: keep it well below `rebalance_timeout`. `0s` does not wait; a value not below `rebalance_timeout` is lowered to half of it. Only used with a consumer group.").
			Default("5s").
			Advanced(),
	}
	return append(fields, franzConnectionFields()...)
}

func init() {
	service.MustRegisterBatchInput("kafka_franz", franzKafkaInputSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchInput, error) {
			rdr, err := newFranzReaderFromConfig(conf, mgr)
			if err != nil {
				return nil, err
			}
			return service.AutoRetryNacksBatchedToggled(conf, rdr)
		})
}

// franzReaderConfig is the parsed input configuration.
type franzReaderConfig struct {
	clientOpts      []kgo.Opt // connection, fetch and consumption options
	group           string
	checkpointLimit int
	commitPeriod    time.Duration
	multiHeader     bool
	autoReplayNacks bool
	batchPolicy     service.BatchPolicy
	// fetchBatches delivers each fetch of a partition as one batch, when
	// no batching policy is set. benthos counts `count: 1` as no policy,
	// but a user who writes it means one message per batch.
	fetchBatches bool
	lagRefresh   time.Duration
	// revokeAckTimeout bounds a revoke's wait for acknowledgements;
	// revokeAckWarning says why it was lowered, if it was.
	revokeAckTimeout time.Duration
	revokeAckWarning string
}

func newFranzReaderFromConfig(conf *service.ParsedConfig, res *service.Resources) (*franzReader, error) {
	c, err := franzReaderConfigFromParsed(conf)
	if err != nil {
		return nil, err
	}
	if w := c.batchLimitWarning(); w != "" {
		res.Logger().Warn(w)
	}
	if c.revokeAckWarning != "" {
		res.Logger().Warn(c.revokeAckWarning)
	}
	return newFranzReader(c, res), nil
}

// batchLimitWarning says why checkpoint_limit is too low for the batch
// count, or is empty. One batch processed and the next one read need twice
// the count; below that, each partition waits for its batch's
// acknowledgement before reading on.
func (c franzReaderConfig) batchLimitWarning() string {
	if n := c.batchPolicy.Count; n > 0 && c.checkpointLimit < 2*n {
		return fmt.Sprintf("%s %d is less than twice the batching count %d: each partition will have one batch in flight at a time, which slows consumption; set it to %d or more",
			kfiFieldCheckpointLimit, c.checkpointLimit, n, 2*n)
	}
	return ""
}

func franzReaderConfigFromParsed(conf *service.ParsedConfig) (franzReaderConfig, error) {
	var c franzReaderConfig

	connOpts, err := franzConnectionOptsFromConfig(conf)
	if err != nil {
		return c, err
	}
	c.clientOpts = connOpts

	startOffsetStr, err := conf.FieldString(kfiFieldStartOffset)
	if err != nil {
		return c, err
	}
	startFromOldest, err := conf.FieldBool(kfiFieldStartFromOldest)
	if err != nil {
		return c, err
	}
	// The deprecated field only speaks when set to false, and only when
	// start_offset was left at its default, so that either way of saying
	// "latest" works and start_offset wins when both are given.
	if !startFromOldest && startOffsetStr == kfiStartOffsetEarliest {
		startOffsetStr = kfiStartOffsetLatest
	}
	var startOffset kgo.Offset
	switch startOffsetStr {
	case kfiStartOffsetEarliest:
		startOffset = kgo.NewOffset().AtStart()
	case kfiStartOffsetLatest:
		startOffset = kgo.NewOffset().AtEnd()
	case kfiStartOffsetCommitted:
		startOffset = kgo.NewOffset().AtCommitted()
	default:
		return c, fmt.Errorf("field %s: unknown value %q", kfiFieldStartOffset, startOffsetStr)
	}

	topicEntries, err := conf.FieldStringList(kfiFieldTopics)
	if err != nil {
		return c, err
	}
	topics, err := parseTopics(topicEntries, startOffset)
	if err != nil {
		return c, fmt.Errorf("field %s: %w", kfiFieldTopics, err)
	}
	regexpTopics, err := conf.FieldBool(kfiFieldRegexpTopics)
	if err != nil {
		return c, err
	}
	if conf.Contains(kfiFieldConsumerGroup) {
		if c.group, err = conf.FieldString(kfiFieldConsumerGroup); err != nil {
			return c, err
		}
	}

	switch {
	case len(topics.partitions) > 0:
		if regexpTopics {
			return c, fmt.Errorf("field %s: explicit partitions cannot be combined with %s", kfiFieldTopics, kfiFieldRegexpTopics)
		}
		if c.group != "" {
			return c, fmt.Errorf("field %s: explicit partitions are consumed without a consumer group, remove %s", kfiFieldTopics, kfiFieldConsumerGroup)
		}
		if startOffsetStr == kfiStartOffsetCommitted {
			return c, fmt.Errorf("field %s: %s needs a consumer group", kfiFieldStartOffset, kfiStartOffsetCommitted)
		}
		c.clientOpts = append(c.clientOpts, kgo.ConsumePartitions(topics.partitions))
	default:
		c.clientOpts = append(c.clientOpts, kgo.ConsumeTopics(topics.topics...), kgo.ConsumeResetOffset(startOffset))
		if regexpTopics {
			c.clientOpts = append(c.clientOpts, kgo.ConsumeRegex())
		}
		if c.group == "" && startOffsetStr == kfiStartOffsetCommitted {
			return c, fmt.Errorf("field %s: %s needs a consumer group", kfiFieldStartOffset, kfiStartOffsetCommitted)
		}
	}

	if c.group != "" {
		groupOpts, err := franzGroupOptsFromConfig(conf, c.group)
		if err != nil {
			return c, err
		}
		c.clientOpts = append(c.clientOpts, groupOpts...)
		if c.revokeAckTimeout, c.revokeAckWarning, err = revokeAckTimeoutFromConfig(conf); err != nil {
			return c, err
		}
	}

	fetchOpts, err := franzFetchOptsFromConfig(conf)
	if err != nil {
		return c, err
	}
	c.clientOpts = append(c.clientOpts, fetchOpts...)

	if c.checkpointLimit, err = conf.FieldInt(kfiFieldCheckpointLimit); err != nil {
		return c, err
	}
	if c.checkpointLimit < 1 {
		return c, fmt.Errorf("field %s: must be at least 1, got %d", kfiFieldCheckpointLimit, c.checkpointLimit)
	}
	if c.commitPeriod, err = conf.FieldDuration(kfiFieldCommitPeriod); err != nil {
		return c, err
	}
	if c.commitPeriod <= 0 {
		return c, fmt.Errorf("field %s: must be positive, got %v", kfiFieldCommitPeriod, c.commitPeriod)
	}
	if c.multiHeader, err = conf.FieldBool(kfiFieldMultiHeader); err != nil {
		return c, err
	}
	if c.autoReplayNacks, err = conf.FieldBool(service.AutoRetryNacksToggleFieldName); err != nil {
		return c, err
	}
	if c.batchPolicy, err = conf.FieldBatchPolicy(kfiFieldBatching); err != nil {
		return c, err
	}
	c.fetchBatches = c.batchPolicy.IsNoop() && c.batchPolicy.Count != 1
	if c.lagRefresh, err = conf.FieldDuration(kfiFieldTopicLagRefreshPeriod); err != nil {
		return c, err
	}
	return c, nil
}

func franzGroupOptsFromConfig(conf *service.ParsedConfig, group string) ([]kgo.Opt, error) {
	opts := []kgo.Opt{
		kgo.ConsumerGroup(group),
		// Offsets are committed by the reader from its checkpointers only.
		kgo.DisableAutoCommit(),
		// Records of a poll are assigned to partition state before a
		// rebalance may revoke the partition (see franzReader.pollLoop).
		kgo.BlockRebalanceOnPoll(),
	}
	for _, d := range []struct {
		field string
		opt   func(time.Duration) kgo.GroupOpt
	}{
		{kfiFieldRebalanceTimeout, kgo.RebalanceTimeout},
		{kfiFieldSessionTimeout, kgo.SessionTimeout},
		{kfiFieldHeartbeatInterval, kgo.HeartbeatInterval},
	} {
		v, err := conf.FieldDuration(d.field)
		if err != nil {
			return nil, err
		}
		opts = append(opts, d.opt(v))
	}
	if conf.Contains(kfiFieldInstanceID) {
		id, err := conf.FieldString(kfiFieldInstanceID)
		if err != nil {
			return nil, err
		}
		if id != "" {
			opts = append(opts, kgo.InstanceID(id))
		}
	}
	return opts, nil
}

// revokeAckTimeoutFromConfig reads revoke_ack_timeout. The group's rebalance
// waits for the revoke, so a wait of rebalance_timeout or more (the default
// 5s with a rebalance_timeout of 5s or less) is lowered to half of
// rebalance_timeout, with a warning.
func revokeAckTimeoutFromConfig(conf *service.ParsedConfig) (time.Duration, string, error) {
	d, err := conf.FieldDuration(kfiFieldRevokeAckTimeout)
	if err != nil {
		return 0, "", err
	}
	if d < 0 {
		return 0, "", fmt.Errorf("field %s: must not be negative, got %v", kfiFieldRevokeAckTimeout, d)
	}
	rebalance, err := conf.FieldDuration(kfiFieldRebalanceTimeout)
	if err != nil {
		return 0, "", err
	}
	if d > 0 && d >= rebalance {
		lowered := rebalance / 2
		return lowered, fmt.Sprintf("%s %v is not less than %s %v, which the group's rebalance would exceed waiting for this member: waiting %v instead",
			kfiFieldRevokeAckTimeout, d, kfiFieldRebalanceTimeout, rebalance, lowered), nil
	}
	return d, "", nil
}

func franzFetchOptsFromConfig(conf *service.ParsedConfig) ([]kgo.Opt, error) {
	var opts []kgo.Opt
	for _, b := range []struct {
		field string
		opt   func(int32) kgo.ConsumerOpt
	}{
		{kfiFieldFetchMaxBytes, kgo.FetchMaxBytes},
		{kfiFieldFetchMinBytes, kgo.FetchMinBytes},
		{kfiFieldFetchMaxPartitionBytes, kgo.FetchMaxPartitionBytes},
	} {
		n, err := bytesize.FromConfig(conf, b.field)
		if err != nil {
			return nil, err
		}
		n32, err := int32Size(b.field, n)
		if err != nil {
			return nil, err
		}
		opts = append(opts, b.opt(n32))
	}
	maxWait, err := conf.FieldDuration(kfiFieldFetchMaxWait)
	if err != nil {
		return nil, err
	}
	opts = append(opts, kgo.FetchMaxWait(maxWait))
	rack, err := conf.FieldString(kfiFieldRackID)
	if err != nil {
		return nil, err
	}
	if rack != "" {
		opts = append(opts, kgo.Rack(rack))
	}
	return opts, nil
}
