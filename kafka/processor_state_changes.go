package kafka

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/redpanda-data/benthos/v4/public/bloblang"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/claimx/claimx-connect/kafka/changelog"
)

const (
	scFieldTopic        = "topic"
	scFieldKey          = "key"
	scFieldEventID      = "event_id"
	scFieldEventTime    = "event_time"
	scFieldState        = "state"
	scFieldContext      = "context"
	scFieldBackoffMax   = "backoff_max"
	scFieldCatchUpLimit = "catch_up_timeout"

	scFieldDeadline         = "deadline"
	scFieldDeadlineAt       = "at"
	scFieldDeadlineInterval = "check_interval"
	scFieldDeadlineOwnGroup = "owner_group"
	scFieldDeadlineOwnTopic = "owner_topic"
)

// What the processor says of a message, in the metadata `state_change`.
const (
	stateChangeNew        = "new"          // the key's first state
	stateChangeChanged    = "changed"      // a state different from the key's last
	stateChangeUnchanged  = "unchanged"    // the same state as the key's last
	stateChangeReplay     = "replay"       // the event that set the key's last state, again
	stateChangeOutOfOrder = "out_of_order" // older than the key's last change
	// Written by the deadline timer, not for a message: the key's state is
	// still the same when its deadline passed.
	stateChangeOverdue = "overdue"
)

func stateChangesSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Utility").
		Summary("Detects a change of a record's tracked state per key, keeping each key's last state in a compacted Kafka topic, and writes every change to that topic exactly once.").
		Description(`
For each message the ` + "`state`" + ` mapping gives the tracked state (for example the status and the
assignee of an assignment) and ` + "`key`" + ` the entity it belongs to. The processor compares it with the
key's last recorded state and sets the metadata ` + "`state_change`" + ` to one of ` + "`new`, `changed`, `unchanged`, `replay`" + `
(the event that set the last state, seen again) or ` + "`out_of_order`" + ` (older than the last change).

A new or changed state is written to ` + "`topic`" + ` (key: the entity; value: a change record with the
state, the previous one, the event and ` + "`change_id`" + ` = key:event_id) before the message goes on, and
only then becomes the key's last state. The topic is both the state and the durable list of changes: a
stream reading it (the alerts stream) sees every change once it is written, and a replay or a duplicate
of the event is recognised and writes nothing. Give the topic ` + "`cleanup.policy=compact`" + ` and a
` + "`min.compaction.lag.ms`" + ` longer than its readers may lag.

Every replica reads the whole topic before each batch (up to its end offsets), so a key moved to another
replica by a rebalance is judged against what the previous owner wrote. Run the stream with
` + "`pipeline.threads: 1`" + `: the batches of a partition are then judged in order.

The Kafka cluster being unavailable holds the batch: the processor retries with capped exponential
backoff and never fails a record for it. A record whose key, event id, time or state cannot be read fails
with the reason.

### Deadlines

With ` + "`deadline`" + `, each change record also carries the key's next deadline, from the ` + "`deadline.at`" + `
mapping (for example: completed within 72 hours of being assigned). A timer checks every
` + "`check_interval`" + ` whether a key's deadline has passed with no change since, and then writes one
` + "`overdue`" + ` change for it (same state and event; ` + "`overdue`" + ` set; change_id
key:overdue:NAME:TIME): the alert fires although no event arrives, and exactly once, because the mark is
in the topic and is carried forward by the key's later records while the same deadline applies. The first
record whose deadline differs (completed, cancelled, reassigned) carries ` + "`resolves`" + `: the overdue mark it
ends, so a PagerDuty incident can be resolved with the same dedup key.

Only the replica that owns the key acts: the one whose ` + "`kafka_franz`" + ` input in ` + "`owner_group`" + ` is
assigned the partition of ` + "`owner_topic`" + ` the key hashes to (murmur2, the producers' default; the
input topic must be keyed by the same key). With no ` + "`owner_group`" + `, this replica owns every key: run one.`).
		Fields(append([]*service.ConfigField{
			service.NewStringField(scFieldTopic).Description("The compacted topic holding each key's last state and every change."),
			service.NewInterpolatedStringField(scFieldKey).Description("The entity a message belongs to.").Example(`${! json("assignment_id") }`),
			service.NewInterpolatedStringField(scFieldEventID).Description("The event's unique id: a replay or duplicate of the event that set a key's state is recognised by it.").Example(`${! json("event_id") }`),
			service.NewInterpolatedStringField(scFieldEventTime).Description("The event's time, RFC 3339: an event older than the key's last change is out of order and changes nothing.").Example(`${! json("event_timestamp") }`),
			service.NewBloblangField(scFieldState).Description("The tracked state, an object: two states differ when their JSON differs.").Example(`root = {"status": this.task_status, "assignee": this.assigned_to_user_id}`),
			service.NewBloblangField(scFieldContext).Description("What a change record carries for its readers (templates) besides the state; not compared.").Optional(),
			service.NewDurationField(scFieldBackoffMax).Description("The longest wait between two tries while Kafka is unavailable.").Default("30s").Advanced(),
			service.NewDurationField(scFieldCatchUpLimit).Description("How long one catch-up of the topic may take before it is tried again.").Default("30s").Advanced(),
			service.NewObjectField(scFieldDeadline,
				service.NewBloblangField(scFieldDeadlineAt).Description("Maps a change record (key, state, context, event_time) to its deadline, `{\"name\": ..., \"at\": RFC 3339 time}`, or null when none applies.").
					Example(`root = if this.state.status == "ASSIGNED" { {"name": "completed", "at": this.context.date_assigned.ts_parse("2006-01-02T15:04:05Z07:00").ts_add_iso8601("PT72H").ts_format("2006-01-02T15:04:05Z07:00")} } else { null }`),
				service.NewDurationField(scFieldDeadlineInterval).Description("How often the keys' deadlines are checked.").Default("1m"),
				service.NewStringField(scFieldDeadlineOwnGroup).Description("The consumer group of the stream's kafka_franz input: a key's deadline is checked by the replica owning its partition. Empty: by this replica, for every key.").Default(""),
				service.NewStringField(scFieldDeadlineOwnTopic).Description("The input topic whose partitions decide which replica owns a key (required with owner_group).").Default(""),
			).Description("Deadlines per key, checked by a timer: an overdue key gets one `overdue` change with no event after it.").Optional(),
		}, franzConnectionFields()...)...)
}

func init() {
	service.MustRegisterBatchProcessor("state_changes", stateChangesSpec(),
		func(conf *service.ParsedConfig, res *service.Resources) (service.BatchProcessor, error) {
			return newStateChanges(conf, res)
		})
}

// stateChangeRecord is the value written to the topic per change.
type stateChangeRecord struct {
	Key        string          `json:"key"`
	ChangeID   string          `json:"change_id"`
	Change     string          `json:"change"`
	EventID    string          `json:"event_id"`
	EventTime  string          `json:"event_time"`
	State      json.RawMessage `json:"state"`
	Context    json.RawMessage `json:"context,omitempty"`
	Previous   *stateSnapshot  `json:"previous"`
	DetectedAt string          `json:"detected_at"`
	// With deadlines: the key's next deadline, the overdue mark of the
	// deadline that passed (carried forward while it applies), and the mark
	// this record ends.
	Deadline *deadlineMark `json:"deadline,omitempty"`
	Overdue  *overdueMark  `json:"overdue,omitempty"`
	Resolves *overdueMark  `json:"resolves,omitempty"`
}

// deadlineMark is a named deadline of a key.
type deadlineMark struct {
	Name string `json:"name"`
	At   string `json:"at"`
}

// overdueMark says a deadline passed, and which change recorded it.
type overdueMark struct {
	Name       string `json:"name"`
	At         string `json:"at"`
	ChangeID   string `json:"change_id"`
	DetectedAt string `json:"detected_at"`
}

func (o *overdueMark) of(d *deadlineMark) bool {
	return o != nil && d != nil && o.Name == d.Name && o.At == d.At
}

// stateSnapshot is the state a change replaced.
type stateSnapshot struct {
	EventID   string          `json:"event_id"`
	EventTime string          `json:"event_time"`
	State     json.RawMessage `json:"state"`
}

type stateChanges struct {
	key, eventID, eventTime *service.InterpolatedString
	state, context          *bloblang.Executor
	backoffMax, catchUpMax  time.Duration
	log                     *service.Logger

	open    func() (*changelog.Table, error)
	mu      sync.Mutex // one batch at a time: a key's changes are judged in order
	table   *changelog.Table
	changes *service.MetricCounter
	keys    *service.MetricGauge
	held    *service.MetricCounter
	avail   *service.MetricGauge

	deadlineAt    *bloblang.Executor
	deadlineEvery time.Duration
	ownerGroup    string
	ownerTopic    string
	owns          func(group, topic string, partition int32) bool
	now           func() time.Time
	overdue       *service.MetricCounter
	stopTimer     context.CancelFunc
	timerDone     chan struct{}
}

func newStateChanges(conf *service.ParsedConfig, res *service.Resources) (*stateChanges, error) {
	s := &stateChanges{log: res.Logger()}
	var err error
	topic, err := conf.FieldString(scFieldTopic)
	if err != nil {
		return nil, err
	}
	if s.key, err = conf.FieldInterpolatedString(scFieldKey); err != nil {
		return nil, err
	}
	if s.eventID, err = conf.FieldInterpolatedString(scFieldEventID); err != nil {
		return nil, err
	}
	if s.eventTime, err = conf.FieldInterpolatedString(scFieldEventTime); err != nil {
		return nil, err
	}
	if s.state, err = conf.FieldBloblang(scFieldState); err != nil {
		return nil, err
	}
	if conf.Contains(scFieldContext) {
		if s.context, err = conf.FieldBloblang(scFieldContext); err != nil {
			return nil, err
		}
	}
	if s.backoffMax, err = conf.FieldDuration(scFieldBackoffMax); err != nil {
		return nil, err
	}
	if s.catchUpMax, err = conf.FieldDuration(scFieldCatchUpLimit); err != nil {
		return nil, err
	}
	opts, err := franzConnectionOptsFromConfig(conf)
	if err != nil {
		return nil, err
	}
	s.open = func() (*changelog.Table, error) { return changelog.Open(topic, opts...) }
	m := res.Metrics()
	s.changes = m.NewCounter("state_changes_total", "change")
	s.keys = m.NewGauge("state_changelog_keys")
	s.held = m.NewCounter("state_changelog_holds_total")
	s.avail = m.NewGauge("state_changelog_available")
	s.avail.Set(1)
	s.now = time.Now
	s.owns = groupOwners.owns
	if conf.Contains(scFieldDeadline) {
		dc := conf.Namespace(scFieldDeadline)
		if s.deadlineAt, err = dc.FieldBloblang(scFieldDeadlineAt); err != nil {
			return nil, err
		}
		if s.deadlineEvery, err = dc.FieldDuration(scFieldDeadlineInterval); err != nil {
			return nil, err
		}
		if s.deadlineEvery <= 0 {
			return nil, fmt.Errorf("%s.%s must be positive", scFieldDeadline, scFieldDeadlineInterval)
		}
		if s.ownerGroup, err = dc.FieldString(scFieldDeadlineOwnGroup); err != nil {
			return nil, err
		}
		if s.ownerTopic, err = dc.FieldString(scFieldDeadlineOwnTopic); err != nil {
			return nil, err
		}
		if s.ownerGroup != "" && s.ownerTopic == "" {
			return nil, fmt.Errorf("%s.%s is required with %s", scFieldDeadline, scFieldDeadlineOwnTopic, scFieldDeadlineOwnGroup)
		}
		s.overdue = m.NewCounter("state_deadlines_overdue_total")
		ctx, stop := context.WithCancel(context.Background())
		s.stopTimer, s.timerDone = stop, make(chan struct{})
		go s.deadlineLoop(ctx)
	}
	return s, nil
}

// judged is what the processor decided for one message.
type judged struct {
	key, eventID, eventTime string
	t                       time.Time
	state, context          []byte
}

func (s *stateChanges) ProcessBatch(ctx context.Context, batch service.MessageBatch) ([]service.MessageBatch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.hold(ctx, "catching up on the state topic", func(ctx context.Context) error {
		cctx, cancel := context.WithTimeout(ctx, s.catchUpMax)
		defer cancel()
		return s.ensureTable(cctx)
	}); err != nil {
		return nil, err
	}
	for i, msg := range batch {
		j, err := s.read(batch, i)
		if err != nil {
			msg.SetError(err)
			continue
		}
		change, rec, err := s.judge(j)
		if err != nil {
			msg.SetError(err)
			continue
		}
		if rec != nil {
			if err := s.hold(ctx, "writing the change of "+j.key, func(ctx context.Context) error {
				return s.table.Put(ctx, j.key, rec)
			}); err != nil {
				return nil, err
			}
		}
		s.changes.Incr(1, change)
		msg.MetaSetMut("state_change", change)
		msg.MetaSetMut("state_change_id", j.key+":"+j.eventID)
	}
	s.keys.Set(int64(s.table.Len()))
	return []service.MessageBatch{batch}, nil
}

// ensureTable opens the state table once and catches up on it. Call with mu held.
func (s *stateChanges) ensureTable(ctx context.Context) error {
	if s.table == nil {
		t, err := s.open()
		if err != nil {
			return err
		}
		s.table = t
	}
	return s.table.CatchUp(ctx)
}

// read evaluates the fields of message i; an error is the record's.
func (s *stateChanges) read(batch service.MessageBatch, i int) (judged, error) {
	var j judged
	var err error
	if j.key, err = batch.TryInterpolatedString(i, s.key); err != nil {
		return j, fmt.Errorf("state_changes: reading the record's key: %w", err)
	}
	if j.key == "" {
		return j, fmt.Errorf("state_changes: the record's key is empty")
	}
	if j.eventID, err = batch.TryInterpolatedString(i, s.eventID); err != nil {
		return j, fmt.Errorf("state_changes: record %s: reading its event id: %w", j.key, err)
	}
	if j.eventID == "" {
		return j, fmt.Errorf("state_changes: record %s: the event id is empty", j.key)
	}
	if j.eventTime, err = batch.TryInterpolatedString(i, s.eventTime); err != nil {
		return j, fmt.Errorf("state_changes: event %s: reading its time: %w", j.eventID, err)
	}
	if j.t, err = time.Parse(time.RFC3339Nano, j.eventTime); err != nil {
		return j, fmt.Errorf("state_changes: event %s: time %q is not RFC 3339", j.eventID, j.eventTime)
	}
	if j.state, err = s.mapJSON(batch, i, s.state); err != nil {
		return j, fmt.Errorf("state_changes: event %s: the state mapping: %w", j.eventID, err)
	}
	if s.context != nil {
		if j.context, err = s.mapJSON(batch, i, s.context); err != nil {
			return j, fmt.Errorf("state_changes: event %s: the context mapping: %w", j.eventID, err)
		}
	}
	return j, nil
}

func (s *stateChanges) mapJSON(batch service.MessageBatch, i int, e *bloblang.Executor) ([]byte, error) {
	m, err := batch.BloblangQuery(i, e)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("it deleted the message")
	}
	v, err := m.AsStructured()
	if err != nil {
		return nil, err
	}
	// encoding/json sorts map keys: equal states give equal bytes.
	return json.Marshal(v)
}

// judge compares j with the key's last state and returns the change and,
// for a new or changed state, the record to write.
func (s *stateChanges) judge(j judged) (string, []byte, error) {
	var prev *stateChangeRecord
	if raw, ok := s.table.Get(j.key); ok {
		prev = &stateChangeRecord{}
		if err := json.Unmarshal(raw, prev); err != nil {
			// A foreign record on the topic: the new state replaces it.
			s.log.With("key", j.key, "error", err.Error()).Warn("state_changes: the key's last record does not parse; treating the state as new")
			prev = nil
		}
	}
	change := stateChangeNew
	if prev != nil {
		pt, _ := time.Parse(time.RFC3339Nano, prev.EventTime)
		switch {
		case prev.EventID == j.eventID:
			return stateChangeReplay, nil, nil
		case j.t.Before(pt), j.t.Equal(pt) && j.eventID < prev.EventID:
			// Equal times are ordered by event id, so that a replay
			// is judged as the first time whatever came between.
			return stateChangeOutOfOrder, nil, nil
		case bytes.Equal(prev.State, j.state):
			return stateChangeUnchanged, nil, nil
		}
		change = stateChangeChanged
	}
	rec := stateChangeRecord{
		Key: j.key, ChangeID: j.key + ":" + j.eventID, Change: change,
		EventID: j.eventID, EventTime: j.eventTime, State: j.state, Context: j.context,
		DetectedAt: time.Now().UTC().Format(time.RFC3339Nano),
	}
	if prev != nil {
		rec.Previous = &stateSnapshot{EventID: prev.EventID, EventTime: prev.EventTime, State: prev.State}
	}
	if s.deadlineAt != nil {
		d, err := s.deadlineOf(&rec)
		if err != nil {
			return "", nil, fmt.Errorf("state_changes: event %s: %w", j.eventID, err)
		}
		rec.Deadline = d
		if prev != nil && prev.Overdue != nil {
			if prev.Overdue.of(d) {
				rec.Overdue = prev.Overdue
			} else {
				rec.Resolves = prev.Overdue
			}
		}
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return "", nil, fmt.Errorf("state_changes: event %s: encoding the change: %w", j.eventID, err)
	}
	return change, b, nil
}

// hold runs f until it succeeds, backing off while Kafka is unavailable;
// it gives up only when ctx ends (the stream is stopping: the batch is
// not acknowledged and is read again).
func (s *stateChanges) hold(ctx context.Context, what string, f func(context.Context) error) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 200 * time.Millisecond
	b.MaxInterval = s.backoffMax
	b.MaxElapsedTime = 0
	for {
		err := f(ctx)
		if err == nil {
			s.avail.Set(1)
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("state_changes: %s: %w", what, err)
		}
		s.avail.Set(0)
		s.held.Incr(1)
		wait := b.NextBackOff()
		s.log.With("error", err.Error(), "retry_in", wait.String()).Warn("state_changes: " + what + " failed; holding the batch")
		select {
		case <-ctx.Done():
			return fmt.Errorf("state_changes: %s: %w", what, err)
		case <-time.After(wait):
		}
	}
}

func (s *stateChanges) Close(context.Context) error {
	if s.stopTimer != nil {
		s.stopTimer()
		<-s.timerDone
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.table != nil {
		s.table.Close()
	}
	return nil
}
